//! Writes a large synthetic trace shaped like a real one, for measuring report throughput:
//!
//!     cargo run --release -p rprof-cli --example synth_trace -- /tmp/big.trace 200
//!     time target/release/rprof-report /tmp/big.trace > /dev/null
//!
//! `synth_trace OUT MB cpu` leaves the memory records out, for comparison; `synth_trace OUT
//! MB spread` is a worst case for the reader's caches: allocations from every stack, 100
//! times as many blocks live, 1 in 50 kept.
//!
//! 8 threads, 400 files, 4,000 functions and 50,000 distinct stacks of depth 3 to 40, with
//! samples interleaved with the definitions they use, in 64 KiB chunks, until the file holds
//! the asked number of megabytes. Memory profiling is on: two sampled allocations per CPU
//! sample from 2,000 allocation sites, most freed a little later (1 in 1,000 kept for
//! good: a leak), a copy sample now and then, and allocator counters every 100 ms; some
//! stacks start with native frames. With a 512 KiB sampling rate, that is a program
//! holding about 1 GB that allocates 1.6 GB per second of CPU.

use rprof_format::{
    encode_header, mode, AllocSample, CopySample, Counters, CpuSample, Domain, Encoder, End, Exec,
    Frame, FreeSample, FuncKind, Header, Record,
};
use std::collections::VecDeque;
use std::io::Write;

const FILES: u32 = 400;
const FUNCTIONS: u32 = 4_000;
const STACKS: u32 = 50_000;
const THREADS: u32 = 8;
/// Functions with ids above this are native (extension modules).
const NATIVE_FROM: u32 = 3_800;
/// Stacks that allocate, sampled blocks live at once (the oldest is freed), and one in
/// how many is never freed; and the same in the `spread` worst case.
const ALLOC_SITES: u32 = 2_000;
const LIVE: usize = 2_000;
const KEEP_ONE_IN: u64 = 1_000;
const SPREAD_LIVE: usize = 200_000;
const SPREAD_KEEP_ONE_IN: u64 = 50;

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(path), Some(mb)) = (args.get(1), args.get(2).and_then(|s| s.parse::<u64>().ok()))
    else {
        eprintln!("usage: synth_trace OUT.trace MEGABYTES [cpu|spread]");
        std::process::exit(2);
    };
    let shape = args.get(3).map(String::as_str);
    let memory = shape != Some("cpu");
    let spread = shape == Some("spread");
    let (live_blocks, keep_one_in) = if spread {
        (SPREAD_LIVE, SPREAD_KEEP_ONE_IN)
    } else {
        (LIVE, KEEP_ONE_IN)
    };
    let want = mb * 1_000_000;
    let header = Header {
        pid: 1000,
        sample_hz: 100,
        modes: if memory {
            mode::CPU | mode::MEMORY | mode::COPY
        } else {
            mode::CPU
        },
        mem_rate: 512 << 10,
        copy_rate: 1 << 20,
        python_version: 0x030B07F0,
        argv: vec!["python3".into(), "synthetic.py".into()],
        ..Default::default()
    };
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    let head = encode_header(&header);
    out.write_all(&head)?;
    let mut written = head.len() as u64;
    let mut enc = Encoder::new();
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let (mut defined_stacks, mut t_ns, mut samples) = (0u32, 0u64, 0u64);
    let (mut live, mut next_addr, mut next_counters) = (VecDeque::new(), 0x10_0000u64, 0u64);
    let (mut kept, mut peak) = (0u64, 0u64);
    for id in 1..=FILES {
        enc.push(&Record::String {
            id,
            text: format!("/home/user/project/pkg{}/module{id}.py", id % 20),
        });
    }
    for id in 1..=FUNCTIONS {
        let name = FILES + id;
        enc.push(&Record::String {
            id: name,
            text: format!("function_{id}"),
        });
        let file = 1 + id % FILES;
        let native = id > NATIVE_FROM;
        enc.push(&Record::Function {
            id,
            kind: if native {
                FuncKind::Native
            } else {
                FuncKind::Python
            },
            name,
            file,
            first_line: if native { 0 } else { id % 900 + 1 },
        });
    }
    for tid in 0..THREADS {
        let name = FILES + FUNCTIONS + 1 + tid;
        enc.push(&Record::String {
            id: name,
            text: format!("Thread-{tid}"),
        });
        enc.push(&Record::Thread {
            tid: 70_000 + tid,
            name,
        });
    }
    while written < want {
        // New stacks keep appearing, as new code paths run.
        if defined_stacks < STACKS && next(4) == 0 {
            defined_stacks += 1;
            let depth = 3 + next(38);
            // A fifth of the stacks start in native code (up to 3 frames, lines from DWARF).
            let native = if next(5) == 0 { 1 + next(3) } else { 0 };
            let frames = (0..depth)
                .map(|i| {
                    let func = if i < native {
                        NATIVE_FROM + 1 + next(u64::from(FUNCTIONS - NATIVE_FROM)) as u32
                    } else {
                        1 + next(u64::from(NATIVE_FROM)) as u32
                    };
                    Frame {
                        func,
                        line: 1 + next(900) as u32,
                    }
                })
                .collect();
            enc.push(&Record::Stack {
                id: defined_stacks,
                frames,
            });
        }
        t_ns += 1_250_000;
        samples += 1;
        let stack = if defined_stacks == 0 || next(50) == 0 {
            0
        } else {
            1 + next(u64::from(defined_stacks)) as u32
        };
        let tid = 70_000 + next(u64::from(THREADS)) as u32;
        enc.push(&Record::Cpu(CpuSample {
            t_ns,
            tid,
            stack,
            cpu_ns: 9_000_000 + next(2_000_000),
            sys_ns: if next(4) == 0 { next(3_000_000) } else { 0 },
            exec: if next(3) == 0 {
                Exec::Native
            } else {
                Exec::Python
            },
        }));
        let alloc_stack = match defined_stacks {
            _ if spread => stack,
            0 => 0,
            n => 1 + next(u64::from(n.min(ALLOC_SITES))) as u32,
        };
        for _ in 0..if memory { 2 } else { 0 } {
            next_addr += 16 * (1 + next(64));
            let size = 16 + next(1 << 20);
            enc.push(&Record::Alloc(AllocSample {
                t_ns,
                tid,
                stack: alloc_stack,
                addr: next_addr,
                size,
                weight: (512 << 10) * (1 + size / (512 << 10)),
                domain: if next(2) == 0 {
                    Domain::Python
                } else {
                    Domain::Native
                },
            }));
            if next(keep_one_in) != 0 {
                live.push_back(next_addr);
            } else {
                kept += 1;
            }
            if live.len() > live_blocks {
                let addr = live.pop_front().unwrap();
                enc.push(&Record::Free(FreeSample { t_ns, addr }));
            }
        }
        if memory && next(8) == 0 {
            enc.push(&Record::Copy(CopySample {
                t_ns,
                tid,
                stack: alloc_stack,
                weight: 1 << 20,
            }));
        }
        if t_ns >= next_counters {
            next_counters += 100_000_000;
            let live_bytes = (live.len() as u64 + kept) << 19;
            peak = peak.max(live_bytes);
            enc.push(&Record::Counters(Counters {
                t_ns,
                live_bytes,
                peak_live_bytes: peak,
                python_live_bytes: live_bytes / 2,
                ..Default::default()
            }));
        }
        if enc.len() >= 64 << 10 {
            written += flush(&mut enc, &mut out)?;
        }
    }
    enc.push(&Record::End(End {
        t_ns,
        samples,
        dropped: 0,
        truncated: 0,
    }));
    written += flush(&mut enc, &mut out)?;
    out.flush()?;
    eprintln!("{path}: {written} bytes, {samples} samples, {defined_stacks} stacks");
    Ok(())
}

fn flush(enc: &mut Encoder, out: &mut impl Write) -> std::io::Result<u64> {
    let n = match enc.finish_chunk() {
        Some(bytes) => {
            out.write_all(bytes)?;
            bytes.len() as u64
        }
        None => 0,
    };
    enc.clear();
    Ok(n)
}
