//! The program's process group and the terminal, as a shell gives them to a job.
//!
//! The program runs in a process group of its own. A signal sent to rprof's group (`kill
//! -INT -PGID`, a supervisor stopping the job) then reaches rprof alone, which forwards it
//! once: were the program in rprof's group it would get the group's copy and rprof's
//! forwarded one, two Ctrl-Cs for one. When rprof is the terminal's foreground job, the
//! program's group becomes the foreground instead, so the terminal's Ctrl-C, Ctrl-\ and
//! Ctrl-Z reach the program and its children directly, as without rprof; rprof, out of the
//! foreground, gets none of them. When the program stops (Ctrl-Z), rprof takes the
//! terminal back and stops too, so the shell sees its job stopped; continued (`fg`, `bg`),
//! it continues the program, giving it the terminal again when rprof has it.

use std::os::fd::{AsRawFd, OwnedFd};

/// rprof's controlling terminal, while rprof is its foreground job.
pub struct Terminal {
    tty: Option<OwnedFd>,
}

impl Terminal {
    /// The controlling terminal if rprof's group is in its foreground, else none (rprof
    /// runs in the background, or has no terminal).
    pub fn foreground() -> Terminal {
        // SAFETY: opens a path with flags; the descriptor is owned below.
        let fd = unsafe {
            libc::open(
                c"/dev/tty".as_ptr(),
                libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Terminal { tty: None };
        }
        // SAFETY: a descriptor we just opened, owned once.
        let tty = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        // SAFETY: plain queries.
        let ours = unsafe { libc::tcgetpgrp(fd) == libc::getpgrp() };
        Terminal {
            tty: ours.then_some(tty),
        }
    }

    /// The terminal's descriptor for `enter_own_group` in the child (-1: none).
    pub fn fd(&self) -> i32 {
        self.tty.as_ref().map_or(-1, |t| t.as_raw_fd())
    }

    /// In rprof, once the program started: its group, made in the child too (whichever
    /// runs first), and the terminal's foreground when rprof had it.
    pub fn give(&self, child: libc::pid_t) {
        // SAFETY: plain process-table and terminal calls. setpgid fails harmlessly once
        // the child has exec'd (it made its group itself before).
        unsafe {
            libc::setpgid(child, child);
            if let Some(t) = &self.tty {
                with_sigttou_blocked(|| libc::tcsetpgrp(t.as_raw_fd(), child));
            }
        }
    }

    /// The program stopped (Ctrl-Z, SIGSTOP): rprof takes the terminal back and stops
    /// itself, as the job the shell knows; once continued, it continues the program.
    pub fn stopped(&self, child: libc::pid_t) {
        // SAFETY: terminal and signal calls on our own terminal, process and child group.
        unsafe {
            self.take_back();
            libc::kill(libc::getpid(), libc::SIGSTOP);
            // Continued: in the foreground again (`fg`) the program gets the terminal.
            if let Some(t) = &self.tty {
                if libc::tcgetpgrp(t.as_raw_fd()) == libc::getpgrp() {
                    with_sigttou_blocked(|| libc::tcsetpgrp(t.as_raw_fd(), child));
                }
            }
            libc::kill(-child, libc::SIGCONT);
        }
    }

    /// The terminal back to rprof's group (the program ended or stopped).
    pub fn take_back(&self) {
        if let Some(t) = &self.tty {
            // SAFETY: our own terminal and group; SIGTTOU blocked, as rprof is out of
            // the foreground now.
            unsafe { with_sigttou_blocked(|| libc::tcsetpgrp(t.as_raw_fd(), libc::getpgrp())) };
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        self.take_back();
    }
}

/// In the forked child before exec: a process group of its own, and the terminal's
/// foreground when `tty` is one (not -1). Async-signal-safe.
pub fn enter_own_group(tty: i32) {
    // SAFETY: plain process-table and terminal calls on the calling process.
    unsafe {
        libc::setpgid(0, 0);
        if tty >= 0 {
            with_sigttou_blocked(|| libc::tcsetpgrp(tty, libc::getpid()));
        }
    }
}

/// Runs `f` with SIGTTOU blocked: a process outside the terminal's foreground may set it
/// then (without, it would be stopped). Async-signal-safe.
fn with_sigttou_blocked(f: impl FnOnce() -> libc::c_int) {
    // SAFETY: sigset operations on sets we own; the calling thread's mask is restored.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTTOU);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old);
        f();
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
    }
}
