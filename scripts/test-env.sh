#!/usr/bin/env bash
# Creates .venv-test/ (pyenv's CPython 3.11.7) with scripts/test-requirements.txt installed,
# and installs the system packages the tests run against; a re-run is a no-op.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/venv.sh

# Debian packages by the file each provides: tcmalloc and jemalloc, which
# tests/test_allocators.py preloads beside rprof.
need=()
for pair in libgoogle-perftools4:/usr/lib/x86_64-linux-gnu/libtcmalloc.so.4 \
            libjemalloc2:/usr/lib/x86_64-linux-gnu/libjemalloc.so.2; do
    [ -e "${pair#*:}" ] || need+=("${pair%%:*}")
done
if [ ${#need[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "test-env: installing ${need[*]}" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

make_venv test-env .venv-test scripts/test-requirements.txt
