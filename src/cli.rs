//! The command line: a small table-driven parser, the `BERTH_*` environment
//! fallback, help and version. Produces what the user typed as strings
//! (`RunArgs`, `ProbeArgs`, `StatusArgs`); turning them into typed values is
//! config.rs's job, so a bad *value* is exit 125 while a bad *command line*
//! is exit 2.
//!
//! Why not clap: it cost berth ~100 KiB of its 700 KiB budget (cargo bloat,
//! docs/design.md "size") for what is one table and a loop here: options
//! come first, the first other word starts COMMAND (or `--` does).

use std::ffi::OsString;

use crate::error::Error;

/// What the user asked for.
pub enum Invocation {
    Run(Box<RunArgs>),
    Probe(ProbeArgs),
    Status(StatusArgs),
    Drill(Box<DrillArgs>),
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
    ("health", None, "TARGET", Kind::Value, "Probe the app every interval (http://HOST:PORT/PATH, tcp://HOST:PORT, grpc://HOST:PORT[/SERVICE])"),
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

Also: berth probe TARGET (health probe), berth status [--ready] (ask a running berth),
berth drill --url URL -- COMMAND (prove COMMAND survives a deploy: load, SIGTERM, count failures).";

/// The exact build: crate version plus the git commit baked in by build.rs.
pub fn version() -> String {
    match option_env!("GIT_COMMIT_ID") {
        Some(c) if !c.is_empty() => format!("berth {} ({c})", env!("CARGO_PKG_VERSION")),
        _ => format!("berth {}", env!("CARGO_PKG_VERSION")),
    }
}

/// Options of `berth probe` and `berth status`.
const PROBE_OPTIONS: Options = &[
    (
        "timeout",
        None,
        "DURATION",
        Kind::Value,
        "Covers resolve + connect + response [default: 3s]",
    ),
    (
        "header",
        None,
        "'NAME: VALUE'",
        Kind::Repeat,
        "Extra request header",
    ),
    (
        "expect-status",
        None,
        "CODE",
        Kind::Repeat,
        "Healthy status codes (replaces the 2xx/3xx rule)",
    ),
];
const STATUS_OPTIONS: Options = &[
    (
        "ready",
        None,
        "",
        Kind::Switch,
        "Also require ready: not draining and, with --health, a passing probe",
    ),
    (
        "pid",
        None,
        "N",
        Kind::Value,
        "The berth to ask [default: PID 1 if berth, else the one berth in this PID namespace]",
    ),
];

type Opt = (&'static str, Option<char>, &'static str, Kind, &'static str);
type Options = &'static [Opt];

/// What a scan of argv found.
#[derive(Default)]
struct Scanned {
    /// (long name, value) in command-line order; switches have "".
    given: Vec<(&'static str, String)>,
    positionals: Vec<OsString>,
    help: bool,
    version: bool,
}

impl Scanned {
    fn values(&self, long: &str) -> Vec<String> {
        self.given
            .iter()
            .filter(|(k, _)| *k == long)
            .map(|(_, v)| v.clone())
            .collect()
    }
    fn last(&self, long: &str) -> Option<String> {
        self.values(long).pop()
    }
}

/// Reads options until `--` or, with `command_follows`, the first word that
/// is not an option (everything from there on is COMMAND, untouched).
fn scan(args: &[OsString], options: &[Opt], command_follows: bool) -> Result<Scanned, Error> {
    let mut out = Scanned::default();
    let mut i = 0;
    while i < args.len() {
        let raw = &args[i];
        i += 1;
        let Some(arg) = raw.to_str() else {
            if command_follows {
                out.positionals.extend_from_slice(&args[i - 1..]);
                return Ok(out);
            }
            out.positionals.push(raw.clone());
            continue;
        };
        if arg == "--" {
            out.positionals.extend_from_slice(&args[i..]);
            return Ok(out);
        }
        let (opt, inline) = if let Some(long) = arg.strip_prefix("--") {
            match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            }
        } else if arg.len() >= 2 && arg.starts_with('-') && !arg.starts_with("--") {
            // -u app, -uapp, -h, -V
            let mut chars = arg[1..].chars();
            let c = chars.next().unwrap_or('-');
            let rest = chars.as_str();
            let long = match c {
                'h' => "help",
                'V' => "version",
                c => options
                    .iter()
                    .find(|o| o.1 == Some(c))
                    .map(|o| o.0)
                    .ok_or_else(|| Error::usage(format!("unknown option -{c} (berth --help)")))?,
            };
            (long, (!rest.is_empty()).then(|| rest.to_string()))
        } else {
            if command_follows {
                out.positionals.extend_from_slice(&args[i - 1..]);
                return Ok(out);
            }
            out.positionals.push(raw.clone());
            continue;
        };
        match opt {
            "help" => {
                out.help = true;
                continue;
            }
            "version" if command_follows => {
                out.version = true;
                continue;
            }
            _ => {}
        }
        let Some(&(long, _, _, kind, _)) = options.iter().find(|o| o.0 == opt) else {
            return Err(Error::usage(format!(
                "unknown option --{opt} (berth --help)"
            )));
        };
        let value = match (kind, inline) {
            (Kind::Switch, Some(_)) => {
                return Err(Error::usage(format!(
                    "--{long} takes no value (berth --help)"
                )))
            }
            (Kind::Switch, None) => String::new(),
            (_, Some(v)) => v,
            (_, None) => {
                let v = args.get(i).and_then(|v| v.to_str()).ok_or_else(|| {
                    Error::usage(format!(
                        "--{long} needs a value: {} (berth --help)",
                        options
                            .iter()
                            .find(|o| o.0 == long)
                            .map(|o| o.2)
                            .unwrap_or("")
                    ))
                })?;
                i += 1;
                v.to_string()
            }
        };
        out.given.push((long, value));
    }
    Ok(out)
}

/// Parses argv (reading nothing but the environment).
pub fn parse(argv: Vec<OsString>, env: &[(OsString, OsString)]) -> Result<Invocation, Error> {
    let args = argv.get(1..).unwrap_or(&[]);
    match args.first().and_then(|a| a.to_str()) {
        Some("probe") => return parse_probe(&args[1..]),
        Some("status") => return parse_status(&args[1..]),
        Some("drill") => return parse_drill(&args[1..]),
        _ => {}
    }
    let m = scan(args, RUN_OPTIONS, true)?;
    if m.help {
        return Ok(Invocation::Print(run_help()));
    }
    if m.version {
        return Ok(Invocation::Print(version() + "\n"));
    }
    let mut a = RunArgs::default();
    let from_env = berth_env(env)?;
    for &(long, _, _, kind, _) in RUN_OPTIONS {
        let given = m.values(long);
        let values: Vec<String> = if !given.is_empty() {
            given
        } else if let Some((var, v)) = from_env.iter().find(|(k, _)| is_env_name_of(k, long)) {
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
                Kind::Value => vec![v.clone()],
                Kind::Repeat => v
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect(),
            }
        } else {
            vec![]
        };
        set(&mut a, long, values);
    }
    a.command = m.positionals;
    if a.command.is_empty() {
        return Err(Error::usage(
            "no COMMAND given: usage: berth [OPTIONS] [--] COMMAND [ARG...] (berth --help)",
        ));
    }
    Ok(Invocation::Run(Box::new(a)))
}

/// The `BERTH_*` variables, checked: an unknown name is a typo (125).
fn berth_env(env: &[(OsString, OsString)]) -> Result<Vec<(String, String)>, Error> {
    let mut out = Vec::new();
    for (k, v) in env {
        let Some(k) = k.to_str() else { continue };
        if !k.starts_with("BERTH_") {
            continue;
        }
        if !RUN_OPTIONS.iter().any(|o| is_env_name_of(k, o.0)) {
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

/// `var == env_name(long)`, without building the name: this runs for every
/// option at every start.
fn is_env_name_of(var: &str, long: &str) -> bool {
    var.strip_prefix("BERTH_").is_some_and(|rest| {
        rest.len() == long.len()
            && rest.bytes().zip(long.bytes()).all(|(v, l)| {
                v == if l == b'-' {
                    b'_'
                } else {
                    l.to_ascii_uppercase()
                }
            })
    })
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

fn parse_probe(args: &[OsString]) -> Result<Invocation, Error> {
    let m = scan(args, PROBE_OPTIONS, false)?;
    if m.help {
        return Ok(Invocation::Print(help(
            "berth probe [OPTIONS] TARGET   (http://HOST[:PORT]/PATH, tcp://HOST:PORT,\n                                       grpc://HOST:PORT[/SERVICE])",
            "One health probe. Exit 0 healthy, 1 unhealthy, 2 usage error.",
            PROBE_OPTIONS,
        )));
    }
    let target = match m.positionals.as_slice() {
        [t] => t
            .to_str()
            .map(str::to_string)
            .ok_or_else(|| Error::usage("probe: TARGET is not valid UTF-8"))?,
        [] => {
            return Err(Error::usage(
                "probe: no TARGET given: usage: berth probe [OPTIONS] TARGET",
            ))
        }
        _ => {
            return Err(Error::usage(
                "probe: one TARGET only: usage: berth probe [OPTIONS] TARGET",
            ))
        }
    };
    Ok(Invocation::Probe(ProbeArgs {
        target,
        timeout: m.last("timeout"),
        header: m.values("header"),
        expect_status: m.values("expect-status"),
    }))
}

fn parse_status(args: &[OsString]) -> Result<Invocation, Error> {
    let m = scan(args, STATUS_OPTIONS, false)?;
    if m.help {
        return Ok(Invocation::Print(help(
            "berth status [--ready] [--pid N]",
            "Ask a running berth for the app's state. Exit 0 running and not unhealthy, 1 otherwise, 2 no berth answers.",
            STATUS_OPTIONS,
        )));
    }
    if let Some(p) = m.positionals.first() {
        return Err(Error::usage(format!(
            "status: unexpected argument {:?}: usage: berth status [--ready] [--pid N]",
            p
        )));
    }
    Ok(Invocation::Status(StatusArgs {
        ready: !m.values("ready").is_empty(),
        pid: m.last("pid"),
    }))
}

/// `berth drill`: its own options as typed (drill/mod.rs checks the values),
/// the run options re-rendered as `--name=value` words for the berth child,
/// and COMMAND.
#[derive(Default, Debug, Clone)]
pub struct DrillArgs {
    /// (long name, value) of the drill's own options, in command-line order.
    pub given: Vec<(&'static str, String)>,
    pub run_options: Vec<OsString>,
    pub command: Vec<OsString>,
}

#[rustfmt::skip]
const DRILL_OPTIONS: Options = &[
    ("url", None, "URL", Kind::Value, "Where to send the load: http://HOST:PORT/PATH on loopback (required)"),
    ("rps", None, "N", Kind::Value, "Requests per second, all connections together [default: 50]"),
    ("connections", None, "N", Kind::Value, "Keep-alive connections at most [default: 4]"),
    ("stop-after", None, "DURATION", Kind::Value, "Load before berth gets SIGTERM [default: 2s]"),
    ("lag", None, "DURATION", Kind::Value, "Load after SIGTERM: how late the load balancer notices [default: 2s]"),
    ("timeout", None, "DURATION", Kind::Value, "One request's deadline [default: 3s]"),
    ("start-timeout", None, "DURATION", Kind::Value, "Time the app gets to turn healthy (--health, else --url) [default: 30s]"),
    ("json", None, "", Kind::Switch, "Print the report as one JSON object (for CI)"),
];

fn parse_drill(args: &[OsString]) -> Result<Invocation, Error> {
    let m = scan(args, &[DRILL_OPTIONS, RUN_OPTIONS].concat(), true)?;
    if m.help || m.version {
        let mut h = help(
            "berth drill [OPTIONS] [RUN OPTIONS] --url URL -- COMMAND [ARG...]",
            "Prove COMMAND survives a deploy: run it under berth with the RUN OPTIONS (--drain, --grace, \
--user, --stop-signal, ... see berth --help), wait until it is healthy, send HTTP/1.1 keep-alive load, \
send SIGTERM, keep the load on for --lag, and report what failed and how to fix it. \
Exit 0 when nothing failed, 1 otherwise, 2 usage error.",
            DRILL_OPTIONS,
        );
        h.push_str("  [RUN OPTIONS]\n          Every option of berth --help, passed on to berth\n");
        return Ok(Invocation::Print(h));
    }
    let mut d = DrillArgs::default();
    for (long, value) in m.given {
        match RUN_OPTIONS.iter().find(|o| o.0 == long) {
            Some(o) if o.3 == Kind::Switch => d.run_options.push(format!("--{long}").into()),
            Some(_) => d.run_options.push(format!("--{long}={value}").into()),
            None => d.given.push((long, value)),
        }
    }
    d.command = m.positionals;
    if d.command.is_empty() {
        return Err(Error::usage(
            "drill: no COMMAND given: usage: berth drill [OPTIONS] --url URL -- COMMAND [ARG...]",
        ));
    }
    Ok(Invocation::Drill(Box::new(d)))
}

fn run_help() -> String {
    let mut h = help(
        "berth [OPTIONS] [--] COMMAND [ARG...]\n       berth probe [OPTIONS] TARGET\n       berth status [--ready] [--pid N]\n       berth drill [OPTIONS] --url URL -- COMMAND [ARG...]",
        ABOUT,
        RUN_OPTIONS,
    );
    h.push_str("  -V, --version\n          Print the exact build and exit\n");
    h
}

fn help(usage: &str, about: &str, options: Options) -> String {
    let mut h = format!("{about}\n\nUsage: {usage}\n\nOptions:\n");
    for &(long, short, value, _, text) in options {
        let short = short.map(|c| format!("-{c}, ")).unwrap_or_default();
        let value = if value.is_empty() {
            String::new()
        } else {
            format!(" {value}")
        };
        h.push_str(&format!("  {short}--{long}{value}\n          {text}\n"));
    }
    h.push_str("  -h, --help\n          Print help\n");
    h
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
    fn drill_splits_its_options_from_run_options() {
        let Ok(Invocation::Drill(d)) = parse(
            os(&[
                "berth",
                "drill",
                "--url",
                "http://127.0.0.1:1/",
                "--drain",
                "3s",
                "--json",
                "--no-group",
                "-u",
                "app",
                "--",
                "httpd",
                "--port",
                "1",
            ]),
            &[],
        ) else {
            panic!("not a drill")
        };
        assert_eq!(
            d.given,
            vec![
                ("url", "http://127.0.0.1:1/".to_string()),
                ("json", String::new())
            ]
        );
        assert_eq!(
            d.run_options,
            os(&["--drain=3s", "--no-group", "--user=app"])
        );
        assert_eq!(d.command, os(&["httpd", "--port", "1"]));
        assert_eq!(
            parse(os(&["berth", "drill", "--url", "x"]), &[])
                .err()
                .unwrap()
                .exit_code(),
            2
        );
        assert_eq!(
            parse(os(&["berth", "drill", "--bogus", "x"]), &[])
                .err()
                .unwrap()
                .exit_code(),
            2
        );
    }

    #[test]
    fn env_names_match_without_being_built() {
        for o in RUN_OPTIONS {
            assert!(is_env_name_of(&env_name(o.0), o.0), "{}", o.0);
            assert!(!is_env_name_of(&env_name(o.0).to_lowercase(), o.0));
            assert!(!is_env_name_of(&format!("{}_", env_name(o.0)), o.0));
            assert!(!is_env_name_of(&env_name(o.0)[6..], o.0));
        }
        assert!(!is_env_name_of("BERTH_MAP-SIGNAL", "map-signal"));
    }

    #[test]
    fn every_option_has_an_env_name() {
        for o in RUN_OPTIONS {
            assert!(env_name(o.0).starts_with("BERTH_"));
            assert!(!env_name(o.0).contains('-'));
        }
    }
}
