//! berth under the real Docker engine: images built `FROM scratch` here from
//! the project's own static binaries (no registry is reachable), run with
//! `docker run` / `docker-compose`, each scenario side by side with
//! `docker run --init` (the engine's bundled tini, docker-init) and with no
//! init where the comparison says something.
//!
//! These tests fail, never skip, when the engine is unusable: the first
//! call of every test says what is missing (scripts/test checks too).
//! Every image, container, network and compose project a test makes is
//! named `berth-test-<test>-<pid>…` and removed by a Drop guard, also when
//! the test fails. Each test prints its comparison figures as
//! `docker-compare | scenario | init | result` lines (`--nocapture`); the
//! table in docs/containers.md comes from such a run.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::util::{berth_bin, descendants_of, state_of, Guarded, Lines, SpawnGuarded, LONG};

/// Upper bound for one docker command (a build, a stop with a 10 s timeout).
const DOCKER_TIMEOUT: Duration = Duration::from_secs(120);

/// The example apps every test image carries (static, from scripts/build-static).
const APPS: &[&str] = &[
    "httpd",
    "introspect",
    "memhog",
    "orphans",
    "sigprint",
    "spew",
    "stubborn",
];

const PASSWD: &str = "root:x:0:0:root:/root:/sbin/nologin\n\
app:x:1000:1000:app:/home/app:/sbin/nologin\n\
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n";
const GROUP: &str = "root:x:0:\napp:x:1000:\nstaff:x:50:app\nnonroot:x:65532:\n";

// ---------------------------------------------------------------------------
// Helpers

/// Why docker cannot be used here, once per test binary; None when it can.
fn docker_problem() -> Option<String> {
    static PROBLEM: OnceLock<Option<String>> = OnceLock::new();
    PROBLEM
        .get_or_init(|| {
            let out = Command::new("docker")
                .args(["info", "--format", "{{.ServerVersion}}"])
                .stdin(Stdio::null())
                .output();
            match out {
                Err(e) => Some(format!("cannot run the docker client: {e}")),
                Ok(o) if !o.status.success() => Some(format!(
                    "`docker info` failed: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                )),
                Ok(_) => None,
            }
        })
        .clone()
}

/// The static binaries the images are made of: berth (TEST_BERTH_BIN, set by
/// scripts/test to scripts/build-static's output) and its examples/ beside it.
fn static_dir() -> PathBuf {
    let bin = berth_bin();
    let out = Command::new("file").arg("-L").arg(&bin).output();
    let desc = out
        .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
        .unwrap_or_default();
    assert!(
        desc.contains("statically linked") || desc.contains("static-pie linked"),
        "the Docker tests need berth's static binary (scratch images have no libc): \
         run scripts/test, or scripts/build-static and TEST_BERTH_BIN=<its output>; \
         {} is: {desc}",
        bin.display()
    );
    bin.parent().unwrap().to_path_buf()
}

/// Runs a command to its end, killing it past `DOCKER_TIMEOUT`.
pub(crate) fn run_bounded(mut c: Command) -> Output {
    // The test runner's own BERTH_* would reach nothing, but keep them out.
    for (k, _) in std::env::vars() {
        if k.starts_with("BERTH_") {
            c.env_remove(k);
        }
    }
    // No buildx here: the legacy builder is the one that works.
    c.env("DOCKER_BUILDKIT", "0");
    c.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let what = format!("{c:?}");
    let mut child = c.spawn_guarded().unwrap_or_else(|e| panic!("{what}: {e}"));
    let (mut so, mut se) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = so.read_to_end(&mut v);
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = se.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + DOCKER_TIMEOUT;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish in {DOCKER_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: t_out.join().unwrap(),
        stderr: t_err.join().unwrap(),
    }
}

pub(crate) fn docker(args: &[&str]) -> Output {
    let mut c = Command::new("docker");
    c.args(args);
    run_bounded(c)
}

/// `docker ARGS` that must succeed; its stdout, trimmed.
pub(crate) fn docker_ok(args: &[&str]) -> String {
    let o = docker(args);
    assert!(
        o.status.success(),
        "docker {args:?} failed ({}): {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// A docker command that keeps printing (`logs -f`, `events`), read line by
/// line; killed when dropped.
pub(crate) struct Stream {
    /// Held for its Drop: the command is killed with the Stream.
    _child: Guarded,
    pub(crate) out: Lines,
    err: Lines,
}

impl Stream {
    pub(crate) fn docker(args: &[&str]) -> Stream {
        let mut c = Command::new("docker");
        c.args(args);
        Stream::spawn(c)
    }

    /// Any engine command that keeps printing (tests/engines.rs: podman's
    /// and the private dockerd's `logs -f`).
    pub(crate) fn spawn(mut c: Command) -> Stream {
        let mut child = c
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn_guarded()
            .unwrap_or_else(|e| panic!("{c:?}: {e}"));
        let (out, err) = (Lines::default(), Lines::default());
        out.clone().collect(child.stdout.take().unwrap());
        err.clone().collect(child.stderr.take().unwrap());
        Stream {
            _child: child,
            out,
            err,
        }
    }

    /// Waits for a stdout line containing every needle.
    fn wait_for(&self, needles: &[&str]) -> String {
        self.out.wait_for(&format!("{needles:?}"), |l| {
            needles.iter().all(|n| l.contains(n))
        })
    }

    /// Waits for the stream to end (`logs -f` of a container that stopped).
    pub(crate) fn finish(&self) -> (Vec<String>, Vec<String>) {
        let d = Instant::now() + LONG;
        self.out.wait_closed(d);
        self.err.wait_closed(d);
        (self.out.snapshot(), self.err.snapshot())
    }
}

/// Which init runs the app.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Init {
    /// `ENTRYPOINT ["/berth", …, "--"]`.
    Berth,
    /// `docker run --init`: the engine's docker-init (tini 0.19 here).
    Tini,
    /// The app is PID 1.
    None,
}

const ALL: [Init; 3] = [Init::Berth, Init::Tini, Init::None];

/// The comparison line for docs/containers.md.
pub(crate) fn report(scenario: &str, init: Init, result: &str) {
    eprintln!("docker-compare | {scenario} | {init:?} | {result}");
}

/// One test's docker objects, all named `<prefix>-…`, removed on drop.
pub(crate) struct Scope {
    prefix: String,
    dir: PathBuf,
    compose: Mutex<Vec<(String, PathBuf)>>,
    /// `--platform` of every image built and container run: the
    /// architecture of the berth under test (`linux/arm64` for the aarch64
    /// binary, run through qemu-user's binfmt_misc entry).
    platform: Option<String>,
}

impl Scope {
    pub(crate) fn new(test: &str) -> Scope {
        if let Some(p) = docker_problem() {
            panic!(
                "the Docker engine is not usable, so this Docker test fails (it does not skip): {p}. \
                 scripts/test installs docker.io and docker-compose; the engine (dockerd) must be \
                 running and reachable as root"
            );
        }
        let prefix = format!("berth-test-{test}-{}", std::process::id());
        let dir = std::env::temp_dir().join(&prefix);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let s = Scope {
            prefix,
            dir,
            compose: Mutex::new(Vec::new()),
            platform: crate::util::berth_platform(),
        };
        s.cleanup();
        s
    }

    /// Images labelled with the host's platform whatever binaries they hold:
    /// a Swarm service of a foreign image finds no node to run on.
    pub(crate) fn host_platform_images(mut self) -> Scope {
        self.platform = None;
        self
    }

    pub(crate) fn name(&self, what: &str) -> String {
        format!("{}-{what}", self.prefix)
    }

    /// Builds `dockerfile` in a fresh context holding `rootfs/` (see
    /// `rootfs()`) with `--build-arg`s; returns the tag.
    /// `--no-cache`: tests build in parallel and remove their images, so no
    /// image of one test may be a cached parent of another's.
    fn build(&self, what: &str, dockerfile: &str, build_args: &[(&str, &str)]) -> String {
        let tag = self.name(what);
        let ctx = self.dir.join(what);
        self.rootfs(&ctx.join("rootfs"));
        std::fs::write(ctx.join("Dockerfile"), dockerfile).unwrap();
        let mut args: Vec<String> = ["build", "-q", "--no-cache", "--rm", "-t", &tag]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.extend(["--label".into(), format!("berth-test={}", self.prefix)]);
        if let Some(p) = &self.platform {
            args.extend(["--platform".into(), p.clone()]);
        }
        for (k, v) in build_args {
            args.extend(["--build-arg".into(), format!("{k}={v}")]);
        }
        args.push(ctx.display().to_string());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        docker_ok(&args);
        tag
    }

    /// A directory with berth, the example apps and a minimal /etc.
    fn rootfs(&self, root: &Path) {
        let bins = static_dir();
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::copy(bins.join("berth"), root.join("berth")).unwrap();
        for app in APPS {
            let src = bins.join("examples").join(app);
            std::fs::copy(&src, root.join(app)).unwrap_or_else(|e| {
                panic!("{}: {e} (scripts/build-static builds it)", src.display())
            });
        }
        std::fs::write(root.join("etc/passwd"), PASSWD).unwrap();
        std::fs::write(root.join("etc/group"), GROUP).unwrap();
    }

    /// `FROM scratch` with berth at /berth, the apps at /<name>, /etc/passwd
    /// and /etc/group, plus `extra` Dockerfile lines. No ENTRYPOINT: each run
    /// names its own (`--entrypoint`).
    pub(crate) fn image(&self, what: &str, extra: &str) -> String {
        self.build(
            what,
            &format!("FROM scratch\nCOPY rootfs/ /\n{extra}\n"),
            &[],
        )
    }

    /// `image` with more files: (a file on this machine, its name under /).
    pub(crate) fn image_with(&self, what: &str, files: &[(&Path, &str)]) -> String {
        let rootfs = self.dir.join(what).join("rootfs");
        std::fs::create_dir_all(&rootfs).unwrap();
        for (src, dst) in files {
            std::fs::copy(src, rootfs.join(dst))
                .unwrap_or_else(|e| panic!("{}: {e}", src.display()));
        }
        self.image(what, "")
    }

    /// `docker run -d` of `app` under `init`: returns the container name.
    fn run(
        &self,
        what: &str,
        init: Init,
        flags: &[&str],
        image: &str,
        berth_args: &[&str],
        app: &[&str],
    ) -> String {
        let name = self.name(what);
        let mut args: Vec<&str> = vec!["run", "-d", "--name", &name];
        if let Some(p) = &self.platform {
            args.extend(["--platform", p]);
        }
        args.extend_from_slice(flags);
        let rest: Vec<&str> = match init {
            Init::Berth => {
                let mut v = vec!["--entrypoint", "/berth", image];
                v.extend_from_slice(berth_args);
                v.push("--");
                v.extend_from_slice(app);
                v
            }
            Init::Tini | Init::None => {
                let mut v = Vec::new();
                if init == Init::Tini {
                    v.push("--init");
                }
                v.extend(["--entrypoint", app[0], image]);
                v.extend_from_slice(&app[1..]);
                v
            }
        };
        args.extend(rest);
        docker_ok(&args);
        name
    }

    /// Registers a compose project for `down` on drop.
    fn compose_project(&self, project: &str, file: &Path) {
        self.compose
            .lock()
            .unwrap()
            .push((project.to_string(), file.to_path_buf()));
    }

    fn cleanup(&self) {
        for (project, file) in self.compose.lock().unwrap().iter() {
            let mut c = Command::new("docker-compose");
            c.args(["-p", project, "-f"])
                .arg(file)
                .args(["down", "-t", "1", "--remove-orphans"]);
            let _ = run_bounded(c);
        }
        let filter = format!("name={}", self.prefix);
        let ids = docker(&["ps", "-aq", "--filter", &filter]);
        for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
            let _ = docker(&["rm", "-f", "-v", id]);
        }
        let ids = docker(&["network", "ls", "-q", "--filter", &filter]);
        for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
            let _ = docker(&["network", "rm", id]);
        }
        // Images built on other images of this test (Dockerfile.example's on
        // its stand-ins) must go first: remove what can go, a few rounds.
        let label = format!("label=berth-test={}", self.prefix);
        for _ in 0..4 {
            let ids = docker(&["images", "-q", "--filter", &label]);
            let mut ids: Vec<String> = String::from_utf8_lossy(&ids.stdout)
                .split_whitespace()
                .map(str::to_string)
                .collect();
            ids.sort();
            ids.dedup();
            if ids.is_empty() {
                break;
            }
            for id in &ids {
                let _ = docker(&["rmi", "-f", id]);
            }
        }
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        self.cleanup();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn inspect(container: &str, format: &str) -> String {
    docker_ok(&["inspect", "-f", format, container])
}

/// `docker logs -f NAME`.
fn follow_logs(container: &str) -> Stream {
    Stream::docker(&["logs", "-f", container])
}

/// `docker events` for one container since before it started.
fn events(container: &str, since: u64, kinds: &[&str]) -> Stream {
    let since = since.to_string();
    let name = format!("container={container}");
    let mut args = vec!["events", "--since", &since, "--filter", &name];
    let filters: Vec<String> = kinds.iter().map(|k| format!("event={k}")).collect();
    for f in &filters {
        args.extend(["--filter", f]);
    }
    args.extend([
        "--format",
        "{{.Status}} exitCode={{index .Actor.Attributes \"exitCode\"}}",
    ]);
    Stream::docker(&args)
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .saturating_sub(1)
}

/// Parses every line as JSON, naming the first that is not.
fn all_json(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}")))
        .collect()
}

/// berth's event named `event` in parsed lines.
fn event<'a>(lines: &'a [Value], event: &str) -> &'a Value {
    lines
        .iter()
        .find(|v| v["stream"] == "berth" && v["event"] == event)
        .unwrap_or_else(|| panic!("no {event} event in {lines:#?}"))
}

/// `docker stop -t T`, timed.
fn timed_stop(container: &str, timeout_s: u32) -> Duration {
    let t = Instant::now();
    docker_ok(&["stop", "-t", &timeout_s.to_string(), container]);
    t.elapsed()
}

fn exit_code(container: &str) -> i32 {
    inspect(container, "{{.State.ExitCode}}").parse().unwrap()
}

// ---------------------------------------------------------------------------
// docker stop

/// Runs `f` for each init at once (threads: the slow ones wait in parallel).
fn each_init(inits: &[Init], f: impl Fn(Init) + Sync) {
    std::thread::scope(|t| {
        for &init in inits {
            let f = &f;
            t.spawn(move || f(init));
        }
    });
}

/// What one `docker stop` did.
struct Stopped {
    took: Duration,
    code: i32,
    out: Vec<String>,
    err: Vec<String>,
}

/// Starts `app` under `init`, waits for its `ready` line, `docker stop -t`s
/// it and collects the whole log.
fn run_and_stop(
    s: &Scope,
    img: &str,
    init: Init,
    berth_args: &[&str],
    app: &[&str],
    ready: &str,
    stop_timeout_s: u32,
) -> Stopped {
    let name = s.run(
        &format!("{init:?}").to_lowercase(),
        init,
        &[],
        img,
        berth_args,
        app,
    );
    let logs = follow_logs(&name);
    logs.wait_for(&[ready]);
    let took = timed_stop(&name, stop_timeout_s);
    let (out, err) = logs.finish();
    let code = exit_code(&name);
    report(
        &format!("docker stop -t {stop_timeout_s}: {}", app.join(" ")),
        init,
        &format!("exit {code} after {:.2} s", took.as_secs_f64()),
    );
    Stopped {
        took,
        code,
        out,
        err,
    }
}

/// berth's exit event, checked to be the last line of an all-JSON log.
fn last_exit_event(out: &[String]) -> Value {
    let exit = all_json(out).pop().unwrap();
    assert_eq!(exit["event"], "exit", "{out:#?}");
    exit
}

/// An app that exits on SIGTERM with code 42: every init gets the signal to
/// it, the container's exit code is the app's, and every log line is out.
#[test]
fn docker_stop_app_that_exits_on_term() {
    let s = Scope::new("stop-term");
    let img = s.image("img", "");
    each_init(&ALL, |init| {
        let r = run_and_stop(
            &s,
            &img,
            init,
            &[],
            &["/sigprint", "--code", "42"],
            "ready",
            10,
        );
        assert_eq!(r.code, 42, "{init:?}: {:?} {:?}", r.out, r.err);
        assert!(r.took < Duration::from_secs(8), "{init:?}: {:?}", r.took);
        assert!(
            r.out.iter().any(|l| l.contains("TERM")),
            "{init:?}: {:?}",
            r.out
        );
        if init == Init::Berth {
            let exit = last_exit_event(&r.out);
            assert_eq!(
                (exit["code"].as_i64(), exit["reason"].as_str()),
                (Some(42), Some("exited"))
            );
            assert!(r.err.is_empty(), "{:?}", r.err);
        }
    });
}

/// An app with no SIGTERM handler (the default disposition, as many
/// runtimes have): as PID 1 the kernel ignores TERM for it, so without an
/// init `docker stop` waits its whole timeout and kills (137).
#[test]
fn docker_stop_app_without_term_handler() {
    let s = Scope::new("stop-nohandler");
    let img = s.image("img", "");
    each_init(&ALL, |init| {
        let app = ["/orphans", "0", "--linger", "600"];
        let r = run_and_stop(&s, &img, init, &[], &app, "released 0", 3);
        if init == Init::None {
            assert_eq!(r.code, 137, "PID 1 without a handler ignores TERM");
            assert!(r.took >= Duration::from_secs(3), "{:?}", r.took);
        } else {
            // 143, not 137: TERM ended it, not the engine's KILL at 3 s.
            assert_eq!(r.code, 143, "{init:?}");
        }
    });
}

/// An app that ignores SIGTERM: berth's `--grace 2s` kills it after ~2 s,
/// well inside `docker stop -t 10`, and says why in the exit event; without
/// a grace period the engine waits its full 10 s.
#[test]
fn docker_stop_app_ignoring_term_uses_berths_grace() {
    let s = Scope::new("stop-grace");
    let img = s.image("img", "");
    each_init(&ALL, |init| {
        let r = run_and_stop(
            &s,
            &img,
            init,
            &["--grace", "2s"],
            &["/stubborn"],
            "ready",
            10,
        );
        assert_eq!(r.code, 137, "{init:?}");
        if init == Init::Berth {
            // ~2 s: generous bounds, this is not a benchmark.
            assert!(r.took >= Duration::from_millis(1500), "{:?}", r.took);
            assert!(r.took < Duration::from_secs(8), "{:?}", r.took);
            let exit = last_exit_event(&r.out);
            assert_eq!(exit["reason"], "grace_expired", "{exit}");
            assert_eq!(exit["signal"], "KILL", "{exit}");
        } else {
            assert!(r.took >= Duration::from_secs(9), "{init:?}: {:?}", r.took);
        }
    });
}

// ---------------------------------------------------------------------------
// Users and hardening

/// What `/introspect` printed, from berth's JSON log or tini's raw output.
fn introspection(out: &[String]) -> Value {
    for l in out {
        let Ok(v) = serde_json::from_str::<Value>(l) else {
            continue;
        };
        if v.get("uid").is_some() && v.get("cap_eff").is_some() {
            return v;
        }
    }
    panic!("no introspect line in {out:#?}")
}

/// The hardened runs SPEC describes: `docker run --user 1000:1000` with a
/// read-only root, no capabilities and no-new-privileges (berth needs
/// nothing); berth's own `--user` as root without CAP_SETUID (125 with the
/// fix); `--cap-add SETUID --cap-add SETGID` for berth's `--user` (dropped
/// again before the app starts); and the image's `--user app` under
/// `docker run --user 1000:1000`.
#[test]
fn hardened_user_read_only_cap_drop_no_new_privileges() {
    let s = Scope::new("hardened");
    let img = s.image("img", "");
    let hard = [
        "--read-only",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
    ];
    let with = |extra: &[&'static str]| -> Vec<&'static str> {
        let mut v = hard.to_vec();
        v.extend_from_slice(extra);
        v
    };

    // 1. The container's user is the app's: berth runs unprivileged too.
    for init in [Init::Berth, Init::Tini] {
        let what = format!("docker-user-{init:?}").to_lowercase();
        let name = s.run(
            &what,
            init,
            &with(&["--user", "1000:1000"]),
            &img,
            &[],
            &["/introspect"],
        );
        assert_eq!(docker_ok(&["wait", &name]), "0", "{init:?}");
        let (out, err) = follow_logs(&name).finish();
        let v = introspection(&out);
        assert_eq!(
            (v["uid"].as_u64(), v["gid"].as_u64()),
            (Some(1000), Some(1000)),
            "{v}"
        );
        assert_eq!(v["cap_eff"], "0000000000000000");
        assert_eq!(v["no_new_privs"], true, "{init:?}");
        if init == Init::Berth {
            let lines = all_json(&out);
            assert_eq!(event(&lines, "start")["uid"], 1000);
            assert!(err.is_empty(), "{err:?}");
        }
        report(
            "--user 1000:1000 --read-only --cap-drop ALL",
            init,
            "app uid 1000, no caps, no_new_privs",
        );
    }

    // 2. berth as root asked to switch, without the capabilities to: 125.
    let name = s.run(
        "no-setuid",
        Init::Berth,
        &hard,
        &img,
        &["--user", "app"],
        &["/introspect"],
    );
    assert_eq!(docker_ok(&["wait", &name]), "125");
    let (_, err) = follow_logs(&name).finish();
    let err = err.join("\n");
    assert!(
        err.contains("CAP_SETUID") && err.contains("--cap-add SETUID"),
        "{err}"
    );

    // 3. ... with exactly SETUID and SETGID added: the app has none of them,
    //    and berth dropped its own root too.
    let name = s.run(
        "cap-add",
        Init::Berth,
        &with(&["--cap-add", "SETUID", "--cap-add", "SETGID"]),
        &img,
        &["--user", "app"],
        &["/introspect", "--wait"],
    );
    let logs = follow_logs(&name);
    // The app's JSON line keeps its fields at top level in berth's log.
    let app: Value = serde_json::from_str(&logs.wait_for(&["\"uid\"", "cap_eff"])).unwrap();
    assert_eq!(app["uid"], 1000, "{app}");
    assert_eq!(app["groups"], serde_json::json!([50, 1000]), "{app}");
    assert_eq!(app["cap_eff"], "0000000000000000", "{app}");
    assert_eq!(app["no_new_privs"], true);
    let pid: i32 = inspect(&name, "{{.State.Pid}}").parse().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |k: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .unwrap()
            .trim()
            .to_string()
    };
    assert!(
        field("Uid:").starts_with("1000"),
        "berth's own uid: {status}"
    );
    assert_eq!(field("CapEff:"), "0000000000000000");
    timed_stop(&name, 10);

    // 4. The image says `--user app`, the orchestrator says 1000:1000 (as
    //    Kubernetes runAsUser/runAsGroup): berth already is the app's uid and
    //    gid, so it runs the app as it is and says which groups it lacks.
    let name = s.run(
        "image-user",
        Init::Berth,
        &with(&["--user", "1000:1000"]),
        &img,
        &["--user", "app"],
        &["/introspect"],
    );
    assert_eq!(docker_ok(&["wait", &name]), "0");
    let (out, _) = follow_logs(&name).finish();
    let v = introspection(&out);
    assert_eq!(v["uid"], 1000, "{out:?}");
    assert!(
        out.iter().any(|l| l.contains("already runs as uid 1000")),
        "{out:#?}"
    );
}

// ---------------------------------------------------------------------------
// Health

/// Docker's HEALTHCHECK running `berth probe` (exec form: no shell in the
/// image) goes healthy, then unhealthy once the app's health endpoint fails;
/// `berth status` does the same from berth's own `--health`.
#[test]
fn healthcheck_with_berth_probe_and_status() {
    let s = Scope::new("health");
    let probe_img = s.image(
        "probe",
        r#"HEALTHCHECK --interval=1s --timeout=3s --retries=2 CMD ["/berth", "probe", "http://127.0.0.1:8080/healthz"]"#,
    );
    let status_img = s.image(
        "status",
        r#"HEALTHCHECK --interval=1s --timeout=3s --retries=1 CMD ["/berth", "status"]"#,
    );
    std::thread::scope(|t| {
        for (what, img, berth_args) in [
            ("probe", &probe_img, &[][..]),
            (
                "status",
                &status_img,
                &[
                    "--health",
                    "http://127.0.0.1:8080/healthz",
                    "--health-interval",
                    "1s",
                    "--health-retries",
                    "1",
                ][..],
            ),
        ] {
            let s = &s;
            t.spawn(move || {
                let since = now_unix();
                let name = s.run(
                    what,
                    Init::Berth,
                    &[],
                    img,
                    berth_args,
                    &["/httpd", "--port", "8080"],
                );
                let ev = events(&name, since, &["health_status"]);
                ev.wait_for(&["health_status: healthy"]);
                assert_eq!(inspect(&name, "{{.State.Health.Status}}"), "healthy");
                // Flip the app's health from inside, with berth itself (the
                // image has no curl): GET /healthz/fail.
                docker_ok(&[
                    "exec",
                    &name,
                    "/berth",
                    "probe",
                    "http://127.0.0.1:8080/healthz/fail",
                ]);
                ev.wait_for(&["health_status: unhealthy"]);
                let h: Value =
                    serde_json::from_str(&inspect(&name, "{{json .State.Health}}")).unwrap();
                assert_eq!(h["Status"], "unhealthy");
                let last = h["Log"].as_array().unwrap().last().unwrap().clone();
                assert_eq!(last["ExitCode"], 1, "{h}");
                if what == "probe" {
                    assert!(last["Output"].as_str().unwrap().contains("503"), "{h}");
                } else {
                    assert!(
                        last["Output"]
                            .as_str()
                            .unwrap()
                            .contains("\"health\":\"unhealthy\""),
                        "{h}"
                    );
                }
            });
        }
    });
}

/// `--on-unhealthy exit` turns "unhealthy" into exit 1, so Docker's
/// `--restart on-failure` restarts the container (plain Docker never acts
/// on a HEALTHCHECK).
#[test]
fn on_unhealthy_exit_with_restart_on_failure_restarts() {
    let s = Scope::new("restart");
    let img = s.image("img", "");
    let since = now_unix();
    let name = s.run(
        "app",
        Init::Berth,
        &["--restart", "on-failure:3"],
        &img,
        &[
            "--health",
            "http://127.0.0.1:8080/healthz",
            "--health-interval",
            "1s",
            "--health-retries",
            "1",
            "--on-unhealthy",
            "exit",
            "--grace",
            "2s",
        ],
        &["/httpd", "--port", "8080"],
    );
    let ev = events(&name, since, &["start", "die"]);
    let logs = follow_logs(&name);
    logs.wait_for(&["\"event\":\"health\"", "\"state\":\"healthy\""]);
    docker_ok(&[
        "exec",
        &name,
        "/berth",
        "probe",
        "http://127.0.0.1:8080/healthz/fail",
    ]);
    ev.wait_for(&["die", "exitCode=1"]);
    ev.out
        .wait_for_nth("second start", 2, |l| l.starts_with("start"));
    let count: u32 = inspect(&name, "{{.RestartCount}}").parse().unwrap();
    assert!(count >= 1, "RestartCount {count}");
    let (out, _) = logs.finish();
    let lines = all_json(&out);
    let exit = event(&lines, "exit");
    assert_eq!(
        (exit["code"].as_i64(), exit["reason"].as_str()),
        (Some(1), Some("unhealthy")),
        "{exit}"
    );
    assert_eq!(inspect(&name, "{{.State.Running}}"), "true");
    report(
        "--on-unhealthy exit + --restart on-failure",
        Init::Berth,
        &format!("RestartCount {count}"),
    );
}

// ---------------------------------------------------------------------------
// Logs, zombies, limits

/// Every line `docker logs` shows for berth is one JSON object, also for
/// hostile output and for app lines longer than Docker's 16 KiB cut (berth
/// splits them into `partial` pieces first); nothing goes to stderr.
#[test]
fn docker_logs_lines_all_parse_as_json() {
    let s = Scope::new("logs");
    let img = s.image("img", "");
    for (what, app) in [
        ("hostile", &["/spew", "hostile"][..]),
        ("long", &["/spew", "lines", "40", "--width", "40000"][..]),
    ] {
        let name = s.run(what, Init::Berth, &[], &img, &[], app);
        assert_eq!(docker_ok(&["wait", &name]), "0");
        let o = docker(&["logs", &name]);
        assert!(
            o.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        let out: Vec<String> = String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        assert!(out.len() > 3, "{out:?}");
        for l in &out {
            assert!(
                l.len() < 16 * 1024,
                "a line over 16 KiB: Docker would cut it"
            );
        }
        let lines = all_json(&out);
        assert_eq!(lines.last().unwrap()["event"], "exit");
        if what == "long" {
            // 40 lines of 40,000 bytes: every one arrives, in pieces.
            let mut whole = std::collections::BTreeMap::<String, String>::new();
            for v in lines.iter().filter(|v| v["stream"] != "berth") {
                let id = v["partial_id"]
                    .as_str()
                    .expect("pieces have a partial_id")
                    .to_string();
                whole
                    .entry(id)
                    .or_default()
                    .push_str(v["msg"].as_str().unwrap());
            }
            assert_eq!(whole.len(), 40);
            // `spew lines` writes `out 0 xxx…` of 40,000 bytes with the newline.
            for (i, m) in whole.values().enumerate() {
                assert_eq!(m.len(), 39_999, "line {i}");
                assert!(
                    m.starts_with("out ") || m.starts_with("err "),
                    "{}",
                    &m[..20]
                );
            }
        }
    }
}

/// Zombies: an app whose 50 children are orphaned and exit. berth and tini
/// reap them; with the app as PID 1 they stay `Z`.
#[test]
fn zombies_are_reaped_inside_the_container() {
    let s = Scope::new("zombies");
    let img = s.image("img", "");
    each_init(&ALL, |init| {
        let app = ["/orphans", "50", "--linger", "600"];
        let name = s.run(
            &format!("{init:?}").to_lowercase(),
            init,
            &[],
            &img,
            &[],
            &app,
        );
        follow_logs(&name).wait_for(&["released 50"]);
        let pid1: i32 = inspect(&name, "{{.State.Pid}}").parse().unwrap();
        // The container's processes as the host sees them: PID 1's
        // descendants. Wait (bounded) until the 50 are gone (berth, tini:
        // only the app is left below PID 1) or all zombies (no init).
        let deadline = Instant::now() + LONG;
        let (zombies, procs) = loop {
            let d = descendants_of(pid1);
            let z = d.iter().filter(|p| state_of(**p) == Some('Z')).count();
            let settled = if init == Init::None {
                z == 50
            } else {
                d.len() == 1
            };
            if settled || Instant::now() >= deadline {
                break (z, d.len());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        if init == Init::None {
            assert_eq!(zombies, 50, "{procs} processes");
        } else {
            assert_eq!((zombies, procs), (0, 1), "{init:?}: the app alone is left");
        }
        report("50 orphans exit", init, &format!("{zombies} zombies left"));
    });
}

/// `--memory 64m` (and `--cpus`) are in berth's start event, read from the
/// container's cgroup (v1 here, v2 elsewhere); without a limit berth warns.
#[test]
fn memory_limit_in_start_event_and_warning_without() {
    let s = Scope::new("limits");
    let img = s.image("img", "");
    let limited = s.run(
        "limited",
        Init::Berth,
        &["--memory", "64m", "--cpus", "1.5"],
        &img,
        &[],
        &["/orphans", "0"],
    );
    let unlimited = s.run("unlimited", Init::Berth, &[], &img, &[], &["/orphans", "0"]);
    for name in [&limited, &unlimited] {
        assert_eq!(docker_ok(&["wait", name]), "0");
    }
    let lines = all_json(&follow_logs(&limited).finish().0);
    let start = event(&lines, "start");
    assert_eq!(start["memory_limit_bytes"], 64 << 20, "{start}");
    assert_eq!(start["cpu_limit"].as_f64(), Some(1.5), "{start}");
    assert!(!lines
        .iter()
        .any(|v| v["event"] == "warn" && v["msg"].as_str().unwrap_or("").contains("memory")));

    let lines = all_json(&follow_logs(&unlimited).finish().0);
    let start = event(&lines, "start");
    assert!(start["memory_limit_bytes"].is_null(), "{start}");
    assert!(start["cpu_limit"].is_null(), "{start}");
    assert!(
        lines
            .iter()
            .any(|v| v["event"] == "warn"
                && v["msg"].as_str().unwrap_or("").contains("no memory limit")),
        "{lines:#?}"
    );
}

/// "Why 137?": an app killed by the container's OOM killer under
/// `--memory` has `oom_kill: true` in berth's exit event, also when berth
/// dropped its own root for `--user`.
#[test]
fn oom_kill_reported_in_exit_event() {
    let s = Scope::new("oom");
    let img = s.image("img", "");
    let flags = ["--memory", "64m", "--memory-swap", "64m"];
    for (what, berth_args) in [("root", &[][..]), ("user", &["--user", "app"][..])] {
        let name = s.run(
            what,
            Init::Berth,
            &flags,
            &img,
            berth_args,
            &["/memhog", "1024"],
        );
        assert_eq!(docker_ok(&["wait", &name]), "137");
        // Docker's own flag comes from containerd's OOM event, which can
        // land after the exit (one of three full runs here read "false"):
        // said, not asserted. berth's exit event below is what is tested,
        // from the cgroup's own oom_kill counter.
        let docker_says = inspect(&name, "{{.State.OOMKilled}}");
        eprintln!("oom | {what} | docker inspect .State.OOMKilled: {docker_says}");
        let (out, _) = follow_logs(&name).finish();
        let lines = all_json(&out);
        let exit = lines.last().unwrap();
        assert_eq!(exit["event"], "exit", "{out:#?}");
        assert_eq!(exit["oom_kill"], true, "{exit}");
        assert_eq!(
            (exit["code"].as_i64(), exit["signal"].as_str()),
            (Some(137), Some("KILL"))
        );
        assert!(!out.iter().any(|l| l.contains("survived")));
    }
    let name = s.run("tini", Init::Tini, &flags, &img, &[], &["/memhog", "1024"]);
    let code = docker_ok(&["wait", &name]);
    report(
        "app OOM-killed under --memory 64m",
        Init::Tini,
        &format!(
            "exit {code}, OOMKilled {}, nothing in the logs says why",
            inspect(&name, "{{.State.OOMKilled}}")
        ),
    );
    report(
        "app OOM-killed under --memory 64m",
        Init::Berth,
        "exit 137, exit event oom_kill: true",
    );
}

// ---------------------------------------------------------------------------
// Dockerfile.example and examples/compose.yaml

/// Builds the final stage of Dockerfile.example, verbatim, with local
/// stand-ins for its two registry images (none is reachable here):
/// - the builder stage, which needs rust:1.95 and crates.io, is replaced by
///   a scratch image holding what it would produce, /out/berth and /out/app,
///   from scripts/build-static (the same cargo build for the same musl
///   target; examples/httpd is the app);
/// - RUNTIME_IMAGE (distroless static:nonroot) by a scratch image with the
///   /etc/passwd and /etc/group that make uid 65532 "nonroot".
///
/// The file's global ARGs and its final stage are used as they are; only
/// the builder stage's text is swapped. Returns the image's tag.
fn build_dockerfile_example(s: &Scope) -> String {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Dockerfile.example"))
            .unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let froms: Vec<usize> = (0..lines.len())
        .filter(|&i| {
            lines[i]
                .trim_start()
                .to_ascii_uppercase()
                .starts_with("FROM ")
        })
        .collect();
    assert_eq!(
        froms.len(),
        2,
        "Dockerfile.example: expected a builder and a final stage"
    );
    assert!(lines[froms[0]].contains("AS build"), "{}", lines[froms[0]]);
    assert_eq!(lines[froms[1]].trim(), "FROM ${RUNTIME_IMAGE}");
    let builder = s.build(
        "builder",
        "FROM scratch\nCOPY rootfs/berth /out/berth\nCOPY rootfs/httpd /out/app\n",
        &[],
    );
    let runtime = s.build("runtime", "FROM scratch\nCOPY rootfs/etc/ /etc/\n", &[]);
    let dockerfile = format!(
        "{}\nFROM {builder} AS build\n{}\n",
        lines[..froms[0]].join("\n"),
        lines[froms[1]..].join("\n")
    );
    s.build("app", &dockerfile, &[("RUNTIME_IMAGE", &runtime)])
}

/// The image of Dockerfile.example, run hardened as its comments say:
/// healthy through `berth probe`, non-root, no warning at all (a user and a
/// memory limit are set), and `docker stop` ends it with the app's code 0.
#[test]
fn dockerfile_example_final_stage_builds_and_runs_hardened() {
    let s = Scope::new("dockerfile");
    let img = build_dockerfile_example(&s);
    let cfg: Value = serde_json::from_str(&inspect(&img, "{{json .Config}}")).unwrap();
    assert_eq!(cfg["User"], "65532:65532");
    assert_eq!(cfg["Entrypoint"], serde_json::json!(["/berth", "--"]));
    assert_eq!(cfg["StopSignal"], "SIGTERM");
    assert_eq!(cfg["Healthcheck"]["Test"][0], "CMD", "exec form");

    let since = now_unix();
    let name = s.name("run");
    docker_ok(&[
        "run",
        "-d",
        "--name",
        &name,
        "--read-only",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "--memory",
        "64m",
        &img,
    ]);
    let ev = events(&name, since, &["health_status"]);
    let logs = follow_logs(&name);
    ev.wait_for(&["health_status: healthy"]);
    let took = timed_stop(&name, 10);
    let (out, err) = logs.finish();
    assert!(err.is_empty(), "{err:?}");
    assert_eq!(exit_code(&name), 0);
    assert!(took < Duration::from_secs(8), "{took:?}");
    let lines = all_json(&out);
    let start = event(&lines, "start");
    assert_eq!(
        (start["uid"].as_u64(), start["gid"].as_u64()),
        (Some(65532), Some(65532))
    );
    assert_eq!(start["memory_limit_bytes"], 64 << 20);
    assert_eq!(start["service"], "app");
    assert!(!lines.iter().any(|v| v["level"] == "warn"), "{out:#?}");
    assert_eq!(event(&lines, "signal")["received"], "TERM");
    let exit = lines.last().unwrap();
    assert_eq!(exit["event"], "exit");
    assert_eq!(
        (exit["code"].as_i64(), exit["reason"].as_str()),
        (Some(0), Some("exited"))
    );
}

/// examples/compose.yaml with docker-compose: `up` waits for api's
/// healthcheck before it starts web, and `down` stops both gracefully
/// (TERM through berth, the app's exit 0, berth's exit event last).
#[test]
fn compose_example_up_healthy_down_gracefully() {
    let s = Scope::new("compose");
    let img = build_dockerfile_example(&s);
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/compose.yaml");
    let project = s.name("p");
    s.compose_project(&project, &file);
    let compose = |args: &[&str]| {
        let mut c = Command::new("docker-compose");
        c.args(["-p", &project, "-f"]).arg(&file).args(args);
        c.env("APP_IMAGE", &img);
        let o = run_bounded(c);
        assert!(
            o.status.success(),
            "docker-compose {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    let since = now_unix().to_string();
    let label = format!("label=com.docker.compose.project={project}");
    let ev = Stream::docker(&[
        "events",
        "--since",
        &since,
        "--filter",
        &label,
        "--filter",
        "type=container",
        "--format",
        "{{index .Actor.Attributes \"com.docker.compose.service\"}} {{.Status}}",
    ]);
    compose(&["up", "-d", "--no-build"]);
    let api = compose(&["ps", "-q", "api"]);
    let web = compose(&["ps", "-q", "web"]);
    assert_eq!(inspect(&api, "{{.State.Health.Status}}"), "healthy");
    // The hardening the file shows did reach the engine.
    for c in [&api, &web] {
        let h: Value = serde_json::from_str(&inspect(c, "{{json .HostConfig}}")).unwrap();
        assert_eq!(h["ReadonlyRootfs"], true);
        assert_eq!(h["CapDrop"], serde_json::json!(["ALL"]));
        assert_eq!(
            h["SecurityOpt"],
            serde_json::json!(["no-new-privileges:true"])
        );
        assert_eq!(h["Memory"], 128 << 20);
    }
    assert_eq!(inspect(&web, "{{.State.Running}}"), "true");
    // Order as the engine recorded it: api healthy before web started.
    ev.wait_for(&["web start"]);
    let order = ev.out.snapshot();
    let pos = |needle: &str| order.iter().position(|l| l.starts_with(needle));
    let healthy = pos("api health_status: healthy").expect("api became healthy");
    assert!(healthy < pos("web start").unwrap(), "{order:#?}");

    let logs = [follow_logs(&api), follow_logs(&web)];
    let t = Instant::now();
    compose(&["down"]);
    let took = t.elapsed();
    for (svc, l) in ["api", "web"].iter().zip(&logs) {
        let (out, err) = l.finish();
        assert!(err.is_empty(), "{svc}: {err:?}");
        let lines = all_json(&out);
        assert!(lines.iter().all(|v| v["service"] == *svc), "{out:#?}");
        assert_eq!(event(&lines, "signal")["received"], "TERM", "{svc}");
        let exit = lines.last().unwrap();
        assert_eq!(exit["event"], "exit", "{svc}");
        assert_eq!(
            (exit["code"].as_i64(), exit["reason"].as_str()),
            (Some(0), Some("exited")),
            "{svc}"
        );
    }
    // Well inside stop_grace_period (10 s) for each: nobody was killed.
    assert!(took < Duration::from_secs(15), "down took {took:?}");
    report(
        "compose down (api + web)",
        Init::Berth,
        &format!("both exit 0 in {:.2} s", took.as_secs_f64()),
    );
}

// ---------------------------------------------------------------------------
// --wait-for under the engine

/// The compose start order done by berth (SPEC step 4): the app's
/// container waits for `db`, a name only Docker's embedded DNS
/// (127.0.0.11) knows, and only once the db container exists; the db
/// starts listening late; the app starts after it. A second container
/// that waits for a dependency that never comes is stopped by `docker
/// stop` at once, 143, its app never started.
#[test]
fn wait_for_a_service_name_through_dockers_dns_then_docker_stop_during_a_wait() {
    let s = Scope::new("waitfor");
    let image = s.image("waitfor", "");
    let net = s.name("net");
    docker_ok(&[
        "network",
        "create",
        "--label",
        &format!("berth-test={}", s.prefix),
        &net,
    ]);
    let app = s.run(
        "app",
        Init::Berth,
        &["--network", &net],
        &image,
        &[
            "--log-format=json",
            "--wait-for=tcp://db:8080",
            "--wait-timeout=90s",
        ],
        &["/httpd", "--addr", "0.0.0.0", "--port", "9090"],
    );
    let logs = follow_logs(&app);
    // Until the db container exists, Docker's DNS has no such name.
    logs.wait_for(&[
        "\"event\":\"wait\"",
        "\"state\":\"failing\"",
        "tcp://db:8080",
    ]);
    let db = s.run(
        "db",
        Init::Berth,
        &["--network", &net, "--network-alias", "db"],
        &image,
        &["--log-format=json"],
        &[
            "/httpd",
            "--addr",
            "0.0.0.0",
            "--port",
            "8080",
            "--listen-after-ms",
            "1500",
        ],
    );
    let healthy = logs.wait_for(&["\"event\":\"wait\"", "\"state\":\"healthy\""]);
    let started = logs.wait_for(&["\"event\":\"start\""]);
    let listening = logs.wait_for(&["listening on"]);
    let t = |l: &str| {
        serde_json::from_str::<Value>(l).unwrap()["ts"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(t(&healthy) <= t(&started) && t(&started) <= t(&listening));
    let db_logs = all_json(&docker_lines(&["logs", &db]));
    let db_listening = db_logs
        .iter()
        .find(|v| {
            v["msg"]
                .as_str()
                .is_some_and(|m| m.starts_with("listening on"))
        })
        .expect("the db listened");
    assert!(db_listening["ts"].as_str().unwrap() <= t(&healthy).as_str());

    let waiting = s.run(
        "waiting",
        Init::Berth,
        &["--network", &net],
        &image,
        &["--log-format=json", "--wait-for=tcp://nothere:5432"],
        &["/httpd", "--port", "9091"],
    );
    follow_logs(&waiting).wait_for(&["\"event\":\"wait\"", "\"state\":\"failing\""]);
    let took = timed_stop(&waiting, 10);
    assert_eq!(exit_code(&waiting), 143);
    assert!(took < Duration::from_secs(3), "docker stop took {took:?}");
    let lines = all_json(&docker_lines(&["logs", &waiting]));
    assert!(!lines.iter().any(|v| v["event"] == "start"), "{lines:#?}");
    report(
        "wait-for through Docker's DNS",
        Init::Berth,
        &format!("docker stop during the wait: {took:?}, 143"),
    );
}

/// Every stdout line of a finished docker command.
fn docker_lines(args: &[&str]) -> Vec<String> {
    docker_ok(args).lines().map(str::to_string).collect()
}
