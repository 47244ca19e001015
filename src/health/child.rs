//! One probe in a forked child, as the supervised checks (`--health`) and
//! the dependency wait (`--wait-for`) run them: the child executes the same
//! code as `berth probe` (name lookup included, which may block) and exits
//! 0 or 1, its one-line reason in a pipe. PID 1's loop never blocks on a
//! probe: it sees the child's exit at SIGCHLD and kills it at its deadline.

use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::unistd::Pid;

use super::probe::{probe, ProbeOptions};
use super::target::Target;
use crate::error::AppEnd;
use crate::sys;

/// Past the probe's own timeout, how long before berth kills the probe child.
const KILL_MARGIN: Duration = Duration::from_secs(1);

/// The longest reason read back from a child (a reason is one short line;
/// health/probe.rs bounds what it echoes from a peer).
const REASON_MAX: usize = 512;

pub struct ProbeChild {
    pub pid: Pid,
    kill_at: Instant,
    timeout: Duration,
    reason: Option<OwnedFd>,
}

impl ProbeChild {
    /// Forks a child that probes `target` once within `opts.timeout`.
    pub fn start(target: &Target, opts: ProbeOptions, now: Instant) -> Result<ProbeChild, Errno> {
        let timeout = opts.timeout;
        let target = target.clone();
        // Without a pipe the child still probes; only its reason is lost.
        let pipe = sys::pipe_above(3).ok();
        let write_fd = pipe.as_ref().map(|(_, w)| w.as_raw_fd());
        let pid = sys::fork_job(move || match probe(&target, &opts) {
            Ok(()) => 0,
            Err(reason) => {
                if let Some(fd) = write_fd {
                    let _ = sys::write(fd, reason.as_bytes());
                }
                1
            }
        })?;
        Ok(ProbeChild {
            pid,
            kill_at: now + timeout + KILL_MARGIN,
            timeout,
            reason: pipe.map(|(r, _w)| r),
        })
    }

    /// When berth kills a probe that has overrun its timeout.
    pub fn kill_at(&self) -> Instant {
        self.kill_at
    }

    pub fn kill_if_overdue(&self, now: Instant) {
        if now >= self.kill_at {
            self.kill();
        }
    }

    pub fn kill(&self) {
        let _ = sys::kill_raw(self.pid.as_raw(), libc::SIGKILL);
    }

    /// The probe's verdict once the child has been reaped with `end`.
    pub fn outcome(self, end: AppEnd) -> Result<(), String> {
        if end == AppEnd::Exited(0) {
            return Ok(());
        }
        let mut reason = String::new();
        if let Some(fd) = &self.reason {
            let mut buf = [0u8; REASON_MAX];
            if let Ok(n) = sys::read(fd.as_raw_fd(), &mut buf) {
                reason = String::from_utf8_lossy(buf.get(..n).unwrap_or_default()).into_owned();
            }
        }
        if reason.is_empty() {
            reason = match end {
                AppEnd::Signaled(9) => format!("timeout after {:?}", self.timeout),
                AppEnd::Signaled(s) => format!("probe killed by signal {s}"),
                AppEnd::Exited(c) => format!("probe exited {c}"),
            };
        }
        Err(reason)
    }
}
