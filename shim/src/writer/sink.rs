//! The trace file, as the writer process creates and appends to it.
//!
//! The trace holds the command line, paths and function names, and the shim may run as
//! root in a shared directory, so the file is opened with care: never through a symbolic
//! link (`O_NOFOLLOW`), mode 0600 whatever the umask, and an existing file is replaced only
//! if it is an earlier rprof trace nobody is writing (atomically: a new file renamed over
//! it). Anything else at the path is left untouched and the trace goes to a new name
//! beside it. A trace being written holds an exclusive `flock`, which is how a process
//! that exec'd (same pid, same path) or a concurrent run knows to pick another name.
//!
//! Writes that fail (a full disk, a file-size limit) stop the trace cleanly: what was
//! written stays readable, and a last small chunk saying why is written over the torn
//! one, into space reserved for it ahead (`fallocate`).

use crate::sys::log;
use std::ffi::CString;
use std::io;

/// Bytes kept allocated past the end of the trace, so that the chunk saying why the trace
/// stops can be written on a full disk.
const RESERVE: i64 = 64 << 10;
/// Other names tried when the path is taken: `NAME.1.trace` ... `NAME.99.trace`.
const ALTERNATIVES: u32 = 99;
const MAGIC: &[u8; 8] = b"RPROFTR\0";

/// Why the sink stopped writing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// The file could not be created (errno).
    Open(i32),
    /// A write failed (errno).
    Write(i32),
}

pub struct Sink {
    /// The path asked for, and the one written.
    wanted: String,
    pub path: String,
    header: Vec<u8>,
    fd: i32,
    /// Bytes in whole chunks: what a reader finds intact.
    good: u64,
    pub stopped: Option<Stopped>,
}

fn errno() -> i32 {
    io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

fn cstr(path: &str) -> Option<CString> {
    CString::new(path).ok()
}

/// What was found at a candidate path.
enum Claim {
    Ours(i32),
    /// A live trace another writer holds.
    Taken,
    /// Not an rprof trace (or a link, a device, a directory): never touched.
    Foreign,
}

/// `NAME.trace` -> `NAME.N.trace`; other names get `.N` appended. Only the file name
/// changes: the trace never leaves the directory that was asked for.
pub fn alternative(path: &str, n: u32) -> String {
    match path.strip_suffix(".trace") {
        Some(stem) if !stem.ends_with('/') && !stem.is_empty() => format!("{stem}.{n}.trace"),
        _ => format!("{path}.{n}"),
    }
}

impl Sink {
    pub fn new(path: &str, header: Vec<u8>) -> Sink {
        Sink {
            wanted: path.to_owned(),
            path: path.to_owned(),
            header,
            fd: -1,
            good: 0,
            stopped: None,
        }
    }

    /// Points a sink that has not created its file yet at another path.
    pub fn retarget(&mut self, path: &str) {
        if self.fd < 0 {
            self.wanted = path.to_owned();
            self.path = path.to_owned();
        }
    }

    pub fn fd(&self) -> i32 {
        self.fd
    }

    /// Bytes of whole chunks written so far.
    pub fn good(&self) -> u64 {
        self.good
    }

    pub fn is_open(&self) -> bool {
        self.fd >= 0
    }

    /// Creates the trace (once) and writes its header; false if it cannot be.
    pub fn open(&mut self) -> bool {
        if self.fd >= 0 || self.stopped.is_some() {
            return self.fd >= 0;
        }
        let mut foreign = false;
        for n in 0..=ALTERNATIVES {
            let candidate = if n == 0 {
                self.wanted.clone()
            } else {
                alternative(&self.wanted, n)
            };
            match claim(&candidate, &self.header) {
                Ok(Claim::Ours(fd)) => {
                    if foreign {
                        log::warn(&format!(
                            "{} exists and is not an rprof trace: left untouched; the trace is {candidate}",
                            self.wanted
                        ));
                    }
                    self.fd = fd;
                    self.path = candidate;
                    self.good = self.header.len() as u64;
                    self.reserve();
                    return true;
                }
                Ok(Claim::Taken) => {}
                Ok(Claim::Foreign) => foreign |= n == 0,
                Err(e) => {
                    self.fail(Stopped::Open(e), &candidate);
                    return false;
                }
            }
        }
        self.fail(Stopped::Open(libc::EEXIST), &self.wanted.clone());
        false
    }

    fn fail(&mut self, why: Stopped, path: &str) {
        self.stopped = Some(why);
        let (Stopped::Open(e) | Stopped::Write(e)) = why;
        let e = io::Error::from_raw_os_error(e);
        log::warn(&match why {
            Stopped::Open(_) => format!("cannot create the trace {path}: {e}"),
            Stopped::Write(_) => format!(
                "cannot write the trace {path}: {e}; it keeps what was written until now, \
                 the rest of this run is not recorded"
            ),
        });
    }

    /// Appends one whole chunk. On failure the sink stops (the caller then offers the
    /// chunk that says why, to `write_last`).
    pub fn write(&mut self, bytes: &[u8]) -> bool {
        if self.fd < 0 || self.stopped.is_some() {
            return false;
        }
        match write_all(self.fd, bytes) {
            Ok(()) => {
                self.good += bytes.len() as u64;
                self.reserve();
                true
            }
            Err(e) => {
                let path = self.path.clone();
                self.fail(Stopped::Write(e), &path);
                false
            }
        }
    }

    /// After a failed write: writes `bytes` where the torn chunk began (space the
    /// reservation or the torn write already holds) and cuts the file after it.
    pub fn write_last(&mut self, bytes: &[u8]) {
        if self.fd < 0 {
            return;
        }
        let at = self.good as i64;
        // SAFETY: pwrite/ftruncate on our own descriptor with a valid buffer.
        unsafe {
            let n = libc::pwrite(self.fd, bytes.as_ptr().cast(), bytes.len(), at);
            let end = if n == bytes.len() as isize {
                at + n as i64
            } else {
                at
            };
            libc::ftruncate(self.fd, end);
        }
    }

    /// Keeps `RESERVE` bytes allocated past the end, without changing the file's size.
    fn reserve(&self) {
        // SAFETY: fallocate on our own descriptor; failure (a file system without it, a
        // full disk) only loses the reserve.
        unsafe {
            libc::fallocate(
                self.fd,
                libc::FALLOC_FL_KEEP_SIZE,
                self.good as i64,
                RESERVE,
            )
        };
    }

    /// Closes the trace and removes it, if the path still names our file (someone may have
    /// replaced it meanwhile: that file stays).
    pub fn discard(&mut self) {
        if self.fd < 0 {
            return;
        }
        // SAFETY: fstat on our descriptor, lstat on a NUL-terminated path, into zeroed
        // structs; the descriptor is ours to close.
        unsafe {
            let (mut ours, mut there): (libc::stat, libc::stat) =
                (std::mem::zeroed(), std::mem::zeroed());
            if let Some(c) = cstr(&self.path) {
                if libc::fstat(self.fd, &mut ours) == 0
                    && libc::lstat(c.as_ptr(), &mut there) == 0
                    && (ours.st_dev, ours.st_ino) == (there.st_dev, there.st_ino)
                {
                    libc::unlink(c.as_ptr());
                }
            }
            libc::close(self.fd);
        }
        self.fd = -1;
    }

    /// Whether someone deleted the trace while it was written.
    pub fn deleted(&self) -> bool {
        if self.fd < 0 {
            return false;
        }
        // SAFETY: fstat on our own descriptor into a zeroed struct.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: fstat writes only the struct above.
        (unsafe { libc::fstat(self.fd, &mut st) }) == 0 && st.st_nlink == 0
    }
}

fn write_all(fd: i32, mut bytes: &[u8]) -> Result<(), i32> {
    while !bytes.is_empty() {
        // SAFETY: writes from a valid slice to our own descriptor.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if n < 0 {
            let e = errno();
            if e == libc::EINTR {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(libc::EIO);
        }
        bytes = &bytes[n as usize..];
    }
    Ok(())
}

const CREATE: i32 =
    libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC;

/// Makes a new trace file at `path` (which must not exist): mode 0600, locked, header
/// written. Err(errno) on failure, with nothing left behind.
fn create(path: &CString, header: &[u8]) -> Result<i32, i32> {
    // SAFETY: a NUL-terminated path; the descriptor is ours until closed below or returned.
    let fd = unsafe { libc::open(path.as_ptr(), CREATE, 0o600) };
    if fd < 0 {
        return Err(errno());
    }
    // SAFETY: our own descriptor. fchmod: the umask cannot widen 0600, but a umask such as
    // 0277 would narrow it so that the writer itself could not append.
    let ok = unsafe {
        libc::flock(fd, libc::LOCK_EX | libc::LOCK_NB) == 0 && libc::fchmod(fd, 0o600) == 0
    };
    let written = if ok {
        write_all(fd, header)
    } else {
        Err(errno())
    };
    if let Err(e) = written {
        // SAFETY: our own descriptor and the file we just created.
        unsafe {
            libc::close(fd);
            libc::unlink(path.as_ptr());
        }
        return Err(e);
    }
    Ok(fd)
}

/// Takes `path` for a new trace if it is free, or holds an earlier rprof trace that no
/// writer holds (replaced atomically).
fn claim(path: &str, header: &[u8]) -> Result<Claim, i32> {
    let Some(c) = cstr(path) else {
        return Err(libc::EINVAL);
    };
    for _ in 0..4 {
        let flags =
            libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY;
        // SAFETY: a NUL-terminated path; the descriptor is closed below.
        let fd = unsafe { libc::open(c.as_ptr(), flags) };
        if fd < 0 {
            match errno() {
                libc::ENOENT => match create(&c, header) {
                    Ok(fd) => return Ok(Claim::Ours(fd)),
                    // Created by someone else in between: look again.
                    Err(libc::EEXIST) => continue,
                    Err(e) => return Err(e),
                },
                // A symbolic link (O_NOFOLLOW), or something we may not read.
                libc::ELOOP | libc::EACCES | libc::EPERM | libc::ENXIO => {
                    return Ok(Claim::Foreign)
                }
                e => return Err(e),
            }
        }
        let found = inspect(fd);
        // SAFETY: closes the descriptor opened above (and any lock taken through it).
        unsafe { libc::close(fd) };
        return match found {
            Claim::Ours(_) => replace(path, &c, header).map(Claim::Ours),
            other => Ok(other),
        };
    }
    Err(libc::EEXIST)
}

/// What the open file `fd` is: an idle rprof trace (`Ours`, to be replaced), a live one
/// (`Taken`), or something else.
fn inspect(fd: i32) -> Claim {
    // SAFETY: fstat/read/flock on a descriptor we hold, into buffers we own.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstat(fd, &mut st) != 0 || st.st_mode & libc::S_IFMT != libc::S_IFREG {
            return Claim::Foreign;
        }
        let mut head = [0u8; 32];
        let n = libc::pread(fd, head.as_mut_ptr().cast(), head.len(), 0);
        if n < 8 || &head[..8] != MAGIC {
            return Claim::Foreign;
        }
        // An earlier image of this very process (it exec'd; its writer may be done
        // already, and so hold no lock) wrote it: it stays, beside ours.
        if header_pid(&head[..n as usize]) == Some(std::process::id()) {
            return Claim::Taken;
        }
        if libc::flock(fd, libc::LOCK_SH | libc::LOCK_NB) != 0 {
            return Claim::Taken;
        }
    }
    Claim::Ours(-1)
}

/// The pid in a trace header (docs/FORMAT.md: the body, after 16 bytes of magic, version
/// and length, opens with the pid as a varint).
fn header_pid(head: &[u8]) -> Option<u32> {
    let mut v = 0u64;
    for (i, &b) in head.get(16..)?.iter().take(5).enumerate() {
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return u32::try_from(v).ok();
        }
    }
    None
}

/// Writes a new trace beside `path` and renames it over the old one: the path always
/// holds one whole trace, the old or the new.
fn replace(path: &str, c: &CString, header: &[u8]) -> Result<i32, i32> {
    let (dir, name) = match path.rsplit_once('/') {
        Some((d, n)) => (format!("{d}/"), n),
        None => (String::new(), path),
    };
    let tmp = format!("{dir}.{name}.{}.tmp", std::process::id());
    let t = cstr(&tmp).ok_or(libc::EINVAL)?;
    let fd = create(&t, header)?;
    // SAFETY: both paths are NUL-terminated; rename replaces the directory entry only
    // (never what a link at `path` points to).
    if unsafe { libc::rename(t.as_ptr(), c.as_ptr()) } != 0 {
        let e = errno();
        // SAFETY: our descriptor and our temporary file.
        unsafe {
            libc::close(fd);
            libc::unlink(t.as_ptr());
        }
        return Err(e);
    }
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn header() -> Vec<u8> {
        rprof_format::encode_header(&rprof_format::Header {
            pid: 1,
            ..Default::default()
        })
    }

    #[test]
    fn the_header_names_its_pid() {
        let h = rprof_format::encode_header(&rprof_format::Header {
            pid: 4_000_000,
            ..Default::default()
        });
        assert_eq!(header_pid(&h), Some(4_000_000));
        assert_eq!(header_pid(&h[..17]), None);
    }

    #[test]
    fn alternatives_stay_in_the_directory() {
        assert_eq!(alternative("/tmp/rprof-1.trace", 2), "/tmp/rprof-1.2.trace");
        assert_eq!(alternative("out", 1), "out.1");
        assert_eq!(alternative("/tmp/.trace", 1), "/tmp/.trace.1");
    }

    #[test]
    fn foreign_files_and_links_are_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        let link = dir.path().join("t.trace");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        let mut s = Sink::new(link.to_str().unwrap(), header());
        assert!(s.open());
        assert_eq!(s.path, dir.path().join("t.1.trace").to_str().unwrap());
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        let mode = std::fs::metadata(&s.path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);

        let plain = dir.path().join("p.trace");
        std::fs::write(&plain, b"not a trace").unwrap();
        let mut s = Sink::new(plain.to_str().unwrap(), header());
        assert!(s.open());
        assert_eq!(std::fs::read(&plain).unwrap(), b"not a trace");
    }

    #[test]
    fn an_idle_trace_is_replaced_and_a_live_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.trace");
        let p = path.to_str().unwrap();
        let mut first = Sink::new(p, header());
        assert!(first.open() && first.write(b"chunk"));
        // Live (locked): the second writer goes elsewhere.
        let mut second = Sink::new(p, header());
        assert!(second.open());
        assert_eq!(second.path, dir.path().join("t.1.trace").to_str().unwrap());
        // Idle: replaced, whole.
        // SAFETY: closing the first sink's descriptor, which nothing else uses.
        unsafe { libc::close(first.fd) };
        let mut third = Sink::new(p, header());
        assert!(third.open());
        assert_eq!(third.path, p);
        assert_eq!(std::fs::read(&path).unwrap(), header());
    }
}
