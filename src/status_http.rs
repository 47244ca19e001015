//! `--status-listen ADDR:PORT`: berth's own state over HTTP, so Kubernetes
//! `httpGet` probes need no exec (kubernetes#82440: exec probes cost a third
//! of a CPU at 100 pods). `GET /livez` is 200 unless the app is unhealthy or
//! gone; `GET /readyz` is 200 when ready, 503 while starting, unhealthy or
//! draining. The body is the `berth status` JSON.
//!
//! It lives in the event loop like the status socket, and no client can
//! delay another's answer (SPEC): up to [`MAX_CLIENTS`] connections are
//! served at once, each in epoll on its own; the listener is always
//! watched, and a new connection beyond the set replaces the oldest one.
//! A request head is read into a fixed 1 KiB buffer, parsed by crate::http
//! (httparse) and answered as soon as it is whole; a client that has not
//! sent it within [`CLIENT_TIMEOUT`] is dropped. So a slowloris, half-open
//! sockets or a scanner hold at most 32 fds and 32 KiB, and a kubelet probe
//! that arrives behind them is answered at once. No client, no deadline:
//! an idle berth still never wakes.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::time::{Duration, Instant};

use nix::sys::epoll::{Epoll, EpollEvent, EpollFlags};

use crate::http::{parse_request, Request};
use crate::status::Snapshot;

/// A request must arrive whole within this time.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);
/// Connections served at once. Enough that a probe behind a burst of
/// stalled ones still gets in (each new one replaces the oldest), few
/// enough that they cost little: one fd and 1 KiB each.
pub const MAX_CLIENTS: usize = 32;
/// The longest request head berth reads; probes send about 100 bytes.
pub const MAX_REQUEST: usize = 1024;
/// Connections taken per wake-up, so a flood cannot starve signals.
const ACCEPT_BATCH: usize = 64;

/// The response to a request head: (status code, reason, body).
pub fn route(method: &str, target: &str, snap: &Snapshot) -> (u16, &'static str, String) {
    if method != "GET" && method != "HEAD" {
        return (405, "Method Not Allowed", String::new());
    }
    // Query strings do not change the answer (`/readyz?verbose`).
    let path = target.split('?').next().unwrap_or_default();
    let ok = match path {
        "/livez" => snap.live(),
        "/readyz" => snap.ready(),
        _ => return (404, "Not Found", String::new()),
    };
    if ok {
        (200, "OK", snap.to_json())
    } else {
        (503, "Service Unavailable", snap.to_json())
    }
}

/// The whole response (`Connection: close`) to the request head read so
/// far, or None while it is incomplete and there is room for more.
pub fn response(head: &[u8], snap: &Snapshot) -> Option<Vec<u8>> {
    let (code, reason, body, with_body) = match parse_request(head) {
        Request::Complete { method, path } => {
            let (code, reason, body) = route(method, path, snap);
            (code, reason, body, method != "HEAD")
        }
        Request::Partial if head.len() < MAX_REQUEST => return None,
        Request::Partial => (431, "Request Header Fields Too Large", String::new(), true),
        Request::Invalid => (400, "Bad Request", String::new(), true),
    };
    let mut out = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if with_body {
        out.extend_from_slice(body.as_bytes());
    }
    Some(out)
}

struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
    deadline: Instant,
}

impl Client {
    /// Reads what has arrived and answers once the request head is whole;
    /// true when the client is finished with (answered, gone, or broken).
    fn progress(&mut self, snap: &Snapshot) -> bool {
        let mut chunk = [0u8; MAX_REQUEST];
        let mut eof = false;
        // Bounded: at most MAX_REQUEST bytes are taken in all.
        while self.buf.len() < MAX_REQUEST {
            let room = MAX_REQUEST - self.buf.len();
            match self.stream.read(chunk.get_mut(..room).unwrap_or_default()) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => self
                    .buf
                    .extend_from_slice(chunk.get(..n).unwrap_or_default()),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => return true,
            }
        }
        match response(&self.buf, snap) {
            Some(r) => {
                // A fresh socket's send buffer holds this short reply, so a
                // non-blocking write does not come back short.
                let _ = self.stream.write_all(&r);
                true
            }
            None => eof,
        }
    }

    /// Leaves epoll explicitly: a forked probe child may hold a copy of the
    /// fd, which would keep the registration (and its wake-ups) alive. The
    /// shutdown sends the FIN now, whoever else holds the socket.
    fn close(self, epoll: &Epoll) {
        let _ = epoll.delete(self.stream.as_fd());
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

pub struct HttpStatus {
    listener: TcpListener,
    /// Oldest first.
    clients: Vec<Client>,
    /// A client's epoll token is this plus its fd.
    token_base: u64,
}

impl HttpStatus {
    pub fn bind(addr: SocketAddr, token_base: u64) -> std::io::Result<HttpStatus> {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        Ok(HttpStatus {
            listener,
            clients: Vec::new(),
            token_base,
        })
    }

    pub fn listener_fd(&self) -> RawFd {
        self.listener.as_raw_fd()
    }

    /// The oldest client's deadline; None without clients (no wake-up).
    pub fn deadline(&self) -> Option<Instant> {
        self.clients.iter().map(|c| c.deadline).min()
    }

    /// The listener is readable: take the waiting connections, answer those
    /// whose request is already there, keep the others (dropping the oldest
    /// when the set is full). Returns false when berth is out of fds with
    /// no client to give one back: the caller stops watching the listener
    /// for a while, or the level-triggered epoll would spin.
    pub fn accept(&mut self, epoll: &Epoll, snap: &Snapshot, now: Instant) -> bool {
        for _ in 0..ACCEPT_BATCH {
            match self.listener.accept() {
                Ok((stream, _)) => self.take(epoll, stream, snap, now),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
                Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
                    if self.clients.is_empty() {
                        return false;
                    }
                    // The oldest client gives its fd to the newest.
                    self.clients.remove(0).close(epoll);
                }
                // ECONNABORTED and the like: that connection is gone; the
                // next may be fine (the batch bounds the turns).
                Err(_) => {}
            }
        }
        true
    }

    fn take(&mut self, epoll: &Epoll, stream: TcpStream, snap: &Snapshot, now: Instant) {
        if stream.set_nonblocking(true).is_err() {
            return;
        }
        let mut c = Client {
            stream,
            buf: Vec::new(),
            deadline: now + CLIENT_TIMEOUT,
        };
        // A probe's request is usually there by the time it is accepted.
        if c.progress(snap) {
            let _ = c.stream.shutdown(Shutdown::Both);
            return;
        }
        if self.clients.len() >= MAX_CLIENTS {
            self.clients.remove(0).close(epoll);
        }
        let fd = c.stream.as_raw_fd();
        let ev = EpollEvent::new(EpollFlags::EPOLLIN, self.token_base + fd as u64);
        if epoll.add(c.stream.as_fd(), ev).is_ok() {
            self.clients.push(c);
        }
    }

    /// Client `fd` is readable (from its token): read, answer when whole.
    pub fn on_readable(&mut self, epoll: &Epoll, fd: RawFd, snap: &Snapshot) {
        // A stale event for an fd already closed (or reused) finds no
        // client, or a client with nothing to read: both harmless.
        let Some(i) = self.clients.iter().position(|c| c.stream.as_raw_fd() == fd) else {
            return;
        };
        if self.clients.get_mut(i).is_some_and(|c| c.progress(snap)) {
            self.clients.remove(i).close(epoll);
        }
    }

    /// Drops the clients that missed their deadline.
    pub fn on_time(&mut self, epoll: &Epoll, now: Instant) {
        // Oldest first, all with the same timeout: the late ones lead.
        while self.clients.first().is_some_and(|c| now >= c.deadline) {
            self.clients.remove(0).close(epoll);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap() -> Snapshot {
        Snapshot::example()
    }

    /// The status code berth answers `head` with; 0 while it waits for more.
    fn code(head: &str, s: &Snapshot) -> u16 {
        response(head.as_bytes(), s)
            .map(|r| String::from_utf8_lossy(&r[9..12]).parse().unwrap())
            .unwrap_or(0)
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
    fn other_paths_methods_garbage_and_oversized_heads() {
        let s = snap();
        assert_eq!(code("GET / HTTP/1.1\r\n\r\n", &s), 404);
        assert_eq!(code("POST /livez HTTP/1.1\r\n\r\n", &s), 405);
        assert_eq!(code("\u{0}\u{ff}garbage\r\n\r\n", &s), 400);
        assert_eq!(code("GET /livez HTTP/1.1\r\nBad Header\r\n\r\n", &s), 400);
        // Incomplete: wait for more, until the 1 KiB buffer is full.
        assert_eq!(code("", &s), 0);
        assert_eq!(code("GET /livez HTTP/1.1\r\nHost: x\r\n", &s), 0);
        let long = format!("GET /livez HTTP/1.1\r\nX: {}", "a".repeat(MAX_REQUEST));
        assert_eq!(code(&long[..MAX_REQUEST], &s), 431);
    }

    /// A status port on loopback with its epoll, and a way to connect.
    fn port() -> (HttpStatus, Epoll, u16) {
        let h = HttpStatus::bind("127.0.0.1:0".parse().unwrap(), 1 << 32).unwrap();
        let epoll = Epoll::new(nix::sys::epoll::EpollCreateFlags::EPOLL_CLOEXEC).unwrap();
        let port = h.listener.local_addr().unwrap().port();
        (h, epoll, port)
    }

    /// Takes the connections made so far. Loopback completes a connect and
    /// delivers a write before the call returns; the pause is only a margin.
    fn accept_all(h: &mut HttpStatus, epoll: &Epoll, now: Instant) {
        std::thread::sleep(Duration::from_millis(50));
        assert!(h.accept(epoll, &snap(), now));
    }

    /// berth has closed the connection (a FIN: it sent nothing unread).
    fn ended(s: &mut TcpStream) -> bool {
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        matches!(s.read(&mut [0u8; 16]), Ok(0))
    }

    #[test]
    fn a_full_set_drops_the_oldest_client_and_deadlines_drop_the_rest() {
        let (mut h, epoll, port) = port();
        let now = Instant::now();
        let mut stalled: Vec<TcpStream> = (0..MAX_CLIENTS + 3)
            .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
            .collect();
        accept_all(&mut h, &epoll, now);
        assert_eq!(h.clients.len(), MAX_CLIENTS);
        assert_eq!(h.deadline(), Some(now + CLIENT_TIMEOUT));
        for s in &mut stalled[..3] {
            assert!(ended(s), "the oldest are dropped first");
        }
        h.on_time(&epoll, now + CLIENT_TIMEOUT);
        assert!(h.clients.is_empty());
        assert_eq!(h.deadline(), None, "no client, no wake-up");
        assert!(ended(&mut stalled[MAX_CLIENTS + 2]));
    }

    #[test]
    fn a_request_already_there_is_answered_on_accept_and_a_late_one_on_read() {
        let (mut h, epoll, port) = port();
        let mut early = TcpStream::connect(("127.0.0.1", port)).unwrap();
        early.write_all(b"GET /livez HTTP/1.1\r\n\r\n").unwrap();
        let mut late = TcpStream::connect(("127.0.0.1", port)).unwrap();
        late.write_all(b"GET /readyz HTTP/1.1\r\n").unwrap();
        accept_all(&mut h, &epoll, Instant::now());
        assert_eq!(h.clients.len(), 1, "only the incomplete one waits");
        let mut answer = String::new();
        early.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");

        late.write_all(b"Host: x\r\n\r\n").unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let fd = h.clients[0].stream.as_raw_fd();
        h.on_readable(&epoll, fd, &snap());
        assert!(h.clients.is_empty());
        let mut answer = String::new();
        late.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    }

    #[test]
    fn response_has_the_status_json_and_head_has_no_body() {
        let r =
            String::from_utf8(response(b"GET /readyz HTTP/1.1\r\n\r\n", &snap()).unwrap()).unwrap();
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        let body = r.split("\r\n\r\n").nth(1).unwrap();
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["app_pid"], 7);
        assert!(r.contains(&format!("Content-Length: {}\r\n", body.len())));
        let h =
            String::from_utf8(response(b"HEAD /livez HTTP/1.1\r\n\r\n", &snap()).unwrap()).unwrap();
        assert!(h.ends_with("\r\n\r\n"));
    }
}
