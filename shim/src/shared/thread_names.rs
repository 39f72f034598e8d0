//! The Python thread names (`threading.Thread.name`) of the program's threads, for the
//! writer: CPython 3.8-3.13 do not give them to the OS thread, so `/proc/.../comm` says
//! "python3" for every one. The sampler reads a thread's name from the interpreter
//! (`record::thread_name`) and publishes it in its slot here; the writer names the thread
//! by it, and names it again when the slot changes (the program renamed the thread).
//!
//! One slot per thread id, claimed with one CAS. Only the thread itself writes its slot
//! (from its sampling signal handler, which never nests), under a sequence count the writer
//! checks around its read, so a torn name is never taken.

use crate::shared::shm::Region;
use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering::*};

const SLOTS: usize = 4096;
const MAX_PROBES: usize = 64;
const WORDS: usize = 14;
/// Longest name kept, in bytes (code points of `kind` bytes each): longer ones are cut.
pub const NAME_BYTES: usize = WORDS * 8;

#[repr(C, align(64))]
struct Slot {
    tid: AtomicU32,
    /// Odd while the thread writes its name; 0 until it first did.
    seq: AtomicU32,
    /// Length in bytes << 8 | bytes per code point.
    len_kind: AtomicU32,
    name: [AtomicU64; WORDS],
}

const _: () = assert!(std::mem::size_of::<Slot>() == 128);

pub struct ThreadNames {
    slots: Region,
}

/// A published name: its sequence count (changes with every rename) and its text.
pub struct Named {
    pub seq: u32,
    pub kind: u8,
    pub bytes: Vec<u8>,
}

impl ThreadNames {
    pub fn new() -> Option<ThreadNames> {
        Some(ThreadNames {
            slots: Region::new(SLOTS * std::mem::size_of::<Slot>())?,
        })
    }

    fn slot(&self, i: usize) -> &Slot {
        // SAFETY: i < SLOTS, inside the zeroed mapping; every field is an atomic, for
        // which all-zero bytes are a valid value.
        unsafe { &*(self.slots.ptr() as *const Slot).add(i % SLOTS) }
    }

    /// The slot of `tid`, claiming a free one when `claim`; None when the table is full
    /// around its place (the thread keeps its OS name).
    fn find(&self, tid: u32, claim: bool) -> Option<&Slot> {
        let h = (tid as usize).wrapping_mul(0x9e37_79b9) >> 4;
        for i in 0..MAX_PROBES {
            let s = self.slot(h + i);
            match s.tid.load(Acquire) {
                t if t == tid => return Some(s),
                0 if claim => match s.tid.compare_exchange(0, tid, AcqRel, Acquire) {
                    Ok(_) => return Some(s),
                    Err(t) if t == tid => return Some(s),
                    Err(_) => continue,
                },
                0 => return None,
                _ => continue,
            }
        }
        None
    }

    /// Publishes the calling thread's name (`bytes`, cut to [`NAME_BYTES`] by the caller),
    /// unless it is the one already there. Async-signal-safe; called only by thread `tid`.
    pub fn publish(&self, tid: u32, kind: u8, bytes: &[u8]) {
        let Some(s) = self.find(tid, true) else {
            return;
        };
        let len = bytes.len().min(NAME_BYTES);
        let mut words = [0u64; WORDS];
        for (i, b) in bytes[..len].iter().enumerate() {
            words[i / 8] |= u64::from(*b) << (8 * (i % 8));
        }
        let len_kind = (len as u32) << 8 | u32::from(kind);
        let seq = s.seq.load(Relaxed);
        if seq != 0
            && s.len_kind.load(Relaxed) == len_kind
            && s.name
                .iter()
                .zip(&words)
                .all(|(w, v)| w.load(Relaxed) == *v)
        {
            return;
        }
        s.seq.store(seq | 1, Relaxed);
        fence(Release);
        for (w, v) in s.name.iter().zip(words) {
            w.store(v, Relaxed);
        }
        s.len_kind.store(len_kind, Relaxed);
        s.seq.store((seq | 1).wrapping_add(1).max(2), Release);
    }

    /// The sequence count of `tid`'s name: 0 when none was published (or one is being
    /// written). Called by the writer process, for every event, so it reads one word.
    pub fn seq(&self, tid: u32) -> u32 {
        let seq = self.find(tid, false).map_or(0, |s| s.seq.load(Acquire));
        // An odd count (a write in progress) reads as "nothing new yet".
        if seq & 1 != 0 {
            0
        } else {
            seq
        }
    }

    /// `tid`'s published name, if one is and it was not being rewritten while read.
    /// Called by the writer process.
    pub fn get(&self, tid: u32) -> Option<Named> {
        let s = self.find(tid, false)?;
        let seq = s.seq.load(Acquire);
        if seq == 0 || seq & 1 != 0 {
            return None;
        }
        let len_kind = s.len_kind.load(Relaxed);
        let words: Vec<u64> = s.name.iter().map(|w| w.load(Relaxed)).collect();
        fence(Acquire);
        if s.seq.load(Relaxed) != seq {
            return None;
        }
        let len = ((len_kind >> 8) as usize).min(NAME_BYTES);
        let bytes = words
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .take(len)
            .collect();
        Some(Named {
            seq,
            kind: len_kind as u8,
            bytes,
        })
    }

    /// A fork child's table: fresh and empty (its threads are gone, but for the one that
    /// forked, which publishes its name again at its next sample).
    pub fn renew(&self) -> bool {
        self.slots.renew()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_rename_and_cut() {
        let t = ThreadNames::new().unwrap();
        assert_eq!(t.seq(7), 0);
        assert!(t.get(7).is_none());
        t.publish(7, 1, b"worker-a");
        let a = t.get(7).unwrap();
        assert_eq!((a.kind, a.bytes.as_slice()), (1, &b"worker-a"[..]));
        assert_eq!(t.seq(7), a.seq);
        // The same name again changes nothing; a new one is a new count.
        t.publish(7, 1, b"worker-a");
        assert_eq!(t.seq(7), a.seq);
        t.publish(7, 1, b"renamed");
        let b = t.get(7).unwrap();
        assert_ne!(b.seq, a.seq);
        assert_eq!(b.bytes, b"renamed");
        let long = [b'x'; 300];
        t.publish(9, 1, &long);
        assert_eq!(t.get(9).unwrap().bytes.len(), NAME_BYTES);
        assert_eq!(t.get(7).unwrap().bytes, b"renamed");
    }

    #[test]
    fn threads_keep_their_own_slots() {
        let t = ThreadNames::new().unwrap();
        for tid in 1..=1000u32 {
            t.publish(tid, 1, tid.to_string().as_bytes());
        }
        for tid in 1..=1000u32 {
            assert_eq!(t.get(tid).unwrap().bytes, tid.to_string().as_bytes());
        }
    }
}
