//! The probe's HTTP response-head reader and status-line parser
//! (health/probe.rs), fed from memory in short reads.
//!
//! Input: byte 0 is the read size (1 … 256), the rest is what the "server"
//! sends. Properties: never panics; a final status is 100…599 and not an
//! interim 1xx (101 excepted); the read size does not change the verdict (only how
//! much garbage an error quotes);
//! errors are one line; a status line accepted alone gives the same code.
//! `--header` validation is fuzzed on the same bytes: an accepted header
//! carries no CR or LF (no request smuggling).

#![no_main]

use berth::health::probe::{parse_status_line, read_final_status, validate_header};
use libfuzzer_sys::fuzz_target;

#[path = "trickle.rs"]
mod trickle;
use trickle::Trickle;

fuzz_target!(|input: &[u8]| {
    let Some((&size, data)) = input.split_first() else {
        return;
    };
    let size = usize::from(size) + 1;
    let trickled = read_final_status(Trickle { data, size });
    let whole = read_final_status(Trickle {
        data,
        size: usize::MAX,
    });
    // Garbage fails as soon as it is seen, so the quoted excerpt may differ;
    // the verdict may not.
    assert_eq!(
        trickled.as_ref().ok(),
        whole.as_ref().ok(),
        "read size {size} changed the verdict"
    );
    if let Err(e) = &trickled {
        assert!(!e.contains('\n') && !e.is_empty(), "{e:?}");
    }
    match &whole {
        Ok(code) => {
            assert!((100..=599).contains(code));
            assert!(
                !(100..200).contains(code) || *code == 101,
                "interim {code} returned"
            );
        }
        Err(e) => assert!(!e.contains('\n') && !e.is_empty(), "{e:?}"),
    }
    let first = data.split_inclusive(|&b| b == b'\n').next().unwrap_or(data);
    match parse_status_line(first) {
        Ok(code) => {
            assert!((100..=599).contains(&code));
            if !(100..200).contains(&code) || code == 101 {
                // A complete final status line in front: the reader agrees.
                if first.ends_with(b"\n") {
                    assert_eq!(whole, Ok(code));
                }
            }
        }
        Err(e) => assert!(e.starts_with("malformed status line") && !e.contains('\n')),
    }
    let text = String::from_utf8_lossy(data);
    if validate_header(&text).is_ok() {
        assert!(!text.contains('\r') && !text.contains('\n'), "{text:?}");
    }
});
