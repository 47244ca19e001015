//! The gRPC probe's answer reader (health/grpc.rs over health/h2.rs and
//! health/hpack.rs): HTTP/2 frames from a server, fed from memory in short
//! reads, what the probe writes back dropped.
//!
//! Input: byte 0 is the read size (1 … 256), the rest is what the "server"
//! sends. Properties: never panics; never reads or allocates without bound
//! (libFuzzer's -rss_limit_mb and -timeout catch either); the read size
//! does not change the verdict; an unhealthy verdict is one short printable
//! line (under 400 bytes, no control character) starting `grpc: `. The
//! HealthCheckResponse decoder is fed the same bytes.

#![no_main]

use berth::health::grpc::{read_answer, serving_status};
use libfuzzer_sys::fuzz_target;

#[path = "trickle.rs"]
mod trickle;
use trickle::Trickle;

fuzz_target!(|input: &[u8]| {
    let Some((&size, data)) = input.split_first() else {
        return;
    };
    let size = usize::from(size) + 1;
    let trickled = read_answer(Trickle { data, size }, "svc");
    let whole = read_answer(Trickle { data, size: usize::MAX }, "svc");
    assert_eq!(trickled, whole, "read size {size} changed the verdict");
    if let Err(e) = &whole {
        assert!(e.starts_with("grpc: "), "{e:?}");
        assert!(e.len() < 400 && !e.chars().any(char::is_control), "{e:?}");
    }
    let _ = serving_status(data);
});
