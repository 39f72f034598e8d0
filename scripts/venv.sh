# Sourced by test-env.sh and bench-env.sh: `make_venv NAME DIR REQUIREMENTS` creates DIR, a
# venv of pyenv's CPython 3.11.7 (or $RPROF_VENV_PYTHON) with REQUIREMENTS installed.
# Idempotent: a stamp keyed on the requirements, the interpreter and this file makes a
# re-run a no-op; a changed key or an interrupted install rebuilds the venv from scratch.

venv_python() {
    local py=${RPROF_VENV_PYTHON:-${PYENV_ROOT:-$HOME/.pyenv}/versions/3.11.7/bin/python3}
    [ -x "$py" ] || { echo "$1: $py not found (install CPython 3.11.7 with pyenv, or set RPROF_VENV_PYTHON)" >&2; return 1; }
    echo "$py"
}

make_venv() {
    local name=$1 venv=$2 req=$3 py key stamp
    py=$(venv_python "$name") || return 1
    key=$(cat "$req" "${BASH_SOURCE[0]}" <(echo "$py") | sha256sum | cut -d' ' -f1)
    stamp=$venv/.rprof-stamp
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$key" ]; then
        return 0
    fi
    echo "$name: creating $venv from $py"
    rm -rf "$venv"
    "$py" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --no-input -r "$req"
    echo "$key" >"$stamp"
}
