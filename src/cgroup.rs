//! The container's memory and CPU limits and its OOM-kill count, read from
//! cgroup v2 (or v1) for berth's `start` and `exit` events and for
//! `--runtime-limits`, which sizes the app from the same figures. Never
//! fails: anything unreadable or malformed is "no limit" / unknown.
//!
//! A limit binds every cgroup below it, so the effective limit is the
//! smallest one on the way from berth's cgroup up to the root berth can
//! see (a Kubernetes pod's limit sits on the pod's cgroup, above the
//! container's). v2 and v1's CPU quota are read on each level that is
//! visible; v1's memory also from `hierarchical_memory_limit`, which the
//! kernel computes over every ancestor, visible or not.

use std::path::Path;

const ROOT: &str = "/sys/fs/cgroup";

#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    pub memory_limit_bytes: Option<u64>,
    /// In cores (1.5 = one and a half CPUs).
    pub cpu_limit: Option<f64>,
}

/// v1 reports "unlimited" as a huge page-rounded number.
const V1_UNLIMITED: u64 = 1 << 62;

/// What berth learns of its cgroup once, as the app starts:
/// /proc/self/cgroup is read once and the OOM counter file found and kept
/// open, so the exit event costs one pread (start-up time is a figure).
#[derive(Debug)]
pub struct Cgroup {
    pub limits: Limits,
    oom_counter: Option<std::fs::File>,
    /// The OOM-kill count before the app started.
    pub oom_before: Option<u64>,
}

impl Cgroup {
    pub fn discover() -> Cgroup {
        let proc_cgroup = read_small(Path::new("/proc/self/cgroup")).unwrap_or_default();
        let entries = entries(&proc_cgroup);
        let oom_counter = oom_counter_in(ROOT, &entries);
        Cgroup {
            limits: limits_in(ROOT, &entries),
            oom_before: oom_counter.as_ref().and_then(oom_count),
            oom_counter,
        }
    }

    /// True when the cgroup's OOM-kill count went up since `discover`.
    pub fn oom_killed_since_start(&self) -> bool {
        let now = self.oom_counter.as_ref().and_then(oom_count);
        matches!((self.oom_before, now), (Some(a), Some(b)) if b > a)
    }
}

/// /proc/self/cgroup's `ID:CONTROLLERS:PATH` lines as (controllers, path
/// without its slashes), parsed once per lookup.
fn entries(proc_cgroup: &str) -> Vec<(&str, &str)> {
    proc_cgroup
        .lines()
        .filter_map(|line| line.split_once(':')?.1.split_once(':'))
        .map(|(ctrls, path)| (ctrls, path.trim_matches('/')))
        // A process moved out of its cgroup namespace's root sees `/../x`:
        // its cgroup is not below the mount, whose root is the best guess
        // (and `..` must never lead a path out of /sys/fs/cgroup).
        .map(|(ctrls, path)| {
            let outside = path
                .as_bytes()
                .split(|&b| b == b'/')
                .any(|seg| seg == b"..");
            (ctrls, if outside { "" } else { path })
        })
        .collect()
}

/// `dir` and each directory above it up to `top` (both included): the
/// cgroups whose limits bind a process in `dir`.
fn self_and_ancestors<'a>(top: &'a str, dir: &'a str) -> impl Iterator<Item = &'a str> {
    let below = dir
        .strip_prefix(top)
        .is_some_and(|r| r.is_empty() || r.starts_with('/'));
    let mut next = below.then_some(dir);
    std::iter::from_fn(move || {
        let d = next?;
        next = match d.bytes().rposition(|b| b == b'/') {
            Some(i) if i >= top.len() => Some(&d[..i]),
            _ => None,
        };
        Some(d)
    })
}

/// The smaller of two optional limits (None: no limit).
fn tighter<T: PartialOrd>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if b < a { b } else { a }),
        (a, b) => a.or(b),
    }
}

fn candidates(root: &str, entries: &[(&str, &str)], v1_controller: Option<&str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(4);
    // Plain strings, not PathBuf joins: this runs at every start.
    let mut push = |p: String| {
        if !out.contains(&p) {
            out.push(p);
        }
    };
    let under = |dir: &str, path: &str| {
        if path.is_empty() {
            dir.to_string()
        } else {
            format!("{dir}/{path}")
        }
    };
    for &(ctrls, path) in entries {
        match v1_controller {
            None if ctrls.is_empty() => push(under(root, path)),
            Some(c) if ctrls.split(',').any(|x| x == c) => {
                let dir = format!("{root}/{ctrls}");
                push(under(&dir, path));
                push(dir);
            }
            _ => {}
        }
    }
    match v1_controller {
        None => push(root.to_string()),
        Some(c) => push(format!("{root}/{c}")),
    }
    out
}

/// `dir/name`, if readable.
fn read(dir: &str, name: &str) -> Option<String> {
    read_small(Path::new(&format!("{dir}/{name}")))
}

/// Reads a small proc/sysfs file (they report size 0, so `read_to_string`
/// would start with 32-byte reads): one 4 KiB read and the one that says EOF.
fn read_small(path: &Path) -> Option<String> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).ok()?;
    let mut buf = [0u8; 4096];
    let mut len = 0;
    while len < buf.len() {
        match file.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    String::from_utf8(buf[..len].to_vec()).ok()
}

/// Reads an open cgroup file again from its start: one pread, as a cgroup
/// file's whole text (a few lines) comes in one read.
fn pread_small(file: &std::fs::File) -> Option<String> {
    use std::os::unix::fs::FileExt;
    let mut buf = [0u8; 4096];
    let n = file.read_at(&mut buf, 0).ok()?;
    String::from_utf8(buf[..n].to_vec()).ok()
}

#[cfg(test)]
fn read_limits_at(root: &Path, proc_cgroup: &str) -> Limits {
    limits_in(&root.to_string_lossy(), &entries(proc_cgroup))
}

fn limits_in(root: &str, proc_cgroup: &[(&str, &str)]) -> Limits {
    v2_limits_in(root, proc_cgroup).unwrap_or_else(|| Limits {
        memory_limit_bytes: v1_memory_limit_in(root, proc_cgroup),
        cpu_limit: v1_cpu_limit_in(root, proc_cgroup),
    })
}

/// v2: memory.max and cpu.max of berth's cgroup (the first candidate that
/// has either file) and of each visible ancestor; None when no candidate
/// has them (not v2, or no controller enabled).
fn v2_limits_in(root: &str, proc_cgroup: &[(&str, &str)]) -> Option<Limits> {
    let leaf = candidates(root, proc_cgroup, None)
        .into_iter()
        .find(|d| read(d, "memory.max").is_some() || read(d, "cpu.max").is_some())?;
    let mut limits = Limits {
        memory_limit_bytes: None,
        cpu_limit: None,
    };
    for dir in self_and_ancestors(root, &leaf) {
        let mem = read(dir, "memory.max").and_then(|s| parse_memory_max(&s));
        let cpu = read(dir, "cpu.max").and_then(|s| parse_cpu_max(&s));
        limits.memory_limit_bytes = tighter(limits.memory_limit_bytes, mem);
        limits.cpu_limit = tighter(limits.cpu_limit, cpu);
    }
    Some(limits)
}

/// v1 memory: the cgroup's own `memory.limit_in_bytes`, and memory.stat's
/// `hierarchical_memory_limit` (the kernel's minimum over every ancestor,
/// including those outside the container's view).
fn v1_memory_limit_in(root: &str, proc_cgroup: &[(&str, &str)]) -> Option<u64> {
    let (dir, own) = candidates(root, proc_cgroup, Some("memory"))
        .into_iter()
        .find_map(|d| read(&d, "memory.limit_in_bytes").map(|s| (d, s)))?;
    let own = parse_memory_max(&own);
    let hierarchical = read(&dir, "memory.stat").and_then(|s| parse_hierarchical_limit(&s));
    tighter(own, hierarchical)
}

/// v1 CPU: cfs_quota_us / cfs_period_us on berth's cgroup and each visible
/// ancestor (the kernel throttles a group at its own or any parent's quota).
fn v1_cpu_limit_in(root: &str, proc_cgroup: &[(&str, &str)]) -> Option<f64> {
    ["cpu", "cpu,cpuacct"].iter().find_map(|c| {
        let leaf = candidates(root, proc_cgroup, Some(c))
            .into_iter()
            .find(|d| read(d, "cpu.cfs_quota_us").is_some())?;
        // The hierarchy's mount: `root/cpu` or `root/cpu,cpuacct`.
        let mount_len = leaf[root.len() + 1..]
            .find('/')
            .map_or(leaf.len(), |i| root.len() + 1 + i);
        self_and_ancestors(&leaf[..mount_len], &leaf)
            .map(|d| {
                cores(
                    &read(d, "cpu.cfs_quota_us")?,
                    &read(d, "cpu.cfs_period_us")?,
                )
            })
            .fold(None, tighter)
    })
}

/// The first OOM counter file that opens (v2 memory.events, else v1
/// memory.oom_control), kept open for `oom_count`.
fn oom_counter_in(root: &str, proc_cgroup: &[(&str, &str)]) -> Option<std::fs::File> {
    let v2 = candidates(root, proc_cgroup, None)
        .into_iter()
        .map(|d| format!("{d}/memory.events"));
    let v1 = candidates(root, proc_cgroup, Some("memory"))
        .into_iter()
        .map(|d| format!("{d}/memory.oom_control"));
    v2.chain(v1).find_map(|path| std::fs::File::open(path).ok())
}

/// The OOM-kill count an open counter file says now.
fn oom_count(file: &std::fs::File) -> Option<u64> {
    pread_small(file).and_then(|s| parse_oom_kill(&s))
}

#[cfg(test)]
fn oom_kill_count_at(root: &Path, proc_cgroup: &str) -> Option<u64> {
    oom_count(&oom_counter_in(
        &root.to_string_lossy(),
        &entries(proc_cgroup),
    )?)
}

/// `memory.max` / `memory.limit_in_bytes`: bytes, or `max` (v2) or v1's
/// huge page-rounded "unlimited": None.
pub fn parse_memory_max(s: &str) -> Option<u64> {
    let n: u64 = s.trim().parse().ok()?;
    (n < V1_UNLIMITED).then_some(n)
}

/// The `hierarchical_memory_limit N` line of v1's memory.stat.
fn parse_hierarchical_limit(stat: &str) -> Option<u64> {
    stat.lines()
        .find_map(|l| parse_memory_max(l.strip_prefix("hierarchical_memory_limit ")?))
}

/// `cpu.max`: `QUOTA PERIOD` or `max PERIOD`, in cores. Whole numbers only
/// (the kernel writes microseconds): `inf`, `NaN` or `1e9`, which a float
/// parser takes, are no limit.
pub fn parse_cpu_max(s: &str) -> Option<f64> {
    let mut f = s.split_whitespace();
    cores(f.next()?, f.next().unwrap_or("100000"))
}

/// A CFS quota and period (µs) as cores; v1's quota is -1 for none.
fn cores(quota: &str, period: &str) -> Option<f64> {
    let quota: i64 = quota.trim().parse().ok()?;
    let period: u64 = period.trim().parse().ok()?;
    (quota > 0 && period > 0).then(|| quota as f64 / period as f64)
}

/// The `oom_kill N` line of memory.events / memory.oom_control.
pub fn parse_oom_kill(s: &str) -> Option<u64> {
    s.lines()
        .find_map(|l| l.strip_prefix("oom_kill ")?.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("berth-cg-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn pure_parsers() {
        assert_eq!(parse_memory_max("max\n"), None);
        assert_eq!(parse_memory_max("67108864\n"), Some(64 << 20));
        assert_eq!(parse_memory_max("9223372036854771712"), None);
        assert_eq!(parse_memory_max("-1"), None);
        assert_eq!(parse_cpu_max("max 100000"), None);
        assert_eq!(parse_cpu_max("150000 100000\n"), Some(1.5));
        assert_eq!(parse_oom_kill("low 0\noom 1\noom_kill 2\n"), Some(2));
        assert_eq!(parse_oom_kill("low 0\n"), None);
    }

    #[test]
    fn v2_in_own_path_then_root() {
        let root = tmp("v2");
        std::fs::create_dir_all(root.join("app")).unwrap();
        std::fs::write(root.join("app/memory.max"), "1048576\n").unwrap();
        std::fs::write(root.join("app/cpu.max"), "50000 100000\n").unwrap();
        std::fs::write(root.join("app/memory.events"), "oom_kill 3\n").unwrap();
        let l = read_limits_at(&root, "0::/app\n");
        assert_eq!(
            l,
            Limits {
                memory_limit_bytes: Some(1 << 20),
                cpu_limit: Some(0.5)
            }
        );
        assert_eq!(oom_kill_count_at(&root, "0::/app\n"), Some(3));
        // The kept-open counter sees a later count.
        let counter = std::fs::File::open(root.join("app/memory.events")).unwrap();
        std::fs::write(root.join("app/memory.events"), "oom 4\noom_kill 4\n").unwrap();
        assert_eq!(oom_count(&counter), Some(4));
        std::fs::write(root.join("memory.max"), "max\n").unwrap();
        assert_eq!(read_limits_at(&root, "0::/\n").memory_limit_bytes, None);
    }

    #[test]
    fn v1_memory_and_cpu() {
        let root = tmp("v1");
        std::fs::create_dir_all(root.join("memory")).unwrap();
        std::fs::create_dir_all(root.join("cpu,cpuacct")).unwrap();
        std::fs::write(root.join("memory/memory.limit_in_bytes"), "2097152\n").unwrap();
        std::fs::write(root.join("cpu,cpuacct/cpu.cfs_quota_us"), "200000\n").unwrap();
        std::fs::write(root.join("cpu,cpuacct/cpu.cfs_period_us"), "100000\n").unwrap();
        let l = read_limits_at(&root, "5:memory:/\n4:cpu,cpuacct:/\n");
        assert_eq!(
            l,
            Limits {
                memory_limit_bytes: Some(2 << 20),
                cpu_limit: Some(2.0)
            }
        );
    }

    /// Writes `files` (path under `root`, content) into a fixture tree.
    fn tree(name: &str, files: &[(&str, &str)]) -> PathBuf {
        let root = tmp(name);
        for (path, content) in files {
            let p = root.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, content).unwrap();
        }
        root
    }

    #[test]
    fn v2_a_parent_s_tighter_limit_binds_the_container() {
        // A Kubernetes pod without a cgroup namespace: the pod's cgroup
        // holds the limit, the container's own says max.
        let root = tree(
            "v2-nested",
            &[
                ("kubepods.slice/memory.max", "max\n"),
                ("kubepods.slice/pod1/memory.max", "268435456\n"),
                ("kubepods.slice/pod1/cpu.max", "150000 100000\n"),
                ("kubepods.slice/pod1/app/memory.max", "max\n"),
                ("kubepods.slice/pod1/app/cpu.max", "max 100000\n"),
            ],
        );
        let l = read_limits_at(&root, "0::/kubepods.slice/pod1/app\n");
        assert_eq!(l.memory_limit_bytes, Some(256 << 20));
        assert_eq!(l.cpu_limit, Some(1.5));
    }

    #[test]
    fn v2_the_smallest_limit_on_the_way_up_wins_each_resource() {
        let root = tree(
            "v2-min",
            &[
                ("a/memory.max", "1048576\n"),
                ("a/cpu.max", "400000 100000\n"),
                ("a/b/memory.max", "4194304\n"),
                ("a/b/cpu.max", "50000 100000\n"),
            ],
        );
        let l = read_limits_at(&root, "0::/a/b\n");
        assert_eq!(l.memory_limit_bytes, Some(1 << 20));
        assert_eq!(l.cpu_limit, Some(0.5));
        // A sibling's limit is not an ancestor's.
        std::fs::create_dir_all(root.join("ab")).unwrap();
        std::fs::write(root.join("ab/memory.max"), "1\n").unwrap();
        assert_eq!(
            read_limits_at(&root, "0::/a/b\n").memory_limit_bytes,
            Some(1 << 20)
        );
    }

    #[test]
    fn v1_hierarchical_memory_limit_counts_ancestors_out_of_view() {
        // Docker on v1 mounts the container's own cgroup at memory/: the
        // pod's limit is only in memory.stat.
        let root = tree(
            "v1-hier",
            &[
                ("memory/memory.limit_in_bytes", "9223372036854771712\n"),
                (
                    "memory/memory.stat",
                    "cache 0\nrss 4096\nhierarchical_memory_limit 268435456\nhierarchical_memsw_limit 9223372036854771712\n",
                ),
            ],
        );
        let l = read_limits_at(&root, "4:memory:/kubepods/pod1/abc\n");
        assert_eq!(l.memory_limit_bytes, Some(256 << 20));
    }

    #[test]
    fn v1_a_parent_s_cpu_quota_binds_the_child() {
        let root = tree(
            "v1-cpu-nested",
            &[
                ("cpu,cpuacct/pod/cpu.cfs_quota_us", "100000\n"),
                ("cpu,cpuacct/pod/cpu.cfs_period_us", "100000\n"),
                ("cpu,cpuacct/pod/app/cpu.cfs_quota_us", "-1\n"),
                ("cpu,cpuacct/pod/app/cpu.cfs_period_us", "100000\n"),
                ("memory/pod/app/memory.limit_in_bytes", "8388608\n"),
                ("memory/pod/memory.limit_in_bytes", "4194304\n"),
                (
                    "memory/pod/app/memory.stat",
                    "hierarchical_memory_limit 4194304\n",
                ),
            ],
        );
        let l = read_limits_at(&root, "5:memory:/pod/app\n4:cpu,cpuacct:/pod/app\n");
        assert_eq!(l.cpu_limit, Some(1.0));
        assert_eq!(l.memory_limit_bytes, Some(4 << 20));
    }

    #[test]
    fn hostile_cgroup_files_are_no_limit() {
        for garbage in [
            "",
            "max",
            "-1",
            "0x100",
            "1e9",
            "inf",
            "NaN",
            "12 34",
            "\u{0}",
            "99999999999999999999999999",
            "18446744073709551615",
        ] {
            assert_eq!(parse_memory_max(garbage), None, "{garbage:?}");
        }
        for garbage in [
            "",
            "max",
            "inf 100000",
            "NaN 100000",
            "1e9 100000",
            "100000 0",
            "0 100000",
            "-5 100000",
            "100000 -1",
            "100000 abc",
            "99999999999999999999 100000",
        ] {
            assert_eq!(parse_cpu_max(garbage), None, "{garbage:?}");
        }
        // Huge but well-formed: a limit, finite.
        assert!(parse_cpu_max("9223372036854775807 1").unwrap().is_finite());
        assert_eq!(
            parse_hierarchical_limit("hierarchical_memory_limit junk\n"),
            None
        );
    }

    #[test]
    fn a_path_outside_the_namespace_never_leaves_the_cgroup_mount() {
        let root = tree("escape", &[("memory.max", "1048576\n")]);
        // `0::/../../etc` must read root/memory.max, not root/../../etc.
        let l = read_limits_at(&root, "0::/../../etc\n");
        assert_eq!(l.memory_limit_bytes, Some(1 << 20));
    }

    #[test]
    fn nothing_readable_is_no_limit() {
        let root = tmp("none");
        assert_eq!(
            read_limits_at(&root, ""),
            Limits {
                memory_limit_bytes: None,
                cpu_limit: None
            }
        );
        assert_eq!(oom_kill_count_at(&root, ""), None);
    }
}
