//! The prepare phase: the entrypoint script's jobs that shape what the app
//! is started with (SPEC "Before the app starts", steps 1 to 3), done
//! before berth waits for dependencies or starts anything:
//!
//! 1. `--env-from-file`: secrets read from files into the app's environment
//!    (read as root, before berth drops it);
//! 2. `--runtime-limits`: GOMEMLIMIT, GOMAXPROCS, Node's heap size and
//!    WEB_CONCURRENCY from the container's cgroup limits;
//! 3. `--template`: config files rendered from the app's environment as it
//!    is after steps 1 and 2.
//!
//! Each step is a module of its own with a pure core (text in, text out)
//! that unit and fuzz tests drive, and a thin part that touches files. A
//! failure is berth's 125 with one line naming what was wrong; the app is
//! never started half-prepared.

pub mod runtime_limits;
pub mod secrets;
pub mod template;

use std::ffi::OsString;
use std::fmt;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::cgroup::Limits;
use crate::config::Config;
use crate::error::Error;

/// What the app will be started with, and what berth did to get there.
#[derive(Default)]
pub struct Prepared {
    /// The app's environment before spawn.rs applies its own rules
    /// (`BERTH_*` removed, HOME, LISTEN_*). It holds the secrets.
    pub env: Vec<(OsString, OsString)>,
    pub report: Report,
    /// Step 2: what `--runtime-limits` set, kept, or could not size.
    pub runtime_limits: runtime_limits::Applied,
}

/// What the prepare steps did, listed in the `start` event: names and
/// paths, never a secret's value. Kept apart from `Prepared::env` so it
/// can outlive it (until the app has started) without the secrets.
#[derive(Debug, Default, Clone)]
pub struct Report {
    /// `--env-from-file`: the NAMEs set from files.
    pub env_from_files: Vec<String>,
    /// `--template`: the DSTs written.
    pub templates_written: Vec<PathBuf>,
}

/// The environment by names only: its values hold the secrets, and a
/// panic or a printed value must not show them.
impl fmt::Debug for Prepared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<_> = self.env.iter().map(|(k, _)| k).collect();
        f.debug_struct("Prepared")
            .field("env (names only)", &names)
            .field("report", &self.report)
            .finish()
    }
}

/// Runs the prepare steps in SPEC order. `limits` are the cgroup's, read
/// by the caller only when a step needs them (start-up time is a figure).
pub fn prepare(
    cfg: &Config,
    env: &[(OsString, OsString)],
    limits: Option<&Limits>,
) -> Result<Prepared, Error> {
    let mut p = Prepared {
        env: env.to_vec(),
        ..Prepared::default()
    };
    // 1. Secrets, read while berth is still root.
    p.report.env_from_files = secrets::apply(&cfg.env_from_file, &mut p.env)?;
    // 2. Runtime limits, from the cgroup limits the caller read.
    if let (Some(r), Some(l)) = (&cfg.runtime_limits, limits) {
        p.runtime_limits = runtime_limits::apply(r, l, crate::sys::cpus_allowed(), &mut p.env);
    }
    // 3. Templates, from the environment as steps 1 and 2 left it.
    p.report.templates_written = template::render_all(&cfg.templates, &p.env, app_owner(cfg))?;
    Ok(p)
}

/// Who owns what the app is given: its uid:gid (`--user`), else berth's.
fn app_owner(cfg: &Config) -> (u32, u32) {
    match &cfg.identity {
        Some(id) => (id.uid, id.gid),
        None => (
            nix::unistd::getuid().as_raw(),
            nix::unistd::getgid().as_raw(),
        ),
    }
}

/// Reads a file the steps take as input (a secret, a template): a
/// regular file only (opened non-blocking, so a FIFO cannot block PID 1,
/// then refused; a device would never end), and at most `max + 1` bytes,
/// so the caller sees "more than `max`" without reading a huge file whole.
/// The error is the reason alone; the caller names the option and file.
fn read_regular_file(path: &Path, max: usize) -> Result<Vec<u8>, String> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| io_reason(&e))?;
    let meta = f.metadata().map_err(|e| io_reason(&e))?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    let mut bytes = Vec::with_capacity((meta.len() as usize).min(max + 1));
    f.take(max as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| io_reason(&e))?;
    Ok(bytes)
}

/// An I/O error as the rest of berth says errnos (`Permission denied`),
/// without std's "(os error 13)".
fn io_reason(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => nix::errno::Errno::from_raw(n).desc().to_string(),
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_of_prepared_names_the_variables_not_their_values() {
        let p = Prepared {
            env: vec![("DB_PASSWORD".into(), "hunter2-unit".into())],
            report: Report {
                env_from_files: vec!["DB_PASSWORD".into()],
                templates_written: vec![],
            },
            ..Prepared::default()
        };
        let d = format!("{p:?}");
        assert!(d.contains("DB_PASSWORD") && !d.contains("hunter2"), "{d}");
    }
}
