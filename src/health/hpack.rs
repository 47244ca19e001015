//! HPACK (RFC 7541), the decoding half, for the gRPC probe's response
//! headers: indexed fields, literals with and without indexing, the dynamic
//! table with its size updates, and Huffman-coded strings. The request side
//! is encoded plainly (literal without indexing, no Huffman): a dozen fields
//! sent once do not need compression.
//!
//! Written here rather than taken from a crate: the crates measured (`hpack`
//! 0.3, `loona-hpack` 0.4) cost ~24 KiB each and pull in `log`/`tracing`,
//! and none bounds the *decoded* size, which is what a hostile peer attacks
//! (one byte per field can repeat a 4 KiB table entry: an "HPACK bomb").
//! Here every output is bounded: the decoded list by the caller's limit
//! (counted as RFC 9113's header list size: name + value + 32 per field),
//! the table by its 4096-byte default, integers by a few bytes.

use std::collections::VecDeque;

/// Our `SETTINGS_HEADER_TABLE_SIZE`: the default, never raised.
pub const TABLE_SIZE: usize = 4096;

/// Per-field overhead in table and header-list sizes (RFC 7541 §4.1).
const ENTRY_OVERHEAD: usize = 32;

/// RFC 7541 Appendix A: the static table, index 1..=61.
const STATIC: [(&str, &str); 61] = [
    (":authority", ""),
    (":method", "GET"),
    (":method", "POST"),
    (":path", "/"),
    (":path", "/index.html"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "200"),
    (":status", "204"),
    (":status", "206"),
    (":status", "304"),
    (":status", "400"),
    (":status", "404"),
    (":status", "500"),
    ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"),
    ("accept-language", ""),
    ("accept-ranges", ""),
    ("accept", ""),
    ("access-control-allow-origin", ""),
    ("age", ""),
    ("allow", ""),
    ("authorization", ""),
    ("cache-control", ""),
    ("content-disposition", ""),
    ("content-encoding", ""),
    ("content-language", ""),
    ("content-length", ""),
    ("content-location", ""),
    ("content-range", ""),
    ("content-type", ""),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("expect", ""),
    ("expires", ""),
    ("from", ""),
    ("host", ""),
    ("if-match", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("if-range", ""),
    ("if-unmodified-since", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("max-forwards", ""),
    ("proxy-authenticate", ""),
    ("proxy-authorization", ""),
    ("range", ""),
    ("referer", ""),
    ("refresh", ""),
    ("retry-after", ""),
    ("server", ""),
    ("set-cookie", ""),
    ("strict-transport-security", ""),
    ("transfer-encoding", ""),
    ("user-agent", ""),
    ("vary", ""),
    ("via", ""),
    ("www-authenticate", ""),
];

/// RFC 7541 Appendix B: the Huffman code length of each symbol (0..=255,
/// then EOS). The code is canonical (codes of one length are consecutive, in
/// symbol order; a unit test checks it against the RFC's codes), so the
/// lengths alone define it.
const HUFFMAN_LENGTHS: [u8; 257] = [
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28,
    28, 28, 28, 28, 28, 28, 28, 28, 6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5,
    5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, 13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, 15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6,
    6, 5, 6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, 20, 22, 20, 20, 22, 22, 22, 23, 22,
    23, 23, 23, 23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, 22,
    21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20,
    22, 22, 22, 23, 22, 22, 23, 26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19,
    21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, 20, 24, 20, 21, 22, 21, 21, 23, 22,
    22, 25, 25, 24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, 30,
];

const MAX_CODE_LEN: usize = 30;
const EOS: u16 = 256;

/// How many codes have each length (index = length).
const COUNTS: [u16; MAX_CODE_LEN + 1] = {
    let mut counts = [0u16; MAX_CODE_LEN + 1];
    let mut s = 0;
    while s < HUFFMAN_LENGTHS.len() {
        counts[HUFFMAN_LENGTHS[s] as usize] += 1;
        s += 1;
    }
    counts
};

/// The symbols ordered by (code length, symbol): canonical code order.
const SORTED: [u16; 257] = {
    let mut sorted = [0u16; 257];
    let mut next = 0;
    let mut len = 1;
    while len <= MAX_CODE_LEN {
        let mut s = 0;
        while s < HUFFMAN_LENGTHS.len() {
            if HUFFMAN_LENGTHS[s] as usize == len {
                sorted[next] = s as u16;
                next += 1;
            }
            s += 1;
        }
        len += 1;
    }
    sorted
};

/// A decoded header list: (name, value) pairs in order.
pub type Fields = Vec<(Vec<u8>, Vec<u8>)>;

/// The decoder's state across header blocks of one connection.
pub struct Decoder {
    /// Newest entry first (dynamic index 62 is `table[0]`).
    table: VecDeque<(Vec<u8>, Vec<u8>)>,
    /// Sum of the entries' sizes (name + value + 32 each).
    size: usize,
    /// The current maximum, lowered or restored by size updates.
    max_size: usize,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder {
            table: VecDeque::new(),
            size: 0,
            max_size: TABLE_SIZE,
        }
    }
}

impl Decoder {
    /// Decodes one complete header block. `limit` bounds the decoded list
    /// (RFC 9113 header list size); past it the block is refused. Err is a
    /// short reason; the connection must then be dropped (the table may be
    /// out of step with the peer's).
    pub fn decode(&mut self, block: &[u8], limit: usize) -> Result<Fields, String> {
        let mut fields = Fields::new();
        let mut list_size = 0usize;
        let mut input = block;
        let mut fields_seen = false;
        while let Some(&first) = input.first() {
            if first & 0x80 != 0 {
                let index = integer(&mut input, 7)?;
                let (name, value) = self.entry(index)?;
                list_size += name.len() + value.len() + ENTRY_OVERHEAD;
                if list_size > limit {
                    return Err(format!("header list larger than {limit} bytes"));
                }
                fields.push((name.to_vec(), value.to_vec()));
                fields_seen = true;
                continue;
            }
            if first & 0xe0 == 0x20 {
                // A size update must come before the block's first field (§4.2).
                if fields_seen {
                    return Err("table size update after a header field".to_string());
                }
                let size = integer(&mut input, 5)?;
                if size > TABLE_SIZE {
                    return Err(format!("table size update to {size} above {TABLE_SIZE}"));
                }
                self.max_size = size;
                self.evict(0);
                continue;
            }
            // Literals: with incremental indexing (01), without (0000), never indexed (0001).
            let (prefix, indexing) = if first & 0xc0 == 0x40 {
                (6, true)
            } else {
                (4, false)
            };
            let index = integer(&mut input, prefix)?;
            let name = match index {
                0 => string(&mut input, limit)?,
                i => self.entry(i)?.0.to_vec(),
            };
            let value = string(&mut input, limit)?;
            list_size += name.len() + value.len() + ENTRY_OVERHEAD;
            if list_size > limit {
                return Err(format!("header list larger than {limit} bytes"));
            }
            if indexing {
                self.insert(name.clone(), value.clone());
            }
            fields.push((name, value));
            fields_seen = true;
        }
        Ok(fields)
    }

    /// The dynamic table's accounted size, its current maximum and the sum
    /// of its entries' sizes (for the fuzz target's invariants: the first
    /// equals the last, and neither exceeds the maximum).
    pub fn table_sizes(&self) -> (usize, usize, usize) {
        let sum = self
            .table
            .iter()
            .map(|(n, v)| n.len() + v.len() + ENTRY_OVERHEAD)
            .sum();
        (self.size, self.max_size, sum)
    }

    /// Static index 1..=61, then the dynamic table newest first.
    fn entry(&self, index: usize) -> Result<(&[u8], &[u8]), String> {
        if let Some(i) = index.checked_sub(1) {
            if let Some((n, v)) = STATIC.get(i) {
                return Ok((n.as_bytes(), v.as_bytes()));
            }
        }
        index
            .checked_sub(STATIC.len() + 1)
            .and_then(|i| self.table.get(i))
            .map(|(n, v)| (n.as_slice(), v.as_slice()))
            .ok_or_else(|| format!("header index {index} out of range"))
    }

    fn insert(&mut self, name: Vec<u8>, value: Vec<u8>) {
        let size = name.len() + value.len() + ENTRY_OVERHEAD;
        // An entry larger than the table empties it and is not added (§4.4).
        self.evict(size);
        if size <= self.max_size {
            self.size += size;
            self.table.push_front((name, value));
        }
    }

    /// Drops the oldest entries until `room` more bytes fit.
    fn evict(&mut self, room: usize) {
        while self.size + room > self.max_size {
            match self.table.pop_back() {
                Some((n, v)) => self.size -= n.len() + v.len() + ENTRY_OVERHEAD,
                None => {
                    self.size = 0;
                    break;
                }
            }
        }
    }
}

/// An N-bit prefix integer (§5.1), bounded to 2^28 so it cannot overflow
/// (no field, index or size here comes near it).
fn integer(input: &mut &[u8], prefix_bits: u32) -> Result<usize, String> {
    let truncated = || "truncated integer".to_string();
    let (&first, mut rest) = input.split_first().ok_or_else(truncated)?;
    let max_prefix = (1usize << prefix_bits) - 1;
    let mut value = usize::from(first) & max_prefix;
    if value == max_prefix {
        let mut shift = 0;
        loop {
            let (&b, tail) = rest.split_first().ok_or_else(truncated)?;
            rest = tail;
            value += usize::from(b & 0x7f) << shift;
            shift += 7;
            if b & 0x80 == 0 {
                break;
            }
            if shift > 21 {
                return Err("integer too large".to_string());
            }
        }
    }
    *input = rest;
    Ok(value)
}

/// A string literal (§5.2): raw or Huffman-coded, at most `limit` bytes decoded.
fn string(input: &mut &[u8], limit: usize) -> Result<Vec<u8>, String> {
    let huffman = input.first().is_some_and(|b| b & 0x80 != 0);
    let len = integer(input, 7)?;
    let Some((raw, rest)) = input.split_at_checked(len) else {
        return Err("truncated string".to_string());
    };
    *input = rest;
    if !huffman {
        return Ok(raw.to_vec());
    }
    huffman_decode(raw, limit)
}

/// Decodes a Huffman-coded string, canonical-code style: one bit at a time,
/// comparing the code so far with the first code of its length. Padding
/// must be under 8 bits of ones and EOS must not appear (§5.2).
pub fn huffman_decode(raw: &[u8], limit: usize) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    // The code so far, its length, the first code of that length, and the
    // index in SORTED of the first symbol of that length.
    let (mut code, mut len, mut first, mut index) = (0u32, 0usize, 0u32, 0usize);
    for &byte in raw {
        for bit in (0..8).rev() {
            code = code << 1 | u32::from(byte >> bit & 1);
            len += 1;
            let count = u32::from(COUNTS.get(len).copied().unwrap_or(0));
            if code.wrapping_sub(first) < count {
                let at = index + (code - first) as usize;
                let symbol = SORTED.get(at).copied().unwrap_or(EOS);
                if symbol == EOS {
                    return Err("EOS in a Huffman string".to_string());
                }
                if out.len() >= limit {
                    return Err(format!("header string longer than {limit} bytes"));
                }
                out.push(symbol as u8);
                (code, len, first, index) = (0, 0, 0, 0);
            } else {
                if len >= MAX_CODE_LEN {
                    return Err("invalid Huffman code".to_string());
                }
                index += count as usize;
                first = (first + count) << 1;
            }
        }
    }
    // What is left must be a prefix of EOS (all ones), shorter than a byte.
    if len > 7 || code != (1u32 << len) - 1 {
        return Err("invalid Huffman padding".to_string());
    }
    Ok(out)
}

/// Huffman-encodes `s` (the inverse of [`huffman_decode`]); the probe sends
/// its own headers raw, so only tests and the fuzz target use this.
pub fn huffman_encode(s: &[u8]) -> Vec<u8> {
    // Canonical codes from the lengths, as the decoder walks them.
    let mut codes = [0u32; 257];
    let mut code = 0u32;
    let mut prev_len = 0usize;
    for &sym in &SORTED {
        let len = usize::from(HUFFMAN_LENGTHS[usize::from(sym)]);
        code <<= len - prev_len;
        codes[usize::from(sym)] = code;
        code += 1;
        prev_len = len;
    }
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u64, 0u32);
    for &b in s {
        let len = u32::from(HUFFMAN_LENGTHS[usize::from(b)]);
        acc = acc << len | u64::from(codes[usize::from(b)]);
        bits += len;
        while bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    if bits > 0 {
        let pad = 8 - bits;
        out.push(((acc << pad) as u8) | ((1u8 << pad) - 1));
    }
    out
}

/// Appends one field as a literal without indexing, new name, raw strings
/// (§6.2.2): what the probe sends.
pub fn encode_literal(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.push(0);
    encode_string(out, name);
    encode_string(out, value);
}

fn encode_string(out: &mut Vec<u8>, s: &[u8]) {
    // 7-bit prefix integer, Huffman bit clear.
    let mut n = s.len();
    if n < 127 {
        out.push(n as u8);
    } else {
        out.push(127);
        n -= 127;
        while n >= 128 {
            out.push((n % 128) as u8 | 0x80);
            n /= 128;
        }
        out.push(n as u8);
    }
    out.extend_from_slice(s);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn pairs(fields: &Fields) -> Vec<(String, String)> {
        fields
            .iter()
            .map(|(n, v)| {
                (
                    String::from_utf8_lossy(n).into_owned(),
                    String::from_utf8_lossy(v).into_owned(),
                )
            })
            .collect()
    }

    fn want(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn huffman_code_is_the_rfcs() {
        // Spot checks against RFC 7541 Appendix B codes (left-aligned).
        let cases: &[(u8, &[u8])] = &[
            (b'0', &[0b0000_0111]),           // 00000 (5 bits) + padding
            (b'a', &[0b0001_1111]),           // 00011
            (b' ', &[0b0101_0011]),           // 010100 (6 bits)
            (b'A', &[0b1000_0111]),           // 100001
            (b'{', &[0xff, 0xfd]),            // 111111111111110 (15 bits)
            (0, &[0xff, 0xc7]),               // 1111111111000 (13 bits)
            (255, &[0xff, 0xff, 0xfb, 0xbf]), // 11111111111111111111101110 (26 bits)
        ];
        for (sym, encoded) in cases {
            assert_eq!(huffman_encode(&[*sym]), *encoded, "symbol {sym}");
            assert_eq!(huffman_decode(encoded, 100).unwrap(), vec![*sym]);
        }
    }

    #[test]
    fn huffman_round_trips_every_byte() {
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(huffman_decode(&huffman_encode(&all), 1000).unwrap(), all);
        assert_eq!(huffman_decode(&[], 10).unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn huffman_rejects_bad_padding_and_eos() {
        // 'a' (00011) padded with zeros instead of ones.
        assert!(huffman_decode(&[0b0001_1000], 10).is_err());
        // A whole byte of ones as padding (8 bits: too long).
        assert!(huffman_decode(&[0b0001_1111, 0xff], 10).is_err());
        // EOS itself (30 ones).
        assert_eq!(
            huffman_decode(&[0xff, 0xff, 0xff, 0xff], 10).unwrap_err(),
            "EOS in a Huffman string"
        );
        // The output limit holds.
        assert!(huffman_decode(&huffman_encode(b"abcdef"), 3).is_err());
    }

    #[test]
    fn rfc_c3_requests_without_huffman_share_a_dynamic_table() {
        let mut d = Decoder::default();
        let first = d
            .decode(
                &hex("8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d"),
                4096,
            )
            .unwrap();
        assert_eq!(
            pairs(&first),
            want(&[
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                (":authority", "www.example.com"),
            ])
        );
        assert_eq!(d.size, 57);
        let second = d
            .decode(&hex("8286 84be 5808 6e6f 2d63 6163 6865"), 4096)
            .unwrap();
        assert_eq!(
            pairs(&second),
            want(&[
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                (":authority", "www.example.com"),
                ("cache-control", "no-cache"),
            ])
        );
        assert_eq!(d.size, 110);
    }

    #[test]
    fn rfc_c6_responses_with_huffman_and_eviction() {
        // Table size 256 as in the RFC example.
        let mut d = Decoder {
            max_size: 256,
            ..Decoder::default()
        };
        let blocks = [
            "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6
             2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
            "4883 640e ffc1 c0bf",
            "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab
             77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f
             9587 3160 65c0 03ed 4ee5 b106 3d50 07",
        ];
        let mut got = Vec::new();
        for b in blocks {
            got.push(pairs(&d.decode(&hex(b), 4096).unwrap()));
        }
        assert_eq!(
            got[0],
            want(&[
                (":status", "302"),
                ("cache-control", "private"),
                ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
                ("location", "https://www.example.com"),
            ])
        );
        assert_eq!(
            got[1],
            want(&[
                (":status", "307"),
                ("cache-control", "private"),
                ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
                ("location", "https://www.example.com"),
            ])
        );
        assert_eq!(
            got[2],
            want(&[
                (":status", "200"),
                ("cache-control", "private"),
                ("date", "Mon, 21 Oct 2013 20:13:22 GMT"),
                ("location", "https://www.example.com"),
                ("content-encoding", "gzip"),
                (
                    "set-cookie",
                    "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1"
                ),
            ])
        );
        assert_eq!(d.size, 215);
        assert_eq!(d.table.len(), 3);
    }

    #[test]
    fn size_updates_evict_and_are_bounded() {
        let mut d = Decoder::default();
        d.decode(&hex("400161 0162"), 4096).unwrap(); // a: b, indexed
        assert_eq!(d.table.len(), 1);
        // Size update to 0 empties the table; index 62 is then gone.
        assert_eq!(d.decode(&hex("20"), 4096).unwrap(), Fields::new());
        assert_eq!(d.table.len(), 0);
        assert_eq!(
            d.decode(&hex("be"), 4096).unwrap_err(),
            "header index 62 out of range"
        );
        // Above our SETTINGS_HEADER_TABLE_SIZE.
        assert!(d.decode(&hex("3fe21f"), 4096).is_err());
        // After a field.
        assert!(d.decode(&hex("88 20"), 4096).is_err());
    }

    #[test]
    fn hostile_blocks_fail_cleanly() {
        let mut d = Decoder::default();
        for bad in ["80", "ff", "ffffffffffff01", "0005616263", "00ff", "8700"] {
            assert!(d.decode(&hex(bad), 4096).is_err(), "{bad}");
        }
        // Index 0 is invalid; a literal with a truncated name.
        assert_eq!(
            Decoder::default().decode(&hex("80"), 4096).unwrap_err(),
            "header index 0 out of range"
        );
    }

    #[test]
    fn an_hpack_bomb_stops_at_the_limit() {
        // One 4000-byte entry, then 1000 one-byte references to it.
        let mut block = vec![0x40];
        encode_string(&mut block, b"x");
        encode_string(&mut block, &vec![b'v'; 4000]);
        block.extend(std::iter::repeat_n(0xbe, 1000));
        let err = Decoder::default().decode(&block, 16 * 1024).unwrap_err();
        assert_eq!(err, "header list larger than 16384 bytes");
    }

    #[test]
    fn literals_we_encode_decode_back() {
        let mut block = Vec::new();
        let long = vec![b'z'; 300];
        encode_literal(&mut block, b":path", b"/grpc.health.v1.Health/Check");
        encode_literal(&mut block, b"x-long", &long);
        let fields = Decoder::default().decode(&block, 4096).unwrap();
        assert_eq!(
            fields,
            vec![
                (b":path".to_vec(), b"/grpc.health.v1.Health/Check".to_vec()),
                (b"x-long".to_vec(), long)
            ]
        );
    }
}
