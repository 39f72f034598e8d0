#!/usr/bin/env bash
# Installs the peer profilers that `make bench` compares rprof with:
#   * .venv-bench/ (pyenv's CPython 3.11.7) with scripts/bench-requirements.txt: scalene,
#     memray, py-spy, austin, pyinstrument, by exact version;
#   * Debian's heaptrack and gperftools (libprofiler / libtcmalloc, google-pprof), with
#     apt-get when dpkg says they are missing.
# Idempotent: a re-run of the venv part is a no-op (scripts/venv.sh); an installed Debian
# package is not touched again.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/venv.sh
venv_python bench-env >/dev/null

missing=()
for pkg in heaptrack google-perftools libgoogle-perftools4; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "bench-env: apt-get install ${missing[*]}"
    if [ "$(id -u)" -ne 0 ]; then
        echo "bench-env: not root: install ${missing[*]} by hand; the bench skips what is missing" >&2
    else
        # An old or empty package list cannot find them: update once, then install.
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null ||
            { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; } ||
            echo "bench-env: apt-get failed for ${missing[*]}; the bench skips what is missing" >&2
    fi
fi

make_venv bench-env .venv-bench scripts/bench-requirements.txt
