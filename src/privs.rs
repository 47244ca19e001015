//! Privilege decisions around the app's identity: can berth switch to it
//! (root with CAP_SETUID/CAP_SETGID), `--chown` before the switch, and
//! berth's own drop to the app's ids afterwards. The id-changing calls
//! themselves are in sys.rs; looking users up is user.rs's job.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{fstat, fstatat, Mode, SFlag};
use nix::unistd::{fchownat, Gid, Uid};

use crate::error::Error;
use crate::user::Identity;

const CAP_SETGID: u32 = 6;
const CAP_SETUID: u32 = 7;

/// The effective capability set from /proc/self/status (`CapEff:` hex).
pub fn effective_caps(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
}

/// Does switching to `id` change anything about berth's current ids?
pub fn needs_switch(id: &Identity, uid: u32, gid: u32, groups: &[u32]) -> bool {
    let mut current: Vec<u32> = groups.to_vec();
    current.sort_unstable();
    current.dedup();
    id.uid != uid || id.gid != gid || id.groups != current
}

/// A non-root berth that already has the app's uid and gid (`docker run
/// --user 1000:1000`, Kubernetes `runAsUser`/`runAsGroup`, with `--user app`
/// baked into the image's ENTRYPOINT) has nothing to switch but its
/// supplementary groups, which it cannot change: it runs the app as it is,
/// and says which groups the app will not get. `None` otherwise.
pub fn already_app_but_groups(id: &Identity, uid: u32, gid: u32, euid: u32) -> Option<String> {
    (euid != 0 && id.uid == uid && id.gid == gid).then(|| {
        format!(
            "berth already runs as uid {uid} gid {gid} (not root): the app runs with the \
             container's supplementary groups, not those of /etc/group ({:?})",
            id.groups
        )
    })
}

/// Refuses, with the fix spelled out, a switch berth cannot make.
pub fn check_can_switch(id: &Identity, euid: u32, caps: Option<u64>) -> Result<(), Error> {
    if euid != 0 {
        return Err(Error::config(format!(
            "cannot switch to uid {} gid {}: berth runs as uid {euid}, not root \
             (drop --user, or start the container as root and let berth drop privileges)",
            id.uid, id.gid
        )));
    }
    let caps = caps.unwrap_or(u64::MAX);
    let has = |c: u32| caps & (1u64 << c) != 0;
    if !has(CAP_SETUID) || !has(CAP_SETGID) {
        return Err(Error::config(format!(
            "cannot switch to uid {} gid {}: berth is root but lacks CAP_SETUID/CAP_SETGID \
             (--cap-drop ALL?); use `docker run --user {}:{}` instead of --user, or add \
             `--cap-add SETUID --cap-add SETGID` (berth drops them again before the app starts)",
            id.uid, id.gid, id.uid, id.gid
        )));
    }
    Ok(())
}

/// `--chown PATH`: gives PATH and everything below it to uid:gid where the
/// owner differs. The walk goes by directory fds (`openat` with
/// `O_NOFOLLOW | O_DIRECTORY`, `fstatat`/`fchownat` with
/// `AT_SYMLINK_NOFOLLOW`), so a symlink is never followed, not even one
/// swapped in for a directory while berth walks (the link itself changes
/// owner); anything on another file system (`st_dev` differs: a bind mount
/// of the host's /etc under PATH) is neither changed nor entered.
pub fn chown_tree(root: &Path, uid: u32, gid: u32) -> Result<u64, Error> {
    let fail = |p: &Path, e: Errno| Error::config(format!("--chown {}: {}", p.display(), e.desc()));
    let meta = std::fs::symlink_metadata(root)
        .map_err(|e| Error::config(format!("--chown {}: {e}", root.display())))?;
    let mut changed = 0;
    if meta.uid() != uid || meta.gid() != gid {
        std::os::unix::fs::lchown(root, Some(uid), Some(gid))
            .map_err(|e| Error::config(format!("--chown {}: {e}", root.display())))?;
        changed += 1;
    }
    if !meta.file_type().is_dir() {
        return Ok(changed);
    }
    let dir = open(CWD, root).map_err(|e| fail(root, e))?;
    let mut walk = Walk {
        dev: meta.dev(),
        uid,
        gid,
        changed,
    };
    walk.dir(dir, root).map_err(|(p, e)| fail(&p, e))?;
    Ok(walk.changed)
}

const CWD: BorrowedFd<'static> = nix::fcntl::AT_FDCWD;

/// Opens a directory below `parent` without following a symlink.
fn open<P: ?Sized + nix::NixPath>(parent: BorrowedFd, name: &P) -> nix::Result<OwnedFd> {
    nix::fcntl::openat(
        parent,
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

struct Walk {
    dev: u64,
    uid: u32,
    gid: u32,
    changed: u64,
}

impl Walk {
    /// Changes the entries of the open directory `fd` (at `path`, for
    /// messages), depth first; one fd open per level.
    fn dir(&mut self, fd: OwnedFd, path: &Path) -> Result<(), (PathBuf, Errno)> {
        let at = |e: Errno| (path.to_path_buf(), e);
        // The directory itself may be a mount point reached by a race.
        if fstat(&fd).map_err(at)?.st_dev != self.dev {
            return Ok(());
        }
        // One fd to iterate, one to open and change entries relative to.
        let parent = nix::unistd::dup(&fd).map_err(at)?;
        let mut dir = Dir::from_fd(fd).map_err(at)?;
        let mut subdirs: Vec<std::ffi::CString> = Vec::new();
        for entry in dir.iter() {
            let entry = entry.map_err(at)?;
            let name = entry.file_name();
            if name.to_bytes() == b"." || name.to_bytes() == b".." {
                continue;
            }
            let Ok(st) = fstatat(&parent, name, AtFlags::AT_SYMLINK_NOFOLLOW) else {
                continue; // vanished meanwhile
            };
            if st.st_dev != self.dev {
                continue;
            }
            if st.st_uid != self.uid || st.st_gid != self.gid {
                fchownat(
                    &parent,
                    name,
                    Some(Uid::from_raw(self.uid)),
                    Some(Gid::from_raw(self.gid)),
                    AtFlags::AT_SYMLINK_NOFOLLOW,
                )
                .map_err(|e| (path.join(std::ffi::OsStr::from_bytes(name.to_bytes())), e))?;
                self.changed += 1;
            }
            if SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFDIR {
                subdirs.push(name.to_owned());
            }
        }
        drop(dir);
        for name in subdirs {
            let child_path = path.join(std::ffi::OsStr::from_bytes(name.to_bytes()));
            match open(parent.as_fd(), name.as_c_str()) {
                Ok(child) => self.dir(child, &child_path)?,
                // Swapped for a symlink or removed since: not ours to follow.
                Err(Errno::ELOOP | Errno::ENOTDIR | Errno::ENOENT) => {}
                Err(e) => return Err((child_path, e)),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(uid: u32, gid: u32, groups: &[u32]) -> Identity {
        Identity {
            uid,
            gid,
            groups: groups.to_vec(),
            home: None,
            name: None,
            warnings: vec![],
        }
    }

    #[test]
    fn caps_parsed_from_status() {
        let s = "Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t00000000a80425fb\n";
        assert_eq!(effective_caps(s), Some(0xa80425fb));
        assert_eq!(effective_caps("nothing"), None);
    }

    #[test]
    fn switch_needed_only_when_ids_differ() {
        assert!(!needs_switch(&id(0, 0, &[0]), 0, 0, &[0]));
        assert!(needs_switch(&id(1000, 1000, &[1000]), 0, 0, &[0]));
        assert!(needs_switch(&id(0, 0, &[0, 10]), 0, 0, &[0]));
    }

    #[test]
    fn root_without_setuid_caps_is_refused_with_the_fix() {
        let e = check_can_switch(&id(1000, 1000, &[1000]), 0, Some(0)).unwrap_err();
        assert_eq!(e.exit_code(), 125);
        assert!(e.message().contains("--cap-add SETUID"), "{}", e.message());
        assert!(check_can_switch(&id(1000, 1000, &[]), 0, Some(0xc0)).is_ok());
    }

    #[test]
    fn non_root_with_the_apps_ids_runs_the_app_as_it_is() {
        let w = already_app_but_groups(&id(1000, 1000, &[50, 1000]), 1000, 1000, 1000).unwrap();
        assert!(w.contains("[50, 1000]"), "{w}");
        assert!(already_app_but_groups(&id(1000, 1000, &[]), 1000, 1001, 1000).is_none());
        assert!(already_app_but_groups(&id(1000, 1000, &[]), 1001, 1000, 1001).is_none());
        assert!(already_app_but_groups(&id(0, 0, &[]), 0, 0, 0).is_none());
    }

    #[test]
    fn non_root_cannot_switch() {
        let e = check_can_switch(&id(1001, 1001, &[]), 1000, Some(0)).unwrap_err();
        assert!(e.message().contains("not root"));
    }
}
