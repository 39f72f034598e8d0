//! Writes a large synthetic trace shaped like a real one, for measuring report throughput:
//!
//!     cargo run --release -p rprof-cli --example synth_trace -- /tmp/big.trace 200
//!     time target/release/rprof-report /tmp/big.trace > /dev/null
//!
//! 8 threads, 400 files, 4,000 functions and 50,000 distinct stacks of depth 3 to 40, with
//! samples interleaved with the definitions they use, in 64 KiB chunks, until the file holds
//! the asked number of megabytes.

use rprof_format::{encode_header, CpuSample, Encoder, End, Exec, Frame, FuncKind, Header, Record};
use std::io::Write;

const FILES: u32 = 400;
const FUNCTIONS: u32 = 4_000;
const STACKS: u32 = 50_000;
const THREADS: u32 = 8;

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(path), Some(mb)) = (args.get(1), args.get(2).and_then(|s| s.parse::<u64>().ok()))
    else {
        eprintln!("usage: synth_trace OUT.trace MEGABYTES");
        std::process::exit(2);
    };
    let want = mb * 1_000_000;
    let header = Header {
        pid: 1000,
        sample_hz: 100,
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
        enc.push(&Record::Function {
            id,
            kind: FuncKind::Python,
            name,
            file,
            first_line: id % 900 + 1,
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
            let frames = (0..depth)
                .map(|_| Frame {
                    func: 1 + next(u64::from(FUNCTIONS)) as u32,
                    line: 1 + next(900) as u32,
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
        enc.push(&Record::Cpu(CpuSample {
            t_ns,
            tid: 70_000 + next(u64::from(THREADS)) as u32,
            stack,
            cpu_ns: 9_000_000 + next(2_000_000),
            sys_ns: if next(4) == 0 { next(3_000_000) } else { 0 },
            exec: if next(3) == 0 {
                Exec::Native
            } else {
                Exec::Python
            },
        }));
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
