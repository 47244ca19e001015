//! berth's one error type and *the* exit-code table: berth's own failures
//! (2, 125, 126, 127) and how the app's end becomes berth's exit code.
//! Nothing else in the crate picks an exit code.

use std::fmt;

/// What went wrong, which decides the exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The command line itself is wrong (2, as every CLI).
    Usage,
    /// A bad option value, unknown user, or setup that failed (125).
    Config,
    /// COMMAND was found but could not be executed (126).
    NotExecutable,
    /// COMMAND was not found (127).
    NotFound,
}

/// An error before the app runs: the kind and one line for stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    kind: Kind,
    message: String,
}

impl Error {
    /// Control characters in the message (from quoted user input: an
    /// argument or `BERTH_*` value with a newline) are escaped, so the error
    /// stays one line and cannot forge a second log line.
    pub fn new(kind: Kind, message: impl Into<String>) -> Error {
        let mut message = message.into();
        if message.chars().any(|c| c.is_control() && c != '\t') {
            message = message
                .chars()
                .map(|c| {
                    if c.is_control() && c != '\t' {
                        c.escape_default().to_string()
                    } else {
                        c.to_string()
                    }
                })
                .collect();
        }
        Error { kind, message }
    }
    pub fn usage(message: impl Into<String>) -> Error {
        Error::new(Kind::Usage, message)
    }
    pub fn config(message: impl Into<String>) -> Error {
        Error::new(Kind::Config, message)
    }
    pub fn kind(&self) -> Kind {
        self.kind
    }
    /// The line printed after `berth: `.
    pub fn message(&self) -> &str {
        &self.message
    }
    pub fn exit_code(&self) -> u8 {
        match self.kind {
            Kind::Usage => 2,
            Kind::Config => 125,
            Kind::NotExecutable => 126,
            Kind::NotFound => 127,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "berth: {}", self.message)
    }
}

/// How the app ended, as waitpid told it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppEnd {
    Exited(i32),
    Signaled(i32),
}

/// The app's end → berth's exit code: its code; 128+N when killed by signal N;
/// 0 when a real exit status is in `success_exit` (never for 128+N, so a JVM's
/// `exit(143)` can be success while a real SIGTERM death is not); 1 when berth
/// stopped the app because it turned unhealthy (`--on-unhealthy exit`).
pub fn app_exit_code(end: AppEnd, success_exit: &[u8], stopped_unhealthy: bool) -> u8 {
    if stopped_unhealthy {
        return 1;
    }
    match end {
        AppEnd::Exited(code) => {
            let code = (code & 0xff) as u8;
            if success_exit.contains(&code) {
                0
            } else {
                code
            }
        }
        AppEnd::Signaled(sig) => 128u8.wrapping_add((sig & 0x7f) as u8),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by fuzz/fuzz_targets/cli.rs: `--rlimit "n\n…"` quoted the value
    /// raw, so one error took several stderr lines.
    #[test]
    fn error_quoting_a_newline_stays_one_line() {
        let e = Error::config("--rlimit \"n\n\0x\": unknown limit");
        assert_eq!(e.message(), "--rlimit \"n\\n\\u{0}x\": unknown limit");
        assert!(!e.to_string().contains('\n'));
        assert_eq!(Error::usage("a\tb").message(), "a\tb");
    }

    #[test]
    fn every_kind_has_its_code() {
        assert_eq!(Error::usage("x").exit_code(), 2);
        assert_eq!(Error::config("x").exit_code(), 125);
        assert_eq!(Error::new(Kind::NotExecutable, "x").exit_code(), 126);
        assert_eq!(Error::new(Kind::NotFound, "x").exit_code(), 127);
    }

    #[test]
    fn display_prefixes_berth() {
        assert_eq!(Error::config("bad").to_string(), "berth: bad");
    }

    #[test]
    fn every_exit_status_passes_through() {
        for code in 0..=255 {
            assert_eq!(app_exit_code(AppEnd::Exited(code), &[], false), code as u8);
        }
    }

    #[test]
    fn every_signal_is_128_plus_n() {
        for sig in 1..=64 {
            assert_eq!(
                app_exit_code(AppEnd::Signaled(sig), &[], false),
                128 + sig as u8
            );
        }
    }

    #[test]
    fn success_exit_rewrites_only_real_statuses() {
        for code in 0..=255u8 {
            assert_eq!(
                app_exit_code(AppEnd::Exited(code as i32), &[code], false),
                0
            );
        }
        // 143 as a real status is success; SIGTERM death (also 143) is not.
        assert_eq!(app_exit_code(AppEnd::Exited(143), &[143], false), 0);
        assert_eq!(app_exit_code(AppEnd::Signaled(15), &[143], false), 143);
        assert_eq!(app_exit_code(AppEnd::Exited(3), &[143, 130], false), 3);
    }

    #[test]
    fn unhealthy_stop_is_1_whatever_the_app_did() {
        assert_eq!(app_exit_code(AppEnd::Exited(0), &[], true), 1);
        assert_eq!(app_exit_code(AppEnd::Signaled(9), &[], true), 1);
    }
}
