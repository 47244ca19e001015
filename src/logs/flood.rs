//! Floods: an app that writes faster than a 64 KiB pipe carries. Then the
//! cost of the log path is context switches on full pipes, not copying
//! (docs/benchmarks.md, the tuning log's issue-19 rows), so berth grows its pipes while the
//! flood lasts and gives everything back one second after it ends:
//!
//! - berth's stdout grows to `--log-pipe-size` (512 KiB) the first time a
//!   write finds it full (logs/out.rs);
//! - each app pipe, and berth's read buffer, grow to a quarter of that
//!   (128 KiB) when a read fills the buffer: the app's bytes are about half
//!   of what berth writes, and smaller reads stay in the CPU's cache.
//!
//! Why give it back: a pipe's pages are charged to the container's memory
//! cgroup while they hold data, and its size counts against the user's
//! pipe quota (`/proc/sys/fs/pipe-user-pages-soft`, 64 MiB by default),
//! which every container running as the same uid shares; above it, new
//! pipes of unprivileged processes get 8 KiB. A quiet app never costs its
//! node more than the default 64 KiB pipes, and berth's buffers shrink
//! back, so a flood leaves no resident memory behind.

use std::time::{Duration, Instant};

/// How long no pipe may be full before the flood is over.
pub const CALM_AFTER: Duration = Duration::from_secs(1);
/// A pipe's default capacity, and berth's read buffer outside a flood.
pub const BASE_PIPE: usize = 64 * 1024;
/// A pipe holds its capacity in pages, and a write fills the last page of
/// the one before only as far as it goes: an app writing 65,500-byte blocks
/// fills all 16 pages of a default pipe 36 bytes short of 64 KiB (its next
/// write blocks after 36 bytes). So a read that returns more than the
/// buffer less a page found every page in use: the pipe was full (issue 26).
pub const PIPE_PAGE: usize = 4096;

pub struct Flood {
    /// `--log-pipe-size` (0: berth never grows a pipe).
    out_pipe: usize,
    /// The last time a pipe was full; None while no give-back is timed.
    last_full: Option<Instant>,
    /// Something grew and is not given back yet.
    owed: bool,
}

impl Flood {
    pub fn new(out_pipe: usize) -> Flood {
        Flood {
            out_pipe,
            last_full: None,
            owed: false,
        }
    }

    /// What an app pipe and the read buffer grow to (no growth at all when
    /// it is not above a default pipe).
    pub fn app_pipe(&self) -> usize {
        (self.out_pipe / 4).max(BASE_PIPE)
    }

    /// A pipe was found full (or something grew): the flood goes on.
    pub fn full(&mut self, now: Instant) {
        self.last_full = Some(now);
        self.owed = true;
    }

    /// Output drained: if a give-back is owed but was put off (see
    /// `put_off`), time it again from now.
    pub fn drained(&mut self, now: Instant) {
        if self.owed && self.last_full.is_none() {
            self.last_full = Some(now);
        }
    }

    /// When the flood counts as over; None when nothing is owed.
    pub fn deadline(&self) -> Option<Instant> {
        self.last_full.filter(|_| self.owed).map(|t| t + CALM_AFTER)
    }

    /// True when the give-back is due now.
    pub fn due(&self, now: Instant) -> bool {
        self.deadline().is_some_and(|d| now >= d)
    }

    /// Output is still pending (stdout's reader is slow): no timer until it
    /// drains, so a stalled reader costs no periodic wake-up.
    pub fn put_off(&mut self) {
        self.last_full = None;
    }

    /// The give-back happened: `all` when everything was returned, else it
    /// is tried again a second later (a pipe that held more than its old
    /// size cannot shrink yet).
    pub fn given_back(&mut self, all: bool, now: Instant) {
        if all {
            self.owed = false;
            self.last_full = None;
        } else {
            self.last_full = Some(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_pipes_grow_to_a_quarter_and_never_below_a_default_pipe() {
        assert_eq!(Flood::new(512 * 1024).app_pipe(), 128 * 1024);
        assert_eq!(Flood::new(1024 * 1024).app_pipe(), 256 * 1024);
        assert_eq!(Flood::new(0).app_pipe(), BASE_PIPE);
        assert_eq!(Flood::new(64 * 1024).app_pipe(), BASE_PIPE);
    }

    #[test]
    fn the_give_back_is_due_a_second_after_the_last_full_pipe() {
        let t = Instant::now();
        let mut f = Flood::new(512 * 1024);
        assert_eq!(f.deadline(), None, "nothing owed before a flood");
        f.full(t);
        f.full(t + Duration::from_millis(500));
        assert!(!f.due(t + Duration::from_millis(1400)));
        assert!(f.due(t + Duration::from_millis(1500)));
        f.given_back(true, t + Duration::from_millis(1500));
        assert_eq!(f.deadline(), None, "no timer once all is given back");
    }

    #[test]
    fn a_put_off_give_back_is_timed_again_when_output_drains() {
        let t = Instant::now();
        let mut f = Flood::new(512 * 1024);
        f.full(t);
        f.put_off();
        assert_eq!(f.deadline(), None, "a stalled reader costs no wake-up");
        f.drained(t + Duration::from_secs(5));
        assert_eq!(f.deadline(), Some(t + Duration::from_secs(6)));
    }

    #[test]
    fn a_partial_give_back_is_tried_again_a_second_later() {
        let t = Instant::now();
        let mut f = Flood::new(512 * 1024);
        f.full(t);
        f.given_back(false, t + CALM_AFTER);
        assert_eq!(f.deadline(), Some(t + 2 * CALM_AFTER));
    }
}
