//! `--env-from-file` (SPEC "Before the app starts", step 1): secrets read
//! from files into the app's environment, as root, before berth drops it,
//! so a secret mounted readable by root only (`/run/secrets`, Kubernetes
//! secret volumes) reaches a non-root app without ever sitting in
//! `docker inspect`.
//!
//! Two forms: `NAME=PATH`, and `NAME` alone, which takes PATH from
//! `NAME_FILE` as the official images' `file_env` does. A value never
//! leaves this module but into the app's environment: it is held in a
//! [`Secret`] (whose Debug says `<redacted>`), and every error names NAME
//! and PATH only. Parsing the option is pure (config.rs calls it); reading
//! the file is `read_secret`.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::prepare::read_regular_file;

/// The kernel's limit for one environment string, `NAME=value` and its
/// NUL included: MAX_ARG_STRLEN, 32 pages of 4 KiB (linux/binfmts.h).
/// A longer one makes execve fail with E2BIG.
pub const MAX_ENV_STRING: usize = 32 * 4096;

/// One `--env-from-file` as given: which variable, and from which file
/// (None: the path is in `NAME_FILE`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvFromFile {
    pub name: String,
    pub path: Option<PathBuf>,
}

/// A secret's bytes. Debug (a panic message, a printed config) never shows
/// them; only `into_value` hands them over, to the app's environment.
pub struct Secret(Vec<u8>);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Secret {
    pub fn into_value(self) -> OsString {
        OsString::from_vec(self.0)
    }
}

/// What the environment of a shell and of execve accept as a name, and
/// what a template's `${NAME}` can name: `[A-Za-z_][A-Za-z0-9_]*`.
pub fn is_env_name(name: &[u8]) -> bool {
    match name.split_first() {
        Some((first, rest)) => {
            (first.is_ascii_alphabetic() || *first == b'_')
                && rest.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_')
        }
        None => false,
    }
}

/// `NAME=PATH` or `NAME` → [`EnvFromFile`]; the error is the text after
/// `--env-from-file `.
pub fn parse_option(v: &str) -> Result<EnvFromFile, String> {
    let (name, path) = match v.split_once('=') {
        Some((n, p)) => (n, Some(p)),
        None => (v, None),
    };
    if !is_env_name(name.as_bytes()) {
        return Err(format!(
            "\"{v}\": expected NAME=PATH or NAME, NAME made of letters, digits and _ (not first)"
        ));
    }
    // spawn.rs removes BERTH_* from the app's environment: such a NAME
    // would be read and then silently dropped.
    if name.starts_with("BERTH_") {
        return Err(format!(
            "\"{v}\": BERTH_* variables are berth's own and never reach the app"
        ));
    }
    match path {
        Some("") => Err(format!("\"{v}\": PATH is empty")),
        Some(p) => Ok(EnvFromFile {
            name: name.to_string(),
            path: Some(PathBuf::from(p)),
        }),
        None => Ok(EnvFromFile {
            name: name.to_string(),
            path: None,
        }),
    }
}

/// The whole option list, checked together: one NAME twice is a mistake
/// (which file would win?).
pub fn parse_options(values: &[String]) -> Result<Vec<EnvFromFile>, String> {
    let mut out: Vec<EnvFromFile> = Vec::with_capacity(values.len());
    for v in values {
        let e = parse_option(v)?;
        if out.iter().any(|o| o.name == e.name) {
            return Err(format!("{} is given twice", e.name));
        }
        out.push(e);
    }
    Ok(out)
}

fn get<'a>(env: &'a [(OsString, OsString)], name: &str) -> Option<&'a OsStr> {
    env.iter()
        .find(|(k, _)| k.as_bytes() == name.as_bytes())
        .map(|(_, v)| v.as_os_str())
}

/// Step 1 over the app's environment: sets each NAME from its file,
/// removes the `NAME_FILE` variables the short form used, and returns the
/// NAMEs set (for the `start` event). The first error stops the step.
pub fn apply(
    options: &[EnvFromFile],
    env: &mut Vec<(OsString, OsString)>,
) -> Result<Vec<String>, Error> {
    let mut set = Vec::new();
    for o in options {
        let path = source_path(o, env)?;
        // `NAME` alone: NAME_FILE is berth's to read, never the app's
        // (empty too: it named no file, but it is still not the app's).
        if o.path.is_none() {
            let file_var = format!("{}_FILE", o.name);
            env.retain(|(k, _)| k.as_bytes() != file_var.as_bytes());
        }
        let Some(path) = path else {
            continue;
        };
        let value = read_secret(&o.name, &path)?;
        env.retain(|(k, _)| k.as_bytes() != o.name.as_bytes());
        env.push((o.name.clone().into(), value.into_value()));
        set.push(o.name.clone());
    }
    Ok(set)
}

/// Where NAME's value is read from, or None when it is not (`NAME` alone
/// with no `NAME_FILE`: NAME stays as the environment has it, or unset).
/// As `file_env` does, an empty variable counts as unset (compose writes
/// `DB_PASSWORD=` for an unset `${DB_PASSWORD}`).
fn source_path(o: &EnvFromFile, env: &[(OsString, OsString)]) -> Result<Option<PathBuf>, Error> {
    let value_set = get(env, &o.name).is_some_and(|v| !v.is_empty());
    match &o.path {
        Some(p) => {
            if value_set {
                return Err(Error::config(format!(
                    "--env-from-file {}={}: {} is also set in the environment; \
                     give it one way only",
                    o.name,
                    p.display(),
                    o.name
                )));
            }
            Ok(Some(p.clone()))
        }
        None => {
            let file_var = format!("{}_FILE", o.name);
            let Some(p) = get(env, &file_var).filter(|p| !p.is_empty()) else {
                return Ok(None);
            };
            if value_set {
                return Err(Error::config(format!(
                    "--env-from-file {}: both {} and {file_var}={} are set; \
                     give it one way only",
                    o.name,
                    o.name,
                    Path::new(p).display()
                )));
            }
            Ok(Some(PathBuf::from(p)))
        }
    }
}

/// Reads one secret file: a regular file (a FIFO would block PID 1
/// forever, a device would never end), at most what the kernel takes in
/// one environment string, no NUL (execve would cut the value there), one
/// trailing newline removed (`echo secret > file`). Errors name NAME and
/// PATH, never a byte of the contents.
pub fn read_secret(name: &str, path: &Path) -> Result<Secret, Error> {
    let fail =
        |why: String| Error::config(format!("--env-from-file {name}: {}: {why}", path.display()));
    // NAME, '=' and the NUL share the kernel's limit with the value; one
    // byte more for the trailing newline that is removed.
    let limit = MAX_ENV_STRING.saturating_sub(name.len() + 2);
    let mut value = read_regular_file(path, limit + 1).map_err(fail)?;
    if value.last() == Some(&b'\n') {
        value.pop();
    }
    if value.len() > limit {
        return Err(fail(format!(
            "larger than the kernel's limit for one environment string \
             ({MAX_ENV_STRING} bytes with {name}= and the NUL)"
        )));
    }
    if value.contains(&0) {
        return Err(fail(
            "holds a NUL byte, which an environment variable cannot".into(),
        ));
    }
    Ok(Secret(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(v: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        v.iter().map(|(k, v)| (k.into(), v.into())).collect()
    }

    fn temp_file(content: &[u8]) -> (PathBuf, impl Drop) {
        struct Rm(PathBuf);
        impl Drop for Rm {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.0);
            }
        }
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "berth-unit-secret-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::write(&p, content).unwrap();
        (p.clone(), Rm(p))
    }

    const SECRET: &str = "s3cr3t-Zq9-never-print";

    #[test]
    fn both_forms_parse_and_bad_names_are_refused() {
        assert_eq!(
            parse_option("DB_PASSWORD=/run/secrets/db").unwrap(),
            EnvFromFile {
                name: "DB_PASSWORD".into(),
                path: Some("/run/secrets/db".into())
            }
        );
        assert_eq!(parse_option("_x1").unwrap().path, None);
        for bad in [
            "",
            "=x",
            "1A=/x",
            "A-B",
            "A B=/x",
            "A=",
            "BERTH_GRACE=/x",
            "é=/x",
        ] {
            assert!(parse_option(bad).is_err(), "{bad:?} accepted");
        }
        assert!(parse_options(&["A".into(), "A=/x".into()])
            .unwrap_err()
            .contains("twice"));
    }

    #[test]
    fn the_file_becomes_the_value_less_one_trailing_newline() {
        let (p, _rm) = temp_file(format!("{SECRET}\n\n").as_bytes());
        let mut e = env(&[("PATH", "/bin")]);
        let opts = [EnvFromFile {
            name: "DB".into(),
            path: Some(p),
        }];
        assert_eq!(apply(&opts, &mut e).unwrap(), vec!["DB"]);
        assert_eq!(get(&e, "DB").unwrap(), OsStr::new(&format!("{SECRET}\n")));
    }

    #[test]
    fn name_alone_reads_name_file_and_does_not_pass_it_on() {
        let (p, _rm) = temp_file(SECRET.as_bytes());
        let mut e = env(&[("DB_FILE", p.to_str().unwrap()), ("X", "1")]);
        let opts = parse_options(&["DB".into()]).unwrap();
        assert_eq!(apply(&opts, &mut e).unwrap(), vec!["DB"]);
        assert_eq!(get(&e, "DB").unwrap(), SECRET);
        assert!(get(&e, "DB_FILE").is_none());
        assert_eq!(get(&e, "X").unwrap(), "1");
    }

    #[test]
    fn name_alone_without_name_file_leaves_name_as_it_is() {
        let opts = parse_options(&["DB".into()]).unwrap();
        let mut e = env(&[]);
        assert!(apply(&opts, &mut e).unwrap().is_empty());
        assert!(get(&e, "DB").is_none());
        let mut e = env(&[("DB", "plain")]);
        assert!(apply(&opts, &mut e).unwrap().is_empty());
        assert_eq!(get(&e, "DB").unwrap(), "plain");
        // Empty counts as unset, as in file_env; it is not passed on.
        let mut e = env(&[("DB_FILE", "")]);
        assert!(apply(&opts, &mut e).unwrap().is_empty());
        assert!(e.is_empty(), "{e:?}");
    }

    #[test]
    fn name_and_name_file_both_set_is_125_naming_both() {
        let (p, _rm) = temp_file(SECRET.as_bytes());
        let mut e = env(&[("DB", "x"), ("DB_FILE", p.to_str().unwrap())]);
        let err = apply(&parse_options(&["DB".into()]).unwrap(), &mut e).unwrap_err();
        assert_eq!(err.exit_code(), 125);
        assert!(err.message().contains("DB_FILE="), "{}", err.message());
        let mut e = env(&[("DB", "x")]);
        let opts = [EnvFromFile {
            name: "DB".into(),
            path: Some(p),
        }];
        assert_eq!(apply(&opts, &mut e).unwrap_err().exit_code(), 125);
    }

    /// Every refusal: 125, NAME and PATH named, the contents never.
    #[test]
    fn every_bad_file_is_125_naming_name_and_path_never_the_contents() {
        let dir = std::env::temp_dir();
        let (nul, _a) = temp_file(format!("{SECRET}\0x").as_bytes());
        let big_content = SECRET.repeat(MAX_ENV_STRING / SECRET.len() + 1);
        let (big, _b) = temp_file(big_content.as_bytes());
        let missing = dir.join("berth-unit-no-such-secret");
        let cases: [(&Path, &str); 4] = [
            (&nul, "NUL"),
            (&big, "limit"),
            (&missing, "No such file"),
            (&dir, "not a regular file"),
        ];
        for (path, why) in cases {
            let err = read_secret("API_KEY", path).unwrap_err();
            let m = err.message();
            assert_eq!(err.exit_code(), 125, "{m}");
            assert!(
                m.contains("API_KEY") && m.contains(&*path.to_string_lossy()),
                "{m}"
            );
            assert!(m.contains(why), "{m}");
            assert!(!m.contains(SECRET) && !m.contains("s3cr3t"), "{m}");
        }
    }

    #[test]
    fn the_largest_value_the_kernel_takes_is_read_one_more_byte_is_not() {
        let name = "K";
        let max = MAX_ENV_STRING - name.len() - 2;
        let (p, _rm) = temp_file(&vec![b'a'; max]);
        assert_eq!(read_secret(name, &p).unwrap().0.len(), max);
        let (p, _rm2) = temp_file(&[vec![b'a'; max], b"\n".to_vec()].concat());
        assert_eq!(read_secret(name, &p).unwrap().0.len(), max);
        let (p, _rm3) = temp_file(&vec![b'a'; max + 1]);
        assert!(read_secret(name, &p).is_err());
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let p = std::env::temp_dir().join(format!("berth-unit-fifo-{}", std::process::id()));
        let _ = std::fs::remove_file(&p);
        nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let err = read_secret("F", &p).unwrap_err();
        let _ = std::fs::remove_file(&p);
        assert!(err.message().contains("not a regular file"));
    }

    #[test]
    fn debug_of_a_secret_is_redacted() {
        let s = Secret(SECRET.as_bytes().to_vec());
        assert_eq!(format!("{s:?}"), "<redacted>");
        assert_eq!(format!("{:?}", Some(&s)), "Some(<redacted>)");
    }
}
