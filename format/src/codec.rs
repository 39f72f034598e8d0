//! Each record's wire form, defined once. The table at the end of this file lists every
//! record kind with its tag and its fields in wire order; the one macro that reads it
//! writes both the encoder (`encode_body`) and the decoder (`decode_body`), so the two
//! cannot disagree. A field's own encoding comes from its type's [`Wire`] impl.
//!
//! Adding a record: a struct or variant in `record.rs`, a line in the table (a new tag,
//! never a reused one), a `Wire` impl for any new field type, and its layout in
//! `docs/FORMAT.md`.

use crate::record::*;
use crate::varint::{put_bytes, put_i64, put_u64, Cursor, Short};

/// A field's encoding: what it writes, and how it is read back (rejecting what no encoder
/// writes, so a hostile body decodes to an error, never to a value nobody meant).
pub(crate) trait Wire: Sized {
    fn put(&self, b: &mut Vec<u8>);
    fn get(c: &mut Cursor) -> Result<Self, Short>;
}

/// Unsigned integers: LEB128 varints.
impl Wire for u64 {
    fn put(&self, b: &mut Vec<u8>) {
        put_u64(b, *self);
    }
    fn get(c: &mut Cursor) -> Result<Self, Short> {
        c.u64()
    }
}

impl Wire for u32 {
    fn put(&self, b: &mut Vec<u8>) {
        put_u64(b, (*self).into());
    }
    fn get(c: &mut Cursor) -> Result<Self, Short> {
        c.u32()
    }
}

/// A byte, as itself.
impl Wire for u8 {
    fn put(&self, b: &mut Vec<u8>) {
        b.push(*self);
    }
    fn get(c: &mut Cursor) -> Result<Self, Short> {
        c.u8()
    }
}

impl Wire for bool {
    fn put(&self, b: &mut Vec<u8>) {
        b.push((*self).into());
    }
    fn get(c: &mut Cursor) -> Result<Self, Short> {
        match c.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(Short),
        }
    }
}

/// Text: its length, then its bytes (read back lossily: a name is shown, not trusted).
impl Wire for String {
    fn put(&self, b: &mut Vec<u8>) {
        put_bytes(b, self.as_bytes());
    }
    fn get(c: &mut Cursor) -> Result<Self, Short> {
        c.string()
    }
}

/// Frames: their count, then each frame's function and line.
impl Wire for Vec<Frame> {
    fn put(&self, b: &mut Vec<u8>) {
        put_u64(b, self.len() as u64);
        for f in self {
            f.func.put(b);
            f.line.put(b);
        }
    }
    fn get(c: &mut Cursor) -> Result<Self, Short> {
        let n = c.u64()?;
        // Each frame takes at least two bytes: a count beyond what is left is corruption,
        // and must not size an allocation.
        if n > c.remaining() as u64 / 2 {
            return Err(Short);
        }
        (0..n)
            .map(|_| {
                Ok(Frame {
                    func: u32::get(c)?,
                    line: u32::get(c)?,
                })
            })
            .collect()
    }
}

/// A process's ending: a kind byte, then the status, signal (zigzag) or command string id.
impl Wire for Ending {
    fn put(&self, b: &mut Vec<u8>) {
        match *self {
            Ending::Exited(code) => {
                b.push(0);
                put_i64(b, code.into());
            }
            Ending::Signaled(sig) => {
                b.push(1);
                put_i64(b, sig.into());
            }
            Ending::Execd(command) => {
                b.push(2);
                command.put(b);
            }
            Ending::Killed(sig) => {
                b.push(3);
                put_i64(b, sig.into());
            }
        }
    }
    fn get(c: &mut Cursor) -> Result<Self, Short> {
        let signed = |c: &mut Cursor| i32::try_from(c.i64()?).map_err(|_| Short);
        Ok(match c.u8()? {
            0 => Ending::Exited(signed(c)?),
            1 => Ending::Signaled(signed(c)?),
            2 => Ending::Execd(u32::get(c)?),
            3 => Ending::Killed(signed(c)?),
            _ => return Err(Short),
        })
    }
}

/// A fieldless enum as one byte, its discriminant; an unknown byte is corruption.
macro_rules! byte_enum {
    ($($ty:ident { $($v:ident),* })*) => {$(
        impl Wire for $ty {
            fn put(&self, b: &mut Vec<u8>) {
                b.push(*self as u8);
            }
            fn get(c: &mut Cursor) -> Result<Self, Short> {
                let v = c.u8()?;
                $(if v == $ty::$v as u8 {
                    return Ok($ty::$v);
                })*
                Err(Short)
            }
        }
    )*};
}

byte_enum! {
    FuncKind { Python, Native }
    Exec { Python, Native, Profiler }
    Domain { Native, Python }
}

/// A percentage (a GPU's utilisation): anything above 100 is corruption.
fn percent(v: u32) -> Result<u32, Short> {
    (v <= 100).then_some(v).ok_or(Short)
}

/// The table's reader. Two kinds of entry: a record whose fields sit in its enum variant
/// (`TAG = N => Variant { field: Type, ... }`), and one that wraps a struct
/// (`TAG = N => Variant(Struct) { field: Type, ... }`). A field may name a check the
/// decoder applies to its value (`field: Type [check]`).
macro_rules! records {
    (
        inline { $( $itag:ident = $inum:literal => $ivar:ident { $( $if:ident : $ity:ty ),* } )* }
        wrapped { $( $wtag:ident = $wnum:literal => $wvar:ident ( $wst:ident ) {
            $( $wf:ident : $wty:ty $([$check:path])? ),* } )* }
    ) => {
        // Two records with one tag would decode as the first: refused at compile time.
        const _: () = {
            let tags = [$( $inum, )* $( $wnum, )*];
            let mut i = 0;
            while i < tags.len() {
                let mut j = i + 1;
                while j < tags.len() {
                    assert!(tags[i] != tags[j], "two records share a tag");
                    j += 1;
                }
                i += 1;
            }
        };

        /// Record tags on disk. Never reuse a number.
        pub mod tag {
            $( pub const $itag: u8 = $inum; )*
            $( pub const $wtag: u8 = $wnum; )*
        }

        /// Writes `rec`'s fields into `b`; returns its tag.
        pub(crate) fn encode_body(rec: &Record, b: &mut Vec<u8>) -> u8 {
            match rec {
                $( Record::$ivar { $( $if ),* } => {
                    $( Wire::put($if, b); )*
                    tag::$itag
                } )*
                $( Record::$wvar(s) => {
                    $( Wire::put(&s.$wf, b); )*
                    tag::$wtag
                } )*
            }
        }

        /// The record of tag `t` from its body; `None` for a tag this reader does not know
        /// (a newer writer's), which the caller skips.
        pub(crate) fn decode_body(t: u8, c: &mut Cursor) -> Result<Option<Record>, Short> {
            // Struct expressions evaluate their fields in the order written: the wire order.
            Ok(Some(match t {
                $( tag::$itag => Record::$ivar { $( $if: <$ity as Wire>::get(c)? ),* }, )*
                $( tag::$wtag => Record::$wvar($wst {
                    $( $wf: { let v = <$wty as Wire>::get(c)?; $( let v = $check(v)?; )? v } ),*
                }), )*
                _ => return Ok(None),
            }))
        }
    };
}

records! {
    inline {
        STRING = 1 => String { id: u32, text: String }
        FUNCTION = 2 => Function { id: u32, kind: FuncKind, name: u32, file: u32, first_line: u32 }
        STACK = 3 => Stack { id: u32, frames: Vec<Frame> }
        THREAD = 4 => Thread { tid: u32, name: u32 }
        MARK = 11 => Mark { t_ns: u64, label: u32 }
        NATIVE_ADDRESS = 17 => NativeAddress { func: u32, build_id: u32, addr: u64 }
    }
    wrapped {
        CPU = 5 => Cpu(CpuSample) { t_ns: u64, tid: u32, stack: u32, cpu_ns: u64, sys_ns: u64, exec: Exec }
        COUNTERS = 6 => Counters(Counters) {
            t_ns: u64, allocs: u64, frees: u64, alloc_bytes: u64, live_bytes: u64,
            peak_live_bytes: u64, python_live_bytes: u64
        }
        END = 7 => End(End) { t_ns: u64, samples: u64, dropped: u64, truncated: u64 }
        ALLOC = 8 => Alloc(AllocSample) {
            t_ns: u64, tid: u32, stack: u32, addr: u64, size: u64, weight: u64, domain: Domain
        }
        FREE = 9 => Free(FreeSample) { t_ns: u64, addr: u64 }
        SHORT_LIVED = 16 => ShortLived(ShortLived) {
            t_ns: u64, span_ns: u64, stack: u32, size: u64, domain: Domain, count: u64,
            weight: u64, peak: u64, held_us: u64
        }
        COPY = 10 => Copy(CopySample) { t_ns: u64, tid: u32, stack: u32, weight: u64 }
        PROCESS = 12 => Process(Process) { run: u32, root: bool }
        EXIT = 13 => Exit(Exit) { t_ns: u64, how: Ending }
        GPU_DEVICE = 14 => GpuDevice(GpuDevice) { index: u32, name: u32, memory_total: u64 }
        GPU = 15 => Gpu(GpuReading) {
            t_ns: u64, device: u32, util: u32 [percent], memory: u64, source: u8
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// One record of every kind (and every ending), for round trips here and in `decode`.
    pub(crate) fn every_kind() -> Vec<Record> {
        vec![
            Record::String {
                id: 1,
                text: "f.py".into(),
            },
            Record::Function {
                id: 2,
                kind: FuncKind::Native,
                name: 1,
                file: 1,
                first_line: 7,
            },
            Record::Stack {
                id: 3,
                frames: vec![Frame { func: 2, line: 8 }],
            },
            Record::Thread { tid: 9, name: 1 },
            Record::NativeAddress {
                func: 2,
                build_id: 1,
                addr: 0x9_a1b2,
            },
            Record::Cpu(CpuSample {
                t_ns: 1,
                tid: 2,
                stack: 3,
                cpu_ns: 4,
                sys_ns: 5,
                exec: Exec::Profiler,
            }),
            Record::Mark { t_ns: 7, label: 1 },
            Record::Counters(Counters {
                t_ns: 1,
                allocs: 2,
                frees: 3,
                alloc_bytes: 4,
                live_bytes: 5,
                peak_live_bytes: 6,
                python_live_bytes: 7,
            }),
            Record::Alloc(AllocSample {
                t_ns: 1,
                tid: 2,
                stack: 3,
                addr: u64::MAX,
                size: 5,
                weight: 6,
                domain: Domain::Python,
            }),
            Record::Free(FreeSample { t_ns: 1, addr: 2 }),
            Record::ShortLived(ShortLived {
                t_ns: 1,
                span_ns: 2,
                stack: 3,
                size: 4,
                domain: Domain::Python,
                count: 5,
                weight: 6,
                peak: 7,
                held_us: u64::MAX,
            }),
            Record::Copy(CopySample {
                t_ns: 1,
                tid: 2,
                stack: 3,
                weight: 4,
            }),
            Record::GpuDevice(GpuDevice {
                index: 1,
                name: 1,
                memory_total: 80 << 30,
            }),
            Record::Gpu(GpuReading {
                t_ns: 1,
                device: 1,
                util: 100,
                memory: 1 << 30,
                source: gpu_source::PROCESS_MEMORY,
            }),
            Record::End(End {
                t_ns: 1,
                samples: 2,
                dropped: 3,
                truncated: 4,
            }),
            Record::Process(Process { run: 5, root: true }),
            Record::Exit(Exit {
                t_ns: 1,
                how: Ending::Exited(-1),
            }),
            Record::Exit(Exit {
                t_ns: 2,
                how: Ending::Signaled(15),
            }),
            Record::Exit(Exit {
                t_ns: 3,
                how: Ending::Execd(6),
            }),
            Record::Exit(Exit {
                t_ns: 4,
                how: Ending::Killed(9),
            }),
        ]
    }

    fn body(rec: &Record) -> (u8, Vec<u8>) {
        let mut b = Vec::new();
        let t = encode_body(rec, &mut b);
        (t, b)
    }

    #[test]
    fn every_kind_round_trips_and_no_prefix_decodes() {
        for rec in every_kind() {
            let (t, b) = body(&rec);
            assert_eq!(decode_body(t, &mut Cursor::new(&b)), Ok(Some(rec.clone())));
            // A cut body is an error, never a record with made-up fields.
            for cut in 0..b.len() {
                assert_eq!(
                    decode_body(t, &mut Cursor::new(&b[..cut])),
                    Err(Short),
                    "{rec:?} cut at {cut}"
                );
            }
        }
    }

    #[test]
    fn tags_are_distinct_and_unknown_ones_are_skipped() {
        let mut tags: Vec<u8> = every_kind().iter().map(|r| body(r).0).collect();
        tags.sort();
        tags.dedup();
        // Every kind but Exit appears once; Exit four times (its endings).
        assert_eq!(tags.len(), every_kind().len() - 3);
        assert_eq!(decode_body(200, &mut Cursor::new(&[1, 2, 3])), Ok(None));
    }

    #[test]
    fn values_no_encoder_writes_are_refused() {
        // A function kind, an exec kind, a domain, a bool and an ending kind out of range.
        for (t, b) in [
            (tag::FUNCTION, vec![1, 2, 1, 1, 1]),
            (tag::CPU, vec![1, 2, 3, 4, 5, 3]),
            (tag::ALLOC, vec![1, 2, 3, 4, 5, 6, 2]),
            (tag::PROCESS, vec![1, 2]),
            (tag::EXIT, vec![1, 4, 0]),
        ] {
            assert_eq!(
                decode_body(t, &mut Cursor::new(&b)),
                Err(Short),
                "tag {t}: {b:?}"
            );
        }
        // A GPU utilisation above 100 %.
        let mut b = Vec::new();
        let gpu = GpuReading {
            t_ns: 1,
            device: 0,
            util: 101,
            memory: 0,
            source: 0,
        };
        encode_body(&Record::Gpu(gpu), &mut b);
        assert_eq!(decode_body(tag::GPU, &mut Cursor::new(&b)), Err(Short));
        // A frame count larger than the body could hold.
        assert_eq!(
            decode_body(tag::STACK, &mut Cursor::new(&[1, 100, 1, 1])),
            Err(Short)
        );
    }
}
