//! Option value parsers: durations, signal names, `FROM:TO` signal maps,
//! `NAME=SOFT[:HARD]` rlimits, `KEY=VALUE` fields, switches, exit codes and
//! byte counts. Pure: they touch nothing. Errors are one line quoting the
//! input and the expected form; config.rs prefixes the option name.

use std::time::Duration;

const DURATION_FORM: &str = "expected a duration like 500ms, 10s, 1m30s";

/// `500ms`, `10s`, `2m`, `1m30s`, `1h`, `1.5s`; a bare number is seconds.
pub fn duration(s: &str) -> Result<Duration, String> {
    let err = || format!("\"{s}\": {DURATION_FORM}");
    let t = s.trim();
    if t.is_empty() {
        return Err(err());
    }
    if let Ok(secs) = t.parse::<f64>() {
        return seconds(secs).ok_or_else(err);
    }
    // Units in decreasing order, each at most once.
    const UNITS: [(&str, f64); 4] = [("h", 3600.0), ("m", 60.0), ("s", 1.0), ("ms", 0.001)];
    let mut rest = t;
    let mut total = 0f64;
    let mut last_rank = None;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(err)?;
        if num_len == 0 {
            return Err(err());
        }
        let value: f64 = rest[..num_len].parse().map_err(|_| err())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let rank = UNITS.iter().position(|(u, _)| *u == unit).ok_or_else(err)?;
        if last_rank.is_some_and(|r| rank <= r) {
            return Err(err());
        }
        last_rank = Some(rank);
        total += value * UNITS[rank].1;
    }
    seconds(total).ok_or_else(err)
}

fn seconds(s: f64) -> Option<Duration> {
    // 100 years is enough for any grace period and far from overflow.
    if s.is_finite() && (0.0..=3_153_600_000.0).contains(&s) {
        Some(Duration::from_secs_f64(s))
    } else {
        None
    }
}

/// The 31 standard Linux signals (x86-64 numbering).
const SIGNALS: [(&str, i32); 31] = [
    ("HUP", 1),
    ("INT", 2),
    ("QUIT", 3),
    ("ILL", 4),
    ("TRAP", 5),
    ("ABRT", 6),
    ("BUS", 7),
    ("FPE", 8),
    ("KILL", 9),
    ("USR1", 10),
    ("SEGV", 11),
    ("USR2", 12),
    ("PIPE", 13),
    ("ALRM", 14),
    ("TERM", 15),
    ("STKFLT", 16),
    ("CHLD", 17),
    ("CONT", 18),
    ("STOP", 19),
    ("TSTP", 20),
    ("TTIN", 21),
    ("TTOU", 22),
    ("URG", 23),
    ("XCPU", 24),
    ("XFSZ", 25),
    ("VTALRM", 26),
    ("PROF", 27),
    ("WINCH", 28),
    ("IO", 29),
    ("PWR", 30),
    ("SYS", 31),
];
pub const SIGRTMIN: i32 = 34;
pub const SIGRTMAX: i32 = 64;

/// A signal by name (`TERM`, `SIGTERM`, `term`, `RTMIN+3`, `SIGRTMAX-2`,
/// `IOT`, `POLL`, `CLD`) or number (1..=64).
pub fn signal(s: &str) -> Result<i32, String> {
    let err =
        || format!("\"{s}\": expected a signal name or number like TERM, SIGUSR1, 15, RTMIN+2");
    let t = s.trim();
    if let Ok(n) = t.parse::<i32>() {
        return if (1..=SIGRTMAX).contains(&n) && n != 32 && n != 33 {
            Ok(n)
        } else {
            Err(err())
        };
    }
    let upper = t.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some(&(_, n)) = SIGNALS.iter().find(|(n, _)| *n == name) {
        return Ok(n);
    }
    match name {
        "IOT" => return Ok(6),
        "POLL" => return Ok(29),
        "CLD" => return Ok(17),
        _ => {}
    }
    let rt = |base: i32, rest: &str| -> Option<i32> {
        // checked: `RTMIN+2147483647` must be an error, not an overflow.
        let n = if rest.is_empty() {
            base
        } else if let Some(k) = rest.strip_prefix('+') {
            base.checked_add(k.parse::<i32>().ok()?)?
        } else if let Some(k) = rest.strip_prefix('-') {
            base.checked_sub(k.parse::<i32>().ok()?)?
        } else {
            return None;
        };
        (SIGRTMIN..=SIGRTMAX).contains(&n).then_some(n)
    };
    if let Some(rest) = name.strip_prefix("RTMIN") {
        return rt(SIGRTMIN, rest).ok_or_else(err);
    }
    if let Some(rest) = name.strip_prefix("RTMAX") {
        return rt(SIGRTMAX, rest).ok_or_else(err);
    }
    Err(err())
}

/// The name (no `SIG`) of a standard signal.
pub fn signal_name(n: i32) -> Option<&'static str> {
    SIGNALS.iter().find(|(_, k)| *k == n).map(|(name, _)| *name)
}

/// Any signal's name: standard names, `RTMIN+k`, else the number.
pub fn signal_name_string(n: i32) -> String {
    if let Some(s) = signal_name(n) {
        return s.to_string();
    }
    match n {
        SIGRTMIN => "RTMIN".to_string(),
        SIGRTMAX => "RTMAX".to_string(),
        n if (SIGRTMIN..SIGRTMAX).contains(&n) => format!("RTMIN+{}", n - SIGRTMIN),
        n => n.to_string(),
    }
}

/// `--map-signal FROM:TO`; TO = 0 drops the signal. FROM cannot be KILL or
/// STOP (nobody can catch them, so there is nothing to rewrite).
pub fn signal_map(s: &str) -> Result<(i32, i32), String> {
    let (from, to) = s
        .split_once(':')
        .ok_or_else(|| format!("\"{s}\": expected FROM:TO, like HUP:USR1 or USR2:0"))?;
    let from = signal(from)?;
    if from == 9 || from == 19 {
        return Err(format!(
            "\"{s}\": KILL and STOP cannot be caught, so not rewritten"
        ));
    }
    if from == 17 {
        return Err(format!("\"{s}\": CHLD is berth's own (it reaps)"));
    }
    let to = if to.trim() == "0" { 0 } else { signal(to)? };
    Ok((from, to))
}

/// A parsed `--rlimit`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rlimit {
    pub resource: i32,
    pub name: &'static str,
    pub soft: u64,
    pub hard: u64,
}

const RLIMITS: [(&str, i32); 16] = [
    ("cpu", 0),
    ("fsize", 1),
    ("data", 2),
    ("stack", 3),
    ("core", 4),
    ("rss", 5),
    ("nproc", 6),
    ("nofile", 7),
    ("memlock", 8),
    ("as", 9),
    ("locks", 10),
    ("sigpending", 11),
    ("msgqueue", 12),
    ("nice", 13),
    ("rtprio", 14),
    ("rttime", 15),
];

/// `NAME=SOFT[:HARD]`, `unlimited` allowed; `NAME=SOFT` sets both.
pub fn rlimit(s: &str) -> Result<Rlimit, String> {
    let (name, values) = s
        .split_once('=')
        .ok_or_else(|| format!("\"{s}\": expected NAME=SOFT[:HARD], like nofile=1024:4096"))?;
    let lname = name.trim().to_ascii_lowercase();
    let &(name, resource) = RLIMITS.iter().find(|(n, _)| *n == lname).ok_or_else(|| {
        let names: Vec<&str> = RLIMITS.iter().map(|(n, _)| *n).collect();
        format!(
            "\"{s}\": unknown limit \"{lname}\"; known: {}",
            names.join(", ")
        )
    })?;
    let value = |v: &str| -> Result<u64, String> {
        let v = v.trim();
        if v.eq_ignore_ascii_case("unlimited") || v == "-1" {
            Ok(u64::MAX)
        } else {
            v.parse::<u64>()
                .map_err(|_| format!("\"{s}\": \"{v}\" is not a number or unlimited"))
        }
    };
    let (soft, hard) = match values.split_once(':') {
        Some((a, b)) => (value(a)?, value(b)?),
        None => {
            let v = value(values)?;
            (v, v)
        }
    };
    if soft > hard {
        return Err(format!("\"{s}\": the soft limit is above the hard limit"));
    }
    Ok(Rlimit {
        resource,
        name,
        soft,
        hard,
    })
}

/// `KEY=VALUE` (VALUE may be empty or contain `=`).
pub fn key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() && !k.chars().any(char::is_control) => {
            Ok((k.to_string(), v.to_string()))
        }
        _ => Err(format!("\"{s}\": expected KEY=VALUE with a non-empty KEY")),
    }
}

/// `ADDR:PORT` to listen on: `127.0.0.1:9000`, `[::]:9000`, or `:9000`
/// (every IPv4 address, what a Kubernetes `httpGet` probe on the pod IP needs).
pub fn listen_addr(s: &str) -> Result<std::net::SocketAddr, String> {
    let t = s.trim();
    let full = match t.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => t.to_string(),
    };
    match full.parse::<std::net::SocketAddr>() {
        Ok(a) if a.port() != 0 => Ok(a),
        _ => Err(format!(
            "\"{s}\": expected ADDR:PORT like 0.0.0.0:9000, [::]:9000 or :9000"
        )),
    }
}

/// `1/true/yes` or `0/false/no`.
pub fn switch(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" => Ok(true),
        "0" | "false" | "no" => Ok(false),
        _ => Err(format!("\"{s}\": expected 1, true, yes or 0, false, no")),
    }
}

/// An exit status 0..=255.
pub fn exit_code(s: &str) -> Result<u8, String> {
    s.trim()
        .parse::<u8>()
        .map_err(|_| format!("\"{s}\": expected an exit code from 0 to 255"))
}

/// A byte count: `16384`, `16k`, `16KiB`.
pub fn bytes(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    let (num, mult) = if let Some(n) = lower
        .strip_suffix("kib")
        .or_else(|| lower.strip_suffix('k'))
    {
        (n, 1024)
    } else if let Some(n) = lower
        .strip_suffix("mib")
        .or_else(|| lower.strip_suffix('m'))
    {
        (n, 1024 * 1024)
    } else {
        (lower.as_str(), 1)
    };
    num.trim()
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("\"{s}\": expected a number of bytes like 16384 or 16k"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses() {
        assert_eq!(listen_addr(":9000").unwrap().to_string(), "0.0.0.0:9000");
        assert_eq!(
            listen_addr("127.0.0.1:80").unwrap().to_string(),
            "127.0.0.1:80"
        );
        assert_eq!(listen_addr("[::]:9000").unwrap().to_string(), "[::]:9000");
        for bad in ["9000", "localhost:80", ":0", ":99999", "", "1.2.3.4"] {
            assert!(listen_addr(bad).is_err(), "{bad}");
        }
    }

    fn d(s: &str) -> Duration {
        duration(s).unwrap()
    }

    #[test]
    fn durations() {
        assert_eq!(d("500ms"), Duration::from_millis(500));
        assert_eq!(d("10s"), Duration::from_secs(10));
        assert_eq!(d("2m"), Duration::from_secs(120));
        assert_eq!(d("1m30s"), Duration::from_secs(90));
        assert_eq!(d("1h"), Duration::from_secs(3600));
        assert_eq!(d("1.5s"), Duration::from_millis(1500));
        assert_eq!(d("10"), Duration::from_secs(10));
        assert_eq!(d("0"), Duration::ZERO);
        assert_eq!(d("1s500ms"), Duration::from_millis(1500));
        assert_eq!(d(" 3s "), Duration::from_secs(3));
    }

    #[test]
    fn bad_durations() {
        for s in [
            "", "10x", "s", "-1s", "1s1m", "1s1s", "1.2.3s", "ms", "1e9999", "inf", "NaN", "1 s",
        ] {
            let e = duration(s).unwrap_err();
            assert!(e.contains("expected a duration"), "{s}: {e}");
        }
    }

    #[test]
    fn every_signal_round_trips() {
        for (name, n) in SIGNALS {
            assert_eq!(signal(name), Ok(n));
            assert_eq!(signal(&format!("SIG{name}")), Ok(n));
            assert_eq!(signal(&name.to_lowercase()), Ok(n));
            assert_eq!(signal_name(n), Some(name));
            assert_eq!(signal(&signal_name_string(n)), Ok(n));
        }
        for n in SIGRTMIN..=SIGRTMAX {
            assert_eq!(signal(&signal_name_string(n)), Ok(n), "{n}");
            assert_eq!(signal(&n.to_string()), Ok(n));
        }
    }

    #[test]
    fn rt_forms_and_bad_signals() {
        assert_eq!(signal("RTMIN+3"), Ok(37));
        assert_eq!(signal("SIGRTMAX-2"), Ok(62));
        assert_eq!(signal("rtmin"), Ok(34));
        for s in [
            "0", "65", "-1", "32", "NOPE", "RTMIN+31", "RTMAX+1", "RTMINx", "",
        ] {
            assert!(signal(s).is_err(), "{s}");
        }
    }

    #[test]
    fn realtime_offset_overflow_is_an_error() {
        for s in ["RTMIN+2147483647", "RTMAX--2147483648", "RTMIN-2147483648"] {
            assert!(signal(s).is_err(), "{s}");
        }
        assert_eq!(signal("RTMAX--0"), Ok(64));
    }

    #[test]
    fn signal_maps() {
        assert_eq!(signal_map("HUP:USR1"), Ok((1, 10)));
        assert_eq!(signal_map("USR2:0"), Ok((12, 0)));
        assert_eq!(signal_map("SIGTERM:SIGQUIT"), Ok((15, 3)));
        for s in [
            "HUP",
            "KILL:TERM",
            "STOP:TERM",
            "CHLD:TERM",
            "HUP:NOPE",
            ":1",
        ] {
            assert!(signal_map(s).is_err(), "{s}");
        }
    }

    #[test]
    fn rlimits() {
        for (name, res) in RLIMITS {
            let r = rlimit(&format!("{name}=5:10")).unwrap();
            assert_eq!((r.resource, r.soft, r.hard, r.name), (res, 5, 10, name));
        }
        assert_eq!(rlimit("nofile=64").unwrap().hard, 64);
        assert_eq!(rlimit("core=unlimited").unwrap().soft, u64::MAX);
        assert_eq!(rlimit("NOFILE=1:unlimited").unwrap().hard, u64::MAX);
        for s in [
            "nofile",
            "bogus=1",
            "nofile=10:5",
            "nofile=x",
            "nofile=unlimited:5",
            "=1",
        ] {
            assert!(rlimit(s).is_err(), "{s}");
        }
    }

    #[test]
    fn key_values_switches_codes_bytes() {
        assert_eq!(key_value("env=prod"), Ok(("env".into(), "prod".into())));
        assert_eq!(key_value("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert_eq!(key_value("a="), Ok(("a".into(), String::new())));
        assert!(key_value("=x").is_err() && key_value("novalue").is_err());
        for s in ["1", "true", "YES"] {
            assert_eq!(switch(s), Ok(true));
        }
        for s in ["0", "false", "No"] {
            assert_eq!(switch(s), Ok(false));
        }
        assert!(switch("maybe").is_err());
        for c in 0..=255u8 {
            assert_eq!(exit_code(&c.to_string()), Ok(c));
        }
        for s in ["256", "-1", "abc", ""] {
            assert!(exit_code(s).is_err());
        }
        assert_eq!(bytes("16384"), Ok(16384));
        assert_eq!(bytes("16k"), Ok(16384));
        assert_eq!(bytes("1MiB"), Ok(1 << 20));
        assert!(bytes("lots").is_err());
    }
}
