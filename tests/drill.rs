//! `berth drill` against the example httpd in its two SIGTERM modes
//! (`--on-term stop`: exit at once; `finish`: stop accepting, finish what is
//! in flight), with and without `--drain`: failures must be reported where
//! there are failures, and none where there are none. The drill runs as
//! PID 1 of a fresh PID namespace (as in `docker run IMAGE /berth drill`),
//! its child berth as a subreaper.
//!
//! Short phases keep each drill to a few seconds: SIGTERM after 1s, load for
//! 1s more, drains of 2s (longer than the lag: the fix the drill suggests).

use serde_json::Value;

use crate::util::{free_port, Berth, Done};

/// `berth drill --json` with `drill_args` then `-- httpd --port P httpd_args`.
fn drill(drill_args: &[&str], path: &str, httpd_args: &[&str]) -> (Done, Value) {
    let port = free_port().to_string();
    let url = format!("http://127.0.0.1:{port}{path}");
    let mut app = vec!["--port", &port];
    app.extend_from_slice(httpd_args);
    let done = Berth::new()
        .args([
            "drill",
            "--json",
            "--url",
            &url,
            "--stop-after",
            "1s",
            "--lag",
            "1s",
        ])
        .args(drill_args.iter().copied())
        .app("httpd", &app)
        .run();
    let report = done
        .stdout
        .iter()
        .find(|l| l.starts_with('{'))
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no JSON report: {done:#?}"));
    (done, report)
}

fn n(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} is not a count in {v}"))
}

fn failures(v: &Value, kind: &str) -> u64 {
    v["failures"][kind].as_u64().unwrap()
}

/// The app ran, was stopped by the drill's SIGTERM, and exited 0 by itself.
fn assert_clean_exit(v: &Value) {
    assert_eq!(v["exit_reason"], "exited", "{v}");
    assert_eq!(v["exit_code"], 0, "{v}");
    assert_eq!(v["killed_at_grace"], false, "{v}");
    assert_eq!(v["exited_before_stop"], false, "{v}");
    assert!(n(v, "sent") > 0, "{v}");
    assert_eq!(n(v, "failed_before_stop"), 0, "{v}");
}

#[test]
fn stop_at_once_without_drain_reports_refused_requests_and_the_drain_fix() {
    let (done, v) = drill(&[], "/", &["--on-term", "stop"]);
    assert_eq!(done.code, 1, "{v}");
    assert_eq!(v["passed"], false);
    assert_clean_exit(&v);
    assert!(failures(&v, "refused") > 0, "{v}");
    assert_eq!(n(&v, "failed_after_stop"), n(&v, "failed"));
    assert_eq!(n(&v, "ok") + n(&v, "failed"), n(&v, "sent"), "{v}");
    let findings = v["findings"][0].as_str().unwrap();
    assert!(
        findings.contains("refused after SIGTERM") && findings.contains("--drain 2s"),
        "{findings}"
    );
}

#[test]
fn stop_at_once_with_a_drain_longer_than_the_lag_loses_nothing() {
    let (done, v) = drill(&["--drain", "2s"], "/", &["--on-term", "stop"]);
    assert_eq!(done.code, 0, "{v}");
    assert_eq!(v["passed"], true);
    assert_clean_exit(&v);
    assert_eq!(n(&v, "failed"), 0, "{v}");
    assert_eq!(n(&v, "ok"), n(&v, "sent"));
    assert_eq!(v["findings"], serde_json::json!([]));
    // berth held the stop signal back for the drain.
    assert!(v["stop_s"].as_f64().unwrap() >= 2.0, "{v}");
}

#[test]
fn finishing_in_flight_without_drain_still_refuses_new_connections() {
    // Text mode this time: the report people read.
    let port = free_port().to_string();
    let url = format!("http://127.0.0.1:{port}/");
    let done = Berth::new()
        .args(["drill", "--url", &url, "--stop-after", "1s", "--lag", "1s"])
        .app("httpd", &["--port", &port, "--on-term", "finish"])
        .run();
    assert_eq!(done.code, 1, "{done:#?}");
    let text = done.stdout.join("\n");
    assert!(text.contains("verdict:   FAIL"), "{text}");
    assert!(
        text.contains(
            "refused after SIGTERM: the app stopped listening at once; run it with --drain 2s"
        ),
        "{text}"
    );
    assert!(
        text.contains("the app exited by itself; exit code 0"),
        "{text}"
    );
}

#[test]
fn finishing_in_flight_with_a_drain_passes_even_with_slow_requests() {
    // Requests take 1.5s: the last ones sent in the lag are still in flight
    // when the stop signal comes at the drain's end; the app finishes them.
    let (done, v) = drill(
        &["--drain", "2s", "--rps", "10", "--connections", "32"],
        "/slow?ms=1500",
        &["--on-term", "finish"],
    );
    assert_eq!(done.code, 0, "{v}");
    assert_clean_exit(&v);
    assert_eq!(n(&v, "failed"), 0, "{v}");
    assert_eq!(n(&v, "unsent"), 0, "{v}");
}

#[test]
fn stop_at_once_with_a_drain_cuts_off_slow_requests_in_flight() {
    let (done, v) = drill(
        &["--drain", "2s", "--rps", "10", "--connections", "32"],
        "/slow?ms=1500",
        &["--on-term", "stop"],
    );
    assert_eq!(done.code, 1, "{v}");
    assert_clean_exit(&v);
    assert!(failures(&v, "reset") > 0, "{v}");
    assert_eq!(failures(&v, "refused"), 0, "{v}");
    let findings = v["findings"].to_string();
    assert!(
        findings.contains("cut off after SIGTERM")
            && findings.contains("finish the requests in flight"),
        "{findings}"
    );
}

#[test]
fn an_app_killed_at_the_grace_deadline_after_its_requests_passes_with_a_warning() {
    // httpd ignores WINCH: it serves on until berth's SIGKILL. No request
    // failed, so the verdict passes; the kill is a warning with its fix.
    let (done, v) = drill(
        &["--stop-signal", "WINCH", "--grace", "1s"],
        "/",
        &["--on-term", "stop"],
    );
    assert_eq!(done.code, 0, "{v}");
    assert_eq!(v["passed"], true, "{v}");
    assert_eq!(n(&v, "failed"), 0, "{v}");
    assert_eq!(v["findings"], serde_json::json!([]));
    assert_eq!(v["exit_reason"], "grace_expired", "{v}");
    assert_eq!(v["killed_at_grace"], true);
    assert_eq!(v["exit_code"], 137);
    let warning = v["warnings"][0].as_str().unwrap();
    assert!(
        warning.contains("killed (SIGKILL) at the grace deadline") && warning.contains("--grace"),
        "{v}"
    );
}

#[test]
fn an_app_that_dies_of_sigterm_after_losing_nothing_passes_with_a_warning() {
    // `python3 -m http.server` does not handle SIGTERM: it dies of it (143).
    // With a drain that covers the lag, no request fails: PASS (exit 0),
    // and the death by signal is a warning that says how to fix it.
    let port = free_port().to_string();
    let url = format!("http://127.0.0.1:{port}/");
    let run = |json: bool| {
        Berth::new()
            .args(["drill", "--url", &url, "--stop-after", "1s", "--lag", "1s"])
            .args(["--drain", "2s", "--rps", "20"])
            .args(json.then_some("--json"))
            .cmd(
                "python3",
                &["-m", "http.server", &port, "--bind", "127.0.0.1"],
            )
            .run()
    };
    let done = run(true);
    assert_eq!(done.code, 0, "{done:#?}");
    let v: Value = done
        .stdout
        .iter()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no JSON report: {done:#?}"));
    assert_eq!(v["passed"], true, "{v}");
    assert!(n(&v, "sent") > 0 && n(&v, "failed") == 0, "{v}");
    assert_eq!(
        (&v["exit_reason"], &v["exit_code"]),
        (&"signaled".into(), &143.into()),
        "{v}"
    );
    assert_eq!(v["findings"], serde_json::json!([]));
    let warning = v["warnings"][0].as_str().unwrap();
    assert!(
        warning.contains("died of SIGTERM") && warning.contains("handle SIGTERM"),
        "{warning}"
    );
    // The report people read says the same.
    let done = run(false);
    assert_eq!(done.code, 0, "{done:#?}");
    let text = done.stdout.join("\n");
    assert!(
        text.contains("verdict:   PASS: no request failed, with 1 warning")
            && text.contains("  warning: the app died of SIGTERM"),
        "{text}"
    );
}

#[test]
fn an_app_that_never_turns_healthy_fails_within_the_start_timeout() {
    let other = free_port().to_string();
    let port = free_port().to_string();
    let url = format!("http://127.0.0.1:{port}/");
    let done = Berth::new()
        .args(["drill", "--json", "--url", &url, "--start-timeout", "1s"])
        .app("httpd", &["--port", &other])
        .run();
    assert_eq!(done.code, 1, "{done:#?}");
    let v: Value = serde_json::from_str(&done.stdout[0]).unwrap();
    assert_eq!(v["ready_s"], Value::Null);
    assert!(
        v["findings"][0]
            .as_str()
            .unwrap()
            .contains("not healthy within 1s"),
        "{v}"
    );
    assert!(done.stderr_text().contains("listening on"), "{done:#?}");
}

#[test]
fn drill_usage_errors_are_2() {
    for args in [
        vec!["drill", "--", "true"],
        vec!["drill", "--url", "http://10.1.2.3:80/", "--", "true"],
        vec!["drill", "--url", "tcp://127.0.0.1:80", "--", "true"],
        vec![
            "drill",
            "--url",
            "http://127.0.0.1:80/",
            "--rps",
            "0",
            "--",
            "true",
        ],
        vec![
            "drill",
            "--url",
            "http://127.0.0.1:80/",
            "--grace",
            "10x",
            "--",
            "true",
        ],
        vec!["drill", "--url", "http://127.0.0.1:80/"],
    ] {
        let done = Berth::new().not_pid1().args(args.iter().copied()).run();
        assert_eq!(done.code, 2, "{args:?}: {done:#?}");
        assert_eq!(done.stderr.len(), 1, "{args:?}: {done:#?}");
        assert!(done.stderr[0].starts_with("berth: "), "{done:#?}");
    }
}

#[test]
fn errors_under_load_before_the_stop_are_5xx_failures_before_sigterm() {
    // Ready by --health on /, but the load goes to /healthz, which answers
    // 503 while the --file-health file exists.
    let flag = std::env::temp_dir().join(format!("berth-drill-503-{}", std::process::id()));
    std::fs::write(&flag, b"").unwrap();
    let port = free_port().to_string();
    let done = Berth::new()
        .args(["drill", "--json", "--stop-after", "500ms", "--lag", "0"])
        .arg(format!("--url=http://127.0.0.1:{port}/healthz"))
        .arg(format!("--health=http://127.0.0.1:{port}/"))
        .arg("--drain=1s")
        .app(
            "httpd",
            &["--port", &port, "--file-health", flag.to_str().unwrap()],
        )
        .run();
    let _ = std::fs::remove_file(&flag);
    assert_eq!(done.code, 1, "{done:#?}");
    let v: Value = serde_json::from_str(&done.stdout[0]).unwrap();
    assert!(failures(&v, "5xx") > 0, "{v}");
    assert_eq!(n(&v, "ok"), 0, "{v}");
    assert_eq!(
        n(&v, "failed_before_stop"),
        n(&v, "failed") - n(&v, "failed_after_stop")
    );
    assert!(n(&v, "failed_before_stop") > 0, "{v}");
    assert!(
        v["findings"][0]
            .as_str()
            .unwrap()
            .contains("failed before SIGTERM (5xx"),
        "{v}"
    );
}
