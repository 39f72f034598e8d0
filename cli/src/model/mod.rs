//! The report model: a trace aggregated into a [`Profile`], which every renderer reads.
//!
//! - [`types`]: what the profile holds: time and memory per file and line, per function,
//!   per thread, and the resolved call stacks with their CPU time and memory;
//! - [`accumulate`]: the streaming accumulation from trace records, with one stack-id
//!   index for CPU and memory samples;
//! - [`charge`]: the charging policy (which line and function a sample is charged to);
//! - [`memory`], [`leaks`], [`program_time`], [`timeline`]: the memory replay, the leak
//!   rule and the time it judges growth on, timelines;
//! - [`merge`]: one profile of a whole run, from its processes' traces;
//! - [`gpu`]: GPU readings charged to the lines running when they were taken;
//! - [`figures`]: the figures derived from it (shares, MiB, rates), in one place.

pub mod accumulate;
pub mod charge;
mod debug_lines;
pub mod figures;
pub mod gpu;
pub mod leaks;
pub mod memory;
pub mod merge;
pub mod program_time;
pub mod timeline;
pub mod types;

pub use accumulate::{aggregate, aggregate_charged, aggregate_from};
pub use charge::Charging;
pub use types::*;
