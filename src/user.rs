//! `--user USER[:GROUP]` resolved against the bytes of the image's own
//! /etc/passwd and /etc/group: no NSS (getpwnam does not work in a static
//! binary, and distroless/scratch have no NSS modules anyway). Pure: the
//! caller reads the files; applying the ids is sys.rs's job.
//!
//! Malformed lines (too few fields, bad numbers, NIS `+`/`-` entries,
//! comments) are skipped, never fatal; the first matching entry wins.

/// Who the app runs as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups, sorted, with the primary gid (as initgroups).
    pub groups: Vec<u32>,
    pub home: Option<String>,
    pub name: Option<String>,
    pub warnings: Vec<String>,
}

struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    home: Option<&'a str>,
}

struct GroupEntry<'a> {
    name: &'a str,
    gid: u32,
    members: &'a str,
}

/// Lines of a passwd/group file as text, without comments, blanks, NIS
/// entries or a trailing `\r`; lines that are not UTF-8 are skipped.
fn lines(text: &[u8]) -> impl Iterator<Item = &str> {
    text.split(|&b| b == b'\n').filter_map(|l| {
        let l = l.strip_suffix(b"\r").unwrap_or(l);
        let l = std::str::from_utf8(l).ok()?;
        if l.is_empty() || l.starts_with('#') || l.starts_with('+') || l.starts_with('-') {
            None
        } else {
            Some(l)
        }
    })
}

/// An id field: decimal, below 2^32 − 1 ((uid_t)-1 means "no change").
fn id(s: &str) -> Option<u32> {
    let s = s.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<u32>().ok().filter(|&n| n != u32::MAX)
}

fn passwd_entries(text: &[u8]) -> impl Iterator<Item = PasswdEntry<'_>> {
    lines(text).filter_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        let _password = f.next()?;
        let uid = id(f.next()?)?;
        let gid = id(f.next()?)?;
        let _gecos = f.next();
        let home = f.next().filter(|h| !h.is_empty());
        (!name.is_empty()).then_some(PasswdEntry {
            name,
            uid,
            gid,
            home,
        })
    })
}

fn group_entries(text: &[u8]) -> impl Iterator<Item = GroupEntry<'_>> {
    lines(text).filter_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        let _password = f.next()?;
        let gid = id(f.next()?)?;
        let members = f.next().unwrap_or("");
        (!name.is_empty()).then_some(GroupEntry { name, gid, members })
    })
}

/// Resolves `spec` (`USER[:GROUP]`). `passwd`/`group` are the files'
/// contents, None when missing.
pub fn resolve(
    spec: &str,
    passwd: Option<&[u8]>,
    group: Option<&[u8]>,
) -> Result<Identity, String> {
    let (user, grp) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    if user.is_empty() || grp == Some("") || grp.is_some_and(|g| g.contains(':')) {
        return Err(format!(
            "\"{spec}\": expected USER[:GROUP], a name or number each"
        ));
    }
    let numeric_user = user.bytes().all(|b| b.is_ascii_digit());
    let entry = passwd.and_then(|p| {
        passwd_entries(p).find(|e| {
            if numeric_user {
                Some(e.uid) == id(user)
            } else {
                e.name == user
            }
        })
    });
    let mut warnings = Vec::new();
    let (uid, name, home, primary) = match (&entry, numeric_user) {
        (Some(e), _) => (
            e.uid,
            Some(e.name.to_string()),
            e.home.map(str::to_string),
            Some(e.gid),
        ),
        (None, true) => {
            let uid = id(user).ok_or_else(|| format!("uid \"{user}\" is out of range"))?;
            (uid, None, None, None)
        }
        (None, false) if passwd.is_none() => {
            return Err(format!(
                "/etc/passwd is missing: cannot resolve user \"{user}\""
            ))
        }
        (None, false) => return Err(format!("user \"{user}\" not found in /etc/passwd")),
    };
    let gid = match grp {
        Some(g) if g.bytes().all(|b| b.is_ascii_digit()) => {
            id(g).ok_or_else(|| format!("gid \"{g}\" is out of range"))?
        }
        Some(g) => match group.and_then(|t| group_entries(t).find(|e| e.name == g)) {
            Some(e) => e.gid,
            None if group.is_none() => {
                return Err(format!(
                    "/etc/group is missing: cannot resolve group \"{g}\""
                ))
            }
            None => return Err(format!("group \"{g}\" not found in /etc/group")),
        },
        None => match primary {
            Some(g) => g,
            None => {
                warnings.push(format!(
                    "uid {uid} is not in /etc/passwd and no group was given: running with gid 0 (use --user {uid}:GID)"
                ));
                0
            }
        },
    };
    let mut groups = vec![gid];
    if let (Some(n), Some(t)) = (&name, group) {
        for e in group_entries(t) {
            if e.members.split(',').any(|m| m.trim() == n) {
                groups.push(e.gid);
            }
        }
    }
    groups.sort_unstable();
    groups.dedup();
    Ok(Identity {
        uid,
        gid,
        groups,
        home,
        name,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: &[u8] = b"root:x:0:0:root:/root:/bin/sh\n\
# comment\n\
+nis\n\
broken\n\
bad:x:notanumber:1::/x:/bin/sh\n\
app:x:1000:1000:App:/home/app:/bin/sh\r\n\
app:x:2000:2000::/dup:/bin/sh\n\
short:x:1002:1002\n\
huge:x:4294967295:1::/h:/bin/sh\n";
    const G: &[u8] = b"root:x:0:\napp:x:1000:\nstaff:x:50:app,web\nlogs:x:60: app \nempty:x:70:\n";

    fn r(spec: &str) -> Result<Identity, String> {
        resolve(spec, Some(P), Some(G))
    }

    #[test]
    fn by_name_with_groups_and_home() {
        let i = r("app").unwrap();
        assert_eq!((i.uid, i.gid), (1000, 1000));
        assert_eq!(i.groups, vec![50, 60, 1000]);
        assert_eq!(i.home.as_deref(), Some("/home/app"));
        assert!(i.warnings.is_empty());
    }

    #[test]
    fn by_uid_finds_the_entry() {
        let i = r("1000").unwrap();
        assert_eq!(i.name.as_deref(), Some("app"));
        assert_eq!(i.groups, vec![50, 60, 1000]);
    }

    #[test]
    fn absent_uid_gets_gid_0_and_a_warning() {
        let i = r("4242").unwrap();
        assert_eq!((i.uid, i.gid, i.groups.clone()), (4242, 0, vec![0]));
        assert!(i.warnings[0].contains("4242"));
        assert!(i.home.is_none());
    }

    #[test]
    fn explicit_groups() {
        assert_eq!(r("app:staff").unwrap().gid, 50);
        assert_eq!(r("4242:77").unwrap().gid, 77);
        assert!(r("4242:77").unwrap().warnings.is_empty());
        assert_eq!(r("app:5").unwrap().groups, vec![5, 50, 60]);
    }

    #[test]
    fn errors() {
        assert_eq!(
            r("nobody").unwrap_err(),
            "user \"nobody\" not found in /etc/passwd"
        );
        assert_eq!(
            r("app:nogroup").unwrap_err(),
            "group \"nogroup\" not found in /etc/group"
        );
        assert!(resolve("app", None, None)
            .unwrap_err()
            .contains("/etc/passwd is missing"));
        assert!(resolve("app:web", Some(P), None)
            .unwrap_err()
            .contains("/etc/group is missing"));
        for s in ["", ":1", "app:", "a:b:c", "4294967295", "99999999999"] {
            assert!(r(s).is_err(), "{s}");
        }
    }

    #[test]
    fn malformed_lines_are_skipped_and_first_entry_wins() {
        assert!(r("bad").is_err());
        assert!(r("broken").is_err());
        assert!(r("+nis").is_err());
        assert_eq!(r("app").unwrap().uid, 1000);
        let s = r("short").unwrap();
        assert_eq!((s.uid, s.gid, s.home), (1002, 1002, None));
    }

    #[test]
    fn huge_and_binary_lines_do_not_break_parsing() {
        let mut p = vec![b'a'; 1 << 20];
        p.extend_from_slice(b"\n\xff\xfe:x:1:1::/:/\napp:x:7:7::/:/\n");
        let i = resolve("app", Some(&p), Some(b"")).unwrap();
        assert_eq!(i.uid, 7);
    }

    #[test]
    fn missing_group_file_still_resolves_primary() {
        let i = resolve("app", Some(P), None).unwrap();
        assert_eq!(i.groups, vec![1000]);
    }
}
