//! `--runtime-limits` (SPEC "Before the app starts", step 2): tells the
//! app's runtime the container's memory and CPU limits through what it
//! reads at start, since none of them reads the cgroup by itself (or not
//! the limit that binds): GOMEMLIMIT and GOMAXPROCS (Go),
//! `--max-old-space-size` in NODE_OPTIONS (Node.js), WEB_CONCURRENCY
//! (gunicorn, uvicorn, puma, Node cluster apps).
//!
//! The formulas are pure functions of the limits, each following the
//! runtime's own guidance or the best-known tool (docs/design.md, "Runtime
//! limits", gives the sources and what was rejected). `apply` writes them
//! into the app's environment and never over what the environment already
//! says: a value set there is the user's override. The limits come from
//! cgroup.rs, the same figures the `start` event reports.

use std::ffi::{OsStr, OsString};

use crate::cgroup::Limits;

const MIB: u64 = 1 << 20;

/// GOMEMLIMIT's share of the memory limit: automemlimit's default ratio
/// (0.9), within the Go GC guide's "5-10% of headroom".
pub const GO_MEMORY_PERCENT: u64 = 90;
/// Node's old space share: Node's docs (1536 MiB on a 2 GiB machine).
pub const NODE_MEMORY_PERCENT: u64 = 75;
/// Memory per web worker: Heroku's Python buildpack (RAM / 256 MB).
const WORKER_MIB: u64 = 256;

/// `--runtime-limits` as resolved by config.rs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RuntimeLimits {
    pub go: bool,
    pub node: bool,
    pub workers: bool,
    /// `--runtime-limits-memory`: replaces both memory shares.
    pub memory_percent: Option<u64>,
}

/// One variable berth set for the app, and the start event's field it was
/// sized from (`memory_limit_bytes`, `cpu_limit`, or `cpus_allowed` where
/// the CPU count with no CPU limit decided a worker count).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setting {
    pub name: &'static str,
    pub value: String,
    pub from: &'static str,
}

/// What `--runtime-limits` did, for the `start` event and the warning.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    pub set: Vec<Setting>,
    /// Variables the app's environment already set: left as they were.
    pub kept: Vec<&'static str>,
    /// Variables left unset for want of a memory limit ("" for none),
    /// named in the no-memory-limit warning.
    pub need_memory_limit: &'static str,
}

/// `go,node,workers|all`: each value may hold a comma-separated list.
pub fn parse_runtimes(values: &[String]) -> Result<RuntimeLimits, String> {
    let mut r = RuntimeLimits::default();
    let words = values.iter().flat_map(|v| v.split(','));
    let mut any = false;
    for word in words.map(str::trim) {
        match word {
            "go" => r.go = true,
            "node" => r.node = true,
            "workers" => r.workers = true,
            "all" => (r.go, r.node, r.workers) = (true, true, true),
            _ => {
                return Err(format!(
                    "\"{word}\": expected go, node, workers or all (comma-separated)"
                ))
            }
        }
        any = true;
    }
    if !any {
        return Err("\"\": expected go, node, workers or all (comma-separated)".into());
    }
    Ok(r)
}

/// `--runtime-limits-memory`: a whole percent from 1 to 100 (`90` or `90%`).
pub fn parse_percent(s: &str) -> Result<u64, String> {
    let s = s.trim();
    match s.strip_suffix('%').unwrap_or(s).parse::<u64>() {
        Ok(n) if (1..=100).contains(&n) => Ok(n),
        _ => Err(format!(
            "\"{s}\": expected a percent of the memory limit from 1 to 100"
        )),
    }
}

/// GOMEMLIMIT: `percent` of the limit, in whole MiB (rounded down, so it
/// stays under the share); None when that is not even 1 MiB.
pub fn gomemlimit(limit_bytes: u64, percent: u64) -> Option<String> {
    let mib = share(limit_bytes, percent) / MIB;
    (mib > 0).then(|| format!("{mib}MiB"))
}

/// Node's `--max-old-space-size` (MiB): `percent` of the limit.
pub fn max_old_space_mib(limit_bytes: u64, percent: u64) -> Option<u64> {
    Some(share(limit_bytes, percent) / MIB).filter(|&m| m > 0)
}

fn share(limit_bytes: u64, percent: u64) -> u64 {
    // In u64 without overflow (percent ≤ 100), and no u128 division code.
    limit_bytes / 100 * percent + limit_bytes % 100 * percent / 100
}

/// GOMAXPROCS as Go 1.25 derives it from a CPU limit: the limit rounded up,
/// at least 2, at most the CPUs berth may run on. None when that is the
/// CPU count itself: every Go version finds that alone, and setting the
/// variable would stop Go 1.25 from following a later change of the limit.
pub fn gomaxprocs(cpu_limit: f64, cpus_allowed: Option<u64>) -> Option<u64> {
    // `as` saturates: a huge limit is "as many as there are".
    let whole = cpu_limit as u64;
    let procs = whole
        .saturating_add(u64::from(cpu_limit > whole as f64))
        .max(2);
    match cpus_allowed {
        Some(n) if procs >= n => None,
        _ => Some(procs),
    }
}

/// WEB_CONCURRENCY as Heroku's Python buildpack sizes it: the smaller of
/// gunicorn's `2 × cores + 1` and one worker per 256 MiB, at least 1.
/// Cores are the CPU limit (fractional: 1.5 cores give 4), else the CPUs
/// berth may run on. None with neither limit: nothing to size from.
pub fn web_concurrency(
    memory_limit_bytes: Option<u64>,
    cpu_limit: Option<f64>,
    cpus_allowed: Option<u64>,
) -> Option<(u64, &'static str)> {
    let by_cpu = match (cpu_limit, cpus_allowed) {
        (Some(l), n) => {
            let cores = n.map_or(l, |n| l.min(n as f64));
            Some(((2.0 * cores + 1.0) as u64, "cpu_limit"))
        }
        (None, Some(n)) if memory_limit_bytes.is_some() => {
            Some((n.saturating_mul(2).saturating_add(1), "cpus_allowed"))
        }
        (None, _) => None,
    };
    let by_memory =
        memory_limit_bytes.map(|b| ((b / MIB / WORKER_MIB).max(1), "memory_limit_bytes"));
    match (by_cpu, by_memory) {
        (Some(c), Some(m)) => Some(if m.0 < c.0 { m } else { c }),
        (c, m) => c.or(m),
    }
}

/// What to set, before looking at the app's environment.
fn plan(r: &RuntimeLimits, limits: &Limits, cpus_allowed: Option<u64>) -> Applied {
    let mut out = Applied::default();
    let mem = limits.memory_limit_bytes;
    let mut set = |name, value: Option<String>, from| {
        if let Some(value) = value {
            out.set.push(Setting { name, value, from });
        }
    };
    if r.go {
        let percent = r.memory_percent.unwrap_or(GO_MEMORY_PERCENT);
        set(
            "GOMEMLIMIT",
            mem.and_then(|m| gomemlimit(m, percent)),
            "memory_limit_bytes",
        );
        let procs = limits.cpu_limit.and_then(|l| gomaxprocs(l, cpus_allowed));
        set("GOMAXPROCS", procs.map(|p| p.to_string()), "cpu_limit");
    }
    if r.node {
        let percent = r.memory_percent.unwrap_or(NODE_MEMORY_PERCENT);
        let mib = mem.and_then(|m| max_old_space_mib(m, percent));
        set(
            "NODE_OPTIONS",
            mib.map(|m| format!("--max-old-space-size={m}")),
            "memory_limit_bytes",
        );
    }
    if r.workers {
        if let Some((n, from)) = web_concurrency(mem, limits.cpu_limit, cpus_allowed) {
            set("WEB_CONCURRENCY", Some(n.to_string()), from);
        }
    }
    if mem.is_none() {
        out.need_memory_limit = match (r.go, r.node) {
            (true, true) => "GOMEMLIMIT, NODE_OPTIONS",
            (true, false) => "GOMEMLIMIT",
            (false, true) => "NODE_OPTIONS",
            (false, false) => "",
        };
    }
    out
}

/// Whether NODE_OPTIONS already sizes V8's heap (V8 takes `-` or `_`).
fn sizes_node_heap(node_options: &OsStr) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let is_flag = |opt: &[u8], flag: &[u8]| {
        opt.len() >= flag.len()
            && flag
                .iter()
                .zip(opt)
                .all(|(f, o)| f == o || (*f, *o) == (b'-', b'_'))
    };
    node_options
        .as_bytes()
        .split(u8::is_ascii_whitespace)
        .any(|opt| is_flag(opt, b"--max-old-space-size") || is_flag(opt, b"--max-heap-size"))
}

/// Sets the planned variables in `env` where it does not set them already
/// (an empty value counts as unset, as Go and Node read it). NODE_OPTIONS
/// is appended to unless it already sizes the heap.
pub fn apply(
    r: &RuntimeLimits,
    limits: &Limits,
    cpus_allowed: Option<u64>,
    env: &mut Vec<(OsString, OsString)>,
) -> Applied {
    let planned = plan(r, limits, cpus_allowed);
    let mut out = Applied {
        need_memory_limit: planned.need_memory_limit,
        ..Applied::default()
    };
    for s in planned.set {
        let at = env.iter().position(|(k, v)| k == s.name && !v.is_empty());
        match at {
            Some(i) if s.name == "NODE_OPTIONS" && !sizes_node_heap(&env[i].1) => {
                env[i].1.push(" ");
                env[i].1.push(&s.value);
            }
            Some(_) => {
                out.kept.push(s.name);
                continue;
            }
            None => {
                env.retain(|(k, _)| k != s.name);
                env.push((s.name.into(), s.value.clone().into()));
            }
        }
        out.set.push(s);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: RuntimeLimits = RuntimeLimits {
        go: true,
        node: true,
        workers: true,
        memory_percent: None,
    };

    fn limits(memory_mib: Option<u64>, cpu: Option<f64>) -> Limits {
        Limits {
            memory_limit_bytes: memory_mib.map(|m| m * MIB),
            cpu_limit: cpu,
        }
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs.iter().map(|(k, v)| (k.into(), v.into())).collect()
    }

    fn get<'a>(env: &'a [(OsString, OsString)], name: &str) -> Option<&'a str> {
        env.iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.to_str())
    }

    #[test]
    fn runtimes_are_a_comma_separated_list_or_all() {
        let r = parse_runtimes(&["go,node".into()]).unwrap();
        assert!(r.go && r.node && !r.workers);
        let r = parse_runtimes(&["workers".into(), "go".into()]).unwrap();
        assert!(r.go && !r.node && r.workers);
        assert_eq!(parse_runtimes(&["all".into()]).unwrap(), ALL);
    }

    #[test]
    fn an_unknown_runtime_or_an_empty_list_is_refused_naming_it() {
        assert!(parse_runtimes(&["go,foo".into()])
            .unwrap_err()
            .contains("\"foo\""));
        assert!(parse_runtimes(&["".into()]).is_err());
        assert!(parse_runtimes(&[]).is_err());
    }

    #[test]
    fn the_percent_is_1_to_100() {
        assert_eq!(parse_percent("80"), Ok(80));
        assert_eq!(parse_percent("100%"), Ok(100));
        assert_eq!(parse_percent("1"), Ok(1));
        for bad in [
            "0",
            "150",
            "101",
            "-5",
            "",
            "ninety",
            "80.5",
            "18446744073709551616",
        ] {
            assert!(parse_percent(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn gomemlimit_is_90_percent_in_whole_mib() {
        // The measurement: 256 MiB container, GOMEMLIMIT=230MiB.
        assert_eq!(gomemlimit(256 * MIB, 90).as_deref(), Some("230MiB"));
        assert_eq!(gomemlimit(1 << 30, 90).as_deref(), Some("921MiB"));
        assert_eq!(gomemlimit(1 << 30, 50).as_deref(), Some("512MiB"));
        assert_eq!(gomemlimit(MIB, 90), None);
        // A limit near u64::MAX does not overflow.
        assert!(gomemlimit(u64::MAX, 100).is_some());
    }

    #[test]
    fn node_old_space_is_75_percent() {
        assert_eq!(max_old_space_mib(256 * MIB, 75), Some(192));
        assert_eq!(max_old_space_mib(2048 * MIB, 75), Some(1536));
        assert_eq!(max_old_space_mib(MIB, 75), None);
    }

    #[test]
    fn gomaxprocs_follows_go_1_25_ceil_min_2_capped_at_the_cpus() {
        assert_eq!(gomaxprocs(1.5, Some(64)), Some(2));
        assert_eq!(gomaxprocs(0.25, Some(64)), Some(2));
        assert_eq!(gomaxprocs(3.2, Some(64)), Some(4));
        assert_eq!(gomaxprocs(8.0, Some(64)), Some(8));
        assert_eq!(gomaxprocs(8.0, None), Some(8));
        // Equal to the CPU count: Go finds that by itself.
        assert_eq!(gomaxprocs(1.0, Some(2)), None);
        assert_eq!(gomaxprocs(100.0, Some(64)), None);
        assert_eq!(gomaxprocs(f64::MAX, Some(64)), None);
    }

    #[test]
    fn web_concurrency_is_the_smaller_of_cpu_and_memory_terms() {
        // Heroku's table: 512 MB dyno, 8 CPUs → 2.
        assert_eq!(
            web_concurrency(Some(512 * MIB), None, Some(8)),
            Some((2, "memory_limit_bytes"))
        );
        // 1.5 cores, plenty of memory: 2 × 1.5 + 1 = 4.
        assert_eq!(
            web_concurrency(Some(8192 * MIB), Some(1.5), Some(8)),
            Some((4, "cpu_limit"))
        );
        // Under 256 MiB still one worker.
        assert_eq!(
            web_concurrency(Some(100 * MIB), Some(4.0), Some(8)),
            Some((1, "memory_limit_bytes"))
        );
        // CPU limit alone; a limit above the CPU count counts the CPUs.
        assert_eq!(
            web_concurrency(None, Some(2.0), Some(8)),
            Some((5, "cpu_limit"))
        );
        assert_eq!(
            web_concurrency(None, Some(16.0), Some(2)),
            Some((5, "cpu_limit"))
        );
        // No limit at all: nothing to size from.
        assert_eq!(web_concurrency(None, None, Some(8)), None);
        // Memory limit, no CPU limit: the CPU count caps it.
        assert_eq!(
            web_concurrency(Some(64 << 30), None, Some(2)),
            Some((5, "cpus_allowed"))
        );
    }

    #[test]
    fn everything_asked_for_is_set_from_its_limit() {
        let mut e = env(&[("PATH", "/bin")]);
        let a = apply(&ALL, &limits(Some(256), Some(1.0)), Some(4), &mut e);
        assert_eq!(get(&e, "GOMEMLIMIT"), Some("230MiB"));
        assert_eq!(get(&e, "GOMAXPROCS"), Some("2"));
        assert_eq!(get(&e, "NODE_OPTIONS"), Some("--max-old-space-size=192"));
        assert_eq!(get(&e, "WEB_CONCURRENCY"), Some("1"));
        let from: Vec<_> = a.set.iter().map(|s| (s.name, s.from)).collect();
        assert_eq!(
            from,
            [
                ("GOMEMLIMIT", "memory_limit_bytes"),
                ("GOMAXPROCS", "cpu_limit"),
                ("NODE_OPTIONS", "memory_limit_bytes"),
                ("WEB_CONCURRENCY", "memory_limit_bytes"),
            ]
        );
        assert!(a.kept.is_empty() && a.need_memory_limit.is_empty());
    }

    #[test]
    fn only_the_runtimes_asked_for_are_set() {
        let mut e = env(&[]);
        let r = RuntimeLimits {
            node: true,
            ..Default::default()
        };
        let a = apply(&r, &limits(Some(512), Some(1.0)), Some(4), &mut e);
        assert_eq!(a.set.len(), 1);
        assert_eq!(e, env(&[("NODE_OPTIONS", "--max-old-space-size=384")]));
    }

    #[test]
    fn the_percent_overrides_both_memory_shares() {
        let mut e = env(&[]);
        let r = RuntimeLimits {
            memory_percent: Some(50),
            ..ALL
        };
        apply(&r, &limits(Some(1024), None), Some(4), &mut e);
        assert_eq!(get(&e, "GOMEMLIMIT"), Some("512MiB"));
        assert_eq!(get(&e, "NODE_OPTIONS"), Some("--max-old-space-size=512"));
    }

    #[test]
    fn what_the_environment_sets_is_kept() {
        let mut e = env(&[
            ("GOMEMLIMIT", "100MiB"),
            ("GOMAXPROCS", "7"),
            ("WEB_CONCURRENCY", "9"),
        ]);
        let a = apply(&ALL, &limits(Some(256), Some(1.0)), Some(4), &mut e);
        assert_eq!(get(&e, "GOMEMLIMIT"), Some("100MiB"));
        assert_eq!(get(&e, "GOMAXPROCS"), Some("7"));
        assert_eq!(get(&e, "WEB_CONCURRENCY"), Some("9"));
        assert_eq!(a.kept, ["GOMEMLIMIT", "GOMAXPROCS", "WEB_CONCURRENCY"]);
        assert_eq!(
            a.set.iter().map(|s| s.name).collect::<Vec<_>>(),
            ["NODE_OPTIONS"]
        );
    }

    #[test]
    fn an_empty_variable_counts_as_unset() {
        let mut e = env(&[("GOMEMLIMIT", "")]);
        let r = RuntimeLimits {
            go: true,
            ..Default::default()
        };
        apply(&r, &limits(Some(256), None), None, &mut e);
        assert_eq!(e, env(&[("GOMEMLIMIT", "230MiB")]));
    }

    #[test]
    fn node_options_are_appended_to_unless_they_size_the_heap() {
        let r = RuntimeLimits {
            node: true,
            ..Default::default()
        };
        let mut e = env(&[("NODE_OPTIONS", "--enable-source-maps")]);
        apply(&r, &limits(Some(256), None), None, &mut e);
        assert_eq!(
            get(&e, "NODE_OPTIONS"),
            Some("--enable-source-maps --max-old-space-size=192")
        );
        for sized in [
            "--max-old-space-size=100",
            "--trace-gc --max_old_space_size=100",
            "--max-heap-size=300",
            "--max-old-space-size-percentage=50",
        ] {
            let mut e = env(&[("NODE_OPTIONS", sized)]);
            let a = apply(&r, &limits(Some(256), None), None, &mut e);
            assert_eq!(get(&e, "NODE_OPTIONS"), Some(sized));
            assert_eq!(a.kept, ["NODE_OPTIONS"]);
        }
    }

    #[test]
    fn no_memory_limit_sets_no_memory_figure_and_says_which() {
        let mut e = env(&[]);
        let a = apply(&ALL, &limits(None, None), Some(4), &mut e);
        assert!(e.is_empty() && a.set.is_empty());
        assert_eq!(a.need_memory_limit, "GOMEMLIMIT, NODE_OPTIONS");
        // A CPU limit alone still sizes GOMAXPROCS and the workers.
        let a = apply(&ALL, &limits(None, Some(1.0)), Some(4), &mut e);
        assert_eq!(get(&e, "GOMAXPROCS"), Some("2"));
        assert_eq!(get(&e, "WEB_CONCURRENCY"), Some("3"));
        assert_eq!(a.need_memory_limit, "GOMEMLIMIT, NODE_OPTIONS");
    }
}
