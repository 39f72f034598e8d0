//! The lines of native PCs the writer named without DWARF ([`Record::NativeAddress`]: a
//! stripped C library, whose DWARF is in a separate, compressed debug file the writer does
//! not inflate, as that would cost every profiled process ~25 ms of CPU). The report reads
//! them from the build id's debug file under `/usr/lib/debug/.build-id/`, once per module,
//! where one is installed: the run pays nothing for them.
//!
//! [`Record::NativeAddress`]: rprof_format::Record::NativeAddress

use addr2line::gimli;
use object::{Object, ObjectSection};
use rustc_hash::FxHashMap;
use std::io::Read;
use std::rc::Rc;

type Reader = gimli::EndianRcSlice<gimli::RunTimeEndian>;

/// The debug files' line tables, by build id (`None`: none installed, or unreadable).
pub(super) struct DebugLines {
    root: std::path::PathBuf,
    modules: FxHashMap<String, Option<addr2line::Context<Reader>>>,
}

/// A debug file larger than this, or a section inflating past it, is not read: the trace
/// is untrusted input, and a debug file is named by a build id it gives.
const MAX_BYTES: u64 = 1 << 30;

impl Default for DebugLines {
    fn default() -> Self {
        DebugLines::at("/usr/lib/debug/.build-id")
    }
}

impl DebugLines {
    /// Debug files looked for under `root` (`XX/REST.debug` for build id `XXREST`).
    pub(super) fn at(root: impl Into<std::path::PathBuf>) -> DebugLines {
        DebugLines {
            root: root.into(),
            modules: FxHashMap::default(),
        }
    }

    /// The source file and line of address `addr` (as the module's file numbers it) of the
    /// module with build id `build_id`, if its debug file is installed and has one.
    pub(super) fn line(&mut self, build_id: &str, addr: u64) -> Option<(String, u32)> {
        let root = &self.root;
        let ctx = self
            .modules
            .entry(build_id.to_owned())
            .or_insert_with(|| read(root, build_id))
            .as_ref()?;
        let loc = ctx.find_location(addr).ok()??;
        Some((loc.file?.to_owned(), loc.line.filter(|&l| l > 0)?))
    }
}

/// The line tables of build id `id`'s debug file; only a build id of hex digits names a
/// file, so a trace cannot point the report anywhere else.
fn read(root: &std::path::Path, id: &str) -> Option<addr2line::Context<Reader>> {
    if id.len() < 3 || id.len() > 128 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let path = root.join(&id[..2]).join(format!("{}.debug", &id[2..]));
    let meta = std::fs::metadata(&path).ok()?;
    if !meta.is_file() || meta.len() > MAX_BYTES {
        return None;
    }
    let data = std::fs::read(&path).ok()?;
    let file = object::File::parse(&*data).ok()?;
    // Only the file this build id names: a debug file of another build is another libc.
    let hex: String = file
        .build_id()
        .ok()??
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if hex != id {
        return None;
    }
    file.section_by_name(".debug_info")?;
    let endian = if file.is_little_endian() {
        gimli::RunTimeEndian::Little
    } else {
        gimli::RunTimeEndian::Big
    };
    // What file:line needs; the variables' locations (.debug_loclists, the largest after
    // .debug_info) are not inflated.
    use gimli::SectionId::*;
    let load = |id: gimli::SectionId| -> Result<Reader, gimli::Error> {
        let needed = matches!(
            id,
            DebugInfo
                | DebugAbbrev
                | DebugLine
                | DebugLineStr
                | DebugStr
                | DebugStrOffsets
                | DebugAddr
                | DebugAranges
                | DebugRanges
                | DebugRngLists
        );
        let bytes = file
            .section_by_name(id.name())
            .filter(|_| needed)
            .and_then(|s| section(&s))
            .unwrap_or_default();
        Ok(gimli::EndianRcSlice::new(Rc::from(bytes), endian))
    };
    let dwarf = gimli::Dwarf::load(load).ok()?;
    addr2line::Context::from_dwarf(dwarf).ok()
}

/// A section's bytes, inflated where zlib compressed them (a zstd-compressed section is
/// left out: its lines are not read).
fn section(s: &object::Section<'_, '_>) -> Option<Vec<u8>> {
    let c = s.compressed_data().ok()?;
    match c.format {
        object::CompressionFormat::None => Some(c.data.to_vec()),
        object::CompressionFormat::Zlib if c.uncompressed_size <= MAX_BYTES => {
            let mut out = Vec::with_capacity(c.uncompressed_size as usize);
            flate2::read::ZlibDecoder::new(c.data)
                .take(c.uncompressed_size)
                .read_to_end(&mut out)
                .ok()?;
            Some(out)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::DebugLines;

    #[test]
    fn only_a_hex_build_id_names_a_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("..")).unwrap();
        let mut d = DebugLines::at(dir.path());
        for id in ["", "ab", "../../etc/passwd", "zz12", "ab/../cd"] {
            assert!(d.line(id, 0x1000).is_none(), "{id}");
        }
        // A file at the right place that is not an ELF file with that build id.
        std::fs::create_dir_all(dir.path().join("ab")).unwrap();
        std::fs::write(dir.path().join("ab/cdef.debug"), b"not ELF").unwrap();
        assert!(d.line("abcdef", 0x1000).is_none());
    }
}
