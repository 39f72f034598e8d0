//! The reader treats a trace as untrusted: devices, FIFOs and directories are refused at
//! once, a trace shrinking while it is read reports what was read, and source text comes
//! only from source files, whatever paths the trace names. Each run has a time limit and
//! its peak memory is measured.

mod common;

use common::TraceBuilder;
use rprof_cli::model::aggregate_from;
use rprof_cli::trace_file::TraceFile;
use rprof_format::{Exec, Header};
use std::ffi::CString;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A run of rprof-report: its exit code (None: killed by a signal), output and peak RSS.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    max_rss_kb: i64,
}

/// Runs rprof-report, killing it (and failing) after `limit`; `during` runs while it does,
/// with its pid.
/// The child is reaped with wait4, which `Child` does not know of, for its rusage.
#[allow(clippy::zombie_processes)]
fn report_with(args: &[&str], limit: Duration, during: impl FnOnce(u32)) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rprof-report"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            r.read_to_string(&mut s).unwrap();
            s
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    during(pid);
    let start = Instant::now();
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `pid` is our child, not yet waited for; the pointers are to live locals.
        let r = unsafe { libc::wait4(pid as i32, &mut status, libc::WNOHANG, &mut usage) };
        assert!(r >= 0, "wait4: {}", std::io::Error::last_os_error());
        if r == pid as i32 {
            break;
        }
        if start.elapsed() > limit {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("rprof-report {args:?} still runs after {limit:?}: it must not block");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Run {
        code: libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status)),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
        max_rss_kb: usage.ru_maxrss,
    }
}

fn report(args: &[&str]) -> Run {
    report_with(args, Duration::from_secs(20), |_| {})
}

/// rprof-report reading /dev/zero grew to 8 GB; it is refused before a byte is read.
const MAX_RSS_KB: i64 = 200 * 1024;

/// `arg` given to rprof-report, `path` the file refused (the same, or a trace in directory
/// `arg`).
fn assert_refused(arg: &Path, path: &Path, what: &str) {
    let r = report(&[arg.to_str().unwrap()]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert_eq!(
        r.stderr,
        format!(
            "rprof-report: error: cannot read {}: not a regular file ({what}): a trace is a file \
             rprof wrote\n",
            path.display()
        )
    );
    assert!(r.stdout.is_empty());
    assert!(
        r.max_rss_kb < MAX_RSS_KB,
        "{} KB of memory for {}",
        r.max_rss_kb,
        path.display()
    );
}

#[test]
fn devices_are_refused_at_once_in_little_memory() {
    assert_refused(
        Path::new("/dev/zero"),
        Path::new("/dev/zero"),
        "a character device",
    );
    assert_refused(
        Path::new("/dev/urandom"),
        Path::new("/dev/urandom"),
        "a character device",
    );
}

fn mkfifo(path: &Path) {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: `c` is a NUL-terminated path that lives across the call.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

#[test]
fn a_fifo_without_writer_is_refused_without_blocking_named_or_in_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("rprof-1.trace");
    mkfifo(&fifo);
    assert_refused(&fifo, &fifo, "a FIFO");
    // A directory stands for the traces in it.
    assert_refused(dir.path(), &fifo, "a FIFO");
}

/// A trace of `chunks` chunks of 1,000 samples each on one stack of main.py:1.
fn trace(chunks: u32) -> Vec<u8> {
    let mut t = TraceBuilder::new(&Header::default());
    t.string(1, "main.py")
        .function(1, 1, 1, 1)
        .stack(1, &[(1, 1)]);
    for c in 0..chunks {
        for i in 0..1000 {
            t.sample(u64::from(c * 1000 + i), 1, 1, 1, 0, Exec::Python);
        }
        t.chunk();
    }
    t.finish()
}

/// Truncates a file when `after` bytes of it have been read, from the reader's own
/// descriptor: the same moment each run.
struct TruncateAfter<'a, R> {
    inner: R,
    path: &'a Path,
    after: u64,
    to: u64,
    read: u64,
}

impl<R: Read> Read for TruncateAfter<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.read >= self.after && self.after > 0 {
            let f = std::fs::OpenOptions::new().write(true).open(self.path)?;
            f.set_len(self.to)?;
            self.after = 0;
        }
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}

#[test]
fn a_trace_shrinking_while_read_reports_what_was_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.trace");
    let data = trace(400);
    std::fs::write(&path, &data).unwrap();
    let full = rprof_cli::model::aggregate(&data).unwrap();
    assert_eq!(full.total.samples, 400_000);

    // Cut to a tenth once a fifth has been read (the reader reads a MiB at a time).
    let file = TraceFile::open(&path).unwrap();
    let fifth = data.len() as u64 / 5;
    let cut = TruncateAfter {
        inner: file.reader(),
        path: &path,
        after: fifth,
        to: fifth / 2,
        read: 0,
    };
    let p = aggregate_from(cut).unwrap();
    assert!(file.size_now().unwrap() < file.size);
    assert!(
        p.total.samples > 0 && p.total.samples < full.total.samples,
        "{} samples",
        p.total.samples
    );
    assert!(
        p.damage.iter().any(|d| d.starts_with("trace is truncated")),
        "{:?}",
        p.damage
    );
}

/// The fd rprof-report's child `pid` has open on `path`, and how far it has read.
fn read_position(pid: u32, path: &Path) -> Option<u64> {
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd")).ok()? {
        let fd = fd.ok()?;
        if std::fs::read_link(fd.path()).ok()? == path {
            let info =
                std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{}", fd.file_name().to_str()?))
                    .ok()?;
            let pos = info.lines().find_map(|l| l.strip_prefix("pos:"))?;
            return pos.trim().parse().ok();
        }
    }
    None
}

/// A mapped trace truncated under the reader killed it with SIGBUS. The binary now reads:
/// the file is cut by another process while rprof-report has read part of it.
#[test]
fn rprof_report_survives_its_trace_truncated_under_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.trace");
    // About 2 MiB per 100 chunks, repeated: some hundred MiB, read a MiB at a time.
    let data = trace(100);
    let header_len = 16 + u32::from_le_bytes(data[12..16].try_into().unwrap()) as usize;
    let mut big = data.clone();
    for _ in 0..40 {
        big.extend_from_slice(&data[header_len..]);
    }
    std::fs::write(&path, &big).unwrap();
    let size = big.len() as u64;
    let mut cut_at = None;
    let r = report_with(&[path.to_str().unwrap()], Duration::from_secs(60), |pid| {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            match read_position(pid, &path) {
                Some(pos) if pos > 0 && pos < size => {
                    std::fs::OpenOptions::new()
                        .write(true)
                        .open(&path)
                        .unwrap()
                        .set_len(4096)
                        .unwrap();
                    cut_at = Some(pos);
                    return;
                }
                Some(pos) if pos >= size => return,
                _ => std::thread::sleep(Duration::from_micros(200)),
            }
        }
    });
    assert_eq!(r.code, Some(0), "killed? {}", r.stderr);
    assert!(r.max_rss_kb < MAX_RSS_KB, "{} KB", r.max_rss_kb);
    let Some(pos) = cut_at else {
        panic!("rprof-report read all {size} bytes before the test could cut the file");
    };
    assert!(
        r.stdout.contains(&format!(
            "the trace shrank from {size} to 4096 bytes while it was read"
        )),
        "cut at {pos}: {}",
        r.stdout
    );
}

/// A crafted trace names /etc/passwd, a symlink to it named like Python, a FIFO named like
/// Python, a Python script without extension, and a real .py file; only the last two are
/// read.
#[test]
fn only_source_files_named_by_a_trace_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("real.py"), "x = 1\nprint('the real line')\n").unwrap();
    std::fs::write(
        d.join("script"),
        "#!/usr/bin/env python3\nprint('the script line')\n",
    )
    .unwrap();
    std::fs::write(d.join("notes"), "secret line one\nsecret line two\n").unwrap();
    std::os::unix::fs::symlink("/etc/passwd", d.join("passwd.py")).unwrap();
    mkfifo(&d.join("fifo.py"));
    let h = Header {
        cwd: d.to_string_lossy().into_owned(),
        ..Default::default()
    };
    let mut t = TraceBuilder::new(&h);
    let files = [
        "/etc/passwd",
        "passwd.py",
        "fifo.py",
        "notes",
        "script",
        "real.py",
    ];
    for (i, file) in files.iter().enumerate() {
        let id = i as u32 + 1;
        t.string(id, file).function(id, id, id, 1);
        for line in [1, 2] {
            t.stack(id * 10 + line, &[(id, line)]);
            t.sample(1, 1, id * 10 + line, 10, 0, Exec::Python);
        }
    }
    let trace = d.join("crafted.trace");
    std::fs::write(&trace, t.finish()).unwrap();
    let r = report(&[trace.to_str().unwrap(), "--all-lines"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let first = passwd.lines().next().unwrap();
    assert!(!r.stdout.contains(first), "{}", r.stdout);
    assert!(!r.stdout.contains("secret line"), "{}", r.stdout);
    assert!(r.stdout.contains("print('the real line')"), "{}", r.stdout);
    assert!(
        r.stdout.contains("print('the script line')"),
        "{}",
        r.stdout
    );
    let json = report(&[trace.to_str().unwrap(), "--json"]);
    assert!(!json.stdout.contains(first));
    let flat = r.stdout.replace("\n    ", " ");
    assert!(
        flat.contains(
            "/etc/passwd, fifo.py, notes and 1 more not shown as source: only regular files named \
             like source code"
        ),
        "{}",
        r.stdout
    );
}
