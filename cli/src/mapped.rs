//! A trace file's bytes, mapped into memory rather than copied: reports read traces of
//! hundreds of megabytes, and mapping spares the copy and as much anonymous memory.
//!
//! Traces only grow while they are written (the shim appends), so the mapped length stays
//! valid; a file truncated by someone else while it is read would fault, as with any
//! mapped file. What cannot be mapped (a pipe, an empty file) is read instead.

use std::fs::File;
use std::io::{self, Read};
use std::ops::Deref;
use std::os::fd::AsRawFd;
use std::path::Path;

pub enum Bytes {
    Mapped { ptr: *mut libc::c_void, len: usize },
    Read(Vec<u8>),
}

impl Bytes {
    pub fn of_file(path: &Path) -> io::Result<Bytes> {
        let mut f = File::open(path)?;
        let meta = f.metadata()?;
        let len = usize::try_from(meta.len()).unwrap_or(0);
        if meta.is_file() && len > 0 {
            // SAFETY: a read-only private mapping of a file we hold open; the mapping stays
            // valid after the file is closed, and is unmapped once, on drop.
            let ptr = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ,
                    libc::MAP_PRIVATE,
                    f.as_raw_fd(),
                    0,
                )
            };
            if ptr != libc::MAP_FAILED {
                return Ok(Bytes::Mapped { ptr, len });
            }
        }
        let mut data = Vec::new();
        f.read_to_end(&mut data)?;
        Ok(Bytes::Read(data))
    }
}

impl Deref for Bytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            // SAFETY: `ptr` maps `len` readable bytes until drop.
            Bytes::Mapped { ptr, len } => unsafe {
                std::slice::from_raw_parts(*ptr as *const u8, *len)
            },
            Bytes::Read(v) => v,
        }
    }
}

impl Drop for Bytes {
    fn drop(&mut self) {
        if let Bytes::Mapped { ptr, len } = *self {
            // SAFETY: mapped in `of_file`, unmapped only here.
            unsafe { libc::munmap(ptr, len) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_map_and_empty_ones_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t");
        std::fs::write(&path, b"some bytes").unwrap();
        let b = Bytes::of_file(&path).unwrap();
        assert!(matches!(b, Bytes::Mapped { .. }));
        assert_eq!(&*b, b"some bytes");
        std::fs::write(&path, b"").unwrap();
        assert_eq!(&*Bytes::of_file(&path).unwrap(), b"");
        assert!(Bytes::of_file(&dir.path().join("missing")).is_err());
    }
}
