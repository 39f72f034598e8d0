//! Any bytes as a trace: decoding, aggregation and both reports, as rprof-report makes
//! them. Nothing may panic, run long or grow without bound (libFuzzer's -timeout and
//! -rss_limit_mb), and the text report stays escape-free and within its width.
//!
//! A mutated chunk almost never keeps a valid CRC32, so most inputs would stop at the
//! checksum. When the first byte is odd, the rest is taken as a trace whose chunk
//! checksums are recomputed first, so the mutations reach the record decoder and the
//! aggregation; when even, the rest is read as it is (framing and checksum damage).

#![no_main]

use libfuzzer_sys::fuzz_target;
use rprof_cli::model::aggregate;
use rprof_cli::report::ReportOptions;
use rprof_cli::source::Sources;
use rprof_cli::render::{html, scalene_json, text};

/// The header's length, then each chunk's checksum set to its payload's, as far as the
/// framing holds.
fn fix_checksums(data: &mut [u8]) {
    let Some(len) = data.get(12..16) else {
        return;
    };
    let mut pos = 16 + u32::from_le_bytes(len.try_into().unwrap()) as usize;
    while let Some(head) = data.get(pos..pos + 12) {
        if head[..4] != *b"RPCK" {
            return;
        }
        let len = u32::from_le_bytes(head[4..8].try_into().unwrap()) as usize;
        let Some(payload) = data.get(pos + 12..pos + 12 + len) else {
            return;
        };
        let crc = crc32fast::hash(payload);
        data[pos + 8..pos + 12].copy_from_slice(&crc.to_le_bytes());
        pos += 12 + len;
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&mode, rest)) = input.split_first() else {
        return;
    };
    let mut data = rest.to_vec();
    if mode & 1 == 1 {
        fix_checksums(&mut data);
    }
    let Ok(p) = aggregate(&data) else {
        return;
    };
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
    let width = text::width(&p);
    assert!(t.lines().all(|l| l.chars().count() <= width), "{t}");
    assert!(!t.contains('\u{1b}'), "escape sequences reach the terminal");
    let json = scalene_json::render(&p, &src, &advice);
    serde_json::from_str::<serde_json::Value>(&json).expect("the JSON report parses");
    let page = html::render(&p, &src, &opts, &advice);
    assert_eq!(page.matches("<script").count(), 2, "names reach the page as markup");
});
