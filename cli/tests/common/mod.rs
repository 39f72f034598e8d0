//! Builds traces for tests with the format crate's own encoder, as the shim writes them.

// Each test crate that includes this module uses only some of it.
#![allow(dead_code)]

use rprof_format::{
    encode_header, AllocSample, CopySample, Counters, CpuSample, Domain, Encoder, Exec, Frame,
    FreeSample, FuncKind, Header, Record,
};
use serde_json::Value;

pub struct TraceBuilder {
    out: Vec<u8>,
    enc: Encoder,
}

pub const MS: u64 = 1_000_000;

impl TraceBuilder {
    pub fn new(h: &Header) -> Self {
        TraceBuilder {
            out: encode_header(h),
            enc: Encoder::new(),
        }
    }

    pub fn push(&mut self, r: Record) -> &mut Self {
        self.enc.push(&r);
        self
    }

    pub fn string(&mut self, id: u32, text: &str) -> &mut Self {
        self.push(Record::String {
            id,
            text: text.into(),
        })
    }

    pub fn function(&mut self, id: u32, name: u32, file: u32, first_line: u32) -> &mut Self {
        self.push(Record::Function {
            id,
            kind: FuncKind::Python,
            name,
            file,
            first_line,
        })
    }

    /// A native function: `file` names its source file or module; it has no first line.
    pub fn native_function(&mut self, id: u32, name: u32, file: u32) -> &mut Self {
        self.push(Record::Function {
            id,
            kind: FuncKind::Native,
            name,
            file,
            first_line: 0,
        })
    }

    /// `frames` innermost first, as (function id, line).
    pub fn stack(&mut self, id: u32, frames: &[(u32, u32)]) -> &mut Self {
        let frames = frames
            .iter()
            .map(|&(func, line)| Frame { func, line })
            .collect();
        self.push(Record::Stack { id, frames })
    }

    pub fn sample(
        &mut self,
        t_ms: u64,
        tid: u32,
        stack: u32,
        cpu_ms: u64,
        sys_ms: u64,
        exec: Exec,
    ) -> &mut Self {
        self.push(Record::Cpu(CpuSample {
            t_ns: t_ms * MS,
            tid,
            stack,
            cpu_ns: cpu_ms * MS,
            sys_ns: sys_ms * MS,
            exec,
        }))
    }

    /// A sampled allocation of `size` bytes standing for `weight` bytes, on thread 1.
    pub fn alloc(
        &mut self,
        t_ms: u64,
        stack: u32,
        addr: u64,
        size: u64,
        weight: u64,
        domain: Domain,
    ) -> &mut Self {
        self.push(Record::Alloc(AllocSample {
            t_ns: t_ms * MS,
            tid: 1,
            stack,
            addr,
            size,
            weight,
            domain,
        }))
    }

    pub fn free(&mut self, t_ms: u64, addr: u64) -> &mut Self {
        self.push(Record::Free(FreeSample {
            t_ns: t_ms * MS,
            addr,
        }))
    }

    pub fn copy(&mut self, t_ms: u64, stack: u32, weight: u64) -> &mut Self {
        self.push(Record::Copy(CopySample {
            t_ns: t_ms * MS,
            tid: 1,
            stack,
            weight,
        }))
    }

    /// Allocator counters: live bytes now, the peak so far, and the Python allocator's part.
    pub fn counters(&mut self, t_ms: u64, live: u64, peak: u64, python: u64) -> &mut Self {
        self.push(Record::Counters(Counters {
            t_ns: t_ms * MS,
            live_bytes: live,
            peak_live_bytes: peak,
            python_live_bytes: python,
            ..Default::default()
        }))
    }

    /// The shim's mark that the interpreter began finalizing; `label` names the string id
    /// to define with the mark's label.
    pub fn finalizing(&mut self, t_ms: u64, label: u32) -> &mut Self {
        self.string(label, rprof_format::marks::PYTHON_FINALIZING);
        self.push(Record::Mark {
            t_ns: t_ms * MS,
            label,
        })
    }

    /// Ends the current chunk, as the shim's writer does at each flush.
    pub fn chunk(&mut self) -> &mut Self {
        if let Some(bytes) = self.enc.finish_chunk() {
            self.out.extend_from_slice(bytes);
        }
        self.enc.clear();
        self
    }

    pub fn finish(&mut self) -> Vec<u8> {
        self.chunk();
        std::mem::take(&mut self.out)
    }
}

/// The constraints of Scalene 2.4.0's `ScaleneJSONSchema` (pydantic) that our output can
/// break: required fields and their types, ranges, and the cross-field validators.
pub fn check_scalene_schema(j: &Value) {
    let num = |v: &Value, k: &str| {
        v[k].as_f64()
            .unwrap_or_else(|| panic!("{k} is not a number in {v}"))
    };
    for k in [
        "alloc_samples",
        "elapsed_time_sec",
        "start_time_absolute",
        "start_time_perf",
        "max_footprint_mb",
        "max_footprint_python_fraction",
        "native_allocations_mb",
    ] {
        assert!(num(j, k) >= 0.0, "{k}");
    }
    assert!(j["alloc_samples"].is_u64());
    assert!(j["max_footprint_fname"].is_null() || j["max_footprint_fname"].is_string());
    num(j, "growth_rate");
    for k in ["entrypoint_dir", "filename", "program"] {
        assert!(j[k].is_string(), "{k}");
    }
    for k in ["gpu", "memory", "async_profile"] {
        assert!(j[k].is_boolean(), "{k}");
    }
    assert!(j["gpu_device"].is_string());
    assert!(j["stacks"].is_array());
    // List[List[NonNegativeFloat]]
    for point in j["samples"].as_array().unwrap() {
        for v in point.as_array().unwrap() {
            assert!(v.as_f64().unwrap() >= 0.0, "{point}");
        }
    }
    assert!(j["max_footprint_lineno"].is_null() || j["max_footprint_lineno"].as_u64().unwrap() > 0);
    for (path, file) in j["files"].as_object().unwrap() {
        assert!(num(file, "percent_cpu_time") >= 0.0, "{path}");
        assert!(file["imports"].is_array());
        // Dict[str, LeakInfo]
        for (line, leak) in file["leaks"].as_object().unwrap() {
            assert!(line.parse::<u32>().unwrap() > 0);
            assert_eq!(leak.as_object().unwrap().len(), 2, "{leak}");
            assert!(num(leak, "likelihood") >= 0.0 && num(leak, "velocity_mb_s") >= 0.0);
        }
        for (lines, is_line) in [(&file["lines"], true), (&file["functions"], false)] {
            for d in lines.as_array().unwrap() {
                check_detail(d, is_line);
            }
        }
    }
}

fn check_detail(d: &Value, is_line: bool) {
    let num = |k: &str| {
        d[k].as_f64()
            .unwrap_or_else(|| panic!("{k} is not a number in {d}"))
    };
    let int = |k: &str| {
        d[k].as_u64()
            .unwrap_or_else(|| panic!("{k} is not a natural number in {d}"))
    };
    assert!(d["line"].is_string());
    assert!(int("lineno") >= 1);
    assert!(d["cpu_samples_list"].is_array());
    // List[List[Any]]; ours are [ns, MB] points, in time order.
    let mut last = 0.0;
    for point in d["memory_samples"].as_array().unwrap() {
        let p = point.as_array().unwrap();
        assert_eq!(p.len(), 2, "{point}");
        let (t, mb) = (p[0].as_f64().unwrap(), p[1].as_f64().unwrap());
        assert!(t >= last && mb >= 0.0 && mb <= num("n_peak_mb"), "{point}");
        last = t;
    }
    assert!(d["async_task_names"].is_array() && d["is_coroutine"].is_boolean());
    int("n_mallocs");
    for k in [
        "n_avg_mb",
        "n_copy_mb_s",
        "n_gpu_avg_memory_mb",
        "n_gpu_peak_memory_mb",
        "n_growth_mb",
        "n_peak_mb",
        "n_malloc_mb",
        "n_async_concurrency_mean",
        "n_async_concurrency_peak",
    ] {
        assert!(num(k) >= 0.0, "{k}");
    }
    for k in [
        "n_core_utilization",
        "n_python_fraction",
        "n_usage_fraction",
    ] {
        assert!((0.0..=1.0).contains(&num(k)), "{k}");
    }
    for k in [
        "n_cpu_percent_c",
        "n_cpu_percent_python",
        "n_gpu_percent",
        "n_sys_percent",
        "n_async_await_percent",
    ] {
        assert!((0.0..=100.0).contains(&num(k)), "{k}");
    }
    assert!(
        (num("n_cpu_percent_c") + num("n_cpu_percent_python") + num("n_sys_percent")).floor()
            <= 100.0
    );
    assert!(num("n_avg_mb") <= num("n_peak_mb"));
    // Not Scalene's validators, but what rprof's figures must satisfy.
    assert!(num("n_growth_mb") <= num("n_peak_mb") && num("n_peak_mb") <= num("n_malloc_mb"));
    assert!(num("n_gpu_avg_memory_mb") <= num("n_gpu_peak_memory_mb"));
    if is_line {
        for k in [
            "start_outermost_loop",
            "end_outermost_loop",
            "start_region_line",
            "end_region_line",
        ] {
            assert!(int(k) >= 1, "{k}");
        }
        int("start_function_line");
        int("end_function_line");
    }
}
