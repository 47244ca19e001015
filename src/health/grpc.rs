//! The `grpc://` probe: one unary `grpc.health.v1.Health/Check` call over
//! HTTP/2 cleartext with prior knowledge (h2c), on a connection that
//! [`super::probe`] opened, under the same overall deadline.
//!
//! The request (preface, SETTINGS, HEADERS, DATA) goes out in one write;
//! then frames are read one at a time until the call's end: SETTINGS and
//! PING are acknowledged, WINDOW_UPDATE and unknown frames skipped, GOAWAY
//! and RST_STREAM end it with a reason. Everything a peer can send is
//! bounded: a frame by [`h2::MAX_FRAME`], a header block by
//! [`MAX_HEADER_BLOCK`] (CONTINUATION included), the decoded headers by
//! [`MAX_HEADER_LIST`], the message by [`MAX_MESSAGE`], the whole answer by
//! [`MAX_FRAMES`] frames and the deadline. The protobuf is two fields, so it
//! is encoded and decoded here by hand.

use std::io::{self, Read};
use std::net::TcpStream;
use std::time::Duration;

use super::h2::{self, Head};
use super::hpack::{self, Fields};
use super::io::{describe_io, is_timeout, send, Deadline};
use crate::escape;

/// Largest header block (HEADERS + CONTINUATION) we collect.
pub const MAX_HEADER_BLOCK: usize = 16 * 1024;

/// Largest decoded header list, also advertised in our SETTINGS.
pub const MAX_HEADER_LIST: usize = 16 * 1024;

/// Largest response message (a HealthCheckResponse is 2 bytes).
pub const MAX_MESSAGE: usize = 4096;

/// Frames read before giving up: a real answer takes under ten.
pub const MAX_FRAMES: usize = 256;

/// The method every gRPC health checker calls.
const PATH: &str = "/grpc.health.v1.Health/Check";

/// Headers HTTP/2 forbids in requests (RFC 9113 §8.2.2), or that berth sets.
const REFUSED_HEADERS: [&str; 6] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "te",
];

/// A `--header` a grpc:// probe cannot send as metadata (one HTTP/2
/// forbids, or `te`, which gRPC fixes): a usage error, found before any
/// connection.
pub fn validate_metadata(header: &str) -> Result<(), String> {
    let name = header.split_once(':').map_or(header, |(n, _)| n);
    let name = name.to_ascii_lowercase();
    if REFUSED_HEADERS.contains(&name.as_str()) {
        return Err(format!("grpc: header {name:?} is not allowed in HTTP/2"));
    }
    Ok(())
}

/// One health check on an open connection. Ok: SERVING; Err: the reason.
pub(super) fn check(
    mut stream: TcpStream,
    authority: &str,
    service: &str,
    headers: &[String],
    clock: &Deadline,
) -> Result<(), String> {
    let request = request(authority, service, headers, clock)?;
    match send(&mut stream, &request, clock) {
        Err(e) if is_timeout(&e) || clock.remaining().is_none() => {
            return Err(clock.expired("sending the request"));
        }
        // The peer may have answered and closed (an HTTP/1.1 server's 400):
        // what it sent says more than the write error.
        Ok(()) | Err(_) => {}
    }
    let status = Call::new(Tcp(stream), clock).answer()?;
    judge(status, service)
}

/// Reads an answer from `reader` as the probe does from its socket (what
/// the probe writes back is dropped) and judges it; pure apart from
/// `reader`, for the fuzz target.
pub fn read_answer(reader: impl Read, service: &str) -> Result<(), String> {
    let clock = Deadline::start(Duration::MAX);
    let status = Call::new(Replay(reader), &clock).answer()?;
    judge(status, service)
}

/// The request bytes: preface, SETTINGS, HEADERS (+ CONTINUATION), DATA.
fn request(
    authority: &str,
    service: &str,
    headers: &[String],
    clock: &Deadline,
) -> Result<Vec<u8>, String> {
    let mut user: Vec<(String, &str)> = Vec::new();
    for h in headers {
        validate_metadata(h)?;
        let (name, value) = h.split_once(':').unwrap_or((h, ""));
        user.push((name.to_ascii_lowercase(), value.trim_matches([' ', '\t'])));
    }
    let user_sets = |n: &str| user.iter().any(|(name, _)| name == n);
    // grpc-timeout is at most 8 digits (gRPC over HTTP/2: TimeoutValue).
    let left_ms = clock
        .remaining()
        .map_or(1, |d| d.as_millis().clamp(1, 99_999_999));
    let timeout = format!("{left_ms}m");
    let authority = user
        .iter()
        .find(|(n, _)| n == "host")
        .map_or(authority, |(_, v)| v);

    let mut block = Vec::new();
    for (name, value) in [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", PATH),
        (":authority", authority),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
        ("grpc-timeout", timeout.as_str()),
    ] {
        hpack::encode_literal(&mut block, name.as_bytes(), value.as_bytes());
    }
    if !user_sets("user-agent") {
        hpack::encode_literal(&mut block, b"user-agent", b"berth-probe");
    }
    for (name, value) in user.iter().filter(|(n, _)| n != "host") {
        hpack::encode_literal(&mut block, name.as_bytes(), value.as_bytes());
    }

    // HealthCheckRequest { string service = 1; }, behind gRPC's 5-byte
    // prefix (uncompressed flag, big-endian length).
    let mut message = Vec::new();
    if !service.is_empty() {
        message.push(0x0a);
        varint(&mut message, service.len() as u64);
        message.extend_from_slice(service.as_bytes());
    }
    let mut body = vec![0];
    body.extend_from_slice(&(message.len() as u32).to_be_bytes());
    body.extend_from_slice(&message);

    let mut settings = Vec::new();
    for (id, value) in [
        (h2::SETTINGS_ENABLE_PUSH, 0u32),
        (h2::SETTINGS_MAX_HEADER_LIST_SIZE, MAX_HEADER_LIST as u32),
    ] {
        settings.extend_from_slice(&id.to_be_bytes());
        settings.extend_from_slice(&value.to_be_bytes());
    }
    let mut out = h2::PREFACE.to_vec();
    h2::write_frame(&mut out, h2::SETTINGS, 0, 0, &settings);
    h2::write_split(
        &mut out,
        h2::HEADERS,
        h2::CONTINUATION,
        h2::END_HEADERS,
        &block,
    );
    h2::write_split(&mut out, h2::DATA, h2::DATA, h2::END_STREAM, &body);
    Ok(out)
}

fn varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push(n as u8 | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Where frames come from and acknowledgements go: the socket, or bytes in
/// memory for the fuzz target.
trait Peer {
    fn read_within(&mut self, buf: &mut [u8], left: Duration) -> io::Result<usize>;
    fn send_within(&mut self, data: &[u8], clock: &Deadline) -> io::Result<()>;
}

struct Tcp(TcpStream);

impl Peer for Tcp {
    fn read_within(&mut self, buf: &mut [u8], left: Duration) -> io::Result<usize> {
        self.0.set_read_timeout(Some(left))?;
        self.0.read(buf)
    }
    fn send_within(&mut self, data: &[u8], clock: &Deadline) -> io::Result<()> {
        send(&mut self.0, data, clock)
    }
}

struct Replay<R>(R);

impl<R: Read> Peer for Replay<R> {
    fn read_within(&mut self, buf: &mut [u8], _left: Duration) -> io::Result<usize> {
        self.0.read(buf)
    }
    fn send_within(&mut self, _data: &[u8], _clock: &Deadline) -> io::Result<()> {
        Ok(())
    }
}

/// How the call ended, before judging.
#[derive(Debug, PartialEq, Eq)]
enum Status {
    /// grpc-status 0 with the response message's bytes (after the prefix).
    Ok(Vec<u8>),
    /// Another grpc-status, with grpc-message (percent-decoded).
    Failed(u32, String),
}

/// One call's answer being read.
struct Call<'a, P> {
    peer: P,
    clock: &'a Deadline,
    /// The current frame's payload (`payload[..head.len]`).
    payload: Vec<u8>,
    frames: usize,
    /// Bytes read so far (to tell "closed at once" from "closed midway").
    total: usize,
    hpack: hpack::Decoder,
}

impl<'a, P: Peer> Call<'a, P> {
    fn new(peer: P, clock: &'a Deadline) -> Self {
        Call {
            peer,
            clock,
            payload: vec![0; h2::MAX_FRAME],
            frames: 0,
            total: 0,
            hpack: hpack::Decoder::default(),
        }
    }

    /// Reads frames until the stream's end: the response headers, the
    /// message, the trailers (or a trailers-only answer).
    fn answer(&mut self) -> Result<Status, String> {
        let first = self.frame()?;
        // The server's connection preface is a SETTINGS frame (§3.4):
        // anything else is not an HTTP/2 server.
        if first.kind != h2::SETTINGS || first.flags & h2::ACK != 0 || first.stream != 0 {
            return Err("grpc: the server does not speak HTTP/2".to_string());
        }
        let mut head = first;
        let mut response_headers = false;
        let mut message = Vec::new();
        loop {
            let end_stream = head.flags & h2::END_STREAM != 0;
            match head.kind {
                h2::SETTINGS => self.settings(&head)?,
                h2::PING => self.ping(&head)?,
                h2::GOAWAY => self.goaway(&head)?,
                h2::RST_STREAM if head.stream == 1 => {
                    let code = self
                        .u32_at(&head, 0)
                        .ok_or_else(|| malformed("RST_STREAM"))?;
                    return Err(format!(
                        "grpc: the server reset the stream ({})",
                        h2::error_name(code)
                    ));
                }
                h2::PUSH_PROMISE => return Err(malformed("PUSH_PROMISE (push is off)")),
                h2::CONTINUATION => return Err(malformed("CONTINUATION without HEADERS")),
                h2::HEADERS => {
                    if head.stream != 1 {
                        return Err(malformed("HEADERS on another stream"));
                    }
                    let fields = self.header_block(&head)?;
                    if !response_headers {
                        response_headers = true;
                        check_response_headers(&fields)?;
                    } else if !end_stream {
                        return Err(malformed("trailers without END_STREAM"));
                    }
                    // Trailers, or a trailers-only answer (grpc-status in
                    // the response headers).
                    if let Some(status) = field(&fields, b"grpc-status") {
                        return grpc_status(status, &fields, message);
                    }
                    if end_stream {
                        return Err("grpc: the answer ended without a grpc-status".to_string());
                    }
                }
                h2::DATA if head.stream == 1 => {
                    if !response_headers {
                        return Err(malformed("DATA before HEADERS"));
                    }
                    let data = self.payload.get(..head.len).unwrap_or_default();
                    let data = h2::unpad(&head, data).map_err(|e| format!("grpc: {e}"))?;
                    if message.len() + data.len() > MAX_MESSAGE + 5 {
                        return Err(format!(
                            "grpc: response message larger than {MAX_MESSAGE} bytes"
                        ));
                    }
                    message.extend_from_slice(data);
                    if end_stream {
                        return Err("grpc: the answer ended without a grpc-status".to_string());
                    }
                }
                // WINDOW_UPDATE, PRIORITY, unknown types (which §5.5 says
                // to ignore), frames of other streams: nothing to do.
                _ => {}
            }
            head = self.frame()?;
        }
    }

    /// Reads the next frame into `payload`; returns its header.
    fn frame(&mut self) -> Result<Head, String> {
        self.frames += 1;
        if self.frames > MAX_FRAMES {
            return Err(format!("grpc: no answer within {MAX_FRAMES} frames"));
        }
        let mut raw = [0u8; h2::HEAD_LEN];
        self.fill(&mut raw, "a frame header")?;
        let head = Head::parse(raw);
        if self.frames == 1 && raw.starts_with(b"HTTP/") {
            return Err("grpc: the server does not speak HTTP/2 (it answered HTTP/1)".to_string());
        }
        if head.len > h2::MAX_FRAME {
            // Also how a server that is not HTTP/2 usually shows (its first
            // bytes read as a huge length).
            if self.frames == 1 {
                return Err("grpc: the server does not speak HTTP/2".to_string());
            }
            return Err(format!(
                "grpc: a frame of {} bytes, over the {} allowed",
                head.len,
                h2::MAX_FRAME
            ));
        }
        let mut payload = std::mem::take(&mut self.payload);
        let filled = self.fill(payload.get_mut(..head.len).unwrap_or_default(), "a frame");
        self.payload = payload;
        filled?;
        Ok(head)
    }

    /// Fills `buf` from the peer within the deadline.
    fn fill(&mut self, buf: &mut [u8], what: &str) -> Result<(), String> {
        let mut got = 0;
        while got < buf.len() {
            let Some(left) = self.clock.remaining() else {
                return Err(self.clock.expired("waiting for the grpc answer"));
            };
            match self
                .peer
                .read_within(buf.get_mut(got..).unwrap_or_default(), left)
            {
                Ok(0) if self.total == 0 => {
                    return Err("grpc: connection closed before an answer".to_string());
                }
                Ok(0) => return Err(format!("grpc: connection closed in the middle of {what}")),
                Ok(n) => {
                    got += n;
                    self.total += n;
                }
                Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset && self.total == 0 => {
                    return Err("grpc: connection closed before an answer (reset)".to_string());
                }
                Err(e) => return Err(format!("grpc: {} (reading {what})", describe_io(&e))),
            }
        }
        Ok(())
    }

    /// The big-endian u32 at `at` in the current frame's payload.
    fn u32_at(&self, head: &Head, at: usize) -> Option<u32> {
        let b = self.payload.get(..head.len)?.get(at..at + 4)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn reply(&mut self, kind: u8, payload: &[u8]) -> Result<(), String> {
        let mut out = Vec::with_capacity(h2::HEAD_LEN + payload.len());
        h2::write_frame(&mut out, kind, h2::ACK, 0, payload);
        self.peer.send_within(&out, self.clock).map_err(|e| {
            if is_timeout(&e) {
                self.clock.expired("acknowledging the server's frames")
            } else {
                format!("grpc: {} (writing)", describe_io(&e))
            }
        })
    }

    fn settings(&mut self, head: &Head) -> Result<(), String> {
        if head.stream != 0 || head.len % 6 != 0 || (head.flags & h2::ACK != 0 && head.len != 0) {
            return Err(malformed("SETTINGS"));
        }
        // Nothing in them matters to one small call (we never index, so
        // the table size does not; our frames are under every limit).
        if head.flags & h2::ACK == 0 {
            self.reply(h2::SETTINGS, &[])?;
        }
        Ok(())
    }

    fn ping(&mut self, head: &Head) -> Result<(), String> {
        if head.stream != 0 || head.len != 8 {
            return Err(malformed("PING"));
        }
        if head.flags & h2::ACK == 0 {
            let mut data = [0u8; 8];
            data.copy_from_slice(self.payload.get(..8).unwrap_or(&[0; 8]));
            self.reply(h2::PING, &data)?;
        }
        Ok(())
    }

    /// A graceful GOAWAY that still covers our stream lets the answer
    /// finish; any other ends the call.
    fn goaway(&mut self, head: &Head) -> Result<(), String> {
        let (Some(last), Some(code), 0) = (self.u32_at(head, 0), self.u32_at(head, 4), head.stream)
        else {
            return Err(malformed("GOAWAY"));
        };
        if last & 0x7fff_ffff >= 1 && code == 0 {
            return Ok(());
        }
        Err(format!(
            "grpc: the server closed the connection (GOAWAY {})",
            h2::error_name(code)
        ))
    }

    /// Collects a header block (HEADERS, then CONTINUATION frames until
    /// END_HEADERS) and decodes it.
    fn header_block(&mut self, head: &Head) -> Result<Fields, String> {
        let data = self.payload.get(..head.len).unwrap_or_default();
        let mut block = h2::unpad(head, data)
            .map_err(|e| format!("grpc: {e}"))?
            .to_vec();
        let mut flags = head.flags;
        while flags & h2::END_HEADERS == 0 {
            let next = self.frame()?;
            if next.kind != h2::CONTINUATION || next.stream != head.stream {
                return Err(malformed("header block interrupted"));
            }
            if block.len() + next.len > MAX_HEADER_BLOCK {
                return Err(format!(
                    "grpc: response header block larger than {MAX_HEADER_BLOCK} bytes"
                ));
            }
            block.extend_from_slice(self.payload.get(..next.len).unwrap_or_default());
            flags = next.flags;
        }
        self.hpack
            .decode(&block, MAX_HEADER_LIST)
            .map_err(|e| format!("grpc: malformed response headers ({e})"))
    }
}

fn malformed(what: &str) -> String {
    format!("grpc: malformed HTTP/2 answer ({what})")
}

fn field<'f>(fields: &'f Fields, name: &[u8]) -> Option<&'f [u8]> {
    fields
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_slice())
}

/// The response headers: `:status 200` and a gRPC content type.
fn check_response_headers(fields: &Fields) -> Result<(), String> {
    match field(fields, b":status") {
        Some(b"200") => {}
        Some(s) => return Err(format!("grpc: HTTP status {}", escape::bounded(s, 40))),
        None => return Err(malformed("no :status")),
    }
    let content_type = field(fields, b"content-type").unwrap_or_default();
    if !content_type.starts_with(b"application/grpc") {
        return Err(format!(
            "grpc: the answer is not gRPC (content-type \"{}\")",
            escape::bounded(content_type, 60)
        ));
    }
    Ok(())
}

/// The call's end from its grpc-status and grpc-message.
fn grpc_status(status: &[u8], fields: &Fields, message: Vec<u8>) -> Result<Status, String> {
    let code = std::str::from_utf8(status)
        .ok()
        .filter(|s| !s.is_empty() && s.len() <= 9 && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse::<u32>().ok())
        .ok_or_else(|| {
            format!(
                "grpc: malformed grpc-status \"{}\"",
                escape::bounded(status, 20)
            )
        })?;
    if code != 0 {
        let text = field(fields, b"grpc-message").unwrap_or_default();
        return Ok(Status::Failed(code, percent_decode(text)));
    }
    // One length-prefixed message: uncompressed flag, length, bytes.
    let [flag, l0, l1, l2, l3, rest @ ..] = message.as_slice() else {
        return Err("grpc: the answer has no response message".to_string());
    };
    if *flag != 0 {
        return Err("grpc: compressed response message (berth asks for none)".to_string());
    }
    let len = u32::from_be_bytes([*l0, *l1, *l2, *l3]) as usize;
    if len != rest.len() {
        return Err("grpc: malformed response message (length prefix)".to_string());
    }
    Ok(Status::Ok(rest.to_vec()))
}

/// The verdict: healthy only on SERVING.
fn judge(status: Status, service: &str) -> Result<(), String> {
    match status {
        Status::Failed(5, _) => Err(format!("grpc: service {service:?} not found")),
        Status::Failed(code, message) if message.is_empty() => {
            Err(format!("grpc: status {code} {}", code_name(code)))
        }
        Status::Failed(code, message) => Err(format!(
            "grpc: status {code} {}: {message}",
            code_name(code)
        )),
        Status::Ok(message) => match serving_status(&message)? {
            1 => Ok(()),
            0 => Err("grpc: UNKNOWN".to_string()),
            2 => Err("grpc: NOT_SERVING".to_string()),
            3 => Err("grpc: SERVICE_UNKNOWN".to_string()),
            n => Err(format!("grpc: serving status {n}")),
        },
    }
}

/// `HealthCheckResponse { ServingStatus status = 1; }`: field 1's varint
/// (0, UNKNOWN, when absent, as proto3 says); other fields skipped.
pub fn serving_status(mut message: &[u8]) -> Result<u64, String> {
    let bad = || "grpc: malformed HealthCheckResponse".to_string();
    let mut status = 0;
    while !message.is_empty() {
        let key = read_varint(&mut message).ok_or_else(bad)?;
        let skip = match key & 7 {
            0 => {
                let v = read_varint(&mut message).ok_or_else(bad)?;
                if key >> 3 == 1 {
                    status = v;
                }
                0
            }
            1 => 8,
            2 => usize::try_from(read_varint(&mut message).ok_or_else(bad)?).map_err(|_| bad())?,
            5 => 4,
            _ => return Err(bad()),
        };
        message = message.get(skip..).ok_or_else(bad)?;
    }
    Ok(status)
}

fn read_varint(input: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for (i, &b) in input.iter().enumerate().take(10) {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            *input = input.get(i + 1..)?;
            return Some(value);
        }
    }
    None
}

/// gRPC's status codes (grpc/doc/statuscodes.md).
fn code_name(code: u32) -> &'static str {
    const NAMES: [&str; 17] = [
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];
    usize::try_from(code)
        .ok()
        .and_then(|i| NAMES.get(i))
        .copied()
        .unwrap_or("(unknown code)")
}

/// grpc-message is percent-encoded UTF-8 (gRPC over HTTP/2); the result is
/// made one short printable line.
fn percent_decode(text: &[u8]) -> String {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while let Some(&b) = text.get(i) {
        let hex = text
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b, hex) {
            (b'%', Some(decoded)) => {
                out.push(decoded);
                i += 3;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    escape::bounded(&out, 200)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server's side of an answer, frame by frame.
    struct Answer(Vec<u8>);

    impl Answer {
        fn new() -> Answer {
            let mut a = Answer(Vec::new());
            a.frame(h2::SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 100]);
            a
        }
        fn frame(&mut self, kind: u8, flags: u8, stream: u32, payload: &[u8]) -> &mut Self {
            h2::write_frame(&mut self.0, kind, flags, stream, payload);
            self
        }
        fn headers(&mut self, flags: u8, fields: &[(&str, &str)]) -> &mut Self {
            let mut block = Vec::new();
            for (n, v) in fields {
                hpack::encode_literal(&mut block, n.as_bytes(), v.as_bytes());
            }
            self.frame(h2::HEADERS, flags | h2::END_HEADERS, 1, &block)
        }
        fn ok_headers(&mut self) -> &mut Self {
            self.headers(
                0,
                &[(":status", "200"), ("content-type", "application/grpc")],
            )
        }
        fn message(&mut self, status: u8) -> &mut Self {
            self.frame(h2::DATA, 0, 1, &[0, 0, 0, 0, 2, 0x08, status])
        }
        fn trailers(&mut self, status: &str, message: &str) -> &mut Self {
            self.headers(
                h2::END_STREAM,
                &[("grpc-status", status), ("grpc-message", message)],
            )
        }
        fn read(&self) -> Result<(), String> {
            read_answer(self.0.as_slice(), "svc")
        }
    }

    #[test]
    fn serving_is_healthy_and_the_rest_is_not() {
        let answer = |s| {
            Answer::new()
                .ok_headers()
                .message(s)
                .trailers("0", "")
                .read()
        };
        assert_eq!(answer(1), Ok(()));
        assert_eq!(answer(0), Err("grpc: UNKNOWN".to_string()));
        assert_eq!(answer(2), Err("grpc: NOT_SERVING".to_string()));
        assert_eq!(answer(3), Err("grpc: SERVICE_UNKNOWN".to_string()));
        assert_eq!(answer(9), Err("grpc: serving status 9".to_string()));
    }

    #[test]
    fn pings_settings_and_window_updates_are_taken_in_stride() {
        let mut a = Answer::new();
        a.frame(h2::SETTINGS, h2::ACK, 0, &[])
            .frame(h2::PING, 0, 0, b"12345678")
            .frame(0x8, 0, 0, &[0, 0, 1, 0])
            .frame(0xfa, 0, 0, b"unknown type")
            .ok_headers()
            .frame(h2::DATA, h2::PADDED, 1, b"\x03\0\0\0\0\x02\x08\x01pad")
            .trailers("0", "");
        assert_eq!(a.read(), Ok(()));
    }

    #[test]
    fn trailers_only_answers_carry_the_status() {
        let a = Answer::new()
            .headers(
                h2::END_STREAM,
                &[
                    (":status", "200"),
                    ("content-type", "application/grpc"),
                    ("grpc-status", "5"),
                ],
            )
            .read();
        assert_eq!(a, Err("grpc: service \"svc\" not found".to_string()));
        let a = Answer::new()
            .headers(
                h2::END_STREAM,
                &[
                    (":status", "200"),
                    ("content-type", "application/grpc+proto"),
                    ("grpc-status", "16"),
                    ("grpc-message", "no%20token%0Agiven"),
                ],
            )
            .read();
        assert_eq!(
            a,
            Err("grpc: status 16 UNAUTHENTICATED: no token\\ngiven".to_string())
        );
        let a = Answer::new().ok_headers().trailers("12", "").read();
        assert_eq!(a, Err("grpc: status 12 UNIMPLEMENTED".to_string()));
    }

    #[test]
    fn continuation_frames_complete_a_header_block() {
        let mut block = Vec::new();
        hpack::encode_literal(&mut block, b":status", b"200");
        hpack::encode_literal(&mut block, b"content-type", b"application/grpc");
        let (a, b) = block.split_at(5);
        let mut ans = Answer::new();
        ans.frame(h2::HEADERS, 0, 1, a)
            .frame(h2::CONTINUATION, h2::END_HEADERS, 1, b)
            .message(1)
            .trailers("0", "");
        assert_eq!(ans.read(), Ok(()));
    }

    #[test]
    fn endless_continuation_is_bounded() {
        let mut ans = Answer::new();
        ans.frame(h2::HEADERS, 0, 1, &[0x88]);
        for _ in 0..40 {
            ans.frame(h2::CONTINUATION, 0, 1, &[0u8; 1000]);
        }
        assert_eq!(
            ans.read(),
            Err("grpc: response header block larger than 16384 bytes".to_string())
        );
        let mut ans = Answer::new();
        ans.frame(h2::HEADERS, 0, 1, &[0x88]);
        for _ in 0..1000 {
            ans.frame(h2::CONTINUATION, 0, 1, &[]);
        }
        assert_eq!(
            ans.read(),
            Err("grpc: no answer within 256 frames".to_string())
        );
    }

    #[test]
    fn endings_without_an_answer_say_why() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (
                b"HTTP/1.1 400 Bad Request\r\n\r\n".to_vec(),
                "grpc: the server does not speak HTTP/2 (it answered HTTP/1)",
            ),
            (
                b"\0\0\0\x01\x04\0\0\0\x01".to_vec(),
                "grpc: the server does not speak HTTP/2",
            ),
            (
                b"SSH-2.0-OpenSSH_9.6\r\n".to_vec(),
                "grpc: the server does not speak HTTP/2",
            ),
            (Vec::new(), "grpc: connection closed before an answer"),
            (
                Answer::new().0,
                "grpc: connection closed in the middle of a frame header",
            ),
            (
                Answer::new()
                    .frame(h2::GOAWAY, 0, 0, &[0, 0, 0, 0, 0, 0, 0, 11])
                    .0
                    .clone(),
                "grpc: the server closed the connection (GOAWAY ENHANCE_YOUR_CALM)",
            ),
            (
                Answer::new()
                    .frame(h2::RST_STREAM, 0, 1, &[0, 0, 0, 7])
                    .0
                    .clone(),
                "grpc: the server reset the stream (REFUSED_STREAM)",
            ),
            (
                Answer::new()
                    .headers(0, &[(":status", "404"), ("content-type", "text/html")])
                    .0
                    .clone(),
                "grpc: HTTP status 404",
            ),
            (
                Answer::new()
                    .headers(0, &[(":status", "200"), ("content-type", "text/html")])
                    .0
                    .clone(),
                "grpc: the answer is not gRPC (content-type \"text/html\")",
            ),
            (
                Answer::new()
                    .ok_headers()
                    .message(1)
                    .frame(h2::DATA, h2::END_STREAM, 1, &[])
                    .0
                    .clone(),
                "grpc: the answer ended without a grpc-status",
            ),
            (
                Answer::new().ok_headers().trailers("0", "").0.clone(),
                "grpc: the answer has no response message",
            ),
            (
                Answer::new().ok_headers().trailers("x1", "").0.clone(),
                "grpc: malformed grpc-status \"x1\"",
            ),
            (
                Answer::new().frame(h2::DATA, 0, 1, b"\0").0.clone(),
                "grpc: malformed HTTP/2 answer (DATA before HEADERS)",
            ),
            (
                Answer::new().frame(h2::PING, 0, 0, b"1234").0.clone(),
                "grpc: malformed HTTP/2 answer (PING)",
            ),
            (
                Answer::new()
                    .frame(h2::HEADERS, h2::END_HEADERS, 1, &[0x80])
                    .0
                    .clone(),
                "grpc: malformed response headers (header index 0 out of range)",
            ),
        ];
        for (bytes, want) in cases {
            let got = read_answer(bytes.as_slice(), "svc").unwrap_err();
            assert_eq!(got, want, "{}", bytes.escape_ascii());
        }
        // A frame header claiming more than 16 KiB (built by hand: write_frame caps).
        let mut a = Answer::new().0;
        a.extend_from_slice(&[0, 0x40, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            read_answer(a.as_slice(), "").unwrap_err(),
            "grpc: a frame of 16385 bytes, over the 16384 allowed"
        );
    }

    #[test]
    fn a_graceful_goaway_lets_the_answer_finish() {
        let mut a = Answer::new();
        a.ok_headers()
            .frame(h2::GOAWAY, 0, 0, &[0, 0, 0, 1, 0, 0, 0, 0])
            .message(1)
            .trailers("0", "");
        assert_eq!(a.read(), Ok(()));
    }

    #[test]
    fn the_request_is_what_a_grpc_server_expects() {
        let clock = Deadline::start(Duration::from_secs(3));
        let headers = vec![
            "Authorization: Bearer t0k".to_string(),
            "X-Trace:  1 ".to_string(),
        ];
        let req = request("127.0.0.1:50051", "app.Ready", &headers, &clock).unwrap();
        assert!(req.starts_with(h2::PREFACE));
        let mut rest = &req[h2::PREFACE.len()..];
        let mut frames = Vec::new();
        while !rest.is_empty() {
            let head = Head::parse(rest[..9].try_into().unwrap());
            frames.push((head, rest[9..9 + head.len].to_vec()));
            rest = &rest[9 + head.len..];
        }
        let kinds: Vec<_> = frames
            .iter()
            .map(|(h, _)| (h.kind, h.flags, h.stream))
            .collect();
        assert_eq!(
            kinds,
            [
                (h2::SETTINGS, 0, 0),
                (h2::HEADERS, h2::END_HEADERS, 1),
                (h2::DATA, h2::END_STREAM, 1)
            ]
        );
        let fields = hpack::Decoder::default()
            .decode(&frames[1].1, 4096)
            .unwrap();
        let text: Vec<(String, String)> = fields
            .iter()
            .map(|(n, v)| {
                (
                    String::from_utf8(n.clone()).unwrap(),
                    String::from_utf8(v.clone()).unwrap(),
                )
            })
            .collect();
        let get = |n: &str| text.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        assert_eq!(get(":method"), Some("POST"));
        assert_eq!(get(":path"), Some("/grpc.health.v1.Health/Check"));
        assert_eq!(get(":authority"), Some("127.0.0.1:50051"));
        assert_eq!(get("te"), Some("trailers"));
        assert_eq!(get("authorization"), Some("Bearer t0k"));
        assert_eq!(get("x-trace"), Some("1"));
        let timeout = get("grpc-timeout").unwrap();
        let ms: u64 = timeout.strip_suffix('m').unwrap().parse().unwrap();
        assert!((2000..=3000).contains(&ms), "{timeout}");
        // Pseudo-headers come first (RFC 9113 §8.3).
        assert!(text[..4].iter().all(|(n, _)| n.starts_with(':')));
        // The message: prefix, then field 1 = "app.Ready".
        assert_eq!(frames[2].1, b"\0\0\0\0\x0b\x0a\x09app.Ready");
        // No service: an empty message.
        let req = request("h:1", "", &[], &clock).unwrap();
        assert!(req.ends_with(&[0, 0, 5, h2::DATA, h2::END_STREAM, 0, 0, 0, 1, 0, 0, 0, 0, 0]));
        // Host replaces :authority; connection headers are refused.
        let req = request("h:1", "", &["Host: app".to_string()], &clock).unwrap();
        let block_at = h2::PREFACE.len() + 9 + 12 + 9;
        let head = Head::parse(req[block_at - 9..block_at].try_into().unwrap());
        let fields = hpack::Decoder::default()
            .decode(&req[block_at..block_at + head.len], 4096)
            .unwrap();
        assert!(fields.contains(&(b":authority".to_vec(), b"app".to_vec())));
        assert!(!fields.iter().any(|(n, _)| n == b"host"));
        assert_eq!(
            request("h:1", "", &["Connection: close".to_string()], &clock).unwrap_err(),
            "grpc: header \"connection\" is not allowed in HTTP/2"
        );
    }

    #[test]
    fn health_check_response_fields() {
        assert_eq!(serving_status(&[]), Ok(0));
        assert_eq!(serving_status(&[0x08, 0x01]), Ok(1));
        // Unknown fields of every wire type are skipped; the last field 1 wins.
        assert_eq!(
            serving_status(&[
                0x08, 0x02, 0x10, 0x96, 0x01, 0x1a, 0x02, b'h', b'i', 0x21, 1, 2, 3, 4, 5, 6, 7, 8,
                0x2d, 1, 2, 3, 4, 0x08, 0x01
            ]),
            Ok(1)
        );
        for bad in [&[0x08][..], &[0x1a, 0x05, b'h'], &[0x0b], &[0xff; 11]] {
            assert!(serving_status(bad).is_err(), "{bad:?}");
        }
    }

    /// Standard base64 (with padding) for the fuzz reproducers below.
    fn base64(text: &str) -> Vec<u8> {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let sextets: Vec<u32> = text
            .bytes()
            .filter(|&b| b != b'=')
            .map(|b| ALPHABET.iter().position(|&a| a == b).expect("base64") as u32)
            .collect();
        let mut out = Vec::new();
        for group in sextets.chunks(4) {
            let bits = group.iter().fold(0, |acc, s| acc << 6 | s) << (6 * (4 - group.len()));
            out.extend_from_slice(&bits.to_be_bytes()[1..group.len()]);
        }
        out
    }

    #[test]
    fn a_content_type_of_escape_characters_stays_a_short_verdict() {
        // fuzz/run grpc_answer (issue 22): a content-type of 62 ESC bytes
        // was cut at 60 characters, then each escaped to 6 bytes.
        let input = base64(
            "/wAAGAQAAAAAAAAEAEAAAAD/AEAAAAAGAABBAP4DAAAAAQAAAAQBAAAAAAAABAgAphQAAAAAAAAAAE4BBAAAAA\
             GIQAxjb250ZW50LXR5cGU+GxsbGxsbGxsbGxsbGxsbGxsbGxsbGxsbGxsbGxsbGxsbGxsbGxsbGxsbGxsbGx\
             sbGxsbGxsbGxsbGxsbGxsbGxsbGxsbGxsbGxsbGxsbGxsbGxsbGxsbGxsbGxsbGxsbGxsbGxsbGxsbGxsbGx\
             sbGxsbGxsbG2Fjbz0JAAAAAAAEAQAAAAAAAAQIAKYUAAAA/wAABAQAAAAAACsAAPEMZW55eSwgZGVmbGF0ZS\
             xnemkgcAAABwA=",
        );
        // Byte 0 is the fuzz target's read size; the server's bytes follow.
        let verdict = read_answer(&input[1..], "svc").unwrap_err();
        assert!(
            verdict.starts_with("grpc: the answer is not gRPC (content-type \"\\u{1b}"),
            "{verdict}"
        );
        assert!(verdict.len() < 400, "{} bytes: {verdict}", verdict.len());
        assert!(!verdict.chars().any(char::is_control), "{verdict}");
    }

    #[test]
    fn messages_are_one_printable_line() {
        assert_eq!(percent_decode(b"a%20b%zz%"), "a b%zz%");
        assert_eq!(percent_decode(b"caf%C3%A9\r\n"), "caf\u{e9}\\r\\n");
        let long = percent_decode(&[b'x'; 500]);
        assert_eq!(long.len(), 200);
        assert_eq!(code_name(16), "UNAUTHENTICATED");
        assert_eq!(code_name(17), "(unknown code)");
    }
}
