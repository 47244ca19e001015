//! The one loop: start the app, then sleep in `epoll_wait` on the signalfd,
//! the app's log pipes and (when it is full) berth's stdout, with a timeout
//! only while a deadline is pending (drain, grace, a health probe). It owns
//! no policy: signals::classify, shutdown::Shutdown and the health monitor
//! decide; this module carries out what they say.
//!
//! Why epoll and not one blocking read (as catatonit): berth has several
//! sources (signals, two pipes, stdout writability, health probes, the
//! status socket) and must never block on one while another waits. Idle,
//! `epoll_wait(-1)` is still one sleeping system call: zero wake-ups.

use std::ffi::OsString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};
use nix::sys::signal::SigSet;
use nix::unistd::Pid;

use crate::config::{Config, LogConfig, LogMode};
use crate::error::{app_exit_code, AppEnd, Error};
use crate::health::monitor::{Monitor, Verdict};
use crate::health::wait::{Dependency, News, Waiter};
use crate::logs::events::{Events, ExitInfo, StartInfo, WaitInfo};
use crate::logs::flood::{self, Flood};
use crate::logs::json::{Encoder, Timestamp};
use crate::logs::out::{Flush, Out, HIGH_WATER, LOW_WATER};
use crate::logs::split::StreamLines;
use crate::parse::signal_name_string;
use crate::reap;
use crate::shutdown::{self, Action, Input, Shutdown, StopCause};
use crate::signals::{classify, Class};
use crate::status::{Snapshot, StatusServer};
use crate::status_http::HttpStatus;
use crate::{cgroup, prepare, privs, spawn, sys};

const TOKEN_SIGNALS: u64 = 0;
const TOKEN_STDOUT_PIPE: u64 = 1;
const TOKEN_STDERR_PIPE: u64 = 2;
const TOKEN_OUT: u64 = 3;
const TOKEN_STATUS: u64 = 4;
const TOKEN_HTTP_LISTENER: u64 = 5;
/// `--status-listen` clients: this plus the client's fd.
const TOKEN_HTTP_CLIENTS: u64 = 1 << 32;

/// One read serves many lines; 64 KiB is a pipe's default capacity (a
/// flood grows it with the pipes: logs/flood.rs).
const READ_CHUNK: usize = flood::BASE_PIPE;

/// One of the app's output pipes (json mode).
struct AppPipe {
    fd: OwnedFd,
    token: u64,
    lines: StreamLines,
    /// Registered in epoll (false while paused for backpressure).
    polled: bool,
    /// Grown for a flood, not given back yet.
    grown: bool,
}

pub struct Supervisor {
    cfg: Config,
    own_pid: Pid,
    /// The app, once spawned (None while berth waits for dependencies).
    app: Option<Pid>,
    /// berth's start until the app is spawned, then the app's.
    started: Instant,
    epoll: Epoll,
    signals: sys::SignalFd,
    events: Events,
    out: Out,
    pipes: Vec<AppPipe>,
    read_buf: Vec<u8>,
    flood: Flood,
    out_polled: bool,
    shutdown: Shutdown,
    app_end: Option<AppEnd>,
    no_children: bool,
    /// Senders of the SIGCHLDs just read: reaped by pid before any scan.
    sigchld_from: Vec<i32>,
    /// The signalfd records of one read.
    sig_batch: Vec<sys::SigInfo>,
    scans: reap::ScanPacer,
    cgroup: Option<cgroup::Cgroup>,
    monitor: Option<Monitor>,
    /// `--wait-for`, while berth waits (the wait phase).
    waiter: Option<Waiter>,
    /// The SIGTERM or SIGINT that ended the wait.
    wait_stopped_by: Option<i32>,
    status: Option<StatusServer>,
    /// `--status-listen`: its listener and clients are all in epoll.
    http: Option<HttpStatus>,
    /// The status socket, or the `--status-listen` listener, is out of
    /// epoll: berth ran out of fds (see `answer_status`); it goes back in
    /// after the next event that is not a listener's.
    status_paused: bool,
    http_paused: bool,
}

/// What the spawn phase needs from the prepare phase: the exec, ready to
/// go, and what berth learnt about who the app runs as.
struct Launch {
    req: sys::ExecRequest,
    /// The app's ends of its log pipes (json mode), closed once it runs.
    write_ends: Vec<OwnedFd>,
    /// berth must switch uid/gid in the child (and may drop its own root).
    switching: bool,
    app_uid: u32,
    app_gid: u32,
    warnings: Vec<String>,
    /// What the prepare steps did, for the `start` event (never a value).
    prepared: prepare::Report,
    /// The cgroup, when `--runtime-limits` needed its limits before spawn.
    cgroup: Option<cgroup::Cgroup>,
    /// What `--runtime-limits` set, for the start event.
    runtime_limits: prepare::runtime_limits::Applied,
}

/// The exit code when `--wait-timeout` passes before every dependency has
/// answered: 124, as timeout(1) and so wait-for-it (which runs it) say it,
/// distinct from the app's codes and from berth's own 125-127.
pub const WAIT_TIMEOUT_EXIT: u8 = 124;

/// Runs COMMAND under berth and returns berth's exit code. berth's life, in
/// its phases (SPEC "Before the app starts", then "Process" and "Shutdown"):
pub fn run(cfg: Config, env: Vec<(OsString, OsString)>, mask: SigSet) -> u8 {
    // 1. prepare: everything that can fail before anything is started
    //    (options turned into an exec, secrets, limits, templates, the loop's
    //    own resources); an error here is berth's 125/126/127.
    let log = cfg.log.clone();
    let (mut s, launch) = match Supervisor::prepare(cfg, &env, mask) {
        Ok(both) => both,
        Err(e) => return fail_before_start(&log, &e),
    };
    // 2. wait: `--wait-for` dependencies, inside the one loop.
    if let Some(code) = s.wait_for_dependencies() {
        return code;
    }
    // 3. spawn: the app starts.
    if let Err(e) = s.spawn(launch) {
        return s.fail_to_spawn(&e);
    }
    // 4. supervise, and 5. stop (Supervisor::finish) once everyone is gone.
    let code = s.supervise();
    // Every byte is written and every fd is berth's own: leave without
    // freeing buffers one munmap (and TLB flush) at a time.
    std::process::exit(i32::from(code))
}

/// berth's own failure before the app ran (SPEC "Before the app
/// starts"): one line on stderr, and in json mode a `warn` event on stdout
/// too, so a log pipeline that reads only stdout learns why the container
/// never started.
fn fail_before_start(log: &LogConfig, e: &Error) -> u8 {
    if log.mode == LogMode::Json {
        let enc = Encoder::new(
            &log.service,
            &log.fields,
            log.max_line_bytes,
            log.keys,
            log.stream_level,
        );
        if let Ok(enc) = enc {
            let mut out = Out::new(1);
            Events::new(LogMode::Json, enc).warn(&mut out, e.message());
            out.flush_all();
            out.restore();
        }
    }
    eprintln!("{e}");
    e.exit_code()
}

fn setup_err(what: &str, e: Errno) -> Error {
    Error::config(format!("setup failed: {what}: {}", e.desc()))
}

impl Supervisor {
    /// The prepare phase: everything up to the app's exec. Errors here are
    /// berth's (125/126/127): nothing has been started that would outlive
    /// berth.
    fn prepare(
        cfg: Config,
        env: &[(OsString, OsString)],
        mask: SigSet,
    ) -> Result<(Supervisor, Launch), Error> {
        let own_pid = sys::getpid();
        let mut warnings: Vec<String> = Vec::new();
        if own_pid.as_raw() != 1 {
            if let Err(e) = sys::set_child_subreaper() {
                warnings.push(format!(
                    "not PID 1 and PR_SET_CHILD_SUBREAPER failed ({}): orphans of the app will not be reaped by berth",
                    e.desc()
                ));
            }
        }

        // fds 3.. 3+N-1 go to the app (--preserve-fds, socket activation);
        // every other inherited fd is closed on exec.
        let activation = spawn::socket_activation(env, own_pid.as_raw() as u32);
        let listen_fds = match activation {
            spawn::SocketActivation::PassOn(n) => n,
            _ => 0,
        };
        let keep = cfg.preserve_fds.max(listen_fds);
        for fd in 3..3 + keep {
            sys::clear_cloexec(fd);
        }
        sys::set_cloexec_from(3 + keep);

        let signals =
            sys::SignalFd::new(&sys::berth_signal_set()).map_err(|e| setup_err("signalfd", e))?;
        let epoll =
            Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map_err(|e| setup_err("epoll", e))?;
        epoll
            .add(
                sys::borrow_fd(signals.fd()),
                EpollEvent::new(EpollFlags::EPOLLIN, TOKEN_SIGNALS),
            )
            .map_err(|e| setup_err("epoll_ctl", e))?;

        let encoder = Encoder::new(
            &cfg.log.service,
            &cfg.log.fields,
            cfg.log.max_line_bytes,
            cfg.log.keys,
            cfg.log.stream_level,
        )
        .map_err(Error::config)?;
        let json = cfg.log.mode == LogMode::Json;
        let out = if json {
            Out::new(1).grow_pipe_when_full(cfg.log.pipe_size)
        } else {
            Out::unused(1)
        };

        // Who the app runs as, and whether berth may make it so.
        let (uid, gid) = (
            nix::unistd::getuid().as_raw(),
            nix::unistd::getgid().as_raw(),
        );
        let own_groups: Vec<u32> = nix::unistd::getgroups()
            .map(|g| g.into_iter().map(|g| g.as_raw()).collect())
            .unwrap_or_default();
        let mut switching = false;
        if let Some(id) = &cfg.identity {
            warnings.extend(id.warnings.iter().cloned());
            let euid = nix::unistd::geteuid().as_raw();
            if privs::needs_switch(id, uid, gid, &own_groups) {
                if let Some(w) = privs::already_app_but_groups(id, uid, gid, euid) {
                    warnings.push(w);
                } else {
                    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
                    privs::check_can_switch(id, euid, privs::effective_caps(&status))?;
                    switching = true;
                }
            }
        }
        if !cfg.chown.is_empty() {
            let Some(id) = &cfg.identity else {
                return Err(Error::config(
                    "--chown needs --user: whose should the files become?",
                ));
            };
            for p in &cfg.chown {
                privs::chown_tree(p, id.uid, id.gid)?;
            }
        }

        // json mode: the app's stdout and stderr are pipes berth reads.
        let mut pipes = Vec::new();
        let mut write_ends: Vec<OwnedFd> = Vec::new();
        if json {
            for (token, name) in [(TOKEN_STDOUT_PIPE, "stdout"), (TOKEN_STDERR_PIPE, "stderr")] {
                let (r, w) = sys::pipe_above(3 + keep).map_err(|e| setup_err("pipe", e))?;
                sys::set_nonblocking(r.as_raw_fd(), true).map_err(|e| setup_err("fcntl", e))?;
                epoll
                    .add(r.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, token))
                    .map_err(|e| setup_err("epoll_ctl", e))?;
                pipes.push(AppPipe {
                    fd: r,
                    token,
                    lines: StreamLines::new(name, &encoder).with_multiline(cfg.log.multiline),
                    polled: true,
                    grown: false,
                });
                write_ends.push(w);
            }
        }
        // The entrypoint script's jobs (prepare/): what the app's
        // environment and files hold when it starts.
        // --runtime-limits sizes the app from the cgroup's limits, so they
        // are read before it starts; else after (start-up time is a figure).
        let early_cgroup = cfg.runtime_limits.map(|_| cgroup::Cgroup::discover());
        let prepared = prepare::prepare(&cfg, env, early_cgroup.as_ref().map(|c| &c.limits))?;
        // Only a --user target's HOME replaces berth's own: without one,
        // /etc/passwd is not read at all.
        let own_home = cfg.identity.as_ref().and_then(|_| passwd_home_of(uid));
        let mut req = spawn::request(
            &cfg,
            &prepared.env,
            activation,
            own_home.as_deref(),
            (
                write_ends.first().map(|f| f.as_raw_fd()),
                write_ends.get(1).map(|f| f.as_raw_fd()),
            ),
        )?;
        req.mask = mask;
        // With nothing to switch, the child must not try: setgroups needs
        // CAP_SETGID even to set the groups berth already has.
        if !switching {
            req.identity = None;
        }

        // Bound before anything starts, so a taken port is berth's 125.
        let http = match cfg.status_listen {
            None => None,
            Some(addr) => {
                let h = HttpStatus::bind(addr, TOKEN_HTTP_CLIENTS).map_err(|e| {
                    Error::config(format!("setup failed: --status-listen {addr}: {e}"))
                })?;
                epoll
                    .add(
                        sys::borrow_fd(h.listener_fd()),
                        EpollEvent::new(EpollFlags::EPOLLIN, TOKEN_HTTP_LISTENER),
                    )
                    .map_err(|e| setup_err("epoll_ctl", e))?;
                Some(h)
            }
        };
        let (app_uid, app_gid) = cfg
            .identity
            .as_ref()
            .map(|i| (i.uid, i.gid))
            .unwrap_or((uid, gid));

        let s = Supervisor {
            own_pid,
            app: None,
            started: Instant::now(),
            epoll,
            signals,
            events: Events::new(cfg.log.mode, encoder),
            out,
            pipes,
            flood: Flood::new(cfg.log.pipe_size),
            // Plain mode reads no pipe: no buffer (64 KiB of RSS a zeroed
            // allocation would touch).
            read_buf: if json {
                vec![0u8; READ_CHUNK]
            } else {
                Vec::new()
            },
            out_polled: false,
            shutdown: Shutdown::new(cfg.drain, cfg.grace),
            app_end: None,
            no_children: false,
            sigchld_from: Vec::with_capacity(16),
            sig_batch: Vec::with_capacity(16),
            scans: reap::ScanPacer::default(),
            cgroup: None,
            monitor: None,
            waiter: None,
            wait_stopped_by: None,
            status: None,
            http,
            status_paused: false,
            http_paused: false,
            cfg,
        };
        let launch = Launch {
            req,
            write_ends,
            switching,
            app_uid,
            app_gid,
            warnings,
            prepared: prepared.report,
            cgroup: early_cgroup,
            runtime_limits: prepared.runtime_limits,
        };
        Ok((s, launch))
    }

    /// The wait phase (`--wait-for`): the loop runs as ever (signals,
    /// reaping, `berth status`, `--status-listen`), with the dependencies'
    /// probes in place of an app. None: every dependency answered, go on;
    /// Some(code): berth exits with it and the app is never started.
    fn wait_for_dependencies(&mut self) -> Option<u8> {
        let wait = self.cfg.wait.clone()?;
        // `berth status` says "waiting" meanwhile.
        self.serve_status();
        let deps = wait
            .targets
            .into_iter()
            .map(|(spec, target)| Dependency { spec, target })
            .collect();
        self.waiter = Some(Waiter::new(deps, wait.timeout, Instant::now()));
        loop {
            let now = Instant::now();
            let waiter = self.waiter.as_mut()?;
            if waiter.done() {
                self.waiter = None;
                return None;
            }
            if let Some(sig) = self.wait_stopped_by {
                let waited_s = waiter.elapsed(now).as_secs_f64();
                let why = format!("stopped by SIG{}", signal_name_string(sig));
                self.end_wait(&[], "stopped", Some(&why), waited_s);
                return Some(128 + sig as u8);
            }
            if waiter.timed_out(now) {
                let waited_s = waiter.elapsed(now).as_secs_f64();
                let failing = waiter.failing();
                self.end_wait(&failing, "timeout", None, waited_s);
                return Some(WAIT_TIMEOUT_EXIT);
            }
            self.turn();
        }
    }

    /// The wait is over without the app: its probes are killed and reaped,
    /// the news logged (and, for a timeout, one line per failing target on
    /// stderr whatever the log mode), and every byte flushed.
    fn end_wait(
        &mut self,
        failing: &[(String, String)],
        state: &str,
        why: Option<&str>,
        waited_s: f64,
    ) {
        let killed = self
            .waiter
            .as_mut()
            .map(Waiter::abandon)
            .unwrap_or_default();
        for pid in killed {
            reap::reap_killed(pid);
        }
        if failing.is_empty() {
            self.events.wait(
                &mut self.out,
                &WaitInfo {
                    target: "",
                    state,
                    reason: why,
                    waited_s,
                },
            );
        }
        for (target, reason) in failing {
            let info = WaitInfo {
                target,
                state,
                reason: Some(reason),
                waited_s,
            };
            self.events.wait(&mut self.out, &info);
            if self.cfg.log.mode == LogMode::Json {
                eprintln!(
                    "berth: --wait-for {target}: still failing after {waited_s:.1}s: {reason}"
                );
            }
        }
        self.out.flush_all();
        self.out.restore();
    }

    /// The spawn phase: the app starts; berth then drops its own root,
    /// finds the cgroup and says `start`.
    fn spawn(&mut self, launch: Launch) -> Result<(), Error> {
        let Launch {
            req,
            write_ends,
            switching,
            app_uid,
            app_gid,
            mut warnings,
            prepared,
            cgroup,
            runtime_limits,
        } = launch;
        self.started = Instant::now();
        let app = sys::spawn(&req).map_err(|f| spawn::failure_to_error(f, &self.cfg.command[0]))?;
        drop(write_ends);
        self.app = Some(app);
        self.monitor = self
            .cfg
            .health
            .clone()
            .map(|h| Monitor::new(h, self.started));
        // berth's own set-up that the app need not wait for, done while it
        // runs (start-up time is a figure, docs/benchmarks.md). Failures
        // here cost a feature, never the app: `berth status` is best effort.
        let cgroup = cgroup.unwrap_or_else(cgroup::Cgroup::discover);
        self.serve_status();
        // From here on berth is the app's init: its own failures are
        // warnings, never an exit (a PID 1 that leaves takes the container
        // with it).
        if switching && app_uid != 0 && !self.cfg.keep_root {
            let groups = self
                .cfg
                .identity
                .as_ref()
                .map(|i| i.groups.clone())
                .unwrap_or_default();
            if let Err((step, e)) = sys::drop_own_privileges(app_uid, app_gid, &groups) {
                warnings.push(format!(
                    "berth could not drop its own root ({step}: {})",
                    e.desc()
                ));
            }
        }
        let limits = cgroup.limits.clone();
        self.cgroup = Some(cgroup);
        self.events.start(
            &mut self.out,
            &StartInfo {
                pid: self.own_pid.as_raw() as u32,
                app_pid: app.as_raw() as u32,
                uid: app_uid,
                gid: app_gid,
                command: &self.cfg.command,
                memory_limit_bytes: limits.memory_limit_bytes,
                cpu_limit: limits.cpu_limit,
                init: self.cfg.init.name(),
                runtime_limits: self.cfg.runtime_limits.map(|_| &runtime_limits),
                waited_for: self.cfg.wait.as_ref().map_or(&[], |w| &w.targets),
                prepared: &prepared,
            },
        );
        // As the engine's init, the engine chose the user (`docker run
        // --user`): a warning in every root container would be noise.
        if app_uid == 0 && !self.cfg.init.is_engine() {
            warnings.push(
                "the app runs as root (uid 0): give --user to run it as a non-root user".into(),
            );
        }
        if limits.memory_limit_bytes.is_none() {
            let note = match runtime_limits.need_memory_limit {
                "" => String::new(),
                unset => format!(": --runtime-limits left {unset} unset"),
            };
            warnings.push(format!("no memory limit is set for this container (docker run --memory, or resources.limits.memory){note}"));
        }
        for w in &warnings {
            self.events.warn(&mut self.out, w);
        }
        Ok(())
    }

    /// The app's exec failed (126/127/125): as `fail_before_start`, through
    /// berth's own stdout, which may hold `wait` events still.
    fn fail_to_spawn(&mut self, e: &Error) -> u8 {
        if self.cfg.log.mode == LogMode::Json {
            self.events.warn(&mut self.out, e.message());
        }
        self.out.flush_all();
        self.out.restore();
        eprintln!("{e}");
        e.exit_code()
    }

    /// `berth status`'s socket, bound once (best effort: see `spawn`).
    fn serve_status(&mut self) {
        if self.status.is_some() {
            return;
        }
        self.status = StatusServer::bind(self.own_pid).ok().filter(|s| {
            self.epoll
                .add(
                    sys::borrow_fd(s.fd()),
                    EpollEvent::new(EpollFlags::EPOLLIN, TOKEN_STATUS),
                )
                .is_ok()
        });
    }

    /// The supervise phase: the loop until the app and every other process
    /// are gone, then the stop phase's last step (`finish`): every byte of
    /// output written, the `exit` event last. Returns berth's exit code.
    fn supervise(&mut self) -> u8 {
        while !(self.app_end.is_some() && self.no_children) {
            self.turn();
        }
        self.finish()
    }

    /// One turn of the one loop, whatever the phase: sleep until an event or
    /// the nearest deadline, then handle what came.
    fn turn(&mut self) {
        let mut ready = [EpollEvent::empty(); 16];
        let timeout = match self.next_deadline() {
            None => nix::poll::PollTimeout::NONE,
            Some(d) => timeout_until(d),
        };
        let n = match self.epoll.wait(&mut ready, timeout) {
            Ok(n) => n,
            Err(Errno::EINTR) => 0,
            Err(e) => {
                // Cannot happen with valid arguments; do not spin.
                self.events
                    .warn(&mut self.out, &format!("epoll_wait failed: {}", e.desc()));
                std::thread::sleep(Duration::from_millis(10));
                0
            }
        };
        let mut reap_now = false;
        let mut other_event = false;
        for ev in &ready[..n] {
            other_event |= !matches!(ev.data(), TOKEN_STATUS | TOKEN_HTTP_LISTENER);
            match ev.data() {
                TOKEN_SIGNALS => {
                    // The batch's buffer is kept across turns (no
                    // allocation on the signal path: its latency is a figure).
                    let mut sigs = std::mem::take(&mut self.sig_batch);
                    sigs.clear();
                    self.signals.read_batch(&mut sigs);
                    for s in &sigs {
                        reap_now |= self.on_signal(s.signo, s.sender_pid);
                    }
                    self.sig_batch = sigs;
                }
                TOKEN_STDOUT_PIPE | TOKEN_STDERR_PIPE => self.read_pipe(ev.data()),
                TOKEN_OUT => {} // flushed below
                TOKEN_STATUS => self.answer_status(),
                TOKEN_HTTP_LISTENER => self.accept_http(),
                t if t >= TOKEN_HTTP_CLIENTS => {
                    let fd = RawFd::try_from(t - TOKEN_HTTP_CLIENTS).unwrap_or(-1);
                    self.read_http(fd);
                }
                _ => {}
            }
        }
        if other_event {
            self.resume_listeners();
        }
        if reap_now {
            self.reap();
        }
        self.on_deadlines();
        self.pump_output();
    }

    /// The nearest pending deadline; None while nothing waits (berth sleeps).
    fn next_deadline(&self) -> Option<Instant> {
        let held = self.pipes.iter().filter_map(|p| p.lines.hold_deadline());
        [
            self.shutdown.deadline(),
            self.scans.deadline(),
            self.monitor.as_ref().and_then(|m| m.deadline()),
            self.waiter.as_ref().and_then(|w| w.deadline()),
            self.http.as_ref().and_then(|h| h.deadline()),
            self.flood.deadline(),
        ]
        .into_iter()
        .flatten()
        .chain(held)
        .min()
    }

    /// Returns true when SIGCHLD asks for a reap.
    fn on_signal(&mut self, sig: i32, sender: u32) -> bool {
        let now = Instant::now();
        match classify(sig, sender, self.own_pid.as_raw() as u32) {
            Class::Reap => {
                self.sigchld_from.push(sender as i32);
                return true;
            }
            Class::OwnPipe => {}
            // Before the app: SIGTERM or SIGINT ends the wait at once (the
            // wait phase sees it); anything else has nobody to go to.
            Class::Terminate | Class::Interrupt if self.app.is_none() => {
                self.wait_stopped_by.get_or_insert(sig);
                self.events
                    .signal(&mut self.out, sig, None, ", before the app started");
            }
            Class::Forward if self.app.is_none() => {
                self.events
                    .signal(&mut self.out, sig, None, ", before the app started");
            }
            Class::Terminate => {
                let acts = self.shutdown.on(Input::Terminate, now);
                let forwarded = shutdown::actions(acts).any(|a| a == Action::SendStopSignal);
                let note = if self.shutdown.draining() {
                    format!(", draining for {:?} before the stop signal", self.cfg.drain)
                } else {
                    String::new()
                };
                self.events.signal(
                    &mut self.out,
                    sig,
                    forwarded.then_some(self.cfg.stop_signal),
                    &note,
                );
                self.apply(acts);
            }
            Class::Interrupt => {
                let acts = self.shutdown.on(Input::Interrupt, now);
                let fwd = if shutdown::actions(acts).any(|a| a == Action::SendStopSignal) {
                    Some(self.cfg.stop_signal)
                } else {
                    self.cfg.signal_map.map(sig)
                };
                self.events.signal(&mut self.out, sig, fwd, "");
                self.apply(acts);
            }
            Class::Forward => {
                let to = self.cfg.signal_map.map(sig);
                // Forward first, then log: the app should not wait for
                // berth's bookkeeping (signal latency, docs/benchmarks.md).
                // The kernel often wakes the app on berth's own CPU, where
                // it would wait until berth sleeps again: yield it the CPU
                // first (returns at once when nothing else is runnable).
                if let Some(to) = to {
                    self.signal_app(to, self.cfg.whole_group);
                    sys::yield_cpu();
                }
                self.events.signal(&mut self.out, sig, to, "");
            }
        }
        false
    }

    fn apply(&mut self, acts: shutdown::Actions) {
        for a in shutdown::actions(acts) {
            match a {
                Action::SendStopSignal => {
                    self.signal_app(self.cfg.stop_signal, self.cfg.whole_group)
                }
                Action::ForwardReceived => {
                    if let Some(to) = self.cfg.signal_map.map(libc::SIGINT) {
                        self.signal_app(to, self.cfg.whole_group);
                    }
                }
                Action::TermLeftovers => {
                    if !self.no_children {
                        reap::signal_everyone(libc::SIGTERM, self.own_pid);
                    }
                }
                Action::KillAll => {
                    self.signal_app(libc::SIGKILL, true);
                    reap::signal_everyone(libc::SIGKILL, self.own_pid);
                }
            }
        }
    }

    /// A signal for the app (its group, unless `--no-group`), while it runs.
    fn signal_app(&self, sig: i32, whole_group: bool) {
        if let (Some(app), None) = (self.app, self.app_end) {
            reap::signal_app(app, sig, whole_group);
        }
    }

    fn reap(&mut self) {
        let app = self.app;
        let mut app_end = None;
        let mut probe_results = Vec::new();
        let mut wait_results = Vec::new();
        let probe_pid = self.monitor.as_ref().and_then(|m| m.probe_pid());
        let waiter = self.waiter.as_ref();
        let mut on_child = |r: reap::Reaped| {
            if Some(r.pid) == app {
                app_end = Some(r.end);
            } else if Some(r.pid) == probe_pid {
                probe_results.push(r.end);
            } else if waiter.is_some_and(|w| w.owns(r.pid)) {
                wait_results.push((r.pid, r.end));
            }
        };
        for pid in self.sigchld_from.drain(..) {
            reap::reap_pid(pid, &mut on_child);
        }
        let start = Instant::now();
        if self.scans.want(start) {
            self.no_children = reap::reap_all(&mut on_child);
            self.scans.ran(start, Instant::now());
        }
        for end in probe_results {
            self.on_probe_end(end);
        }
        for (pid, end) in wait_results {
            self.on_wait_probe_end(pid, end);
        }
        if let Some(end) = app_end {
            self.app_end = Some(end);
            // Leftovers only matter while berth still has children.
            if !self.no_children {
                let acts = self.shutdown.on(Input::AppExited, Instant::now());
                self.apply(acts);
            }
        }
    }

    /// A dependency's probe ended (wait phase).
    fn on_wait_probe_end(&mut self, pid: Pid, end: AppEnd) {
        let now = Instant::now();
        let Some(news) = self
            .waiter
            .as_mut()
            .and_then(|w| w.on_probe_exit(pid, end, now))
        else {
            return;
        };
        self.log_wait_news(news, now);
    }

    fn log_wait_news(&mut self, news: News, now: Instant) {
        let waited_s = self
            .waiter
            .as_ref()
            .map(|w| w.elapsed(now).as_secs_f64())
            .unwrap_or_default();
        let mut say = |target: &str, state: &str, reason: Option<&str>| {
            let info = WaitInfo {
                target,
                state,
                reason,
                waited_s,
            };
            self.events.wait(&mut self.out, &info);
        };
        match news {
            News::Healthy { target, .. } => say(&target, "healthy", None),
            News::Failing { target, reason } => say(&target, "failing", Some(&reason)),
            News::StillWaiting { failing } => {
                for (target, reason) in &failing {
                    say(target, "waiting", Some(reason));
                }
            }
        }
    }

    fn on_deadlines(&mut self) {
        let now = Instant::now();
        if self.scans.deadline().is_some_and(|d| now >= d) {
            self.reap();
        }
        if self.flood.due(now) {
            self.give_back_flood(now);
        }
        for p in &mut self.pipes {
            p.lines
                .flush_due(now, self.events.encoder(), &mut self.out.buf);
        }
        if self.shutdown.deadline().is_some_and(|d| now >= d) {
            let acts = self.shutdown.on(Input::Deadline, now);
            self.apply(acts);
        }
        if let Some(h) = self.http.as_mut() {
            h.on_time(&self.epoll, now);
        }
        if self.app_end.is_none() && !self.shutdown.stopping() {
            if let Some(m) = self.monitor.as_mut() {
                m.on_time(now);
            }
        }
        if self.wait_stopped_by.is_none() {
            let news = self
                .waiter
                .as_mut()
                .map(|w| w.on_time(now))
                .unwrap_or_default();
            for n in news {
                self.log_wait_news(n, now);
            }
        }
    }

    fn on_probe_end(&mut self, end: AppEnd) {
        let Some(m) = self.monitor.as_mut() else {
            return;
        };
        match m.on_probe_exit(end, Instant::now()) {
            Verdict::Unchanged => {}
            Verdict::Changed { state, detail } => {
                self.events.health(&mut self.out, state, &detail);
                if state == "unhealthy" && self.cfg.on_unhealthy_exit && self.app_end.is_none() {
                    let acts = self.shutdown.on(Input::Unhealthy, Instant::now());
                    self.apply(acts);
                }
            }
        }
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot {
            pid: self.own_pid.as_raw() as u32,
            init: self.cfg.init.name(),
            app_pid: self.app.map(|p| p.as_raw() as u32),
            app_uid: self
                .cfg
                .identity
                .as_ref()
                .map(|i| i.uid)
                .unwrap_or_else(|| nix::unistd::getuid().as_raw()),
            uptime_s: self.started.elapsed().as_secs_f64(),
            health: self
                .monitor
                .as_ref()
                .map(|m| m.state_name())
                .unwrap_or("none"),
            passed_once: self
                .monitor
                .as_ref()
                .map(|m| m.passed_once())
                .unwrap_or(true),
            draining: self.shutdown.stopping(),
            running: self.app.is_some() && self.app_end.is_none(),
            waiting: self.waiter.is_some(),
        }
    }

    /// Out of fds with no reserve left, a pending client cannot be taken
    /// and would wake the level-triggered epoll at once, forever: the socket
    /// leaves epoll until some other event (a signal, a log line, a reaped
    /// child) has happened, so berth sleeps instead of spinning.
    fn answer_status(&mut self) {
        let snap = self.snapshot();
        if let Some(s) = self.status.as_mut() {
            if !s.accept(&snap) && self.epoll.delete(sys::borrow_fd(s.fd())).is_ok() {
                self.status_paused = true;
            }
        }
    }

    fn resume_listeners(&mut self) {
        if let (true, Some(s)) = (self.status_paused, &self.status) {
            let ev = EpollEvent::new(EpollFlags::EPOLLIN, TOKEN_STATUS);
            if self.epoll.add(sys::borrow_fd(s.fd()), ev).is_ok() {
                self.status_paused = false;
            }
        }
        if let (true, Some(h)) = (self.http_paused, &self.http) {
            let ev = EpollEvent::new(EpollFlags::EPOLLIN, TOKEN_HTTP_LISTENER);
            if self.epoll.add(sys::borrow_fd(h.listener_fd()), ev).is_ok() {
                self.http_paused = false;
            }
        }
    }

    /// `--status-listen`: take the waiting connections (answering those
    /// whose request is there); out of fds, pause as `answer_status` does.
    fn accept_http(&mut self) {
        let snap = self.snapshot();
        let Some(h) = self.http.as_mut() else {
            return;
        };
        if !h.accept(&self.epoll, &snap, Instant::now())
            && self.epoll.delete(sys::borrow_fd(h.listener_fd())).is_ok()
        {
            self.http_paused = true;
        }
    }

    /// `--status-listen`: a client sent something.
    fn read_http(&mut self, fd: RawFd) {
        let snap = self.snapshot();
        if let Some(h) = self.http.as_mut() {
            h.on_readable(&self.epoll, fd, &snap);
        }
    }

    /// Reads one chunk from an app pipe and encodes its lines.
    fn read_pipe(&mut self, token: u64) {
        let Some(i) = self.pipes.iter().position(|p| p.token == token) else {
            return;
        };
        let pipe = &mut self.pipes[i];
        match sys::read(pipe.fd.as_raw_fd(), &mut self.read_buf) {
            Ok(0) => {
                pipe.lines
                    .finish(self.events.encoder(), &Timestamp::now(), &mut self.out.buf);
                let _ = self.epoll.delete(pipe.fd.as_fd());
                self.pipes.remove(i);
            }
            Ok(n) => {
                if n + flood::PIPE_PAGE > self.read_buf.len() {
                    // The read took (nearly) all it could: the app floods
                    // this pipe (flood::PIPE_PAGE says why "nearly").
                    let now = Instant::now();
                    self.flood.full(now);
                    let size = self.flood.app_pipe();
                    if !pipe.grown && self.read_buf.len() < size {
                        pipe.grown = sys::set_pipe_size(pipe.fd.as_raw_fd(), size).is_ok();
                    }
                    if pipe.grown && self.read_buf.len() < size {
                        self.read_buf.resize(size, 0);
                    }
                }
                if self.out.broken() {
                    return; // stdout is gone: read and discard, so the app never blocks.
                }
                pipe.lines.push(
                    &self.read_buf[..n],
                    self.events.encoder(),
                    &Timestamp::now(),
                    &mut self.out.buf,
                );
            }
            Err(Errno::EAGAIN) | Err(Errno::EINTR) => {}
            Err(_) => {
                let _ = self.epoll.delete(pipe.fd.as_fd());
                self.pipes.remove(i);
            }
        }
    }

    /// Writes what stdout takes; pauses the app's pipes above the high
    /// watermark and resumes them below the low one.
    fn pump_output(&mut self) {
        if self.out.pending() == 0 && !self.out_polled {
            return;
        }
        let state = self.out.flush();
        match state {
            Flush::Blocked => self.flood.full(Instant::now()),
            Flush::Done => self.flood.drained(Instant::now()),
            Flush::Broken => {}
        }
        if self.out.take_grew() {
            self.flood.full(Instant::now());
        }
        let want_out = state == Flush::Blocked && self.out.pollable();
        if want_out != self.out_polled {
            let fd = sys::borrow_fd(self.out.fd());
            if want_out {
                let _ = self
                    .epoll
                    .add(fd, EpollEvent::new(EpollFlags::EPOLLOUT, TOKEN_OUT));
            } else {
                let _ = self.epoll.delete(fd);
            }
            self.out_polled = want_out;
        }
        let pending = self.out.pending();
        for p in &mut self.pipes {
            if p.polled && pending > HIGH_WATER {
                let _ = self.epoll.delete(p.fd.as_fd());
                p.polled = false;
            } else if !p.polled && pending < LOW_WATER {
                let _ = self
                    .epoll
                    .add(p.fd.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, p.token));
                p.polled = true;
            }
        }
    }

    /// One second after the last full pipe: the pipes back to their old
    /// size and the buffers back to the allocator (logs/flood.rs).
    fn give_back_flood(&mut self, now: Instant) {
        if self.out.pending() > 0 {
            self.flood.put_off();
            return;
        }
        let mut all = self.out.give_back();
        for p in &mut self.pipes {
            if p.grown {
                // EBUSY: it still holds more than 64 KiB; tried again later.
                p.grown = sys::set_pipe_size(p.fd.as_raw_fd(), flood::BASE_PIPE).is_err();
                all &= !p.grown;
            }
        }
        if self.read_buf.len() > READ_CHUNK {
            self.read_buf = vec![0u8; READ_CHUNK];
        }
        for p in &mut self.pipes {
            p.lines.give_back();
        }
        self.flood.given_back(all, now);
    }

    /// Every process is gone: read what is left in the pipes, write the
    /// `exit` event last, flush, and return the exit code.
    fn finish(&mut self) -> u8 {
        for p in &mut self.pipes {
            loop {
                match sys::read(p.fd.as_raw_fd(), &mut self.read_buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        if !self.out.broken() {
                            p.lines.push(
                                &self.read_buf[..n],
                                self.events.encoder(),
                                &Timestamp::now(),
                                &mut self.out.buf,
                            );
                        }
                        if self.out.pending() > HIGH_WATER {
                            self.out.flush_all();
                        }
                    }
                    Err(Errno::EINTR) => continue,
                    // EAGAIN: a writer outside berth's tree still holds the
                    // pipe; what it has not written yet is not the app's.
                    Err(_) => break,
                }
            }
            p.lines
                .finish(self.events.encoder(), &Timestamp::now(), &mut self.out.buf);
        }
        let end = self.app_end.unwrap_or(AppEnd::Exited(0));
        let unhealthy = self.shutdown.cause() == StopCause::Unhealthy;
        let code = app_exit_code(end, &self.cfg.success_exit, unhealthy);
        let (signal, reason) = match end {
            _ if unhealthy => (signal_of(end), "unhealthy"),
            AppEnd::Signaled(9) if self.shutdown.killed_app() => (Some(9), "grace_expired"),
            AppEnd::Signaled(s) => (Some(s), "signaled"),
            AppEnd::Exited(_) => (None, "exited"),
        };
        let oom_kill = self
            .cgroup
            .as_ref()
            .is_some_and(|c| c.oom_killed_since_start());
        self.events.exit(
            &mut self.out,
            &ExitInfo {
                code,
                signal,
                duration_s: self.started.elapsed().as_secs_f64(),
                reason,
                oom_kill,
            },
        );
        self.out.flush_all();
        self.out.restore();
        code
    }
}

fn signal_of(end: AppEnd) -> Option<i32> {
    match end {
        AppEnd::Signaled(s) => Some(s),
        AppEnd::Exited(_) => None,
    }
}

/// epoll's timeout in whole milliseconds, rounded up so berth never wakes
/// before the deadline (an early wake-up would only loop once more).
fn timeout_until(deadline: Instant) -> nix::poll::PollTimeout {
    let left = deadline.saturating_duration_since(Instant::now());
    let ms = left.as_micros().div_ceil(1000).min(i32::MAX as u128);
    nix::poll::PollTimeout::try_from(ms as i32).unwrap_or(nix::poll::PollTimeout::MAX)
}

/// The home directory of `uid` in /etc/passwd (for the HOME rewrite).
fn passwd_home_of(uid: u32) -> Option<String> {
    let passwd = std::fs::read("/etc/passwd").ok()?;
    crate::user::resolve(&uid.to_string(), Some(&passwd), None)
        .ok()?
        .home
}
