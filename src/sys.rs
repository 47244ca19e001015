//! Every raw system call berth makes that nix does not wrap safely, and the
//! child side of fork → exec.
//!
//! This is the only module allowed `unsafe` (lib.rs denies it elsewhere).
//! Functions are named after the call they make and decide no policy: what to
//! block, whom to signal and when is decided by signals.rs, shutdown.rs and
//! event.rs.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::unistd::Pid;

/// The signals the kernel sends for berth's own faults. Blocking them would
/// turn a crash into a hang, so they stay unblocked (as catatonit does).
const FAULT_SIGNALS: [Signal; 7] = [
    Signal::SIGSEGV,
    Signal::SIGBUS,
    Signal::SIGFPE,
    Signal::SIGILL,
    Signal::SIGABRT,
    Signal::SIGTRAP,
    Signal::SIGSYS,
];

/// The set berth blocks for its whole life and reads through its signalfd.
pub fn berth_signal_set() -> SigSet {
    let mut set = SigSet::all();
    for sig in FAULT_SIGNALS {
        set.remove(sig);
    }
    set
}

/// Blocks every catchable signal but the fault signals and returns the mask
/// berth inherited (the app gets it back just before exec).
pub fn block_signals() -> SigSet {
    let mut old = SigSet::empty();
    // sigprocmask only fails for an invalid `how`, which is a constant here.
    let _ = nix::sys::signal::sigprocmask(
        SigmaskHow::SIG_SETMASK,
        Some(&berth_signal_set()),
        Some(&mut old),
    );
    old
}

/// Restores a mask saved by `block_signals` (used by `probe` and `status`,
/// which are ordinary short-lived commands).
pub fn restore_mask(mask: &SigSet) {
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(mask), None);
}

/// `getpid()`.
pub fn getpid() -> Pid {
    nix::unistd::getpid()
}

/// `sched_getaffinity(0)`: how many CPUs berth (and so the app) may run
/// on, as the Go runtime counts them; None when the kernel will not say
/// (over 1024 CPUs: a larger set would be needed).
pub fn cpus_allowed() -> Option<u64> {
    // SAFETY: cpu_set_t is a plain bitmask; all-zero is a valid value.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: the kernel writes at most size_of::<cpu_set_t>() bytes into
    // `set`, which lives for the call.
    let rc =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    // SAFETY: CPU_COUNT only reads the bitmask filled above.
    (rc == 0).then(|| unsafe { libc::CPU_COUNT(&set) } as u64)
}

/// `prctl(PR_SET_CHILD_SUBREAPER, 1)`.
pub fn set_child_subreaper() -> nix::Result<()> {
    nix::sys::prctl::set_child_subreaper(true)
}

/// `fcntl(F_SETFD, FD_CLOEXEC)` on every fd from `first` up: close_range(2)
/// with CLOSE_RANGE_CLOEXEC (Linux 5.11), else a walk of /proc/self/fd. Runs
/// in berth before any fork, so the walk may allocate.
pub fn set_cloexec_from(first: RawFd) {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: close_range only changes fd flags; no memory is passed.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            libc::c_uint::MAX,
            CLOSE_RANGE_CLOEXEC,
        )
    };
    if rc == 0 {
        return;
    }
    set_cloexec_from_by_listing(first);
}

/// set_cloexec_from's fallback where close_range(2) is missing (kernels
/// before 5.11, emulators): every open fd listed in /proc/self/fd.
fn set_cloexec_from_by_listing(first: RawFd) {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let fds: Vec<RawFd> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&fd| fd >= first)
        .collect();
    for fd in fds {
        // SAFETY: F_SETFD on an fd number we do not own only sets a flag; a
        // stale number (the directory's own fd) fails with EBADF, ignored.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
}

/// Clears FD_CLOEXEC on `fd` (fds handed to the app on purpose).
pub fn clear_cloexec(fd: RawFd) {
    // SAFETY: only changes the flag of an fd number; EBADF is harmless.
    unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
}

/// `fcntl(F_GETFD)` succeeds: the fd is open.
pub fn fd_is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD reads a flag and touches no memory.
    unsafe { libc::fcntl(fd, libc::F_GETFD) != -1 }
}

/// `pipe2(O_CLOEXEC)`, both ends moved to fd numbers ≥ `min_fd` so they never
/// land on a number that `--preserve-fds` or LISTEN_FDS hands to the app.
pub fn pipe_above(min_fd: RawFd) -> nix::Result<(OwnedFd, OwnedFd)> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    Ok((move_above(r, min_fd)?, move_above(w, min_fd)?))
}

/// Asks the kernel for a pipe buffer of at least `bytes` (rounded up to a
/// power-of-two number of pages) on either end of a pipe or FIFO; returns
/// the size it now has. Fails with EPERM above `/proc/sys/fs/pipe-max-size`
/// or the user's pipe quota for a process without CAP_SYS_RESOURCE, EBUSY
/// when the pipe holds more than the new size, EBADF/EINVAL when it is not
/// a pipe: callers keep the size it had.
pub fn set_pipe_size(fd: RawFd, bytes: usize) -> nix::Result<usize> {
    let want = libc::c_int::try_from(bytes).map_err(|_| Errno::EINVAL)?;
    let got = nix::fcntl::fcntl(borrow_fd(fd), nix::fcntl::FcntlArg::F_SETPIPE_SZ(want))?;
    Ok(got as usize)
}

/// The pipe's buffer size in bytes.
pub fn pipe_size(fd: RawFd) -> nix::Result<usize> {
    let got = nix::fcntl::fcntl(borrow_fd(fd), nix::fcntl::FcntlArg::F_GETPIPE_SZ)?;
    Ok(got as usize)
}

/// Re-numbers `fd` to ≥ `min_fd` (close-on-exec) when it is below.
pub fn move_above(fd: OwnedFd, min_fd: RawFd) -> nix::Result<OwnedFd> {
    if fd.as_raw_fd() >= min_fd {
        return Ok(fd);
    }
    // SAFETY: F_DUPFD_CLOEXEC returns a new fd that nobody else owns.
    let new = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, min_fd) };
    if new < 0 {
        return Err(Errno::last());
    }
    // SAFETY: `new` is a fresh fd returned above and owned by no one else.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// Sets or clears O_NONBLOCK on `fd`, returning the previous flags.
pub fn set_nonblocking(fd: RawFd, on: bool) -> nix::Result<libc::c_int> {
    // SAFETY: F_GETFL/F_SETFL only read and set file status flags.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 {
            return Err(Errno::last());
        }
        let new = if on {
            flags | libc::O_NONBLOCK
        } else {
            flags & !libc::O_NONBLOCK
        };
        if new != flags && libc::fcntl(fd, libc::F_SETFL, new) < 0 {
            return Err(Errno::last());
        }
        Ok(flags)
    }
}

/// What kind of file an fd is, for choosing how to write to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FdKind {
    /// A pipe, FIFO or socket: may block, can be polled.
    Pollable,
    /// A terminal, regular file or anything else: written directly.
    Direct,
    Closed,
}

/// `fstat` → the kind of `fd`.
pub fn fd_kind(fd: RawFd) -> FdKind {
    // SAFETY: fstat writes into the zeroed stat buffer we own.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a valid, writable stat buffer.
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return FdKind::Closed;
    }
    match st.st_mode & libc::S_IFMT {
        libc::S_IFIFO | libc::S_IFSOCK => FdKind::Pollable,
        _ => FdKind::Direct,
    }
}

/// Borrows an fd that berth holds open for its whole life (0, 1, 2, or
/// one it owns and keeps until exit).
pub fn borrow_fd(fd: RawFd) -> std::os::fd::BorrowedFd<'static> {
    // SAFETY: callers pass only fds that stay open while berth runs; the
    // borrow is used for a single poll/epoll call.
    unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }
}

/// `isatty(fd)`.
pub fn isatty(fd: RawFd) -> bool {
    // SAFETY: isatty only inspects the fd.
    unsafe { libc::isatty(fd) == 1 }
}

/// `getpgid(pid)`.
pub fn getpgid(pid: Pid) -> Option<Pid> {
    nix::unistd::getpgid(Some(pid)).ok()
}

/// `write(2)` of raw bytes; EINTR retried by the caller's loop.
pub fn write(fd: RawFd, buf: &[u8]) -> Result<usize, Errno> {
    // SAFETY: `buf` is a valid slice for its length.
    let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
    if n < 0 {
        Err(Errno::last())
    } else {
        Ok(n as usize)
    }
}

/// `read(2)` into `buf`.
pub fn read(fd: RawFd, buf: &mut [u8]) -> Result<usize, Errno> {
    // SAFETY: `buf` is a valid, writable slice for its length.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        Err(Errno::last())
    } else {
        Ok(n as usize)
    }
}

/// `setrlimit` for berth itself (not the app).
pub fn prlimit_self(resource: i32, soft: u64, hard: u64) -> Result<(), Errno> {
    let lim = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: `lim` is a valid rlimit; the resource number is checked by the kernel.
    if unsafe { libc::setrlimit(resource as _, &lim) } != 0 {
        return Err(Errno::last());
    }
    Ok(())
}

/// Drops berth's own root for good: bounding set emptied (while it still has
/// CAP_SETPCAP), groups, gid, uid, then not dumpable, so the app — same uid —
/// cannot ptrace berth or read its memory. Changing all uids to non-zero
/// clears the permitted, effective and ambient capability sets (capabilities(7)).
pub fn drop_own_privileges(
    uid: u32,
    gid: u32,
    groups: &[u32],
) -> Result<(), (&'static str, Errno)> {
    for cap in 0..64 {
        // SAFETY: PR_CAPBSET_DROP takes an integer; EINVAL past the last cap ends the loop.
        let rc = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
        if rc != 0 && Errno::last() == Errno::EINVAL {
            break;
        }
    }
    // SAFETY: `groups` is a valid slice of gid_t (u32) for its length.
    if unsafe { libc::setgroups(groups.len(), groups.as_ptr()) } != 0 {
        return Err(("setgroups", Errno::last()));
    }
    // SAFETY: plain id-changing calls with integer arguments.
    if unsafe { libc::setresgid(gid, gid, gid) } != 0 {
        return Err(("setresgid", Errno::last()));
    }
    // SAFETY: as above.
    if unsafe { libc::setresuid(uid, uid, uid) } != 0 {
        return Err(("setresuid", Errno::last()));
    }
    // SAFETY: PR_SET_DUMPABLE takes an integer.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    Ok(())
}

/// The steps of the child between fork and exec, as reported over the
/// exec-error pipe when one fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum ChildStep {
    Setpgid = 1,
    Dup2 = 2,
    Setrlimit = 3,
    Setgroups = 4,
    Setgid = 5,
    Setuid = 6,
    NoNewPrivs = 7,
    Exec = 8,
}

impl ChildStep {
    fn from_u32(v: u32) -> Option<ChildStep> {
        use ChildStep::*;
        [
            Setpgid, Dup2, Setrlimit, Setgroups, Setgid, Setuid, NoNewPrivs, Exec,
        ]
        .into_iter()
        .find(|s| *s as u32 == v)
    }

    pub fn name(self) -> &'static str {
        match self {
            ChildStep::Setpgid => "setpgid",
            ChildStep::Dup2 => "dup2",
            ChildStep::Setrlimit => "setrlimit",
            ChildStep::Setgroups => "setgroups",
            ChildStep::Setgid => "setgid",
            ChildStep::Setuid => "setuid",
            ChildStep::NoNewPrivs => "prctl(PR_SET_NO_NEW_PRIVS)",
            ChildStep::Exec => "execve",
        }
    }
}

/// Everything the child needs, built before fork: after fork the child may
/// only make async-signal-safe calls (signal-safety(7)), so nothing here is
/// allocated, formatted or dropped on the child's side.
pub struct ExecRequest {
    /// Paths to try in order (PATH lookup done before fork, execvp-style).
    pub candidates: Vec<CString>,
    pub argv: Vec<CString>,
    /// `KEY=VALUE` entries.
    pub envp: Vec<CString>,
    /// When set, a `LISTEN_PID=` entry is added whose digits the child writes
    /// between fork and exec (its pid is unknown before fork).
    pub set_listen_pid: bool,
    /// (resource, soft, hard)
    pub rlimits: Vec<(i32, u64, u64)>,
    /// (uid, gid, supplementary groups) to switch to.
    pub identity: Option<(u32, u32, Vec<u32>)>,
    pub no_new_privs: bool,
    /// Write ends of the log pipes, dup2'ed onto 1 and 2.
    pub stdout: Option<RawFd>,
    pub stderr: Option<RawFd>,
    /// Make the app's group the terminal's foreground group (stdin is a tty).
    pub take_terminal: bool,
    /// The mask berth inherited, restored just before exec.
    pub mask: SigSet,
}

/// Why the child could not exec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChildFailure {
    pub step: ChildStep,
    pub errno: Errno,
}

/// clone → (child: the steps below → execve) → parent: the child's error
/// record on a close-on-exec pipe, or nothing when the exec worked.
///
/// Child order, and why:
/// setpgid (own group, before anything can signal it as a group) →
/// tcsetpgrp (in the child, as tini does, so no race with the parent; SIGTTOU
/// is still blocked so a background group may take the terminal) →
/// dup2 log pipes → rlimits (while still privileged, so hard limits may rise) →
/// setgroups → setgid → setuid (groups need root, so before the uid changes) →
/// no_new_privs → SIGPIPE back to default (Rust ignores it before main and an
/// ignored disposition survives exec) → the inherited mask → LISTEN_PID → execve.
pub fn spawn(req: &ExecRequest) -> Result<Pid, ChildFailure> {
    let (err_r, err_w) = match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
        Ok(p) => p,
        Err(e) => {
            return Err(ChildFailure {
                step: ChildStep::Exec,
                errno: e,
            })
        }
    };
    // Pointer arrays are built before fork: the child must not allocate.
    let argv_ptrs: Vec<*const libc::c_char> = req
        .argv
        .iter()
        .map(|a| a.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    // "LISTEN_PID=" + room for any pid + NUL, owned here so the child may
    // write into its copy.
    let mut listen_pid_entry = b"LISTEN_PID=".to_vec();
    listen_pid_entry.resize(listen_pid_entry.len() + LISTEN_PID_WIDTH + 1, 0);
    let listen_pid_ptr: Option<*mut u8> =
        req.set_listen_pid.then_some(listen_pid_entry.as_mut_ptr());
    let envp_ptrs: Vec<*const libc::c_char> = req
        .envp
        .iter()
        .map(|a| a.as_ptr())
        .chain(listen_pid_ptr.map(|p| p as *const libc::c_char))
        .chain(std::iter::once(std::ptr::null()))
        .collect();

    // clone(CLONE_VM | CLONE_VFORK), as posix_spawn does: the child borrows
    // berth's memory on its own stack and berth waits until it has exec'd or
    // exited. A fork would copy berth's page tables only for the exec to
    // throw them away, and berth's own writes meanwhile would copy pages: the
    // difference is most of berth's start-up overhead (docs/benchmarks.md).
    let args = ChildArgs {
        req,
        argv: &argv_ptrs,
        envp: &envp_ptrs,
        listen_pid: listen_pid_ptr,
        err_fd: err_w.as_raw_fd(),
    };
    let mut stack: Vec<u8> = Vec::with_capacity(CHILD_STACK);
    // SAFETY: the stack grows down from the top of a CHILD_STACK-byte buffer
    // that outlives the child's use of it (CLONE_VFORK: clone returns only
    // once the child has exec'd or exited); args likewise. berth is
    // single-threaded, so no lock the child needs can be held; child_exec
    // only makes async-signal-safe calls and writes to berth's memory only
    // errno and the LISTEN_PID entry made for it.
    let pid = unsafe {
        let top = (stack.as_mut_ptr().add(CHILD_STACK) as usize) & !15;
        libc::clone(
            child_entry,
            top as *mut libc::c_void,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            &args as *const ChildArgs as *mut libc::c_void,
        )
    };
    drop(stack);
    if pid < 0 {
        return Err(ChildFailure {
            step: ChildStep::Exec,
            errno: Errno::last(),
        });
    }
    drop(err_w);
    let child = Pid::from_raw(pid);
    // No setpgid from here: with CLONE_VFORK the child has made its group
    // (or failed and said so) before clone returned.
    let mut rec = [0u8; 8];
    let mut got = 0;
    while got < rec.len() {
        match read(err_r.as_raw_fd(), &mut rec[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(Errno::EINTR) => continue,
            Err(_) => break,
        }
    }
    if got == rec.len() {
        let step = u32::from_ne_bytes([rec[0], rec[1], rec[2], rec[3]]);
        let errno = i32::from_ne_bytes([rec[4], rec[5], rec[6], rec[7]]);
        // The child has _exit'ed; reaping it is left to the caller's reaper,
        // which collects every child anyway.
        return Err(ChildFailure {
            step: ChildStep::from_u32(step).unwrap_or(ChildStep::Exec),
            errno: Errno::from_raw(errno),
        });
    }
    Ok(child)
}

/// The child's stack: child_exec and the libc calls it makes need well
/// under a page.
const CHILD_STACK: usize = 64 * 1024;

/// What `spawn` lends the child.
struct ChildArgs<'a> {
    req: &'a ExecRequest,
    argv: &'a [*const libc::c_char],
    envp: &'a [*const libc::c_char],
    listen_pid: Option<*mut u8>,
    err_fd: RawFd,
}

/// The child's entry point from clone(2).
extern "C" fn child_entry(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: arg is the &ChildArgs spawn passed to clone, alive until this
    // child execs or exits (CLONE_VFORK); child_exec's contract holds: we are
    // the new child, before exec.
    unsafe {
        let a = &*(arg as *const ChildArgs);
        child_exec(a.req, a.argv, a.envp, a.listen_pid, a.err_fd)
    }
}

/// The child between clone and exec. Never returns.
///
/// # Safety
/// Must only be called in the new child of spawn's clone, which shares
/// berth's memory: only async-signal-safe calls; no allocation, no locks,
/// no panics, no writes to berth's memory but errno and `listen_pid`.
unsafe fn child_exec(
    req: &ExecRequest,
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char],
    listen_pid: Option<*mut u8>,
    err_fd: RawFd,
) -> ! {
    let fail = |step: ChildStep| -> ! {
        let errno = Errno::last_raw();
        let mut rec = [0u8; 8];
        rec[..4].copy_from_slice(&(step as u32).to_ne_bytes());
        rec[4..].copy_from_slice(&errno.to_ne_bytes());
        libc::write(err_fd, rec.as_ptr().cast(), rec.len());
        libc::_exit(127)
    };

    if libc::setpgid(0, 0) != 0 {
        fail(ChildStep::Setpgid);
    }
    if req.take_terminal {
        // ENOTTY/ENXIO/EBADF/EPERM mean no usable controlling terminal (stdin
        // is a tty of another session): harmless, the app just runs without it.
        libc::tcsetpgrp(0, libc::getpid());
    }
    for (fd, target) in [(req.stdout, 1), (req.stderr, 2)] {
        if let Some(fd) = fd {
            if libc::dup2(fd, target) < 0 {
                fail(ChildStep::Dup2);
            }
        }
    }
    for &(resource, soft, hard) in &req.rlimits {
        let lim = libc::rlimit {
            rlim_cur: soft,
            rlim_max: hard,
        };
        if libc::setrlimit(resource as _, &lim) != 0 {
            fail(ChildStep::Setrlimit);
        }
    }
    if let Some((uid, gid, groups)) = &req.identity {
        if libc::setgroups(groups.len(), groups.as_ptr()) != 0 {
            fail(ChildStep::Setgroups);
        }
        if libc::setresgid(*gid, *gid, *gid) != 0 {
            fail(ChildStep::Setgid);
        }
        if libc::setresuid(*uid, *uid, *uid) != 0 {
            fail(ChildStep::Setuid);
        }
    }
    if req.no_new_privs && libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
        fail(ChildStep::NoNewPrivs);
    }
    libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    libc::pthread_sigmask(libc::SIG_SETMASK, req.mask.as_ref(), std::ptr::null_mut());
    if let Some(p) = listen_pid {
        write_pid_in_place(p, libc::getpid());
    }

    // execvp semantics: ENOENT/ENOTDIR go on to the next PATH entry; EACCES
    // is remembered (a later hit still wins); anything else stops the search.
    let mut saw_eacces = false;
    for path in &req.candidates {
        libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr());
        match Errno::last() {
            Errno::ENOENT | Errno::ENOTDIR => continue,
            Errno::EACCES => saw_eacces = true,
            _ => fail(ChildStep::Exec),
        }
    }
    if saw_eacces {
        Errno::set_raw(libc::EACCES);
    } else {
        Errno::set_raw(libc::ENOENT);
    }
    fail(ChildStep::Exec)
}

/// Writes `pid` in decimal over the spaces after `LISTEN_PID=` (the entry was
/// allocated before fork with room for any pid). No allocation.
///
/// # Safety
/// `entry` points to `LISTEN_PID=` followed by ≥ 11 writable bytes.
unsafe fn write_pid_in_place(entry: *mut u8, pid: libc::pid_t) {
    let digits_at = entry.add("LISTEN_PID=".len());
    let mut buf = [0u8; 10];
    let mut n = pid as u32;
    let mut len = 0;
    loop {
        buf[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for i in 0..len {
        *digits_at.add(i) = buf[len - 1 - i];
    }
    *digits_at.add(len) = 0;
}

/// Forks a helper child (a health probe) that runs `job` and `_exit`s with
/// its result, never returning into berth's own code paths.
pub fn fork_job(job: impl FnOnce() -> i32) -> Result<Pid, Errno> {
    // SAFETY: berth is single-threaded, so the child may allocate and use
    // std freely (no lock can be held by another thread); it leaves only
    // through _exit, skipping atexit handlers and stdio buffers it shares
    // with berth.
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => Err(Errno::last()),
        0 => {
            let code = job();
            // SAFETY: _exit is always safe to call and does not return.
            unsafe { libc::_exit(code) }
        }
        p => Ok(Pid::from_raw(p)),
    }
}

/// Width reserved after `LISTEN_PID=` for the child's pid.
pub const LISTEN_PID_WIDTH: usize = 10;

/// `pidfd`-free, allocation-free kill of a raw pid or group (negative).
pub fn kill_raw(pid: i32, sig: i32) -> Result<(), Errno> {
    // SAFETY: kill takes integers only.
    if unsafe { libc::kill(pid, sig) } != 0 {
        return Err(Errno::last());
    }
    Ok(())
}

/// Reads the fields of one signalfd record berth uses.
pub struct SigInfo {
    pub signo: i32,
    pub sender_pid: u32,
}

/// A non-blocking signalfd for berth's blocked set.
pub struct SignalFd(OwnedFd);

impl SignalFd {
    pub fn new(set: &SigSet) -> nix::Result<SignalFd> {
        // SAFETY: `set` is a valid sigset; the returned fd is fresh and ours.
        let fd =
            unsafe { libc::signalfd(-1, set.as_ref(), libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) };
        if fd < 0 {
            return Err(Errno::last());
        }
        // SAFETY: `fd` was just created and is owned by nobody else.
        Ok(SignalFd(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    pub fn fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }

    /// Reads up to `out.len()` pending signals; 0 when none are pending.
    pub fn read_batch(&self, out: &mut Vec<SigInfo>) {
        const REC: usize = std::mem::size_of::<libc::signalfd_siginfo>();
        let mut buf = [0u8; REC * 16];
        loop {
            match read(self.fd(), &mut buf) {
                Ok(n) if n >= REC => {
                    for rec in buf[..n].chunks_exact(REC) {
                        // SAFETY: the kernel wrote whole signalfd_siginfo
                        // records; read_unaligned copes with the byte buffer.
                        let info: libc::signalfd_siginfo =
                            unsafe { std::ptr::read_unaligned(rec.as_ptr().cast()) };
                        out.push(SigInfo {
                            signo: info.ssi_signo as i32,
                            sender_pid: info.ssi_pid,
                        });
                    }
                    if n < buf.len() {
                        return;
                    }
                }
                Err(Errno::EINTR) => continue,
                _ => return,
            }
        }
    }
}

/// `out.extend_from_slice(src)` for the short copies of the JSON hot path
/// (a line's head, body and tail: 3 to about 200 bytes). musl's `memcpy`
/// aligns byte by byte and then runs `rep movsq`, whose start-up cost
/// dominates at this size: it was 38% of berth's CPU in json mode (perf),
/// and after the long copies went here, the 3-byte tail and the timestamp
/// were still 16% (perf, issue 19). Long copies still go to `memcpy`,
/// which is fast once started.
#[inline]
pub fn append_short(out: &mut Vec<u8>, src: &[u8]) {
    let n = src.len();
    if n > 512 {
        out.extend_from_slice(src);
        return;
    }
    out.reserve(n);
    let len = out.len();
    // SAFETY: after `reserve(n)` the buffer has room for `len + n` bytes;
    // `copy_short` writes exactly `n` bytes there, all before `set_len`
    // makes them part of the Vec.
    unsafe {
        copy_short(src.as_ptr(), out.as_mut_ptr().add(len), n);
        out.set_len(len + n);
    }
}

/// `dst.copy_from_slice(src)` for short slices (the timestamp a prebuilt
/// line head gets), without a `memcpy` call.
#[inline]
pub fn overwrite_short(dst: &mut [u8], src: &[u8]) {
    assert!(dst.len() == src.len());
    if src.len() > 512 {
        dst.copy_from_slice(src);
        return;
    }
    // SAFETY: both slices are valid for `src.len()` bytes (asserted equal)
    // and cannot overlap (one is borrowed mutably).
    unsafe { copy_short(src.as_ptr(), dst.as_mut_ptr(), src.len()) }
}

/// Copies `n` bytes with overlapping wide moves instead of byte loops
/// (which the compiler would turn back into a `memcpy` call): 16-byte SSE2
/// moves from 16 bytes up (x86_64), two 8- or 4-byte moves below, and
/// first/middle/last byte stores for 1 to 3.
///
/// # Safety
/// `from` must be readable and `to` writable for `n` bytes; the ranges must
/// not overlap.
#[inline(always)]
unsafe fn copy_short(from: *const u8, to: *mut u8, n: usize) {
    use std::ptr::{read_unaligned as rd, write_unaligned as wr};
    // SAFETY (for every move below): each reads and writes only inside
    // `0..n` of its range: offsets i with i + W <= n, and n - W with W <= n.
    unsafe {
        #[cfg(target_arch = "x86_64")]
        if n >= 16 {
            use std::arch::x86_64::{__m128i, _mm_loadu_si128, _mm_storeu_si128};
            // SSE2 is part of x86_64's baseline; the unaligned forms need
            // no alignment.
            let mut i = 0;
            while i + 16 <= n {
                let v = _mm_loadu_si128(from.add(i).cast::<__m128i>());
                _mm_storeu_si128(to.add(i).cast::<__m128i>(), v);
                i += 16;
            }
            if i < n {
                let v = _mm_loadu_si128(from.add(n - 16).cast::<__m128i>());
                _mm_storeu_si128(to.add(n - 16).cast::<__m128i>(), v);
            }
            return;
        }
        if n >= 8 {
            let mut i = 0;
            while i + 8 <= n {
                wr(to.add(i).cast::<u64>(), rd(from.add(i).cast::<u64>()));
                i += 8;
            }
            if i < n {
                wr(
                    to.add(n - 8).cast::<u64>(),
                    rd(from.add(n - 8).cast::<u64>()),
                );
            }
        } else if n >= 4 {
            wr(to.cast::<u32>(), rd(from.cast::<u32>()));
            wr(
                to.add(n - 4).cast::<u32>(),
                rd(from.add(n - 4).cast::<u32>()),
            );
        } else if n > 0 {
            *to = *from;
            *to.add(n / 2) = *from.add(n / 2);
            *to.add(n - 1) = *from.add(n - 1);
        }
    }
}

/// True when every byte is printable ASCII other than `"` and `\`, so the
/// bytes are their own JSON string body: the question logs/json.rs asks of
/// every app line before copying it whole. SSE2, 16 bytes per step: the
/// scan was a fifth of berth's CPU per log line in json mode (perf).
#[cfg(target_arch = "x86_64")]
pub fn is_json_plain_ascii(bytes: &[u8]) -> bool {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_cmplt_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8,
    };
    let n = bytes.len();
    if n < 16 {
        return bytes
            .iter()
            .all(|&b| (0x20..0x80).contains(&b) && b != b'"' && b != b'\\');
    }
    // SAFETY: SSE2 is part of x86_64's baseline. Every load reads 16 bytes
    // inside `bytes` (offsets i with i + 16 <= n, and n - 16 with n >= 16).
    unsafe {
        let space = _mm_set1_epi8(0x20);
        let quote = _mm_set1_epi8(b'"' as i8);
        let backslash = _mm_set1_epi8(b'\\' as i8);
        // A signed compare: bytes >= 0x80 are negative, so "< 0x20" also
        // catches everything that is not ASCII. A macro, not a closure: at
        // opt-level "z" a closure stays a call per 16 bytes.
        macro_rules! bad {
            ($v:expr) => {{
                let v: __m128i = $v;
                let m = _mm_or_si128(
                    _mm_cmplt_epi8(v, space),
                    _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)),
                );
                _mm_movemask_epi8(m) != 0
            }};
        }
        let p = bytes.as_ptr();
        let mut i = 0;
        while i + 16 <= n {
            if bad!(_mm_loadu_si128(p.add(i).cast::<__m128i>())) {
                return false;
            }
            i += 16;
        }
        i == n || !bad!(_mm_loadu_si128(p.add(n - 16).cast::<__m128i>()))
    }
}

/// The same question without SSE2 (aarch64, i686, ...): eight bytes per
/// step in a u64 (SWAR), so no architecture's build falls back to a byte
/// loop. Each test below is exact for "some byte of the word is ...":
/// `x - 0x20…20 & !x & 0x80…80` for a byte below 0x20 (Hacker's Delight
/// "hasless"), the high bit for a byte >= 0x80, and a zero byte of `x ^ c…c`
/// for a byte equal to c.
#[cfg(not(target_arch = "x86_64"))]
pub fn is_json_plain_ascii(bytes: &[u8]) -> bool {
    is_json_plain_ascii_swar(bytes)
}

/// Compiled on x86_64 too, so its unit test runs on every build machine.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
fn is_json_plain_ascii_swar(bytes: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    fn has_zero_byte(v: u64) -> bool {
        v.wrapping_sub(ONES) & !v & HIGH != 0
    }
    fn bad(x: u64) -> bool {
        x & HIGH != 0
            || x.wrapping_sub(ONES * 0x20) & !x & HIGH != 0
            || has_zero_byte(x ^ (ONES * b'"' as u64))
            || has_zero_byte(x ^ (ONES * b'\\' as u64))
    }
    let mut words = bytes.chunks_exact(8);
    for w in &mut words {
        if bad(u64::from_ne_bytes([
            w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7],
        ])) {
            return false;
        }
    }
    words
        .remainder()
        .iter()
        .all(|&b| (0x20..0x80).contains(&b) && b != b'"' && b != b'\\')
}

/// Appends `head`, the first line of `src` (up to its `\n`, which is not
/// copied) and `tail` to `out`, when that line is JSON-plain (as
/// `is_json_plain_ascii`) and at most `max` bytes long; returns the line's
/// length. None, with `out` unchanged, when `src` holds no `\n` within its
/// first `max + 1` bytes or a byte before it must be escaped: the caller
/// takes the general path. This is the whole encoding of the common log
/// line in one pass over its bytes (issue 26): each 16 bytes are copied as
/// they are checked, and the compare that finds a byte below 0x20 finds the
/// `\n` too, where a `memchr`, a scan and a copy each read the line before.
#[cfg(target_arch = "x86_64")]
pub fn append_plain_line(
    out: &mut Vec<u8>,
    head: &[u8],
    src: &[u8],
    max: usize,
    tail: &[u8],
) -> Option<usize> {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_cmplt_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8, _mm_storeu_si128,
    };
    // Only the bytes where the line's `\n` may be are looked at.
    let span = src.len().min(max.saturating_add(1));
    let need = head.len() + span + tail.len();
    if out.capacity() - out.len() < need {
        out.reserve(need);
    }
    let len = out.len();
    let p = src.as_ptr();
    // SAFETY: `out` has room for `need` bytes past `len`: the line's bytes
    // go to `body + 0..span` (every load reads 16 bytes inside
    // `src[..span]`: offsets i with i + 16 <= span, and span - 16 with
    // span >= 16; every store writes the same offsets of `body`), the head
    // to `len..len + head.len()`, the tail to `body + k..` with k < span.
    // Bytes stored past the line are not made part of the Vec: `set_len`
    // covers only head, line and tail, all written. SSE2 is part of
    // x86_64's baseline; the unaligned forms need no alignment.
    unsafe {
        let base = out.as_mut_ptr().add(len);
        let body = base.add(head.len());
        let space = _mm_set1_epi8(0x20);
        let quote = _mm_set1_epi8(b'"' as i8);
        let backslash = _mm_set1_epi8(b'\\' as i8);
        // The bytes of the 16 at `at` that are below 0x20 (a signed compare:
        // bytes >= 0x80 too), `"` or `\`, as a bit mask; stores them at
        // `body + at` on the way. A macro, not a closure: at opt-level "z"
        // a closure stays a call per 16 bytes.
        macro_rules! special {
            ($at:expr) => {{
                let v = _mm_loadu_si128(p.add($at).cast::<__m128i>());
                _mm_storeu_si128(body.add($at).cast::<__m128i>(), v);
                let m = _mm_or_si128(
                    _mm_cmplt_epi8(v, space),
                    _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)),
                );
                _mm_movemask_epi8(m) as u32
            }};
        }
        let mut i = 0;
        let mut first = None;
        while i + 16 <= span {
            let m = special!(i);
            if m != 0 {
                first = Some(i + m.trailing_zeros() as usize);
                break;
            }
            i += 16;
        }
        if first.is_none() && i < span {
            if span >= 16 {
                // The last 16, overlapping what was checked: those bits off.
                let at = span - 16;
                let m = special!(at) & (u32::MAX << (i - at));
                if m != 0 {
                    first = Some(at + m.trailing_zeros() as usize);
                }
            } else {
                while i < span {
                    let b = *p.add(i);
                    *body.add(i) = b;
                    if (b as i8) < 0x20 || b == b'"' || b == b'\\' {
                        first = Some(i);
                        break;
                    }
                    i += 1;
                }
            }
        }
        let k = first.filter(|&k| *p.add(k) == b'\n')?;
        copy_short(head.as_ptr(), base, head.len());
        copy_short(tail.as_ptr(), body.add(k), tail.len());
        out.set_len(len + head.len() + k + tail.len());
        Some(k)
    }
}

/// The same without SSE2 (aarch64, i686, ...): the `\n` by `memchr`, then
/// the SWAR check and the copies.
#[cfg(not(target_arch = "x86_64"))]
pub use append_plain_line_portable as append_plain_line;

/// Compiled on x86_64 too, so its unit test runs on every build machine.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
pub fn append_plain_line_portable(
    out: &mut Vec<u8>,
    head: &[u8],
    src: &[u8],
    max: usize,
    tail: &[u8],
) -> Option<usize> {
    let span = &src[..src.len().min(max.saturating_add(1))];
    let k = memchr::memchr(b'\n', span)?;
    if !is_json_plain_ascii_swar(&span[..k]) {
        return None;
    }
    out.reserve(head.len() + k + tail.len());
    append_short(out, head);
    append_short(out, &span[..k]);
    append_short(out, tail);
    Some(k)
}

/// sched_yield(2): lets a process just woken on this CPU run first.
pub fn yield_cpu() {
    // SAFETY: no arguments, no memory.
    unsafe { libc::sched_yield() };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cloexec(fd: RawFd) -> bool {
        // SAFETY: F_GETFD reads a flag of an fd this test owns.
        unsafe { libc::fcntl(fd, libc::F_GETFD) & libc::FD_CLOEXEC != 0 }
    }

    /// The path taken where close_range(2) fails (issue 22 asked whether
    /// an emulator takes it): every fd from `first` up ends close-on-exec,
    /// those below keep their flag. Fds far apart, as a leaked one may be.
    #[test]
    fn the_fallback_marks_every_fd_from_first_up_close_on_exec() {
        let (r, w) = nix::unistd::pipe().unwrap(); // without O_CLOEXEC
        let high = move_above(w, 900).unwrap();
        clear_cloexec(r.as_raw_fd());
        clear_cloexec(high.as_raw_fd());
        assert!(!cloexec(r.as_raw_fd()) && !cloexec(high.as_raw_fd()));
        set_cloexec_from_by_listing(r.as_raw_fd() + 1);
        assert!(!cloexec(r.as_raw_fd()), "below `first`: untouched");
        assert!(cloexec(high.as_raw_fd()), "above `first`: close-on-exec");
        set_cloexec_from_by_listing(r.as_raw_fd());
        assert!(cloexec(r.as_raw_fd()));
    }

    #[test]
    fn json_plain_ascii_scan_matches_the_bytewise_rule_for_every_byte_at_every_place() {
        let plain = |b: &[u8]| {
            b.iter()
                .all(|&c| (0x20..0x80).contains(&c) && c != b'"' && c != b'\\')
        };
        let base: Vec<u8> = (0..70u8).map(|i| b'a' + i % 26).collect();
        for len in 0..base.len() {
            assert!(is_json_plain_ascii(&base[..len]), "plain, len {len}");
            for at in 0..len {
                for byte in 0..=255u8 {
                    let mut v = base[..len].to_vec();
                    v[at] = byte;
                    let want = plain(&v);
                    assert_eq!(is_json_plain_ascii(&v), want, "{byte:#x} at {at} of {len}");
                    assert_eq!(
                        is_json_plain_ascii_swar(&v),
                        want,
                        "{byte:#x} at {at} of {len}"
                    );
                }
            }
        }
    }

    #[test]
    fn append_plain_line_takes_exactly_the_plain_lines_for_every_byte_at_every_place() {
        // The rule, bytewise: the first line of `src`, if it ends within
        // `max + 1` bytes and holds no byte JSON must escape.
        let want = |src: &[u8], max: usize| -> Option<usize> {
            let k = src.iter().position(|&b| b == b'\n')?;
            let plain = src[..k]
                .iter()
                .all(|&c| (0x20..0x80).contains(&c) && c != b'"' && c != b'\\');
            (k <= max && plain).then_some(k)
        };
        let (head, tail) = (&b"{\"h\":\""[..], &b"\"}\n"[..]);
        type Append = fn(&mut Vec<u8>, &[u8], &[u8], usize, &[u8]) -> Option<usize>;
        let check = |src: &[u8], max: usize| {
            let fs: [Append; 2] = [append_plain_line, append_plain_line_portable];
            for f in fs {
                let mut out = b"old".to_vec();
                let got = f(&mut out, head, src, max, tail);
                let w = want(src, max);
                assert_eq!(got, w, "{src:?} max {max}");
                let expect = match w {
                    Some(k) => [&b"old"[..], head, &src[..k], tail].concat(),
                    None => b"old".to_vec(),
                };
                assert_eq!(out, expect, "{src:?} max {max}");
            }
        };
        let base: Vec<u8> = (0..70u8).map(|i| b'a' + i % 26).collect();
        for len in 0..base.len() {
            let mut line = base[..len].to_vec();
            line.push(b'\n');
            line.extend_from_slice(b"next line\n");
            for max in [0, len.saturating_sub(1), len, len + 1, 1 << 20] {
                check(&line, max);
                check(&line[..len], max); // no newline at all
            }
            for at in 0..len {
                for byte in 0..=255u8 {
                    let mut v = line.clone();
                    v[at] = byte;
                    check(&v, 1 << 20);
                }
            }
        }
    }

    #[test]
    fn append_short_equals_extend_from_slice_at_every_length() {
        let src: Vec<u8> = (0..700u32).map(|i| (i * 7 + 3) as u8).collect();
        for len in 0..src.len() {
            for prefix in [0usize, 1, 13] {
                let mut fast = vec![9u8; prefix];
                let mut slow = fast.clone();
                append_short(&mut fast, &src[..len]);
                slow.extend_from_slice(&src[..len]);
                assert_eq!(fast, slow, "len {len} after {prefix}");
            }
        }
    }

    #[test]
    fn overwrite_short_writes_exactly_its_range_at_every_length() {
        let src: Vec<u8> = (0..600u32).map(|i| (i * 5 + 1) as u8).collect();
        for len in 0..src.len() {
            let mut dst = vec![0xAAu8; len + 8];
            overwrite_short(&mut dst[4..4 + len], &src[..len]);
            assert_eq!(&dst[..4], &[0xAA; 4], "len {len}: before the range");
            assert_eq!(&dst[4..4 + len], &src[..len], "len {len}");
            assert_eq!(&dst[4 + len..], &[0xAA; 4], "len {len}: after the range");
        }
    }
}

/// Why getaddrinfo found no address (its EAI_* codes, as glibc and musl
/// number them on Linux).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LookupFailure {
    /// EAI_NONAME: NXDOMAIN (in every search domain), or not in /etc/hosts.
    NoName,
    /// EAI_NODATA: the name exists but has no A or AAAA record.
    NoData,
    /// EAI_AGAIN: no answer within resolv.conf's timeout × attempts, or
    /// SERVFAIL.
    Again,
    /// EAI_FAIL: the server refused or answered with something unusable.
    Fail,
    /// Anything else, in the libc's words.
    Other(String),
}

/// getaddrinfo(3) for a TCP service on `name`: the addresses in the libc's
/// order. In the static build this is musl's resolver: /etc/hosts, then
/// DNS as /etc/resolv.conf says (nameservers, search, ndots, timeout,
/// attempts; A and AAAA at once), no NSS. It blocks: callers bound it
/// (health/resolve.rs runs it on a thread of a probe process, never on
/// PID 1's loop).
pub fn getaddrinfo(name: &str) -> Result<Vec<std::net::IpAddr>, LookupFailure> {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    // Not in the libc crate; the same on glibc and musl.
    const EAI_NODATA: libc::c_int = -5;
    let Ok(node) = CString::new(name) else {
        return Err(LookupFailure::NoName);
    };
    // SAFETY: an all-zero addrinfo is the documented "no hints" value;
    // the fields set below are plain integers.
    let mut hints: libc::addrinfo = unsafe { std::mem::zeroed() };
    hints.ai_family = libc::AF_UNSPEC;
    hints.ai_socktype = libc::SOCK_STREAM;
    let mut list: *mut libc::addrinfo = std::ptr::null_mut();
    // SAFETY: node is NUL-terminated, hints lives across the call, and
    // list receives a pointer that is freed below with freeaddrinfo.
    let rc = unsafe { libc::getaddrinfo(node.as_ptr(), std::ptr::null(), &hints, &mut list) };
    match rc {
        0 => {}
        libc::EAI_NONAME => return Err(LookupFailure::NoName),
        EAI_NODATA => return Err(LookupFailure::NoData),
        libc::EAI_AGAIN => return Err(LookupFailure::Again),
        libc::EAI_FAIL => return Err(LookupFailure::Fail),
        _ => {
            // SAFETY: gai_strerror returns a static NUL-terminated string.
            let text = unsafe { std::ffi::CStr::from_ptr(libc::gai_strerror(rc)) };
            return Err(LookupFailure::Other(text.to_string_lossy().into_owned()));
        }
    }
    let mut out: Vec<IpAddr> = Vec::new();
    let mut node = list;
    while !node.is_null() {
        // SAFETY: node is an element of the list getaddrinfo returned,
        // not yet freed; ai_addr points to a sockaddr of ai_family's kind
        // (checked by family and length before the cast).
        let ip = unsafe {
            let ai = &*node;
            node = ai.ai_next;
            let len = ai.ai_addrlen as usize;
            match ai.ai_family {
                libc::AF_INET if len >= std::mem::size_of::<libc::sockaddr_in>() => {
                    let sa = &*(ai.ai_addr as *const libc::sockaddr_in);
                    Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(sa.sin_addr.s_addr))))
                }
                libc::AF_INET6 if len >= std::mem::size_of::<libc::sockaddr_in6>() => {
                    let sa = &*(ai.ai_addr as *const libc::sockaddr_in6);
                    Some(IpAddr::V6(Ipv6Addr::from(sa.sin6_addr.s6_addr)))
                }
                _ => None,
            }
        };
        if let Some(ip) = ip.filter(|ip| !out.contains(ip)) {
            out.push(ip);
        }
    }
    // SAFETY: list came from a successful getaddrinfo and is freed once.
    unsafe { libc::freeaddrinfo(list) };
    Ok(out)
}

/// Runs `job` on a detached thread with a `stack`-byte stack, straight
/// through pthread_create: std::thread's handles, names and result packet
/// cost about 20 KiB of the static binary for a thread nobody joins
/// (health/resolve.rs: a DNS lookup a probe stops waiting for at its
/// deadline). A panic in `job` aborts (berth's release profile).
pub fn run_detached(stack: usize, job: Box<dyn FnOnce() + Send>) -> Result<(), Errno> {
    extern "C" fn trampoline(arg: *mut libc::c_void) -> *mut libc::c_void {
        // SAFETY: arg is the Box leaked below, handed to exactly this thread.
        let job = unsafe { Box::from_raw(arg as *mut Box<dyn FnOnce() + Send>) };
        job();
        std::ptr::null_mut()
    }
    let arg = Box::into_raw(Box::new(job)) as *mut libc::c_void;
    // SAFETY: attr is initialised before use and destroyed after; the
    // thread id is written by pthread_create; on failure the leaked job is
    // taken back and dropped, so it runs nowhere.
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        libc::pthread_attr_init(&mut attr);
        libc::pthread_attr_setstacksize(&mut attr, stack.max(libc::PTHREAD_STACK_MIN));
        let mut tid: libc::pthread_t = std::mem::zeroed();
        let rc = libc::pthread_create(&mut tid, &attr, trampoline, arg);
        libc::pthread_attr_destroy(&mut attr);
        if rc != 0 {
            drop(Box::from_raw(arg as *mut Box<dyn FnOnce() + Send>));
            return Err(Errno::from_raw(rc));
        }
        libc::pthread_detach(tid);
    }
    Ok(())
}
