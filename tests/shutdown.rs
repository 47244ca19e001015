//! Shutdown and exit: stop signal → app exits → leftovers get TERM → SIGKILL
//! at the grace deadline → flush → exit with the app's code.

use std::time::Duration;

use crate::util::{example, Berth};

fn ready() -> &'static str {
    "\"msg\":\"ready\""
}

#[test]
fn term_stops_an_app_that_exits_on_term_with_its_code() {
    let r = Berth::new().app("sigprint", &["--code", "3"]).spawn();
    r.wait_for(ready());
    r.signal(libc::SIGTERM);
    let d = r.wait();
    assert_eq!(d.code, 3);
    let exit = d.event("exit");
    assert_eq!(exit["code"], 3);
    assert_eq!(exit["reason"], "exited");
    assert_eq!(exit["signal"], serde_json::Value::Null);
    // The exit event is the last line berth writes.
    let last: serde_json::Value = serde_json::from_str(d.stdout.last().unwrap()).unwrap();
    assert_eq!(last["event"], "exit");
}

#[test]
fn app_ignoring_term_is_killed_at_the_grace_deadline() {
    let r = Berth::new().arg("--grace=1s").app("stubborn", &[]).spawn();
    r.wait_for(ready());
    let t = std::time::Instant::now();
    r.signal(libc::SIGTERM);
    let d = r.wait();
    let took = t.elapsed();
    assert_eq!(d.code, 137);
    let exit = d.event("exit");
    assert_eq!(exit["reason"], "grace_expired");
    assert_eq!(exit["signal"], "KILL");
    assert!(
        took >= Duration::from_millis(950),
        "killed before the deadline: {took:?}"
    );
    assert!(
        took < Duration::from_secs(6),
        "grace not enforced: {took:?}"
    );
}

#[test]
fn descendants_ignoring_term_are_killed_too() {
    let r = Berth::new()
        .arg("--grace=1s")
        .app("stubborn", &["--children", "3"])
        .spawn();
    r.wait_for(ready());
    let berth = r.berth_pid();
    assert!(crate::util::descendants_of(berth).len() >= 4);
    r.signal(libc::SIGTERM);
    let d = r.wait();
    assert_eq!(d.code, 137);
}

#[test]
fn leftovers_after_the_app_exits_get_term_then_kill() {
    // The app exits 5 at once, leaving a child that dies on TERM and one that
    // ignores it: berth must wait for both and exit 5 after about the grace.
    let stub = example("stubborn").display().to_string();
    let t = std::time::Instant::now();
    let d = Berth::new()
        .args(["--grace=1s", "--log-format=plain"])
        .cmd(
            "sh",
            &["-c", &format!("sleep 100 & {stub} & sleep 0.2; exit 5")],
        )
        .run();
    assert_eq!(d.code, 5, "{:?}", d.stderr);
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "did not wait for leftovers"
    );
}

#[test]
fn leftovers_that_die_on_term_end_berth_early() {
    let t = std::time::Instant::now();
    let d = Berth::new()
        .args(["--grace=10s", "--log-format=plain"])
        .cmd("sh", &["-c", "sleep 100 & sleep 100 & exit 4"])
        .run();
    assert_eq!(d.code, 4);
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "waited the grace for nothing: {:?}",
        t.elapsed()
    );
}

#[test]
fn subreaper_stops_leftovers_too() {
    let d = Berth::new()
        .not_pid1()
        .args(["--grace=5s", "--log-format=plain"])
        .cmd("sh", &["-c", "sleep 100 & echo $!; exit 6"])
        .run();
    assert_eq!(d.code, 6);
    let pid: i32 = d.stdout[0].trim().parse().unwrap();
    assert!(
        crate::util::state_of(pid).is_none(),
        "leftover sleep {pid} still alive"
    );
}

#[test]
fn every_exit_code_passes_through() {
    // As tini's tests: the whole domain, 0..=255, in one namespace each.
    for code in 0..=255 {
        let d = Berth::new()
            .arg("--log-format=plain")
            .cmd("sh", &["-c", &format!("exit {code}")])
            .run();
        assert_eq!(d.code, code, "exit {code}");
    }
}

#[test]
fn death_by_signal_is_128_plus_n() {
    for (sig, code) in [
        ("SEGV", 139),
        ("KILL", 137),
        ("TERM", 143),
        ("USR1", 138),
        ("ABRT", 134),
    ] {
        let d = Berth::new()
            .args(["--log-format=json"])
            .cmd("sh", &["-c", &format!("kill -{sig} $$")])
            .run();
        assert_eq!(d.code, code, "{sig}");
        let e = d.event("exit");
        assert_eq!(e["signal"], sig);
        assert_eq!(e["reason"], "signaled");
    }
}

#[test]
fn success_exit_rewrites_real_statuses_only() {
    let d = Berth::new()
        .args([
            "--success-exit",
            "143",
            "--success-exit=130",
            "--log-format=plain",
        ])
        .cmd("sh", &["-c", "exit 143"])
        .run();
    assert_eq!(d.code, 0);
    let d = Berth::new()
        .args(["--success-exit", "143", "--log-format=plain"])
        .cmd("sh", &["-c", "kill -TERM $$"])
        .run();
    assert_eq!(d.code, 143, "a real SIGTERM death is not success");
    let d = Berth::new()
        .env("BERTH_SUCCESS_EXIT", "3,4")
        .arg("--log-format=plain")
        .cmd("sh", &["-c", "exit 4"])
        .run();
    assert_eq!(d.code, 0);
}

#[test]
fn drain_delays_the_stop_signal_and_a_second_term_skips_it() {
    let r = Berth::new()
        .args(["--drain=1s", "--grace=5s"])
        .app("sigprint", &[])
        .spawn();
    r.wait_for(ready());
    let t = std::time::Instant::now();
    r.signal(libc::SIGTERM);
    let d = r.wait();
    assert_eq!(d.code, 0);
    assert!(
        t.elapsed() >= Duration::from_millis(950),
        "drain skipped: {:?}",
        t.elapsed()
    );

    let r = Berth::new()
        .args(["--drain=30s", "--grace=5s"])
        .app("sigprint", &[])
        .spawn();
    r.wait_for(ready());
    let t = std::time::Instant::now();
    r.signal(libc::SIGTERM);
    r.stdout
        .wait_for("draining note", |l| l.contains("draining"));
    r.signal(libc::SIGTERM);
    let d = r.wait();
    assert_eq!(d.code, 0);
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "second TERM did not skip the drain"
    );
}

#[test]
fn all_output_is_flushed_when_the_app_is_killed_at_the_deadline() {
    let stub = example("stubborn").display().to_string();
    let r = Berth::new()
        .arg("--grace=1s")
        .cmd(
            "sh",
            &[
                "-c",
                &format!(
                    "i=0; while [ $i -lt 2000 ]; do echo line $i; i=$((i+1)); done; exec {stub}"
                ),
            ],
        )
        .spawn();
    r.wait_for(ready());
    r.signal(libc::SIGTERM);
    let d = r.wait();
    assert_eq!(d.code, 137);
    let m = d.msgs("stdout");
    assert_eq!(m.len(), 2001);
    assert_eq!(m[1999], "line 1999");
    let last: serde_json::Value = serde_json::from_str(d.stdout.last().unwrap()).unwrap();
    assert_eq!(last["event"], "exit");
}
