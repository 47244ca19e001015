//! Names through DNS (SPEC `berth probe`: /etc/hosts first, then DNS as
//! /etc/resolv.conf says), against a real DNS server nobody here wrote:
//! Debian's dnsmasq, started by each test on a loopback address of its own
//! (127.53.X.Y, `--bind-interfaces`), with a resolv.conf bind-mounted over
//! /etc/resolv.conf in berth's private mount namespace. Also the peer the
//! fault suite (tests/hostile.rs) uses: a DNS server that answers badly.

use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use crate::util::{Berth, Done, Guarded, SpawnGuarded, LONG};

static NEXT_ADDR: AtomicU8 = AtomicU8::new(1);

/// A loopback address no other test (or test run) of this process uses:
/// 127.53.<pid byte>.<counter>.
pub(crate) fn own_loopback() -> Ipv4Addr {
    let n = NEXT_ADDR.fetch_add(1, Ordering::Relaxed);
    Ipv4Addr::new(127, 53, (std::process::id() % 251) as u8 + 1, n)
}

/// dnsmasq answering only from the names a test gives it (`--local=/#/`:
/// anything else is NXDOMAIN, nothing is forwarded), reloading them as
/// files appear in its hosts directory (`--hostsdir`, inotify). Killed,
/// its directory removed, when dropped.
pub(crate) struct Dnsmasq {
    pub addr: Ipv4Addr,
    dir: PathBuf,
    _process: Guarded,
    files: usize,
}

impl Dnsmasq {
    pub(crate) fn start(names: &[(&str, &str)]) -> Dnsmasq {
        let addr = own_loopback();
        let dir = std::env::temp_dir().join(format!("berth-dns-{}-{addr}", std::process::id()));
        let hosts = dir.join("hosts.d");
        std::fs::create_dir_all(&hosts).unwrap();
        let process = Command::new("dnsmasq")
            .args([
                "--keep-in-foreground",
                "--no-resolv",
                "--no-hosts",
                "--no-negcache",
            ])
            .args([
                "--bind-interfaces",
                "--port=53",
                "--user=root",
                "--pid-file=",
            ])
            .arg(format!("--listen-address={addr}"))
            .arg("--local=/#/")
            .arg(format!("--hostsdir={}", hosts.display()))
            .arg("--log-facility=-")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn_guarded()
            .expect("dnsmasq (scripts/lib/test-env.sh installs dnsmasq-base)");
        let mut d = Dnsmasq {
            addr,
            dir,
            _process: process,
            files: 0,
        };
        d.add(names);
        d.wait_until_serving();
        d
    }

    /// Adds names (`name`, `address`) to what it answers: a new file in
    /// its hosts directory, read within moments.
    pub(crate) fn add(&mut self, names: &[(&str, &str)]) {
        self.files += 1;
        let text: String = names.iter().map(|(n, a)| format!("{a} {n}\n")).collect();
        let tmp = self.dir.join(format!("new-{}", self.files));
        std::fs::write(&tmp, text).unwrap();
        // Renamed in whole, so dnsmasq never reads half a file.
        std::fs::rename(
            &tmp,
            self.dir.join("hosts.d").join(format!("{}", self.files)),
        )
        .unwrap();
    }

    /// Bound once a second socket can no longer take its port.
    fn wait_until_serving(&self) {
        let deadline = Instant::now() + LONG;
        while UdpSocket::bind((self.addr, 53)).is_ok() {
            assert!(
                Instant::now() < deadline,
                "dnsmasq did not bind {}:53",
                self.addr
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A resolv.conf naming this server, with more lines after it.
    pub(crate) fn resolv_conf(&self, more: &str) -> String {
        format!("nameserver {}\n{more}", self.addr)
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A TCP listener on `ip`, accepting in the background: a dependency
/// that is up.
pub(crate) fn listening(ip: &str) -> (TcpListener, u16) {
    let l = TcpListener::bind((ip, 0)).unwrap();
    let port = l.local_addr().unwrap().port();
    (l, port)
}

/// `berth probe ARGS` as PID 1 of a namespace whose /etc/resolv.conf is
/// `resolv_conf`.
pub(crate) fn probe_with_resolv_conf(resolv_conf: &str, args: &[&str]) -> Done {
    Berth::new()
        .file("/etc/resolv.conf", resolv_conf.as_bytes())
        .arg("probe")
        .args(args.iter().copied())
        .run()
}

fn healthy(d: &Done) {
    assert_eq!(d.code, 0, "{:?}", d.stderr);
    assert!(d.stderr.is_empty(), "{:?}", d.stderr);
}

fn one_line(d: &Done) -> &str {
    assert_eq!(d.stderr.len(), 1, "one line: {:?}", d.stderr);
    &d.stderr[0]
}

#[test]
fn a_name_is_resolved_by_the_nameserver_resolv_conf_names() {
    let dns = Dnsmasq::start(&[("db.test", "127.0.0.1")]);
    let (_db, port) = listening("127.0.0.1");
    let d = probe_with_resolv_conf(&dns.resolv_conf(""), &[&format!("tcp://db.test:{port}")]);
    healthy(&d);
    // /etc/hosts still comes first: the same name in it wins over DNS.
    let d = Berth::new()
        .file("/etc/resolv.conf", dns.resolv_conf("").as_bytes())
        .file("/etc/hosts", b"127.0.0.1 only-in-hosts\n")
        .args(["probe", &format!("tcp://only-in-hosts:{port}")])
        .run();
    healthy(&d);
}

/// Kubernetes writes `search NS.svc.cluster.local svc.cluster.local
/// cluster.local` and `options ndots:5`: `db`, `db.prod` and the full name
/// all reach the service.
#[test]
fn kubernetes_service_names_resolve_through_search_domains_under_ndots_5() {
    let dns = Dnsmasq::start(&[("db.prod.svc.cluster.local", "127.0.0.1")]);
    let (_db, port) = listening("127.0.0.1");
    let conf = dns.resolv_conf(
        "search prod.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n",
    );
    for name in ["db", "db.prod", "db.prod.svc.cluster.local"] {
        let d = probe_with_resolv_conf(&conf, &[&format!("tcp://{name}:{port}")]);
        assert_eq!(d.code, 0, "{name}: {:?}", d.stderr);
    }
    // Without the search line the short name is not found.
    let d = probe_with_resolv_conf(&dns.resolv_conf(""), &[&format!("tcp://db:{port}")]);
    assert_eq!(d.code, 1);
    assert_eq!(
        one_line(&d),
        format!("berth: probe tcp://db:{port}: name \"db\" not found (DNS: NXDOMAIN)")
    );
}

#[test]
fn a_name_with_only_an_aaaa_record_is_probed_over_ipv6() {
    let dns = Dnsmasq::start(&[("v6only.test", "::1")]);
    let (_db, port) = listening("::1");
    let d = probe_with_resolv_conf(
        &dns.resolv_conf(""),
        &[&format!("tcp://v6only.test:{port}")],
    );
    healthy(&d);
}

#[test]
fn nxdomain_is_one_clear_line_and_unhealthy() {
    let dns = Dnsmasq::start(&[("db.test", "127.0.0.1")]);
    let d = probe_with_resolv_conf(&dns.resolv_conf(""), &["http://nosuch.test:8080/healthz"]);
    assert_eq!(d.code, 1);
    assert_eq!(
        one_line(&d),
        "berth: probe http://nosuch.test:8080/healthz: name \"nosuch.test\" not found (DNS: NXDOMAIN)"
    );
}

/// A nameserver that takes the query and never answers: the probe ends
/// within its --timeout (musl alone would wait timeout × attempts, 10 s)
/// and says which nameserver did not answer.
#[test]
fn a_silent_nameserver_is_a_dns_timeout_within_the_probe_timeout() {
    let silent = own_loopback();
    let sock = UdpSocket::bind((silent, 53)).unwrap();
    let taker = std::thread::spawn(move || {
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 512];
        let mut queries = 0;
        while sock.recv(&mut buf).is_ok() {
            queries += 1;
        }
        queries
    });
    let d = probe_with_resolv_conf(
        &format!("nameserver {silent}\n"),
        &["--timeout", "1s", "tcp://db.test:5432"],
    );
    assert_eq!(d.code, 1);
    assert_eq!(
        one_line(&d),
        format!(
            "berth: probe tcp://db.test:5432: name \"db.test\" not resolved: DNS timeout (nameserver {silent})"
        )
    );
    assert!(
        d.elapsed < Duration::from_millis(2500),
        "took {:?}",
        d.elapsed
    );
    assert!(
        taker.join().unwrap() > 0,
        "the query reached the silent server"
    );
}

/// The classic compose start: the app waits for a name that DNS does not
/// know yet (the dependency's container is still being created); once the
/// name appears and its port answers, the app starts.
#[test]
fn wait_for_a_name_that_appears_in_dns_while_berth_waits() {
    let mut dns = Dnsmasq::start(&[]);
    let (_db, port) = listening("127.0.0.1");
    let r = Berth::new()
        .file("/etc/resolv.conf", dns.resolv_conf("").as_bytes())
        .args(["--log-format=json", "--wait-timeout=20s"])
        .arg(format!("--wait-for=tcp://late.test:{port}"))
        .cmd("echo", &["app started"])
        .spawn();
    r.stdout.wait_for("not found yet", |l| {
        l.contains("\"event\":\"wait\"")
            && l.contains("name \\\"late.test\\\" not found (DNS: NXDOMAIN)")
    });
    dns.add(&[("late.test", "127.0.0.1")]);
    let d = r.wait();
    assert_eq!(d.code, 0, "{:?} {:?}", d.stdout, d.stderr);
    let lines = d.json();
    let healthy = lines
        .iter()
        .position(|v| v["event"] == "wait" && v["state"] == "healthy")
        .expect("a healthy wait event");
    let start = lines
        .iter()
        .position(|v| v["event"] == "start")
        .expect("start");
    let app = lines
        .iter()
        .position(|v| v["msg"] == "app started")
        .expect("the app's line");
    assert!(healthy < start && start < app, "{:?}", d.stdout);
}

/// How a [`HostileDns`] answers every query.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Hostility {
    /// A well-formed answer whose id is not the query's.
    WrongId,
    /// The first 9 bytes of a good answer.
    Truncated,
    /// The TC bit set and no answer (a resolver may retry over TCP, where
    /// nothing listens).
    TruncationBit,
    /// A CNAME whose target is a compression pointer to itself.
    CompressionLoop,
    /// 4 KiB of answer records in one datagram.
    Oversized,
    /// 25 records, every one loopback, then 19 more copies of the datagram:
    /// a resolver must take the first and ignore the rest. (Not hundreds:
    /// the copies of the A answer would then fill the socket's receive
    /// buffer before a slow resolver, under qemu, drains it, and the AAAA
    /// answer behind them would be dropped: a timeout, not a verdict on
    /// how berth handles duplicates.)
    AnswerFlood,
}

/// A DNS server on a loopback address of its own that answers every query
/// the way `how` says, until dropped.
pub(crate) struct HostileDns {
    pub addr: Ipv4Addr,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl HostileDns {
    pub(crate) fn start(how: Hostility) -> HostileDns {
        let addr = own_loopback();
        let sock = UdpSocket::bind((addr, 53)).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        std::thread::spawn(move || {
            let mut q = [0u8; 512];
            while !stopped.load(Ordering::Relaxed) {
                let Ok((n, from)) = sock.recv_from(&mut q) else {
                    continue;
                };
                for reply in hostile_replies(&q[..n], how) {
                    let _ = sock.send_to(&reply, from);
                }
            }
        });
        HostileDns { addr, stop }
    }
}

impl Drop for HostileDns {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The datagrams sent back for `query`.
fn hostile_replies(query: &[u8], how: Hostility) -> Vec<Vec<u8>> {
    if query.len() < 17 {
        return Vec::new();
    }
    // The question: its name runs from byte 12 to a zero length, then
    // type and class.
    let mut end = 12;
    while end < query.len() && query[end] != 0 {
        end += usize::from(query[end]) + 1;
    }
    let question_end = (end + 5).min(query.len());
    let qtype = u16::from_be_bytes([query[end + 1], query[end + 2]]);
    let record = |name: &[u8]| -> Vec<u8> {
        let mut r = name.to_vec();
        r.extend_from_slice(&qtype.to_be_bytes());
        r.extend_from_slice(&[0, 1, 0, 0, 0, 60]); // class IN, TTL 60
        if qtype == 28 {
            r.extend_from_slice(&[0, 16]);
            r.extend_from_slice(&std::net::Ipv6Addr::LOCALHOST.octets());
        } else {
            r.extend_from_slice(&[0, 4, 127, 0, 0, 1]);
        }
        r
    };
    let reply = |flags: u16, answers: &[Vec<u8>]| -> Vec<u8> {
        let mut r = query[..2].to_vec();
        r.extend_from_slice(&flags.to_be_bytes());
        r.extend_from_slice(&[0, 1]);
        r.extend_from_slice(&(answers.len() as u16).to_be_bytes());
        r.extend_from_slice(&[0, 0, 0, 0]);
        r.extend_from_slice(&query[12..question_end]);
        for a in answers {
            r.extend_from_slice(a);
        }
        r
    };
    const OK: u16 = 0x8180; // response, recursion desired and available
    let pointer_to_question = [0xC0, 12];
    match how {
        Hostility::WrongId => {
            let mut r = reply(OK, &[record(&pointer_to_question)]);
            r[0] ^= 0xFF;
            vec![r]
        }
        Hostility::Truncated => vec![reply(OK, &[record(&pointer_to_question)])[..9].to_vec()],
        Hostility::TruncationBit => vec![reply(OK | 0x0200, &[])],
        Hostility::CompressionLoop => {
            // A CNAME for the question whose target name, the answer's
            // last two bytes, is a compression pointer to itself.
            let mut cname = pointer_to_question.to_vec();
            cname.extend_from_slice(&[0, 5, 0, 1, 0, 0, 0, 60, 0, 2]);
            let at = (question_end + cname.len()) as u16;
            cname.extend_from_slice(&[0xC0 | (at >> 8) as u8, at as u8]);
            vec![reply(OK, &[cname])]
        }
        Hostility::Oversized => {
            let answers: Vec<Vec<u8>> = (0..150).map(|_| record(&pointer_to_question)).collect();
            vec![reply(OK, &answers)]
        }
        Hostility::AnswerFlood => {
            let answers: Vec<Vec<u8>> = (0..25).map(|_| record(&pointer_to_question)).collect();
            vec![reply(OK, &answers); 20]
        }
    }
}
