//! The one test helper: runs the real berth binary, as PID 1 of a fresh PID
//! namespace (`unshare --pid --fork --mount-proc`) or as a plain subreaper,
//! with an example app, and reads its output back line by line.
//!
//! `Berth::new().arg("--grace=1s").app("stubborn", &[]).spawn()`.
//! Synchronise on lines (`wait_for`), never on sleeps; every wait has a
//! generous upper bound and panics past it.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

pub const LONG: Duration = Duration::from_secs(20);

/// The berth under test: `TEST_BERTH_BIN` (the static release binary the test
/// script builds), else cargo's build of this package.
pub fn berth_bin() -> PathBuf {
    match std::env::var_os("TEST_BERTH_BIN") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_BIN_EXE_berth")),
    }
}

/// The berth under test's architecture, from its ELF header's e_machine.
fn berth_machine() -> u16 {
    let bin = berth_bin();
    let head = std::fs::read(&bin).unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
    assert!(
        head.starts_with(b"\x7fELF"),
        "{} is not an ELF file",
        bin.display()
    );
    // e_machine: 2 bytes at offset 18, little-endian on every target we build.
    u16::from_le_bytes([head[18], head[19]])
}

/// The Docker platform of the berth under test, when it is not the host's
/// (`linux/arm64` for the aarch64 build tested under qemu-user).
pub fn berth_platform() -> Option<String> {
    const EM_386: u16 = 3;
    const EM_X86_64: u16 = 62;
    const EM_AARCH64: u16 = 183;
    let (machine, host) = (berth_machine(), std::env::consts::ARCH);
    let platform = match machine {
        EM_X86_64 if host != "x86_64" => "linux/amd64",
        EM_AARCH64 if host != "aarch64" => "linux/arm64",
        EM_386 => "linux/386",
        _ => return None,
    };
    Some(platform.to_string())
}

/// An example app built next to the test binary (target/<profile>/examples).
pub fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    let p = profile_dir.join("examples").join(name);
    assert!(
        p.exists(),
        "example {name} not built at {}: run `cargo build --examples` (the test script does)",
        p.display()
    );
    p
}

/// The lines so far, and whether the pipe has closed.
type LinesState = (Vec<String>, bool);

/// Lines read from a pipe by a thread, waitable.
#[derive(Clone, Default)]
pub struct Lines {
    inner: Arc<(Mutex<LinesState>, Condvar)>,
}

impl Lines {
    pub fn collect(self, r: impl Read + Send + 'static) {
        std::thread::spawn(move || {
            let mut r = BufReader::new(r);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match r.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let line = String::from_utf8_lossy(&buf)
                            .trim_end_matches('\n')
                            .to_string();
                        let (m, c) = &*self.inner;
                        m.lock().unwrap().0.push(line);
                        c.notify_all();
                    }
                }
            }
            let (m, c) = &*self.inner;
            m.lock().unwrap().1 = true;
            c.notify_all();
        });
    }

    pub fn snapshot(&self) -> Vec<String> {
        self.inner.0.lock().unwrap().0.clone()
    }

    /// Waits until a line satisfies `pred`; returns it.
    pub fn wait_for(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        self.wait_for_nth(what, 1, pred)
    }

    /// Waits until `n` lines satisfy `pred`; returns the n-th.
    pub fn wait_for_nth(&self, what: &str, n: usize, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + LONG;
        let (m, c) = &*self.inner;
        let mut g = m.lock().unwrap();
        loop {
            if let Some(l) = g.0.iter().filter(|l| pred(l)).nth(n - 1) {
                return l.clone();
            }
            let now = Instant::now();
            if g.1 || now >= deadline {
                panic!("no line {what} (closed: {}); got:\n{}", g.1, g.0.join("\n"));
            }
            g = c.wait_timeout(g, deadline - now).unwrap().0;
        }
    }

    pub fn wait_closed(&self, deadline: Instant) {
        let (m, c) = &*self.inner;
        let mut g = m.lock().unwrap();
        while !g.1 && Instant::now() < deadline {
            g = c.wait_timeout(g, Duration::from_millis(50)).unwrap().0;
        }
    }
}

pub struct Berth {
    args: Vec<String>,
    env: Vec<(String, String)>,
    remove_env: Vec<String>,
    pid1: bool,
    stdout_null: bool,
    /// (content, path) bind-mounted over a file inside the namespace.
    binds: Vec<(PathBuf, String)>,
    /// Shell run inside the namespace before berth starts (mounts).
    setup: Vec<String>,
}

pub struct Running {
    child: Guarded,
    pub pid1: bool,
    pub stdout: Lines,
    pub stderr: Lines,
    started: Instant,
    /// The directories of `Berth::file`'s contents, removed with the run.
    temp_dirs: Vec<PathBuf>,
}

/// A test that fails halfway must not leave its berth running: the
/// `Guarded` child kills it; the bound files' directories go here.
impl Drop for Running {
    fn drop(&mut self) {
        for d in &self.temp_dirs {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// A child the test started, killed with everything under it when the
/// guard is dropped: at the end of a test, or while a failed assertion
/// unwinds. Every process a test starts is held by one (`spawn_guarded`),
/// so no berth, app or peer of the suite outlives it.
pub struct Guarded(Child);

impl std::ops::Deref for Guarded {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Guarded {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            // Descendants first, deepest last found: killing `unshare` alone
            // would leave its child, berth as PID 1 of the namespace, running
            // (reparented to the host's init); killing that PID 1 ends
            // everything in the namespace, and a plain subreaper berth's
            // app is killed by name here too.
            for pid in descendants_of(self.0.id() as i32) {
                // SAFETY: kill with integers.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

/// `Command::spawn`, held by a [`Guarded`].
pub trait SpawnGuarded {
    fn spawn_guarded(&mut self) -> std::io::Result<Guarded>;
}

impl SpawnGuarded for Command {
    fn spawn_guarded(&mut self) -> std::io::Result<Guarded> {
        use std::os::unix::process::CommandExt;
        // Drop does not run when the test binary itself is killed (a
        // SIGTERM from CI's timeout, a SIGKILL): the kernel then kills the
        // child when the test's thread dies, and `unshare --kill-child`
        // takes berth, and with it the namespace, along.
        // SAFETY: prctl with integers only, async-signal-safe.
        unsafe {
            self.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        self.spawn().map(Guarded)
    }
}

#[derive(Debug)]
pub struct Done {
    pub code: i32,
    pub stdout: Vec<String>,
    pub stderr: Vec<String>,
    pub elapsed: Duration,
}

impl Done {
    /// stdout lines parsed as JSON (panics on a line that is not JSON).
    pub fn json(&self) -> Vec<serde_json::Value> {
        self.stdout
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}")))
            .collect()
    }

    /// The `msg` of every app line on `stream`.
    pub fn msgs(&self, stream: &str) -> Vec<String> {
        self.json()
            .into_iter()
            .filter(|v| v["stream"] == stream)
            .map(|v| v["msg"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// berth's own event named `event`.
    pub fn event(&self, event: &str) -> serde_json::Value {
        self.json()
            .into_iter()
            .find(|v| v["stream"] == "berth" && v["event"] == event)
            .unwrap_or_else(|| panic!("no {event} event in {:#?}", self.stdout))
    }

    pub fn stderr_text(&self) -> String {
        self.stderr.join("\n")
    }
}

impl Default for Berth {
    fn default() -> Self {
        Self::new()
    }
}

impl Berth {
    pub fn new() -> Berth {
        Berth {
            args: Vec::new(),
            env: Vec::new(),
            remove_env: Vec::new(),
            pid1: true,
            stdout_null: false,
            binds: Vec::new(),
            setup: Vec::new(),
        }
    }

    /// Runs `snippet` (sh) inside berth's namespaces before berth starts.
    pub fn setup(mut self, snippet: &str) -> Self {
        assert!(self.pid1, "setup() needs the namespace of PID 1 mode");
        self.setup.push(snippet.to_string());
        self
    }

    /// Replaces `path` (e.g. /etc/passwd) with `content` inside berth's
    /// mount namespace (PID 1 mode only): a bind mount, then exec berth.
    pub fn file(mut self, path: &str, content: &[u8]) -> Self {
        assert!(self.pid1, "file() needs the namespace of PID 1 mode");
        let dir = std::env::temp_dir().join(format!(
            "berth-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("file");
        std::fs::write(&f, content).unwrap();
        self.binds.push((f, path.to_string()));
        self
    }

    /// Run berth as an ordinary process (subreaper), not PID 1.
    pub fn not_pid1(mut self) -> Self {
        self.pid1 = false;
        self
    }

    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.args.push(a.into());
        self
    }

    pub fn args<S: Into<String>>(mut self, a: impl IntoIterator<Item = S>) -> Self {
        self.args.extend(a.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    pub fn env_remove(mut self, k: &str) -> Self {
        self.remove_env.push(k.into());
        self
    }

    pub fn stdout_null(mut self) -> Self {
        self.stdout_null = true;
        self
    }

    /// `-- <example app> args...`
    pub fn app(self, name: &str, args: &[&str]) -> Self {
        let p = example(name).display().to_string();
        self.arg("--").arg(p).args(args.iter().copied())
    }

    /// `-- COMMAND args...` for a command on PATH.
    pub fn cmd(self, cmd: &str, args: &[&str]) -> Self {
        self.arg("--").arg(cmd).args(args.iter().copied())
    }

    pub fn command(&self) -> Command {
        let mut c = if self.pid1 && !(self.binds.is_empty() && self.setup.is_empty()) {
            let mut script = String::new();
            for (i, (_, dst)) in self.binds.iter().enumerate() {
                script.push_str(&format!("mount --bind \"$B{i}\" '{dst}' || exit 99; "));
            }
            for snippet in &self.setup {
                script.push_str(&format!("{snippet} || exit 98; "));
            }
            script.push_str("exec \"$@\"");
            let mut c = sh_in_pid_namespace(&script);
            c.arg("sh").arg(berth_bin());
            for (i, (src, _)) in self.binds.iter().enumerate() {
                c.env(format!("B{i}"), src);
            }
            c
        } else if self.pid1 {
            let mut c = in_pid_namespace();
            c.arg(berth_bin());
            c
        } else {
            Command::new(berth_bin())
        };
        c.args(&self.args);
        for k in &self.remove_env {
            c.env_remove(k);
        }
        // The test runner's own BERTH_* would be typos to berth.
        for (k, _) in std::env::vars() {
            if k.starts_with("BERTH_") {
                c.env_remove(k);
            }
        }
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c.stdin(Stdio::null());
        c.stdout(if self.stdout_null {
            Stdio::null()
        } else {
            Stdio::piped()
        });
        c.stderr(Stdio::piped());
        c
    }

    pub fn spawn(self) -> Running {
        let mut child = self
            .command()
            .spawn_guarded()
            .expect("spawn berth (is unshare installed?)");
        let stdout = Lines::default();
        let stderr = Lines::default();
        if let Some(o) = child.stdout.take() {
            stdout.clone().collect(o);
        }
        stderr.clone().collect(child.stderr.take().unwrap());
        Running {
            child,
            pid1: self.pid1,
            stdout,
            stderr,
            started: Instant::now(),
            temp_dirs: self
                .binds
                .iter()
                .filter_map(|(f, _)| f.parent().map(PathBuf::from))
                .collect(),
        }
    }

    /// Runs to the end.
    pub fn run(self) -> Done {
        self.spawn().wait()
    }
}

impl Running {
    /// berth's pid as seen from the test (the child of unshare as PID 1).
    pub fn berth_pid(&self) -> i32 {
        let outer = self.child.id() as i32;
        if !self.pid1 {
            return outer;
        }
        let deadline = Instant::now() + LONG;
        loop {
            if let Some(p) = children_of(outer).first() {
                return *p;
            }
            assert!(
                Instant::now() < deadline,
                "unshare started no child: cannot get a PID namespace"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn signal(&self, sig: i32) {
        let pid = self.berth_pid();
        // SAFETY: kill with integers.
        let rc = unsafe { libc::kill(pid, sig) };
        assert_eq!(rc, 0, "kill({pid}, {sig})");
    }

    /// Runs a command inside berth's PID and mount namespaces (as a process
    /// of berth's container would: `docker exec`).
    pub fn exec_in(&self, args: &[&str]) -> std::process::Output {
        let pid = self.berth_pid().to_string();
        let mut c = Command::new("nsenter");
        c.args(["-t", &pid, "-p", "-m", "--"]).args(args);
        for (k, _) in std::env::vars() {
            if k.starts_with("BERTH_") {
                c.env_remove(k);
            }
        }
        c.output().expect("nsenter")
    }

    /// Waits for a stdout line containing `needle`.
    pub fn wait_for(&self, needle: &str) -> String {
        self.stdout.wait_for(needle, |l| l.contains(needle))
    }

    pub fn wait(mut self) -> Done {
        let deadline = Instant::now() + LONG * 3;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "berth did not exit in time; stdout:\n{}\nstderr:\n{}",
                    self.stdout.snapshot().join("\n"),
                    self.stderr.snapshot().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let elapsed = self.started.elapsed();
        let d = Instant::now() + LONG;
        self.stdout.wait_closed(d);
        self.stderr.wait_closed(d);
        Done {
            code: status.code().unwrap_or(-1),
            stdout: self.stdout.snapshot(),
            stderr: self.stderr.snapshot(),
            elapsed,
        }
    }
}

/// A free loopback TCP port (bound then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One raw HTTP GET on loopback; returns the status code.
pub fn http_get(port: u16, path: &str) -> u16 {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    buf.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// One HTTP GET with `Host: host`; the whole response, head and body.
pub fn http_response(ip: &str, port: u16, path: &str, host: &str) -> String {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect((ip, port)).unwrap();
    s.set_read_timeout(Some(LONG)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    buf
}

/// The flags of a fresh PID namespace whose PID 1 is the program that
/// follows, killed with it (`unshare` is the test's child).
pub const PID_NAMESPACE: [&str; 4] = ["--pid", "--fork", "--mount-proc", "--kill-child"];

/// `unshare` with [`PID_NAMESPACE`]: append the program and its arguments.
pub fn in_pid_namespace() -> Command {
    let mut c = Command::new("unshare");
    c.args(PID_NAMESPACE);
    c
}

/// `unshare` with [`PID_NAMESPACE`] running `sh -c script`; more arguments
/// become `$0`, `$1`, …
pub fn sh_in_pid_namespace(script: &str) -> Command {
    let mut c = in_pid_namespace();
    c.args(["sh", "-c", script]);
    c
}

/// The first line a reader gives (a child's "ready" or "listening" line).
pub fn first_line(r: impl std::io::Read) -> String {
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(r), &mut line).unwrap();
    line
}

/// The first descendant of `pid` whose command name (comm) is `name`,
/// waiting up to [`LONG`] for it to appear (after its exec).
pub fn descendant_named(pid: i32, name: &str) -> i32 {
    let deadline = Instant::now() + LONG;
    loop {
        let found = descendants_of(pid).into_iter().find(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == name)
        });
        if let Some(p) = found {
            return p;
        }
        assert!(Instant::now() < deadline, "no process {name} under {pid}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Children of `pid` per /proc (any thread's children file).
pub fn children_of(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            if let Ok(s) = std::fs::read_to_string(t.path().join("children")) {
                out.extend(s.split_whitespace().filter_map(|p| p.parse::<i32>().ok()));
            }
        }
    }
    out
}

/// Every descendant of `pid`.
pub fn descendants_of(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let mut frontier = vec![pid];
    while let Some(p) = frontier.pop() {
        for c in children_of(p) {
            out.push(c);
            frontier.push(c);
        }
    }
    out
}

/// The open fds of `pid`, in order: (number, target, the flags line of
/// its fdinfo), for assertions that must name an unexpected fd.
pub fn fds_of(pid: i32) -> Vec<(i32, String, String)> {
    let mut out: Vec<(i32, String, String)> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/fd: {e}"))
        .flatten()
        .filter_map(|e| {
            let fd: i32 = e.file_name().to_str()?.parse().ok()?;
            let target = std::fs::read_link(e.path()).ok()?.display().to_string();
            let info =
                std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")).unwrap_or_default();
            let flags = info
                .lines()
                .find(|l| l.starts_with("flags:"))
                .unwrap_or("")
                .to_string();
            Some((fd, target, flags))
        })
        .collect();
    out.sort();
    out
}

/// `fds_of(pid)` once the process has finished starting: the first listing
/// whose fd numbers are `want`, else, after 10 s, the last one. A process
/// just past execve still runs its dynamic loader and libc start-up, which
/// open ld.so.cache, libc.so.6 and locale files at the lowest free fd and
/// close them again: the fd 4 issue 22 saw in `sleep` under qemu-aarch64
/// (tests/exec_fd_race.py, run beside two busy loops, caught one in about 10%
/// of 2,000 fresh `sleep`s). An fd leaked to the app stays and still fails.
pub fn fds_once_started(pid: i32, want: &[i32]) -> Vec<(i32, String, String)> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let fds = fds_of(pid);
        if fds.iter().map(|f| f.0).eq(want.iter().copied()) || Instant::now() > deadline {
            return fds;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Process state letter (R, S, Z, …) of a host pid.
pub fn state_of(pid: i32) -> Option<char> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &s[s.rfind(')')? + 1..];
    after.trim_start().chars().next()
}
