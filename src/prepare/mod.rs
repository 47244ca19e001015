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

use std::ffi::OsString;

use crate::cgroup::Limits;
use crate::config::Config;
use crate::error::Error;

/// What the app will be started with, and what berth did to get there
/// (listed in the `start` event: names and paths, never a secret's value).
#[derive(Debug, Default)]
pub struct Prepared {
    /// The app's environment before spawn.rs applies its own rules
    /// (`BERTH_*` removed, HOME, LISTEN_*).
    pub env: Vec<(OsString, OsString)>,
    /// Step 2: what `--runtime-limits` set, kept, or could not size.
    pub runtime_limits: runtime_limits::Applied,
}

/// Runs the prepare steps in SPEC order. `limits` are the cgroup's, read
/// by the caller only when a step needs them (start-up time is a figure).
pub fn prepare(
    cfg: &Config,
    env: &[(OsString, OsString)],
    limits: Option<&Limits>,
) -> Result<Prepared, Error> {
    let mut env = env.to_vec();
    let runtime_limits = match (&cfg.runtime_limits, limits) {
        (Some(r), Some(l)) => runtime_limits::apply(r, l, crate::sys::cpus_allowed(), &mut env),
        _ => runtime_limits::Applied::default(),
    };
    Ok(Prepared {
        env,
        runtime_limits,
    })
}
