#!/usr/bin/env bash
# Creates .venv-test/ (pyenv's CPython 3.11.7) with scripts/test-requirements.txt installed,
# and installs Debian's chromium (the browser tests/test_html.py opens the HTML report in)
# when it is missing; a re-run is a no-op (scripts/venv.sh; an installed package is not
# touched again).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/venv.sh

if ! dpkg -s chromium >/dev/null 2>&1; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "test-env: chromium is missing and this is not root: install it with apt-get (tests/test_html.py needs it)" >&2
        exit 1
    fi
    echo "test-env: apt-get install chromium"
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium >/dev/null
fi

make_venv test-env .venv-test scripts/test-requirements.txt
