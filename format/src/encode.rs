//! Encoding: the shim's writer process appends records to an [`Encoder`] and writes out
//! whole chunks.

use crate::record::*;
use crate::varint::{put_bytes, put_i64, put_u64};
use crate::{CHUNK_HEADER_LEN, FORMAT_VERSION, MAGIC};

/// Chunk framing: `"RPCK"`, payload length (u32 LE), CRC32 of the payload (u32 LE).
pub(crate) const CHUNK_MAGIC: [u8; 4] = *b"RPCK";

pub fn encode_header(h: &Header) -> Vec<u8> {
    let mut body = Vec::with_capacity(256);
    put_u64(&mut body, h.pid.into());
    put_u64(&mut body, h.ppid.into());
    put_u64(&mut body, h.start_unix_ns);
    body.push(h.clock);
    put_u64(&mut body, h.sample_hz.into());
    put_u64(&mut body, h.modes.into());
    put_u64(&mut body, h.mem_rate);
    put_u64(&mut body, h.copy_rate);
    put_i64(&mut body, h.signal.into());
    put_u64(&mut body, h.python_version.into());
    put_bytes(&mut body, h.exe.as_bytes());
    put_bytes(&mut body, h.cwd.as_bytes());
    put_u64(&mut body, h.argv.len() as u64);
    for a in &h.argv {
        put_bytes(&mut body, a.as_bytes());
    }
    let mut out = Vec::with_capacity(body.len() + 16);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// Accumulates records into one chunk.
pub struct Encoder {
    buf: Vec<u8>,
    body: Vec<u8>,
}

impl Default for Encoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Encoder {
    pub fn new() -> Self {
        let mut buf = Vec::with_capacity(64 << 10);
        buf.extend_from_slice(&[0; CHUNK_HEADER_LEN]);
        Encoder {
            buf,
            body: Vec::with_capacity(4096),
        }
    }

    /// Bytes of records in the current chunk.
    pub fn len(&self) -> usize {
        self.buf.len() - CHUNK_HEADER_LEN
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn push(&mut self, rec: &Record) {
        let b = &mut self.body;
        b.clear();
        let t = match rec {
            Record::String { id, text } => {
                put_u64(b, (*id).into());
                put_bytes(b, text.as_bytes());
                tag::STRING
            }
            Record::Function {
                id,
                kind,
                name,
                file,
                first_line,
            } => {
                put_u64(b, (*id).into());
                b.push(*kind as u8);
                put_u64(b, (*name).into());
                put_u64(b, (*file).into());
                put_u64(b, (*first_line).into());
                tag::FUNCTION
            }
            Record::Stack { id, frames } => {
                put_u64(b, (*id).into());
                put_u64(b, frames.len() as u64);
                for f in frames {
                    put_u64(b, f.func.into());
                    put_u64(b, f.line.into());
                }
                tag::STACK
            }
            Record::Thread { tid, name } => {
                put_u64(b, (*tid).into());
                put_u64(b, (*name).into());
                tag::THREAD
            }
            Record::Cpu(s) => {
                put_u64(b, s.t_ns);
                put_u64(b, s.tid.into());
                put_u64(b, s.stack.into());
                put_u64(b, s.cpu_ns);
                put_u64(b, s.sys_ns);
                b.push(s.exec as u8);
                tag::CPU
            }
            Record::Counters(c) => {
                put_u64(b, c.t_ns);
                put_u64(b, c.allocs);
                put_u64(b, c.frees);
                put_u64(b, c.alloc_bytes);
                put_u64(b, c.live_bytes);
                put_u64(b, c.peak_live_bytes);
                put_u64(b, c.python_live_bytes);
                tag::COUNTERS
            }
            Record::End(e) => {
                put_u64(b, e.t_ns);
                put_u64(b, e.samples);
                put_u64(b, e.dropped);
                put_u64(b, e.truncated);
                tag::END
            }
            Record::Alloc(a) => {
                put_u64(b, a.t_ns);
                put_u64(b, a.tid.into());
                put_u64(b, a.stack.into());
                put_u64(b, a.addr);
                put_u64(b, a.size);
                put_u64(b, a.weight);
                b.push(a.domain as u8);
                tag::ALLOC
            }
            Record::Free(f) => {
                put_u64(b, f.t_ns);
                put_u64(b, f.addr);
                tag::FREE
            }
            Record::ShortLived(s) => {
                put_u64(b, s.t_ns);
                put_u64(b, s.span_ns);
                put_u64(b, s.stack.into());
                put_u64(b, s.size);
                b.push(s.domain as u8);
                put_u64(b, s.count);
                put_u64(b, s.weight);
                put_u64(b, s.peak);
                put_u64(b, s.held_us);
                tag::SHORT_LIVED
            }
            Record::Copy(c) => {
                put_u64(b, c.t_ns);
                put_u64(b, c.tid.into());
                put_u64(b, c.stack.into());
                put_u64(b, c.weight);
                tag::COPY
            }
            Record::Mark { t_ns, label } => {
                put_u64(b, *t_ns);
                put_u64(b, (*label).into());
                tag::MARK
            }
            Record::Process(p) => {
                put_u64(b, p.run.into());
                b.push(p.root.into());
                tag::PROCESS
            }
            Record::Exit(e) => {
                put_u64(b, e.t_ns);
                match e.how {
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
                        put_u64(b, command.into());
                    }
                    Ending::Killed(sig) => {
                        b.push(3);
                        put_i64(b, sig.into());
                    }
                }
                tag::EXIT
            }
            Record::GpuDevice(d) => {
                put_u64(b, d.index.into());
                put_u64(b, d.name.into());
                put_u64(b, d.memory_total);
                tag::GPU_DEVICE
            }
            Record::Gpu(g) => {
                put_u64(b, g.t_ns);
                put_u64(b, g.device.into());
                put_u64(b, g.util.into());
                put_u64(b, g.memory);
                b.push(g.source);
                tag::GPU
            }
        };
        self.buf.push(t);
        put_u64(&mut self.buf, self.body.len() as u64);
        self.buf.extend_from_slice(&self.body);
    }

    /// Frames the records pushed so far as one chunk and returns its bytes; the encoder is
    /// then empty again. Returns `None` when there is nothing to write.
    pub fn finish_chunk(&mut self) -> Option<&[u8]> {
        if self.is_empty() {
            return None;
        }
        let len = self.len() as u32;
        let crc = crc32fast::hash(&self.buf[CHUNK_HEADER_LEN..]);
        self.buf[0..4].copy_from_slice(&CHUNK_MAGIC);
        self.buf[4..8].copy_from_slice(&len.to_le_bytes());
        self.buf[8..12].copy_from_slice(&crc.to_le_bytes());
        Some(&self.buf)
    }

    /// Starts a new chunk after the caller wrote the one from [`finish_chunk`].
    pub fn clear(&mut self) {
        self.buf.truncate(CHUNK_HEADER_LEN);
    }
}
