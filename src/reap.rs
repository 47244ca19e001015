//! Reaping and reaching every process left: `waitpid(-1, WNOHANG)` until
//! nothing is left, and signalling everything berth is responsible for
//! (the whole PID namespace as PID 1; its descendants as a subreaper).
//! Which exit code follows is error.rs's business.

use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::error::AppEnd;
use crate::sys;

/// One terminated child.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reaped {
    pub pid: Pid,
    pub end: AppEnd,
}

/// The termination a wait reported, if it was one.
fn terminated(status: WaitStatus) -> Option<Reaped> {
    match status {
        WaitStatus::Exited(pid, code) => Some(Reaped {
            pid,
            end: AppEnd::Exited(code),
        }),
        WaitStatus::Signaled(pid, sig, _) => Some(Reaped {
            pid,
            end: AppEnd::Signaled(sig as i32),
        }),
        // Stopped/continued are not reported without WUNTRACED.
        _ => None,
    }
}

/// Reaps every terminated child, calling `on_child` for each. Returns true
/// when berth has no child left at all (ECHILD): nothing remains to wait for,
/// since every orphan is re-parented to berth (PID 1 or subreaper).
pub fn reap_all(mut on_child: impl FnMut(Reaped)) -> bool {
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => return false,
            // Anything that is not a termination: keep going.
            Ok(status) => terminated(status).into_iter().for_each(&mut on_child),
            Err(Errno::EINTR) => continue,
            Err(Errno::ECHILD) => return true,
            Err(_) => return false,
        }
    }
}

/// Reaps `pid` alone if it has terminated. A wait for one pid costs the
/// kernel O(1); `waitpid(-1)` walks every child berth has, live or not.
/// A pid that is not (or no longer) berth's child is ignored.
pub fn reap_pid(pid: i32, on_child: impl FnMut(Reaped)) {
    if pid <= 0 {
        return;
    }
    loop {
        match waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
            Ok(status) => return terminated(status).into_iter().for_each(on_child),
            Err(Errno::EINTR) => continue,
            Err(_) => return,
        }
    }
}

/// Waits for `pid`, a child berth has just SIGKILLed (an abandoned probe),
/// so it does not outlive berth as a zombie; blocks only as long as the
/// kernel takes to end it.
pub fn reap_killed(pid: Pid) {
    while let Err(Errno::EINTR) = waitpid(pid, None) {}
}

/// A scan this slow means thousands of live children: it gets paced.
const SLOW_SCAN: Duration = Duration::from_micros(100);
/// The longest a paced scan waits, so a zombie whose SIGCHLD was merged
/// into another's still goes within about a millisecond.
const MAX_SCAN_DELAY: Duration = Duration::from_micros(500);

/// Paces the full scans (`reap_all`). SIGCHLD is not queued: children that
/// die while one is pending send nothing more, so only a walk of the whole
/// children list finds them. That walk holds the kernel's tasklist lock and
/// costs ~50 ns per *live* child; with 10,000 orphans dying at once, one
/// walk per SIGCHLD took a whole CPU and slowed the very exits it waited
/// for (zombie lag up to 80 ms, docs/benchmarks.md). So after a slow walk
/// the next one waits as long as that walk took (scans use at most half of
/// berth's time), while the children whose SIGCHLD berth did read are
/// reaped by pid at once (`reap_pid`). With a few children a walk takes a
/// microsecond or two and is never delayed.
#[derive(Debug, Default)]
pub struct ScanPacer {
    not_before: Option<Instant>,
    wanted: bool,
}

impl ScanPacer {
    /// A scan is wanted; true when it may run now.
    pub fn want(&mut self, now: Instant) -> bool {
        self.wanted = true;
        self.not_before.is_none_or(|t| now >= t)
    }

    /// Records a scan that ran from `start` to `end`.
    pub fn ran(&mut self, start: Instant, end: Instant) {
        self.wanted = false;
        let took = end.saturating_duration_since(start);
        self.not_before = (took >= SLOW_SCAN).then(|| end + took.min(MAX_SCAN_DELAY));
    }

    /// When a delayed scan is due; None when none waits.
    pub fn deadline(&self) -> Option<Instant> {
        if self.wanted {
            self.not_before
        } else {
            None
        }
    }
}

/// Sends `sig` to the app: to its group unless `--no-group`, and to its pid
/// too when it has left that group (setpgid/setsid), so it always arrives.
pub fn signal_app(app: Pid, sig: i32, whole_group: bool) {
    if whole_group {
        let group_ok = sys::kill_raw(-app.as_raw(), sig).is_ok();
        if group_ok && sys::getpgid(app) == Some(app) {
            return;
        }
    }
    let _ = sys::kill_raw(app.as_raw(), sig);
}

/// Sends `sig` to every process berth is responsible for. As PID 1 that is
/// `kill(-1)`: every process of the namespace but berth. Not PID 1 it must
/// never be `kill(-1)` (that would be the whole host): berth walks /proc for
/// its descendants, repeating while new ones appear (a fork storm), bounded.
/// Returns how many processes were signalled (an estimate as PID 1).
pub fn signal_everyone(sig: i32, own_pid: Pid) -> usize {
    if own_pid.as_raw() == 1 {
        return usize::from(sys::kill_raw(-1, sig).is_ok());
    }
    let mut total = 0;
    let mut signalled: Vec<i32> = Vec::new();
    for _ in 0..16 {
        let found = descendants(own_pid.as_raw());
        let new: Vec<i32> = found
            .into_iter()
            .filter(|p| !signalled.contains(p))
            .collect();
        if new.is_empty() {
            break;
        }
        for &pid in &new {
            if sys::kill_raw(pid, sig).is_ok() {
                total += 1;
            }
        }
        signalled.extend(new);
    }
    total
}

/// Every descendant of `root` from /proc (pid, ppid from /proc/PID/stat).
pub fn descendants(root: i32) -> Vec<i32> {
    let mut parent_of: Vec<(i32, i32)> = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read(format!("/proc/{pid}/stat")) else {
            continue;
        };
        if let Some(ppid) = ppid_from_stat(&stat) {
            parent_of.push((pid, ppid));
        }
    }
    let mut out = Vec::new();
    let mut frontier = vec![root];
    while let Some(p) = frontier.pop() {
        for &(child, parent) in &parent_of {
            if parent == p && child != root && !out.contains(&child) {
                out.push(child);
                frontier.push(child);
            }
        }
    }
    out
}

/// The ppid field of /proc/PID/stat: after the last ')' (comm may contain
/// spaces and parentheses), fields are `state ppid ...`.
pub fn ppid_from_stat(stat: &[u8]) -> Option<i32> {
    let close = stat.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(&stat[close + 1..]).ok()?;
    let mut fields = rest.split_ascii_whitespace();
    fields.next()?; // state
    fields.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_scans_are_never_delayed_and_slow_ones_wait_their_own_length() {
        let t0 = Instant::now();
        let mut p = ScanPacer::default();
        assert!(p.want(t0));
        p.ran(t0, t0 + Duration::from_micros(2));
        assert!(p.want(t0 + Duration::from_micros(3)));
        assert_eq!(p.deadline(), None);

        p.ran(t0, t0 + Duration::from_micros(300));
        assert_eq!(p.deadline(), None, "nothing is wanted yet");
        assert!(!p.want(t0 + Duration::from_micros(400)));
        assert_eq!(p.deadline(), Some(t0 + Duration::from_micros(600)));
        assert!(p.want(t0 + Duration::from_micros(600)));

        // A scan that was preempted for 50 ms delays the next by 0.5 ms only.
        p.ran(t0, t0 + Duration::from_millis(50));
        assert!(!p.want(t0 + Duration::from_millis(50)));
        assert_eq!(
            p.deadline(),
            Some(t0 + Duration::from_millis(50) + MAX_SCAN_DELAY)
        );
    }

    #[test]
    fn reap_pid_reaps_that_child_only() {
        let mut a = std::process::Command::new("true").spawn().unwrap();
        let mut b = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let (pa, pb) = (a.id() as i32, b.id() as i32);
        // Until `true` is a zombie, nothing is reaped.
        let mut got = Vec::new();
        for _ in 0..500 {
            reap_pid(pa, |r| got.push(r));
            if !got.is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        assert_eq!(
            got,
            [Reaped {
                pid: Pid::from_raw(pa),
                end: AppEnd::Exited(0)
            }]
        );
        got.clear();
        reap_pid(pb, |r| got.push(r));
        reap_pid(1, |r| got.push(r)); // not a child
        reap_pid(-1, |r| got.push(r)); // never a wildcard
        assert!(got.is_empty(), "{got:?}");
        b.kill().unwrap();
        b.wait().unwrap();
        let _ = a.try_wait();
    }

    #[test]
    fn ppid_parsed_past_a_hostile_comm() {
        assert_eq!(ppid_from_stat(b"42 (a) b) (c) S 7 42 42 0"), Some(7));
        assert_eq!(ppid_from_stat(b"1 (init) S 0 1 1"), Some(0));
        assert_eq!(ppid_from_stat(b"garbage"), None);
        assert_eq!(ppid_from_stat(b"1 (x)"), None);
    }

    #[test]
    fn descendants_of_a_fresh_child_are_found() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let me = std::process::id() as i32;
        let d = descendants(me);
        assert!(d.contains(&(child.id() as i32)), "{d:?}");
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
