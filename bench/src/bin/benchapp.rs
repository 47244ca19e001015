//! The apps the bench runs under each init (one binary, the first argument
//! picks the app). Each one reports to the driver through a FIFO or file
//! named on its command line, never through an inherited fd: inits differ in
//! which fds they pass on.
//!
//! - `idle FIFO`: writes one byte to FIFO, then sleeps forever.
//! - `spew N [--size BYTES] [--json]`: writes N lines to stdout in writes
//!   of about 64 KiB: of BYTES bytes (default 100: `%08d` sequence number,
//!   then `x` up to the newline), or with `--json` app JSON objects of 100
//!   bytes,
//!   `{"level":"info","msg":"request served","req":"%08d","path":"/api/v1/items","status":200,"ms":3}`.
//!   The block is built once; each write only steps the 8 ASCII digits of
//!   each of its lines in place, so the producer runs at memory speed and is
//!   never what a log figure measures (issue 26: formatting every line with
//!   `write!` held it at ~0.9 GB/s, `cat`'s pace). N < 10^8.
//! - `spew-idle N FIFO`: `spew N`, then writes one byte to FIFO and sleeps
//!   forever (memory after a flood).
//! - `sigwait FIFO`: blocks SIGUSR1, writes 8 zero bytes (ready), then for
//!   each SIGUSR1 taken with sigwaitinfo writes its CLOCK_MONOTONIC arrival
//!   time (8 bytes, native endian).
//! - `stubborn FIFO`: ignores SIGTERM, writes one byte, sleeps forever.
//! - `orphans N FILE`: makes N processes orphans of PID 1, releases them all
//!   at once, and writes `left lag_ns total_ns` to FILE: the lag runs from
//!   the moment the last of them is a zombie (pidfds) until PID 1's children
//!   list holds only the app.

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
        "spew" => {
            let n = arg(2).parse().unwrap_or_else(|_| die("spew N"));
            let (mut size, mut json) = (100, false);
            let mut i = 3;
            while let Some(a) = args.get(i) {
                match a.as_str() {
                    "--json" => json = true,
                    "--size" => {
                        i += 1;
                        size = arg(i)
                            .parse()
                            .ok()
                            .filter(|&s| s >= 10)
                            .unwrap_or_else(|| die("--size BYTES (at least 10)"));
                    }
                    other => die(&format!("spew: unknown option {other}")),
                }
                i += 1;
            }
            spew(n, size, json)
        }
        "spew-idle" => {
            spew(
                arg(2).parse().unwrap_or_else(|_| die("spew-idle N FIFO")),
                100,
                false,
            );
            notify(arg(3), b"r");
            sleep_forever()
        }
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

/// The JSON line `spew --json` writes (its digits are the `00000000`).
const JSON_LINE: &[u8] =
    b"{\"level\":\"info\",\"msg\":\"request served\",\"req\":\"00000000\",\"path\":\"/api/v1/items\",\"status\":200,\"ms\":3}\n";
/// About this many bytes per write.
const BLOCK: usize = 64 * 1024;

fn spew(n: u64, size: usize, json: bool) {
    if n >= 100_000_000 {
        die("spew: N must stay below 10^8 (8 digits)");
    }
    let (line, at) = if json {
        let at = JSON_LINE.windows(8).position(|w| w == b"00000000");
        (JSON_LINE.to_vec(), at.unwrap_or_else(|| die("no digits")))
    } else {
        let mut l = vec![b'x'; size];
        l[size - 1] = b'\n';
        (l, 0)
    };
    let len = line.len();
    let per = (BLOCK / len).max(1);
    let mut block = line.repeat(per);
    let mut seq = *b"00000000";
    let mut out = std::io::stdout().lock();
    let mut left = n;
    while left > 0 {
        let k = left.min(per as u64) as usize;
        for l in block.chunks_exact_mut(len).take(k) {
            l[at..at + 8].copy_from_slice(&seq);
            step(&mut seq);
        }
        out.write_all(&block[..k * len])
            .unwrap_or_else(|e| die(&format!("stdout: {e}")));
        left -= k as u64;
    }
}

/// The next number in 8 ASCII digits, in place.
fn step(seq: &mut [u8; 8]) {
    for c in seq.iter_mut().rev() {
        if *c == b'9' {
            *c = b'0';
        } else {
            *c += 1;
            return;
        }
    }
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
/// on a gate pipe, records their pids in a shared page, then exits, so they
/// are re-parented to PID 1 (the init). The app opens a pidfd for each (it
/// turns readable when that process becomes a zombie), closes the gate, and
/// waits until every one has become a zombie; from that moment it reads
/// PID 1's children list until it holds only the app. The lag is that
/// wait: how long the last zombie outlives its death. (Asking each pidfd
/// with signal 0 instead costs a pass over all N, ~5 ms for 10,000, which
/// swamped the figure.) `left` is what remains after 10 s.
fn orphans(n: usize, result: &str) {
    let bytes = n.max(1) * 4;
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
    let pids = shm as *mut i32;
    raise_nofile(n + 64);
    let mut gate = [0i32; 2];
    // SAFETY: gate is a valid 2-int array.
    if unsafe { libc::pipe(gate.as_mut_ptr()) } != 0 {
        die("pipe failed");
    }
    // SAFETY: the app is single-threaded; the children only call
    // async-signal-safe functions (close, read, _exit).
    let middle = unsafe { libc::fork() };
    if middle < 0 {
        die("fork failed");
    }
    if middle == 0 {
        for i in 0..n {
            // SAFETY: as above.
            let c = unsafe { libc::fork() };
            if c == 0 {
                // SAFETY: async-signal-safe calls only.
                unsafe {
                    libc::close(gate[1]);
                    let mut b = 0u8;
                    libc::read(gate[0], (&mut b as *mut u8).cast(), 1);
                    libc::_exit(0);
                }
            }
            if c < 0 {
                // SAFETY: _exit is always safe.
                unsafe { libc::_exit(3) };
            }
            // SAFETY: pids has n slots.
            unsafe { *pids.add(i) = c };
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
    // SAFETY: epoll_create1 has no memory preconditions.
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if ep < 0 {
        die("epoll_create1 failed");
    }
    for i in 0..n {
        // SAFETY: pids has n slots written by the middle before it exited.
        let pid = unsafe { *pids.add(i) };
        // SAFETY: pidfd_open takes a pid and flags.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as i32;
        if fd < 0 {
            die(&format!(
                "pidfd_open({pid}): {}",
                std::io::Error::last_os_error()
            ));
        }
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLONESHOT) as u32,
            u64: i as u64,
        };
        // SAFETY: ep and fd are open; ev is valid.
        if unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, fd, &mut ev) } != 0 {
            die("epoll_ctl failed");
        }
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
    let mut dead = 0;
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 1024];
    while dead < n && clock::mono_ns() < deadline {
        // SAFETY: events is a valid buffer of events.len() entries.
        let k = unsafe { libc::epoll_wait(ep, events.as_mut_ptr(), events.len() as i32, 1000) };
        if k > 0 {
            dead += k as usize;
        }
    }
    let t_last = clock::mono_ns();
    // What is left to reap is what PID 1's children list holds besides the
    // app; reading it costs in proportion to that, not to N.
    let mut t_done;
    let mut left;
    loop {
        let list = std::fs::read_to_string("/proc/1/task/1/children").unwrap_or_default();
        t_done = clock::mono_ns();
        left = list.split_whitespace().filter(|p| *p != me).count();
        if left == 0 || t_done > deadline {
            break;
        }
    }
    let line = format!("{left} {} {}\n", t_done - t_last, t_done - t_release);
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(result)
        .and_then(|mut f| f.write_all(line.as_bytes()))
        .unwrap_or_else(|e| die(&format!("{result}: {e}")));
}

/// Lifts the soft open-files limit to `want` (within the hard limit): one
/// pidfd per orphan.
fn raise_nofile(want: usize) {
    // SAFETY: rl is a valid rlimit for getrlimit/setrlimit.
    unsafe {
        let mut rl: libc::rlimit = std::mem::zeroed();
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl);
        if (rl.rlim_cur as usize) < want {
            rl.rlim_cur = (want as libc::rlim_t).min(rl.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &rl);
        }
    }
}
