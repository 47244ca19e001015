//! Test app: prints, as one JSON line, what the app sees from the inside:
//! ids, groups, open fds, no_new_privs, rlimits, signal mask and ignored
//! set, process group, environment. `--wait` then waits for SIGTERM.
//! `--read PATH` (repeatable) adds to `"reads"` what the app gets reading
//! PATH: `{"path", "text" or "error", "owner": "uid:gid mode"}` (octal).

use std::io::Write;

fn status_field(status: &str, key: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .map(|v| v.trim().to_string())
        .unwrap_or_default()
}

fn rlimit(res: i32) -> String {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into `r`.
    unsafe { libc::getrlimit(res as _, &mut r) };
    let f = |v: u64| {
        if v == libc::RLIM_INFINITY {
            "\"unlimited\"".to_string()
        } else {
            v.to_string()
        }
    };
    format!("[{},{}]", f(r.rlim_cur), f(r.rlim_max))
}

fn q(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn main() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let mut fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    fds.sort();
    // The directory handle used for the listing is gone again: keep fds still open.
    // SAFETY: F_GETFD only inspects the fd.
    fds.retain(|&fd| unsafe { libc::fcntl(fd, libc::F_GETFD) } != -1);
    let env: Vec<String> = std::env::vars_os()
        .map(|(k, v)| q(&format!("{}={}", k.to_string_lossy(), v.to_string_lossy())))
        .collect();
    // SAFETY: plain getters.
    let (uid, gid, pid, ppid, pgid) = unsafe {
        (
            libc::getuid(),
            libc::getgid(),
            libc::getpid(),
            libc::getppid(),
            libc::getpgrp(),
        )
    };
    let groups = status_field(&status, "Groups:");
    let groups: Vec<&str> = groups.split_whitespace().collect();
    // --read PATH (repeatable): what the app gets reading each PATH.
    let args: Vec<String> = std::env::args().collect();
    let reads: Vec<String> = args
        .windows(2)
        .filter(|w| w[0] == "--read")
        .map(|w| {
            use std::os::unix::fs::MetadataExt;
            let owner = std::fs::metadata(&w[1])
                .map(|m| format!("{}:{} {:o}", m.uid(), m.gid(), m.mode() & 0o7777))
                .unwrap_or_default();
            let got = match std::fs::read_to_string(&w[1]) {
                Ok(t) => format!("\"text\":{}", q(&t)),
                Err(e) => format!("\"error\":{}", q(&e.to_string())),
            };
            format!("{{\"path\":{},{got},\"owner\":{}}}", q(&w[1]), q(&owner))
        })
        .collect();
    let line = format!(
        "{{\"uid\":{uid},\"gid\":{gid},\"euid\":{},\"groups\":[{}],\"pid\":{pid},\"ppid\":{ppid},\"pgid\":{pgid},\"fds\":{:?},\"no_new_privs\":{},\"cap_eff\":{},\"sig_blk\":{},\"sig_ign\":{},\"nofile\":{},\"nproc\":{},\"core\":{},\"env\":[{}],\"reads\":[{}]}}",
        status_field(&status, "Uid:").split_whitespace().nth(1).unwrap_or("0"),
        groups.join(","),
        fds,
        status_field(&status, "NoNewPrivs:") == "1",
        q(&status_field(&status, "CapEff:")),
        q(&status_field(&status, "SigBlk:")),
        q(&status_field(&status, "SigIgn:")),
        rlimit(libc::RLIMIT_NOFILE as i32),
        rlimit(libc::RLIMIT_NPROC as i32),
        rlimit(libc::RLIMIT_CORE as i32),
        env.join(","),
        reads.join(","),
    );
    let mut out = std::io::stdout();
    writeln!(out, "{line}").unwrap();
    out.flush().unwrap();
    if std::env::args().any(|a| a == "--wait") {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}
