//! `httpd`: a tiny HTTP/1.1 server for berth's tests and container tests
//! (std only, plus `libc` for the SIGTERM handler).
//!
//! ```text
//! httpd [--port N] [--addr IP] [--on-term stop|finish] [--delay-ms N] [--file-health PATH]
//!       [--listen-after-ms N]
//! ```
//!
//! - `--listen-after-ms`: sleeps that long before it binds (a database
//!   that starts listening late, for `--wait-for` tests);
//! - prints `listening on ADDR:PORT` (the real port, also with `--port 0`) once bound;
//! - `GET /healthz` → 200 `ok`, or 503 `unhealthy` after `/healthz/fail` or
//!   while the `--file-health` file exists; `GET`/`POST /healthz/fail` and
//!   `/healthz/ok` flip the flag;
//! - `GET /slow?ms=N` → 200 after sleeping N ms (at most 60 s): a request
//!   that is still in flight when the stop comes (`berth drill`'s tests);
//! - any other path → 200 after sleeping `--delay-ms` (simulated work);
//! - keep-alive per HTTP/1.1 (Content-Length always set), a thread per connection;
//! - on SIGTERM prints `got SIGTERM`, then `--on-term stop` (default) exits 0 at
//!   once, `--on-term finish` stops accepting, finishes the requests in flight,
//!   then exits 0.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use std::{env, process, thread};

const USAGE: &str =
    "usage: httpd [--port N (default 8080; 0 = any)] [--addr IP (default 127.0.0.1)] \
[--on-term stop|finish] [--delay-ms N] [--file-health PATH] [--listen-after-ms N]";

/// How often idle loops look at the SIGTERM flag.
const POLL: Duration = Duration::from_millis(20);
/// A client must send a whole request within this once it has started.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_HEAD: usize = 16 * 1024;
const MAX_BODY: usize = 1 << 20;

static GOT_TERM: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigterm(_: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    GOT_TERM.store(true, Ordering::SeqCst);
}

struct Config {
    addr: IpAddr,
    port: u16,
    finish: bool,
    delay: Duration,
    file_health: Option<PathBuf>,
    listen_after: Duration,
}

struct State {
    config: Config,
    healthy: AtomicBool,
    work: Mutex<Work>,
    idle: Condvar,
}

#[derive(Default)]
struct Work {
    /// Requests in flight (from their first byte to the end of the response).
    busy: usize,
    stopping: bool,
}

impl State {
    fn work(&self) -> MutexGuard<'_, Work> {
        self.work.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn stopping(&self) -> bool {
        self.work().stopping
    }

    fn healthy(&self) -> bool {
        let file_says_unhealthy = self.config.file_health.as_ref().is_some_and(|p| p.exists());
        self.healthy.load(Ordering::SeqCst) && !file_says_unhealthy
    }
}

/// Counts one request in flight while alive.
struct Busy<'a>(&'a State);

impl<'a> Busy<'a> {
    fn start(state: &'a State) -> Busy<'a> {
        state.work().busy += 1;
        Busy(state)
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.work().busy -= 1;
        self.0.idle.notify_all();
    }
}

fn main() {
    let config = parse_args(env::args().skip(1)).unwrap_or_else(|msg| {
        eprintln!("httpd: {msg}\n{USAGE}");
        process::exit(2)
    });
    // SAFETY: `on_sigterm` is an `extern "C" fn(c_int)` that only stores to an
    // atomic, which is async-signal-safe; installing it races with nothing as
    // no other thread exists yet.
    unsafe {
        libc::signal(
            libc::SIGTERM,
            on_sigterm as extern "C" fn(libc::c_int) as *const () as libc::sighandler_t,
        );
    }
    thread::sleep(config.listen_after);
    let listener = TcpListener::bind((config.addr, config.port))
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .unwrap_or_else(|e| {
            eprintln!(
                "httpd: cannot listen on {}:{}: {e}",
                config.addr, config.port
            );
            process::exit(1)
        });
    match listener.local_addr() {
        Ok(addr) => println!("listening on {addr}"),
        Err(e) => println!("listening on ?: {e}"),
    }
    let _ = io::stdout().flush();

    let state = Arc::new(State {
        config,
        healthy: AtomicBool::new(true),
        work: Mutex::new(Work::default()),
        idle: Condvar::new(),
    });
    loop {
        if GOT_TERM.load(Ordering::SeqCst) {
            terminate(&state, listener);
        }
        match listener.accept() {
            Ok((stream, _)) => {
                let state = Arc::clone(&state);
                thread::spawn(move || serve(stream, &state));
            }
            // Nothing to accept (or e.g. out of fds): look at the flag again soon.
            Err(_) => thread::sleep(POLL),
        }
    }
}

fn terminate(state: &State, listener: TcpListener) -> ! {
    println!("got SIGTERM");
    let _ = io::stdout().flush();
    if !state.config.finish {
        process::exit(0);
    }
    drop(listener); // stop accepting: new connections are refused
    let mut work = state.work();
    work.stopping = true;
    while work.busy > 0 {
        work = state
            .idle
            .wait(work)
            .unwrap_or_else(PoisonError::into_inner);
    }
    process::exit(0)
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Config, String> {
    let mut config = Config {
        addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
        port: 8080,
        finish: false,
        delay: Duration::ZERO,
        file_health: None,
        listen_after: Duration::ZERO,
    };
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--port" => config.port = value()?.parse().map_err(|_| "bad --port")?,
            "--addr" => {
                let v = value()?;
                let bare = v.trim_start_matches('[').trim_end_matches(']');
                config.addr = bare.parse().map_err(|_| format!("bad --addr {v:?}"))?;
            }
            "--on-term" => {
                config.finish = match value()?.as_str() {
                    "stop" => false,
                    "finish" => true,
                    other => return Err(format!("bad --on-term {other:?}: stop or finish")),
                }
            }
            "--delay-ms" => {
                let ms = value()?.parse().map_err(|_| "bad --delay-ms")?;
                config.delay = Duration::from_millis(ms);
            }
            "--file-health" => config.file_health = Some(PathBuf::from(value()?)),
            "--listen-after-ms" => {
                let ms = value()?.parse().map_err(|_| "bad --listen-after-ms")?;
                config.listen_after = Duration::from_millis(ms);
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                process::exit(0)
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(config)
}

/// Serves requests on one connection until it closes, errs, or we are stopping.
fn serve(mut stream: TcpStream, state: &State) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(POLL));
    let _ = stream.set_write_timeout(Some(REQUEST_TIMEOUT));
    let mut buf = Vec::new();
    loop {
        let mut busy = None;
        let mut started = Instant::now();
        let head_len = loop {
            if !buf.is_empty() && busy.is_none() {
                busy = Some(Busy::start(state));
                started = Instant::now();
            }
            if let Some(i) = find(&buf, b"\r\n\r\n") {
                break i + 4;
            }
            if buf.len() > MAX_HEAD {
                let _ = respond(&mut stream, 431, "request head too large", false, false);
                return;
            }
            let idle_and_stopping = busy.is_none() && state.stopping();
            if idle_and_stopping || (busy.is_some() && started.elapsed() > REQUEST_TIMEOUT) {
                return;
            }
            if !read_some(&mut stream, &mut buf) {
                return;
            }
        };
        let head: Vec<u8> = buf.drain(..head_len).collect();
        let Some(request) = Request::parse(&head) else {
            let _ = respond(&mut stream, 400, "bad request", false, false);
            return;
        };
        if request.content_length > MAX_BODY {
            let _ = respond(&mut stream, 413, "body too large", false, false);
            return;
        }
        while buf.len() < request.content_length {
            if started.elapsed() > REQUEST_TIMEOUT || !read_some(&mut stream, &mut buf) {
                return;
            }
        }
        buf.drain(..request.content_length); // the body is not used

        let (status, body) = route(&request, state);
        let keep_alive = request.keep_alive && !state.stopping();
        let head_only = request.method == "HEAD";
        if respond(&mut stream, status, body, keep_alive, head_only).is_err() || !keep_alive {
            return;
        }
        drop(busy);
    }
}

/// Reads what is there into `buf`; false when the connection is done.
fn read_some(stream: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 4096];
    match stream.read(&mut chunk) {
        Ok(0) => false,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            true
        }
        Err(e) => matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
        ),
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

struct Request {
    method: String,
    path: String,
    query: String,
    content_length: usize,
    keep_alive: bool,
}

impl Request {
    fn parse(head: &[u8]) -> Option<Request> {
        let text = std::str::from_utf8(head).ok()?;
        let mut lines = text.lines();
        let mut parts = lines.next()?.split(' ');
        let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || !version.starts_with("HTTP/1.") {
            return None;
        }
        let mut content_length = 0;
        let mut connection = String::new();
        for line in lines.take_while(|l| !l.is_empty()) {
            let (name, value) = line.split_once(':')?;
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                content_length = value.parse().ok()?;
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                return None; // chunked request bodies are not supported
            } else if name.eq_ignore_ascii_case("connection") {
                connection = value.to_ascii_lowercase();
            }
        }
        let keep_alive = if version == "HTTP/1.0" {
            connection.contains("keep-alive")
        } else {
            !connection.contains("close")
        };
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        Some(Request {
            method: method.to_string(),
            path: path.to_string(),
            query: query.to_string(),
            content_length,
            keep_alive,
        })
    }
}

fn route(request: &Request, state: &State) -> (u16, &'static str) {
    match (request.method.as_str(), request.path.as_str()) {
        ("GET" | "HEAD", "/healthz") if state.healthy() => (200, "ok"),
        ("GET" | "HEAD", "/healthz") => (503, "unhealthy"),
        ("GET" | "POST", "/healthz/fail") => {
            state.healthy.store(false, Ordering::SeqCst);
            (200, "now unhealthy")
        }
        ("GET" | "POST", "/healthz/ok") => {
            state.healthy.store(true, Ordering::SeqCst);
            (200, "now healthy")
        }
        (_, "/healthz" | "/healthz/fail" | "/healthz/ok") => (405, "method not allowed"),
        ("GET" | "HEAD", "/slow") => {
            let ms: u64 = request
                .query
                .split('&')
                .find_map(|kv| kv.strip_prefix("ms="))
                .and_then(|v| v.parse().ok())
                .unwrap_or(1000);
            thread::sleep(Duration::from_millis(ms.min(60_000)));
            (200, "slow hello from httpd")
        }
        _ => {
            thread::sleep(state.config.delay);
            (200, "hello from httpd")
        }
    }
}

fn respond(
    stream: &mut TcpStream,
    status: u16,
    body: &str,
    keep_alive: bool,
    head_only: bool,
) -> io::Result<()> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        405 => "Method Not Allowed",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "",
    };
    let connection = if keep_alive { "keep-alive" } else { "close" };
    let mut message = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: {connection}\r\n\r\n",
        body.len()
    );
    if !head_only {
        message.push_str(body);
    }
    stream.write_all(message.as_bytes())?;
    stream.flush()
}
