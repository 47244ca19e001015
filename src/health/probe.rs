//! One health probe: connect (and for `http://`, send a GET and read the
//! whole response head, parsed by crate::http) under a single overall
//! deadline, with bounded reads, and turn the outcome into healthy (`Ok`)
//! or a one-line unhealthy reason (`Err`).

use std::fmt::Write as _;
use std::io::{self, Read};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use super::io::{describe_io, is_timeout, send, Deadline, TIMEOUT_CAP};
use super::resolve::{resolve, Sources};
use super::target::Target;
use crate::http::ResponseHeads;

/// One read from the socket; the head is kept in [`ResponseHeads`].
const READ_CHUNK: usize = 4096;

/// How one probe runs.
#[derive(Clone, Debug)]
pub struct ProbeOptions {
    /// Overall deadline for resolve + connect + request + response head.
    pub timeout: Duration,
    /// Extra request headers, each `Name: value` (see [`validate_header`]); a
    /// `Host`, `User-Agent` or `Connection` here replaces berth's own.
    pub headers: Vec<String>,
    /// Statuses that count as healthy; empty means any 2xx or 3xx.
    pub expect_status: Vec<u16>,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        ProbeOptions {
            timeout: Duration::from_secs(3),
            headers: Vec::new(),
            expect_status: Vec::new(),
        }
    }
}

/// One probe, bounded by options.timeout overall. Ok(()) healthy; Err(reason) unhealthy with a one-line reason.
pub fn probe(target: &Target, options: &ProbeOptions) -> Result<(), String> {
    probe_with(target, options, &Sources::system())
}

fn probe_with(target: &Target, options: &ProbeOptions, names: &Sources) -> Result<(), String> {
    let clock = Deadline::start(options.timeout);
    for header in &options.headers {
        validate_header(header)?;
    }
    let (host, port) = match target {
        Target::Http { host, port, .. }
        | Target::Tcp { host, port }
        | Target::Grpc { host, port, .. } => (host, *port),
    };
    let Some(left) = clock.remaining() else {
        return Err(clock.expired("resolving"));
    };
    let addrs = resolve(host, port, left, names)?;
    let stream = connect(&addrs, &clock)?;
    match target {
        Target::Tcp { .. } => Ok(()),
        Target::Http {
            path, host_header, ..
        } => {
            let request = build_request(path, host_header, &options.headers);
            let status = exchange(stream, request.as_bytes(), &clock)?;
            judge(status, &options.expect_status)
        }
        Target::Grpc {
            authority, service, ..
        } => super::grpc::check(stream, authority, service, &options.headers, &clock),
    }
}

/// Tries each address in order within the deadline; returns the first connection.
fn connect(addrs: &[SocketAddr], clock: &Deadline) -> Result<TcpStream, String> {
    let mut failures: Vec<(SocketAddr, String)> = Vec::new();
    for addr in addrs {
        let Some(left) = clock.remaining() else {
            return Err(clock.expired("connecting"));
        };
        match TcpStream::connect_timeout(addr, left) {
            Ok(stream) => return Ok(stream),
            Err(e) if is_timeout(&e) || clock.remaining().is_none() => {
                return Err(clock.expired("connecting"));
            }
            Err(e) => failures.push((*addr, describe_io(&e))),
        }
    }
    match failures.as_slice() {
        [] => Err("no address to connect to".to_string()),
        [(_, first), rest @ ..] if rest.iter().all(|(_, r)| r == first) => Err(first.clone()),
        _ => Err(failures
            .iter()
            .map(|(addr, reason)| format!("{addr}: {reason}"))
            .collect::<Vec<_>>()
            .join("; ")),
    }
}

fn build_request(path: &str, host_header: &str, headers: &[String]) -> String {
    let user_sets = |name: &str| {
        headers.iter().any(|h| {
            h.split_once(':')
                .is_some_and(|(n, _)| n.eq_ignore_ascii_case(name))
        })
    };
    let mut request = format!("GET {path} HTTP/1.1\r\n");
    for (name, value) in [
        ("Host", host_header),
        ("User-Agent", "berth-probe"),
        ("Connection", "close"),
    ] {
        if !user_sets(name) {
            let _ = write!(request, "{name}: {value}\r\n");
        }
    }
    for header in headers {
        let _ = write!(request, "{header}\r\n");
    }
    request.push_str("\r\n");
    request
}

/// Sends the request and reads up to the end of the final response head;
/// returns its status.
fn exchange(mut stream: TcpStream, request: &[u8], clock: &Deadline) -> Result<u16, String> {
    match send(&mut stream, request, clock) {
        Err(e) if is_timeout(&e) || clock.remaining().is_none() => {
            return Err(clock.expired("sending the request"));
        }
        // On another error the peer may have answered and closed early (e.g.
        // a 400 before reading everything): read whatever it sent.
        Ok(()) | Err(_) => {}
    }
    final_status(&mut Timed(stream), clock)
}

/// Where the response head comes from: a socket read with the time left
/// ([`Timed`]), or bytes in memory for the fuzz target ([`read_final_status`]).
trait HeadSource {
    fn read_within(&mut self, buf: &mut [u8], left: Duration) -> io::Result<usize>;
}

struct Timed(TcpStream);

impl HeadSource for Timed {
    fn read_within(&mut self, buf: &mut [u8], left: Duration) -> io::Result<usize> {
        self.0.set_read_timeout(Some(left))?;
        self.0.read(buf)
    }
}

struct Untimed<R>(R);

impl<R: Read> HeadSource for Untimed<R> {
    fn read_within(&mut self, buf: &mut [u8], _left: Duration) -> io::Result<usize> {
        self.0.read(buf)
    }
}

/// Reads a response head from `reader` as a probe does from its socket and
/// returns the final status; pure apart from `reader`, for the fuzz target
/// (a reader that returns short reads exercises every buffer boundary).
pub fn read_final_status(reader: impl Read) -> Result<u16, String> {
    final_status(&mut Untimed(reader), &Deadline::start(TIMEOUT_CAP))
}

/// Reads until the final response head is whole (interim 1xx heads
/// skipped) and returns its status: a status line alone is not an answer
/// (SPEC: a server that sends `200` and stalls is unhealthy). At most
/// [`crate::http::RESPONSE_HEAD_MAX`] bytes are read; the body never is.
fn final_status(source: &mut impl HeadSource, clock: &Deadline) -> Result<u16, String> {
    let mut heads = ResponseHeads::default();
    let mut chunk = [0u8; READ_CHUNK];
    // Bounded: each turn reads bytes (at most RESPONSE_HEAD_MAX in all),
    // or the deadline passes.
    loop {
        let Some(left) = clock.remaining() else {
            return Err(clock.expired("waiting for the response head"));
        };
        let room = heads.room().min(chunk.len());
        match source.read_within(chunk.get_mut(..room).unwrap_or_default(), left) {
            Ok(0) => return Err(heads.closed_reason()),
            Ok(n) => {
                if let Some((head, _)) = heads.feed(chunk.get(..n).unwrap_or_default())? {
                    return Ok(head.status);
                }
            }
            // Timeout or signal: the loop re-checks the deadline.
            Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset && heads.is_empty() => {
                return Err("connection closed before a status line (reset)".to_string());
            }
            Err(e) => return Err(format!("{} (reading the response head)", describe_io(&e))),
        }
    }
}

fn judge(status: u16, expect: &[u16]) -> Result<(), String> {
    let healthy = if expect.is_empty() {
        (200..400).contains(&status)
    } else {
        expect.contains(&status)
    };
    match (healthy, expect) {
        (true, _) => Ok(()),
        (false, []) => Err(format!("status {status}")),
        (false, _) => Err(format!(
            "status {status} (expected {})",
            expect
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(" or ")
        )),
    }
}

/// Validates a `--header` value (`Name: value`, token name, no CR/LF injection); usage error otherwise.
pub fn validate_header(h: &str) -> Result<(), String> {
    let Some((name, value)) = h.split_once(':') else {
        return Err(format!("header {h:?} must look like \"Name: value\""));
    };
    if name.is_empty() || !name.bytes().all(is_token_byte) {
        return Err(format!("header {h:?}: {name:?} is not a valid header name"));
    }
    if value.chars().any(|c| c != '\t' && c.is_control()) {
        return Err(format!(
            "header {h:?}: the value must not contain control characters (CR, LF, ...)"
        ));
    }
    Ok(())
}

/// RFC 9110 `tchar`.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::target::parse_target;
    use std::io::Write;
    use std::net::TcpListener;
    use std::sync::mpsc;
    use std::thread;
    use std::time::Instant;

    // ---- pure parsing ----

    #[test]
    fn headers() {
        for good in [
            "X-Probe: yes",
            "Authorization: Bearer abc.def",
            "X-Empty:",
            "x:y",
            "X-Tab: a\tb",
            "Accept: */*",
            "X-Weird!#$%&'*+-.^_`|~: v",
            "X-Utf8: caf\u{e9}",
            "Host: other.example",
        ] {
            assert_eq!(validate_header(good), Ok(()), "{good:?}");
        }
        for (bad, want) in [
            ("X-Probe yes", "must look like"),
            ("", "must look like"),
            (": value", "not a valid header name"),
            ("X Probe: yes", "not a valid header name"),
            ("X-Probe : yes", "not a valid header name"),
            ("X(Probe): yes", "not a valid header name"),
            ("X-Caf\u{e9}: yes", "not a valid header name"),
            ("X-A: b\r\nX-Injected: 1", "control characters"),
            ("X-A: b\nX-Injected: 1", "control characters"),
            ("X-A: b\r", "control characters"),
            ("X-A: b\0", "control characters"),
            ("\r\nX-A: b", "not a valid header name"),
        ] {
            let err = validate_header(bad).unwrap_err();
            assert!(err.contains(want), "{bad:?}: {err}");
            assert!(!err.contains('\n') && !err.contains('\r'), "{err}");
        }
    }

    #[test]
    fn request_text() {
        let r = build_request("/h?x=1", "app:8080", &["X-A: 1".to_string()]);
        assert_eq!(
            r,
            "GET /h?x=1 HTTP/1.1\r\nHost: app:8080\r\nUser-Agent: berth-probe\r\nConnection: close\r\nX-A: 1\r\n\r\n"
        );
        let r = build_request(
            "/",
            "app",
            &["host: other".to_string(), "user-agent: me".to_string()],
        );
        assert_eq!(
            r,
            "GET / HTTP/1.1\r\nConnection: close\r\nhost: other\r\nuser-agent: me\r\n\r\n"
        );
    }

    // ---- probes against loopback servers ----

    const SHORT: Duration = Duration::from_millis(400);
    /// Generous bound for "finished within its timeout".
    const MARGIN: Duration = Duration::from_millis(500);

    fn opts(timeout: Duration) -> ProbeOptions {
        ProbeOptions {
            timeout,
            ..ProbeOptions::default()
        }
    }

    /// Serves one connection on 127.0.0.1 with `handler`; returns the port.
    fn serve(handler: impl FnOnce(TcpStream) + Send + 'static) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        thread::spawn(move || {
            if let Ok((stream, _)) = listener.accept() {
                stream
                    .set_read_timeout(Some(Duration::from_secs(10)))
                    .unwrap();
                handler(stream);
            }
        });
        port
    }

    /// Reads a request head (up to the blank line); bounded.
    fn read_head(stream: &mut TcpStream) -> String {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && head.len() < 65536 {
            match stream.read(&mut byte) {
                Ok(1) => head.push(byte[0]),
                _ => break,
            }
        }
        String::from_utf8_lossy(&head).into_owned()
    }

    /// Reads the request, writes `response`, closes.
    fn respond(response: impl AsRef<[u8]> + Send + 'static) -> impl FnOnce(TcpStream) + Send {
        move |mut stream| {
            read_head(&mut stream);
            let _ = stream.write_all(response.as_ref());
        }
    }

    /// Reads the request, then waits until the client goes away.
    fn hold(mut stream: TcpStream) {
        read_head(&mut stream);
        let _ = stream.read(&mut [0u8; 1]);
    }

    fn http(port: u16, path: &str) -> Target {
        parse_target(&format!("http://127.0.0.1:{port}{path}")).unwrap()
    }

    fn closed_port() -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    }

    fn timed(f: impl FnOnce() -> Result<(), String>) -> (Result<(), String>, Duration) {
        let start = Instant::now();
        let result = f();
        (result, start.elapsed())
    }

    fn assert_timeout(result: Result<(), String>, elapsed: Duration, timeout: Duration) {
        let err = result.unwrap_err();
        assert!(
            err.starts_with(&format!("timeout after {timeout:?}")),
            "{err}"
        );
        assert!(elapsed < timeout + MARGIN, "took {elapsed:?}");
    }

    #[test]
    fn status_200_is_healthy() {
        let port = serve(respond("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
        assert_eq!(probe(&http(port, "/healthz"), &opts(SHORT)), Ok(()));
    }

    #[test]
    fn status_503_is_unhealthy() {
        let port = serve(respond("HTTP/1.1 503 Service Unavailable\r\n\r\n"));
        assert_eq!(
            probe(&http(port, "/healthz"), &opts(SHORT)),
            Err("status 503".to_string())
        );
    }

    #[test]
    fn status_4xx_is_unhealthy() {
        let port = serve(respond("HTTP/1.0 404 Not Found\r\n\r\n"));
        assert_eq!(
            probe(&http(port, "/"), &opts(SHORT)),
            Err("status 404".to_string())
        );
    }

    #[test]
    fn redirect_is_healthy_and_not_followed() {
        // Following the Location would hit a closed port and fail.
        let location = format!("http://127.0.0.1:{}/elsewhere", closed_port());
        let port = serve(respond(format!(
            "HTTP/1.1 301 Moved Permanently\r\nLocation: {location}\r\n\r\n"
        )));
        assert_eq!(probe(&http(port, "/"), &opts(SHORT)), Ok(()));
    }

    #[test]
    fn expect_status_replaces_the_default_rule() {
        let expect_503 = ProbeOptions {
            expect_status: vec![503],
            ..opts(SHORT)
        };
        let port = serve(respond("HTTP/1.1 503 Service Unavailable\r\n\r\n"));
        assert_eq!(probe(&http(port, "/"), &expect_503), Ok(()));

        let port = serve(respond("HTTP/1.1 200 OK\r\n\r\n"));
        assert_eq!(
            probe(&http(port, "/"), &expect_503),
            Err("status 200 (expected 503)".to_string())
        );

        let either = ProbeOptions {
            expect_status: vec![204, 418],
            ..opts(SHORT)
        };
        let port = serve(respond("HTTP/1.1 418 I'm a teapot\r\n\r\n"));
        assert_eq!(probe(&http(port, "/"), &either), Ok(()));
    }

    #[test]
    fn interim_responses_are_skipped() {
        let port = serve(respond(
            "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 503 Nope\r\n\r\n",
        ));
        assert_eq!(
            probe(&http(port, "/"), &opts(SHORT)),
            Err("status 503".to_string())
        );
    }

    #[test]
    fn connection_refused() {
        let port = closed_port();
        assert_eq!(
            probe(&http(port, "/"), &opts(SHORT)),
            Err("connection refused".to_string())
        );
    }

    #[test]
    fn tcp_open_and_refused() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let target = parse_target(&format!("tcp://127.0.0.1:{port}")).unwrap();
        assert_eq!(probe(&target, &opts(SHORT)), Ok(()));
        drop(listener);
        assert_eq!(
            probe(&target, &opts(SHORT)),
            Err("connection refused".to_string())
        );
    }

    #[test]
    fn accept_and_never_answer_times_out() {
        let port = serve(hold);
        let (result, elapsed) = timed(|| probe(&http(port, "/"), &opts(SHORT)));
        assert_timeout(result, elapsed, SHORT);
    }

    #[test]
    fn trickling_server_times_out() {
        // Every read gets a byte well within its own timeout: only the overall
        // deadline can stop this.
        let port = serve(|mut stream| {
            read_head(&mut stream);
            for &b in b"HTTP/1.1 200 OK with a long reason phrase\r\n\r\n"
                .iter()
                .cycle()
            {
                if stream.write_all(&[b]).is_err() {
                    return;
                }
                thread::sleep(Duration::from_millis(50));
            }
        });
        let (result, elapsed) = timed(|| probe(&http(port, "/"), &opts(SHORT)));
        assert_timeout(result, elapsed, SHORT);
    }

    #[test]
    fn trickle_one_byte_per_second_times_out() {
        let port = serve(|mut stream| {
            read_head(&mut stream);
            for &b in b"HTTP/1.1 200 OK\r\n\r\n" {
                if stream.write_all(&[b]).is_err() {
                    return;
                }
                thread::sleep(Duration::from_secs(1));
            }
        });
        let (result, elapsed) = timed(|| probe(&http(port, "/"), &opts(SHORT)));
        assert_timeout(result, elapsed, SHORT);
    }

    fn megabyte() -> Vec<u8> {
        vec![b'a'; 1 << 20]
    }

    #[test]
    fn status_line_then_silence_is_a_timeout_not_healthy() {
        // The whole status line and a header, then nothing: half an answer.
        let port = serve(|mut stream| {
            read_head(&mut stream);
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n");
            let _ = stream.read(&mut [0u8; 1]);
        });
        let (result, elapsed) = timed(|| probe(&http(port, "/"), &opts(SHORT)));
        let err = result.clone().unwrap_err();
        assert!(err.ends_with("(waiting for the response head)"), "{err}");
        assert_timeout(result, elapsed, SHORT);
    }

    #[test]
    fn endless_head_is_unhealthy_without_reading_past_64_kib() {
        let port = serve(|mut stream| {
            read_head(&mut stream);
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\n");
            while stream.write_all(b"X-More: and more and more\r\n").is_ok() {}
        });
        let (result, elapsed) = timed(|| probe(&http(port, "/"), &opts(Duration::from_secs(5))));
        assert_eq!(result, Err("response head over 64 KiB".to_string()));
        assert!(elapsed < Duration::from_secs(1), "took {elapsed:?}");
    }

    #[test]
    fn oversized_head_is_unhealthy() {
        let mut response = b"HTTP/1.1 200 OK\r\nX-Big: ".to_vec();
        response.extend(megabyte());
        response.extend(b"\r\n\r\n");
        let port = serve(respond(response));
        let (result, elapsed) = timed(|| probe(&http(port, "/"), &opts(Duration::from_secs(5))));
        assert_eq!(result, Err("response head over 64 KiB".to_string()));
        assert!(elapsed < Duration::from_secs(1), "took {elapsed:?}");
    }

    #[test]
    fn a_head_just_under_64_kib_is_healthy_and_the_body_is_not_read() {
        let mut response = b"HTTP/1.1 200 OK\r\n".to_vec();
        while response.len() < 60 * 1024 {
            response.extend(b"X-Filler: 0123456789abcdef\r\n");
        }
        response.extend(b"Content-Length: 1048576\r\n\r\n");
        response.extend(megabyte());
        let port = serve(respond(response));
        assert_eq!(
            probe(&http(port, "/"), &opts(Duration::from_secs(5))),
            Ok(())
        );
    }

    #[test]
    fn huge_status_line_is_bounded() {
        let mut response = b"HTTP/1.1 200 ".to_vec();
        response.extend(megabyte());
        let port = serve(respond(response));
        let (result, elapsed) = timed(|| probe(&http(port, "/"), &opts(Duration::from_secs(5))));
        assert_eq!(result, Err("response head over 64 KiB".to_string()));
        assert!(elapsed < Duration::from_secs(1), "took {elapsed:?}");
    }

    #[test]
    fn huge_interim_response_is_bounded() {
        let mut response = b"HTTP/1.1 103 Early Hints\r\n".to_vec();
        for _ in 0..(1 << 20) / 32 {
            response.extend(b"Link: </some/asset.css>; x=y\r\n");
        }
        let port = serve(respond(response));
        let (result, elapsed) = timed(|| probe(&http(port, "/"), &opts(Duration::from_secs(5))));
        assert_eq!(result, Err("response head over 64 KiB".to_string()));
        assert!(elapsed < Duration::from_secs(1), "took {elapsed:?}");
    }

    #[test]
    fn garbage_is_malformed() {
        let mut garbage = b"\x16\x03\x01 not http at all".to_vec();
        garbage.extend(megabyte());
        let port = serve(respond(garbage));
        let (result, elapsed) = timed(|| probe(&http(port, "/"), &opts(Duration::from_secs(5))));
        let err = result.unwrap_err();
        assert!(err.starts_with("malformed status line"), "{err}");
        assert!(!err.contains('\n') && err.len() < 120, "{err}");
        assert!(elapsed < Duration::from_secs(1), "took {elapsed:?}");

        let port = serve(respond("SSH-2.0-OpenSSH_9.6\r\n"));
        let err = probe(&http(port, "/"), &opts(SHORT)).unwrap_err();
        assert!(err.starts_with("malformed status line"), "{err}");

        let port = serve(respond("HTTP/1.1 OK\r\n\r\n"));
        let err = probe(&http(port, "/"), &opts(SHORT)).unwrap_err();
        assert_eq!(err, "malformed status line: \"HTTP/1.1 OK\"");

        let port = serve(respond("HTTP/1.1 200 OK\r\nNo Colon Here\r\n\r\n"));
        let err = probe(&http(port, "/"), &opts(SHORT)).unwrap_err();
        assert_eq!(err, "malformed response head: invalid header name");
    }

    #[test]
    fn accept_then_close() {
        let port = serve(drop);
        let err = probe(&http(port, "/"), &opts(SHORT)).unwrap_err();
        assert!(
            err.starts_with("connection closed before a status line"),
            "{err}"
        );

        // Closing after a partial status line.
        let port = serve(respond("HTTP/1.1 2"));
        let err = probe(&http(port, "/"), &opts(SHORT)).unwrap_err();
        assert_eq!(err, "connection closed in the middle of a status line");
    }

    #[test]
    fn custom_headers_are_sent() {
        let (tx, rx) = mpsc::channel();
        let port = serve(move |mut stream| {
            let head = read_head(&mut stream);
            let _ = stream.write_all(b"HTTP/1.1 204 No Content\r\n\r\n");
            let _ = tx.send(head);
        });
        let options = ProbeOptions {
            headers: vec![
                "X-Probe: yes".to_string(),
                "Authorization: Bearer t0k".to_string(),
            ],
            ..opts(SHORT)
        };
        assert_eq!(probe(&http(port, "/ready?full=1"), &options), Ok(()));
        let head = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        let lines: Vec<&str> = head.split("\r\n").collect();
        assert_eq!(lines[0], "GET /ready?full=1 HTTP/1.1");
        for want in [
            format!("Host: 127.0.0.1:{port}"),
            "User-Agent: berth-probe".to_string(),
            "Connection: close".to_string(),
            "X-Probe: yes".to_string(),
            "Authorization: Bearer t0k".to_string(),
        ] {
            assert!(lines.contains(&want.as_str()), "{want:?} not in {head:?}");
        }
    }

    #[test]
    fn user_host_header_replaces_the_default() {
        let (tx, rx) = mpsc::channel();
        let port = serve(move |mut stream| {
            let head = read_head(&mut stream);
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\n\r\n");
            let _ = tx.send(head);
        });
        let options = ProbeOptions {
            headers: vec!["host: app.example".to_string()],
            ..opts(SHORT)
        };
        assert_eq!(probe(&http(port, "/"), &options), Ok(()));
        let head = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(
            head.to_ascii_lowercase().matches("host:").count(),
            1,
            "{head}"
        );
        assert!(head.contains("host: app.example\r\n"), "{head}");
    }

    #[test]
    fn invalid_header_is_refused_before_connecting() {
        let options = ProbeOptions {
            headers: vec!["X-A: b\r\nX-Injected: 1".to_string()],
            ..opts(SHORT)
        };
        let err = probe(&http(closed_port(), "/"), &options).unwrap_err();
        assert!(err.contains("control characters"), "{err}");
    }

    #[test]
    fn zero_timeout_fails_at_once() {
        let port = serve(respond("HTTP/1.1 200 OK\r\n\r\n"));
        let err = probe(&http(port, "/"), &opts(Duration::ZERO)).unwrap_err();
        assert!(err.starts_with("timeout after 0ns"), "{err}");
    }

    #[test]
    fn huge_timeout_does_not_overflow() {
        let port = serve(respond("HTTP/1.1 200 OK\r\n\r\n"));
        assert_eq!(probe(&http(port, "/"), &opts(Duration::MAX)), Ok(()));
    }

    struct TempHosts(std::path::PathBuf);

    impl TempHosts {
        fn new(tag: &str, contents: &str) -> TempHosts {
            let path =
                std::env::temp_dir().join(format!("berth-probe-test-{}-{tag}", std::process::id()));
            std::fs::write(&path, contents).unwrap();
            TempHosts(path)
        }
    }

    impl TempHosts {
        fn names(&self) -> Sources<'_> {
            Sources {
                hosts: &self.0,
                resolv_conf: std::path::Path::new("/nonexistent/resolv.conf"),
            }
        }
    }

    impl Drop for TempHosts {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    #[test]
    fn names_come_from_the_hosts_file() {
        let hosts = TempHosts::new("names", "# test\n127.0.0.1 app.internal App\n");
        let port = serve(respond("HTTP/1.1 200 OK\r\n\r\n"));
        let target = parse_target(&format!("http://APP:{port}/healthz")).unwrap();
        assert_eq!(probe_with(&target, &opts(SHORT), &hosts.names()), Ok(()));
    }

    #[test]
    fn addresses_are_tried_in_order() {
        // ::1 first (refused or unavailable: nothing listens there), then 127.0.0.1.
        let hosts = TempHosts::new("order", "::1 multi\n127.0.0.1 multi\n");
        let port = serve(respond("HTTP/1.1 200 OK\r\n\r\n"));
        let target = parse_target(&format!("http://multi:{port}/")).unwrap();
        assert_eq!(probe_with(&target, &opts(SHORT), &hosts.names()), Ok(()));

        // All refused: one reason, or one per address when they differ.
        let target = parse_target(&format!("tcp://multi:{}", closed_port())).unwrap();
        let err = probe_with(&target, &opts(SHORT), &hosts.names()).unwrap_err();
        assert!(err.contains("connection refused"), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }

    #[test]
    fn ipv6_loopback() {
        let Ok(listener) = TcpListener::bind("[::1]:0") else {
            println!("note: IPv6 loopback unavailable, skipping the [::1] probe test");
            return;
        };
        let port = listener.local_addr().unwrap().port();
        thread::spawn(move || {
            if let Ok((stream, _)) = listener.accept() {
                respond("HTTP/1.1 200 OK\r\n\r\n")(stream);
            }
        });
        let target = parse_target(&format!("http://[::1]:{port}/healthz")).unwrap();
        assert_eq!(probe(&target, &opts(SHORT)), Ok(()));
    }
}
