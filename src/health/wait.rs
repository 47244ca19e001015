//! Waiting for dependencies (`--wait-for`, SPEC "Before the app starts"
//! step 4, and `berth probe --wait`): every target probed at the same time,
//! each retried until it has answered healthy once, within one overall
//! deadline. The policy lives here; the loop in event.rs carries it out
//! (it forks the probes through [`ProbeChild`], reaps them and wakes at
//! [`Waiter::deadline`]), so berth stays a full PID 1 while it waits.

use std::time::{Duration, Instant};

use nix::unistd::Pid;

use super::child::ProbeChild;
use super::probe::{probe, ProbeOptions};
use super::target::Target;
use crate::error::AppEnd;

/// How long one attempt may take (a probe's default `--timeout`), cut to
/// what is left of the wait.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);

/// While a target still fails, a `wait` event at most this often.
pub const REPORT_EVERY: Duration = Duration::from_secs(5);

/// The pause after the `failures`-th failed attempt before the next one:
/// 100 ms for the first two seconds or so, then 200 ms. A dependency that
/// turns healthy is seen within about 200 ms (SPEC: the app starts within
/// 250 ms of it), where wait-for-it and docker-compose-wait poll once a
/// second; 5 to 10 probes a second of one target cost a fork and a
/// connection attempt each (and a lookup, for a name in DNS).
pub fn retry_spacing(failures: u32) -> Duration {
    if failures <= 20 {
        Duration::from_millis(100)
    } else {
        Duration::from_millis(200)
    }
}

/// `berth probe --wait`: probes until healthy or until `wait` has passed,
/// spaced as [`retry_spacing`]; each attempt within `options.timeout` and
/// what is left of the wait. Err is the last attempt's reason.
pub fn probe_until_healthy(
    target: &Target,
    options: &ProbeOptions,
    wait: Duration,
) -> Result<(), String> {
    let until = Instant::now() + wait;
    let mut failures = 0;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        let attempt = ProbeOptions {
            timeout: options.timeout.min(left).max(Duration::from_millis(1)),
            ..options.clone()
        };
        let Err(reason) = probe(target, &attempt) else {
            return Ok(());
        };
        failures += 1;
        let pause = retry_spacing(failures);
        if Instant::now() + pause >= until {
            return Err(reason);
        }
        std::thread::sleep(pause);
    }
}

/// One dependency as the user named it.
pub struct Dependency {
    /// As typed, for messages.
    pub spec: String,
    pub target: Target,
}

struct Tracked {
    dep: Dependency,
    healthy: bool,
    failures: u32,
    running: Option<ProbeChild>,
    next_try: Instant,
    last_reason: Option<String>,
}

/// What a finished probe or the passing time changed, for the log.
#[derive(Debug, PartialEq, Eq)]
pub enum News {
    /// A target answered healthy for the first time.
    Healthy { target: String, after: Duration },
    /// A target failed for a reason it had not failed for just before.
    Failing { target: String, reason: String },
    /// Every REPORT_EVERY while some still fail: each with its last reason.
    StillWaiting { failing: Vec<(String, String)> },
}

pub struct Waiter {
    deps: Vec<Tracked>,
    started: Instant,
    until: Instant,
    next_report: Instant,
}

impl Waiter {
    pub fn new(deps: Vec<Dependency>, timeout: Duration, now: Instant) -> Waiter {
        Waiter {
            deps: deps
                .into_iter()
                .map(|dep| Tracked {
                    dep,
                    healthy: false,
                    failures: 0,
                    running: None,
                    next_try: now,
                    last_reason: None,
                })
                .collect(),
            started: now,
            until: now + timeout,
            next_report: now + REPORT_EVERY,
        }
    }

    /// Every dependency has answered healthy once.
    pub fn done(&self) -> bool {
        self.deps.iter().all(|d| d.healthy)
    }

    pub fn timed_out(&self, now: Instant) -> bool {
        now >= self.until
    }

    /// When the loop must wake: a probe to start or to kill, a report, or
    /// the end of the wait.
    pub fn deadline(&self) -> Option<Instant> {
        if self.done() {
            return None;
        }
        let per_dep = self
            .deps
            .iter()
            .filter(|d| !d.healthy)
            .map(|d| match &d.running {
                Some(child) => child.kill_at(),
                None => d.next_try,
            });
        per_dep.chain([self.until, self.next_report]).min()
    }

    /// Starts the probes that are due, kills those that overran, and says
    /// what is still failing every REPORT_EVERY.
    pub fn on_time(&mut self, now: Instant) -> Vec<News> {
        let mut news = Vec::new();
        if self.done() || self.timed_out(now) {
            return news;
        }
        let left = self.until.saturating_duration_since(now);
        for d in self.deps.iter_mut().filter(|d| !d.healthy) {
            if let Some(child) = &d.running {
                child.kill_if_overdue(now);
                continue;
            }
            if now < d.next_try {
                continue;
            }
            let opts = ProbeOptions {
                timeout: ATTEMPT_TIMEOUT.min(left).max(Duration::from_millis(1)),
                ..ProbeOptions::default()
            };
            match ProbeChild::start(&d.dep.target, opts, now) {
                Ok(child) => d.running = Some(child),
                Err(e) => {
                    // No fork (nproc limit?): a failed attempt, tried again.
                    d.failures += 1;
                    d.next_try = now + retry_spacing(d.failures);
                    let reason = format!("cannot start a probe: {}", e.desc());
                    if d.last_reason.as_deref() != Some(reason.as_str()) {
                        news.push(News::Failing {
                            target: d.dep.spec.clone(),
                            reason: reason.clone(),
                        });
                    }
                    d.last_reason = Some(reason);
                }
            }
        }
        if now >= self.next_report {
            self.next_report = now + REPORT_EVERY;
            news.push(News::StillWaiting {
                failing: self.failing(),
            });
        }
        news
    }

    /// Whether `pid` is one of this waiter's probes.
    pub fn owns(&self, pid: Pid) -> bool {
        self.deps
            .iter()
            .any(|d| d.running.as_ref().is_some_and(|c| c.pid == pid))
    }

    /// A probe child was reaped with `end`.
    pub fn on_probe_exit(&mut self, pid: Pid, end: AppEnd, now: Instant) -> Option<News> {
        let d = self
            .deps
            .iter_mut()
            .find(|d| d.running.as_ref().is_some_and(|c| c.pid == pid))?;
        let child = d.running.take()?;
        match child.outcome(end) {
            Ok(()) => {
                d.healthy = true;
                Some(News::Healthy {
                    target: d.dep.spec.clone(),
                    after: now.saturating_duration_since(self.started),
                })
            }
            Err(reason) => {
                d.failures += 1;
                d.next_try = now + retry_spacing(d.failures);
                let changed = d.last_reason.as_deref() != Some(reason.as_str());
                d.last_reason = Some(reason.clone());
                changed.then(|| News::Failing {
                    target: d.dep.spec.clone(),
                    reason,
                })
            }
        }
    }

    /// The targets not yet healthy, each with its last reason.
    pub fn failing(&self) -> Vec<(String, String)> {
        self.deps
            .iter()
            .filter(|d| !d.healthy)
            .map(|d| {
                let reason = match (&d.last_reason, &d.running) {
                    (Some(r), _) => r.clone(),
                    (None, Some(_)) => "no answer yet".to_string(),
                    (None, None) => "not tried yet".to_string(),
                };
                (d.dep.spec.clone(), reason)
            })
            .collect()
    }

    /// The wait is over (given up, or berth was told to stop): every probe
    /// still running is killed; returns their pids, for the caller to reap.
    pub fn abandon(&mut self) -> Vec<Pid> {
        let mut killed = Vec::new();
        for d in &mut self.deps {
            if let Some(child) = d.running.take() {
                child.kill();
                killed.push(child.pid);
            }
        }
        killed
    }

    /// How long the wait has lasted.
    pub fn elapsed(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.started)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::target::parse_target;

    fn dep(spec: &str) -> Dependency {
        Dependency {
            spec: spec.to_string(),
            target: parse_target(spec).unwrap(),
        }
    }

    #[test]
    fn retries_are_100ms_apart_at_first_and_never_more_than_a_second() {
        assert_eq!(retry_spacing(1), Duration::from_millis(100));
        assert_eq!(retry_spacing(20), Duration::from_millis(100));
        assert!((1..10_000).all(|n| retry_spacing(n) <= Duration::from_secs(1)));
        // SPEC: the app starts within 250 ms of its last dependency turning
        // healthy; the pause between two tries bounds that.
        assert!((1..10_000).all(|n| retry_spacing(n) <= Duration::from_millis(200)));
    }

    #[test]
    fn a_new_waiter_probes_every_target_at_once() {
        let now = Instant::now();
        let w = Waiter::new(
            vec![dep("tcp://127.0.0.1:1"), dep("tcp://127.0.0.1:2")],
            Duration::from_secs(60),
            now,
        );
        assert!(!w.done());
        assert_eq!(w.deadline(), Some(now), "both are due at once");
        let failing = w.failing();
        assert_eq!(failing.len(), 2);
        assert!(failing.iter().all(|(_, r)| r == "not tried yet"));
    }

    #[test]
    fn with_nothing_to_wait_for_the_wait_is_done_and_sleeps() {
        let w = Waiter::new(Vec::new(), Duration::from_secs(60), Instant::now());
        assert!(w.done());
        assert_eq!(w.deadline(), None);
    }

    #[test]
    fn the_wait_ends_at_its_timeout() {
        let now = Instant::now();
        let w = Waiter::new(vec![dep("tcp://127.0.0.1:1")], Duration::from_secs(2), now);
        assert!(!w.timed_out(now + Duration::from_millis(1999)));
        assert!(w.timed_out(now + Duration::from_secs(2)));
    }
}
