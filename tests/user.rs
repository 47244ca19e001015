//! --user with berth's own /etc/passwd and /etc/group parsing, and the
//! privilege drop around it.

use serde_json::Value;

use crate::util::Berth;

const PASSWD: &[u8] = b"root:x:0:0:root:/root:/bin/sh\n\
# a comment\n\
broken line without fields\n\
app:x:1000:1000:App:/home/app:/bin/sh\n\
app:x:2000:2000:duplicate:/nope:/bin/sh\n\
web:x:1001:1001::/srv/web:/bin/sh\n";
const GROUP: &[u8] = b"root:x:0:\napp:x:1000:\nweb:x:1001:\nstaff:x:50:app,web\nlogs:x:60:web\n";

fn with_files() -> Berth {
    Berth::new()
        .file("/etc/passwd", PASSWD)
        .file("/etc/group", GROUP)
}

fn introspect(b: Berth) -> Value {
    let d = b.arg("--log-format=plain").app("introspect", &[]).run();
    assert_eq!(d.code, 0, "{:?}", d.stderr);
    serde_json::from_str(&d.stdout[0]).unwrap()
}

#[test]
fn user_by_name_gets_ids_groups_and_home() {
    let v = introspect(with_files().env_remove("HOME").args(["--user", "app"]));
    assert_eq!(v["uid"], 1000);
    assert_eq!(v["gid"], 1000);
    assert_eq!(v["groups"], serde_json::json!([50, 1000]));
    assert!(v["env"].to_string().contains("HOME=/home/app"));
    assert_eq!(v["cap_eff"], "0000000000000000");
}

#[test]
fn a_group_line_whose_name_holds_a_nul_does_not_reach_the_apps_groups() {
    // libc's parsers stop at the NUL and find no gid field: no group. The
    // groups are read by the app itself, from /proc/self/status.
    let group = b"root:x:0:\napp:x:1000:\nev\0il:x:66:app\nstaff:x:50:app,web\n";
    let v = introspect(
        Berth::new()
            .file("/etc/passwd", PASSWD)
            .file("/etc/group", group)
            .args(["--user", "app"]),
    );
    assert_eq!(v["groups"], serde_json::json!([50, 1000]));
}

#[test]
fn user_and_group_by_name_and_number() {
    let v = introspect(with_files().args(["--user", "web:staff"]));
    assert_eq!(
        (v["uid"].as_u64(), v["gid"].as_u64()),
        (Some(1001), Some(50))
    );
    let v = introspect(with_files().args(["--user", "1001:60"]));
    assert_eq!(
        (v["uid"].as_u64(), v["gid"].as_u64()),
        (Some(1001), Some(60))
    );
}

#[test]
fn numeric_uid_absent_from_passwd_runs_with_gid_0_and_a_warning() {
    let d = with_files()
        .args(["--user", "4242", "--log-format=plain"])
        .app("introspect", &[])
        .run();
    assert_eq!(d.code, 0);
    let v: Value = serde_json::from_str(&d.stdout[0]).unwrap();
    assert_eq!(
        (v["uid"].as_u64(), v["gid"].as_u64()),
        (Some(4242), Some(0))
    );
    assert!(d.stderr_text().contains("4242"), "{:?}", d.stderr);
}

#[test]
fn home_already_set_is_kept() {
    let v = introspect(with_files().env("HOME", "/data").args(["--user", "app"]));
    assert!(v["env"].to_string().contains("HOME=/data"));
}

#[test]
fn unknown_user_or_group_is_125() {
    let d = with_files()
        .args(["--user", "nobody-here"])
        .cmd("true", &[])
        .run();
    assert_eq!(d.code, 125);
    assert_eq!(d.stderr.len(), 1);
    assert!(
        d.stderr[0].contains("\"nobody-here\" not found in /etc/passwd"),
        "{:?}",
        d.stderr
    );
    let d = with_files()
        .args(["--user", "app:nogroup"])
        .cmd("true", &[])
        .run();
    assert_eq!(d.code, 125);
    assert!(d.stderr[0].contains("nogroup"));
}

#[test]
fn env_variable_sets_the_user() {
    let v = introspect(with_files().env("BERTH_USER", "web"));
    assert_eq!(v["uid"], 1001);
}

#[test]
fn require_non_root_refuses_root() {
    let d = with_files()
        .args(["--require-non-root"])
        .cmd("true", &[])
        .run();
    assert_eq!(d.code, 125);
    let d = with_files()
        .args(["--require-non-root", "--user=app", "--log-format=plain"])
        .cmd("true", &[])
        .run();
    assert_eq!(d.code, 0);
}

fn berth_status_field(b: Berth, key: &str) -> String {
    // The start event comes after berth's own drop; the app's first line
    // can come before it.
    let r = b
        .arg("--log-format=json")
        .app("introspect", &["--wait"])
        .spawn();
    r.wait_for("\"event\":\"start\"");
    let pid = r.berth_pid();
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let v = s
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .unwrap()
        .trim()
        .to_string();
    r.signal(libc::SIGTERM);
    r.wait();
    v
}

#[test]
fn berth_drops_its_own_root_after_starting_a_non_root_app() {
    let uid = berth_status_field(with_files().args(["--user", "app"]), "Uid:");
    assert!(uid.starts_with("1000"), "{uid}");
    let caps = berth_status_field(with_files().args(["--user", "app"]), "CapEff:");
    assert_eq!(caps, "0000000000000000");
    let uid = berth_status_field(with_files().args(["--user", "app", "--keep-root"]), "Uid:");
    assert!(uid.starts_with('0'), "{uid}");
}

#[test]
fn root_without_setuid_capability_is_125_with_the_fix() {
    let bin = crate::util::berth_bin().display().to_string();
    let out = std::process::Command::new("setpriv")
        .args([
            "--bounding-set=-setuid,-setgid",
            "--inh-caps=-setuid,-setgid",
        ])
        .args([
            &bin,
            "--user",
            "1000:1000",
            "--log-format=plain",
            "--",
            "true",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{err}");
    assert!(
        err.contains("CAP_SETUID") && err.contains("--cap-add SETUID"),
        "{err}"
    );
}

/// A hostile volume: symlinks to files and a directory the app must not
/// get, and another file system mounted inside.
#[test]
fn chown_never_follows_symlinks_nor_crosses_file_systems() {
    use std::os::unix::fs::{symlink, MetadataExt};
    let root = std::env::temp_dir().join(format!("berth-chown-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let data = root.join("data");
    std::fs::create_dir_all(data.join("b")).unwrap();
    std::fs::create_dir_all(data.join("mnt")).unwrap();
    std::fs::create_dir_all(root.join("outside")).unwrap();
    std::fs::write(data.join("a"), "a").unwrap();
    std::fs::write(data.join("b/c"), "c").unwrap();
    std::fs::write(root.join("secret"), "root only").unwrap();
    std::fs::write(root.join("outside/f"), "f").unwrap();
    symlink(root.join("secret"), data.join("evil")).unwrap();
    symlink(root.join("outside"), data.join("evildir")).unwrap();
    symlink("/etc/passwd", data.join("b/passwd")).unwrap();
    let d = data.display().to_string();
    let out = Berth::new()
        .setup(&format!(
            "mount -t tmpfs none {d}/mnt && echo x > {d}/mnt/inside"
        ))
        .args(["--user", "1000:1000", "--chown", &d, "--log-format=plain"])
        .cmd(
            "sh",
            &["-c", &format!("stat -c %u {d}/mnt {d}/mnt/inside; id -u")],
        )
        .run();
    assert_eq!(out.code, 0, "{:?}", out.stderr);
    assert_eq!(
        out.stdout,
        vec!["0", "0", "1000"],
        "the tmpfs is not entered"
    );
    let owner = |p: &std::path::Path| std::fs::symlink_metadata(p).unwrap().uid();
    for p in ["", "a", "b", "b/c", "evil", "evildir", "b/passwd"] {
        assert_eq!(
            owner(&data.join(p)),
            1000,
            "{p} (links themselves change owner)"
        );
    }
    assert_eq!(
        owner(&root.join("secret")),
        0,
        "symlinked file not followed"
    );
    assert_eq!(
        owner(&root.join("outside")),
        0,
        "symlinked dir not followed"
    );
    assert_eq!(owner(&root.join("outside/f")), 0);
    assert_eq!(std::fs::metadata("/etc/passwd").unwrap().uid(), 0);
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn chown_needs_user_and_an_existing_path() {
    let d = Berth::new()
        .args(["--chown", "/tmp"])
        .cmd("true", &[])
        .run();
    assert_eq!(d.code, 125);
    assert!(d.stderr_text().contains("--chown"), "{}", d.stderr_text());
    let d = Berth::new()
        .args(["--user", "1000:1000", "--chown", "/no/such/path"])
        .cmd("true", &[])
        .run();
    assert_eq!(d.code, 125);
    assert!(
        d.stderr_text().contains("/no/such/path"),
        "{}",
        d.stderr_text()
    );
}

/// `docker run --user 4321:4321` (or Kubernetes `runAsUser`) with `--user`
/// baked into the image: berth is already the app's uid and gid, so it runs
/// the app as it is instead of failing at setgroups (which needs
/// CAP_SETGID even to set the same groups).
#[test]
fn non_root_berth_already_the_apps_ids_runs_it() {
    let bin = crate::util::berth_bin().display().to_string();
    let app = crate::util::example("introspect").display().to_string();
    for (groups, warns) in [("--groups=4321", false), ("--clear-groups", true)] {
        let out = std::process::Command::new("setpriv")
            .args(["--reuid=4321", "--regid=4321", groups])
            .args([
                &bin,
                "--user",
                "4321:4321",
                "--log-format=plain",
                "--",
                &app,
            ])
            .env_remove("BERTH_USER")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{groups}: {err}");
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            (v["uid"].as_u64(), v["gid"].as_u64()),
            (Some(4321), Some(4321))
        );
        assert_eq!(
            err.contains("already runs as uid 4321"),
            warns,
            "{groups}: {err}"
        );
    }
}
