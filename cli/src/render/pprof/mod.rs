//! pprof export: the profile's call stacks as a gzipped `profile.proto`, for `go tool
//! pprof`, Grafana Pyroscope and Parca.
//!
//! Sample values: `samples/count`, then the sampled clock's time (`cpu` or `wall`, in
//! nanoseconds) and its Python / native / system parts, then, when memory was profiled,
//! `alloc_objects/count`, `alloc_space/bytes`, `inuse_space/bytes` (live at the peak of the
//! footprint) and `exit_space/bytes` (live at the exit point), then, when the trace holds
//! GPU readings, `gpu_time/nanoseconds` (GPU busy time charged to the stack, in
//! nanoseconds of one fully busy GPU: utilisation percent / 100 times the readings'
//! period). GPU memory is not exported: it is a level, not a quantity that adds up over
//! stacks as pprof adds sample values (the JSON and the page have it per line). Time is split by thread (a sample per stack and thread, labelled); memory and GPU are
//! not, so they go in one sample per stack with no thread label. Every sample carries the
//! process's labels.
//!
//! Python frames are `Function{name, filename, start_line}` with a `Line`. Native frames
//! carry their symbol and source line; the trace holds no addresses (the shim symbolizes
//! PCs as it writes), so a native frame's `Mapping` is its module where the trace names one
//! (a module loaded late, named `module+0xOFFSET`, gives that offset as the address), and
//! every mapping says it is symbolized, so pprof never tries to symbolize it again.

mod proto;

use crate::model::figures::{clock_name, mode_names, python_version};
use crate::model::{Profile, FRAMELESS, UNDEFINED};
use flate2::{write::GzEncoder, Compression};
use prost::Message;
use rprof_format::FuncKind;
use rustc_hash::FxHashMap;
use std::io::Write;

/// The gzipped pprof profile of `p`.
pub fn render(p: &Profile) -> Vec<u8> {
    let proto = build(p);
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    // Writing into a Vec cannot fail.
    gz.write_all(&proto.encode_to_vec())
        .expect("gzip into memory");
    gz.finish().expect("gzip into memory")
}

/// Interns strings into the profile's string table.
#[derive(Default)]
struct Strings {
    table: Vec<String>,
    index: FxHashMap<String, i64>,
}

impl Strings {
    fn new() -> Strings {
        let mut s = Strings::default();
        s.get("");
        s
    }

    fn get(&mut self, s: &str) -> i64 {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        let i = self.table.len() as i64;
        self.table.push(s.to_string());
        self.index.insert(s.to_string(), i);
        i
    }
}

fn build(p: &Profile) -> proto::Profile {
    let mut st = Strings::new();
    let clock = clock_name(&p.header);
    let memory = p.has_memory();
    let mut types = vec![
        ("samples".to_string(), "count"),
        (clock.clone(), "nanoseconds"),
        (format!("{clock}_python"), "nanoseconds"),
        (format!("{clock}_native"), "nanoseconds"),
        (format!("{clock}_system"), "nanoseconds"),
    ];
    if memory {
        for t in [
            ("alloc_objects", "count"),
            ("alloc_space", "bytes"),
            ("inuse_space", "bytes"),
            ("exit_space", "bytes"),
        ] {
            types.push((t.0.to_string(), t.1));
        }
    }
    let gpu = p.gpu.is_some();
    if gpu {
        types.push(("gpu_time".to_string(), "nanoseconds"));
    }
    // Where the stack-wide (memory, GPU) values sit in a sample's value list.
    let memory_at = 5;
    let gpu_at = memory_at + if memory { 4 } else { 0 };
    let width = types.len();
    let sample_type = types
        .iter()
        .map(|(t, u)| proto::ValueType {
            r#type: st.get(t),
            unit: st.get(u),
        })
        .collect();

    // Functions: id = index in the profile's functions + 1; then the two pseudo-frames.
    let mut function: Vec<proto::Function> = p
        .functions
        .iter()
        .enumerate()
        .map(|(i, f)| proto::Function {
            id: i as u64 + 1,
            name: st.get(&f.name),
            // Left empty: the names are demangled already, and pprof demangles a function
            // whose system name is its name again (turning `<module>` into `<unknown>`).
            system_name: 0,
            filename: st.get(&f.file),
            start_line: i64::from(f.first_line),
        })
        .collect();
    let pseudo = |name: &str, st: &mut Strings, function: &mut Vec<proto::Function>| {
        let id = function.len() as u64 + 1;
        function.push(proto::Function {
            id,
            name: st.get(name),
            filename: st.get(name),
            ..Default::default()
        });
        id
    };
    // A pseudo-function per pseudo-file of frameless time (its phase's).
    let no_frame_fns: Vec<u64> = FRAMELESS
        .iter()
        .map(|name| pseudo(name, &mut st, &mut function))
        .collect();
    let undefined_fn = pseudo(UNDEFINED, &mut st, &mut function);

    // Mappings: one per native module the trace names.
    let mut mapping: Vec<proto::Mapping> = Vec::new();
    let mut mapping_of: FxHashMap<&str, u64> = FxHashMap::default();
    let mut location: Vec<proto::Location> = Vec::with_capacity(p.stacks.frames.len() + 2);
    for (i, fr) in p.stacks.frames.iter().enumerate() {
        let f = &p.functions[fr.function];
        let (mut mapping_id, mut address) = (0, 0);
        if f.kind == FuncKind::Native && is_module(&f.file) {
            mapping_id = *mapping_of.entry(f.file.as_str()).or_insert_with(|| {
                let id = mapping.len() as u64 + 1;
                mapping.push(proto::Mapping {
                    id,
                    filename: st.get(&f.file),
                    has_functions: true,
                    has_filenames: true,
                    has_line_numbers: true,
                    ..Default::default()
                });
                id
            });
            address = module_offset(&f.name).unwrap_or(0);
        }
        location.push(proto::Location {
            id: i as u64 + 1,
            mapping_id,
            address,
            line: vec![proto::Line {
                function_id: fr.function as u64 + 1,
                line: i64::from(fr.line),
                column: 0,
            }],
            is_folded: false,
        });
    }
    let mut pseudo_location = |function_id: u64| {
        let id = location.len() as u64 + 1;
        location.push(proto::Location {
            id,
            line: vec![proto::Line {
                function_id,
                ..Default::default()
            }],
            ..Default::default()
        });
        id
    };
    let no_frame_locs: Vec<u64> = no_frame_fns.into_iter().map(&mut pseudo_location).collect();
    let undefined_loc = pseudo_location(undefined_fn);

    let h = &p.header;
    let process = [
        label_num(&mut st, "pid", i64::from(h.pid)),
        label_str(&mut st, "process", &h.exe),
    ];
    let mut sample = Vec::new();
    for s in &p.stacks.stacks {
        let location_id: Vec<u64> = if s.undefined {
            vec![undefined_loc]
        } else if s.frames.is_empty() {
            let phase = FRAMELESS.iter().position(|&f| f == s.no_frame);
            vec![no_frame_locs[phase.unwrap_or(0)]]
        } else {
            s.frames.iter().map(|&i| u64::from(i) + 1).collect()
        };
        for t in &s.threads {
            let th = &p.threads[t.thread];
            let mut value = vec![
                t.times.samples as i64,
                t.times.total_ns() as i64,
                t.times.python_ns as i64,
                t.times.native_ns as i64,
                t.times.sys_ns as i64,
            ];
            value.resize(width, 0);
            let name = th.name.clone().unwrap_or_else(|| th.tid.to_string());
            let mut label = process.to_vec();
            label.push(label_num(&mut st, "tid", i64::from(th.tid)));
            label.push(label_str(&mut st, "thread", &name));
            sample.push(proto::Sample {
                location_id: location_id.clone(),
                value,
                label,
            });
        }
        let m = &s.memory;
        let has_memory =
            memory && (m.alloc_samples > 0 || m.peak_live_bytes > 0 || m.exit_live_bytes > 0);
        let has_gpu = gpu && s.gpu.busy > 0.0;
        if has_memory || has_gpu {
            let mut value = vec![0; width];
            if memory {
                value[memory_at..memory_at + 4].copy_from_slice(&[
                    m.mallocs as i64,
                    m.malloc_bytes as i64,
                    m.peak_live_bytes as i64,
                    m.exit_live_bytes as i64,
                ]);
            }
            if gpu {
                value[gpu_at] = (s.gpu.busy / 100.0).round() as i64;
            }
            sample.push(proto::Sample {
                location_id,
                value,
                label: process.to_vec(),
            });
        }
    }

    let mut comment = vec![format!("rprof {}", env!("CARGO_PKG_VERSION"))];
    comment.push(format!(
        "clock {clock}, {} samples/s asked, modes {}",
        h.sample_hz,
        mode_names(h.modes)
    ));
    if let Some(v) = python_version(h.python_version) {
        comment.push(format!("python {v}"));
    }
    if !h.argv.is_empty() {
        comment.push(format!("argv {}", h.argv.join(" ")));
    }
    let comment = comment.iter().map(|c| st.get(c)).collect();
    let period_type = Some(proto::ValueType {
        r#type: st.get(&clock),
        unit: st.get("nanoseconds"),
    });
    let default_sample_type = st.get(&clock);
    proto::Profile {
        sample_type,
        sample,
        mapping,
        location,
        function,
        time_nanos: h.start_unix_ns as i64,
        duration_nanos: p.elapsed_ns as i64,
        period_type,
        period: 1_000_000_000 / i64::from(h.sample_hz.max(1)),
        comment,
        default_sample_type,
        string_table: st.table,
        ..Default::default()
    }
}

fn label_num(st: &mut Strings, key: &str, num: i64) -> proto::Label {
    proto::Label {
        key: st.get(key),
        num,
        ..Default::default()
    }
}

fn label_str(st: &mut Strings, key: &str, s: &str) -> proto::Label {
    proto::Label {
        key: st.get(key),
        str: st.get(s),
        ..Default::default()
    }
}

/// Whether a native function's file is its module (a shared object or an executable) and
/// not a source file from debug info.
fn is_module(file: &str) -> bool {
    const SOURCES: [&str; 16] = [
        "c", "h", "cc", "cpp", "cxx", "hh", "hpp", "hxx", "rs", "s", "S", "f", "f90", "go", "pyx",
        "zig",
    ];
    let base = file.rsplit('/').next().unwrap_or(file);
    if base.ends_with(".so") || base.contains(".so.") {
        return true;
    }
    !base
        .rsplit_once('.')
        .is_some_and(|(_, ext)| SOURCES.contains(&ext))
}

/// The offset in `module+0xOFFSET`, the name the shim gives a PC in a module it could
/// not symbolize.
fn module_offset(name: &str) -> Option<u64> {
    let (_, hex) = name.rsplit_once("+0x")?;
    u64::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn the_profile_decodes_with_the_models_totals_stacks_and_labels() {
        let p = crate::render::fixture::profile();
        let mut bytes = Vec::new();
        flate2::read::GzDecoder::new(&render(&p)[..])
            .read_to_end(&mut bytes)
            .expect("gzip");
        let pb = proto::Profile::decode(&bytes[..]).expect("profile.proto");
        let s = |i: i64| pb.string_table[i as usize].as_str();
        let types: Vec<String> = pb
            .sample_type
            .iter()
            .map(|t| format!("{}/{}", s(t.r#type), s(t.unit)))
            .collect();
        assert_eq!(types[1], "cpu/nanoseconds");
        assert_eq!(s(pb.default_sample_type), "cpu");
        let column = |name: &str| types.iter().position(|t| t == name).expect(name);
        let sum = |c: usize| pb.sample.iter().map(|x| x.value[c]).sum::<i64>();
        assert_eq!(sum(column("cpu/nanoseconds")), 45_000_000);
        assert_eq!(sum(column("cpu/nanoseconds")) as u64, p.total.total_ns());
        assert_eq!(
            sum(column("alloc_space/bytes")) as u64,
            p.footprint.malloc_bytes
        );
        assert_eq!(sum(column("inuse_space/bytes")), 4096);
        assert_eq!(pb.period, 10_000_000);
        // The hot stack, innermost first, in each thread, labelled with it.
        let names = |x: &proto::Sample| -> Vec<&str> {
            x.location_id
                .iter()
                .map(|&l| {
                    let loc = &pb.location[l as usize - 1];
                    let f = &pb.function[loc.line[0].function_id as usize - 1];
                    s(f.name)
                })
                .collect()
        };
        let threads: Vec<(&str, i64)> = pb
            .sample
            .iter()
            .filter(|x| names(x) == ["inner", "outer"] && x.value[1] > 0)
            .map(|x| {
                let thread = x.label.iter().find(|l| s(l.key) == "thread").unwrap();
                (s(thread.str), x.value[1])
            })
            .collect();
        assert_eq!(threads, [("Main", 30_000_000), ("Worker", 10_000_000)]);
        let inner = &pb.location[pb.sample[0].location_id[0] as usize - 1];
        assert_eq!(inner.line[0].line, 7);
        assert_eq!(
            pb.function[inner.line[0].function_id as usize - 1].start_line,
            6
        );
    }

    /// Time with no frame is a pseudo-function per phase, as the report splits it: before
    /// the first Python frame `<start-up>`, from the finalizing mark on `<teardown>`.
    #[test]
    fn frameless_time_is_named_by_its_phase() {
        use rprof_format::{encode_header, CpuSample, Encoder, Exec, Frame, FuncKind, Record};
        let mut enc = Encoder::new();
        let strings = ["a.py", "f", rprof_format::marks::PYTHON_FINALIZING];
        for (i, text) in strings.iter().enumerate() {
            enc.push(&Record::String {
                id: i as u32 + 1,
                text: text.to_string(),
            });
        }
        enc.push(&Record::Function {
            id: 1,
            kind: FuncKind::Python,
            name: 2,
            file: 1,
            first_line: 1,
        });
        enc.push(&Record::Stack {
            id: 1,
            frames: vec![Frame { func: 1, line: 2 }],
        });
        for (t_ns, stack, cpu_ns) in [(1, 0, 3_000_000), (2, 1, 5_000_000), (9, 0, 7_000_000)] {
            enc.push(&Record::Cpu(CpuSample {
                t_ns,
                tid: 1,
                stack,
                cpu_ns,
                sys_ns: 0,
                exec: Exec::Native,
            }));
        }
        enc.push(&Record::Mark { t_ns: 8, label: 3 });
        let header = rprof_format::Header {
            pid: 1,
            sample_hz: 100,
            modes: rprof_format::mode::CPU,
            python_version: 0x030B07F0,
            ..Default::default()
        };
        let mut trace = encode_header(&header);
        trace.extend_from_slice(enc.finish_chunk().expect("records"));
        let p = crate::model::aggregate(&trace).expect("a trace");
        let mut bytes = Vec::new();
        flate2::read::GzDecoder::new(&render(&p)[..])
            .read_to_end(&mut bytes)
            .expect("gzip");
        let pb = proto::Profile::decode(&bytes[..]).expect("profile.proto");
        let s = |i: i64| pb.string_table[i as usize].as_str();
        let mut frameless: Vec<(&str, i64)> = pb
            .sample
            .iter()
            .filter_map(|x| {
                let loc = &pb.location[*x.location_id.first()? as usize - 1];
                let name = s(pb.function[loc.line[0].function_id as usize - 1].name);
                name.starts_with("<").then_some((name, x.value[1]))
            })
            .collect();
        frameless.sort();
        assert_eq!(
            frameless,
            [
                (crate::model::START_UP, 3_000_000),
                (crate::model::TEARDOWN, 7_000_000)
            ]
        );
    }

    #[test]
    fn modules_and_offsets_are_told_from_sources() {
        assert!(is_module("/usr/lib/x86_64-linux-gnu/libm.so.6"));
        assert!(is_module("/usr/bin/python3.11"));
        assert!(!is_module("/src/native/mix.c"));
        assert_eq!(module_offset("libfoo.so+0x1a2b"), Some(0x1a2b));
        assert_eq!(module_offset("compute"), None);
    }

    #[test]
    fn strings_are_interned_with_the_empty_string_first() {
        let mut st = Strings::new();
        assert_eq!(st.get("a"), 1);
        assert_eq!(st.get(""), 0);
        assert_eq!(st.get("a"), 1);
        assert_eq!(st.table, vec!["", "a"]);
    }
}
