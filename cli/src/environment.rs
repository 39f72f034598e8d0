//! `rprof env [options]`: the environment that profiles a program without `rprof run`,
//! written for a shell (`export`), a systemd unit (`Environment=`) or a Dockerfile
//! (`ENV`), each quoted so the value arrives as written. Also where the Python package
//! lies, which `rprof run` puts on the profiled program's `PYTHONPATH`.

use crate::launch;
use rprof_format::mode;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnvFormat {
    /// `export NAME='value'` lines, for `eval "$(rprof env)"` or a script.
    Shell,
    /// `Environment="NAME=value"` lines, for a unit's `[Service]` section.
    Systemd,
    /// `ENV NAME="value"` lines, for a Dockerfile.
    Docker,
}

#[derive(clap::Args, Debug)]
pub struct EnvArgs {
    /// Which syntax to print.
    #[arg(long, value_enum, default_value = "shell")]
    pub format: EnvFormat,
    /// Comma list of cpu, memory, copy, gpu (RPROF_MODE).
    #[arg(long, value_name = "MODES")]
    pub mode: Option<String>,
    /// The trace path; %p becomes the pid (RPROF_OUTPUT).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<String>,
    /// `paused`: record nothing until the program starts recording (RPROF_START).
    #[arg(long, value_name = "paused")]
    pub start: Option<String>,
    /// Each delivery of this signal turns recording on or off (RPROF_TOGGLE_SIGNAL).
    #[arg(long, value_name = "SIGNAL")]
    pub toggle_signal: Option<String>,
    /// Stop recording when the trace reaches N MiB (RPROF_MAX_MB).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    pub max_mb: Option<u64>,
    /// CPU samples per second (RPROF_CPU_HZ).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub hz: Option<u32>,
    /// Sample wall-clock time instead of CPU time (RPROF_CLOCK=wall).
    #[arg(long)]
    pub wall: bool,
    /// How often the trace is flushed (RPROF_FLUSH_MS).
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(10..=60_000))]
    pub flush_ms: Option<u64>,
    /// Profile only the program's own process (RPROF_FOLLOW_CHILDREN=0).
    #[arg(long)]
    pub no_children: bool,
    /// The profiler library [default: librprof.so next to rprof, or in ../lib]. With
    /// --format docker, the absolute path inside the image (not checked here).
    #[arg(long, value_name = "PATH")]
    pub lib: Option<PathBuf>,
    /// The directory holding the `rprof` Python package, put first on PYTHONPATH
    /// [default: the one beside rprof, when there is one; with --format docker, none].
    #[arg(long, value_name = "DIR")]
    pub python_dir: Option<PathBuf>,
}

/// One variable: its value, and whether the value goes before what the variable already
/// holds (a colon-separated list the program may have set itself).
#[derive(Debug, PartialEq, Eq)]
pub struct Setting {
    pub name: &'static str,
    pub value: String,
    pub prepend: bool,
}

/// Prints the lines; returns rprof's exit code.
pub fn run(args: &EnvArgs) -> i32 {
    match settings(args) {
        Ok(list) => {
            print!("{}", render(args.format, &list));
            if args.format == EnvFormat::Docker && args.lib.is_none() {
                println!("# LD_PRELOAD is this machine's path: name the image's with --lib");
            }
            0
        }
        Err(e) => {
            eprintln!("rprof: error: {e}");
            2
        }
    }
}

/// The variables the options ask for, LD_PRELOAD first.
pub fn settings(args: &EnvArgs) -> Result<Vec<Setting>, String> {
    let docker = args.format == EnvFormat::Docker;
    let lib = match (&args.lib, docker) {
        (Some(p), true) if p.is_absolute() => p.clone(),
        (Some(p), true) => {
            return Err(format!(
                "--lib {}: name the library's absolute path in the image",
                p.display()
            ))
        }
        _ => launch::find_lib(args.lib.as_deref())?,
    };
    let mut out = vec![list("LD_PRELOAD", path_text(&lib, "LD_PRELOAD")?)];
    let python = match &args.python_dir {
        Some(d) if docker => Some(d.clone()),
        Some(d) => Some(
            d.canonicalize()
                .map_err(|e| format!("--python-dir {}: {e}", d.display()))?,
        ),
        None if docker => None,
        None => python_dir(),
    };
    if let Some(dir) = python {
        out.push(list("PYTHONPATH", path_text(&dir, "PYTHONPATH")?));
    }
    if let Some(m) = &args.mode {
        check_modes(m)?;
        out.push(plain("RPROF_MODE", m.clone()));
    }
    if let Some(o) = &args.output {
        if o.is_empty() {
            return Err("--output: an empty path".into());
        }
        out.push(plain("RPROF_OUTPUT", o.clone()));
    }
    match args.start.as_deref() {
        None | Some("running") => {}
        Some("paused") => out.push(plain("RPROF_START", "paused".into())),
        Some(other) => {
            return Err(format!(
                "--start {other:?}: `paused` (record nothing until started) or `running`"
            ))
        }
    }
    if let Some(s) = &args.toggle_signal {
        out.push(plain("RPROF_TOGGLE_SIGNAL", signal(s)?));
    }
    if let Some(n) = args.max_mb {
        out.push(plain("RPROF_MAX_MB", n.to_string()));
    }
    if let Some(hz) = args.hz {
        out.push(plain("RPROF_CPU_HZ", hz.to_string()));
    }
    if args.wall {
        out.push(plain("RPROF_CLOCK", "wall".into()));
    }
    if let Some(ms) = args.flush_ms {
        out.push(plain("RPROF_FLUSH_MS", ms.to_string()));
    }
    if args.no_children {
        out.push(plain("RPROF_FOLLOW_CHILDREN", "0".into()));
    }
    for s in &out {
        if s.value.chars().any(char::is_control) {
            return Err(format!(
                "{}: a value with a control character cannot be written",
                s.name
            ));
        }
    }
    Ok(out)
}

fn plain(name: &'static str, value: String) -> Setting {
    Setting {
        name,
        value,
        prepend: false,
    }
}

fn list(name: &'static str, value: String) -> Setting {
    Setting {
        name,
        value,
        prepend: true,
    }
}

/// A path as the list variable `var` can hold it: the loader splits LD_PRELOAD at spaces
/// and colons, Python splits PYTHONPATH at colons.
fn path_text(p: &Path, var: &str) -> Result<String, String> {
    let s = p
        .to_str()
        .ok_or_else(|| format!("{}: not UTF-8", p.display()))?;
    let bad: &[char] = if var == "LD_PRELOAD" {
        &[' ', ':']
    } else {
        &[':']
    };
    if s.contains(bad) {
        return Err(format!("{var} cannot hold {s}: it splits at {bad:?}"));
    }
    Ok(s.to_owned())
}

fn check_modes(s: &str) -> Result<(), String> {
    let words: Vec<&str> = s
        .split(',')
        .map(str::trim)
        .filter(|w| !w.is_empty())
        .collect();
    match words.iter().find(|w| mode::bit(w).is_none()) {
        _ if words.is_empty() => Err(format!("--mode: no mode named ({})", mode::known())),
        Some(w) => Err(format!(
            "--mode: unknown mode {w:?} (known: {})",
            mode::known()
        )),
        None => Ok(()),
    }
}

/// A signal the shim's toggle accepts (shim/src/config.rs, `toggle_signal`): by name,
/// with or without `SIG`, any case, or `SIGRTMIN+N` for N >= 2; written as `SIGUSR2`.
fn signal(s: &str) -> Result<String, String> {
    let upper = s.trim().to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    let known = ["USR1", "USR2", "HUP", "WINCH", "URG"].contains(&name)
        || name
            .strip_prefix("RTMIN+")
            .and_then(|n| n.parse::<i32>().ok())
            .is_some_and(|n| n >= 2 && n <= libc::SIGRTMAX() - libc::SIGRTMIN());
    if known {
        Ok(format!("SIG{name}"))
    } else {
        Err(format!(
            "--toggle-signal {s:?}: one of SIGUSR1, SIGUSR2, SIGHUP, SIGWINCH, SIGURG or \
             SIGRTMIN+N (N >= 2)"
        ))
    }
}

/// The lines in `format`'s syntax, after one comment line (valid in all three).
pub fn render(format: EnvFormat, settings: &[Setting]) -> String {
    let mut out = format!(
        "# rprof {}: profile the program with librprof.so\n",
        env!("CARGO_PKG_VERSION")
    );
    for s in settings {
        let line = match format {
            EnvFormat::Shell => {
                let mut l = format!("export {}={}", s.name, shell_quote(&s.value));
                if s.prepend {
                    l.push_str(&format!("\"${{{0}:+:${0}}}\"", s.name));
                }
                l
            }
            // systemd does not expand variables in Environment=, so a list cannot extend
            // the value the manager had; `%` starts a specifier and is doubled.
            EnvFormat::Systemd => format!(
                "Environment=\"{}={}\"",
                s.name,
                escape(&s.value, &['\\', '"']).replace('%', "%%")
            ),
            EnvFormat::Docker => {
                let mut l = format!("ENV {}=\"{}", s.name, escape(&s.value, &['\\', '"', '$']));
                if s.prepend {
                    l.push_str(&format!("${{{0}:+:${0}}}", s.name));
                }
                l.push('"');
                l
            }
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// Single quotes keep everything as written; a quote itself is closed, escaped, reopened.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn escape(s: &str, special: &[char]) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if special.contains(&c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The directory holding the `rprof` Python package: from the executable, `../../python`
/// (a build in the repository's `target/release/`), else `../share/rprof/python` (an
/// install under a prefix, beside `../lib/librprof.so`). None where neither has it.
pub fn python_dir() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let bin = exe.parent()?;
    [bin.join("../../python"), bin.join("../share/rprof/python")]
        .into_iter()
        .find(|d| d.join("rprof/__init__.py").is_file())
        .and_then(|d| d.canonicalize().ok())
        .filter(|d| !d.to_string_lossy().contains(':'))
}

/// `first`, then what `old` held (a colon-separated list), for PYTHONPATH.
pub fn prepended(first: &Path, old: Option<OsString>) -> OsString {
    let mut v = first.as_os_str().to_owned();
    if let Some(old) = old.filter(|o| !o.is_empty()) {
        v.push(":");
        v.push(old);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(name: &'static str, value: &str, prepend: bool) -> Setting {
        Setting {
            name,
            value: value.into(),
            prepend,
        }
    }

    #[test]
    fn each_format_quotes_what_its_reader_would_change() {
        let s = [
            set("LD_PRELOAD", "/opt/lib/librprof.so", true),
            set("RPROF_OUTPUT", "/tmp/it's \"$HOME\" 100%p\\x", false),
        ];
        let shell = render(EnvFormat::Shell, &s);
        assert!(shell
            .contains("export LD_PRELOAD='/opt/lib/librprof.so'\"${LD_PRELOAD:+:$LD_PRELOAD}\"\n"));
        assert!(shell.contains(r#"export RPROF_OUTPUT='/tmp/it'\''s "$HOME" 100%p\x'"#));
        let unit = render(EnvFormat::Systemd, &s);
        assert!(unit.contains("Environment=\"LD_PRELOAD=/opt/lib/librprof.so\"\n"));
        assert!(unit.contains(r#"Environment="RPROF_OUTPUT=/tmp/it's \"$HOME\" 100%%p\\x""#));
        let docker = render(EnvFormat::Docker, &s);
        assert!(
            docker.contains("ENV LD_PRELOAD=\"/opt/lib/librprof.so${LD_PRELOAD:+:$LD_PRELOAD}\"\n")
        );
        assert!(docker.contains(r#"ENV RPROF_OUTPUT="/tmp/it's \"\$HOME\" 100%p\\x""#));
    }

    #[test]
    fn signals_and_modes_are_checked() {
        assert_eq!(signal("usr2").unwrap(), "SIGUSR2");
        assert_eq!(signal("SIGUSR1").unwrap(), "SIGUSR1");
        assert_eq!(signal("rtmin+3").unwrap(), "SIGRTMIN+3");
        assert!(signal("SIGRTMIN+1").is_err());
        assert!(signal("SIGKILL").is_err());
        assert!(signal("12").is_err());
        assert!(check_modes("cpu, memory").is_ok());
        assert!(check_modes("cpu,disk").is_err());
        assert!(check_modes(",").is_err());
    }

    #[test]
    fn lists_keep_what_they_held() {
        let p = Path::new("/a");
        assert_eq!(prepended(p, None), "/a");
        assert_eq!(prepended(p, Some("".into())), "/a");
        assert_eq!(prepended(p, Some("/b:/c".into())), "/a:/b:/c");
    }
}
