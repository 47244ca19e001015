//! Test app: prints `ready`, then the name of every signal it receives, one
//! per line (as dumb-init's print_signals.py). Exits with `--code N` when it
//! receives the `--exit-on` signal (default TERM; `none` never exits).
//! Usage: sigprint [--exit-on SIG|none] [--code N]

use std::io::Write;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mut exit_on = Some(libc::SIGTERM);
    let mut code = 0;
    let mut i = 1;
    while i < args.len() {
        match args[i].as_str() {
            "--exit-on" => {
                exit_on = berth::parse::signal(&args[i + 1]).ok();
                i += 1;
            }
            "--code" => {
                code = args[i + 1].parse().unwrap();
                i += 1;
            }
            a => panic!("sigprint: unknown argument {a}"),
        }
        i += 1;
    }
    // SAFETY: plain libc signal-mask calls on a zeroed set we own.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        libc::sigdelset(&mut set, libc::SIGSEGV);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        set
    };
    let mut out = std::io::stdout();
    writeln!(out, "ready").unwrap();
    out.flush().unwrap();
    loop {
        // SAFETY: sigwaitinfo writes into the zeroed siginfo we own.
        let sig = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            libc::sigwaitinfo(&set, &mut info)
        };
        if sig <= 0 || sig == libc::SIGCHLD {
            continue;
        }
        writeln!(out, "{}", berth::parse::signal_name_string(sig)).unwrap();
        out.flush().unwrap();
        if Some(sig) == exit_on {
            std::process::exit(code);
        }
    }
}
