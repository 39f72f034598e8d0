//! The page the program shares with its writer process: the exact allocator counters and
//! the hand-shake that ends a run.
//!
//! The submodules are the rest of what the two processes share: the mappings themselves
//! (`shm`), the event queue (`queue`), the code-object arena (`codes`) and the exact
//! counters' cells (`counters`).

pub(crate) mod codes;
pub(crate) mod counters;
pub(crate) mod queue;
pub(crate) mod shm;
pub(crate) mod thread_names;

use crate::shared::shm::Region;
use std::sync::atomic::{AtomicI32, AtomicPtr, AtomicU32, AtomicU64, AtomicU8, Ordering::*};
use std::sync::OnceLock;

#[repr(C)]
pub struct Shared {
    pub allocs: AtomicU64,
    pub frees: AtomicU64,
    pub alloc_bytes: AtomicU64,
    pub freed_bytes: AtomicU64,
    /// Bytes in the Python object allocator's arenas (mapped by the interpreter, not malloc).
    pub arena_bytes: AtomicU64,
    pub peak_live: AtomicU64,
    /// CPU samples the signal handler took.
    pub samples: AtomicU64,
    /// When (ns since start, plus one) the interpreter was first seen finalizing; 0 before.
    pub finalizing: AtomicU64,
    /// Set by the program at exit, with the time (ns since start) it ended.
    pub finish: AtomicU32,
    pub end_ns: AtomicU64,
    /// Set (and futex-woken) by the writer once the trace is complete.
    pub done: AtomicU32,
    /// Samples in the finished trace, plus one; 0 when no trace file was written.
    pub written: AtomicU64,
    /// The pid of the program when it is about to `exec` (set by the exec wrappers, cleared
    /// if the exec fails): the writer then knows that the pipe closed for an exec and not
    /// an exit, without reading /proc of a process that may be half gone.
    pub execing: AtomicU32,
    /// How the program is ending ([`EXITED`] or [`SIGNALED`], with `exit_code`), set before
    /// `finish`; 0 while it runs.
    pub exit_how: AtomicU32,
    pub exit_code: AtomicI32,
    /// The command an exec is about to run (NUL-terminated, cut at `EXEC_BYTES`), set with
    /// `execing`.
    pub exec_cmd: [AtomicU8; EXEC_BYTES],
    /// How writing the trace went ([`Outcome`]), for the program's exit line.
    pub outcome: AtomicU32,
    /// The path the writer chose (NUL-terminated): the one asked for, unless another file
    /// was in the way.
    pub path: [AtomicU8; PATH_BYTES],
    /// The path `rprof_set_output` asked for (NUL-terminated; empty when none), which the
    /// writer takes when it creates a trace that was not created at start.
    pub output: [AtomicU8; PATH_BYTES],
    /// `rprof_flush`: the requests the program made, and the last one the writer served.
    pub flush_asked: AtomicU32,
    pub flushed: AtomicU32,
    /// Who holds `output`: OUTPUT_OPEN (nobody: `rprof_set_output` may change it),
    /// OUTPUT_SETTING (a `rprof_set_output` call is writing it) or OUTPUT_FIXED (the
    /// writer took it to create the trace; it never changes again).
    output_state: AtomicU32,
}

const OUTPUT_OPEN: u32 = 0;
const OUTPUT_SETTING: u32 = 1;
const OUTPUT_FIXED: u32 = 2;

pub const PATH_BYTES: usize = 4096;
pub const EXEC_BYTES: usize = 1024;
/// Values of `exit_how`.
pub const EXITED: u32 = 1;
pub const SIGNALED: u32 = 2;

/// How the writer fared with the trace file.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u32)]
pub enum Outcome {
    /// Written in full (or nothing to write yet).
    Fine = 0,
    /// It could not be created.
    OpenFailed = 1,
    /// A write failed (a full disk, a size limit): the trace stops there.
    WriteFailed = 2,
    /// Someone deleted the file during the run.
    Deleted = 3,
    /// The writer ran out of memory and stopped.
    OutOfMemory = 4,
}

impl Outcome {
    pub fn from_u32(v: u32) -> Outcome {
        match v {
            1 => Outcome::OpenFailed,
            2 => Outcome::WriteFailed,
            3 => Outcome::Deleted,
            4 => Outcome::OutOfMemory,
            _ => Outcome::Fine,
        }
    }
}

impl Shared {
    pub fn set_path(&self, path: &str) {
        put_str(&self.path, path);
    }

    pub fn path(&self) -> String {
        get_str(&self.path)
    }

    /// In the program (`rprof_set_output`): sets the output path (cut at `PATH_BYTES - 1`,
    /// which the caller checks) if the writer has not
    /// taken it yet and `allowed`, asked while the path is held, says the change may still
    /// happen. The writer cannot create the trace in between, so a path set here is the
    /// trace's, and one refused leaves the path as it was, never half-written.
    pub fn try_set_output(&self, path: &str, allowed: impl FnOnce() -> bool) -> bool {
        if self
            .output_state
            .compare_exchange(OUTPUT_OPEN, OUTPUT_SETTING, Acquire, Relaxed)
            .is_err()
        {
            return false;
        }
        let ok = allowed();
        if ok {
            put_str(&self.output, path);
        }
        self.output_state.store(OUTPUT_OPEN, Release);
        ok
    }

    /// In the writer, as it creates the trace: fixes the output path (no later
    /// `rprof_set_output` changes it) and returns it, None when none was set. A call
    /// writing it at that moment is waited for (it copies at most 4 KiB); should it not
    /// finish within 200 ms, the trace goes to the configured path and the path stays
    /// open, to be taken at the next flush.
    pub fn take_output(&self) -> Option<String> {
        for _ in 0..200 {
            match self
                .output_state
                .compare_exchange(OUTPUT_OPEN, OUTPUT_FIXED, Acquire, Acquire)
            {
                Ok(_) | Err(OUTPUT_FIXED) => {
                    return Some(get_str(&self.output)).filter(|p| !p.is_empty())
                }
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(1)),
            }
        }
        None
    }

    /// Notes how the program ends, before it tells the writer to finish. Async-signal-safe.
    pub fn set_exit(&self, how: u32, code: i32) {
        self.exit_code.store(code, Relaxed);
        self.exit_how.store(how, Release);
    }

    /// Notes the command an exec will run: `argv` joined by spaces (or `path` when argv is
    /// empty), cut to fit. Async-signal-safe: no allocation, bounded.
    ///
    /// # Safety
    /// `path` is null or a C string; `argv` is null or a null-terminated array of C strings
    /// (what the exec itself will read).
    pub unsafe fn set_exec_cmd(&self, path: *const libc::c_char, argv: *const *const libc::c_char) {
        let mut n = 0;
        let put = |bytes: &[u8], n: &mut usize| {
            for &b in bytes {
                if *n + 1 >= EXEC_BYTES {
                    return;
                }
                self.exec_cmd[*n].store(b, Relaxed);
                *n += 1;
            }
        };
        let mut i = 0;
        // SAFETY: as the caller promises; at most 4096 arguments are read.
        unsafe {
            while !argv.is_null() && i < 4096 && !(*argv.add(i)).is_null() {
                if i > 0 {
                    put(b" ", &mut n);
                }
                put(std::ffi::CStr::from_ptr(*argv.add(i)).to_bytes(), &mut n);
                i += 1;
            }
            if i == 0 && !path.is_null() {
                put(std::ffi::CStr::from_ptr(path).to_bytes(), &mut n);
            }
        }
        self.exec_cmd[n].store(0, Release);
    }

    pub fn exec_cmd(&self) -> String {
        let bytes: Vec<u8> = self
            .exec_cmd
            .iter()
            .map(|b| b.load(Acquire))
            .take_while(|&b| b != 0)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    pub fn set_outcome(&self, outcome: Outcome) {
        self.outcome.store(outcome as u32, Release);
    }
}

fn put_str(buf: &[AtomicU8; PATH_BYTES], path: &str) {
    let bytes = path.as_bytes();
    let n = bytes.len().min(PATH_BYTES - 1);
    for (slot, &b) in buf.iter().zip(&bytes[..n]) {
        slot.store(b, Relaxed);
    }
    buf[n].store(0, Release);
}

fn get_str(buf: &[AtomicU8; PATH_BYTES]) -> String {
    let bytes: Vec<u8> = buf
        .iter()
        .map(|b| b.load(Acquire))
        .take_while(|&b| b != 0)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

static REGION: OnceLock<Region> = OnceLock::new();
/// This process's view: null before init, and in the writer process (whose own
/// allocations are not the program's).
static SHARED: AtomicPtr<Shared> = AtomicPtr::new(std::ptr::null_mut());

pub fn init() -> bool {
    let Some(r) = Region::new(std::mem::size_of::<Shared>()) else {
        return false;
    };
    let r = REGION.get_or_init(|| r);
    SHARED.store(r.ptr().cast(), Release);
    true
}

#[inline]
pub fn get() -> Option<&'static Shared> {
    // SAFETY: SHARED is null or points into REGION's page, which is mapped once and never
    // unmapped, holding a Shared (its fields are atomics).
    unsafe { SHARED.load(Acquire).as_ref() }
}

/// The page itself, also in the writer process.
pub fn page() -> Option<&'static Shared> {
    REGION
        .get()
        // SAFETY: the region is at least a page, holds a Shared at its start, and lives for
        // the process (a static OnceLock).
        .map(|r| unsafe { &*(r.ptr() as *const Shared) })
}

/// In the writer process: stop counting this process's allocations as the program's.
pub fn detach() {
    SHARED.store(std::ptr::null_mut(), Release);
}

/// In a fork child: a fresh page of its own, counters from zero.
pub fn renew() -> bool {
    REGION.get().is_some_and(Region::renew)
}

#[cfg(test)]
mod tests {
    use super::Shared;
    use std::time::Duration;

    fn page() -> Box<Shared> {
        // SAFETY: every field of Shared is an atomic or an array of atomics, for which
        // all-zero bytes are a valid value (the state of a fresh page).
        unsafe { Box::<Shared>::new_zeroed().assume_init() }
    }

    #[test]
    fn the_writer_takes_the_path_a_setter_is_writing_not_a_torn_one() {
        let s: &'static Shared = Box::leak(page());
        assert!(s.try_set_output("/tmp/first.trace", || true));
        // The setter holds the path (its check takes 50 ms) while the writer comes to
        // create the trace: the writer waits, and takes the new path whole.
        let setter = std::thread::spawn(move || {
            s.try_set_output("/tmp/second.trace", || {
                std::thread::sleep(Duration::from_millis(50));
                true
            })
        });
        std::thread::sleep(Duration::from_millis(10));
        assert_eq!(s.take_output().as_deref(), Some("/tmp/second.trace"));
        assert!(setter.join().unwrap());
        // Taken: no later call moves it, and the writer keeps finding the same path.
        assert!(!s.try_set_output("/tmp/third.trace", || true));
        assert_eq!(s.take_output().as_deref(), Some("/tmp/second.trace"));
    }

    #[test]
    fn a_refused_change_leaves_the_path_as_it_was() {
        let s = page();
        assert!(!s.try_set_output("/tmp/late.trace", || false));
        assert_eq!(s.take_output(), None);
    }
}
