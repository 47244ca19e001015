//! Names to addresses, as the image's libc would find them without NSS:
//! an IP literal as is; `/etc/hosts` (read by berth, so a hosts-only image
//! works the same in every build); then DNS by the libc's resolver, which
//! in the static musl build follows /etc/resolv.conf (nameservers, search
//! domains, ndots, timeout, attempts; A and AAAA). berth parses no DNS
//! answer itself: musl's resolver does, and a hostile DNS server meets
//! musl's bounds (tests/hostile.rs).

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use super::io::describe_io;
use super::target::Host;
use crate::sys::{self, LookupFailure};

/// Largest `/etc/hosts` we read; the rest of a bigger file is ignored.
const MAX_HOSTS_FILE: u64 = 1 << 20;

/// Parses the text of an /etc/hosts file and returns the addresses for `name` (in file order).
///
/// Each line is `ADDRESS NAME [ALIAS...]`; `#` starts a comment. Names compare
/// case-insensitively (a trailing dot is ignored); lines whose first field is
/// not an IPv4/IPv6 address are skipped; duplicate addresses are listed once.
pub fn lookup_hosts(hosts_text: &str, name: &str) -> Vec<IpAddr> {
    let want = name.strip_suffix('.').unwrap_or(name);
    let mut found = Vec::new();
    if want.is_empty() {
        return found;
    }
    for line in hosts_text.lines() {
        let line = line.find('#').map_or(line, |i| &line[..i]);
        let mut fields = line.split_whitespace();
        let Some(Ok(addr)) = fields.next().map(str::parse::<IpAddr>) else {
            continue;
        };
        let matches = fields.any(|n| n.strip_suffix('.').unwrap_or(n).eq_ignore_ascii_case(want));
        if matches && !found.contains(&addr) {
            found.push(addr);
        }
    }
    found
}

fn is_localhost(name: &str) -> bool {
    name.strip_suffix('.')
        .unwrap_or(name)
        .eq_ignore_ascii_case("localhost")
}

/// Where names are looked up. The DNS step is the libc's (musl's in the
/// static build), which always reads /etc/hosts and /etc/resolv.conf; the
/// paths here are berth's own /etc/hosts step and the nameservers named in
/// a DNS failure, so tests can point them elsewhere.
pub struct Sources<'a> {
    pub hosts: &'a Path,
    pub resolv_conf: &'a Path,
}

impl Sources<'static> {
    /// The image's own files, as its libc would read them.
    pub fn system() -> Sources<'static> {
        Sources {
            hosts: Path::new("/etc/hosts"),
            resolv_conf: Path::new("/etc/resolv.conf"),
        }
    }
}

/// Resolves a Host within `within`: an IP literal as is; a name in
/// /etc/hosts (a built-in `localhost` after it); else DNS as
/// /etc/resolv.conf says. Err is the one-line "unhealthy" reason:
/// `name "db" not found (DNS: NXDOMAIN)`, `name "db" not resolved: DNS
/// timeout (nameserver 127.0.0.11)`.
pub fn resolve(
    host: &Host,
    port: u16,
    within: Duration,
    sources: &Sources,
) -> Result<Vec<SocketAddr>, String> {
    let name = match host {
        Host::Ip(ip) => return Ok(vec![SocketAddr::new(*ip, port)]),
        Host::Name(name) => name,
    };
    if let Ok(ip) = name.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let (text, read_error) = match read_hosts(sources.hosts) {
        Ok(text) => (text, None),
        Err(e) => (String::new(), Some(e)),
    };
    let mut addrs = lookup_hosts(&text, name);
    if addrs.is_empty() && is_localhost(name) {
        addrs = vec![Ipv4Addr::LOCALHOST.into(), Ipv6Addr::LOCALHOST.into()];
    }
    if addrs.is_empty() {
        if let Some(e) = read_error.filter(|e| e.kind() != std::io::ErrorKind::NotFound) {
            return Err(format!(
                "name {name:?} not resolved: cannot read {}: {}",
                sources.hosts.display(),
                describe_io(&e)
            ));
        }
        addrs = lookup_dns(name, within, sources.resolv_conf)?;
    }
    Ok(addrs
        .into_iter()
        .map(|ip| SocketAddr::new(ip, port))
        .collect())
}

/// The DNS step: getaddrinfo on a thread of its own, waited for at most
/// `within` (musl's own timeout is resolv.conf's `timeout` × `attempts`,
/// 10 s by default, longer than a probe's). A lookup still running at the
/// deadline is left to finish on its own: every caller is a short-lived
/// probe process (`berth probe`, or a probe child of berth), never PID 1.
fn lookup_dns(name: &str, within: Duration, resolv_conf: &Path) -> Result<Vec<IpAddr>, String> {
    // A slot the lookup fills and a condvar to wait on it with a timeout
    // (std's mpsc channel would do the same at 15 KiB more).
    let slot: Arc<(Mutex<Option<Looked>>, Condvar)> = Arc::default();
    let filled = Arc::clone(&slot);
    let owned = name.to_string();
    let spawned = sys::run_detached(
        DNS_THREAD_STACK,
        Box::new(move || {
            let answer = sys::getaddrinfo(&owned);
            let (lock, ready) = &*filled;
            if let Ok(mut s) = lock.lock() {
                *s = Some(answer);
                ready.notify_one();
            }
        }),
    );
    if let Err(e) = spawned {
        return Err(format!(
            "name {name:?} not resolved: no thread for the lookup: {}",
            e.desc()
        ));
    }
    let answer = {
        let (lock, ready) = &*slot;
        lock.lock()
            .ok()
            .and_then(|s| ready.wait_timeout_while(s, within, |s| s.is_none()).ok())
            .and_then(|(mut s, _)| s.take())
    };
    let servers = || nameservers(&std::fs::read_to_string(resolv_conf).unwrap_or_default());
    match answer.ok_or(()) {
        Ok(Ok(addrs)) if !addrs.is_empty() => Ok(addrs),
        Ok(Ok(_)) | Ok(Err(LookupFailure::NoData)) => Err(format!(
            "name {name:?} has no address (DNS: no A or AAAA record)"
        )),
        Ok(Err(LookupFailure::NoName)) => Err(format!("name {name:?} not found (DNS: NXDOMAIN)")),
        Ok(Err(LookupFailure::Again)) => Err(format!(
            "name {name:?} not resolved: DNS timeout or SERVFAIL ({})",
            servers()
        )),
        Ok(Err(LookupFailure::Fail)) => Err(format!(
            "name {name:?} not resolved: DNS failure, the answer was refused or unusable ({})",
            servers()
        )),
        Ok(Err(LookupFailure::Other(why))) => Err(format!(
            "name {name:?} not resolved: {} ({})",
            why.to_lowercase(),
            servers()
        )),
        // The probe's whole --timeout has run out while DNS was asked.
        Err(()) => Err(format!(
            "name {name:?} not resolved: DNS timeout ({})",
            servers()
        )),
    }
}

/// What the lookup thread hands back.
type Looked = Result<Vec<IpAddr>, LookupFailure>;

/// musl's resolver needs a few KiB of stack (answer buffers of 768 bytes
/// and up per query); 64 KiB is ample and costs no more than it touches.
const DNS_THREAD_STACK: usize = 64 * 1024;

/// `nameserver 127.0.0.11` (or `nameservers 10.96.0.10, 10.96.0.11`) as
/// resolv.conf names them, for a failure's message; musl asks 127.0.0.1
/// when the file names none.
fn nameservers(resolv_conf: &str) -> String {
    let listed: Vec<&str> = resolv_conf
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            (words.next() == Some("nameserver"))
                .then(|| words.next())
                .flatten()
        })
        .take(MAXNS)
        .collect();
    match listed.as_slice() {
        [] => "nameserver 127.0.0.1: resolv.conf names none".to_string(),
        [one] => format!("nameserver {}", printable_word(one)),
        many => format!(
            "nameservers {}",
            many.iter()
                .map(|s| printable_word(s))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// musl (and glibc) use the first three nameserver lines.
const MAXNS: usize = 3;

/// A resolv.conf word in a message: at most 64 characters, nothing that
/// is not printable ASCII (the file is the image's, not berth's).
fn printable_word(w: &str) -> String {
    w.chars()
        .take(64)
        .map(|c| if c.is_ascii_graphic() { c } else { '?' })
        .collect()
}

fn read_hosts(path: &Path) -> std::io::Result<String> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_HOSTS_FILE)
        .read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    const NOWHERE: &str = "/nonexistent/berth/hosts";
    const SHORT: Duration = Duration::from_secs(2);

    fn name(s: &str) -> Host {
        Host::Name(s.to_string())
    }

    fn v4(s: &str) -> Host {
        Host::Ip(s.parse().unwrap())
    }

    fn hosts_only(hosts: &Path) -> Sources<'_> {
        Sources {
            hosts,
            resolv_conf: Path::new(NOWHERE),
        }
    }

    #[test]
    fn hosts_parsing() {
        let text = "\
# The following lines are desirable for IPv4 capable hosts
127.0.0.1       localhost
127.0.1.1\tbox.example.org box   # trailing comment
::1     localhost ip6-localhost ip6-loopback
fe00::0 ip6-localnet

this line is garbage
999.1.1.1 broken
10.0.0.7 db DB-Primary primary.db.
#10.0.0.8 db
   10.0.0.9   db
10.0.0.7 db
fe80::1%eth0 linklocal
2001:db8::5 v6only
";
        let ips = |v: &[&str]| -> Vec<IpAddr> { v.iter().map(|s| s.parse().unwrap()).collect() };
        assert_eq!(lookup_hosts(text, "localhost"), ips(&["127.0.0.1", "::1"]));
        assert_eq!(lookup_hosts(text, "LocalHost"), ips(&["127.0.0.1", "::1"]));
        assert_eq!(lookup_hosts(text, "localhost."), ips(&["127.0.0.1", "::1"]));
        assert_eq!(lookup_hosts(text, "box"), ips(&["127.0.1.1"]));
        assert_eq!(lookup_hosts(text, "box.example.org"), ips(&["127.0.1.1"]));
        assert_eq!(lookup_hosts(text, "ip6-loopback"), ips(&["::1"]));
        assert_eq!(lookup_hosts(text, "v6only"), ips(&["2001:db8::5"]));
        // Aliases, case, trailing dots, duplicates once, commented-out line skipped.
        assert_eq!(lookup_hosts(text, "db"), ips(&["10.0.0.7", "10.0.0.9"]));
        assert_eq!(lookup_hosts(text, "db-primary"), ips(&["10.0.0.7"]));
        assert_eq!(lookup_hosts(text, "primary.db"), ips(&["10.0.0.7"]));
        for missing in [
            "garbage",
            "this",
            "broken",
            "linklocal",
            "trailing",
            "comment",
            "",
            "#",
            "foo",
        ] {
            assert_eq!(
                lookup_hosts(text, missing),
                Vec::<IpAddr>::new(),
                "{missing:?}"
            );
        }
        assert!(lookup_hosts("", "localhost").is_empty());
        assert!(lookup_hosts("\u{0}\u{1}\n\n\t\n###", "x").is_empty());
    }

    struct TempFile(PathBuf);

    impl TempFile {
        fn new(tag: &str, contents: &str) -> TempFile {
            let path = std::env::temp_dir()
                .join(format!("berth-target-test-{}-{tag}", std::process::id()));
            std::fs::write(&path, contents).unwrap();
            TempFile(path)
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn resolve_ip_literals_skip_the_hosts_file() {
        let nowhere = Path::new("/nonexistent/berth/hosts");
        assert_eq!(
            resolve(&v4("127.0.0.1"), 81, SHORT, &hosts_only(nowhere)).unwrap(),
            vec![sa("127.0.0.1:81")]
        );
        assert_eq!(
            resolve(
                &Host::Ip("::1".parse().unwrap()),
                81,
                SHORT,
                &hosts_only(nowhere)
            )
            .unwrap(),
            vec![sa("[::1]:81")]
        );
        // A Name holding an IP literal (built by hand) still works.
        assert_eq!(
            resolve(&name("10.1.2.3"), 9, SHORT, &hosts_only(nowhere)).unwrap(),
            vec![sa("10.1.2.3:9")]
        );
    }

    #[test]
    fn resolve_names_from_a_hosts_file() {
        let hosts = TempFile::new(
            "names",
            "10.9.8.7 app App.local\n::1 app\n127.0.0.1 localhost\n",
        );
        assert_eq!(
            resolve(&name("APP"), 8080, SHORT, &hosts_only(&hosts.0)).unwrap(),
            vec![sa("10.9.8.7:8080"), sa("[::1]:8080")]
        );
        // The file's localhost wins over the built-in fallback.
        assert_eq!(
            resolve(&name("localhost"), 80, SHORT, &hosts_only(&hosts.0)).unwrap(),
            vec![sa("127.0.0.1:80")]
        );
    }

    #[test]
    fn localhost_without_a_hosts_file() {
        let nowhere = Path::new("/nonexistent/berth/hosts");
        let want = vec![sa("127.0.0.1:80"), sa("[::1]:80")];
        assert_eq!(
            resolve(&name("localhost"), 80, SHORT, &hosts_only(nowhere)).unwrap(),
            want
        );
        assert_eq!(
            resolve(&name("LOCALHOST."), 80, SHORT, &hosts_only(nowhere)).unwrap(),
            want
        );
        // Also when the file exists but does not list localhost.
        let hosts = TempFile::new("nolocal", "# empty\n10.0.0.1 other\n");
        assert_eq!(
            resolve(&name("localhost"), 80, SHORT, &hosts_only(&hosts.0)).unwrap(),
            want
        );
    }

    /// A name in neither file goes to DNS, whose answer here depends on the
    /// machine (tests/dns.rs asks a real server, dnsmasq): whatever it is,
    /// the reason is one line naming the name, within the time given.
    #[test]
    fn a_name_not_in_hosts_goes_to_dns_within_the_time_given() {
        let hosts = TempFile::new("dns", "10.0.0.1 other\n");
        let started = std::time::Instant::now();
        let got = resolve(
            &name("berth-test.invalid"),
            80,
            SHORT,
            &hosts_only(&hosts.0),
        );
        assert!(started.elapsed() < SHORT + Duration::from_millis(500));
        if let Err(e) = got {
            assert!(e.starts_with("name \"berth-test.invalid\" "), "{e}");
            assert!(!e.contains('\n') && !e.contains("os error"), "{e}");
        }
    }

    #[test]
    fn unreadable_hosts_file_is_reported() {
        // A directory cannot be read as a file.
        let dir = std::env::temp_dir();
        let err = resolve(&name("db"), 1, SHORT, &hosts_only(&dir)).unwrap_err();
        assert!(err.contains("cannot read"), "{err}");
        assert!(err.starts_with("name \"db\" not resolved"), "{err}");
        assert!(!err.contains("os error"), "{err}");
    }

    #[test]
    fn nameservers_are_named_as_resolv_conf_lists_them() {
        assert_eq!(
            nameservers("nameserver 127.0.0.11\noptions ndots:0\n"),
            "nameserver 127.0.0.11"
        );
        assert_eq!(
            nameservers("search a b\nnameserver 10.96.0.10\n# x\nnameserver ::1\nnameserver 1.1.1.1\nnameserver 8.8.8.8\n"),
            "nameservers 10.96.0.10, ::1, 1.1.1.1"
        );
        assert_eq!(
            nameservers(""),
            "nameserver 127.0.0.1: resolv.conf names none"
        );
        let hostile = format!("nameserver {}\x1b[2J\n", "9".repeat(500));
        let said = nameservers(&hostile);
        assert!(
            said.len() < 90 && said.is_ascii() && !said.contains('\x1b'),
            "{said}"
        );
    }
}
