//! CPython's own allocators. Small objects come from pymalloc's arenas and never reach
//! malloc one by one, so the shim wraps the interpreter's MEM and OBJ allocator domains
//! (`PyMem_SetAllocator`), sampling their blocks by the same byte budget as malloc's, as
//! Python memory; and its arena allocator, so arenas count in the exact footprint.
//!
//! Installed from the library constructor, before the interpreter starts: CPython keeps
//! allocators set before `Py_Initialize` unless `PYTHONMALLOC` asks for others.
//!
//! Frees cost nothing where it can be arranged (`raw_serves_sampled`): a sampled small
//! block is served by the raw allocator (malloc) instead of pymalloc, as pymalloc serves a
//! request it cannot take itself, so its free goes pymalloc → `PyMem_RawFree` → free, where
//! the shim's own free path sees it. The domains' free is then pymalloc's own, unwrapped:
//! one indirect call and a filter probe fewer for every Python object freed (an object's
//! allocation and free took 24 of the shim's instructions; now 10).

use crate::{record::memory, record::thread_state, shared::counters};
use libc::{c_int, c_void, size_t};
use std::cell::UnsafeCell;

#[repr(C)]
#[derive(Clone, Copy)]
struct PyMemAllocatorEx {
    ctx: *mut c_void,
    malloc: unsafe extern "C" fn(*mut c_void, size_t) -> *mut c_void,
    calloc: unsafe extern "C" fn(*mut c_void, size_t, size_t) -> *mut c_void,
    realloc: unsafe extern "C" fn(*mut c_void, *mut c_void, size_t) -> *mut c_void,
    free: unsafe extern "C" fn(*mut c_void, *mut c_void),
}

#[repr(C)]
#[derive(Clone, Copy)]
struct PyObjectArenaAllocator {
    ctx: *mut c_void,
    alloc: unsafe extern "C" fn(*mut c_void, size_t) -> *mut c_void,
    free: unsafe extern "C" fn(*mut c_void, *mut c_void, size_t),
}

const PYMEM_DOMAIN_MEM: c_int = 1;
const PYMEM_DOMAIN_OBJ: c_int = 2;

/// The interpreter's original allocators, written once at init, then only read.
struct Saved<T>(UnsafeCell<Option<T>>);
// SAFETY: a Saved is written only by `install`, once, at init, before any hook that reads it
// is installed; afterwards it is only read.
unsafe impl<T> Sync for Saved<T> {}

static MEM: Saved<PyMemAllocatorEx> = Saved(UnsafeCell::new(None));
static OBJ: Saved<PyMemAllocatorEx> = Saved(UnsafeCell::new(None));
static ARENA: Saved<PyObjectArenaAllocator> = Saved(UnsafeCell::new(None));

/// `PyMem_RawMalloc` and `PyMem_RawCalloc`, when sampled small blocks are served by them
/// (None: they stay in pymalloc, and the domains' free is wrapped to see theirs).
#[derive(Clone, Copy)]
struct Raw {
    malloc: unsafe extern "C" fn(size_t) -> *mut c_void,
    calloc: unsafe extern "C" fn(size_t, size_t) -> *mut c_void,
}
static RAW: Saved<Raw> = Saved(UnsafeCell::new(None));

#[inline(always)]
fn raw() -> Option<Raw> {
    // SAFETY: RAW is written once by `install`, before any hook that reads it is set.
    unsafe { *RAW.0.get() }
}

unsafe fn sym<T>(name: &std::ffi::CStr) -> Option<T> {
    let p = libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr());
    (!p.is_null()).then(|| std::mem::transmute_copy(&p))
}

/// Whether a sampled small block can be served by the raw allocator. Its free reaches
/// malloc's free only through an allocator that hands blocks it does not own to
/// `PyMem_RawFree`: CPython's pymalloc does (its `address_in_range` test, 3.8 to 3.13), and
/// so does its raw-malloc build (`--without-pymalloc`); both have no context (`ctx` null),
/// and both ignore the one they are called with. The debug hooks (a debug build's default)
/// have a context and a header of their own. (mimalloc, which would free a foreign block,
/// is the allocator of the free-threaded builds, whose frames the probe refuses, so the
/// wrap is never installed there; `PYTHONMALLOC=mimalloc` replaces the wrap at start-up,
/// before any object is allocated.) `frees_seen`: the shim sees malloc's frees (memory
/// accounting is on and malloc is the shim's or hooked).
fn raw_serves_sampled(frees_seen: bool, domains: &[PyMemAllocatorEx]) -> bool {
    frees_seen && domains.iter().all(|d| d.ctx.is_null())
}

/// Wraps the interpreter's allocators. Init time only; false if they cannot be found.
/// `frees_seen`: the shim's free path sees every free that reaches malloc.
pub fn install(frees_seen: bool) -> bool {
    type GetSet = unsafe extern "C" fn(c_int, *mut PyMemAllocatorEx);
    type ArenaGetSet = unsafe extern "C" fn(*mut PyObjectArenaAllocator);
    // SAFETY: the four functions are CPython's own, found by name in the loaded interpreter,
    // with the signatures of its C API; `install` runs once, at init, before the hooks it sets
    // can run, so writing the Saved cells races with nobody; the getters fill the MaybeUninit
    // structs they are given.
    unsafe {
        let (Some(get), Some(set), Some(aget), Some(aset)) = (
            sym::<GetSet>(c"PyMem_GetAllocator"),
            sym::<GetSet>(c"PyMem_SetAllocator"),
            sym::<ArenaGetSet>(c"PyObject_GetArenaAllocator"),
            sym::<ArenaGetSet>(c"PyObject_SetArenaAllocator"),
        ) else {
            return false;
        };
        let domains = [PYMEM_DOMAIN_MEM, PYMEM_DOMAIN_OBJ].map(|domain| {
            let mut orig = std::mem::MaybeUninit::<PyMemAllocatorEx>::uninit();
            get(domain, orig.as_mut_ptr());
            orig.assume_init()
        });
        if let (Some(malloc), Some(calloc), true) = (
            sym(c"PyMem_RawMalloc"),
            sym(c"PyMem_RawCalloc"),
            raw_serves_sampled(frees_seen, &domains),
        ) {
            *RAW.0.get() = Some(Raw { malloc, calloc });
        }
        for ((domain, saved), orig) in [(PYMEM_DOMAIN_MEM, &MEM), (PYMEM_DOMAIN_OBJ, &OBJ)]
            .into_iter()
            .zip(domains)
        {
            let kept = (*saved.0.get()).insert(orig);
            let mut ours = PyMemAllocatorEx {
                // The original allocator itself, not the Option around it: `py_malloc`'s
                // fast path reads its fields by offset.
                ctx: (kept as *mut PyMemAllocatorEx).cast(),
                malloc: py_malloc,
                calloc: py_calloc,
                realloc: py_realloc,
                // Unwrapped when no sampled block stays in it (`raw_serves_sampled`: it
                // then ignores the context it gets, ours).
                free: if raw().is_some() { orig.free } else { py_free },
            };
            set(domain, &mut ours);
        }
        let mut orig = std::mem::MaybeUninit::<PyObjectArenaAllocator>::uninit();
        aget(orig.as_mut_ptr());
        *ARENA.0.get() = Some(orig.assume_init());
        let mut ours = PyObjectArenaAllocator {
            ctx: std::ptr::null_mut(),
            alloc: arena_alloc,
            free: arena_free,
        };
        aset(&mut ours);
    }
    true
}

/// The original allocator our `ctx` points at (set once in `install`, never moved).
unsafe fn orig<'a>(ctx: *mut c_void) -> &'a PyMemAllocatorEx {
    &*(ctx as *const PyMemAllocatorEx)
}

/// pymalloc serves requests up to this size from its pools; only larger ones reach malloc,
/// whose own accounting then has to stand aside. Small ones skip that bookkeeping: most
/// of a Python program's allocations are small objects.
const SMALL_REQUEST: usize = 512;

#[inline(always)]
fn sampled(p: *mut c_void, n: usize) -> *mut c_void {
    if !p.is_null() {
        thread_state::with(|t| memory::spend(t, p as usize, n, true));
    }
    p
}

/// The object allocator's fast path, one call per Python object: a small request that
/// stays within the thread's budget spends it first, then tail-calls pymalloc (no frame
/// of ours around the call). Written out on x86-64: compiled from Rust (the same steps as
/// `py_malloc_checked`) it took 18 instructions, a frame-pointer prologue included (the TLS
/// block's inline asm keeps LLVM from shrink-wrapping it), against these 10 (the TLS
/// block's offset from the thread pointer is read from the GOT and used as `fs:`-relative,
/// the initial-exec model's shortest form).
#[cfg(target_arch = "x86_64")]
#[unsafe(naked)]
unsafe extern "C" fn py_malloc(ctx: *mut c_void, n: size_t) -> *mut c_void {
    // SAFETY: CPython calls this as its allocator with our `ctx`, which points at the
    // original allocator `install` kept (it lives for the process); the thread's TLS block
    // is at its initial-exec offset (from the GOT) from the thread pointer, as
    // `thread_state::with` reaches it. rdi = ctx, rsi = n; rax, rcx and the flags
    // are caller-saved scratch; `py_malloc_checked` gets both arguments unchanged.
    core::arch::naked_asm!(
        "cmp rsi, {small}",
        "ja {checked}",
        "mov rax, qword ptr [rip + rprof_tls_block@GOTTPOFF]",
        "mov rcx, qword ptr fs:[rax + {left}]",
        "sub rcx, rsi",
        "jle {checked}",
        "mov qword ptr fs:[rax + {left}], rcx",
        "mov rax, qword ptr [rdi + {malloc}]",
        "mov rdi, qword ptr [rdi + {ctx}]",
        "jmp rax",
        small = const SMALL_REQUEST,
        checked = sym py_malloc_checked,
        left = const std::mem::offset_of!(thread_state::ThreadState, alloc_left),
        malloc = const std::mem::offset_of!(PyMemAllocatorEx, malloc),
        ctx = const std::mem::offset_of!(PyMemAllocatorEx, ctx),
    )
}

#[cfg(not(target_arch = "x86_64"))]
unsafe extern "C" fn py_malloc(ctx: *mut c_void, n: size_t) -> *mut c_void {
    py_malloc_checked(ctx, n)
}

/// `py_malloc` in Rust: what the fast path above does, and the slow path when the budget
/// runs out or the request is not small.
unsafe extern "C" fn py_malloc_checked(ctx: *mut c_void, n: size_t) -> *mut c_void {
    let o = orig(ctx);
    if n <= SMALL_REQUEST && thread_state::with(|t| memory::spend_ahead(t, n)) {
        return (o.malloc)(o.ctx, n);
    }
    py_malloc_slow(o, n)
}

#[inline(never)]
unsafe fn py_malloc_slow(o: &PyMemAllocatorEx, n: size_t) -> *mut c_void {
    let p = if n <= SMALL_REQUEST {
        if let Some(raw) = raw() {
            return small(n, || (o.malloc)(o.ctx, n), || (raw.malloc)(n));
        }
        (o.malloc)(o.ctx, n)
    } else {
        memory::inside_python_allocator(|| (o.malloc)(o.ctx, n))
    };
    sampled(p, n)
}

/// A small request on the slow path when sampled blocks are served raw: `pooled` allocates
/// it from the domain's allocator (pymalloc), `raw` from the raw one, where it goes when a
/// sample point falls in its bytes.
#[inline(always)]
fn small(
    n: usize,
    pooled: impl FnOnce() -> *mut c_void,
    raw: impl FnOnce() -> *mut c_void,
) -> *mut c_void {
    match thread_state::with(|t| memory::spend_deciding(t, n)) {
        None => pooled(),
        Some(weight) => {
            let p = memory::inside_python_allocator(raw);
            memory::record_sampled(p as usize, n, weight, true);
            p
        }
    }
}

unsafe extern "C" fn py_calloc(ctx: *mut c_void, k: size_t, n: size_t) -> *mut c_void {
    let o = orig(ctx);
    let bytes = k.saturating_mul(n);
    let p = if bytes <= SMALL_REQUEST {
        if let Some(raw) = raw() {
            return small(bytes, || (o.calloc)(o.ctx, k, n), || (raw.calloc)(k, n));
        }
        (o.calloc)(o.ctx, k, n)
    } else {
        memory::inside_python_allocator(|| (o.calloc)(o.ctx, k, n))
    };
    sampled(p, bytes)
}

/// Only growth spends the budget, as for malloc's realloc: the growth is known when the
/// block was large enough to live in malloc (its realloc reports it), else it was at most
/// pymalloc's 512 bytes and the whole new size is counted.
unsafe extern "C" fn py_realloc(ctx: *mut c_void, p: *mut c_void, n: size_t) -> *mut c_void {
    let o = orig(ctx);
    thread_state::with(|t| t.realloc_growth.set(u64::MAX));
    let q = memory::inside_python_allocator(|| (o.realloc)(o.ctx, p, n));
    if !q.is_null() {
        if !p.is_null() {
            memory::moved(p as usize, q as usize);
        }
        let growth = thread_state::with(|t| match t.realloc_growth.get() {
            u64::MAX => n,
            g => g as usize,
        });
        match raw() {
            Some(raw) if n <= SMALL_REQUEST => return small_realloc(o, raw, q, n, growth),
            _ => thread_state::with(|t| memory::spend(t, q as usize, growth, true)),
        }
    }
    q
}

/// A realloc's growth when sampled blocks are served raw and the new block `q` (`n` bytes)
/// may be pymalloc's: sampled, it moves to a raw block of its own (a realloc may move any
/// block), the samples it carried with it.
#[inline(always)]
unsafe fn small_realloc(
    o: &PyMemAllocatorEx,
    raw: Raw,
    q: *mut c_void,
    n: size_t,
    growth: usize,
) -> *mut c_void {
    let Some(weight) = thread_state::with(|t| memory::spend_deciding(t, growth)) else {
        return q;
    };
    let r = memory::inside_python_allocator(|| (raw.malloc)(n.max(1)));
    if r.is_null() {
        return q;
    }
    // SAFETY: q holds n bytes (the realloc's result) and r as many, a new block apart
    // from q.
    std::ptr::copy_nonoverlapping(q.cast::<u8>(), r.cast::<u8>(), n);
    memory::moved(q as usize, r as usize);
    (o.free)(o.ctx, q);
    // Recorded as the growth it was drawn for, as `memory::spend` records a realloc.
    memory::record_sampled(r as usize, growth, weight, true);
    r
}

/// One call per Python object freed: a test of the sampled-block filter's summary bit,
/// then a tail call. A null `p` needs no test of its own: its bit is clear unless some
/// sampled block shares it, and the filter hit's lookup then finds no block at 0.
unsafe extern "C" fn py_free(ctx: *mut c_void, p: *mut c_void) {
    let o = orig(ctx);
    memory::forget(p as usize);
    (o.free)(o.ctx, p)
}

unsafe extern "C" fn arena_alloc(_: *mut c_void, n: size_t) -> *mut c_void {
    let o = (*ARENA.0.get()).unwrap_unchecked();
    let p = (o.alloc)(o.ctx, n);
    if !p.is_null() {
        counters::arena_mapped(n);
    }
    p
}

unsafe extern "C" fn arena_free(_: *mut c_void, p: *mut c_void, n: size_t) {
    let o = (*ARENA.0.get()).unwrap_unchecked();
    counters::arena_unmapped(n);
    (o.free)(o.ctx, p, n)
}
