//! The threat model's guarantees (docs/security.md), one test each, checked
//! from the inside (the app tries) and from the outside (/proc).
//! The status socket's peer check is tested in health.rs
//! (`status_refuses_other_users_and_answers_the_apps_uid`).

use serde_json::Value;

use crate::util::{children_of, Berth};

/// `Key:` of /proc/<pid>/status.
fn status_field(pid: i32, key: &str) -> String {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix(key))
        .unwrap_or_else(|| panic!("no {key} in /proc/{pid}/status"))
        .trim()
        .to_string()
}

fn app_says(b: Berth, args: &[&str]) -> Value {
    let d = b.arg("--log-format=plain").app("hostile", args).run();
    assert_eq!(d.code, 0, "{:?}", d.stderr);
    serde_json::from_str(&d.stdout[0]).unwrap()
}

#[test]
fn the_app_cannot_regain_root_by_id_calls() {
    let v = app_says(Berth::new().args(["--user", "1000:1000"]), &["regain"]);
    for call in ["setuid", "setresuid", "setgid", "setgroups"] {
        assert_eq!(v[call], "EPERM", "{call}: {v}");
    }
}

#[test]
fn a_setuid_root_binary_cannot_raise_privilege_under_no_new_privs() {
    // A setuid-root copy of the test app on a tmpfs (suid allowed) inside
    // berth's mount namespace.
    let bin = crate::util::example("hostile");
    let suid = || {
        Berth::new()
            .setup(&format!(
                "mount -t tmpfs -o mode=755 tmpfs /mnt && cp '{}' /mnt/suid && chmod 4755 /mnt/suid",
                bin.display()
            ))
            .args(["--user", "1000:1000", "--log-format=plain"])
    };
    let d = suid().cmd("/mnt/suid", &["euid"]).run();
    assert_eq!(d.code, 0, "{:?}", d.stderr);
    assert_eq!(d.stdout, vec!["euid 1000 uid 1000"]);
    // The same binary does become root without no_new_privs: the test
    // would see an escalation.
    let d = suid()
        .arg("--allow-new-privs")
        .cmd("/mnt/suid", &["euid"])
        .run();
    assert_eq!(d.stdout, vec!["euid 0 uid 1000"], "{:?}", d.stderr);
}

/// berth (PID 1, dropped to the app's uid) and the app's pid, both running.
/// Returns once berth has written its start event, which it does only after
/// dropping its own root: the app's first line can come before the drop.
fn running_pair(extra: &[&str]) -> (crate::util::Running, i32, i32) {
    let r = Berth::new()
        .args(["--user", "1000:1000", "--log-format=json"])
        .args(extra.iter().copied())
        .app("introspect", &["--wait"])
        .spawn();
    r.wait_for("\"event\":\"start\"");
    let berth = r.berth_pid();
    let app = children_of(berth)[0];
    (r, berth, app)
}

#[test]
fn berth_keeps_no_capability_and_no_root_id_after_the_drop() {
    let (r, berth, app) = running_pair(&[]);
    for key in ["CapInh:", "CapPrm:", "CapEff:", "CapAmb:", "CapBnd:"] {
        assert_eq!(status_field(berth, key), "0000000000000000", "berth {key}");
    }
    for key in ["Uid:", "Gid:"] {
        // real, effective, saved, file system: all four.
        assert_eq!(
            status_field(berth, key),
            "1000\t1000\t1000\t1000",
            "berth {key}"
        );
        assert_eq!(
            status_field(app, key),
            "1000\t1000\t1000\t1000",
            "app {key}"
        );
    }
    assert_eq!(status_field(berth, "Groups:"), "1000");
    assert_eq!(
        status_field(app, "Groups:"),
        "1000",
        "root's groups are gone"
    );
    for key in ["CapInh:", "CapPrm:", "CapEff:", "CapAmb:"] {
        assert_eq!(status_field(app, key), "0000000000000000", "app {key}");
    }
    assert_eq!(status_field(app, "NoNewPrivs:"), "1");
    r.signal(libc::SIGTERM);
    r.wait();
    // --keep-root keeps berth root, as documented.
    let (r, berth, _) = running_pair(&["--keep-root"]);
    assert!(status_field(berth, "Uid:").starts_with("0\t"));
    r.signal(libc::SIGTERM);
    r.wait();
}

#[test]
fn the_app_cannot_ptrace_berth_or_read_its_memory() {
    for extra in [&[][..], &["--keep-root"][..]] {
        let v = app_says(
            Berth::new()
                .args(["--user", "1000:1000"])
                .args(extra.iter().copied()),
            &["attack-pid1"],
        );
        assert_eq!(v["ptrace"], "EPERM", "{extra:?}: {v}");
        for k in ["mem", "environ", "fd"] {
            assert!(
                v[k] == "EACCES" || v[k] == "EPERM",
                "{extra:?}: {k} readable: {v}"
            );
        }
    }
}

#[test]
fn a_read_only_root_file_system_works() {
    // No file written: status, logs and health all work on a read-only /.
    let r = Berth::new()
        .setup("mount -o remount,bind,ro /")
        .args(["--health", "tcp://127.0.0.1:1", "--health-interval=100ms"])
        .app("sigprint", &[])
        .spawn();
    r.wait_for("ready");
    let out = r.exec_in(&["sh", "-c", "touch /berth-ro-probe 2>&1; echo rc=$?"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Read-only file system"), "{text}");
    let out = r.exec_in(&[crate::util::berth_bin().to_str().unwrap(), "status"]);
    let reply: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(reply["pid"], 1);
    r.wait_for("\"event\":\"health\"");
    r.signal(libc::SIGTERM);
    let d = r.wait();
    assert_eq!(d.code, 0, "{:?}", d.stderr);
    assert_eq!(d.json().last().unwrap()["event"], "exit");
}
