#!/usr/bin/env bash
# scripts/fuzz.sh SECONDS: fuzzes the trace reader (fuzz/fuzz_targets/reader.rs) for SECONDS
# with cargo-fuzz (libFuzzer), on stable Rust: `-s none` builds without a sanitizer, which
# needs no nightly (Rust code is memory-safe without one; the target checks panics, hangs
# and memory). Installs cargo-fuzz first if it is missing. The corpus grows in
# fuzz/corpus/reader (not committed), starting from fuzz/seeds. A crash leaves its input
# in fuzz/artifacts/reader/ and fails the run; see docs/RELIABILITY.md, "Fuzzing".
set -euo pipefail
seconds=${1:?usage: scripts/fuzz.sh SECONDS}
cd "$(dirname "$0")/.."

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz (once)"
    cargo install cargo-fuzz --locked
fi

mkdir -p fuzz/corpus/reader
# -timeout: one input taking 10 s is a hang; -rss_limit_mb: the reader's memory must stay
# small for small inputs; -max_len: room for several chunks.
exec cargo fuzz run reader -s none fuzz/corpus/reader fuzz/seeds -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=1024 -max_len=65536 \
    -print_final_stats=1
