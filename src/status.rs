//! `berth status`: the running berth answers on an abstract unix socket
//! named after its PID namespace (the inode of /proc/self/ns/pid) and pid,
//! so two containers sharing a network namespace (one Kubernetes pod) never
//! collide, and no file is written (read-only root file systems work).
//!
//! The server side lives in the event loop: accept, check the peer's
//! credentials (root or the app's uid), write one JSON line, close. It never
//! reads from the client, so a client that sends nothing or floods cannot
//! stall berth. The client side is the `berth status` command.

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
use std::time::Duration;

use nix::sys::socket::{getsockopt, sockopt};
use nix::unistd::Pid;

/// What berth knows about the app, as of now.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    pub pid: u32,
    /// How berth was started (persona.rs): `docker`, `podman`, `entrypoint`.
    pub init: &'static str,
    /// None while berth waits for dependencies (no app yet).
    pub app_pid: Option<u32>,
    pub app_uid: u32,
    pub uptime_s: f64,
    /// `none`, `starting`, `healthy`, `unhealthy`.
    pub health: &'static str,
    /// With `--health`: at least one probe has passed.
    pub passed_once: bool,
    /// Draining or stopping: no longer ready.
    pub draining: bool,
    pub running: bool,
    /// Waiting for `--wait-for` dependencies: alive, not ready.
    pub waiting: bool,
}

impl Snapshot {
    /// A running app, healthy and ready: the tests' starting point.
    #[cfg(test)]
    pub fn example() -> Snapshot {
        Snapshot {
            pid: 1,
            init: "entrypoint",
            app_pid: Some(7),
            app_uid: 1000,
            uptime_s: 12.5,
            health: "healthy",
            passed_once: true,
            draining: false,
            running: true,
            waiting: false,
        }
    }

    pub fn ready(&self) -> bool {
        self.running && !self.draining && self.health != "unhealthy" && self.health != "starting"
    }

    /// Alive (`/livez`): the app runs, or berth still waits to start it;
    /// and not unhealthy.
    pub fn live(&self) -> bool {
        (self.running || self.waiting) && self.health != "unhealthy"
    }

    /// `waiting` (for dependencies), `running`, `stopping` or `exited`.
    pub fn state(&self) -> &'static str {
        if self.waiting {
            "waiting"
        } else if !self.running {
            "exited"
        } else if self.draining {
            "stopping"
        } else {
            "running"
        }
    }

    /// The one JSON line `berth status` prints.
    pub fn to_json(&self) -> String {
        let app_pid = match self.app_pid {
            Some(p) => p.to_string(),
            None => "null".to_string(),
        };
        format!(
            "{{\"pid\":{},\"init\":\"{}\",\"state\":\"{}\",\"app_pid\":{},\"uptime_s\":{:.3},\"health\":\"{}\",\"ready\":{},\"draining\":{}}}\n",
            self.pid,
            self.init,
            self.state(),
            app_pid,
            self.uptime_s,
            self.health,
            self.ready(),
            self.draining
        )
    }
}

/// The inode of this process's PID namespace, from the link's text
/// `pid:[4026531836]`: readlink only formats it, where stat would also look
/// up the namespace's nsfs inode (the slowest system call of berth's start).
pub fn pid_namespace_inode() -> u64 {
    std::fs::read_link("/proc/self/ns/pid")
        .ok()
        .and_then(|l| parse_ns_link(l.to_str()?))
        .unwrap_or(0)
}

fn parse_ns_link(link: &str) -> Option<u64> {
    link.strip_prefix("pid:[")?.strip_suffix(']')?.parse().ok()
}

/// The abstract socket name of the berth with `pid` in namespace `ns`.
pub fn socket_name(ns: u64, pid: u32) -> String {
    format!("berth-status/{ns}/{pid}")
}

pub struct StatusServer {
    listener: UnixListener,
    /// One fd held back for when berth runs out (see `accept`).
    reserve: Option<OwnedFd>,
}

impl StatusServer {
    pub fn bind(own_pid: Pid) -> std::io::Result<StatusServer> {
        let name = socket_name(pid_namespace_inode(), own_pid.as_raw() as u32);
        let addr = SocketAddr::from_abstract_name(name.as_bytes())?;
        let listener = UnixListener::bind_addr(&addr)?;
        listener.set_nonblocking(true)?;
        let reserve = listener.as_fd().try_clone_to_owned().ok();
        Ok(StatusServer { listener, reserve })
    }

    pub fn fd(&self) -> RawFd {
        self.listener.as_raw_fd()
    }

    /// Answers every pending client (bounded per wake-up, so a flood of
    /// connections cannot starve signals).
    ///
    /// Out of fds (EMFILE/ENFILE), accept fails and leaves the client
    /// pending, so the level-triggered epoll would wake berth again at once,
    /// forever (issue 8: 100% CPU). berth keeps one fd in reserve: it frees
    /// it, takes the client, answers, closes, and takes the reserve back.
    /// Returns false when even that failed (no reserve): the caller stops
    /// watching the socket for a while.
    pub fn accept(&mut self, snap: &Snapshot) -> bool {
        if self.reserve.is_none() {
            self.reserve = self.listener.as_fd().try_clone_to_owned().ok();
        }
        for _ in 0..64 {
            match self.listener.accept() {
                Ok((stream, _)) => answer(stream, snap),
                Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
                    if self.reserve.take().is_none() {
                        return false;
                    }
                    if let Ok((stream, _)) = self.listener.accept() {
                        answer(stream, snap);
                    }
                    self.reserve = self.listener.as_fd().try_clone_to_owned().ok();
                }
                Err(_) => return true,
            }
        }
        true
    }
}

/// One reply line, then the stream is closed (dropped).
fn answer(mut stream: UnixStream, snap: &Snapshot) {
    let allowed = getsockopt(&stream, sockopt::PeerCredentials)
        .map(|c| c.uid() == 0 || c.uid() == snap.app_uid)
        .unwrap_or(false);
    let _ = stream.set_nonblocking(true);
    let reply = if allowed {
        snap.to_json()
    } else {
        "{\"error\":\"permission denied: berth answers only root and the app's uid\"}\n".to_string()
    };
    // A fresh socket's buffer holds this one short line: no blocking.
    let _ = stream.write_all(reply.as_bytes());
}

/// The outcome of asking a berth.
#[derive(Debug, PartialEq, Eq)]
pub enum Asked {
    Reply(String),
    /// Nobody answered (exit 2).
    NoBerth(String),
}

/// Connects to the berth with `pid` and returns its reply line.
pub fn ask(pid: u32, timeout: Duration) -> std::io::Result<String> {
    let name = socket_name(pid_namespace_inode(), pid);
    let addr = SocketAddr::from_abstract_name(name.as_bytes())?;
    let s = UnixStream::connect_addr(&addr)?;
    s.set_read_timeout(Some(timeout))?;
    let mut reply = String::new();
    s.take(64 * 1024).read_to_string(&mut reply)?;
    Ok(reply)
}

/// Which berth to ask without `--pid`: PID 1 if it answers, else the one
/// berth process in this PID namespace (under `docker run --init` or a
/// shared process namespace).
pub fn find_and_ask(pid: Option<u32>, timeout: Duration) -> Asked {
    if let Some(p) = pid {
        return match ask(p, timeout) {
            Ok(r) => Asked::Reply(r),
            Err(e) => Asked::NoBerth(format!("no berth answers as pid {p} ({e})")),
        };
    }
    if let Ok(r) = ask(1, timeout) {
        return Asked::Reply(r);
    }
    let me = std::process::id();
    let mut found = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            if p == me || p == 1 {
                continue;
            }
            let comm = std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default();
            // Under an engine's --init, berth's comm is the engine's name.
            if crate::persona::COMMS.contains(&comm.trim_end()) {
                found.push(p);
            }
        }
    }
    let answering: Vec<(u32, String)> = found
        .into_iter()
        .filter_map(|p| ask(p, timeout).ok().map(|r| (p, r)))
        .collect();
    match answering.as_slice() {
        [(_, r)] => Asked::Reply(r.clone()),
        [] => Asked::NoBerth(
            "no berth answers in this PID namespace (is the app running under berth?)".into(),
        ),
        many => Asked::NoBerth(format!(
            "{} berth processes answer in this PID namespace: pick one with --pid ({})",
            many.len(),
            many.iter()
                .map(|(p, _)| p.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// `berth status [--ready]` exit code for a reply: 0 running and not
/// unhealthy (and ready with --ready), else 1.
pub fn exit_code_for(reply: &str, want_ready: bool) -> u8 {
    let field = |k: &str| -> Option<&str> {
        let key = format!("\"{k}\":");
        let at = reply.find(&key)? + key.len();
        let rest = &reply[at..];
        let end = rest.find([',', '}']).unwrap_or(rest.len());
        Some(rest[..end].trim().trim_matches('"'))
    };
    if field("app_pid").is_none() {
        return 1; // an error reply (permission denied)
    }
    let unhealthy = field("health") == Some("unhealthy");
    let ready = field("ready") == Some("true");
    if unhealthy || (want_ready && !ready) {
        1
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap() -> Snapshot {
        Snapshot::example()
    }

    /// Out of fds, the reserve fd lets berth take and answer the client.
    /// Runs in a forked child: RLIMIT_NOFILE is process-wide.
    #[test]
    fn pid_namespace_inode_is_the_links_number_and_stats_inode() {
        use std::os::unix::fs::MetadataExt;
        assert_eq!(parse_ns_link("pid:[4026531836]"), Some(4026531836));
        assert_eq!(parse_ns_link("net:[4026531836]"), None);
        assert_eq!(parse_ns_link("pid:[x]"), None);
        let ino = std::fs::metadata("/proc/self/ns/pid").unwrap().ino();
        assert_eq!(pid_namespace_inode(), ino);
    }

    #[test]
    fn out_of_fds_a_client_is_still_answered() {
        let child = crate::sys::fork_job(|| {
            let Ok(mut server) =
                StatusServer::bind(Pid::from_raw(900_000 + std::process::id() as i32 % 1000))
            else {
                return 10;
            };
            let name = socket_name(
                pid_namespace_inode(),
                (900_000 + std::process::id() as i32 % 1000) as u32,
            );
            let Ok(addr) = SocketAddr::from_abstract_name(name.as_bytes()) else {
                return 11;
            };
            let Ok(mut client) = UnixStream::connect_addr(&addr) else {
                return 12;
            };
            // The limit at the lowest free fd: no new fd can be made.
            let free = (0..1024)
                .find(|&fd| !crate::sys::fd_is_open(fd))
                .unwrap_or(1024);
            if crate::sys::prlimit_self(libc::RLIMIT_NOFILE as i32, free as u64, 1024).is_err() {
                return 13;
            }
            if std::fs::File::open("/dev/null").is_ok() {
                return 14; // not out of fds: the test proves nothing
            }
            if !server.accept(&snap()) {
                return 15;
            }
            let mut reply = String::new();
            let _ = client.read_to_string(&mut reply);
            if !reply.contains("\"app_pid\":7") {
                return 16;
            }
            0
        })
        .unwrap();
        let status = nix::sys::wait::waitpid(child, None).unwrap();
        assert_eq!(status, nix::sys::wait::WaitStatus::Exited(child, 0));
    }

    #[test]
    fn json_has_the_spec_fields() {
        let j = snap().to_json();
        let v: serde_json::Value = serde_json::from_str(&j).unwrap();
        assert_eq!(v["pid"], 1);
        assert_eq!(v["init"], "entrypoint");
        assert_eq!(v["app_pid"], 7);
        assert_eq!(v["health"], "healthy");
        assert_eq!(v["ready"], true);
        assert_eq!(v["draining"], false);
        assert!(j.ends_with('\n'));
    }

    #[test]
    fn readiness_rules() {
        let mut s = snap();
        assert!(s.ready());
        s.health = "starting";
        assert!(!s.ready());
        s.health = "none";
        assert!(s.ready());
        s.draining = true;
        assert!(!s.ready());
        s.draining = false;
        s.health = "unhealthy";
        assert!(!s.ready());
    }

    #[test]
    fn exit_codes_for_replies() {
        let mut s = snap();
        assert_eq!(exit_code_for(&s.to_json(), false), 0);
        assert_eq!(exit_code_for(&s.to_json(), true), 0);
        s.draining = true;
        assert_eq!(exit_code_for(&s.to_json(), false), 0);
        assert_eq!(exit_code_for(&s.to_json(), true), 1);
        s.draining = false;
        s.health = "unhealthy";
        assert_eq!(exit_code_for(&s.to_json(), false), 1);
        assert_eq!(exit_code_for("{\"error\":\"permission denied\"}", false), 1);
    }

    #[test]
    fn names_differ_by_namespace_and_pid() {
        assert_ne!(socket_name(1, 1), socket_name(2, 1));
        assert_ne!(socket_name(1, 1), socket_name(1, 2));
    }
}
