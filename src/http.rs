//! Every HTTP/1 head berth parses goes through `httparse` (hyper's
//! zero-allocation, fuzzed parser): the responses `berth probe`, `--health`
//! and the drill read ([`ResponseHeads`]) and the requests the status port
//! reads ([`parse_request`]). This module owns the bounds and the one-line
//! reasons; the callers own their sockets and deadlines.
//!
//! httparse parses a whole buffer each time and says `Partial` until the
//! head is complete, so [`ResponseHeads`] calls it only when its verdict can
//! have changed: on the first bytes of a status line (garbage fails fast),
//! when the status line ends, and when a blank line has arrived. A server
//! that trickles a 64 KiB head one byte at a time costs one parse, not one
//! per byte.

use httparse::{Header, Status, EMPTY_HEADER};

use crate::escape;

/// The largest response head (interim 1xx heads included) berth reads.
/// curl allows 300 KiB, Go's net/http (kubelet) 1 MiB; a health endpoint
/// that needs more than 64 KiB of headers is broken, and this bound is what
/// a hostile server can make a probe hold in memory.
pub const RESPONSE_HEAD_MAX: usize = 64 * 1024;

/// Header slots on the stack; a head with more lines gets one slot per line
/// (an upper bound on its headers) from the heap, so no real head is refused
/// for its number of headers.
const STACK_HEADERS: usize = 32;

/// A status line is judged by every read until this many bytes of it have
/// arrived, before its end (a TLS or SSH greeting fails at once), then once
/// more at its end.
const EARLY_CHECK: usize = 32;

/// The bytes of a malformed status line quoted in its reason, after escaping.
const SHOWN: usize = 80;

/// What a final response head says about the response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    /// The connection cannot carry another request (`Connection: close`,
    /// or HTTP/1.0 without keep-alive).
    pub close: bool,
    /// `Transfer-Encoding` ends in `chunked`.
    pub chunked: bool,
    /// `Content-Length`: None when absent, Some(Err) when not a number.
    pub length: Option<Result<u64, ()>>,
}

/// The response head(s) of one request, fed as bytes arrive. Interim 1xx
/// heads (except 101) are skipped; at most [`RESPONSE_HEAD_MAX`] bytes are
/// held, whatever the server sends.
#[derive(Debug, Default)]
pub struct ResponseHeads {
    buf: Vec<u8>,
    /// Where the head being read starts in `buf`.
    start: usize,
    /// Its status line has ended and was accepted.
    line_done: bool,
}

impl ResponseHeads {
    /// Bytes still accepted before the bound.
    pub fn room(&self) -> usize {
        RESPONSE_HEAD_MAX - self.buf.len()
    }

    /// Takes the next bytes of the response. Ok(Some((head, used))) once the
    /// final head is whole: `data[used..]` is the start of the body.
    /// Err is a one-line reason (malformed, or over the bound).
    pub fn feed(&mut self, data: &[u8]) -> Result<Option<(Head, usize)>, String> {
        let old = self.buf.len();
        let taken = data.get(..self.room()).unwrap_or(data);
        self.buf.extend_from_slice(taken);
        // Bounded: each turn moves `start` past a whole interim head or returns.
        loop {
            self.skip_empty_lines();
            // Bytes before `old` were searched by earlier calls (two kept
            // for a blank line cut across reads).
            let fresh = old.saturating_sub(2).max(self.start);
            let head = self.buf.get(self.start..).unwrap_or_default();
            if !self.line_done {
                let new = self.buf.get(old.max(self.start)..).unwrap_or_default();
                if let Some(i) = memchr::memchr(b'\n', new) {
                    let end = old.max(self.start) + i + 1 - self.start;
                    check_status_line(head.get(..end).unwrap_or(head))?;
                    self.line_done = true;
                } else if old.saturating_sub(self.start) < EARLY_CHECK {
                    // The line's first bytes (whatever this read added).
                    check_status_line(head)?;
                }
            }
            let Some(end) = blank_line_end(&self.buf, fresh) else {
                break;
            };
            let head = self.buf.get(self.start..end).unwrap_or_default();
            let parsed = parse_response(head)?;
            self.start = end;
            self.line_done = false;
            if (100..200).contains(&parsed.status) && parsed.status != 101 {
                continue; // interim (103 Early Hints, 100 Continue): the real head follows
            }
            return Ok(Some((parsed, end.saturating_sub(old))));
        }
        if self.buf.len() >= RESPONSE_HEAD_MAX {
            return Err(format!(
                "response head over {} KiB",
                RESPONSE_HEAD_MAX / 1024
            ));
        }
        Ok(None)
    }

    /// The one-line reason when the connection closed before a whole head.
    pub fn closed_reason(&self) -> String {
        if self.buf.get(self.start..).unwrap_or_default().is_empty() {
            "connection closed before a status line".to_string()
        } else if !self.line_done {
            "connection closed in the middle of a status line".to_string()
        } else {
            "connection closed in the middle of the response head".to_string()
        }
    }

    /// No byte has arrived yet.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Empty lines before a status line are ignored (RFC 9112 2.2), here
    /// rather than by httparse, so a server that sends newlines forever
    /// costs no parse at all.
    fn skip_empty_lines(&mut self) {
        loop {
            match self.buf.get(self.start..).unwrap_or_default() {
                [b'\n', ..] => self.start += 1,
                [b'\r', b'\n', ..] => self.start += 2,
                _ => return,
            }
        }
    }
}

/// The end (exclusive) of the first blank line in `buf` that starts at or
/// after `from`, i.e. the end of a head: `\n\n` or `\n\r\n`.
fn blank_line_end(buf: &[u8], from: usize) -> Option<usize> {
    let rest = buf.get(from..)?;
    memchr::memchr_iter(b'\n', rest).find_map(|i| match rest.get(i + 1..) {
        Some([b'\n', ..]) => Some(from + i + 2),
        Some([b'\r', b'\n', ..]) => Some(from + i + 3),
        _ => None,
    })
}

/// Judges a status line, whole (ending in `\n`) or its first bytes.
fn check_status_line(line: &[u8]) -> Result<(), String> {
    let mut no_headers: [Header<'_>; 0] = [];
    let mut r = httparse::Response::new(&mut no_headers);
    let bad = || {
        format!(
            "malformed status line: {}",
            escape::quoted(line.trim_ascii_end(), SHOWN)
        )
    };
    match r.parse(line) {
        // With no room for headers, a whole status line is Partial (or,
        // as the head's last line, TooManyHeaders cannot happen: no header).
        Ok(_) => {}
        Err(httparse::Error::TooManyHeaders) => {}
        Err(_) => return Err(bad()),
    }
    match r.code {
        Some(code) if !(100..=599).contains(&code) => Err(bad()),
        _ => Ok(()),
    }
}

/// Parses one whole response head (ending with its blank line).
fn parse_response(head: &[u8]) -> Result<Head, String> {
    let mut stack = [EMPTY_HEADER; STACK_HEADERS];
    let mut heap = Vec::new();
    let headers = header_slots(head, &mut stack, &mut heap);
    let mut r = httparse::Response::new(headers);
    match r.parse(head) {
        Ok(Status::Complete(_)) => {}
        Ok(Status::Partial) => return Err("malformed response head".to_string()),
        Err(httparse::Error::Version | httparse::Error::Status) => {
            let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
            return Err(format!(
                "malformed status line: {}",
                escape::quoted(line.trim_ascii_end(), SHOWN)
            ));
        }
        Err(e) => return Err(format!("malformed response head: {e}")),
    }
    let status = r.code.unwrap_or_default();
    if !(100..=599).contains(&status) {
        let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
        return Err(format!(
            "malformed status line: {}",
            escape::quoted(line.trim_ascii_end(), SHOWN)
        ));
    }
    let mut out = Head {
        status,
        close: r.version == Some(0),
        chunked: false,
        length: None,
    };
    for h in r.headers.iter() {
        let value = h.value.trim_ascii();
        if h.name.eq_ignore_ascii_case("content-length") {
            out.length = Some(
                std::str::from_utf8(value)
                    .ok()
                    .and_then(|v| v.parse::<u64>().ok())
                    .ok_or(()),
            );
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            out.chunked = ends_with_token(value, b"chunked");
        } else if h.name.eq_ignore_ascii_case("connection") {
            if contains_token(value, b"close") {
                out.close = true;
            } else if contains_token(value, b"keep-alive") {
                out.close = false;
            }
        }
    }
    Ok(out)
}

/// A request head as the status port needs it.
#[derive(Debug, PartialEq, Eq)]
pub enum Request<'a> {
    Complete {
        method: &'a str,
        path: &'a str,
    },
    /// The blank line has not arrived yet.
    Partial,
    /// Not an HTTP/1 request head.
    Invalid,
}

/// Parses a request head from the start of `buf`.
pub fn parse_request(buf: &[u8]) -> Request<'_> {
    let mut stack = [EMPTY_HEADER; STACK_HEADERS];
    let mut heap = Vec::new();
    let headers = header_slots(buf, &mut stack, &mut heap);
    let mut r = httparse::Request::new(headers);
    match r.parse(buf) {
        Ok(Status::Complete(_)) => Request::Complete {
            method: r.method.unwrap_or_default(),
            path: r.path.unwrap_or_default(),
        },
        Ok(Status::Partial) => Request::Partial,
        Err(_) => Request::Invalid,
    }
}

/// The header slots for parsing `head`: the stack's, or one per line.
fn header_slots<'s, 'b>(
    head: &[u8],
    stack: &'s mut [Header<'b>; STACK_HEADERS],
    heap: &'s mut Vec<Header<'b>>,
) -> &'s mut [Header<'b>] {
    let lines = memchr::memchr_iter(b'\n', head).count();
    if lines <= STACK_HEADERS {
        stack
    } else {
        heap.resize(lines, EMPTY_HEADER);
        heap
    }
}

/// `value` is a comma-separated list that holds `token` (any case).
fn contains_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

/// The last element of the comma-separated `value` is `token` (any case):
/// chunked must be the final transfer coding (RFC 9112 6.3).
fn ends_with_token(value: &[u8], token: &[u8]) -> bool {
    value
        .rsplit(|&b| b == b',')
        .next()
        .is_some_and(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `data` in pieces of `size` bytes.
    fn heads(data: &[u8], size: usize) -> Result<Option<(Head, usize)>, String> {
        let mut h = ResponseHeads::default();
        let mut fed = 0;
        for piece in data.chunks(size) {
            if let Some((head, used)) = h.feed(piece)? {
                return Ok(Some((head, fed + used)));
            }
            fed += piece.len();
        }
        Ok(None)
    }

    fn status(data: &[u8]) -> Result<u16, String> {
        let whole = heads(data, usize::MAX);
        for size in [1, 2, 3, 7] {
            assert_eq!(
                heads(data, size).map(|h| h.map(|h| h.0.status)).ok(),
                whole.as_ref().map(|h| h.map(|h| h.0.status)).ok(),
                "read size {size} changed the verdict on {:?}",
                data.escape_ascii().to_string()
            );
        }
        match whole? {
            Some((h, _)) => Ok(h.status),
            None => Err("incomplete".to_string()),
        }
    }

    #[test]
    fn a_whole_head_gives_its_status_and_where_the_body_starts() {
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        for size in 1..r.len() {
            let (head, used) = heads(r, size).unwrap().unwrap();
            assert_eq!(head.status, 200);
            assert_eq!(head.length, Some(Ok(2)));
            assert_eq!(&r[used..], b"ok", "read size {size}");
        }
        assert_eq!(status(b"HTTP/1.0 503 Service Unavailable\n\n"), Ok(503));
        assert_eq!(status(b"HTTP/1.1 204\r\n\r\n"), Ok(204));
        assert_eq!(status(b"\r\n\nHTTP/1.1 301 Moved\r\n\r\n"), Ok(301));
    }

    #[test]
    fn the_status_line_alone_is_not_enough() {
        assert_eq!(status(b"HTTP/1.1 200 OK\r\n"), Err("incomplete".into()));
        assert_eq!(
            status(b"HTTP/1.1 200 OK\r\nX-A: 1\r\n"),
            Err("incomplete".into())
        );
    }

    #[test]
    fn interim_heads_are_skipped() {
        let r = b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 503 No\r\n\r\n";
        assert_eq!(status(r), Ok(503));
        assert_eq!(status(b"HTTP/1.1 101 Switching\r\n\r\n"), Ok(101));
    }

    #[test]
    fn garbage_fails_at_once_with_one_line() {
        for bad in [
            &b"\x16\x03\x01\x02\x00 not http"[..],
            b"SSH-2.0-OpenSSH_9.6\r\n",
            b"HTTP/1.1 OK\r\n\r\n",
            b"HTTP/2 200\r\n\r\n",
            b"HTTP/1.1 099 Low\r\n\r\n",
            b"HTTP/1.1 600 High\r\n\r\n",
            b"http/1.1 200 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
            b"HTTP/1.1 200 O\0K\r\n\r\n",
        ] {
            let err = status(bad).unwrap_err();
            assert!(err.starts_with("malformed "), "{err}");
            assert!(!err.contains('\n') && err.len() < 120, "{err}");
        }
        // Without waiting for the line's end.
        let mut h = ResponseHeads::default();
        assert!(h.feed(b"SSH-2").is_err());
        assert_eq!(
            ResponseHeads::default()
                .feed(b"HTTP/1.1 OK\r\n")
                .unwrap_err(),
            "malformed status line: \"HTTP/1.1 OK\""
        );
    }

    #[test]
    fn heads_over_64_kib_are_refused() {
        let mut r = b"HTTP/1.1 200 OK\r\n".to_vec();
        while r.len() <= RESPONSE_HEAD_MAX {
            r.extend(b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        r.extend(b"\r\n");
        for size in [1, 4096, usize::MAX] {
            assert_eq!(
                heads(&r, size).unwrap_err(),
                "response head over 64 KiB",
                "{size}"
            );
        }
        // Interim heads count towards the bound.
        let mut r = Vec::new();
        while r.len() <= RESPONSE_HEAD_MAX {
            r.extend(b"HTTP/1.1 100 Continue\r\n\r\n");
        }
        assert!(heads(&r, 4096).is_err());
        // Just under it, with many headers, is fine.
        let mut r = b"HTTP/1.1 200 OK\r\n".to_vec();
        while r.len() < RESPONSE_HEAD_MAX - 100 {
            r.extend(b"a:b\r\n");
        }
        r.extend(b"\r\n");
        assert_eq!(status(&r), Ok(200));
    }

    #[test]
    fn endless_empty_lines_cost_nothing_and_are_bounded() {
        let r = vec![b'\n'; RESPONSE_HEAD_MAX + 10];
        assert_eq!(heads(&r, 1).unwrap_err(), "response head over 64 KiB");
    }

    #[test]
    fn framing_headers() {
        let h = |r: &[u8]| heads(r, usize::MAX).unwrap().unwrap().0;
        let c = h(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, Chunked\r\nConnection: Keep-Alive, close\r\n\r\n");
        assert!(c.chunked && c.close);
        let c = h(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n");
        assert!(!c.chunked && !c.close);
        let c = h(b"HTTP/1.0 200 OK\r\nContent-Length:  7 \r\n\r\n");
        assert!(c.close);
        assert_eq!(c.length, Some(Ok(7)));
        let c = h(b"HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: x\r\n\r\n");
        assert!(!c.close);
        assert_eq!(c.length, Some(Err(())));
    }

    #[test]
    fn closed_reasons() {
        let mut h = ResponseHeads::default();
        assert_eq!(h.closed_reason(), "connection closed before a status line");
        h.feed(b"HTTP/1.1 2").unwrap();
        assert_eq!(
            h.closed_reason(),
            "connection closed in the middle of a status line"
        );
        h.feed(b"00 OK\r\nX: y").unwrap();
        assert_eq!(
            h.closed_reason(),
            "connection closed in the middle of the response head"
        );
    }

    #[test]
    fn requests() {
        assert_eq!(
            parse_request(b"GET /livez?x=1 HTTP/1.1\r\nHost: a\r\n\r\n"),
            Request::Complete {
                method: "GET",
                path: "/livez?x=1"
            }
        );
        assert_eq!(
            parse_request(b"HEAD /readyz HTTP/1.0\n\n"),
            Request::Complete {
                method: "HEAD",
                path: "/readyz"
            }
        );
        assert_eq!(
            parse_request(b"GET /livez HTTP/1.1\r\nHost: a\r\n"),
            Request::Partial
        );
        assert_eq!(parse_request(b"\x00\xffgarbage\r\n\r\n"), Request::Invalid);
        // More headers than the stack holds.
        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for _ in 0..100 {
            many.extend(b"a:b\r\n");
        }
        many.extend(b"\r\n");
        assert!(matches!(parse_request(&many), Request::Complete { .. }));
    }
}
