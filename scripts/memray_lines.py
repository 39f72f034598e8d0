"""Per-line memory of a memray capture, for scripts/bench.py; runs with .venv-bench's
python, which has memray.  Each allocation record goes to the innermost frame of its
Python stack that is in the workload file (records with none are left out):

  peak       bytes live at the run's high-water mark (memray's own peak view);
  allocated  bytes of every allocating record over the run (malloc, calloc, mmap, ...;
             a realloc at its new size), freed or not;
  unfreed    bytes never freed before the tracker stopped (memray's `--leaks` view).

    memray_lines.py CAPTURE WORKLOAD    prints {"peak": {line: bytes}, "allocated": ..., "unfreed": ...}
"""
import json
import os
import sys
from collections import Counter

import memray
from memray import AllocatorType

DEALLOCATORS = {AllocatorType.FREE, AllocatorType.MUNMAP, AllocatorType.PYMALLOC_FREE}


def main(capture, workload):
    real = os.path.realpath(workload)
    line_of_stack = {}

    def line_of(rec):
        # The Python stack a stack_id names is the same for all its records: look it up once.
        if rec.stack_id not in line_of_stack:
            line_of_stack[rec.stack_id] = next(
                (no for _, file, no in rec.stack_trace() if os.path.realpath(file) == real), None)
        return line_of_stack[rec.stack_id]

    def per_line(records):
        out = Counter()
        for rec in records:
            if (no := line_of(rec)) is not None:
                out[no] += rec.size
        return out

    with memray.FileReader(capture) as reader:
        json.dump({
            "peak": per_line(reader.get_high_watermark_allocation_records(merge_threads=True)),
            "allocated": per_line(r for r in reader.get_allocation_records() if r.allocator not in DEALLOCATORS),
            "unfreed": per_line(reader.get_leaked_allocation_records(merge_threads=True)),
        }, sys.stdout)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__.split("\n\n")[-1])
    main(*sys.argv[1:])
