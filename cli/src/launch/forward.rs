//! Waiting for the profiled program the way a shell would, and passing on the signals
//! meant for it.
//!
//! The program runs in a process group of its own, the terminal's foreground when rprof
//! had it (`terminal`): a terminal's Ctrl-C (SIGINT), Ctrl-\ (SIGQUIT) and hang-up
//! (SIGHUP) reach it directly, as they would without rprof, and a signal sent to rprof's
//! group reaches rprof alone. rprof forwards the six signals people send to a program
//! (SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2) once each, whether sent to rprof
//! or to its group, and never those the terminal sent a foreground group the program is in
//! (the kernel marks them `SI_KERNEL`): the program got its own copy, and a second one
//! would be a second Ctrl-C. The signals are blocked in rprof and taken with
//! `sigtimedwait`, so nothing runs in a signal handler, and the program starts with none
//! of them blocked.

use super::terminal::Terminal;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

pub const FORWARDED: [libc::c_int; 6] = [
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

/// The forwarded signals and SIGCHLD, blocked in rprof from before the program starts
/// until it has ended (a signal sent meanwhile waits, and is forwarded once it runs).
pub struct Blocked {
    set: libc::sigset_t,
    old: libc::sigset_t,
}

impl Blocked {
    pub fn new() -> Blocked {
        // SAFETY: sigset operations on zeroed sets we own; sigprocmask on this (single)
        // thread.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for sig in FORWARDED.into_iter().chain([libc::SIGCHLD]) {
                libc::sigaddset(&mut set, sig);
            }
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old);
            Blocked { set, old }
        }
    }

    /// The mask rprof was started with, for the program (see `restore_mask`).
    pub fn original(&self) -> libc::sigset_t {
        self.old
    }

    /// Waits for the program `pid` to end, forwarding the signals sent to rprof, and
    /// stopping with it when it stops.
    pub fn wait(&self, pid: libc::pid_t, terminal: &Terminal) -> io::Result<ExitStatus> {
        loop {
            let mut status = 0;
            // SAFETY: waits for our own child without blocking.
            let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG | libc::WUNTRACED) };
            if r < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            if r == pid {
                if libc::WIFSTOPPED(status) {
                    terminal.stopped(pid);
                    continue;
                }
                return Ok(ExitStatus::from_raw(status));
            }
            // SAFETY: a zeroed siginfo filled in by the kernel; the set is ours. The
            // timeout only bounds how long a missed SIGCHLD could go unnoticed.
            let (sig, info) = unsafe {
                let mut info: libc::siginfo_t = std::mem::zeroed();
                let timeout = libc::timespec {
                    tv_sec: 1,
                    tv_nsec: 0,
                };
                (libc::sigtimedwait(&self.set, &mut info, &timeout), info)
            };
            if sig <= 0 || sig == libc::SIGCHLD {
                continue;
            }
            if should_forward(&info, pid) {
                // SAFETY: signals our own child, which may have just exited (harmless:
                // not yet reaped, the pid is still ours).
                unsafe { libc::kill(pid, sig) };
            }
        }
    }
}

impl Drop for Blocked {
    /// After the program ended: rprof takes its signals as any program would again (a
    /// Ctrl-C while a long report is written ends it).
    fn drop(&mut self) {
        // SAFETY: restores this thread's mask from a set we own. A signal still pending
        // is delivered now, with its default action.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.old, std::ptr::null_mut()) };
    }
}

/// Sets the calling thread's mask: in the forked child before exec, the mask rprof was
/// started with. Async-signal-safe.
pub fn restore_mask(mask: &libc::sigset_t) {
    // SAFETY: sets this thread's mask from a valid set.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, mask, std::ptr::null_mut()) };
}

/// Whether a signal rprof received is the program's to get: not when the terminal sent it
/// to the foreground group the program is in, nor when the program sent it itself.
fn should_forward(info: &libc::siginfo_t, child: libc::pid_t) -> bool {
    // SAFETY: si_pid is valid for the SI_USER/SI_QUEUE/SI_TKILL codes it is read for.
    let sender = unsafe { info.si_pid() };
    if info.si_code == libc::SI_KERNEL {
        // SAFETY: getpgid/getpgrp only read the process table.
        return unsafe { libc::getpgid(child) != libc::getpgrp() };
    }
    sender != child
}

/// The name of signal `n` (SIGTERM), or `signal N`.
pub fn signal_name(n: i32) -> String {
    let name = match n {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        _ => return format!("signal {n}"),
    };
    format!("{name} ({n})")
}
