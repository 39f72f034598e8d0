#!/usr/bin/env bash
# Creates .venv-test/ (pyenv's CPython 3.11.7) with scripts/test-requirements.txt installed;
# a re-run is a no-op (scripts/venv.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/venv.sh

make_venv test-env .venv-test scripts/test-requirements.txt
