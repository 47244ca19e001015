//! Starting the app: PATH lookup, the entrypoint form, environment, fds,
//! process group, signal mask and dispositions, no_new_privs, rlimits.

use serde_json::Value;

use crate::util::{
    descendant_named, example, in_pid_namespace, sh_in_pid_namespace, Berth, SpawnGuarded,
};

/// Runs introspect under berth and returns what it saw.
fn introspect(b: Berth) -> Value {
    let d = b.arg("--log-format=plain").app("introspect", &[]).run();
    assert_eq!(d.code, 0, "{:?}", d.stderr);
    serde_json::from_str(&d.stdout[0]).unwrap()
}

#[test]
fn command_is_looked_up_on_path() {
    let dir = example("sigprint").parent().unwrap().display().to_string();
    let d = Berth::new()
        .env("PATH", &format!("/nonexistent:{dir}:/usr/bin:/bin"))
        .arg("--log-format=plain")
        .cmd("introspect", &[])
        .run();
    assert_eq!(d.code, 0, "{:?}", d.stderr);
}

#[test]
fn entrypoint_form_with_double_dash_and_app_flags() {
    let d = Berth::new()
        .arg("--log-format=plain")
        .cmd("sh", &["-c", "echo \"$0 $1\"", "--grace", "x"])
        .run();
    assert_eq!(d.code, 0);
    assert_eq!(d.stdout, vec!["--grace x"]);
}

#[test]
fn app_gets_only_fds_0_1_2() {
    // berth is handed extra open fds (3 and up) by its parent: none may reach the app.
    let v = introspect(Berth::new());
    assert_eq!(v["fds"], serde_json::json!([0, 1, 2]), "{v}");
    let v = introspect(
        Berth::new()
            .arg("--log-format=json")
            .arg("--log-format=plain"),
    );
    assert_eq!(v["fds"], serde_json::json!([0, 1, 2]));
}

#[test]
fn inherited_fds_are_closed_but_preserved_ones_pass() {
    // The shell opens fds 3 and 4 and execs berth with them.
    let bin = crate::util::berth_bin().display().to_string();
    let app = example("introspect").display().to_string();
    for (extra, want) in [
        ("", "[0,1,2]"),
        ("--preserve-fds=1", "[0,1,2,3]"),
        ("--preserve-fds=2", "[0,1,2,3,4]"),
    ] {
        let out = sh_in_pid_namespace(&format!(
            "exec 3</dev/null 4</dev/null; exec {bin} --log-format=plain {extra} -- {app}"
        ))
        .output()
        .unwrap();
        let v: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
        assert_eq!(v["fds"].to_string(), want, "{extra}");
    }
}

#[test]
fn socket_activation_fds_pass_and_listen_pid_is_rewritten() {
    let bin = crate::util::berth_bin().display().to_string();
    let app = example("introspect").display().to_string();
    let out = sh_in_pid_namespace(&format!(
        "exec 3</dev/null 4</dev/null; LISTEN_FDS=1 exec {bin} --log-format=plain -- {app}"
    ))
    .output()
    .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["fds"].to_string(), "[0,1,2,3]");
    let pid = v["pid"].as_i64().unwrap();
    let env: Vec<String> = v["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap().to_string())
        .collect();
    assert!(env.contains(&format!("LISTEN_PID={pid}")), "{env:?}");
    assert!(env.contains(&"LISTEN_FDS=1".to_string()));
    // LISTEN_PID naming another process: nothing passes, variables removed.
    let out = sh_in_pid_namespace(&format!("exec 3</dev/null; LISTEN_FDS=1 LISTEN_PID=4242 LISTEN_FDNAMES=x exec {bin} --log-format=plain -- {app}"))
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["fds"].to_string(), "[0,1,2]");
    assert!(!v["env"].to_string().contains("LISTEN_"), "{}", v["env"]);
}

#[test]
fn environment_passes_less_berth_variables() {
    let v = introspect(Berth::new().env("BERTH_GRACE", "2s").env("KEEP_ME", "yes"));
    let env: Vec<&str> = v["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert!(env.contains(&"KEEP_ME=yes"));
    assert!(!env.iter().any(|e| e.starts_with("BERTH_")), "{env:?}");
}

#[test]
fn app_has_its_own_process_group_and_berth_is_its_parent() {
    let v = introspect(Berth::new());
    assert_eq!(v["pgid"], v["pid"]);
    assert_eq!(v["ppid"], 1);
}

/// SigBlk/SigIgn of a C program (grep) run as the app, vs run directly.
fn signal_state(under_berth: bool) -> String {
    let mut c = if under_berth {
        let mut c = Berth::new()
            .arg("--log-format=plain")
            .cmd("grep", &["-E", "^Sig(Blk|Ign)", "/proc/self/status"])
            .command();
        c.stderr(std::process::Stdio::null());
        c
    } else {
        let mut c = std::process::Command::new("grep");
        c.args(["-E", "^Sig(Blk|Ign)", "/proc/self/status"]);
        c
    };
    String::from_utf8(c.output().unwrap().stdout).unwrap()
}

#[test]
fn app_gets_the_inherited_mask_and_dispositions_with_sigpipe_default() {
    // berth blocks everything and Rust ignores SIGPIPE; the app must see
    // neither: exactly what a directly started program sees.
    let direct = signal_state(false);
    assert!(direct.contains("SigBlk"), "{direct}");
    assert_eq!(signal_state(true), direct);
}

#[test]
fn no_new_privs_by_default_and_allow_new_privs_turns_it_off() {
    assert_eq!(introspect(Berth::new())["no_new_privs"], true);
    assert_eq!(
        introspect(Berth::new().arg("--allow-new-privs"))["no_new_privs"],
        false
    );
    assert_eq!(
        introspect(Berth::new().env("BERTH_ALLOW_NEW_PRIVS", "true"))["no_new_privs"],
        false
    );
}

#[test]
fn rlimits_are_applied() {
    let v = introspect(Berth::new().args(["--rlimit", "nofile=100:200", "--rlimit", "core=0"]));
    assert_eq!(v["nofile"], serde_json::json!([100, 200]));
    assert_eq!(v["core"], serde_json::json!([0, 0]));
    // Lowering only: this sandbox's root lacks CAP_SYS_RESOURCE to raise.
    let v = introspect(Berth::new().env("BERTH_RLIMIT", "nofile=64,nproc=1000:2000"));
    assert_eq!(v["nofile"], serde_json::json!([64, 64]));
    assert_eq!(v["nproc"], serde_json::json!([1000, 2000]));
}

#[test]
fn not_pid1_berth_works_as_subreaper() {
    let d = Berth::new()
        .not_pid1()
        .arg("--log-format=plain")
        .app("introspect", &[])
        .run();
    assert_eq!(d.code, 0);
    let v: Value = serde_json::from_str(&d.stdout[0]).unwrap();
    assert_eq!(v["fds"], serde_json::json!([0, 1, 2]));
}

/// Not PID 1, berth makes itself a child subreaper; where the kernel (or an
/// emulator: qemu-user refuses PR_SET_CHILD_SUBREAPER) says no, berth says
/// so in one warning instead of silently leaving orphans to someone else.
#[test]
fn not_pid1_berth_warns_exactly_when_it_cannot_become_a_subreaper() {
    let d = Berth::new()
        .not_pid1()
        .arg("--log-format=plain")
        .cmd("true", &[])
        .run();
    assert_eq!(d.code, 0, "{:?}", d.stderr);
    let warned = d
        .stderr
        .iter()
        .filter(|l| l.contains("PR_SET_CHILD_SUBREAPER failed"))
        .count();
    // The x86 builds run natively here; the aarch64 one under qemu-user.
    let emulated = crate::util::berth_platform().as_deref() == Some("linux/arm64");
    assert_eq!(warned, usize::from(emulated), "{:?}", d.stderr);
}

/// Socket activation with a real listening socket handed in by the caller
/// (as systemd or `podman run --preserve-fds` do): the app holds that very
/// socket as fd 3 and can be connected to through it.
#[test]
fn socket_activation_hands_a_listening_socket_to_the_app() {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let fd = listener.as_raw_fd();
    let mut c = in_pid_namespace();
    c.arg(crate::util::berth_bin())
        .args(["--log-format=plain", "--", "sleep", "30"])
        .env("LISTEN_FDS", "1")
        .env_remove("LISTEN_PID");
    // SAFETY: dup2 and fcntl are async-signal-safe; they make the listener
    // fd 3 of the child only, without close-on-exec (dup2 onto itself
    // keeps the flag, hence the fcntl).
    unsafe {
        c.pre_exec(move || {
            if libc::dup2(fd, 3) < 0 || libc::fcntl(3, libc::F_SETFD, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = c.spawn_guarded().unwrap();
    let want = std::fs::read_link(format!("/proc/self/fd/{fd}")).unwrap();
    let app = descendant_named(child.id() as i32, "sleep");
    assert_eq!(
        std::fs::read_link(format!("/proc/{app}/fd/3")).unwrap(),
        want,
        "fd 3 of the app is the caller's listening socket"
    );
    // Every fd the app holds once it has started, with its target and
    // flags, so a failure names the intruder.
    let fds = crate::util::fds_once_started(app, &[0, 1, 2, 3]);
    let numbers: Vec<i32> = fds.iter().map(|f| f.0).collect();
    assert_eq!(numbers, [0, 1, 2, 3], "nothing else beyond it: {fds:#?}");
    let environ = std::fs::read(format!("/proc/{app}/environ")).unwrap();
    let env: Vec<&[u8]> = environ.split(|&b| b == 0).collect();
    assert!(env.contains(&&b"LISTEN_FDS=1"[..]));
    assert!(
        env.iter().any(|e| e.starts_with(b"LISTEN_PID=")),
        "LISTEN_PID set to the app's pid"
    );
    // The test's own copy goes; the app's keeps the port open.
    drop(listener);
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    let _ = child.kill();
    let _ = child.wait();
}

/// SPEC "Before the app starts": a failure is one line on stderr and, in
/// json mode, an event on stdout too (a log pipeline that reads stdout
/// alone learns why the container never started); the app never runs.
#[test]
fn a_failure_before_the_app_starts_is_one_stderr_line_and_a_json_event() {
    for (args, code, needle) in [
        (
            vec!["--template", "/nonexistent/a.template:/tmp/a.conf"],
            125,
            "--template /nonexistent/a.template:/tmp/a.conf",
        ),
        (vec![], 127, "command \"/nonexistent/app\" not found"),
    ] {
        let d = Berth::new()
            .arg("--log-format=json")
            .args(args)
            .cmd("/nonexistent/app", &[])
            .run();
        assert_eq!(d.code, code, "{d:?}");
        assert_eq!(d.stderr.len(), 1, "{d:?}");
        assert!(
            d.stderr[0].starts_with("berth: ") && d.stderr[0].contains(needle),
            "{d:?}"
        );
        let events = d.json();
        assert_eq!(events.len(), 1, "{d:?}");
        assert_eq!(events[0]["stream"], "berth");
        assert_eq!(events[0]["event"], "warn");
        assert!(events[0]["msg"].as_str().unwrap().contains(needle), "{d:?}");
    }
}
