//! Test app: makes N orphans that all exit at the same moment, so N zombies
//! land on init at once. A middle process forks N children that wait on a
//! pipe, then exits (they are re-parented to init); closing the pipe
//! releases them all. Prints `released N`, then sleeps `--linger SECS`
//! (default 0) and exits 0. `--live M` first makes M more orphans that live
//! until the app exits, so init has thousands of live children to walk past
//! while it reaps. `--spread MS` staggers the N deaths over MS milliseconds
//! after the release (orphan i waits i % MS ms), a stream rather than a burst.

use std::io::Write;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(100);
    let option = |name: &str| -> usize {
        args.iter()
            .position(|a| a == name)
            .map_or(0, |i| args[i + 1].parse().unwrap())
    };
    let linger = option("--linger") as u64;
    let live = option("--live");
    let spread = option("--spread");
    // Its write end stays open until the app exits: the live orphans go then.
    let _live_gate = (live > 0).then(|| orphans_waiting_on_a_pipe(live, 0));
    let w = orphans_waiting_on_a_pipe(n, spread);
    println!("released {n}");
    std::io::stdout().flush().unwrap();
    // SAFETY: closing our own write end releases the N orphans.
    unsafe { libc::close(w) };
    std::thread::sleep(std::time::Duration::from_secs(linger));
}

/// Makes `n` orphans blocked reading a pipe; returns its write end, which
/// the app alone holds: closing it (or exiting) lets them all exit, orphan i
/// after i % `spread_ms` ms.
fn orphans_waiting_on_a_pipe(n: usize, spread_ms: usize) -> i32 {
    let mut fds = [0; 2];
    // SAFETY: pipe writes two fds into our array.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let (r, w) = (fds[0], fds[1]);
    // SAFETY: single-threaded fork; children use only read/_exit.
    let middle = unsafe { libc::fork() };
    if middle == 0 {
        unsafe { libc::close(w) };
        for i in 0..n {
            // SAFETY: as above.
            if unsafe { libc::fork() } == 0 {
                let mut b = [0u8; 1];
                let ms = if spread_ms > 0 { i % spread_ms } else { 0 };
                let pause = libc::timespec {
                    tv_sec: 0,
                    tv_nsec: (ms * 1_000_000) as libc::c_long,
                };
                // SAFETY: blocks until every write end is closed, waits its
                // turn, exits; async-signal-safe calls only.
                unsafe {
                    libc::read(r, b.as_mut_ptr().cast(), 1);
                    libc::nanosleep(&pause, std::ptr::null_mut());
                    libc::_exit(0);
                }
            }
        }
        // SAFETY: leave without running any destructor.
        unsafe { libc::_exit(0) };
    }
    unsafe { libc::close(r) };
    let mut status = 0;
    // SAFETY: wait for the middle process (our child) so all N exist.
    unsafe { libc::waitpid(middle, &mut status, 0) };
    w
}
