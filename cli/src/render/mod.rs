//! The renderers, each reading the one [`Profile`]: the terminal report ([`text`]),
//! Scalene-compatible JSON ([`scalene_json`]) and a self-contained HTML page ([`html`]);
//! and the exports for other tools: pprof ([`pprof`]), folded stacks ([`collapsed`]) and
//! speedscope ([`speedscope`]). [`render`] and [`export`] are the dispatches both
//! `rprof-report` and `rprof run` use.

pub mod collapsed;
#[cfg(test)]
mod fixture;
pub mod html;
pub mod pprof;
pub mod scalene_json;
pub mod speedscope;
pub mod text;

use crate::model::figures::percent;
use crate::model::{FileProfile, LineProfile, Profile};
use crate::report::ReportOptions;
use crate::source::Sources;

/// What a report is written as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    ScaleneJson,
    Html,
}

/// The report of `p` in `format`.
pub fn render(format: Format, p: &Profile, src: &Sources, opts: &ReportOptions) -> String {
    let advice = opts.advice(p, src);
    match format {
        Format::Text => text::render(p, src, opts, &advice),
        Format::ScaleneJson => scalene_json::render(p, src, &advice),
        Format::Html => html::render(p, src, opts, &advice),
    }
}

/// An export of the profile's call stacks, for another tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Export {
    Pprof,
    Collapsed,
    CollapsedMemory,
    Speedscope,
}

/// The export of `p` as `export`, as bytes (pprof's is gzipped binary).
pub fn export(export: Export, p: &Profile) -> Vec<u8> {
    match export {
        Export::Pprof => pprof::render(p),
        Export::Collapsed => collapsed::render(p, collapsed::Weight::Time).into_bytes(),
        Export::CollapsedMemory => collapsed::render(p, collapsed::Weight::Allocated).into_bytes(),
        Export::Speedscope => speedscope::render(p).into_bytes(),
    }
}

/// Which files and lines a report lists as hot: those with a share of the time (or,
/// profiling memory, of the bytes allocated or of the peak footprint) at the threshold or
/// above.
pub struct Shown<'a> {
    pub p: &'a Profile,
    pub opts: &'a ReportOptions,
}

impl Shown<'_> {
    /// Whether the row of a file's line is in the report (advice goes beside it).
    pub fn row(&self, file: &str, line: u32) -> bool {
        self.p.files.iter().any(|f| {
            f.path == file
                && crate::model::frameless_file(&f.path).is_none()
                && self.file(f)
                && f.lines.iter().any(|l| l.line == line && self.line(l))
        })
    }

    pub fn line(&self, l: &LineProfile) -> bool {
        self.opts.all_lines
            || percent(l.times.total_ns(), self.p.total.share_base()) >= self.opts.threshold
            || self.memory(l)
            || self.p.gpu_share(&l.gpu) >= self.opts.threshold
    }

    /// Whether a line's memory puts it in the report: its share at the threshold, and a
    /// figure above the sampling's noise floor ([`Profile::memory_floor`]).
    fn memory(&self, l: &LineProfile) -> bool {
        self.p.has_memory()
            && self.p.memory_share(&l.memory) >= self.opts.threshold
            && self.p.resolvable(&l.memory)
    }

    /// Whether a line is left out only for being below the memory noise floor.
    pub fn under_floor(&self, l: &LineProfile) -> bool {
        !self.line(l)
            && self.p.has_memory()
            && self.p.memory_share(&l.memory) >= self.opts.threshold
    }

    pub fn file(&self, f: &FileProfile) -> bool {
        let total = self.p.total.share_base();
        self.opts.all_lines
            || percent(f.times.total_ns(), total) >= self.opts.threshold
            || self.p.has_memory() && f.lines.iter().any(|l| self.memory(l))
    }
}

/// Everything a report must warn about: damage to the trace, a killed or stopped process,
/// the model's warnings and the sources'.
pub fn problems(p: &Profile, src: &Sources) -> Vec<String> {
    let killed = p.killed().then(|| {
        "the trace has no end record: the process was killed (or crashed) before rprof could \
         finish it; the report covers what was written until then"
            .to_string()
    });
    let stopped = p.stopped.as_ref().map(|why| {
        format!(
            "the trace stops early: {why}; the process was not killed, and the report \
             covers what was written until then"
        )
    });
    p.damage
        .iter()
        .cloned()
        .chain(killed)
        .chain(stopped)
        .chain(p.warnings.iter().cloned())
        .chain(src.warnings().iter().cloned())
        .collect()
}
