//! berth: a PID-1 init shim for containers. See README.md for what it does
//! and docs/design.md for how the modules fit together.
//!
//! `main` parses the command line and dispatches to a run (event.rs), a
//! probe (health/), a status query (status.rs) or a drill (drill/). All
//! `unsafe` is in sys.rs.

#![deny(unsafe_code)]

pub mod cgroup;
pub mod cli;
pub mod config;
#[cfg(feature = "drill")]
pub mod drill;
pub mod error;
pub mod escape;
pub mod event;
pub mod health;
pub mod http;
pub mod logs;
pub mod parse;
pub mod persona;
pub mod prepare;
pub mod privs;
pub mod reap;
pub mod shutdown;
pub mod signals;
pub mod spawn;
pub mod status;
pub mod status_http;
#[allow(unsafe_code)]
pub mod sys;
pub mod user;

use std::ffi::OsString;
use std::time::Duration;

use cli::Invocation;
use error::Error;

/// berth's whole life; returns the exit code.
pub fn main() -> u8 {
    // First of all, before anything can be delivered and lost: block every
    // catchable signal. berth reads them from a signalfd later; the app gets
    // the inherited mask back just before exec.
    let inherited_mask = sys::block_signals();
    let argv: Vec<OsString> = std::env::args_os().collect();
    // Before cli::parse takes argv: the engines' init names (persona.rs).
    let init = persona::Init::from_argv0(argv.first().map(|a| a.as_os_str()));
    let env: Vec<(OsString, OsString)> = std::env::vars_os().collect();
    let invocation = match cli::parse(argv, &env) {
        Ok(i) => i,
        Err(e) => return fail(&e),
    };
    match invocation {
        Invocation::Print(text) => {
            let _ = sys::write(1, text.as_bytes());
            0
        }
        Invocation::Probe(p) => {
            sys::restore_mask(&inherited_mask);
            run_probe(&p)
        }
        Invocation::Status(s) => {
            sys::restore_mask(&inherited_mask);
            run_status(&s)
        }
        #[cfg(feature = "drill")]
        Invocation::Drill(d) => {
            sys::restore_mask(&inherited_mask);
            drill::run(&d, &env)
        }
        #[cfg(not(feature = "drill"))]
        Invocation::Drill(_) => fail(&Error::usage(
            "drill: this berth was built without it (cargo feature \"drill\")",
        )),
        Invocation::Run(args) => match build_config(&args, init) {
            Ok(cfg) => event::run(cfg, env, inherited_mask),
            Err(e) => fail(&e),
        },
    }
}

/// Run options → `Config`, reading the image's user database when `--user`
/// asks for it (also used by `berth drill` to check the options it passes on).
/// `init`: how berth was started (persona.rs), which moves some defaults.
pub fn build_config(args: &cli::RunArgs, init: persona::Init) -> Result<config::Config, Error> {
    let passwd = args
        .user
        .as_ref()
        .and_then(|_| std::fs::read("/etc/passwd").ok());
    let group = args
        .user
        .as_ref()
        .and_then(|_| std::fs::read("/etc/group").ok());
    let facts = config::Facts {
        stdout_is_tty: sys::isatty(1),
        init,
        passwd: passwd.as_deref(),
        group: group.as_deref(),
    };
    config::build(args, &facts)
}

fn fail(e: &Error) -> u8 {
    eprintln!("{e}");
    e.exit_code()
}

/// `berth probe`: 0 healthy, 1 unhealthy, 2 usage error.
fn run_probe(p: &cli::ProbeArgs) -> u8 {
    let probe = match config::build_probe(p) {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let verdict = match probe.wait {
        None => health::probe::probe(&probe.target, &probe.options),
        Some(wait) => health::wait::probe_until_healthy(&probe.target, &probe.options, wait),
    };
    match verdict {
        Ok(()) => 0,
        Err(reason) => {
            eprintln!("berth: probe {}: {reason}", p.target);
            1
        }
    }
}

/// `berth status`: 0 running and not unhealthy (and ready with --ready),
/// 1 otherwise, 2 when no berth answers.
fn run_status(s: &cli::StatusArgs) -> u8 {
    let pid = match &s.pid {
        None => None,
        Some(p) => match p.trim().parse::<u32>() {
            Ok(n) if n > 0 => Some(n),
            _ => {
                return fail(&Error::usage(format!(
                    "status: --pid \"{p}\": expected a process id"
                )))
            }
        },
    };
    match status::find_and_ask(pid, Duration::from_secs(2)) {
        status::Asked::Reply(r) => {
            let _ = sys::write(1, r.as_bytes());
            status::exit_code_for(&r, s.ready)
        }
        status::Asked::NoBerth(why) => {
            eprintln!("berth: status: {why}");
            2
        }
    }
}
