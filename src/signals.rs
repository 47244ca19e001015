//! Which signal does what: the `--map-signal` / `--stop-signal` table and the
//! classification of every signal berth receives into forward, shutdown,
//! interrupt or reap. Sending and reaping are left to event.rs and reap.rs.

/// Highest Linux signal number (SIGRTMAX on x86-64).
pub const MAX_SIGNAL: usize = 64;

/// `FROM → TO` for every signal, indexed by number, as dumb-init's
/// `--rewrite` does: a fixed array, no allocation on the hot path. 0 = drop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignalMap {
    to: [u8; MAX_SIGNAL + 1],
}

impl Default for SignalMap {
    fn default() -> Self {
        let mut to = [0u8; MAX_SIGNAL + 1];
        for (i, t) in to.iter_mut().enumerate() {
            *t = i as u8;
        }
        SignalMap { to }
    }
}

impl SignalMap {
    /// Applies `--map-signal` pairs (later pairs win).
    pub fn with(pairs: &[(i32, i32)]) -> SignalMap {
        let mut m = SignalMap::default();
        for &(from, to) in pairs {
            if (1..=MAX_SIGNAL as i32).contains(&from) && (0..=MAX_SIGNAL as i32).contains(&to) {
                m.to[from as usize] = to as u8;
            }
        }
        m
    }

    /// What `sig` is forwarded as; None when dropped.
    pub fn map(&self, sig: i32) -> Option<i32> {
        match self.to.get(sig as usize) {
            Some(0) | None => None,
            Some(&t) => Some(t as i32),
        }
    }
}

/// What a received signal means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// SIGCHLD: reap.
    Reap,
    /// SIGTERM: graceful shutdown (drain, then the stop signal).
    Terminate,
    /// SIGINT: forwarded (mapped) and starts the grace period, no drain.
    Interrupt,
    /// Anything else: forward, mapped.
    Forward,
    /// A SIGPIPE berth raised itself by writing to a closed stdout: not the
    /// app's business (a `kill -PIPE` from outside is forwarded).
    OwnPipe,
}

/// Classifies signal `sig` sent by `sender_pid` to berth (`own_pid`).
pub fn classify(sig: i32, sender_pid: u32, own_pid: u32) -> Class {
    match sig {
        libc::SIGCHLD => Class::Reap,
        libc::SIGTERM => Class::Terminate,
        libc::SIGINT => Class::Interrupt,
        libc::SIGPIPE if sender_pid == own_pid => Class::OwnPipe,
        _ => Class::Forward,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_map_is_identity_for_every_signal() {
        let m = SignalMap::default();
        for s in 1..=64 {
            assert_eq!(m.map(s), Some(s));
        }
    }

    #[test]
    fn map_rewrites_and_drops() {
        let m = SignalMap::with(&[(libc::SIGHUP, libc::SIGUSR1), (libc::SIGUSR2, 0)]);
        assert_eq!(m.map(libc::SIGHUP), Some(libc::SIGUSR1));
        assert_eq!(m.map(libc::SIGUSR2), None);
        assert_eq!(m.map(libc::SIGTERM), Some(libc::SIGTERM));
    }

    #[test]
    fn out_of_range_is_ignored_not_panicking() {
        let m = SignalMap::with(&[(0, 1), (65, 1), (1, 99)]);
        assert_eq!(m, SignalMap::default());
        assert_eq!(m.map(1000), None);
        assert_eq!(m.map(-1), None);
    }

    #[test]
    fn classify_every_signal() {
        for s in 1..=64 {
            let c = classify(s, 5, 1);
            let want = match s {
                libc::SIGCHLD => Class::Reap,
                libc::SIGTERM => Class::Terminate,
                libc::SIGINT => Class::Interrupt,
                _ => Class::Forward,
            };
            assert_eq!(c, want, "signal {s}");
        }
    }

    #[test]
    fn own_sigpipe_is_not_forwarded_but_a_sent_one_is() {
        assert_eq!(classify(libc::SIGPIPE, 1, 1), Class::OwnPipe);
        assert_eq!(classify(libc::SIGPIPE, 0, 1), Class::Forward);
    }
}
