//! The command line: clap's definition, the `BERTH_*` environment fallback,
//! help and version. Produces what the user typed as strings (`RunArgs`,
//! `ProbeArgs`, `StatusArgs`); turning them into typed values is config.rs's
//! job, so a bad *value* is exit 125 while a bad *command line* is exit 2.
//!
//! clap lives only here (see docs/design.md "size"), so swapping it for a
//! smaller parser stays a one-file change.

use std::ffi::OsString;

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command};

use crate::error::Error;

/// What the user asked for.
pub enum Invocation {
    Run(Box<RunArgs>),
    Probe(ProbeArgs),
    Status(StatusArgs),
    /// `--help` / `--version`: the text to print on stdout, exit 0.
    Print(String),
}

/// One run option as the user gave it (flag, or `BERTH_*` variable).
#[derive(Default, Debug, Clone)]
pub struct RunArgs {
    pub user: Option<String>,
    pub chown: Vec<String>,
    pub require_non_root: bool,
    pub grace: Option<String>,
    pub stop_signal: Option<String>,
    pub map_signal: Vec<String>,
    pub preserve_fds: Option<String>,
    pub drain: Option<String>,
    pub no_group: bool,
    pub success_exit: Vec<String>,
    pub log_format: Option<String>,
    pub service: Option<String>,
    pub log_field: Vec<String>,
    pub log_max_line: Option<String>,
    pub log_keys: Option<String>,
    pub log_multiline: Option<String>,
    pub health: Option<String>,
    pub health_interval: Option<String>,
    pub health_timeout: Option<String>,
    pub health_retries: Option<String>,
    pub health_start_period: Option<String>,
    pub health_start_interval: Option<String>,
    pub status_listen: Option<String>,
    pub on_unhealthy: Option<String>,
    pub rlimit: Vec<String>,
    pub allow_new_privs: bool,
    pub keep_root: bool,
    pub command: Vec<OsString>,
}

#[derive(Default, Debug, Clone)]
pub struct ProbeArgs {
    pub target: String,
    pub timeout: Option<String>,
    pub header: Vec<String>,
    pub expect_status: Vec<String>,
}

#[derive(Default, Debug, Clone)]
pub struct StatusArgs {
    pub ready: bool,
    pub pid: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Value,
    Repeat,
    Switch,
}

/// Every run option: (long name, short, value name, kind, help).
const RUN_OPTIONS: &[(&str, Option<char>, &str, Kind, &str)] = &[
    ("user", Some('u'), "USER[:GROUP]", Kind::Value, "Run the app as USER (name or uid) and GROUP, resolved from the image's /etc/passwd and /etc/group"),
    ("chown", None, "PATH", Kind::Repeat, "Before dropping to --user, give PATH (recursively, same file system, no symlinks followed) to the app's uid:gid"),
    ("require-non-root", None, "", Kind::Switch, "Refuse to start (125) if the app would run as uid 0"),
    ("grace", None, "DURATION", Kind::Value, "Time the app gets after the stop signal before SIGKILL [default: 8s]"),
    ("stop-signal", None, "SIGNAL", Kind::Value, "What the app receives when berth receives SIGTERM [default: TERM]"),
    ("map-signal", None, "FROM:TO", Kind::Repeat, "Rewrite a forwarded signal (TO = 0 drops it)"),
    ("preserve-fds", None, "N", Kind::Value, "Pass fds 3 .. 3+N-1 on to the app [default: 0]"),
    ("drain", None, "DURATION", Kind::Value, "On SIGTERM, report not-ready and wait this long before the stop signal [default: 0s]"),
    ("no-group", None, "", Kind::Switch, "Signal the app process alone, not its process group"),
    ("success-exit", None, "CODE", Kind::Repeat, "Treat this app exit code as success (berth exits 0)"),
    ("log-format", None, "auto|json|plain", Kind::Value, "json: one JSON object per app line on stdout; plain: pass stdout/stderr through [default: auto]"),
    ("service", None, "NAME", Kind::Value, "The service field of every JSON line [default: basename of COMMAND]"),
    ("log-field", None, "KEY=VALUE", Kind::Repeat, "Extra static field on every JSON line"),
    ("log-max-line", None, "BYTES", Kind::Value, "Longest line berth emits, envelope and newline included [default: 16384]"),
    ("log-keys", None, "default|gcp|ecs", Kind::Value, "Names of berth's own keys [default: default]"),
    ("log-multiline", None, "indent", Kind::Value, "Join indented continuation lines (stack traces) into the previous event"),
    ("health", None, "TARGET", Kind::Value, "Probe the app every interval (http://HOST:PORT/PATH or tcp://HOST:PORT)"),
    ("health-interval", None, "DURATION", Kind::Value, "Time between probes [default: 10s]"),
    ("health-timeout", None, "DURATION", Kind::Value, "Time one probe may take [default: 3s]"),
    ("health-retries", None, "N", Kind::Value, "Consecutive failures before unhealthy [default: 3]"),
    ("health-start-period", None, "DURATION", Kind::Value, "Failures during this time do not count [default: 0s]"),
    ("health-start-interval", None, "DURATION", Kind::Value, "Time between probes during the start period [default: the interval]"),
    ("status-listen", None, "ADDR:PORT", Kind::Value, "Also serve GET /livez and /readyz over HTTP"),
    ("on-unhealthy", None, "log|exit", Kind::Value, "exit: stop the app gracefully and exit 1 when it turns unhealthy [default: log]"),
    ("rlimit", None, "NAME=SOFT[:HARD]", Kind::Repeat, "Set a resource limit for the app (nofile, nproc, core, ...)"),
    ("allow-new-privs", None, "", Kind::Switch, "Do not set no_new_privs for the app"),
    ("keep-root", None, "", Kind::Switch, "Keep berth itself root after starting a non-root app"),
];

const ABOUT: &str = "A PID-1 init for containers: runs COMMAND (as a non-root user), forwards signals, \
stops it gracefully, reaps zombies, probes health and writes its output as JSON lines.

Every run option can also be set as BERTH_<OPTION> (BERTH_GRACE=10s, BERTH_MAP_SIGNAL=HUP:USR1,USR2:0, \
BERTH_NO_GROUP=1); the flag wins. Exit: the app's code, 128+N if killed by signal N; \
2 usage, 125 bad value or setup, 126 not executable, 127 not found.

Also: berth probe TARGET (health probe), berth status [--ready] (ask a running berth).";

/// The exact build: crate version plus the git commit baked in by build.rs.
pub fn version() -> String {
    match option_env!("GIT_COMMIT_ID") {
        Some(c) if !c.is_empty() => format!("berth {} ({c})", env!("CARGO_PKG_VERSION")),
        _ => format!("berth {}", env!("CARGO_PKG_VERSION")),
    }
}

fn run_command() -> Command {
    let mut cmd = Command::new("berth")
        .about(ABOUT)
        .override_usage(
            "berth [OPTIONS] [--] COMMAND [ARG...]\n       berth probe [OPTIONS] TARGET\n       berth status [--ready] [--pid N]",
        )
        .disable_version_flag(true)
        .arg(
            Arg::new("version")
                .short('V')
                .long("version")
                .action(ArgAction::SetTrue)
                .help("Print the exact build and exit"),
        )
        .args_override_self(true);
    for &(long, short, value, kind, help) in RUN_OPTIONS {
        let mut arg = Arg::new(long).long(long).help(help);
        if let Some(s) = short {
            arg = arg.short(s);
        }
        arg = match kind {
            Kind::Switch => arg.action(ArgAction::SetTrue),
            Kind::Value => arg.value_name(value).action(ArgAction::Set),
            Kind::Repeat => arg.value_name(value).action(ArgAction::Append),
        };
        cmd = cmd.arg(arg);
    }
    cmd.arg(
        Arg::new("command")
            .value_name("COMMAND")
            .num_args(1..)
            .trailing_var_arg(true)
            .value_parser(clap::value_parser!(OsString)),
    )
}

fn probe_command() -> Command {
    Command::new("berth probe")
        .about("One health probe. Exit 0 healthy, 1 unhealthy, 2 usage error.")
        .override_usage(
            "berth probe [OPTIONS] TARGET   (http://HOST[:PORT]/PATH or tcp://HOST:PORT)",
        )
        .disable_version_flag(true)
        .args_override_self(true)
        .arg(Arg::new("target").value_name("TARGET").required(true))
        .arg(
            Arg::new("timeout")
                .long("timeout")
                .value_name("DURATION")
                .help("Covers resolve + connect + response [default: 3s]"),
        )
        .arg(
            Arg::new("header")
                .long("header")
                .value_name("NAME: VALUE")
                .action(ArgAction::Append)
                .help("Extra request header"),
        )
        .arg(
            Arg::new("expect-status")
                .long("expect-status")
                .value_name("CODE")
                .action(ArgAction::Append)
                .help("Healthy status codes (replaces the 2xx/3xx rule)"),
        )
}

fn status_command() -> Command {
    Command::new("berth status")
        .about("Ask a running berth for the app's state. Exit 0 running and not unhealthy, 1 otherwise, 2 no berth answers.")
        .disable_version_flag(true)
        .args_override_self(true)
        .arg(Arg::new("ready").long("ready").action(ArgAction::SetTrue).help("Also require ready: not draining and, with --health, a passing probe"))
        .arg(Arg::new("pid").long("pid").value_name("N").help("The berth to ask [default: PID 1 if berth, else the one berth in this PID namespace]"))
}

/// Parses argv (without reading anything but the environment).
pub fn parse(argv: Vec<OsString>, env: &[(OsString, OsString)]) -> Result<Invocation, Error> {
    match argv.get(1).and_then(|a| a.to_str()) {
        Some("probe") => return parse_probe(&argv[1..]),
        Some("status") => return parse_status(&argv[1..]),
        _ => {}
    }
    let mut cmd = run_command();
    let m = match cmd.try_get_matches_from_mut(argv) {
        Ok(m) => m,
        Err(e) => return clap_error(e, &mut cmd),
    };
    if m.get_flag("version") {
        return Ok(Invocation::Print(version() + "\n"));
    }
    let mut args = RunArgs::default();
    let from_env = berth_env(env)?;
    for &(long, _, _, kind, _) in RUN_OPTIONS {
        let on_command_line = m.value_source(long) == Some(ValueSource::CommandLine);
        let var = env_name(long);
        let env_value = from_env
            .iter()
            .find(|(k, _)| *k == var)
            .map(|(_, v)| v.as_str());
        let values: Vec<String> = if on_command_line {
            strings(&m, long, kind)
        } else if let Some(v) = env_value {
            match kind {
                Kind::Switch => {
                    let on = crate::parse::switch(v)
                        .map_err(|e| Error::config(format!("{var}: {e}")))?;
                    if on {
                        vec![String::new()]
                    } else {
                        vec![]
                    }
                }
                Kind::Value => vec![v.to_string()],
                Kind::Repeat => v
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect(),
            }
        } else {
            vec![]
        };
        set(&mut args, long, values);
    }
    args.command = m
        .get_many::<OsString>("command")
        .map(|v| v.cloned().collect())
        .unwrap_or_default();
    if args.command.is_empty() {
        return Err(Error::usage(
            "no COMMAND given: usage: berth [OPTIONS] [--] COMMAND [ARG...] (berth --help)",
        ));
    }
    Ok(Invocation::Run(Box::new(args)))
}

/// The `BERTH_*` variables, checked: an unknown name is a typo (125).
fn berth_env(env: &[(OsString, OsString)]) -> Result<Vec<(String, String)>, Error> {
    let mut out = Vec::new();
    for (k, v) in env {
        let Some(k) = k.to_str() else { continue };
        if !k.starts_with("BERTH_") {
            continue;
        }
        if !RUN_OPTIONS.iter().any(|o| env_name(o.0) == k) {
            return Err(Error::config(format!(
                "unknown environment variable {k}: no run option is named so (see berth --help)"
            )));
        }
        let v = v
            .to_str()
            .ok_or_else(|| Error::config(format!("{k}: value is not valid UTF-8")))?;
        out.push((k.to_string(), v.to_string()));
    }
    Ok(out)
}

/// `grace` → `BERTH_GRACE`, `map-signal` → `BERTH_MAP_SIGNAL`.
pub fn env_name(long: &str) -> String {
    format!("BERTH_{}", long.to_ascii_uppercase().replace('-', "_"))
}

fn strings(m: &ArgMatches, id: &str, kind: Kind) -> Vec<String> {
    match kind {
        Kind::Switch => {
            if m.get_flag(id) {
                vec![String::new()]
            } else {
                vec![]
            }
        }
        _ => m
            .get_many::<String>(id)
            .map(|v| v.cloned().collect())
            .unwrap_or_default(),
    }
}

fn set(a: &mut RunArgs, long: &str, mut v: Vec<String>) {
    let one = v.pop();
    match long {
        "user" => a.user = one,
        "require-non-root" => a.require_non_root = one.is_some(),
        "grace" => a.grace = one,
        "stop-signal" => a.stop_signal = one,
        "preserve-fds" => a.preserve_fds = one,
        "drain" => a.drain = one,
        "no-group" => a.no_group = one.is_some(),
        "log-format" => a.log_format = one,
        "service" => a.service = one,
        "log-max-line" => a.log_max_line = one,
        "log-keys" => a.log_keys = one,
        "log-multiline" => a.log_multiline = one,
        "health" => a.health = one,
        "health-interval" => a.health_interval = one,
        "health-timeout" => a.health_timeout = one,
        "health-retries" => a.health_retries = one,
        "health-start-period" => a.health_start_period = one,
        "health-start-interval" => a.health_start_interval = one,
        "status-listen" => a.status_listen = one,
        "on-unhealthy" => a.on_unhealthy = one,
        "allow-new-privs" => a.allow_new_privs = one.is_some(),
        "keep-root" => a.keep_root = one.is_some(),
        _ => {
            // Repeatable options: put the popped value back.
            v.extend(one);
            match long {
                "chown" => a.chown = v,
                "map-signal" => a.map_signal = v,
                "success-exit" => a.success_exit = v,
                "log-field" => a.log_field = v,
                "rlimit" => a.rlimit = v,
                _ => {}
            }
        }
    }
}

fn parse_probe(argv: &[OsString]) -> Result<Invocation, Error> {
    let mut cmd = probe_command();
    let m = match cmd.try_get_matches_from_mut(argv) {
        Ok(m) => m,
        Err(e) => return clap_error(e, &mut cmd),
    };
    let get = |id: &str| m.get_one::<String>(id).cloned();
    let many = |id: &str| -> Vec<String> {
        m.get_many::<String>(id)
            .map(|v| v.cloned().collect())
            .unwrap_or_default()
    };
    Ok(Invocation::Probe(ProbeArgs {
        target: get("target").unwrap_or_default(),
        timeout: get("timeout"),
        header: many("header"),
        expect_status: many("expect-status"),
    }))
}

fn parse_status(argv: &[OsString]) -> Result<Invocation, Error> {
    let mut cmd = status_command();
    let m = match cmd.try_get_matches_from_mut(argv) {
        Ok(m) => m,
        Err(e) => return clap_error(e, &mut cmd),
    };
    Ok(Invocation::Status(StatusArgs {
        ready: m.get_flag("ready"),
        pid: m.get_one::<String>("pid").cloned(),
    }))
}

/// clap's help is printed as help (exit 0); every other clap error is a
/// usage error (2) reduced to its first line.
fn clap_error(e: clap::Error, cmd: &mut Command) -> Result<Invocation, Error> {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            Ok(Invocation::Print(cmd.render_help().to_string()))
        }
        _ => {
            let text = e.to_string();
            let first = text
                .lines()
                .next()
                .unwrap_or("bad command line")
                .trim_start_matches("error: ");
            Err(Error::usage(format!("{first} (berth --help)")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    fn env(v: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        v.iter().map(|(k, v)| (k.into(), v.into())).collect()
    }

    fn run(argv: &[&str], e: &[(&str, &str)]) -> RunArgs {
        match parse(os(argv), &env(e)) {
            Ok(Invocation::Run(a)) => *a,
            Ok(_) => panic!("not a run"),
            Err(e) => panic!("error: {}", e.message()),
        }
    }

    #[test]
    fn command_after_double_dash_and_trailing_args_kept() {
        let a = run(
            &["berth", "--grace", "1s", "--", "sh", "-c", "echo --grace"],
            &[],
        );
        assert_eq!(a.grace.as_deref(), Some("1s"));
        assert_eq!(a.command, os(&["sh", "-c", "echo --grace"]));
    }

    #[test]
    fn command_without_double_dash_keeps_its_own_flags() {
        let a = run(&["berth", "ls", "-l", "--grace"], &[]);
        assert_eq!(a.command, os(&["ls", "-l", "--grace"]));
        assert!(a.grace.is_none());
    }

    #[test]
    fn env_fills_options_and_flag_wins() {
        let a = run(
            &["berth", "--grace", "2s", "true"],
            &[("BERTH_GRACE", "5s"), ("BERTH_STOP_SIGNAL", "QUIT")],
        );
        assert_eq!(a.grace.as_deref(), Some("2s"));
        assert_eq!(a.stop_signal.as_deref(), Some("QUIT"));
    }

    #[test]
    fn env_repeatable_is_comma_separated_and_switch_words() {
        let a = run(
            &["berth", "true"],
            &[
                ("BERTH_SUCCESS_EXIT", "143,130"),
                ("BERTH_NO_GROUP", "yes"),
                ("BERTH_KEEP_ROOT", "0"),
            ],
        );
        assert_eq!(a.success_exit, vec!["143", "130"]);
        assert!(a.no_group);
        assert!(!a.keep_root);
    }

    #[test]
    fn repeated_flag_accumulates_and_replaces_env() {
        let a = run(
            &[
                "berth",
                "--map-signal",
                "HUP:USR1",
                "--map-signal",
                "USR2:0",
                "true",
            ],
            &[("BERTH_MAP_SIGNAL", "INT:TERM")],
        );
        assert_eq!(a.map_signal, vec!["HUP:USR1", "USR2:0"]);
    }

    #[test]
    fn unknown_berth_variable_is_125() {
        let e = parse(os(&["berth", "true"]), &env(&[("BERTH_GRACEE", "1s")]))
            .err()
            .unwrap();
        assert_eq!(e.exit_code(), 125);
        assert!(e.message().contains("BERTH_GRACEE"));
    }

    #[test]
    fn bad_switch_value_is_125() {
        let e = parse(os(&["berth", "true"]), &env(&[("BERTH_NO_GROUP", "maybe")]))
            .err()
            .unwrap();
        assert_eq!(e.exit_code(), 125);
    }

    #[test]
    fn unknown_flag_and_missing_command_are_usage_errors() {
        assert_eq!(
            parse(os(&["berth", "--bogus", "true"]), &[])
                .err()
                .unwrap()
                .exit_code(),
            2
        );
        assert_eq!(parse(os(&["berth"]), &[]).err().unwrap().exit_code(), 2);
        assert_eq!(
            parse(os(&["berth", "--grace"]), &[])
                .err()
                .unwrap()
                .exit_code(),
            2
        );
    }

    #[test]
    fn help_and_version_print() {
        assert!(
            matches!(parse(os(&["berth", "--help"]), &[]), Ok(Invocation::Print(t)) if t.contains("--grace"))
        );
        assert!(
            matches!(parse(os(&["berth", "--version"]), &[]), Ok(Invocation::Print(t)) if t.starts_with("berth "))
        );
    }

    #[test]
    fn subcommands_dispatch_and_double_dash_runs_a_command_named_probe() {
        assert!(
            matches!(parse(os(&["berth", "probe", "tcp://x:1"]), &[]), Ok(Invocation::Probe(p)) if p.target == "tcp://x:1")
        );
        assert!(
            matches!(parse(os(&["berth", "status", "--ready"]), &[]), Ok(Invocation::Status(s)) if s.ready)
        );
        let a = run(&["berth", "--", "probe"], &[]);
        assert_eq!(a.command, os(&["probe"]));
    }

    #[test]
    fn every_option_has_an_env_name() {
        for o in RUN_OPTIONS {
            assert!(env_name(o.0).starts_with("BERTH_"));
            assert!(!env_name(o.0).contains('-'));
        }
    }
}
