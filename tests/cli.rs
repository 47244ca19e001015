//! Command line: exit codes and one-line errors for bad input.

use crate::util::Berth;

fn one_line_error(d: &crate::util::Done, needle: &str) {
    assert_eq!(
        d.stderr.len(),
        1,
        "expected one stderr line, got {:?}",
        d.stderr
    );
    assert!(d.stderr[0].starts_with("berth: "), "{:?}", d.stderr);
    assert!(
        d.stderr[0].contains(needle),
        "{:?} lacks {needle}",
        d.stderr
    );
}

#[test]
fn unknown_option_is_usage_error_2() {
    let d = Berth::new().not_pid1().args(["--bogus", "true"]).run();
    assert_eq!(d.code, 2);
    one_line_error(&d, "--bogus");
}

#[test]
fn missing_command_is_usage_error_2() {
    let d = Berth::new().not_pid1().arg("--grace=1s").run();
    assert_eq!(d.code, 2);
    one_line_error(&d, "COMMAND");
}

#[test]
fn bad_values_are_125_naming_the_option() {
    for (args, needle) in [
        (vec!["--grace", "10x", "true"], "--grace"),
        (vec!["--stop-signal", "SIGNOPE", "true"], "--stop-signal"),
        (vec!["--map-signal", "KILL:TERM", "true"], "--map-signal"),
        (vec!["--rlimit", "nofile=10:5", "true"], "--rlimit"),
        (vec!["--success-exit", "256", "true"], "--success-exit"),
        (vec!["--log-max-line", "10", "true"], "--log-max-line"),
        (vec!["--log-format", "xml", "true"], "--log-format"),
    ] {
        let d = Berth::new().not_pid1().args(args.clone()).run();
        assert_eq!(d.code, 125, "{args:?}: {:?}", d.stderr);
        one_line_error(&d, needle);
    }
}

#[test]
fn unknown_berth_variable_is_125_naming_it() {
    let d = Berth::new()
        .not_pid1()
        .env("BERTH_GRACEE", "1s")
        .arg("true")
        .run();
    assert_eq!(d.code, 125);
    one_line_error(&d, "BERTH_GRACEE");
}

#[test]
fn bad_value_in_variable_is_125() {
    let d = Berth::new()
        .not_pid1()
        .env("BERTH_GRACE", "soon")
        .arg("true")
        .run();
    assert_eq!(d.code, 125);
    one_line_error(&d, "--grace");
}

#[test]
fn command_not_found_is_127() {
    let d = Berth::new().cmd("no-such-command-anywhere", &[]).run();
    assert_eq!(d.code, 127);
    one_line_error(&d, "not found");
}

#[test]
fn command_not_executable_is_126() {
    let d = Berth::new().cmd("/etc/hostname", &[]).run();
    assert_eq!(d.code, 126);
    one_line_error(&d, "cannot be executed");
    let d = Berth::new().cmd("/tmp", &[]).run();
    assert_eq!(d.code, 126, "a directory: {:?}", d.stderr);
}

#[test]
fn help_and_version_exit_0() {
    let d = Berth::new().not_pid1().arg("--help").run();
    assert_eq!(d.code, 0);
    assert!(d.stdout.join("\n").contains("--grace"));
    let d = Berth::new().not_pid1().arg("--version").run();
    assert_eq!(d.code, 0);
    assert!(d.stdout[0].starts_with("berth "), "{:?}", d.stdout);
}

#[test]
fn a_mistyped_option_is_2_with_did_you_mean_on_one_line() {
    let d = Berth::new()
        .not_pid1()
        .args(["--grase", "1s", "true"])
        .run();
    assert_eq!(d.code, 2);
    one_line_error(&d, "unknown option --grase (did you mean --grace?)");
    one_line_error(&d, "berth --help");
    let d = Berth::new()
        .not_pid1()
        .args(["probe", "--timout", "1s", "tcp://127.0.0.1:1"])
        .run();
    assert_eq!(d.code, 2);
    one_line_error(
        &d,
        "probe: unknown option --timout (did you mean --timeout?)",
    );
}

#[test]
fn a_bad_value_is_still_125_in_every_form_of_the_option() {
    for args in [
        vec!["--grace=10x", "true"],
        vec!["-u", "nobody-such-user", "true"],
        vec!["-unobody-such-user", "true"],
        vec!["--preserve-fds", "-1", "true"],
    ] {
        let d = Berth::new().not_pid1().args(args.clone()).run();
        assert_eq!(d.code, 125, "{args:?}: {:?}", d.stderr);
        assert_eq!(d.stderr.len(), 1, "{args:?}: {:?}", d.stderr);
    }
}

#[test]
fn a_flag_beats_its_variable_which_is_then_not_even_read() {
    // Both variables hold values berth would refuse: the flags win, so
    // they are never judged and the app runs.
    let d = Berth::new()
        .not_pid1()
        .env("BERTH_GRACE", "soon")
        .env("BERTH_NO_GROUP", "maybe")
        .args(["--grace", "1s", "--no-group", "true"])
        .run();
    assert_eq!(d.code, 0, "{:?}", d.stderr);
}

#[test]
fn double_dash_is_optional_before_command() {
    for args in [vec!["sh", "-c", "exit 3"], vec!["--", "sh", "-c", "exit 3"]] {
        let d = Berth::new().not_pid1().args(args.clone()).run();
        assert_eq!(d.code, 3, "{args:?}: {:?}", d.stderr);
    }
}

#[test]
fn words_after_command_are_the_apps_not_berths() {
    let d = Berth::new()
        .not_pid1()
        .args(["--log-format", "plain", "--grace", "1s"])
        .args([
            "sh",
            "-c",
            "echo \"$@\"",
            "sh",
            "--grace",
            "--bogus",
            "-la",
            "--help",
            "--",
        ])
        .run();
    assert_eq!(d.code, 0, "{:?}", d.stderr);
    assert_eq!(d.stdout, ["--grace --bogus -la --help --"]);
    // A subcommand's name after an option is a COMMAND, not the subcommand.
    let d = Berth::new()
        .not_pid1()
        .args(["--grace", "1s", "status", "--ready"])
        .run();
    assert_eq!(d.code, 127, "{:?}", d.stderr);
    one_line_error(&d, "status");
}

#[test]
fn help_is_one_line_per_option() {
    let d = Berth::new().not_pid1().arg("--help").run();
    assert_eq!(d.code, 0);
    for option in [
        "--user",
        "--grace",
        "--map-signal",
        "--log-stream-level",
        "--keep-root",
    ] {
        let lines: Vec<&String> = d
            .stdout
            .iter()
            .filter(|l| l.contains(&format!("{option} ")) || l.ends_with(option))
            .collect();
        assert_eq!(lines.len(), 1, "{option}: {lines:?}");
        let words = lines[0].split_whitespace().count();
        assert!(words > 3, "{option} has no help text: {lines:?}");
    }
    for l in &d.stdout {
        assert!(l.chars().count() <= 80, "wider than a terminal: {l:?}");
    }
}
