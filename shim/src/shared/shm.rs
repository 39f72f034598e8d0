//! Memory shared between the program and its writer process: anonymous MAP_SHARED
//! mappings, created before the writer is forked off, so both see the same pages.

/// One shared mapping, at an address fixed for the life of the process. Dropping it
/// unmaps it: a start-up that fails half-way gives back what it had mapped, so a program
/// under a tight address-space limit is not left with less than it had without rprof.
pub struct Region {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: a Region is a plain address range; what is stored in it is synchronised by its
// users (atomics, or the queue's publication protocol).
unsafe impl Sync for Region {}
// SAFETY: as above; the mapping belongs to the process, not to a thread.
unsafe impl Send for Region {}

fn mmap(addr: *mut u8, len: usize, fixed: bool) -> Option<*mut u8> {
    let flags = libc::MAP_SHARED
        | libc::MAP_ANONYMOUS
        | libc::MAP_NORESERVE
        | if fixed { libc::MAP_FIXED } else { 0 };
    // SAFETY: an anonymous mapping; with MAP_FIXED only over a range this Region owns.
    let p = unsafe {
        libc::mmap(
            addr.cast(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            flags,
            -1,
            0,
        )
    };
    (p != libc::MAP_FAILED).then_some(p.cast())
}

impl Region {
    /// Zeroed pages, committed as they are touched.
    pub fn new(len: usize) -> Option<Region> {
        Some(Region {
            ptr: mmap(std::ptr::null_mut(), len, false)?,
            len,
        })
    }

    pub fn ptr(&self) -> *mut u8 {
        self.ptr
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Replaces the pages with fresh zeroed ones at the same address, shared with nobody
    /// yet. For a fork child, whose inherited pages are still the parent's writer's.
    pub fn renew(&self) -> bool {
        mmap(self.ptr, self.len, true).is_some()
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: the range was mapped by `new` and nothing refers to it once the Region
        // is gone (the users hold the Region itself, never a bare pointer past it).
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// Bytes of address space a reservation may take: the whole `want` normally, but under
/// an address-space limit (`ulimit -v`) no more than a sixteenth of it, so that rprof's
/// buffers never decide whether the program fits.
pub fn reservation(want: usize) -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct we pass.
    let limited = unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut lim) } == 0
        && lim.rlim_cur != libc::RLIM_INFINITY;
    if limited {
        want.min((lim.rlim_cur / 16) as usize)
    } else {
        want
    }
}
