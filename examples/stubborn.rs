//! Test app: ignores SIGTERM (and SIGINT), optionally with `--children N`
//! children that ignore it too, prints `ready`, and sleeps until killed.

use std::io::Write;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let children: usize = match args.get(1).map(String::as_str) {
        Some("--children") => args[2].parse().unwrap(),
        _ => 0,
    };
    // SAFETY: setting dispositions to SIG_IGN; inherited by children.
    unsafe {
        libc::signal(libc::SIGTERM, libc::SIG_IGN);
        libc::signal(libc::SIGINT, libc::SIG_IGN);
    }
    for _ in 0..children {
        // SAFETY: single-threaded; the child only sleeps.
        if unsafe { libc::fork() } == 0 {
            loop {
                std::thread::sleep(std::time::Duration::from_secs(3600));
            }
        }
    }
    println!("ready");
    std::io::stdout().flush().unwrap();
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}
