//! Bytes from read() → lines → JSON lines, per stream: a complete line in
//! the read buffer is encoded straight from it (no copy); an unterminated
//! tail waits in a bounded buffer; a line too long for one emitted line is
//! cut into `partial` pieces as soon as whole pieces are available, so a
//! gigabyte without a newline costs one line's worth of memory.
//!
//! With `--log-multiline indent`, a text line is held (at most `HOLD`, and
//! only while it fits in one emitted line) so that continuation lines of a
//! stack trace join it as one event.

use std::time::{Duration, Instant};

use memchr::memchr;

use crate::logs::json::{escaped_size, is_object_line, Encoder, Piece, Timestamp};

/// How long a multiline event waits for its next continuation line.
pub const HOLD: Duration = Duration::from_millis(50);

pub struct StreamLines {
    stream: &'static str,
    /// The unterminated tail of the current line (bounded).
    pending: Vec<u8>,
    /// Pieces of the current line already emitted: (id, next ordinal).
    partial: Option<(u64, u64)>,
    next_id: u64,
    multiline: bool,
    /// The event held for continuations: its raw text (lines joined by
    /// `\n`), its escaped size, and the read time of its first line.
    held: Vec<u8>,
    held_escaped: usize,
    held_ts: Timestamp,
    /// When the held event started waiting; None: nothing held.
    held_since: Option<Instant>,
}

/// A line that continues the previous event: indented (stack frames),
/// a Java `Caused by:` or a `... 12 more` elision.
pub fn is_continuation(line: &[u8]) -> bool {
    matches!(line.first(), Some(b' ' | b'\t'))
        || line.starts_with(b"Caused by:")
        || line.starts_with(b"... ")
}

impl StreamLines {
    pub fn new(stream: &'static str, _enc: &Encoder) -> StreamLines {
        StreamLines {
            stream,
            pending: Vec::new(),
            partial: None,
            next_id: 1,
            multiline: false,
            held: Vec::new(),
            held_escaped: 0,
            held_ts: Timestamp::from_unix_micros(0),
            held_since: None,
        }
    }

    /// Joins continuation lines into the previous event (`--log-multiline indent`).
    pub fn with_multiline(mut self, on: bool) -> StreamLines {
        self.multiline = on;
        self
    }

    /// When the held event must be written even if no continuation comes.
    pub fn hold_deadline(&self) -> Option<Instant> {
        self.held_since.map(|t| t + HOLD)
    }

    /// Writes the held event if it has waited its time.
    pub fn flush_due(&mut self, now: Instant, enc: &Encoder, out: &mut Vec<u8>) {
        if self.hold_deadline().is_some_and(|d| now >= d) {
            self.flush_held(enc, out);
        }
    }

    /// Writes the held event now.
    pub fn flush_held(&mut self, enc: &Encoder, out: &mut Vec<u8>) {
        if self.held_since.take().is_none() {
            return;
        }
        let text = std::mem::take(&mut self.held);
        let ts = self.held_ts;
        // It fits by construction; pieces only if that ever changes.
        if !enc.line(out, &ts, self.stream, &text) {
            self.emit_pieces(&text, enc, &ts, out);
        }
        self.held = text;
        self.held.clear();
    }

    /// Holds `line` for continuations, or joins it to the held event.
    /// False: the caller writes it now (the held event has been written).
    fn hold(&mut self, line: &[u8], enc: &Encoder, ts: &Timestamp, out: &mut Vec<u8>) -> bool {
        let room = enc.text_room(self.stream);
        let object = is_object_line(line);
        if self.held_since.is_some() && !object && is_continuation(line) {
            // `\n` between the lines escapes to two bytes.
            let grown = self.held_escaped + 2 + escaped_size(line);
            if grown <= room {
                self.held.push(b'\n');
                self.held.extend_from_slice(line);
                self.held_escaped = grown;
                return true;
            }
        }
        self.flush_held(enc, out);
        if object {
            return false;
        }
        let escaped = escaped_size(line);
        if escaped > room {
            return false;
        }
        self.held.extend_from_slice(line);
        self.held_escaped = escaped;
        self.held_ts = *ts;
        self.held_since = Some(Instant::now());
        true
    }

    /// After a flood: the line buffers' memory back to the allocator.
    pub fn give_back(&mut self) {
        self.pending.shrink_to(0);
        self.held.shrink_to(0);
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
        loop {
            // The common line (plain ASCII) in one pass; the rest line by
            // line. Held events need each line: not with --log-multiline.
            if !self.multiline {
                rest = &rest[enc.plain_lines(out, ts, self.stream, rest)..];
            }
            let Some(nl) = memchr(b'\n', rest) else {
                break;
            };
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
        self.flush_held(enc, out);
    }

    /// One complete line (without `\n`).
    fn emit(&mut self, line: &[u8], enc: &Encoder, ts: &Timestamp, out: &mut Vec<u8>) {
        let line = match line.split_last() {
            Some((b'\r', rest)) => rest,
            _ => line,
        };
        if self.partial.is_none() {
            if self.multiline && self.hold(line, enc, ts, out) {
                return;
            }
            if enc.line(out, ts, self.stream, line) {
                return;
            }
        }
        self.emit_pieces(line, enc, ts, out);
    }

    /// The rest of a line too long for one emitted line, as pieces.
    fn emit_pieces(&mut self, line: &[u8], enc: &Encoder, ts: &Timestamp, out: &mut Vec<u8>) {
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
        // The held event comes before this line's first piece.
        self.flush_held(enc, out);
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
        let e = Encoder::new("s", &[], 16384, KeyStyle::Default, false).unwrap();
        let v = run(&e, &[b"one\ntw", b"o\r\nthr", b"ee"]);
        assert_eq!(logical(&v), vec!["one", "two", "three"]);
    }

    #[test]
    fn empty_lines_are_lines() {
        let e = Encoder::new("s", &[], 16384, KeyStyle::Default, false).unwrap();
        assert_eq!(logical(&run(&e, &[b"\n\nx\n"])), vec!["", "", "x"]);
    }

    #[test]
    fn long_unterminated_line_is_cut_while_arriving_and_memory_stays_bounded() {
        let e = Encoder::new("s", &[], 1024, KeyStyle::Default, false).unwrap();
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
        let e = Encoder::new("s", &[], 16384, KeyStyle::Default, false).unwrap();
        let s = "€".as_bytes();
        assert_eq!(
            logical(&run(&e, &[&s[..1], &s[1..2], &s[2..], b"\n"])),
            vec!["€"]
        );
    }

    fn multiline(enc: &Encoder, chunks: &[&[u8]]) -> Vec<Value> {
        let mut s = StreamLines::new("stderr", enc).with_multiline(true);
        let mut out = Vec::new();
        for c in chunks {
            s.push(c, enc, &ts(), &mut out);
        }
        s.finish(enc, &ts(), &mut out);
        check_lines(&out, enc.max_line_bytes())
    }

    fn msgs(v: &[Value]) -> Vec<String> {
        v.iter()
            .map(|x| x["msg"].as_str().unwrap_or("<object>").to_string())
            .collect()
    }

    #[test]
    fn multiline_joins_a_java_stack_trace_into_one_event() {
        let e = Encoder::new("s", &[], 16384, KeyStyle::Default, false).unwrap();
        let trace: &[u8] = b"Exception in thread \"main\" java.lang.IllegalStateException: boom\n\
            \tat App.run(App.java:10)\n\
            \tat App.main(App.java:3)\n\
            Caused by: java.io.IOException: disk\n\
            \tat Disk.read(Disk.java:7)\n\
            ... 2 more\n\
            next event\n";
        let v = multiline(&e, &[trace]);
        let m = msgs(&v);
        assert_eq!(m.len(), 2, "{m:?}");
        assert!(m[0].starts_with("Exception in thread"));
        assert!(m[0].ends_with("\n... 2 more"), "{}", m[0]);
        assert_eq!(m[0].lines().count(), 6);
        assert_eq!(m[1], "next event");
    }

    #[test]
    fn multiline_joins_a_python_traceback_across_reads() {
        let e = Encoder::new("s", &[], 16384, KeyStyle::Default, false).unwrap();
        let v = multiline(
            &e,
            &[
                b"Traceback (most recent call last):\n  File \"a.py\", li",
                b"ne 1, in <module>\n    x()\nValueError: bad\n",
            ],
        );
        assert_eq!(
            msgs(&v),
            vec![
                "Traceback (most recent call last):\n  File \"a.py\", line 1, in <module>\n    x()",
                "ValueError: bad"
            ]
        );
    }

    #[test]
    fn multiline_never_joins_object_lines() {
        let e = Encoder::new("s", &[], 16384, KeyStyle::Default, false).unwrap();
        let v = multiline(&e, &[b"first\n  {\"level\":\"info\"}\n  indented\n"]);
        assert_eq!(v.len(), 3);
        assert_eq!(v[0]["msg"], "first");
        assert_eq!(v[1]["level"], "info");
        // An indented line after an object starts its own event.
        assert_eq!(v[2]["msg"], "  indented");
    }

    #[test]
    fn multiline_event_stops_at_the_limit_and_the_next_continuation_starts_anew() {
        let e = Encoder::new("s", &[], 1024, KeyStyle::Default, false).unwrap();
        let frame = [b' '; 300];
        let mut input = b"head\n".to_vec();
        for _ in 0..6 {
            input.extend_from_slice(&frame);
            input.push(b'\n');
        }
        let v = multiline(&e, &[&input]);
        let m = msgs(&v);
        // 300-byte frames: three fit beside "head" under 1024, three more
        // start the next event.
        assert_eq!(m.len(), 2, "{m:?}");
        assert!(m[0].starts_with("head\n"));
        assert!(m[1].starts_with(' '));
        // Nothing lost: the events hold every line, in order.
        let lines: usize = m.iter().map(|x| x.split('\n').count()).sum();
        assert_eq!(lines, 7);
    }

    #[test]
    fn multiline_holds_until_the_deadline_only_while_something_is_held() {
        let e = Encoder::new("s", &[], 16384, KeyStyle::Default, false).unwrap();
        let mut s = StreamLines::new("stdout", &e).with_multiline(true);
        let mut out = Vec::new();
        assert_eq!(s.hold_deadline(), None, "nothing pending: no wake-up");
        s.push(b"error: x\n\tat y\n", &e, &ts(), &mut out);
        assert!(out.is_empty(), "held");
        let d = s.hold_deadline().expect("a deadline while held");
        s.flush_due(d - Duration::from_millis(1), &e, &mut out);
        assert!(out.is_empty(), "not yet due");
        s.flush_due(d, &e, &mut out);
        let v = check_lines(&out, 16384);
        assert_eq!(msgs(&v), vec!["error: x\n\tat y"]);
        assert_eq!(s.hold_deadline(), None);
    }

    #[test]
    fn multiline_held_event_precedes_a_long_lines_pieces() {
        let e = Encoder::new("s", &[], 1024, KeyStyle::Default, false).unwrap();
        let mut s = StreamLines::new("stdout", &e).with_multiline(true);
        let mut out = Vec::new();
        s.push(b"short\n", &e, &ts(), &mut out);
        s.push(&[b'x'; 5000], &e, &ts(), &mut out);
        s.push(b"\n", &e, &ts(), &mut out);
        s.finish(&e, &ts(), &mut out);
        let v = check_lines(&out, 1024);
        assert_eq!(v[0]["msg"], "short");
        assert_eq!(logical(&v[1..]), vec!["x".repeat(5000)]);
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
            let e = Encoder::new("svc", &fields, max, KeyStyle::Default, false).unwrap();
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

        #[test]
        fn objects_and_text_under_any_fields_fit_and_reassemble(
            lines in proptest::collection::vec(prop_oneof![
                // App JSON objects of any size, fields that may clash with berth's.
                proptest::collection::btree_map(
                    prop_oneof![Just("level".to_string()), Just("ts".to_string()), Just("service".to_string()), Just("stream".to_string()), Just("app_stream".to_string()), "[a-z_]{1,8}"],
                    "[ -~\u{80}-\u{10ffff}]{0,400}", 0..8)
                    .prop_map(|m| serde_json::to_string(&m).unwrap()),
                "[ -~\t\u{80}-\u{10ffff}]{0,3000}",
            ], 1..8),
            fields in proptest::collection::vec(("[a-z.@_]{1,10}", "[ -~\u{1}\u{80}-\u{10ffff}]{0,200}"), 0..4),
            max in 1024usize..4096,
            cut in 1usize..5000,
            stream_level in proptest::bool::ANY,
        ) {
            let Ok(e) = Encoder::new("svc", &fields, max, KeyStyle::Default, stream_level) else {
                // Fields that leave no room are refused at start (125).
                return Ok(());
            };
            let mut data = Vec::new();
            for l in &lines {
                data.extend_from_slice(l.as_bytes());
                data.push(b'\n');
            }
            let chunks: Vec<&[u8]> = data.chunks(cut).collect();
            let v = run(&e, &chunks);
            // A static `level` field, else the stream's level when asked.
            let level = fields.iter().rev().find(|(k, _)| k == "level").map(|(_, v)| v.as_str())
                .or(stream_level.then_some("info"));
            // Rebuild each input line from what was emitted.
            let mut i = 0;
            for l in &lines {
                let first = &v[i];
                // Whatever the app wrote, `stream` is the real one.
                prop_assert_eq!(first["stream"].as_str(), Some("stdout"));
                if first.get("partial_id").is_some() {
                    let mut text = String::new();
                    loop {
                        text.push_str(v[i]["msg"].as_str().unwrap());
                        i += 1;
                        if v[i - 1].get("partial").is_none() { break; }
                    }
                    prop_assert_eq!(&text, l);
                } else if let Some(app) = serde_json::from_str::<Value>(l).ok()
                    .and_then(|v| v.as_object().cloned())
                    .filter(|app| !(app.contains_key("stream") && app.contains_key("app_stream")))
                {
                    // Merged: the app's own fields win (its `stream` as
                    // `app_stream`), berth's are added.
                    for (k, val) in &app {
                        let k = if k == "stream" { "app_stream" } else { k.as_str() };
                        prop_assert_eq!(&first[k], val);
                    }
                    if !app.contains_key("level") {
                        prop_assert_eq!(first.get("level").and_then(Value::as_str), level);
                    }
                    i += 1;
                } else {
                    prop_assert_eq!(first["msg"].as_str().unwrap(), l.as_str());
                    prop_assert_eq!(first.get("level").and_then(Value::as_str), level);
                    i += 1;
                }
            }
            prop_assert_eq!(i, v.len());
        }
    }
}
