//! Which allocator serves the program's malloc calls, and how the shim reaches it.
//!
//! The shim's malloc family forwards to the next definition after it in the lookup order
//! (`RTLD_NEXT`): glibc's own, or tcmalloc's or jemalloc's when one is preloaded after
//! rprof. glibc's block sizes are read from its chunk headers, inline; any other
//! allocator's come from its own `malloc_usable_size`. An allocator preloaded *before*
//! rprof serves the program directly, and the shim sees its calls through that allocator's
//! hooks instead (`alloc_hooks.rs`).
//!
//! The shim's own heap (`global_alloc.rs`) is always glibc's allocator, found by its own
//! symbols in libc's link map, not by the `__libc_malloc` link names: tcmalloc exports
//! those too, and a shim that took tcmalloc's blocks for glibc chunks read garbage sizes
//! from them (and livelocked walking sample points across "2^64-byte" blocks).
//!
//! Nothing is known before the first call: the tables start at boot entry points that
//! resolve them. `dlsym` itself may allocate (an error string for a missing symbol); those
//! calls, made by the resolving thread, are served from a small static arena whose blocks
//! are never freed.

use libc::{c_char, c_void, size_t};
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, AtomicU8, AtomicUsize, Ordering};

type Malloc = unsafe extern "C" fn(size_t) -> *mut c_void;
type Calloc = unsafe extern "C" fn(size_t, size_t) -> *mut c_void;
type Realloc = unsafe extern "C" fn(*mut c_void, size_t) -> *mut c_void;
type Free = unsafe extern "C" fn(*mut c_void);
type Memalign = unsafe extern "C" fn(size_t, size_t) -> *mut c_void;
type UsableSize = unsafe extern "C" fn(*mut c_void) -> size_t;

/// One allocator's entry points. Each slot starts at a boot function that resolves every
/// table and then calls the resolved entry.
struct Table {
    malloc: AtomicPtr<()>,
    calloc: AtomicPtr<()>,
    realloc: AtomicPtr<()>,
    free: AtomicPtr<()>,
    memalign: AtomicPtr<()>,
}

impl Table {
    /// Table number `T` (`OWN` or `PROGRAM`) before resolution.
    const fn boot<const T: usize>() -> Table {
        Table {
            malloc: AtomicPtr::new(boot_malloc::<T> as *mut ()),
            calloc: AtomicPtr::new(boot_calloc::<T> as *mut ()),
            realloc: AtomicPtr::new(boot_realloc::<T> as *mut ()),
            free: AtomicPtr::new(boot_free::<T> as *mut ()),
            memalign: AtomicPtr::new(boot_memalign::<T> as *mut ()),
        }
    }
}

const OWN: usize = 0;
const PROGRAM: usize = 1;

/// glibc's own allocator: the shim's heap, and the program's when nothing else is
/// preloaded.
static LIBC: Table = Table::boot::<OWN>();
/// The allocator the program's calls into the shim forward to.
static NEXT: Table = Table::boot::<PROGRAM>();

fn table(t: usize) -> &'static Table {
    if t == OWN {
        &LIBC
    } else {
        &NEXT
    }
}
/// The next allocator's `malloc_usable_size`; null while it is glibc's (read inline).
static NEXT_USABLE: AtomicPtr<()> = AtomicPtr::new(std::ptr::null_mut());
/// The next allocator is not glibc's.
static FOREIGN: AtomicBool = AtomicBool::new(false);
/// The next allocator has no `malloc_usable_size`, so the shim cannot count its blocks.
static UNSIZED: AtomicBool = AtomicBool::new(false);

const UNRESOLVED: u8 = 0;
const RESOLVING: u8 = 1;
const RESOLVED: u8 = 2;
static STATE: AtomicU8 = AtomicU8::new(UNRESOLVED);
static RESOLVER: AtomicI32 = AtomicI32::new(0);

#[inline(always)]
unsafe fn call<F: Copy>(slot: &AtomicPtr<()>) -> F {
    let f = slot.load(Ordering::Relaxed);
    // SAFETY: every slot holds a function of the type its accessor names (a boot function
    // or the resolved entry point of that name), and F is that type.
    std::mem::transmute_copy::<*mut (), F>(&f)
}

/// The program-facing entry points (the interposed malloc family calls these).
pub mod next {
    use super::*;

    #[inline(always)]
    pub unsafe fn malloc(n: size_t) -> *mut c_void {
        call::<Malloc>(&NEXT.malloc)(n)
    }

    #[inline(always)]
    pub unsafe fn calloc(k: size_t, n: size_t) -> *mut c_void {
        call::<Calloc>(&NEXT.calloc)(k, n)
    }

    /// A block from the boot arena moves out of it (to the resolved allocator).
    #[inline(always)]
    pub unsafe fn realloc(p: *mut c_void, n: size_t) -> *mut c_void {
        if in_arena(p) {
            return out_of_arena(p, n, &NEXT);
        }
        call::<Realloc>(&NEXT.realloc)(p, n)
    }

    /// Arena blocks are never freed.
    #[inline(always)]
    pub unsafe fn free(p: *mut c_void) {
        if !in_arena(p) {
            call::<Free>(&NEXT.free)(p)
        }
    }

    #[inline(always)]
    pub unsafe fn memalign(align: size_t, n: size_t) -> *mut c_void {
        call::<Memalign>(&NEXT.memalign)(align, n)
    }

    /// Usable bytes of a live block `p` (not null) of the next allocator.
    #[inline(always)]
    pub unsafe fn usable_size(p: *mut c_void) -> usize {
        if FOREIGN.load(Ordering::Relaxed) {
            return foreign_usable_size(p);
        }
        glibc_usable_size(p)
    }
}

/// glibc's own allocator, for the shim's heap.
pub mod libc_heap {
    use super::*;

    #[inline(always)]
    pub unsafe fn malloc(n: size_t) -> *mut c_void {
        call::<Malloc>(&LIBC.malloc)(n)
    }

    #[inline(always)]
    pub unsafe fn realloc(p: *mut c_void, n: size_t) -> *mut c_void {
        if in_arena(p) {
            return out_of_arena(p, n, &LIBC);
        }
        call::<Realloc>(&LIBC.realloc)(p, n)
    }

    #[inline(always)]
    pub unsafe fn free(p: *mut c_void) {
        if !in_arena(p) {
            call::<Free>(&LIBC.free)(p)
        }
    }

    #[inline(always)]
    pub unsafe fn memalign(align: size_t, n: size_t) -> *mut c_void {
        call::<Memalign>(&LIBC.memalign)(align, n)
    }
}

/// Bytes usable in a glibc chunk, read from its header (what glibc's `malloc_usable_size`
/// returns): the size word sits just before the pointer; bit 1 marks an mmapped chunk,
/// whose header takes one more word. Boot-arena blocks carry the same header.
///
/// # Safety
/// `p` must be a live block of glibc's allocator or of the boot arena.
#[inline(always)]
unsafe fn glibc_usable_size(p: *mut c_void) -> usize {
    let word = *(p as *const usize).sub(1);
    (word & !7) - if word & 2 != 0 { 16 } else { 8 }
}

#[cold]
unsafe fn foreign_usable_size(p: *mut c_void) -> usize {
    if in_arena(p) {
        return glibc_usable_size(p);
    }
    let f = NEXT_USABLE.load(Ordering::Relaxed);
    if f.is_null() {
        return 0;
    }
    // SAFETY: NEXT_USABLE holds the next allocator's malloc_usable_size.
    std::mem::transmute::<*mut (), UsableSize>(f)(p)
}

/// Whether the shim can size the next allocator's blocks (and so count them).
pub fn sized() -> bool {
    resolve();
    !UNSIZED.load(Ordering::Relaxed)
}

/// The next allocator's name for messages: the file that defines it, `None` for glibc.
pub fn foreign_name() -> Option<String> {
    resolve();
    if !FOREIGN.load(Ordering::Relaxed) {
        return None;
    }
    Some(object_name(NEXT.malloc.load(Ordering::Relaxed) as usize))
}

/// The file name of the loaded object holding `addr`.
pub fn object_name(addr: usize) -> String {
    // SAFETY: dladdr only reads the loader's tables; dli_fname, when set, is a C string
    // the loader owns for as long as the object stays loaded.
    unsafe {
        let mut info: libc::Dl_info = std::mem::zeroed();
        if libc::dladdr(addr as *const c_void, &mut info) != 0 && !info.dli_fname.is_null() {
            return std::ffi::CStr::from_ptr(info.dli_fname)
                .to_string_lossy()
                .into_owned();
        }
    }
    format!("{addr:#x}")
}

extern "C" {
    fn gnu_get_libc_version() -> *const c_char;
}

/// A handle of the loaded object holding `addr` (null if none): `dlopen` of its own file
/// with `RTLD_NOLOAD`, which only finds what is loaded already. The reference it takes is
/// kept: the object is in use for the whole run anyway.
pub fn loaded_handle(addr: *const c_void) -> *mut c_void {
    // SAFETY: dladdr only reads the loader's tables; dli_fname is a C string the loader
    // owns while the object is loaded, and dlopen with RTLD_NOLOAD loads nothing.
    unsafe {
        let mut info: libc::Dl_info = std::mem::zeroed();
        if libc::dladdr(addr, &mut info) == 0 || info.dli_fname.is_null() {
            return std::ptr::null_mut();
        }
        libc::dlopen(info.dli_fname, libc::RTLD_NOLOAD | libc::RTLD_LAZY)
    }
}

/// Resolves both tables once. True when the tables can be used; false for a call made by
/// the resolving thread from inside the resolution (dlsym allocating), which must take the
/// arena.
fn resolve() -> bool {
    match STATE.compare_exchange(UNRESOLVED, RESOLVING, Ordering::Acquire, Ordering::Acquire) {
        Ok(_) => {
            // SAFETY: gettid has no preconditions.
            RESOLVER.store(unsafe { libc::gettid() }, Ordering::Relaxed);
            // SAFETY: runs once, in the one thread that won the state above.
            unsafe { resolve_tables() };
            STATE.store(RESOLVED, Ordering::Release);
            true
        }
        Err(RESOLVED) => true,
        Err(_) => {
            // SAFETY: gettid has no preconditions.
            if RESOLVER.load(Ordering::Relaxed) == unsafe { libc::gettid() } {
                return false;
            }
            while STATE.load(Ordering::Acquire) != RESOLVED {
                // SAFETY: sched_yield has no preconditions.
                unsafe { libc::sched_yield() };
            }
            true
        }
    }
}

/// Resolves the tables early (the constructor): from then on no call takes a boot path.
pub fn init() {
    resolve();
}

unsafe fn resolve_tables() {
    // glibc's own definitions: dlsym with libc's handle searches libc (and the loader)
    // only, whatever is preloaded. The handle comes from the file holding an address
    // inside libc, opened again without loading anything.
    let libc_handle = match loaded_handle(gnu_get_libc_version as *const c_void) {
        h if h.is_null() => libc::RTLD_NEXT,
        h => h,
    };
    let sym = |handle: *mut c_void, name: &std::ffi::CStr| -> *mut () {
        libc::dlsym(handle, name.as_ptr()) as *mut ()
    };
    let own = [
        sym(libc_handle, c"malloc"),
        sym(libc_handle, c"calloc"),
        sym(libc_handle, c"realloc"),
        sym(libc_handle, c"free"),
        sym(libc_handle, c"memalign"),
    ];
    if own.iter().any(|f| f.is_null()) {
        // Not glibc (or a loader that answers nothing): the link names are all there is.
        fill(&LIBC, fallback_libc());
    } else {
        fill(&LIBC, own);
    }
    let next_malloc = sym(libc::RTLD_NEXT, c"malloc");
    if next_malloc.is_null() || next_malloc == LIBC.malloc.load(Ordering::Relaxed) {
        fill(&NEXT, load(&LIBC));
        return;
    }
    let mut next = [
        next_malloc,
        sym(libc::RTLD_NEXT, c"calloc"),
        sym(libc::RTLD_NEXT, c"realloc"),
        sym(libc::RTLD_NEXT, c"free"),
        sym(libc::RTLD_NEXT, c"memalign"),
    ];
    if next[4].is_null() {
        next[4] = sym(libc::RTLD_NEXT, c"aligned_alloc");
    }
    if next[..4].iter().any(|f| f.is_null()) {
        // An allocator with a malloc but no free of its own cannot be forwarded to half:
        // glibc serves the program, as it would without the shim in between.
        fill(&NEXT, load(&LIBC));
        return;
    }
    if next[4].is_null() {
        next[4] = no_memalign as *mut ();
    }
    // How to size its blocks first: a thread that sees the new entries must size them so.
    let usable = sym(libc::RTLD_NEXT, c"malloc_usable_size");
    UNSIZED.store(usable.is_null(), Ordering::Relaxed);
    NEXT_USABLE.store(usable, Ordering::Relaxed);
    FOREIGN.store(true, Ordering::Release);
    fill(&NEXT, next);
}

unsafe extern "C" fn no_memalign(_: size_t, _: size_t) -> *mut c_void {
    *libc::__errno_location() = libc::ENOMEM;
    std::ptr::null_mut()
}

/// glibc's `__libc_*` link names: used only where libc's own symbols cannot be looked up.
fn fallback_libc() -> [*mut (); 5] {
    extern "C" {
        fn __libc_malloc(size: size_t) -> *mut c_void;
        fn __libc_calloc(n: size_t, size: size_t) -> *mut c_void;
        fn __libc_realloc(p: *mut c_void, size: size_t) -> *mut c_void;
        fn __libc_free(p: *mut c_void);
        fn __libc_memalign(align: size_t, size: size_t) -> *mut c_void;
    }
    [
        __libc_malloc as *mut (),
        __libc_calloc as *mut (),
        __libc_realloc as *mut (),
        __libc_free as *mut (),
        __libc_memalign as *mut (),
    ]
}

fn fill(t: &Table, f: [*mut (); 5]) {
    let slots = [&t.malloc, &t.calloc, &t.realloc, &t.free, &t.memalign];
    for (slot, f) in slots.into_iter().zip(f) {
        slot.store(f, Ordering::Relaxed);
    }
}

fn load(t: &Table) -> [*mut (); 5] {
    [&t.malloc, &t.calloc, &t.realloc, &t.free, &t.memalign].map(|s| s.load(Ordering::Relaxed))
}

// The boot entry points of table `T`: resolve, then call the resolved entry of the same
// table (a block must go back to the allocator it came from), or take the arena when
// called from inside the resolution.

unsafe extern "C" fn boot_malloc<const T: usize>(n: size_t) -> *mut c_void {
    if !resolve() {
        return arena_alloc(n, 16);
    }
    call::<Malloc>(&table(T).malloc)(n)
}

unsafe extern "C" fn boot_calloc<const T: usize>(k: size_t, n: size_t) -> *mut c_void {
    if !resolve() {
        // Arena memory is static and never reused: already zero.
        return match k.checked_mul(n) {
            Some(total) => arena_alloc(total, 16),
            None => std::ptr::null_mut(),
        };
    }
    call::<Calloc>(&table(T).calloc)(k, n)
}

unsafe extern "C" fn boot_realloc<const T: usize>(p: *mut c_void, n: size_t) -> *mut c_void {
    if !resolve() {
        let q = arena_alloc(n, 16);
        if !q.is_null() && !p.is_null() {
            // Only arena blocks exist before the tables are resolved.
            let old = glibc_usable_size(p);
            std::ptr::copy_nonoverlapping(p as *const u8, q as *mut u8, old.min(n));
        }
        return q;
    }
    if in_arena(p) {
        return out_of_arena(p, n, table(T));
    }
    call::<Realloc>(&table(T).realloc)(p, n)
}

unsafe extern "C" fn boot_free<const T: usize>(p: *mut c_void) {
    // Only arena blocks exist before the tables are resolved, and those are never freed.
    if resolve() && !in_arena(p) {
        call::<Free>(&table(T).free)(p)
    }
}

unsafe extern "C" fn boot_memalign<const T: usize>(align: size_t, n: size_t) -> *mut c_void {
    if !resolve() {
        return arena_alloc(n, align);
    }
    call::<Memalign>(&table(T).memalign)(align, n)
}

// The boot arena.

const ARENA_BYTES: usize = 256 << 10;

#[repr(C, align(4096))]
struct Arena(UnsafeCell<[u8; ARENA_BYTES]>);

// SAFETY: blocks are handed out by an atomic bump pointer, each to one caller only.
unsafe impl Sync for Arena {}

static ARENA: Arena = Arena(UnsafeCell::new([0; ARENA_BYTES]));
static ARENA_USED: AtomicUsize = AtomicUsize::new(0);

#[inline(always)]
fn in_arena(p: *mut c_void) -> bool {
    (p as usize).wrapping_sub(ARENA.0.get() as usize) < ARENA_BYTES
}

/// A block of `n` bytes aligned to `align` (a power of two), with a glibc-style size word
/// before it so that the inline usable-size read works on it; null when the arena is full.
unsafe fn arena_alloc(n: size_t, align: size_t) -> *mut c_void {
    let align = align.max(16);
    if !align.is_power_of_two() || n > ARENA_BYTES {
        return std::ptr::null_mut();
    }
    let base = ARENA.0.get() as usize;
    // A chunk: one header word, rounded up so that usable = chunk - 8 >= n.
    let chunk = (n + 8 + 15) & !15;
    let mut used = ARENA_USED.load(Ordering::Relaxed);
    loop {
        let start = (base + used + 8 + align - 1) & !(align - 1);
        let end = start - 8 + chunk;
        if end > base + ARENA_BYTES {
            return std::ptr::null_mut();
        }
        match ARENA_USED.compare_exchange_weak(
            used,
            end - base,
            Ordering::Relaxed,
            Ordering::Relaxed,
        ) {
            Ok(_) => {
                // SAFETY: [start - 8, end) lies inside the arena and now belongs to this
                // caller alone.
                *((start - 8) as *mut usize) = chunk;
                return start as *mut c_void;
            }
            Err(now) => used = now,
        }
    }
}

/// Moves an arena block to table `t`'s allocator.
unsafe fn out_of_arena(p: *mut c_void, n: size_t, t: &Table) -> *mut c_void {
    let q = call::<Malloc>(&t.malloc)(n);
    if !q.is_null() {
        std::ptr::copy_nonoverlapping(p as *const u8, q as *mut u8, glibc_usable_size(p).min(n));
    }
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arena_blocks_are_aligned_sized_and_apart() {
        // SAFETY: arena blocks are plain static memory.
        unsafe {
            let a = arena_alloc(100, 16);
            let b = arena_alloc(1, 4096);
            let c = arena_alloc(0, 16);
            for (p, n, align) in [(a, 100, 16), (b, 1, 4096), (c, 0, 16)] {
                assert!(in_arena(p));
                assert_eq!(p as usize % align, 0);
                assert!(glibc_usable_size(p) >= n);
            }
            assert!(b as usize >= a as usize + 100);
            assert!(c as usize > b as usize);
            assert!(arena_alloc(ARENA_BYTES, 16).is_null());
            assert!(!in_arena(std::ptr::null_mut()));
        }
    }

    #[test]
    fn glibc_is_found_by_its_own_symbols() {
        init();
        // No other allocator is preloaded into the test runner.
        assert!(!FOREIGN.load(Ordering::Relaxed));
        assert_eq!(foreign_name(), None);
        // SAFETY: a plain allocation through the resolved table, freed by it.
        unsafe {
            let p = libc_heap::malloc(1000);
            assert!(!p.is_null() && !in_arena(p));
            assert!(glibc_usable_size(p) >= 1000);
            assert_eq!(glibc_usable_size(p), libc::malloc_usable_size(p));
            libc_heap::free(p);
        }
    }
}
