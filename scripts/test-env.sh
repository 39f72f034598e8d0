#!/usr/bin/env bash
# Creates .venv-test/ (pyenv's CPython 3.11.7) with scripts/test-requirements.txt installed,
# and installs the Debian packages the tests run against when they are missing: chromium
# (tests/test_html.py opens the HTML report in it), tcmalloc and jemalloc
# (tests/test_allocators.py preloads them beside rprof), and Go, whose `go tool pprof`
# reads the pprof export (tests/test_exports.py). A re-run is a no-op.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/venv.sh

# Debian packages by the file each provides.
need=()
for pair in chromium:/usr/bin/chromium \
            libgoogle-perftools4:/usr/lib/x86_64-linux-gnu/libtcmalloc.so.4 \
            libjemalloc2:/usr/lib/x86_64-linux-gnu/libjemalloc.so.2 \
            golang-go:/usr/bin/go; do
    [ -e "${pair#*:}" ] || need+=("${pair%%:*}")
done
if [ ${#need[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "test-env: installing ${need[*]}" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

make_venv test-env .venv-test scripts/test-requirements.txt
