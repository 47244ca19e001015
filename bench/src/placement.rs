//! Where the log figure's processes run (issue 26).
//!
//! On this 2-core VM a pipeline's samples fell in two groups about 3×
//! apart, by where the scheduler happened to place its processes: every
//! wake-up that crosses CPUs is an IPI, tens of µs in a VM, and a blocking
//! reader on the other CPU is woken for every pipe's worth. The log figure
//! therefore fixes the placement, the same for every row: the pipeline (the
//! app and the init or copier in front of it, every process it forks) on
//! one CPU, and the driver's reader alone on another, where it never sleeps:
//! it polls its non-blocking pipe, so no write has a sleeping reader to
//! wake across CPUs (a writer that fills the driver's pipe still waits for
//! the reader's drain: that pipe is every row's ceiling). What a row then
//! measures is what its pipeline costs on the one CPU it has, which is the
//! question the figure asks.

use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::Command;

use crate::check::{Checker, READ_BYTES};
use crate::Res;

/// The two CPUs: `pipeline` for what a row runs, `reader` for the driver.
#[derive(Clone, Copy, Debug)]
pub struct Placement {
    pub pipeline: usize,
    pub reader: usize,
}

impl Placement {
    /// The first two CPUs the driver may run on; None with fewer.
    pub fn pick() -> Option<Placement> {
        let cpus = allowed_cpus();
        match cpus[..] {
            [pipeline, reader, ..] => Some(Placement { pipeline, reader }),
            _ => None,
        }
    }

    /// `c` and everything it forks run on the pipeline's CPU.
    pub fn pipeline_of(&self, c: &mut Command) {
        let cpu = self.pipeline;
        // SAFETY: sched_setaffinity is async-signal-safe and touches only
        // the cpu_set_t on this closure's stack.
        unsafe {
            c.pre_exec(move || pin_self(cpu));
        }
    }
}

/// Pins the calling thread to `cpu`.
pub fn pin_self(cpu: usize) -> std::io::Result<()> {
    // SAFETY: a zeroed cpu_set_t is the empty set; CPU_SET writes inside it.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The CPUs the calling thread may run on, lowest first.
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: sched_getaffinity fills the zeroed set it is given.
    let set = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        set
    };
    (0..libc::CPU_SETSIZE as usize)
        // SAFETY: CPU_ISSET reads inside the set.
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect()
}

/// Pins the calling thread to `cpus` (restoring what `allowed_cpus` gave).
pub fn pin_self_to(cpus: &[usize]) {
    // SAFETY: as in pin_self.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &c in cpus {
            libc::CPU_SET(c, &mut set);
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// Reads `pipe` to EOF through `c` without ever sleeping: non-blocking
/// reads, retried at once while the pipe is empty; `n` app lines must
/// arrive. Same checks as check::drain.
pub fn drain_polling(mut pipe: impl Read + AsRawFd, c: &mut Checker, n: u64) -> Res<u64> {
    let fd = pipe.as_raw_fd();
    // SAFETY: F_GETFL/F_SETFL on a pipe this function owns.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(format!("O_NONBLOCK: {}", std::io::Error::last_os_error()));
        }
    }
    let mut buf = vec![0u8; READ_BYTES];
    loop {
        match pipe.read(&mut buf) {
            Ok(0) => return c.finish(n),
            Ok(k) => c.feed(&buf[..k])?,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::hint::spin_loop(),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn the_polling_reader_checks_every_line_and_stops_at_eof() {
        let (r, mut w) = std::io::pipe().unwrap();
        let writer = std::thread::spawn(move || {
            for i in 0..5000 {
                w.write_all(&crate::check::text_line(i, 100)).unwrap();
            }
        });
        let mut c = Checker::new(false, 100);
        assert_eq!(drain_polling(r, &mut c, 5000).unwrap(), 5000);
        writer.join().unwrap();
    }

    #[test]
    fn the_polling_reader_fails_a_lost_line() {
        let (r, mut w) = std::io::pipe().unwrap();
        for i in (0..50).filter(|&i| i != 7) {
            w.write_all(&crate::check::text_line(i, 100)).unwrap();
        }
        drop(w);
        let mut c = Checker::new(false, 100);
        assert!(drain_polling(r, &mut c, 50).is_err());
    }

    #[test]
    fn a_pinned_child_runs_on_its_cpu_only() {
        let Some(p) = Placement::pick() else {
            eprintln!("one CPU: nothing to pin");
            return;
        };
        let mut c = Command::new("grep");
        c.args(["Cpus_allowed_list", "/proc/self/status"]);
        p.pipeline_of(&mut c);
        let out = c.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            text.split_whitespace().last(),
            Some(p.pipeline.to_string().as_str()),
            "{text}"
        );
    }
}
