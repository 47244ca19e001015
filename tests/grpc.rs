//! The `grpc://` probe against a real gRPC server that nobody here wrote
//! (grpcio's health servicer, tests/grpc_health_server.py), as a command
//! and supervised (`--health grpc://…`), and against hostile peers written
//! here: each of those ends within `--timeout` with exit 1 and one line.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use crate::health::probe;
use crate::util::{berth_bin, first_line, free_port, Berth, Guarded, Running, SpawnGuarded};

/// The grpcio server script.
fn server_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/grpc_health_server.py")
}

/// Fails loudly when grpcio is missing (scripts/test installs it).
fn require_grpcio() {
    let ok = Command::new("python3")
        .args(["-c", "import grpc, grpc_health.v1.health"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "python3 with grpcio is needed: python3 -m pip install grpcio grpcio-health-checking (scripts/test does)"
    );
}

/// grpc_health_server.py on a free port, outside berth.
pub(crate) struct GrpcServer {
    /// Held for its Drop: the server is killed with this.
    _process: Guarded,
    port: u16,
}

impl GrpcServer {
    pub(crate) fn start(args: &[&str]) -> GrpcServer {
        require_grpcio();
        let mut c = Command::new("python3")
            .arg(server_script())
            .args(args)
            .stdout(Stdio::piped())
            .spawn_guarded()
            .unwrap();
        let line = first_line(c.stdout.take().unwrap());
        let port = line
            .strip_prefix("listening on ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("grpc server said {line:?}"));
        GrpcServer { _process: c, port }
    }
    fn url(&self, service: &str) -> String {
        format!("grpc://127.0.0.1:{}{service}", self.port)
    }
}

/// Exit 1 with exactly one stderr line ending in `reason`.
fn assert_unhealthy(args: &[&str], reason: &str) -> Duration {
    let (code, err, took) = probe(args);
    assert_eq!(code, 1, "{args:?}: {err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("berth: probe grpc://") && err.trim_end().ends_with(reason),
        "{args:?}: got {err:?}, want it to end with {reason:?}"
    );
    took
}

#[test]
fn grpc_probe_of_grpcio_serving_not_serving_and_unknown_services() {
    let s = GrpcServer::start(&[]);
    for service in ["", "/", "/app.Ready"] {
        let (code, err, _) = probe(&[&s.url(service)]);
        assert_eq!((code, err.as_str()), (0, ""), "{service}");
    }
    let (code, _, _) = probe(&[&format!("grpc://localhost:{}", s.port)]);
    assert_eq!(code, 0);
    assert_unhealthy(&[&s.url("/app.Down")], "grpc: NOT_SERVING");
    assert_unhealthy(&[&s.url("/no.Such")], "grpc: service \"no.Such\" not found");
}

#[test]
fn grpc_probe_sends_header_metadata() {
    let s = GrpcServer::start(&["--require-auth", "s3cret"]);
    assert_unhealthy(
        &[&s.url("")],
        "grpc: status 16 UNAUTHENTICATED: missing or wrong authorization",
    );
    assert_unhealthy(
        &["--header", "Authorization: Bearer wrong", &s.url("")],
        "UNAUTHENTICATED: missing or wrong authorization",
    );
    let (code, err, _) = probe(&["--header", "Authorization: Bearer s3cret", &s.url("")]);
    assert_eq!((code, err.as_str()), (0, ""));
}

#[test]
fn grpc_probe_usage_errors_are_2() {
    for target in ["grpc://127.0.0.1", "grpc://h:1/a/b", "grpc://h:1?x"] {
        let (code, err, _) = probe(&[target]);
        assert_eq!(code, 2, "{target}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    // Metadata HTTP/2 forbids is the command line's fault, found before
    // any connection (the port is closed: a connect would say refused).
    let closed = format!("grpc://127.0.0.1:{}", free_port());
    for header in [
        "Connection: close",
        "TE: gzip",
        "Transfer-Encoding: chunked",
    ] {
        let (code, err, _) = probe(&["--header", header, &closed]);
        assert_eq!(code, 2, "--header {header}: {err}");
        assert!(err.contains("not allowed in HTTP/2"), "{err}");
    }
    let closed = free_port();
    assert_unhealthy(
        &[&format!("grpc://127.0.0.1:{closed}")],
        "connection refused",
    );
}

fn health_event(r: &Running, state: &str) -> String {
    r.stdout.wait_for(state, |l| {
        l.contains("\"event\":\"health\"") && l.contains(&format!("\"state\":\"{state}\""))
    })
}

fn status_code(r: &Running) -> (i32, String) {
    let bin = berth_bin().display().to_string();
    let out = r.exec_in(&[&bin, "status"]);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn supervised_grpc_health_follows_the_servers_status() {
    require_grpcio();
    let port = free_port();
    let script = server_script().display().to_string();
    let r = Berth::new()
        .args([
            "--health",
            &format!("grpc://127.0.0.1:{port}"),
            "--health-interval",
            "200ms",
            "--health-retries",
            "2",
            // grpcio takes a while to start on a loaded machine: failures
            // before its first answer must not count (Docker's start
            // period), or the "unhealthy" looked for below is that one.
            "--health-start-period",
            "60s",
            "--grace",
            "5s",
        ])
        .cmd("python3", &[&script, "--port", &port.to_string()])
        .spawn();
    r.wait_for("listening on");
    health_event(&r, "healthy");
    let (code, out) = status_code(&r);
    assert!(code == 0 && out.contains("\"health\":\"healthy\""), "{out}");

    // berth forwards USR1 to the app, which stops serving.
    r.signal(libc::SIGUSR1);
    let ev = health_event(&r, "unhealthy");
    assert!(ev.contains("grpc: NOT_SERVING"), "{ev}");
    let (code, out) = status_code(&r);
    assert!(
        code == 1 && out.contains("\"health\":\"unhealthy\""),
        "{out}"
    );

    r.signal(libc::SIGUSR2);
    r.stdout.wait_for_nth("healthy again", 2, |l| {
        l.contains("\"event\":\"health\"") && l.contains("\"state\":\"healthy\"")
    });
    r.signal(libc::SIGTERM);
    assert_eq!(r.wait().code, 0);
}

/// A one-connection peer on a free port running `handler`.
fn peer(handler: impl FnOnce(TcpStream) + Send + 'static) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    thread::spawn(move || {
        if let Ok((s, _)) = l.accept() {
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            handler(s);
        }
    });
    port
}

/// Reads what the client sent so far (the preface and the request).
fn read_some(s: &mut TcpStream) {
    let mut buf = [0u8; 4096];
    let _ = s.read(&mut buf);
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut f = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    f.push(kind);
    f.push(flags);
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

const SETTINGS: u8 = 4;
const HEADERS: u8 = 1;
const CONTINUATION: u8 = 9;
const PING: u8 = 6;

/// Runs the probe against a hostile peer with a 1 s timeout: exit 1, one
/// line ending in `reason`, well within the timeout plus a margin.
fn against(handler: impl FnOnce(TcpStream) + Send + 'static, reason: &str) {
    let port = peer(handler);
    let target = format!("grpc://127.0.0.1:{port}");
    let took = assert_unhealthy(&["--timeout", "1s", &target], reason);
    assert!(
        took < Duration::from_millis(2500),
        "{reason}: took {took:?}"
    );
}

#[test]
fn hostile_grpc_peers_end_within_the_timeout_with_one_line() {
    // An HTTP/1.1 server.
    against(
        |mut s| {
            read_some(&mut s);
            let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
            thread::sleep(Duration::from_secs(3));
        },
        "grpc: the server does not speak HTTP/2 (it answered HTTP/1)",
    );
    // One that accepts and says nothing.
    against(
        |mut s| {
            read_some(&mut s);
            thread::sleep(Duration::from_secs(3));
        },
        "timeout after 1s (waiting for the grpc answer)",
    );
    // Garbage bytes.
    against(
        |mut s| {
            read_some(&mut s);
            let _ = s.write_all(&[0xa5; 64 * 1024]);
            thread::sleep(Duration::from_secs(3));
        },
        "grpc: the server does not speak HTTP/2",
    );
    // Well-formed frames that never answer: PING after PING, fast.
    against(
        |mut s| {
            read_some(&mut s);
            let _ = s.write_all(&frame(SETTINGS, 0, 0, &[]));
            for _ in 0..10_000 {
                if s.write_all(&frame(PING, 0, 0, b"pingpong")).is_err() {
                    return;
                }
            }
            // Stay open: closing with berth's ACKs unread resets the
            // connection, and a slow berth (qemu) would see that first.
            thread::sleep(Duration::from_secs(3));
        },
        "grpc: no answer within 256 frames",
    );
    // Garbage after a good start: a frame over the 16 KiB limit.
    against(
        |mut s| {
            read_some(&mut s);
            let _ = s.write_all(&frame(SETTINGS, 0, 0, &[]));
            let _ = s.write_all(&[0x7f, 0xff, 0xff, 0x00, 0, 0, 0, 0, 1]);
            thread::sleep(Duration::from_secs(3));
        },
        "grpc: a frame of 8388607 bytes, over the 16384 allowed",
    );
    // Headers that never end: CONTINUATION, slowly, without END_HEADERS.
    against(
        |mut s| {
            read_some(&mut s);
            let _ = s.write_all(&frame(SETTINGS, 0, 0, &[]));
            let _ = s.write_all(&frame(HEADERS, 0, 1, &[0x88]));
            for _ in 0..500 {
                if s.write_all(&frame(CONTINUATION, 0, 1, &[])).is_err() {
                    return;
                }
                thread::sleep(Duration::from_millis(20));
            }
        },
        "timeout after 1s (waiting for the grpc answer)",
    );
    // ... and quickly, with big CONTINUATION frames.
    against(
        |mut s| {
            read_some(&mut s);
            let _ = s.write_all(&frame(SETTINGS, 0, 0, &[]));
            let _ = s.write_all(&frame(HEADERS, 0, 1, &[0x88]));
            for _ in 0..100 {
                if s.write_all(&frame(CONTINUATION, 0, 1, &[0x88; 16_384]))
                    .is_err()
                {
                    return;
                }
            }
        },
        "grpc: response header block larger than 16384 bytes",
    );
}
