//! HTTP against hostile peers: the status port (`--status-listen`) while
//! clients stall (slowloris, half-open sockets, a scanner), and `berth
//! probe` / `--health` against servers that answer half, trickle, never end
//! their head, send too much or speak something else. The peers are
//! written here, each a TcpListener thread.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::util::{berth_bin, free_port, Berth, SpawnGuarded};

/// One GET on loopback, bounded by 3 s: (status or 0, how long it took).
fn timed_get(port: u16, path: &str) -> (u16, Duration) {
    let t = Instant::now();
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nUser-Agent: kube-probe/1.31\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, t.elapsed())
}

fn open_fds(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

fn context_switches(pid: i32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .filter(|l| l.contains("ctxt_switches"))
        .filter_map(|l| l.split_whitespace().last()?.parse::<u64>().ok())
        .sum()
}

#[test]
fn stalled_clients_never_delay_a_probe() {
    let port = free_port();
    let r = Berth::new()
        .args(["--status-listen", &format!("127.0.0.1:{port}")])
        .app("sigprint", &[])
        .spawn();
    r.wait_for("\"msg\":\"ready\"");
    let pid = r.berth_pid();
    let idle_fds = open_fds(pid);

    // 40 connections that stall, more than berth serves at once: a third
    // send nothing (a scanner, half-open), a third half a request head (a
    // slowloris), a third two bytes.
    let mut stalled = Vec::new();
    for i in 0..40 {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        match i % 3 {
            0 => {}
            1 => s.write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\n").unwrap(),
            _ => s.write_all(b"GE").unwrap(),
        }
        stalled.push((s, Instant::now()));
    }
    // kubelet's probe (1 s timeout) behind them is answered at once, again
    // and again, by GET and by curl.
    for _ in 0..5 {
        let (code, took) = timed_get(port, "/readyz");
        assert_eq!(code, 200, "took {took:?}");
        assert!(took < Duration::from_millis(500), "took {took:?}");
    }
    if let Ok(out) = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "1",
        ])
        .arg(format!("http://127.0.0.1:{port}/livez"))
        .output()
    {
        assert_eq!(String::from_utf8_lossy(&out.stdout), "200", "{out:?}");
    }
    // Every connection has been accepted by now (the probes came after
    // them): berth holds at most 32 of them.
    // A new connection is accepted before the oldest gives its fd back,
    // so a count taken while berth is between the two sees one more: the
    // fewest of a few counts is the set berth keeps.
    let fds = (0..5)
        .map(|_| {
            std::thread::sleep(Duration::from_millis(20));
            open_fds(pid)
        })
        .min()
        .unwrap();
    assert!(
        fds <= idle_fds + 32,
        "{fds} fds open with 40 stalled clients (idle: {idle_fds})"
    );

    // Each stalled client is dropped within 2 s (the oldest at once, to
    // make room): it reads the end of the connection.
    for (i, (mut s, opened)) in stalled.into_iter().enumerate() {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let got = s.read(&mut [0u8; 64]);
        let ended = match &got {
            Ok(0) => true,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
            Ok(_) => false,
        };
        assert!(ended, "stalled client {i}: {got:?}");
        let held = opened.elapsed();
        assert!(held < Duration::from_secs(4), "client {i} held {held:?}");
    }
    // No client left, no deadline: berth sleeps.
    thread::sleep(Duration::from_millis(100));
    let before = context_switches(pid);
    thread::sleep(Duration::from_millis(700));
    assert_eq!(
        context_switches(pid),
        before,
        "berth woke up with no client"
    );
    assert_eq!(open_fds(pid), idle_fds);

    r.signal(libc::SIGTERM);
    assert_eq!(r.wait().code, 0);
}

/// A server for one probe at a time (up to `conns` connections, each
/// handled in turn): it reads the request head, then `behave`s; then it
/// waits (at most 10 s) for the client to go away.
fn hostile(conns: usize, behave: fn(&mut TcpStream)) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    thread::spawn(move || {
        for s in l.incoming().take(conns) {
            let Ok(mut s) = s else { continue };
            let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && s.read(&mut byte).is_ok_and(|n| n == 1) {
                head.push(byte[0]);
            }
            behave(&mut s);
            let _ = s.read(&mut [0u8; 1]);
        }
    });
    port
}

/// `berth probe --timeout 1s` of port: (exit code, stderr, how long).
fn probe(port: u16) -> (i32, String, Duration) {
    let t = Instant::now();
    let out = Command::new(berth_bin())
        .args(["probe", "--timeout", "1s"])
        .arg(format!("http://127.0.0.1:{port}/healthz"))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        t.elapsed(),
    )
}

/// Unhealthy (1) within the 1 s timeout plus a margin, with one line
/// on stderr that holds `why`.
fn assert_unhealthy(port: u16, why: &str) {
    let (code, err, took) = probe(port);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(why), "{err}");
    assert!(err.starts_with("berth: probe "), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(took < Duration::from_millis(1700), "took {took:?}");
}

#[test]
fn a_status_line_then_silence_is_unhealthy() {
    let port = hostile(1, |s| {
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\n");
    });
    assert_unhealthy(port, "timeout after 1s (waiting for the response head)");
}

#[test]
fn a_head_trickling_past_the_timeout_is_unhealthy() {
    let port = hostile(1, |s| {
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\n");
        for &b in b"X-Slow: one byte at a time".iter().cycle().take(100) {
            if s.write_all(&[b]).is_err() {
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
    });
    assert_unhealthy(port, "timeout after 1s");
}

#[test]
fn an_endless_head_is_unhealthy() {
    let port = hostile(1, |s| {
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\n");
        // Until the probe hangs up (or 64 MiB: the test must end).
        for _ in 0..(1 << 20) {
            if s.write_all(b"X-More: and more and more and more and more\r\n")
                .is_err()
            {
                return;
            }
        }
    });
    assert_unhealthy(port, "response head over 64 KiB");
}

#[test]
fn an_oversized_head_is_unhealthy() {
    let port = hostile(1, |s| {
        let mut head = b"HTTP/1.1 200 OK\r\n".to_vec();
        while head.len() < 100 * 1024 {
            head.extend(b"Set-Cookie: a=0123456789abcdef0123456789abcdef\r\n");
        }
        head.extend(b"Content-Length: 0\r\n\r\n");
        let _ = s.write_all(&head);
    });
    assert_unhealthy(port, "response head over 64 KiB");
}

#[test]
fn garbage_instead_of_http_is_unhealthy() {
    let port = hostile(1, |s| {
        let _ = s.write_all(b"SSH-2.0-OpenSSH_9.6\r\n");
    });
    assert_unhealthy(port, "malformed status line: \"SSH-2.0-OpenSSH_9.6\"");
}

#[test]
fn a_whole_head_in_pieces_is_healthy_without_its_body() {
    let port = hostile(1, |s| {
        for piece in [
            &b"HTTP/1.1 2"[..],
            b"00 OK\r\nContent-Type: text/plain\r\n",
            b"Content-Length: 1000000\r\n",
            b"\r\n",
            b"the body is never read",
        ] {
            let _ = s.write_all(piece);
            thread::sleep(Duration::from_millis(50));
        }
    });
    let (code, err, _) = probe(port);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn python_http_server_is_healthy() {
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("berth-http-server-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("healthz"), "ok\n").unwrap();
    let Ok(mut server) = Command::new("python3")
        .args([
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            &port.to_string(),
        ])
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn_guarded()
    else {
        println!("note: no python3, skipping the http.server probe");
        return;
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
    }
    let (code, err, _) = probe(port);
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn supervised_health_calls_half_an_answer_unhealthy() {
    // Every probe gets a status line and nothing more.
    let port = hostile(20, |s| {
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\n");
    });
    let r = Berth::new()
        .args([
            "--health",
            &format!("http://127.0.0.1:{port}/healthz"),
            "--health-interval",
            "200ms",
            "--health-timeout",
            "300ms",
            "--health-retries",
            "1",
        ])
        .app("sigprint", &[])
        .spawn();
    let line = r.stdout.wait_for("unhealthy", |l| {
        l.contains("\"event\":\"health\"") && l.contains("unhealthy")
    });
    assert!(line.contains("waiting for the response head"), "{line}");
    r.signal(libc::SIGTERM);
    r.wait();
}
