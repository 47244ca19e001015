//! The command line (cli.rs: clap and the `BERTH_*` fallback) and its
//! resolution into a Config (config.rs), with arbitrary argv and
//! environment. clap is built with debug assertions here (`fuzz/run -a`),
//! so its own checks of berth's argument definitions run too.
//!
//! Input: NUL-separated items; items up to one that is exactly `ENV` are
//! argv (after `berth`), the rest `KEY=VALUE` environment entries (bytes, not
//! necessarily UTF-8). Properties: never panics; an error is one line (its
//! quoted input escaped, so an argument with a newline cannot forge a second
//! log line) with exit code 2 or 125; --help/--version print text.

#![no_main]

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use berth::cli::{parse, Invocation};
use berth::config::{build, Facts};
use libfuzzer_sys::fuzz_target;

const PASSWD: &[u8] = b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n";
const GROUP: &[u8] = b"root:x:0:\napp:x:1000:\nextra:x:2000:app\n";

fuzz_target!(|input: &[u8]| {
    let mut argv = vec![OsString::from("berth")];
    let mut env = Vec::new();
    let mut in_env = false;
    for item in input.split(|&b| b == 0) {
        if item == b"ENV" {
            in_env = true;
        } else if in_env {
            let eq = item.iter().position(|&b| b == b'=').unwrap_or(item.len());
            let (k, v) = item.split_at(eq);
            let v = v.get(1..).unwrap_or_default();
            env.push((
                OsString::from_vec(k.to_vec()),
                OsString::from_vec(v.to_vec()),
            ));
        } else {
            argv.push(OsString::from_vec(item.to_vec()));
        }
    }
    let check = |e: &berth::error::Error| {
        let m = e.message();
        assert!(!m.is_empty());
        assert!(!m.contains('\n'), "error of more than one line: {m:?}");
        assert!(
            matches!(e.exit_code(), 2 | 125),
            "{} for {m:?}",
            e.exit_code()
        );
    };
    match parse(argv, &env) {
        Ok(Invocation::Run(args)) => {
            use berth::persona::Init;
            let facts = Facts {
                stdout_is_tty: false,
                // Each persona's defaults, by the input's length.
                init: [Init::Entrypoint, Init::Docker, Init::Podman][input.len() % 3],
                passwd: Some(PASSWD),
                group: Some(GROUP),
            };
            if let Err(e) = build(&args, &facts) {
                check(&e);
            }
        }
        Ok(Invocation::Print(text)) => assert!(!text.is_empty()),
        Ok(_) => {}
        Err(e) => check(&e),
    }
});
