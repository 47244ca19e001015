//! A rolling update under load (issue 6, part 4): a single-node Docker Swarm
//! replaces every task of a 3-replica service of examples/httpd while a
//! bounded loopback load generator counts failed requests, once per init:
//! berth with `--drain`, `docker --init` (tini) and no init.
//!
//! Swarm's routing mesh cannot run on this machine: the kernel has no IPVS
//! (`# CONFIG_IP_VS is not set`; dockerd logs "Could not get ipvs family
//! information from the kernel … Native loadbalancing will not work", and a
//! port published through the ingress network refuses connections). So the
//! tasks publish their port in host mode (`--publish mode=host,target=8080`,
//! a random host port per task) and the test puts its own load balancer in
//! front of them, a small round-robin proxy on 127.0.0.1 that emulates what
//! Swarm's VIP or a Kubernetes Service does: a task is in the rotation while
//! the engine says it is running and healthy (its HEALTHCHECK), and leaves
//! it only when it stops or its health turns bad, seen with a lag (one
//! `docker ps` poll). Swarm itself still runs the update: `docker service
//! update --force --update-parallelism 1 --update-order start-first`.
//!
//! start-first, because it isolates what the init does at stop: the new
//! task is healthy before the old one gets TERM, so capacity never drops
//! and every failed request is one the old task's stop caused. With
//! stop-first the same stop races happen, plus a window with 2 replicas.
//!
//! The swarm is left as it was found: when the engine was not a swarm
//! member, the test made it one and leaves again (`docker swarm leave
//! --force`) in a Drop guard; services are removed by a Drop guard too.
//! Figures are printed as `docker-compare | …` lines (`--nocapture`), as
//! in tests/docker.rs. `TEST_ROLLING_REPLICAS` (default 3) makes a longer
//! run by hand, `TEST_ROLLING_ORDER=stop-first` the other update order.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::docker::{docker, docker_ok, report, Init, Scope, Stream};

/// Load generator: client threads, the pause between one thread's
/// requests, and bounds on count and time whatever happens.
const CLIENTS: usize = 4;
const PAUSE: Duration = Duration::from_millis(10);
const MAX_REQUESTS_PER_CLIENT: usize = 20_000;
const MAX_LOAD_TIME: Duration = Duration::from_secs(120);
/// A request that takes longer than this is a failure (`timeout`).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the load balancer asks the engine for the running, healthy
/// tasks: the lag with which a stopping task leaves the rotation.
const POLL: Duration = Duration::from_millis(250);
/// Upper bound for waits on the engine (tasks healthy, old tasks gone).
const WAIT: Duration = Duration::from_secs(90);

/// berth's drain and grace in the berth variant. The drain covers the
/// health interval (1 s), the health check's own run (an exec, slow on a
/// loaded machine) and the balancer's lag (a poll plus a `docker ps`),
/// about 2 s at worst seen here, with room; drain + grace + 2 s fits the
/// service's `--stop-grace-period 10s`.
const DRAIN_S: u64 = 4;
const GRACE: &str = "4s";

// ---------------------------------------------------------------------------
// The swarm and its services

/// Makes the engine a single-node swarm for the test when it is not one,
/// and puts it back as it was on drop; removes the services it created.
struct Swarm {
    joined_here: bool,
    services: Mutex<Vec<String>>,
}

impl Swarm {
    fn join() -> Swarm {
        let state = docker_ok(&["info", "--format", "{{.Swarm.LocalNodeState}}"]);
        let joined_here = match state.as_str() {
            "active" => false,
            "inactive" => {
                docker_ok(&["swarm", "init", "--advertise-addr", "127.0.0.1"]);
                true
            }
            other => panic!("the engine's swarm state is {other:?}: neither active nor inactive"),
        };
        Swarm {
            joined_here,
            services: Mutex::new(Vec::new()),
        }
    }

    fn create(&self, name: &str, args: &[&str]) {
        self.services.lock().unwrap().push(name.to_string());
        let mut v = vec![
            "service",
            "create",
            "--name",
            name,
            "--detach=false",
            "--quiet",
            // The image is local: do not ask a registry for its digest.
            "--no-resolve-image",
        ];
        v.extend_from_slice(args);
        docker_ok(&v);
    }

    fn remove(&self, name: &str) {
        let _ = docker(&["service", "rm", name]);
        // Its containers go asynchronously (berth's drain, the grace):
        // wait for them, so that the images can go too.
        let label = format!("label=com.docker.swarm.service.name={name}");
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            let o = docker(&["ps", "-aq", "--filter", &label]);
            if o.status.success() && o.stdout.iter().all(u8::is_ascii_whitespace) {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Swarm {
    fn drop(&mut self) {
        for name in self.services.lock().unwrap().drain(..) {
            self.remove(&name);
        }
        if self.joined_here {
            let _ = docker(&["swarm", "leave", "--force"]);
        }
    }
}

/// One running task as `docker ps` shows it.
struct Task {
    id: String,
    port: Option<u16>,
    healthy: bool,
}

/// The service's running containers (`docker ps`, not `-a`).
fn tasks(service: &str) -> Vec<Task> {
    let label = format!("label=com.docker.swarm.service.name={service}");
    let o = docker(&[
        "ps",
        "--no-trunc",
        "--filter",
        &label,
        "--format",
        "{{.ID}}\t{{.Ports}}\t{{.Status}}",
    ]);
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| {
            let mut f = l.split('\t');
            let (id, ports, status) = (f.next()?, f.next()?, f.next()?);
            // `0.0.0.0:32770->8080/tcp, [::]:32770->8080/tcp`
            let port = ports
                .split(", ")
                .find_map(|p| p.strip_prefix("0.0.0.0:")?.split("->").next()?.parse().ok());
            Some(Task {
                id: id.to_string(),
                port,
                healthy: status.starts_with("Up") && status.contains("(healthy)"),
            })
        })
        .collect()
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ---------------------------------------------------------------------------
// The load balancer: round-robin over the healthy tasks' host ports

struct Balancer {
    port: u16,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Balancer {
    fn start(service: &str) -> Balancer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let rotation: Arc<Mutex<Vec<u16>>> = Arc::default();
        let started = Instant::now();

        let poller = {
            let (stop, rotation, service) = (stop.clone(), rotation.clone(), service.to_string());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) && started.elapsed() < MAX_LOAD_TIME + WAIT {
                    let ports: Vec<u16> = tasks(&service)
                        .into_iter()
                        .filter(|t| t.healthy)
                        .filter_map(|t| t.port)
                        .collect();
                    *rotation.lock().unwrap() = ports;
                    std::thread::sleep(POLL);
                }
            })
        };
        let acceptor = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let next = AtomicUsize::new(0);
                while !stop.load(Ordering::SeqCst) && started.elapsed() < MAX_LOAD_TIME + WAIT {
                    match listener.accept() {
                        Ok((client, _)) => {
                            let backend = {
                                let r = rotation.lock().unwrap();
                                (!r.is_empty())
                                    .then(|| r[next.fetch_add(1, Ordering::SeqCst) % r.len()])
                            };
                            std::thread::spawn(move || proxy(client, backend));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(2)),
                    }
                }
            })
        };
        Balancer {
            port,
            stop,
            threads: vec![poller, acceptor],
        }
    }

    fn wait_for_backends(&self, n: usize, service: &str) {
        wait_until(&format!("{n} healthy tasks of {service}"), || {
            tasks(service).iter().filter(|t| t.healthy).count() == n
        });
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// One client connection, one request: relays it to `backend` and the
/// answer back. Like nginx or Envoy without retries, a backend that
/// refuses or closes without answering becomes a 502 whose body says how.
fn proxy(mut client: TcpStream, backend: Option<u16>) {
    let _ = client.set_nonblocking(false);
    let _ = client.set_read_timeout(Some(REQUEST_TIMEOUT));
    let _ = client.set_write_timeout(Some(REQUEST_TIMEOUT));
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match client.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let fail = |mut c: &TcpStream, why: &str| {
        let _ = write!(
            c,
            "HTTP/1.1 502 Bad Gateway\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{why}",
            why.len()
        );
    };
    let Some(port) = backend else {
        return fail(&client, "no backend");
    };
    let addr = ([127, 0, 0, 1], port).into();
    let mut up = match TcpStream::connect_timeout(&addr, REQUEST_TIMEOUT) {
        Ok(s) => s,
        Err(e) => return fail(&client, &format!("backend connect: {:?}", e.kind())),
    };
    let _ = up.set_read_timeout(Some(REQUEST_TIMEOUT));
    if up.write_all(&head).is_err() {
        return fail(&client, "backend write failed");
    }
    let mut relayed = 0;
    loop {
        match up.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                relayed += n;
                if client.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            Err(e) if relayed == 0 => {
                return fail(&client, &format!("backend read: {:?}", e.kind()));
            }
            Err(_) => break, // cut mid-answer: the client sees a short body
        }
    }
    if relayed == 0 {
        fail(&client, "backend closed without answering");
    }
    let _ = client.shutdown(Shutdown::Write);
}

// ---------------------------------------------------------------------------
// The load generator

#[derive(Default)]
struct Tally {
    ok: usize,
    /// Failure kind → count.
    failed: std::collections::BTreeMap<String, usize>,
}

impl Tally {
    fn failures(&self) -> usize {
        self.failed.values().sum()
    }
}

/// One `GET /work` on a new connection through the balancer.
fn request(port: u16) -> Result<(), String> {
    let mut s = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), REQUEST_TIMEOUT)
        .map_err(|e| format!("connect: {:?}", e.kind()))?;
    s.set_read_timeout(Some(REQUEST_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(REQUEST_TIMEOUT)).unwrap();
    s.write_all(b"GET /work HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n")
        .map_err(|e| format!("write: {:?}", e.kind()))?;
    let mut answer = Vec::new();
    s.read_to_end(&mut answer)
        .map_err(|e| format!("read: {:?}", e.kind()))?;
    let text = String::from_utf8_lossy(&answer);
    let status = text.split(' ').nth(1).unwrap_or("");
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
    match status {
        "200" if body == "hello from httpd" => Ok(()),
        "200" => Err(format!("short body {body:?}")),
        "" => Err("empty answer".into()),
        _ => Err(format!("{status} {body}")),
    }
}

struct Load {
    stop: Arc<AtomicBool>,
    tally: Arc<Mutex<Tally>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(port: u16) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let tally: Arc<Mutex<Tally>> = Arc::default();
        let started = Instant::now();
        let threads = (0..CLIENTS)
            .map(|_| {
                let (stop, tally) = (stop.clone(), tally.clone());
                std::thread::spawn(move || {
                    for _ in 0..MAX_REQUESTS_PER_CLIENT {
                        if stop.load(Ordering::SeqCst) || started.elapsed() > MAX_LOAD_TIME {
                            break;
                        }
                        let r = request(port);
                        let mut t = tally.lock().unwrap();
                        match r {
                            Ok(()) => t.ok += 1,
                            Err(kind) => *t.failed.entry(kind).or_default() += 1,
                        }
                        drop(t);
                        std::thread::sleep(PAUSE);
                    }
                })
            })
            .collect();
        Load {
            stop,
            tally,
            threads,
        }
    }

    fn ok(&self) -> usize {
        self.tally.lock().unwrap().ok
    }

    fn finish(mut self) -> Tally {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            t.join().unwrap();
        }
        std::mem::take(&mut *self.tally.lock().unwrap())
    }
}

impl Drop for Load {
    /// A test that fails midway leaves no client running (`finish` joins).
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

// ---------------------------------------------------------------------------
// The test

/// What one rolling update did.
struct Rollout {
    tally: Tally,
    update: Duration,
    /// Per replaced task: from the engine's stop signal to its exit, and
    /// the exit code.
    stops: Vec<(Duration, String)>,
}

fn unix_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// Creates `service` with `args`, puts it behind a balancer under load,
/// replaces every task with `docker service update --force`, and counts.
fn rolling_update(
    swarm: &Swarm,
    service: &str,
    replicas: usize,
    order: &str,
    args: &[&str],
) -> Rollout {
    let replicas_s = replicas.to_string();
    let mut create = vec![
        "--replicas",
        &replicas_s,
        // Host mode: each task gets its own random host port (no ingress).
        "--publish",
        "mode=host,target=8080",
        "--stop-grace-period",
        "10s",
        "--update-parallelism",
        "1",
        "--update-order",
        order,
        "--update-delay",
        "0s",
        "--update-monitor",
        "1s",
    ];
    create.extend_from_slice(args);
    swarm.create(service, &create);
    let balancer = Balancer::start(service);
    balancer.wait_for_backends(replicas, service);
    let old: Vec<String> = tasks(service).into_iter().map(|t| t.id).collect();
    assert_eq!(old.len(), replicas);

    let load = Load::start(balancer.port);
    wait_until("the first 100 answers", || load.ok() >= 100);
    // The old tasks' stops as the engine records them, kill (the stop
    // signal) to die. Followed from now on: the engine keeps only its last
    // 256 events for `--since`, and every health check makes three. The
    // `--since` covers the moment before the stream is subscribed.
    let label = format!("label=com.docker.swarm.service.name={service}");
    let since = (unix_nanos() / 1_000_000_000 - 1).to_string();
    let events = Stream::docker(&[
        "events",
        "--since",
        &since,
        "--filter",
        &label,
        "--filter",
        "event=kill",
        "--filter",
        "event=die",
        "--format",
        "{{.TimeNano}} {{.Status}} {{.Actor.ID}} {{index .Actor.Attributes \"exitCode\"}}",
    ]);
    let t = Instant::now();
    docker_ok(&[
        "service",
        "update",
        "--force",
        "--detach=false",
        "--quiet",
        service,
    ]);
    let update = t.elapsed();
    // start-first: the update ends when the new tasks run; the old ones may
    // still be draining. Done when every old task is gone and the new ones
    // all take load.
    wait_until("the old tasks to exit", || {
        let now = tasks(service);
        !now.iter().any(|t| old.contains(&t.id))
            && now.iter().filter(|t| t.healthy).count() == replicas
    });
    let ok_before = load.ok();
    wait_until("100 more answers from the new tasks", || {
        load.ok() >= ok_before + 100
    });
    let tally = load.finish();
    drop(balancer);

    let died = |l: &str| old.iter().any(|id| l.contains(&format!(" die {id} ")));
    wait_until("the die events of the old tasks", || {
        events.out.snapshot().iter().filter(|l| died(l)).count() == old.len()
    });
    let ev = events.out.snapshot().join("\n");
    let mut stops = Vec::new();
    for id in &old {
        let mine: Vec<Vec<&str>> = ev
            .lines()
            .map(|l| l.split(' ').collect::<Vec<_>>())
            .filter(|f| f.len() >= 3 && f[2] == id)
            .collect();
        let at = |status: &str| -> Option<u128> {
            mine.iter().find(|f| f[1] == status)?.first()?.parse().ok()
        };
        let (Some(kill), Some(die)) = (at("kill"), at("die")) else {
            panic!("no kill and die events for old task {id}: {ev}");
        };
        let code = mine
            .iter()
            .find(|f| f[1] == "die")
            .and_then(|f| f.get(3))
            .unwrap_or(&"?")
            .to_string();
        stops.push((Duration::from_nanos((die - kill) as u64), code));
    }
    Rollout {
        tally,
        update,
        stops,
    }
}

/// Every task of a 3-replica service is replaced under load: with berth's
/// `--drain` no request fails; with tini and with no init the counts are
/// printed (the app is the same: httpd finishing its requests in flight on
/// TERM), not asserted.
#[test]
fn rolling_update_under_load_loses_no_request_with_drain() {
    let replicas: usize = std::env::var("TEST_ROLLING_REPLICAS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let order = std::env::var("TEST_ROLLING_ORDER").unwrap_or_else(|_| "start-first".into());
    let s = Scope::new("rolling").host_platform_images();
    // The same app in both images; the HEALTHCHECK differs. Under berth it
    // asks berth (`status --ready` fails as soon as the drain starts);
    // without berth, `berth probe` is only the curl of a scratch image.
    // Interval 1 s and one retry: unhealthy within about a second.
    let hc = "HEALTHCHECK --interval=1s --timeout=2s --retries=1 CMD";
    let berth_img = s.image("berth", &format!(r#"{hc} ["/berth", "status", "--ready"]"#));
    let probe_img = s.image(
        "probe",
        &format!(r#"{hc} ["/berth", "probe", "http://127.0.0.1:8080/healthz"]"#),
    );
    // Dropped before `s`: services go before their images.
    let swarm = Swarm::join();
    let app = [
        "/httpd",
        "--addr",
        "0.0.0.0",
        "--port",
        "8080",
        "--on-term",
        "finish",
        "--delay-ms",
        "20",
    ];

    let drain = format!("{DRAIN_S}s");
    let mut results = Vec::new();
    for init in [Init::Berth, Init::Tini, Init::None] {
        let service = s.name(&format!("{init:?}").to_lowercase());
        let mut args: Vec<&str> = Vec::new();
        match init {
            Init::Berth => {
                args.extend([
                    &berth_img[..],
                    "/berth",
                    "--drain",
                    &drain,
                    "--grace",
                    GRACE,
                    "--health",
                    "http://127.0.0.1:8080/healthz",
                    "--health-interval",
                    "1s",
                    "--",
                ]);
            }
            Init::Tini => args.extend(["--init", &probe_img[..]]),
            Init::None => args.push(&probe_img),
        }
        args.extend(app);
        let r = rolling_update(&swarm, &service, replicas, &order, &args);
        swarm.remove(&service);
        let stops: Vec<String> = r
            .stops
            .iter()
            .map(|(d, code)| format!("{:.2} s (exit {code})", d.as_secs_f64()))
            .collect();
        report(
            &format!("rolling update of {replicas} tasks under load (swarm, {order})"),
            init,
            &format!(
                "{} of {} requests failed {:?}; update {:.1} s; old tasks stopped in {}",
                r.tally.failures(),
                r.tally.failures() + r.tally.ok,
                r.tally.failed,
                r.update.as_secs_f64(),
                stops.join(", ")
            ),
        );
        results.push((init, r));
    }
    let (_, berth) = &results[0];
    assert_eq!(
        berth.tally.failures(),
        0,
        "requests failed under berth's drain: {:?}",
        berth.tally.failed
    );
    assert!(berth.tally.ok >= 200);
    for (d, code) in &berth.stops {
        // The drain was waited (the stop took at least that long), and
        // the app then exited on its own, well before berth's grace ran out.
        assert!(*d >= Duration::from_secs(DRAIN_S), "{d:?}");
        assert!(*d < Duration::from_secs(DRAIN_S + 3), "{d:?}");
        assert_eq!(code, "0");
    }
}
