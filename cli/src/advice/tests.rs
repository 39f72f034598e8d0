//! The rules on source snippets: each slow shape found, with the right rule on the right
//! line; fast shapes, and slow ones on cold lines, not.

use super::*;

/// Every line of `src` as costly as can be, or the given lines only.
fn costs(src: &str, hot: Option<&[u32]>) -> Vec<LineCost> {
    let n = src.lines().count() as u32;
    (1..=n)
        .map(|line| {
            let on = hot.is_none_or(|h| h.contains(&line));
            LineCost {
                line,
                cpu_percent: if on { 10.0 } else { 0.5 },
                native_percent: 0.0,
                alloc_bytes: if on { 50 << 20 } else { 0 },
                alloc_percent: if on { 10.0 } else { 0.1 },
                allocs: if on { 1_000_000 } else { 10 },
            }
        })
        .collect()
}

fn advise_on(src: &str, hot: Option<&[u32]>) -> Vec<(u32, &'static str)> {
    let lines = costs(src, hot);
    let input = FileCosts {
        path: "t.py",
        source: src,
        lines: &lines,
        functions: &[],
        memory: true,
    };
    advise(&input, &Thresholds::default())
        .unwrap()
        .iter()
        .map(|h| (h.line, h.rule.id()))
        .collect()
}

fn hints(src: &str) -> Vec<(u32, &'static str)> {
    advise_on(src, None)
}

#[test]
fn str_concat_where_cpython_copies() {
    let src = "\
class B:
    def __init__(self):
        self.text = ''
def attr(n):
    b = B()
    for i in range(n):
        b.text += str(i)
def item(d, n):
    for i in range(n):
        d['k'] += f'{i}'
def prepend(n):
    s = ''
    for i in range(n):
        s = str(i) + s
def three(n, x):
    s = ''
    for i in range(n):
        s = s + x + ','
def fstring(n):
    s = ''
    while n:
        s = f'{s}{n},'
        n -= 1
def raw(n):
    buf = b''
    for i in range(n):
        buf += b'xy'
s = ''
for i in range(10):
    s += 'x'
";
    assert_eq!(
        hints(src),
        [
            (7, "str-concat-loop"),
            (10, "str-concat-loop"),
            (14, "str-concat-loop"),
            (18, "str-concat-loop"),
            (22, "str-concat-loop"),
            (27, "str-concat-loop"),
            (30, "str-concat-loop"),
        ]
    );
}

#[test]
fn str_concat_fast_paths_and_joins_are_left_alone() {
    let src = "\
def local(n):
    s = ''
    for i in range(n):
        s += str(i)
        s = s + ','
        s += str(i) + ','
def joined(n):
    return ''.join(str(i) for i in range(n))
def numbers(xs):
    t = 0
    for x in xs:
        t = t + x + 1
def once(a, b):
    a.text += str(b)
";
    assert_eq!(hints(src), []);
}

#[test]
fn list_membership_in_loops_and_comprehensions() {
    let src = "\
HAY = list(range(100))
def f(xs, seen: list):
    found = []
    hits = [x for x in xs if x in HAY]
    for x in xs:
        if x not in seen:
            found.append(x)
    while xs and xs[-1] in [a * 2 for a in xs]:
        xs = xs[:-1]
    return found
def g(xs):
    ok = set(HAY)
    return [x for x in xs if x in ok], 3 in HAY
";
    assert_eq!(
        hints(src),
        [
            (4, "list-membership"),
            // It only appends, under a filter, to another list: a comprehension too.
            (5, "append-loop"),
            (6, "list-membership"),
            (8, "list-membership")
        ]
    );
}

#[test]
fn list_front_forms() {
    let src = "\
from collections import deque
def f(n, queue):
    out, d = [], deque()
    for i in range(n):
        out.insert(0, i)
    while queue:
        item = queue.pop(0)
    for i in range(n):
        del out[0]
        out[:0] = [i]
        out = [i] + out
    d = deque()
    for i in range(n):
        d.appendleft(i)
        out.pop()
        out.insert(1, i)
    counts = {}
    for i in range(n):
        counts.pop(0)
";
    assert_eq!(
        hints(src),
        [
            (5, "list-front"),
            (7, "list-front"),
            (9, "list-front"),
            (10, "list-front"),
            (11, "list-front"),
        ]
    );
}

#[test]
fn manual_count_forms() {
    let src = "\
from collections import Counter, defaultdict
def a(words):
    c = {}
    for w in words:
        if w in c:
            c[w] += 1
        else:
            c[w] = 1
def b(words):
    c = {}
    for w in words:
        c[w] = c.get(w, 0) + 1
def d(words):
    c = {}
    for w in words:
        if w not in c:
            c[w] = 0
        c[w] += 1
def e(words):
    c = {}
    for w in words:
        try:
            c[w] += 1
        except KeyError:
            c[w] = 1
def fast(words):
    c = defaultdict(int)
    for w in words:
        c[w] += 1
    k = Counter()
    for w in words:
        if w in k:
            k[w] += 1
        else:
            k[w] = 1
    return Counter(words)
";
    let got = hints(src);
    // Each on its costliest line: all lines cost the same, so the first of the pattern.
    assert_eq!(
        got,
        [
            (4, "manual-count"),
            (11, "manual-count"),
            (15, "manual-count"),
            (21, "manual-count")
        ]
    );
}

#[test]
fn manual_sum_forms() {
    let src = "\
def a(xs):
    total = 0
    for x in xs:
        total += x
def b(xs):
    total = 0
    for x in xs:
        if x > 0:
            total = total + x * x
def c(rows):
    t = 0.0
    for i in range(len(rows)):
        t += rows[i]
def not_sums(xs, reps):
    total = 0
    for _ in range(reps):
        total += sum(xs)
    n = 0
    for x in xs:
        n += 1
    s = ''
    for x in xs:
        s += x
    out = []
    for x in xs:
        out += [x, x]
    for x in xs:
        total += x
        print(x)
";
    assert_eq!(
        hints(src),
        [(3, "manual-sum"), (7, "manual-sum"), (12, "manual-sum")]
    );
}

#[test]
fn append_loop_forms() {
    let src = "\
def a(n):
    out = []
    for i in range(n):
        out.append(i)
def b(xs):
    out = []
    for x in xs:
        if x % 2:
            out.append(x * x)
def c(rows):
    flat = []
    for row in rows:
        for x in row:
            flat.append(x)
def d(xs):
    out = []
    for x in xs:
        out += [str(x)]
def not_these(xs, q):
    out = []
    for x in xs:
        out.append(x)
        print(x)
    for x in xs:
        q.append(x)
    for x in xs:
        out.append(out[-1] + x)
    for x in xs:
        if x not in out:
            out.append(x)
    return [x for x in xs]
";
    assert_eq!(
        hints(src),
        [
            (3, "append-loop"),
            (7, "append-loop"),
            (12, "append-loop"),
            (17, "append-loop"),
            // The dedupe is no comprehension, but scans the list.
            (29, "list-membership")
        ]
    );
}

#[test]
fn no_slots_on_instantiation_in_loops() {
    let src = "\
from dataclasses import dataclass
class P:
    def __init__(self, x):
        self.x = x
class Q(P):
    pass
class S:
    __slots__ = ('x',)
@dataclass
class D:
    x: int
@dataclass(slots=True)
class DS:
    x: int
class E(Exception):
    pass
def f(n):
    a = [P(i) for i in range(n)]
    for i in range(n):
        a.append(Q(i))
        a.append(S(i))
        a.append(D(i))
        a.append(DS(i))
        a.append(E(i))
    return P(0)
";
    assert_eq!(
        hints(src),
        [(18, "no-slots"), (20, "no-slots"), (22, "no-slots")]
    );
}

#[test]
fn no_slots_needs_many_allocations_and_memory_figures() {
    let src = "\
class P:
    def __init__(self, x):
        self.x = x
pts = [P(i) for i in range(10)]
";
    let run = |allocs: u64, memory: bool| {
        let mut lines = costs(src, None);
        lines[3].allocs = allocs;
        let input = FileCosts {
            path: "t.py",
            source: src,
            lines: &lines,
            functions: &[],
            memory,
        };
        advise(&input, &Thresholds::default()).unwrap()
    };
    assert!(run(1_000_000, false).is_empty());
    assert!(run(99_000, true).is_empty());
    let h = run(450_000, true);
    assert_eq!(h.len(), 1);
    assert!(
        h[0].example.contains("__slots__ = (\"x\",)"),
        "{}",
        h[0].example
    );
    assert!(h[0].message.contains("450,000"), "{}", h[0].message);
}

#[test]
fn repeated_calls_of_pure_functions() {
    let src = "\
from functools import lru_cache
import random
def fib(n):
    if n < 2:
        return n
    return fib(n - 1) + fib(n - 2)
def ways(n, coins):
    if n == 0:
        return 1
    return sum(ways(n - c, coins) for c in coins if c <= n)
def cost(k):
    return sum(i * i for i in range(k))
def work(n, k):
    t = 0
    for i in range(n):
        t += cost(k)
        t += cost(i % 8)
        t += cost(i)
    return t
@lru_cache(maxsize=None)
def cached_fib(n):
    return n if n < 2 else cached_fib(n - 1) + cached_fib(n - 2)
def noisy(n):
    print(n)
    return n if n < 2 else noisy(n - 1) + noisy(n - 2)
def rnd(n):
    return n if n < 2 else rnd(n - 1) + rnd(n - 2) + random.random()
def loops(n):
    for i in range(n):
        noisy(3)
        cached_fib(3)
";
    let got = advise_on(src, Some(&[6, 10, 16, 17, 18, 22, 25, 27, 30, 31]));
    assert_eq!(
        got,
        [
            (6, "repeated-call"),
            (10, "repeated-call"),
            (16, "repeated-call"),
            (17, "repeated-call")
        ]
    );
}

#[test]
fn cold_lines_get_no_hint() {
    let src = "\
def f(words, hay):
    c = {}
    s = ''
    for w in words:
        if w in hay:
            s = w + s
        c[w] = c.get(w, 0) + 1
    listed = list(hay)
    for w in words:
        if w in listed:
            pass
";
    assert_eq!(advise_on(src, Some(&[2, 3, 8])), []);
    assert_eq!(advise_on(src, Some(&[10])), [(10, "list-membership")]);
}

#[test]
fn a_hint_carries_its_cost_and_an_estimate() {
    let src = "\
def f(xs):
    total = 0
    for x in xs:
        total += x
";
    let mut lines = costs(src, Some(&[4]));
    lines[3].cpu_percent = 8.0;
    lines[3].native_percent = 1.0;
    lines[3].alloc_bytes = 3 << 20;
    let input = FileCosts {
        path: "t.py",
        source: src,
        lines: &lines,
        functions: &[],
        memory: true,
    };
    let h = &advise(&input, &Thresholds::default()).unwrap()[0];
    assert_eq!(
        (h.line, h.rule, h.function.as_str()),
        (4, Rule::ManualSum, "f")
    );
    // The loop's lines together: 0.5 + 8.0.
    assert_eq!((h.cpu_percent, h.alloc_mb, h.lines), (8.5, 3.0, (3, 4)));
    assert_eq!(h.example, "total += sum(xs)");
    let saving = h.saving.as_deref().unwrap();
    assert!(
        saving.starts_with("estimated saving 2.5-6.4% of all CPU"),
        "{saving}"
    );
}

#[test]
fn source_that_does_not_parse_is_an_error() {
    let src = "print 'python 2'\n";
    let lines = costs(src, None);
    let input = FileCosts {
        path: "t.py",
        source: src,
        lines: &lines,
        functions: &[],
        memory: false,
    };
    assert!(advise(&input, &Thresholds::default()).is_err());
}

#[test]
fn rule_ids_are_stable() {
    let ids: Vec<&str> = Rule::ALL.iter().map(|r| r.id()).collect();
    assert_eq!(
        ids,
        [
            "str-concat-loop",
            "list-membership",
            "list-front",
            "manual-count",
            "manual-sum",
            "append-loop",
            "no-slots",
            "repeated-call"
        ]
    );
}

#[test]
fn a_repeated_call_costs_what_its_callee_and_caller_do() {
    let src = "\
def weight(k):
    return sum(range(k))
def caller(n, k):
    t = 0
    for i in range(n):
        t ^= weight(k)
    return t
def cold(n, k):
    for i in range(n):
        weight(k)
";
    // The call lines have no sample: the time is on the callee's line.
    let lines = [LineCost {
        line: 2,
        cpu_percent: 30.0,
        ..LineCost::default()
    }];
    let functions = [
        FunctionCost {
            name: "weight".into(),
            first_line: 1,
            total_percent: 30.0,
        },
        FunctionCost {
            name: "caller".into(),
            first_line: 3,
            total_percent: 29.5,
        },
        FunctionCost {
            name: "cold".into(),
            first_line: 8,
            total_percent: 0.5,
        },
    ];
    let input = FileCosts {
        path: "t.py",
        source: src,
        lines: &lines,
        functions: &functions,
        memory: false,
    };
    let h = advise(&input, &Thresholds::default()).unwrap();
    let got: Vec<(u32, Rule, f64)> = h.iter().map(|h| (h.line, h.rule, h.cpu_percent)).collect();
    assert_eq!(got, [(6, Rule::RepeatedCall, 29.5)]);
    assert!(
        h[0].message
            .contains("`weight` takes 30.0% of the CPU in all"),
        "{}",
        h[0].message
    );
}

/// tests/workloads/advice_shapes.py with every line hot: each slow shape is found with
/// its rule, and no fast twin matches any rule, whatever its cost (the profiled test in
/// tests/test_advice.py checks the same under real costs).
#[test]
fn the_workloads_fast_twins_match_no_rule_at_any_cost() {
    use ruff_python_ast::{Expr, Stmt};
    let src = include_str!("../../../tests/workloads/advice_shapes.py");
    let module = ruff_python_parser::parse_module(src).unwrap().into_syntax();
    let parsed = source::Source::parse(src).unwrap();
    let text = |e: &Expr| match e {
        Expr::StringLiteral(s) => s.value.to_str().to_string(),
        _ => panic!("not a string: {e:?}"),
    };
    let (mut slow, mut fast) = (Vec::new(), Vec::new());
    let mut spans = HashMap::new();
    for s in &module.body {
        match s {
            Stmt::Assign(a) => match (&a.targets[0], &*a.value) {
                (Expr::Name(n), Expr::Dict(d)) if n.id.as_str() == "SLOW" => {
                    for item in &d.items {
                        slow.push((text(item.key.as_ref().unwrap()), text(&item.value)));
                    }
                }
                (Expr::Name(n), Expr::List(l)) if n.id.as_str() == "FAST" => {
                    fast.extend(l.elts.iter().map(text));
                }
                _ => {}
            },
            Stmt::FunctionDef(f) => {
                spans.insert(f.name.to_string(), parsed.lines(f));
            }
            Stmt::ClassDef(c) => {
                for m in &c.body {
                    if let Stmt::FunctionDef(f) = m {
                        spans.insert(format!("{}.{}", c.name, f.name), parsed.lines(f));
                    }
                }
            }
            _ => {}
        }
    }
    assert_eq!((slow.len(), fast.len()), (17, 17));
    let found = hints(src);
    let inside = |name: &str| {
        let (a, b) = spans[name];
        found
            .iter()
            .filter(move |&&(l, _)| a <= l && l <= b)
            .map(|&(_, r)| r)
    };
    for (name, rule) in &slow {
        assert!(
            inside(name).any(|r| r == rule),
            "{name}: {:?}, want {rule}",
            inside(name).collect::<Vec<_>>()
        );
    }
    for name in &fast {
        assert_eq!(
            inside(name).collect::<Vec<_>>(),
            Vec::<&str>::new(),
            "{name}"
        );
    }
    // The cold patterns are slow patterns: only their cost keeps them unhinted.
    let mut cold: Vec<&str> = inside("cold_patterns").collect();
    cold.sort_unstable();
    cold.dedup();
    assert_eq!(
        cold,
        [
            "append-loop",
            "list-front",
            "list-membership",
            "manual-count",
            "manual-sum",
            "no-slots",
            "repeated-call",
            "str-concat-loop"
        ]
    );
}
