//! `--status-listen ADDR:PORT`: berth's own state over HTTP, so Kubernetes
//! `httpGet` probes need no exec (kubernetes#82440: exec probes cost a third
//! of a CPU at 100 pods). `GET /livez` is 200 unless the app is unhealthy or
//! gone; `GET /readyz` is 200 when ready, 503 while starting, unhealthy or
//! draining. The body is the `berth status` JSON.
//!
//! It lives in the event loop like the status socket: one connection at a
//! time (the kernel's backlog queues the rest), non-blocking reads into a
//! fixed 1 KiB buffer, and a deadline after which a slow or silent client
//! is dropped, so no client can stall signals or logs.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use crate::status::Snapshot;

/// A request must arrive whole within this time.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest request head berth reads; probes send about 100 bytes.
const MAX_REQUEST: usize = 1024;

/// The response to a request head: (status code, reason, body).
pub fn route(head: &[u8], snap: &Snapshot) -> (u16, &'static str, String) {
    let line_end = head
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(head.len());
    let mut parts = head[..line_end].split(|&b| b == b' ');
    let (method, target) = (parts.next().unwrap_or(b""), parts.next().unwrap_or(b""));
    if method != b"GET" && method != b"HEAD" {
        return (405, "Method Not Allowed", String::new());
    }
    // Query strings do not change the answer (`/readyz?verbose`).
    let path = target.split(|&b| b == b'?').next().unwrap_or(b"");
    let ok = match path {
        b"/livez" => snap.running && snap.health != "unhealthy",
        b"/readyz" => snap.ready(),
        _ => return (404, "Not Found", String::new()),
    };
    if ok {
        (200, "OK", snap.to_json())
    } else {
        (503, "Service Unavailable", snap.to_json())
    }
}

/// The whole response, `Connection: close`.
pub fn response(head: &[u8], snap: &Snapshot) -> Vec<u8> {
    let (code, reason, body) = route(head, snap);
    let with_body = !head.starts_with(b"HEAD ");
    let mut out = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if with_body {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

/// The request head is complete (blank line), or the buffer is full.
fn head_complete(buf: &[u8]) -> bool {
    buf.len() >= MAX_REQUEST
        || buf.windows(4).any(|w| w == b"\r\n\r\n")
        || buf.windows(2).any(|w| w == b"\n\n")
}

struct Client {
    stream: TcpStream,
    buf: [u8; MAX_REQUEST],
    len: usize,
    deadline: Instant,
}

pub struct HttpStatus {
    listener: TcpListener,
    client: Option<Client>,
}

/// What the loop must change in its epoll set after a call.
#[derive(Debug, PartialEq, Eq)]
pub enum Interest {
    /// Poll the listener (no client in progress).
    Listener,
    /// Poll the client's socket (fd) instead of the listener.
    Client(RawFd),
}

impl HttpStatus {
    pub fn bind(addr: SocketAddr) -> std::io::Result<HttpStatus> {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        Ok(HttpStatus {
            listener,
            client: None,
        })
    }

    pub fn listener_fd(&self) -> RawFd {
        self.listener.as_raw_fd()
    }

    /// When the client in progress must be dropped; None without one.
    pub fn deadline(&self) -> Option<Instant> {
        self.client.as_ref().map(|c| c.deadline)
    }

    /// The listener is readable: take one client.
    pub fn accept(&mut self, now: Instant) -> Interest {
        if self.client.is_some() {
            return self.interest();
        }
        if let Ok((stream, _)) = self.listener.accept() {
            if stream.set_nonblocking(true).is_ok() {
                self.client = Some(Client {
                    stream,
                    buf: [0; MAX_REQUEST],
                    len: 0,
                    deadline: now + CLIENT_TIMEOUT,
                });
            }
        }
        self.interest()
    }

    /// The client is readable: read what is there; answer once the request
    /// head is complete; close on EOF or error.
    pub fn on_readable(&mut self, snap: &Snapshot) -> Interest {
        let Some(c) = self.client.as_mut() else {
            return Interest::Listener;
        };
        let done = loop {
            if c.len == c.buf.len() {
                break true;
            }
            match c.stream.read(&mut c.buf[c.len..]) {
                Ok(0) => break true,
                Ok(n) => c.len += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    break head_complete(&c.buf[..c.len])
                }
                Err(_) => break true,
            }
        };
        if done {
            if let Some(mut c) = self.client.take() {
                if head_complete(&c.buf[..c.len]) {
                    // A fresh socket's send buffer holds this short reply,
                    // so a non-blocking write does not come back short.
                    let _ = c.stream.write_all(&response(&c.buf[..c.len], snap));
                }
            }
        }
        self.interest()
    }

    /// Drops a client that missed its deadline.
    pub fn on_time(&mut self, now: Instant) -> Interest {
        if self.deadline().is_some_and(|d| now >= d) {
            self.client = None;
        }
        self.interest()
    }

    pub fn interest(&self) -> Interest {
        match &self.client {
            Some(c) => Interest::Client(c.stream.as_raw_fd()),
            None => Interest::Listener,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap() -> Snapshot {
        Snapshot::example()
    }

    fn code(head: &str, s: &Snapshot) -> u16 {
        route(head.as_bytes(), s).0
    }

    #[test]
    fn livez_and_readyz_follow_the_state() {
        let mut s = snap();
        assert_eq!(code("GET /livez HTTP/1.1\r\n\r\n", &s), 200);
        assert_eq!(code("GET /readyz HTTP/1.1\r\n\r\n", &s), 200);
        s.draining = true;
        assert_eq!(code("GET /livez HTTP/1.1\r\n\r\n", &s), 200);
        assert_eq!(code("GET /readyz HTTP/1.1\r\n\r\n", &s), 503);
        s.draining = false;
        s.health = "starting";
        assert_eq!(code("GET /livez HTTP/1.1\r\n\r\n", &s), 200);
        assert_eq!(code("GET /readyz?x=1 HTTP/1.1\r\n\r\n", &s), 503);
        s.health = "unhealthy";
        assert_eq!(code("GET /livez HTTP/1.1\r\n\r\n", &s), 503);
        s.health = "none";
        s.running = false;
        assert_eq!(code("GET /livez HTTP/1.1\r\n\r\n", &s), 503);
    }

    #[test]
    fn other_paths_and_methods() {
        let s = snap();
        assert_eq!(code("GET / HTTP/1.1\r\n\r\n", &s), 404);
        assert_eq!(code("POST /livez HTTP/1.1\r\n\r\n", &s), 405);
        assert_eq!(code("", &s), 405);
        assert_eq!(code("\u{0}\u{ff}garbage", &s), 405);
    }

    #[test]
    fn response_has_the_status_json_and_head_has_no_body() {
        let r = String::from_utf8(response(b"GET /readyz HTTP/1.1\r\n\r\n", &snap())).unwrap();
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        let body = r.split("\r\n\r\n").nth(1).unwrap();
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["app_pid"], 7);
        assert!(r.contains(&format!("Content-Length: {}\r\n", body.len())));
        let h = String::from_utf8(response(b"HEAD /livez HTTP/1.1\r\n\r\n", &snap())).unwrap();
        assert!(h.ends_with("\r\n\r\n"));
    }

    #[test]
    fn head_completion() {
        assert!(!head_complete(b"GET /livez HTTP/1.1\r\nHost: x\r\n"));
        assert!(head_complete(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert!(head_complete(b"GET /livez\n\n"));
        assert!(head_complete(&[b'a'; MAX_REQUEST]));
    }
}
