//! Where a process's trace goes, and the header that opens it.

use crate::config::Config;
use rprof_format::Header;

/// Whether this process is the first profiled one of its run: true unless its parent has
/// this very library loaded. (An environment marker would not do: shells pass their
/// children the environment they were started with, not the one our constructor edits.)
pub fn is_root() -> bool {
    // SAFETY: a zeroed Dl_info is a valid value (null pointers) for dladdr to fill.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    let here = is_root as *const libc::c_void;
    // SAFETY: dladdr reads the address of one of our functions and fills `info`.
    if unsafe { libc::dladdr(here, &mut info) } == 0 || info.dli_fname.is_null() {
        return true;
    }
    // SAFETY: dladdr set dli_fname (checked non-null) to the loaded object's path, a
    // NUL-terminated string that lives as long as the object stays loaded (ours does).
    let me = unsafe { std::ffi::CStr::from_ptr(info.dli_fname) }.to_string_lossy();
    let maps = std::fs::read_to_string(format!(
        "/proc/{}/maps",
        std::os::unix::process::parent_id()
    ));
    !maps.is_ok_and(|m| m.lines().any(|l| l.ends_with(me.as_ref())))
}

/// The run's identity: `RPROF_RUN` as `rprof run` (or the run's first process) set it. The
/// first process of a run started without `rprof run` makes one (its pid and start time)
/// and puts it in its environment, which its children inherit. A child whose environment
/// lost it gets "" (the readers then link it by its parent pid alone).
pub fn run_id(root: bool) -> String {
    match std::env::var("RPROF_RUN") {
        Ok(id) if !id.is_empty() => id,
        _ if root => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            let id = format!("{}-{now}", std::process::id());
            // SAFETY (of the environment): this runs in the library's constructor, before
            // the program's main and any thread of its own.
            std::env::set_var("RPROF_RUN", &id);
            id
        }
        _ => String::new(),
    }
}

/// The trace path for this process: `%p` becomes the pid; a directory (an existing one, or
/// a path ending in `/`) gets `rprof-PID.trace` in it; any other name is used as is by the
/// run's first process and gets `.PID` appended in its children, so two processes never
/// write one file.
pub fn trace_path(template: &str, pid: u32, root: bool) -> String {
    if template.ends_with('/') || std::path::Path::new(template).is_dir() {
        format!("{}/rprof-{pid}.trace", template.trim_end_matches('/'))
    } else if template.contains("%p") {
        template.replace("%p", &pid.to_string())
    } else if root {
        template.to_owned()
    } else {
        format!("{template}.{pid}")
    }
}

fn cmdline() -> Vec<String> {
    std::fs::read("/proc/self/cmdline")
        .map(|b| {
            b.split(|&c| c == 0)
                .filter(|s| !s.is_empty())
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

pub fn header(config: &Config, signal: i32, python_version: u32) -> Header {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let path = |p: std::io::Result<std::path::PathBuf>| {
        p.map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    Header {
        pid: std::process::id(),
        ppid: std::os::unix::process::parent_id(),
        start_unix_ns: now,
        clock: config.clock as u8,
        sample_hz: config.hz,
        modes: config.modes,
        mem_rate: config.mem_rate,
        copy_rate: config.copy_rate,
        signal,
        python_version,
        exe: path(std::fs::read_link("/proc/self/exe")),
        cwd: path(std::env::current_dir()),
        argv: cmdline(),
    }
}

#[cfg(test)]
mod tests {
    use super::trace_path;

    #[test]
    fn paths_never_collide() {
        assert_eq!(trace_path("out-%p.trace", 12, true), "out-12.trace");
        assert_eq!(trace_path("out-%p.trace", 12, false), "out-12.trace");
        assert_eq!(trace_path("out.trace", 12, true), "out.trace");
        assert_eq!(trace_path("out.trace", 13, false), "out.trace.13");
        assert_eq!(trace_path("traces/", 14, true), "traces/rprof-14.trace");
        let dir = std::env::temp_dir();
        let want = format!(
            "{}/rprof-15.trace",
            dir.to_str().unwrap().trim_end_matches('/')
        );
        assert_eq!(trace_path(dir.to_str().unwrap(), 15, false), want);
    }
}
