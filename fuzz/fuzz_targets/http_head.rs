//! Every HTTP head berth parses (src/http.rs, through httparse): the
//! probe's response-head reader (health/probe.rs), the drill's response
//! reader (drill/load.rs) and the status port's request handling
//! (status_http.rs), fed from memory in short reads.
//!
//! Input: byte 0 is the read size (1 … 256), the rest is what the peer
//! sends. Properties: never panics; the read size does not change any
//! verdict; errors are one printable line under 400 bytes; a final status
//! is 100…599 and not an interim 1xx (101 excepted); the probe agrees with
//! httparse run directly on the whole input (interim heads skipped, codes
//! outside 100…599 refused), so berth's bookkeeping around httparse (when to call it, the
//! empty lines it skips itself) loses and invents nothing; a response the
//! drill reads whole has the probe's status; the status port answers every
//! whole request head under 1 KiB, with one of its own codes, and waits on
//! an incomplete one. `--header` validation is fuzzed on the same bytes: an
//! accepted header carries no CR or LF (no request smuggling).

#![no_main]

use berth::drill::load::{Reader, Step};
use berth::health::probe::{read_final_status, validate_header};
use berth::status::Snapshot;
use berth::status_http::{response, MAX_REQUEST};
use libfuzzer_sys::fuzz_target;

#[path = "trickle.rs"]
mod trickle;
use trickle::Trickle;

/// The final status by httparse alone: None when the input holds no whole
/// final head or a malformed one.
fn reference(mut data: &[u8]) -> Option<u16> {
    let mut slots = vec![httparse::EMPTY_HEADER; data.len() + 1];
    loop {
        let mut r = httparse::Response::new(&mut slots);
        let httparse::Status::Complete(n) = r.parse(data).ok()? else {
            return None;
        };
        let code = r.code?;
        if !(100..=599).contains(&code) {
            return None;
        }
        if (100..200).contains(&code) && code != 101 {
            data = &data[n..];
            continue;
        }
        return Some(code);
    }
}

/// A reason as berth prints it: printable, so one line, and under 400
/// bytes, however much of the peer's garbage it quotes.
fn short_printable(reason: &str) -> bool {
    reason.len() < 400 && !reason.chars().any(char::is_control)
}

/// The drill's reader over `data` in reads of `size`, then EOF.
fn drill(data: &[u8], size: usize) -> Option<u16> {
    let mut r = Reader::default();
    let mut step = Ok(Step::More);
    for piece in data.chunks(size) {
        step = r.feed(piece);
        if !matches!(step, Ok(Step::More)) {
            break;
        }
    }
    if matches!(step, Ok(Step::More)) {
        step = r.eof();
    }
    // Empty for the failures the drill only counts (reset, timeout).
    if let Err((_, why)) = &step {
        assert!(short_printable(why), "{why:?}");
    }
    match step {
        Ok(Step::Done { status, .. }) => Some(status),
        _ => None,
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&size, data)) = input.split_first() else {
        return;
    };
    let size = usize::from(size) + 1;

    // The probe.
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
    for r in [&trickled, &whole] {
        if let Err(e) = r {
            assert!(!e.is_empty() && short_printable(e), "{e:?}");
        }
    }
    if let Ok(code) = whole {
        assert!((100..=599).contains(&code));
        assert!(
            !(100..200).contains(&code) || code == 101,
            "interim {code} returned"
        );
    }
    assert_eq!(whole.as_ref().ok().copied(), reference(data), "httparse disagrees");

    // The drill.
    let drilled = drill(data, size);
    assert_eq!(drilled, drill(data, usize::MAX), "read size {size} changed the drill");
    if let Some(status) = drilled {
        assert_eq!(whole, Ok(status));
    }

    // The status port, on what fits its buffer.
    let head = &data[..data.len().min(MAX_REQUEST)];
    let snap = Snapshot {
        pid: 1,
        init: "entrypoint",
        app_pid: Some(7),
        app_uid: 0,
        uptime_s: 1.0,
        health: "healthy",
        passed_once: true,
        draining: false,
        running: true,
        waiting: false,
    };
    let mut slots = vec![httparse::EMPTY_HEADER; head.len() + 1];
    let complete = matches!(
        httparse::Request::new(&mut slots).parse(head),
        Ok(httparse::Status::Complete(_))
    );
    match response(head, &snap) {
        Some(r) => {
            let code = r.get(9..12).unwrap_or_default();
            assert!(r.starts_with(b"HTTP/1.1 "));
            assert!(
                [&b"200"[..], b"404", b"405", b"400", b"431"].contains(&code),
                "{:?}",
                String::from_utf8_lossy(&r)
            );
            let routed = [&b"200"[..], b"404", b"405"].contains(&code);
            assert_eq!(complete, routed, "{:?}", String::from_utf8_lossy(&r));
        }
        None => assert!(!complete && head.len() < MAX_REQUEST, "a whole head unanswered"),
    }

    let text = String::from_utf8_lossy(data);
    if validate_header(&text).is_ok() {
        assert!(!text.contains('\r') && !text.contains('\n'), "{text:?}");
    }
});
