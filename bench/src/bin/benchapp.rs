//! The apps the bench runs under each init (one binary, the first argument
//! picks the app). Each one reports to the driver through a FIFO or file
//! named on its command line, never through an inherited fd: inits differ in
//! which fds they pass on.
//!
//! - `idle FIFO`: writes one byte to FIFO, then sleeps forever.
//! - `spew N`: writes N lines of 100 bytes (`%08d` sequence number, 91 `x`,
//!   newline) to stdout in 64 KiB writes.
//! - `sigwait FIFO`: blocks SIGUSR1, writes 8 zero bytes (ready), then for
//!   each SIGUSR1 taken with sigwaitinfo writes its CLOCK_MONOTONIC arrival
//!   time (8 bytes, native endian).
//! - `stubborn FIFO`: ignores SIGTERM, writes one byte, sleeps forever.
//! - `orphans N FILE`: makes N processes orphans of PID 1, releases them all
//!   at once, watches /proc/1/task/1/children until only itself is left,
//!   and writes `left lag_ns total_ns` to FILE.

#[path = "../clock.rs"]
mod clock;

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize| -> &str {
        match args.get(i) {
            Some(a) => a,
            None => die("missing argument"),
        }
    };
    match arg(1) {
        "idle" => {
            notify(arg(2), b"r");
            sleep_forever()
        }
        "spew" => spew(arg(2).parse().unwrap_or_else(|_| die("spew N"))),
        "sigwait" => sigwait(arg(2)),
        "stubborn" => {
            // SAFETY: setting a signal disposition to SIG_IGN has no preconditions.
            unsafe { libc::signal(libc::SIGTERM, libc::SIG_IGN) };
            notify(arg(2), b"r");
            sleep_forever()
        }
        "orphans" => orphans(arg(2).parse().unwrap_or_else(|_| die("orphans N")), arg(3)),
        other => die(&format!("unknown app {other}")),
    }
}

fn die(msg: &str) -> ! {
    eprintln!("benchapp: {msg}");
    std::process::exit(2)
}

fn open_fifo(path: &str) -> std::fs::File {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap_or_else(|e| die(&format!("{path}: {e}")))
}

/// Writes `msg` to the FIFO and keeps it open for the process's life (the
/// driver sees POLLHUP when the app is gone).
fn notify(path: &str, msg: &[u8]) {
    let mut f = open_fifo(path);
    f.write_all(msg)
        .unwrap_or_else(|e| die(&format!("{path}: {e}")));
    std::mem::forget(f);
}

fn sleep_forever() -> ! {
    loop {
        // SAFETY: pause has no preconditions.
        unsafe { libc::pause() };
    }
}

fn spew(n: u64) {
    let mut buf = Vec::with_capacity(64 * 1024 + 100);
    let mut out = std::io::stdout().lock();
    for i in 0..n {
        let _ = write!(buf, "{i:08}");
        buf.extend_from_slice(&[b'x'; 91]);
        buf.push(b'\n');
        if buf.len() >= 64 * 1024 {
            out.write_all(&buf)
                .unwrap_or_else(|e| die(&format!("stdout: {e}")));
            buf.clear();
        }
    }
    out.write_all(&buf)
        .unwrap_or_else(|e| die(&format!("stdout: {e}")));
}

fn sigwait(path: &str) {
    // SAFETY: set is a valid sigset_t, initialised by sigemptyset before use.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGUSR1);
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    };
    let mut f = open_fifo(path);
    f.write_all(&0u64.to_ne_bytes())
        .unwrap_or_else(|e| die(&format!("{path}: {e}")));
    loop {
        // SAFETY: set is initialised; a null siginfo pointer is allowed.
        let sig = unsafe { libc::sigwaitinfo(&set, std::ptr::null_mut()) };
        let t = clock::mono_ns();
        if sig == libc::SIGUSR1 && f.write_all(&t.to_ne_bytes()).is_err() {
            std::process::exit(0); // the driver is gone
        }
    }
}

/// N orphans landing at once: a middle process forks N children that block
/// on a gate pipe, then exits, so they are re-parented to PID 1 (the init);
/// the app then closes the gate and every child records its exit time in a
/// shared page and exits. The app polls PID 1's children list until it
/// holds only the app: that moment minus the last child's exit time is the
/// lag; the count left after 10 s is `left`.
fn orphans(n: usize, result: &str) {
    let bytes = n.max(1) * 8;
    // SAFETY: an anonymous shared mapping of `bytes` bytes, checked below.
    let shm = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            bytes,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if shm == libc::MAP_FAILED {
        die("mmap failed");
    }
    let times = shm as *mut u64;
    let mut gate = [0i32; 2];
    // SAFETY: gate is a valid 2-int array.
    if unsafe { libc::pipe(gate.as_mut_ptr()) } != 0 {
        die("pipe failed");
    }
    // SAFETY: the app is single-threaded; the children only call
    // async-signal-safe functions (close, read, clock_gettime, _exit).
    let middle = unsafe { libc::fork() };
    if middle < 0 {
        die("fork failed");
    }
    if middle == 0 {
        for i in 0..n {
            // SAFETY: as above.
            let c = unsafe { libc::fork() };
            if c == 0 {
                // SAFETY: async-signal-safe calls only; times has n slots.
                unsafe {
                    libc::close(gate[1]);
                    let mut b = 0u8;
                    libc::read(gate[0], (&mut b as *mut u8).cast(), 1);
                    *times.add(i) = clock::mono_ns();
                    libc::_exit(0);
                }
            }
            if c < 0 {
                // SAFETY: _exit is always safe.
                unsafe { libc::_exit(3) };
            }
        }
        // SAFETY: _exit is always safe.
        unsafe { libc::_exit(0) };
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(middle, &mut status, 0) };
    if status != 0 {
        die("the middle process could not fork every orphan");
    }
    let me = std::process::id().to_string();
    // Every orphan now belongs to PID 1; release them.
    let t_release = clock::mono_ns();
    // SAFETY: closing our own fds.
    unsafe {
        libc::close(gate[1]);
        libc::close(gate[0]);
    }
    let deadline = t_release + 10_000_000_000;
    let mut left;
    let mut t_done;
    loop {
        let list = std::fs::read_to_string("/proc/1/task/1/children").unwrap_or_default();
        t_done = clock::mono_ns();
        left = list.split_whitespace().filter(|p| *p != me).count();
        if left == 0 || t_done > deadline {
            break;
        }
    }
    // SAFETY: times has n initialised slots (each child wrote one before it
    // exited; all have exited when left == 0; otherwise read what is there).
    let last_exit = (0..n)
        .map(|i| unsafe { *times.add(i) })
        .max()
        .unwrap_or(t_release);
    let lag = t_done.saturating_sub(last_exit);
    let line = format!("{left} {lag} {}\n", t_done - t_release);
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(result)
        .and_then(|mut f| f.write_all(line.as_bytes()))
        .unwrap_or_else(|e| die(&format!("{result}: {e}")));
}
