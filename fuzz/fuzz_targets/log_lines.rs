//! The log line splitter and encoder (logs/split.rs + logs/json.rs): arbitrary
//! bytes arriving in arbitrary read chunks.
//!
//! Input: 4 header bytes, then the app's output.
//! - byte 0: `--log-max-line` = 1024 + 8·b (1024 … 3064)
//! - byte 1: key style (b % 3), number of `--log-field`s ((b / 3) % 3),
//!   `--log-stream-level` ((b / 9) % 2)
//! - bytes 2, 3: the read sizes, cycled (1 … 256 each)
//!
//! Properties checked:
//! 1. every emitted line is one valid JSON object (serde_json) ending in `\n`;
//! 2. no emitted line is longer than `--log-max-line`, newline included;
//! 3. the pieces reassemble to the input lines, lossily decoded, with a trailing
//!    `\r` dropped (JSON-object lines may instead be merged: then every member
//!    of the app's object is in the emitted object, unchanged, its `stream`
//!    as `app_stream`);
//! 4. the read chunking does not change the output (fixed timestamp);
//! 5. no app line yields stream berth: every emitted line has exactly one
//!    `stream` key (counted as a reader that keeps duplicates would), and it
//!    is the stream the line came from.

#![no_main]

use berth::logs::json::{Encoder, KeyStyle, Timestamp};
use berth::logs::split::StreamLines;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn parse(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    use serde::Deserialize;
    let mut de = serde_json::Deserializer::from_slice(bytes);
    de.disable_recursion_limit();
    let v = Value::deserialize(&mut de)?;
    de.end()?;
    Ok(v)
}

/// How many top-level keys named `stream` (once unescaped) the object has:
/// serde_json's `Value` keeps only the last of duplicate keys.
fn stream_keys(bytes: &[u8]) -> usize {
    use serde::de::{Deserializer as _, IgnoredAny, MapAccess, Visitor};
    struct Count;
    impl<'de> Visitor<'de> for Count {
        type Value = usize;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<usize, A::Error> {
            let mut n = 0;
            while let Some(k) = m.next_key::<String>()? {
                n += usize::from(k == "stream");
                m.next_value::<IgnoredAny>()?;
            }
            Ok(n)
        }
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    de.disable_recursion_limit();
    (&mut de).deserialize_map(Count).expect("an object")
}

fn encode(enc: &Encoder, chunks: &[&[u8]]) -> Vec<u8> {
    let ts = Timestamp::from_unix_micros(1_700_000_000_123_456);
    let mut s = StreamLines::new("stdout", enc);
    let mut out = Vec::new();
    for c in chunks {
        s.push(c, enc, &ts, &mut out);
    }
    s.finish(enc, &ts, &mut out);
    out
}

/// Where an app object's member is found in the emitted line.
fn own(key: &str) -> &str {
    if key == "stream" {
        "app_stream"
    } else {
        key
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((head, data)) = input.split_first_chunk::<4>() else {
        return;
    };
    let max = 1024 + 8 * usize::from(head[0]);
    let (keys, msg_key) = match head[1] % 3 {
        0 => (KeyStyle::Default, "msg"),
        1 => (KeyStyle::Gcp, "message"),
        _ => (KeyStyle::Ecs, "message"),
    };
    let fields: Vec<(String, String)> = (0..usize::from(head[1] / 3 % 3))
        .map(|i| (format!("k{i}"), "v\"\\\u{1}é".repeat(i * 7)))
        .collect();
    let stream_level = head[1] / 9 % 2 == 1;
    let Ok(enc) = Encoder::new("svc", &fields, max, keys, stream_level) else {
        return;
    };
    let sizes = [usize::from(head[2]) + 1, usize::from(head[3]) + 1];
    let mut chunks = Vec::new();
    let mut at = 0;
    for size in sizes.iter().cycle() {
        if at >= data.len() {
            break;
        }
        let end = (at + size).min(data.len());
        chunks.push(&data[at..end]);
        at = end;
    }
    let out = encode(&enc, &chunks);
    let whole = encode(&enc, &[data]);
    assert!(out == whole, "chunking changed the output");

    assert!(out.is_empty() || out.ends_with(b"\n"));
    let mut records = Vec::new();
    for line in out.split_inclusive(|&b| b == b'\n') {
        assert!(line.len() <= max, "line of {} bytes over {max}", line.len());
        let v = parse(&line[..line.len() - 1]).unwrap_or_else(|e| {
            panic!("{e}: {}", String::from_utf8_lossy(line));
        });
        assert!(v.is_object(), "not an object");
        assert_eq!(v["stream"], "stdout", "{}", String::from_utf8_lossy(line));
        assert_eq!(stream_keys(&line[..line.len() - 1]), 1, "{}", String::from_utf8_lossy(line));
        records.push(v);
    }

    let mut want: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    if want.last().is_some_and(|l| l.is_empty()) {
        want.pop();
    }
    let mut records = records.into_iter();
    for raw in want {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let text = String::from_utf8_lossy(raw);
        let first = records.next().expect("an input line with no output");
        // An app object kept as an object (its members unchanged) may carry
        // keys named like berth's piece fields: it is not a piece.
        let t = raw.trim_ascii();
        let kept_object = matches!(parse(t), Ok(Value::Object(app))
            if app.iter().all(|(k, v)| &first[own(k)] == v));
        if first.get("partial_id").is_some() && !kept_object {
            let mut got = String::new();
            let mut rec = first;
            let id = rec["partial_id"].clone();
            let mut ordinal = 1;
            loop {
                assert_eq!(rec["partial_id"], id);
                assert_eq!(rec["partial_ordinal"], ordinal);
                got.push_str(rec[msg_key].as_str().expect("piece msg"));
                if rec.get("partial").is_none() {
                    break;
                }
                assert_eq!(rec["partial"], true);
                ordinal += 1;
                rec = records.next().expect("an unfinished partial line");
            }
            assert_eq!(got, text);
            continue;
        }
        if first[msg_key].as_str() == Some(&*text) && first.get("stream").is_some() {
            // A text line (or an app object whose msg happens to be the line).
            continue;
        }
        // A merged app object: its own members are kept as they were.
        assert!(
            t.first() == Some(&b'{') && t.last() == Some(&b'}'),
            "line changed: {text:?} → {first}"
        );
        if let Ok(Value::Object(app)) = parse(t) {
            for (k, v) in &app {
                assert_eq!(&first[own(k)], v, "member {k} of {text:?}");
            }
        }
    }
    assert!(records.next().is_none(), "output lines with no input line");
});
