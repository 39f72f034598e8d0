//! The rprof trace format, defined once: the shim encodes with [`Encoder`], the CLI
//! decodes with [`read_trace`]. See `docs/FORMAT.md` for the byte layout.
//!
//! A trace is a header followed by chunks. Each chunk carries its length and a CRC32, so a
//! trace whose process was killed mid-write is readable up to its last whole chunk.

// Every unsafe block says why it is sound (`// SAFETY:`); CI's clippy holds it to that.
#![warn(clippy::undocumented_unsafe_blocks)]

mod codec;
mod decode;
mod encode;
mod record;
mod varint;

pub use codec::tag;
pub use decode::{
    read_trace, read_trace_from, Damage, Trace, TraceError, MAX_DAMAGE, MAX_HEADER_LEN,
};
pub use encode::{encode_header, Encoder};
pub use record::*;

/// First eight bytes of every trace file.
pub const MAGIC: [u8; 8] = *b"RPROFTR\0";
/// Bumped on any incompatible change to the header or a record's fields, and on a new
/// record an older reader must not skip: 2 added [`Record::ShortLived`], whose blocks a
/// version-1 reader would lose from every memory figure.
pub const FORMAT_VERSION: u16 = 2;
/// The oldest version this reader reads: version 1 is version 2 without `ShortLived`.
pub const OLDEST_VERSION: u16 = 1;
/// Bytes before each chunk's payload: `"RPCK"`, payload length (u32 LE), CRC32 (u32 LE).
pub const CHUNK_HEADER_LEN: usize = 12;
/// Upper bound a reader accepts for one chunk; larger lengths mean corruption.
pub const MAX_CHUNK_LEN: usize = 64 << 20;
