//! A small trace for the exports' unit tests: `outer -> inner` in two threads (inner's line
//! 7 hot) and one allocation kept to the end, encoded and aggregated as a real one is.

use crate::model::{aggregate, Profile};
use rprof_format::{
    encode_header, mode, AllocSample, CpuSample, Domain, Encoder, Exec, Frame, FuncKind, Header,
    Record,
};

pub fn profile() -> Profile {
    let header = Header {
        pid: 42,
        sample_hz: 100,
        modes: mode::CPU | mode::MEMORY,
        mem_rate: 1024,
        exe: "/usr/bin/python3".into(),
        argv: vec!["python3".into(), "a.py".into()],
        ..Default::default()
    };
    let mut enc = Encoder::new();
    let strings = ["a.py", "outer", "inner", "Main", "Worker"];
    for (i, text) in strings.iter().enumerate() {
        enc.push(&Record::String {
            id: i as u32 + 1,
            text: text.to_string(),
        });
    }
    for (id, name, first_line) in [(1, 2, 1), (2, 3, 6)] {
        enc.push(&Record::Function {
            id,
            kind: FuncKind::Python,
            name,
            file: 1,
            first_line,
        });
    }
    for (tid, name) in [(42, 4), (43, 5)] {
        enc.push(&Record::Thread { tid, name });
    }
    let frame = |func, line| Frame { func, line };
    enc.push(&Record::Stack {
        id: 1,
        frames: vec![frame(2, 7), frame(1, 3)],
    });
    enc.push(&Record::Stack {
        id: 2,
        frames: vec![frame(1, 2)],
    });
    for (tid, stack, cpu_ns) in [(42, 1, 30_000_000), (43, 1, 10_000_000), (42, 2, 5_000_000)] {
        enc.push(&Record::Cpu(CpuSample {
            t_ns: 10,
            tid,
            stack,
            cpu_ns,
            sys_ns: 0,
            exec: Exec::Python,
        }));
    }
    enc.push(&Record::Alloc(AllocSample {
        t_ns: 20,
        tid: 42,
        stack: 1,
        addr: 1,
        size: 4096,
        weight: 4096,
        domain: Domain::Native,
    }));
    let mut trace = encode_header(&header);
    trace.extend_from_slice(enc.finish_chunk().expect("records were pushed"));
    aggregate(&trace).expect("the fixture is a valid trace")
}
