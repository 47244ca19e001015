//! `berth drill`: proves an app survives a deploy. It runs COMMAND under a
//! child berth (this very binary, with the run options given), waits until
//! the app is healthy, sends HTTP/1.1 keep-alive load at it on loopback,
//! sends berth SIGTERM (the orchestrator's stop), keeps the load on for
//! `--lag` (a load balancer that notices late), and reports what failed,
//! how the app ended, and how to fix it (report.rs).
//!
//! Nothing here runs in berth's own run path: `main` reaches this module
//! only for `berth drill`. One thread and one `poll(2)` loop drive the load
//! (load.rs), the child's output and the schedule, as berth's own loop does:
//! no locks, and the schedule (SIGTERM at `--stop-after`, sending off at
//! the lag's end) is exact to the loop's wake-up.

pub mod load;
pub mod report;

use std::collections::VecDeque;
use std::ffi::CString;
use std::ffi::OsString;
use std::fs::File;
use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

use crate::cli::{DrillArgs, Invocation};
use crate::error::Error;
use crate::health::probe::{probe, ProbeOptions};
use crate::health::resolve::{resolve, Sources};
use crate::health::target::{parse_target, Host, Target};
use crate::parse;
use crate::sys;
use load::Load;
use report::{ExitEvent, Facts, Report, Setup};

/// Upper bounds that keep a typo from running for hours.
const MAX_RPS: u32 = 10_000;
const MAX_CONNECTIONS: usize = 512;
const MAX_PHASE: Duration = Duration::from_secs(3600);
/// Time between readiness probes.
const READY_PAUSE: Duration = Duration::from_millis(50);
/// Extra time berth gets, past drain + grace, to exit before the drill kills it.
const EXIT_SLACK: Duration = Duration::from_secs(5);
/// berth output lines kept to show when the app never became healthy.
const TAIL_LINES: usize = 10;

/// What the drill will do, checked.
struct Plan {
    setup: Setup,
    json: bool,
    /// Where the load goes, resolved (loopback only).
    addrs: Vec<SocketAddr>,
    request: Vec<u8>,
    /// What "healthy" means: `--health`, else the URL.
    ready: Target,
    /// berth's argv after the program name.
    berth_args: Vec<OsString>,
}

/// `berth drill`: 0 when nothing failed, 1 otherwise, 2 usage error.
pub fn run(args: &DrillArgs, env: &[(OsString, OsString)]) -> u8 {
    let plan = match plan(args, env) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
    let facts = match drill(&plan) {
        Ok(f) => f,
        Err(why) => {
            eprintln!("berth: drill: {why}");
            return 1;
        }
    };
    let report = Report {
        setup: &plan.setup,
        facts: &facts,
    };
    let text = if plan.json {
        report.json()
    } else {
        report.text()
    };
    let _ = std::io::Write::write_all(&mut std::io::stdout(), text.as_bytes());
    u8::from(!report.findings().is_empty())
}

fn usage(msg: String) -> Error {
    Error::usage(format!("drill: {msg}"))
}

fn plan(args: &DrillArgs, env: &[(OsString, OsString)]) -> Result<Plan, Error> {
    let last = |long: &str| {
        args.given
            .iter()
            .rev()
            .find(|(k, _)| *k == long)
            .map(|(_, v)| v.as_str())
    };
    let duration = |long: &str, default: Duration, zero_ok: bool| -> Result<Duration, Error> {
        let Some(v) = last(long) else {
            return Ok(default);
        };
        match parse::duration(v) {
            Ok(d) if d.is_zero() && !zero_ok => Err(usage(format!("--{long} must be more than 0"))),
            Ok(d) if d > MAX_PHASE => Err(usage(format!("--{long} \"{v}\": at most 1h"))),
            Ok(d) => Ok(d),
            Err(e) => Err(usage(format!("--{long} {e}"))),
        }
    };
    let count = |long: &str, default: u32, max: u32| -> Result<u32, Error> {
        let Some(v) = last(long) else {
            return Ok(default);
        };
        match v.trim().parse::<u32>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(usage(format!(
                "--{long} \"{v}\": expected a number from 1 to {max}"
            ))),
        }
    };
    let rps = count("rps", 50, MAX_RPS)?;
    let connections = count("connections", 4, MAX_CONNECTIONS as u32)? as usize;
    let stop_after = duration("stop-after", Duration::from_secs(2), false)?;
    let lag = duration("lag", Duration::from_secs(2), true)?;
    let timeout = duration("timeout", Duration::from_secs(3), false)?;
    let start_timeout = duration("start-timeout", Duration::from_secs(30), false)?;

    let url = last("url").ok_or_else(|| {
        usage("--url is required: where to send the load, e.g. --url http://127.0.0.1:8080/".into())
    })?;
    let target = parse_target(url).map_err(|e| usage(format!("--url {e}")))?;
    let Target::Http {
        host,
        port,
        path,
        host_header,
    } = &target
    else {
        return Err(usage(format!(
            "--url {url}: the load is HTTP; expected http://HOST:PORT/PATH"
        )));
    };
    let addrs = loopback_addrs(host, *port, url)?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: berth-drill\r\nAccept: */*\r\n\r\n"
    )
    .into_bytes();

    // The run options, checked as berth will check them (env included), so
    // a bad value is a usage error here rather than a failed drill.
    let mut argv: Vec<OsString> = vec!["berth".into()];
    argv.extend(args.run_options.iter().cloned());
    argv.push("--".into());
    argv.extend(args.command.iter().cloned());
    let run_args = match crate::cli::parse(argv, env)? {
        Invocation::Run(a) => a,
        _ => return Err(usage("COMMAND is missing".into())),
    };
    let cfg = crate::build_config(&run_args, crate::persona::Init::Entrypoint)?;

    let mut berth_args = args.run_options.clone();
    // berth's exit event (json mode) is how the drill learns how the app
    // ended; the last --log-format wins over the user's.
    berth_args.push("--log-format=json".into());
    berth_args.push("--".into());
    berth_args.extend(args.command.iter().cloned());

    Ok(Plan {
        setup: Setup {
            url: url.to_string(),
            rps,
            connections,
            stop_after,
            lag,
            timeout,
            start_timeout,
            drain: cfg.drain,
            grace: cfg.grace,
            stop_signal: parse::signal_name_string(cfg.stop_signal),
        },
        json: args.given.iter().any(|(k, _)| *k == "json"),
        addrs,
        request,
        ready: cfg.health.map_or(target.clone(), |h| h.target),
        berth_args,
    })
}

/// How long the drill's URL may take to resolve (the drill runs on a
/// developer's machine or CI, not as PID 1: a blocking lookup is fine).
const NAME_LOOKUP: Duration = Duration::from_secs(5);

/// The URL's addresses; the drill loads only the app it starts, on this
/// machine, so anything but loopback is refused.
fn loopback_addrs(host: &Host, port: u16, url: &str) -> Result<Vec<SocketAddr>, Error> {
    let addrs = resolve(host, port, NAME_LOOKUP, &Sources::system())
        .map_err(|e| usage(format!("--url {e}")))?;
    let local: Vec<SocketAddr> = addrs.into_iter().filter(|a| a.ip().is_loopback()).collect();
    if local.is_empty() {
        return Err(usage(format!(
            "--url {url}: not a loopback address; the drill loads the app it starts, on 127.0.0.1 or [::1]"
        )));
    }
    Ok(local)
}

/// berth's stdout: JSON lines read without blocking; keeps the last line
/// (berth's `exit` event is always last) and a short tail.
struct BerthOut {
    pipe: File,
    partial: Vec<u8>,
    last: String,
    tail: VecDeque<String>,
    /// From berth's `start` event: the app's pid, which is also its process group.
    app_pid: Option<i32>,
    eof: bool,
}

impl BerthOut {
    fn new(pipe: File) -> BerthOut {
        let _ = sys::set_nonblocking(pipe.as_raw_fd(), true);
        BerthOut {
            pipe,
            partial: Vec::new(),
            last: String::new(),
            tail: VecDeque::new(),
            app_pid: None,
            eof: false,
        }
    }

    /// Reads what is there (at most 1 MiB per call, so a flooding app
    /// cannot hold the loop).
    fn read(&mut self) {
        let mut buf = [0u8; 16 * 1024];
        for _ in 0..64 {
            match self.pipe.read(&mut buf) {
                Ok(0) => {
                    self.eof = true;
                    self.line_done();
                    return;
                }
                Ok(n) => {
                    for &b in buf.get(..n).unwrap_or_default() {
                        if b == b'\n' {
                            self.line_done();
                        } else if self.partial.len() < 64 * 1024 {
                            self.partial.push(b);
                        }
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return, // WouldBlock: all read
            }
        }
    }

    fn line_done(&mut self) {
        if self.partial.is_empty() {
            return;
        }
        self.last = String::from_utf8_lossy(&self.partial).into_owned();
        self.partial.clear();
        if self.tail.len() == TAIL_LINES {
            self.tail.pop_front();
        }
        self.tail.push_back(self.last.clone());
        if self.app_pid.is_none() && self.last.contains("\"event\":\"start\"") {
            self.app_pid = report::json_value(&self.last, "app_pid").and_then(|n| n.parse().ok());
        }
    }

    /// Waits at most `d` for output (or EOF) and reads it.
    fn wait(&mut self, d: Duration) {
        if self.eof {
            return;
        }
        let mut fds = [PollFd::new(self.pipe.as_fd(), PollFlags::POLLIN)];
        let _ = nix::poll::poll(&mut fds, timeout(d));
        self.read();
    }

    fn show_tail(&self) {
        if self.tail.is_empty() {
            return;
        }
        eprintln!("berth: drill: berth's last output lines:");
        for l in &self.tail {
            eprintln!("  {l}");
        }
    }
}

/// poll's timeout for `d`, in whole milliseconds rounded up.
fn timeout(d: Duration) -> PollTimeout {
    let ms = d.as_micros().div_ceil(1000).min(i32::MAX as u128);
    PollTimeout::try_from(ms as i32).unwrap_or(PollTimeout::MAX)
}

/// Starts the child berth: `/proc/self/exe` (this very binary) with the
/// run options, stdin from /dev/null (so it never takes the terminal),
/// stdout into a pipe the drill reads, stderr shared (berth's own errors
/// reach the user as they are).
fn spawn_berth(args: &[OsString]) -> Result<(Pid, File), String> {
    let cstr =
        |s: &[u8]| CString::new(s).map_err(|_| "an argument contains a NUL byte".to_string());
    let exe = cstr(b"/proc/self/exe")?;
    let mut argv = vec![cstr(b"berth")?];
    for a in args {
        argv.push(cstr(a.as_bytes())?);
    }
    let null = File::open("/dev/null").map_err(|e| format!("cannot open /dev/null: {e}"))?;
    let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
    let parent = nix::unistd::getpid();
    // The drill is single-threaded, so the child may use std until exec.
    let pid = sys::fork_job(move || {
        // If the drill dies (a CI timeout), berth gets SIGTERM and stops the
        // app; best effort, the kernel clears it if berth changes its ids.
        let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGTERM);
        if nix::unistd::getppid() != parent {
            return 1;
        }
        if nix::unistd::dup2_stdout(&w).is_err() || nix::unistd::dup2_stdin(&null).is_err() {
            return 125;
        }
        let _ = nix::unistd::execv(&exe, &argv);
        127
    })
    .map_err(|e| format!("fork: {e}"))?;
    Ok((pid, File::from(r)))
}

/// Runs the drill; Err only when berth cannot be started at all.
fn drill(plan: &Plan) -> Result<Facts, String> {
    let (pid, pipe) = spawn_berth(&plan.berth_args)?;
    let mut out = BerthOut::new(pipe);
    let mut facts = Facts::default();
    let s = &plan.setup;
    let exit_deadline = s.drain + s.grace + EXIT_SLACK;

    let started = Instant::now();
    facts.ready = Some(wait_ready(plan, &mut out, started).map(|()| started.elapsed()));
    if let Some(Err(_)) = facts.ready {
        let _ = kill(pid, Signal::SIGTERM);
        let end = Instant::now() + exit_deadline;
        // Bounded by `end`: each turn waits for output or the time left.
        while !out.eof && Instant::now() < end {
            out.wait(end.saturating_duration_since(Instant::now()));
        }
        facts.berth_killed = !out.eof;
        finish(pid, &mut out, &mut facts);
        out.show_tail();
        return Ok(facts);
    }

    // Where the load goes: the first address that accepts now.
    let addr = plan
        .addrs
        .iter()
        .copied()
        .find(|a| TcpStream::connect_timeout(a, s.timeout).is_ok())
        .unwrap_or(plan.addrs[0]);
    let begin = Instant::now();
    let stop_at = begin + s.stop_after;
    let lag_end = stop_at + s.lag;
    let mut load = Load::new(
        addr,
        plan.request.clone(),
        s.rps,
        s.connections,
        s.timeout,
        begin,
    );
    let mut stop_sent: Option<Instant> = None;
    let mut exited_at: Option<Instant> = None;
    // The loop ends by this at the latest, whatever happens.
    let hard_end = lag_end + s.timeout + exit_deadline;
    loop {
        let now = Instant::now();
        if stop_sent.is_none() && now >= stop_at && exited_at.is_none() {
            let _ = kill(pid, Signal::SIGTERM);
            stop_sent = Some(now);
            load.stopped(now);
        }
        if load.sending() && (now >= lag_end || exited_at.is_some_and(|_| stop_sent.is_none())) {
            load.stop_sending();
        }
        load.tick(now);
        let load_done = !load.sending() && !load.in_flight();
        if load_done {
            load.close_all();
            if out.eof {
                break;
            }
        }
        if now >= hard_end {
            break;
        }
        let mut next = hard_end;
        if stop_sent.is_none() && exited_at.is_none() {
            next = next.min(stop_at);
        }
        if load.sending() {
            next = next.min(lag_end);
        }
        if let Some(d) = load.deadline() {
            next = next.min(d);
        }
        let revents = {
            let mut fds = Vec::new();
            if !out.eof {
                fds.push(PollFd::new(out.pipe.as_fd(), PollFlags::POLLIN));
            }
            let first = fds.len();
            let owners = load.poll_fds(&mut fds);
            let _ = nix::poll::poll(&mut fds, timeout(next.saturating_duration_since(now)));
            let ev: Vec<PollFlags> = fds
                .iter()
                .map(|f| f.revents().unwrap_or(PollFlags::empty()))
                .collect();
            (first, owners, ev)
        };
        let (first, owners, ev) = revents;
        let now = Instant::now();
        if first == 1 && ev.first().is_some_and(|e| !e.is_empty()) {
            out.read();
            if out.eof {
                exited_at = Some(now);
            }
        }
        load.on_events(&owners, ev.get(first..).unwrap_or_default(), now);
    }
    load.close_all();
    facts.stats = load.stats.clone();
    match (stop_sent, exited_at) {
        (Some(t), Some(e)) => facts.stop_took = Some(e.saturating_duration_since(t)),
        (None, Some(e)) => facts.exited_before_stop = Some(e.saturating_duration_since(begin)),
        _ => {}
    }
    facts.berth_killed = !out.eof;
    finish(pid, &mut out, &mut facts);
    if facts.exited_before_stop.is_some() {
        out.show_tail();
    }
    Ok(facts)
}

/// Polls the readiness target until it passes, berth exits, or
/// `--start-timeout` runs out.
fn wait_ready(plan: &Plan, out: &mut BerthOut, started: Instant) -> Result<(), String> {
    let end = started + plan.setup.start_timeout;
    let mut last = "no probe yet".to_string();
    // Bounded by `end`: every turn probes (bounded by the time left) and
    // pauses READY_PAUSE, or returns.
    loop {
        out.read();
        if out.eof {
            return Err(format!(
                "berth exited before the app was healthy; last probe: {last}"
            ));
        }
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("last probe: {last}"));
        }
        let options = ProbeOptions {
            timeout: left.min(plan.setup.timeout),
            ..ProbeOptions::default()
        };
        match probe(&plan.ready, &options) {
            Ok(()) => return Ok(()),
            Err(why) => last = why,
        }
        out.wait(READY_PAUSE.min(end.saturating_duration_since(Instant::now())));
    }
}

/// berth is gone (or must go): kill it if it is still there, reap it, and
/// read its exit event.
fn finish(pid: Pid, out: &mut BerthOut, facts: &mut Facts) {
    if !out.eof {
        // berth hangs (it never should): take the app's group down with it,
        // or it would outlive the drill.
        if let Some(app) = out.app_pid.filter(|&p| p > 1) {
            let _ = kill(Pid::from_raw(-app), Signal::SIGKILL);
        }
        let _ = kill(pid, Signal::SIGKILL);
    }
    // Bounded: berth has exited (EOF) or was just killed.
    let status = loop {
        match waitpid(pid, None) {
            Err(Errno::EINTR) => continue,
            Ok(WaitStatus::Exited(_, code)) => break Some(code),
            _ => break None,
        }
    };
    // Whatever berth wrote last before it went.
    let end = Instant::now() + Duration::from_secs(1);
    while !out.eof && Instant::now() < end {
        out.wait(Duration::from_millis(100));
    }
    out.line_done();
    facts.berth_code = status;
    facts.exit = ExitEvent::parse(&out.last);
}
