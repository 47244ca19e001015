//! Health: `berth probe` as a command, supervised `--health` with Docker's
//! semantics, `--on-unhealthy exit`, `berth status` and `--ready` across
//! starting / healthy / unhealthy / draining, and peer-credential refusal.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::util::{
    berth_bin, descendant_named, example, first_line, free_port, http_get, in_pid_namespace,
    sh_in_pid_namespace, Berth, Guarded, Running, SpawnGuarded,
};

/// `berth probe ARGS`: exit code, stderr, wall time.
pub(crate) fn probe(args: &[&str]) -> (i32, String, Duration) {
    let t = Instant::now();
    let out = Command::new(berth_bin())
        .arg("probe")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        t.elapsed(),
    )
}

/// httpd on a free port, outside berth (for the probe command).
struct Httpd {
    /// Held for its Drop: the server is killed with this.
    _process: Guarded,
    port: u16,
}
impl Httpd {
    fn start() -> Httpd {
        let port = free_port();
        let mut c = Command::new(example("httpd"))
            .args(["--port", &port.to_string()])
            .stdout(std::process::Stdio::piped())
            .spawn_guarded()
            .unwrap();
        let line = first_line(c.stdout.take().unwrap());
        assert!(line.starts_with("listening"), "{line}");
        Httpd { _process: c, port }
    }
    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

#[test]
fn probe_command_healthy_unhealthy_and_reasons() {
    let h = Httpd::start();
    assert_eq!(probe(&[&h.url("/healthz")]).0, 0);
    assert_eq!(probe(&[&format!("tcp://127.0.0.1:{}", h.port)]).0, 0);
    assert_eq!(http_get(h.port, "/healthz/fail"), 200);
    let (code, err, _) = probe(&[&h.url("/healthz")]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with("berth: ") && err.contains("status 503"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1);
    assert_eq!(probe(&["--expect-status", "503", &h.url("/healthz")]).0, 0);
    let closed = free_port();
    let (code, err, _) = probe(&[&format!("http://127.0.0.1:{closed}/")]);
    assert_eq!(code, 1);
    assert!(err.contains("connection refused"), "{err}");
}

#[test]
fn probe_command_usage_errors_are_2() {
    for args in [
        vec!["https://127.0.0.1/"],
        vec!["ftp://x/"],
        vec!["--timeout", "soon", "http://127.0.0.1/"],
        vec!["--bogus", "http://127.0.0.1/"],
        vec![],
        vec!["--header", "Bad\r\nHeader: x", "http://127.0.0.1/"],
    ] {
        let (code, err, _) = probe(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    assert!(probe(&["https://127.0.0.1/"]).1.contains("TLS"));
}

#[test]
fn probe_of_a_name_not_in_hosts_says_no_dns() {
    let (code, err, _) = probe(&["http://no-such-name.invalid:80/"]);
    assert_eq!(code, 1);
    assert!(err.contains("DNS"), "{err}");
}

#[test]
fn probe_never_hangs_past_its_timeout() {
    // Accepts and never answers.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let _keep = std::thread::spawn(move || {
        let conns: Vec<_> = l.incoming().take(1).collect();
        std::thread::sleep(Duration::from_secs(5));
        drop(conns);
    });
    let (code, err, took) = probe(&["--timeout", "500ms", &format!("http://127.0.0.1:{port}/")]);
    assert_eq!(code, 1);
    assert!(err.contains("timeout after"), "{err}");
    assert!(took < Duration::from_secs(3), "{took:?}");
}

/// httpd under berth with supervised health on a fresh port.
fn supervised(extra: &[&str]) -> (Running, u16) {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/healthz");
    let r = Berth::new()
        .args([
            "--health",
            &url,
            "--health-interval",
            "200ms",
            "--health-retries",
            "2",
            "--grace",
            "2s",
        ])
        .args(extra.iter().copied())
        .app("httpd", &["--port", &port.to_string()])
        .spawn();
    r.wait_for("listening on");
    (r, port)
}

fn health_event(r: &Running, state: &str) -> String {
    r.stdout.wait_for(state, |l| {
        l.contains("\"event\":\"health\"") && l.contains(&format!("\"state\":\"{state}\""))
    })
}

fn status(r: &Running, ready: bool) -> (i32, serde_json::Value) {
    let bin = berth_bin().display().to_string();
    let mut args = vec![bin.as_str(), "status"];
    if ready {
        args.push("--ready");
    }
    let out = r.exec_in(&args);
    let code = out.status.code().unwrap_or(-1);
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {:?} {:?}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (code, v)
}

#[test]
fn supervised_health_goes_healthy_then_unhealthy_and_back() {
    let (r, port) = supervised(&[]);
    health_event(&r, "healthy");
    let (code, v) = status(&r, true);
    assert_eq!(
        (code, v["health"].as_str(), v["ready"].as_bool()),
        (0, Some("healthy"), Some(true))
    );
    assert_eq!(v["pid"], 1);
    http_get(port, "/healthz/fail");
    let ev = health_event(&r, "unhealthy");
    assert!(ev.contains("status 503"), "{ev}");
    assert_eq!(status(&r, false).0, 1);
    assert_eq!(status(&r, true).0, 1);
    http_get(port, "/healthz/ok");
    r.stdout.wait_for_nth("healthy again", 2, |l| {
        l.contains("\"event\":\"health\"") && l.contains("\"state\":\"healthy\"")
    });
    r.signal(libc::SIGTERM);
    let d = r.wait();
    assert_eq!(d.code, 0);
}

#[test]
fn on_unhealthy_exit_stops_the_app_and_exits_1() {
    let (r, port) = supervised(&["--on-unhealthy", "exit"]);
    health_event(&r, "healthy");
    http_get(port, "/healthz/fail");
    let d = r.wait();
    assert_eq!(d.code, 1);
    let e = d.event("exit");
    assert_eq!(e["reason"], "unhealthy");
    assert_eq!(e["code"], 1);
}

#[test]
fn start_period_failures_do_not_count_and_status_is_starting() {
    // Nothing listens on this port during the start period.
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/healthz");
    let r = Berth::new()
        .args([
            "--health",
            &url,
            "--health-interval",
            "200ms",
            "--health-retries",
            "1",
            "--health-start-period",
            "30s",
        ])
        .app("sigprint", &[])
        .spawn();
    r.wait_for("\"msg\":\"ready\"");
    std::thread::sleep(Duration::from_millis(800)); // several failing probes
    let (code, v) = status(&r, false);
    assert_eq!((code, v["health"].as_str()), (0, Some("starting")));
    assert_eq!(status(&r, true).0, 1, "starting is not ready");
    assert!(!r
        .stdout
        .snapshot()
        .iter()
        .any(|l| l.contains("\"state\":\"unhealthy\"")));
    r.signal(libc::SIGTERM);
    assert_eq!(r.wait().code, 0);
}

#[test]
fn draining_is_not_ready_and_still_serving() {
    let port = free_port();
    let r = Berth::new()
        .args(["--drain", "3s", "--grace", "2s"])
        .app("httpd", &["--port", &port.to_string()])
        .spawn();
    r.wait_for("listening on");
    let (code, v) = status(&r, true);
    assert_eq!(
        (code, v["health"].as_str(), v["ready"].as_bool()),
        (0, Some("none"), Some(true))
    );
    let t = Instant::now();
    r.signal(libc::SIGTERM);
    r.stdout.wait_for("drain note", |l| l.contains("draining"));
    let (code, v) = status(&r, true);
    assert_eq!((code, v["draining"].as_bool()), (1, Some(true)));
    assert_eq!(status(&r, false).0, 0, "draining is still live");
    assert_eq!(
        http_get(port, "/healthz"),
        200,
        "still serving while draining"
    );
    let d = r.wait();
    assert!(
        t.elapsed() >= Duration::from_millis(2900),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(d.code, 0);
}

#[test]
fn status_refuses_other_users_and_answers_the_apps_uid() {
    let r = Berth::new()
        .args(["--user", "1000:1000", "--log-format=plain"])
        .app("sigprint", &[])
        .spawn();
    r.wait_for("ready");
    let bin = berth_bin().display().to_string();
    let out = r.exec_in(&[
        "setpriv",
        "--reuid=4242",
        "--regid=4242",
        "--clear-groups",
        &bin,
        "status",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("permission denied"));
    let out = r.exec_in(&[
        "setpriv",
        "--reuid=1000",
        "--regid=1000",
        "--clear-groups",
        &bin,
        "status",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    r.signal(libc::SIGTERM);
    r.wait();
}

#[test]
fn status_without_a_berth_is_2() {
    let out = in_pid_namespace()
        .arg(berth_bin())
        .arg("status")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("berth: status: no berth"));
}

#[test]
fn status_listen_serves_livez_and_readyz_across_start_healthy_and_draining() {
    let app_port = free_port();
    let status_port = free_port();
    let r = Berth::new()
        .args([
            "--status-listen",
            &format!("127.0.0.1:{status_port}"),
            "--health",
            &format!("http://127.0.0.1:{app_port}/healthz"),
            "--health-interval",
            "30s",
            "--health-start-period",
            "30s",
            "--health-start-interval",
            "200ms",
            "--drain",
            "3s",
            "--grace",
            "2s",
        ])
        .cmd(
            "sh",
            &[
                "-c",
                &format!(
                    "sleep 0.6; exec {} --port {app_port}",
                    example("httpd").display()
                ),
            ],
        )
        .spawn();
    // Before the app listens: alive, not ready (starting).
    r.stdout
        .wait_for("start", |l| l.contains("\"event\":\"start\""));
    assert_eq!(http_get(status_port, "/livez"), 200);
    assert_eq!(http_get(status_port, "/readyz"), 503);
    // The start interval (200 ms), not the 30 s interval, finds it healthy.
    health_event(&r, "healthy");
    assert_eq!(http_get(status_port, "/readyz"), 200);
    assert_eq!(http_get(status_port, "/nope"), 404);
    r.signal(libc::SIGTERM);
    r.stdout.wait_for("drain note", |l| l.contains("draining"));
    assert_eq!(http_get(status_port, "/readyz"), 503);
    assert_eq!(http_get(status_port, "/livez"), 200);
    assert_eq!(r.wait().code, 0);
}

#[test]
fn status_listen_silent_client_cannot_stall_berth() {
    let status_port = free_port();
    let r = Berth::new()
        .args(["--status-listen", &format!(":{status_port}")])
        .app("sigprint", &[])
        .spawn();
    r.wait_for("\"msg\":\"ready\"");
    // Connects and sends nothing; another floods a request head with no end.
    let _silent = std::net::TcpStream::connect(("127.0.0.1", status_port)).unwrap();
    let mut flood = std::net::TcpStream::connect(("127.0.0.1", status_port)).unwrap();
    use std::io::Write;
    let _ = flood.write_all(&[b'A'; 4096]);
    // Signals still flow while those clients hang on.
    r.signal(libc::SIGUSR1);
    r.wait_for("\"msg\":\"USR1\"");
    // berth answers while they hang on (tests/http.rs times it).
    assert_eq!(http_get(status_port, "/livez"), 200);
    r.signal(libc::SIGTERM);
    assert_eq!(r.wait().code, 0);
}

#[test]
fn status_listen_on_a_taken_port_is_125() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let d = Berth::new()
        .args(["--status-listen", &format!("127.0.0.1:{port}")])
        .app("sigprint", &[])
        .run();
    assert_eq!(d.code, 125);
    assert!(
        d.stderr_text().contains("--status-listen"),
        "{}",
        d.stderr_text()
    );
}

/// Two containers of one pod: two PID namespaces, one network namespace
/// (abstract sockets are per network namespace). Each `berth status` must
/// reach its own berth, named by its PID namespace's inode.
#[test]
fn two_berths_sharing_a_network_namespace_answer_for_themselves() {
    let draining = Berth::new()
        .args(["--drain", "30s", "--grace", "1s"])
        .app("sigprint", &[])
        .spawn();
    let serving = Berth::new().app("sigprint", &[]).spawn();
    draining.wait_for("\"msg\":\"ready\"");
    serving.wait_for("\"msg\":\"ready\"");
    draining.signal(libc::SIGTERM);
    draining
        .stdout
        .wait_for("drain note", |l| l.contains("draining"));
    let (code_a, a) = status(&draining, true);
    let (code_b, b) = status(&serving, true);
    assert_eq!((code_a, a["draining"].as_bool()), (1, Some(true)));
    assert_eq!((code_b, b["draining"].as_bool()), (0, Some(false)));
    assert_eq!((a["pid"].as_u64(), b["pid"].as_u64()), (Some(1), Some(1)));
    serving.signal(libc::SIGTERM);
    assert_eq!(serving.wait().code, 0);
    draining.signal(libc::SIGTERM); // a second TERM skips the drain
    assert_eq!(draining.wait().code, 0);
}

/// Under `docker run --init` (or a shared process namespace) berth is not
/// PID 1: `berth status` finds the one berth of the namespace.
#[test]
fn status_finds_berth_when_it_is_not_pid1() {
    let bin = berth_bin().display().to_string();
    let mut outer = sh_in_pid_namespace("\"$0\" --log-format=plain -- \"$1\" & wait")
        .arg(&bin)
        .arg(example("sigprint"))
        .stdout(std::process::Stdio::piped())
        .spawn_guarded()
        .unwrap();
    assert_eq!(first_line(outer.stdout.as_mut().unwrap()).trim(), "ready");
    let berth = descendant_named(outer.id() as i32, "berth");
    let out = Command::new("nsenter")
        .args(["-t", &berth.to_string(), "-p", "-m", "--"])
        .args([&bin, "status"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&out.stderr));
    });
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(v["pid"], 2, "berth is the child of the namespace's PID 1");
    let _ = outer.kill();
    let _ = outer.wait();
}
