# Entry points: `make demo` and `make test` on a fresh machine (see README.md).
SHELL := /bin/bash
VENV_PY := .venv-test/bin/python
# Two workers: at most two profiled processes at once on a 2-core machine.  loadgroup keeps
# the tests that share one profiled run (tests/harness.py: cases) on one worker.
PYTEST_FLAGS ?= -n 2 --dist loadgroup
# How long `make test` fuzzes the trace reader (scripts/fuzz.sh; docs/RELIABILITY.md).
FUZZ_SECONDS ?= 45

.PHONY: build test venv demo bench bench-quick bench-env stress fmt lint clean

build:
	cargo build --release

venv:
	scripts/test-env.sh

# Each layer runs even when an earlier one fails, so that one run shows every failure.
test: build venv
	fail=0; \
	$(MAKE) --no-print-directory lint || fail=1; \
	cargo nextest run --workspace --release --no-tests=warn --no-fail-fast || fail=1; \
	if [ -f tests/probe/check_offsets.sh ]; then bash tests/probe/check_offsets.sh || fail=1; fi; \
	$(VENV_PY) -m pytest $(PYTEST_FLAGS) tests || fail=1; \
	scripts/fuzz.sh $(FUZZ_SECONDS) || fail=1; \
	exit $$fail

demo: build
	target/release/rprof run -- python3 tests/workloads/demo.py

# rprof beside scalene, memray, py-spy, austin, pyinstrument, cProfile, heaptrack and
# gperftools on the same workloads; writes BENCHMARKS.md and docs/bench-overhead.svg.
# Never fails on timing. bench-quick: one pair per workload and profiler, a smaller trace.
bench-env:
	scripts/bench-env.sh

bench: build bench-env
	python3 scripts/bench.py

bench-quick: build bench-env
	BENCH_QUICK=1 python3 scripts/bench.py

# The long soak of the reliability scenarios (docs/RELIABILITY.md); STRESS_SECONDS sets
# its length (default 600). Prints iterations, crashes, hangs and records lost.
stress: build venv
	$(VENV_PY) scripts/stress.py $${STRESS_SECONDS:-600}

fmt:
	cargo fmt --all

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --release -- -D warnings

clean:
	cargo clean
	rm -rf .venv-test .venv-bench
