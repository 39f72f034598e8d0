//! Symbolization of native PCs, in the writer process. The writer is a fork of the program
//! made when the shim loaded, so every module loaded by then sits at the same address in
//! both and resolves in-process (symbol tables, DWARF lines); a module the program loaded
//! later is found in the program's /proc maps and read from its file (`late_modules`):
//! named from its symbol tables and DWARF, else by its path and offset. So is a mapped
//! module with no DWARF of its own (the C library): in-process resolution would inflate
//! its separate debug file's DWARF, the writer's largest cost (see `late_modules`).

use crate::writer::late_modules::{demangle, LateModules};
use std::sync::mpsc::{channel, Receiver, Sender};

/// A thread of the writer process that resolves PCs (the writer may have threads: only
/// the program must not).
pub struct Symbolizer {
    requests: Option<Sender<(u64, bool, u32)>>,
    results: Receiver<(u32, Symbol)>,
    worker: Option<std::thread::JoinHandle<()>>,
}

impl Symbolizer {
    pub fn start(program: u32) -> Symbolizer {
        let (req_tx, req_rx) = channel::<(u64, bool, u32)>();
        let (res_tx, res_rx) = channel();
        let worker = std::thread::spawn(move || {
            let mut late = LateModules::default();
            for (pc, exact, id) in req_rx {
                if res_tx
                    .send((id, resolve(program, pc, exact, &mut late)))
                    .is_err()
                {
                    return;
                }
            }
        });
        Symbolizer {
            requests: Some(req_tx),
            results: res_rx,
            worker: Some(worker),
        }
    }

    pub fn request(&self, pc: u64, exact: bool, id: u32) {
        if let Some(tx) = &self.requests {
            let _ = tx.send((pc, exact, id));
        }
    }

    /// The resolutions ready now; with `all`, every one requested, waiting for the rest
    /// (and no more requests are taken).
    pub fn results(&mut self, all: bool) -> Vec<(u32, Symbol)> {
        if all {
            self.requests = None;
            if let Some(w) = self.worker.take() {
                let _ = w.join();
            }
        }
        self.results.try_iter().collect()
    }
}

pub struct Symbol {
    pub name: String,
    /// The source file when debug info has one, else the module's path.
    pub file: String,
    pub line: u32,
    /// For a PC named without its module's DWARF (a stripped C library, whose debug file's
    /// DWARF is not inflated here): the module's build id (hex) and the PC's address as
    /// the file numbers it, for the report to find the line.
    pub address: Option<(String, u64)>,
}

/// Resolves `pc`; a return address (`exact` false) is looked up one byte back, inside the
/// call instruction, so the line is the call's and not the next statement's.
fn resolve(program: u32, pc: u64, exact: bool, late: &mut LateModules) -> Symbol {
    let addr = if exact { pc } else { pc.saturating_sub(1) };
    if !mapped_here(addr) {
        // Loaded by the program after this process was forked: only its maps know it.
        let (module, offset) = module_of(program, addr);
        return match late.name(&module, offset) {
            Some(n) => Symbol {
                name: n.name,
                file: n.file.unwrap_or(module),
                line: n.line,
                address: None,
            },
            None => Symbol {
                name: format!("{}+0x{offset:x}", basename(&module)),
                file: module,
                line: 0,
                address: None,
            },
        };
    }
    let loaded = loaded_module(addr);
    if let Some((module, bias)) = &loaded {
        if !late.own_dwarf(module) {
            if let Some(n) = late.name_at(module, addr - bias) {
                let address = (n.line == 0)
                    .then(|| late.build_id(module))
                    .flatten()
                    .map(|id| (id, addr - bias));
                return Symbol {
                    name: n.name,
                    file: n.file.unwrap_or_else(|| module.clone()),
                    line: n.line,
                    address,
                };
            }
            // No symbol names the PC: named by module and offset, its line left to the
            // report. The in-process symbolizer would inflate the module's whole separate
            // debug file for it: one such PC (in the C library or the loader, whose debug
            // files are both compressed here) cost the writer 330 M instructions, ~0.1 s,
            // on alloc_heavy.py.
            let (_, offset) = module_of(program, addr);
            return Symbol {
                name: format!("{}+0x{offset:x}", basename(module)),
                file: module.clone(),
                line: 0,
                address: late.build_id(module).map(|id| (id, addr - bias)),
            };
        }
    }
    let mut found: Option<Symbol> = None;
    // backtrace::resolve looks up the byte before the address it is given (it expects
    // return addresses): given `addr + 1`, it resolves `addr` itself, so an exact PC at a
    // function's first byte is that function's.
    backtrace::resolve((addr + 1) as *mut libc::c_void, |s| {
        if found.is_none() {
            found = Some(Symbol {
                // The raw name demangled as a late module's are (C++ as well as Rust); a
                // name that is not UTF-8 as backtrace shows it (`{:#}`: Rust's without
                // its `::h<hash>` suffix).
                name: s
                    .name()
                    .map(|n| n.as_str().map_or_else(|| format!("{n:#}"), demangle))
                    .unwrap_or_default(),
                file: s
                    .filename()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                line: s.lineno().unwrap_or(0),
                address: None,
            });
        }
    });
    let mut sym = found.unwrap_or(Symbol {
        name: String::new(),
        file: String::new(),
        line: 0,
        address: None,
    });
    if sym.file.is_empty() || sym.name.is_empty() {
        let (mapped, offset) = module_of(program, addr);
        // The module as the loader names it, as its named functions have it (the maps'
        // path can be another spelling of the same file: /lib vs /usr/lib, a versioned
        // name), so that one module is one file in the report and one pprof mapping.
        let module = loaded.map_or(mapped, |(path, _)| path);
        if sym.name.is_empty() {
            sym.name = format!("{}+0x{offset:x}", basename(&module));
        }
        if sym.file.is_empty() {
            sym.file = module;
        }
    }
    sym
}

/// Whether a module containing `addr` is loaded in this process (as it was in the program
/// when the writer was forked).
fn mapped_here(addr: u64) -> bool {
    // SAFETY: an all-zero Dl_info is a valid buffer; dladdr only writes into it and reads
    // the loader's own tables, never the address itself.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    unsafe { libc::dladdr(addr as *const libc::c_void, &mut info) != 0 }
}

/// The start of glibc's `struct link_map`: the module's load bias.
#[repr(C)]
struct LinkMap {
    l_addr: usize,
}

const RTLD_DL_LINKMAP: libc::c_int = 2;

/// The file of the loaded module holding `addr`, by absolute path, and its load bias (the
/// file's virtual address is `addr - bias`); None for the main program (named as it was
/// started, not by path) or an address in no module.
fn loaded_module(addr: u64) -> Option<(String, u64)> {
    // SAFETY: an all-zero Dl_info is a valid buffer for dladdr1 to fill.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    let mut map: *mut LinkMap = std::ptr::null_mut();
    // SAFETY: dladdr1 fills `info` and points `map` at the module's link_map (glibc's,
    // valid while the module stays loaded: this process never unloads what it has not
    // loaded itself); only its first field is read.
    unsafe {
        if libc::dladdr1(
            addr as *const libc::c_void,
            &mut info,
            (&mut map as *mut *mut LinkMap).cast(),
            RTLD_DL_LINKMAP,
        ) == 0
            || map.is_null()
            || info.dli_fname.is_null()
        {
            return None;
        }
        let path = std::ffi::CStr::from_ptr(info.dli_fname).to_str().ok()?;
        path.starts_with('/')
            .then(|| (path.to_owned(), (*map).l_addr as u64))
    }
}

fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// The file mapped at `addr` in the program, and the offset of `addr` in it.
fn module_of(program: u32, addr: u64) -> (String, u64) {
    let maps = std::fs::read_to_string(format!("/proc/{program}/maps")).unwrap_or_default();
    for line in maps.lines() {
        let mut f = line.split_whitespace();
        let (Some(range), Some(_), Some(off), Some(_), Some(_), Some(path)) =
            (f.next(), f.next(), f.next(), f.next(), f.next(), f.next())
        else {
            continue;
        };
        let Some((lo, hi)) = range.split_once('-') else {
            continue;
        };
        let hex = |s: &str| u64::from_str_radix(s, 16).unwrap_or(0);
        if (hex(lo)..hex(hi)).contains(&addr) {
            return (path.to_owned(), addr - hex(lo) + hex(off));
        }
    }
    ("<unknown module>".to_owned(), addr)
}

#[cfg(test)]
mod tests {
    use super::{loaded_module, resolve};
    use crate::writer::late_modules::LateModules;

    #[test]
    fn a_c_library_function_is_named() {
        // SAFETY: looks up an exported symbol of the C library (not the test's PLT stub).
        let addr = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"getpid".as_ptr()) } as u64;
        let (module, bias) = loaded_module(addr).expect("the C library is a loaded module");
        assert!(module.contains("libc"), "{module}");
        assert!(bias > 0 && addr > bias);
        // A distribution's C library is stripped: named from its symbol tables (and its
        // debug file's), without inflating that file's DWARF.
        let mut late = LateModules::default();
        let s = resolve(std::process::id(), addr, true, &mut late);
        assert!(s.name.contains("getpid"), "{}", s.name);
        assert!(!s.file.is_empty());
        // With no line, its build id and address for the report: the address the module's
        // symbol table gives getpid.
        if s.line == 0 {
            let (id, at) = s.address.expect("a stripped module's PC has its address");
            assert!(
                id.len() >= 3 && id.chars().all(|c| c.is_ascii_hexdigit()),
                "{id}"
            );
            assert_eq!(at, addr - bias);
        }
    }
}
