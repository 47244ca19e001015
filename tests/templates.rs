//! `--template SRC:DST` as PID 1 (SPEC "Before the app starts", step 3):
//! rendered from the app's environment after `--env-from-file`, written
//! whole, owned by the app, mode 0640; every refusal a one-line 125 and
//! the app never started. Files live on a tmpfs at /mnt inside berth's
//! mount namespace.

use serde_json::Value;

use crate::secrets::{with_secret, SECRET};
use crate::util::Berth;

/// A template as nginx's image has them: `${NAME}`, a default, nginx's
/// own `$host` and `$${`.
const TEMPLATE: &str = "server {\n    listen ${PORT:-8080};\n    set $password \"${DB_PASSWORD}\";\n    return 200 \"$host $${literal}\";\n}\n";

fn with_template(template: &str) -> Berth {
    with_secret().setup(&format!(
        "mkdir /mnt/conf && chmod 0777 /mnt/conf && printf '%s' '{template}' > /mnt/t && chmod 0400 /mnt/t"
    ))
}

#[test]
fn a_template_is_rendered_with_the_secret_owned_by_the_app_0640() {
    let d = with_template(TEMPLATE)
        .args([
            "--log-format=plain",
            "--user=app",
            "--env-from-file=DB_PASSWORD=/mnt/db_password",
            "--template=/mnt/t:/mnt/conf/app.conf",
        ])
        .app("introspect", &["--read", "/mnt/conf/app.conf"])
        .run();
    assert_eq!(d.code, 0, "{:?}", d.stderr);
    let v: Value = serde_json::from_str(&d.stdout[0]).unwrap();
    assert_eq!(v["uid"], 1000);
    assert_eq!(
        v["reads"][0]["text"].as_str().unwrap(),
        format!(
            "server {{\n    listen 8080;\n    set $password \"{SECRET}\";\n    return 200 \"$host ${{literal}}\";\n}}\n"
        )
    );
    assert_eq!(v["reads"][0]["owner"], "1000:1000 640");
    assert!(
        d.stderr
            .contains(&"berth: templates written: /mnt/conf/app.conf".to_string()),
        "{:?}",
        d.stderr
    );
}

#[test]
fn the_start_event_lists_the_dsts_written() {
    let d = with_template("x ${PORT}\n")
        .args([
            "--log-format=json",
            "--template",
            "/mnt/t:/mnt/conf/a.conf",
            "--template",
            "/mnt/t:/mnt/conf/b.conf",
        ])
        .env("PORT", "81")
        .cmd("cat", &["/mnt/conf/a.conf", "/mnt/conf/b.conf"])
        .run();
    assert_eq!(d.code, 0, "{:?}", d.stderr);
    assert_eq!(
        d.event("start")["templates"],
        serde_json::json!(["/mnt/conf/a.conf", "/mnt/conf/b.conf"])
    );
    assert_eq!(d.msgs("stdout"), vec!["x 81", "x 81"]);
}

#[test]
fn berth_template_variable_is_repeatable_and_berth_variables_are_not_the_apps() {
    let d = with_template("${BERTH_GRACE}")
        .env("BERTH_TEMPLATE", "/mnt/t:/mnt/conf/a.conf")
        .env("BERTH_GRACE", "3s")
        .arg("--log-format=plain")
        .cmd("true", &[])
        .run();
    assert_eq!(d.code, 125, "{:?}", d.stderr);
    assert!(
        d.stderr_text().contains("${BERTH_GRACE} is unset"),
        "{:?}",
        d.stderr
    );
}

/// One refusal: 125, one stderr line holding every `needles`, the app
/// never started, and the contents of the secret in no line.
fn refused(b: Berth, needles: &[&str]) {
    let d = b
        .arg("--log-format=plain")
        .cmd("echo", &["the app started"])
        .run();
    assert_eq!(d.code, 125, "{needles:?}: {:?} {:?}", d.stdout, d.stderr);
    assert_eq!(d.stderr.len(), 1, "{:?}", d.stderr);
    for n in needles {
        assert!(d.stderr[0].contains(n), "{n:?} not in {}", d.stderr[0]);
    }
    assert!(!d.stderr[0].contains(SECRET));
    assert!(d.stdout.is_empty(), "the app ran: {:?}", d.stdout);
}

#[test]
fn an_unset_name_is_125_naming_file_line_and_name() {
    refused(
        with_template("a ${DB_PASSWORD}\nb\nserver_name ${SERVER_NAME};\n")
            .args([
                "--env-from-file=DB_PASSWORD=/mnt/db_password",
                "--template=/mnt/t:/mnt/conf/a.conf",
            ])
            .setup("echo old > /mnt/conf/a.conf"),
        &["/mnt/t", "line 3", "${SERVER_NAME} is unset"],
    );
}

#[test]
fn a_symlink_at_dst_is_refused_and_its_target_untouched() {
    let b = with_template("new")
        .setup("echo keep > /mnt/target && ln -s /mnt/target /mnt/conf/a.conf")
        .args(["--user=app", "--template=/mnt/t:/mnt/conf/a.conf"]);
    refused(b, &["/mnt/conf/a.conf is a symlink: refused"]);
}

#[test]
fn dst_a_directory_or_a_symlinked_directory_of_the_app_is_refused() {
    refused(
        with_template("x")
            .setup("mkdir /mnt/conf/a.conf")
            .args(["--template=/mnt/t:/mnt/conf/a.conf"]),
        &["/mnt/conf/a.conf is a directory"],
    );
    // A link the app could have left in its own volume, pointing the root
    // write into /etc.
    refused(
        with_template("x")
            .setup("ln -s /etc /mnt/conf/sub && chown -h 1000:1000 /mnt/conf/sub")
            .args(["--user=app", "--template=/mnt/t:/mnt/conf/sub/evil.conf"]),
        &["/mnt/conf/sub is a symlink owned by uid 1000: refused"],
    );
}

#[test]
fn dst_on_a_read_only_file_system_is_a_clear_125() {
    refused(
        with_template("x")
            .setup("mkdir /mnt/ro && mount -t tmpfs -o ro tmpfs /mnt/ro")
            .args(["--template=/mnt/t:/mnt/ro/a.conf"]),
        &[
            "/mnt/ro is on a read-only file system",
            "--tmpfs",
            "emptyDir",
        ],
    );
}

#[test]
fn a_huge_or_odd_src_is_refused() {
    refused(
        with_template("x")
            .setup("head -c 1048577 /dev/zero > /mnt/big")
            .args(["--template=/mnt/big:/mnt/conf/a.conf"]),
        &["/mnt/big: larger than 1048576 bytes"],
    );
    refused(
        with_template("x")
            .setup("mkfifo /mnt/fifo")
            .args(["--template=/mnt/fifo:/mnt/conf/a.conf"]),
        &["/mnt/fifo: not a regular file"],
    );
    refused(
        with_template("listen ${PORT\n}")
            .env("PORT", "1")
            .args(["--template=/mnt/t:/mnt/conf/a.conf"]),
        &["line 1: ${ has no }"],
    );
}
