//! Test app: makes N orphans that all exit at the same moment, so N zombies
//! land on init at once. A middle process forks N children that wait on a
//! pipe, then exits (they are re-parented to init); closing the pipe
//! releases them all. Prints `released N`, then sleeps `--linger SECS`
//! (default 0) and exits 0.

use std::io::Write;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(100);
    let linger: u64 = match args.get(2).map(String::as_str) {
        Some("--linger") => args[3].parse().unwrap(),
        _ => 0,
    };
    let mut fds = [0; 2];
    // SAFETY: pipe writes two fds into our array.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let (r, w) = (fds[0], fds[1]);
    // SAFETY: single-threaded fork; children use only read/_exit.
    let middle = unsafe { libc::fork() };
    if middle == 0 {
        unsafe { libc::close(w) };
        for _ in 0..n {
            // SAFETY: as above.
            if unsafe { libc::fork() } == 0 {
                let mut b = [0u8; 1];
                // SAFETY: blocks until every write end is closed, then exits.
                unsafe {
                    libc::read(r, b.as_mut_ptr().cast(), 1);
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
    unsafe { libc::close(w) };
    println!("released {n}");
    std::io::stdout().flush().unwrap();
    std::thread::sleep(std::time::Duration::from_secs(linger));
}
