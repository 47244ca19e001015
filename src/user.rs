//! `--user USER[:GROUP]` resolved against the bytes of the image's own
//! /etc/passwd and /etc/group: no NSS (getpwnam does not work in a static
//! binary, and distroless/scratch have no NSS modules anyway). Pure: the
//! caller reads the files; applying the ids is sys.rs's job.
//!
//! berth must never grant more than the image's libc would. So each line is
//! read twice, the way musl reads it (src/passwd/getpwent_a.c,
//! getgrent_a.c) and the way glibc's nss_files does (files-parse.c), and it
//! counts only when both read it and agree on the name, the ids and the
//! home. Any other line is skipped: never matched, never a group. Among the
//! lines that count, the first match wins (getpwnam, getgrnam). The rules
//! this gives are listed in docs/security.md ("The user database").

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

#[derive(PartialEq)]
struct PasswdEntry<'a> {
    name: &'a [u8],
    uid: u32,
    gid: u32,
    home: &'a [u8],
}

struct GroupEntry<'a> {
    name: &'a [u8],
    gid: u32,
    /// The members field as each libc sees it (they split it differently).
    musl_members: &'a [u8],
    glibc_members: &'a [u8],
}

impl GroupEntry<'_> {
    /// A member for both libcs: musl compares each comma-separated name as
    /// it is, glibc skips leading white space first; trailing bytes (a
    /// space, a `\r`) make another name for both.
    fn has_member(&self, user: &[u8]) -> bool {
        let mut musl = self.musl_members.split(|&b| b == b',');
        let mut glibc = self.glibc_members.split(|&b| b == b',');
        musl.any(|m| m == user) && glibc.any(|m| trim_space(m) == user)
    }
}

/// The lines of a file, each as (glibc's bytes, musl's bytes). musl reads a
/// line with getline and drops its last byte: the newline, or, on a last
/// line without one, a byte of the line itself. Both parse a C string, so
/// a NUL byte ends the line for both.
fn lines(text: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let (glibc, musl) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => {
                let l = &rest[..i];
                rest = &rest[i + 1..];
                (l, l)
            }
            None => {
                let l = std::mem::take(&mut rest);
                (l, &l[..l.len() - 1])
            }
        };
        Some((c_str(glibc), c_str(musl)))
    })
}

fn c_str(l: &[u8]) -> &[u8] {
    l.split(|&b| b == 0).next().unwrap_or(l)
}

/// C's isspace in the C locale (Rust's `is_ascii_whitespace` lacks `\v`).
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t'..=b'\r')
}

fn trim_space(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&b| is_space(b)).count();
    &s[n..]
}

/// Up to the next `:` (which is consumed), or None when there is none.
fn field(s: &[u8]) -> Option<(&[u8], &[u8])> {
    let i = s.iter().position(|&b| b == b':')?;
    Some((&s[..i], &s[i + 1..]))
}

/// How one libc cuts a line into fields; `passwd` and `group` below are
/// the field order both share.
trait Libc {
    /// The name and the rest of the line, None when the line is skipped.
    fn name(l: &[u8]) -> Option<(&[u8], &[u8])>;
    /// A text field and the rest.
    fn field(s: &[u8]) -> Option<(&[u8], &[u8])>;
    /// A numeric field and the rest.
    fn id(s: &[u8]) -> Option<(u32, &[u8])>;

    fn passwd(l: &[u8]) -> Option<PasswdEntry<'_>> {
        let (name, r) = Self::name(l)?;
        let (_password, r) = Self::field(r)?;
        let (uid, r) = Self::id(r)?;
        let (gid, r) = Self::id(r)?;
        let (_gecos, r) = Self::field(r)?;
        let (home, _shell) = Self::field(r)?;
        Some(PasswdEntry {
            name,
            uid,
            gid,
            home,
        })
    }

    /// The name, the gid and the members field.
    fn group(l: &[u8]) -> Option<(&[u8], u32, &[u8])> {
        let (name, r) = Self::name(l)?;
        let (_password, r) = Self::field(r)?;
        let (gid, members) = Self::id(r)?;
        Some((name, gid, members))
    }
}

/// musl: the name runs to the first `:` after its first byte, then each
/// field must end in `:` (else the line is skipped), ids are read by its
/// `atou`: leading digits only, zero digits read as 0, wrapping at 2^32.
struct Musl;

impl Libc for Musl {
    fn name(l: &[u8]) -> Option<(&[u8], &[u8])> {
        let (_, rest) = field(l.get(1..)?)?;
        Some((&l[..l.len() - rest.len() - 1], rest))
    }

    fn field(s: &[u8]) -> Option<(&[u8], &[u8])> {
        field(s)
    }

    fn id(s: &[u8]) -> Option<(u32, &[u8])> {
        let n = s.iter().take_while(|b| b.is_ascii_digit()).count();
        let v = s[..n].iter().fold(0u32, |v, &d| {
            v.wrapping_mul(10).wrapping_add(u32::from(d - b'0'))
        });
        (s.get(n) == Some(&b':')).then(|| (v, &s[n + 1..]))
    }
}

/// glibc (nss_files): leading white space is skipped, blank and `#` lines
/// are comments, a missing field is empty (only the ids are required), ids
/// are read by `strtoul` (leading space, a sign, saturating at 2^32 − 1),
/// and must end at a `:` or the end of the line.
struct Glibc;

impl Libc for Glibc {
    fn name(l: &[u8]) -> Option<(&[u8], &[u8])> {
        let l = trim_space(l);
        if l.is_empty() || l[0] == b'#' {
            return None;
        }
        Self::field(l)
    }

    fn field(s: &[u8]) -> Option<(&[u8], &[u8])> {
        Some(field(s).unwrap_or((s, b"")))
    }

    fn id(s: &[u8]) -> Option<(u32, &[u8])> {
        let t = trim_space(s);
        let (neg, t) = match t.first() {
            Some(b'-') => (true, &t[1..]),
            Some(b'+') => (false, &t[1..]),
            _ => (false, t),
        };
        let n = t.iter().take_while(|b| b.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        let v = t[..n].iter().fold(0u32, |v, &d| {
            v.saturating_mul(10).saturating_add(u32::from(d - b'0'))
        });
        let v = if neg && v != 0 { u32::MAX } else { v };
        match t.get(n) {
            None => Some((v, b"")),
            Some(b':') => Some((v, &t[n + 1..])),
            Some(_) => None,
        }
    }
}

/// What berth accepts beyond agreement: a name (NIS `+`/`-` entries are
/// not users, glibc's lookups skip them) and ids below 2^32 − 1
/// ((uid_t)-1 means "no change" to setresuid).
fn usable(name: &[u8], ids: &[u32]) -> bool {
    !name.is_empty() && !matches!(name[0], b'+' | b'-') && !ids.contains(&u32::MAX)
}

fn passwd_entries(text: &[u8]) -> impl Iterator<Item = PasswdEntry<'_>> {
    lines(text).filter_map(|(g, m)| {
        let e = Glibc::passwd(g)?;
        (Musl::passwd(m)? == e && usable(e.name, &[e.uid, e.gid])).then_some(e)
    })
}

fn group_entries(text: &[u8]) -> impl Iterator<Item = GroupEntry<'_>> {
    lines(text).filter_map(|(g, m)| {
        let (name, gid, glibc_members) = Glibc::group(g)?;
        let (musl_name, musl_gid, musl_members) = Musl::group(m)?;
        (musl_name == name && musl_gid == gid && usable(name, &[gid])).then_some(GroupEntry {
            name,
            gid,
            musl_members,
            glibc_members,
        })
    })
}

/// An id given on the command line: decimal, below 2^32 − 1.
fn id(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<u32>().ok().filter(|&n| n != u32::MAX)
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
                e.name == user.as_bytes()
            }
        })
    });
    let mut warnings = Vec::new();
    let (uid, name, home, primary) = match (&entry, numeric_user) {
        // A home that is not UTF-8 is left out (HOME falls back to "/").
        (Some(e), _) => (
            e.uid,
            Some(e.name),
            std::str::from_utf8(e.home)
                .ok()
                .filter(|h| !h.is_empty())
                .map(str::to_string),
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
        Some(g) => match group.and_then(|t| group_entries(t).find(|e| e.name == g.as_bytes())) {
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
    if let (Some(n), Some(t)) = (name, group) {
        for e in group_entries(t) {
            if e.has_member(n) {
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
        name: name.map(|n| String::from_utf8_lossy(n).into_owned()),
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
short:x:1002:1002::/short:/bin/sh\n\
huge:x:4294967295:1::/h:/bin/sh\n";
    const G: &[u8] = b"root:x:0:\napp:x:1000:\nstaff:x:50:app,web\nlogs:x:60: app \nempty:x:70:\n";

    fn r(spec: &str) -> Result<Identity, String> {
        resolve(spec, Some(P), Some(G))
    }

    #[test]
    fn by_name_with_groups_and_home() {
        let i = r("app").unwrap();
        assert_eq!((i.uid, i.gid), (1000, 1000));
        assert_eq!(i.groups, vec![50, 1000], "\" app \" is not app");
        assert_eq!(i.home.as_deref(), Some("/home/app"));
        assert!(i.warnings.is_empty());
    }

    #[test]
    fn by_uid_finds_the_entry() {
        let i = r("1000").unwrap();
        assert_eq!(i.name.as_deref(), Some("app"));
        assert_eq!(i.groups, vec![50, 1000]);
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
        assert_eq!(r("app:5").unwrap().groups, vec![5, 50]);
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
        assert_eq!(s.home.as_deref(), Some("/short"));
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

    /// The groups `app` (uid 1000, gid 1000) gets from `group`.
    fn groups_of_app(group: &[u8]) -> Vec<u32> {
        resolve("app", Some(b"app:x:1000:1000::/:/bin/sh\n"), Some(group))
            .unwrap()
            .groups
    }

    #[test]
    fn a_group_line_whose_name_holds_a_nul_grants_nothing() {
        assert_eq!(groups_of_app(b"ev\0il:x:50:app\nok:x:60:app\n"), [60, 1000]);
        assert!(resolve("app:ev", Some(b"app:x:1:1::/:/\n"), Some(b"ev\0:x:5:\n")).is_err());
    }

    #[test]
    fn a_nul_ends_the_line_as_in_c() {
        // Both libcs parse a C string: what follows a NUL is not read.
        assert_eq!(
            groups_of_app(b"s:x:50:web\0,app\nt:x:60:app,\0x\n"),
            [60, 1000]
        );
        let p = b"app:x:7:7::/home/app:/bin/sh\0junk\napp:x:0:0::/:/bin/sh\n";
        assert_eq!(resolve("app", Some(p), None).unwrap().uid, 7);
    }

    #[test]
    fn lines_with_missing_fields_are_skipped() {
        // glibc reads these (missing fields are empty), musl skips them.
        let p = b"app:x:1000:1000::/home/app\napp:x:7:7::/:/bin/sh\n";
        assert_eq!(resolve("app", Some(p), None).unwrap().uid, 7);
        assert_eq!(groups_of_app(b"g:x:50\nh:x:60:app\n"), [60, 1000]);
        assert!(resolve("app:g", Some(P), Some(b"g:x:50\n")).is_err());
    }

    #[test]
    fn ids_only_one_libc_reads_are_skipped() {
        // musl reads an empty id as 0 and wraps past 2^32; glibc takes
        // leading space and a sign; (uid_t)-1 is "no change".
        for line in [
            "g:x::app",
            "g:x: 50:app",
            "g:x:+50:app",
            "g:x:-1:app",
            "g:x:4294967296:app",
            "g:x:4294967295:app",
            "g:x:5 0:app",
        ] {
            assert_eq!(
                groups_of_app(format!("{line}\n").as_bytes()),
                [1000],
                "{line}"
            );
        }
        let p = b"app:x:0x10:1::/:/\napp:x: 0:0::/:/\napp:x:010:1::/:/\n";
        assert_eq!(
            resolve("app", Some(p), None).unwrap().uid,
            10,
            "leading zeros are decimal"
        );
    }

    #[test]
    fn members_are_compared_byte_for_byte() {
        // musl keeps a member's spaces and a `\r`, so neither is `app`.
        let g = b"a:x:50: app\nb:x:51:app \nc:x:52:app\r\nd:x:53:web,app\n";
        assert_eq!(groups_of_app(g), [53, 1000]);
    }

    #[test]
    fn comments_and_indented_lines_are_skipped() {
        // glibc skips leading space and `#` lines; musl reads them as names.
        assert_eq!(groups_of_app(b" g:x:50:app\n#h:x:51:app\n"), [1000]);
        let p = b"  app:x:0:0::/:/bin/sh\napp:x:7:7::/:/bin/sh\n";
        assert_eq!(resolve("app", Some(p), None).unwrap().uid, 7);
    }

    #[test]
    fn a_last_line_without_newline_counts_only_if_musl_reads_it_alike() {
        // musl drops the last byte of a line even when it is not `\n`.
        let p: &[u8] = b"app:x:7:7::/home/app:/bin/sh";
        assert_eq!(resolve("app", Some(p), None).unwrap().uid, 7);
        assert!(resolve("app", Some(b"app:x:7:7::/home/app:"), None).is_err());
        assert_eq!(groups_of_app(b"g:x:50:app"), [1000], "musl reads \"ap\"");
        assert_eq!(groups_of_app(b"g:x:50:app,web"), [50, 1000]);
        assert!(resolve("app:g", Some(P), Some(b"g:x:50:")).is_err());
    }

    #[test]
    fn duplicates_first_wins_and_every_line_adds_its_group() {
        let g = b"staff:x:50:app\nstaff:x:51:app\n";
        assert_eq!(groups_of_app(g), [50, 51, 1000]);
        let p = b"app:x:1000:1000::/a:/\napp:x:0:0::/:/\n";
        assert_eq!(resolve("app:staff", Some(p), Some(g)).unwrap().gid, 50);
    }

    #[test]
    fn bytes_that_are_not_utf8_do_not_hide_an_entry() {
        let p = b"app:x:1000:1000:\xff:/h\xff:/bin/sh\napp:x:0:0::/:/bin/sh\n";
        let i = resolve("app", Some(p), None).unwrap();
        assert_eq!((i.uid, i.home), (1000, None));
    }
}
