//! Bytes from read() → lines → JSON lines, per stream: a complete line in
//! the read buffer is encoded straight from it (no copy); an unterminated
//! tail waits in a bounded buffer; a line too long for one emitted line is
//! cut into `partial` pieces as soon as whole pieces are available, so a
//! gigabyte without a newline costs one line's worth of memory.

use memchr::memchr;

use crate::logs::json::{Encoder, Piece, Timestamp};

pub struct StreamLines {
    stream: &'static str,
    /// The unterminated tail of the current line (bounded).
    pending: Vec<u8>,
    /// Pieces of the current line already emitted: (id, next ordinal).
    partial: Option<(u64, u64)>,
    next_id: u64,
}

impl StreamLines {
    pub fn new(stream: &'static str, _enc: &Encoder) -> StreamLines {
        StreamLines {
            stream,
            pending: Vec::new(),
            partial: None,
            next_id: 1,
        }
    }

    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty() || self.partial.is_some()
    }

    pub fn push(&mut self, data: &[u8], enc: &Encoder, ts: &Timestamp, out: &mut Vec<u8>) {
        let mut rest = data;
        if !self.pending.is_empty() || self.partial.is_some() {
            match memchr(b'\n', rest) {
                Some(nl) => {
                    self.pending.extend_from_slice(&rest[..nl]);
                    let line = std::mem::take(&mut self.pending);
                    self.emit(&line, enc, ts, out);
                    self.pending = line;
                    self.pending.clear();
                    rest = &rest[nl + 1..];
                }
                None => {
                    self.pending.extend_from_slice(rest);
                    self.cut_oversized(enc, ts, out);
                    return;
                }
            }
        }
        while let Some(nl) = memchr(b'\n', rest) {
            self.emit(&rest[..nl], enc, ts, out);
            rest = &rest[nl + 1..];
        }
        if !rest.is_empty() {
            self.pending.extend_from_slice(rest);
            self.cut_oversized(enc, ts, out);
        }
    }

    /// End of stream: the last line, even without a newline.
    pub fn finish(&mut self, enc: &Encoder, ts: &Timestamp, out: &mut Vec<u8>) {
        if self.has_pending() {
            let line = std::mem::take(&mut self.pending);
            self.emit(&line, enc, ts, out);
        }
    }

    /// One complete line (without `\n`).
    fn emit(&mut self, line: &[u8], enc: &Encoder, ts: &Timestamp, out: &mut Vec<u8>) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if self.partial.is_none() && enc.line(out, ts, self.stream, line) {
            return;
        }
        let (id, mut ordinal) = self.partial.take().unwrap_or_else(|| self.new_id());
        let mut rest = line;
        loop {
            let n = enc.piece(
                out,
                ts,
                self.stream,
                rest,
                Piece {
                    id,
                    ordinal,
                    last: true,
                },
            );
            ordinal += 1;
            rest = &rest[n..];
            if rest.is_empty() {
                // The piece that consumed the end was written as the last.
                return;
            }
        }
    }

    fn new_id(&mut self) -> (u64, u64) {
        let id = self.next_id;
        self.next_id += 1;
        (id, 1)
    }

    /// Emits the whole pieces of an unterminated line that can no longer
    /// fit in one emitted line, keeping only the remainder.
    fn cut_oversized(&mut self, enc: &Encoder, ts: &Timestamp, out: &mut Vec<u8>) {
        let limit = enc.max_line_bytes();
        if self.pending.len() <= limit {
            return;
        }
        let (id, mut ordinal) = self.partial.take().unwrap_or_else(|| self.new_id());
        let mut start = 0;
        // Keep more than a piece back: the end may be a `\r` before the
        // next read's `\n`, or the start of a UTF-8 character.
        while self.pending.len() - start > limit {
            let n = enc.piece(
                out,
                ts,
                self.stream,
                &self.pending[start..self.pending.len() - 4],
                Piece {
                    id,
                    ordinal,
                    last: false,
                },
            );
            if n == 0 {
                break;
            }
            start += n;
            ordinal += 1;
        }
        self.pending.drain(..start);
        self.partial = Some((id, ordinal));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::json::KeyStyle;
    use proptest::prelude::*;
    use serde_json::Value;

    fn ts() -> Timestamp {
        Timestamp::from_unix_micros(0)
    }

    fn run(enc: &Encoder, chunks: &[&[u8]]) -> Vec<Value> {
        let mut s = StreamLines::new("stdout", enc);
        let mut out = Vec::new();
        for c in chunks {
            s.push(c, enc, &ts(), &mut out);
        }
        s.finish(enc, &ts(), &mut out);
        check_lines(&out, enc.max_line_bytes())
    }

    fn check_lines(out: &[u8], max: usize) -> Vec<Value> {
        assert!(out.is_empty() || out.ends_with(b"\n"));
        out.split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| {
                assert!(l.len() < max, "emitted {} bytes, limit {max}", l.len() + 1);
                serde_json::from_slice(l)
                    .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(l)))
            })
            .collect()
    }

    /// Joins pieces back into logical lines (text lines only).
    fn logical(values: &[Value]) -> Vec<String> {
        let mut lines = Vec::new();
        let mut cur: Option<String> = None;
        for v in values {
            let msg = v["msg"].as_str().unwrap_or("").to_string();
            match (&mut cur, v.get("partial_id").is_some()) {
                (_, false) => lines.push(msg),
                (Some(c), true) => c.push_str(&msg),
                (None, true) => cur = Some(msg),
            }
            if v.get("partial_id").is_some() && v.get("partial").is_none() {
                lines.push(cur.take().unwrap());
            }
        }
        assert!(cur.is_none(), "unfinished partial line");
        lines
    }

    #[test]
    fn lines_across_reads_and_last_unterminated() {
        let e = Encoder::new("s", &[], 16384, KeyStyle::Default).unwrap();
        let v = run(&e, &[b"one\ntw", b"o\r\nthr", b"ee"]);
        assert_eq!(logical(&v), vec!["one", "two", "three"]);
    }

    #[test]
    fn empty_lines_are_lines() {
        let e = Encoder::new("s", &[], 16384, KeyStyle::Default).unwrap();
        assert_eq!(logical(&run(&e, &[b"\n\nx\n"])), vec!["", "", "x"]);
    }

    #[test]
    fn long_unterminated_line_is_cut_while_arriving_and_memory_stays_bounded() {
        let e = Encoder::new("s", &[], 1024, KeyStyle::Default).unwrap();
        let mut s = StreamLines::new("stdout", &e);
        let mut out = Vec::new();
        for _ in 0..1000 {
            s.push(&[b'a'; 4096], &e, &ts(), &mut out);
            assert!(s.pending.len() <= 1024 + 4096);
        }
        s.push(b"\n", &e, &ts(), &mut out);
        let v = check_lines(&out, 1024);
        let l = logical(&v);
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].len(), 4096 * 1000);
        let ids: std::collections::HashSet<_> =
            v.iter().map(|x| x["partial_id"].to_string()).collect();
        assert_eq!(ids.len(), 1);
        for (i, x) in v.iter().enumerate() {
            assert_eq!(x["partial_ordinal"], (i + 1) as u64);
        }
    }

    #[test]
    fn utf8_straddling_reads_decodes_as_a_whole() {
        let e = Encoder::new("s", &[], 16384, KeyStyle::Default).unwrap();
        let s = "€".as_bytes();
        assert_eq!(
            logical(&run(&e, &[&s[..1], &s[1..2], &s[2..], b"\n"])),
            vec!["€"]
        );
    }

    proptest! {
        #[test]
        fn any_input_any_chunks_valid_bounded_and_lossless(
            // No '{': object lines are covered by json.rs's tests.
            data in proptest::collection::vec(prop_oneof![
                Just(b'\n'), Just(b'\r'), Just(b'"'), Just(b'\\'), Just(0x01u8), Just(0xffu8),
                Just(0xe2u8), Just(0x82u8), Just(0xacu8), any::<u8>(), 0x20u8..0x7f
            ].prop_map(|b| if b == b'{' { b'(' } else { b }), 0..6000),
            cuts in proptest::collection::vec(1usize..700, 1..20),
            max in 1024usize..2048,
            nfields in 0usize..3,
        ) {
            let fields: Vec<(String, String)> = (0..nfields).map(|i| (format!("k{i}"), "v\"\\\u{1}".repeat(i * 5))).collect();
            let e = Encoder::new("svc", &fields, max, KeyStyle::Default).unwrap();
            let mut chunks = Vec::new();
            let mut at = 0;
            for c in cuts.iter().cycle() {
                if at >= data.len() { break; }
                let end = (at + c).min(data.len());
                chunks.push(&data[at..end]);
                at = end;
            }
            let v = run(&e, &chunks);
            // Every input line, lossily decoded, with \r dropped at the end.
            let mut parts: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
            if parts.last().is_some_and(|l| l.is_empty()) { parts.pop(); }
            let want: Vec<String> = parts
                .into_iter()
                .map(|p| String::from_utf8_lossy(p.strip_suffix(b"\r").unwrap_or(p)).into_owned())
                .collect();
            prop_assert_eq!(logical(&v), want);
        }
    }
}
