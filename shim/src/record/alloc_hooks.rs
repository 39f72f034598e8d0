//! Seeing the program's allocations when another allocator comes before rprof in the
//! lookup order (`LD_PRELOAD="libtcmalloc.so.4 librprof.so"`, or a program linked with
//! jemalloc): the program's malloc calls never reach the shim's entry points, so the shim
//! registers with that allocator's own hooks instead: gperftools' `MallocHook_AddNewHook`
//! and `MallocHook_AddDeleteHook`, or jemalloc's `experimental.hooks.install`. Blocks are
//! sized with that allocator's own `malloc_usable_size`.
//!
//! The hooks run inside the allocator, on the program's threads: they count through the
//! same paths as the shim's entry points (`memory.rs`), and skip everything while the
//! thread is inside the shim (its own slow paths call libc functions that allocate).

use crate::{record::memory, record::native_stack, record::thread_state, sys::log};
use libc::{c_char, c_int, c_void, size_t};
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering::Relaxed};

type UsableSize = unsafe extern "C" fn(*mut c_void) -> size_t;

/// The first allocator's `malloc_usable_size`, once hooks are installed.
static USABLE: AtomicPtr<()> = AtomicPtr::new(std::ptr::null_mut());
/// Hooks are installed: allocation stacks are unwound by DWARF (allocators are built
/// without frame pointers, so a frame-pointer walk from inside one loses the caller).
static HOOKED: AtomicBool = AtomicBool::new(false);

pub fn hooked() -> bool {
    HOOKED.load(Relaxed)
}

/// Where the program's malloc calls go, found in the constructor.
pub enum Served {
    /// By the shim's entry points (which forward to `allocator::next`).
    Shim,
    /// By an allocator before the shim, whose hooks now report to it.
    Hooked(String),
    /// By an allocator before the shim that offers no hooks: memory is not profiled.
    Unseen(String),
}

/// Finds which allocator serves the program and, when it is not the shim and `memory` is
/// on, installs that allocator's hooks. Runs in the constructor, before other threads.
pub fn attach(memory: bool) -> Served {
    if !memory || reaches_shim() {
        return Served::Shim;
    }
    // SAFETY: dlsym with RTLD_DEFAULT only reads the loader's tables.
    let first = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"malloc".as_ptr()) } as usize;
    // A tool that redirects libc's functions wholesale (valgrind) leaves the lookup order
    // alone: the first malloc is still the shim's, yet its calls go elsewhere.
    let name = if native_stack::in_shim(first) {
        "a malloc replacement outside the lookup order (a tool such as valgrind)".to_string()
    } else {
        crate::sys::allocator::object_name(first)
    };
    // The first allocator's own symbols, looked up in the object that defines its malloc.
    // (`first` may be a PLT stub in the executable, which dlopen does not find by name:
    // then the global scope, whose first definitions are the allocator's.)
    let handle = match crate::sys::allocator::loaded_handle(first as *const c_void) {
        h if h.is_null() => libc::RTLD_DEFAULT,
        h => h,
    };
    // SAFETY: dlsym on a loaded object's handle only reads the loader's tables.
    let sym = |s: &std::ffi::CStr| unsafe { libc::dlsym(handle, s.as_ptr()) };
    let usable = sym(c"malloc_usable_size");
    if usable.is_null() || native_stack::in_shim(usable as usize) {
        return Served::Unseen(name);
    }
    USABLE.store(usable as *mut (), Relaxed);
    warm_up();
    if !(gperftools(&sym) || jemalloc(&sym)) {
        return Served::Unseen(name);
    }
    // The allocator is the object that defines the usable-size call found above (`first`
    // may be the executable's PLT stub).
    let name = crate::sys::allocator::object_name(usable as usize);
    native_stack::skip_object(usable as usize);
    HOOKED.store(true, Relaxed);
    // The entry points stop counting: nothing reaches them but strays, and the hooks count.
    memory::stop_accounting();
    Served::Hooked(name)
}

/// Whether the program's malloc calls reach the shim's entry points: glibc binds its own
/// internal malloc calls (here `strdup`'s) as the program's bind, so they either pass
/// through the shim's counting malloc or not. (The shim's own calls to `malloc` would go
/// straight to its own definition.) (Asking `dlsym(RTLD_DEFAULT, "malloc")` is not
/// enough: an executable that takes malloc's address has a PLT stub of that name, which is
/// what dlsym returns, e.g. Debian's python3.11.)
fn reaches_shim() -> bool {
    let before = thread_state::with(|t| t.allocs.get());
    with_program_block(|_| {});
    thread_state::with(|t| t.allocs.get()) != before
}

/// Asks the size of one block before any hook exists, so that whatever the allocator sets
/// up on its first size call (and allocates for it) is done.
fn warm_up() {
    with_program_block(|p| {
        usable(p);
    });
}

/// Runs `f` on a block that libc allocates the way the program's calls do (a `strdup`),
/// then frees it with the program's own `free`: the shim's `free` would forward to the
/// allocator after it, whatever served the block.
fn with_program_block(f: impl FnOnce(*mut c_void)) {
    // SAFETY: a strdup of a static string, handed to `f` and freed once; the global `free`
    // always exists. black_box keeps the compiler from eliding the pair (it knows strdup).
    unsafe {
        let p = std::hint::black_box(libc::strdup(c"rprof".as_ptr()));
        let free = libc::dlsym(libc::RTLD_DEFAULT, c"free".as_ptr());
        if p.is_null() || free.is_null() {
            return;
        }
        f(p.cast());
        std::mem::transmute::<*mut c_void, unsafe extern "C" fn(*mut c_void)>(free)(p.cast());
    }
}

/// Says how memory is seen when rprof does not serve the program's malloc itself.
pub fn report(served: &Served) {
    match served {
        Served::Shim => {}
        Served::Hooked(name) => log::info(&format!(
            "malloc is served by {name} (preloaded before rprof); memory is seen through its hooks"
        )),
        Served::Unseen(name) => log::warn(&format!(
            "malloc is served by {name}, which comes before rprof and offers no hooks rprof \
             knows: memory is not profiled (put librprof.so first in LD_PRELOAD)"
        )),
    }
}

#[inline(always)]
fn usable(p: *mut c_void) -> usize {
    let f = USABLE.load(Relaxed);
    // SAFETY: set before any hook is installed, to the allocator's malloc_usable_size,
    // called on a block of that allocator that is live while the hook runs.
    unsafe { std::mem::transmute::<*mut (), UsableSize>(f)(p) }
}

fn outside_shim() -> bool {
    thread_state::with(|t| !t.busy.get())
}

/// The usable size of `p`, asked with the reentrancy guard held: the allocator's size call
/// may allocate (tcmalloc's sets up its MallocExtension on first use), and that
/// allocation's hook must not ask again. None inside the shim.
fn sized(p: *mut c_void) -> Option<usize> {
    thread_state::guarded(|_| usable(p))
}

fn allocated(p: *mut c_void) {
    if p.is_null() {
        return;
    }
    if let Some(n) = sized(p) {
        memory::on_alloc(p as usize, n);
    }
}

fn freed(p: *mut c_void) {
    if p.is_null() {
        return;
    }
    if let Some(n) = sized(p) {
        memory::on_free(p as usize, n);
    }
}

// gperftools (tcmalloc): hooks take the block (and the size asked for, unused: the usable
// size is what frees will report).

extern "C" fn tc_new(p: *const c_void, _size: size_t) {
    allocated(p as *mut c_void)
}

extern "C" fn tc_delete(p: *const c_void) {
    freed(p as *mut c_void)
}

fn gperftools(sym: &dyn Fn(&std::ffi::CStr) -> *mut c_void) -> bool {
    type AddNew = unsafe extern "C" fn(extern "C" fn(*const c_void, size_t)) -> c_int;
    type AddDelete = unsafe extern "C" fn(extern "C" fn(*const c_void)) -> c_int;
    let (add_new, add_delete) = (
        sym(c"MallocHook_AddNewHook"),
        sym(c"MallocHook_AddDeleteHook"),
    );
    if add_new.is_null() || add_delete.is_null() {
        return false;
    }
    // SAFETY: gperftools' C hook API, with hooks of the signatures it declares
    // (malloc_hook_c.h); both return 1 on success.
    unsafe {
        std::mem::transmute::<*mut c_void, AddDelete>(add_delete)(tc_delete) == 1
            && std::mem::transmute::<*mut c_void, AddNew>(add_new)(tc_new) == 1
    }
}

// jemalloc 5.x: `experimental.hooks.install` takes this struct (include/jemalloc/internal/
// hook.h); mallctl checks its size, so a jemalloc with another layout refuses it.

#[repr(C)]
struct JeHooks {
    alloc: extern "C" fn(*mut c_void, c_int, *mut c_void, usize, *const usize),
    dalloc: extern "C" fn(*mut c_void, c_int, *mut c_void, *const usize),
    expand: extern "C" fn(*mut c_void, c_int, *mut c_void, usize, usize, usize, *const usize),
    extra: *mut c_void,
}

// hook_alloc_e's realloc and rallocx, and hook_dalloc_e's: a realloc that moved the block
// calls the alloc hook on the new block (the old one still live, its address in args[0])
// and then the dalloc hook on the old one.
const JE_ALLOC_REALLOC: c_int = 7;
const JE_ALLOC_RALLOCX: c_int = 8;
const JE_DALLOC_REALLOC: c_int = 3;
const JE_DALLOC_RALLOCX: c_int = 4;

extern "C" fn je_alloc(_: *mut c_void, kind: c_int, p: *mut c_void, _: usize, args: *const usize) {
    let moved_from = match kind {
        // SAFETY: jemalloc passes the call's three raw arguments for every alloc hook.
        JE_ALLOC_REALLOC | JE_ALLOC_RALLOCX if !args.is_null() => unsafe { *args },
        _ => 0,
    };
    if moved_from == 0 {
        return allocated(p);
    }
    if p.is_null() {
        return;
    }
    // Counted as a realloc, as the shim's own realloc counts one: only growth is new.
    if let (Some(old), Some(new)) = (sized(moved_from as *mut c_void), sized(p)) {
        memory::on_realloc(moved_from, old, p as usize, new);
    }
}

extern "C" fn je_dalloc(_: *mut c_void, kind: c_int, p: *mut c_void, _: *const usize) {
    // The old half of a moved realloc was counted with its new half.
    if kind != JE_DALLOC_REALLOC && kind != JE_DALLOC_RALLOCX {
        freed(p)
    }
}

/// A realloc that grew or shrank the block in place.
extern "C" fn je_expand(
    _: *mut c_void,
    _kind: c_int,
    p: *mut c_void,
    old: usize,
    new: usize,
    _: usize,
    _: *const usize,
) {
    if !p.is_null() && outside_shim() {
        memory::on_realloc(p as usize, old, p as usize, new);
    }
}

fn jemalloc(sym: &dyn Fn(&std::ffi::CStr) -> *mut c_void) -> bool {
    type Mallctl =
        unsafe extern "C" fn(*const c_char, *mut c_void, *mut size_t, *mut c_void, size_t) -> c_int;
    let mallctl = sym(c"mallctl");
    if mallctl.is_null() {
        return false;
    }
    let mut hooks = JeHooks {
        alloc: je_alloc,
        dalloc: je_dalloc,
        expand: je_expand,
        extra: std::ptr::null_mut(),
    };
    let mut handle: *mut c_void = std::ptr::null_mut();
    let mut len = std::mem::size_of::<*mut c_void>();
    // SAFETY: mallctl's documented calling convention: the old value (the hook handle) is
    // written to `handle`, the new one (the hooks, copied by jemalloc) read from `hooks`.
    let rc = unsafe {
        std::mem::transmute::<*mut c_void, Mallctl>(mallctl)(
            c"experimental.hooks.install".as_ptr(),
            (&mut handle as *mut *mut c_void).cast(),
            &mut len,
            (&mut hooks as *mut JeHooks).cast(),
            std::mem::size_of::<JeHooks>(),
        )
    };
    rc == 0 && !handle.is_null()
}
