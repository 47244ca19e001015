//! `--runtime-limits` (issue 25) against the runtimes themselves: a static
//! Go program (Debian's golang-go), Node.js and gunicorn, each run under
//! berth as PID 1 inside a memory and CPU limit that the test makes (a
//! cgroup of its own, below the test's; v1 on the project's machine, v2
//! where the machine has it), and under `docker run --memory --cpus` for
//! the Go program in a FROM-scratch image. Each test reads the runtime's
//! own figure (Go's memory limit and GOMAXPROCS, V8's heap_size_limit,
//! gunicorn's worker count) without the option and with it, and checks
//! that the figure follows the limit. Each prints a `runtime-limits |`
//! line with both figures.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::docker::{docker_ok, Scope};
use crate::util::{free_port, Berth, Done, LONG};

const MIB: u64 = 1 << 20;

fn runtimes_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/runtimes")
}

/// Where built test programs go: beside the test binary (target/…).
fn build_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().join("runtimes")
}

/// tests/runtimes/NAME.go built once per run with Debian's Go: static
/// (CGO_ENABLED=0), offline (standard library only, GOPROXY=off), its
/// caches under target/.
pub(crate) fn go_program(name: &'static str) -> PathBuf {
    static BUILT: OnceLock<std::sync::Mutex<Vec<(&'static str, PathBuf)>>> = OnceLock::new();
    let built = BUILT.get_or_init(Default::default);
    let mut built = built.lock().unwrap();
    if let Some((_, p)) = built.iter().find(|(n, _)| *n == name) {
        return p.clone();
    }
    let dir = build_dir();
    let out = dir.join(name);
    let o = Command::new("go")
        .args(["build", "-o"])
        .arg(&out)
        .arg(runtimes_dir().join(format!("{name}.go")))
        .env("CGO_ENABLED", "0")
        .env("GOCACHE", dir.join("go-cache"))
        .env("GOPATH", dir.join("go-path"))
        .env("GOPROXY", "off")
        .env("GOFLAGS", "")
        .output()
        .expect("run `go` (scripts/test installs Debian's golang-go)");
    assert!(
        o.status.success(),
        "go build {name}.go: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    built.push((name, out.clone()));
    out
}

/// The CPUs this process may run on (sched_getaffinity), as Go counts them.
fn cpus_allowed() -> u64 {
    // SAFETY: a zeroed cpu_set_t is valid; the kernel fills at most its size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        assert_eq!(
            libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set),
            0
        );
        libc::CPU_COUNT(&set) as u64
    }
}

// ---------------------------------------------------------------------------
// A cgroup with a memory and CPU limit, made by the test

static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A memory and CPU limit the test makes below its own cgroup: one
/// directory per hierarchy on v1 (memory/, cpu/), one on v2. A process
/// joins with [`Limited::enter`] (a `setup` snippet run before berth).
/// Dropped, it kills what is left inside and removes the directories,
/// also when the test failed.
pub(crate) struct Limited {
    /// Leaf first, so that removal goes child before parent.
    dirs: Vec<PathBuf>,
    /// The directories a process joins (the leaves).
    leaves: Vec<PathBuf>,
}

const CG: &str = "/sys/fs/cgroup";

fn is_v2() -> bool {
    Path::new(CG).join("cgroup.controllers").exists()
}

/// This process's cgroup path in the hierarchy of `controller` (v1), or
/// the unified one (`controller` None).
fn own_path(controller: Option<&str>) -> String {
    let s = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    s.lines()
        .filter_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
            let hit = match controller {
                None => ctrls.is_empty(),
                Some(c) => ctrls.split(',').any(|x| x == c),
            };
            hit.then(|| path.trim_matches('/').to_string())
        })
        .next()
        .unwrap_or_else(|| panic!("no {controller:?} line in /proc/self/cgroup:\n{s}"))
}

fn write(dir: &Path, file: &str, value: &str) {
    std::fs::write(dir.join(file), value)
        .unwrap_or_else(|e| panic!("write {value:?} to {}/{file}: {e}", dir.display()));
}

impl Limited {
    /// `memory` bytes and `cpus` cores (quota/period), on one cgroup.
    pub(crate) fn new(memory: u64, cpus: f64) -> Limited {
        Limited::make(memory, cpus, false)
    }

    /// The limits on a parent cgroup and the process in an unlimited
    /// child: a Kubernetes pod's limit above its container's cgroup.
    fn on_parent(memory: u64, cpus: f64) -> Limited {
        Limited::make(memory, cpus, true)
    }

    fn make(memory: u64, cpus: f64, nested: bool) -> Limited {
        let name = format!(
            "berth-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let quota = ((cpus * 100_000.0) as u64).to_string();
        let mut l = Limited {
            dirs: Vec::new(),
            leaves: Vec::new(),
        };
        fn mkdir(l: &mut Limited, dir: PathBuf) -> PathBuf {
            std::fs::create_dir(&dir)
                .unwrap_or_else(|e| panic!("mkdir {}: {e} (the tests run as root)", dir.display()));
            l.dirs.insert(0, dir.clone());
            dir
        }
        if is_v2() {
            let parent = Path::new(CG).join(own_path(None));
            let top = mkdir(&mut l, parent.join(&name));
            write(&top, "memory.max", &memory.to_string());
            write(&top, "memory.swap.max", "0");
            write(&top, "cpu.max", &format!("{quota} 100000"));
            let leaf = if nested {
                // The child needs the controllers delegated to see its
                // own (unlimited) files; a v2 cgroup that delegates holds
                // no process itself, so only the nested case does.
                write(&top, "cgroup.subtree_control", "+memory +cpu");
                mkdir(&mut l, top.join("app"))
            } else {
                top
            };
            l.leaves.push(leaf);
        } else {
            for ctrl in ["memory", "cpu"] {
                let parent = Path::new(CG).join(ctrl).join(own_path(Some(ctrl)));
                let top = mkdir(&mut l, parent.join(&name));
                if ctrl == "memory" {
                    write(&top, "memory.limit_in_bytes", &memory.to_string());
                    // As `docker run --memory` without swap: no swapping
                    // around the limit (where the kernel accounts swap).
                    if top.join("memory.memsw.limit_in_bytes").exists() {
                        write(&top, "memory.memsw.limit_in_bytes", &memory.to_string());
                    }
                } else {
                    write(&top, "cpu.cfs_period_us", "100000");
                    write(&top, "cpu.cfs_quota_us", &quota);
                }
                let leaf = if nested {
                    mkdir(&mut l, top.join("app"))
                } else {
                    top
                };
                l.leaves.push(leaf);
            }
        }
        l
    }

    /// Shell that moves itself (then berth, which it execs) into the
    /// cgroup: `0` is the writing process.
    pub(crate) fn enter(&self) -> String {
        self.leaves
            .iter()
            .map(|d| format!("echo 0 > '{}/cgroup.procs'", d.display()))
            .collect::<Vec<_>>()
            .join(" && ")
    }
}

impl Drop for Limited {
    fn drop(&mut self) {
        // A failed test's processes may still be inside: kill them, then
        // wait for the kernel to let the directories go (rmdir is EBUSY
        // until the last one has exited).
        let deadline = Instant::now() + LONG;
        for dir in &self.dirs {
            loop {
                if let Ok(pids) = std::fs::read_to_string(dir.join("cgroup.procs")) {
                    for pid in pids
                        .split_whitespace()
                        .filter_map(|p| p.parse::<i32>().ok())
                    {
                        // SAFETY: kill with integers.
                        unsafe { libc::kill(pid, libc::SIGKILL) };
                    }
                }
                match std::fs::remove_dir(dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                    Err(e) if Instant::now() >= deadline => {
                        eprintln!("cannot remove {}: {e}", dir.display());
                        break;
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Reading the figures

/// Runs `cmd` under berth (json) inside `limited`, with berth's `args`
/// and extra environment.
fn run_in(limited: &Limited, args: &[&str], env: &[(&str, &str)], cmd: &[&str]) -> Done {
    let mut b = Berth::new()
        .setup(&limited.enter())
        .arg("--log-format=json")
        .args(args.iter().copied());
    for (k, v) in env {
        b = b.env(k, v);
    }
    b.cmd(cmd[0], &cmd[1..]).run()
}

/// The app's JSON line holding `key` (the program prints its figures as
/// one JSON object, which berth keeps at top level).
fn figure(done: &Done, key: &str) -> Value {
    done.json()
        .into_iter()
        .find(|v| v["stream"] == "stdout" && v.get(key).is_some())
        .unwrap_or_else(|| panic!("no {key} line: {done:#?}"))
}

fn u64_of(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("{key} in {v}"))
}

/// What the start event says `--runtime-limits` set: (name, value, from).
fn set_by_berth(done: &Done) -> Vec<(String, String, String)> {
    let start = done.event("start");
    start["runtime_limits"]
        .as_array()
        .unwrap_or_else(|| panic!("no runtime_limits in {start}"))
        .iter()
        .map(|s| {
            let f = |k: &str| s[k].as_str().unwrap_or_default().to_string();
            (f("name"), f("value"), f("from"))
        })
        .collect()
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / MIB as f64)
}

/// Go 1.25's own GOMAXPROCS for a CPU limit, computed here independently
/// of berth: ceil(limit), at least 2, at most the CPUs.
fn go_1_25_gomaxprocs(cpu_limit: f64, cpus: u64) -> u64 {
    (cpu_limit.ceil() as u64).max(2).min(cpus)
}

// ---------------------------------------------------------------------------
// Go

/// Go's memory limit and GOMAXPROCS, as the Go runtime reports them,
/// follow the cgroup's limits with `--runtime-limits go`; without it the
/// runtime has no memory limit at all (Go 1.19 here, as every Go before
/// 1.19 and any without GOMEMLIMIT).
#[test]
fn go_s_own_memory_limit_follows_the_cgroup_limit() {
    let limits_prog = go_program("limits");
    let prog = limits_prog.to_str().unwrap();
    let cpus = cpus_allowed();
    for (limit_mib, cpu) in [(256u64, 1.0f64), (512, 1.5)] {
        let limited = Limited::new(limit_mib * MIB, cpu);
        let before = run_in(&limited, &[], &[], &[prog]);
        let after = run_in(&limited, &["--runtime-limits=go"], &[], &[prog]);
        assert_eq!((before.code, after.code), (0, 0), "{before:#?}\n{after:#?}");
        let (b, a) = (
            figure(&before, "go_memory_limit"),
            figure(&after, "go_memory_limit"),
        );

        // berth read the limit it sizes from, and says so.
        let start = after.event("start");
        assert_eq!(start["memory_limit_bytes"], limit_mib * MIB, "{start}");
        assert_eq!(start["cpu_limit"].as_f64(), Some(cpu), "{start}");

        assert_eq!(
            u64_of(&b, "go_memory_limit"),
            i64::MAX as u64,
            "no limit without berth: {b}"
        );
        // 90% of the limit in whole MiB: Go's own reading of GOMEMLIMIT.
        let want = limit_mib * MIB * 9 / 10 / MIB * MIB;
        assert_eq!(u64_of(&a, "go_memory_limit"), want, "{a}");
        assert!(u64_of(&a, "go_memory_limit") < limit_mib * MIB);

        assert_eq!(u64_of(&b, "go_gomaxprocs"), cpus, "{b}");
        let procs = go_1_25_gomaxprocs(cpu, cpus);
        assert_eq!(u64_of(&a, "go_gomaxprocs"), procs, "{a}");
        // Set only where it differs from what every Go finds by itself.
        let set = set_by_berth(&after);
        assert!(set.contains(&(
            "GOMEMLIMIT".into(),
            format!("{}MiB", want / MIB),
            "memory_limit_bytes".into()
        )));
        assert_eq!(
            set.iter().any(|s| s.0 == "GOMAXPROCS"),
            procs < cpus,
            "{set:?} ({cpus} CPUs)"
        );
        eprintln!(
            "runtime-limits | go | {limit_mib} MiB, {cpu} CPU, {cpus} CPUs | before: memory limit {}, GOMAXPROCS {} | after: memory limit {}, GOMAXPROCS {}",
            if u64_of(&b, "go_memory_limit") == i64::MAX as u64 { "none (MaxInt64)".to_string() } else { mib(u64_of(&b, "go_memory_limit")) },
            u64_of(&b, "go_gomaxprocs"),
            mib(u64_of(&a, "go_memory_limit")),
            u64_of(&a, "go_gomaxprocs"),
        );
    }
}

/// A limit on a parent cgroup (a Kubernetes pod's) binds the container
/// whose own cgroup has none: berth sizes Go from it.
#[test]
fn a_parent_cgroup_s_limit_sizes_the_runtime() {
    let prog = go_program("limits");
    let limited = Limited::on_parent(256 * MIB, 1.0);
    let after = run_in(
        &limited,
        &["--runtime-limits=go"],
        &[],
        &[prog.to_str().unwrap()],
    );
    assert_eq!(after.code, 0, "{after:#?}");
    assert_eq!(after.event("start")["memory_limit_bytes"], 256 * MIB);
    let a = figure(&after, "go_memory_limit");
    assert_eq!(u64_of(&a, "go_memory_limit"), 230 * MIB, "{a}");
}

/// The app's own GOMEMLIMIT and GOMAXPROCS win: berth keeps them and says so.
#[test]
fn the_app_s_own_go_variables_are_kept() {
    let prog = go_program("limits");
    let limited = Limited::new(256 * MIB, 1.0);
    let done = run_in(
        &limited,
        &["--runtime-limits=all"],
        &[("GOMEMLIMIT", "100MiB"), ("GOMAXPROCS", "1")],
        &[prog.to_str().unwrap()],
    );
    let a = figure(&done, "go_memory_limit");
    assert_eq!(u64_of(&a, "go_memory_limit"), 100 * MIB, "{a}");
    assert_eq!(u64_of(&a, "go_gomaxprocs"), 1, "{a}");
    // GOMAXPROCS is one berth would set only below the CPU count.
    let mut want = vec!["GOMEMLIMIT"];
    if go_1_25_gomaxprocs(1.0, cpus_allowed()) < cpus_allowed() {
        want.push("GOMAXPROCS");
    }
    let kept = &done.event("start")["runtime_limits_kept"];
    assert_eq!(kept, &serde_json::json!(want), "{kept}");
}

/// The same Go program in a FROM-scratch image under `docker run --memory
/// 256m --cpus 1`: without the option Go has no memory limit; with
/// `BERTH_RUNTIME_LIMITS=go` (as a platform team would set it) it has 90%.
#[test]
fn docker_memory_limit_reaches_go_in_a_scratch_image() {
    let s = Scope::new("runtime-limits");
    let img = s.image_with(
        "go",
        &[(go_program("limits"), PathBuf::from("/limits"))],
        "",
    );
    let run = |what: &str, env: &[&str]| -> Vec<Value> {
        let name = s.name(what);
        let mut args = vec![
            "run", "--rm", "--name", &name, "--memory", "256m", "--cpus", "1",
        ];
        args.extend_from_slice(env);
        args.extend([
            "--entrypoint",
            "/berth",
            &img,
            "--log-format=json",
            "--",
            "/limits",
        ]);
        docker_ok(&args)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    };
    let before = run("before", &[]);
    let after = run("after", &["-e", "BERTH_RUNTIME_LIMITS=go"]);
    let go = |lines: &[Value]| {
        lines
            .iter()
            .find(|v| v.get("go_memory_limit").is_some())
            .cloned()
            .unwrap_or_else(|| panic!("no figures in {lines:#?}"))
    };
    let (b, a) = (go(&before), go(&after));
    assert_eq!(u64_of(&b, "go_memory_limit"), i64::MAX as u64, "{b}");
    assert_eq!(u64_of(&a, "go_memory_limit"), 230 * MIB, "{a}");
    let cpus = cpus_allowed();
    assert_eq!(
        u64_of(&a, "go_gomaxprocs"),
        go_1_25_gomaxprocs(1.0, cpus),
        "{a}"
    );
    eprintln!(
        "runtime-limits | go in docker run --memory 256m --cpus 1 | before: memory limit none, GOMAXPROCS {} | after: memory limit {}, GOMAXPROCS {}",
        u64_of(&b, "go_gomaxprocs"),
        mib(u64_of(&a, "go_memory_limit")),
        u64_of(&a, "go_gomaxprocs")
    );
}

// ---------------------------------------------------------------------------
// Node.js

/// V8's heap_size_limit follows the cgroup's limit with `--runtime-limits
/// node`. Without it V8 (Node 20 here) settles on the same heap in a 256
/// and a 512 MiB container: above the whole limit of the first (the
/// kernel's OOM killer, not V8, ends a big live set), half of the second.
#[test]
fn node_s_heap_size_limit_follows_the_cgroup_limit() {
    let js = runtimes_dir().join("heap.js");
    let js = js.to_str().unwrap();
    let mut afters = Vec::new();
    for limit_mib in [256u64, 512] {
        let limited = Limited::new(limit_mib * MIB, 1.0);
        let before = run_in(&limited, &[], &[], &["node", js]);
        let after = run_in(&limited, &["--runtime-limits=node"], &[], &["node", js]);
        assert_eq!((before.code, after.code), (0, 0), "{before:#?}\n{after:#?}");
        let b = u64_of(
            &figure(&before, "node_heap_size_limit"),
            "node_heap_size_limit",
        );
        let a = figure(&after, "node_heap_size_limit");
        let old_space = limit_mib * 3 / 4;
        assert_eq!(
            a["env_node_options"],
            format!("--max-old-space-size={old_space}"),
            "{a}"
        );
        // heap_size_limit is the old space plus the young generation
        // (V8 adds 3 semi-spaces, 48 MiB at most on 64-bit).
        let heap = u64_of(&a, "node_heap_size_limit");
        assert!(
            heap >= old_space * MIB && heap <= (old_space + 48) * MIB,
            "heap_size_limit {} for old space {old_space} MiB",
            mib(heap)
        );
        assert!(heap < limit_mib * MIB, "{} in {limit_mib} MiB", mib(heap));
        if limit_mib == 256 {
            assert!(b > limit_mib * MIB, "V8's own heap {} fits now", mib(b));
        }
        afters.push(heap);
        eprintln!(
            "runtime-limits | node | {limit_mib} MiB | before: heap_size_limit {} | after: heap_size_limit {} (--max-old-space-size={old_space})",
            mib(b),
            mib(heap)
        );
    }
    // 256 MiB more container, 192 MiB more heap: the figure follows.
    assert_eq!(afters[1] - afters[0], 192 * MIB, "{afters:?}");
}

/// NODE_OPTIONS with its own heap size is left alone; other NODE_OPTIONS
/// keep theirs and get the heap size appended.
#[test]
fn node_options_are_appended_to_unless_they_size_the_heap() {
    let js = runtimes_dir().join("heap.js");
    let js = js.to_str().unwrap();
    let limited = Limited::new(256 * MIB, 1.0);
    let own = run_in(
        &limited,
        &["--runtime-limits=node"],
        &[("NODE_OPTIONS", "--max-old-space-size=100")],
        &["node", js],
    );
    let a = figure(&own, "node_heap_size_limit");
    assert_eq!(a["env_node_options"], "--max-old-space-size=100", "{a}");
    let heap = u64_of(&a, "node_heap_size_limit");
    assert!((100 * MIB..=148 * MIB).contains(&heap), "{}", mib(heap));
    assert_eq!(
        own.event("start")["runtime_limits_kept"],
        serde_json::json!(["NODE_OPTIONS"])
    );

    let other = run_in(
        &limited,
        &["--runtime-limits=node"],
        &[("NODE_OPTIONS", "--no-deprecation")],
        &["node", js],
    );
    let a = figure(&other, "node_heap_size_limit");
    assert_eq!(
        a["env_node_options"], "--no-deprecation --max-old-space-size=192",
        "{a}"
    );
}

// ---------------------------------------------------------------------------
// gunicorn

/// How many workers gunicorn says it runs (its master's debug line "N
/// workers", logged once every worker it wants is spawned), under berth
/// in `limited`; berth is stopped with SIGTERM after, sent to the master
/// alone (`--no-group`): a TERM to the whole group reaches the workers
/// first, and the master, which handles its own TERM only in its loop,
/// boots a replacement for each one that died before it stops them all
/// (seen in CI: 4 boots for 3 workers), which would blur the boot count.
pub(crate) fn gunicorn_workers(limited: &Limited, args: &[&str]) -> (u64, Done) {
    let port = free_port().to_string();
    let bind = format!("127.0.0.1:{port}");
    let running = Berth::new()
        .setup(&limited.enter())
        .arg("--log-format=json")
        .arg("--no-group")
        .args(args.iter().copied())
        .cmd(
            "gunicorn",
            &[
                "--log-level=debug",
                "--bind",
                &bind,
                "--chdir",
                runtimes_dir().to_str().unwrap(),
                "app:app",
            ],
        )
        .spawn();
    let line = running
        .stdout
        .wait_for("gunicorn's worker count", |l| l.contains(" workers\""));
    let v: Value = serde_json::from_str(&line).unwrap();
    let msg = v["msg"].as_str().unwrap_or_default();
    // "[…] [pid] [DEBUG] 2 workers"
    let n = msg
        .rsplit(']')
        .next()
        .and_then(|m| m.trim().strip_suffix(" workers"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a worker count: {msg}"));
    running.signal(libc::SIGTERM);
    (n, running.wait())
}

/// gunicorn starts WEB_CONCURRENCY workers (its own reading of it): one
/// per 256 MiB of the limit here, capped by 2 × CPUs + 1; without berth's
/// option gunicorn starts its default single worker whatever the limit.
#[test]
fn gunicorn_s_worker_count_follows_the_cgroup_limit() {
    let cpus = cpus_allowed();
    for (limit_mib, cpu, want) in [(512u64, 1.0f64, 2u64), (768, 1.0, 3)] {
        let limited = Limited::new(limit_mib * MIB, cpu);
        let (before, _) = gunicorn_workers(&limited, &[]);
        let (after, done) = gunicorn_workers(&limited, &["--runtime-limits=workers"]);
        let cpu_term = (2.0 * cpu.min(cpus as f64) + 1.0) as u64;
        assert_eq!(want, (limit_mib / 256).min(cpu_term));
        assert_eq!(after, want, "{done:#?}");
        assert_eq!(before, 1);
        let booted = done
            .msgs("stderr")
            .iter()
            .filter(|m| m.contains("Booting worker"))
            .count() as u64;
        assert_eq!(booted, want, "{done:#?}");
        eprintln!(
            "runtime-limits | gunicorn | {limit_mib} MiB, {cpu} CPU | before: {before} worker(s) | after: {after} workers (WEB_CONCURRENCY)"
        );
    }
}

// ---------------------------------------------------------------------------
// No limit, bad values

/// With no memory limit berth sets no memory figure and its warning says
/// which variables stayed unset.
#[test]
fn no_memory_limit_sets_nothing_and_the_warning_says_so() {
    // An unlimited cgroup of our own (the suite's may be unlimited or not).
    let prog = go_program("limits");
    let done = Berth::new()
        .arg("--log-format=json")
        .arg("--runtime-limits=go,node")
        .env_remove("GOMEMLIMIT")
        .env_remove("NODE_OPTIONS")
        .cmd(prog.to_str().unwrap(), &[])
        .run();
    let start = done.event("start");
    assert!(
        start["memory_limit_bytes"].is_null(),
        "this test needs a machine whose own cgroup has no memory limit: {start}"
    );
    assert_eq!(start["runtime_limits"], serde_json::json!([]), "{start}");
    let a = figure(&done, "go_memory_limit");
    assert_eq!(u64_of(&a, "go_memory_limit"), i64::MAX as u64);
    let warn = done
        .json()
        .into_iter()
        .find(|v| {
            v["event"] == "warn" && v["msg"].as_str().unwrap_or("").contains("no memory limit")
        })
        .unwrap_or_else(|| panic!("{done:#?}"));
    assert!(
        warn["msg"]
            .as_str()
            .unwrap()
            .ends_with("--runtime-limits left GOMEMLIMIT, NODE_OPTIONS unset"),
        "{warn}"
    );
}

/// A bad runtime name or percent is berth's one-line 125, the app never runs.
#[test]
fn bad_runtime_limits_values_are_one_line_125() {
    for (args, env, needle) in [
        (
            &["--runtime-limits", "foo"][..],
            None,
            "--runtime-limits \"foo\"",
        ),
        (
            &["--runtime-limits=go", "--runtime-limits-memory=0"],
            None,
            "\"0\"",
        ),
        (
            &["--runtime-limits=go", "--runtime-limits-memory=150"],
            None,
            "\"150\"",
        ),
        (
            &["--runtime-limits-memory=50"],
            None,
            "needs --runtime-limits",
        ),
        (&[], Some(("BERTH_RUNTIME_LIMITS", "go,java")), "\"java\""),
    ] {
        let mut b = Berth::new().not_pid1().args(args.iter().copied());
        if let Some((k, v)) = env {
            b = b.env(k, v);
        }
        let done = b.cmd("sh", &["-c", "echo app ran"]).run();
        assert_eq!(done.code, 125, "{args:?}: {done:#?}");
        assert_eq!(done.stderr.len(), 1, "{args:?}: {done:#?}");
        assert!(done.stderr[0].contains(needle), "{args:?}: {done:#?}");
        assert!(done.stdout.is_empty(), "{args:?}: {done:#?}");
    }
}
