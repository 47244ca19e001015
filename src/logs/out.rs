//! berth's stdout: one buffer of finished lines, written without ever
//! blocking the event loop (O_NONBLOCK on a pipe or socket, EPOLLOUT when it
//! is full), with the backpressure watermarks that tell the loop to stop
//! reading the app's pipes, and the once-only switch to discarding when
//! stdout is gone (EPIPE). Formatting lines is json.rs's and events.rs's job.

use std::os::fd::RawFd;

use nix::errno::Errno;

use crate::sys::{self, FdKind};

/// Above this many pending bytes the loop stops reading the app's pipes
/// (the app's writes then block: bounded memory, nothing dropped).
pub const HIGH_WATER: usize = 256 * 1024;
/// Below this the loop reads the app's pipes again.
pub const LOW_WATER: usize = 64 * 1024;
/// berth's own optional events (signal events) are skipped above this, so
/// a signal flood cannot grow memory while stdout is stuck.
pub const EVENT_LIMIT: usize = 1024 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flush {
    /// Everything written.
    Done,
    /// stdout is full: wait for EPOLLOUT.
    Blocked,
    /// stdout is gone; output is discarded from now on.
    Broken,
}

pub struct Out {
    fd: RawFd,
    kind: FdKind,
    /// File status flags to restore at exit (O_NONBLOCK is shared with
    /// whoever else holds the same open file description).
    saved_flags: Option<libc::c_int>,
    pub buf: Vec<u8>,
    written: usize,
    broken: bool,
    /// `--log-pipe-size`: the stdout pipe is grown to this the first time
    /// it is found full (0: never); logs/flood.rs says why and when it
    /// shrinks back.
    grow_to: usize,
    /// The size the pipe had before it grew (None: not grown).
    grown_from: Option<usize>,
    /// The pipe grew since `take_grew` last asked.
    grew: bool,
}

impl Out {
    /// Wraps `fd` (1). Pipes and sockets become non-blocking; terminals and
    /// files are written directly (they do not stall for long and epoll
    /// cannot watch regular files).
    pub fn new(fd: RawFd) -> Out {
        let kind = sys::fd_kind(fd);
        let saved_flags = if kind == FdKind::Pollable {
            sys::set_nonblocking(fd, true).ok()
        } else {
            None
        };
        Out {
            fd,
            kind,
            saved_flags,
            buf: Vec::new(),
            written: 0,
            broken: kind == FdKind::Closed,
            grow_to: 0,
            grown_from: None,
            grew: false,
        }
    }

    /// A stdout berth does not write app output to (plain mode): its flags
    /// are left alone, since the app shares it.
    pub fn unused(fd: RawFd) -> Out {
        Out {
            fd,
            kind: FdKind::Direct,
            saved_flags: None,
            buf: Vec::new(),
            written: 0,
            broken: false,
            grow_to: 0,
            grown_from: None,
            grew: false,
        }
    }

    /// Grows a full stdout pipe to `bytes` (see `grow_to`).
    pub fn grow_pipe_when_full(mut self, bytes: usize) -> Out {
        self.grow_to = if self.kind == FdKind::Pollable {
            bytes
        } else {
            0
        };
        self
    }

    /// Grows the full pipe once; true when it grew (the write can go on).
    /// A failure (EPERM over the pipe quota or pipe-max-size, or not a
    /// pipe: a socket) keeps the size it has, as a default pipe would.
    fn grow_pipe(&mut self) -> bool {
        if self.grow_to == 0 || self.grown_from.is_some() {
            return false;
        }
        match sys::pipe_size(self.fd) {
            Ok(now) if now < self.grow_to => match sys::set_pipe_size(self.fd, self.grow_to) {
                Ok(got) if got > now => {
                    self.grown_from = Some(now);
                    self.grew = true;
                    true
                }
                _ => {
                    self.grow_to = 0;
                    false
                }
            },
            _ => {
                self.grow_to = 0;
                false
            }
        }
    }

    /// True once after the pipe grew: the loop then times its give-back,
    /// even if the pipe is never found full again.
    pub fn take_grew(&mut self) -> bool {
        std::mem::take(&mut self.grew)
    }

    /// After a flood: the pipe back to its old size and the buffer's memory
    /// back to the allocator. False when the pipe still holds more than its
    /// old size (EBUSY): try again later.
    pub fn give_back(&mut self) -> bool {
        if self.pending() == 0 {
            self.buf = Vec::new();
            self.written = 0;
        }
        let Some(old) = self.grown_from else {
            return true;
        };
        match sys::set_pipe_size(self.fd, old) {
            Err(Errno::EBUSY) => false,
            // Shrunk, or the pipe is gone: either way nothing is owed.
            _ => {
                self.grown_from = None;
                true
            }
        }
    }

    pub fn fd(&self) -> RawFd {
        self.fd
    }

    /// Can the loop wait for this fd to become writable?
    pub fn pollable(&self) -> bool {
        self.kind == FdKind::Pollable && !self.broken
    }

    pub fn pending(&self) -> usize {
        self.buf.len() - self.written
    }

    pub fn broken(&self) -> bool {
        self.broken
    }

    /// Writes as much as stdout takes now.
    pub fn flush(&mut self) -> Flush {
        if self.broken {
            self.buf.clear();
            self.written = 0;
            return Flush::Broken;
        }
        while self.written < self.buf.len() {
            match sys::write(self.fd, &self.buf[self.written..]) {
                Ok(n) => self.written += n,
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) if self.grow_pipe() => continue,
                Err(Errno::EAGAIN) => {
                    self.compact();
                    return Flush::Blocked;
                }
                Err(e) => {
                    self.broken = true;
                    self.buf.clear();
                    self.written = 0;
                    // One line, once: stdout is what is gone, stderr may live.
                    let msg = format!(
                        "berth: stdout is gone ({}): the app's output is discarded from now on\n",
                        e.desc()
                    );
                    let _ = sys::write(2, msg.as_bytes());
                    return Flush::Broken;
                }
            }
        }
        self.buf.clear();
        self.written = 0;
        Flush::Done
    }

    /// Drops the written prefix so the buffer does not grow while blocked.
    fn compact(&mut self) {
        if self.written > 0 {
            self.buf.drain(..self.written);
            self.written = 0;
        }
    }

    /// Writes everything, waiting for stdout as long as it takes (used
    /// only at exit, when nothing else is left to do).
    pub fn flush_all(&mut self) {
        loop {
            match self.flush() {
                Flush::Done | Flush::Broken => return,
                Flush::Blocked => {
                    let mut pfd = [nix::poll::PollFd::new(
                        sys::borrow_fd(self.fd),
                        nix::poll::PollFlags::POLLOUT,
                    )];
                    let _ = nix::poll::poll(&mut pfd, nix::poll::PollTimeout::NONE);
                }
            }
        }
    }

    /// Puts back the file status flags berth changed.
    pub fn restore(&mut self) {
        if let Some(flags) = self.saved_flags.take() {
            if flags & libc::O_NONBLOCK == 0 {
                let _ = sys::set_nonblocking(self.fd, false);
            }
        }
    }
}
