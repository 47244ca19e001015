//! `--user` resolution against hostile /etc/passwd and /etc/group (user.rs).
//!
//! Input: `SPEC\n` then the passwd bytes, a NUL, the group bytes.
//! Properties: never panics; on success the groups are sorted, unique and
//! include the primary gid, a numeric USER gives that uid, and a name is
//! found only if a passwd line starts with it; a supplementary group (other
//! than the primary) comes from a group line whose text before any NUL byte
//! names that gid (in decimal) as its third field (libc reads lines as C strings, so a
//! line with a NUL in its name grants nothing); errors and warnings are one
//! line.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Some(nl) = input.iter().position(|&b| b == b'\n') else {
        return;
    };
    let Ok(spec) = std::str::from_utf8(&input[..nl]) else {
        return;
    };
    let files = &input[nl + 1..];
    let (passwd, group) = match files.iter().position(|&b| b == 0) {
        Some(z) => (Some(&files[..z]), Some(&files[z + 1..])),
        None => (Some(files), None),
    };
    match berth::user::resolve(spec, passwd, group) {
        Ok(id) => {
            assert!(id.groups.windows(2).all(|w| w[0] < w[1]), "{:?}", id.groups);
            assert!(id.groups.contains(&id.gid));
            assert_ne!(id.uid, u32::MAX);
            assert_ne!(id.gid, u32::MAX);
            let user = spec.split(':').next().unwrap_or("");
            if user.bytes().all(|b| b.is_ascii_digit()) {
                assert_eq!(Ok(id.uid), user.parse::<u32>());
            } else {
                let mut line = user.as_bytes().to_vec();
                line.push(b':');
                let text = passwd.unwrap_or_default();
                assert!(
                    text.split(|&b| b == b'\n').any(|l| l.starts_with(&line)),
                    "{user:?} resolved but is in no passwd line"
                );
                assert_eq!(id.name.as_deref(), Some(user));
            }
            for g in id.groups.iter().filter(|&&g| g != id.gid) {
                let text = group.unwrap_or_default();
                assert!(
                    text.split(|&b| b == b'\n').any(|l| {
                        let c = l.split(|&b| b == 0).next().unwrap_or(l);
                        let mut f = c.splitn(4, |&b| b == b':');
                        let (name, _, gid) = (f.next(), f.next(), f.next());
                        name.is_some_and(|n| !n.is_empty())
                            && gid
                                .and_then(|d| std::str::from_utf8(d).ok())
                                .is_some_and(|d| d.parse() == Ok(*g))
                            && f.next().is_some()
                    }),
                    "group {g} granted by no whole line"
                );
            }
            for w in &id.warnings {
                assert!(!w.contains('\n'), "{w:?}");
            }
        }
        Err(e) => assert!(!e.contains('\n') && !e.is_empty(), "{e:?}"),
    }
});
