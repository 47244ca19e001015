//! How berth was started: as an image's ENTRYPOINT, or as the engine's own
//! init (`docker run --init`, `podman run --init`). The engines bind-mount
//! the init binary at a fixed path and run it as PID 1 with `-- CMD ARGS`:
//! Docker at `/sbin/docker-init` (moby daemon/oci_linux.go,
//! `inContainerInitPath`), Podman at `/run/podman-init` (libpod's
//! `define.ContainerInitPath`). argv[0]'s basename is the only thing that
//! tells these apart: the command line is the same as an ENTRYPOINT's.
//!
//! Under an engine's name berth is a transparent init (SPEC "As the engine's
//! own init"): plain logs by default and no "runs as root" warning. config.rs
//! and event.rs read the decision; nothing here touches the system.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Init {
    /// Started under any other name: the image's ENTRYPOINT (or a shell).
    #[default]
    Entrypoint,
    /// `/sbin/docker-init`, bind-mounted by dockerd (`--init-path`).
    Docker,
    /// `/run/podman-init`, bind-mounted by Podman (`--init-path`).
    Podman,
}

/// The process names (`/proc/PID/comm`) a berth may have: its own, and the
/// two engines' (comm is argv[0]'s basename after exec).
pub const COMMS: [&str; 3] = ["berth", "docker-init", "podman-init"];

impl Init {
    /// From argv[0] as the kernel passed it; a missing argv[0] (execve with
    /// an empty argv) is no engine's.
    pub fn from_argv0(argv0: Option<&OsStr>) -> Init {
        let Some(a) = argv0 else {
            return Init::Entrypoint;
        };
        let bytes = a.as_bytes();
        let base = match bytes.iter().rposition(|&b| b == b'/') {
            Some(i) => &bytes[i + 1..],
            None => bytes,
        };
        match base {
            b"docker-init" => Init::Docker,
            b"podman-init" => Init::Podman,
            _ => Init::Entrypoint,
        }
    }

    /// The `"init"` field of the start event and of `berth status`.
    pub fn name(self) -> &'static str {
        match self {
            Init::Entrypoint => "entrypoint",
            Init::Docker => "docker",
            Init::Podman => "podman",
        }
    }

    /// Injected by an engine: the engine chose the user and reads the
    /// app's output through its own log driver, as it does with tini.
    pub fn is_engine(self) -> bool {
        self != Init::Entrypoint
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(s: &str) -> Init {
        Init::from_argv0(Some(OsStr::new(s)))
    }

    #[test]
    fn the_engines_paths_and_names_pick_their_persona() {
        assert_eq!(of("/sbin/docker-init"), Init::Docker);
        assert_eq!(of("docker-init"), Init::Docker);
        assert_eq!(of("/run/podman-init"), Init::Podman);
        assert_eq!(of("podman-init"), Init::Podman);
        assert_eq!(Init::Docker.name(), "docker");
        assert_eq!(Init::Podman.name(), "podman");
        assert!(Init::Docker.is_engine() && Init::Podman.is_engine());
    }

    #[test]
    fn any_other_name_is_an_entrypoint() {
        for s in [
            "/berth",
            "berth",
            "",
            "/",
            "docker-init/",
            "/sbin/docker-init2",
            "/usr/bin/tini",
            "Docker-Init",
        ] {
            assert_eq!(of(s), Init::Entrypoint, "{s:?}");
        }
        assert_eq!(Init::from_argv0(None), Init::Entrypoint);
        assert_eq!(Init::Entrypoint.name(), "entrypoint");
        assert!(!Init::Entrypoint.is_engine());
    }

    #[test]
    fn every_persona_name_is_a_berth_comm() {
        for a in ["/berth", "/sbin/docker-init", "/run/podman-init"] {
            let base = a.rsplit('/').next().unwrap();
            assert!(COMMS.contains(&base), "{a}");
        }
    }
}
