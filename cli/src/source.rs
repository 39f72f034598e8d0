//! Source text, read when the report is made. A file that cannot be read is noted, not
//! fatal: its lines are reported without text.

use crate::profile::Profile;
use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::time::UNIX_EPOCH;

pub struct Sources {
    /// Lines without their terminators, by the path as the trace records it.
    files: BTreeMap<String, Vec<String>>,
    warnings: Vec<String>,
}

/// Source files are small; anything bigger is not one, and reading it could exhaust memory.
const MAX_SOURCE_BYTES: u64 = 64 << 20;

struct SourceFile {
    bytes: Vec<u8>,
    modified_ns: u128,
}

/// Reads a regular text file only: a trace may name a device or a pipe, which could block
/// forever, or a native module (a binary: NUL bytes mark it).
fn read_source(path: &Path) -> io::Result<SourceFile> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() || meta.len() > MAX_SOURCE_BYTES {
        return Err(io::Error::other("not a source file"));
    }
    let modified_ns = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let bytes = std::fs::read(path)?;
    if bytes.contains(&0) {
        return Err(io::Error::other("not a text file"));
    }
    Ok(SourceFile { bytes, modified_ns })
}

/// Names like `<string>` or `<frozen importlib._bootstrap>` are code without a file, as
/// are our own pseudo-files.
fn is_pseudo_file(path: &str) -> bool {
    path.starts_with('<') && path.ends_with('>')
}

impl Sources {
    /// Reads every file the profile has a known line in (a native module without line
    /// numbers has none). Relative paths are taken from the profiled process's working
    /// directory, as Python recorded them.
    pub fn load(profile: &Profile) -> Sources {
        let mut files = BTreeMap::new();
        // Files in report order, so a long list names the ones that matter most.
        let (mut unreadable, mut changed, mut short) = (Vec::new(), Vec::new(), Vec::new());
        let with_lines = profile
            .files
            .iter()
            .filter(|f| !is_pseudo_file(&f.path) && f.lines.iter().any(|l| l.line > 0));
        for f in with_lines {
            let full = Path::new(&profile.header.cwd).join(&f.path);
            let data = match read_source(&full) {
                Ok(d) => d,
                // Native code's sources (libc's, say) are often not installed: no news.
                Err(_) if f.native => continue,
                Err(e) => {
                    unreadable.push(format!("{} ({e})", f.path));
                    continue;
                }
            };
            if data.modified_ns > u128::from(profile.header.start_unix_ns) {
                changed.push(f.path.clone());
            }
            let text = String::from_utf8_lossy(&data.bytes);
            let lines: Vec<String> = text.lines().map(str::to_string).collect();
            if let Some(last) = f.lines.last().filter(|l| l.line as usize > lines.len()) {
                short.push(format!(
                    "{} ({} lines, line {} profiled)",
                    f.path,
                    lines.len(),
                    last.line
                ));
            }
            files.insert(f.path.clone(), lines);
        }
        let mut warnings = Vec::new();
        if !unreadable.is_empty() {
            warnings.push(format!(
                "cannot read the source of {}; lines are shown without text",
                list(&unreadable)
            ));
        }
        if !changed.is_empty() {
            warnings.push(format!(
                "the source of {} changed after the profiled run started; line text may not match",
                list(&changed)
            ));
        }
        if !short.is_empty() {
            warnings.push(format!(
                "the source of {} is shorter than the profile says; line text may not match",
                list(&short)
            ));
        }
        Sources { files, warnings }
    }

    /// The text of a line (1-based), if its file was read and has that line.
    pub fn line(&self, path: &str, line: u32) -> Option<&str> {
        let i = (line as usize).checked_sub(1)?;
        self.files.get(path)?.get(i).map(String::as_str)
    }

    /// Files not found, or read but apparently not what was profiled.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }
}

/// "a", "a, b", or "a, b, c and 7 more": a warning names a few files, not hundreds.
fn list(items: &[String]) -> String {
    const NAMED: usize = 3;
    let mut s = items[..items.len().min(NAMED)].join(", ");
    if items.len() > NAMED {
        s.push_str(&format!(" and {} more", items.len() - NAMED));
    }
    s
}
