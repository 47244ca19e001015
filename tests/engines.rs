//! berth as the engine's own init (SPEC "As the engine's own init"), under
//! real engines: a private dockerd whose `--init-path` is the berth under
//! test (scripts/private-dockerd, started by scripts/test, which exports
//! TEST_PRIVATE_DOCKER_HOST), and Podman with `--init --init-path`. Podman
//! also runs berth as an image ENTRYPOINT, the way tests/docker.rs does on
//! the machine's own Docker.
//!
//! These tests fail, never skip, when their engine is unusable: scripts/test
//! prints one `SKIPPED:` line and leaves them out instead. Images are built
//! `FROM scratch` from the static binaries (no registry is reachable); every
//! container and image is named `berth-eng-<test>-<pid>…` and removed by a
//! Drop guard. Containers run with `--network none` (the private dockerd
//! has no bridge); berth's status socket is abstract, loopback is enough.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::docker::{run_bounded, Stream};
use crate::util::{berth_bin, descendants_of, example, in_pid_namespace, state_of, LONG};

const APPS: &[&str] = &["httpd", "orphans", "sigprint", "stubborn"];

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Docker,
    Podman,
}

/// How berth runs in the container.
#[derive(Clone, Copy, Debug, PartialEq)]
enum How {
    /// `run --init`: the engine bind-mounts berth as its init.
    Injected,
    /// `--entrypoint /berth`, as an image would have it.
    Entrypoint,
}

/// One engine's command line: the client and the flags every call needs.
struct Engine {
    kind: Kind,
    global: Vec<String>,
    env: Vec<(String, String)>,
}

impl Engine {
    /// The private dockerd scripts/test started with `--init-path` = berth.
    fn docker() -> Engine {
        let host = std::env::var("TEST_PRIVATE_DOCKER_HOST").unwrap_or_else(|_| {
            panic!(
                "TEST_PRIVATE_DOCKER_HOST is not set, so this test fails (it does not skip): \
                 scripts/test starts a private dockerd with `scripts/private-dockerd start DIR \
                 $TEST_BERTH_BIN` and exports what it prints"
            )
        });
        Engine {
            kind: Kind::Docker,
            global: vec!["-H".into(), host],
            env: vec![],
        }
    }

    /// Root Podman with its storage under TEST_PODMAN_DIR (scripts/test
    /// removes it), in the shape this sandbox needs: vfs storage (no
    /// overlay on overlay), cgroupfs (no systemd), runc, and no default
    /// ulimits (Podman's nofile/nproc defaults exceed the hard limits here).
    fn podman() -> Engine {
        let dir = std::env::var_os("TEST_PODMAN_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| std::env::temp_dir().join("berth-test-podman"));
        std::fs::create_dir_all(&dir).unwrap();
        let conf = dir.join("containers.conf");
        std::fs::write(&conf, "[containers]\ndefault_ulimits = []\n").unwrap();
        let mut global: Vec<String> = vec!["--root".into(), dir.join("root").display().to_string()];
        global.extend(["--runroot".into(), dir.join("run").display().to_string()]);
        for f in [
            "--storage-driver=vfs",
            "--cgroup-manager=cgroupfs",
            "--runtime=runc",
        ] {
            global.push(f.into());
        }
        let e = Engine {
            kind: Kind::Podman,
            global,
            env: vec![("CONTAINERS_CONF".into(), conf.display().to_string())],
        };
        let o = e.out(&["info", "--format", "{{.Host.OCIRuntime.Name}}"]);
        assert!(
            o.status.success(),
            "Podman is not usable, so this test fails (it does not skip); scripts/test \
             installs Debian's podman: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        e
    }

    fn program(&self) -> &'static str {
        match self.kind {
            Kind::Docker => "docker",
            Kind::Podman => "podman",
        }
    }

    /// Where the engine bind-mounts its init in the container.
    fn init_in_container(&self) -> &'static str {
        match self.kind {
            Kind::Docker => "/sbin/docker-init",
            Kind::Podman => "/run/podman-init",
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(self.program());
        c.args(&self.global).args(args);
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    fn out(&self, args: &[&str]) -> Output {
        run_bounded(self.command(args))
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.out(args);
        assert!(
            o.status.success(),
            "{} {args:?} failed ({}): {}",
            self.program(),
            o.status,
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    /// `logs -f NAME`, read line by line; killed when dropped.
    fn follow(&self, name: &str) -> Stream {
        Stream::spawn(self.command(&["logs", "-f", name]))
    }
}

/// Waits for the app's stdout line `line`, as it wrote it (plain) or as the
/// `msg` of berth's JSON line.
fn wait_for_app_line(logs: &Stream, line: &str) {
    let json = format!("\"msg\":\"{line}\"");
    logs.out.wait_for(line, |l| l == line || l.contains(&json));
}

/// One test's containers and image on one engine, removed on drop.
struct Scope {
    e: Engine,
    prefix: String,
    dir: PathBuf,
    image: String,
}

impl Scope {
    fn new(e: Engine, test: &str) -> Scope {
        let prefix = format!("berth-eng-{test}-{}", std::process::id());
        let dir = std::env::temp_dir().join(&prefix);
        let _ = std::fs::remove_dir_all(&dir);
        let root = dir.join("rootfs");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        let bin = berth_bin();
        let bins = bin.parent().unwrap();
        std::fs::copy(&bin, root.join("berth")).unwrap();
        for app in APPS {
            let src = bins.join("examples").join(app);
            std::fs::copy(&src, root.join(app)).unwrap_or_else(|err| {
                panic!(
                    "{}: {err} (the engine tests need scripts/build-static's binaries)",
                    src.display()
                )
            });
        }
        std::fs::write(root.join("etc/passwd"), "root:x:0:0::/:/sbin/nologin\n").unwrap();
        // A file that differs per scope, so no two test images share a
        // layer: Podman's vfs store once lost a layer that one test's build
        // was committing while another test's `rmi` removed its twin.
        std::fs::write(root.join("etc/berth-test-scope"), &prefix).unwrap();
        std::fs::write(dir.join("Dockerfile"), "FROM scratch\nCOPY rootfs/ /\n").unwrap();
        let s = Scope {
            e,
            image: format!("{prefix}-img"),
            prefix,
            dir,
        };
        s.cleanup();
        let ctx = s.dir.display().to_string();
        {
            let _one = image_store_lock();
            s.e.ok(&["build", "-q", "-t", &s.image, &ctx]);
        }
        s
    }

    fn name(&self, what: &str) -> String {
        format!("{}-{what}", self.prefix)
    }

    /// `run -d` of `app` with berth as `how`; returns the container name.
    fn run(&self, what: &str, how: How, flags: &[&str], berth: &[&str], app: &[&str]) -> String {
        let name = self.name(what);
        let bin = berth_bin().display().to_string();
        let mut args: Vec<&str> = vec!["run", "-d", "--name", &name, "--network", "none"];
        args.extend_from_slice(flags);
        match how {
            How::Injected => {
                args.push("--init");
                if self.e.kind == Kind::Podman {
                    args.extend(["--init-path", &bin]);
                }
                args.push(&self.image);
            }
            How::Entrypoint => {
                args.extend(["--entrypoint", "/berth", &self.image]);
                args.extend_from_slice(berth);
                args.push("--");
            }
        }
        args.extend_from_slice(app);
        self.e.ok(&args);
        name
    }

    fn inspect(&self, name: &str, format: &str) -> String {
        self.e.ok(&["inspect", "-f", format, name])
    }

    fn exit_code(&self, name: &str) -> i32 {
        self.inspect(name, "{{.State.ExitCode}}").parse().unwrap()
    }

    /// `stop -t T`, timed; then the whole log and the exit code.
    fn stop(&self, name: &str, logs: &Stream, timeout_s: u32) -> Stopped {
        let t = Instant::now();
        self.e.ok(&["stop", "-t", &timeout_s.to_string(), name]);
        let took = t.elapsed();
        let (out, err) = logs.finish();
        let code = self.exit_code(name);
        eprintln!(
            "engine-init | {:?} | {name} | exit {code} after {:.2} s",
            self.e.kind,
            took.as_secs_f64()
        );
        Stopped {
            took,
            code,
            out,
            err,
        }
    }

    fn cleanup(&self) {
        let filter = format!("name={}", self.prefix);
        let ids = self.e.out(&["ps", "-aq", "--filter", &filter]);
        for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
            let _ = self.e.out(&["rm", "-f", id]);
        }
        let _one = image_store_lock();
        let _ = self.e.out(&["rmi", "-f", &self.image]);
    }
}

/// One image build or removal at a time: Podman's vfs image store failed
/// one of two parallel `podman build`s ("image-store error", then "layer
/// not known" while another test removed its image).
fn image_store_lock() -> std::sync::MutexGuard<'static, ()> {
    static IMAGE_STORE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    IMAGE_STORE.lock().unwrap_or_else(|p| p.into_inner())
}

impl Drop for Scope {
    fn drop(&mut self) {
        self.cleanup();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

struct Stopped {
    took: Duration,
    code: i32,
    out: Vec<String>,
    err: Vec<String>,
}

impl Stopped {
    /// Every line the engine's log driver got, both streams.
    fn all(&self) -> Vec<String> {
        self.out.iter().chain(&self.err).cloned().collect()
    }
}

/// berth's JSON lines from a log; every stdout line must be one.
fn json_lines(out: &[String]) -> Vec<Value> {
    out.iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}")))
        .collect()
}

fn event<'a>(lines: &'a [Value], name: &str) -> &'a Value {
    lines
        .iter()
        .find(|v| v["stream"] == "berth" && v["event"] == name)
        .unwrap_or_else(|| panic!("no {name} event in {lines:#?}"))
}

fn init_name(e: &Engine, how: How) -> &'static str {
    match (how, e.kind) {
        (How::Entrypoint, _) => "entrypoint",
        (How::Injected, Kind::Docker) => "docker",
        (How::Injected, Kind::Podman) => "podman",
    }
}

// ---------------------------------------------------------------------------
// Scenarios, each run on an engine with berth injected or as ENTRYPOINT

/// The stop: TERM reaches the app, whose code (42) is the container's, well
/// inside the stop timeout. Injected, berth is transparent: the log driver
/// gets the app's own lines, not JSON, and no "runs as root" warning.
fn stop_ends_with_the_apps_code(e: Engine, how: How, test: &str) {
    let s = Scope::new(e, test);
    let name = s.run("c", how, &[], &[], &["/sigprint", "--code", "42"]);
    let logs = s.e.follow(&name);
    wait_for_app_line(&logs, "ready");
    let r = s.stop(&name, &logs, 10);
    assert_eq!(r.code, 42, "{:?} {:?}", r.out, r.err);
    assert!(r.took < Duration::from_secs(8), "{:?}", r.took);
    match how {
        How::Injected => {
            let all = r.all();
            let app: Vec<&str> = all
                .iter()
                .map(String::as_str)
                .filter(|l| !l.starts_with("berth: "))
                .collect();
            assert_eq!(
                app,
                ["ready", "TERM"],
                "the app's lines, unchanged: {all:?}"
            );
            assert!(
                r.all().iter().all(|l| !l.contains("runs as root")),
                "{:?}",
                r.all()
            );
            // berth's own plain lines say it was berth, not tini.
            assert!(
                r.all()
                    .iter()
                    .any(|l| l == "berth: received TERM, sent TERM to the app"),
                "{:?}",
                r.all()
            );
        }
        How::Entrypoint => {
            let lines = json_lines(&r.out);
            let exit = lines.last().unwrap();
            assert_eq!(exit["event"], "exit", "{:?}", r.out);
            assert_eq!(exit["code"], 42);
            assert_eq!(event(&lines, "start")["init"], "entrypoint");
        }
    }
}

/// An app that ignores TERM gets berth's grace (BERTH_GRACE=2s), not the
/// engine's 20 s stop timeout: SIGKILL from berth after ~2 s, exit 137.
fn grace_ends_an_app_ignoring_term(e: Engine, how: How, test: &str) {
    let s = Scope::new(e, test);
    let (flags, berth): (&[&str], &[&str]) = match how {
        How::Injected => (&["-e", "BERTH_GRACE=2s"], &[]),
        How::Entrypoint => (&[], &["--grace", "2s"]),
    };
    let name = s.run("c", how, flags, berth, &["/stubborn"]);
    let logs = s.e.follow(&name);
    wait_for_app_line(&logs, "ready");
    let r = s.stop(&name, &logs, 20);
    assert_eq!(r.code, 137, "{:?}", r.all());
    assert!(r.took >= Duration::from_millis(1500), "{:?}", r.took);
    assert!(r.took < Duration::from_secs(12), "{:?}", r.took);
    match how {
        How::Injected => assert!(
            r.all()
                .iter()
                .any(|l| l.starts_with("berth: app killed by SIGKILL (grace_expired)")),
            "{:?}",
            r.all()
        ),
        How::Entrypoint => {
            let lines = json_lines(&r.out);
            assert_eq!(
                lines.last().unwrap()["reason"],
                "grace_expired",
                "{:?}",
                r.out
            );
        }
    }
}

/// Exit codes pass through: a forwarded signal makes the app exit 7; a
/// missing command is berth's own 127 with one `berth:` line saying so.
fn exit_codes_pass_through(e: Engine, how: How, test: &str) {
    let s = Scope::new(e, test);
    let app = ["/sigprint", "--exit-on", "USR1", "--code", "7"];
    let name = s.run("usr1", how, &[], &[], &app);
    let logs = s.e.follow(&name);
    wait_for_app_line(&logs, "ready");
    s.e.ok(&["kill", "--signal", "USR1", &name]);
    let (out, err) = logs.finish();
    assert_eq!(s.e.ok(&["wait", &name]), "7", "{out:?} {err:?}");

    let name = s.run("missing", how, &[], &[], &["/no-such-app"]);
    assert_eq!(s.e.ok(&["wait", &name]), "127");
    let o = s.e.out(&["logs", &name]);
    let all = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    assert!(
        all.lines()
            .any(|l| l.starts_with("berth: ") && l.contains("/no-such-app")),
        "{all}"
    );
}

/// BERTH_LOG_FORMAT=json still configures the injected berth: every stdout
/// line is JSON, and the start event and `berth status` say who started it.
fn json_logs_when_asked_and_the_init_named(e: Engine, how: How, test: &str) {
    let s = Scope::new(e, test);
    let flags = ["-e", "BERTH_LOG_FORMAT=json"];
    let name = s.run("c", how, &flags, &[], &["/sigprint", "--code", "3"]);
    let logs = s.e.follow(&name);
    wait_for_app_line(&logs, "ready");
    let init = init_name(&s.e, how);
    let status_cmd = match how {
        How::Injected => s.e.init_in_container(),
        How::Entrypoint => "/berth",
    };
    let st = s.e.ok(&["exec", &name, status_cmd, "status"]);
    let st: Value = serde_json::from_str(&st).unwrap();
    assert_eq!(
        (st["pid"].as_u64(), st["init"].as_str()),
        (Some(1), Some(init))
    );
    let r = s.stop(&name, &logs, 10);
    assert_eq!(r.code, 3);
    let lines = json_lines(&r.out);
    assert_eq!(event(&lines, "start")["init"], init, "{:?}", r.out);
    assert!(lines
        .iter()
        .any(|v| v["stream"] == "stdout" && v["msg"] == "TERM"));
    assert_eq!(lines.last().unwrap()["event"], "exit");
}

/// 50 orphans exit at once: the injected berth reaps every one (the host
/// sees PID 1 with the app alone below it).
fn zombies_are_reaped(e: Engine, how: How, test: &str) {
    let s = Scope::new(e, test);
    let name = s.run("c", how, &[], &[], &["/orphans", "50", "--linger", "600"]);
    let logs = s.e.follow(&name);
    wait_for_app_line(&logs, "released 50");
    let pid1: i32 = s.inspect(&name, "{{.State.Pid}}").parse().unwrap();
    let deadline = Instant::now() + LONG;
    let (zombies, procs) = loop {
        let d = descendants_of(pid1);
        let z = d.iter().filter(|p| state_of(**p) == Some('Z')).count();
        if d.len() == 1 || Instant::now() >= deadline {
            break (z, d.len());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        (zombies, procs),
        (0, 1),
        "the app alone is left below PID 1"
    );
    s.stop(&name, &logs, 10);
}

/// Beside the injected berth, the engine's own path of it answers exec
/// probes: `status` finds PID 1, `probe` checks the app's port.
fn status_and_probe_beside_the_injected_init(e: Engine, test: &str) {
    let s = Scope::new(e, test);
    let name = s.run("c", How::Injected, &[], &[], &["/httpd", "--port", "8080"]);
    let logs = s.e.follow(&name);
    wait_for_app_line(&logs, "listening on 127.0.0.1:8080");
    let init = s.e.init_in_container();
    let st = s.e.out(&["exec", &name, init, "status", "--ready"]);
    assert!(st.status.success(), "{st:?}");
    let v: Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(v["init"], init_name(&s.e, How::Injected));
    assert_eq!(v["ready"], true);
    let p = s.e.out(&[
        "exec",
        &name,
        init,
        "probe",
        "http://127.0.0.1:8080/healthz",
    ]);
    assert!(p.status.success(), "{p:?}");
    let p =
        s.e.out(&["exec", &name, init, "probe", "tcp://127.0.0.1:8081"]);
    assert_eq!(p.status.code(), Some(1), "nothing listens on 8081: {p:?}");
    s.stop(&name, &logs, 10);
}

// ---------------------------------------------------------------------------
// Docker: `docker run --init` with dockerd --init-path = berth

/// `docker info` reads berth's `--version` into the init commit: the real
/// daemon's parser (moby daemon/info_unix.go) agrees with berth's output.
#[test]
fn docker_info_shows_berths_commit_as_the_init_version() {
    let e = Engine::docker();
    let v = Command::new(berth_bin()).arg("--version").output().unwrap();
    let v = String::from_utf8(v.stdout).unwrap();
    assert_eq!(v.lines().count(), 1, "one line: {v:?}");
    let commit = v.trim().rsplit_once(" - git.").map(|(_, c)| c.to_string());
    let commit = commit.unwrap_or_else(|| panic!("no \" - git.COMMIT\" in {v:?}"));
    assert!(!commit.is_empty());
    let info = e.ok(&["info", "--format", "{{.InitCommit.ID}} {{.InitBinary}}"]);
    eprintln!("engine-init | docker info | init version: {info}");
    assert_eq!(
        info,
        format!("{commit} {}", berth_bin().display()),
        "berth --version: {v:?}"
    );
}

#[test]
fn docker_init_stop_ends_with_the_apps_code_in_plain_logs() {
    stop_ends_with_the_apps_code(Engine::docker(), How::Injected, "d-stop");
}

#[test]
fn docker_init_grace_ends_an_app_ignoring_term() {
    grace_ends_an_app_ignoring_term(Engine::docker(), How::Injected, "d-grace");
}

#[test]
fn docker_init_exit_codes_pass_through() {
    exit_codes_pass_through(Engine::docker(), How::Injected, "d-codes");
}

#[test]
fn docker_init_json_logs_when_asked_and_named_docker() {
    json_logs_when_asked_and_the_init_named(Engine::docker(), How::Injected, "d-json");
}

#[test]
fn docker_init_reaps_zombies() {
    zombies_are_reaped(Engine::docker(), How::Injected, "d-zombies");
}

#[test]
fn docker_init_status_and_probe_via_sbin_docker_init() {
    status_and_probe_beside_the_injected_init(Engine::docker(), "d-status");
}

/// compose `init: true` on the private engine (DOCKER_HOST): berth is the
/// init, `docker-compose stop` ends with the app's code inside the timeout.
#[test]
fn docker_compose_init_true_stops_through_berth() {
    let s = Scope::new(Engine::docker(), "d-compose");
    let file = s.dir.join("compose.yaml");
    std::fs::write(
        &file,
        format!(
            "version: \"2.4\"\nservices:\n  app:\n    image: {}\n    init: true\n    \
             network_mode: none\n    command: [\"/sigprint\", \"--code\", \"42\"]\n    \
             stop_grace_period: 10s\n",
            s.image
        ),
    )
    .unwrap();
    let project = s.name("p");
    let compose = |args: &[&str]| {
        let mut c = Command::new("docker-compose");
        c.args(["-p", &project, "-f"]).arg(&file).args(args);
        c.env("DOCKER_HOST", &s.e.global[1]);
        run_bounded(c)
    };
    let ok = |o: Output| {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    ok(compose(&["up", "-d"]));
    let id = ok(compose(&["ps", "-q", "app"]));
    let logs = s.e.follow(&id);
    wait_for_app_line(&logs, "ready");
    assert_eq!(s.inspect(&id, "{{.HostConfig.Init}}"), "true");
    let t = Instant::now();
    let stopped = compose(&["stop"]);
    let took = t.elapsed();
    let (out, err) = logs.finish();
    let code = s.exit_code(&id);
    let _ = compose(&["down", "-t", "1"]);
    ok(stopped);
    eprintln!(
        "engine-init | compose init: true | exit {code} after {:.2} s",
        took.as_secs_f64()
    );
    assert_eq!(code, 42, "{out:?} {err:?}");
    assert!(took < Duration::from_secs(8), "{took:?}");
    assert_eq!(out, ["ready", "TERM"]);
    assert!(
        err.iter()
            .any(|l| l == "berth: received TERM, sent TERM to the app"),
        "{err:?}"
    );
}

// ---------------------------------------------------------------------------
// Podman: `podman run --init --init-path berth`, and berth as ENTRYPOINT

#[test]
fn podman_init_stop_ends_with_the_apps_code_in_plain_logs() {
    stop_ends_with_the_apps_code(Engine::podman(), How::Injected, "p-stop");
}

#[test]
fn podman_init_grace_ends_an_app_ignoring_term() {
    grace_ends_an_app_ignoring_term(Engine::podman(), How::Injected, "p-grace");
}

#[test]
fn podman_init_exit_codes_pass_through() {
    exit_codes_pass_through(Engine::podman(), How::Injected, "p-codes");
}

#[test]
fn podman_init_json_logs_when_asked_and_named_podman() {
    json_logs_when_asked_and_the_init_named(Engine::podman(), How::Injected, "p-json");
}

#[test]
fn podman_init_reaps_zombies() {
    zombies_are_reaped(Engine::podman(), How::Injected, "p-zombies");
}

#[test]
fn podman_init_status_and_probe_via_run_podman_init() {
    status_and_probe_beside_the_injected_init(Engine::podman(), "p-status");
}

#[test]
fn podman_entrypoint_stop_ends_with_the_apps_code_in_json() {
    stop_ends_with_the_apps_code(Engine::podman(), How::Entrypoint, "p-ep-stop");
}

#[test]
fn podman_entrypoint_grace_ends_an_app_ignoring_term() {
    grace_ends_an_app_ignoring_term(Engine::podman(), How::Entrypoint, "p-ep-grace");
}

#[test]
fn podman_entrypoint_exit_codes_pass_through() {
    exit_codes_pass_through(Engine::podman(), How::Entrypoint, "p-ep-codes");
}

#[test]
fn podman_entrypoint_json_logs_and_status() {
    json_logs_when_asked_and_the_init_named(Engine::podman(), How::Entrypoint, "p-ep-json");
}

// ---------------------------------------------------------------------------
// The persona without an engine: berth as PID 1 under the engines' names

/// berth as PID 1 of a fresh PID namespace, exec'd through a symlink named
/// `name` (argv[0] and comm become it), running `orphans 0` (prints one
/// line, exits 0); `env`: extra variables. Returns (code, stdout, stderr).
fn as_named(name: &str, env: &[(&str, &str)]) -> (i32, Vec<String>, Vec<String>) {
    let (dir, link) = berth_named(name);
    let mut c = in_pid_namespace();
    c.arg(&link).arg("--").arg(example("orphans")).arg("0");
    for (k, _) in std::env::vars() {
        if k.starts_with("BERTH_") {
            c.env_remove(k);
        }
    }
    c.envs(env.iter().copied());
    let o = run_bounded(c);
    let _ = std::fs::remove_dir_all(&dir);
    let lines = |b: &[u8]| {
        String::from_utf8_lossy(b)
            .lines()
            .map(str::to_string)
            .collect()
    };
    (
        o.status.code().unwrap_or(-1),
        lines(&o.stdout),
        lines(&o.stderr),
    )
}

/// A fresh directory holding a symlink `name` to the berth under test.
fn berth_named(name: &str) -> (PathBuf, PathBuf) {
    // One directory per call: tests run in parallel in one process.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("berth-persona-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let link = dir.join(name);
    std::os::unix::fs::symlink(berth_bin(), &link).unwrap();
    (dir, link)
}

/// Named docker-init or podman-init (stdout a pipe, as under an engine),
/// berth leaves the app's lines alone and says nothing about root; named
/// anything else, the same run is JSON with the root warning.
#[test]
fn persona_engine_names_default_to_plain_logs_without_the_root_warning() {
    for name in ["docker-init", "podman-init"] {
        let (code, out, err) = as_named(name, &[]);
        assert_eq!(code, 0, "{name}: {err:?}");
        assert_eq!(out, ["released 0"], "{name}: the app's line as it wrote it");
        assert!(
            !err.iter().any(|l| l.contains("runs as root")),
            "{name}: {err:?}"
        );
        assert!(
            err.iter().any(|l| l.starts_with("berth: app exited")),
            "{name}: {err:?}"
        );
    }
    let (code, out, _) = as_named("berth", &[]);
    assert_eq!(code, 0);
    let lines = json_lines(&out);
    assert_eq!(event(&lines, "start")["init"], "entrypoint");
    assert!(lines
        .iter()
        .any(|v| v["event"] == "warn" && v["msg"].as_str().unwrap_or("").contains("runs as root")));
}

/// BERTH_LOG_FORMAT still configures the persona; its start event names it.
#[test]
fn persona_engine_names_still_take_berth_variables_and_name_the_init() {
    for (name, init) in [("docker-init", "docker"), ("podman-init", "podman")] {
        let (code, out, err) = as_named(name, &[("BERTH_LOG_FORMAT", "json")]);
        assert_eq!(code, 0, "{name}: {err:?}");
        let lines = json_lines(&out);
        assert_eq!(event(&lines, "start")["init"], init, "{out:?}");
        assert_eq!(event(&lines, "start")["pid"], 1);
        assert!(!out.iter().any(|l| l.contains("runs as root")), "{out:?}");
    }
}

/// `berth status` finds a berth named docker-init that is not PID 1 (a
/// shared PID namespace, `docker run --pid container:C`): its process name
/// is the engine's, not `berth`.
#[test]
fn persona_status_finds_a_berth_named_docker_init_beside_pid_1() {
    let (dir, link) = berth_named("docker-init");
    // PID 1 is sh; the injected berth runs beside it, and the plain
    // `berth` binary asks until it answers (bounded: 200 x 50 ms).
    let script = "\"$1\" -- \"$2\" & \
                  for i in $(seq 200); do \"$3\" status && exit 0; sleep 0.05; done; exit 1";
    let mut c = in_pid_namespace();
    c.args(["sh", "-c", script, "sh"])
        .arg(&link)
        .arg(example("stubborn"))
        .arg(berth_bin());
    let o = run_bounded(c);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let line = String::from_utf8_lossy(&o.stdout);
    // The app shares this stdout (the persona logs plain): its own lines
    // may come after the status reply.
    let reply = line.lines().rfind(|l| l.starts_with('{')).unwrap_or("");
    let v: Value = serde_json::from_str(reply).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(v["init"], "docker", "{line}");
    assert_ne!(v["pid"], 1, "{line}");
}
