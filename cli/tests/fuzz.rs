//! Hostile input for the reader: random records with valid framing, every truncation of a
//! trace, flipped bytes, and plain noise. Nothing may panic, and every report must render.

mod common;

use common::{check_scalene_schema, TraceBuilder};
use rprof_cli::model::{aggregate, Profile};
use rprof_cli::render::{html, scalene_json, text};
use rprof_cli::report::ReportOptions;
use rprof_cli::source::Sources;
use rprof_format::{
    mode, AllocSample, CopySample, Counters, CpuSample, Domain, End, Exec, Frame, FreeSample,
    FuncKind, Header, Record, ShortLived,
};

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Mostly small ids so references resolve sometimes, and now and then an extreme.
    fn id(&mut self) -> u32 {
        match self.below(10) {
            0 => u32::MAX,
            1 => self.next() as u32,
            _ => self.below(6) as u32,
        }
    }

    fn big(&mut self) -> u64 {
        match self.below(8) {
            0 => u64::MAX,
            1 => self.next(),
            _ => self.below(50_000_000),
        }
    }
}

/// Few distinct addresses, so frees often find their allocation.
fn addr(rng: &mut Rng) -> u64 {
    match rng.below(10) {
        0 => rng.next(),
        _ => 0x1000 * rng.below(8),
    }
}

fn random_record(rng: &mut Rng) -> Record {
    match rng.below(14) {
        0 => Record::String {
            id: rng.id(),
            text: match rng.below(8) {
                0 => rprof_format::marks::PYTHON_FINALIZING.to_string(),
                _ => format!("f{}\u{1b}[31m.py", rng.below(4)),
            },
        },
        1 => Record::Function {
            id: rng.id(),
            kind: if rng.below(2) == 0 {
                FuncKind::Python
            } else {
                FuncKind::Native
            },
            name: rng.id(),
            file: rng.id(),
            first_line: rng.id(),
        },
        2 => {
            let frames = (0..rng.below(6))
                .map(|_| Frame {
                    func: rng.id(),
                    line: rng.id(),
                })
                .collect();
            Record::Stack {
                id: rng.id(),
                frames,
            }
        }
        3 => Record::Thread {
            tid: rng.id(),
            name: rng.id(),
        },
        4 => Record::Counters(Counters {
            t_ns: rng.big(),
            live_bytes: rng.big(),
            peak_live_bytes: rng.big(),
            python_live_bytes: rng.big(),
            ..Default::default()
        }),
        8 | 9 => Record::Alloc(AllocSample {
            t_ns: rng.big(),
            tid: rng.id(),
            stack: rng.id(),
            addr: addr(rng),
            size: rng.big(),
            weight: rng.big(),
            domain: if rng.below(2) == 0 {
                Domain::Python
            } else {
                Domain::Native
            },
        }),
        13 => Record::ShortLived(ShortLived {
            t_ns: rng.big(),
            span_ns: rng.big(),
            stack: rng.id(),
            size: rng.big(),
            domain: if rng.below(2) == 0 {
                Domain::Python
            } else {
                Domain::Native
            },
            // Any count a trace could hold (a count near u64::MAX would make the lines'
            // sample counts, summed below, wrap where the report's saturate).
            count: rng.below(1 << 40),
            weight: rng.big(),
            peak: rng.big(),
            held_us: rng.big(),
        }),
        10 => Record::Free(FreeSample {
            t_ns: rng.big(),
            addr: addr(rng),
        }),
        12 => Record::Mark {
            t_ns: rng.big(),
            label: rng.id(),
        },
        11 => Record::Copy(CopySample {
            t_ns: rng.big(),
            tid: rng.id(),
            stack: rng.id(),
            weight: rng.big(),
        }),
        5 => Record::End(End {
            t_ns: rng.big(),
            samples: rng.big(),
            dropped: rng.big(),
            truncated: rng.big(),
        }),
        _ => Record::Cpu(CpuSample {
            t_ns: rng.big(),
            tid: rng.id(),
            stack: rng.id(),
            cpu_ns: rng.big(),
            sys_ns: rng.big(),
            exec: if rng.below(2) == 0 {
                Exec::Python
            } else {
                Exec::Native
            },
        }),
    }
}

fn random_trace(rng: &mut Rng) -> Vec<u8> {
    let h = Header {
        python_version: rng.next() as u32,
        clock: rng.below(3) as u8,
        modes: [mode::CPU, mode::CPU | mode::MEMORY][rng.below(2) as usize],
        mem_rate: rng.big(),
        ..Default::default()
    };
    let mut t = TraceBuilder::new(&h);
    for _ in 0..rng.below(60) {
        t.push(random_record(rng));
        if rng.below(8) == 0 {
            t.chunk();
        }
    }
    t.finish()
}

/// Everything a user can ask of a trace, with every line shown.
fn report(data: &[u8]) -> Option<Profile> {
    let p = aggregate(data).ok()?;
    let src = Sources::load(&p);
    let opts = ReportOptions {
        all_lines: true,
        threshold: 0.0,
        functions: 1000,
        no_advice: false,
        profile_all: false,
        profile_only: Vec::new(),
        profile_exclude: Vec::new(),
        width: None,
    };
    let advice = opts.advice(&p, &src);
    let t = text::render(&p, &src, &opts, &advice);
    let width = text::report_width(&p, &opts);
    assert!(t.lines().all(|l| l.chars().count() <= width), "{t}");
    assert!(
        !t.contains('\u{1b}'),
        "escape sequences reach the terminal: {t}"
    );
    check_scalene_schema(&serde_json::from_str(&scalene_json::render(&p, &src, &advice)).unwrap());
    // Whatever the names hold, the page has its own two script elements and no other.
    let page = html::render(&p, &src, &opts, &advice);
    assert_eq!(page.matches("<script").count(), 2);
    Some(p)
}

#[test]
fn random_records_never_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..2000 {
        let data = random_trace(&mut rng);
        let p = report(&data).expect("a well-framed trace always reads");
        let lines: u64 = p
            .files
            .iter()
            .flat_map(|f| &f.lines)
            .map(|l| l.times.samples)
            .sum();
        assert_eq!(
            lines, p.total.samples,
            "every sample lands on exactly one line"
        );
        let alloc_samples: u64 = p
            .files
            .iter()
            .flat_map(|f| &f.lines)
            .map(|l| l.memory.alloc_samples)
            .sum();
        assert_eq!(alloc_samples, p.footprint.alloc_samples);
        for m in p.files.iter().flat_map(|f| &f.lines).map(|l| &l.memory) {
            assert!(m.avg_bytes <= m.peak_bytes as f64 && m.growth_bytes <= m.peak_bytes);
            assert!(m.timeline.len() <= 100 && m.timeline.iter().all(|&(_, v)| v <= m.peak_bytes));
        }
    }
}

#[test]
fn every_truncation_and_flipped_byte_is_survived() {
    let mut rng = Rng(42);
    for _ in 0..20 {
        let data = random_trace(&mut rng);
        for cut in 0..data.len() {
            report(&data[..cut]);
        }
        for _ in 0..100 {
            let mut bad = data.clone();
            let i = rng.below(bad.len() as u64) as usize;
            bad[i] ^= 1 << rng.below(8);
            report(&bad);
        }
    }
}

#[test]
fn noise_is_not_a_trace() {
    let mut rng = Rng(7);
    for len in 0..300 {
        let noise: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        assert!(aggregate(&noise).is_err());
        // Noise after a good header: chunks that fail their framing or checksum.
        let mut data = TraceBuilder::new(&Header::default()).finish();
        data.extend_from_slice(&noise);
        data.extend_from_slice(b"RPCK\x05\0\0\0\0\0\0\0hello");
        let p = report(&data).unwrap();
        assert!(!p.damage.is_empty() || noise.is_empty());
    }
}
