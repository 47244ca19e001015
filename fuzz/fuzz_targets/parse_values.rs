//! Option value parsers (parse.rs): durations, signal names, `FROM:TO`,
//! rlimits, `KEY=VALUE`, switches, exit codes, byte counts — all on the
//! same string.
//!
//! Properties: never panics (overflow included: fuzz builds check it);
//! errors add no line of their own (they may quote the input, newlines
//! included: error.rs escapes them; the cli target checks that); a signal parsed back from its own
//! name is the same signal; a duration printed in nanoseconds parses back to
//! itself (to the nanosecond); a signal map never rewrites KILL or STOP.

#![no_main]

use berth::parse;
use libfuzzer_sys::fuzz_target;

fn one_line(s: &str, r: Result<impl Sized, String>) {
    if let Err(e) = r {
        assert!(!e.is_empty());
        // The message quotes the input, control characters included:
        // error.rs escapes them when it becomes berth's error (cli target).
        assert!(
            e.matches('\n').count() <= 2 * s.matches('\n').count(),
            "{e:?}"
        );
    }
}

fuzz_target!(|input: &[u8]| {
    let Ok(s) = std::str::from_utf8(input) else {
        return;
    };
    match parse::duration(s) {
        Ok(d) => {
            let secs = format!("{}.{:09}", d.as_secs(), d.subsec_nanos());
            let back = parse::duration(&secs).expect("a duration's own seconds");
            let diff = back.abs_diff(d);
            assert!(
                diff <= std::time::Duration::from_micros(2),
                "{s:?}: {d:?} vs {back:?}"
            );
        }
        Err(e) => assert!(e.starts_with('"') && !e.is_empty()),
    }
    match parse::signal(s) {
        Ok(n) => {
            assert!(
                (1..=parse::SIGRTMAX).contains(&n) && n != 32 && n != 33,
                "{n}"
            );
            assert_eq!(parse::signal(&parse::signal_name_string(n)), Ok(n));
        }
        Err(e) => assert!(!e.is_empty()),
    }
    if let Ok((from, to)) = parse::signal_map(s) {
        assert!(from != 9 && from != 19, "{s:?} maps {from}");
        assert!(to == 0 || (1..=parse::SIGRTMAX).contains(&to));
    }
    if let Ok(r) = parse::rlimit(s) {
        assert!(
            r.soft <= r.hard,
            "{s:?}: soft {} over hard {}",
            r.soft,
            r.hard
        );
    }
    one_line(s, parse::key_value(s));
    one_line(s, parse::switch(s));
    one_line(s, parse::exit_code(s));
    one_line(s, parse::bytes(s));
    one_line(s, parse::signal_map(s));
    one_line(s, parse::rlimit(s));
});
