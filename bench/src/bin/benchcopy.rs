//! The limit of the log figure (issue 26): a copier that does to the app's
//! bytes only what berth's JSON mode must do, and nothing else. It runs the
//! app with its stdout a pipe, reads that pipe, writes HEAD before each line
//! (the line itself, newline included, copied as it is) to its own stdout,
//! and exits with the app's status.
//!
//! `benchcopy HEAD -- APP [ARGS]`
//!
//! With berth's pipe sizes in a flood (logs/flood.rs: `--log-pipe-size`
//! 512 KiB for stdout, a quarter of that for the app's pipe and the read
//! buffer), set from the start rather than grown at the first full pipe.
//! What it leaves out, where berth pays: the event loop (epoll, non-blocking
//! writes, backpressure), the timestamp, the check of each line for
//! characters JSON must escape, and the closing `"}`. Blocking reads and
//! writes: one `read`, then one `write` of all the lines it held.

use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};

/// berth's stdout pipe in a flood (`--log-pipe-size` default).
const OUT_PIPE: usize = 512 * 1024;
/// berth's app pipes and read buffer in a flood: a quarter of it.
const IN_PIPE: usize = OUT_PIPE / 4;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 || args[2] != "--" {
        die("usage: benchcopy HEAD -- APP [ARGS]");
    }
    let head = args[1].as_bytes();
    // A stdout that is not a pipe keeps its size (EBADF / EINVAL).
    set_pipe_size(1, OUT_PIPE);
    let mut app = Command::new(&args[3])
        .args(&args[4..])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| die(&format!("{}: {e}", args[3])));
    let pipe = app.stdout.take().unwrap_or_else(|| die("no pipe"));
    let fd = pipe.as_raw_fd();
    set_pipe_size(fd, IN_PIPE);
    let mut buf = vec![0u8; IN_PIPE];
    // Room for a full read of the shortest lines (a newline each).
    let mut out = Vec::with_capacity(IN_PIPE * (head.len() + 1));
    let mut carry: Vec<u8> = Vec::new();
    loop {
        let n = read(fd, &mut buf);
        if n == 0 {
            break;
        }
        let mut data = &buf[..n];
        if !carry.is_empty() {
            let Some(nl) = memchr::memchr(b'\n', data) else {
                carry.extend_from_slice(data);
                continue;
            };
            out.extend_from_slice(head);
            out.extend_from_slice(&carry);
            out.extend_from_slice(&data[..=nl]);
            carry.clear();
            data = &data[nl + 1..];
        }
        let mut start = 0;
        for nl in memchr::memchr_iter(b'\n', data) {
            out.extend_from_slice(head);
            out.extend_from_slice(&data[start..=nl]);
            start = nl + 1;
        }
        carry.extend_from_slice(&data[start..]);
        write_all(&out);
        out.clear();
    }
    if !carry.is_empty() {
        out.extend_from_slice(head);
        out.extend_from_slice(&carry);
        write_all(&out);
    }
    let st = app.wait().unwrap_or_else(|e| die(&format!("wait: {e}")));
    std::process::exit(st.code().unwrap_or(1));
}

fn die(msg: &str) -> ! {
    eprintln!("benchcopy: {msg}");
    std::process::exit(2)
}

fn set_pipe_size(fd: i32, bytes: usize) {
    // SAFETY: fcntl F_SETPIPE_SZ takes an int and touches no memory.
    unsafe { libc::fcntl(fd, libc::F_SETPIPE_SZ, bytes as libc::c_int) };
}

fn read(fd: i32, buf: &mut [u8]) -> usize {
    loop {
        // SAFETY: buf is valid for buf.len() bytes.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            return n as usize;
        }
        if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            die(&format!("read: {}", std::io::Error::last_os_error()));
        }
    }
}

fn write_all(mut b: &[u8]) {
    while !b.is_empty() {
        // SAFETY: b is valid for b.len() bytes.
        let n = unsafe { libc::write(1, b.as_ptr().cast(), b.len()) };
        if n > 0 {
            b = &b[n as usize..];
        } else if n < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted
        {
            die(&format!("write: {}", std::io::Error::last_os_error()));
        }
    }
}
