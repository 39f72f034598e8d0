//! A finding and its line's cost made into a hint: the sentence, the fix, and what the
//! technique typically saves, said as an estimate.

use super::rules::Finding;
use super::{FileCosts, Hint, LineCost, Rule};

const MIB: f64 = (1u64 << 20) as f64;

/// What each technique typically saves of the slow line's time, as a range of fractions,
/// and what the figure rests on. Measured on CPython 3.11 (the seed_techniques pairs,
/// and the rule's own shapes in tests/workloads/advice_shapes.py); gains grow with the
/// size of the data for the quadratic patterns.
fn typical_saving(rule: Rule) -> Option<(f64, f64, &'static str)> {
    Some(match rule {
        Rule::StrConcatLoop => (0.8, 0.99, "join is linear, the loop quadratic"),
        Rule::ListMembership => (0.8, 0.99, "a set lookup does not grow with the list"),
        Rule::ListFront => (0.8, 0.99, "deque's ends do not move the other elements"),
        Rule::ManualCount => (0.3, 0.5, "Counter counts in C"),
        Rule::ManualSum => (0.3, 0.75, "sum() adds in C"),
        Rule::AppendLoop => (0.2, 0.35, "no method lookup and call per item"),
        Rule::NoSlots => (0.2, 0.3, "and 40-60% of each instance's memory too"),
        // It depends on how often the arguments repeat: unknown.
        Rule::RepeatedCall => return None,
    })
}

fn sentence(f: &Finding, cost: &LineCost) -> String {
    let s = &f.subject;
    match f.rule {
        Rule::StrConcatLoop => format!(
            "`{s}` grows by concatenation in a loop, and CPython copies the whole of it each \
             time here (its in-place fast path applies only to a plain local str), so build a \
             list of pieces and join it once."
        ),
        Rule::ListMembership => format!(
            "`in {s}` scans the list element by element on every pass of the loop; a set \
             built once before the loop answers in constant time."
        ),
        Rule::ListFront => format!(
            "inserting at or removing from the front of `{s}` moves every other element each \
             time; a collections.deque does it in constant time at either end."
        ),
        Rule::ManualCount => format!(
            "`{s}` is counted into by hand, a lookup and a store in Python per item; \
             collections.Counter (or defaultdict(int)) does the counting in C."
        ),
        Rule::ManualSum => format!(
            "this loop only adds up into `{s}`; sum() over the iterable (or a generator) does \
             the loop in C."
        ),
        Rule::AppendLoop => format!(
            "this loop only appends to `{s}`; a list comprehension builds the list without a \
             method lookup and call per item."
        ),
        Rule::NoSlots => format!(
            "`{s}` is instantiated here in a loop (~{} allocations on this line) and, without \
             __slots__, each instance keeps its attributes in a per-instance dict; __slots__ \
             stores them in fixed fields, with less memory and faster attribute access.",
            thousands(cost.allocs)
        ),
        Rule::RepeatedCall => format!(
            "`{s}` has no side effect the source shows and is called again and again with \
             the same arguments; functools.lru_cache computes each distinct call once."
        ),
    }
}

/// 1234567 as "1,234,567".
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub fn render(input: &FileCosts, f: &Finding, cost: &LineCost) -> Hint {
    let saving = typical_saving(f.rule).map(|(lo, hi, why)| {
        format!(
            "estimated saving {:.1}-{:.1}% of all CPU ({:.0}-{:.0}% of this code's: {why})",
            cost.cpu_percent * lo,
            cost.cpu_percent * hi,
            lo * 100.0,
            hi * 100.0
        )
    });
    let mut message = sentence(f, cost);
    if let Some((_, callee)) = f.call {
        message.push_str(&format!(
            " `{}` takes {:.1}% of the CPU in all (from every caller; this line's figure is \
             at most that, and at most what the function the call is in takes with its \
             callees).",
            f.subject,
            super::function_share(input.functions, Some(callee)),
        ));
    }
    Hint {
        file: input.path.to_string(),
        line: cost.line,
        lines: f
            .spans
            .iter()
            .fold((u32::MAX, 0), |(lo, hi), &(s, e)| (lo.min(s), hi.max(e))),
        function: f.function.clone(),
        rule: f.rule,
        message,
        example: f.example.clone(),
        saving,
        cpu_percent: cost.cpu_percent,
        native_percent: cost.native_percent,
        alloc_mb: cost.alloc_bytes as f64 / MIB,
    }
}

#[cfg(test)]
mod tests {
    use super::thousands;

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
    }
}
