//! Memory shared between the program and its writer process: anonymous MAP_SHARED
//! mappings, created before the writer is forked off, so both see the same pages.

/// One shared mapping, at an address fixed for the life of the process.
pub struct Region {
    ptr: *mut u8,
    len: usize,
}

unsafe impl Sync for Region {}
unsafe impl Send for Region {}

fn mmap(addr: *mut u8, len: usize, fixed: bool) -> Option<*mut u8> {
    let flags = libc::MAP_SHARED
        | libc::MAP_ANONYMOUS
        | libc::MAP_NORESERVE
        | if fixed { libc::MAP_FIXED } else { 0 };
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

    /// Replaces the pages with fresh zeroed ones at the same address, shared with nobody
    /// yet. For a fork child, whose inherited pages are still the parent's writer's.
    pub fn renew(&self) -> bool {
        mmap(self.ptr, self.len, true).is_some()
    }
}
