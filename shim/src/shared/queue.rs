//! The bounded, lock-free event queue between the producers (the signal handler and the
//! allocation and copy samplers) on the program's threads and the writer process.
//!
//! A Vyukov-style ring: a producer claims a slot with one CAS, fills it, and publishes it by
//! storing the slot's sequence number. Nothing blocks: a full queue drops the event (and
//! counts it), and a producer interrupted mid-fill by a nested producer on the same thread
//! only makes the consumer wait at that slot until the outer one resumes.

use crate::record::native_stack::NATIVE_DEPTH;
use crate::shared::shm::Region;
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::*};

/// Deepest Python stack recorded per event; deeper stacks keep their innermost frames.
pub const MAX_DEPTH: usize = 128;
const CAPACITY: usize = 1024;

/// Code id of a frame whose code object could not be interned.
pub const UNKNOWN_CODE: u32 = u32::MAX;

#[derive(Clone, Copy, Default)]
#[repr(C)]
pub struct EventFrame {
    pub code: u32,
    pub addrq: i32,
}

#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// A CPU sample: `cpu_ns`, `sys_ns`; `python` if the interrupted PC was the interpreter's.
    Cpu,
    /// A sampled allocation: `addr`, `size`, `weight`; `python` for the Python allocator.
    Alloc,
    /// The free of a sampled allocation: `addr`.
    Free,
    /// Sampled copying: `weight`.
    Copy,
    /// A mark the program made (`rprof_mark`): its label's bytes in `native`
    /// ([`Event::set_label`]), `size` of them.
    Mark,
}

/// One event as captured on a program thread, with its stacks still raw.
#[repr(C)]
pub struct Event {
    pub kind: Kind,
    pub python: bool,
    /// A CPU sample that landed in the shim's own code: profiler overhead.
    pub profiler: bool,
    pub truncated: bool,
    pub depth: u16,
    pub native_depth: u16,
    pub tid: u32,
    pub t_ns: u64,
    pub cpu_ns: u64,
    pub sys_ns: u64,
    pub addr: u64,
    pub size: u64,
    pub weight: u64,
    /// Native frames (PCs), innermost first, above the innermost Python frame.
    pub native: [u64; NATIVE_DEPTH],
    pub frames: [EventFrame; MAX_DEPTH],
}

/// Longest mark label carried by an event; longer ones are cut.
pub const LABEL_BYTES: usize = NATIVE_DEPTH * 8;

impl Event {
    /// Carries a mark's label in the native frames' room (a mark has no stack), cut to
    /// [`LABEL_BYTES`].
    pub fn set_label(&mut self, label: &[u8]) {
        let n = label.len().min(LABEL_BYTES);
        for (i, chunk) in label[..n].chunks(8).enumerate() {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.native[i] = u64::from_ne_bytes(word);
        }
        self.size = n as u64;
    }

    /// The label [`Event::set_label`] stored.
    pub fn label(&self) -> Vec<u8> {
        let n = (self.size as usize).min(LABEL_BYTES);
        let mut bytes: Vec<u8> = self.native.iter().flat_map(|w| w.to_ne_bytes()).collect();
        bytes.truncate(n);
        bytes
    }
}

struct Slot {
    seq: AtomicUsize,
    event: UnsafeCell<Event>,
}

/// The ring's indices and counters, in the shared mapping before the slots. The producers'
/// and the consumer's indices sit on separate cache lines.
#[repr(C, align(64))]
struct Header {
    head: AtomicUsize,
    _pad: [u8; 56],
    tail: UnsafeCell<usize>,
    dropped: AtomicU64,
}

/// The ring lives in memory shared with the writer process, which is its consumer.
pub struct Queue {
    region: Region,
}

// SAFETY: the ring's protocol makes shared access sound: a slot's event is written
// only by the producer that claimed it, read only by the single consumer after its sequence
// publishes it.
unsafe impl Sync for Queue {}
// SAFETY: the queue holds only a mapping of shared memory, valid in any thread.
unsafe impl Send for Queue {}

/// A claimed slot; dropping it publishes the event.
pub struct Claim<'a> {
    slot: &'a Slot,
    pos: usize,
}

impl Claim<'_> {
    #[allow(clippy::mut_from_ref)]
    pub fn event(&mut self) -> &mut Event {
        // SAFETY: this claim owns the slot until it is dropped: no producer can claim it (its
        // sequence says taken) and the consumer reads it only after the drop publishes it.
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
        let bytes = std::mem::size_of::<Header>() + CAPACITY * std::mem::size_of::<Slot>();
        let q = Queue {
            region: Region::new(bytes)?,
        };
        q.reset();
        Some(q)
    }

    fn header(&self) -> &Header {
        // SAFETY: the region is at least a Header plus CAPACITY slots, page-aligned, and lives
        // as long as the queue; the header's fields are atomics or owned by the consumer
        // alone.
        unsafe { &*(self.region.ptr() as *const Header) }
    }

    fn slot(&self, pos: usize) -> &Slot {
        // SAFETY: the slots start right after the header, inside the region (`new` sized it
        // so).
        let slots = unsafe { self.region.ptr().add(std::mem::size_of::<Header>()) } as *const Slot;
        // SAFETY: the index is masked to CAPACITY - 1, so the slot lies inside the region.
        unsafe { &*slots.add(pos & (CAPACITY - 1)) }
    }

    fn reset(&self) {
        for i in 0..CAPACITY {
            self.slot(i).seq.store(i, Relaxed);
        }
    }

    /// A fork child's queue: fresh and empty, no longer the parent writer's. Slots claimed
    /// by the parent's other threads (which the child does not have) are gone with it.
    pub fn renew(&self) -> bool {
        let ok = self.region.renew();
        self.reset();
        ok
    }

    /// Claims a slot, or counts a drop when the queue is full. Async-signal-safe.
    pub fn claim(&self) -> Option<Claim<'_>> {
        let c = self.try_claim();
        if c.is_none() {
            self.count_drop();
        }
        c
    }

    fn try_claim(&self) -> Option<Claim<'_>> {
        let head = &self.header().head;
        let mut pos = head.load(Relaxed);
        loop {
            let slot = self.slot(pos);
            let seq = slot.seq.load(Acquire);
            match seq.wrapping_sub(pos) as isize {
                0 => match head.compare_exchange_weak(pos, pos + 1, Relaxed, Relaxed) {
                    Ok(_) => return Some(Claim { slot, pos }),
                    Err(now) => pos = now,
                },
                d if d < 0 => return None,
                _ => pos = head.load(Relaxed),
            }
        }
    }

    /// Claims a slot, waiting up to a few milliseconds for the writer to make room. Only
    /// for producers outside signal handlers (the allocation paths): losing an allocation
    /// or a free skews memory per line, and a program allocating faster than the writer
    /// drains (or while the writer waits for a CPU) is better slowed for a moment than
    /// misreported.
    pub fn claim_patiently(&self) -> Option<Claim<'_>> {
        for i in 0..256 {
            if let Some(c) = self.try_claim() {
                return Some(c);
            }
            if i < 16 {
                // SAFETY: sched_yield has no preconditions.
                unsafe { libc::sched_yield() };
            } else {
                let nap = libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 20_000,
                };
                // SAFETY: nanosleep reads the timespec on this stack and takes a null
                // remainder.
                unsafe { libc::nanosleep(&nap, std::ptr::null_mut()) };
            }
        }
        self.claim()
    }

    pub fn count_drop(&self) {
        self.header().dropped.fetch_add(1, Relaxed);
    }

    pub fn dropped(&self) -> u64 {
        self.header().dropped.load(Relaxed)
    }

    /// Hands the next published event to `f`. Only the writer process calls this.
    pub fn pop(&self, f: impl FnOnce(&Event)) -> bool {
        // SAFETY: only the writer process pops, from one thread: the tail is its own.
        let tail = unsafe { &mut *self.header().tail.get() };
        let slot = self.slot(*tail);
        if slot.seq.load(Acquire) != *tail + 1 {
            return false;
        }
        // SAFETY: the slot's sequence says its producer published it (the Release of
        // Claim::drop pairs with the Acquire above), and no producer touches it again until
        // the sequence below frees it.
        f(unsafe { &*slot.event.get() });
        slot.seq.store(*tail + CAPACITY, Release);
        *tail += 1;
        true
    }
}
