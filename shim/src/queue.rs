//! The bounded, lock-free event queue between the producers (signal handlers, and later the
//! allocation sampler) and the writer thread.
//!
//! A Vyukov-style ring: a producer claims a slot with one CAS, fills it, and publishes it by
//! storing the slot's sequence number. Nothing blocks: a full queue drops the event (and
//! counts it), and a producer interrupted mid-fill by a nested producer on the same thread
//! only makes the consumer wait at that slot until the outer one resumes.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::*};

/// Deepest Python stack recorded per event; deeper stacks keep their innermost frames.
pub const MAX_DEPTH: usize = 128;
const CAPACITY: usize = 2048;

/// Code id of a frame whose code object could not be interned.
pub const UNKNOWN_CODE: u32 = u32::MAX;

#[derive(Clone, Copy, Default)]
#[repr(C)]
pub struct EventFrame {
    pub code: u32,
    pub addrq: i32,
}

/// One CPU sample as captured in the signal handler.
#[repr(C)]
pub struct Event {
    pub t_ns: u64,
    pub cpu_ns: u64,
    pub sys_ns: u64,
    pub tid: u32,
    pub python: bool,
    pub truncated: bool,
    pub depth: u16,
    pub frames: [EventFrame; MAX_DEPTH],
}

struct Slot {
    seq: AtomicUsize,
    event: UnsafeCell<Event>,
}

pub struct Queue {
    slots: *mut Slot,
    head: AtomicUsize,
    tail: UnsafeCell<usize>,
    dropped: AtomicU64,
}

// The ring's protocol makes shared access sound: a slot is written only by the producer
// that claimed it and read only by the single consumer after publication.
unsafe impl Sync for Queue {}
unsafe impl Send for Queue {}

/// A claimed slot; dropping it publishes the event.
pub struct Claim<'a> {
    slot: &'a Slot,
    pos: usize,
}

impl Claim<'_> {
    #[allow(clippy::mut_from_ref)]
    pub fn event(&mut self) -> &mut Event {
        unsafe { &mut *self.slot.event.get() }
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.slot.seq.store(self.pos + 1, Release);
    }
}

impl Queue {
    /// Maps the ring (zeroed pages, touched lazily). None if the mapping fails.
    pub fn new() -> Option<Queue> {
        let bytes = CAPACITY * std::mem::size_of::<Slot>();
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return None;
        }
        let q = Queue {
            slots: p.cast(),
            head: AtomicUsize::new(0),
            tail: UnsafeCell::new(0),
            dropped: AtomicU64::new(0),
        };
        q.reset();
        Some(q)
    }

    fn slot(&self, pos: usize) -> &Slot {
        unsafe { &*self.slots.add(pos & (CAPACITY - 1)) }
    }

    /// Empties the queue. Only sound with no producer or consumer running: used at creation
    /// and in a fork child, where the claiming threads no longer exist.
    pub fn reset(&self) {
        for i in 0..CAPACITY {
            self.slot(i).seq.store(i, Relaxed);
        }
        self.head.store(0, Relaxed);
        self.dropped.store(0, Relaxed);
        unsafe { *self.tail.get() = 0 };
    }

    /// Claims a slot, or counts a drop when the queue is full. Async-signal-safe.
    pub fn claim(&self) -> Option<Claim<'_>> {
        let mut pos = self.head.load(Relaxed);
        loop {
            let slot = self.slot(pos);
            let seq = slot.seq.load(Acquire);
            match seq.wrapping_sub(pos) as isize {
                0 => match self
                    .head
                    .compare_exchange_weak(pos, pos + 1, Relaxed, Relaxed)
                {
                    Ok(_) => return Some(Claim { slot, pos }),
                    Err(now) => pos = now,
                },
                d if d < 0 => {
                    self.dropped.fetch_add(1, Relaxed);
                    return None;
                }
                _ => pos = self.head.load(Relaxed),
            }
        }
    }

    pub fn count_drop(&self) {
        self.dropped.fetch_add(1, Relaxed);
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Relaxed)
    }

    /// Hands the next published event to `f`. Only the writer thread calls this.
    pub fn pop(&self, f: impl FnOnce(&Event)) -> bool {
        let tail = unsafe { &mut *self.tail.get() };
        let slot = self.slot(*tail);
        if slot.seq.load(Acquire) != *tail + 1 {
            return false;
        }
        f(unsafe { &*slot.event.get() });
        slot.seq.store(*tail + CAPACITY, Release);
        *tail += 1;
        true
    }
}
