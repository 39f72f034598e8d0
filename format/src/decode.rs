//! Decoding: streams a trace's records to a visitor, reporting damage instead of failing,
//! so a truncated or corrupt trace still shows what was intact.

use crate::encode::CHUNK_MAGIC;
use crate::record::*;
use crate::varint::{Cursor, Short};
use crate::{CHUNK_HEADER_LEN, FORMAT_VERSION, MAGIC, MAX_CHUNK_LEN};
use std::fmt;

/// The trace cannot be read at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TraceError {
    NotATrace,
    UnsupportedVersion(u16),
    BadHeader(&'static str),
}

impl fmt::Display for TraceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TraceError::NotATrace => write!(f, "not an rprof trace (bad magic bytes)"),
            TraceError::UnsupportedVersion(v) => write!(
                f,
                "trace format version {v} is not supported by this reader (it reads version {FORMAT_VERSION})"
            ),
            TraceError::BadHeader(what) => write!(f, "trace header is damaged: {what}"),
        }
    }
}

impl std::error::Error for TraceError {}

/// Something wrong past the header; the records around it were still read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Damage {
    /// The file ends inside a chunk (the process was killed, or the disk filled).
    Truncated { offset: u64, missing: u64 },
    /// A chunk's checksum or framing is wrong; `skipped` bytes were passed over to resync.
    Corrupt { offset: u64, skipped: u64 },
    /// A record inside a valid chunk did not decode.
    BadRecord { offset: u64, tag: u8 },
    /// Records with tags this reader does not know (written by a newer rprof).
    UnknownRecords { count: u64 },
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Damage::Truncated { offset, missing } => write!(
                f,
                "trace is truncated: the chunk at byte {offset} is missing {missing} bytes (was the process killed?); everything before it was read"
            ),
            Damage::Corrupt { offset, skipped } => write!(
                f,
                "trace is corrupt at byte {offset}: {skipped} bytes failed their checksum and were skipped"
            ),
            Damage::BadRecord { offset, tag } => {
                write!(f, "record with tag {tag} at byte {offset} did not decode; rest of its chunk skipped")
            }
            Damage::UnknownRecords { count } => {
                write!(f, "{count} records of kinds unknown to this reader were skipped (written by a newer rprof?)")
            }
        }
    }
}

/// What a reader learned besides the records themselves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace {
    pub header: Header,
    pub damage: Vec<Damage>,
    pub chunks: u64,
    pub bytes: u64,
}

/// Reads a whole trace held in memory, handing every intact record to `visit` in file order.
pub fn read_trace(data: &[u8], mut visit: impl FnMut(Record)) -> Result<Trace, TraceError> {
    let (header, mut pos) = read_header(data)?;
    let mut trace = Trace {
        header,
        damage: Vec::new(),
        chunks: 0,
        bytes: data.len() as u64,
    };
    let mut unknown = 0u64;
    while pos < data.len() {
        let rest = &data[pos..];
        if rest.len() < CHUNK_HEADER_LEN {
            trace.damage.push(Damage::Truncated {
                offset: pos as u64,
                missing: (CHUNK_HEADER_LEN - rest.len()) as u64,
            });
            break;
        }
        let len = u32::from_le_bytes(rest[4..8].try_into().unwrap()) as usize;
        let crc = u32::from_le_bytes(rest[8..12].try_into().unwrap());
        if rest[0..4] != CHUNK_MAGIC || len > MAX_CHUNK_LEN {
            let skip = resync(rest);
            trace.damage.push(Damage::Corrupt {
                offset: pos as u64,
                skipped: skip as u64,
            });
            pos += skip;
            continue;
        }
        let Some(payload) = rest.get(CHUNK_HEADER_LEN..CHUNK_HEADER_LEN + len) else {
            trace.damage.push(Damage::Truncated {
                offset: pos as u64,
                missing: (CHUNK_HEADER_LEN + len - rest.len()) as u64,
            });
            break;
        };
        if crc32fast::hash(payload) != crc {
            let skip = resync(rest);
            trace.damage.push(Damage::Corrupt {
                offset: pos as u64,
                skipped: skip as u64,
            });
            pos += skip;
            continue;
        }
        if let Err((off, t)) = read_chunk(payload, &mut visit, &mut unknown) {
            trace.damage.push(Damage::BadRecord {
                offset: (pos + CHUNK_HEADER_LEN + off) as u64,
                tag: t,
            });
        }
        trace.chunks += 1;
        pos += CHUNK_HEADER_LEN + len;
    }
    if unknown > 0 {
        trace.damage.push(Damage::UnknownRecords { count: unknown });
    }
    Ok(trace)
}

/// Distance to the next chunk magic after a damaged chunk start (or to the end).
fn resync(rest: &[u8]) -> usize {
    rest[1..]
        .windows(CHUNK_MAGIC.len())
        .position(|w| w == CHUNK_MAGIC)
        .map_or(rest.len(), |p| p + 1)
}

fn read_header(data: &[u8]) -> Result<(Header, usize), TraceError> {
    if data.len() < 16 || data[..8] != MAGIC {
        return Err(TraceError::NotATrace);
    }
    let version = u16::from_le_bytes([data[8], data[9]]);
    if version != FORMAT_VERSION {
        return Err(TraceError::UnsupportedVersion(version));
    }
    let len = u32::from_le_bytes(data[12..16].try_into().unwrap()) as usize;
    let body = data
        .get(16..16 + len)
        .ok_or(TraceError::BadHeader("file ends inside the header"))?;
    let bad = |_: Short| TraceError::BadHeader("fields do not decode");
    let mut c = Cursor::new(body);
    let mut h = Header {
        pid: c.u32().map_err(bad)?,
        ppid: c.u32().map_err(bad)?,
        start_unix_ns: c.u64().map_err(bad)?,
        clock: c.u8().map_err(bad)?,
        sample_hz: c.u32().map_err(bad)?,
        modes: c.u32().map_err(bad)?,
        mem_rate: c.u64().map_err(bad)?,
        copy_rate: c.u64().map_err(bad)?,
        signal: c.i64().map_err(bad)? as i32,
        python_version: c.u32().map_err(bad)?,
        exe: c.string().map_err(bad)?,
        cwd: c.string().map_err(bad)?,
        argv: Vec::new(),
    };
    let n = c.u64().map_err(bad)?;
    for _ in 0..n.min(4096) {
        h.argv.push(c.string().map_err(bad)?);
    }
    Ok((h, 16 + len))
}

/// Decodes the records of one checksummed chunk. On a bad record, returns its offset in the
/// chunk and its tag; the records before it have been visited.
fn read_chunk(
    payload: &[u8],
    visit: &mut impl FnMut(Record),
    unknown: &mut u64,
) -> Result<(), (usize, u8)> {
    let mut c = Cursor::new(payload);
    while !c.is_empty() {
        let at = c.pos();
        let t = c.u8().map_err(|_| (at, 0))?;
        let body = c.bytes().map_err(|_| (at, t))?;
        match decode_record(t, body) {
            Ok(Some(r)) => visit(r),
            Ok(None) => *unknown += 1,
            Err(Short) => return Err((at, t)),
        }
    }
    Ok(())
}

fn decode_record(t: u8, body: &[u8]) -> Result<Option<Record>, Short> {
    let mut c = Cursor::new(body);
    let r = match t {
        tag::STRING => Record::String {
            id: c.u32()?,
            text: c.string()?,
        },
        tag::FUNCTION => Record::Function {
            id: c.u32()?,
            kind: match c.u8()? {
                0 => FuncKind::Python,
                1 => FuncKind::Native,
                _ => return Err(Short),
            },
            name: c.u32()?,
            file: c.u32()?,
            first_line: c.u32()?,
        },
        tag::STACK => {
            let id = c.u32()?;
            let n = c.u64()?;
            // Each frame takes at least two bytes: bound the allocation by the body size.
            if n > body.len() as u64 / 2 {
                return Err(Short);
            }
            let mut frames = Vec::with_capacity(n as usize);
            for _ in 0..n {
                frames.push(Frame {
                    func: c.u32()?,
                    line: c.u32()?,
                });
            }
            Record::Stack { id, frames }
        }
        tag::THREAD => Record::Thread {
            tid: c.u32()?,
            name: c.u32()?,
        },
        tag::CPU => Record::Cpu(CpuSample {
            t_ns: c.u64()?,
            tid: c.u32()?,
            stack: c.u32()?,
            cpu_ns: c.u64()?,
            sys_ns: c.u64()?,
            exec: match c.u8()? {
                0 => Exec::Python,
                1 => Exec::Native,
                2 => Exec::Profiler,
                _ => return Err(Short),
            },
        }),
        tag::COUNTERS => Record::Counters(Counters {
            t_ns: c.u64()?,
            allocs: c.u64()?,
            frees: c.u64()?,
            alloc_bytes: c.u64()?,
            live_bytes: c.u64()?,
            peak_live_bytes: c.u64()?,
            python_live_bytes: c.u64()?,
        }),
        tag::END => Record::End(End {
            t_ns: c.u64()?,
            samples: c.u64()?,
            dropped: c.u64()?,
            truncated: c.u64()?,
        }),
        tag::ALLOC => Record::Alloc(AllocSample {
            t_ns: c.u64()?,
            tid: c.u32()?,
            stack: c.u32()?,
            addr: c.u64()?,
            size: c.u64()?,
            weight: c.u64()?,
            domain: match c.u8()? {
                0 => Domain::Native,
                1 => Domain::Python,
                _ => return Err(Short),
            },
        }),
        tag::FREE => Record::Free(FreeSample {
            t_ns: c.u64()?,
            addr: c.u64()?,
        }),
        tag::COPY => Record::Copy(CopySample {
            t_ns: c.u64()?,
            tid: c.u32()?,
            stack: c.u32()?,
            weight: c.u64()?,
        }),
        tag::MARK => Record::Mark {
            t_ns: c.u64()?,
            label: c.u32()?,
        },
        _ => return Ok(None),
    };
    Ok(Some(r))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{encode_header, Encoder};

    fn sample(i: u64) -> Record {
        Record::Cpu(CpuSample {
            t_ns: i * 1000,
            tid: 7,
            stack: 3,
            cpu_ns: 10_000_000,
            sys_ns: i,
            exec: if i.is_multiple_of(2) {
                Exec::Python
            } else {
                Exec::Native
            },
        })
    }

    fn trace_with_chunks(n: u64) -> (Vec<u8>, Vec<Record>) {
        let h = Header {
            pid: 42,
            argv: vec!["python3".into(), "x.py".into()],
            ..Default::default()
        };
        let mut out = encode_header(&h);
        let mut all = Vec::new();
        let mut enc = Encoder::new();
        for c in 0..n {
            let recs = vec![
                Record::String {
                    id: c as u32,
                    text: format!("file{c}.py"),
                },
                Record::Stack {
                    id: c as u32 + 1,
                    frames: vec![Frame { func: 1, line: 9 }; 3],
                },
                sample(c),
            ];
            for r in &recs {
                enc.push(r);
            }
            out.extend_from_slice(enc.finish_chunk().unwrap());
            enc.clear();
            all.extend(recs);
        }
        (out, all)
    }

    fn read_all(data: &[u8]) -> (Trace, Vec<Record>) {
        let mut got = Vec::new();
        let t = read_trace(data, |r| got.push(r)).unwrap();
        (t, got)
    }

    #[test]
    fn round_trip() {
        let (data, want) = trace_with_chunks(5);
        let (t, got) = read_all(&data);
        assert_eq!(t.header.pid, 42);
        assert_eq!(t.header.argv, ["python3", "x.py"]);
        assert_eq!(t.chunks, 5);
        assert!(t.damage.is_empty());
        assert_eq!(got, want);
    }

    #[test]
    fn every_record_kind_round_trips() {
        let recs = vec![
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
            sample(1),
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
            Record::Copy(CopySample {
                t_ns: 1,
                tid: 2,
                stack: 3,
                weight: 4,
            }),
            Record::End(End {
                t_ns: 1,
                samples: 2,
                dropped: 3,
                truncated: 4,
            }),
        ];
        let h = Header {
            mem_rate: 1 << 19,
            copy_rate: 1 << 20,
            ..Default::default()
        };
        let mut data = encode_header(&h);
        let mut enc = Encoder::new();
        recs.iter().for_each(|r| enc.push(r));
        data.extend_from_slice(enc.finish_chunk().unwrap());
        let (t, got) = read_all(&data);
        assert_eq!(t.header, h);
        assert_eq!(got, recs);
    }

    #[test]
    fn truncated_trace_keeps_whole_chunks() {
        let (data, want) = trace_with_chunks(4);
        let (t, got) = read_all(&data[..data.len() - 5]);
        assert_eq!(got, want[..9]);
        assert!(matches!(
            t.damage[..],
            [Damage::Truncated { missing: 5, .. }]
        ));
    }

    #[test]
    fn corrupt_chunk_is_skipped_and_reported() {
        let (mut data, want) = trace_with_chunks(3);
        let (first, _) = trace_with_chunks(1);
        data[first.len() + 20] ^= 0xff; // inside the second chunk's payload
        let (t, got) = read_all(&data);
        assert_eq!(got[..3], want[..3]);
        assert_eq!(got[3..], want[6..]);
        assert!(matches!(t.damage[..], [Damage::Corrupt { .. }]));
    }

    #[test]
    fn unknown_tags_are_counted_not_fatal() {
        let (mut data, want) = trace_with_chunks(0);
        let payload = [99u8, 2, 0xaa, 0xbb];
        data.extend_from_slice(&CHUNK_MAGIC);
        data.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        data.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        data.extend_from_slice(&payload);
        let (t, got) = read_all(&data);
        assert_eq!(got, want);
        assert_eq!(t.damage, [Damage::UnknownRecords { count: 1 }]);
    }

    #[test]
    fn garbage_is_not_a_trace() {
        assert_eq!(
            read_trace(b"hello world, not a trace", |_| {}).unwrap_err(),
            TraceError::NotATrace
        );
        let (mut data, _) = trace_with_chunks(0);
        data[8] = 99;
        assert_eq!(
            read_trace(&data, |_| {}).unwrap_err(),
            TraceError::UnsupportedVersion(99)
        );
    }
}
