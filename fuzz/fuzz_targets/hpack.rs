//! The gRPC probe's HPACK decoder (health/hpack.rs).
//!
//! Input: byte 0 picks the decoded-list limit (64 … 16384 bytes), byte 1
//! where the rest splits into two header blocks decoded by one decoder (so
//! the dynamic table carries over, as on a connection).
//! Properties: never panics; a decoded list stays within the limit; the
//! table's accounted size equals its entries' and stays within its maximum
//! (never above 4096); decoded fields re-encoded as plain literals decode
//! back to the same list with a fresh decoder; Huffman coding is a
//! bijection: what decodes re-encodes to the very same bytes, and any bytes
//! encode and decode back.

#![no_main]

use berth::health::hpack::{encode_literal, huffman_decode, huffman_encode, Decoder, TABLE_SIZE};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let [limit_byte, split, rest @ ..] = input else {
        return;
    };
    let limit = 64 + usize::from(*limit_byte) * 64;
    let at = (usize::from(*split) * rest.len() / 255).min(rest.len());
    let (first, second) = rest.split_at(at);
    let mut decoder = Decoder::default();
    for block in [first, second] {
        let result = decoder.decode(block, limit);
        let (size, max, sum) = decoder.table_sizes();
        assert_eq!(size, sum, "accounted table size drifted");
        assert!(size <= max && max <= TABLE_SIZE, "{size} > {max}");
        let Ok(fields) = result else {
            assert!(!result.unwrap_err().contains('\n'));
            break;
        };
        let list: usize = fields.iter().map(|(n, v)| n.len() + v.len() + 32).sum();
        assert!(list <= limit, "{list} > {limit}");
        let mut plain = Vec::new();
        for (n, v) in &fields {
            encode_literal(&mut plain, n, v);
        }
        assert_eq!(Decoder::default().decode(&plain, limit).as_ref(), Ok(&fields));
    }
    if let Ok(text) = huffman_decode(rest, usize::MAX) {
        assert_eq!(huffman_encode(&text), rest, "two encodings of one string");
    }
    assert_eq!(huffman_decode(&huffman_encode(rest), usize::MAX).as_deref(), Ok(rest));
});
