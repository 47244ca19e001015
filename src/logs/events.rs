//! berth's own events — `start`, `signal`, `health`, `warn`, `exit` — as JSON
//! lines on stdout (`"stream":"berth"`) in json mode, or as short
//! `berth: ...` text lines on stderr in plain mode.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;

use crate::config::LogMode;
use crate::logs::json::{Encoder, Timestamp};
use crate::logs::out::{Out, EVENT_LIMIT};
use crate::parse::signal_name_string;
use crate::prepare::runtime_limits::Applied;
use crate::prepare::Report;
use crate::sys;

pub struct StartInfo<'a> {
    pub pid: u32,
    pub app_pid: u32,
    pub uid: u32,
    pub gid: u32,
    pub command: &'a [OsString],
    pub memory_limit_bytes: Option<u64>,
    pub cpu_limit: Option<f64>,
    /// persona.rs: `docker`, `podman` or `entrypoint`.
    pub init: &'static str,
    /// The `--wait-for` targets berth waited for before the start.
    pub waited_for: &'a [(String, crate::health::target::Target)],
    /// What the prepare steps did: names and paths, never a value.
    pub prepared: &'a Report,
    /// `--runtime-limits` (None: not asked for).
    pub runtime_limits: Option<&'a Applied>,
}

pub struct ExitInfo<'a> {
    pub code: u8,
    pub signal: Option<i32>,
    pub duration_s: f64,
    pub reason: &'a str,
    pub oom_kill: bool,
}

/// One `wait` event: a dependency's news while berth waits for it (SPEC
/// step 4), or the end of the wait.
pub struct WaitInfo<'a> {
    /// The target as typed; empty for the whole wait (stopped by a signal).
    pub target: &'a str,
    /// `healthy`, `failing`, `waiting` (still failing, every 5 s),
    /// `timeout` (given up) or `stopped` (a signal ended the wait).
    pub state: &'a str,
    pub reason: Option<&'a str>,
    pub waited_s: f64,
}

pub struct Events {
    mode: LogMode,
    enc: Encoder,
}

fn plain(line: &str) {
    let mut s = String::with_capacity(line.len() + 8);
    s.push_str("berth: ");
    s.push_str(line);
    s.push('\n');
    let _ = sys::write(2, s.as_bytes());
}

impl Events {
    pub fn new(mode: LogMode, enc: Encoder) -> Events {
        Events { mode, enc }
    }

    pub fn encoder(&self) -> &Encoder {
        &self.enc
    }

    pub fn start(&self, out: &mut Out, s: &StartInfo) {
        match self.mode {
            // tini is silent at start; so is berth in a terminal, but for
            // the prepare steps asked for, each said once.
            LogMode::Plain => {
                let p = s.prepared;
                if !p.env_from_files.is_empty() {
                    plain(&format!("env from files: {}", p.env_from_files.join(", ")));
                }
                if !p.templates_written.is_empty() {
                    let dsts: Vec<_> = p
                        .templates_written
                        .iter()
                        .map(|d| d.display().to_string())
                        .collect();
                    plain(&format!("templates written: {}", dsts.join(", ")));
                }
            }
            LogMode::Json => {
                let args: Vec<&[u8]> = s.command.iter().map(|a| a.as_bytes()).collect();
                let b = self
                    .enc
                    .event(&mut out.buf, &Timestamp::now(), "info", "start")
                    .u64("pid", s.pid as u64)
                    .u64("app_pid", s.app_pid as u64)
                    .u64("uid", s.uid as u64)
                    .u64("gid", s.gid as u64)
                    .str("init", s.init)
                    .str_array("command", &args)
                    .opt_u64("memory_limit_bytes", s.memory_limit_bytes);
                let waited: Vec<&[u8]> = s.waited_for.iter().map(|(t, _)| t.as_bytes()).collect();
                let b = if waited.is_empty() {
                    b
                } else {
                    b.str_array("waited_for", &waited)
                };
                // Like waited_for, said only when the step ran.
                let p = s.prepared;
                let names: Vec<&[u8]> = p.env_from_files.iter().map(|n| n.as_bytes()).collect();
                let b = if names.is_empty() {
                    b
                } else {
                    b.str_array("env_from_file", &names)
                };
                let dsts: Vec<&[u8]> = p
                    .templates_written
                    .iter()
                    .map(|d| d.as_os_str().as_bytes())
                    .collect();
                let b = if dsts.is_empty() {
                    b
                } else {
                    b.str_array("templates", &dsts)
                };
                let b = match s.cpu_limit {
                    Some(c) => b.f64_fixed("cpu_limit", c, 3),
                    None => b.null("cpu_limit"),
                };
                match s.runtime_limits {
                    // What was set, and from which of the two fields above.
                    Some(r) => {
                        let set: Vec<[(&str, &str); 3]> = r
                            .set
                            .iter()
                            .map(|s| [("name", s.name), ("value", &s.value), ("from", s.from)])
                            .collect();
                        let kept: Vec<&[u8]> = r.kept.iter().map(|k| k.as_bytes()).collect();
                        b.str_objects("runtime_limits", &set)
                            .str_array("runtime_limits_kept", &kept)
                    }
                    None => b,
                }
                .finish();
            }
        }
    }

    /// A signal berth received and what it became (None: dropped or held
    /// for the drain). Skipped when stdout is stuck and the buffer is large.
    pub fn signal(&self, out: &mut Out, received: i32, forwarded: Option<i32>, note: &str) {
        let recv = signal_name_string(received);
        let fwd = forwarded.map(signal_name_string);
        match self.mode {
            LogMode::Plain => {
                if matches!(received, libc::SIGTERM | libc::SIGINT) {
                    match &fwd {
                        Some(f) => plain(&format!("received {recv}, sent {f} to the app{note}")),
                        None => plain(&format!("received {recv}{note}")),
                    }
                }
            }
            LogMode::Json => {
                if out.pending() > EVENT_LIMIT {
                    return;
                }
                let b = self
                    .enc
                    .event(&mut out.buf, &Timestamp::now(), "info", "signal")
                    .str("received", &recv);
                let b = match &fwd {
                    Some(f) => b.str("forwarded_as", f),
                    None => b.null("forwarded_as"),
                };
                if note.is_empty() {
                    b
                } else {
                    b.str("note", note.trim_start_matches([',', ' ']))
                }
                .finish();
            }
        }
    }

    pub fn warn(&self, out: &mut Out, message: &str) {
        match self.mode {
            LogMode::Plain => plain(&format!("warning: {message}")),
            LogMode::Json => self
                .enc
                .event(&mut out.buf, &Timestamp::now(), "warn", "warn")
                .str(self.enc.msg_key(), message)
                .finish(),
        }
    }

    pub fn health(&self, out: &mut Out, state: &str, detail: &str) {
        match self.mode {
            LogMode::Plain => plain(&format!("health: {state} ({detail})")),
            LogMode::Json => {
                let level = if state == "unhealthy" { "warn" } else { "info" };
                self.enc
                    .event(&mut out.buf, &Timestamp::now(), level, "health")
                    .str("state", state)
                    .str("detail", detail)
                    .finish()
            }
        }
    }

    pub fn wait(&self, out: &mut Out, w: &WaitInfo) {
        match self.mode {
            LogMode::Plain => {
                let why = w.reason.unwrap_or_default();
                let (t, s) = (w.target, w.waited_s);
                plain(&match w.state {
                    "healthy" => format!("wait: {t} is healthy after {s:.3}s"),
                    "failing" => format!("wait: {t}: {why}"),
                    "waiting" => format!("wait: still waiting for {t} after {s:.1}s: {why}"),
                    "timeout" => format!("wait: gave up on {t} after {s:.1}s: {why}"),
                    _ => format!("wait: {why} after {s:.3}s; the app was not started"),
                });
            }
            LogMode::Json => {
                let level = match w.state {
                    "healthy" | "failing" => "info",
                    "timeout" => "error",
                    _ => "warn",
                };
                let b = self
                    .enc
                    .event(&mut out.buf, &Timestamp::now(), level, "wait")
                    .str("state", w.state);
                let b = if w.target.is_empty() {
                    b
                } else {
                    b.str("target", w.target)
                };
                let b = match w.reason {
                    Some(r) => b.str("reason", r),
                    None => b,
                };
                b.f64_fixed("waited_s", w.waited_s, 3).finish();
            }
        }
    }

    pub fn exit(&self, out: &mut Out, e: &ExitInfo) {
        let sig = e.signal.map(signal_name_string);
        match self.mode {
            LogMode::Plain => {
                let how = match &sig {
                    Some(s) => format!("killed by SIG{s}"),
                    None => "exited".to_string(),
                };
                let oom = if e.oom_kill { ", OOM kill counted" } else { "" };
                plain(&format!(
                    "app {how} ({}{oom}) after {:.3}s: exit code {}",
                    e.reason, e.duration_s, e.code
                ));
            }
            LogMode::Json => {
                let level = if e.code == 0 { "info" } else { "warn" };
                let b = self
                    .enc
                    .event(&mut out.buf, &Timestamp::now(), level, "exit")
                    .u64("code", e.code as u64);
                let b = match &sig {
                    Some(s) => b.str("signal", s),
                    None => b.null("signal"),
                };
                let b = b
                    .f64_fixed("duration_s", e.duration_s, 3)
                    .str("reason", e.reason);
                b.bool("oom_kill", e.oom_kill).finish();
            }
        }
    }
}
