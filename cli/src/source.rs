//! Source text, read when the report is made. A file that cannot be read is noted, not
//! fatal: its lines are reported without text.
//!
//! The paths come from the trace, which is untrusted: a crafted trace may name
//! `/etc/passwd`, a key, a device or a FIFO. Only source code is read: a regular file (opened
//! without blocking, checked with `fstat`) whose name, and the name of the file it really
//! is once symlinks are followed, ends in a source extension ([`SOURCE_EXTENSIONS`]), or,
//! without any extension, a Python script (its first line a `#!` naming python). Anything
//! else is reported without text.

use crate::model::Profile;
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

pub struct Sources {
    /// Lines without their terminators, by the path as the trace records it.
    files: BTreeMap<String, Vec<String>>,
    warnings: Vec<String>,
}

/// Source files are small; anything bigger is not one, and reading it could exhaust memory.
const MAX_SOURCE_BYTES: u64 = 64 << 20;

/// The file name endings (compared without case) read as source: Python and Cython, and
/// what compilers' debug info names for native code: C, C++, Objective-C, assembly, Rust,
/// Go, Fortran, CUDA/HIP, Zig, D, Swift.
pub const SOURCE_EXTENSIONS: &[&str] = &[
    "py", "pyw", "pyx", "pxd", "pxi", // Python, Cython
    "c", "h", "i", // C
    "cc", "cp", "cpp", "cxx", "c++", "hh", "hpp", "hxx", "h++", "ipp", "inl", "tcc",
    "tpp", // C++
    "m", "mm", // Objective-C
    "s", "asm", // assembly
    "rs", "go", // Rust, Go
    "f", "for", "f77", "f90", "f95", "f03", "f08", // Fortran
    "cu", "cuh", "hip", // CUDA, HIP
    "zig", "d", "swift",
];

/// How much of an extension-less file is read to find a Python `#!` line.
const SHEBANG_BYTES: usize = 256;

struct SourceFile {
    bytes: Vec<u8>,
    modified_ns: u128,
}

/// Why a named file's text is not shown.
enum Refused {
    /// Not a source file by its name or type: never read, whatever it holds.
    NotSource,
    Io(io::Error),
}

impl From<io::Error> for Refused {
    fn from(e: io::Error) -> Self {
        Refused::Io(e)
    }
}

/// What a file name says: source by its extension, maybe a script (no extension), or not
/// source.
#[derive(PartialEq)]
enum Name {
    Source,
    NoExtension,
    Other,
}

fn name_kind(path: &Path) -> Name {
    match path.extension().and_then(|e| e.to_str()) {
        Some(e) if SOURCE_EXTENSIONS.iter().any(|s| s.eq_ignore_ascii_case(e)) => Name::Source,
        Some(_) => Name::Other,
        None => Name::NoExtension,
    }
}

/// `#!/usr/bin/env python3`, `#!/usr/bin/python3.11 -u` and the like.
fn is_python_shebang(head: &[u8]) -> bool {
    let first = head.split(|&b| b == b'\n').next().unwrap_or_default();
    first.starts_with(b"#!") && first.windows(6).any(|w| w == b"python")
}

/// The path of the file `f` really is, symlinks resolved.
fn real_path(f: &File) -> io::Result<PathBuf> {
    std::fs::read_link(format!("/proc/self/fd/{}", f.as_raw_fd()))
}

/// Reads a source file only (see the module's comment). Opening with `O_NONBLOCK` keeps a
/// FIFO from blocking; `fstat` on the open file, not the path, decides, so the file cannot be
/// swapped between the check and the read.
fn read_source(path: &Path) -> Result<SourceFile, Refused> {
    let by_name = name_kind(path);
    if by_name == Name::Other {
        return Err(Refused::NotSource);
    }
    let mut f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let meta = f.metadata()?;
    if !meta.is_file() {
        return Err(Refused::NotSource);
    }
    if name_kind(&real_path(&f)?) != by_name {
        return Err(Refused::NotSource);
    }
    if meta.len() > MAX_SOURCE_BYTES {
        return Err(Refused::Io(io::Error::other("too large for a source file")));
    }
    let modified_ns = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let mut bytes = Vec::new();
    if by_name == Name::NoExtension {
        (&mut f)
            .take(SHEBANG_BYTES as u64)
            .read_to_end(&mut bytes)?;
        if !is_python_shebang(&bytes) {
            return Err(Refused::NotSource);
        }
    }
    // The file may grow after fstat: read no more than the limit.
    f.take(MAX_SOURCE_BYTES + 1 - bytes.len() as u64)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_SOURCE_BYTES {
        return Err(Refused::Io(io::Error::other("too large for a source file")));
    }
    if bytes.contains(&0) {
        return Err(Refused::Io(io::Error::other("not a text file")));
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
        let (mut unreadable, mut not_source, mut changed, mut short) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
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
                Err(Refused::NotSource) => {
                    not_source.push(f.path.clone());
                    continue;
                }
                Err(Refused::Io(e)) => {
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
        if !not_source.is_empty() {
            warnings.push(format!(
                "{} not shown as source: only regular files named like source code (.py, .c, \
                 .rs, ...) or Python scripts are read",
                list(&not_source)
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

    /// All the lines of a file, if it was read.
    pub fn text(&self, path: &str) -> Option<&[String]> {
        self.files.get(path).map(Vec::as_slice)
    }

    /// A file's whole text (its lines joined by newlines), if it was read.
    pub fn whole_text(&self, path: &str) -> Option<String> {
        self.files.get(path).map(|lines| lines.join("\n"))
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
