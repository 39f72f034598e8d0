//! Advice on hot lines: the well-known Python speed-ups (`''.join`, sets for membership,
//! `deque`, `Counter`, `sum()`, comprehensions, `__slots__`, `lru_cache`), found by rules
//! over the parsed source ([`rules`]) and given only where the profile shows the line
//! costs something ([`Thresholds`]). Offline and deterministic: the same trace and source
//! give the same hints. docs/ADVICE.md lists the rules and their limits.
//!
//! The engine is self-contained: [`advise`] takes one file's path, source text and
//! per-line costs and returns hints; [`for_profile`] feeds it from a [`Profile`].

mod hint;
mod rules;
mod scope;
mod source;

use crate::model::figures::percent;
use crate::model::Profile;
use crate::source::Sources;
use std::collections::HashMap;

/// The rules, by their stable ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rule {
    StrConcatLoop,
    ListMembership,
    ListFront,
    ManualCount,
    ManualSum,
    AppendLoop,
    NoSlots,
    RepeatedCall,
}

impl Rule {
    pub const ALL: [Rule; 8] = [
        Rule::StrConcatLoop,
        Rule::ListMembership,
        Rule::ListFront,
        Rule::ManualCount,
        Rule::ManualSum,
        Rule::AppendLoop,
        Rule::NoSlots,
        Rule::RepeatedCall,
    ];

    /// The id tools match on; never changes.
    pub fn id(self) -> &'static str {
        match self {
            Rule::StrConcatLoop => "str-concat-loop",
            Rule::ListMembership => "list-membership",
            Rule::ListFront => "list-front",
            Rule::ManualCount => "manual-count",
            Rule::ManualSum => "manual-sum",
            Rule::AppendLoop => "append-loop",
            Rule::NoSlots => "no-slots",
            Rule::RepeatedCall => "repeated-call",
        }
    }
}

/// What the profile measured on one line.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LineCost {
    pub line: u32,
    /// Share of all sampled CPU time, and the part of it that was native code.
    pub cpu_percent: f64,
    pub native_percent: f64,
    /// Estimated bytes allocated, their share of all bytes allocated, and the estimated
    /// number of allocations (0 without memory profiling).
    pub alloc_bytes: u64,
    pub alloc_percent: f64,
    pub allocs: u64,
}

/// A function's measured share, where the profile has it.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionCost {
    pub name: String,
    pub first_line: u32,
    /// Share of CPU with the function anywhere on the stack.
    pub total_percent: f64,
}

/// One file's source and costs, the engine's whole input.
pub struct FileCosts<'a> {
    pub path: &'a str,
    pub source: &'a str,
    pub lines: &'a [LineCost],
    pub functions: &'a [FunctionCost],
    /// Whether memory was profiled (else allocation figures are absent, not zero).
    pub memory: bool,
}

/// Which lines are hot enough for a hint.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    pub cpu_percent: f64,
    pub alloc_percent: f64,
    /// `no-slots` wants a class created hundreds of thousands of times: at least this
    /// many allocations (estimated) on the line.
    pub min_instances: u64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            cpu_percent: 2.0,
            alloc_percent: 5.0,
            min_instances: 100_000,
        }
    }
}

impl Thresholds {
    fn hot(&self, c: &LineCost) -> bool {
        c.cpu_percent >= self.cpu_percent || c.alloc_percent >= self.alloc_percent
    }
}

/// One piece of advice, on one line.
#[derive(Debug, Clone, PartialEq)]
pub struct Hint {
    pub file: String,
    /// The line the hint is on (the pattern's costliest), and the lines its cost is
    /// summed over (a loop's header and body; often just `line`).
    pub line: u32,
    pub lines: (u32, u32),
    pub function: String,
    pub rule: Rule,
    /// One sentence: what is slow and what to do.
    pub message: String,
    /// The fix, as a few lines of Python.
    pub example: String,
    /// What the technique typically saves here, said as an estimate; `None` where its
    /// gain is not known.
    pub saving: Option<String>,
    /// The measured cost of the pattern's lines: share of all CPU, the native part of
    /// it, and MiB allocated.
    pub cpu_percent: f64,
    pub native_percent: f64,
    pub alloc_mb: f64,
}

/// The hints of one file, in line order. A file that does not parse has none, and the
/// error says why.
pub fn advise(input: &FileCosts, t: &Thresholds) -> Result<Vec<Hint>, String> {
    let costs: HashMap<u32, &LineCost> = input.lines.iter().map(|c| (c.line, c)).collect();
    // Nothing to say about a file without a hot line: skip parsing it.
    if !costs.values().any(|c| t.hot(c)) {
        return Ok(Vec::new());
    }
    let src = source::Source::parse(input.source)?;
    let mut findings = rules::findings(input.source, &src);
    drop_nested(&mut findings);
    let mut hints: Vec<Hint> = Vec::new();
    for f in &findings {
        // A call's own line may have no sample at all: its time is the callee's.
        let at = match (costliest(f, &costs), f.call, f.spans.first()) {
            (Some(c), _, _) => c.line,
            (None, Some(_), Some(&(first, _))) => first,
            _ => continue,
        };
        let mut cost = pattern_cost(f, at, &costs);
        // A call's time is on the callee's lines. What it costs here is at most what the
        // callee costs in all and what the calling function costs with its callees.
        if let Some((outer, callee)) = f.call {
            let inclusive = function_share(input.functions, outer)
                .min(function_share(input.functions, Some(callee)));
            cost.cpu_percent = cost.cpu_percent.max(inclusive);
        }
        if !t.hot(&cost) {
            continue;
        }
        // no-slots speaks of the memory of many instances: it needs memory figures.
        if f.rule == Rule::NoSlots && !(input.memory && cost.allocs >= t.min_instances) {
            continue;
        }
        if hints
            .iter()
            .any(|h| h.line == cost.line && h.rule == f.rule)
        {
            continue;
        }
        hints.push(hint::render(input, f, &cost));
    }
    hints.sort_by_key(|h| (h.line, h.rule));
    Ok(hints)
}

/// A finding whose lines all lie inside another's of the same rule (the inner loop of a
/// nest that only appends) says nothing more.
fn drop_nested(findings: &mut Vec<rules::Finding>) {
    let inside = |a: &rules::Finding, b: &rules::Finding| {
        a.rule == b.rule
            && a != b
            && a.spans
                .iter()
                .all(|&(s, e)| b.spans.iter().any(|&(bs, be)| bs <= s && e <= be))
    };
    let keep: Vec<bool> = findings
        .iter()
        .map(|a| !findings.iter().any(|b| inside(a, b)))
        .collect();
    let mut k = keep.into_iter();
    findings.retain(|_| k.next().unwrap_or(true));
}

/// The line of a finding the profile charges most: by bytes for `no-slots` (a memory
/// rule), by CPU for the others.
fn costliest<'c>(f: &rules::Finding, costs: &HashMap<u32, &'c LineCost>) -> Option<&'c LineCost> {
    let lines = f.spans.iter().flat_map(|&(s, e)| s..=e);
    let key = |c: &LineCost| match f.rule {
        Rule::NoSlots => (c.alloc_percent, c.cpu_percent),
        _ => (c.cpu_percent, c.alloc_percent),
    };
    // Of equally costly lines, the first.
    lines
        .filter_map(|l| costs.get(&l).copied())
        .fold(None, |best: Option<&LineCost>, c| match best {
            Some(b) if key(b) >= key(c) => Some(b),
            _ => Some(c),
        })
}

/// The share of CPU with a function on the stack, the function known by its first line
/// (`None`: the module's code); 0 when the profile does not have it.
fn function_share(functions: &[FunctionCost], first_line: Option<u32>) -> f64 {
    functions
        .iter()
        .filter(|f| match first_line {
            Some(l) => f.first_line == l && !f.name.ends_with('>'),
            None => f.name == "<module>",
        })
        .map(|f| f.total_percent)
        .fold(0.0, f64::max)
}

/// What a pattern costs: the sum over its lines (a loop's header and body together), on
/// its costliest line `at`.
fn pattern_cost(f: &rules::Finding, at: u32, costs: &HashMap<u32, &LineCost>) -> LineCost {
    let mut lines: Vec<u32> = f.spans.iter().flat_map(|&(s, e)| s..=e).collect();
    lines.sort_unstable();
    lines.dedup();
    let mut sum = LineCost {
        line: at,
        ..LineCost::default()
    };
    for c in lines.iter().filter_map(|l| costs.get(l)) {
        sum.cpu_percent += c.cpu_percent;
        sum.native_percent += c.native_percent;
        sum.alloc_bytes = sum.alloc_bytes.saturating_add(c.alloc_bytes);
        sum.alloc_percent += c.alloc_percent;
        sum.allocs = sum.allocs.saturating_add(c.allocs);
    }
    sum
}

/// Advice on a whole profile: hints for every Python file whose source could be read,
/// and a warning for each that could not be parsed.
#[derive(Debug, Default)]
pub struct Advice {
    /// Whether advice was asked for (`--no-advice` turns it off).
    pub enabled: bool,
    pub hints: Vec<Hint>,
    pub warnings: Vec<String>,
}

impl Advice {
    pub fn off() -> Advice {
        Advice::default()
    }

    /// The hints on one line of one file.
    pub fn on_line<'a>(&'a self, file: &'a str, line: u32) -> impl Iterator<Item = &'a Hint> {
        self.hints
            .iter()
            .filter(move |h| h.line == line && h.file == file)
    }
}

/// Python sources: `.py`/`.pyw`, or a script without an extension (which
/// [`Sources`] only reads when its `#!` line names python).
fn is_python(path: &str) -> bool {
    match std::path::Path::new(path)
        .extension()
        .and_then(|e| e.to_str())
    {
        Some(e) => e.eq_ignore_ascii_case("py") || e.eq_ignore_ascii_case("pyw"),
        None => true,
    }
}

/// Runs [`advise`] on every Python file of a profile with its source at hand.
pub fn for_profile(p: &Profile, src: &Sources) -> Advice {
    let total = p.total.share_base();
    let malloc = p.footprint.malloc_bytes as f64;
    let mut advice = Advice {
        enabled: true,
        ..Advice::default()
    };
    for f in p.files.iter().filter(|f| !f.native && is_python(&f.path)) {
        let Some(text) = src.whole_text(&f.path) else {
            continue;
        };
        let lines: Vec<LineCost> = f
            .lines
            .iter()
            .filter(|l| l.line > 0)
            .map(|l| LineCost {
                line: l.line,
                cpu_percent: percent(l.times.total_ns(), total),
                native_percent: percent(l.times.native_ns, total),
                alloc_bytes: l.memory.malloc_bytes,
                alloc_percent: percent(l.memory.malloc_bytes, malloc),
                allocs: l.memory.mallocs,
            })
            .collect();
        let functions: Vec<FunctionCost> = p
            .functions
            .iter()
            .filter(|func| func.file == f.path)
            .map(|func| FunctionCost {
                name: func.name.clone(),
                first_line: func.first_line,
                total_percent: percent(func.total_ns, total),
            })
            .collect();
        let input = FileCosts {
            path: &f.path,
            source: &text,
            lines: &lines,
            functions: &functions,
            memory: p.has_memory(),
        };
        match advise(&input, &Thresholds::default()) {
            Ok(h) => advice.hints.extend(h),
            Err(e) => advice.warnings.push(format!(
                "no advice for {}: it does not parse as Python ({e})",
                f.path
            )),
        }
    }
    advice
}

#[cfg(test)]
mod tests;
