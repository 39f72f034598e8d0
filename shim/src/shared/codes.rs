//! Interns the Python code objects seen in samples. On first sight, from the signal
//! handler, a code object's names and line table are copied into an append-only arena, so
//! the writer process can resolve lines later even after the code object is freed.
//!
//! Lock-free: entries are claimed with one CAS; a reader that meets an entry still being
//! filled by another thread reports the frame as unknown rather than wait.

use crate::python::{CodeRef, Probe, StrRef};
use crate::shared::shm::Region;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering::*};

const CAPACITY: usize = 1 << 16;
const MAX_PROBES: usize = 64;
/// The arena's reservation (address space; pages are committed as names are copied in).
/// A program under an address-space limit gets less (`shm::reservation`).
const ARENA_BYTES: usize = 64 << 20;
/// Longest name or line table copied; longer ones are cut (names) or dropped (tables).
const MAX_COPY: usize = 1 << 20;

const EMPTY: u32 = 0;
const BUSY: u32 = 1;
const READY: u32 = 2;

/// A byte range in the arena.
#[derive(Clone, Copy, Default)]
pub struct Span {
    pub off: usize,
    pub len: usize,
}

pub struct Entry {
    state: AtomicU32,
    id: u32,
    key: [usize; 4],
    pub first_line: i32,
    pub filename: (Span, u8),
    pub qualname: (Span, u8),
    pub linetable: Span,
}

/// Counters at the start of the table's shared mapping.
#[repr(C, align(64))]
struct Header {
    next_id: AtomicU32,
    arena_used: AtomicUsize,
}

/// The table and its arena live in memory shared with the writer process, which reads
/// the entries.
pub struct CodeTable {
    table: Region,
    arena: Region,
}

const ENTRIES_AT: usize = std::mem::size_of::<Header>();
const BY_ID_AT: usize = ENTRIES_AT + CAPACITY * std::mem::size_of::<Entry>();

fn hash(key: &[usize; 4]) -> usize {
    let h = key.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &k| {
        (h ^ k as u64).wrapping_mul(0x0000_0100_0000_01b3)
    });
    (h ^ (h >> 29)) as usize
}

impl CodeTable {
    pub fn new() -> Option<CodeTable> {
        Some(CodeTable {
            table: Region::new(BY_ID_AT + CAPACITY * 4)?,
            arena: Region::new(crate::shared::shm::reservation(ARENA_BYTES).max(1 << 20))?,
        })
    }

    fn header(&self) -> &Header {
        // SAFETY: the table region starts with the Header (it is BY_ID_AT + CAPACITY * 4
        // bytes, page-aligned) and lives as long as the table; the header's fields are
        // atomics.
        unsafe { &*(self.table.ptr() as *const Header) }
    }

    fn entries(&self) -> *mut Entry {
        // SAFETY: ENTRIES_AT lies inside the table region (the entries follow the header).
        unsafe { self.table.ptr().add(ENTRIES_AT) }.cast()
    }

    fn by_id(&self, id: u32) -> &AtomicU32 {
        // SAFETY: callers pass id < CAPACITY (`fill` checks it, `get` bounds it by `len`), and
        // the by-id array of CAPACITY atomics ends the region.
        unsafe { &*(self.table.ptr().add(BY_ID_AT) as *const AtomicU32).add(id as usize) }
    }

    fn entry(&self, i: usize) -> &Entry {
        // SAFETY: the index is masked to CAPACITY - 1, inside the entries array; readers go by
        // its atomic state.
        unsafe { &*self.entries().add(i & (CAPACITY - 1)) }
    }

    /// The id of `code`, interning it on first sight. Async-signal-safe.
    pub fn intern(&self, probe: &Probe, code: usize) -> Option<u32> {
        let r = probe.code_ref(code)?;
        let h = hash(&r.key);
        for i in 0..MAX_PROBES {
            let idx = (h + i) & (CAPACITY - 1);
            let e = self.entry(idx);
            let mut state = e.state.load(Acquire);
            if state == EMPTY {
                match e.state.compare_exchange(EMPTY, BUSY, Acquire, Acquire) {
                    Ok(_) => return self.fill(probe, idx, &r),
                    Err(now) => state = now,
                }
            }
            match state {
                READY if e.key == r.key => return Some(e.id),
                READY => continue,
                // Being filled by another thread, perhaps with this very code object.
                _ => return None,
            }
        }
        None
    }

    fn fill(&self, probe: &Probe, idx: usize, r: &CodeRef) -> Option<u32> {
        // SAFETY: this thread moved the entry from EMPTY to BUSY (`intern`), so it alone
        // writes it until the READY store publishes it; readers skip a BUSY entry.
        let e = unsafe { &mut *self.entries().add(idx) };
        e.key = r.key;
        e.first_line = r.first_line;
        e.filename = (self.copy_str(probe, &r.filename), r.filename.kind);
        e.qualname = (self.copy_str(probe, &r.qualname), r.qualname.kind);
        e.linetable = if r.linetable.1 <= MAX_COPY {
            self.copy(probe, r.linetable.0, r.linetable.1)
        } else {
            Span::default()
        };
        let id = self.header().next_id.fetch_add(1, Relaxed);
        if id as usize >= CAPACITY {
            // Never published: the entry stays claimed and the frame reads as unknown.
            return None;
        }
        e.id = id;
        self.by_id(id).store(idx as u32 + 1, Release);
        e.state.store(READY, Release);
        Some(id)
    }

    fn copy_str(&self, probe: &Probe, s: &StrRef) -> Span {
        let bytes = s.len.saturating_mul(s.kind as usize).min(MAX_COPY);
        self.copy(probe, s.ptr, bytes)
    }

    fn copy(&self, probe: &Probe, src: usize, len: usize) -> Span {
        let off = self.header().arena_used.fetch_add(len, Relaxed);
        if len == 0 || off + len > self.arena.len() {
            return Span::default();
        }
        // SAFETY: off + len fits the arena (checked above), and the fetch_add gave this thread
        // that range alone.
        let dst = unsafe { std::slice::from_raw_parts_mut(self.arena.ptr().add(off), len) };
        if probe.copy_guarded(src, dst) {
            Span { off, len }
        } else {
            Span::default()
        }
    }

    /// Number of ids handed out so far.
    pub fn len(&self) -> u32 {
        self.header().next_id.load(Acquire).min(CAPACITY as u32)
    }

    /// The entry for `id`, once it is fully published. Called by the writer process.
    pub fn get(&self, id: u32) -> Option<&Entry> {
        if id >= self.len() {
            return None;
        }
        let idx = self.by_id(id).load(Acquire);
        let e = self.entry(idx.checked_sub(1)? as usize);
        (e.state.load(Acquire) == READY && e.id == id).then_some(e)
    }

    pub fn bytes(&self, s: Span) -> &[u8] {
        // SAFETY: a Span comes only from `copy`, whose range lies inside the arena and was
        // filled before its entry was published.
        unsafe { std::slice::from_raw_parts(self.arena.ptr().add(s.off), s.len) }
    }

    /// A fork child's table: fresh and empty, no longer the parent writer's (the child's
    /// writer needs every code object again, and entries the parent's other threads were
    /// filling would never be finished).
    pub fn renew(&self) -> bool {
        self.table.renew() && self.arena.renew()
    }
}
