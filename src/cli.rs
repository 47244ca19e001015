//! The command line: clap (builder API) parses argv into what the user typed
//! as strings (`RunArgs`, `ProbeArgs`, `StatusArgs`, `DrillArgs`); the
//! `BERTH_*` environment fallback, the one-line usage errors, help and
//! version are here too. Turning the strings into typed values is
//! config.rs's job, so a bad *value* is exit 125 while a bad *command line*
//! is exit 2.
//!
//! clap is built without its help, usage and colour features (measured in
//! docs/design.md "What clap cost": its help alone is 52 KiB): one table
//! below drives clap's arguments, the `BERTH_*` names and `--help`. What
//! clap brings is the parsing itself (`--opt=v`, `-uapp`, `--`, repeated
//! options, COMMAND's words left alone) and its "did you mean" for a
//! mistyped option.

use std::ffi::OsString;

use clap::builder::OsStringValueParser;
use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command};

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
    pub env_from_file: Vec<String>,
    pub template: Vec<String>,
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
    pub log_stream_level: Option<String>,
    pub log_multiline: Option<String>,
    pub log_pipe_size: Option<String>,
    pub health: Option<String>,
    pub health_interval: Option<String>,
    pub health_timeout: Option<String>,
    pub health_retries: Option<String>,
    pub health_start_period: Option<String>,
    pub health_start_interval: Option<String>,
    pub wait_for: Vec<String>,
    pub wait_timeout: Option<String>,
    pub status_listen: Option<String>,
    pub on_unhealthy: Option<String>,
    pub rlimit: Vec<String>,
    pub runtime_limits: Vec<String>,
    pub runtime_limits_memory: Option<String>,
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
    pub wait: Option<String>,
}

#[derive(Default, Debug, Clone)]
pub struct StatusArgs {
    pub ready: bool,
    pub pid: Option<String>,
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

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Value,
    Repeat,
    Switch,
}
use Kind::{Repeat, Switch, Value};

/// One option: (long name, short, value name, kind, help line).
type Opt = (&'static str, Option<char>, &'static str, Kind, &'static str);

/// Every run option. The help lines are short on purpose: `berth --help`
/// is one line per option, read at a glance (README has the long story).
#[rustfmt::skip]
const RUN_OPTIONS: &[Opt] = &[
    ("user", Some('u'), "USER[:GROUP]", Value, "run the app as USER (name/uid) and GROUP"),
    ("chown", None, "PATH", Repeat, "give PATH to the app's uid:gid first"),
    ("env-from-file", None, "NAME[=PATH]", Repeat, "set NAME from a file, or from NAME_FILE"),
    ("template", None, "SRC:DST", Repeat, "render SRC's ${NAME}s into DST"),
    ("require-non-root", None, "", Switch, "refuse (125) if the app would be root"),
    ("grace", None, "DURATION", Value, "stop signal to SIGKILL [8s]"),
    ("stop-signal", None, "SIGNAL", Value, "what the app gets on SIGTERM [TERM]"),
    ("map-signal", None, "FROM:TO", Repeat, "rewrite a forwarded signal (TO=0: drop)"),
    ("preserve-fds", None, "N", Value, "pass fds 3 .. 3+N-1 to the app [0]"),
    ("drain", None, "DURATION", Value, "on SIGTERM, be not-ready this long [0s]"),
    ("no-group", None, "", Switch, "signal the app alone, not its group"),
    ("success-exit", None, "CODE", Repeat, "an app exit code that means success"),
    ("log-format", None, "auto|json|plain", Value, "JSON lines, or the output as is [auto]"),
    ("service", None, "NAME", Value, "the service field [COMMAND's name]"),
    ("log-field", None, "KEY=VALUE", Repeat, "extra field on every JSON line"),
    ("log-max-line", None, "BYTES", Value, "longest line berth writes [16384]"),
    ("log-keys", None, "default|gcp|ecs", Value, "names of the ts/msg/level keys [default]"),
    ("log-stream-level", None, "on|off", Value, "stdout info, stderr error [on: gcp, ecs]"),
    ("log-multiline", None, "indent", Value, "join indented lines (stack traces)"),
    ("log-pipe-size", None, "BYTES", Value, "grow a flooded stdout pipe to [512k]"),
    ("health", None, "TARGET", Value, "probe the app: http://, tcp://, grpc://"),
    ("health-interval", None, "DURATION", Value, "time between probes [10s]"),
    ("health-timeout", None, "DURATION", Value, "time one probe may take [3s]"),
    ("health-retries", None, "N", Value, "failures in a row to be unhealthy [3]"),
    ("health-start-period", None, "DURATION", Value, "failures in it do not count [0s]"),
    ("health-start-interval", None, "DURATION", Value, "time between probes in the start period"),
    ("wait-for", None, "TARGET", Repeat, "start the app once TARGET is healthy"),
    ("wait-timeout", None, "DURATION", Value, "then give up: exit 124 [60s]"),
    ("status-listen", None, "ADDR:PORT", Value, "serve GET /livez and /readyz over HTTP"),
    ("on-unhealthy", None, "log|exit", Value, "exit: stop the app and exit 1 [log]"),
    ("rlimit", None, "NAME=SOFT[:HARD]", Repeat, "resource limit (nofile, core, ...)"),
    ("runtime-limits", None, "RUNTIMES", Repeat, "size go,node,workers|all to the limits"),
    ("runtime-limits-memory", None, "PERCENT", Value, "memory share for Go/Node [90/75]"),
    ("allow-new-privs", None, "", Switch, "do not set no_new_privs for the app"),
    ("keep-root", None, "", Switch, "keep berth root beside a non-root app"),
];

#[rustfmt::skip]
const PROBE_OPTIONS: &[Opt] = &[
    ("timeout", None, "DURATION", Value, "covers resolve + connect + response [3s]"),
    ("header", None, "'NAME: VALUE'", Repeat, "extra request header"),
    ("expect-status", None, "CODE", Repeat, "a healthy status (replaces 2xx/3xx)"),
    ("wait", None, "DURATION", Value, "try again until healthy or DURATION has passed"),
];

#[rustfmt::skip]
const STATUS_OPTIONS: &[Opt] = &[
    ("ready", None, "", Switch, "also require ready (not draining, healthy)"),
    ("pid", None, "N", Value, "the berth to ask [PID 1, else the one]"),
];

#[rustfmt::skip]
const DRILL_OPTIONS: &[Opt] = &[
    ("url", None, "URL", Value, "load target: http://HOST:PORT/PATH, loopback"),
    ("rps", None, "N", Value, "requests per second, all together [50]"),
    ("connections", None, "N", Value, "keep-alive connections at most [4]"),
    ("stop-after", None, "DURATION", Value, "load before berth gets SIGTERM [2s]"),
    ("lag", None, "DURATION", Value, "load after SIGTERM (a slow balancer) [2s]"),
    ("timeout", None, "DURATION", Value, "one request's deadline [3s]"),
    ("start-timeout", None, "DURATION", Value, "time the app gets to turn healthy [30s]"),
    ("json", None, "", Switch, "print the report as one JSON object (for CI)"),
];

/// `--help` and `--version`, on berth and each subcommand.
#[rustfmt::skip]
const PRINT_OPTIONS: &[Opt] = &[
    ("help", Some('h'), "", Switch, "print this help"),
    ("version", Some('V'), "", Switch, "print the exact build"),
];

const SUBCOMMANDS: [&str; 3] = ["probe", "status", "drill"];

/// The exact build: crate version plus the git commit baked in by build.rs.
pub fn version() -> String {
    // One line in tini's shape, `NAME version X - git.COMMIT`: dockerd runs
    // its init with --version and keeps what follows " - git." as `docker
    // info`'s init commit (moby daemon/info_unix.go, parseInitVersion: it
    // splits on " - ", then the second part on "." into exactly "git" and
    // the commit). Not "tini version": Docker would call berth tini.
    match option_env!("GIT_COMMIT_ID") {
        Some(c) if !c.is_empty() && !c.contains(['.', ' ']) => {
            format!("berth version {} - git.{c}", env!("CARGO_PKG_VERSION"))
        }
        _ => format!("berth version {}", env!("CARGO_PKG_VERSION")),
    }
}

/// clap's arguments for a table of options. Values are taken as they come,
/// even when they begin with `-` (`--map-signal -x` is config.rs's to judge).
fn clap_args(options: &'static [Opt]) -> impl Iterator<Item = Arg> {
    options.iter().map(|&(long, short, value, kind, _)| {
        let arg = Arg::new(long).long(long);
        let arg = match short {
            Some(c) => arg.short(c),
            None => arg,
        };
        match kind {
            Switch => arg.action(ArgAction::SetTrue),
            Value => arg
                .value_name(value)
                .action(ArgAction::Set)
                .allow_hyphen_values(true),
            Repeat => arg
                .value_name(value)
                .action(ArgAction::Append)
                .allow_hyphen_values(true),
        }
    })
}

/// COMMAND: the first word that is not an option (or the words after
/// `--`); it takes everything after it untouched (`berth ls -la`).
fn command_arg() -> Arg {
    Arg::new("COMMAND")
        .action(ArgAction::Append)
        .num_args(1..)
        .trailing_var_arg(true)
        .value_parser(OsStringValueParser::new())
}

fn clap_command(name: &'static str, options: &'static [Opt]) -> Command {
    Command::new(name)
        .disable_help_flag(true)
        .disable_version_flag(true)
        // An option given twice: the last wins (as `BERTH_*` under a flag).
        .args_override_self(true)
        .args(clap_args(PRINT_OPTIONS))
        .args(clap_args(options))
}

/// The clap command for `berth` (`sub` None) or one subcommand. Only the
/// one in use is built: building clap's arguments is most of what parsing
/// costs at start (docs/design.md), and berth starts every container.
fn clap_for(sub: Option<&'static str>) -> Command {
    match sub {
        Some("probe") => clap_command("probe", PROBE_OPTIONS).arg(
            Arg::new("TARGET")
                .action(ArgAction::Append)
                .value_parser(OsStringValueParser::new()),
        ),
        Some("status") => clap_command("status", STATUS_OPTIONS),
        Some(_) => clap_command("drill", DRILL_OPTIONS)
            .args(clap_args(RUN_OPTIONS))
            .arg(command_arg()),
        None => clap_command("berth", RUN_OPTIONS).arg(command_arg()),
    }
}

/// Parses argv (reading nothing but the environment).
pub fn parse(argv: Vec<OsString>, env: &[(OsString, OsString)]) -> Result<Invocation, Error> {
    // `probe`, `status` and `drill` are subcommands as the first word only:
    // after an option, or after `--`, `probe` is a COMMAND.
    let sub = argv
        .get(1)
        .and_then(|a| a.to_str())
        .and_then(|a| SUBCOMMANDS.into_iter().find(|s| *s == a));
    // clap takes the first word as the program's name: `berth` or the
    // subcommand's.
    let words = &argv[usize::from(sub.is_some())..];
    let m = clap_for(sub)
        .try_get_matches_from(words)
        .map_err(|e| usage_error(&e, sub))?;
    if m.get_flag("help") {
        return Ok(Invocation::Print(help_for(sub.unwrap_or(""))));
    }
    if m.get_flag("version") {
        return Ok(Invocation::Print(version() + "\n"));
    }
    match sub {
        Some("probe") => parse_probe(&m),
        Some("status") => Ok(Invocation::Status(StatusArgs {
            ready: m.get_flag("ready"),
            pid: values(&m, "pid").pop(),
        })),
        Some(_) => parse_drill(&m),
        None => parse_run(&m, env),
    }
}

/// clap's error as one line: container log drivers turn each stderr line
/// into its own event, so clap's usage and tip lines are folded into it.
fn usage_error(e: &clap::Error, sub: Option<&str>) -> Error {
    let context = |kind| match e.get(kind) {
        Some(ContextValue::String(s)) => s.as_str(),
        _ => "",
    };
    let arg = context(ContextKind::InvalidArg);
    let what = match e.kind() {
        ErrorKind::UnknownArgument if arg.starts_with('-') => format!("unknown option {arg}"),
        ErrorKind::UnknownArgument => format!("unexpected argument {arg:?}"),
        // The one invalid value clap itself finds: none at all.
        ErrorKind::InvalidValue => match arg.split_once(' ') {
            Some((flag, value)) => {
                format!("{flag} needs a value: {}", value.trim_matches(['<', '>']))
            }
            None => format!("{arg} needs a value"),
        },
        ErrorKind::TooManyValues => format!("{arg} takes no value"),
        kind => format!("{kind} {arg}").trim_end().to_string(),
    };
    let did_you_mean = match context(ContextKind::SuggestedArg) {
        "" => String::new(),
        s => format!(" (did you mean {s}?)"),
    };
    let (prefix, help) = match sub {
        Some(s) => (format!("{s}: "), format!("berth {s} --help")),
        None => (String::new(), "berth --help".to_string()),
    };
    Error::usage(format!("{prefix}{what}{did_you_mean}; see {help}"))
}

/// The values given on the command line for one option, in order.
fn values(m: &ArgMatches, long: &str) -> Vec<String> {
    m.get_many::<String>(long)
        .map(|v| v.cloned().collect())
        .unwrap_or_default()
}

fn positionals(m: &ArgMatches, id: &str) -> Vec<OsString> {
    m.get_many::<OsString>(id)
        .map(|v| v.cloned().collect())
        .unwrap_or_default()
}

/// Whether the user typed the option (not clap's `false` for a switch).
fn given(m: &ArgMatches, long: &str) -> bool {
    m.value_source(long) == Some(ValueSource::CommandLine)
}

fn parse_run(m: &ArgMatches, env: &[(OsString, OsString)]) -> Result<Invocation, Error> {
    let from_env = berth_env(env)?;
    let mut a = RunArgs::default();
    for &(long, _, _, kind, _) in RUN_OPTIONS {
        let values: Vec<String> = if given(m, long) {
            match kind {
                Switch => vec![String::new()],
                _ => values(m, long),
            }
        } else if let Some((var, v)) = from_env.iter().find(|(k, _)| is_env_name_of(k, long)) {
            match kind {
                Switch => {
                    let on = crate::parse::switch(v)
                        .map_err(|e| Error::config(format!("{var}: {e}")))?;
                    if on {
                        vec![String::new()]
                    } else {
                        vec![]
                    }
                }
                Value => vec![v.clone()],
                Repeat => v
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
    a.command = positionals(m, "COMMAND");
    if a.command.is_empty() {
        return Err(Error::usage(
            "no COMMAND given: usage: berth [OPTIONS] [--] COMMAND [ARG...]; see berth --help",
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
        "log-stream-level" => a.log_stream_level = one,
        "log-multiline" => a.log_multiline = one,
        "log-pipe-size" => a.log_pipe_size = one,
        "health" => a.health = one,
        "health-interval" => a.health_interval = one,
        "health-timeout" => a.health_timeout = one,
        "health-retries" => a.health_retries = one,
        "health-start-period" => a.health_start_period = one,
        "health-start-interval" => a.health_start_interval = one,
        "wait-timeout" => a.wait_timeout = one,
        "status-listen" => a.status_listen = one,
        "on-unhealthy" => a.on_unhealthy = one,
        "runtime-limits-memory" => a.runtime_limits_memory = one,
        "allow-new-privs" => a.allow_new_privs = one.is_some(),
        "keep-root" => a.keep_root = one.is_some(),
        _ => {
            // Repeatable options: put the popped value back.
            v.extend(one);
            match long {
                "chown" => a.chown = v,
                "env-from-file" => a.env_from_file = v,
                "template" => a.template = v,
                "map-signal" => a.map_signal = v,
                "success-exit" => a.success_exit = v,
                "log-field" => a.log_field = v,
                "rlimit" => a.rlimit = v,
                "wait-for" => a.wait_for = v,
                "runtime-limits" => a.runtime_limits = v,
                _ => {}
            }
        }
    }
}

fn parse_probe(m: &ArgMatches) -> Result<Invocation, Error> {
    let target = match positionals(m, "TARGET").as_slice() {
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
        timeout: values(m, "timeout").pop(),
        header: values(m, "header"),
        expect_status: values(m, "expect-status"),
        wait: values(m, "wait").pop(),
    }))
}

fn parse_drill(m: &ArgMatches) -> Result<Invocation, Error> {
    // (position on the command line, long name, kind, value) of every
    // option typed, so both lists keep the order they were given in.
    let mut typed: Vec<(usize, &'static str, Kind, String)> = Vec::new();
    for &(long, _, _, kind, _) in DRILL_OPTIONS.iter().chain(RUN_OPTIONS) {
        if !given(m, long) {
            continue;
        }
        let at = m.indices_of(long).into_iter().flatten();
        match kind {
            Switch => typed.extend(at.take(1).map(|i| (i, long, kind, String::new()))),
            _ => typed.extend(at.zip(values(m, long)).map(|(i, v)| (i, long, kind, v))),
        }
    }
    typed.sort_by_key(|t| t.0);
    let mut d = DrillArgs::default();
    for (_, long, kind, value) in typed {
        if DRILL_OPTIONS.iter().any(|o| o.0 == long) {
            d.given.push((long, value));
        } else if kind == Switch {
            d.run_options.push(format!("--{long}").into());
        } else {
            d.run_options.push(format!("--{long}={value}").into());
        }
    }
    d.command = positionals(m, "COMMAND");
    if d.command.is_empty() {
        return Err(Error::usage(
            "drill: no COMMAND given: usage: berth drill [OPTIONS] --url URL -- COMMAND [ARG...]",
        ));
    }
    Ok(Invocation::Drill(Box::new(d)))
}

const RUN_HEAD: &str = "\
berth: a PID-1 init for containers. Runs COMMAND (as a non-root user), forwards
signals, stops it gracefully, reaps zombies, probes health, logs JSON lines.

Usage: berth [OPTIONS] [--] COMMAND [ARG...]
       berth probe [OPTIONS] TARGET        one health probe (berth probe --help)
       berth status [--ready] [--pid N]    ask a running berth about the app
       berth drill [OPTIONS] --url URL -- COMMAND [ARG...]
                                           prove COMMAND survives a deploy";

const RUN_TAIL: &str = "\
Every option is also a variable BERTH_<OPTION> (the flag wins): BERTH_GRACE=10s,
BERTH_NO_GROUP=1 (1/true/yes, 0/false/no); repeatable ones (VALUE...) take a
comma-separated list: BERTH_MAP_SIGNAL=HUP:USR1,USR2:0.
Exit: the app's code, 128+N if killed by signal N; 2 usage, 125 bad value or
setup, 126 COMMAND not executable, 127 not found.";

fn help_for(sub: &str) -> String {
    match sub {
        "probe" => help(
            "berth probe: one health probe. Exit 0 healthy, 1 unhealthy, 2 usage error.\n\n\
             Usage: berth probe [OPTIONS] TARGET\n\n\
             TARGET: http://HOST[:PORT]/PATH, tcp://HOST:PORT or grpc://HOST:PORT[/SERVICE]",
            &[PROBE_OPTIONS],
            "",
        ),
        "status" => help(
            "berth status: ask a running berth for the app's state. Exit 0 running and not\n\
             unhealthy, 1 otherwise, 2 when no berth answers.\n\n\
             Usage: berth status [--ready] [--pid N]",
            &[STATUS_OPTIONS],
            "",
        ),
        "drill" => help(
            "berth drill: prove COMMAND survives a deploy. Runs it under berth with the RUN\n\
             OPTIONS, waits until it is healthy, sends HTTP keep-alive load, sends SIGTERM,\n\
             keeps the load on for --lag and reports what failed and how to fix it.\n\
             Exit 0 when no request failed, 1 otherwise, 2 usage error.\n\n\
             Usage: berth drill [OPTIONS] [RUN OPTIONS] --url URL -- COMMAND [ARG...]",
            &[DRILL_OPTIONS],
            "RUN OPTIONS: every option of berth --help, passed on to berth.",
        ),
        _ => help(RUN_HEAD, &[RUN_OPTIONS], RUN_TAIL),
    }
}

/// One line per option, as tini and curl print theirs.
fn help(head: &str, tables: &[&[Opt]], tail: &str) -> String {
    let left = |&(long, short, value, kind, _): &Opt| {
        let short = short
            .map(|c| format!("-{c}, "))
            .unwrap_or_else(|| "    ".into());
        let repeat = if kind == Repeat { "..." } else { "" };
        format!("  {short}--{long} {value}{repeat}")
    };
    let options = || tables.iter().copied().flatten().chain(PRINT_OPTIONS);
    let width = options().map(|o| left(o).len()).max().unwrap_or(0) + 2;
    let mut h = format!("{head}\n\nOptions:\n");
    for o in options() {
        h.push_str(&format!("{:width$}{}\n", left(o), o.4));
    }
    if !tail.is_empty() {
        h.push('\n');
        h.push_str(tail);
        h.push('\n');
    }
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

    fn usage_message(argv: &[&str]) -> String {
        let e = parse(os(argv), &[]).err().expect("a usage error");
        assert_eq!(e.exit_code(), 2, "{}", e.message());
        e.message().to_string()
    }

    #[test]
    fn a_mistyped_option_gets_clap_s_suggestion_in_one_line() {
        assert_eq!(
            usage_message(&["berth", "--grase", "1s", "true"]),
            "unknown option --grase (did you mean --grace?); see berth --help"
        );
        assert_eq!(
            usage_message(&["berth", "drill", "--connectons", "9", "--", "true"]),
            "drill: unknown option --connectons (did you mean --connections?); see berth drill --help"
        );
        assert_eq!(
            usage_message(&["berth", "--grace"]),
            "--grace needs a value: DURATION; see berth --help"
        );
        assert_eq!(
            usage_message(&["berth", "--no-group=1", "true"]),
            "--no-group takes no value; see berth --help"
        );
    }

    #[test]
    fn an_unknown_option_quoting_a_newline_stays_one_line() {
        for argv in [
            &["berth", "--bo\ngus", "true"][..],
            &["berth", "status", "x\ny"],
            &["berth", "-\n", "true"],
        ] {
            let m = usage_message(argv);
            assert!(!m.contains('\n'), "{m:?}");
        }
    }

    #[test]
    fn an_empty_argv_is_a_usage_error() {
        assert_eq!(parse(vec![], &[]).err().unwrap().exit_code(), 2);
    }

    #[test]
    fn values_that_look_like_options_are_values() {
        let a = run(
            &["berth", "--map-signal", "-x", "--grace", "--", "true"],
            &[],
        );
        assert_eq!(a.map_signal, vec!["-x"]);
        assert_eq!(a.grace.as_deref(), Some("--"));
        assert_eq!(a.command, os(&["true"]));
    }

    #[test]
    fn the_last_of_a_repeated_value_option_wins() {
        let a = run(
            &[
                "berth",
                "--grace=1s",
                "-u",
                "a",
                "-ub",
                "--grace",
                "2s",
                "x",
            ],
            &[],
        );
        assert_eq!(a.grace.as_deref(), Some("2s"));
        assert_eq!(a.user.as_deref(), Some("b"));
    }

    #[test]
    fn a_subcommand_name_after_an_option_is_the_command() {
        let a = run(&["berth", "--no-group", "probe", "--timeout", "1s"], &[]);
        assert!(a.no_group);
        assert_eq!(a.command, os(&["probe", "--timeout", "1s"]));
        let a = run(&["berth", "true", "probe"], &[]);
        assert_eq!(a.command, os(&["true", "probe"]));
    }

    #[test]
    fn a_command_that_is_not_utf8_still_runs() {
        use std::os::unix::ffi::OsStringExt;
        let odd = OsString::from_vec(b"/bin/\xff".to_vec());
        let argv = vec!["berth".into(), odd.clone(), "-x".into()];
        let Ok(Invocation::Run(a)) = parse(argv, &[]) else {
            panic!("not a run")
        };
        assert_eq!(a.command, vec![odd, "-x".into()]);
    }

    #[test]
    fn runtime_limits_come_as_a_list_from_flags_or_the_variable() {
        let a = run(
            &[
                "berth",
                "--runtime-limits",
                "go,node",
                "--runtime-limits=workers",
                "x",
            ],
            &[],
        );
        assert_eq!(a.runtime_limits, vec!["go,node", "workers"]);
        let a = run(
            &["berth", "x"],
            &[
                ("BERTH_RUNTIME_LIMITS", "go,node"),
                ("BERTH_RUNTIME_LIMITS_MEMORY", "80"),
            ],
        );
        assert_eq!(a.runtime_limits, vec!["go", "node"]);
        assert_eq!(a.runtime_limits_memory.as_deref(), Some("80"));
    }

    #[test]
    fn log_stream_level_is_collected_from_flag_and_variable() {
        let a = run(&["berth", "--log-stream-level", "on", "true"], &[]);
        assert_eq!(a.log_stream_level.as_deref(), Some("on"));
        let a = run(&["berth", "true"], &[("BERTH_LOG_STREAM_LEVEL", "off")]);
        assert_eq!(a.log_stream_level.as_deref(), Some("off"));
    }

    #[test]
    fn each_subcommand_has_its_help_and_every_one_the_version() {
        for (argv, needle) in [
            (&["berth", "probe", "--help"][..], "--expect-status"),
            (&["berth", "status", "-h"], "--ready"),
            (&["berth", "drill", "--help"], "--start-timeout"),
            (&["berth", "--grace", "1s", "-h", "true"], "--rlimit"),
        ] {
            match parse(os(argv), &[]) {
                Ok(Invocation::Print(t)) => assert!(t.contains(needle), "{argv:?}: {t}"),
                _ => panic!("{argv:?}: no help"),
            }
        }
        assert!(
            matches!(parse(os(&["berth", "probe", "-V"]), &[]), Ok(Invocation::Print(t)) if t == version() + "\n")
        );
    }

    #[test]
    fn every_run_option_is_in_the_help_once() {
        let h = help_for("");
        for o in RUN_OPTIONS {
            let n = h.matches(&format!("--{} ", o.0)).count();
            assert_eq!(n, 1, "--{} in {h}", o.0);
        }
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
