//! `RunArgs` (strings as typed) → `Config` (typed, defaulted, resolved):
//! durations, signals, the user from the image's /etc/passwd, rlimits and the
//! log mode. Every bad value becomes one 125 error naming the option.
//! Nothing here spawns or touches signals.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use crate::cli::{ProbeArgs, RunArgs};
use crate::error::Error;
use crate::health::grpc::validate_metadata;
use crate::health::probe::{validate_header, ProbeOptions};
use crate::health::target::{parse_target, Target};
use crate::logs::json::KeyStyle;
use crate::parse;
use crate::persona::Init;
use crate::prepare::runtime_limits::{self, RuntimeLimits};
use crate::prepare::secrets::{self, EnvFromFile};
use crate::prepare::template::{self, Template};
use crate::signals::SignalMap;
use crate::user::Identity;

/// Default grace: inside Docker's default 10 s stop timeout with room for
/// berth's own SIGKILL, flush and `exit` event.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(8);
pub const DEFAULT_MAX_LINE: usize = 16384;
pub const MIN_MAX_LINE: usize = 1024;
/// What berth's stdout pipe grows to once an app floods it: measured in
/// docs/benchmarks.md (tuning log, issue 19), where 512 KiB was as fast as
/// 1 MiB.
pub const DEFAULT_PIPE_SIZE: usize = 512 * 1024;
pub const MAX_PIPE_SIZE: usize = 64 * 1024 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogMode {
    Json,
    Plain,
}

#[derive(Clone, Debug)]
pub struct LogConfig {
    pub mode: LogMode,
    pub service: String,
    pub fields: Vec<(String, String)>,
    pub max_line_bytes: usize,
    pub keys: KeyStyle,
    /// Text lines carry their stream's level (`--log-stream-level`).
    pub stream_level: bool,
    pub multiline: bool,
    /// `--log-pipe-size`: what a flooded stdout pipe grows to (0: never).
    pub pipe_size: usize,
}

#[derive(Clone, Debug)]
pub struct HealthConfig {
    pub target: Target,
    pub interval: Duration,
    pub timeout: Duration,
    pub retries: u32,
    pub start_period: Duration,
    pub start_interval: Duration,
}

/// `--wait-for` and `--wait-timeout` (SPEC "Before the app starts" step 4).
#[derive(Clone, Debug)]
pub struct WaitConfig {
    /// Each as typed (for messages) and parsed.
    pub targets: Vec<(String, Target)>,
    pub timeout: Duration,
}

/// Default `--wait-timeout` (SPEC): a database's first start (initdb) often
/// outlasts wait-for-it's 15 s and dockerize's 10 s defaults.
pub const DEFAULT_WAIT_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Clone, Debug)]
pub struct Config {
    pub command: Vec<OsString>,
    /// Who the app runs as; None keeps berth's own ids.
    pub identity: Option<Identity>,
    pub user_spec: Option<String>,
    pub chown: Vec<PathBuf>,
    /// `--env-from-file`: NAMEs and paths, never values (prepare/secrets.rs).
    pub env_from_file: Vec<EnvFromFile>,
    /// `--template SRC:DST` (prepare/template.rs).
    pub templates: Vec<Template>,
    pub require_non_root: bool,
    pub grace: Duration,
    pub stop_signal: i32,
    pub signal_map: SignalMap,
    pub preserve_fds: i32,
    pub drain: Duration,
    pub whole_group: bool,
    pub success_exit: Vec<u8>,
    pub log: LogConfig,
    pub health: Option<HealthConfig>,
    /// `--wait-for`: dependencies to wait for before the app starts.
    pub wait: Option<WaitConfig>,
    pub on_unhealthy_exit: bool,
    /// `--status-listen`: serve /livez and /readyz over HTTP here.
    pub status_listen: Option<std::net::SocketAddr>,
    /// (resource, name, soft, hard)
    pub rlimits: Vec<parse::Rlimit>,
    /// `--runtime-limits`: which runtimes to size (None: off).
    pub runtime_limits: Option<RuntimeLimits>,
    pub no_new_privs: bool,
    pub keep_root: bool,
    /// How berth was started: an engine's init or an ENTRYPOINT.
    pub init: Init,
}

fn bad(option: &str, e: String) -> Error {
    Error::config(format!("--{option} {e}"))
}

fn duration(option: &str, v: &Option<String>, default: Duration) -> Result<Duration, Error> {
    match v {
        None => Ok(default),
        Some(s) => parse::duration(s).map_err(|e| bad(option, e)),
    }
}

/// Where the facts config needs from outside come from (tests pass fakes).
pub struct Facts<'a> {
    pub stdout_is_tty: bool,
    /// argv[0]'s persona (persona.rs).
    pub init: Init,
    pub passwd: Option<&'a [u8]>,
    pub group: Option<&'a [u8]>,
}

pub fn build(a: &RunArgs, facts: &Facts) -> Result<Config, Error> {
    let grace = duration("grace", &a.grace, DEFAULT_GRACE)?;
    let drain = duration("drain", &a.drain, Duration::ZERO)?;
    let stop_signal = match &a.stop_signal {
        None => libc::SIGTERM,
        Some(s) => parse::signal(s).map_err(|e| bad("stop-signal", e))?,
    };
    let mut pairs = Vec::new();
    for m in &a.map_signal {
        pairs.push(parse::signal_map(m).map_err(|e| bad("map-signal", e))?);
    }
    let preserve_fds = match &a.preserve_fds {
        None => 0,
        Some(s) => match s.trim().parse::<u16>() {
            Ok(n) if n <= 4096 => n as i32,
            _ => {
                return Err(bad(
                    "preserve-fds",
                    format!("\"{s}\": expected a number of fds from 0 to 4096"),
                ))
            }
        },
    };
    let mut success_exit = Vec::new();
    for c in &a.success_exit {
        success_exit.push(parse::exit_code(c).map_err(|e| bad("success-exit", e))?);
    }
    let mut rlimits = Vec::new();
    for r in &a.rlimit {
        rlimits.push(parse::rlimit(r).map_err(|e| bad("rlimit", e))?);
    }

    let env_from_file =
        secrets::parse_options(&a.env_from_file).map_err(|e| bad("env-from-file", e))?;
    let templates = template::parse_options(&a.template).map_err(|e| bad("template", e))?;
    let runtime_limits = runtime_limits_config(a)?;

    let identity = match &a.user {
        None => None,
        Some(spec) => {
            let id = crate::user::resolve(spec, facts.passwd, facts.group)
                .map_err(|e| Error::config(format!("--user: {e}")))?;
            Some(id)
        }
    };
    if a.require_non_root {
        let uid = identity
            .as_ref()
            .map(|i| i.uid)
            .unwrap_or_else(|| nix::unistd::getuid().as_raw());
        if uid == 0 {
            return Err(Error::config(
                "--require-non-root: the app would run as uid 0; give --user USER (or BERTH_USER)",
            ));
        }
    }

    let log = log_config(a, facts)?;
    let health = health_config(a)?;
    let wait = wait_config(a)?;
    let on_unhealthy_exit = match a.on_unhealthy.as_deref() {
        None | Some("log") => false,
        Some("exit") => true,
        Some(o) => {
            return Err(bad(
                "on-unhealthy",
                format!("\"{o}\": expected log or exit"),
            ))
        }
    };
    let status_listen = match &a.status_listen {
        None => None,
        Some(v) => Some(parse::listen_addr(v).map_err(|e| bad("status-listen", e))?),
    };
    Ok(Config {
        command: a.command.clone(),
        identity,
        user_spec: a.user.clone(),
        chown: a.chown.iter().map(PathBuf::from).collect(),
        env_from_file,
        templates,
        require_non_root: a.require_non_root,
        grace,
        stop_signal,
        signal_map: SignalMap::with(&pairs),
        preserve_fds,
        drain,
        whole_group: !a.no_group,
        success_exit,
        log,
        health,
        wait,
        on_unhealthy_exit,
        status_listen,
        rlimits,
        runtime_limits,
        no_new_privs: !a.allow_new_privs,
        keep_root: a.keep_root,
        init: facts.init,
    })
}

fn runtime_limits_config(a: &RunArgs) -> Result<Option<RuntimeLimits>, Error> {
    if a.runtime_limits.is_empty() {
        return match a.runtime_limits_memory {
            Some(_) => Err(Error::config(
                "--runtime-limits-memory needs --runtime-limits go,node,workers|all",
            )),
            None => Ok(None),
        };
    }
    let mut r =
        runtime_limits::parse_runtimes(&a.runtime_limits).map_err(|e| bad("runtime-limits", e))?;
    if let Some(p) = &a.runtime_limits_memory {
        let p = runtime_limits::parse_percent(p).map_err(|e| bad("runtime-limits-memory", e))?;
        r.memory_percent = Some(p);
    }
    Ok(Some(r))
}

fn log_config(a: &RunArgs, facts: &Facts) -> Result<LogConfig, Error> {
    let mode = match a.log_format.as_deref() {
        // The engine's init is a transparent one: its log driver gets the
        // app's lines as they are, as with tini (BERTH_LOG_FORMAT=json, or
        // the flag, still asks for JSON).
        None if facts.init.is_engine() => LogMode::Plain,
        None | Some("auto") => {
            if facts.stdout_is_tty {
                LogMode::Plain
            } else {
                LogMode::Json
            }
        }
        Some("json") => LogMode::Json,
        Some("plain") => LogMode::Plain,
        Some(o) => {
            return Err(bad(
                "log-format",
                format!("\"{o}\": expected auto, json or plain"),
            ))
        }
    };
    let service = match &a.service {
        Some(s) => s.clone(),
        None => a
            .command
            .first()
            .map(|c| {
                let p = std::path::Path::new(c);
                p.file_name()
                    .unwrap_or(c.as_os_str())
                    .to_string_lossy()
                    .into_owned()
            })
            .unwrap_or_default(),
    };
    let mut fields = Vec::new();
    for f in &a.log_field {
        let (k, v) = parse::key_value(f).map_err(|e| bad("log-field", e))?;
        // `stream` is always the stream a line came from: a static one
        // would make every app line look like another (or like berth's).
        if k == "stream" {
            return Err(bad(
                "log-field",
                format!("\"{f}\": stream is berth's own key (the line's real stream)"),
            ));
        }
        fields.push((k, v));
    }
    let max_line_bytes = match &a.log_max_line {
        None => DEFAULT_MAX_LINE,
        Some(s) => {
            let n = parse::bytes(s).map_err(|e| bad("log-max-line", e))?;
            if n < MIN_MAX_LINE {
                return Err(bad(
                    "log-max-line",
                    format!("\"{s}\": must be at least {MIN_MAX_LINE} bytes"),
                ));
            }
            n
        }
    };
    let keys = match a.log_keys.as_deref() {
        None | Some("default") => KeyStyle::Default,
        Some("gcp") => KeyStyle::Gcp,
        Some("ecs") => KeyStyle::Ecs,
        Some(o) => {
            return Err(bad(
                "log-keys",
                format!("\"{o}\": expected default, gcp or ecs"),
            ))
        }
    };
    // GKE's agent gives plain stderr lines ERROR and stdout lines INFO;
    // berth merges both onto stdout, so it says the stream's level itself
    // where the key style is one a log platform reads.
    let stream_level = match a.log_stream_level.as_deref() {
        None => keys != KeyStyle::Default,
        Some("on") => true,
        Some("off") => false,
        Some(o) => {
            return Err(bad(
                "log-stream-level",
                format!("\"{o}\": expected on or off"),
            ))
        }
    };
    let multiline = match a.log_multiline.as_deref() {
        None => false,
        Some("indent") => true,
        Some(o) => return Err(bad("log-multiline", format!("\"{o}\": expected indent"))),
    };
    let pipe_size = match &a.log_pipe_size {
        None => DEFAULT_PIPE_SIZE,
        Some(s) => {
            let n = parse::bytes(s).map_err(|e| bad("log-pipe-size", e))?;
            // The kernel's own ceiling for a process without
            // CAP_SYS_RESOURCE is /proc/sys/fs/pipe-max-size (1 MiB by
            // default); 64 MiB keeps a typo from asking for gigabytes.
            if n > MAX_PIPE_SIZE {
                return Err(bad(
                    "log-pipe-size",
                    format!("\"{s}\": at most 64m (0 keeps the pipe as it is)"),
                ));
            }
            n
        }
    };
    Ok(LogConfig {
        mode,
        service,
        fields,
        max_line_bytes,
        keys,
        stream_level,
        multiline,
        pipe_size,
    })
}

fn health_config(a: &RunArgs) -> Result<Option<HealthConfig>, Error> {
    let Some(t) = &a.health else {
        let given = [
            ("health-interval", &a.health_interval),
            ("health-timeout", &a.health_timeout),
            ("health-retries", &a.health_retries),
            ("health-start-period", &a.health_start_period),
            ("health-start-interval", &a.health_start_interval),
        ];
        if let Some((name, _)) = given.iter().find(|(_, v)| v.is_some()) {
            return Err(Error::config(format!("--{name} needs --health TARGET")));
        }
        if a.on_unhealthy.as_deref() == Some("exit") {
            return Err(Error::config("--on-unhealthy exit needs --health TARGET"));
        }
        return Ok(None);
    };
    let target = parse_target(t).map_err(|e| Error::config(format!("--health {e}")))?;
    let interval = duration(
        "health-interval",
        &a.health_interval,
        Duration::from_secs(10),
    )?;
    let timeout = duration("health-timeout", &a.health_timeout, Duration::from_secs(3))?;
    let start_period = duration(
        "health-start-period",
        &a.health_start_period,
        Duration::ZERO,
    )?;
    let start_interval = duration("health-start-interval", &a.health_start_interval, interval)?;
    if interval.is_zero() || start_interval.is_zero() || timeout.is_zero() {
        return Err(Error::config(
            "--health-interval, --health-start-interval and --health-timeout must be more than 0",
        ));
    }
    let retries = match &a.health_retries {
        None => 3,
        Some(s) => match s.trim().parse::<u32>() {
            Ok(n) if n >= 1 => n,
            _ => {
                return Err(bad(
                    "health-retries",
                    format!("\"{s}\": expected a number ≥ 1"),
                ))
            }
        },
    };
    Ok(Some(HealthConfig {
        target,
        interval,
        timeout,
        retries,
        start_period,
        start_interval,
    }))
}

fn wait_config(a: &RunArgs) -> Result<Option<WaitConfig>, Error> {
    if a.wait_for.is_empty() {
        if a.wait_timeout.is_some() {
            return Err(Error::config("--wait-timeout needs --wait-for TARGET"));
        }
        return Ok(None);
    }
    let mut targets = Vec::with_capacity(a.wait_for.len());
    for t in &a.wait_for {
        let parsed = parse_target(t).map_err(|e| Error::config(format!("--wait-for {e}")))?;
        targets.push((t.clone(), parsed));
    }
    let timeout = duration("wait-timeout", &a.wait_timeout, DEFAULT_WAIT_TIMEOUT)?;
    if timeout.is_zero() {
        return Err(Error::config("--wait-timeout must be more than 0"));
    }
    Ok(Some(WaitConfig { targets, timeout }))
}

/// `berth probe`'s options, typed. Every bad value here is a usage error
/// (2), as the probe's contract says; the run options' are 125.
pub struct ProbeConfig {
    pub target: Target,
    pub options: ProbeOptions,
    /// `--wait`: keep trying this long.
    pub wait: Option<Duration>,
}

pub fn build_probe(p: &ProbeArgs) -> Result<ProbeConfig, Error> {
    let usage = |m: String| Error::usage(format!("probe: {m}"));
    let target = parse_target(&p.target).map_err(|e| usage(e.to_string()))?;
    let positive = |name: &str, v: &Option<String>| -> Result<Option<Duration>, Error> {
        match v {
            None => Ok(None),
            Some(t) => match parse::duration(t) {
                Ok(d) if !d.is_zero() => Ok(Some(d)),
                Ok(_) => Err(usage(format!("--{name} must be more than 0"))),
                Err(e) => Err(usage(format!("--{name} {e}"))),
            },
        }
    };
    let timeout = positive("timeout", &p.timeout)?.unwrap_or(Duration::from_secs(3));
    let wait = positive("wait", &p.wait)?;
    let grpc = matches!(target, Target::Grpc { .. });
    for h in &p.header {
        validate_header(h)
            .and_then(|()| if grpc { validate_metadata(h) } else { Ok(()) })
            .map_err(|e| usage(format!("--header {e}")))?;
    }
    let mut expect_status = Vec::new();
    for s in &p.expect_status {
        match s.trim().parse::<u16>() {
            Ok(c) if (100..=599).contains(&c) => expect_status.push(c),
            _ => {
                return Err(usage(format!(
                    "--expect-status \"{s}\": expected an HTTP status code from 100 to 599"
                )))
            }
        }
    }
    Ok(ProbeConfig {
        target,
        options: ProbeOptions {
            timeout,
            headers: p.header.clone(),
            expect_status,
        },
        wait,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(cmd: &[&str]) -> RunArgs {
        RunArgs {
            command: cmd.iter().map(OsString::from).collect(),
            ..RunArgs::default()
        }
    }

    fn facts() -> Facts<'static> {
        Facts {
            stdout_is_tty: false,
            init: Init::Entrypoint,
            passwd: Some(b"root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n"),
            group: Some(b"root:x:0:\napp:x:1000:\n"),
        }
    }

    #[test]
    fn defaults() {
        let c = build(&args(&["/usr/bin/true"]), &facts()).unwrap();
        assert_eq!(c.grace, DEFAULT_GRACE);
        assert_eq!(c.stop_signal, libc::SIGTERM);
        assert_eq!(c.log.mode, LogMode::Json);
        assert_eq!(c.log.service, "true");
        assert_eq!(c.log.max_line_bytes, 16384);
        assert!(c.whole_group && c.no_new_privs && !c.keep_root);
        assert!(c.identity.is_none());
    }

    #[test]
    fn auto_is_plain_on_a_terminal() {
        let f = Facts {
            stdout_is_tty: true,
            ..facts()
        };
        assert_eq!(build(&args(&["x"]), &f).unwrap().log.mode, LogMode::Plain);
    }

    #[test]
    fn an_engines_init_defaults_to_plain_but_json_can_be_asked_for() {
        for init in [Init::Docker, Init::Podman] {
            let f = Facts { init, ..facts() };
            let c = build(&args(&["x"]), &f).unwrap();
            assert_eq!((c.log.mode, c.init), (LogMode::Plain, init));
            let mut a = args(&["x"]);
            a.log_format = Some("json".into());
            assert_eq!(build(&a, &f).unwrap().log.mode, LogMode::Json);
            a.log_format = Some("auto".into());
            assert_eq!(build(&a, &f).unwrap().log.mode, LogMode::Json);
        }
    }

    #[test]
    fn bad_values_are_125_and_name_the_option() {
        type Setter = fn(&mut RunArgs);
        let cases: Vec<(Setter, &str)> = vec![
            (|a| a.grace = Some("10x".into()), "--grace"),
            (|a| a.stop_signal = Some("NOPE".into()), "--stop-signal"),
            (|a| a.map_signal = vec!["HUP".into()], "--map-signal"),
            (|a| a.success_exit = vec!["300".into()], "--success-exit"),
            (|a| a.rlimit = vec!["bogus=1".into()], "--rlimit"),
            (|a| a.log_format = Some("xml".into()), "--log-format"),
            (|a| a.log_max_line = Some("100".into()), "--log-max-line"),
            (|a| a.user = Some("nobody-here".into()), "--user"),
            (|a| a.preserve_fds = Some("-1".into()), "--preserve-fds"),
            (|a| a.health = Some("https://x/".into()), "--health"),
            (
                |a| a.log_stream_level = Some("yes".into()),
                "--log-stream-level",
            ),
            (|a| a.log_field = vec!["stream=berth".into()], "--log-field"),
            (
                |a| a.env_from_file = vec!["A-B=/x".into()],
                "--env-from-file",
            ),
            (|a| a.template = vec!["/only-src".into()], "--template"),
            (
                |a| a.runtime_limits = vec!["foo".into()],
                "--runtime-limits",
            ),
            (
                |a| a.runtime_limits_memory = Some("50".into()),
                "--runtime-limits-memory",
            ),
            (
                |a| {
                    a.runtime_limits = vec!["all".into()];
                    a.runtime_limits_memory = Some("150".into());
                },
                "--runtime-limits-memory",
            ),
            (
                |a| {
                    a.runtime_limits = vec!["go".into()];
                    a.runtime_limits_memory = Some("0".into());
                },
                "--runtime-limits-memory",
            ),
        ];
        for (set, name) in cases {
            let mut a = args(&["x"]);
            set(&mut a);
            let e = build(&a, &facts())
                .err()
                .unwrap_or_else(|| panic!("{name} accepted"));
            assert_eq!(e.exit_code(), 125, "{name}");
            assert!(e.message().contains(name), "{name}: {}", e.message());
        }
    }

    #[test]
    fn user_is_resolved_from_the_files() {
        let mut a = args(&["x"]);
        a.user = Some("app".into());
        let c = build(&a, &facts()).unwrap();
        let id = c.identity.unwrap();
        assert_eq!((id.uid, id.gid), (1000, 1000));
    }

    #[test]
    fn require_non_root_refuses_uid_0() {
        let mut a = args(&["x"]);
        a.user = Some("root".into());
        a.require_non_root = true;
        assert_eq!(build(&a, &facts()).err().unwrap().exit_code(), 125);
        a.user = Some("app".into());
        assert!(build(&a, &facts()).is_ok());
    }

    #[test]
    fn stream_level_defaults_on_for_gcp_and_ecs_only() {
        for (keys, flag, want) in [
            (None, None, false),
            (Some("default"), None, false),
            (Some("gcp"), None, true),
            (Some("ecs"), None, true),
            (Some("gcp"), Some("off"), false),
            (Some("default"), Some("on"), true),
        ] {
            let mut a = args(&["x"]);
            a.log_keys = keys.map(Into::into);
            a.log_stream_level = flag.map(Into::into);
            let c = build(&a, &facts()).unwrap();
            assert_eq!(c.log.stream_level, want, "{keys:?} {flag:?}");
        }
    }
}
