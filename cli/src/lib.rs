//! rprof's reader side: turns a trace written by librprof.so into a report (text for a
//! terminal, Scalene-compatible JSON, or an HTML page), and launches programs under the
//! profiler.

// Every unsafe block says why it is sound (`// SAFETY:`); CI's clippy holds it to that.
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod advice;
pub mod diff;
pub mod environment;
pub mod launch;
pub mod model;
pub mod render;
pub mod report;
pub mod source;
pub mod trace_file;
