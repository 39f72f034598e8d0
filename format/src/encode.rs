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
        self.body.clear();
        let t = crate::codec::encode_body(rec, &mut self.body);
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
