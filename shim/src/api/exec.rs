//! The exec family. Before the image is replaced, the shared page is told so
//! (`lifecycle::before_exec`): the writer then ends the trace as an exec, not as a death,
//! and the new image (preloaded again) writes a trace of its own beside it. glibc's
//! `execvp`, `execl` & co. reach `execve` internally, past the PLT, so each entry point is
//! interposed; the variadic `execl`, `execlp` and `execle` are in execl.c.

use crate::lifecycle;
use crate::sys::real::next;
use libc::{c_char, c_int};
use std::sync::atomic::AtomicUsize;

/// Runs an exec call of `path` (may be null) with `argv` between the two notes; returns
/// only if it failed.
///
/// # Safety
/// `path` and `argv` are what the exec itself is given (a C string, a null-terminated array
/// of C strings, or null).
unsafe fn around(path: *const c_char, argv: Argv, call: impl FnOnce() -> c_int) -> c_int {
    // SAFETY: as the caller promises.
    unsafe { lifecycle::before_exec(path, argv) };
    let rc = call();
    let errno = std::io::Error::last_os_error().raw_os_error();
    lifecycle::exec_failed();
    if let Some(e) = errno {
        // SAFETY: restores the exec's errno for the caller.
        unsafe { *libc::__errno_location() = e };
    }
    rc
}

/// `ENOSYS` when the next definition cannot be found.
fn missing() -> c_int {
    // SAFETY: writes this thread's errno.
    unsafe { *libc::__errno_location() = libc::ENOSYS };
    -1
}

type Argv = *const *const c_char;

macro_rules! interpose {
    ($name:ident, $cname:literal, ($($arg:ident: $ty:ty),*), $path:expr, $argv:ident) => {
        /// Interposed: see the module comment.
        ///
        /// # Safety
        /// As the C library's function of the same name.
        #[no_mangle]
        pub unsafe extern "C" fn $name($($arg: $ty),*) -> c_int {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let f = next(&NEXT, $cname);
            if f == 0 {
                return missing();
            }
            // SAFETY: `f` is the C library's definition of this very function.
            let real = unsafe {
                std::mem::transmute::<usize, unsafe extern "C" fn($($ty),*) -> c_int>(f)
            };
            // SAFETY: the caller's arguments, passed on unchanged.
            unsafe { around($path, $argv, || real($($arg),*)) }
        }
    };
}

interpose!(execve, c"execve", (path: *const c_char, argv: Argv, envp: Argv), path, argv);
interpose!(execv, c"execv", (path: *const c_char, argv: Argv), path, argv);
interpose!(execvp, c"execvp", (file: *const c_char, argv: Argv), file, argv);
interpose!(execvpe, c"execvpe", (file: *const c_char, argv: Argv, envp: Argv), file, argv);
interpose!(fexecve, c"fexecve", (fd: c_int, argv: Argv, envp: Argv), std::ptr::null(), argv);
interpose!(
    execveat,
    c"execveat",
    (dirfd: c_int, path: *const c_char, argv: Argv, envp: Argv, flags: c_int),
    path,
    argv
);

extern "C" {
    fn rprof_execl(path: *const c_char, arg: *const c_char, ...) -> c_int;
    fn rprof_execlp(file: *const c_char, arg: *const c_char, ...) -> c_int;
    fn rprof_execle(path: *const c_char, arg: *const c_char, ...) -> c_int;
}

macro_rules! variadic {
    ($name:ident, $target:ident) => {
        /// Interposed: a jump to the C definition (execl.c), with the caller's variadic
        /// arguments untouched in their registers and on the stack.
        #[unsafe(naked)]
        #[no_mangle]
        pub extern "C" fn $name() {
            #[cfg(target_arch = "x86_64")]
            core::arch::naked_asm!("jmp {}", sym $target);
            #[cfg(target_arch = "aarch64")]
            core::arch::naked_asm!("b {}", sym $target);
        }
    };
}

variadic!(execl, rprof_execl);
variadic!(execlp, rprof_execlp);
variadic!(execle, rprof_execle);
