//! The shutdown state machine: Running → Draining → Stopping → AppGone →
//! Killing, as (input, now) → actions. Pure: it sends no signal and reads no
//! clock, so every path is unit-tested on a fake clock; event.rs carries out
//! the actions and arms the one timer at `deadline()`.

use std::time::{Duration, Instant};

/// Where the shutdown is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// The app runs; nobody asked it to stop.
    Running,
    /// SIGTERM received with `--drain`: not ready, still serving, until `until`.
    Draining { until: Instant },
    /// The stop signal (or INT) went to the app; SIGKILL for all at `kill_at`.
    Stopping { kill_at: Instant },
    /// The app has exited; its leftovers got SIGTERM; SIGKILL at `kill_at`.
    AppGone { kill_at: Instant },
    /// SIGKILL sent to everything: wait for the last process to be reaped.
    Killing,
}

/// Something that happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    Terminate,
    Interrupt,
    /// The health monitor said unhealthy and `--on-unhealthy exit` is set.
    Unhealthy,
    AppExited,
    /// The timer armed at `deadline()` fired.
    Deadline,
}

/// What event.rs must do now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send the stop signal to the app (group).
    SendStopSignal,
    /// Forward the received signal as mapped (SIGINT).
    ForwardReceived,
    /// SIGTERM to every process left (the app has gone).
    TermLeftovers,
    /// SIGKILL to every process left.
    KillAll,
}

/// Why berth stopped the app, for the `exit` event's `reason`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopCause {
    /// Nobody stopped it, or a signal did.
    None,
    /// `--on-unhealthy exit`.
    Unhealthy,
}

#[derive(Clone, Debug)]
pub struct Shutdown {
    phase: Phase,
    drain: Duration,
    grace: Duration,
    cause: StopCause,
    /// SIGKILL was sent while the app was still running.
    killed_app: bool,
}

/// At most two actions follow one input.
pub type Actions = ([Option<Action>; 2], usize);

fn none() -> Actions {
    ([None, None], 0)
}
fn one(a: Action) -> Actions {
    ([Some(a), None], 1)
}

impl Shutdown {
    pub fn new(drain: Duration, grace: Duration) -> Shutdown {
        Shutdown {
            phase: Phase::Running,
            drain,
            grace,
            cause: StopCause::None,
            killed_app: false,
        }
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Not ready: draining or past it.
    pub fn stopping(&self) -> bool {
        self.phase != Phase::Running
    }

    pub fn draining(&self) -> bool {
        matches!(self.phase, Phase::Draining { .. })
    }

    pub fn cause(&self) -> StopCause {
        self.cause
    }

    /// berth's SIGKILL reached the app while it ran (reason `grace_expired`).
    pub fn killed_app(&self) -> bool {
        self.killed_app
    }

    /// When the timer must fire next; None: no timer (berth sleeps).
    pub fn deadline(&self) -> Option<Instant> {
        match self.phase {
            Phase::Draining { until } => Some(until),
            Phase::Stopping { kill_at } | Phase::AppGone { kill_at } => Some(kill_at),
            Phase::Running | Phase::Killing => None,
        }
    }

    fn stop(&mut self, now: Instant, action: Action) -> Actions {
        self.phase = Phase::Stopping {
            kill_at: now + self.grace,
        };
        one(action)
    }

    pub fn on(&mut self, input: Input, now: Instant) -> Actions {
        use Input::*;
        match (self.phase, input) {
            (Phase::Running, Terminate) if !self.drain.is_zero() => {
                self.phase = Phase::Draining {
                    until: now + self.drain,
                };
                none()
            }
            (Phase::Running, Terminate) => self.stop(now, Action::SendStopSignal),
            (Phase::Running, Interrupt) => self.stop(now, Action::ForwardReceived),
            (Phase::Running, Unhealthy) | (Phase::Draining { .. }, Unhealthy) => {
                self.cause = StopCause::Unhealthy;
                self.stop(now, Action::SendStopSignal)
            }
            // A second SIGTERM or a SIGINT skips the drain wait.
            (Phase::Draining { .. }, Terminate | Interrupt) => {
                self.stop(now, Action::SendStopSignal)
            }
            (Phase::Draining { until }, Deadline) if now >= until => {
                self.stop(now, Action::SendStopSignal)
            }
            // Repeated signals while stopping reach the app again; the
            // deadline stays where the first stop signal put it.
            (Phase::Stopping { .. }, Terminate) => one(Action::SendStopSignal),
            (Phase::Stopping { .. }, Interrupt) => one(Action::ForwardReceived),
            (Phase::Stopping { kill_at }, Deadline) if now >= kill_at => {
                self.phase = Phase::Killing;
                self.killed_app = true;
                one(Action::KillAll)
            }
            // The grace period counts from the stop signal when there was
            // one, else from the app's own exit.
            (Phase::Stopping { kill_at }, AppExited) => {
                self.phase = Phase::AppGone { kill_at };
                one(Action::TermLeftovers)
            }
            (Phase::Running | Phase::Draining { .. }, AppExited) => {
                self.phase = Phase::AppGone {
                    kill_at: now + self.grace,
                };
                one(Action::TermLeftovers)
            }
            (Phase::AppGone { kill_at }, Deadline) if now >= kill_at => {
                self.phase = Phase::Killing;
                one(Action::KillAll)
            }
            _ => none(),
        }
    }
}

/// Iterates the actions of one `on` call.
pub fn actions(a: Actions) -> impl Iterator<Item = Action> {
    a.0.into_iter().take(a.1).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acts(a: Actions) -> Vec<Action> {
        actions(a).collect()
    }

    fn t0() -> Instant {
        Instant::now()
    }

    #[test]
    fn idle_has_no_deadline() {
        let s = Shutdown::new(Duration::ZERO, Duration::from_secs(8));
        assert_eq!(s.deadline(), None);
        assert!(!s.stopping());
    }

    #[test]
    fn term_without_drain_sends_stop_signal_and_arms_grace() {
        let now = t0();
        let mut s = Shutdown::new(Duration::ZERO, Duration::from_secs(2));
        assert_eq!(
            acts(s.on(Input::Terminate, now)),
            vec![Action::SendStopSignal]
        );
        assert_eq!(s.deadline(), Some(now + Duration::from_secs(2)));
    }

    #[test]
    fn grace_deadline_kills_everything_and_marks_the_app_killed() {
        let now = t0();
        let mut s = Shutdown::new(Duration::ZERO, Duration::from_secs(1));
        s.on(Input::Terminate, now);
        // Early timer wake-ups do nothing.
        assert!(acts(s.on(Input::Deadline, now)).is_empty());
        assert_eq!(
            acts(s.on(Input::Deadline, now + Duration::from_secs(1))),
            vec![Action::KillAll]
        );
        assert!(s.killed_app());
        assert_eq!(s.deadline(), None);
    }

    #[test]
    fn drain_waits_then_stops_and_grace_counts_from_the_stop_signal() {
        let now = t0();
        let mut s = Shutdown::new(Duration::from_secs(3), Duration::from_secs(2));
        assert!(acts(s.on(Input::Terminate, now)).is_empty());
        assert!(s.draining() && s.stopping());
        assert_eq!(s.deadline(), Some(now + Duration::from_secs(3)));
        let later = now + Duration::from_secs(3);
        assert_eq!(
            acts(s.on(Input::Deadline, later)),
            vec![Action::SendStopSignal]
        );
        assert_eq!(s.deadline(), Some(later + Duration::from_secs(2)));
    }

    #[test]
    fn second_term_or_int_skips_the_drain() {
        for second in [Input::Terminate, Input::Interrupt] {
            let now = t0();
            let mut s = Shutdown::new(Duration::from_secs(30), Duration::from_secs(2));
            s.on(Input::Terminate, now);
            let t = now + Duration::from_millis(10);
            assert_eq!(acts(s.on(second, t)), vec![Action::SendStopSignal]);
            assert_eq!(s.deadline(), Some(t + Duration::from_secs(2)));
        }
    }

    #[test]
    fn int_forwards_and_starts_grace_without_drain() {
        let now = t0();
        let mut s = Shutdown::new(Duration::from_secs(30), Duration::from_secs(2));
        assert_eq!(
            acts(s.on(Input::Interrupt, now)),
            vec![Action::ForwardReceived]
        );
        assert_eq!(s.deadline(), Some(now + Duration::from_secs(2)));
    }

    #[test]
    fn app_exit_during_stop_keeps_the_deadline_and_terms_leftovers() {
        let now = t0();
        let mut s = Shutdown::new(Duration::ZERO, Duration::from_secs(5));
        s.on(Input::Terminate, now);
        let t = now + Duration::from_secs(1);
        assert_eq!(acts(s.on(Input::AppExited, t)), vec![Action::TermLeftovers]);
        assert_eq!(s.deadline(), Some(now + Duration::from_secs(5)));
        assert_eq!(
            acts(s.on(Input::Deadline, now + Duration::from_secs(5))),
            vec![Action::KillAll]
        );
        assert!(!s.killed_app());
    }

    #[test]
    fn app_exit_on_its_own_counts_grace_from_the_exit() {
        let now = t0();
        let mut s = Shutdown::new(Duration::ZERO, Duration::from_secs(5));
        assert_eq!(
            acts(s.on(Input::AppExited, now)),
            vec![Action::TermLeftovers]
        );
        assert_eq!(s.deadline(), Some(now + Duration::from_secs(5)));
    }

    #[test]
    fn repeated_term_while_stopping_resends_without_moving_the_deadline() {
        let now = t0();
        let mut s = Shutdown::new(Duration::ZERO, Duration::from_secs(5));
        s.on(Input::Terminate, now);
        let t = now + Duration::from_secs(2);
        assert_eq!(
            acts(s.on(Input::Terminate, t)),
            vec![Action::SendStopSignal]
        );
        assert_eq!(s.deadline(), Some(now + Duration::from_secs(5)));
    }

    #[test]
    fn unhealthy_stops_gracefully_and_records_the_cause() {
        let now = t0();
        let mut s = Shutdown::new(Duration::from_secs(3), Duration::from_secs(2));
        assert_eq!(
            acts(s.on(Input::Unhealthy, now)),
            vec![Action::SendStopSignal]
        );
        assert_eq!(s.cause(), StopCause::Unhealthy);
    }

    #[test]
    fn nothing_happens_after_killing() {
        let now = t0();
        let mut s = Shutdown::new(Duration::ZERO, Duration::ZERO);
        s.on(Input::Terminate, now);
        s.on(Input::Deadline, now);
        for i in [
            Input::Terminate,
            Input::Interrupt,
            Input::Unhealthy,
            Input::Deadline,
            Input::AppExited,
        ] {
            assert!(acts(s.on(i, now)).is_empty());
        }
    }
}
