//! Unwinding out of the C library in the sampling signal's handler. glibc is built
//! without frame pointers, so a sample inside malloc, free or memcpy finds `rbp` holding
//! anything (or the caller's caller's frame) and a frame-pointer walk loses the caller.
//! Its call frame information (`.eh_frame`, always mapped: the C++ unwinder needs it) says,
//! for every instruction, where the frame's return address and saved `rbp` are. The
//! writer process compiles that into a sorted table of rows (a PC range -> the CFA as `rsp`
//! or `rbp` plus an offset, and the saved `rbp`'s slot) in memory it shares with the
//! program, so the handler only binary-searches it and reads the interrupted thread's
//! stack, bounded by the thread's stack and guarded against faults: it steps out of the C
//! library's frames to its caller's, and the frame-pointer walk goes on from there
//! (`native_stack::interrupted`).

use crate::record::native_stack;
use gimli::UnwindSection;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering::*};

/// How one row finds the CFA. `Stop` marks code the table cannot unwind (no FDE, a CFA
/// given by an expression, a return address or `rbp` not in a stack slot): the caller
/// falls back to the frame-pointer walk.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
enum Base {
    Stop = 0,
    Rsp = 1,
    Rbp = 2,
}

/// One row: from `start` (offset from the object's load address) to the next row's start,
/// CFA = `base` + `cfa_off`; the return address is at CFA - 8 (the x86-64 ABI's, checked
/// for each row); `rbp` was saved at CFA + 8 × `rbp_slot`, or is unchanged when 0.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(C)]
struct Row {
    start: u32,
    cfa_off: u16,
    base: Base,
    rbp_slot: i8,
}

const _: () = assert!(std::mem::size_of::<Row>() == 8);

/// Where one object whose frames the table unwinds is loaded: its load address, its code's
/// range, and its `.eh_frame_hdr` and the end of the segment holding it (for the writer).
/// Set at start, before the writer and any sampling thread exist.
struct Place {
    bias: AtomicUsize,
    text: [AtomicUsize; 2],
    eh_frame_hdr: AtomicUsize,
    segment_end: AtomicUsize,
}

/// The objects unwound by the table: the C library, and another allocator the program
/// uses (jemalloc, tcmalloc: also built without frame pointers), preloaded after rprof
/// (the shim's wrappers forward to it, in CPU-only mode leaving no frame of the shim's to
/// walk from) or before it (the program calls it directly).
const OBJECTS: usize = 2;

#[allow(clippy::declare_interior_mutable_const)]
const NOWHERE: Place = Place {
    bias: AtomicUsize::new(0),
    text: [AtomicUsize::new(0), AtomicUsize::new(0)],
    eh_frame_hdr: AtomicUsize::new(0),
    segment_end: AtomicUsize::new(0),
};
static PLACES: [Place; OBJECTS] = [NOWHERE; OBJECTS];
/// Places set, in order.
static PLACED: AtomicUsize = AtomicUsize::new(0);
/// The shared mapping holding the table (`Shared`), null without one.
static TABLE: AtomicPtr<Shared> = AtomicPtr::new(std::ptr::null_mut());

/// Rows the mapping has room for (1 MiB, reserved, touched as written): glibc 2.39's
/// table has about 28,000.
const CAPACITY: usize = 1 << 17;

/// The table, in memory shared (`MAP_SHARED`) by the program, its writer process, and any
/// child the program forks (the same C library at the same address). Compiling it takes
/// glibc's CFI programs 10-20 ms, too long for the program's start, so the writer compiles
/// it a slice at a time between its drains (`Compiler`) and publishes it whole in `len`;
/// until then samples in the C library walk frame pointers as without it.
#[repr(C)]
struct Shared {
    /// Rows published, 0 until the table is whole.
    len: AtomicUsize,
    /// Set by the writer that compiles the table: a forked child's writer finds it taken.
    claimed: AtomicUsize,
    /// Where each object's rows start (in `PLACES` order; each ends where the next starts,
    /// the last at `len`).
    first: [AtomicUsize; OBJECTS],
    rows: [Row; CAPACITY],
}

/// Frames stepped through at most before giving up (malloc -> _int_malloc ->
/// sysmalloc is three).
const MAX_STEPS: usize = 8;

extern "C" {
    fn rprof_probe_copy(src: usize, dst: *mut u8, len: usize) -> libc::c_int;
}

/// Finds the C library (and an allocator loaded after the shim) and maps the (empty) table
/// for the writer to fill. Init time only, in the program before the writer starts: two
/// `dlsym`s, walks of the loaded objects and a reserving `mmap`, a few thousand
/// instructions. Without glibc or its `.eh_frame_hdr` there is no table and the sampler
/// walks frame pointers as before. After `native_stack::init`: the shim's own malloc is
/// not another allocator.
pub fn init() {
    // SAFETY: dlsym with constant names; null when absent. `gnu_get_libc_version` is
    // glibc's and interposed by no one. The program's `malloc` is an allocator's preloaded
    // before rprof (`alloc_hooks.rs`) or the shim's, which forwards to the next one.
    let (libc_fn, first_malloc, next_malloc) = unsafe {
        (
            libc::dlsym(libc::RTLD_DEFAULT, c"gnu_get_libc_version".as_ptr()) as usize,
            libc::dlsym(libc::RTLD_DEFAULT, c"malloc".as_ptr()) as usize,
            libc::dlsym(libc::RTLD_NEXT, c"malloc".as_ptr()) as usize,
        )
    };
    if libc_fn == 0 {
        return;
    }
    let Some(libc) = find_object(libc_fn) else {
        return;
    };
    let allocator = [first_malloc, next_malloc]
        .into_iter()
        .filter(|&f| f != 0 && !native_stack::in_shim(f))
        .find_map(find_object)
        .filter(|a| a.bias != libc.bias);
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: a fresh shared anonymous mapping (zeroed: no rows, unclaimed).
        let table = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                std::mem::size_of::<Shared>(),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if table == libc::MAP_FAILED {
            return;
        }
        let mut n = 0;
        for (obj, place) in [Some(libc), allocator].into_iter().flatten().zip(&PLACES) {
            place.bias.store(obj.bias, Relaxed);
            place.text[0].store(obj.text.0, Relaxed);
            place.text[1].store(obj.text.1, Relaxed);
            place.eh_frame_hdr.store(obj.eh_frame_hdr, Relaxed);
            place.segment_end.store(obj.segment_end, Relaxed);
            n += 1;
        }
        PLACED.store(n, Relaxed);
        TABLE.store(table.cast(), Release);
    }
}

/// The mapped object's addresses the table is built from.
struct Object {
    bias: usize,
    text: (usize, usize),
    eh_frame_hdr: usize,
    /// End of the loaded segment holding `.eh_frame_hdr` (and, after it, `.eh_frame`).
    segment_end: usize,
}

/// The loaded object whose code holds `addr`, with its executable segment and
/// `PT_GNU_EH_FRAME`.
fn find_object(addr: usize) -> Option<Object> {
    struct Want {
        addr: usize,
        found: Option<Object>,
    }
    extern "C" fn visit(info: *mut libc::dl_phdr_info, _: usize, want: *mut libc::c_void) -> i32 {
        // SAFETY: dl_iterate_phdr passes a valid info with dlpi_phnum headers, and `want`
        // is the Want below, alive for the whole iteration.
        let (info, want) = unsafe { (&*info, &mut *(want as *mut Want)) };
        // SAFETY: dlpi_phdr holds dlpi_phnum headers.
        let phdrs = unsafe { std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize) };
        let bias = info.dlpi_addr as usize;
        let span = |ph: &libc::Elf64_Phdr| {
            let start = bias + ph.p_vaddr as usize;
            (start, start + ph.p_memsz as usize)
        };
        let Some(text) = phdrs
            .iter()
            .filter(|ph| ph.p_type == libc::PT_LOAD && ph.p_flags & libc::PF_X != 0)
            .map(span)
            .find(|&(lo, hi)| (lo..hi).contains(&want.addr))
        else {
            return 0;
        };
        let hdr = phdrs.iter().find(|ph| ph.p_type == libc::PT_GNU_EH_FRAME);
        want.found = hdr.and_then(|hdr| {
            let eh_frame_hdr = span(hdr).0;
            let segment_end = phdrs
                .iter()
                .filter(|ph| ph.p_type == libc::PT_LOAD)
                .map(span)
                .find(|&(lo, hi)| (lo..hi).contains(&eh_frame_hdr))?
                .1;
            Some(Object {
                bias,
                text,
                eh_frame_hdr,
                segment_end,
            })
        });
        1
    }
    let mut want = Want { addr, found: None };
    // SAFETY: the callback only reads what the loader passes it and writes the Want.
    unsafe { libc::dl_iterate_phdr(Some(visit), (&mut want as *mut Want).cast()) };
    want.found
}

type Reader = gimli::EndianSlice<'static, gimli::LittleEndian>;

/// How long after the writer's start it begins compiling: a short program (`python3 -c
/// pass` runs for 20-40 ms) ends before, and pays nothing, not even the writer's CPU time
/// beside it on a busy machine; a long one loses the caller of its samples in the C library
/// for its first tenth of a second or so.
const DELAY: std::time::Duration = std::time::Duration::from_millis(100);

/// FDEs (functions) compiled per `Compiler::step`: about a millisecond's work, so the
/// writer's drains and its noticing the program's exit are held up no longer than that.
const FDES_PER_STEP: usize = 256;

/// Compiles the table in the writer process, a slice at a time, object after object:
/// each object's FDEs in the order of its `.eh_frame_hdr` search table (sorted by start
/// address), each FDE's rows from its CFI program, rows that unwind alike merged.
pub struct Compiler {
    /// The object being compiled, and its index in `PLACES`.
    source: Source,
    object: usize,
    ctx: Box<gimli::UnwindContext<usize>>,
    out: Out,
    /// When compiling begins (`DELAY`).
    due: std::time::Instant,
}

/// One object's CFI, as the writer reads it from its own copy of the object's mapping.
struct Source {
    hdr: gimli::ParsedEhFrameHdr<Reader>,
    eh_frame: gimli::EhFrame<Reader>,
    bases: gimli::BaseAddresses,
    bias: u64,
    /// The next FDE's index in the search table.
    next_fde: usize,
}

impl Source {
    fn of(place: &Place) -> Option<Source> {
        let hdr_at = place.eh_frame_hdr.load(Relaxed);
        let end = place.segment_end.load(Relaxed);
        let from = |addr: usize| {
            let len = end.checked_sub(addr)?;
            // SAFETY: `addr..end` is within the object's loaded segment holding
            // .eh_frame_hdr and .eh_frame, mapped read-only as long as the object is
            // loaded: for good (the C library, an allocator the shim forwards to).
            Some(unsafe { std::slice::from_raw_parts(addr as *const u8, len) })
        };
        let bases = gimli::BaseAddresses::default().set_eh_frame_hdr(hdr_at as u64);
        let hdr = gimli::EhFrameHdr::new(from(hdr_at)?, gimli::LittleEndian)
            .parse(&bases, 8)
            .ok()?;
        let eh_frame_at = hdr.eh_frame_ptr().direct().ok()? as usize;
        let bases = bases
            .set_eh_frame(eh_frame_at as u64)
            .set_text(place.text[0].load(Relaxed) as u64);
        let eh_frame = gimli::EhFrame::new(from(eh_frame_at)?, gimli::LittleEndian);
        hdr.table()?;
        Some(Source {
            hdr,
            eh_frame,
            bases,
            bias: place.bias.load(Relaxed) as u64,
            next_fde: 0,
        })
    }
}

impl Compiler {
    /// In the writer process: the compiler of the table, if this process mapped one, no
    /// other writer took it (a forked child's), and the C library's CFI parses.
    pub fn claim() -> Option<Compiler> {
        // SAFETY: the mapping made in `init`, never unmapped.
        let table = unsafe { TABLE.load(Acquire).as_ref()? };
        if table.claimed.swap(1, AcqRel) != 0 || table.len.load(Acquire) != 0 {
            return None;
        }
        Some(Compiler {
            source: Source::of(&PLACES[0])?,
            object: 0,
            ctx: Box::new(gimli::UnwindContext::new()),
            out: Out {
                table,
                len: 0,
                floor: 0,
            },
            due: std::time::Instant::now() + DELAY,
        })
    }

    /// Whether it is time to compile (the writer then calls `step` without pausing).
    pub fn due(&self) -> bool {
        std::time::Instant::now() >= self.due
    }

    /// Compiles the next FDEs; true once the table is whole and published (or given up:
    /// full).
    pub fn step(&mut self) -> bool {
        let src = &mut self.source;
        let Some(table) = src.hdr.table() else {
            return self.next_object();
        };
        let mut entries = table.iter(&src.bases);
        let mut entry = entries.nth(src.next_fde);
        for _ in 0..FDES_PER_STEP {
            let Ok(Some((_, fde_ptr))) = entry else {
                return self.next_object();
            };
            src.next_fde += 1;
            let fde = table.pointer_to_offset(fde_ptr).and_then(|off| {
                src.eh_frame
                    .fde_from_offset(&src.bases, off, gimli::EhFrame::cie_from_offset)
            });
            if let Ok(fde) = fde {
                if !rows_of(src, &mut self.ctx, &fde, &mut self.out) {
                    return self.out.publish(self.object);
                }
            }
            entry = entries.next();
        }
        false
    }

    /// Ends the current object's rows (dropped unless in order: the search table's order
    /// should make them so, and anything else is not a table to search) and moves to the
    /// next object, or publishes the table after the last; true when published.
    fn next_object(&mut self) -> bool {
        let first = self.out.floor;
        // SAFETY: rows below len were written by this compiler.
        let rows =
            unsafe { std::slice::from_raw_parts(self.out.table.rows.as_ptr(), self.out.len) };
        if !rows[first..].is_sorted_by_key(|r| r.start) {
            self.out.len = first;
        }
        let next = self.object + 1;
        let source = (next < PLACED.load(Relaxed).min(OBJECTS))
            .then(|| Source::of(&PLACES[next]))
            .flatten();
        let Some(source) = source else {
            return self.out.publish(self.object);
        };
        self.out.table.first[next].store(self.out.len, Relaxed);
        self.out.floor = self.out.len;
        (self.source, self.object) = (source, next);
        false
    }
}

/// Appends one FDE's rows to `out`; false when the table is full.
fn rows_of(
    src: &Source,
    ctx: &mut gimli::UnwindContext<usize>,
    fde: &gimli::FrameDescriptionEntry<Reader>,
    out: &mut Out,
) -> bool {
    use gimli::{CfaRule, RegisterRule, X86_64};
    let offset = |addr: u64| u32::try_from(addr.checked_sub(src.bias)?).ok();
    let Ok(mut unwind) = fde.rows(&src.eh_frame, &src.bases, ctx) else {
        return true;
    };
    let mut rows = Vec::new();
    let mut end = None;
    while let Ok(Some(r)) = unwind.next_row() {
        let (Some(start), Some(stop)) = (offset(r.start_address()), offset(r.end_address())) else {
            break;
        };
        let cfa = match *r.cfa() {
            CfaRule::RegisterAndOffset { register, offset }
                if register == X86_64::RSP || register == X86_64::RBP =>
            {
                let base = if register == X86_64::RSP {
                    Base::Rsp
                } else {
                    Base::Rbp
                };
                u16::try_from(offset).ok().map(|off| (base, off))
            }
            _ => None,
        };
        let ra_ok = matches!(r.register(X86_64::RA), Some(RegisterRule::Offset(-8)));
        let rbp_slot = match r.register(X86_64::RBP) {
            None | Some(RegisterRule::SameValue) => Some(0),
            Some(RegisterRule::Offset(off)) if off % 8 == 0 && off < 0 => {
                i8::try_from(off / 8).ok()
            }
            _ => None,
        };
        rows.push(match (cfa, ra_ok, rbp_slot) {
            (Some((base, cfa_off)), true, Some(rbp_slot)) => Row {
                start,
                cfa_off,
                base,
                rbp_slot,
            },
            _ => stop_at(start),
        });
        end = Some(stop);
    }
    rows.extend(end.map(stop_at));
    rows.into_iter().all(|row| out.push(row))
}

/// The rows written so far, in the shared mapping, unpublished; the current object's
/// start at `floor`.
struct Out {
    table: &'static Shared,
    len: usize,
    floor: usize,
}

impl Out {
    /// Appends a row, merged with the last where they unwind alike; false when full.
    fn push(&mut self, row: Row) -> bool {
        let rows = self.table.rows.as_ptr().cast_mut();
        if let Some(i) = self.len.checked_sub(1).filter(|&i| i >= self.floor) {
            // SAFETY: row `i` < len was written by this compiler, the mapping's only writer
            // (`claimed`), and is not read by anyone until published.
            let last = unsafe { &mut *rows.add(i) };
            if (last.base, last.cfa_off, last.rbp_slot) == (row.base, row.cfa_off, row.rbp_slot) {
                return true;
            }
            // An empty FDE, or the end-of-function Stop under the next function's start.
            if last.start == row.start {
                *last = row;
                return true;
            }
        }
        if self.len == CAPACITY {
            return false;
        }
        // SAFETY: len < CAPACITY; unpublished, as above.
        unsafe { rows.add(self.len).write(row) };
        self.len += 1;
        true
    }

    /// Publishes the rows written, the objects after `object` (none compiled) empty.
    fn publish(&mut self, object: usize) -> bool {
        for first in &self.table.first[object + 1..] {
            first.store(self.len, Relaxed);
        }
        self.table.len.store(self.len, Release);
        true
    }
}

fn stop_at(start: u32) -> Row {
    Row {
        start,
        cfa_off: 0,
        base: Base::Stop,
        rbp_slot: 0,
    }
}

/// The load address and the published rows of the object whose code holds `pc`, if the
/// table covers it. Async-signal-safe.
fn object_of(pc: usize) -> Option<(usize, &'static [Row])> {
    // SAFETY: the mapping made in `init`, never unmapped; rows below a published `len` are
    // never written again.
    let table = unsafe { TABLE.load(Acquire).as_ref()? };
    let len = table.len.load(Acquire);
    if len == 0 {
        return None;
    }
    // SAFETY: as above; the Acquire load orders the rows' (and `first`'s) writes before.
    let rows = unsafe { std::slice::from_raw_parts(table.rows.as_ptr(), len) };
    let placed = PLACED.load(Relaxed).min(OBJECTS);
    let i = (0..placed).find(|&i| {
        let text = &PLACES[i].text;
        (text[0].load(Relaxed)..text[1].load(Relaxed)).contains(&pc)
    })?;
    let first = table.first[i].load(Relaxed);
    let end = table.first.get(i + 1).map_or(len, |f| f.load(Relaxed));
    Some((PLACES[i].bias.load(Relaxed), rows.get(first..end.min(len))?))
}

/// The row for `pc` in its object's rows. Async-signal-safe.
fn row_for(bias: usize, rows: &[Row], pc: usize) -> Option<Row> {
    let off = u32::try_from(pc.checked_sub(bias)?).ok()?;
    let i = rows.partition_point(|r| r.start <= off).checked_sub(1)?;
    Some(rows[i]).filter(|r| r.base != Base::Stop)
}

/// A word of the interrupted thread's stack at `addr`, if within `[lo, hi)` and readable.
fn read(addr: usize, lo: usize, hi: usize) -> Option<usize> {
    if addr < lo || addr.checked_add(8)? > hi || !addr.is_multiple_of(8) {
        return None;
    }
    let mut word = 0usize;
    // SAFETY: copies 8 bytes into `word` under the fault guard; a fault returns 0.
    let ok = unsafe { rprof_probe_copy(addr, (&raw mut word).cast(), 8) };
    (ok != 0).then_some(word)
}

/// The registers of a frame: its PC, stack pointer and frame pointer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Regs {
    pub pc: usize,
    pub sp: usize,
    pub fp: usize,
}

/// Steps from the interrupted registers `at` (PC in the C library, or the allocator)
/// out of the table's objects' frames: writes each return address into `out` and returns
/// how many, with the registers of the first frame outside them. `None` when the PC is
/// not in them, or a step fails (no row, a slot outside `[sp, stack_hi)`, a fault): the caller walks
/// frame pointers as without the table. Async-signal-safe: a binary search and bounded
/// reads of the thread's own stack.
pub fn step_out(at: Regs, stack_hi: usize, out: &mut [usize]) -> Option<(usize, Regs)> {
    if stack_hi == 0 || at.sp >= stack_hi {
        return None;
    }
    let mut r = at;
    let mut n = 0;
    // The interrupted PC is the instruction about to run; a return address is the one
    // after a call, which for a call ending a function is already outside it.
    let mut lookup = r.pc;
    let mut object = object_of(lookup)?;
    loop {
        let row = row_for(object.0, object.1, lookup)?;
        let base = if row.base == Base::Rsp { r.sp } else { r.fp };
        let cfa = base.checked_add(usize::from(row.cfa_off))?;
        let ra = read(cfa.checked_sub(8)?, r.sp, stack_hi)?;
        if row.rbp_slot != 0 {
            let slot = cfa.checked_add_signed(isize::from(row.rbp_slot) * 8)?;
            r.fp = read(slot, r.sp, stack_hi)?;
        }
        r = Regs {
            pc: ra,
            sp: cfa,
            fp: r.fp,
        };
        out[n] = ra;
        n += 1;
        lookup = ra.checked_sub(1)?;
        match object_of(lookup) {
            Some(o) if n < out.len().min(MAX_STEPS) => object = o,
            _ => return Some((n, r)),
        }
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use crate::record::native_stack;
    use crate::record::native_stack::{frame_pointer, stack_top};
    use std::sync::atomic::AtomicBool;

    /// The C library's load address and rows, once the table is compiled.
    fn compiled() -> (usize, &'static [Row]) {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            // As at start: the shim's text known first (this test binary holds the shim's
            // malloc, which is not another allocator).
            native_stack::init();
            init();
            let mut c = Compiler::claim().expect("a table to compile");
            let mut steps = 1;
            while !c.step() {
                steps += 1;
            }
            assert!(steps > 1, "compiled in slices");
            assert!(Compiler::claim().is_none(), "compiled once");
        });
        object_of(libc::gnu_get_libc_version as *const () as usize).expect("published")
    }

    #[test]
    fn the_c_librarys_table_covers_its_functions() {
        let (bias, rows) = compiled();
        assert!(rows.len() > 1000, "{}", rows.len());
        assert!(rows.windows(2).all(|w| w[0].start < w[1].start));
        // memcpy (the IFUNC's pick) starts with its CFA at rsp + 8 and rbp untouched.
        // SAFETY: dlsym with a constant name.
        let memcpy = unsafe { libc::dlsym(libc::RTLD_NEXT, c"memcpy".as_ptr()) } as usize;
        let row = row_for(bias, rows, memcpy).expect("memcpy's row");
        assert_eq!((row.base, row.cfa_off, row.rbp_slot), (Base::Rsp, 8, 0));
    }

    static STEPPED: AtomicBool = AtomicBool::new(false);
    static OUT: AtomicUsize = AtomicUsize::new(0);

    /// qsort's comparator, called from inside the C library: from the registers qsort had
    /// when it called (its return address, the stack pointer past it, its rbp, which this
    /// frame saved), the table steps out to qsort's caller.
    extern "C" fn compare(a: *const libc::c_void, b: *const libc::c_void) -> i32 {
        if !STEPPED.swap(true, Relaxed) {
            let fp = frame_pointer();
            // SAFETY: this function keeps frame pointers: [fp] is the caller's rbp,
            // [fp + 8] the return address.
            let (saved_fp, ra) = unsafe { (*(fp as *const usize), *((fp + 8) as *const usize)) };
            let at = Regs {
                pc: ra,
                sp: fp + 16,
                fp: saved_fp,
            };
            let mut out = [0usize; 8];
            // A stack top just above the first frame's return address: the read of the
            // next is outside the stack, so the step fails rather than read it.
            let short = step_out(at, at.sp + 8, &mut out);
            let stepped = step_out(at, stack_top(), &mut out);
            let ok = short.is_none() && stepped.is_some_and(|(n, _)| n >= 1 && out[n - 1] != 0);
            OUT.store(stepped.filter(|_| ok).map_or(0, |(_, r)| r.pc), Relaxed);
        }
        // SAFETY: qsort passes pointers to the i32s being sorted.
        unsafe { (*(a as *const i32)).cmp(&*(b as *const i32)) as i32 }
    }

    #[inline(never)]
    fn sort_in_libc() -> (usize, usize) {
        let mut v = [3i32, 1, 2];
        let here = sort_in_libc as *const () as usize;
        // SAFETY: three i32s, compared by `compare`.
        unsafe { libc::qsort(v.as_mut_ptr().cast(), 3, 4, Some(compare)) };
        (here, OUT.load(Relaxed))
    }

    #[test]
    fn steps_out_of_the_c_library_to_its_caller() {
        compiled();
        let (here, pc) = sort_in_libc();
        assert!(pc != 0 && object_of(pc).is_none(), "{pc:#x}");
        // The return address into sort_in_libc: after its start, within its few hundred bytes.
        assert!(pc > here && pc - here < 512, "{pc:#x} vs {here:#x}");
    }
}
