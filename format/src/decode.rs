//! Decoding: streams a trace's records to a visitor, reporting damage instead of failing,
//! so a truncated or corrupt trace still shows what was intact.

use crate::encode::CHUNK_MAGIC;
use crate::record::*;
use crate::varint::{Cursor, Short};
use crate::{CHUNK_HEADER_LEN, FORMAT_VERSION, MAGIC, MAX_CHUNK_LEN, OLDEST_VERSION};
use std::fmt;
use std::io::{self, Read};

/// The trace cannot be read at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TraceError {
    NotATrace,
    UnsupportedVersion(u16),
    BadHeader(&'static str),
    /// Reading the file failed before its header was whole (the I/O error's text).
    Unreadable(String),
}

impl fmt::Display for TraceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TraceError::NotATrace => write!(f, "not an rprof trace (bad magic bytes)"),
            TraceError::UnsupportedVersion(v) => write!(
                f,
                "trace format version {v} is not supported by this reader (it reads versions {OLDEST_VERSION} to {FORMAT_VERSION})"
            ),
            TraceError::BadHeader(what) => write!(f, "trace header is damaged: {what}"),
            TraceError::Unreadable(e) => write!(f, "cannot read the trace header: {e}"),
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
    /// Reading the file failed at `offset` (the I/O error's text).
    ReadFailed { offset: u64, error: String },
    /// Damage past the first [`MAX_DAMAGE`] reports, counted only.
    More { count: u64 },
}

/// Damage reports kept per trace: a hostile file could hold millions of bad chunks.
pub const MAX_DAMAGE: usize = 100;

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
            Damage::ReadFailed { offset, error } => write!(
                f,
                "reading the trace failed at byte {offset} ({error}); everything before it was read"
            ),
            Damage::More { count } => {
                write!(f, "{count} more damaged places in the trace were not listed")
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

/// Longest header body a reader accepts (executable, working directory and argv; the
/// kernel limits a command line to a few MiB). Longer means corruption.
pub const MAX_HEADER_LEN: usize = 64 << 20;

/// Reads a whole trace held in memory, handing every intact record to `visit` in file order.
pub fn read_trace(data: &[u8], visit: impl FnMut(Record)) -> Result<Trace, TraceError> {
    read_trace_from(data, visit)
}

/// Reads a trace as a stream, handing every intact record to `visit` in file order. Memory
/// stays bounded whatever the input: one chunk (at most [`MAX_CHUNK_LEN`]) is held at a time,
/// and damage is summed up in at most [`MAX_DAMAGE`] reports. Time is linear in the input.
/// An I/O error past the header ends the trace there, as damage.
pub fn read_trace_from(src: impl Read, mut visit: impl FnMut(Record)) -> Result<Trace, TraceError> {
    let mut input = Input::new(src);
    let header = read_header(&mut input)?;
    let mut trace = Trace {
        header,
        damage: Vec::new(),
        chunks: 0,
        bytes: 0,
    };
    let mut report = DamageLog::default();
    let mut unknown = 0u64;
    loop {
        let pos = input.offset;
        let rest = match input.fill(CHUNK_HEADER_LEN) {
            Ok([]) => break,
            Ok(rest) => rest,
            Err(e) => {
                report.push(Damage::ReadFailed {
                    offset: pos,
                    error: e.to_string(),
                });
                break;
            }
        };
        if rest.len() < CHUNK_HEADER_LEN {
            report.push(Damage::Truncated {
                offset: pos,
                missing: (CHUNK_HEADER_LEN - rest.len()) as u64,
            });
            let n = rest.len();
            input.consume(n);
            break;
        }
        let len = u32::from_le_bytes(rest[4..8].try_into().unwrap()) as usize;
        let crc = u32::from_le_bytes(rest[8..12].try_into().unwrap());
        if rest[0..4] != CHUNK_MAGIC || len > MAX_CHUNK_LEN {
            skip_damaged(&mut input, &mut report);
            continue;
        }
        let rest = match input.fill(CHUNK_HEADER_LEN + len) {
            Ok(rest) => rest,
            Err(e) => {
                report.push(Damage::ReadFailed {
                    offset: pos,
                    error: e.to_string(),
                });
                break;
            }
        };
        let Some(payload) = rest.get(CHUNK_HEADER_LEN..CHUNK_HEADER_LEN + len) else {
            report.push(Damage::Truncated {
                offset: pos,
                missing: (CHUNK_HEADER_LEN + len - rest.len()) as u64,
            });
            let n = rest.len();
            input.consume(n);
            break;
        };
        if crc32fast::hash(payload) != crc {
            skip_damaged(&mut input, &mut report);
            continue;
        }
        if let Err((off, t)) = read_chunk(payload, &mut visit, &mut unknown) {
            report.push(Damage::BadRecord {
                offset: pos + (CHUNK_HEADER_LEN + off) as u64,
                tag: t,
            });
        }
        trace.chunks += 1;
        input.consume(CHUNK_HEADER_LEN + len);
    }
    if unknown > 0 {
        report.push(Damage::UnknownRecords { count: unknown });
    }
    trace.damage = report.finish();
    trace.bytes = input.offset;
    Ok(trace)
}

/// Damage as reported: neighbouring corrupt stretches merged into one, at most
/// [`MAX_DAMAGE`] reports and a count of the rest.
#[derive(Default)]
struct DamageLog {
    list: Vec<Damage>,
    more: u64,
}

impl DamageLog {
    fn push(&mut self, d: Damage) {
        if let (
            Some(Damage::Corrupt { offset, skipped }),
            Damage::Corrupt {
                offset: next,
                skipped: more,
            },
        ) = (self.list.last_mut(), &d)
        {
            if *offset + *skipped == *next {
                *skipped += more;
                return;
            }
        }
        if self.list.len() < MAX_DAMAGE {
            self.list.push(d);
        } else {
            self.more += 1;
        }
    }

    fn finish(mut self) -> Vec<Damage> {
        if self.more > 0 {
            self.list.push(Damage::More { count: self.more });
        }
        self.list
    }
}

/// Passes over a damaged chunk start: its first byte, then everything up to the next chunk
/// magic (or the end), and reports the stretch as corrupt.
fn skip_damaged(input: &mut Input<impl Read>, report: &mut DamageLog) {
    let offset = input.offset;
    input.consume(1);
    // A read error is not reported here: the chunk loop's next read meets it again.
    while let Ok(rest) = input.fill(CHUNK_MAGIC.len()) {
        if rest.len() < CHUNK_MAGIC.len() {
            let n = rest.len();
            input.consume(n);
            break;
        }
        match rest
            .windows(CHUNK_MAGIC.len())
            .position(|w| w == CHUNK_MAGIC)
        {
            Some(p) => {
                input.consume(p);
                break;
            }
            // Keep the last bytes: a magic may straddle what was read and what comes next.
            None => {
                let n = rest.len() + 1 - CHUNK_MAGIC.len();
                input.consume(n);
            }
        }
    }
    report.push(Damage::Corrupt {
        offset,
        skipped: input.offset - offset,
    });
}

/// Bytes read at a time, once the buffer has grown.
const READ_SIZE: usize = 1 << 20;

/// A window over the input: what was read and not yet consumed, `buf[lo..hi]`, which starts
/// at byte `offset` of the input.
struct Input<R> {
    src: R,
    buf: Vec<u8>,
    lo: usize,
    hi: usize,
    offset: u64,
    eof: bool,
}

impl<R: Read> Input<R> {
    fn new(src: R) -> Self {
        Input {
            src,
            buf: Vec::new(),
            lo: 0,
            hi: 0,
            offset: 0,
            eof: false,
        }
    }

    /// What is buffered, after reading until it holds at least `n` bytes or the input ends.
    fn fill(&mut self, n: usize) -> io::Result<&[u8]> {
        while self.hi - self.lo < n && !self.eof {
            if self.lo + n > self.buf.len() {
                self.buf.copy_within(self.lo..self.hi, 0);
                self.hi -= self.lo;
                self.lo = 0;
                // Doubling up to READ_SIZE: a small trace never costs a large buffer.
                let len = n.max((2 * self.buf.len()).clamp(4096, READ_SIZE));
                if len > self.buf.len() {
                    self.buf.resize(len, 0);
                }
            }
            match self.src.read(&mut self.buf[self.hi..]) {
                Ok(0) => self.eof = true,
                Ok(k) => self.hi += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(&self.buf[self.lo..self.hi])
    }

    fn consume(&mut self, n: usize) {
        debug_assert!(n <= self.hi - self.lo);
        self.lo += n;
        self.offset += n as u64;
    }
}

fn read_header(input: &mut Input<impl Read>) -> Result<Header, TraceError> {
    let io = |e: io::Error| TraceError::Unreadable(e.to_string());
    let data = input.fill(16).map_err(io)?;
    if data.len() < 16 || data[..8] != MAGIC {
        return Err(TraceError::NotATrace);
    }
    let version = u16::from_le_bytes([data[8], data[9]]);
    if !(OLDEST_VERSION..=FORMAT_VERSION).contains(&version) {
        return Err(TraceError::UnsupportedVersion(version));
    }
    let len = u32::from_le_bytes(data[12..16].try_into().unwrap()) as usize;
    if len > MAX_HEADER_LEN {
        return Err(TraceError::BadHeader("its length is implausibly large"));
    }
    let data = input.fill(16 + len).map_err(io)?;
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
    input.consume(16 + len);
    Ok(h)
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
    crate::codec::decode_body(t, &mut Cursor::new(body))
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
        let recs = crate::codec::tests::every_kind();
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
        data[8] = 0;
        assert_eq!(
            read_trace(&data, |_| {}).unwrap_err(),
            TraceError::UnsupportedVersion(0)
        );
    }

    #[test]
    fn a_version_1_trace_is_still_read() {
        let (mut data, want) = trace_with_chunks(2);
        data[8..10].copy_from_slice(&OLDEST_VERSION.to_le_bytes());
        assert_eq!(OLDEST_VERSION, 1);
        let (t, got) = read_all(&data);
        assert_eq!(got, want);
        assert!(t.damage.is_empty());
    }

    /// Hands out at most `step` bytes per read, then fails after `fail_at` bytes if set.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
        fail_at: Option<usize>,
        pos: usize,
    }

    impl std::io::Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.fail_at.is_some_and(|f| self.pos >= f) {
                return Err(std::io::Error::other("disk on fire"));
            }
            let end = self.data.len().min(self.pos + self.step.min(buf.len()));
            let n = end - self.pos;
            buf[..n].copy_from_slice(&self.data[self.pos..end]);
            self.pos = end;
            Ok(n)
        }
    }

    #[test]
    fn streaming_in_small_reads_gives_the_same_records_and_damage() {
        let (mut data, _) = trace_with_chunks(6);
        let (first, _) = trace_with_chunks(2);
        data[first.len() + 20] ^= 0xff;
        data.extend_from_slice(b"RPCKjunk");
        let (want, want_recs) = read_all(&data);
        for step in [1, 3, 7, 64] {
            let mut got = Vec::new();
            let src = Trickle {
                data: &data,
                step,
                fail_at: None,
                pos: 0,
            };
            let t = read_trace_from(src, |r| got.push(r)).unwrap();
            assert_eq!((&t, &got), (&want, &want_recs), "reads of {step} bytes");
        }
    }

    #[test]
    fn a_read_error_ends_the_trace_as_damage() {
        let (data, want) = trace_with_chunks(4);
        let mut got = Vec::new();
        let src = Trickle {
            data: &data,
            step: 1,
            fail_at: Some(data.len() - 5),
            pos: 0,
        };
        let t = read_trace_from(src, |r| got.push(r)).unwrap();
        assert_eq!(got, want[..9]);
        assert!(
            matches!(&t.damage[..], [Damage::ReadFailed { error, .. }] if error == "disk on fire"),
            "{:?}",
            t.damage
        );
    }

    #[test]
    fn damage_is_merged_and_capped() {
        let (good, want) = trace_with_chunks(1);
        let (mut data, _) = trace_with_chunks(0);
        let header = data.len();
        // Bad chunk magic after bad chunk magic: one corrupt stretch.
        for _ in 0..1000 {
            data.extend_from_slice(b"RPCK\xff\xff\xff\xff....");
        }
        let (t, _) = read_all(&data);
        assert_eq!(
            t.damage,
            [Damage::Corrupt {
                offset: header as u64,
                skipped: (data.len() - header) as u64
            }]
        );
        // Damaged chunks between good ones: each reported, up to the cap (the first one
        // joins the stretch before it).
        for _ in 0..MAX_DAMAGE + 50 {
            data.extend_from_slice(b"RPCK\xff\xff\xff\xff....");
            data.extend_from_slice(&good[header..]);
        }
        let (t, got) = read_all(&data);
        assert_eq!(got.len(), want.len() * (MAX_DAMAGE + 50));
        assert_eq!(t.damage.len(), MAX_DAMAGE + 1);
        assert_eq!(t.damage[MAX_DAMAGE], Damage::More { count: 50 });
    }

    #[test]
    fn an_implausible_header_length_is_refused_before_it_is_read() {
        let (mut data, _) = trace_with_chunks(1);
        data[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            read_trace(&data, |_| {}).unwrap_err(),
            TraceError::BadHeader("its length is implausibly large")
        );
    }
}
