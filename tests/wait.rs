//! Waiting for dependencies before the app starts (SPEC "Before the app
//! starts" step 4, `berth probe --wait`): berth as PID 1 waits for real
//! peers (a TCP listener, an HTTP server, grpcio's health servicer), stays
//! a full PID 1 meanwhile (signals, reaping, `berth status`,
//! `--status-listen`), and starts the app only once every one answered.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use crate::grpc::GrpcServer;
use crate::util::{free_port, http_get, Berth, LONG};

/// A TCP port nothing listens on, kept so for the test: a bound socket
/// that never listens refuses connections, and no other test can take
/// the port meanwhile.
fn closed_port() -> (never_listening::Bound, u16) {
    never_listening::Bound::new()
}

/// A bound, never listening TCP socket, with std and libc alone.
mod never_listening {
    use std::os::fd::{FromRawFd, OwnedFd};

    pub struct Bound(#[allow(dead_code)] OwnedFd);

    impl Bound {
        pub fn new() -> (Bound, u16) {
            // SAFETY: socket/bind/getsockname on a socket this function
            // owns, with a sockaddr_in it owns and its true length.
            unsafe {
                let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
                assert!(fd >= 0);
                let owned = OwnedFd::from_raw_fd(fd);
                let mut sa: libc::sockaddr_in = std::mem::zeroed();
                sa.sin_family = libc::AF_INET as libc::sa_family_t;
                sa.sin_addr.s_addr = u32::from(std::net::Ipv4Addr::LOCALHOST).to_be();
                let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
                assert_eq!(
                    libc::bind(fd, &sa as *const _ as *const libc::sockaddr, len),
                    0
                );
                let mut got_len = len;
                libc::getsockname(fd, &mut sa as *mut _ as *mut libc::sockaddr, &mut got_len);
                (Bound(owned), u16::from_be(sa.sin_port))
            }
        }
    }
}

/// An HTTP server answering every request `200`, in the background.
fn http_ok() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        }
    });
    port
}

#[test]
fn the_app_starts_once_tcp_http_and_grpc_dependencies_all_answer() {
    let (_tcp, tcp_port) = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let p = l.local_addr().unwrap().port();
        (l, p)
    };
    let http_port = http_ok();
    let grpc_port = free_port();
    let r = Berth::new()
        .args(["--log-format=json", "--wait-timeout=30s"])
        .arg(format!("--wait-for=tcp://127.0.0.1:{tcp_port}"))
        .arg(format!("--wait-for=http://127.0.0.1:{http_port}/healthz"))
        .arg(format!("--wait-for=grpc://127.0.0.1:{grpc_port}"))
        .cmd("echo", &["app started"])
        .spawn();
    // The gRPC server comes late: until then berth waits for it alone.
    r.stdout.wait_for("grpc failing", |l| {
        l.contains("\"event\":\"wait\"") && l.contains("grpc://") && l.contains("\"failing\"")
    });
    let _grpc = GrpcServer::start(&["--port", &grpc_port.to_string()]);
    let d = r.wait();
    assert_eq!(d.code, 0, "{:?} {:?}", d.stdout, d.stderr);
    let lines = d.json();
    let healthy: Vec<&str> = lines
        .iter()
        .filter(|v| v["event"] == "wait" && v["state"] == "healthy")
        .filter_map(|v| v["target"].as_str())
        .collect();
    assert_eq!(healthy.len(), 3, "each target healthy once: {healthy:?}");
    let last_healthy = lines
        .iter()
        .rposition(|v| v["event"] == "wait" && v["state"] == "healthy")
        .unwrap();
    assert_eq!(
        lines[last_healthy]["target"],
        format!("grpc://127.0.0.1:{grpc_port}")
    );
    let start = lines.iter().position(|v| v["event"] == "start").unwrap();
    let app = lines
        .iter()
        .position(|v| v["msg"] == "app started")
        .unwrap();
    assert!(last_healthy < start && start < app, "{:?}", d.stdout);
    // The start event says what berth waited for (SPEC: each job reported).
    assert_eq!(
        lines[start]["waited_for"],
        serde_json::json!([
            format!("tcp://127.0.0.1:{tcp_port}"),
            format!("http://127.0.0.1:{http_port}/healthz"),
            format!("grpc://127.0.0.1:{grpc_port}"),
        ])
    );
}

#[test]
fn a_dependency_that_never_comes_is_exit_124_with_one_line_per_target_and_no_app() {
    let (_a, a) = closed_port();
    let (_b, b) = closed_port();
    let d = Berth::new()
        .args(["--log-format=plain", "--wait-timeout=1s"])
        .arg(format!("--wait-for=tcp://127.0.0.1:{a}"))
        .arg(format!("--wait-for=http://127.0.0.1:{b}/ready"))
        .cmd("echo", &["app started"])
        .run();
    assert_eq!(d.code, 124, "{:?}", d.stderr);
    assert!(d.stdout.is_empty(), "the app never ran: {:?}", d.stdout);
    let gave_up: Vec<&String> = d.stderr.iter().filter(|l| l.contains("gave up")).collect();
    assert_eq!(
        gave_up,
        [
            &format!("berth: wait: gave up on tcp://127.0.0.1:{a} after 1.0s: connection refused"),
            &format!(
                "berth: wait: gave up on http://127.0.0.1:{b}/ready after 1.0s: connection refused"
            ),
        ],
        "{:?}",
        d.stderr
    );
    assert!(d.elapsed < Duration::from_secs(5), "{:?}", d.elapsed);
}

/// While berth waits it is PID 1 in full: `berth status` says waiting
/// (alive, not ready), `/livez` 200 and `/readyz` 503, orphans are reaped,
/// and SIGTERM ends the wait at once: 143, the app never started.
#[test]
fn while_waiting_berth_answers_status_reaps_and_sigterm_ends_the_wait_with_143() {
    let (_a, a) = closed_port();
    let status_port = free_port();
    let r = Berth::new()
        .args(["--log-format=json", "--wait-timeout=60s"])
        .arg(format!("--wait-for=tcp://127.0.0.1:{a}"))
        .arg(format!("--status-listen=127.0.0.1:{status_port}"))
        .cmd("echo", &["app started"])
        .spawn();
    r.stdout
        .wait_for("failing", |l| l.contains("\"state\":\"failing\""));

    let out = r.exec_in(&[crate::util::berth_bin().to_str().unwrap(), "status"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let v: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(v["state"], "waiting", "{text}");
    assert_eq!(v["ready"], false, "{text}");
    assert_eq!(v["app_pid"], serde_json::Value::Null, "{text}");
    assert_eq!(out.status.code(), Some(0), "alive: {text}");
    let ready = r.exec_in(&[
        crate::util::berth_bin().to_str().unwrap(),
        "status",
        "--ready",
    ]);
    assert_eq!(ready.status.code(), Some(1), "not ready while waiting");
    assert_eq!(http_get(status_port, "/livez"), 200);
    assert_eq!(http_get(status_port, "/readyz"), 503);

    // An orphan that exits inside the namespace is berth's to reap.
    let orphan = r.exec_in(&["sh", "-c", "sleep 0.1 & exit 0"]);
    assert!(orphan.status.success());
    let berth = r.berth_pid();
    let deadline = Instant::now() + LONG;
    loop {
        let children = crate::util::children_of(berth);
        let zombies: Vec<i32> = children
            .iter()
            .copied()
            .filter(|&p| crate::util::state_of(p) == Some('Z'))
            .collect();
        let sleeping = children.iter().any(|&p| {
            std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "sleep")
        });
        if zombies.is_empty() && !sleeping {
            break;
        }
        assert!(Instant::now() < deadline, "not reaped: {zombies:?}");
        std::thread::sleep(Duration::from_millis(20));
    }

    let signalled = Instant::now();
    r.signal(libc::SIGTERM);
    let d = r.wait();
    assert_eq!(d.code, 143, "{:?} {:?}", d.stdout, d.stderr);
    assert!(
        signalled.elapsed() < Duration::from_secs(2),
        "at once: {:?}",
        signalled.elapsed()
    );
    let lines = d.json();
    assert!(!lines
        .iter()
        .any(|v| v["msg"] == "app started" || v["event"] == "start"));
    let stopped = lines
        .iter()
        .find(|v| v["event"] == "wait" && v["state"] == "stopped")
        .expect("a stopped wait event");
    assert_eq!(stopped["reason"], "stopped by SIGTERM");
}

#[test]
fn probe_wait_retries_until_the_target_answers() {
    let port = free_port();
    let opener = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(700));
        let l = TcpListener::bind(("127.0.0.1", port)).unwrap();
        std::thread::sleep(Duration::from_secs(5));
        drop(l);
    });
    let started = Instant::now();
    let out = std::process::Command::new(crate::util::berth_bin())
        .args(["probe", "--wait", "10s", &format!("tcp://127.0.0.1:{port}")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{:?}", out);
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(650), "it waited: {took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    drop(opener);
}

#[test]
fn probe_wait_gives_up_after_its_duration_with_the_last_reason() {
    let (_hold, port) = closed_port();
    let started = Instant::now();
    let out = std::process::Command::new(crate::util::berth_bin())
        .args([
            "probe",
            "--wait",
            "800ms",
            &format!("tcp://127.0.0.1:{port}"),
        ])
        .output()
        .unwrap();
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!("berth: probe tcp://127.0.0.1:{port}: connection refused\n")
    );
    assert!(
        took >= Duration::from_millis(650) && took < Duration::from_secs(3),
        "{took:?}"
    );
    // Bad values are usage errors (2), as every probe option.
    let out = std::process::Command::new(crate::util::berth_bin())
        .args(["probe", "--wait", "0s", "tcp://127.0.0.1:1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}
