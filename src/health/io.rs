//! The I/O helpers every probe shares (plain HTTP, TCP and gRPC): one
//! overall deadline that every blocking call takes what is left of, a
//! bounded write, and io::Error as a short reason. Their own module so the
//! probe kinds depend on it and not on each other.

use std::io::{self, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// A deadline longer than this is treated as this (avoids `Instant` overflow).
pub(super) const TIMEOUT_CAP: Duration = Duration::from_secs(24 * 60 * 60);

/// The one overall deadline; every blocking call gets what is left of it.
pub(super) struct Deadline {
    at: Instant,
    timeout: Duration,
}

impl Deadline {
    pub(super) fn start(timeout: Duration) -> Deadline {
        let now = Instant::now();
        Deadline {
            at: now + timeout.min(TIMEOUT_CAP),
            timeout,
        }
    }

    /// Time left, or None once the deadline has passed (never a zero duration,
    /// which the socket timeout setters refuse).
    pub(super) fn remaining(&self) -> Option<Duration> {
        self.at
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
    }

    pub(super) fn expired(&self, phase: &str) -> String {
        format!("timeout after {:?} ({phase})", self.timeout)
    }
}

pub(super) fn send(stream: &mut TcpStream, mut data: &[u8], clock: &Deadline) -> io::Result<()> {
    while !data.is_empty() {
        let left = clock.remaining().ok_or(io::ErrorKind::TimedOut)?;
        stream.set_write_timeout(Some(left))?;
        match stream.write(data) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => data = data.get(n..).unwrap_or_default(),
            // Interrupted, or a write timeout: the loop re-checks the deadline.
            Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

pub(super) fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    )
}

/// An io::Error as a short lowercase reason, without the `(os error N)` suffix.
pub(super) fn describe_io(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => return "connection refused".to_string(),
        io::ErrorKind::ConnectionReset => return "connection reset".to_string(),
        _ => {}
    }
    let mut text = e.to_string();
    if let Some(i) = text.find(" (os error ") {
        text.truncate(i);
    }
    match text.chars().next() {
        Some(first) if first.is_ascii_uppercase() => {
            text.replace_range(..1, &first.to_ascii_lowercase().to_string());
            text
        }
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_error_text() {
        let e = io::Error::from_raw_os_error(101); // ENETUNREACH on Linux
        let text = describe_io(&e);
        assert!(!text.contains("os error"), "{text}");
        assert!(
            text.starts_with(|c: char| !c.is_ascii_uppercase()),
            "{text}"
        );
        assert_eq!(
            describe_io(&io::ErrorKind::ConnectionRefused.into()),
            "connection refused"
        );
    }
}
