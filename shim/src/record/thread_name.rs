//! Reads the sampled thread's Python thread name (`threading.Thread.name`) from the
//! interpreter and publishes it for the writer (`shared::thread_names`). Done in the
//! sampling signal handler, because only there does the thread's own Python stack hold
//! still to be read: a bounded, fault-guarded walk to the outermost frame and one
//! attribute lookup, no Python code run, nothing allocated. Only CPU samples read names:
//! a thread that is only ever sampled for memory keeps its OS name.

use crate::record::thread_state::ThreadState;
use crate::shared::thread_names::NAME_BYTES;
use crate::state::Runtime;

/// How often a thread's name is read again, so a thread the program renames after it
/// started is reported by its new name (a read costs well under a microsecond); and how soon
/// after a read that found none (a sample as the thread starts, before its first Python
/// frame; or a thread threading did not start, which costs one walk per interval).
const REREAD_NS: u64 = 1_000_000_000;
const RETRY_NS: u64 = 100_000_000;

/// At the thread's first sample and then every [`REREAD_NS`]: publishes its name if it
/// runs a `threading.Thread`. Async-signal-safe.
pub fn note(rt: &Runtime, t: &ThreadState, now_ns: u64) {
    let Some(probe) = rt.probe.as_ref() else {
        return;
    };
    let next = t.name_read_ns.get();
    if next != 0 && now_ns < next {
        return;
    }
    let mut buf = [0u8; NAME_BYTES];
    let wait = match probe.thread_name(&mut buf) {
        Some((n, kind)) => {
            rt.thread_names.publish(t.tid.get(), kind, &buf[..n]);
            REREAD_NS
        }
        None => RETRY_NS,
    };
    t.name_read_ns.set(now_ns.saturating_add(wait));
}
