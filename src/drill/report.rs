//! The drill's report: what happened (counts, the stop, berth's `exit`
//! event), the findings and warnings, each with its fix, and the two
//! renderings (text for people, one JSON object for CI). Pure: mod.rs
//! gathers the facts.
//!
//! The verdict is about requests (SPEC): a finding is a failed request (or
//! an app that never became healthy, so no request could be tried); what
//! cost no request (the app died of SIGTERM instead of exiting 0, was killed
//! at the grace deadline, ended early) is a warning under the verdict.

use std::fmt::Write as _;
use std::time::Duration;

use super::load::{Failure, Stats};
use crate::logs::json::escape_into;

/// berth's `exit` event, as far as the drill needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExitEvent {
    /// `exited`, `signaled`, `grace_expired`, `unhealthy`.
    pub reason: String,
    pub code: u8,
    /// Signal name without `SIG`.
    pub signal: Option<String>,
}

impl ExitEvent {
    /// Reads berth's own `exit` line (berth writes it, last, in json mode).
    pub fn parse(line: &str) -> Option<ExitEvent> {
        if !(line.contains("\"stream\":\"berth\"") && line.contains("\"event\":\"exit\"")) {
            return None;
        }
        let raw = |key: &str| json_value(line, key);
        Some(ExitEvent {
            reason: raw("reason")?.to_string(),
            code: raw("code")?.parse().ok()?,
            signal: raw("signal").filter(|s| *s != "null").map(str::to_string),
        })
    }
}

/// The raw value of `"key":` in one of berth's own JSON lines: a string's
/// text (berth's values here need no unescaping), or a number / `null`.
pub fn json_value<'l>(line: &'l str, key: &str) -> Option<&'l str> {
    let pat = format!("\"{key}\":");
    let at = line.find(&pat)? + pat.len();
    let rest = line.get(at..)?;
    match rest.strip_prefix('"') {
        Some(s) => s.find('"').and_then(|end| s.get(..end)),
        None => Some(rest.split([',', '}']).next()?.trim()),
    }
}

/// What the drill was asked to do.
#[derive(Clone, Debug)]
pub struct Setup {
    pub url: String,
    pub rps: u32,
    pub connections: usize,
    pub stop_after: Duration,
    pub lag: Duration,
    pub timeout: Duration,
    pub start_timeout: Duration,
    pub drain: Duration,
    pub grace: Duration,
    /// The signal the app gets (`TERM`, `QUIT`, ...).
    pub stop_signal: String,
}

/// What the drill saw.
#[derive(Clone, Debug, Default)]
pub struct Facts {
    /// Time from start to healthy; Err: why the app never was.
    pub ready: Option<Result<Duration, String>>,
    pub stats: Stats,
    /// berth exited before the drill sent SIGTERM, this long after the load began.
    pub exited_before_stop: Option<Duration>,
    /// SIGTERM to berth's exit.
    pub stop_took: Option<Duration>,
    pub exit: Option<ExitEvent>,
    /// berth's own exit status (None: killed by a signal).
    pub berth_code: Option<i32>,
    /// berth did not exit in time and the drill killed it.
    pub berth_killed: bool,
}

pub struct Report<'a> {
    pub setup: &'a Setup,
    pub facts: &'a Facts,
}

/// `3s`, `1500ms`.
pub fn human(d: Duration) -> String {
    if d.is_zero() {
        "0s".to_string()
    } else if d.subsec_millis() == 0 && d.as_secs() > 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// A measured time: `0.4ms`, `17.2ms`, `3.012s`.
pub fn took(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{:.1}ms", d.as_secs_f64() * 1000.0)
    } else {
        format!("{:.3}s", d.as_secs_f64())
    }
}

/// The drain to suggest: the lag plus a second, in whole seconds.
fn suggested_drain(lag: Duration) -> Duration {
    Duration::from_secs(lag.as_secs() + 1 + u64::from(lag.subsec_nanos() > 0))
}

fn plural(n: u64, one: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {one}s")
    }
}

/// The findings (the verdict: any is a FAIL) and the warnings, each with its fix.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Assessment {
    pub findings: Vec<String>,
    pub warnings: Vec<String>,
}

impl Report<'_> {
    /// The failures, each with its fix; empty when no request failed.
    pub fn findings(&self) -> Vec<String> {
        self.assess().findings
    }

    pub fn assess(&self) -> Assessment {
        let mut a = Assessment::default();
        self.request_findings(&mut a.findings);
        if matches!(self.facts.ready, Some(Ok(_))) {
            self.stop_warnings(&mut a.warnings);
        }
        a
    }

    /// Failed requests by kind (and an app that never became healthy).
    fn request_findings(&self, out: &mut Vec<String>) {
        let (s, f) = (self.setup, self.facts);
        match &f.ready {
            Some(Err(why)) => {
                out.push(format!(
                    "the app was not healthy within {} ({why}): check --url / --health and the app's output above",
                    human(s.start_timeout)
                ));
                return;
            }
            None => return,
            Some(Ok(_)) => {}
        }
        let st = &f.stats;
        let before = st.failed_in(false);
        if before > 0 {
            out.push(format!(
                "{} failed before SIGTERM ({}): the app does not serve this load; fix that, or lower --rps, before testing its shutdown",
                plural(before, "request"),
                kinds(st, false)
            ));
        }
        let drain = suggested_drain(s.lag);
        let refused = st.count(true, Failure::Refused);
        if refused > 0 {
            let fix = if s.drain.is_zero() {
                format!(
                    "the app stopped listening at once; run it with --drain {}",
                    human(drain)
                )
            } else if s.drain < s.lag {
                format!(
                    "the app stopped listening when the {} drain ended, while the load balancer still sent traffic (--lag {}); run it with --drain {}",
                    human(s.drain),
                    human(s.lag),
                    human(drain)
                )
            } else {
                "the app stopped listening during berth's drain: it must keep serving until the stop signal".to_string()
            };
            out.push(format!(
                "{} refused after SIGTERM: {fix}",
                plural(refused, "request")
            ));
        }
        let reset = st.count(true, Failure::Reset);
        if reset > 0 {
            let drain_too = if s.drain.is_zero() && refused > 0 {
                ""
            } else if s.drain < s.lag {
                " (and run it with a --drain longer than the load balancer's lag)"
            } else {
                ""
            };
            out.push(format!(
                "{} cut off after SIGTERM (connection reset or closed before the response): the app exited or closed connections with requests unanswered; on SIG{}, stop accepting, finish the requests in flight, then exit{drain_too}",
                plural(reset, "request"),
                s.stop_signal
            ));
        }
        let timeout = st.count(true, Failure::Timeout);
        if timeout > 0 {
            out.push(format!(
                "{} timed out after SIGTERM (no answer within {}): the app stopped answering but kept its connections open; answer or close them",
                plural(timeout, "request"),
                human(s.timeout)
            ));
        }
        let errors = st.count(true, Failure::Status5xx);
        if errors > 0 {
            out.push(format!(
                "{} answered 5xx after SIGTERM: the app serves errors while stopping; keep serving normally until the stop signal (berth's --drain reports not-ready meanwhile)",
                plural(errors, "request")
            ));
        }
        let other = st.count(true, Failure::Other);
        if other > 0 {
            out.push(format!(
                "{} failed otherwise after SIGTERM ({})",
                plural(other, "request"),
                st.other_example.as_deref().unwrap_or("no detail")
            ));
        }
    }

    /// How the app and berth ended, where that cost no request.
    fn stop_warnings(&self, out: &mut Vec<String>) {
        let (s, f) = (self.setup, self.facts);
        if let Some(after) = f.exited_before_stop {
            let how = match &f.exit {
                Some(e) => format!("{}, exit code {}", e.reason, e.code),
                None => "exit code unknown".to_string(),
            };
            out.push(format!(
                "the app ended by itself {} into the load, before SIGTERM ({how}): it must keep serving until it is stopped",
                took(after)
            ));
        }
        if f.berth_killed {
            out.push(format!(
                "berth did not exit within drain + grace + 5s of SIGTERM ({}); the drill killed it",
                human(s.drain + s.grace + Duration::from_secs(5))
            ));
        }
        match &f.exit {
            Some(e) if e.reason == "grace_expired" => out.push(format!(
                "the app was killed (SIGKILL) at the grace deadline: it did not exit within --grace {} of SIG{}; make it exit once its requests are done, or raise --grace",
                human(s.grace),
                s.stop_signal
            )),
            Some(e) if e.reason == "unhealthy" => out.push(
                "berth stopped the app as unhealthy (--on-unhealthy exit) during the drill".to_string(),
            ),
            Some(e) if e.code != 0 => match &e.signal {
                Some(sig) => out.push(format!(
                    "the app died of SIG{sig} (exit code {}) instead of exiting 0, which orchestrators may count as a failed task: handle SIG{} (finish the requests in flight, then exit 0), or give berth a --stop-signal the app exits 0 on (python -m http.server: INT); --success-exit does not apply to a death by signal",
                    e.code, s.stop_signal
                )),
                None => out.push(format!(
                    "the app exited with code {} after the stop: orchestrators report that as a failure; exit 0 on SIG{}, or run berth with --success-exit {}",
                    e.code, s.stop_signal, e.code
                )),
            },
            Some(_) => {}
            None if !f.berth_killed => out.push(format!(
                "berth's exit event was not seen (berth's exit status {})",
                f.berth_code
                    .map_or("unknown".to_string(), |c| c.to_string())
            )),
            None => {}
        }
    }

    pub fn text(&self) -> String {
        let (s, f) = (self.setup, self.facts);
        let st = &f.stats;
        let mut t = format!(
            "berth drill: GET {} at {}/s over at most {} connections; SIGTERM after {}, load for {} more\n",
            s.url,
            s.rps,
            s.connections,
            human(s.stop_after),
            human(s.lag)
        );
        match &f.ready {
            Some(Ok(d)) => {
                let _ = writeln!(t, "ready:     healthy after {}", took(*d));
            }
            _ => {
                let _ = writeln!(t, "ready:     not healthy");
            }
        }
        if matches!(f.ready, Some(Ok(_))) {
            let _ = write!(
                t,
                "requests:  {} sent, {} ok, {} failed",
                st.sent,
                st.ok,
                st.failed_total()
            );
            if st.unsent > 0 {
                let _ = write!(t, " ({} not sent: every connection was busy)", st.unsent);
            }
            t.push('\n');
            let _ = write!(
                t,
                "failed:    {} before SIGTERM, {} after",
                st.failed_in(false),
                st.failed_in(true)
            );
            if st.failed_total() > 0 {
                let all: Vec<String> = Failure::ALL
                    .iter()
                    .map(|&k| format!("{} {}", k.name(), st.kind_total(k)))
                    .collect();
                let _ = write!(t, " ({})", all.join(", "));
            }
            if let Some(d) = st.first_failure_after_stop {
                let _ = write!(t, "; the first {} after SIGTERM", took(d));
            }
            t.push('\n');
            let stop = match f.stop_took {
                Some(d) => format!("berth exited {} after SIGTERM", took(d)),
                None if f.exited_before_stop.is_some() => "berth exited before SIGTERM".into(),
                None => "berth did not exit".into(),
            };
            let how = match &f.exit {
                Some(e) if e.reason == "grace_expired" => {
                    "the app was killed at the grace deadline".to_string()
                }
                Some(e) if e.reason == "unhealthy" => "berth stopped it as unhealthy".into(),
                Some(e) => match &e.signal {
                    Some(sig) => format!("the app died of SIG{sig}"),
                    None => "the app exited by itself".into(),
                },
                None => "no exit event".into(),
            };
            let code = f
                .exit
                .as_ref()
                .map(|e| i32::from(e.code))
                .or(f.berth_code)
                .map_or("unknown".to_string(), |c| c.to_string());
            let _ = writeln!(
                t,
                "stop:      {stop} (drain {}, grace {}); {how}; exit code {code}",
                human(s.drain),
                human(s.grace)
            );
        }
        let Assessment { findings, warnings } = self.assess();
        if findings.is_empty() && warnings.is_empty() {
            let _ = writeln!(
                t,
                "verdict:   PASS: no request failed and the app exited by itself with code 0"
            );
        } else if findings.is_empty() {
            let _ = writeln!(
                t,
                "verdict:   PASS: no request failed, with {}",
                plural(warnings.len() as u64, "warning")
            );
        } else {
            let _ = writeln!(t, "verdict:   FAIL");
            for line in &findings {
                let _ = writeln!(t, "  - {line}");
            }
        }
        for line in &warnings {
            let _ = writeln!(t, "  warning: {line}");
        }
        t
    }

    pub fn json(&self) -> String {
        let (s, f) = (self.setup, self.facts);
        let st = &f.stats;
        let Assessment { findings, warnings } = self.assess();
        let mut j = Vec::new();
        let raw = |j: &mut Vec<u8>, key: &str, value: &str| {
            if j.is_empty() {
                j.push(b'{');
            } else {
                j.push(b',');
            }
            j.push(b'"');
            j.extend_from_slice(key.as_bytes());
            j.extend_from_slice(b"\":");
            j.extend_from_slice(value.as_bytes());
        };
        let string = |v: &str| {
            let mut b = vec![b'"'];
            escape_into(&mut b, v.as_bytes());
            b.push(b'"');
            String::from_utf8_lossy(&b).into_owned()
        };
        let secs = |d: Duration| format!("{:.3}", d.as_secs_f64());
        let opt_secs = |d: Option<Duration>| d.map_or("null".to_string(), secs);
        raw(
            &mut j,
            "passed",
            if findings.is_empty() { "true" } else { "false" },
        );
        raw(&mut j, "url", &string(&s.url));
        raw(&mut j, "rps", &s.rps.to_string());
        raw(&mut j, "connections", &s.connections.to_string());
        raw(&mut j, "stop_after_s", &secs(s.stop_after));
        raw(&mut j, "lag_s", &secs(s.lag));
        raw(&mut j, "drain_s", &secs(s.drain));
        raw(&mut j, "grace_s", &secs(s.grace));
        let ready = match &f.ready {
            Some(Ok(d)) => secs(*d),
            _ => "null".into(),
        };
        raw(&mut j, "ready_s", &ready);
        raw(&mut j, "sent", &st.sent.to_string());
        raw(&mut j, "ok", &st.ok.to_string());
        raw(&mut j, "failed", &st.failed_total().to_string());
        raw(&mut j, "unsent", &st.unsent.to_string());
        let kinds: Vec<String> = Failure::ALL
            .iter()
            .map(|&k| format!("\"{}\":{}", k.name(), st.kind_total(k)))
            .collect();
        raw(&mut j, "failures", &format!("{{{}}}", kinds.join(",")));
        raw(
            &mut j,
            "failed_before_stop",
            &st.failed_in(false).to_string(),
        );
        raw(&mut j, "failed_after_stop", &st.failed_in(true).to_string());
        raw(
            &mut j,
            "first_failure_after_stop_s",
            &opt_secs(st.first_failure_after_stop),
        );
        raw(&mut j, "stop_s", &opt_secs(f.stop_took));
        raw(
            &mut j,
            "exited_before_stop",
            if f.exited_before_stop.is_some() {
                "true"
            } else {
                "false"
            },
        );
        let (reason, signal) = match &f.exit {
            Some(e) => (
                string(&e.reason),
                e.signal.as_deref().map_or("null".into(), string),
            ),
            None => ("null".into(), "null".into()),
        };
        raw(&mut j, "exit_reason", &reason);
        raw(&mut j, "exit_signal", &signal);
        raw(
            &mut j,
            "killed_at_grace",
            if f.exit.as_ref().is_some_and(|e| e.reason == "grace_expired") {
                "true"
            } else {
                "false"
            },
        );
        let code = f
            .exit
            .as_ref()
            .map(|e| i32::from(e.code))
            .or(f.berth_code)
            .map_or("null".to_string(), |c| c.to_string());
        raw(&mut j, "exit_code", &code);
        let list = |lines: &[String]| {
            let quoted: Vec<String> = lines.iter().map(|l| string(l)).collect();
            format!("[{}]", quoted.join(","))
        };
        raw(&mut j, "findings", &list(&findings));
        raw(&mut j, "warnings", &list(&warnings));
        j.extend_from_slice(b"}\n");
        String::from_utf8_lossy(&j).into_owned()
    }
}

fn kinds(st: &Stats, after_stop: bool) -> String {
    Failure::ALL
        .iter()
        .filter(|&&k| st.count(after_stop, k) > 0)
        .map(|&k| format!("{} {}", k.name(), st.count(after_stop, k)))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(drain: u64) -> Setup {
        Setup {
            url: "http://127.0.0.1:8080/".into(),
            rps: 50,
            connections: 4,
            stop_after: Duration::from_secs(2),
            lag: Duration::from_secs(2),
            timeout: Duration::from_secs(3),
            start_timeout: Duration::from_secs(30),
            drain: Duration::from_secs(drain),
            grace: Duration::from_secs(8),
            stop_signal: "TERM".into(),
        }
    }

    fn exited(code: u8) -> Option<ExitEvent> {
        Some(ExitEvent {
            reason: "exited".into(),
            code,
            signal: None,
        })
    }

    fn facts(stats: Stats, exit: Option<ExitEvent>) -> Facts {
        Facts {
            ready: Some(Ok(Duration::from_millis(30))),
            stats,
            stop_took: Some(Duration::from_millis(4)),
            exit,
            berth_code: Some(0),
            ..Facts::default()
        }
    }

    #[test]
    fn exit_event_is_read_from_berths_line_only() {
        let line = r#"{"ts":"2026-11-22T18:03:04.123456Z","stream":"berth","service":"httpd","level":"info","event":"exit","code":0,"signal":null,"duration_s":4.012,"reason":"exited","oom_kill":false}"#;
        assert_eq!(ExitEvent::parse(line), exited(0));
        let killed = r#"{"stream":"berth","event":"exit","code":137,"signal":"KILL","duration_s":9.0,"reason":"grace_expired","oom_kill":false}"#;
        assert_eq!(
            ExitEvent::parse(killed),
            Some(ExitEvent {
                reason: "grace_expired".into(),
                code: 137,
                signal: Some("KILL".into())
            })
        );
        assert_eq!(
            ExitEvent::parse(r#"{"stream":"stdout","msg":"exit"}"#),
            None
        );
    }

    #[test]
    fn nothing_failed_passes() {
        let mut st = Stats {
            sent: 200,
            ok: 200,
            ..Stats::default()
        };
        st.failed = [[0; 5]; 2];
        let (s, f) = (setup(3), facts(st, exited(0)));
        let r = Report {
            setup: &s,
            facts: &f,
        };
        assert!(r.findings().is_empty());
        assert!(r.text().contains("PASS"), "{}", r.text());
        let j: serde_json::Value = serde_json::from_str(&r.json()).unwrap();
        assert_eq!(j["passed"], true);
        assert_eq!(j["exit_code"], 0);
        assert_eq!(j["failures"]["refused"], 0);
    }

    #[test]
    fn refused_without_drain_suggests_a_drain_longer_than_the_lag() {
        let mut st = Stats {
            sent: 200,
            ok: 196,
            ..Stats::default()
        };
        st.failed[1][Failure::Refused as usize] = 4;
        let (s, f) = (setup(0), facts(st, exited(0)));
        let r = Report {
            setup: &s,
            facts: &f,
        };
        assert_eq!(
            r.findings(),
            vec!["4 requests refused after SIGTERM: the app stopped listening at once; run it with --drain 3s"]
        );
        let j: serde_json::Value = serde_json::from_str(&r.json()).unwrap();
        assert_eq!(j["passed"], false);
        assert_eq!(j["failures"]["refused"], 4);
        assert_eq!(j["failed_after_stop"], 4);
    }

    #[test]
    fn short_drain_cutoffs_and_grace_kill_each_have_a_fix() {
        let mut st = Stats::default();
        st.failed[1][Failure::Refused as usize] = 1;
        st.failed[1][Failure::Reset as usize] = 2;
        st.failed[0][Failure::Timeout as usize] = 1;
        let exit = Some(ExitEvent {
            reason: "grace_expired".into(),
            code: 137,
            signal: Some("KILL".into()),
        });
        let (s, f) = (setup(1), facts(st, exit));
        let Assessment { findings, warnings } = Report {
            setup: &s,
            facts: &f,
        }
        .assess();
        assert_eq!(findings.len(), 3, "{findings:#?}");
        assert!(findings[0].starts_with("1 request failed before SIGTERM (timeout 1)"));
        assert!(
            findings[1].contains("when the 1s drain ended") && findings[1].contains("--drain 3s")
        );
        assert!(findings[2].starts_with("2 requests cut off"));
        assert_eq!(warnings.len(), 1, "{warnings:#?}");
        assert!(warnings[0].contains("grace deadline") && warnings[0].contains("--grace 8s"));
    }

    #[test]
    fn nonzero_exit_and_death_by_signal_are_warnings_when_no_request_failed() {
        let st = Stats {
            sent: 200,
            ok: 200,
            ..Stats::default()
        };
        let (s, f) = (setup(3), facts(st.clone(), exited(3)));
        let r = Report {
            setup: &s,
            facts: &f,
        };
        assert!(r.findings().is_empty());
        assert!(r.assess().warnings[0].contains("--success-exit 3"));
        let died = Some(ExitEvent {
            reason: "signaled".into(),
            code: 143,
            signal: Some("TERM".into()),
        });
        let f = facts(st, died);
        let r = Report {
            setup: &s,
            facts: &f,
        };
        let a = r.assess();
        assert!(a.findings.is_empty(), "{a:?}");
        assert!(
            a.warnings[0].contains("died of SIGTERM") && a.warnings[0].contains("handle SIGTERM"),
            "{a:?}"
        );
        let text = r.text();
        assert!(
            text.contains("verdict:   PASS: no request failed, with 1 warning\n  warning: the app died of SIGTERM"),
            "{text}"
        );
        let j: serde_json::Value = serde_json::from_str(&r.json()).unwrap();
        assert_eq!(j["passed"], true);
        assert_eq!(j["findings"], serde_json::json!([]));
        assert!(
            j["warnings"][0].as_str().unwrap().contains("SIGTERM"),
            "{j}"
        );
        assert_eq!(j["exit_code"], 143);
    }

    #[test]
    fn warnings_are_listed_under_a_fail_too() {
        let mut st = Stats::default();
        st.failed[1][Failure::Refused as usize] = 2;
        let (s, f) = (setup(0), facts(st, exited(1)));
        let text = Report {
            setup: &s,
            facts: &f,
        }
        .text();
        assert!(
            text.contains("verdict:   FAIL\n  - 2 requests refused"),
            "{text}"
        );
        assert!(
            text.contains("  warning: the app exited with code 1"),
            "{text}"
        );
    }

    #[test]
    fn never_healthy_is_the_only_finding() {
        let s = setup(0);
        let f = Facts {
            ready: Some(Err("connection refused".into())),
            ..Facts::default()
        };
        let r = Report {
            setup: &s,
            facts: &f,
        };
        assert_eq!(r.findings().len(), 1);
        assert!(r.findings()[0].contains("not healthy within 30s"));
        let j: serde_json::Value = serde_json::from_str(&r.json()).unwrap();
        assert_eq!(j["ready_s"], serde_json::Value::Null);
    }

    #[test]
    fn durations_read_as_typed() {
        assert_eq!(human(Duration::from_secs(3)), "3s");
        assert_eq!(human(Duration::from_millis(1500)), "1500ms");
        assert_eq!(human(Duration::ZERO), "0s");
        assert_eq!(took(Duration::from_micros(400)), "0.4ms");
        assert_eq!(took(Duration::from_millis(3012)), "3.012s");
        assert_eq!(
            suggested_drain(Duration::from_secs(2)),
            Duration::from_secs(3)
        );
        assert_eq!(
            suggested_drain(Duration::from_millis(2500)),
            Duration::from_secs(4)
        );
    }
}
