//! `--env-from-file` as PID 1 (SPEC "Before the app starts", step 1): a
//! secret readable by root only reaches a non-root app as NAME, and its
//! value is in no output of berth's.
//!
//! Each secret lives on a tmpfs mounted at /mnt inside berth's mount
//! namespace (gone with it), mode 0400, owned by root, as Docker and
//! Kubernetes mount them.

use serde_json::Value;

use crate::util::{berth_bin, descendant_named, free_port, http_response, Berth};

/// Distinctive, so a find anywhere is this test's secret and no accident.
pub const SECRET: &str = "s3cr3t-7Qv9-ZULU-never-printed";

pub const PASSWD: &[u8] = b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:App:/home/app:/bin/sh\n";
pub const GROUP: &[u8] = b"root:x:0:\napp:x:1000:\n";

/// berth with the test's /etc/passwd and a tmpfs at /mnt holding
/// /mnt/db_password (0400 root) with SECRET and a newline, as `echo` writes it.
pub fn with_secret() -> Berth {
    Berth::new()
        .file("/etc/passwd", PASSWD)
        .file("/etc/group", GROUP)
        .setup(&format!(
            "mount -t tmpfs tmpfs /mnt && echo '{SECRET}' > /mnt/db_password && chmod 0400 /mnt/db_password"
        ))
}

fn introspect(b: Berth, args: &[&str]) -> Value {
    let d = b.arg("--log-format=plain").app("introspect", args).run();
    assert_eq!(d.code, 0, "{:?}", d.stderr);
    serde_json::from_str(&d.stdout[0]).unwrap()
}

fn env_of(v: &Value) -> Vec<String> {
    v["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_root_only_secret_file_reaches_the_non_root_app_as_name() {
    let v = introspect(
        with_secret().args([
            "--user",
            "app",
            "--env-from-file",
            "DB_PASSWORD=/mnt/db_password",
        ]),
        &["--read", "/mnt/db_password"],
    );
    assert_eq!(
        (v["uid"].as_u64(), v["euid"].as_u64()),
        (Some(1000), Some(1000))
    );
    assert!(env_of(&v).contains(&format!("DB_PASSWORD={SECRET}")), "{v}");
    // The app itself cannot read the file: only berth, as root, could.
    assert_eq!(v["reads"][0]["owner"], "0:0 400");
    assert!(
        v["reads"][0]["error"]
            .as_str()
            .unwrap()
            .contains("Permission denied"),
        "{v}"
    );
}

#[test]
fn name_alone_reads_name_file_and_the_app_never_sees_name_file() {
    for b in [
        with_secret().args(["--env-from-file", "DB_PASSWORD"]),
        with_secret().env("BERTH_ENV_FROM_FILE", "OTHER,DB_PASSWORD"),
    ] {
        let v = introspect(
            b.args(["--user", "app"])
                .env("DB_PASSWORD_FILE", "/mnt/db_password"),
            &[],
        );
        let env = env_of(&v);
        assert!(env.contains(&format!("DB_PASSWORD={SECRET}")), "{env:?}");
        assert!(
            !env.iter().any(|e| e.starts_with("DB_PASSWORD_FILE=")),
            "{env:?}"
        );
        // OTHER had neither OTHER nor OTHER_FILE: it stays unset.
        assert!(!env.iter().any(|e| e.starts_with("OTHER=")), "{env:?}");
    }
}

#[test]
fn the_start_event_names_the_variable_and_never_its_value() {
    let d = with_secret()
        .args([
            "--log-format=json",
            "--env-from-file",
            "DB_PASSWORD=/mnt/db_password",
        ])
        .cmd("true", &[])
        .run();
    assert_eq!(d.code, 0, "{:?}", d.stderr);
    let start = d.event("start");
    assert_eq!(start["env_from_file"], serde_json::json!(["DB_PASSWORD"]));
    // Like waited_for, a step that did nothing is not listed.
    assert!(start.get("templates").is_none(), "{start}");
    let d = with_secret()
        .args([
            "--log-format=plain",
            "--env-from-file",
            "DB_PASSWORD=/mnt/db_password",
        ])
        .cmd("true", &[])
        .run();
    assert!(
        d.stderr
            .contains(&"berth: env from files: DB_PASSWORD".to_string()),
        "{:?}",
        d.stderr
    );
}

/// Every output berth has, while the app holds the secret: json events
/// (start, warn, signal, exit), stderr, `berth status`, the status port's
/// bodies, berth's own environment and command line.
#[test]
fn the_secret_is_in_the_apps_environment_and_in_no_output_of_berth() {
    let port = free_port();
    let r = with_secret()
        .args([
            "--log-format=json",
            "--user=app",
            "--status-listen",
            &format!("127.0.0.1:{port}"),
            "--env-from-file",
            "DB_PASSWORD",
            "--health",
            &format!("tcp://127.0.0.1:{port}"),
            "--health-interval=100ms",
        ])
        .env("DB_PASSWORD_FILE", "/mnt/db_password")
        .app("sigprint", &[])
        .spawn();
    r.wait_for("ready");
    r.wait_for("\"event\":\"health\"");
    let berth = r.berth_pid();
    let app = descendant_named(berth, "sigprint");
    let app_env = std::fs::read(format!("/proc/{app}/environ")).unwrap();
    assert!(
        String::from_utf8_lossy(&app_env).contains(&format!("DB_PASSWORD={SECRET}")),
        "the app did not get the secret"
    );
    let mut seen: Vec<(String, String)> = Vec::new();
    let status = r.exec_in(&[&berth_bin().display().to_string(), "status"]);
    assert!(status.status.success(), "{status:?}");
    seen.push(("berth status".into(), format!("{status:?}")));
    seen.push((
        "/readyz".into(),
        http_response("127.0.0.1", port, "/readyz", "x"),
    ));
    seen.push((
        "/livez".into(),
        http_response("127.0.0.1", port, "/livez", "x"),
    ));
    for f in ["environ", "cmdline"] {
        let b = std::fs::read(format!("/proc/{berth}/{f}")).unwrap();
        seen.push((format!("berth's {f}"), String::from_utf8_lossy(&b).into()));
    }
    r.signal(libc::SIGTERM);
    let d = r.wait();
    assert!(d.stdout.iter().any(|l| l.contains("\"event\":\"exit\"")));
    seen.push(("stdout".into(), d.stdout.join("\n")));
    seen.push(("stderr".into(), d.stderr_text()));
    for (what, text) in &seen {
        assert!(!text.contains(SECRET), "the secret is in {what}: {text}");
        assert!(!text.contains("s3cr3t"), "part of the secret is in {what}");
    }
    assert!(d.event("start")["env_from_file"] == serde_json::json!(["DB_PASSWORD"]));
}

/// Every refusal of SPEC step 1: 125, one line naming NAME and PATH, the
/// contents never, and the app never started.
#[test]
fn every_bad_secret_is_125_in_one_line_naming_name_and_path_only() {
    let big = 200 * 1024;
    // (option, the PATH named, berth's environment, why)
    type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case; 6] = [
        ("API_KEY=/mnt/none", "/mnt/none", &[], "No such file"),
        ("API_KEY=/mnt", "/mnt", &[], "not a regular file"),
        ("API_KEY=/mnt/nul", "/mnt/nul", &[], "NUL byte"),
        ("API_KEY=/mnt/big", "/mnt/big", &[], "kernel's limit"),
        (
            "API_KEY",
            "/mnt/nul",
            &[("API_KEY", "x"), ("API_KEY_FILE", "/mnt/nul")],
            "both API_KEY and API_KEY_FILE",
        ),
        (
            "API_KEY=/mnt/db_password",
            "/mnt/db_password",
            &[("API_KEY", "x")],
            "also set in the environment",
        ),
    ];
    for (option, path, env, why) in cases {
        let mut b = with_secret().setup(&format!(
            "printf '{SECRET}\\000{SECRET}' > /mnt/nul && head -c {big} /dev/zero | tr '\\0' 'x' > /mnt/big && echo '{SECRET}' >> /mnt/big && chmod 0400 /mnt/nul /mnt/big"
        ));
        for (k, v) in env {
            b = b.env(k, v);
        }
        let d = b
            .args(["--log-format=json", "--user=app", "--env-from-file", option])
            .cmd("echo", &["the app started"])
            .run();
        assert_eq!(d.code, 125, "{option}: {:?}", d.stderr);
        assert_eq!(d.stderr.len(), 1, "{option}: {:?}", d.stderr);
        let line = &d.stderr[0];
        assert!(line.starts_with("berth: --env-from-file API_KEY"), "{line}");
        assert!(
            line.contains(path) && line.contains(why),
            "{option}: {line}"
        );
        assert!(!line.contains(SECRET) && !line.contains("xxxx"), "{line}");
        assert!(
            !d.stdout.iter().any(|l| l.contains("the app started")),
            "{option}: the app ran: {:?}",
            d.stdout
        );
    }
}
