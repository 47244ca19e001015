//! The container's memory and CPU limits and its OOM-kill count, read from
//! cgroup v2 (or v1) for berth's `start` and `exit` events. Never fails:
//! anything unreadable is "no limit" / unknown.

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
        .collect()
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
    // v2: memory.max, cpu.max
    for dir in candidates(root, proc_cgroup, None) {
        let mem = read(&dir, "memory.max");
        let cpu = read(&dir, "cpu.max");
        if mem.is_some() || cpu.is_some() {
            return Limits {
                memory_limit_bytes: mem.as_deref().and_then(parse_memory_max),
                cpu_limit: cpu.as_deref().and_then(parse_cpu_max),
            };
        }
    }
    // v1
    let memory_limit_bytes = candidates(root, proc_cgroup, Some("memory"))
        .into_iter()
        .find_map(|d| read(&d, "memory.limit_in_bytes"))
        .and_then(|s| parse_memory_max(&s));
    let cpu_limit = ["cpu", "cpu,cpuacct"].iter().find_map(|c| {
        candidates(root, proc_cgroup, Some(c))
            .into_iter()
            .find_map(|d| {
                let quota: i64 = read(&d, "cpu.cfs_quota_us")?.trim().parse().ok()?;
                let period: u64 = read(&d, "cpu.cfs_period_us")?.trim().parse().ok()?;
                Some((quota > 0 && period > 0).then(|| quota as f64 / period as f64))
            })
    });
    Limits {
        memory_limit_bytes,
        cpu_limit: cpu_limit.flatten(),
    }
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

pub fn parse_memory_max(s: &str) -> Option<u64> {
    let n: u64 = s.trim().parse().ok()?;
    (n < V1_UNLIMITED).then_some(n)
}

/// `cpu.max`: `QUOTA PERIOD` or `max PERIOD`.
pub fn parse_cpu_max(s: &str) -> Option<f64> {
    let mut f = s.split_whitespace();
    let quota: f64 = f.next()?.parse().ok()?;
    let period: f64 = f.next().unwrap_or("100000").parse().ok()?;
    (quota > 0.0 && period > 0.0).then(|| quota / period)
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
