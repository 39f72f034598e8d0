//! CPython frame probe: finds the calling thread's Python stack by reading interpreter memory
//! directly, from a signal handler or a malloc hook. The per-version layouts and the readers
//! are C (`shim/src/python/rprof_probe.h`, guarded in `probe.c`); this module only wraps them, and
//! decodes line tables and names on the writer side.

mod linetable;

pub use linetable::charged_line;

use std::ffi::{c_char, c_int, CStr};

/// One Python frame as captured in a walk.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct RawFrame {
    pub code: usize,
    /// Byte offset into the code's bytecode as used by that version's line table; -1 unknown.
    pub addrq: i32,
    pub _pad: u32,
}

/// Where a str object's data lies, in the interpreter's memory.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct StrRef {
    pub ptr: usize,
    /// Code points.
    pub len: usize,
    /// Bytes per code point: 1 (latin-1), 2 or 4.
    pub kind: u8,
}

/// Identity and string locations of a code object.
#[derive(Clone, Copy, Debug)]
pub struct CodeRef {
    /// Code, filename, qualname and line-table object addresses: addresses are reused after a
    /// code object dies, so identity needs all four.
    pub key: [usize; 4],
    pub filename: StrRef,
    /// co_qualname (3.11+) or co_name (3.10 and older).
    pub qualname: StrRef,
    /// (ptr, len in bytes) of the co_linetable / co_lnotab data.
    pub linetable: (usize, usize),
    pub first_line: i32,
}

#[derive(Debug)]
pub enum DetectError {
    NotPython,
    /// One line for the log, e.g. "CPython 3.7 is not supported; native-only profiling".
    Unsupported(String),
}

/// Room for `struct rprof_py_probe` (probe.c asserts it fits, and checks `size` at run time).
const STATE_BYTES: usize = 512;

#[repr(C, align(16))]
struct State([u8; STATE_BYTES]);

/// The detected interpreter. Immutable after `detect`, so it can be shared with handlers.
pub struct Probe {
    version_hex: u32,
    state: State,
    /// The eval loop's text (`_PyEval_EvalFrameDefault`, start and end), 0..0 when its
    /// symbol or size is not known: what runs there is the interpreter's own work.
    eval_loop: (usize, usize),
}

#[repr(C)]
struct FfiCodeRef {
    key: [usize; 4],
    filename: StrRef,
    qualname: StrRef,
    linetable: usize,
    linetable_len: usize,
    first_line: i32,
}

const DETECT_OK: c_int = 0;
const DETECT_NOT_PYTHON: c_int = 1;

extern "C" {
    fn rprof_probe_detect(state: *mut State, size: usize, msg: *mut c_char, msglen: usize)
        -> c_int;
    fn rprof_probe_version_hex(state: *const State) -> u32;
    fn rprof_probe_is_interpreter_pc(state: *const State, pc: usize) -> c_int;
    fn rprof_probe_walk(
        state: *const State,
        out: *mut RawFrame,
        cap: usize,
        truncated: *mut c_int,
    ) -> usize;
    fn rprof_probe_code_ref(state: *const State, code: usize, out: *mut FfiCodeRef) -> c_int;
    fn rprof_probe_copy(src: usize, dst: *mut u8, len: usize) -> c_int;
    fn rprof_probe_on_fault();
    fn rprof_probe_finalizing(state: *const State) -> c_int;
    fn rprof_probe_thread_name(
        state: *const State,
        out: *mut u8,
        cap: usize,
        kind: *mut u8,
    ) -> usize;
}

impl Probe {
    /// Init time only (library constructor, before Python is initialised): uses dlsym and
    /// dl_iterate_phdr. Finds CPython through `_PyRuntime`, picks the layout for its version
    /// (cross-checked against `_Py_DebugOffsets` on 3.13+), and records the interpreter's text.
    pub fn detect() -> Result<Probe, DetectError> {
        let mut probe = Probe {
            version_hex: 0,
            state: State([0; STATE_BYTES]),
            eval_loop: (0, 0),
        };
        let mut msg = [0 as c_char; 192];
        // SAFETY: the state buffer is STATE_BYTES long, as passed, and msg is a buffer of
        // msg.len() bytes the C side NUL-terminates; detect runs at init, in one thread.
        let rc = unsafe {
            rprof_probe_detect(&mut probe.state, STATE_BYTES, msg.as_mut_ptr(), msg.len())
        };
        match rc {
            DETECT_OK => {
                // SAFETY: detection succeeded, so the state holds a detected layout.
                probe.version_hex = unsafe { rprof_probe_version_hex(&probe.state) };
                probe.eval_loop = eval_loop();
                Ok(probe)
            }
            DETECT_NOT_PYTHON => Err(DetectError::NotPython),
            _ => {
                // SAFETY: on failure the C side wrote a NUL-terminated message into msg (at
                // most msg.len() bytes).
                let why = unsafe { CStr::from_ptr(msg.as_ptr()) };
                Err(DetectError::Unsupported(why.to_string_lossy().into_owned()))
            }
        }
    }

    /// Whether the eval loop's text is known (else every interpreter PC is Python).
    pub fn knows_eval_loop(&self) -> bool {
        self.eval_loop.0 != 0
    }

    /// Async-signal-safe: is `pc` in the eval loop itself (not in a C function it calls)?
    pub fn in_eval_loop(&self, pc: usize) -> bool {
        (self.eval_loop.0..self.eval_loop.1).contains(&pc)
    }

    /// PY_VERSION_HEX of the interpreter, e.g. 0x030b07f0 for 3.11.7.
    pub fn version_hex(&self) -> u32 {
        self.version_hex
    }

    /// Async-signal-safe: is `pc` inside the interpreter's executable text (libpython, or the
    /// executable when it is statically linked)?
    pub fn is_interpreter_pc(&self, pc: usize) -> bool {
        // SAFETY: the C side only compares `pc` with the text ranges detection stored in the
        // state.
        unsafe { rprof_probe_is_interpreter_pc(&self.state, pc) != 0 }
    }

    /// Async-signal-safe, allocation- and lock-free, bounded, fault-guarded: the calling
    /// thread's Python frames, innermost first. Returns (frames written, truncated); no frames
    /// when the thread has no Python thread state or Python is not initialised.
    pub fn walk_current_thread(&self, out: &mut [RawFrame]) -> (usize, bool) {
        let mut truncated = 0;
        let n =
            // SAFETY: `out` has out.len() slots, which bound the C walk; its reads of
            // interpreter memory are validated and fault-guarded.
            unsafe { rprof_probe_walk(&self.state, out.as_mut_ptr(), out.len(), &mut truncated) };
        (n, truncated != 0)
    }

    /// Async-signal-safe, fault-guarded: identity and string locations of a code object seen
    /// in a walk. None if it does not validate as a code object with compact str names.
    pub fn code_ref(&self, code: usize) -> Option<CodeRef> {
        let mut r = std::mem::MaybeUninit::<FfiCodeRef>::uninit();
        // SAFETY: the C side fills the FfiCodeRef it is given only when it returns nonzero;
        // its reads are validated and fault-guarded.
        if unsafe { rprof_probe_code_ref(&self.state, code, r.as_mut_ptr()) } == 0 {
            return None;
        }
        // SAFETY: nonzero: the C side filled every field.
        let r = unsafe { r.assume_init() };
        Some(CodeRef {
            key: r.key,
            filename: r.filename,
            qualname: r.qualname,
            linetable: (r.linetable, r.linetable_len),
            first_line: r.first_line,
        })
    }

    /// Async-signal-safe: whether the interpreter has begun finalizing (the program proper
    /// has ended; what it frees from now on is the interpreter tearing down).
    pub fn finalizing(&self) -> bool {
        // SAFETY: one fault-guarded read of a runtime field at an offset detection validated.
        unsafe { rprof_probe_finalizing(&self.state) != 0 }
    }

    /// Async-signal-safe, bounded, fault-guarded: the calling thread's `threading` name
    /// (`Thread._name`, read from the `self` of its outermost frame, `Thread._bootstrap`),
    /// copied into `out` and cut to whole code points: (bytes, bytes per code point). None
    /// when the thread runs no `threading.Thread` or a read did not validate.
    pub fn thread_name(&self, out: &mut [u8]) -> Option<(usize, u8)> {
        let mut kind = 0u8;
        // SAFETY: the C reader writes at most `out.len()` bytes into `out` and one byte
        // into `kind`; its reads of interpreter memory are validated and fault-guarded.
        let n =
            unsafe { rprof_probe_thread_name(&self.state, out.as_mut_ptr(), out.len(), &mut kind) };
        (n > 0).then_some((n, kind))
    }

    /// Async-signal-safe: copies `dst.len()` bytes from `src`; false if the read faulted.
    pub fn copy_guarded(&self, src: usize, dst: &mut [u8]) -> bool {
        // SAFETY: `dst` is writable for dst.len() bytes; the read of `src` is fault-guarded (a
        // bad address returns 0).
        unsafe { rprof_probe_copy(src, dst.as_mut_ptr(), dst.len()) != 0 }
    }
}

/// The first call of the shim's SIGSEGV/SIGBUS handler (installed with SA_NODEFER). If the
/// thread faulted inside a guarded probe read, this does not return: it siglongjmps back to
/// the read, skipping the handler's frames, so the caller must not hold values with
/// destructors. Otherwise it returns and the handler chains to the program's own.
#[inline(always)]
pub fn on_fault() {
    // SAFETY: runs first in the SIGSEGV/SIGBUS handler, as the guard requires; it holds no
    // values with destructors.
    unsafe { rprof_probe_on_fault() }
}

/// Writer side: a str's copied data, `kind` bytes per code point (latin-1 for 1), as a
/// String. Lone surrogates (legal in Python str) become U+FFFD.
pub fn decode_str(kind: u8, bytes: &[u8]) -> String {
    fn from_units(units: impl Iterator<Item = u32>) -> String {
        units
            .map(|c| char::from_u32(c).unwrap_or(char::REPLACEMENT_CHARACTER))
            .collect()
    }
    match kind {
        1 => bytes.iter().map(|&b| char::from(b)).collect(),
        2 => from_units(
            bytes
                .chunks_exact(2)
                .map(|c| u16::from_ne_bytes([c[0], c[1]]) as u32),
        ),
        4 => from_units(
            bytes
                .chunks_exact(4)
                .map(|c| u32::from_ne_bytes([c[0], c[1], c[2], c[3]])),
        ),
        _ => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// glibc's `dladdr1` flag for the symbol's ELF entry (`<dlfcn.h>`), which the libc crate
/// does not name.
const RTLD_DL_SYMENT: libc::c_int = 1;

/// Init time only: the text of `_PyEval_EvalFrameDefault` (its address and its symbol's
/// size, from the dynamic symbol table), or 0..0 when either is unknown.
fn eval_loop() -> (usize, usize) {
    let name = c"_PyEval_EvalFrameDefault";
    // SAFETY: dlsym and dladdr1 read the loader's tables; `info` and `sym` are written by
    // dladdr1 for the call's length, and `sym` points into the loaded object's symbol table,
    // which lives as long as the object (the interpreter is never unloaded).
    unsafe {
        let at = libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr());
        if at.is_null() {
            return (0, 0);
        }
        let mut info: libc::Dl_info = std::mem::zeroed();
        let mut sym: *const libc::Elf64_Sym = std::ptr::null();
        let found = libc::dladdr1(
            at,
            &mut info,
            (&mut sym as *mut *const libc::Elf64_Sym).cast(),
            RTLD_DL_SYMENT,
        );
        if found == 0 || sym.is_null() || (*sym).st_size == 0 {
            return (0, 0);
        }
        let lo = at as usize;
        (lo, lo.saturating_add((*sym).st_size as usize))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ffi_structs_match_c() {
        // The same numbers are _Static_asserts in probe.c.
        assert_eq!(std::mem::size_of::<RawFrame>(), 16);
        assert_eq!(std::mem::size_of::<StrRef>(), 24);
        assert_eq!(std::mem::offset_of!(FfiCodeRef, first_line), 96);
        assert_eq!(std::mem::size_of::<FfiCodeRef>(), 104);
    }

    #[test]
    fn test_binary_is_not_python() {
        assert!(matches!(Probe::detect(), Err(DetectError::NotPython)));
    }

    #[test]
    fn decode_str_kinds() {
        assert_eq!(decode_str(1, b"caf\xe9"), "café");
        let s = "函数𝔘";
        let u16s: Vec<u8> = "函数".encode_utf16().flat_map(u16::to_ne_bytes).collect();
        assert_eq!(decode_str(2, &u16s), "函数");
        let u32s: Vec<u8> = s.chars().flat_map(|c| (c as u32).to_ne_bytes()).collect();
        assert_eq!(decode_str(4, &u32s), s);
        assert_eq!(decode_str(2, &0xd800u16.to_ne_bytes()), "\u{fffd}");
    }

    extern "C" fn segv_handler(_: c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
        on_fault();
        // Not a guarded read: a real crash in this test binary.
        // SAFETY: abort has no preconditions.
        unsafe { libc::abort() };
    }

    /// libc's sigaction: the shim's own interposed `sigaction` is linked into this binary.
    fn real_sigaction(sig: c_int, act: &libc::sigaction, old: *mut libc::sigaction) -> c_int {
        type Sigaction =
            unsafe extern "C" fn(c_int, *const libc::sigaction, *mut libc::sigaction) -> c_int;
        // SAFETY: dlsym with RTLD_NEXT and a NUL-terminated name gives libc's sigaction, whose
        // C signature Sigaction is.
        unsafe {
            let f = libc::dlsym(libc::RTLD_NEXT, c"sigaction".as_ptr());
            assert!(!f.is_null());
            std::mem::transmute::<*mut libc::c_void, Sigaction>(f)(sig, act, old)
        }
    }

    /// Guarded reads of unmapped memory fail instead of crashing, and the guard is gone again
    /// afterwards (the last copy faulting outside any guard would abort).
    #[test]
    fn guarded_reads_survive_faults() {
        let probe = Probe {
            version_hex: 0,
            state: State([0; STATE_BYTES]),
            eval_loop: (0, 0),
        };
        // SAFETY: the test installs a SA_SIGINFO handler with a valid sigaction, maps and
        // unmaps its own page, and reads only through the guard or its own buffers.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = segv_handler as *const () as usize;
            sa.sa_flags = libc::SA_SIGINFO | libc::SA_NODEFER;
            let mut old: libc::sigaction = std::mem::zeroed();
            assert_eq!(real_sigaction(libc::SIGSEGV, &sa, &mut old), 0);
            let page = libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            assert_ne!(page, libc::MAP_FAILED);
            let mut buf = [0u8; 64];
            for _ in 0..1000 {
                assert!(!probe.copy_guarded(page as usize + 8, &mut buf));
            }
            let src = [7u8; 64];
            assert!(probe.copy_guarded(src.as_ptr() as usize, &mut buf));
            assert_eq!(buf, src);
            assert!(!probe.copy_guarded(8, &mut buf));
            libc::munmap(page, 4096);
            real_sigaction(libc::SIGSEGV, &old, std::ptr::null_mut());
        }
    }
}
