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
use std::os::fd::{AsRawFd, RawFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
use std::time::Duration;

use nix::sys::socket::{getsockopt, sockopt};
use nix::unistd::Pid;

/// What berth knows about the app, as of now.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    pub pid: u32,
    pub app_pid: u32,
    pub app_uid: u32,
    pub uptime_s: f64,
    /// `none`, `starting`, `healthy`, `unhealthy`.
    pub health: &'static str,
    /// With `--health`: at least one probe has passed.
    pub passed_once: bool,
    /// Draining or stopping: no longer ready.
    pub draining: bool,
    pub running: bool,
}

impl Snapshot {
    pub fn ready(&self) -> bool {
        self.running && !self.draining && self.health != "unhealthy" && self.health != "starting"
    }

    /// The one JSON line `berth status` prints.
    pub fn to_json(&self) -> String {
        format!(
            "{{\"pid\":{},\"app_pid\":{},\"uptime_s\":{:.3},\"health\":\"{}\",\"ready\":{},\"draining\":{}}}\n",
            self.pid,
            self.app_pid,
            self.uptime_s,
            self.health,
            self.ready(),
            self.draining
        )
    }
}

/// The inode of this process's PID namespace.
pub fn pid_namespace_inode() -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self/ns/pid")
        .map(|m| m.ino())
        .unwrap_or(0)
}

/// The abstract socket name of the berth with `pid` in namespace `ns`.
pub fn socket_name(ns: u64, pid: u32) -> String {
    format!("berth-status/{ns}/{pid}")
}

pub struct StatusServer {
    listener: UnixListener,
}

impl StatusServer {
    pub fn bind(own_pid: Pid) -> std::io::Result<StatusServer> {
        let name = socket_name(pid_namespace_inode(), own_pid.as_raw() as u32);
        let addr = SocketAddr::from_abstract_name(name.as_bytes())?;
        let listener = UnixListener::bind_addr(&addr)?;
        listener.set_nonblocking(true)?;
        Ok(StatusServer { listener })
    }

    pub fn fd(&self) -> RawFd {
        self.listener.as_raw_fd()
    }

    /// Answers every pending client (bounded per wake-up, so a flood of
    /// connections cannot starve signals).
    pub fn accept(&mut self, snap: &Snapshot) {
        for _ in 0..64 {
            let Ok((mut stream, _)) = self.listener.accept() else {
                return;
            };
            let allowed = getsockopt(&stream, sockopt::PeerCredentials)
                .map(|c| c.uid() == 0 || c.uid() == snap.app_uid)
                .unwrap_or(false);
            let _ = stream.set_nonblocking(true);
            let reply = if allowed {
                snap.to_json()
            } else {
                "{\"error\":\"permission denied: berth answers only root and the app's uid\"}\n"
                    .to_string()
            };
            // A fresh socket's buffer holds this one short line: no blocking.
            let _ = stream.write_all(reply.as_bytes());
        }
    }
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
            if comm.trim_end() == "berth" {
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
        Snapshot {
            pid: 1,
            app_pid: 7,
            app_uid: 1000,
            uptime_s: 12.5,
            health: "healthy",
            passed_once: true,
            draining: false,
            running: true,
        }
    }

    #[test]
    fn json_has_the_spec_fields() {
        let j = snap().to_json();
        let v: serde_json::Value = serde_json::from_str(&j).unwrap();
        assert_eq!(v["pid"], 1);
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
