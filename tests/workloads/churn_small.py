#!/usr/bin/env python3
# churn_small.py -- rprof test workload: one line churning small (pymalloc-sized) objects in
# a steady loop, as a service's request temporaries do: each call's bytes object is freed
# as the next call's is made. ~0.3 s unprofiled, single thread. bytes has no free list
# (tuples, lists, floats and dicts do: reused objects cost no allocation, and a
# measure of one call would depend on what the free lists held), and a call allocates
# nothing else, so every call allocates the same. After the loop it measures one call's
# allocation with tracemalloc (by requested size, as tests/memory_truth.py's workloads
# do) and prints
#   `churn line=N calls=C bytes_per_call=B`
# so that a profiled run carries its own truth.
import sys

CALLS = 2_000_000
SIZE = 200


def make():
    return bytes(SIZE)                                        # CHURN


def main():
    tmp = None
    for _ in range(CALLS):
        tmp = make()
    import tracemalloc
    from _check import marker_line
    tracemalloc.start()
    t0 = tracemalloc.get_traced_memory()[0]
    one = make()
    per_call = tracemalloc.get_traced_memory()[0] - t0
    tracemalloc.stop()
    assert tmp is not None and one is not None
    print(f"churn line={marker_line(__file__, 'CHURN')} calls={CALLS} bytes_per_call={per_call}")


if __name__ == "__main__":
    sys.exit(main())
