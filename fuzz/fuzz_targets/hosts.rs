//! Probe targets and the /etc/hosts parser (health/target.rs).
//!
//! Input: `NAME\n` then the hosts file (lossily decoded).
//! Properties: never panics; every address found is the first field of a
//! hosts line, listed once; case and a trailing dot on NAME do not matter.
//! The first line is also parsed as a probe target: never panics, errors are
//! one line, and a parsed target's path and Host header (a `grpc://`
//! target's authority and service) carry no space or control character
//! into the request.

#![no_main]

use berth::health::resolve::lookup_hosts;
use berth::health::target::{parse_target, Target};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let text = String::from_utf8_lossy(input);
    let (name, hosts) = text.split_once('\n').unwrap_or((&text, ""));
    let found = lookup_hosts(hosts, name);
    for (i, a) in found.iter().enumerate() {
        assert!(!found[..i].contains(a), "{a} listed twice");
        assert!(
            hosts.lines().any(|l| l
                .split('#')
                .next()
                .and_then(|l| l.split_whitespace().next())
                .and_then(|f| f.parse().ok())
                == Some(*a)),
            "{a} is not the first field of any line"
        );
    }
    assert_eq!(lookup_hosts(hosts, &name.to_ascii_uppercase()), found);
    if !name.ends_with('.') {
        assert_eq!(lookup_hosts(hosts, &format!("{name}.")), found);
    }
    match parse_target(name) {
        Ok(Target::Tcp { .. }) => {}
        Ok(Target::Http {
            path, host_header, ..
        }) => {
            // Both go into the request verbatim: no request smuggling.
            let clean = |s: &str| !s.bytes().any(|b| b.is_ascii_control() || b == b' ');
            assert!(clean(&path) && !path.is_empty(), "{path:?}");
            assert!(clean(&host_header), "{host_header:?}");
        }
        Ok(Target::Grpc {
            authority, service, ..
        }) => {
            // Both go into the request's headers and message verbatim.
            let clean = |s: &str| !s.chars().any(|c| c.is_control() || c.is_whitespace());
            assert!(clean(&authority) && !authority.is_empty(), "{authority:?}");
            assert!(clean(&service) && !service.contains(['/', '?']), "{service:?}");
        }
        Err(e) => assert!(!e.0.contains('\n') && !e.0.is_empty(), "{}", e.0),
    }
});
