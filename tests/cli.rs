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
