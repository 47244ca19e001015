//! Supervised health (`--health`): when to probe, and what the results mean,
//! with Docker's HEALTHCHECK semantics (interval, timeout, retries, start
//! period, start interval).
//!
//! Each probe runs in a forked child (health/child.rs). Why a child rather
//! than non-blocking sockets in the loop: the probe code stays one simple
//! blocking function shared with `berth probe` (a DNS lookup included), and
//! a probe can never stall signal handling or log forwarding, whatever the
//! server does. A fork every interval (10 s by default) costs nothing that
//! matters.

use std::time::{Duration, Instant};

use nix::unistd::Pid;

use crate::config::HealthConfig;
use crate::error::AppEnd;
use crate::health::child::ProbeChild;
use crate::health::probe::ProbeOptions;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Starting,
    Healthy,
    Unhealthy,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::Healthy => "healthy",
            State::Unhealthy => "unhealthy",
        }
    }
}

/// What a finished probe changed.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Unchanged,
    Changed { state: &'static str, detail: String },
}

pub struct Monitor {
    cfg: HealthConfig,
    started: Instant,
    state: State,
    failures: u32,
    passed_once: bool,
    next_probe: Instant,
    running: Option<ProbeChild>,
}

impl Monitor {
    pub fn new(cfg: HealthConfig, started: Instant) -> Monitor {
        let first = started + first_interval(&cfg);
        Monitor {
            cfg,
            started,
            state: State::Starting,
            failures: 0,
            passed_once: false,
            next_probe: first,
            running: None,
        }
    }

    pub fn state_name(&self) -> &'static str {
        self.state.name()
    }

    pub fn passed_once(&self) -> bool {
        self.passed_once
    }

    pub fn probe_pid(&self) -> Option<Pid> {
        self.running.as_ref().map(|r| r.pid)
    }

    /// When the loop must wake for health: the running probe's kill
    /// deadline, else the next probe.
    pub fn deadline(&self) -> Option<Instant> {
        match &self.running {
            Some(r) => Some(r.kill_at()),
            None => Some(self.next_probe),
        }
    }

    fn in_start_period(&self, now: Instant) -> bool {
        !self.passed_once && now < self.started + self.cfg.start_period
    }

    /// Starts a probe when one is due; kills one that overran.
    pub fn on_time(&mut self, now: Instant) {
        if let Some(r) = &self.running {
            r.kill_if_overdue(now);
            return;
        }
        if now < self.next_probe {
            return;
        }
        let opts = ProbeOptions {
            timeout: self.cfg.timeout,
            headers: Vec::new(),
            expect_status: Vec::new(),
        };
        match ProbeChild::start(&self.cfg.target, opts, now) {
            Ok(child) => self.running = Some(child),
            // Could not fork (nproc limit?): count it as a failed probe later.
            Err(_) => self.next_probe = now + self.cfg.interval,
        }
    }

    /// The probe child ended; updates the state.
    pub fn on_probe_exit(&mut self, end: AppEnd, now: Instant) -> Verdict {
        let Some(r) = self.running.take() else {
            return Verdict::Unchanged;
        };
        match r.outcome(end) {
            Ok(()) => self.record(true, String::new(), now),
            Err(reason) => self.record(false, reason, now),
        }
    }

    /// Docker's rules: a success makes the app healthy (and ends the start
    /// period); failures during the start period do not count; `retries`
    /// consecutive failures make it unhealthy.
    fn record(&mut self, healthy: bool, reason: String, now: Instant) -> Verdict {
        let before = self.state;
        if healthy {
            self.passed_once = true;
            self.failures = 0;
            self.state = State::Healthy;
        } else if !self.in_start_period(now) {
            self.failures += 1;
            if self.failures >= self.cfg.retries {
                self.state = State::Unhealthy;
            }
        }
        self.next_probe = now
            + if self.in_start_period(now) {
                self.cfg.start_interval
            } else {
                self.cfg.interval
            };
        if self.state == before {
            return Verdict::Unchanged;
        }
        let detail = if healthy {
            "probe passed".to_string()
        } else {
            format!("{} consecutive failures, last: {reason}", self.failures)
        };
        Verdict::Changed {
            state: self.state.name(),
            detail,
        }
    }
}

/// Docker probes first after the start interval while in the start period,
/// else after the interval.
fn first_interval(cfg: &HealthConfig) -> Duration {
    if cfg.start_period.is_zero() {
        cfg.interval
    } else {
        cfg.start_interval
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::target::{Host, Target};

    fn cfg(retries: u32, start_period: Duration) -> HealthConfig {
        HealthConfig {
            target: Target::Tcp {
                host: Host::Ip("127.0.0.1".parse().unwrap()),
                port: 1,
            },
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(3),
            retries,
            start_period,
            start_interval: Duration::from_secs(1),
        }
    }

    #[test]
    fn first_probe_after_interval_or_start_interval() {
        let t = Instant::now();
        assert_eq!(
            Monitor::new(cfg(3, Duration::ZERO), t).deadline(),
            Some(t + Duration::from_secs(10))
        );
        assert_eq!(
            Monitor::new(cfg(3, Duration::from_secs(30)), t).deadline(),
            Some(t + Duration::from_secs(1))
        );
    }

    #[test]
    fn success_makes_healthy_once() {
        let t = Instant::now();
        let mut m = Monitor::new(cfg(3, Duration::ZERO), t);
        assert!(matches!(
            m.record(true, String::new(), t),
            Verdict::Changed {
                state: "healthy",
                ..
            }
        ));
        assert_eq!(m.record(true, String::new(), t), Verdict::Unchanged);
        assert!(m.passed_once());
    }

    #[test]
    fn retries_consecutive_failures_make_unhealthy_and_success_resets() {
        let t = Instant::now();
        let mut m = Monitor::new(cfg(3, Duration::ZERO), t);
        m.record(true, String::new(), t);
        assert_eq!(m.record(false, "x".into(), t), Verdict::Unchanged);
        assert_eq!(m.record(false, "x".into(), t), Verdict::Unchanged);
        assert!(
            matches!(m.record(false, "status 503".into(), t), Verdict::Changed { state: "unhealthy", ref detail } if detail.contains("status 503"))
        );
        assert!(matches!(
            m.record(true, String::new(), t),
            Verdict::Changed {
                state: "healthy",
                ..
            }
        ));
    }

    #[test]
    fn failures_in_start_period_do_not_count() {
        let t = Instant::now();
        let mut m = Monitor::new(cfg(1, Duration::from_secs(30)), t);
        assert_eq!(
            m.record(false, "x".into(), t + Duration::from_secs(5)),
            Verdict::Unchanged
        );
        assert_eq!(m.state_name(), "starting");
        // During the start period the next probe comes after the start interval.
        assert_eq!(m.deadline(), Some(t + Duration::from_secs(6)));
        assert!(matches!(
            m.record(false, "x".into(), t + Duration::from_secs(31)),
            Verdict::Changed {
                state: "unhealthy",
                ..
            }
        ));
    }

    #[test]
    fn first_success_ends_the_start_period() {
        let t = Instant::now();
        let mut m = Monitor::new(cfg(1, Duration::from_secs(30)), t);
        m.record(true, String::new(), t + Duration::from_secs(1));
        assert!(matches!(
            m.record(false, "x".into(), t + Duration::from_secs(2)),
            Verdict::Changed {
                state: "unhealthy",
                ..
            }
        ));
    }
}
