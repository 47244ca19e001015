//! `berth-bench cpu`: berth's own CPU for a flood of app lines in JSON mode
//! (bench/cpu-per-line runs it per line shape and adds instruction counts).
//! Only berth's: not the app's (berth's child), not the reader's (this
//! process). berth's counters are read while it is a zombie: the driver
//! waits with `waitid(WEXITED | WNOWAIT)`, which leaves berth's /proc entry
//! in place until the real wait, so its own run time is still there
//! (`/proc/PID/schedstat`, in ns: what `perf stat -e task-clock` counts
//! for one task; `utime + stime` of /proc/PID/stat in clock ticks as a
//! cross-check) and so are its context switches (/proc/PID/status).
//! `wait4`'s rusage would not do: it adds the children berth reaped.
//!
//! `berth-bench cpu --berth PATH --app PATH --shape text|text1k|json
//! [--lines N] [--runs R]` prints one line of `key=value` pairs, medians of
//! R runs.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};

use crate::check::{self, Res};
use crate::{percentile, proc_field};

struct Sample {
    /// berth's time on a CPU (sum_exec_runtime).
    cpu_ns: f64,
    /// utime + stime, in ms (clock-tick resolution).
    ticks_ms: f64,
    /// voluntary + nonvoluntary context switches.
    ctxsw: f64,
}

/// The app's arguments and its line size for a shape.
fn shape(name: &str) -> Res<(&'static [&'static str], usize)> {
    match name {
        "text" => Ok((&[], 100)),
        "text1k" => Ok((&["--size", "1024"], 1024)),
        "json" => Ok((&["--json"], 100)),
        _ => Err(format!("--shape {name}: expected text, text1k or json")),
    }
}

pub fn main(mut args: impl Iterator<Item = String>) -> Res<()> {
    let (mut berth, mut app, mut shape_name) = (None, None, None);
    let (mut n, mut runs) = (1_000_000u64, 3usize);
    while let Some(a) = args.next() {
        let mut value = |what: &str| args.next().ok_or(format!("{a} needs {what}"));
        match a.as_str() {
            "--berth" => berth = Some(value("a path")?),
            "--app" => app = Some(value("a path")?),
            "--shape" => shape_name = Some(value("a shape")?),
            "--lines" => n = value("a number")?.parse().map_err(|_| "--lines N")?,
            "--runs" => runs = value("a number")?.parse().map_err(|_| "--runs R")?,
            _ => return Err(format!("unknown argument {a}")),
        }
    }
    let (Some(berth), Some(app), Some(shape_name)) = (berth, app, shape_name) else {
        return Err("usage: berth-bench cpu --berth PATH --app PATH --shape text|text1k|json [--lines N] [--runs R]".into());
    };
    let (extra, size) = shape(&shape_name)?;
    let mut samples = Vec::new();
    for _ in 0..runs.max(1) {
        samples.push(one_run(&berth, &app, extra, size, shape_name == "json", n)?);
    }
    let med =
        |f: &dyn Fn(&Sample) -> f64| percentile(&samples.iter().map(f).collect::<Vec<_>>(), 50.0);
    let mb = (n as f64 * size as f64) / 1e6;
    println!(
        "shape={shape_name} lines={n} line_bytes={size} runs={} cpu_ms={:.1} ticks_ms={:.0} ctxsw={:.0} ctxsw_per_mb={:.2} cpu_ms_samples={}",
        samples.len(),
        med(&|s| s.cpu_ns / 1e6),
        med(&|s| s.ticks_ms),
        med(&|s| s.ctxsw),
        med(&|s| s.ctxsw) / mb,
        samples
            .iter()
            .map(|s| format!("{:.1}", s.cpu_ns / 1e6))
            .collect::<Vec<_>>()
            .join(",")
    );
    Ok(())
}

fn one_run(
    berth: &str,
    app: &str,
    extra: &[&str],
    size: usize,
    json_app: bool,
    n: u64,
) -> Res<Sample> {
    let mut child = Command::new(berth)
        .args(["--log-format", "json", "--", app, "spew", &n.to_string()])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("{berth}: {e}"))?;
    let out = child.stdout.take().ok_or("no pipe")?;
    if json_app {
        drain_objects(out, n)?;
    } else {
        check::drain(out, &mut check::Checker::new(true, size), n)?;
    }
    let pid = child.id() as i32;
    // SAFETY: info is a valid siginfo_t to write into; pid is our child.
    let rc = unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOWAIT,
        )
    };
    if rc != 0 {
        return Err(format!("waitid: {}", std::io::Error::last_os_error()));
    }
    let read = |f: &str| {
        std::fs::read_to_string(format!("/proc/{pid}/{f}"))
            .map_err(|e| format!("/proc/{pid}/{f}: {e}"))
    };
    let cpu_ns: f64 = read("schedstat")?
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .ok_or("no run time in schedstat")?;
    // Fields after the command's closing parenthesis: state is field 3,
    // utime 14 and stime 15 (proc_pid_stat(5)).
    let stat = read("stat")?;
    let after: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, r)| r.split_whitespace().collect())
        .unwrap_or_default();
    let tick = |i: usize| {
        after
            .get(i - 3)
            .and_then(|v| v.parse::<f64>().ok())
            .ok_or("bad /proc/PID/stat")
    };
    // SAFETY: sysconf has no memory preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let ticks_ms = (tick(14)? + tick(15)?) * 1e3 / hz;
    let status = read("status")?;
    let ctxsw = proc_field(&status, "voluntary_ctxt_switches")
        .zip(proc_field(&status, "nonvoluntary_ctxt_switches"));
    let (v, nv) = ctxsw.ok_or("no context switches in status")?;
    let st = child.wait().map_err(|e| e.to_string())?;
    if !st.success() {
        return Err(format!("berth: exit {st}"));
    }
    Ok(Sample {
        cpu_ns,
        ticks_ms,
        ctxsw: (v + nv) as f64,
    })
}

/// berth's lines for app JSON objects: every app line (merged into berth's
/// object) must carry the next `"req":"%08d"`; berth's own events are
/// skipped. Not the log figure's fast check: the reader's CPU is not
/// counted here.
fn drain_objects(out: impl Read, n: u64) -> Res<u64> {
    let mut next = 0u64;
    let mut r = BufReader::with_capacity(1 << 20, out);
    let mut line = Vec::new();
    loop {
        line.clear();
        if r.read_until(b'\n', &mut line).map_err(|e| e.to_string())? == 0 {
            break;
        }
        if memchr::memmem::find(&line, b"\"stream\":\"berth\"").is_some() {
            continue;
        }
        let want = format!("\"req\":\"{next:08}\"");
        if !line.ends_with(b"}\n") || memchr::memmem::find(&line, want.as_bytes()).is_none() {
            return Err(format!(
                "line {next} was due: {}",
                String::from_utf8_lossy(&line)
            ));
        }
        next += 1;
    }
    if next != n {
        return Err(format!("{next} of {n} lines arrived"));
    }
    Ok(next)
}
