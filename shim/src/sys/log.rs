//! One-line messages, written with a single write(2): no stdio lock to deadlock on in a
//! forked child, and the line is never interleaved with the program's own output.
//!
//! The program's stderr is the program's: a child whose stderr is captured
//! (`subprocess.run(capture_output=True)`) must not find our lines in it. So messages go
//! to stderr only when it is a terminal, or where `RPROF_LOG` says (`stderr`, `off`, or a
//! file path to append to). Warnings are also kept for the trace, which the writer marks,
//! so the report shows them whatever was printed.

use std::ffi::CString;
use std::sync::{Mutex, OnceLock};

enum Dest {
    Stderr,
    Off,
    File(CString),
}

static DEST: OnceLock<Dest> = OnceLock::new();
/// Warnings not yet marked in the trace (the writer, a clone of the program made after
/// they were given, takes its copy of them).
static PENDING: Mutex<Vec<String>> = Mutex::new(Vec::new());
const MAX_PENDING: usize = 32;

fn dest() -> &'static Dest {
    DEST.get_or_init(|| match std::env::var_os("RPROF_LOG") {
        None => {
            // SAFETY: isatty only inspects the descriptor.
            if unsafe { libc::isatty(2) } == 1 {
                Dest::Stderr
            } else {
                Dest::Off
            }
        }
        Some(v) => match v.to_string_lossy().as_ref() {
            "" | "stderr" => Dest::Stderr,
            "off" | "none" => Dest::Off,
            path => CString::new(path).map_or(Dest::Stderr, Dest::File),
        },
    })
}

pub fn info(msg: &str) {
    line(&format!("rprof: {msg}\n"));
}

pub fn warn(msg: &str) {
    line(&format!("rprof: warning: {msg}\n"));
    if let Ok(mut p) = PENDING.try_lock() {
        if p.len() < MAX_PENDING {
            p.push(msg.to_owned());
        }
    }
}

/// The warnings given so far, for the trace (in the writer process).
pub fn take_pending() -> Vec<String> {
    PENDING
        .try_lock()
        .map(|mut p| std::mem::take(&mut *p))
        .unwrap_or_default()
}

fn line(s: &str) {
    match dest() {
        Dest::Off => {}
        // SAFETY: one write of a valid buffer to stderr.
        Dest::Stderr => unsafe {
            libc::write(2, s.as_ptr().cast(), s.len());
        },
        // SAFETY: the file is opened, written once and closed here; O_NOFOLLOW and
        // O_APPEND: a log never follows a planted link, and lines from several processes
        // never overwrite each other.
        Dest::File(path) => unsafe {
            let flags = libc::O_WRONLY
                | libc::O_APPEND
                | libc::O_CREAT
                | libc::O_NOFOLLOW
                | libc::O_CLOEXEC
                | libc::O_NOCTTY;
            let fd = libc::open(path.as_ptr(), flags, 0o600);
            if fd >= 0 {
                libc::write(fd, s.as_ptr().cast(), s.len());
                libc::close(fd);
            }
        },
    }
}
