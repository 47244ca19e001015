//! The figures of waiting for dependencies (SPEC "Figures"): from a
//! dependency opening its port to the app's start, berth `--wait-for`
//! beside Debian's wait-for-it (the anchor: it polls once a second); what
//! `--wait-for` adds to start when the dependency is already up; and a
//! probe of a name in DNS beside `getent hosts` with the same resolv.conf
//! and the same DNS server (dnsmasq on a loopback address of its own).

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{rotated, time_starts, Opts, Report, Res};

/// From `listen()` on the dependency's port to the app's first act (it
/// connects back to the harness), for berth and wait-for-it. The
/// dependency opens its port at a random-ish moment after the waiter
/// started, so a once-a-second poll shows its average lateness.
pub fn dependency_to_start(o: &Opts, r: &mut Report) -> Res<()> {
    let rounds = if o.quick { 2 } else { 20 };
    // The app: a shell that connects to the harness's "started" port.
    let variants = ["berth", "wait-for-it"];
    for round in 0..rounds {
        for name in rotated(&variants, round) {
            let dep_port = free_port()?;
            let started = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
            let started_port = started.local_addr().map_err(|e| e.to_string())?.port();
            let app = format!("exec 3<>/dev/tcp/127.0.0.1/{started_port}");
            let dep = format!("127.0.0.1:{dep_port}");
            let argv: Vec<String> = match name {
                "berth" => vec![
                    "unshare".into(),
                    "--pid".into(),
                    "--fork".into(),
                    "--mount-proc".into(),
                    o.berth.clone(),
                    "--log-format=plain".into(),
                    format!("--wait-for=tcp://{dep}"),
                    "--".into(),
                    "bash".into(),
                    "-c".into(),
                    app,
                ],
                _ => vec![
                    "wait-for-it".into(),
                    "-q".into(),
                    "-t".into(),
                    "0".into(),
                    dep.clone(),
                    "--".into(),
                    "bash".into(),
                    "-c".into(),
                    app,
                ],
            };
            let mut waiter = Command::new(&argv[0])
                .args(&argv[1..])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("{}: {e}", argv[0]))?;
            // 300 ms to 1.25 s after the waiter started, varied by round.
            std::thread::sleep(Duration::from_millis(300 + (round as u64 * 373) % 950));
            let opened = Instant::now();
            let dependency =
                TcpListener::bind(("127.0.0.1", dep_port)).map_err(|e| e.to_string())?;
            started.set_nonblocking(false).map_err(|e| e.to_string())?;
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let _ = tx.send(started.accept().map(|_| Instant::now()));
            });
            let app_at = rx
                .recv_timeout(Duration::from_secs(10))
                .map_err(|_| format!("{name}: the app did not start within 10 s"))?
                .map_err(|e| e.to_string())?;
            let _ = waiter.wait();
            drop(dependency);
            r.add(
                "wait_dependency_to_start_ms",
                "ms",
                name,
                app_at.duration_since(opened).as_secs_f64() * 1e3,
            );
        }
    }
    Ok(())
}

/// berth's start with `--wait-for` a dependency that is already up, beside
/// the same start without it (`INIT -- /bin/true`, as the start figure).
pub fn ready_dependency_overhead(o: &Opts, r: &mut Report) -> Res<()> {
    let dependency = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let port = dependency.local_addr().map_err(|e| e.to_string())?.port();
    // Accepted and closed, so hundreds of probes never fill the backlog.
    std::thread::spawn(move || for _ in dependency.incoming() {});
    let plain = vec![
        o.berth.clone(),
        "--log-format=plain".into(),
        "--".into(),
        "/bin/true".into(),
    ];
    let mut waiting = plain.clone();
    waiting.insert(2, format!("--wait-for=tcp://127.0.0.1:{port}"));
    let variants = [("berth", plain), ("berth-wait-for", waiting)];
    let rounds = if o.quick { 10 } else { 400 };
    let warm = if o.quick { 2 } else { 20 };
    time_starts(&variants, warm, rounds, "wait_ready_start_us", r)
}

/// `berth probe tcp://NAME:PORT` where NAME is only in DNS, beside `getent
/// hosts NAME` (glibc), both inside one mount namespace whose
/// /etc/resolv.conf names a dnsmasq of the bench's own.
pub fn dns_probe(o: &Opts, r: &mut Report) -> Res<()> {
    let dns_ip = "127.53.254.1";
    let dir = std::env::temp_dir().join(format!("berth-bench-dns-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let hosts = dir.join("hosts");
    std::fs::write(&hosts, "127.0.0.1 db.bench.test\n").map_err(|e| e.to_string())?;
    let conf = dir.join("resolv.conf");
    std::fs::write(&conf, format!("nameserver {dns_ip}\n")).map_err(|e| e.to_string())?;
    let mut dnsmasq = Command::new("dnsmasq")
        .args([
            "--keep-in-foreground",
            "--no-resolv",
            "--no-hosts",
            "--bind-interfaces",
        ])
        .args(["--port=53", "--user=root", "--pid-file=", "--local=/#/"])
        .arg(format!("--listen-address={dns_ip}"))
        .arg(format!("--addn-hosts={}", hosts.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("dnsmasq (bench/run installs dnsmasq-base): {e}"))?;
    std::thread::sleep(Duration::from_millis(300));
    let dependency = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let port = dependency.local_addr().map_err(|e| e.to_string())?.port();
    std::thread::spawn(move || for _ in dependency.incoming() {});
    let rounds = if o.quick { 10 } else { 300 };
    let berth = o.berth.clone();
    let target = format!("tcp://db.bench.test:{port}");
    // A thread of its own unshares the mount namespace (CLONE_NEWNS on one
    // thread: its fs view only) and binds the resolv.conf over the
    // machine's; the commands it starts see that one.
    let timed = std::thread::spawn(move || -> Res<Vec<(f64, f64)>> {
        in_private_mounts_with_resolv_conf(&conf)?;
        let run = |argv: &[&str]| -> Res<f64> {
            let t0 = Instant::now();
            let st = Command::new(argv[0])
                .args(&argv[1..])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .status()
                .map_err(|e| format!("{}: {e}", argv[0]))?;
            if !st.success() {
                return Err(format!("`{}` failed: {st}", argv.join(" ")));
            }
            Ok(t0.elapsed().as_secs_f64() * 1e3)
        };
        let mut samples = Vec::new();
        for round in 0..rounds + 5 {
            let b = run(&[&berth, "probe", &target])?;
            let g = run(&["getent", "hosts", "db.bench.test"])?;
            if round >= 5 {
                samples.push((b, g));
            }
        }
        Ok(samples)
    });
    let samples = timed
        .join()
        .map_err(|_| "the DNS timing thread panicked".to_string());
    let _ = dnsmasq.kill();
    let _ = dnsmasq.wait();
    let _ = std::fs::remove_dir_all(&dir);
    for (b, g) in samples?? {
        r.add("dns_lookup_ms", "ms", "berth probe", b);
        r.add("dns_lookup_ms", "ms", "getent hosts", g);
    }
    Ok(())
}

/// The calling thread gets a private mount namespace in which `conf` is
/// /etc/resolv.conf.
fn in_private_mounts_with_resolv_conf(conf: &Path) -> Res<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let src = CString::new(conf.as_os_str().as_bytes()).map_err(|e| e.to_string())?;
    let dst = CString::new("/etc/resolv.conf").unwrap();
    let root = CString::new("/").unwrap();
    // SAFETY: unshare and mount with NUL-terminated paths this function
    // owns; null pointers where mount(2) allows them.
    let ok = unsafe {
        libc::unshare(libc::CLONE_NEWNS) == 0
            && libc::mount(
                std::ptr::null(),
                root.as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ) == 0
            && libc::mount(
                src.as_ptr(),
                dst.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND,
                std::ptr::null(),
            ) == 0
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "a private mount namespace for the DNS figure: {}",
            std::io::Error::last_os_error()
        ))
    }
}

/// A free loopback port (bound, then released for the dependency to take).
fn free_port() -> Res<u16> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}
