#!/usr/bin/env bash
# Creates .venv-test/ (pyenv's CPython 3.11.7) with scripts/test-requirements.txt installed.
# Idempotent: a stamp keyed on the requirements, the interpreter and this script makes a
# re-run a no-op; a changed key or an interrupted install rebuilds the venv from scratch.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv-test
req=scripts/test-requirements.txt
py=${RPROF_VENV_PYTHON:-${PYENV_ROOT:-$HOME/.pyenv}/versions/3.11.7/bin/python3}
[ -x "$py" ] || { echo "test-env: $py not found (install CPython 3.11.7 with pyenv, or set RPROF_VENV_PYTHON)" >&2; exit 1; }

key=$(cat "$req" "$0" <(echo "$py") | sha256sum | cut -d' ' -f1)
stamp=$venv/.rprof-stamp
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$key" ]; then
    exit 0
fi

echo "test-env: creating $venv from $py"
rm -rf "$venv"
"$py" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --no-input -r "$req"
echo "$key" >"$stamp"
