//! The GPU parts of the terminal report, shown only when the trace has GPU readings: a
//! header line (the devices, where the figures came from) and two columns per line, the
//! line's share of the GPU busy time and the GPU memory in use while it ran (MiB,
//! averaged; several devices summed).

use super::layout::{clean, fit, mib_cell, Out};
use crate::model::{LineGpu, Profile};

/// Columns the GPU cells add to a line.
pub const COLUMNS: usize = 16;
pub const LINE_HEADER: &str = "    GPU%  GPUMiB";

/// Inserts the GPU columns' header after the time columns of `header`.
pub fn with_header(header: &str) -> String {
    let at = header
        .find("Total")
        .map_or(header.len(), |i| i + "Total".len());
    format!("{}{LINE_HEADER}{}", &header[..at], &header[at..])
}

pub fn header(out: &mut Out, p: &Profile) {
    let Some(g) = &p.gpu else { return };
    // Device names come from the trace: cleaned of control characters and cut short, so
    // that the wrapped lines keep to the report's width.
    let names: Vec<String> = g.devices.iter().map(|d| fit(&clean(&d.name), 32)).collect();
    let scope = |own: bool| if own { "this process" } else { "device-wide" };
    let avg: f64 = g.devices.iter().map(|d| d.avg_util).sum();
    let peak: u64 = g.devices.iter().map(|d| d.peak_memory).sum();
    let devices = if names.len() == 1 {
        "1 device".to_owned()
    } else {
        format!("{} devices", names.len())
    };
    out.wrap(
        &format!(
            "{devices} ({}): {avg:.1}% busy on average (summed), memory up to {:.1} MiB",
            names.join(", "),
            peak as f64 / (1u64 << 20) as f64,
        ),
        "GPU       ",
        "          ",
    );
    let unattributed = if g.busy > 0.0 {
        100.0 * g.unattributed / g.busy
    } else {
        0.0
    };
    out.wrap(
        &format!(
            "utilisation {}, memory {}; {unattributed:.1}% of the GPU time was near no sample \
             (charged to no line)",
            scope(g.process_util()),
            scope(g.process_memory()),
        ),
        "          ",
        "          ",
    );
}

/// A line's GPU cells (see [`LINE_HEADER`]).
pub fn line_cells(p: &Profile, g: &LineGpu) -> String {
    let share = match p.gpu_share(g) {
        s if s > 0.0 => format!("{:>8}", format!("{s:.1}%")),
        _ => " ".repeat(8),
    };
    format!("{share}{}", mib_cell(g.avg_bytes()))
}
