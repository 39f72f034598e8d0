#!/usr/bin/env bash
# CPython probe checks, for each interpreter on this machine (both must be present):
#  1. check_offsets.c: shim/src/python/rprof_probe.h's table row vs offsetof/sizeof of the real
#     headers (-DPy_BUILD_CORE, internal headers);
#  2. walk_check.py: the probe (probe.c + the header + walk_test.c, one .so loaded with
#     ctypes) walks the interpreter's own stack; every frame is compared with
#     sys._getframe(); plus a native thread, fault-guard checks, timing, a SIGPROF stress run;
#  3. the same .so LD_PRELOADed: detect and walk from a constructor, before Python starts.
# Exits non-zero on any failure. Override the interpreters with RPROF_TEST_PYTHONS="a b".
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
build="$root/tests/build/probe"
mkdir -p "$build"
# The two 3.11 builds are required; the other versions pyenv has here are checked too.
default=(python3 /usr/bin/python3.11)
for v in 3.12.1 3.13.0; do
    [ -x "$HOME/.pyenv/versions/$v/bin/python3" ] && default+=("$HOME/.pyenv/versions/$v/bin/python3")
done
pythons=(${RPROF_TEST_PYTHONS:-${default[@]}})
status=0

for py in "${pythons[@]}"; do
    if ! command -v "$py" >/dev/null; then
        echo "FAIL: interpreter $py not found"
        status=1
        continue
    fi
    read -r version inc < <("$py" -c 'import sys, sysconfig; print("%d.%d.%d" % sys.version_info[:3], sysconfig.get_paths()["include"])')
    tag="$(echo "$py" | tr '/' '_')-$version"
    echo "== $py ($version)"
    if [ ! -f "$inc/internal/pycore_runtime.h" ]; then
        echo "FAIL: no internal headers under $inc"
        status=1
        continue
    fi

    gcc -std=gnu11 -Wall -Wextra -Werror -I"$inc" -I"$root/shim/src/python" \
        "$root/tests/probe/check_offsets.c" -o "$build/check_offsets-$tag"
    "$build/check_offsets-$tag" || status=1

    so="$build/walk_test-$tag.so"
    gcc -std=gnu11 -O2 -Wall -Wextra -Werror -fPIC -shared -ftls-model=initial-exec \
        -fno-strict-aliasing -I"$root/shim/src/python" \
        "$root/shim/src/python/probe.c" "$root/tests/probe/walk_test.c" -o "$so" -lpthread
    "$py" "$root/tests/probe/walk_check.py" "$so" || status=1

    hex="$("$py" -c 'import sys; print(hex(sys.hexversion))')"
    ctor="$(WT_CTOR=1 LD_PRELOAD="$so" "$py" -c pass 2>&1)"
    if [[ "$ctor" == *"wt-ctor rc=0 version=$hex frames=0 truncated=0"* ]]; then
        echo "constructor: detected $hex before Python started, 0 frames"
    else
        echo "FAIL: constructor check: $ctor"
        status=1
    fi
done
exit $status
