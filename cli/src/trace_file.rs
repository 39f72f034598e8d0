//! Opening a trace file, which the reader treats as untrusted input: it may name a device,
//! a FIFO or a directory, and it may shrink or grow while it is read.
//!
//! The file is opened without blocking (`O_NONBLOCK`: opening a FIFO with no writer waits
//! forever otherwise) and refused unless `fstat` says it is a regular file, so `/dev/zero`
//! or `/dev/urandom` never stream into the reader. It is then read, not mapped: a mapped
//! file truncated by someone else faults (SIGBUS) when the lost pages are touched, while a
//! read just ends early. The decoder streams it (`rprof_format::read_trace_from`), so memory
//! stays bounded by the largest chunk, whatever the file's size.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// An open trace and its size when opened: reading stops there, so a trace still being
/// written is read as it was then, in bounded time.
pub struct TraceFile {
    file: File,
    pub size: u64,
}

impl TraceFile {
    pub fn open(path: &Path) -> io::Result<TraceFile> {
        // std adds O_CLOEXEC.
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)?;
        let meta = file.metadata()?;
        let kind = meta.file_type();
        if !kind.is_file() {
            let what = if kind.is_dir() {
                "a directory"
            } else if kind.is_fifo() {
                "a FIFO"
            } else if kind.is_char_device() {
                "a character device"
            } else if kind.is_block_device() {
                "a block device"
            } else if kind.is_socket() {
                "a socket"
            } else {
                "a special file"
            };
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("not a regular file ({what}): a trace is a file rprof wrote"),
            ));
        }
        Ok(TraceFile {
            file,
            size: meta.len(),
        })
    }

    /// The file's bytes up to its size when opened (fewer if it shrank since).
    pub fn reader(&self) -> impl Read + '_ {
        (&self.file).take(self.size)
    }

    /// The same, owning the file.
    pub fn into_reader(self) -> impl Read {
        self.file.take(self.size)
    }

    /// Takes a shared lock without waiting: false while a writer holds its exclusive one
    /// (the trace is still being written). The lock goes with the file.
    pub fn try_lock_shared(&self) -> bool {
        // SAFETY: flock on our own descriptor.
        unsafe { libc::flock(self.file.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) == 0 }
    }

    /// The file's size now, to tell whether it shrank while it was read.
    pub fn size_now(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_files_open_and_others_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t");
        std::fs::write(&path, b"some bytes").unwrap();
        let t = TraceFile::open(&path).unwrap();
        assert_eq!(t.size, 10);
        let mut got = Vec::new();
        t.reader().read_to_end(&mut got).unwrap();
        assert_eq!(got, b"some bytes");
        assert!(TraceFile::open(&dir.path().join("missing")).is_err());
        for (p, what) in [
            (dir.path(), "a directory"),
            (Path::new("/dev/zero"), "a character device"),
        ] {
            let e = TraceFile::open(p).err().unwrap().to_string();
            assert!(
                e.starts_with(&format!("not a regular file ({what})")),
                "{e}"
            );
        }
    }
}
