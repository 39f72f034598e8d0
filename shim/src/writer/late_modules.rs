//! Symbolization from a module's file: for the modules the program loaded after the writer
//! was forked (a `dlopen`ed extension, numpy's `_multiarray_umath`, OpenBLAS), which the
//! writer does not have mapped, and for the mapped ones with no DWARF of their own (the C
//! library, whose debug info, when installed, is a separate compressed file). Each file is
//! mapped and read once, and a PC is named from its symbol tables (`.symtab`, else
//! `.dynsym`; a stripped module's `.symtab` from its build-id debug file), with file and line
//! from its own DWARF where present. A separate debug file's DWARF is not loaded: inflating
//! the C library's took a writer about 25 ms of CPU per process, as much as a Python
//! interpreter's whole start-up, for the file and line of C library internals.
//! Runs on the writer's symbolizer thread, never in the program.

use addr2line::gimli;
use object::{Object, ObjectSegment, ObjectSymbol, SymbolKind};
use std::collections::HashMap;

/// A module read from its file: its functions by address, and its DWARF lines.
struct Module {
    /// (start, end, name), sorted by start; addresses are the file's virtual addresses.
    functions: Vec<(u64, u64, String)>,
    /// File offset to virtual address, per loadable segment: (offset, size, address).
    segments: Vec<(u64, u64, u64)>,
    lines: Option<addr2line::Context<gimli::EndianSlice<'static, gimli::RunTimeEndian>>>,
    /// The GNU build id, lowercase hex, where the file has one.
    build_id: Option<String>,
}

/// Modules by path; `None` for a file that cannot be read or parsed.
#[derive(Default)]
pub struct LateModules {
    modules: HashMap<String, Option<Module>>,
    /// Whether a mapped module has DWARF of its own, by path (see `own_dwarf`).
    own_dwarf: HashMap<String, bool>,
}

/// What a module says of one PC.
pub struct Named {
    pub name: String,
    pub file: Option<String>,
    pub line: u32,
}

impl LateModules {
    /// The function holding file offset `offset` of the module at `path`, if its symbol
    /// tables name one.
    pub fn name(&mut self, path: &str, offset: u64) -> Option<Named> {
        let m = self.module(path)?;
        let addr = m
            .segments
            .iter()
            .find(|&&(off, size, _)| (off..off + size).contains(&offset))
            .map(|&(off, _, vaddr)| vaddr + (offset - off))?;
        self.name_at(path, addr)
    }

    /// Whether the file at `path` holds DWARF of its own (read once; a file that cannot be
    /// read counts as having it, and is left to the in-process symbolizer).
    pub fn own_dwarf(&mut self, path: &str) -> bool {
        if let Some(&known) = self.own_dwarf.get(path) {
            return known;
        }
        let has = map(path)
            .and_then(|data| object::File::parse(data).ok())
            .is_none_or(|f| f.section_by_name(".debug_info").is_some());
        self.own_dwarf.insert(path.to_owned(), has);
        has
    }

    /// The build id (lowercase hex) of the module at `path`, if it has one.
    pub fn build_id(&mut self, path: &str) -> Option<String> {
        self.module(path)?.build_id.clone()
    }

    fn module(&mut self, path: &str) -> Option<&Module> {
        self.modules
            .entry(path.to_owned())
            .or_insert_with(|| Module::read(path))
            .as_ref()
    }

    /// The function holding virtual address `addr` (as the file numbers it) of the module
    /// at `path`, if its symbol tables name one.
    pub fn name_at(&mut self, path: &str, addr: u64) -> Option<Named> {
        let m = self.module(path)?;
        let i = m
            .functions
            .partition_point(|f| f.0 <= addr)
            .checked_sub(1)?;
        let (start, end, name) = &m.functions[i];
        if addr >= *end && end > start {
            return None;
        }
        let (file, line) = m
            .lines
            .as_ref()
            .and_then(|ctx| ctx.find_location(addr).ok().flatten())
            .map_or((None, 0), |l| {
                (l.file.map(str::to_owned), l.line.unwrap_or(0))
            });
        Some(Named {
            name: demangle(name),
            file,
            line,
        })
    }
}

impl Module {
    fn read(path: &str) -> Option<Module> {
        let data = map(path)?;
        let file = object::File::parse(data).ok()?;
        let segments = file
            .segments()
            .map(|s| {
                let (off, size) = s.file_range();
                (off, size, s.address())
            })
            .collect();
        let text = |s: &object::Symbol<'_, '_>| {
            let name = s.name().ok()?;
            (s.kind() == SymbolKind::Text && s.address() != 0)
                .then(|| (s.address(), s.address() + s.size(), name.to_owned()))
        };
        let mut functions: Vec<(u64, u64, String)> = file
            .symbols()
            .chain(file.dynamic_symbols())
            .filter_map(|s| text(&s))
            .collect();
        if file.symbols().next().is_none() {
            // Stripped: the full symbol table is in the debug file, when one is installed.
            if let Some(debug) = debug_file(&file).and_then(|d| object::File::parse(d).ok()) {
                functions.extend(debug.symbols().filter_map(|s| text(&s)));
            }
        }
        functions.sort();
        functions.dedup_by_key(|f| f.0);
        Some(Module {
            functions,
            segments,
            lines: dwarf(&file),
            build_id: build_id(&file),
        })
    }
}

/// The file at `path`, mapped read-only for the writer's life (one mapping per module,
/// made once): the symbol names and line tables borrow from it.
fn map(path: &str) -> Option<&'static [u8]> {
    use std::os::fd::AsRawFd;
    let file = std::fs::File::open(path).ok()?;
    let len = usize::try_from(file.metadata().ok()?.len()).ok()?;
    if len == 0 {
        return None;
    }
    // SAFETY: a private read-only mapping of a file we opened; it is never unmapped, so the
    // slice stays valid ('static). A file changed under it is at worst misread (names),
    // as reading it would have been.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_PRIVATE,
            file.as_raw_fd(),
            0,
        );
        (p != libc::MAP_FAILED).then(|| std::slice::from_raw_parts(p as *const u8, len))
    }
}

/// A module's GNU build id, lowercase hex.
fn build_id(file: &object::File<'static>) -> Option<String> {
    let id = file.build_id().ok()??;
    let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
    (hex.len() >= 3).then_some(hex)
}

/// The separate debug file of a stripped module, by its build id.
fn debug_file(file: &object::File<'static>) -> Option<&'static [u8]> {
    let hex = build_id(file)?;
    map(&format!(
        "/usr/lib/debug/.build-id/{}/{}.debug",
        &hex[..2],
        &hex[2..]
    ))
}

/// The module's DWARF line tables, when it has debug info.
fn dwarf(
    file: &object::File<'static>,
) -> Option<addr2line::Context<gimli::EndianSlice<'static, gimli::RunTimeEndian>>> {
    use object::ObjectSection;
    file.section_by_name(".debug_info")?;
    let endian = if file.is_little_endian() {
        gimli::RunTimeEndian::Little
    } else {
        gimli::RunTimeEndian::Big
    };
    let load = |id: gimli::SectionId| -> Result<_, gimli::Error> {
        let data: &'static [u8] = match file
            .section_by_name(id.name())
            .and_then(|s| s.uncompressed_data().ok())
        {
            Some(std::borrow::Cow::Borrowed(d)) => d,
            // A compressed section, inflated: kept as the file's bytes are.
            Some(std::borrow::Cow::Owned(d)) => Vec::leak(d),
            None => &[],
        };
        Ok(gimli::EndianSlice::new(data, endian))
    };
    let dwarf = gimli::Dwarf::load(load).ok()?;
    addr2line::Context::from_dwarf(dwarf).ok()
}

/// Rust and C++ names demangled (Rust's without its `::h<hash>` suffix); C names as they are.
pub(crate) fn demangle(name: &str) -> String {
    if let Ok(d) = rustc_demangle::try_demangle(name) {
        return format!("{d:#}");
    }
    if name.starts_with("_Z") {
        if let Ok(s) = cpp_demangle::Symbol::new(name) {
            if let Ok(d) = s.demangle(&cpp_demangle::DemangleOptions::default()) {
                return d;
            }
        }
    }
    name.to_owned()
}

#[cfg(test)]
mod tests {
    use super::demangle;

    #[test]
    fn names_are_demangled() {
        assert_eq!(demangle("hot_a"), "hot_a");
        assert_eq!(
            demangle("_ZN4core3fmt5write17h0123456789abcdefE"),
            "core::fmt::write"
        );
        assert_eq!(demangle("_Z3fooi"), "foo(int)");
    }
}
