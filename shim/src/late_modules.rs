//! Symbolization of the modules the program loaded after the writer was forked (a
//! `dlopen`ed extension, numpy's `_multiarray_umath`, OpenBLAS): the writer does not have
//! them mapped, so each is read from its file once, and a PC is named from its symbol
//! tables (`.symtab`, else `.dynsym`), with file and line from its DWARF where present.
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
}

/// Modules by path; `None` for a file that cannot be read or parsed.
#[derive(Default)]
pub struct LateModules {
    modules: HashMap<String, Option<Module>>,
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
        let m = self
            .modules
            .entry(path.to_owned())
            .or_insert_with(|| Module::read(path))
            .as_ref()?;
        let addr = m
            .segments
            .iter()
            .find(|&&(off, size, _)| (off..off + size).contains(&offset))
            .map(|&(off, _, vaddr)| vaddr + (offset - off))?;
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
        // Kept for the writer's life (one copy per module loaded late, read once): the
        // line tables borrow from it.
        let data: &'static [u8] = Vec::leak(std::fs::read(path).ok()?);
        let file = object::File::parse(data).ok()?;
        let segments = file
            .segments()
            .map(|s| {
                let (off, size) = s.file_range();
                (off, size, s.address())
            })
            .collect();
        let mut functions: Vec<(u64, u64, String)> = file
            .symbols()
            .chain(file.dynamic_symbols())
            .filter(|s| s.kind() == SymbolKind::Text && s.address() != 0)
            .filter_map(|s| {
                let name = s.name().ok()?;
                Some((s.address(), s.address() + s.size(), name.to_owned()))
            })
            .collect();
        functions.sort();
        functions.dedup_by_key(|f| f.0);
        Some(Module {
            functions,
            segments,
            lines: dwarf(&file),
        })
    }
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
