//! One-line messages on stderr, written with a single write(2): no stdio lock to deadlock on
//! in a forked child, and the line is never interleaved with the program's own output.

pub fn info(msg: &str) {
    line(&format!("rprof: {msg}\n"));
}

pub fn warn(msg: &str) {
    line(&format!("rprof: warning: {msg}\n"));
}

fn line(s: &str) {
    unsafe {
        libc::write(2, s.as_ptr().cast(), s.len());
    }
}
