//! Everything the app's exec needs, built before fork (the child may not
//! allocate): argv, the environment (less `BERTH_*`, plus HOME, plus the
//! socket-activation rewrite), the PATH candidates, ids and rlimits; and the
//! mapping of a failed exec to 125/126/127. The fork itself is sys::spawn.

use std::ffi::{CString, OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

use nix::errno::Errno;

use crate::config::Config;
use crate::error::{Error, Kind};
use crate::sys::{ChildFailure, ChildStep, ExecRequest};

/// The PATH execvp uses when none is set (musl's and glibc's default).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Socket activation as sd_listen_fds(3) defines it, decided from the
/// environment berth was given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SocketActivation {
    /// No LISTEN_FDS.
    None,
    /// LISTEN_FDS=N for berth (LISTEN_PID is berth's pid or unset): pass the
    /// N fds and rewrite LISTEN_PID to the app's pid.
    PassOn(i32),
    /// LISTEN_PID names another process: the fds are not ours to pass, and
    /// the variables are removed so the app does not believe them.
    Strip,
}

pub fn socket_activation(env: &[(OsString, OsString)], own_pid: u32) -> SocketActivation {
    let get = |k: &str| {
        env.iter()
            .find(|(n, _)| n == k)
            .and_then(|(_, v)| v.to_str())
    };
    let Some(fds) = get("LISTEN_FDS") else {
        return SocketActivation::None;
    };
    let n = match fds.trim().parse::<i32>() {
        Ok(n) if (0..=4096).contains(&n) => n,
        _ => return SocketActivation::Strip,
    };
    match get("LISTEN_PID") {
        None => SocketActivation::PassOn(n),
        Some(p) if p.trim().parse::<u32>().ok() == Some(own_pid) => SocketActivation::PassOn(n),
        Some(_) => SocketActivation::Strip,
    }
}

/// The app's environment: berth's, less `BERTH_*`; HOME from the target
/// user's passwd entry when it was unset (or was the inherited home of the
/// user berth runs as, e.g. Docker's `HOME=/root`); LISTEN_* per activation.
pub fn app_env(
    env: &[(OsString, OsString)],
    target_home: Option<&str>,
    own_home: Option<&str>,
    activation: SocketActivation,
) -> Vec<CString> {
    let mut out = Vec::with_capacity(env.len() + 1);
    let mut home_seen = false;
    for (k, v) in env {
        let kb = k.as_bytes();
        if kb.starts_with(b"BERTH_") {
            continue;
        }
        let is_listen = matches!(kb, b"LISTEN_FDS" | b"LISTEN_PID" | b"LISTEN_FDNAMES");
        match activation {
            SocketActivation::Strip if is_listen => continue,
            // LISTEN_PID is re-added by the child with its own pid.
            SocketActivation::PassOn(_) if kb == b"LISTEN_PID" => continue,
            _ => {}
        }
        if kb == b"HOME" {
            if let (Some(target), Some(own)) = (target_home, own_home) {
                if v.as_bytes() == own.as_bytes() && target != own {
                    continue; // replaced below
                }
            }
            home_seen = true;
        }
        if let Some(entry) = entry(k, v) {
            out.push(entry);
        }
    }
    if !home_seen {
        if let Some(h) = target_home {
            if let Some(e) = entry(OsStr::new("HOME"), OsStr::new(h)) {
                out.push(e);
            }
        }
    }
    out
}

fn entry(k: &OsStr, v: &OsStr) -> Option<CString> {
    // + 2: the '=' and the NUL CString::new appends (no reallocation).
    let mut b = Vec::with_capacity(k.len() + v.len() + 2);
    b.extend_from_slice(k.as_bytes());
    b.push(b'=');
    b.extend_from_slice(v.as_bytes());
    CString::new(b).ok()
}

/// execvp's search, done before fork: a name with a '/' is used as is, else
/// every PATH directory in order (an empty entry is the current directory).
pub fn candidates(command: &OsStr, path: Option<&OsStr>) -> Vec<CString> {
    let cmd = command.as_bytes();
    if cmd.contains(&b'/') {
        return CString::new(cmd).into_iter().collect();
    }
    let path = path
        .map(|p| p.as_bytes())
        .unwrap_or(DEFAULT_PATH.as_bytes());
    path.split(|&b| b == b':')
        .filter_map(|dir| {
            let mut p = Vec::with_capacity(dir.len() + cmd.len() + 1);
            if dir.is_empty() {
                p.extend_from_slice(b".");
            } else {
                p.extend_from_slice(dir);
            }
            p.push(b'/');
            p.extend_from_slice(cmd);
            CString::new(p).ok()
        })
        .collect()
}

/// Builds the request for sys::spawn. `stdout`/`stderr`: log pipe write ends.
pub fn request(
    cfg: &Config,
    env: &[(OsString, OsString)],
    activation: SocketActivation,
    own_home: Option<&str>,
    pipes: (Option<i32>, Option<i32>),
) -> Result<ExecRequest, Error> {
    let argv: Vec<CString> = cfg
        .command
        .iter()
        .map(|a| CString::new(a.clone().into_vec()))
        .collect::<Result<_, _>>()
        .map_err(|_| Error::usage("COMMAND or an argument contains a NUL byte"))?;
    let path = env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.as_os_str());
    let target_home = cfg
        .identity
        .as_ref()
        .map(|i| i.home.as_deref().unwrap_or("/"));
    Ok(ExecRequest {
        candidates: candidates(&cfg.command[0], path),
        argv,
        envp: app_env(env, target_home, own_home, activation),
        set_listen_pid: matches!(activation, SocketActivation::PassOn(_)),
        rlimits: cfg
            .rlimits
            .iter()
            .map(|r| (r.resource, r.soft, r.hard))
            .collect(),
        identity: cfg
            .identity
            .as_ref()
            .map(|i| (i.uid, i.gid, i.groups.clone())),
        no_new_privs: cfg.no_new_privs,
        stdout: pipes.0,
        stderr: pipes.1,
        take_terminal: crate::sys::isatty(0),
        mask: nix::sys::signal::SigSet::empty(),
    })
}

/// A failed exec → berth's error, naming the command and the step.
pub fn failure_to_error(f: ChildFailure, command: &OsStr) -> Error {
    let cmd = command.to_string_lossy();
    match (f.step, f.errno) {
        (ChildStep::Exec, Errno::ENOENT) | (ChildStep::Exec, Errno::ENOTDIR) => Error::new(
            Kind::NotFound,
            format!("command \"{cmd}\" not found (looked up on PATH)"),
        ),
        (ChildStep::Exec, e @ (Errno::EACCES | Errno::ENOEXEC | Errno::EPERM | Errno::EISDIR)) => {
            Error::new(
                Kind::NotExecutable,
                format!("command \"{cmd}\" cannot be executed: {}", e.desc()),
            )
        }
        (ChildStep::Exec, e) => Error::new(
            Kind::NotExecutable,
            format!("command \"{cmd}\" failed to execute: {}", e.desc()),
        ),
        (step, e) => Error::config(format!(
            "starting \"{cmd}\" failed at {}: {}",
            step.name(),
            e.desc()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(v: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        v.iter().map(|(k, v)| (k.into(), v.into())).collect()
    }

    fn strs(v: &[CString]) -> Vec<String> {
        v.iter().map(|c| c.to_string_lossy().into_owned()).collect()
    }

    #[test]
    fn berth_variables_are_removed() {
        let e = app_env(
            &env(&[("BERTH_GRACE", "1s"), ("A", "1"), ("BERTHA", "x")]),
            None,
            None,
            SocketActivation::None,
        );
        assert_eq!(strs(&e), vec!["A=1", "BERTHA=x"]);
    }

    #[test]
    fn home_set_when_missing_kept_when_set_replaced_when_inherited_default() {
        let none = app_env(
            &env(&[]),
            Some("/home/app"),
            Some("/root"),
            SocketActivation::None,
        );
        assert_eq!(strs(&none), vec!["HOME=/home/app"]);
        let custom = app_env(
            &env(&[("HOME", "/data")]),
            Some("/home/app"),
            Some("/root"),
            SocketActivation::None,
        );
        assert_eq!(strs(&custom), vec!["HOME=/data"]);
        let docker = app_env(
            &env(&[("HOME", "/root")]),
            Some("/home/app"),
            Some("/root"),
            SocketActivation::None,
        );
        assert_eq!(strs(&docker), vec!["HOME=/home/app"]);
        let no_user = app_env(
            &env(&[("HOME", "/root")]),
            None,
            Some("/root"),
            SocketActivation::None,
        );
        assert_eq!(strs(&no_user), vec!["HOME=/root"]);
    }

    #[test]
    fn socket_activation_decisions() {
        assert_eq!(socket_activation(&env(&[]), 1), SocketActivation::None);
        assert_eq!(
            socket_activation(&env(&[("LISTEN_FDS", "2")]), 1),
            SocketActivation::PassOn(2)
        );
        assert_eq!(
            socket_activation(&env(&[("LISTEN_FDS", "1"), ("LISTEN_PID", "7")]), 7),
            SocketActivation::PassOn(1)
        );
        assert_eq!(
            socket_activation(&env(&[("LISTEN_FDS", "1"), ("LISTEN_PID", "8")]), 7),
            SocketActivation::Strip
        );
        assert_eq!(
            socket_activation(&env(&[("LISTEN_FDS", "x")]), 7),
            SocketActivation::Strip
        );
    }

    #[test]
    fn listen_variables_stripped_or_pid_dropped_for_rewrite() {
        let e = env(&[
            ("LISTEN_FDS", "1"),
            ("LISTEN_PID", "8"),
            ("LISTEN_FDNAMES", "a"),
            ("X", "1"),
        ]);
        assert_eq!(
            strs(&app_env(&e, None, None, SocketActivation::Strip)),
            vec!["X=1"]
        );
        assert_eq!(
            strs(&app_env(&e, None, None, SocketActivation::PassOn(1))),
            vec!["LISTEN_FDS=1", "LISTEN_FDNAMES=a", "X=1"]
        );
    }

    #[test]
    fn path_candidates_like_execvp() {
        assert_eq!(strs(&candidates(OsStr::new("./a"), None)), vec!["./a"]);
        assert_eq!(
            strs(&candidates(
                OsStr::new("ls"),
                Some(OsStr::new("/bin::/usr/bin"))
            )),
            vec!["/bin/ls", "./ls", "/usr/bin/ls"]
        );
        assert_eq!(candidates(OsStr::new("ls"), None).len(), 6);
    }

    #[test]
    fn exec_errors_map_to_126_127_125() {
        let f = |step, errno| {
            failure_to_error(ChildFailure { step, errno }, OsStr::new("app")).exit_code()
        };
        assert_eq!(f(ChildStep::Exec, Errno::ENOENT), 127);
        assert_eq!(f(ChildStep::Exec, Errno::EACCES), 126);
        assert_eq!(f(ChildStep::Exec, Errno::ENOEXEC), 126);
        assert_eq!(f(ChildStep::Setuid, Errno::EPERM), 125);
        assert_eq!(f(ChildStep::Setrlimit, Errno::EPERM), 125);
    }
}
