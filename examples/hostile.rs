//! Test app that misbehaves on purpose, for tests/hostile.rs and
//! tests/security.rs. One mode per run:
//!
//! - `close-stdout`: closes its stdout, says `ready` on stderr, waits for
//!   SIGTERM, then writes `bye` on stderr and exits 3.
//! - `fork-storm`: forks children (each waits on a pipe) until fork fails,
//!   prints `forked N, then <errno>`, releases them and exits 0.
//! - `grandchild`: starts a grandchild in its own session that keeps the
//!   log pipe open and prints `grandchild N` lines, then exits 0 itself.
//!   `--ignore-term` makes the grandchild ignore SIGTERM.
//! - `daemonize`: double fork + setsid (a classic daemon), the daemon prints
//!   `daemon ready` and sleeps; the app exits 0. `--ignore-term` as above.
//! - `fds`: opens /dev/null until open fails, prints `opened N, then <errno>`.
//! - `regain`: tries every way back to root (setuid, setresuid, setgid,
//!   setgroups, a setuid-root binary given as argument) and prints a JSON
//!   line of what happened.
//! - `attack-pid1`: tries PTRACE_ATTACH on PID 1, reading /proc/1/mem,
//!   /proc/1/environ and /proc/1/fd, prints a JSON line of the results.
//! - `euid`: prints `euid N uid N` (run setuid-root by the security test).

use std::io::Write;

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn err_name(e: i32) -> String {
    match e {
        0 => "ok".into(),
        libc::EPERM => "EPERM".into(),
        libc::EACCES => "EACCES".into(),
        libc::EAGAIN => "EAGAIN".into(),
        libc::EMFILE => "EMFILE".into(),
        libc::ENOENT => "ENOENT".into(),
        libc::ESRCH => "ESRCH".into(),
        e => format!("errno {e}"),
    }
}

fn say(line: &str) {
    let mut o = std::io::stdout();
    writeln!(o, "{line}").unwrap();
    o.flush().unwrap();
}

fn ignore_term() {
    // SAFETY: setting a disposition to SIG_IGN.
    unsafe { libc::signal(libc::SIGTERM, libc::SIG_IGN) };
}

fn sleep_forever() -> ! {
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

/// Blocks SIGTERM (before saying `ready`, so an early TERM waits) and
/// returns the set to wait on.
fn block_term() -> libc::sigset_t {
    // SAFETY: plain signal-mask calls on a zeroed set we own.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

fn wait_for(set: &libc::sigset_t) {
    let mut sig = 0;
    // SAFETY: sigwait reads the set and writes the signal number.
    unsafe { libc::sigwait(set, &mut sig) };
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map(String::as_str).unwrap_or("");
    let ignore = args.iter().any(|a| a == "--ignore-term");
    match mode {
        "close-stdout" => {
            let set = block_term();
            // SAFETY: closing our own fd 1.
            unsafe { libc::close(1) };
            let mut e = std::io::stderr();
            writeln!(e, "ready").unwrap();
            wait_for(&set);
            writeln!(e, "bye").unwrap();
            std::process::exit(3);
        }
        "fork-storm" => {
            let mut fds = [0; 2];
            // SAFETY: pipe writes two fds into our array.
            assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
            let mut n = 0;
            let why = loop {
                // SAFETY: single-threaded; the child only reads and _exits.
                match unsafe { libc::fork() } {
                    -1 => break errno(),
                    0 => unsafe {
                        libc::close(fds[1]);
                        let mut b = 0u8;
                        libc::read(fds[0], (&mut b as *mut u8).cast(), 1);
                        libc::_exit(0);
                    },
                    _ => n += 1,
                }
                if n >= 100_000 {
                    break 0;
                }
            };
            say(&format!("forked {n}, then {}", err_name(why)));
            // SAFETY: closing our write end releases every child.
            unsafe { libc::close(fds[1]) };
        }
        "grandchild" | "daemonize" => {
            // The app exits only once the grandchild is set up (ignoring
            // TERM if asked) and has written its first line: no race with
            // berth's SIGTERM to leftovers.
            let mut fds = [0; 2];
            // SAFETY: pipe writes two fds into our array.
            assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
            // SAFETY: single-threaded forks; children only sleep and print.
            unsafe {
                if libc::fork() == 0 {
                    libc::close(fds[0]);
                    libc::setsid();
                    if mode == "daemonize" && libc::fork() != 0 {
                        libc::_exit(0);
                    }
                    if ignore {
                        ignore_term();
                    }
                    let first = if mode == "daemonize" {
                        "daemon ready"
                    } else {
                        "grandchild 0"
                    };
                    say(first);
                    libc::write(fds[1], b"x".as_ptr().cast(), 1);
                    libc::close(fds[1]);
                    if mode == "daemonize" {
                        sleep_forever();
                    }
                    for i in 1.. {
                        std::thread::sleep(std::time::Duration::from_millis(20));
                        say(&format!("grandchild {i}"));
                    }
                }
                libc::close(fds[1]);
                let mut b = 0u8;
                libc::read(fds[0], (&mut b as *mut u8).cast(), 1);
            }
            say("app exits");
        }
        "fds" => {
            let mut n = 0;
            let why = loop {
                // SAFETY: open with a static NUL-terminated path.
                let fd = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY) };
                if fd < 0 {
                    break errno();
                }
                n += 1;
                if n >= 1_000_000 {
                    break 0;
                }
            };
            say(&format!("opened {n}, then {}", err_name(why)));
        }
        "regain" => {
            let mut r = Vec::new();
            // SAFETY: id-changing calls with integer arguments; expected to fail.
            unsafe {
                r.push(("setuid", libc::setuid(0), errno()));
                r.push(("setresuid", libc::setresuid(0, 0, 0), errno()));
                r.push(("setgid", libc::setgid(0), errno()));
                let g = [0u32];
                r.push(("setgroups", libc::setgroups(1, g.as_ptr()), errno()));
            }
            let parts: Vec<String> = r
                .iter()
                .map(|(k, rc, e)| {
                    let v = if *rc == 0 { "ok".into() } else { err_name(*e) };
                    format!("\"{k}\":\"{v}\"")
                })
                .collect();
            say(&format!("{{{}}}", parts.join(",")));
            if let Some(bin) = args.get(2) {
                let err = std::os::unix::process::CommandExt::exec(
                    std::process::Command::new(bin).arg("euid"),
                );
                panic!("exec {bin}: {err}");
            }
        }
        "euid" => {
            // SAFETY: getters.
            let (euid, uid) = unsafe { (libc::geteuid(), libc::getuid()) };
            say(&format!("euid {euid} uid {uid}"));
        }
        "attack-pid1" => {
            // SAFETY: ptrace with integer arguments; expected to fail.
            let rc = unsafe {
                libc::ptrace(
                    libc::PTRACE_ATTACH,
                    1,
                    std::ptr::null_mut::<libc::c_void>(),
                    std::ptr::null_mut::<libc::c_void>(),
                )
            };
            let ptrace = if rc == 0 {
                "ok".into()
            } else {
                err_name(errno())
            };
            let read = |p: &str| match std::fs::read(p) {
                Ok(_) => "ok".to_string(),
                Err(e) => err_name(e.raw_os_error().unwrap_or(0)),
            };
            let mem = match std::fs::File::open("/proc/1/mem") {
                Ok(f) => {
                    use std::os::unix::fs::FileExt;
                    let mut b = [0u8; 16];
                    // Any mapped address will do: the start of the stack map.
                    let maps = std::fs::read_to_string("/proc/1/maps").unwrap_or_default();
                    let addr = maps
                        .lines()
                        .next()
                        .and_then(|l| l.split('-').next())
                        .and_then(|a| u64::from_str_radix(a, 16).ok())
                        .unwrap_or(0x400000);
                    match f.read_at(&mut b, addr) {
                        Ok(_) => "ok".to_string(),
                        Err(e) => err_name(e.raw_os_error().unwrap_or(0)),
                    }
                }
                Err(e) => err_name(e.raw_os_error().unwrap_or(0)),
            };
            let fd = match std::fs::read_dir("/proc/1/fd") {
                Ok(mut d) => match d.next() {
                    Some(Err(e)) => err_name(e.raw_os_error().unwrap_or(0)),
                    _ => "ok".to_string(),
                },
                Err(e) => err_name(e.raw_os_error().unwrap_or(0)),
            };
            say(&format!(
                "{{\"ptrace\":\"{ptrace}\",\"mem\":\"{mem}\",\"environ\":\"{}\",\"fd\":\"{fd}\"}}",
                read("/proc/1/environ")
            ));
        }
        m => panic!("hostile: unknown mode {m:?}"),
    }
}
