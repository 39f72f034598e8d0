//! The charging policy: which line and function a stack's samples are charged to, and the
//! tables that resolve ids to names, functions and line slots on the way.
//!
//! A sample is charged to its stack's innermost Python frame in the program's own code
//! ([`Charging`]: by default, any file outside the standard library, site-packages and the
//! interpreter's frozen modules), so time and memory spent in libraries, Python or native,
//! land on the user's line that called them; a stack with no such frame goes to its
//! innermost Python frame. Native frames come first when native code was running, as in
//! an extension module's allocation. A stack with no Python frame is charged to its
//! innermost native frame outside the C library and the loader (with none, the frameless
//! time's label, by phase). The charged frame's
//! file (source file or module) and line are the sample's line; the stacks themselves
//! keep every frame.

use super::types::{
    FileProfile, FunctionProfile, LineGpu, LineProfile, Location, Memory, Times, NO_PYTHON_FRAME,
    UNDEFINED,
};
use rprof_format::{Frame, FuncKind};
use rustc_hash::{FxHashMap, FxHashSet};

/// Whether a native function's file (source file or module) is the C library's, the
/// loader's or the kernel's vDSO: installed libraries, or glibc's own build paths.
pub(super) fn is_system_file(file: &str) -> bool {
    const SYSTEM: [&str; 6] = [
        "/lib/",
        "/lib64/",
        "/usr/lib/",
        "/usr/include/",
        "./",
        "[vdso]",
    ];
    SYSTEM.iter().any(|p| file.starts_with(p))
}

/// The line a frame runs: its own, or where it has none its function's first line (a
/// native PC's line is its function record's; a Python frame's, in a trace written before
/// the shim charged line-less instructions to the line before them, its function's).
/// 0 where neither is known (a native function with no debug line info): such a frame is
/// charged to a line slot of its function ([`FileTable::slot`]), shown as the function.
pub(super) fn frame_line(f: &Frame, defs: &FxHashMap<u32, FunctionDef>) -> u32 {
    match (f.line, defs.get(&f.func)) {
        (0, Some(d)) => d.first_line,
        (line, _) => line,
    }
}

/// Where a stack's samples are charged: a line slot and a function slot.
#[derive(Debug, Clone, Copy)]
pub struct Site {
    pub line: usize,
    pub func: Option<usize>,
    /// Whether the stack has a Python frame.
    pub python: bool,
    /// Charged past library frames to a caller in the program's own code.
    pub via_library: bool,
}

/// Which Python files count as the program's own code, whose lines library time and
/// memory are charged to (`--profile-all`, `--profile-only`, `--profile-exclude`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Charging {
    /// Every file is the program's: each line is charged its own samples.
    pub all: bool,
    /// When not empty, only files whose path contains one of these are the program's.
    pub only: Vec<String>,
    /// Files whose path contains one of these are not the program's.
    pub exclude: Vec<String>,
}

impl Charging {
    /// Whether `file` (a Python frame's file) is the program's own code.
    pub fn is_own(&self, file: &str) -> bool {
        if self.exclude.iter().any(|s| file.contains(s.as_str())) {
            return false;
        }
        if !self.only.is_empty() {
            return self.only.iter().any(|s| file.contains(s.as_str()));
        }
        self.all || !is_library(file)
    }

    /// Whether any file may be charged with another's samples.
    pub fn recharges(&self) -> bool {
        !self.all || !self.only.is_empty() || !self.exclude.is_empty()
    }

    /// The policy in words, for the report's header.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.only.is_empty() {
            parts.push(format!("only files matching {}", self.only.join(", ")));
        } else if self.all {
            parts.push("every file".to_string());
        } else {
            parts.push("files outside the standard library and site-packages".to_string());
        }
        if !self.exclude.is_empty() {
            parts.push(format!("not {}", self.exclude.join(", ")));
        }
        parts.join(", ")
    }
}

/// A Python file of the standard library, an installed package or the interpreter's own
/// frozen modules: `.../lib/pythonX.Y/...` (site-packages included), `dist-packages`
/// (Debian's), `<frozen ...>`.
pub fn is_library(file: &str) -> bool {
    if file.starts_with("<frozen ") {
        return true;
    }
    if file.contains("/site-packages/") || file.contains("/dist-packages/") {
        return true;
    }
    // `/lib/python3.11/`, `/lib/python3/`, `/lib64/python3.11/`.
    file.match_indices("/python").any(|(i, _)| {
        let before = &file[..i];
        let after = &file[i + "/python".len()..];
        (before.ends_with("/lib") || before.ends_with("/lib64"))
            && after.split_once('/').is_some_and(|(v, _)| {
                !v.is_empty() && v.chars().all(|c| c.is_ascii_digit() || c == '.')
            })
    })
}

/// A function record, its strings still ids.
#[derive(Debug, Clone, Copy)]
pub(super) struct FunctionDef {
    pub kind: FuncKind,
    pub name: u32,
    pub file: u32,
    pub first_line: u32,
}

/// String lookups that remember which ids were missing.
pub(super) struct Names<'a> {
    pub(super) strings: &'a FxHashMap<u32, String>,
    pub(super) missing: FxHashSet<u32>,
}

impl Names<'_> {
    pub(super) fn get(&mut self, id: u32) -> String {
        match self.strings.get(&id) {
            Some(s) => s.clone(),
            None => {
                self.missing.insert(id);
                format!("<string #{id}>")
            }
        }
    }
}

/// Functions by their resolved identity: two ids naming the same function merge.
#[derive(Default)]
pub(super) struct FunctionTable {
    pub(super) by_id: FxHashMap<u32, usize>,
    pub(super) by_key: FxHashMap<(String, String, u32, u8), usize>,
    pub(super) list: Vec<FunctionProfile>,
}

impl FunctionTable {
    pub(super) fn index(
        &mut self,
        id: u32,
        defs: &FxHashMap<u32, FunctionDef>,
        names: &mut Names,
        missing: &mut FxHashSet<u32>,
    ) -> usize {
        if let Some(&i) = self.by_id.get(&id) {
            return i;
        }
        let (name, file, first_line, kind) = match defs.get(&id) {
            // The shim writes one record per native PC, with that PC's line as its first
            // line: the function itself is its name and file.
            Some(d) if d.kind == FuncKind::Native => {
                (names.get(d.name), names.get(d.file), 0, d.kind)
            }
            Some(d) => (names.get(d.name), names.get(d.file), d.first_line, d.kind),
            None => {
                missing.insert(id);
                (
                    format!("<function #{id}>"),
                    UNDEFINED.to_string(),
                    0,
                    FuncKind::Python,
                )
            }
        };
        let list = &mut self.list;
        let i = *self
            .by_key
            .entry((name.clone(), file.clone(), first_line, kind as u8))
            .or_insert_with(|| {
                list.push(FunctionProfile {
                    name,
                    file,
                    first_line,
                    kind,
                    self_times: Times::default(),
                    total_ns: 0,
                    memory: Memory::default(),
                    gpu: LineGpu::default(),
                });
                list.len() - 1
            });
        self.by_id.insert(id, i);
        i
    }
}

/// Line slots: one per (file, line), and per function for line 0 where a frame without a
/// line was charged, numbered in order of first use.
#[derive(Default)]
pub(super) struct FileTable {
    pub(super) by_path: FxHashMap<String, usize>,
    /// Path, and whether native code is charged to it.
    pub(super) paths: Vec<(String, bool)>,
    /// By file, line and (for line 0) function slot.
    pub(super) by_line: FxHashMap<(usize, u32, Option<usize>), usize>,
    pub(super) lines: Vec<LineSlot>,
}

pub(super) struct LineSlot {
    pub(super) file: usize,
    pub(super) line: u32,
    /// The name of the function a line 0 slot stands for.
    pub(super) function: Option<String>,
    pub(super) times: Times,
}

impl FileTable {
    /// The slot of `line` in `path`. `function` (its slot and name) matters only at line
    /// 0: a frame without a line is charged to its function, one slot per function, so no
    /// output shows a row with no line and no name.
    pub(super) fn slot(
        &mut self,
        path: &str,
        line: u32,
        native: bool,
        function: Option<(usize, &str)>,
    ) -> usize {
        let file = match self.by_path.get(path) {
            Some(&f) => f,
            None => {
                self.paths.push((path.to_string(), false));
                self.by_path.insert(path.to_string(), self.paths.len() - 1);
                self.paths.len() - 1
            }
        };
        self.paths[file].1 |= native;
        let function = function.filter(|_| line == 0);
        let lines = &mut self.lines;
        *self
            .by_line
            .entry((file, line, function.map(|(f, _)| f)))
            .or_insert_with(|| {
                lines.push(LineSlot {
                    file,
                    line,
                    function: function.map(|(_, name)| name.to_string()),
                    times: Times::default(),
                });
                lines.len() - 1
            })
    }

    pub(super) fn location(&self, slot: usize) -> Location {
        let l = &self.lines[slot];
        Location {
            file: self.paths[l.file].0.clone(),
            line: l.line,
            function: l.function.clone(),
        }
    }

    /// The files with their lines, given each line slot's memory.
    pub(super) fn into_sorted(self, memory: Vec<Memory>, gpu: Vec<LineGpu>) -> Vec<FileProfile> {
        let mut files: Vec<FileProfile> = self
            .paths
            .into_iter()
            .map(|(path, native)| FileProfile {
                path,
                native,
                times: Times::default(),
                lines: Vec::new(),
            })
            .collect();
        for ((l, memory), gpu) in self.lines.into_iter().zip(memory).zip(gpu) {
            let f = &mut files[l.file];
            f.times.add(&l.times);
            f.lines.push(LineProfile {
                line: l.line,
                function: l.function,
                times: l.times,
                memory,
                gpu,
            });
        }
        // A stack whose frameless time all went to its phases' slots left its own slot
        // with nothing: no file for that.
        files.retain(|f| {
            f.times.samples > 0
                || f.lines.iter().any(|l| {
                    let m = &l.memory;
                    m.malloc_bytes > 0 || m.copy_bytes > 0 || m.peak_bytes > 0
                })
        });
        // Numbered lines in order, then the rows of functions without lines, by name.
        for f in &mut files {
            f.lines.sort_by(|a, b| {
                (a.line == 0, a.line, &a.function).cmp(&(b.line == 0, b.line, &b.function))
            });
        }
        files.sort_by_cached_key(|f| {
            (
                std::cmp::Reverse(f.times.total_ns()),
                std::cmp::Reverse(f.malloc_bytes()),
                f.path.clone(),
            )
        });
        files
    }
}

/// Turns stack ids into the line and function they are charged to.
pub(super) struct Resolver<'a> {
    pub(super) stacks: &'a FxHashMap<u32, Vec<Frame>>,
    pub(super) defs: &'a FxHashMap<u32, FunctionDef>,
    pub(super) names: Names<'a>,
    pub(super) files: FileTable,
    pub(super) funcs: FunctionTable,
    pub(super) missing_funcs: FxHashSet<u32>,
    pub(super) charging: &'a Charging,
    /// Per function id, whether its file is the program's own code.
    pub(super) own: FxHashMap<u32, bool>,
}

impl Resolver<'_> {
    pub(super) fn function(&mut self, id: u32) -> usize {
        self.funcs
            .index(id, self.defs, &mut self.names, &mut self.missing_funcs)
    }

    /// A function never defined counts as Python, the frames it is found among.
    fn is_python(&self, id: u32) -> bool {
        !matches!(self.defs.get(&id), Some(d) if d.kind == FuncKind::Native)
    }

    /// Whether a native function lives in the C library, the loader or the kernel's vDSO
    /// (judged by its file: installed libraries, or glibc's own build paths). With no
    /// Python frame, time and memory go to the innermost frame outside them: the program's
    /// line that called malloc, rather than malloc's internals.
    fn is_system(&mut self, id: u32) -> bool {
        let Some(d) = self.defs.get(&id) else {
            return false;
        };
        if d.kind != FuncKind::Native {
            return false;
        }
        is_system_file(&self.names.get(d.file))
    }

    /// Whether Python function `id` is in the program's own code ([`Charging`]).
    fn is_own(&mut self, id: u32) -> bool {
        if let Some(&own) = self.own.get(&id) {
            return own;
        }
        let own = match self.defs.get(&id) {
            Some(d) => {
                let file = self.names.get(d.file);
                self.charging.is_own(&file)
            }
            None => true,
        };
        self.own.insert(id, own);
        own
    }

    /// Where a stack's samples are charged (module docs); `None` for a stack id that is
    /// never defined.
    pub(super) fn site(&mut self, stack_id: u32) -> Option<Site> {
        let frames: &[Frame] = match self.stacks.get(&stack_id) {
            Some(f) => f,
            None if stack_id == 0 => &[],
            None => return None,
        };
        let python = frames.iter().position(|f| self.is_python(f.func));
        let own = python.and_then(|first| {
            (first..frames.len())
                .find(|&i| self.is_python(frames[i].func) && self.is_own(frames[i].func))
        });
        let via_library = matches!((own, python), (Some(o), Some(p)) if o != p);
        let charged = own
            .or(python)
            .or_else(|| frames.iter().position(|f| !self.is_system(f.func)));
        // No Python frame and none outside the C library and the loader (the dynamic
        // loader at start, a C library stack its unwinding could not step out of): nothing
        // of the program's to charge, with or without the library's lines (libc6-dbg's,
        // which the report may find only after the samples): the frameless time.
        let Some(frame) = charged.and_then(|i| frames.get(i)) else {
            return Some(Site {
                line: self.files.slot(NO_PYTHON_FRAME, 0, false, None),
                func: None,
                python: false,
                via_library: false,
            });
        };
        let func = self.function(frame.func);
        let f = &self.funcs.list[func];
        let (file, native) = (f.file.clone(), f.kind == FuncKind::Native);
        // A frame with no line at all is charged to its function's own row.
        let line = frame_line(frame, self.defs);
        let name = f.name.clone();
        Some(Site {
            line: self.files.slot(&file, line, native, Some((func, &name))),
            func: Some(func),
            python: python.is_some(),
            via_library,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{is_library, Charging};

    #[test]
    fn library_files_are_told_from_the_programs() {
        for lib in [
            "/usr/lib/python3.11/json/decoder.py",
            "/root/.pyenv/versions/3.11.7/lib/python3.11/argparse.py",
            "/work/.venv-test/lib/python3.11/site-packages/numpy/_core/numeric.py",
            "/usr/lib/python3/dist-packages/yaml/__init__.py",
            "<frozen importlib._bootstrap>",
        ] {
            assert!(is_library(lib), "{lib}");
            assert!(!Charging::default().is_own(lib), "{lib}");
        }
        for own in [
            "/work/shared/workloads/cpu_python.py",
            "/home/u/lib/python/tool.py",
            "/home/u/pythonic/lib.py",
            "<string>",
            "/srv/app/python3/main.py",
        ] {
            assert!(!is_library(own), "{own}");
            assert!(Charging::default().is_own(own), "{own}");
        }
    }

    #[test]
    fn the_options_choose_the_programs_files() {
        let json = "/usr/lib/python3.11/json/decoder.py";
        let app = "/srv/app/main.py";
        let all = Charging {
            all: true,
            ..Charging::default()
        };
        assert!(all.is_own(json) && all.is_own(app) && !all.recharges());
        let only = Charging {
            only: vec!["json/".into()],
            ..Charging::default()
        };
        assert!(only.is_own(json) && !only.is_own(app));
        let exclude = Charging {
            all: true,
            exclude: vec!["/srv/".into()],
            ..Charging::default()
        };
        assert!(exclude.is_own(json) && !exclude.is_own(app));
    }
}
