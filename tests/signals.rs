//! Signal forwarding: every catchable signal reaches the app (group),
//! `--map-signal`, `--stop-signal`, `--no-group`, none lost before exec.

use crate::util::{Berth, SpawnGuarded};

const NO_EXIT: &[&str] = &["--exit-on", "none"];

fn msg(sig: &str) -> String {
    format!("\"msg\":\"{sig}\"")
}

#[test]
fn catchable_signals_are_forwarded_to_the_app() {
    let r = Berth::new()
        .arg("--grace=1s")
        .app("sigprint", NO_EXIT)
        .spawn();
    r.wait_for(&msg("ready"));
    for (sig, name) in [
        (libc::SIGUSR1, "USR1"),
        (libc::SIGUSR2, "USR2"),
        (libc::SIGHUP, "HUP"),
        (libc::SIGWINCH, "WINCH"),
        (libc::SIGQUIT, "QUIT"),
        (libc::SIGCONT, "CONT"),
        (libc::SIGALRM, "ALRM"),
        (libc::SIGPIPE, "PIPE"),
        (libc::SIGTSTP, "TSTP"),
        (libc::SIGRTMIN() + 2, "RTMIN+2"),
    ] {
        r.signal(sig);
        r.wait_for(&msg(name));
    }
    r.signal(libc::SIGTERM);
    let d = r.wait();
    assert_eq!(d.event("signal")["stream"], "berth");
}

#[test]
fn map_signal_rewrites_and_drops() {
    let r = Berth::new()
        .args([
            "--grace=1s",
            "--map-signal",
            "HUP:USR1",
            "--map-signal",
            "USR2:0",
        ])
        .app("sigprint", NO_EXIT)
        .spawn();
    r.wait_for(&msg("ready"));
    r.signal(libc::SIGUSR2); // dropped
    r.signal(libc::SIGHUP); // arrives as USR1
    r.wait_for(&msg("USR1"));
    r.signal(libc::SIGWINCH);
    r.wait_for(&msg("WINCH"));
    r.signal(libc::SIGTERM);
    let d = r.wait();
    let m = d.msgs("stdout");
    assert_eq!(
        m,
        vec!["ready", "USR1", "WINCH", "TERM"],
        "USR2 must be dropped, HUP mapped"
    );
}

#[test]
fn stop_signal_replaces_term() {
    let d = {
        let r = Berth::new()
            .args(["--stop-signal", "QUIT", "--grace=5s"])
            .app("sigprint", &["--exit-on", "QUIT", "--code", "7"])
            .spawn();
        r.wait_for(&msg("ready"));
        r.signal(libc::SIGTERM);
        r.wait()
    };
    assert_eq!(d.code, 7);
    assert_eq!(d.msgs("stdout"), vec!["ready", "QUIT"]);
    let ev = d.event("signal");
    assert_eq!(ev["received"], "TERM");
    assert_eq!(ev["forwarded_as"], "QUIT");
}

#[test]
fn signals_reach_the_whole_group_by_default() {
    // sh does not forward signals; only group delivery reaches sigprint.
    let sp = crate::util::example("sigprint").display().to_string();
    let r = Berth::new()
        .arg("--grace=2s")
        .cmd("sh", &["-c", &format!("trap '' USR1; {sp} & wait")])
        .spawn();
    r.wait_for(&msg("ready"));
    r.signal(libc::SIGUSR1);
    r.wait_for(&msg("USR1"));
    r.signal(libc::SIGTERM);
    let d = r.wait();
    assert!(d.msgs("stdout").contains(&"TERM".to_string()));
}

#[test]
fn no_group_signals_the_app_alone() {
    let sp = crate::util::example("sigprint").display().to_string();
    let r = Berth::new()
        .args(["--no-group", "--grace=1s"])
        .cmd(
            "sh",
            &[
                "-c",
                &format!(
                    "trap 'echo sh-got-usr1' USR1; {sp} --exit-on none & while :; do wait; done"
                ),
            ],
        )
        .spawn();
    r.wait_for(&msg("ready"));
    r.signal(libc::SIGUSR1);
    r.wait_for("sh-got-usr1");
    r.signal(libc::SIGTERM);
    let d = r.wait();
    assert!(
        !d.msgs("stdout").contains(&"USR1".to_string()),
        "{:?}",
        d.msgs("stdout")
    );
}

#[test]
fn signal_reaches_an_app_that_left_its_group() {
    // The app (A) forks B into a group of its own, joins B's group and
    // execs sigprint: A's original group is empty, so berth must fall back
    // to A's pid.
    let sp = crate::util::example("sigprint").display().to_string();
    let script = format!(
        "import os, time\nr, w = os.pipe()\nb = os.fork()\nif b == 0:\n    os.setpgid(0, 0); os.write(w, b'x'); time.sleep(60); os._exit(0)\nos.read(r, 1)\nos.setpgid(0, b)\nos.execv('{sp}', ['{sp}'])\n"
    );
    let r = Berth::new()
        .arg("--grace=2s")
        .cmd("python3", &["-c", &script])
        .spawn();
    r.wait_for(&msg("ready"));
    r.signal(libc::SIGUSR1);
    r.wait_for(&msg("USR1"));
    r.signal(libc::SIGTERM);
    assert_eq!(r.wait().code, 0);
}

#[test]
fn signal_sent_right_at_start_is_not_lost() {
    // Whenever USR1 lands (before the fork, between fork and exec, after),
    // sleep must die of it: 128 + 10. A lost signal would be exit 0.
    // Sent as soon as berth has blocked its signals (its first act in main):
    // before that no init can catch anything, and the kernel drops signals
    // to a PID 1 with default dispositions.
    for _ in 0..5 {
        let r = Berth::new()
            .arg("--log-format=plain")
            .cmd("sleep", &["3"])
            .spawn();
        let pid = r.berth_pid();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            // USR1 itself must be blocked: unshare's child blocks INT and
            // TERM between fork and exec, which is not berth yet.
            let usr1 = 1u64 << (libc::SIGUSR1 - 1);
            if s.lines().any(|l| {
                l.strip_prefix("SigBlk:")
                    .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
                    .is_some_and(|m| m & usr1 != 0)
            }) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "berth never blocked its signals"
            );
        }
        r.signal(libc::SIGUSR1);
        let d = r.wait();
        assert_eq!(d.code, 138, "{:?}", d.stderr);
    }
}

#[test]
fn sigint_is_forwarded_and_starts_the_grace_period() {
    let r = Berth::new().arg("--grace=1s").app("stubborn", &[]).spawn();
    r.wait_for(&msg("ready"));
    r.signal(libc::SIGINT);
    let d = r.wait();
    assert_eq!(d.code, 137);
    assert_eq!(d.event("exit")["reason"], "grace_expired");
}

/// `docker run -it`: stdin is a terminal; the app's group becomes its
/// foreground group, so Ctrl-C (typed on the terminal) reaches the app from
/// the kernel, as in a shell, and berth itself is not interrupted.
#[test]
fn ctrl_c_on_a_terminal_reaches_the_app_as_in_a_shell() {
    use std::io::{BufRead, BufReader, Write};
    let (master, slave) = open_pty();
    // setsid --ctty: a new session whose controlling terminal is the pty,
    // as the engine sets up for `-it`.
    let mut child = std::process::Command::new("setsid")
        .args(["--ctty", "unshare"])
        .args(crate::util::PID_NAMESPACE)
        .arg(crate::util::berth_bin())
        .args(["--log-format=json", "--grace=2s", "--"])
        .arg(crate::util::example("sigprint"))
        .args(["--exit-on", "INT", "--code", "7"])
        .stdin(std::process::Stdio::from(slave))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn_guarded()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut lines = Vec::new();
    let mut line = String::new();
    while out.read_line(&mut line).unwrap() > 0 {
        lines.push(std::mem::take(&mut line));
        if lines.last().unwrap().contains(&msg("ready")) {
            break;
        }
    }
    assert!(lines.iter().any(|l| l.contains(&msg("ready"))), "{lines:?}");
    let mut tty = std::fs::File::from(master);
    tty.write_all(b"\x03").unwrap(); // Ctrl-C
    while out.read_line(&mut line).unwrap() > 0 {
        lines.push(std::mem::take(&mut line));
    }
    let status = child.wait().unwrap();
    let all = lines.join("");
    assert!(all.contains(&msg("INT")), "the app got SIGINT: {all}");
    assert_eq!(status.code(), Some(7), "{all}");
    assert!(
        !all.contains("\"event\":\"signal\""),
        "the kernel signalled the app's group, not berth: {all}"
    );
}

/// A pseudo-terminal pair, both ends close-on-exec from the start. Not
/// openpty(3): its fds are inheritable, and any test that forks while this
/// one holds them would pass them on to its berth (issue 22).
fn open_pty() -> (std::os::fd::OwnedFd, std::os::fd::OwnedFd) {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let master = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open("/dev/ptmx")
        .expect("open /dev/ptmx");
    let mut name = [0 as libc::c_char; 128];
    // SAFETY: grantpt/unlockpt take the fd we own; ptsname_r writes at most
    // name.len() bytes into the buffer we own.
    let rc = unsafe {
        if libc::grantpt(master.as_raw_fd()) != 0 || libc::unlockpt(master.as_raw_fd()) != 0 {
            -1
        } else {
            libc::ptsname_r(master.as_raw_fd(), name.as_mut_ptr(), name.len())
        }
    };
    assert_eq!(rc, 0, "grantpt/unlockpt/ptsname_r");
    // SAFETY: ptsname_r wrote a NUL-terminated name into the buffer.
    let path = unsafe { std::ffi::CStr::from_ptr(name.as_ptr()) };
    let slave = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(std::ffi::OsStr::new(path.to_str().unwrap()))
        .expect("open the pty's slave");
    (master.into(), slave.into())
}
