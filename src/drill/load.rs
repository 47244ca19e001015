//! The drill's load: HTTP/1.1 keep-alive GETs at a fixed rate over at most N
//! connections to one loopback address, on non-blocking sockets that the
//! caller's one `poll(2)` loop drives (see mod.rs for why no threads), and
//! the bounded response reader (its head parsed by crate::http, as the
//! probe's). It counts how every request ended; judging
//! the counts is report.rs's job.
//!
//! Every request has a deadline (`--timeout`), requests are only issued
//! while sending is on, and sending is bounded by the caller's schedule, so
//! nothing here can run on without end.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags};
use nix::sys::socket::{self, sockopt, AddressFamily, SockFlag, SockType, SockaddrStorage};

use crate::http::ResponseHeads;

/// How a request failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The connection was refused: nothing listens any more.
    Refused,
    /// Reset, or closed before the whole response arrived.
    Reset,
    /// No whole response within `--timeout`.
    Timeout,
    /// The app answered 500..=599.
    Status5xx,
    /// Anything else (4xx, a malformed response, a local error).
    Other,
}

impl Failure {
    pub const ALL: [Failure; 5] = [
        Failure::Refused,
        Failure::Reset,
        Failure::Timeout,
        Failure::Status5xx,
        Failure::Other,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Failure::Refused => "refused",
            Failure::Reset => "reset",
            Failure::Timeout => "timeout",
            Failure::Status5xx => "5xx",
            Failure::Other => "other",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// How the requests ended, split at the moment berth got SIGTERM.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    /// Requests issued (a connection attempt or a request written).
    pub sent: u64,
    pub ok: u64,
    /// Failures by kind (`Failure as usize`) that ended before the stop [0]
    /// and at or after it [1].
    pub failed: [[u64; 5]; 2],
    /// Requests that came due while every connection was busy and were
    /// still waiting when sending ended.
    pub unsent: u64,
    /// When the first failure after the stop happened, counted from the stop.
    pub first_failure_after_stop: Option<Duration>,
    /// One reason of an `Other` failure, for the report.
    pub other_example: Option<String>,
}

impl Stats {
    pub fn failed_total(&self) -> u64 {
        self.failed.iter().flatten().sum()
    }
    pub fn failed_in(&self, after_stop: bool) -> u64 {
        self.failed[usize::from(after_stop)].iter().sum()
    }
    pub fn count(&self, after_stop: bool, kind: Failure) -> u64 {
        self.failed[usize::from(after_stop)][kind.index()]
    }
    pub fn kind_total(&self, kind: Failure) -> u64 {
        self.count(false, kind) + self.count(true, kind)
    }
}

/// One request on its way.
struct Request {
    deadline: Instant,
    /// Bytes of the request written so far.
    written: usize,
    reader: Reader,
}

enum State {
    /// No socket.
    Closed,
    /// A non-blocking connect in progress, with the request that waits for it.
    Connecting(Request),
    /// Connected, kept alive, nothing asked.
    Idle,
    Busy(Request),
}

struct Conn {
    stream: Option<TcpStream>,
    state: State,
}

/// The load generator; see the module comment.
pub struct Load {
    addr: SocketAddr,
    request: Vec<u8>,
    timeout: Duration,
    period: Duration,
    next_due: Instant,
    /// Requests due that wait for a free connection.
    backlog: u64,
    sending: bool,
    stop: Option<Instant>,
    conns: Vec<Conn>,
    pub stats: Stats,
}

impl Load {
    /// `rps` and `connections` are at least 1 (the caller checks).
    pub fn new(
        addr: SocketAddr,
        request: Vec<u8>,
        rps: u32,
        connections: usize,
        timeout: Duration,
        now: Instant,
    ) -> Load {
        Load {
            addr,
            request,
            timeout,
            period: Duration::from_secs(1) / rps.max(1),
            next_due: now,
            backlog: 0,
            sending: true,
            stop: None,
            conns: (0..connections.max(1))
                .map(|_| Conn {
                    stream: None,
                    state: State::Closed,
                })
                .collect(),
            stats: Stats::default(),
        }
    }

    /// Berth got SIGTERM at `at`: failures from now on count as after the stop.
    pub fn stopped(&mut self, at: Instant) {
        self.stop = Some(at);
    }

    pub fn sending(&self) -> bool {
        self.sending
    }

    /// The load balancer has noticed: no new requests; those waiting for a
    /// connection are dropped (counted as unsent), idle connections closed.
    pub fn stop_sending(&mut self) {
        self.sending = false;
        self.stats.unsent += self.backlog;
        self.backlog = 0;
        for c in &mut self.conns {
            if matches!(c.state, State::Idle) {
                c.close();
            }
        }
    }

    /// Whether any request is still on its way.
    pub fn in_flight(&self) -> bool {
        self.conns
            .iter()
            .any(|c| matches!(c.state, State::Connecting(_) | State::Busy(_)))
    }

    /// The next moment `tick` has something to do.
    pub fn deadline(&self) -> Option<Instant> {
        let due = self.sending.then_some(self.next_due);
        self.conns
            .iter()
            .filter_map(|c| match &c.state {
                State::Connecting(r) | State::Busy(r) => Some(r.deadline),
                _ => None,
            })
            .chain(due)
            .min()
    }

    /// Adds a PollFd per open connection to `fds`; returns which connection
    /// each added entry belongs to.
    pub fn poll_fds<'a>(&'a self, fds: &mut Vec<PollFd<'a>>) -> Vec<usize> {
        let mut owners = Vec::new();
        for (i, c) in self.conns.iter().enumerate() {
            let Some(s) = &c.stream else { continue };
            let events = match &c.state {
                State::Closed => continue,
                State::Connecting(_) => PollFlags::POLLOUT,
                State::Idle => PollFlags::POLLIN,
                State::Busy(r) if r.written < self.request.len() => {
                    PollFlags::POLLIN | PollFlags::POLLOUT
                }
                State::Busy(_) => PollFlags::POLLIN,
            };
            fds.push(PollFd::new(s.as_fd(), events));
            owners.push(i);
        }
        owners
    }

    /// Handles what poll reported for the entries `poll_fds` added.
    pub fn on_events(&mut self, owners: &[usize], revents: &[PollFlags], now: Instant) {
        for (&i, &ev) in owners.iter().zip(revents) {
            if !ev.is_empty() {
                self.on_ready(i, ev, now);
            }
        }
    }

    /// Issues the requests that came due, times out the late ones, and hands
    /// waiting requests to free connections.
    pub fn tick(&mut self, now: Instant) {
        if self.sending {
            // Bounded: one turn per period elapsed since the last tick.
            while self.next_due <= now {
                self.backlog += 1;
                self.next_due += self.period;
            }
        }
        for i in 0..self.conns.len() {
            let late = match &self.conns[i].state {
                State::Connecting(r) | State::Busy(r) => r.deadline <= now,
                _ => false,
            };
            if late {
                self.end(i, Err((Failure::Timeout, String::new())), now);
            }
        }
        while self.backlog > 0 {
            let slot = self
                .conns
                .iter()
                .position(|c| matches!(c.state, State::Idle))
                .or_else(|| {
                    self.conns
                        .iter()
                        .position(|c| matches!(c.state, State::Closed))
                });
            let Some(i) = slot else { break };
            self.backlog -= 1;
            self.stats.sent += 1;
            let req = Request {
                deadline: now + self.timeout,
                written: 0,
                reader: Reader::default(),
            };
            if matches!(self.conns[i].state, State::Idle) {
                self.conns[i].state = State::Busy(req);
                self.write(i, now);
            } else {
                self.connect(i, req, now);
            }
        }
    }

    /// Closes every connection (the drill is done with the app).
    pub fn close_all(&mut self) {
        for c in &mut self.conns {
            c.close();
        }
    }

    fn connect(&mut self, i: usize, req: Request, now: Instant) {
        match start_connect(self.addr) {
            Ok((fd, done)) => {
                self.conns[i].stream = Some(TcpStream::from(fd));
                if done {
                    self.conns[i].state = State::Busy(req);
                    self.write(i, now);
                } else {
                    self.conns[i].state = State::Connecting(req);
                }
            }
            Err(e) => {
                self.conns[i].state = State::Busy(req);
                self.end(i, Err(classify_errno(e)), now);
            }
        }
    }

    fn on_ready(&mut self, i: usize, ev: PollFlags, now: Instant) {
        match &self.conns[i].state {
            State::Closed => {}
            State::Connecting(_) => {
                let err = match &self.conns[i].stream {
                    Some(s) => socket::getsockopt(s, sockopt::SocketError)
                        .map(Errno::from_raw)
                        .unwrap_or_else(|e| e),
                    None => Errno::EBADF,
                };
                let State::Connecting(req) =
                    std::mem::replace(&mut self.conns[i].state, State::Idle)
                else {
                    return;
                };
                self.conns[i].state = State::Busy(req);
                match err {
                    Errno::UnknownErrno => self.write(i, now),
                    e => self.end(i, Err(classify_errno(e)), now),
                }
            }
            State::Idle => {
                // The server closed a kept-alive connection we were not
                // using (or sent something unasked): not a failure, the
                // next request opens a fresh one.
                let mut buf = [0u8; 512];
                let keep = match self.conns[i].stream.as_mut().map(|s| s.read(&mut buf)) {
                    Some(Err(e)) => e.kind() == io::ErrorKind::WouldBlock,
                    _ => false,
                };
                if !keep {
                    self.conns[i].close();
                }
            }
            State::Busy(_) => {
                if ev.contains(PollFlags::POLLOUT) {
                    self.write(i, now);
                }
                if ev.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
                    self.read(i, now);
                }
            }
        }
    }

    fn write(&mut self, i: usize, now: Instant) {
        let Conn {
            stream: Some(stream),
            state: State::Busy(req),
        } = &mut self.conns[i]
        else {
            return;
        };
        // Bounded: each turn writes at least one byte or leaves.
        while let Some(rest) = self.request.get(req.written..).filter(|r| !r.is_empty()) {
            match stream.write(rest) {
                Ok(0) => return self.end(i, Err((Failure::Reset, String::new())), now),
                Ok(n) => req.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.end(i, Err(classify_io(&e)), now),
            }
        }
    }

    fn read(&mut self, i: usize, now: Instant) {
        let mut buf = [0u8; 16 * 1024];
        // Bounded: a response ends, the connection ends, or the socket is
        // drained (WouldBlock); each turn consumes bytes.
        loop {
            let Conn {
                stream: Some(stream),
                state: State::Busy(req),
            } = &mut self.conns[i]
            else {
                return;
            };
            let step = match stream.read(&mut buf) {
                Ok(0) => req.reader.eof(),
                Ok(n) => req.reader.feed(buf.get(..n).unwrap_or_default()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return self.end(i, Err(classify_io(&e)), now),
            };
            match step {
                Ok(Step::More) => {}
                Ok(Step::Done { status, close }) => {
                    let result = match status {
                        200..=399 => Ok(close),
                        500..=599 => Err((Failure::Status5xx, format!("status {status}"))),
                        _ => Err((Failure::Other, format!("status {status}"))),
                    };
                    return self.end(i, result, now);
                }
                Err(why) => return self.end(i, Err(why), now),
            }
        }
    }

    /// The request on connection `i` ended: Ok(close) answered, or a failure.
    fn end(&mut self, i: usize, result: Result<bool, (Failure, String)>, now: Instant) {
        let after_stop = self.stop.is_some_and(|s| now >= s);
        match result {
            Ok(close) => {
                self.stats.ok += 1;
                if close || !self.sending {
                    self.conns[i].close();
                } else {
                    self.conns[i].state = State::Idle;
                }
            }
            Err((kind, why)) => {
                self.stats.failed[usize::from(after_stop)][kind.index()] += 1;
                if let (true, Some(stop), None) =
                    (after_stop, self.stop, self.stats.first_failure_after_stop)
                {
                    self.stats.first_failure_after_stop = Some(now.saturating_duration_since(stop));
                }
                if kind == Failure::Other && self.stats.other_example.is_none() {
                    self.stats.other_example = Some(why);
                }
                self.conns[i].close();
            }
        }
    }
}

impl Conn {
    fn close(&mut self) {
        self.stream = None;
        self.state = State::Closed;
    }
}

/// A non-blocking, close-on-exec socket connecting to `addr`; true when the
/// connect finished at once (loopback often does).
fn start_connect(addr: SocketAddr) -> Result<(OwnedFd, bool), Errno> {
    let family = match addr {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    let fd = socket::socket(
        family,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    match socket::connect(fd.as_raw_fd(), &SockaddrStorage::from(addr)) {
        Ok(()) => Ok((fd, true)),
        Err(Errno::EINPROGRESS) => Ok((fd, false)),
        Err(e) => Err(e),
    }
}

fn classify_errno(e: Errno) -> (Failure, String) {
    match e {
        Errno::ECONNREFUSED => (Failure::Refused, String::new()),
        Errno::ECONNRESET | Errno::EPIPE | Errno::ECONNABORTED => (Failure::Reset, String::new()),
        Errno::ETIMEDOUT => (Failure::Timeout, String::new()),
        e => (Failure::Other, e.desc().to_ascii_lowercase()),
    }
}

fn classify_io(e: &io::Error) -> (Failure, String) {
    match e.raw_os_error() {
        Some(n) => classify_errno(Errno::from_raw(n)),
        None => (Failure::Other, e.to_string()),
    }
}

/// What the reader needs next.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    More,
    /// The whole response arrived; `close`: the connection cannot be reused.
    Done {
        status: u16,
        close: bool,
    },
}

/// Longest chunk-size or trailer line (the head's bound is crate::http's).
const LINE_MAX: usize = 4096;

#[derive(Debug, Default)]
enum Body {
    /// Still reading the head.
    #[default]
    Head,
    Length(u64),
    /// Reading a chunk-size line.
    ChunkSize,
    ChunkData(u64),
    /// The CRLF after a chunk's data.
    ChunkEnd,
    Trailer,
    UntilEof,
    Done,
}

/// An HTTP/1.1 response read incrementally: the head through
/// crate::http (httparse; interim 1xx skipped, 64 KiB at most), the body
/// counted and dropped: Content-Length, chunked, or close-delimited.
#[derive(Debug, Default)]
pub struct Reader {
    heads: ResponseHeads,
    line: Vec<u8>,
    body: Body,
    status: u16,
    close: bool,
}

type ReadError = (Failure, String);

impl Reader {
    pub fn feed(&mut self, mut data: &[u8]) -> Result<Step, ReadError> {
        // Bounded: every turn consumes at least one byte or returns.
        while !data.is_empty() {
            match &mut self.body {
                Body::Done => break,
                Body::UntilEof => data = &[],
                Body::Head => {
                    let Some((head, used)) =
                        self.heads.feed(data).map_err(|e| (Failure::Other, e))?
                    else {
                        break; // every byte went into the head
                    };
                    data = data.get(used..).unwrap_or_default();
                    self.head_done(head)?;
                }
                Body::Length(n) => {
                    if skip_body_bytes(n, &mut data) {
                        self.body = Body::Done;
                    }
                }
                Body::ChunkSize => {
                    let (line, rest) = take_line(&mut self.line, data, LINE_MAX)?;
                    data = rest;
                    if line {
                        let size = chunk_size(&self.line)?;
                        self.line.clear();
                        self.body = if size == 0 {
                            Body::Trailer
                        } else {
                            Body::ChunkData(size)
                        };
                    }
                }
                Body::ChunkData(n) => {
                    if skip_body_bytes(n, &mut data) {
                        self.body = Body::ChunkEnd;
                    }
                }
                Body::ChunkEnd => {
                    let (line, rest) = take_line(&mut self.line, data, LINE_MAX)?;
                    data = rest;
                    if line {
                        if !matches!(self.line.as_slice(), b"\n" | b"\r\n") {
                            return Err(bad("no CRLF after a chunk"));
                        }
                        self.line.clear();
                        self.body = Body::ChunkSize;
                    }
                }
                Body::Trailer => {
                    let (line, rest) = take_line(&mut self.line, data, LINE_MAX)?;
                    data = rest;
                    if line {
                        let end = matches!(self.line.as_slice(), b"\n" | b"\r\n");
                        self.line.clear();
                        if end {
                            self.body = Body::Done;
                        }
                    }
                }
            }
        }
        Ok(self.step())
    }

    /// The connection closed: the response is whole only if its body was
    /// delimited by the close.
    pub fn eof(&mut self) -> Result<Step, ReadError> {
        match self.body {
            Body::UntilEof => {
                self.body = Body::Done;
                self.close = true;
                Ok(self.step())
            }
            Body::Done => Ok(self.step()),
            _ => Err((Failure::Reset, String::new())),
        }
    }

    fn step(&self) -> Step {
        match self.body {
            Body::Done => Step::Done {
                status: self.status,
                close: self.close,
            },
            _ => Step::More,
        }
    }

    /// The final head is whole: what body follows (RFC 9112 6.3).
    fn head_done(&mut self, head: crate::http::Head) -> Result<(), ReadError> {
        self.status = head.status;
        self.close = head.close;
        self.body = match (head.status, head.chunked, head.length) {
            (101 | 204 | 304, _, _) => Body::Done,
            (_, true, _) => Body::ChunkSize,
            (_, false, Some(Err(()))) => return Err(bad("bad Content-Length")),
            (_, false, Some(Ok(0))) => Body::Done,
            (_, false, Some(Ok(n))) => Body::Length(n),
            (_, false, None) => {
                self.close = true;
                Body::UntilEof
            }
        };
        Ok(())
    }
}

fn bad(why: &str) -> ReadError {
    (Failure::Other, format!("malformed response: {why}"))
}

/// Consumes up to `left` bytes of `data` (body bytes nobody reads);
/// returns whether all of them have now come.
fn skip_body_bytes(left: &mut u64, data: &mut &[u8]) -> bool {
    let take = (*left).min(data.len() as u64);
    *left -= take;
    *data = data.get(take as usize..).unwrap_or_default();
    *left == 0
}

/// Appends `data` up to and including the first `\n` to `line` (at most
/// `max` bytes in all); returns whether a `\n` was reached and the rest.
fn take_line<'d>(
    line: &mut Vec<u8>,
    data: &'d [u8],
    max: usize,
) -> Result<(bool, &'d [u8]), ReadError> {
    let (part, rest, done) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (
            data.get(..=i).unwrap_or_default(),
            data.get(i + 1..).unwrap_or_default(),
            true,
        ),
        None => (data, &[][..], false),
    };
    if line.len() + part.len() > max {
        return Err(bad("line or head too long"));
    }
    line.extend_from_slice(part);
    Ok((done, rest))
}

/// `1a;ext=1\r\n` → 26, by httparse.
fn chunk_size(line: &[u8]) -> Result<u64, ReadError> {
    match httparse::parse_chunk_size(line) {
        Ok(httparse::Status::Complete((_, size))) => Ok(size),
        _ => Err(bad("bad chunk size")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(parts: &[&[u8]]) -> Result<Step, ReadError> {
        let mut r = Reader::default();
        let mut last = Ok(Step::More);
        for p in parts {
            last = r.feed(p);
            if !matches!(last, Ok(Step::More)) {
                return last;
            }
        }
        last
    }

    #[test]
    fn content_length_response_in_pieces() {
        let whole = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        for cut in 1..whole.len() {
            let (a, b) = whole.split_at(cut);
            assert_eq!(
                read_all(&[a, b]),
                Ok(Step::Done {
                    status: 200,
                    close: false
                }),
                "cut at {cut}"
            );
        }
        let mut r = Reader::default();
        assert_eq!(r.feed(&whole[..whole.len() - 1]), Ok(Step::More));
    }

    #[test]
    fn chunked_body_with_extension_and_trailer() {
        let whole = b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3;x=y\r\nabc\r\n0\r\nX-T: 1\r\n\r\n";
        for cut in 1..whole.len() {
            let (a, b) = whole.split_at(cut);
            assert_eq!(
                read_all(&[a, b]),
                Ok(Step::Done {
                    status: 503,
                    close: true
                }),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn interim_responses_are_skipped_and_bodyless_statuses_end_at_the_head() {
        assert_eq!(
            read_all(&[b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"]),
            Ok(Step::Done {
                status: 204,
                close: false
            })
        );
    }

    #[test]
    fn close_delimited_body_ends_at_eof_and_short_bodies_are_resets() {
        let mut r = Reader::default();
        assert_eq!(r.feed(b"HTTP/1.0 200 OK\r\n\r\nsome"), Ok(Step::More));
        assert_eq!(
            r.eof(),
            Ok(Step::Done {
                status: 200,
                close: true
            })
        );
        let mut r = Reader::default();
        assert_eq!(
            r.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nab"),
            Ok(Step::More)
        );
        assert_eq!(r.eof().unwrap_err().0, Failure::Reset);
        assert_eq!(Reader::default().eof().unwrap_err().0, Failure::Reset);
    }

    #[test]
    fn garbage_and_oversized_heads_are_other_failures() {
        assert_eq!(
            read_all(&[b"SSH-2.0-x\r\n\r\n"]).unwrap_err().0,
            Failure::Other
        );
        let big = vec![b'a'; crate::http::RESPONSE_HEAD_MAX + 1];
        assert_eq!(
            read_all(&[b"HTTP/1.1 200 OK\r\nX: ", &big]).unwrap_err().0,
            Failure::Other
        );
        assert_eq!(
            read_all(&[b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"])
                .unwrap_err()
                .0,
            Failure::Other
        );
    }

    #[test]
    fn errnos_map_to_kinds() {
        assert_eq!(classify_errno(Errno::ECONNREFUSED).0, Failure::Refused);
        assert_eq!(classify_errno(Errno::ECONNRESET).0, Failure::Reset);
        assert_eq!(classify_errno(Errno::EPIPE).0, Failure::Reset);
        assert_eq!(classify_errno(Errno::EMFILE).0, Failure::Other);
    }
}
