#!/usr/bin/env python3
# advice_shapes.py -- rprof's own workload for the advice rules (docs/ADVICE.md).
#
# Each rule's slow pattern in two shapes other than seed_techniques.py's (repeated-call,
# which the seed lacks, in three), each followed by its fast twin, and slow patterns run
# on little data (cold lines). Under the profiler every slow_* function gets a hint with
# the rule SLOW names for it (SLOW and FAST name the function, or method, holding the
# pattern); no other function, fast twin or cold, gets any hint.
# tests/test_advice.py reads SLOW, FAST and COLD from this file.
import sys
import time
from collections import Counter, defaultdict, deque
from dataclasses import dataclass
from functools import lru_cache

SLOW = {
    "slow_concat_prepend": "str-concat-loop",
    "slow_concat_item": "str-concat-loop",
    "slow_member_dedupe": "list-membership",
    "Filter.slow": "list-membership",
    "slow_front_pop": "list-front",
    "slow_front_del": "list-front",
    "slow_count_get": "manual-count",
    "slow_count_try": "manual-count",
    "slow_sum_squares": "manual-sum",
    "slow_sum_index": "manual-sum",
    "slow_append_filtered": "append-loop",
    "slow_append_nested": "append-loop",
    "slow_objects_while": "no-slots",
    "slow_objects_dictcomp": "no-slots",
    "fib": "repeated-call",
    "slow_invariant_call": "repeated-call",
    "slow_few_arguments": "repeated-call",
}
FAST = [
    "fast_concat_prepend", "fast_concat_item", "fast_member_dedupe", "Filter.fast",
    "fast_front_pop", "fast_front_del", "fast_count_get", "fast_count_try", "fast_sum_squares",
    "fast_sum_index", "fast_append_filtered", "fast_append_nested", "fast_objects_while",
    "fast_objects_dictcomp", "fib_cached", "fast_invariant_call", "fast_few_arguments",
]
COLD = ["cold_patterns"]

WORDS = [f"w{(i * 7919) % 3000}" for i in range(120_000)]


def slow_concat_prepend(n):
    s = ""
    for i in range(n):
        s = str(i % 10) + s          # a prepend copies the whole string
    return len(s)


def fast_concat_prepend(n):
    return len("".join(str(i % 10) for i in reversed(range(n))))


def slow_concat_item(n):
    d = {"log": ""}
    for i in range(n):
        d["log"] += str(i % 10)      # an item target: no in-place fast path
    return len(d["log"])


def fast_concat_item(n):
    d = {"log": "".join(str(i % 10) for i in range(n))}
    return len(d["log"])


def slow_member_dedupe(items):
    seen = []
    for x in items:
        if x not in seen:
            seen.append(x)
    return len(seen)


def fast_member_dedupe(items):
    return len(dict.fromkeys(items))


class Filter:
    def __init__(self, allowed):
        self.allowed = list(allowed)
        self.allowed_set = set(allowed)

    def slow(self, xs):
        return sum(1 for x in xs if x in self.allowed)

    def fast(self, xs):
        return sum(1 for x in xs if x in self.allowed_set)


def slow_member_attribute(xs):
    return Filter(range(0, 1200, 2)).slow(xs)


def fast_member_attribute(xs):
    return Filter(range(0, 1200, 2)).fast(xs)


def slow_front_pop(n):
    queue = list(range(n))
    total = 0
    while queue:
        total ^= queue.pop(0)
    return total


def fast_front_pop(n):
    queue = deque(range(n))
    total = 0
    while queue:
        total ^= queue.popleft()
    return total


def slow_front_del(n, width):
    window = list(range(width))
    for i in range(n):
        window.append(i)
        del window[0]
    return window[0]


def fast_front_del(n, width):
    window = deque(range(width), maxlen=width)
    for i in range(n):
        window.append(i)
    return window[0]


def slow_count_get(words, reps):
    for _ in range(reps):
        counts = {}
        for w in words:
            counts[w] = counts.get(w, 0) + 1
    return len(counts)


def fast_count_get(words, reps):
    for _ in range(reps):
        counts = Counter(words)
    return len(counts)


def slow_count_try(words, reps):
    for _ in range(reps):
        counts = {}
        for w in words:
            try:
                counts[w] += 1
            except KeyError:
                counts[w] = 1
    return len(counts)


def fast_count_try(words, reps):
    for _ in range(reps):
        counts = defaultdict(int)
        for w in words:
            counts[w] += 1
    return len(counts)


def slow_sum_squares(xs, reps):
    total = 0
    for _ in range(reps):
        for x in xs:
            total += x * x
    return total


def fast_sum_squares(xs, reps):
    return sum(sum(map(int.__mul__, xs, xs)) for _ in range(reps))


def slow_sum_index(xs, reps):
    total = 0
    for _ in range(reps):
        for i in range(len(xs)):
            total = total + xs[i]
    return total


def fast_sum_index(xs, reps):
    return sum(sum(xs) for _ in range(reps))


def slow_append_filtered(xs, reps):
    for _ in range(reps):
        out = []
        for x in xs:
            if x % 3:
                out.append(x + 1)
    return len(out)


def fast_append_filtered(xs, reps):
    for _ in range(reps):
        out = [x + 1 for x in xs if x % 3]
    return len(out)


def slow_append_nested(rows, reps):
    for _ in range(reps):
        flat = []
        for row in rows:
            for x in row:
                flat.append(x)
    return len(flat)


def fast_append_nested(rows, reps):
    for _ in range(reps):
        flat = [x for row in rows for x in row]
    return len(flat)


@dataclass
class Item:
    key: int
    weight: int


@dataclass(slots=True)
class SlotItem:
    key: int
    weight: int


def slow_objects_while(n):
    items, i = [], 0
    while i < n:
        items.append(Item(i, -i))
        i += 1
    return len(items)


def fast_objects_while(n):
    items, i = [], 0
    while i < n:
        items.append(SlotItem(i, -i))
        i += 1
    return len(items)


class Base:
    def __init__(self, a):
        self.a = a


class Leaf(Base):
    def __init__(self, a, b):
        super().__init__(a)
        self.b = b


class SlotLeaf:
    __slots__ = ("a", "b")

    def __init__(self, a, b):
        self.a = a
        self.b = b


def slow_objects_dictcomp(n):
    by_key = {i: Leaf(i, i + 1) for i in range(n)}
    return len(by_key)


def fast_objects_dictcomp(n):
    by_key = {i: SlotLeaf(i, i + 1) for i in range(n)}
    return len(by_key)


def fib(n):
    if n < 2:
        return n
    return fib(n - 1) + fib(n - 2)


@lru_cache(maxsize=None)
def fib_cached(n):
    if n < 2:
        return n
    return fib_cached(n - 1) + fib_cached(n - 2)


def slow_fib(n):
    return fib(n)


def fast_fib(n):
    fib_cached.cache_clear()
    return fib_cached(n)


def digits_weight(k):
    w = 0
    for ch in str(k) * 40:
        w = (w * 31 + ord(ch)) % 1_000_003
    return w


@lru_cache(maxsize=None)
def digits_weight_cached(k):
    return digits_weight(k)


def slow_invariant_call(n, k):
    acc = 0
    for i in range(n):
        acc ^= digits_weight(k) + i
    return acc


def fast_invariant_call(n, k):
    acc, w = 0, digits_weight(k)
    for i in range(n):
        acc ^= w + i
    return acc


def slow_few_arguments(n):
    acc = 0
    for i in range(n):
        acc ^= digits_weight(i % 16)
    return acc


def fast_few_arguments(n):
    acc = 0
    for i in range(n):
        acc ^= digits_weight_cached(i % 16)
    return acc


def cold_patterns():
    """Every slow pattern, on so little data that no line of it costs anything."""
    s, seen, q, counts, total, out = "", [], list(range(8)), {}, 0, []
    box = {"s": ""}
    for i in range(8):
        s = str(i) + s
        box["s"] += str(i)
        if i not in seen:
            seen.append(i)
        q.pop(0)
        counts[i % 3] = counts.get(i % 3, 0) + 1
        total += i * i
        out.append(Item(i, i))
        acc = digits_weight(3)
    for i in range(8):
        out.append(i)
    for i in range(8):
        total += i * i
    return len(s) + len(seen) + len(counts) + total + len(out) + fib(8) + acc


N = 60_000
DATA = list(range(N))
ROWS = [list(range(300)) for _ in range(200)]
TASKS = [
    ("slow_concat_prepend", slow_concat_prepend, (50_000,)), ("fast_concat_prepend", fast_concat_prepend, (50_000,)),
    ("slow_concat_item", slow_concat_item, (50_000,)), ("fast_concat_item", fast_concat_item, (50_000,)),
    ("slow_member_dedupe", slow_member_dedupe, ([i % 700 for i in range(24_000)],)),
    ("fast_member_dedupe", fast_member_dedupe, ([i % 700 for i in range(24_000)],)),
    ("slow_member_attribute", slow_member_attribute, (list(range(11_000)),)),
    ("fast_member_attribute", fast_member_attribute, (list(range(11_000)),)),
    ("slow_front_pop", slow_front_pop, (26_000,)), ("fast_front_pop", fast_front_pop, (26_000,)),
    ("slow_front_del", slow_front_del, (60_000, 9_000)), ("fast_front_del", fast_front_del, (60_000, 9_000)),
    ("slow_count_get", slow_count_get, (WORDS, 7)), ("fast_count_get", fast_count_get, (WORDS, 7)),
    ("slow_count_try", slow_count_try, (WORDS, 8)), ("fast_count_try", fast_count_try, (WORDS, 8)),
    ("slow_sum_squares", slow_sum_squares, (DATA, 18)), ("fast_sum_squares", fast_sum_squares, (DATA, 18)),
    ("slow_sum_index", slow_sum_index, (DATA, 18)), ("fast_sum_index", fast_sum_index, (DATA, 18)),
    ("slow_append_filtered", slow_append_filtered, (DATA, 26)), ("fast_append_filtered", fast_append_filtered, (DATA, 26)),
    ("slow_append_nested", slow_append_nested, (ROWS, 36)), ("fast_append_nested", fast_append_nested, (ROWS, 36)),
    ("slow_objects_while", slow_objects_while, (150_000,)), ("fast_objects_while", fast_objects_while, (150_000,)),
    ("slow_objects_dictcomp", slow_objects_dictcomp, (220_000,)),
    ("fast_objects_dictcomp", fast_objects_dictcomp, (220_000,)),
    ("slow_fib", slow_fib, (28,)), ("fast_fib", fast_fib, (28,)),
    ("slow_invariant_call", slow_invariant_call, (3_500, 12345)), ("fast_invariant_call", fast_invariant_call, (3_500, 12345)),
    ("slow_few_arguments", slow_few_arguments, (12_000,)), ("fast_few_arguments", fast_few_arguments, (12_000,)),
    ("cold_patterns", cold_patterns, ()),
]


# Two parts, each profiled on its own, so that every slow shape has a large share of its
# run (the threshold is a share of all CPU): `--part 1` runs the first half of TASKS,
# `--part 2` the rest; no --part runs all.
PARTS = {"1": TASKS[:18], "2": TASKS[18:]}


def tasks():
    for i, a in enumerate(sys.argv):
        if a == "--part":
            return PARTS[sys.argv[i + 1]] + [("cold_patterns", cold_patterns, ())]
    return TASKS


def main():
    print("advice_shapes", sum(f(*args) for _, f, args in tasks()) % 1_000_003)


def check():
    t = {}
    for name, f, args in tasks():
        t0 = time.perf_counter(); f(*args); t[name] = time.perf_counter() - t0
    tot = sum(t.values())
    print(f"total {tot:.3f}s")
    for name in t:
        print(f"  {name:24s} {100 * t[name] / tot:5.1f}%  ({t[name] * 1000:6.1f} ms)")


if __name__ == "__main__":
    check() if "--check" in sys.argv else main()
