//! Captures the stacks of an event being recorded on a program thread: the Python frames
//! (interning their code objects) and the native frames above the interpreter.

use crate::python::RawFrame;
use crate::record::native_stack::NATIVE_DEPTH;
use crate::shared::queue::{Event, EventFrame, MAX_DEPTH, UNKNOWN_CODE};
use crate::state::Runtime;

/// Fills `ev` with the calling thread's Python stack and the given native frames, keeping
/// only the native frames above the first one in the interpreter (all of them when the
/// process is not Python). Async-signal-safe.
pub fn capture(rt: &Runtime, ev: &mut Event, native: &[u64]) {
    ev.depth = 0;
    ev.truncated = false;
    ev.native_depth = 0;
    let probe = rt.probe.as_ref();
    for &pc in native.iter().take(NATIVE_DEPTH) {
        if probe.is_some_and(|p| p.is_interpreter_pc(pc as usize)) {
            break;
        }
        ev.native[ev.native_depth as usize] = pc;
        ev.native_depth += 1;
    }
    let Some(probe) = probe else { return };
    let mut raw = [RawFrame::default(); MAX_DEPTH];
    let (n, truncated) = probe.walk_current_thread(&mut raw);
    for (dst, src) in ev.frames.iter_mut().zip(&raw[..n]) {
        *dst = EventFrame {
            code: rt.codes.intern(probe, src.code).unwrap_or(UNKNOWN_CODE),
            addrq: src.addrq,
        };
    }
    ev.depth = n as u16;
    ev.truncated = truncated;
}
