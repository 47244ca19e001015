//! `--template SRC:DST` (SPEC "Before the app starts", step 3): config
//! files rendered from the app's environment, envsubst's job in the nginx
//! image's entrypoint, without a shell.
//!
//! The expander ([`expand`]) is pure, bytes in and bytes out, and is what
//! the unit, property and fuzz tests drive:
//! - `${NAME}` → NAME's value; unset is an error naming the line and NAME
//!   (envsubst's silent blank is a classic outage); set but empty is "";
//! - `${NAME:-default}` → the default when NAME is unset or empty; the
//!   default is literal text up to the first `}` (no `${` inside it);
//! - `$${` → a literal `${`;
//! - any other `$` is kept as it is (`$host`, `$1`, `$$`, a lone `$`);
//! - a `${` that is none of the above (`${}`, `${A-b}`, no `}` on its
//!   line) is an error rather than text passed on, which would be
//!   a config broken in a way only the app finds out.
//!
//! The rest writes DST whole or not at all: a temporary file in DST's
//! directory, owned by the app's uid:gid, mode 0640, renamed over DST.

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::prepare::secrets::is_env_name;
use crate::prepare::{io_reason, read_regular_file};

/// The largest SRC berth reads: config templates are kilobytes; a larger
/// SRC is a wrong path (a log, a binary), not a config.
pub const MAX_SRC_BYTES: usize = 1024 * 1024;
/// The largest DST berth writes: room for every value a 1 MiB template
/// holds several times over, but not for `${BIG}` repeated into gigabytes
/// of memory in PID 1.
pub const MAX_OUTPUT_BYTES: usize = 4 * 1024 * 1024;

/// One `--template` as given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    pub src: PathBuf,
    pub dst: PathBuf,
}

/// `SRC:DST` → [`Template`] (split at the first `:`); the error is the
/// text after `--template `.
pub fn parse_option(v: &str) -> Result<Template, String> {
    let (src, dst) = v
        .split_once(':')
        .ok_or_else(|| format!("\"{v}\": expected SRC:DST"))?;
    if src.is_empty() || dst.is_empty() {
        return Err(format!("\"{v}\": expected SRC:DST, both paths"));
    }
    if dst.ends_with('/') || Path::new(dst).file_name().is_none() {
        return Err(format!("\"{v}\": DST must name a file, not a directory"));
    }
    if src == dst {
        return Err(format!(
            "\"{v}\": SRC and DST are the same file (the next start would render the rendered file)"
        ));
    }
    Ok(Template {
        src: src.into(),
        dst: dst.into(),
    })
}

/// The whole option list: one DST written twice is a mistake.
pub fn parse_options(values: &[String]) -> Result<Vec<Template>, String> {
    let mut out: Vec<Template> = Vec::with_capacity(values.len());
    for v in values {
        let t = parse_option(v)?;
        if out.iter().any(|o| o.dst == t.dst) {
            return Err(format!("DST {} is given twice", t.dst.display()));
        }
        out.push(t);
    }
    Ok(out)
}

/// Why a template did not expand; `line` counts from 1.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExpandError {
    /// `${NAME}` with NAME unset and no default.
    Unset { line: usize, name: String },
    /// `${` with no `}` before the end of its line.
    Unterminated { line: usize },
    /// `${...}` that is neither `${NAME}` nor `${NAME:-default}`.
    Malformed { line: usize, text: String },
    /// The output would pass `max_output` bytes.
    TooLarge,
}

impl std::fmt::Display for ExpandError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExpandError::Unset { line, name } => write!(
                f,
                "line {line}: ${{{name}}} is unset in the app's environment \
                 (give it, or write ${{{name}:-default}})"
            ),
            ExpandError::Unterminated { line } => write!(
                f,
                "line {line}: ${{ has no }} on its line (write $${{ for a literal ${{)"
            ),
            ExpandError::Malformed { line, text } => write!(
                f,
                "line {line}: \"{text}\" is neither ${{NAME}} nor ${{NAME:-default}} \
                 (write $${{ for a literal ${{)"
            ),
            ExpandError::TooLarge => write!(
                f,
                "the output would be larger than {MAX_OUTPUT_BYTES} bytes"
            ),
        }
    }
}

/// Expands `src` with `lookup` (a NAME's value, None when unset); the
/// output is at most `max_output` bytes.
pub fn expand<'v>(
    src: &[u8],
    lookup: &dyn Fn(&[u8]) -> Option<&'v [u8]>,
    max_output: usize,
) -> Result<Vec<u8>, ExpandError> {
    // Counted only for an error: no bookkeeping on the way.
    let line_of = |at: usize| 1 + src[..at].iter().filter(|b| **b == b'\n').count();
    let mut out = Vec::with_capacity(src.len().min(max_output));
    let push = |out: &mut Vec<u8>, b: &[u8]| {
        if out.len() + b.len() > max_output {
            return Err(ExpandError::TooLarge);
        }
        out.extend_from_slice(b);
        Ok(())
    };
    let mut i = 0;
    while let Some(rel) = memchr::memchr(b'$', &src[i..]) {
        let at = i + rel;
        push(&mut out, &src[i..at])?;
        let rest = &src[at..];
        if rest.starts_with(b"$${") {
            push(&mut out, b"${")?;
            i = at + 3;
            continue;
        }
        if !rest.starts_with(b"${") {
            push(&mut out, b"$")?;
            i = at + 1;
            continue;
        }
        let body_at = at + 2;
        let end = match src[body_at..]
            .iter()
            .position(|b| *b == b'}' || *b == b'\n')
        {
            Some(p) if src[body_at + p] == b'}' => body_at + p,
            _ => return Err(ExpandError::Unterminated { line: line_of(at) }),
        };
        let body = &src[body_at..end];
        let name_len = body
            .iter()
            .position(|b| !(b.is_ascii_alphanumeric() || *b == b'_'))
            .unwrap_or(body.len());
        let (name, tail) = body.split_at(name_len);
        let default = match tail {
            [] => None,
            [b':', b'-', d @ ..] if !d.windows(2).any(|w| w == b"${") => Some(d),
            _ => None,
        };
        if !is_env_name(name) || (!tail.is_empty() && default.is_none()) {
            let text = &src[at..=end];
            let text = String::from_utf8_lossy(&text[..text.len().min(64)]).into_owned();
            return Err(ExpandError::Malformed {
                line: line_of(at),
                text,
            });
        }
        match (lookup(name), default) {
            (Some([]), Some(d)) => push(&mut out, d)?,
            (Some(v), _) => push(&mut out, v)?,
            (None, Some(d)) => push(&mut out, d)?,
            (None, None) => {
                return Err(ExpandError::Unset {
                    line: line_of(at),
                    name: String::from_utf8_lossy(name).into_owned(),
                })
            }
        }
        i = end + 1;
    }
    push(&mut out, &src[i..])?;
    Ok(out)
}

/// Renders every template in order; returns the DSTs written.
pub fn render_all(
    templates: &[Template],
    env: &[(OsString, OsString)],
    owner: (u32, u32),
) -> Result<Vec<PathBuf>, Error> {
    let mut written = Vec::with_capacity(templates.len());
    for t in templates {
        render(t, env, owner)?;
        written.push(t.dst.clone());
    }
    Ok(written)
}

/// Renders one template from the app's environment (`BERTH_*` are not
/// the app's: spawn.rs removes them, so here they are unset) into DST,
/// owned by `owner` (uid, gid).
pub fn render(t: &Template, env: &[(OsString, OsString)], owner: (u32, u32)) -> Result<(), Error> {
    let fail = |why: String| {
        Error::config(format!(
            "--template {}:{}: {why}",
            t.src.display(),
            t.dst.display()
        ))
    };
    let src = read_src(&t.src).map_err(|why| fail(format!("{}: {why}", t.src.display())))?;
    let lookup = |name: &[u8]| {
        if name.starts_with(b"BERTH_") {
            return None;
        }
        env.iter()
            .find(|(k, _)| k.as_bytes() == name)
            .map(|(_, v)| v.as_bytes())
    };
    let out = expand(&src, &lookup, MAX_OUTPUT_BYTES)
        .map_err(|e| fail(format!("{}: {e}", t.src.display())))?;
    write_atomically(&t.dst, &out, owner).map_err(fail)
}

/// SRC, read whole: a regular file of at most [`MAX_SRC_BYTES`].
fn read_src(path: &Path) -> Result<Vec<u8>, String> {
    let src = read_regular_file(path, MAX_SRC_BYTES)?;
    if src.len() > MAX_SRC_BYTES {
        return Err(format!(
            "larger than {MAX_SRC_BYTES} bytes: not a config template"
        ));
    }
    Ok(src)
}

/// Writes `content` to `dst` whole or not at all. berth is root here and
/// DST's directory is typically the app's (an emptyDir that survives a
/// container restart): a symlink the app left at DST, or on the way to
/// it, must not steer a root write elsewhere. So a symlink at DST is
/// refused, and so is one on DST's directory path that root does not own
/// (the image's own links, `/var/run` → `/run`, are root's and followed).
fn write_atomically(dst: &Path, content: &[u8], (uid, gid): (u32, u32)) -> Result<(), String> {
    let dir = match dst.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = dst.file_name().ok_or("DST names no file")?;
    refuse_foreign_symlinks(dir)?;
    match std::fs::symlink_metadata(dst) {
        Ok(m) if m.file_type().is_symlink() => {
            return Err(format!(
                "{} is a symlink: refused (berth, as root, writes through no link)",
                dst.display()
            ))
        }
        Ok(m) if m.is_dir() => return Err(format!("{} is a directory", dst.display())),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("{}: {}", dst.display(), io_reason(&e))),
    }
    // O_EXCL and O_NOFOLLOW: never an existing file, never through a link
    // planted under this name; one a killed berth left is removed first
    // (unlink removes a link itself, never its target).
    let mut tmp_name = OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(".berth-tmp");
    let tmp = dir.join(tmp_name);
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::EROFS) => format!(
                "{} is on a read-only file system: render into a writable volume \
                 (docker run --tmpfs {}, a Kubernetes emptyDir)",
                dir.display(),
                dir.display()
            ),
            _ => format!(
                "cannot create a file in {}: {}",
                dir.display(),
                io_reason(&e)
            ),
        })?;
    let written = (|| {
        f.write_all(content)?;
        // Only root can give a file away; a berth that is already the app
        // creates it as the app.
        if (uid, gid)
            != (
                nix::unistd::geteuid().as_raw(),
                nix::unistd::getegid().as_raw(),
            )
        {
            std::os::unix::fs::fchown(&f, Some(uid), Some(gid))?;
        }
        // After the chown (which may clear mode bits), and whatever the umask.
        f.set_permissions(std::fs::Permissions::from_mode(0o640))?;
        std::fs::rename(&tmp, dst)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!("writing {}: {}", dst.display(), io_reason(&e)));
    }
    Ok(())
}

/// Refuses a symlink not owned by root on `dir`'s path, each prefix
/// checked as given (`a`, `a/b`, …; `/`, `.` and `..` need no check).
fn refuse_foreign_symlinks(dir: &Path) -> Result<(), String> {
    let bytes = dir.as_os_str().as_bytes();
    let ends = bytes
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'/')
        .map(|(i, _)| i)
        .chain([bytes.len()]);
    for end in ends {
        let prefix = &bytes[..end];
        let last = prefix.rsplit(|b| *b == b'/').next().unwrap_or(prefix);
        if !matches!(last, b"" | b"." | b"..") {
            refuse_foreign_symlink(Path::new(std::ffi::OsStr::from_bytes(prefix)))?;
        }
    }
    Ok(())
}

fn refuse_foreign_symlink(path: &Path) -> Result<(), String> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() && m.uid() != 0 => Err(format!(
            "{} is a symlink owned by uid {}: refused (berth, as root, follows \
             no link that root does not own)",
            path.display(),
            m.uid()
        )),
        Ok(_) => Ok(()),
        Err(e) => Err(format!("{}: {}", path.display(), io_reason(&e))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&[u8]) -> Option<&'a [u8]> {
        move |n: &[u8]| {
            vars.iter()
                .find(|(k, _)| k.as_bytes() == n)
                .map(|(_, v)| v.as_bytes())
        }
    }

    fn ex(src: &str, vars: &[(&str, &str)]) -> Result<String, ExpandError> {
        expand(src.as_bytes(), &with(vars), MAX_OUTPUT_BYTES).map(|o| String::from_utf8(o).unwrap())
    }

    #[test]
    fn names_defaults_and_escapes_expand() {
        let v = [("A", "1"), ("E", ""), ("PORT", "8080")];
        assert_eq!(ex("listen ${PORT};", &v).unwrap(), "listen 8080;");
        assert_eq!(ex("${A}${A}x${E}y", &v).unwrap(), "11xy");
        assert_eq!(ex("${U:-d} ${E:-e} ${A:-z}", &v).unwrap(), "d e 1");
        assert_eq!(ex("${U:-}|${U:-a b:-c$x}", &v).unwrap(), "|a b:-c$x");
        assert_eq!(ex("$${A} $${", &v).unwrap(), "${A} ${");
    }

    #[test]
    fn every_other_dollar_is_kept() {
        let v = [("host", "NO")];
        for s in [
            "proxy_set_header Host $host;",
            "$",
            "a$",
            "$$",
            "$$$",
            "$1 $_ $ {x} $(cmd) $$x",
            "rewrite ^(.*)$ /x$1;",
        ] {
            assert_eq!(ex(s, &v).unwrap(), s);
        }
        // `$${` wins from the left: `$$${A}` is `$` then a literal `${A}`.
        assert_eq!(ex("$$${A}", &[("A", "1")]).unwrap(), "$${A}");
    }

    #[test]
    fn an_unset_name_is_an_error_naming_its_line_and_name() {
        let e = ex("a\nb\nserver ${HOST_NAME};\n", &[]).unwrap_err();
        assert_eq!(
            e,
            ExpandError::Unset {
                line: 3,
                name: "HOST_NAME".into()
            }
        );
        assert!(e.to_string().contains("line 3: ${HOST_NAME} is unset"));
    }

    #[test]
    fn a_bad_or_unterminated_brace_is_an_error_with_its_line() {
        assert_eq!(
            ex("x\n${A\n}", &[("A", "1")]),
            Err(ExpandError::Unterminated { line: 2 })
        );
        assert_eq!(ex("${", &[]), Err(ExpandError::Unterminated { line: 1 }));
        for bad in [
            "${}",
            "${1A}",
            "${A-b}",
            "${A:b}",
            "${A B}",
            "${A:-${B}}",
            "${é}",
        ] {
            match ex(bad, &[("A", "1"), ("B", "2")]) {
                Err(ExpandError::Malformed { line: 1, .. }) => {}
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn output_is_bounded_while_it_grows() {
        let big = "x".repeat(1000);
        let v = [("BIG", big.as_str())];
        let src = "${BIG}".repeat(100);
        assert_eq!(
            expand(src.as_bytes(), &with(&v), 99_999),
            Err(ExpandError::TooLarge)
        );
        assert_eq!(
            expand(src.as_bytes(), &with(&v), 100_000).unwrap().len(),
            100_000
        );
    }

    #[test]
    fn bytes_that_are_not_utf8_and_nul_pass_through() {
        let src = b"\xff\0${A}\xfe";
        let out = expand(src, &|_| Some(b"\x80".as_slice()), 100).unwrap();
        assert_eq!(out, b"\xff\0\x80\xfe");
    }

    #[test]
    fn options_parse_and_refuse_what_cannot_be_meant() {
        assert_eq!(
            parse_option("/t/a.conf.template:/etc/nginx/conf.d/a.conf").unwrap(),
            Template {
                src: "/t/a.conf.template".into(),
                dst: "/etc/nginx/conf.d/a.conf".into()
            }
        );
        // Only the first colon splits.
        assert_eq!(parse_option("a:b:c").unwrap().dst, PathBuf::from("b:c"));
        for bad in ["", "a", ":b", "a:", "a:/tmp/", "a:a", "a:/"] {
            assert!(parse_option(bad).is_err(), "{bad:?}");
        }
        assert!(parse_options(&["a:/x".into(), "b:/x".into()])
            .unwrap_err()
            .contains("twice"));
    }

    /// One piece of a generated template, and what it must become: the
    /// reference the property tests hold the expander to.
    #[derive(Clone, Debug)]
    enum Piece {
        /// Text without `$`.
        Text(String),
        /// `${NAME}`, NAME one of `VARS` (all set).
        Var(usize),
        /// `${NAME:-default}`, NAME possibly unset.
        Default(&'static str, String),
        /// `$${`.
        Escape,
        /// `$` then a character that starts no expansion, then a word:
        /// `$host`, `$1`, `$ x` (kept as is).
        Dollar(char, String),
    }

    /// Names and values; `E` is set but empty.
    const VARS: [(&str, &str); 4] = [
        ("A", "1"),
        ("LONG_NAME_2", "x y\n$z"),
        ("E", ""),
        ("_u", "é"),
    ];

    impl Piece {
        fn source(&self) -> String {
            match self {
                Piece::Text(t) => t.clone(),
                Piece::Var(i) => format!("${{{}}}", VARS[*i].0),
                Piece::Default(n, d) => format!("${{{n}:-{d}}}"),
                Piece::Escape => "$${".into(),
                Piece::Dollar(c, w) => format!("${c}{w}"),
            }
        }
        fn expected(&self) -> String {
            match self {
                Piece::Text(t) => t.clone(),
                Piece::Var(i) => VARS[*i].1.into(),
                Piece::Default(n, d) => match VARS.iter().find(|v| v.0 == *n) {
                    Some((_, v)) if !v.is_empty() => v.to_string(),
                    _ => d.clone(),
                },
                Piece::Escape => "${".into(),
                Piece::Dollar(c, w) => format!("${c}{w}"),
            }
        }
    }

    fn text(alphabet: &'static [char], max: usize) -> impl Strategy<Value = String> {
        proptest::collection::vec(proptest::sample::select(alphabet), 0..max)
            .prop_map(|v| v.into_iter().collect())
    }

    /// Template text: nginx-ish characters, braces and newlines, no `$`.
    const TEXT: &[char] = &[
        'a', 'Z', '0', '_', ' ', ';', '{', '}', '\n', ':', '-', 'é', '"',
    ];
    /// A default: anything but `}`, newline and `$` (so no `${` in it).
    const DEFAULT: &[char] = &['a', ' ', ':', '-', '{', 'é', '/'];
    /// A word after a kept `$` (it may look like a name: `$host`).
    const WORD: &[char] = &['h', 'o', 's', 't', '_', '1', ' '];

    fn piece() -> impl Strategy<Value = Piece> {
        prop_oneof![
            text(TEXT, 12).prop_map(Piece::Text),
            (0..VARS.len()).prop_map(Piece::Var),
            (
                proptest::sample::select(&["A", "E", "UNSET", "_u"][..]),
                text(DEFAULT, 6)
            )
                .prop_map(|(n, d)| Piece::Default(n, d)),
            Just(Piece::Escape),
            (
                proptest::sample::select(&['h', '1', ' ', '(', '_', '}', '\n'][..]),
                text(WORD, 4)
            )
                .prop_map(|(c, w)| Piece::Dollar(c, w)),
        ]
    }

    fn vars_lookup(n: &[u8]) -> Option<&'static [u8]> {
        VARS.iter()
            .find(|(k, _)| k.as_bytes() == n)
            .map(|(_, v)| v.as_bytes())
    }

    /// envsubst (GNU gettext) with SHELL-FORMAT naming the set variables,
    /// as the nginx image's entrypoint runs it.
    fn envsubst(src: &str) -> String {
        let mut c = std::process::Command::new("envsubst");
        c.env_clear();
        let mut format = String::new();
        for (k, v) in VARS {
            c.env(k, v);
            format.push_str(&format!("${{{k}}} "));
        }
        c.arg(format)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped());
        let mut child = c.spawn().unwrap_or_else(|e| {
            panic!("envsubst: {e} (Debian's gettext-base; scripts/test installs it)")
        });
        child
            .stdin
            .take()
            .unwrap()
            .write_all(src.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    }

    use proptest::prelude::*;

    proptest! {
        #[test]
        fn every_template_expands_as_the_reference_says(
            pieces in proptest::collection::vec(piece(), 0..24)
        ) {
            let src: String = pieces.iter().map(Piece::source).collect();
            let want: String = pieces.iter().map(Piece::expected).collect();
            let got = expand(src.as_bytes(), &vars_lookup, MAX_OUTPUT_BYTES);
            prop_assert_eq!(got, Ok(want.into_bytes()), "template {:?}", src);
        }

        /// Random bytes: never a panic, never more than the bound, and a
        /// template without `$` comes out as it went in.
        #[test]
        fn any_bytes_expand_or_fail_within_the_bound(
            src in proptest::collection::vec(prop_oneof![
                Just(b'$'), Just(b'{'), Just(b'}'), Just(b':'), Just(b'-'), Just(b'\n'),
                Just(b'A'), Just(b'E'), any::<u8>()
            ], 0..200),
            max in 0usize..300,
        ) {
            match expand(&src, &vars_lookup, max) {
                Ok(out) => {
                    prop_assert!(out.len() <= max);
                    if !src.contains(&b'$') {
                        prop_assert_eq!(out, src);
                    }
                }
                Err(ExpandError::TooLarge) => {}
                Err(ExpandError::Unset { line, .. }
                | ExpandError::Unterminated { line }
                | ExpandError::Malformed { line, .. }) => {
                    prop_assert!(line >= 1 && line <= 1 + src.iter().filter(|b| **b == b'\n').count());
                }
            }
        }
    }

    proptest! {
        // A process per case: fewer cases.
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Where the two syntaxes agree (`${NAME}` of set names, `$word`
        /// that names no listed variable, text), berth writes what
        /// envsubst writes.
        #[test]
        fn berth_agrees_with_envsubst_where_their_syntaxes_meet(
            pieces in proptest::collection::vec(piece().prop_filter(
                "envsubst has no defaults and no $${",
                |p| matches!(p, Piece::Text(_) | Piece::Var(_) | Piece::Dollar(..))
            ), 0..24)
        ) {
            let src: String = pieces.iter().map(Piece::source).collect();
            let got = expand(src.as_bytes(), &vars_lookup, MAX_OUTPUT_BYTES).unwrap();
            prop_assert_eq!(String::from_utf8(got).unwrap(), envsubst(&src), "template {:?}", src);
        }
    }

    /// A scratch directory for the file tests, removed on drop.
    struct Scratch(PathBuf);
    impl Scratch {
        fn new(what: &str) -> Scratch {
            let d = std::env::temp_dir()
                .join(format!("berth-unit-template-{what}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&d);
            std::fs::create_dir_all(&d).unwrap();
            Scratch(d)
        }
    }
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn own_ids() -> (u32, u32) {
        (
            nix::unistd::geteuid().as_raw(),
            nix::unistd::getegid().as_raw(),
        )
    }

    #[test]
    fn dst_is_written_0640_and_nothing_else_is_left_in_its_directory() {
        let s = Scratch::new("write");
        let src = s.0.join("a.template");
        std::fs::write(&src, "port ${P}\n").unwrap();
        std::fs::write(s.0.join("a.conf"), "old").unwrap();
        let t = Template {
            src: src.clone(),
            dst: s.0.join("a.conf"),
        };
        let env = vec![("P".into(), "81".into())];
        render(&t, &env, own_ids()).unwrap();
        assert_eq!(std::fs::read_to_string(&t.dst).unwrap(), "port 81\n");
        let m = std::fs::metadata(&t.dst).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o640);
        let mut names: Vec<_> = std::fs::read_dir(&s.0)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(names, vec!["a.conf", "a.template"]);
    }

    #[test]
    fn a_failed_render_leaves_dst_as_it_was() {
        let s = Scratch::new("fail");
        std::fs::write(s.0.join("t"), "${MISSING}").unwrap();
        std::fs::write(s.0.join("d"), "old").unwrap();
        let t = Template {
            src: s.0.join("t"),
            dst: s.0.join("d"),
        };
        let e = render(&t, &[], own_ids()).unwrap_err();
        assert_eq!(e.exit_code(), 125);
        assert!(
            e.message().contains("line 1: ${MISSING} is unset"),
            "{}",
            e.message()
        );
        assert_eq!(std::fs::read_to_string(s.0.join("d")).unwrap(), "old");
    }

    #[test]
    fn berth_variables_are_not_the_apps_and_count_as_unset() {
        let s = Scratch::new("berthvar");
        std::fs::write(s.0.join("t"), "${BERTH_GRACE}").unwrap();
        let t = Template {
            src: s.0.join("t"),
            dst: s.0.join("d"),
        };
        let env = vec![("BERTH_GRACE".into(), "1s".into())];
        assert!(render(&t, &env, own_ids()).is_err());
    }

    #[test]
    fn a_symlink_at_dst_or_a_directory_is_refused() {
        let s = Scratch::new("links");
        std::fs::write(s.0.join("t"), "x").unwrap();
        std::fs::write(s.0.join("target"), "keep").unwrap();
        std::os::unix::fs::symlink(s.0.join("target"), s.0.join("link")).unwrap();
        std::fs::create_dir(s.0.join("dir")).unwrap();
        for (dst, why) in [("link", "symlink"), ("dir", "directory")] {
            let t = Template {
                src: s.0.join("t"),
                dst: s.0.join(dst),
            };
            let e = render(&t, &[], own_ids()).unwrap_err();
            assert!(e.message().contains(why), "{}", e.message());
        }
        assert_eq!(std::fs::read_to_string(s.0.join("target")).unwrap(), "keep");
        assert!(std::fs::symlink_metadata(s.0.join("link"))
            .unwrap()
            .file_type()
            .is_symlink());
    }

    #[test]
    fn a_symlink_on_the_way_to_dst_not_owned_by_root_is_refused() {
        let s = Scratch::new("waylink");
        std::fs::write(s.0.join("t"), "x").unwrap();
        std::fs::create_dir(s.0.join("real")).unwrap();
        std::os::unix::fs::symlink(s.0.join("real"), s.0.join("via")).unwrap();
        let t = Template {
            src: s.0.join("t"),
            dst: s.0.join("via/d"),
        };
        if own_ids().0 == 0 {
            // Root's own link (the image's /var/run → /run) is followed...
            render(&t, &[], own_ids()).unwrap();
            assert!(s.0.join("real/d").exists());
            // ...one the app could have made is not.
            std::os::unix::fs::lchown(s.0.join("via"), Some(1000), Some(1000)).unwrap();
        }
        let e = render(&t, &[], own_ids()).unwrap_err();
        assert!(
            e.message().contains("symlink owned by uid"),
            "{}",
            e.message()
        );
    }

    #[test]
    fn src_must_be_a_regular_file_within_the_bound() {
        let s = Scratch::new("src");
        let big = s.0.join("big");
        std::fs::write(&big, vec![b'x'; MAX_SRC_BYTES + 1]).unwrap();
        let at_bound = s.0.join("at");
        std::fs::write(&at_bound, vec![b'x'; MAX_SRC_BYTES]).unwrap();
        assert!(read_src(&big).unwrap_err().contains("larger than"));
        assert_eq!(read_src(&at_bound).unwrap().len(), MAX_SRC_BYTES);
        assert!(read_src(&s.0).unwrap_err().contains("not a regular file"));
        assert!(read_src(&s.0.join("none")).is_err());
    }
}
