//! The writers of this process's earlier images. An `exec` replaces the program but not the
//! process: the writer of the image before it is still this process's child, finishing
//! that image's trace, and the new image knows nothing of it. Unreaped it would stay a
//! zombie for as long as the new image runs (a `sh -c 'exec server'` for the server's
//! whole life), a child the program never made. So the new image finds those writers
//! among its children when the shim starts and reaps them.

use std::sync::atomic::{AtomicI32, Ordering::*};
use std::time::{Duration, Instant};

/// How long the new image's start waits for an earlier writer to end. It ends once it has
/// written the rest of its trace (milliseconds, tens for a Python image's symbols); one
/// that takes longer is reaped at this image's end instead.
const START_WAIT: Duration = Duration::from_millis(500);

/// Earlier writers still running when the start stopped waiting (0: free slot).
static STRAGGLERS: [AtomicI32; 4] = [const { AtomicI32::new(0) }; 4];

/// This process's children named `rprof-writer` (there are none unless it exec'd).
fn writers_of_earlier_images() -> Vec<i32> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for task in tasks.flatten() {
        let Ok(children) = std::fs::read_to_string(task.path().join("children")) else {
            continue;
        };
        for pid in children
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            if std::fs::read(format!("/proc/{pid}/comm")).is_ok_and(|c| c == b"rprof-writer\n") {
                found.push(pid);
            }
        }
    }
    found
}

/// At the shim's start: reaps the writers of the images before the last exec, waiting a
/// little for those still finishing their traces.
pub fn reap_earlier_images() {
    let pids = writers_of_earlier_images();
    if pids.is_empty() {
        return;
    }
    let deadline = Instant::now() + START_WAIT;
    let mut slot = 0;
    for pid in pids {
        if !super::reap_until(pid, deadline) && slot < STRAGGLERS.len() {
            STRAGGLERS[slot].store(pid, Relaxed);
            slot += 1;
        }
    }
}

/// At this image's end: reaps the earlier writers the start did not wait for, by `deadline`.
pub fn reap_stragglers(deadline: Instant) {
    for s in &STRAGGLERS {
        let pid = s.swap(0, Relaxed);
        if pid > 0 {
            super::reap_until(pid, deadline);
        }
    }
}
