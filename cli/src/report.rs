//! What both binaries share: report options, loading a trace file, writing a report out.

use crate::model::merge::{self, Pick};
use crate::model::{aggregate_charged, Charging, Profile};
use crate::trace_file::TraceFile;
use rprof_format::TraceError;
use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug, Clone)]
pub struct ReportOptions {
    /// Show every line with samples, however little time it has.
    #[arg(long)]
    pub all_lines: bool,
    /// Hide lines and files with less than PCT percent of the sampled time (and, when memory
    /// was profiled, of the bytes allocated and of the peak footprint).
    #[arg(long, value_name = "PCT", default_value_t = 1.0, value_parser = parse_percent)]
    pub threshold: f64,
    /// How many functions the function summary lists.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub functions: usize,
    /// Leave out the advice on hot lines (docs/ADVICE.md).
    #[arg(long)]
    pub no_advice: bool,
    /// Show library lines (standard library, site-packages) as their own, instead of
    /// charging their time and memory to the calling line in the program's own code.
    #[arg(long)]
    pub profile_all: bool,
    /// Treat only files whose path contains one of these (comma-separated) substrings as
    /// the program's own code.
    #[arg(long, value_name = "PATHS", value_delimiter = ',')]
    pub profile_only: Vec<String>,
    /// Never treat files whose path contains one of these (comma-separated) substrings as
    /// the program's own code.
    #[arg(long, value_name = "PATHS", value_delimiter = ',')]
    pub profile_exclude: Vec<String>,
    /// Fit the text report in COLS columns (default: $COLUMNS, else the terminal's width,
    /// else 100, or 120 with the memory columns).
    #[arg(long, value_name = "COLS")]
    pub width: Option<usize>,
}

impl ReportOptions {
    /// The charging policy these options choose.
    pub fn charging(&self) -> Charging {
        let keep = |v: &[String]| v.iter().filter(|s| !s.is_empty()).cloned().collect();
        Charging {
            all: self.profile_all,
            only: keep(&self.profile_only),
            exclude: keep(&self.profile_exclude),
        }
    }

    /// The columns the text report must fit in, when something says: `--width`, else
    /// `$COLUMNS`, else the width of the terminal on standard output or standard error
    /// (where `rprof run` writes its report).
    pub fn columns(&self) -> Option<usize> {
        if let Some(w) = self.width {
            return Some(w);
        }
        if let Some(w) = std::env::var("COLUMNS")
            .ok()
            .and_then(|v| v.trim().parse().ok())
        {
            return Some(w);
        }
        [libc::STDOUT_FILENO, libc::STDERR_FILENO]
            .into_iter()
            .find_map(terminal_columns)
    }

    /// The advice on the profile's hot lines, unless `--no-advice`.
    pub fn advice(&self, p: &Profile, src: &crate::source::Sources) -> crate::advice::Advice {
        if self.no_advice {
            crate::advice::Advice::off()
        } else {
            crate::advice::for_profile(p, src)
        }
    }
}

/// The exports of the call stacks, written beside the report.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ExportOptions {
    /// Also write the profile as gzipped pprof (profile.proto) to FILE, for `go tool pprof`,
    /// Pyroscope and Parca.
    #[arg(long, value_name = "FILE")]
    pub pprof: Option<PathBuf>,
    /// Also write folded stacks weighted by sampled time (ns) to FILE, for flamegraph.pl,
    /// inferno and speedscope.
    #[arg(long, value_name = "FILE")]
    pub collapsed: Option<PathBuf>,
    /// Also write folded stacks weighted by bytes allocated to FILE.
    #[arg(long, value_name = "FILE")]
    pub collapsed_memory: Option<PathBuf>,
    /// Also write the profile in speedscope's JSON format to FILE (one profile per thread).
    #[arg(long, value_name = "FILE")]
    pub speedscope: Option<PathBuf>,
}

/// What writing the exports found: warnings (an export written but of little use) and
/// errors (an export not written).
#[derive(Debug, Default)]
pub struct ExportProblems {
    pub warnings: Vec<String>,
    pub errors: Vec<String>,
}

impl ExportOptions {
    /// Writes every export asked for; one that cannot be written does not stop the others.
    pub fn write(&self, p: &Profile) -> ExportProblems {
        use crate::render::{export, Export};
        let asked = [
            (Export::Pprof, &self.pprof),
            (Export::Collapsed, &self.collapsed),
            (Export::CollapsedMemory, &self.collapsed_memory),
            (Export::Speedscope, &self.speedscope),
        ];
        let mut problems = ExportProblems::default();
        for (what, path) in asked {
            let Some(path) = path else { continue };
            if what == Export::CollapsedMemory && !p.has_memory() {
                problems.warnings.push(format!(
                    "{}: memory was not profiled (run with --memory), so it holds no stack",
                    path.display()
                ));
            }
            if let Err(e) = std::fs::write(path, export(what, p)) {
                problems
                    .errors
                    .push(format!("cannot write {}: {e}", path.display()));
            }
        }
        problems
    }
}

/// The width of the terminal on `fd`, if it is one.
fn terminal_columns(fd: libc::c_int) -> Option<usize> {
    // SAFETY: `isatty` reads nothing of ours; TIOCGWINSZ writes one `winsize` into `ws`,
    // which lives for the call.
    unsafe {
        if libc::isatty(fd) != 1 {
            return None;
        }
        let mut ws: libc::winsize = std::mem::zeroed();
        (libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) == 0 && ws.ws_col > 0)
            .then_some(ws.ws_col as usize)
    }
}

fn parse_percent(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..=100.0).contains(&v) => Ok(v),
        _ => Err(format!("{s:?} is not a percentage from 0 to 100")),
    }
}

/// A trace file that cannot be reported on at all.
#[derive(Debug)]
pub enum LoadError {
    Io(PathBuf, io::Error),
    Trace(PathBuf, TraceError),
    NoTraces(PathBuf),
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Io(p, e) => write!(f, "cannot read {}: {e}", p.display()),
            LoadError::Trace(p, e) => write!(f, "{}: {e}", p.display()),
            LoadError::NoTraces(p) => write!(
                f,
                "cannot read {}: no traces in this directory (rprof names them \
                 rprof-PID.trace)",
                p.display()
            ),
        }
    }
}

impl std::error::Error for LoadError {}

/// Reads and aggregates a trace file (see [`crate::trace_file`] for what is refused). A file
/// that shrank while it was read is reported on as far as it was read, with a warning.
pub fn load(path: &Path) -> Result<Profile, LoadError> {
    load_charged(path, Charging::default())
}

/// [`load`] with the given charging policy.
pub fn load_charged(path: &Path, charging: Charging) -> Result<Profile, LoadError> {
    let io_error = |e| LoadError::Io(path.to_path_buf(), e);
    let file = TraceFile::open(path).map_err(io_error)?;
    let mut profile = aggregate_charged(file.reader(), charging)
        .map_err(|e| LoadError::Trace(path.to_path_buf(), e))?;
    let now = file.size_now().map_err(io_error)?;
    if now < file.size {
        profile.damage.push(format!(
            "the trace shrank from {} to {now} bytes while it was read (truncated by another \
             process?); the report covers what could be read",
            file.size
        ));
    }
    Ok(profile)
}

/// Reads the traces named (a directory stands for the traces in it) into one report of
/// one run ([`merge`]): `pick` says which run, when they hold several (`None`: they are
/// one run's already). A single trace gets its own report, as [`load`] gives it. Traces
/// that cannot be read, or of other runs, are left out and listed in the report.
pub fn load_many(
    paths: &[PathBuf],
    pick: Option<Pick>,
    charging: Charging,
) -> Result<Profile, LoadError> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let entries = std::fs::read_dir(p).map_err(|e| LoadError::Io(p.clone(), e))?;
            let mut found: Vec<PathBuf> = entries
                .filter_map(Result::ok)
                .filter(|e| crate::launch::is_trace_name(&e.file_name().to_string_lossy()))
                .map(|e| e.path())
                .collect();
            if found.is_empty() {
                return Err(LoadError::NoTraces(p.clone()));
            }
            found.sort();
            files.extend(found);
        } else {
            files.push(p.clone());
        }
    }
    if let [one] = &files[..] {
        return load_charged(one, charging);
    }
    let (mut rows, mut profiles, mut paths_read) = (Vec::new(), Vec::new(), Vec::new());
    let mut unreadable = Vec::new();
    for path in files {
        match load_process(&path, &charging) {
            Ok((row, profile)) => {
                rows.push(row);
                profiles.push(profile);
                paths_read.push(path);
            }
            Err(e) => unreadable.push((path, e)),
        }
    }
    if rows.is_empty() {
        return Err(unreadable.remove(0).1);
    }
    let selection = match pick {
        Some(pick) => merge::select(&rows, pick),
        None => {
            let mut all: Vec<usize> = (0..rows.len()).collect();
            all.sort_by_key(|&i| (rows[i].start_unix_ns, rows[i].pid));
            merge::Selection {
                merged: all,
                left_out: Vec::new(),
            }
        }
    };
    let mut left_out: Vec<(String, String)> = unreadable
        .into_iter()
        .map(|(p, e)| (p.display().to_string(), format!("cannot be read: {e}")))
        .collect();
    for (i, why) in &selection.left_out {
        left_out.push((paths_read[*i].display().to_string(), why.clone()));
    }
    let order = &selection.merged;
    let mut taken: Vec<Option<_>> = rows.into_iter().zip(profiles).map(Some).collect();
    let (rows, profiles): (Vec<_>, Vec<_>) = order
        .iter()
        .map(|&i| taken[i].take().expect("each index once"))
        .unzip();
    let paths: Vec<&PathBuf> = order.iter().map(|&i| &paths_read[i]).collect();
    let mut profile = if let ([_], [_]) = (&rows[..], &profiles[..]) {
        profiles.into_iter().next().expect("one")
    } else {
        merge::merge(
            rows,
            &profiles,
            |i| {
                let path = paths[i];
                TraceFile::open(path)
                    .map(TraceFile::into_reader)
                    .map_err(|e| LoadError::Io(path.clone(), e))
            },
            &charging,
        )
        .map_err(|e| match e {
            merge::MergeError::Open(e) => e,
            merge::MergeError::Trace(i, e) => LoadError::Trace(paths[i].clone(), e),
        })?
    };
    profile.left_out = left_out;
    Ok(profile)
}

/// One trace's row and report, for a merge.
fn load_process(
    path: &Path,
    charging: &Charging,
) -> Result<(merge::ProcessRow, Profile), LoadError> {
    let io_error = |e| LoadError::Io(path.to_path_buf(), e);
    let file = TraceFile::open(path).map_err(io_error)?;
    let (row, mut profile) =
        merge::read_process(&path.display().to_string(), file.reader(), charging)
            .map_err(|e| LoadError::Trace(path.to_path_buf(), e))?;
    let now = file.size_now().map_err(io_error)?;
    if now < file.size {
        profile.damage.push(format!(
            "the trace shrank from {} to {now} bytes while it was read",
            file.size
        ));
    }
    Ok((row, profile))
}

/// Writes `text` to `path`, or to standard output when there is none. A reader that
/// closed the pipe early (`| head`) is not an error.
pub fn write_output(path: Option<&Path>, text: &str) -> io::Result<()> {
    let result = match path {
        Some(p) => std::fs::write(p, text),
        None => {
            let mut out = io::stdout().lock();
            out.write_all(text.as_bytes()).and_then(|()| out.flush())
        }
    };
    match result {
        Err(e) if path.is_none() && e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        r => r,
    }
}
