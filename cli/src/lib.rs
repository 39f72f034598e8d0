//! rprof's reader side: turns a trace written by librprof.so into a report, as text for a
//! terminal or as Scalene-compatible JSON, and launches programs under the profiler.

pub mod advice;
pub mod launch;
pub mod leaks;
pub mod memory;
pub mod profile;
pub mod report;
pub mod scalene_json;
pub mod source;
pub mod sparkline;
pub mod text;
pub mod timeline;
pub mod trace_file;
