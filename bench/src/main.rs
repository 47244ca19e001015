//! berth's benchmark driver: measures berth side by side with tini-static,
//! tini, dumb-init, catatonit and no init, in one run, interleaved (round
//! robin, the order rotating each round), and writes raw JSON and a markdown
//! table. Run it through bench/run, which installs the anchors and builds
//! berth and this crate.
//!
//! `berth-bench --berth PATH --app PATH --out DIR [--quick] [--only FIGURES]`
//! `berth-bench cpu …`: berth's own CPU per line (src/cpu.rs; run it
//! through bench/cpu-per-line).
//!
//! Exit status: 0 when every measurement ran (whatever the figures say),
//! 1 when the harness itself broke (an app did not start, a line was lost
//! or reordered, a probe failed): CI runs `--quick` to keep this honest.

mod check;
mod clock;
mod cpu;
mod placement;
mod wait;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clock::mono_ns;

type Res<T> = Result<T, String>;

/// One init under test and how to put it in front of an app.
#[derive(Clone)]
struct Init {
    name: &'static str,
    bin: String,
    /// berth's log mode; None for the other inits.
    berth_mode: Option<&'static str>,
}

impl Init {
    /// The command line: INIT [berth's options, `extra`] -- APP ARGS.
    fn argv(&self, extra: &[&str], app: &[String]) -> Vec<String> {
        let mut v = vec![self.bin.clone()];
        if let Some(mode) = self.berth_mode {
            v.push("--log-format".into());
            v.push(mode.into());
            v.extend(extra.iter().map(|s| s.to_string()));
        }
        v.push("--".into());
        v.extend(app.iter().cloned());
        v
    }
    fn is_berth(&self) -> bool {
        self.berth_mode.is_some()
    }
}

struct Opts {
    quick: bool,
    /// `--only size,start,idle,flood,logs,signal,zombies,grace,probe`: a subset,
    /// for tuning one figure (the table then shows – for the rest).
    only: Option<Vec<String>>,
    berth: String,
    app: String,
    out: PathBuf,
    tmp: PathBuf,
}

/// Every measured figure: (figure, subject) → samples, plus notes.
#[derive(Default)]
struct Report {
    samples: BTreeMap<(String, String), Vec<f64>>,
    units: BTreeMap<String, &'static str>,
    extra: BTreeMap<String, String>,
}

impl Report {
    fn add(&mut self, figure: &str, unit: &'static str, subject: &str, v: f64) {
        self.units.insert(figure.into(), unit);
        self.samples
            .entry((figure.into(), subject.into()))
            .or_default()
            .push(v);
    }
    fn get(&self, figure: &str, subject: &str) -> Option<&Vec<f64>> {
        self.samples.get(&(figure.into(), subject.into()))
    }
    fn median(&self, figure: &str, subject: &str) -> Option<f64> {
        self.get(figure, subject).map(|s| percentile(s, 50.0))
    }
    fn pct(&self, figure: &str, subject: &str, p: f64) -> Option<f64> {
        self.get(figure, subject).map(|s| percentile(s, p))
    }
}

fn percentile(s: &[f64], p: f64) -> f64 {
    if s.is_empty() {
        return f64::NAN;
    }
    let mut v = s.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    // Nearest rank.
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

fn main() {
    let mut args = std::env::args().skip(1).peekable();
    if args.peek().map(String::as_str) == Some("cpu") {
        args.next();
        if let Err(e) = cpu::main(args) {
            fatal(&e);
        }
        return;
    }
    let (mut quick, mut berth, mut app, mut out, mut only) = (false, None, None, None, None);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" => quick = true,
            "--berth" => berth = args.next(),
            "--app" => app = args.next(),
            "--out" => out = args.next(),
            "--only" => {
                only = args
                    .next()
                    .map(|s| s.split(',').map(String::from).collect())
            }
            _ => fatal(&format!("unknown argument {a}")),
        }
    }
    let (Some(berth), Some(app), Some(out)) = (berth, app, out) else {
        fatal("usage: berth-bench --berth PATH --app PATH --out DIR [--quick] [--only FIGURES]")
    };
    let out = PathBuf::from(out);
    let tmp = out.join(format!("tmp-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap_or_else(|e| fatal(&format!("{}: {e}", tmp.display())));
    let opts = Opts {
        quick,
        only,
        berth,
        app,
        out,
        tmp,
    };
    let code = match run(&opts) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("berth-bench: HARNESS FAILURE: {e}");
            1
        }
    };
    let _ = std::fs::remove_dir_all(&opts.tmp);
    std::process::exit(code);
}

fn fatal(msg: &str) -> ! {
    eprintln!("berth-bench: {msg}");
    std::process::exit(2)
}

fn inits(o: &Opts) -> Vec<Init> {
    let mut v = vec![
        Init {
            name: "berth",
            bin: o.berth.clone(),
            berth_mode: Some("plain"),
        },
        Init {
            name: "berth-json",
            bin: o.berth.clone(),
            berth_mode: Some("json"),
        },
    ];
    for (name, bin) in [
        ("tini-static", "/usr/bin/tini-static"),
        ("tini", "/usr/bin/tini"),
        ("dumb-init", "/usr/bin/dumb-init"),
        ("catatonit", "/usr/bin/catatonit"),
    ] {
        v.push(Init {
            name,
            bin: bin.into(),
            berth_mode: None,
        });
    }
    v
}

fn run(o: &Opts) -> Res<()> {
    let mut r = Report::default();
    let all = inits(o);
    type Figure = fn(&Opts, &[Init], &mut Report) -> Res<()>;
    let figures: [(&str, &str, Figure); 12] = [
        ("size", "binary size", sizes),
        ("start", "start overhead", start_overhead),
        ("idle", "idle memory and context switches", idle),
        ("flood", "memory after a 1M-line flood", flood),
        ("logs", "JSON log throughput", throughput),
        ("signal", "signal forward latency", signal_latency),
        ("zombies", "orphaned zombies", zombies),
        ("grace", "grace precision", grace),
        ("probe", "probe wall time", probe),
        ("wait", "dependency to app start", |o, _, r| {
            wait::dependency_to_start(o, r)
        }),
        ("waitready", "start with a ready dependency", |o, _, r| {
            wait::ready_dependency_overhead(o, r)
        }),
        ("dns", "a name through DNS", |o, _, r| wait::dns_probe(o, r)),
    ];
    for (key, name, f) in figures {
        if o.only
            .as_ref()
            .is_some_and(|only| !only.iter().any(|k| k == key))
        {
            continue;
        }
        eprintln!("berth-bench: {name} ({})", now_hms());
        f(o, &all, &mut r)?;
    }
    let kind = match (&o.only, o.quick) {
        (Some(_), _) => "partial",
        (None, true) => "quick",
        (None, false) => "full",
    };
    let json = to_json(&r, o);
    let md = to_markdown(&r, o);
    std::fs::write(o.out.join(format!("{kind}.json")), json).map_err(|e| e.to_string())?;
    std::fs::write(o.out.join(format!("{kind}.md")), &md).map_err(|e| e.to_string())?;
    println!("{md}");
    eprintln!(
        "berth-bench: wrote {}/{kind}.json and {kind}.md",
        o.out.display()
    );
    Ok(())
}

fn now_hms() -> String {
    let s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!(
        "{:02}:{:02}:{:02} UTC",
        (s / 3600) % 24,
        (s / 60) % 60,
        s % 60
    )
}

/// Round-robin with a rotating start: round `r` begins at item `r % n`.
fn rotated<T: Clone>(items: &[T], round: usize) -> Vec<T> {
    let n = items.len();
    (0..n).map(|i| items[(i + round) % n].clone()).collect()
}

// ---------------------------------------------------------------- size

fn sizes(o: &Opts, all: &[Init], r: &mut Report) -> Res<()> {
    let mut seen = Vec::new();
    for i in all {
        if seen.contains(&i.bin) {
            continue;
        }
        seen.push(i.bin.clone());
        let copy = o.tmp.join("stripped");
        std::fs::copy(&i.bin, &copy).map_err(|e| format!("{}: {e}", i.bin))?;
        let ok = Command::new("strip")
            .arg(&copy)
            .status()
            .map_err(|e| format!("strip: {e}"))?
            .success();
        if !ok {
            return Err(format!("strip {} failed", i.bin));
        }
        let len = std::fs::metadata(&copy).map_err(|e| e.to_string())?.len();
        let file = Command::new("file")
            .arg("-L")
            .arg(&i.bin)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let linkage = if file.contains("statically linked") || file.contains("static-pie") {
            "static"
        } else {
            "dynamic"
        };
        let subject = if i.name == "berth-json" {
            "berth"
        } else {
            i.name
        };
        r.add("size_kib", "KiB", subject, len as f64 / 1024.0);
        r.extra.insert(format!("linkage.{subject}"), linkage.into());
    }
    Ok(())
}

// ---------------------------------------------------------------- start

fn start_overhead(o: &Opts, all: &[Init], r: &mut Report) -> Res<()> {
    let truebin = "/bin/true".to_string();
    let mut variants: Vec<(&str, Vec<String>)> = vec![("none", vec![truebin.clone()])];
    for i in all {
        variants.push((i.name, i.argv(&[], std::slice::from_ref(&truebin))));
    }
    let rounds = if o.quick { 20 } else { 600 };
    let warm = if o.quick { 2 } else { 20 };
    time_starts(&variants, warm, rounds, "start_wall_us", r)
}

/// Runs each command `warm + rounds` times, interleaved and rotated, and
/// records the wall time of the last `rounds` (µs) under `figure`.
fn time_starts(
    variants: &[(&str, Vec<String>)],
    warm: usize,
    rounds: usize,
    figure: &str,
    r: &mut Report,
) -> Res<()> {
    for round in 0..warm + rounds {
        for (name, argv) in rotated(variants, round) {
            let t0 = Instant::now();
            let st = Command::new(&argv[0])
                .args(&argv[1..])
                // tini warns unless PID 1 or a subreaper; berth and
                // catatonit make themselves subreapers when not PID 1.
                .env("TINI_SUBREAPER", "1")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map_err(|e| format!("{}: {e}", argv[0]))?;
            let us = t0.elapsed().as_secs_f64() * 1e6;
            if !st.success() {
                return Err(format!("{name}: `{}` failed: {st}", argv.join(" ")));
            }
            if round >= warm {
                r.add(figure, "µs", name, us);
            }
        }
    }
    Ok(())
}

// ------------------------------------------------------ namespaces, fifos

/// An init running as PID 1 of a fresh PID namespace (util-linux unshare).
struct NsRun {
    unshare: Child,
    /// The init's pid as seen from here.
    pid: i32,
}

impl NsRun {
    fn start(argv: &[String], stdout: Stdio, log: &Path) -> Res<NsRun> {
        let stderr = File::create(log).map_err(|e| e.to_string())?;
        let unshare = Command::new("unshare")
            .args(["--pid", "--fork", "--mount-proc"])
            .args(argv)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("unshare: {e}"))?;
        let upid = unshare.id();
        let path = format!("/proc/{upid}/task/{upid}/children");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let s = std::fs::read_to_string(&path).unwrap_or_default();
            if let Some(p) = s.split_whitespace().next().and_then(|p| p.parse().ok()) {
                return Ok(NsRun { unshare, pid: p });
            }
            if Instant::now() > deadline {
                return Err(format!("unshare for `{}` started no child", argv.join(" ")));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn status_field(&self, key: &str) -> Res<u64> {
        status_field(self.pid, key)
    }

    /// SIGKILL to PID 1 ends the whole namespace.
    fn kill(mut self) -> Res<()> {
        kill(self.pid, libc::SIGKILL);
        wait_bounded(&mut self.unshare, Duration::from_secs(30)).map(|_| ())
    }
}

fn status_field(pid: i32, key: &str) -> Res<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| e.to_string())?;
    proc_field(&s, key).ok_or_else(|| format!("no {key} in /proc/{pid}/status"))
}

/// The number after `KEY:` in a /proc file of `Key: value [unit]` lines.
fn proc_field(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

fn kill(pid: i32, sig: i32) {
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(pid, sig) };
}

fn wait_bounded(c: &mut Child, limit: Duration) -> Res<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(st) = c.try_wait().map_err(|e| e.to_string())? {
            return Ok(st);
        }
        if Instant::now() > deadline {
            let _ = c.kill();
            let _ = c.wait();
            return Err(format!("process {} did not exit within {limit:?}", c.id()));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A FIFO the app opens by path; the driver holds the read end.
struct Fifo {
    fd: OwnedFd,
}

impl Fifo {
    fn new(path: &Path) -> Res<Fifo> {
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|e| e.to_string())?;
        let _ = std::fs::remove_file(path);
        // SAFETY: c is a valid NUL-terminated path.
        if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
            return Err(format!("mkfifo {}", path.display()));
        }
        // Non-blocking open of the read end succeeds with no writer yet;
        // Linux reports no POLLHUP until a writer has come and gone.
        // SAFETY: as above.
        let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_NONBLOCK) };
        if fd < 0 {
            return Err(format!("open {}", path.display()));
        }
        // SAFETY: fd was just opened and is owned by nobody else.
        Ok(Fifo {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    fn poll(&self, events: i16, timeout: Duration) -> i16 {
        let mut p = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events,
            revents: 0,
        };
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: p is one valid pollfd.
        let n = unsafe { libc::poll(&mut p, 1, ms) };
        if n <= 0 {
            0
        } else {
            p.revents
        }
    }

    /// Reads exactly buf.len() bytes or fails after `timeout`.
    fn read_exact(&self, buf: &mut [u8], timeout: Duration) -> Res<()> {
        let deadline = Instant::now() + timeout;
        let mut got = 0;
        while got < buf.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!("timed out after {timeout:?} waiting for the app"));
            }
            if self.poll(libc::POLLIN, left) & (libc::POLLIN | libc::POLLHUP) == 0 {
                continue;
            }
            // SAFETY: reading into the unfilled tail of buf.
            let n = unsafe {
                libc::read(
                    self.fd.as_raw_fd(),
                    buf[got..].as_mut_ptr().cast(),
                    buf.len() - got,
                )
            };
            if n == 0 {
                return Err("the app closed its FIFO early".into());
            }
            if n > 0 {
                got += n as usize;
            }
        }
        Ok(())
    }

    /// Waits until the writer is gone (POLLHUP); true if it was in time.
    fn wait_hangup(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            if self.poll(0, left) & libc::POLLHUP != 0 {
                return true;
            }
        }
    }
}

fn app(o: &Opts, args: &[&str]) -> Vec<String> {
    let mut v = vec![o.app.clone()];
    v.extend(args.iter().map(|s| s.to_string()));
    v
}

// ------------------------------------------------------------ RSS, idle

/// Each init as its own private copy (a fresh inode), so that the page
/// cache shares its text with no process but the ones this figure starts:
/// PSS and USS then do not depend on what else runs on the machine.
fn private_copies(o: &Opts, all: &[Init]) -> Res<Vec<Init>> {
    all.iter()
        .map(|i| {
            let copy = o.tmp.join(format!("bin-{}", i.name));
            std::fs::copy(&i.bin, &copy).map_err(|e| format!("{}: {e}", i.bin))?;
            Ok(Init {
                bin: copy.to_string_lossy().into_owned(),
                ..i.clone()
            })
        })
        .collect()
}

/// `INIT -- benchapp MODE [ARGS] FIFO` as PID 1 of a new PID namespace,
/// stdout a pipe; `tag` names its FIFO and log.
fn start_app(o: &Opts, i: &Init, tag: &str, mode: &[&str]) -> Res<(Fifo, NsRun)> {
    let fifo_path = o.tmp.join(format!("{tag}-{}", i.name));
    let fifo = Fifo::new(&fifo_path)?;
    let p = fifo_path.to_string_lossy().into_owned();
    let mut args = mode.to_vec();
    args.push(&p);
    let ns = NsRun::start(
        &i.argv(&[], &app(o, &args)),
        Stdio::piped(),
        &o.tmp.join(format!("{tag}-{}.log", i.name)),
    )?;
    Ok((fifo, ns))
}

/// Starts a second, idle container of each init's image (its twin) and
/// waits until each idles: with one twin, PSS counts half of the text two
/// containers of one image share, and USS is what a further container adds.
fn start_twins(o: &Opts, all: &[Init]) -> Res<Vec<NsRun>> {
    let mut twins = Vec::new();
    for i in all {
        let (fifo, ns) = start_app(o, i, "twin", &["idle"])?;
        fifo.read_exact(&mut [0u8; 1], Duration::from_secs(10))
            .map_err(|e| format!("idle twin under {}: {e}", i.name))?;
        twins.push(ns);
    }
    Ok(twins)
}

fn idle(o: &Opts, all: &[Init], r: &mut Report) -> Res<()> {
    let rounds = if o.quick { 1 } else { 3 };
    let idle = Duration::from_secs(if o.quick { 1 } else { 10 });
    let all = private_copies(o, all)?;
    for round in 0..rounds {
        let twins = start_twins(o, &all)?;
        // All inits idle at once: each is measured on its own counters.
        let mut running = Vec::new();
        for i in rotated(&all, round) {
            let (fifo, ns) = start_app(o, &i, "idle", &["idle"])?;
            running.push((i, fifo, ns));
        }
        for (i, fifo, _) in &running {
            fifo.read_exact(&mut [0u8; 1], Duration::from_secs(10))
                .map_err(|e| format!("idle app under {}: {e}", i.name))?;
        }
        // Let every init finish its start-up work before counting.
        std::thread::sleep(Duration::from_millis(300));
        let mut before = Vec::new();
        for (i, _, ns) in &running {
            record_memory(r, "", i.name, ns.pid)?;
            let cs = ns.status_field("voluntary_ctxt_switches")?
                + ns.status_field("nonvoluntary_ctxt_switches")?;
            before.push(cs);
        }
        std::thread::sleep(idle);
        for ((i, _, ns), b) in running.iter().zip(before) {
            let cs = ns.status_field("voluntary_ctxt_switches")?
                + ns.status_field("nonvoluntary_ctxt_switches")?;
            r.add("idle_ctxsw", "switches", i.name, (cs - b) as f64);
        }
        for ns in running.into_iter().map(|(_, _, ns)| ns).chain(twins) {
            ns.kill()?;
        }
    }
    r.extra
        .insert("idle_seconds".into(), idle.as_secs().to_string());
    Ok(())
}

/// The init's memory under figure names `PREFIXrss_kib`, `PREFIXpss_kib`
/// and `PREFIXuss_kib`. VmRSS counts every page mapped, shared or not; PSS
/// (`Pss` of /proc/PID/smaps_rollup) divides each page by the processes
/// mapping it; USS (`Private_Clean + Private_Dirty`) is what this process
/// alone holds, what a second container of the same image adds. Most of an
/// idle init's RSS is its binary's text, which the page cache shares.
fn record_memory(r: &mut Report, prefix: &str, init: &str, pid: i32) -> Res<()> {
    r.add(
        &format!("{prefix}rss_kib"),
        "KiB",
        init,
        status_field(pid, "VmRSS")? as f64,
    );
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .map_err(|e| format!("/proc/{pid}/smaps_rollup: {e}"))?;
    let kib = |key: &str| -> Res<u64> {
        proc_field(&rollup, key).ok_or_else(|| format!("no {key} in /proc/{pid}/smaps_rollup"))
    };
    r.add(&format!("{prefix}pss_kib"), "KiB", init, kib("Pss")? as f64);
    let uss = kib("Private_Clean")? + kib("Private_Dirty")?;
    r.add(&format!("{prefix}uss_kib"), "KiB", init, uss as f64);
    Ok(())
}

// ---------------------------------------------------------------- flood

/// Memory after a flood: `benchapp spew-idle N FIFO` writes N lines, says
/// so on the FIFO and idles. All inits run at once, from private copies,
/// each beside an idle twin (as in the idle figure); the driver drains each
/// one's stdout in turn (every line checked), takes the app's word, and
/// reads every init's memory 1.5 s after the last app finished (longer for
/// those drained first). berth trims its buffers a while after a flood.
fn flood(o: &Opts, all: &[Init], r: &mut Report) -> Res<()> {
    let n: u64 = if o.quick { 20_000 } else { 1_000_000 };
    let rounds = if o.quick { 1 } else { 3 };
    let settle = Duration::from_millis(1500);
    let ns_ = n.to_string();
    let all = private_copies(o, all)?;
    for round in 0..rounds {
        let twins = start_twins(o, &all)?;
        let mut running = Vec::new();
        for i in rotated(&all, round) {
            let (fifo, ns) = start_app(o, &i, "flood", &["spew-idle", &ns_])?;
            running.push((i, fifo, ns));
        }
        let mut last = Instant::now();
        for (i, fifo, ns) in &mut running {
            let out = ns.unshare.stdout.as_mut().ok_or("no pipe")?;
            let mut c = check::Checker::new(i.berth_mode == Some("json"), 100);
            check::drain_lines(out, &mut c, n)
                .map_err(|e| format!("flood under {}: {e}", i.name))?;
            fifo.read_exact(&mut [0u8; 1], Duration::from_secs(60))
                .map_err(|e| format!("spew-idle app under {}: {e}", i.name))?;
            last = Instant::now();
        }
        std::thread::sleep(settle.saturating_sub(last.elapsed()));
        for (i, _, ns) in &running {
            record_memory(r, "flood_", i.name, ns.pid)?;
        }
        for ns in running.into_iter().map(|(_, _, ns)| ns).chain(twins) {
            ns.kill()?;
        }
    }
    r.extra.insert("flood_lines".into(), n.to_string());
    Ok(())
}

// ---------------------------------------------------------- throughput

/// The pause before each timed run of the log figure.
const SETTLE: Duration = Duration::from_millis(100);

/// The log figure. Each round times, in a rotating order: `spew | cat`
/// into the driver (the reference through two pipes), `spew` alone (one
/// pipe: the producer's own pace, which must stay far above the rest),
/// `benchcopy HEAD -- spew` (the limit: only what berth must do to the
/// bytes, with berth's pipe sizes), `INIT -- spew` for each init that
/// forwards, and the driver's own check alone (`reader`, `reader-json`,
/// check::self_test: what the reader could take at most, so that the figure
/// shows it caps no one).
fn throughput(o: &Opts, all: &[Init], r: &mut Report) -> Res<()> {
    let n: u64 = if o.quick { 20_000 } else { 1_000_000 };
    // 11 rounds: on a shared machine single samples swing 3x (issue 26).
    let rounds = if o.quick { 2 } else { 11 };
    let ns = n.to_string();
    let spew = app(o, &["spew", &ns]);
    // benchcopy is built beside benchapp (bench/run builds both).
    let copier = Path::new(&o.app).with_file_name("benchcopy");
    let mut limit = vec![
        copier.to_string_lossy().into_owned(),
        check::LIMIT_HEAD.into(),
        "--".into(),
    ];
    limit.extend(spew.iter().cloned());
    #[derive(Clone, Copy)]
    enum V<'a> {
        Producer,
        Cat,
        Alone,
        Limit,
        Under(&'a Init),
        Reader(bool),
    }
    let mut variants = vec![
        V::Producer,
        V::Cat,
        V::Alone,
        V::Limit,
        V::Reader(false),
        V::Reader(true),
    ];
    variants.extend(
        all.iter()
            .filter(|i| i.name != "berth" && i.name != "tini")
            .map(V::Under),
    );
    // Every row on one fixed placement (placement.rs): its pipeline on one
    // CPU, the driver's polling reader on another.
    let placed = placement::Placement::pick();
    let driver_cpus = placement::allowed_cpus();
    match placed {
        Some(p) => {
            placement::pin_self(p.reader).map_err(|e| format!("pin the reader: {e}"))?;
            r.extra.insert(
                "log_placement".into(),
                format!(
                    "pipeline on CPU {}, the driver's polling reader on CPU {}",
                    p.pipeline, p.reader
                ),
            );
        }
        None => {
            eprintln!("berth-bench: WARNING: one CPU: the log figure runs unplaced, its samples a lottery");
            r.extra
                .insert("log_placement".into(), "none (one CPU)".into());
        }
    }
    let pipeline = |c: &mut Command| {
        if let Some(p) = placed {
            p.pipeline_of(c);
        }
    };
    let drain = |pipe: std::process::ChildStdout, c: &mut check::Checker| match placed {
        Some(_) => placement::drain_polling(pipe, c, n),
        None => check::drain(pipe, c, n),
    };
    // The app alone, placed as every row's processes are.
    let spew_into = |out: Stdio| -> Res<std::process::Child> {
        let mut c = Command::new(&spew[0]);
        pipeline(&mut c);
        c.args(&spew[1..])
            .stdout(out)
            .spawn()
            .map_err(|e| format!("{}: {e}", spew[0]))
    };
    let mut timed_rounds = || -> Res<()> {
        for round in 0..rounds {
            for v in rotated(&variants, round) {
                // Every run starts from an idle driver. The rotation keeps each
                // variant's neighbours, and berth json always came right after
                // the JSON reader's self-test, a driver busy for tens of ms:
                // it read 0.51-0.69x the limit that way, 0.85x with this pause
                // (issue 26; the scheduler's load tracking decays in ~100 ms).
                std::thread::sleep(SETTLE);
                let t0 = Instant::now();
                // `checked`: every line was read and checked (a loss is an
                // error above), so the row lost none.
                let (name, secs, checked) = match v {
                    V::Reader(json) => {
                        let spent = check::self_test(json, n)
                            .map_err(|e| format!("reader self-test: {e}"))?;
                        let name = if json { "reader-json" } else { "reader" };
                        (name, spent, true)
                    }
                    V::Producer => {
                        // The producer's own pace: no pipe, no reader.
                        let mut producer = spew_into(Stdio::null())?;
                        let st = wait_bounded(&mut producer, Duration::from_secs(60))?;
                        if !st.success() {
                            return Err(format!("producer: exit {st}"));
                        }
                        ("producer", t0.elapsed(), false)
                    }
                    V::Cat => {
                        let mut producer = spew_into(Stdio::piped())?;
                        let pout = producer.stdout.take().ok_or("no pipe")?;
                        let mut cat = Command::new("cat");
                        pipeline(&mut cat);
                        let mut cat = cat
                            .stdin(pout)
                            .stdout(Stdio::piped())
                            .spawn()
                            .map_err(|e| e.to_string())?;
                        let cout = cat.stdout.take().ok_or("no pipe")?;
                        drain(cout, &mut check::Checker::new(false, 100))
                            .map_err(|e| format!("cat: {e}"))?;
                        wait_bounded(&mut producer, Duration::from_secs(60))?;
                        wait_bounded(&mut cat, Duration::from_secs(60))?;
                        ("cat", t0.elapsed(), true)
                    }
                    V::Alone | V::Limit | V::Under(_) => {
                        let (name, argv, mut checker) = match v {
                            V::Under(i) => (
                                i.name,
                                i.argv(&[], &spew),
                                check::Checker::new(i.berth_mode == Some("json"), 100),
                            ),
                            V::Limit => (
                                "limit",
                                limit.clone(),
                                check::Checker::with_prefix(check::LIMIT_HEAD.as_bytes(), 100),
                            ),
                            _ => ("none", spew.clone(), check::Checker::new(false, 100)),
                        };
                        let mut c = Command::new(&argv[0]);
                        pipeline(&mut c);
                        let mut c = c
                            .args(&argv[1..])
                            .env("TINI_SUBREAPER", "1")
                            .stdout(Stdio::piped())
                            .stderr(Stdio::null())
                            .spawn()
                            .map_err(|e| format!("{}: {e}", argv[0]))?;
                        let out = c.stdout.take().ok_or("no pipe")?;
                        drain(out, &mut checker).map_err(|e| format!("{name}: {e}"))?;
                        let st = wait_bounded(&mut c, Duration::from_secs(60))?;
                        if !st.success() {
                            return Err(format!("{name}: exit {st}"));
                        }
                        (name, t0.elapsed(), true)
                    }
                };
                let secs = secs.as_secs_f64();
                r.add("log_mb_per_s", "MB/s", name, (n * 100) as f64 / secs / 1e6);
                if checked {
                    r.add("log_lines_lost", "lines", name, 0.0);
                }
            }
        }
        Ok(())
    };
    let result = timed_rounds();
    placement::pin_self_to(&driver_cpus);
    result?;
    r.extra.insert("log_lines".into(), n.to_string());
    // The figure is berth's only while the producer outruns every pipeline
    // by far (issue 26): say so on every run, loudly when it does not. The
    // producer is timed alone into /dev/null: `none` (the app into the
    // driver's pipe) is the data path's ceiling, a pipe read on another
    // CPU, and on a fixed placement `cat` copies within 20% of it.
    let m = |s: &str| r.median("log_mb_per_s", s).unwrap_or(f64::NAN);
    let (producer, alone, cat) = (m("producer"), m("none"), m("cat"));
    eprintln!(
        "berth-bench: the producer alone writes {producer:.0} MB/s ({:.1}× cat's {cat:.0}), into the driver's pipe {alone:.0} MB/s ({:.2}× cat)",
        producer / cat,
        alone / cat
    );
    if producer.is_nan() || cat.is_nan() || producer < 2.0 * cat {
        eprintln!(
            "berth-bench: WARNING: the producer is under 2× cat: the log figures are its pace, not the pipelines'"
        );
    }
    Ok(())
}

// ------------------------------------------------------- signal latency

/// SIGUSR1 from the driver to each init (to the app itself for `none`)
/// until the app has it. Where the scheduler places each process decides
/// whether a wake-up crosses CPUs (an IPI: tens of µs in a VM), and a
/// process mostly stays where it was first placed; so the samples come from
/// several generations of fresh processes, each a new placement draw.
fn signal_latency(o: &Opts, all: &[Init], r: &mut Report) -> Res<()> {
    let (generations, per) = if o.quick { (1, 50) } else { (10, 400) };
    for _ in 0..generations {
        signal_generation(o, all, r, per)?;
    }
    Ok(())
}

fn signal_generation(o: &Opts, all: &[Init], r: &mut Report, samples: usize) -> Res<()> {
    struct Target {
        name: &'static str,
        pid: i32,
        fifo: Fifo,
        ns: Option<NsRun>,
        direct: Option<Child>,
    }
    let mut targets: Vec<Target> = Vec::new();
    for i in all {
        let fifo_path = o.tmp.join(format!("sig-{}", i.name));
        let fifo = Fifo::new(&fifo_path)?;
        let p = fifo_path.to_string_lossy().into_owned();
        let ns = NsRun::start(
            &i.argv(&[], &app(o, &["sigwait", &p])),
            Stdio::null(),
            &o.tmp.join(format!("sig-{}.log", i.name)),
        )?;
        targets.push(Target {
            name: i.name,
            pid: ns.pid,
            fifo,
            ns: Some(ns),
            direct: None,
        });
    }
    {
        // The kernel alone: the app itself, no init in between.
        let fifo_path = o.tmp.join("sig-none");
        let fifo = Fifo::new(&fifo_path)?;
        let p = fifo_path.to_string_lossy().into_owned();
        let argv = app(o, &["sigwait", &p]);
        let c = Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?;
        targets.push(Target {
            name: "none",
            pid: c.id() as i32,
            fifo,
            ns: None,
            direct: Some(c),
        });
    }
    for t in &targets {
        t.fifo
            .read_exact(&mut [0u8; 8], Duration::from_secs(10))
            .map_err(|e| format!("sigwait app under {}: {e}", t.name))?;
    }
    std::thread::sleep(Duration::from_millis(100));
    let idx: Vec<usize> = (0..targets.len()).collect();
    for round in 0..samples {
        for k in rotated(&idx, round) {
            let t = &targets[k];
            let mut b = [0u8; 8];
            let t0 = mono_ns();
            kill(t.pid, libc::SIGUSR1);
            t.fifo
                .read_exact(&mut b, Duration::from_secs(5))
                .map_err(|e| format!("SIGUSR1 through {}: {e}", t.name))?;
            let t1 = u64::from_ne_bytes(b);
            r.add(
                "signal_us",
                "µs",
                t.name,
                t1.saturating_sub(t0) as f64 / 1e3,
            );
            // Let the init go back to sleep before the next signal.
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    for mut t in targets {
        if let Some(ns) = t.ns.take() {
            ns.kill()?;
        }
        if let Some(mut c) = t.direct.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
    Ok(())
}

// -------------------------------------------------------------- zombies

fn zombies(o: &Opts, all: &[Init], r: &mut Report) -> Res<()> {
    let n = if o.quick { 300 } else { 10_000 };
    // The lag is bimodal for every init (a round either keeps up or lands
    // behind a herd of runnable exits): five rounds give a steadier median.
    let rounds = if o.quick { 1 } else { 5 };
    let ns_ = n.to_string();
    for round in 0..rounds {
        for i in rotated(all, round) {
            let result = o.tmp.join(format!("zombies-{}", i.name));
            let _ = std::fs::remove_file(&result);
            let p = result.to_string_lossy().into_owned();
            let mut run = NsRun::start(
                &i.argv(&[], &app(o, &["orphans", &ns_, &p])),
                Stdio::null(),
                &o.tmp.join(format!("zombies-{}.log", i.name)),
            )?;
            wait_bounded(&mut run.unshare, Duration::from_secs(120))?;
            let line = std::fs::read_to_string(&result)
                .map_err(|e| format!("orphans under {}: no result ({e})", i.name))?;
            let f: Vec<f64> = line
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            if f.len() != 3 {
                return Err(format!("orphans under {}: bad result {line:?}", i.name));
            }
            r.add("zombies_left", "processes", i.name, f[0]);
            r.add("zombie_lag_ms", "ms", i.name, f[1] / 1e6);
            r.add("zombie_total_ms", "ms", i.name, f[2] / 1e6);
        }
    }
    r.extra.insert("zombies".into(), n.to_string());
    Ok(())
}

// ---------------------------------------------------------------- grace

fn grace(o: &Opts, all: &[Init], r: &mut Report) -> Res<()> {
    let rounds = if o.quick { 1 } else { 5 };
    let berths: Vec<&Init> = all.iter().filter(|i| i.is_berth()).collect();
    for round in 0..rounds {
        for i in rotated(&berths, round) {
            let fifo_path = o.tmp.join(format!("grace-{}", i.name));
            let fifo = Fifo::new(&fifo_path)?;
            let p = fifo_path.to_string_lossy().into_owned();
            let mut run = NsRun::start(
                &i.argv(&["--grace", "1s"], &app(o, &["stubborn", &p])),
                Stdio::null(),
                &o.tmp.join(format!("grace-{}.log", i.name)),
            )?;
            fifo.read_exact(&mut [0u8; 1], Duration::from_secs(10))
                .map_err(|e| format!("stubborn app under {}: {e}", i.name))?;
            std::thread::sleep(Duration::from_millis(50));
            let t0 = mono_ns();
            kill(run.pid, libc::SIGTERM);
            if !fifo.wait_hangup(Duration::from_secs(10)) {
                return Err(format!("{}: the stubborn app outlived its grace", i.name));
            }
            let t1 = mono_ns();
            let late_ms = (t1 as f64 - t0 as f64 - 1e9) / 1e6;
            r.add("grace_late_ms", "ms", i.name, late_ms);
            wait_bounded(&mut run.unshare, Duration::from_secs(10))?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- probe

fn probe(o: &Opts, _all: &[Init], r: &mut Report) -> Res<()> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let mut req = Vec::new();
            let mut b = [0u8; 1024];
            while memchr::memmem::find(&req, b"\r\n\r\n").is_none() && req.len() < 65536 {
                match s.read(&mut b) {
                    Ok(0) | Err(_) => break,
                    Ok(k) => req.extend_from_slice(&b[..k]),
                }
            }
            let _ = s.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n",
            );
        }
    });
    let url = format!("http://127.0.0.1:{port}/");
    // The grpc:// probe against a real gRPC server: grpcio's health
    // servicer (tests/grpc_health_server.py; bench/run installs grpcio).
    let grpc = GrpcServer::start()?;
    let grpc_url = format!("grpc://127.0.0.1:{}", grpc.port);
    let variants: Vec<(&str, Vec<String>)> = vec![
        (
            "berth-grpc",
            vec![o.berth.clone(), "probe".into(), grpc_url.clone()],
        ),
        ("berth", vec![o.berth.clone(), "probe".into(), url.clone()]),
        (
            "curl",
            vec![
                "curl".into(),
                "-fsS".into(),
                "-o".into(),
                "/dev/null".into(),
                url.clone(),
            ],
        ),
        (
            "wget",
            vec!["wget".into(), "-q".into(), "-O-".into(), url.clone()],
        ),
    ];
    let rounds = if o.quick { 10 } else { 300 };
    for round in 0..rounds + 5 {
        for (name, argv) in rotated(&variants, round) {
            let t0 = Instant::now();
            let st = Command::new(&argv[0])
                .args(&argv[1..])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .status()
                .map_err(|e| format!("{}: {e}", argv[0]))?;
            let ms = t0.elapsed().as_secs_f64() * 1e3;
            if !st.success() {
                return Err(format!("{name} probe ({}) failed: {st}", argv.join(" ")));
            }
            if round >= 5 {
                r.add("probe_ms", "ms", name, ms);
            }
        }
    }
    Ok(())
}

/// tests/grpc_health_server.py on a free loopback port, killed on drop.
struct GrpcServer {
    child: Child,
    port: u16,
}

impl GrpcServer {
    fn start() -> Res<GrpcServer> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/grpc_health_server.py");
        let mut child = Command::new("python3")
            .arg(&script)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("python3 {}: {e}", script.display()))?;
        let mut out = child.stdout.take().ok_or("no stdout")?;
        let mut line = Vec::new();
        let mut b = [0u8; 1];
        while !line.ends_with(b"\n") && line.len() < 200 {
            match out.read(&mut b) {
                Ok(1) => line.push(b[0]),
                _ => break,
            }
        }
        let text = String::from_utf8_lossy(&line);
        let port = text
            .trim()
            .strip_prefix("listening on ")
            .and_then(|p| p.parse().ok());
        let mut server = GrpcServer { child, port: 0 };
        match port {
            Some(p) => server.port = p,
            None => {
                return Err(format!(
                    "grpc health server did not start ({text:?}): python3 -m pip install grpcio grpcio-health-checking"
                ))
            }
        }
        Ok(server)
    }
}

impl Drop for GrpcServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// --------------------------------------------------------------- output

fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn num(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.3}")
    } else {
        "null".into()
    }
}

fn to_json(r: &Report, o: &Opts) -> String {
    let mut s = String::from("{\n");
    let _ = writeln!(
        s,
        "  \"mode\": {},",
        json_str(if o.quick { "quick" } else { "full" })
    );
    let _ = writeln!(s, "  \"machine\": {},", json_str(&machine()));
    s.push_str("  \"extra\": {");
    let extra: Vec<String> = r
        .extra
        .iter()
        .map(|(k, v)| format!("{}: {}", json_str(k), json_str(v)))
        .collect();
    s.push_str(&extra.join(", "));
    s.push_str("},\n  \"log_throughput\": {");
    let logs: Vec<String> = log_rows(r)
        .iter()
        .map(|l| {
            format!(
                "\n    {}: {{\"mb_per_s\": {}, \"throughput_vs_cat\": {}, \"throughput_vs_limit\": {}, \"lines_lost\": {}}}",
                json_str(l.subject),
                num(l.mb_per_s),
                num(l.vs_cat),
                num(l.vs_limit),
                num(l.lost)
            )
        })
        .collect();
    s.push_str(&logs.join(","));
    s.push_str(if logs.is_empty() { "" } else { "\n  " });
    s.push_str("},\n  \"figures\": [\n");
    let rows: Vec<String> = r
        .samples
        .iter()
        .map(|((fig, subj), v)| {
            let samples: Vec<String> = v.iter().map(|x| num(*x)).collect();
            format!(
                "    {{\"figure\": {}, \"subject\": {}, \"unit\": {}, \"n\": {}, \"median\": {}, \"p99\": {}, \"samples\": [{}]}}",
                json_str(fig),
                json_str(subj),
                json_str(r.units.get(fig).copied().unwrap_or("")),
                v.len(),
                num(percentile(v, 50.0)),
                num(percentile(v, 99.0)),
                samples.join(", ")
            )
        })
        .collect();
    s.push_str(&rows.join(",\n"));
    s.push_str("\n  ]\n}\n");
    s
}

/// One row of the log figure: a pipeline's median and its ratios to `cat`
/// and to the limit (the copier) of the same run.
struct LogRow {
    subject: &'static str,
    label: &'static str,
    mb_per_s: f64,
    vs_cat: f64,
    vs_limit: f64,
    /// The worst round's lines lost (any loss fails the run).
    lost: f64,
}

/// The log figure's rows that were measured, in the order the table shows.
fn log_rows(r: &Report) -> Vec<LogRow> {
    const ROWS: [(&str, &str); 10] = [
        ("producer", "the producer alone (`spew` into /dev/null)"),
        (
            "none",
            "the app alone (`spew` into the driver's pipe, no init)",
        ),
        ("cat", "`spew \\| cat`"),
        (
            "limit",
            "the limit: `benchcopy` (80-byte head per line, berth's pipe sizes)",
        ),
        ("berth-json", "berth `--log-format json`"),
        ("tini-static", "tini-static"),
        ("dumb-init", "dumb-init"),
        ("catatonit", "catatonit"),
        ("reader", "the reader's own check, plain"),
        ("reader-json", "the reader's own check, berth's JSON"),
    ];
    let m = |s: &str| r.median("log_mb_per_s", s).unwrap_or(f64::NAN);
    let (cat, limit) = (m("cat"), m("limit"));
    ROWS.iter()
        .filter_map(|&(subject, label)| {
            let v = r.median("log_mb_per_s", subject)?;
            let lost = r
                .get("log_lines_lost", subject)
                .map(|l| l.iter().cloned().fold(0.0, f64::max))
                .unwrap_or(f64::NAN);
            Some(LogRow {
                subject,
                label,
                mb_per_s: v,
                vs_cat: v / cat,
                vs_limit: v / limit,
                lost,
            })
        })
        .collect()
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name")?.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    format!("{cores} cores, {cpu}, Linux {}", kernel.trim())
}

const COLS: [&str; 7] = [
    "berth",
    "berth-json",
    "tini-static",
    "tini",
    "dumb-init",
    "catatonit",
    "none",
];

fn to_markdown(r: &Report, o: &Opts) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "berth-bench {} run, {}; medians unless noted; ratios are from this run.\n",
        if o.quick {
            "QUICK (smoke, not figures)"
        } else {
            "full"
        },
        machine()
    );
    let _ = writeln!(
        s,
        "| figure | berth (plain) | berth (json) | tini-static | tini | dumb-init | catatonit | baseline | berth's bar | met |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|");
    let cell = |fig: &str, subj: &str, f: &dyn Fn(f64) -> String| -> String {
        r.median(fig, subj).map(f).unwrap_or_else(|| "–".into())
    };
    let mut row =
        |name: String, cells: Vec<String>, baseline: String, bar: String, met: Option<bool>| {
            let met = match met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "–",
            };
            let _ = writeln!(
                s,
                "| {name} | {} | {baseline} | {bar} | {met} |",
                cells.join(" | ")
            );
        };
    let six = &COLS[..6];
    let m = |fig: &str, subj: &str| r.median(fig, subj).unwrap_or(f64::NAN);

    // Size.
    let size_cells: Vec<String> = six
        .iter()
        .map(|c| {
            if *c == "berth-json" {
                "(same binary)".into()
            } else {
                let link = r
                    .extra
                    .get(&format!("linkage.{c}"))
                    .cloned()
                    .unwrap_or_default();
                cell("size_kib", c, &|v| format!("{v:.1} KiB ({link})"))
            }
        })
        .collect();
    let size = m("size_kib", "berth");
    row(
        "static binary size (stripped)".into(),
        size_cells,
        "–".into(),
        format!("≤ 700 KiB (stretch 512): {size:.1} KiB"),
        Some(size <= 700.0),
    );

    // Start overhead.
    let bare = m("start_wall_us", "none");
    let over = |c: &str| m("start_wall_us", c) - bare;
    let start_cells: Vec<String> = six
        .iter()
        .map(|c| format!("+{:.0} µs ({:.0} µs wall)", over(c), m("start_wall_us", c)))
        .collect();
    let tini_wall = m("start_wall_us", "tini-static");
    let rp = m("start_wall_us", "berth") / tini_wall;
    let rj = m("start_wall_us", "berth-json") / tini_wall;
    let op = over("berth") / over("tini-static");
    let oj = over("berth-json") / over("tini-static");
    row(
        "start overhead, `INIT -- /bin/true` over bare `/bin/true`".into(),
        start_cells,
        format!("bare {bare:.0} µs"),
        format!(
            "wall ≤ 1.0× tini-static plain, ≤ 1.5× json: {rp:.2}× / {rj:.2}× (overhead {op:.2}× / {oj:.2}×)"
        ),
        Some(rp <= 1.0 && rj <= 1.5),
    );

    // Memory: idle, and after a flood.
    let mem_cells = |prefix: &str| -> Vec<String> {
        six.iter()
            .map(|c| {
                let f = |k: &str| r.median(&format!("{prefix}{k}_kib"), c);
                match (f("rss"), f("pss"), f("uss")) {
                    (Some(a), Some(b), Some(u)) => format!("{a:.0} / {b:.0} / {u:.0} KiB"),
                    _ => "–".into(),
                }
            })
            .collect()
    };
    let (rssp, rssj) = (m("rss_kib", "berth"), m("rss_kib", "berth-json"));
    row(
        "VmRSS / PSS / USS as PID 1, app idle".into(),
        mem_cells(""),
        "–".into(),
        format!("VmRSS ≤ 708 KiB plain, ≤ 1024 KiB json: {rssp:.0} / {rssj:.0} KiB"),
        Some(rssp <= 708.0 && rssj <= 1024.0),
    );
    let flood_n = r.extra.get("flood_lines").cloned().unwrap_or_default();
    row(
        format!("VmRSS / PSS / USS as PID 1, app idle after {flood_n} lines (read ≥ 1.5 s after)"),
        mem_cells("flood_"),
        "–".into(),
        format!(
            "no bar; berth USS {:.0} / {:.0} KiB",
            m("flood_uss_kib", "berth"),
            m("flood_uss_kib", "berth-json")
        ),
        None,
    );

    // Context switches.
    let idle_s = r.extra.get("idle_seconds").cloned().unwrap_or_default();
    let cs_cells: Vec<String> = six
        .iter()
        .map(|c| cell("idle_ctxsw", c, &|v| format!("{v:.0}")))
        .collect();
    let (csp, csj) = (m("idle_ctxsw", "berth"), m("idle_ctxsw", "berth-json"));
    row(
        format!("context switches, app idle {idle_s} s"),
        cs_cells,
        "–".into(),
        format!("0 both modes: {csp:.0} / {csj:.0}"),
        Some(csp == 0.0 && csj == 0.0),
    );

    // Throughput.
    let lines = r.extra.get("log_lines").cloned().unwrap_or_default();
    let catv = m("log_mb_per_s", "cat");
    let limv = m("log_mb_per_s", "limit");
    let tp_cells: Vec<String> = six
        .iter()
        .map(|c| {
            cell("log_mb_per_s", c, &|v| {
                format!("{v:.0} MB/s ({:.2}× cat, {:.2}× limit)", v / catv, v / limv)
            })
        })
        .collect();
    let tl = m("log_mb_per_s", "berth-json") / limv;
    let alone = m("log_mb_per_s", "none") / catv;
    let producer = m("log_mb_per_s", "producer") / catv;
    row(
        format!("log throughput, {lines} × 100-byte lines, every line checked"),
        tp_cells,
        format!(
            "`cat` {catv:.0} MB/s; the limit {limv:.0} MB/s ({:.2}× cat); the producer {:.0} MB/s ({producer:.1}× cat); app alone into the pipe {:.0} MB/s ({alone:.2}× cat); table below",
            limv / catv,
            m("log_mb_per_s", "producer"),
            m("log_mb_per_s", "none"),
        ),
        format!("json ≥ 0.9× the limit, the producer ≥ 2× cat: {tl:.2}×, {producer:.1}×"),
        Some(tl >= 0.9 && producer >= 2.0),
    );

    // Signals.
    let sig_cells: Vec<String> = six
        .iter()
        .map(
            |c| match (r.pct("signal_us", c, 50.0), r.pct("signal_us", c, 99.0)) {
                (Some(a), Some(b)) => format!("{a:.1} / {b:.1} µs"),
                _ => "–".into(),
            },
        )
        .collect();
    let p99 = |c: &str| r.pct("signal_us", c, 99.0).unwrap_or(f64::NAN);
    let sr = p99("berth") / p99("tini-static");
    let srj = p99("berth-json") / p99("tini-static");
    row(
        "signal forward latency p50 / p99".into(),
        sig_cells,
        format!(
            "kernel alone {:.1} / {:.1} µs",
            r.pct("signal_us", "none", 50.0).unwrap_or(f64::NAN),
            p99("none")
        ),
        format!("p99 ≤ 1.2× tini-static: {sr:.2}× plain, {srj:.2}× json"),
        Some(sr <= 1.2),
    );

    // Zombies.
    let nz = r.extra.get("zombies").cloned().unwrap_or_default();
    let z_cells: Vec<String> = six
        .iter()
        .map(|c| {
            let left = r
                .get("zombies_left", c)
                .map(|v| v.iter().cloned().fold(0.0, f64::max));
            match left {
                Some(left) => format!(
                    "{left:.0} left, lag {:.2} ms (all in {:.0} ms)",
                    m("zombie_lag_ms", c),
                    m("zombie_total_ms", c)
                ),
                None => "–".into(),
            }
        })
        .collect();
    let zl = r
        .get("zombies_left", "berth")
        .map(|v| v.iter().cloned().fold(0.0, f64::max))
        .unwrap_or(f64::NAN);
    let zj = r
        .get("zombies_left", "berth-json")
        .map(|v| v.iter().cloned().fold(0.0, f64::max))
        .unwrap_or(f64::NAN);
    let (lagp, lagj) = (
        m("zombie_lag_ms", "berth"),
        m("zombie_lag_ms", "berth-json"),
    );
    row(
        format!("{nz} orphaned zombies at once (left: worst round)"),
        z_cells,
        "–".into(),
        format!("0 left, lag ≤ 1 ms: {zl:.0}/{zj:.0} left, {lagp:.2} / {lagj:.2} ms"),
        Some(zl == 0.0 && zj == 0.0 && lagp <= 1.0 && lagj <= 1.0),
    );

    // Grace.
    let g_cells: Vec<String> = six
        .iter()
        .map(|c| {
            r.get("grace_late_ms", c)
                .map(|v| {
                    format!(
                        "+{:.2} ms (max {:.2})",
                        percentile(v, 50.0),
                        percentile(v, 100.0)
                    )
                })
                .unwrap_or_else(|| "no grace period".into())
        })
        .collect();
    let gmed = ["berth", "berth-json"]
        .iter()
        .filter_map(|c| r.get("grace_late_ms", c).map(|v| percentile(v, 50.0)))
        .fold(f64::NAN, f64::max);
    row(
        "grace precision: app ignores SIGTERM, `--grace 1s`, death after the deadline".into(),
        g_cells,
        "–".into(),
        format!("SIGKILL ≤ 10 ms after the deadline: median {gmed:.2} ms"),
        Some(gmed <= 10.0),
    );

    // Probe.
    let pb = m("probe_ms", "berth");
    let pc = m("probe_ms", "curl");
    let pw = m("probe_ms", "wget");
    let mut p_cells = vec![format!("{pb:.2} ms ({:.2}× curl)", pb / pc)];
    p_cells.extend(std::iter::repeat_n("–".to_string(), 5));
    // Issue 5's bar: berth's median at most half of curl's.
    row(
        "probe wall time, `berth probe http://127.0.0.1:PORT/`".into(),
        p_cells,
        format!("curl -fsS {pc:.2} ms; wget -q {pw:.2} ms"),
        format!("≤ 0.5× curl: {:.2}×", pb / pc),
        Some(pb <= 0.5 * pc),
    );
    let pg = m("probe_ms", "berth-grpc");
    let mut g_cells = vec![format!("{pg:.2} ms ({:.2}× the http probe)", pg / pb)];
    g_cells.extend(std::iter::repeat_n("–".to_string(), 5));
    row(
        "probe wall time, `berth probe grpc://127.0.0.1:PORT` (grpcio's health servicer)".into(),
        g_cells,
        format!("berth probe http:// {pb:.2} ms"),
        "–".into(),
        None,
    );

    // Waiting for dependencies (bench/src/wait.rs).
    let rest5 = || std::iter::repeat_n("–".to_string(), 5);
    let wb = m("wait_dependency_to_start_ms", "berth");
    let ww = m("wait_dependency_to_start_ms", "wait-for-it");
    let wmax = r
        .pct("wait_dependency_to_start_ms", "berth", 100.0)
        .unwrap_or(f64::NAN);
    let mut w_cells = vec![format!("{wb:.1} ms (max {wmax:.1})")];
    w_cells.extend(rest5());
    row(
        "dependency opens its port → the app starts (`--wait-for tcp://…`)".into(),
        w_cells,
        format!("wait-for-it {ww:.1} ms"),
        format!("≤ 250 ms: max {wmax:.1} ms"),
        Some(wmax <= 250.0),
    );
    let s0 = m("wait_ready_start_us", "berth");
    let s1 = m("wait_ready_start_us", "berth-wait-for");
    let mut r_cells = vec![format!("+{:.0} µs ({s1:.0} against {s0:.0})", s1 - s0)];
    r_cells.extend(rest5());
    row(
        "start overhead of `--wait-for` a dependency already up (`-- /bin/true`)".into(),
        r_cells,
        format!("berth without --wait-for {s0:.0} µs"),
        format!("≤ 2 ms: +{:.2} ms", (s1 - s0) / 1e3),
        Some(s1 - s0 <= 2000.0),
    );
    let db = m("dns_lookup_ms", "berth probe");
    let dg = m("dns_lookup_ms", "getent hosts");
    let mut d_cells = vec![format!("{db:.2} ms ({:.2}× getent)", db / dg)];
    d_cells.extend(rest5());
    row(
        "`berth probe tcp://NAME:PORT`, NAME only in DNS (dnsmasq)".into(),
        d_cells,
        format!("getent hosts NAME {dg:.2} ms (glibc)"),
        format!("≤ 1.5× getent: {:.2}×", db / dg),
        Some(db <= 1.5 * dg),
    );
    let logs = log_rows(r);
    if !logs.is_empty() {
        let _ = writeln!(
            s,
            "\nLog throughput, {lines} × 100-byte lines, every row in one rotation, every line checked (MB/s of app lines; medians):\n"
        );
        let _ = writeln!(
            s,
            "| pipeline | MB/s | throughput_vs_cat | throughput_vs_limit | lines lost |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|");
        for l in logs {
            let _ = writeln!(
                s,
                "| {} | {:.0} | {:.2}× | {:.2}× | {} |",
                l.label,
                l.mb_per_s,
                l.vs_cat,
                l.vs_limit,
                if l.lost.is_finite() {
                    format!("{:.0}", l.lost)
                } else {
                    "– (not read)".into()
                }
            );
        }
    }
    s
}
