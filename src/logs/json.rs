//! One app line (or a piece of one) → one JSON object: the envelope (`ts`,
//! `stream`, `service`, static fields), escaping, U+FFFD for invalid UTF-8,
//! the merge of lines that are JSON objects themselves, the `partial` pieces
//! that keep every emitted line under `--log-max-line`, RFC 3339 timestamps,
//! and berth's own event lines. Does no I/O: it appends to a caller's Vec.

use std::cell::Cell;
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyStyle {
    /// `ts` / `msg` / `level`
    Default,
    /// `time` / `message` / `severity` (Google Cloud Logging)
    Gcp,
    /// `@timestamp` / `message` / `log.level` (Elastic Common Schema)
    Ecs,
}

impl KeyStyle {
    fn ts(self) -> &'static str {
        match self {
            KeyStyle::Default => "ts",
            KeyStyle::Gcp => "time",
            KeyStyle::Ecs => "@timestamp",
        }
    }
    fn msg(self) -> &'static str {
        match self {
            KeyStyle::Default => "msg",
            KeyStyle::Gcp | KeyStyle::Ecs => "message",
        }
    }
    fn level(self) -> &'static str {
        match self {
            KeyStyle::Default => "level",
            KeyStyle::Gcp => "severity",
            KeyStyle::Ecs => "log.level",
        }
    }
    /// Cloud Logging reads upper-case severities.
    fn level_value(self, level: &str) -> &str {
        match (self, level) {
            (KeyStyle::Gcp, "info") => "INFO",
            (KeyStyle::Gcp, "warn") => "WARNING",
            (KeyStyle::Gcp, "error") => "ERROR",
            _ => level,
        }
    }
}

/// A formatted timestamp, made once per read() and shared by its lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timestamp {
    text: [u8; 27],
}

impl Timestamp {
    pub fn now() -> Timestamp {
        let micros = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0);
        Timestamp::from_unix_micros(micros)
    }

    /// `YYYY-MM-DDTHH:MM:SS.ffffffZ` from microseconds since the epoch
    /// (days → civil date after Howard Hinnant's `civil_from_days`).
    pub fn from_unix_micros(micros: u64) -> Timestamp {
        let secs = micros / 1_000_000;
        let frac = (micros % 1_000_000) as u32;
        let days = (secs / 86_400) as i64;
        let sod = (secs % 86_400) as u32;
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = (yoe + era * 400 + i64::from(month <= 2)).clamp(0, 9999) as u32;
        let mut t = *b"0000-00-00T00:00:00.000000Z";
        let mut put = |at: usize, width: usize, mut v: u32| {
            for i in (0..width).rev() {
                t[at + i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
        };
        put(0, 4, year);
        put(5, 2, month);
        put(8, 2, day);
        put(11, 2, sod / 3600);
        put(14, 2, sod / 60 % 60);
        put(17, 2, sod % 60);
        put(20, 6, frac);
        Timestamp { text: t }
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII digits and separators are ever written.
        std::str::from_utf8(&self.text).unwrap_or("1970-01-01T00:00:00.000000Z")
    }
}

/// Bytes that cannot appear raw in a JSON string.
const fn escape_table() -> [bool; 256] {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
}
static NEEDS_ESCAPE: [bool; 256] = escape_table();

const REPLACEMENT: &[u8] = "\u{FFFD}".as_bytes();

fn escaped_len(b: u8) -> usize {
    match b {
        b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 2,
        _ => 6,
    }
}

fn push_escape(out: &mut Vec<u8>, b: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    match b {
        b'"' => out.extend_from_slice(b"\\\""),
        b'\\' => out.extend_from_slice(b"\\\\"),
        b'\n' => out.extend_from_slice(b"\\n"),
        b'\r' => out.extend_from_slice(b"\\r"),
        b'\t' => out.extend_from_slice(b"\\t"),
        0x08 => out.extend_from_slice(b"\\b"),
        0x0c => out.extend_from_slice(b"\\f"),
        _ => out.extend_from_slice(&[
            b'\\',
            b'u',
            b'0',
            b'0',
            HEX[(b >> 4) as usize],
            HEX[(b & 15) as usize],
        ]),
    }
}

/// 0 for `stdout`, 1 for `stderr` (the prebuilt heads), by byte pattern:
/// a `&str` comparison is a `memcmp` call per line on the hot path.
#[inline(always)]
fn app_stream_index(stream: &str) -> Option<usize> {
    match stream.as_bytes() {
        [b's', b't', b'd', b'o', b'u', b't'] => Some(0),
        [b's', b't', b'd', b'e', b'r', b'r'] => Some(1),
        _ => None,
    }
}

/// True when the bytes are their own JSON string body (printable ASCII,
/// no `"` or `\`): such a line is copied whole. The scan is SIMD, in
/// sys.rs, since it runs over every byte of every log line.
fn is_plain_ascii(bytes: &[u8]) -> bool {
    crate::sys::is_json_plain_ascii(bytes)
}

/// Appends the escaped body of lossy-UTF-8 `bytes`, writing at most
/// `budget` bytes; returns how many input bytes were consumed. Cuts fall on
/// character boundaries, never inside an escape or an invalid sequence.
fn escape_limited(out: &mut Vec<u8>, bytes: &[u8], budget: usize) -> usize {
    // The common line: plain ASCII that fits is copied as it is.
    if bytes.len() <= budget && is_plain_ascii(bytes) {
        crate::sys::append_short(out, bytes);
        return bytes.len();
    }
    let mut left = budget;
    let mut consumed = 0;
    for chunk in bytes.utf8_chunks() {
        let valid = chunk.valid().as_bytes();
        let mut i = 0;
        while i < valid.len() {
            let run = valid[i..]
                .iter()
                .position(|&b| NEEDS_ESCAPE[b as usize])
                .unwrap_or(valid.len() - i);
            if run > 0 {
                let mut take = run.min(left);
                if take < run {
                    // Back off to a character boundary.
                    while take > 0 && (valid[i + take] & 0xC0) == 0x80 {
                        take -= 1;
                    }
                }
                out.extend_from_slice(&valid[i..i + take]);
                left -= take;
                i += take;
                consumed += take;
                if take < run {
                    return consumed;
                }
            }
            if i < valid.len() {
                let b = valid[i];
                let n = escaped_len(b);
                if n > left {
                    return consumed;
                }
                push_escape(out, b);
                left -= n;
                i += 1;
                consumed += 1;
            }
        }
        let invalid = chunk.invalid();
        if !invalid.is_empty() {
            if REPLACEMENT.len() > left {
                return consumed;
            }
            out.extend_from_slice(REPLACEMENT);
            left -= REPLACEMENT.len();
            consumed += invalid.len();
        }
    }
    consumed
}

/// Appends the escaped JSON string body (no quotes) of lossy-UTF-8 `bytes`.
pub fn escape_into(out: &mut Vec<u8>, bytes: &[u8]) {
    escape_limited(out, bytes, usize::MAX);
}

/// How many bytes `escape_into` would write for `bytes`.
pub fn escaped_size(bytes: &[u8]) -> usize {
    let mut n = 0;
    for chunk in bytes.utf8_chunks() {
        for &b in chunk.valid().as_bytes() {
            n += if NEEDS_ESCAPE[b as usize] {
                escaped_len(b)
            } else {
                1
            };
        }
        if !chunk.invalid().is_empty() {
            n += REPLACEMENT.len();
        }
    }
    n
}

/// False when a line that begins with `b` may be a JSON object, which
/// `plain_lines` leaves to `line`: `{`, or a space `trim_ascii` skips (the
/// other bytes it skips are controls, never plain).
#[inline(always)]
fn may_be_plain(b: u8) -> bool {
    b != b'{' && b != b' '
}

/// The line is exactly one JSON object (its fields would be merged).
pub fn is_object_line(line: &[u8]) -> bool {
    let t = line.trim_ascii();
    t.len() >= 2 && t[0] == b'{' && t[t.len() - 1] == b'}' && object_keys(t).is_some()
}

fn push_str_field(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    out.extend_from_slice(b",\"");
    escape_into(out, key.as_bytes());
    out.extend_from_slice(b"\":\"");
    escape_into(out, value);
    out.push(b'"');
}

/// Room kept for `,"partial":true,"partial_id":"stderr-N","partial_ordinal":N}\n`.
const PARTIAL_TAIL_MAX: usize = 96;
/// The least message room a piece must have.
const MIN_MSG_ROOM: usize = 64;

/// A piece's place in a cut line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Piece {
    pub id: u64,
    pub ordinal: u64,
    pub last: bool,
}

pub struct Encoder {
    keys: KeyStyle,
    max_line_bytes: usize,
    service: Vec<u8>,
    /// `,"k":"v"` for every static field, escaped once.
    fields: Vec<u8>,
    field_keys: Vec<String>,
    /// The head of a text line up to the message body, for `stdout` and
    /// `stderr`, with a placeholder timestamp at `ts_at`: built once, so a
    /// line costs one copy for its whole envelope. (musl's memcpy starts
    /// every copy with `rep movsq`; a dozen small copies per line were most
    /// of berth's CPU time per log line, docs/benchmarks.md.)
    heads: [Vec<u8>; 2],
    ts_at: usize,
    /// `--log-stream-level`: text lines, and app objects without a level of
    /// their own, get their stream's level (off when a static field already
    /// has the level key).
    stream_level: bool,
    /// The top-level key spans of the object line being merged, kept so a
    /// line costs no allocation.
    key_spans: Cell<Vec<(usize, usize)>>,
}

impl Encoder {
    pub fn new(
        service: &str,
        fields: &[(String, String)],
        max_line_bytes: usize,
        keys: KeyStyle,
        stream_level: bool,
    ) -> Result<Encoder, String> {
        let mut f = Vec::new();
        for (k, v) in fields {
            push_str_field(&mut f, k, v.as_bytes());
        }
        let mut enc = Encoder {
            heads: [Vec::new(), Vec::new()],
            ts_at: 2 + keys.ts().len() + 3,
            keys,
            max_line_bytes,
            service: {
                let mut s = Vec::new();
                escape_into(&mut s, service.as_bytes());
                s
            },
            fields: f,
            field_keys: fields.iter().map(|(k, _)| k.clone()).collect(),
            stream_level: stream_level && !fields.iter().any(|(k, _)| k == keys.level()),
            key_spans: Cell::new(Vec::new()),
        };
        for (i, stream) in ["stdout", "stderr"].into_iter().enumerate() {
            let mut h = Vec::with_capacity(enc.head_len(stream));
            enc.write_head(&mut h, &Timestamp::from_unix_micros(0), stream);
            enc.write_stream_level(&mut h, stream);
            enc.write_msg_key(&mut h);
            enc.heads[i] = h;
        }
        let head = enc.head_len("stdout").max(enc.head_len("stderr"));
        if head + PARTIAL_TAIL_MAX + MIN_MSG_ROOM > max_line_bytes {
            return Err(format!(
                "--log-field and --service values leave no room under --log-max-line {max_line_bytes} \
                 (they take {head} bytes of every line)"
            ));
        }
        Ok(enc)
    }

    pub fn max_line_bytes(&self) -> usize {
        self.max_line_bytes
    }

    /// The key of a line's text (`msg`, or `message` for gcp and ecs),
    /// also used by berth's own `warn` events.
    pub fn msg_key(&self) -> &'static str {
        self.keys.msg()
    }

    /// The most escaped message bytes one unsplit text line of `stream`
    /// can carry under `--log-max-line`.
    pub fn text_room(&self, stream: &str) -> usize {
        let head = match app_stream_index(stream) {
            Some(i) => self.heads[i].len(),
            None => self.head_len(stream),
        };
        self.max_line_bytes.saturating_sub(head + 3)
    }

    /// The level a line of `stream` gets under `--log-stream-level`: GKE's
    /// agent gives a container's plain stdout INFO and stderr ERROR.
    fn stream_level(&self, stream: &str) -> Option<&'static str> {
        let level = match (self.stream_level, app_stream_index(stream)) {
            (true, Some(0)) => "info",
            (true, Some(_)) => "error",
            _ => return None,
        };
        Some(self.keys.level_value(level))
    }

    /// `,"level":"info"` when `stream_level` gives one.
    fn write_stream_level(&self, out: &mut Vec<u8>, stream: &str) {
        if let Some(v) = self.stream_level(stream) {
            push_str_field(out, self.keys.level(), v.as_bytes());
        }
    }

    /// `{"ts":"…","stream":"…","service":"…"<fields>[,"level":"…"],"msg":"`
    fn head_len(&self, stream: &str) -> usize {
        let k = self.keys;
        let level = self
            .stream_level(stream)
            .map_or(0, |v| 2 + k.level().len() + 3 + v.len() + 1);
        level
            + 2
            + k.ts().len()
            + 3
            + 27
            + 3
            + "stream".len()
            + 3
            + stream.len()
            + 3
            + "service".len()
            + 3
            + self.service.len()
            + 1
            + self.fields.len()
            + 2
            + k.msg().len()
            + 3
    }

    fn write_head(&self, out: &mut Vec<u8>, ts: &Timestamp, stream: &str) {
        out.extend_from_slice(b"{\"");
        out.extend_from_slice(self.keys.ts().as_bytes());
        out.extend_from_slice(b"\":\"");
        out.extend_from_slice(&ts.text);
        out.extend_from_slice(b"\",\"stream\":\"");
        out.extend_from_slice(stream.as_bytes());
        out.extend_from_slice(b"\",\"service\":\"");
        out.extend_from_slice(&self.service);
        out.push(b'"');
        out.extend_from_slice(&self.fields);
    }

    /// Encodes one whole line (without its `\n`; a trailing `\r` is the
    /// caller's to drop). Returns false when it does not fit in one line
    /// (nothing written): the caller cuts it with `piece`.
    pub fn line(&self, out: &mut Vec<u8>, ts: &Timestamp, stream: &str, line: &[u8]) -> bool {
        if self.object_line(out, ts, stream, line) {
            return true;
        }
        let start = out.len();
        let budget = self.text_room(stream);
        // The envelope is what the room leaves of the limit.
        out.reserve(self.max_line_bytes - budget + line.len());
        let head = app_stream_index(stream).map(|i| &self.heads[i]);
        match head {
            Some(h) => {
                crate::sys::append_short(out, h);
                let at = start + self.ts_at;
                crate::sys::overwrite_short(&mut out[at..at + ts.text.len()], &ts.text);
            }
            None => {
                self.write_head(out, ts, stream);
                self.write_stream_level(out, stream);
                self.write_msg_key(out);
            }
        }
        let consumed = escape_limited(out, line, budget);
        if consumed < line.len() {
            out.truncate(start);
            return false;
        }
        crate::sys::append_short(out, b"\"}\n");
        true
    }

    /// Encodes the whole plain lines at the start of `data` (each up to its
    /// `\n`) as `line` would, each in one pass (sys::append_plain_line);
    /// returns the bytes taken, newlines included. Stops at the first line
    /// that is not printable ASCII without `"` and `\`, is too long for one
    /// line, has no `\n` yet, or may be a JSON object (`may_be_plain`): the
    /// general path takes it from there. Only for stdout and stderr (the
    /// prebuilt heads).
    #[inline(always)]
    pub fn plain_lines(
        &self,
        out: &mut Vec<u8>,
        ts: &Timestamp,
        stream: &str,
        data: &[u8],
    ) -> usize {
        // Inlined up to here: a stream of app objects pays a compare per
        // line for this path, not a call.
        if !data.first().is_some_and(|&b| may_be_plain(b)) {
            return 0;
        }
        self.plain_lines_from(out, ts, stream, data)
    }

    fn plain_lines_from(
        &self,
        out: &mut Vec<u8>,
        ts: &Timestamp,
        stream: &str,
        data: &[u8],
    ) -> usize {
        let Some(head) = app_stream_index(stream).map(|i| &self.heads[i]) else {
            return 0;
        };
        let budget = self.text_room(stream);
        let mut used = 0;
        while let Some(&first) = data.get(used) {
            if !may_be_plain(first) {
                break;
            }
            let start = out.len();
            let Some(k) = crate::sys::append_plain_line(out, head, &data[used..], budget, b"\"}\n")
            else {
                break;
            };
            let at = start + self.ts_at;
            crate::sys::overwrite_short(&mut out[at..at + ts.text.len()], &ts.text);
            used += k + 1;
        }
        used
    }

    fn write_msg_key(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b",\"");
        out.extend_from_slice(self.keys.msg().as_bytes());
        out.extend_from_slice(b"\":\"");
    }

    /// Encodes the first piece of `text` that fits, with partial fields;
    /// returns the input bytes consumed. With `piece.last`, all of `text`
    /// must fit (the caller ensures it by calling until the rest fits).
    pub fn piece(
        &self,
        out: &mut Vec<u8>,
        ts: &Timestamp,
        stream: &str,
        text: &[u8],
        piece: Piece,
    ) -> usize {
        let budget = self.piece_budget(stream);
        self.write_head(out, ts, stream);
        self.write_stream_level(out, stream);
        self.write_msg_key(out);
        let consumed = escape_limited(out, text, budget);
        out.push(b'"');
        let last = piece.last && consumed == text.len();
        if !last {
            out.extend_from_slice(b",\"partial\":true");
        }
        out.extend_from_slice(b",\"partial_id\":\"");
        out.extend_from_slice(stream.as_bytes());
        out.push(b'-');
        push_u64(out, piece.id);
        out.extend_from_slice(b"\",\"partial_ordinal\":");
        push_u64(out, piece.ordinal);
        out.extend_from_slice(b"}\n");
        consumed
    }

    /// How many raw bytes certainly fit in one piece (escaping only grows).
    pub fn piece_budget(&self, stream: &str) -> usize {
        self.max_line_bytes - self.head_len(stream) - PARTIAL_TAIL_MAX
    }

    /// A line that is one JSON object keeps its members; berth adds its
    /// fields where missing. False (nothing written) when the line is not
    /// an object or the merged line would be too long.
    fn object_line(&self, out: &mut Vec<u8>, ts: &Timestamp, stream: &str, line: &[u8]) -> bool {
        let t = line.trim_ascii();
        if t.len() < 2 || t[0] != b'{' || t[t.len() - 1] != b'}' {
            return false;
        }
        // The key spans go to a buffer kept between lines: a malloc and a
        // free per line were a tenth of berth's CPU on object lines (perf).
        let mut keys = self.key_spans.take();
        let merged = object_keys_into(t, &mut keys) && self.merge_object(out, ts, stream, t, &keys);
        self.key_spans.set(keys);
        merged
    }

    /// `object_line` once `t` is known to be one object with these keys.
    fn merge_object(
        &self,
        out: &mut Vec<u8>,
        ts: &Timestamp,
        stream: &str,
        t: &[u8],
        keys: &[(usize, usize)],
    ) -> bool {
        use crate::sys::append_short as put;
        let is = |&(s, e): &(usize, usize), k: &str| key_is(&t[s..e], k);
        let has = |k: &str| keys.iter().any(|span| is(span, k));
        // `stream` is berth's: it always says where the line came from, so
        // an app cannot forge berth's events. The app's own `stream` is kept
        // as `app_stream`; an object with two, or with `app_stream` beside
        // it, goes out as text, since renaming would give it two keys of one
        // name (and many readers keep the last).
        let mut own_streams = keys.iter().filter(|span| is(span, "stream"));
        let renamed = own_streams.next().copied();
        if own_streams.next().is_some() || (renamed.is_some() && has("app_stream")) {
            return false;
        }
        let start = out.len();
        put(out, b"{");
        let mut first = true;
        let mut sep = |out: &mut Vec<u8>| {
            if !first {
                put(out, b",");
            }
            first = false;
        };
        if !has(self.keys.ts()) {
            sep(out);
            put(out, b"\"");
            put(out, self.keys.ts().as_bytes());
            put(out, b"\":\"");
            put(out, &ts.text);
            put(out, b"\"");
        }
        sep(out);
        put(out, b"\"stream\":\"");
        put(out, stream.as_bytes());
        put(out, b"\"");
        if !has("service") {
            sep(out);
            put(out, b"\"service\":\"");
            put(out, &self.service);
            put(out, b"\"");
        }
        if !self.field_keys.is_empty() {
            // Re-encode the static fields one by one: some may be set by the app.
            let mut rest = &self.fields[..];
            for k in &self.field_keys {
                let len = field_len(rest);
                if !has(k) {
                    sep(out);
                    put(out, &rest[1..len]);
                }
                rest = &rest[len..];
            }
        }
        if let Some(level) = self
            .stream_level(stream)
            .filter(|_| !has(self.keys.level()))
        {
            sep(out);
            put(out, b"\"");
            put(out, self.keys.level().as_bytes());
            put(out, b"\":\"");
            put(out, level.as_bytes());
            put(out, b"\"");
        }
        let body = &t[1..t.len() - 1];
        let lo = 1 + body.len() - body.trim_ascii_start().len();
        let hi = lo + body.trim_ascii().len();
        if hi > lo {
            sep(out);
            match renamed {
                Some((s, e)) => {
                    put(out, &t[lo..s]);
                    put(out, b"app_stream");
                    put(out, &t[e..hi]);
                }
                None => put(out, &t[lo..hi]),
            }
        }
        put(out, b"}\n");
        if out.len() - start > self.max_line_bytes {
            out.truncate(start);
            return false;
        }
        true
    }

    /// Starts one of berth's own event lines.
    pub fn event<'a>(
        &self,
        out: &'a mut Vec<u8>,
        ts: &Timestamp,
        level: &str,
        event: &str,
    ) -> EventBuilder<'a> {
        self.write_head(out, ts, "berth");
        push_str_field(
            out,
            self.keys.level(),
            self.keys.level_value(level).as_bytes(),
        );
        push_str_field(out, "event", event.as_bytes());
        EventBuilder { out }
    }
}

/// Whether the raw (still escaped) key of an app object is `want` once
/// decoded: `"str\u0065am"` is `stream` to every JSON reader.
fn key_is(raw: &[u8], want: &str) -> bool {
    if !raw.contains(&b'\\') {
        return raw == want.as_bytes();
    }
    // The parser has validated the escapes; decode them as UTF-16 units
    // (a `\uD83D\uDE00` pair is one character).
    let Ok(text) = std::str::from_utf8(raw) else {
        return false;
    };
    let mut units = Vec::with_capacity(raw.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            units.extend(c.encode_utf16(&mut [0; 2]).iter());
            continue;
        }
        let unit = match chars.next() {
            Some('b') => 0x08,
            Some('f') => 0x0c,
            Some('n') => 0x0a,
            Some('r') => 0x0d,
            Some('t') => 0x09,
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                u16::from_str_radix(&hex, 16).unwrap_or(0xFFFD)
            }
            Some(c) => c as u16,
            None => return false,
        };
        units.push(unit);
    }
    String::from_utf16(&units).is_ok_and(|k| k == want)
}

/// Length of the first `,"k":"v"` in pre-encoded fields: ends at the quote
/// that closes the value (escaped quotes are preceded by a backslash).
fn field_len(f: &[u8]) -> usize {
    let mut quotes = 0;
    let mut i = 1;
    while i < f.len() {
        match f[i] {
            b'\\' => i += 1,
            b'"' => {
                quotes += 1;
                if quotes == 4 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    f.len()
}

fn push_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// Adds fields to an event line; `finish` closes it.
pub struct EventBuilder<'a> {
    out: &'a mut Vec<u8>,
}

impl<'a> EventBuilder<'a> {
    fn key(&mut self, key: &str) {
        self.out.extend_from_slice(b",\"");
        escape_into(self.out, key.as_bytes());
        self.out.extend_from_slice(b"\":");
    }
    pub fn str(self, key: &str, value: &str) -> Self {
        self.bytes_lossy(key, value.as_bytes())
    }
    pub fn bytes_lossy(mut self, key: &str, value: &[u8]) -> Self {
        self.key(key);
        self.out.push(b'"');
        escape_into(self.out, value);
        self.out.push(b'"');
        self
    }
    pub fn u64(mut self, key: &str, v: u64) -> Self {
        self.key(key);
        push_u64(self.out, v);
        self
    }
    pub fn i64(mut self, key: &str, v: i64) -> Self {
        self.key(key);
        if v < 0 {
            self.out.push(b'-');
        }
        push_u64(self.out, v.unsigned_abs());
        self
    }
    pub fn f64_fixed(mut self, key: &str, v: f64, decimals: u32) -> Self {
        self.key(key);
        if v.is_finite() {
            self.out
                .extend_from_slice(format!("{v:.*}", decimals as usize).as_bytes());
        } else {
            self.out.extend_from_slice(b"null");
        }
        self
    }
    pub fn bool(mut self, key: &str, v: bool) -> Self {
        self.key(key);
        self.out
            .extend_from_slice(if v { b"true" as &[u8] } else { b"false" });
        self
    }
    pub fn null(mut self, key: &str) -> Self {
        self.key(key);
        self.out.extend_from_slice(b"null");
        self
    }
    pub fn opt_u64(self, key: &str, v: Option<u64>) -> Self {
        match v {
            Some(v) => self.u64(key, v),
            None => self.null(key),
        }
    }
    pub fn str_array(mut self, key: &str, items: &[&[u8]]) -> Self {
        self.key(key);
        self.out.push(b'[');
        for (i, it) in items.iter().enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            self.out.push(b'"');
            escape_into(self.out, it);
            self.out.push(b'"');
        }
        self.out.push(b']');
        self
    }
    /// An array of flat objects of strings: `[{"k":"v",...},...]`.
    pub fn str_objects<const N: usize>(mut self, key: &str, rows: &[[(&str, &str); N]]) -> Self {
        self.key(key);
        self.out.push(b'[');
        for (i, row) in rows.iter().enumerate() {
            self.out.extend_from_slice(if i > 0 { b",{" } else { b"{" });
            for (j, (k, v)) in row.iter().enumerate() {
                if j > 0 {
                    self.out.push(b',');
                }
                self.out.push(b'"');
                escape_into(self.out, k.as_bytes());
                self.out.extend_from_slice(b"\":\"");
                escape_into(self.out, v.as_bytes());
                self.out.push(b'"');
            }
            self.out.push(b'}');
        }
        self.out.push(b']');
        self
    }
    pub fn finish(self) {
        self.out.extend_from_slice(b"}\n");
    }
}

/// Validates `t` as exactly one JSON object (strict RFC 8259, UTF-8, depth
/// ≤ 64) and returns the spans of its top-level keys (inside the quotes).
fn object_keys(t: &[u8]) -> Option<Vec<(usize, usize)>> {
    let mut keys = Vec::new();
    object_keys_into(t, &mut keys).then_some(keys)
}

/// `object_keys` into a caller's buffer (cleared first); false when `t` is
/// not one object.
fn object_keys_into(t: &[u8], keys: &mut Vec<(usize, usize)>) -> bool {
    keys.clear();
    if std::str::from_utf8(t).is_err() {
        return false;
    }
    let mut p = Parser { s: t, i: 0, keys };
    p.ws();
    if p.value(0).is_none() {
        return false;
    }
    p.ws();
    p.i == t.len()
}

struct Parser<'a, 'k> {
    s: &'a [u8],
    i: usize,
    keys: &'k mut Vec<(usize, usize)>,
}

const MAX_DEPTH: usize = 64;

// `inline(always)`: at opt-level "z" these stay calls, one per byte.
impl Parser<'_, '_> {
    #[inline(always)]
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    #[inline(always)]
    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.i += 1;
        }
    }
    #[inline(always)]
    fn eat(&mut self, b: u8) -> Option<()> {
        (self.peek()? == b).then(|| self.i += 1)
    }
    fn lit(&mut self, w: &[u8]) -> Option<()> {
        self.s[self.i..].starts_with(w).then(|| self.i += w.len())
    }
    fn value(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        match self.peek()? {
            b'{' => self.object(depth),
            b'[' => self.array(depth),
            b'"' => self.string().map(|_| ()),
            b't' => self.lit(b"true"),
            b'f' => self.lit(b"false"),
            b'n' => self.lit(b"null"),
            _ => self.number(),
        }
    }
    fn object(&mut self, depth: usize) -> Option<()> {
        self.eat(b'{')?;
        self.ws();
        if self.eat(b'}').is_some() {
            return Some(());
        }
        loop {
            self.ws();
            let span = self.string()?;
            if depth == 0 {
                self.keys.push(span);
            }
            self.ws();
            self.eat(b':')?;
            self.ws();
            self.value(depth + 1)?;
            self.ws();
            match self.peek()? {
                b',' => self.i += 1,
                b'}' => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }
    fn array(&mut self, depth: usize) -> Option<()> {
        self.eat(b'[')?;
        self.ws();
        if self.eat(b']').is_some() {
            return Some(());
        }
        loop {
            self.ws();
            self.value(depth + 1)?;
            self.ws();
            match self.peek()? {
                b',' => self.i += 1,
                b']' => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }
    /// The four hex digits at `at`, as a number.
    fn hex4(&self, at: usize) -> Option<u32> {
        let hex = self.s.get(at..at + 4)?;
        if !hex.iter().all(u8::is_ascii_hexdigit) {
            return None;
        }
        u32::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()
    }
    /// Returns the span inside the quotes.
    fn string(&mut self) -> Option<(usize, usize)> {
        self.eat(b'"')?;
        let start = self.i;
        loop {
            // Skip a run of plain bytes at once: most of a log line.
            let run = self.s[self.i..]
                .iter()
                .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
            self.i += run;
            let b = self.peek()?;
            match b {
                b'"' => {
                    self.i += 1;
                    return Some((start, self.i - 1));
                }
                b'\\' => {
                    self.i += 1;
                    match self.peek()? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.i += 1,
                        b'u' => {
                            // A lone surrogate (`\ud800` not followed by a
                            // `\udc00`…`\udfff`, or a low one alone) is no
                            // character: serde_json and others refuse the
                            // whole line, so such a line is sent as text.
                            let u = self.hex4(self.i + 1)?;
                            self.i += 5;
                            if (0xDC00..0xE000).contains(&u) {
                                return None;
                            }
                            if (0xD800..0xDC00).contains(&u) {
                                if self.s.get(self.i..self.i + 2) != Some(b"\\u") {
                                    return None;
                                }
                                let low = self.hex4(self.i + 2)?;
                                if !(0xDC00..0xE000).contains(&low) {
                                    return None;
                                }
                                self.i += 6;
                            }
                        }
                        _ => return None,
                    }
                }
                0..=0x1f => return None,
                _ => self.i += 1,
            }
        }
    }
    fn number(&mut self) -> Option<()> {
        let digits = |p: &mut Self| -> usize {
            let s = p.i;
            while matches!(p.peek(), Some(b'0'..=b'9')) {
                p.i += 1;
            }
            p.i - s
        };
        let _ = self.eat(b'-');
        match self.peek()? {
            b'0' => self.i += 1,
            b'1'..=b'9' => {
                digits(self);
            }
            _ => return None,
        }
        if self.eat(b'.').is_some() && digits(self) == 0 {
            return None;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if digits(self) == 0 {
                return None;
            }
        }
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc() -> Encoder {
        Encoder::new("api", &[], 16384, KeyStyle::Default, false).unwrap()
    }

    fn ts() -> Timestamp {
        Timestamp::from_unix_micros(1_763_834_584_123_456)
    }

    fn one(e: &Encoder, line: &[u8]) -> serde_json::Value {
        let mut out = Vec::new();
        assert!(e.line(&mut out, &ts(), "stdout", line));
        assert_eq!(out.last(), Some(&b'\n'));
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn timestamps() {
        assert_eq!(
            Timestamp::from_unix_micros(0).as_str(),
            "1970-01-01T00:00:00.000000Z"
        );
        assert_eq!(ts().as_str(), "2025-11-22T18:03:04.123456Z");
        // 2024-02-29 (leap day) 12:00:00
        assert_eq!(
            Timestamp::from_unix_micros(1_709_208_000_000_000).as_str(),
            "2024-02-29T12:00:00.000000Z"
        );
        // 2100-03-01 (2100 is not a leap year)
        assert_eq!(
            Timestamp::from_unix_micros(4_107_542_400_000_000).as_str(),
            "2100-03-01T00:00:00.000000Z"
        );
    }

    #[test]
    fn plain_line_has_the_envelope_in_order() {
        let mut out = Vec::new();
        assert!(enc().line(&mut out, &ts(), "stdout", b"listening on :8080"));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"ts\":\"2025-11-22T18:03:04.123456Z\",\"stream\":\"stdout\",\"service\":\"api\",\"msg\":\"listening on :8080\"}\n"
        );
    }

    #[test]
    fn escapes_controls_quotes_and_invalid_utf8() {
        let v = one(&enc(), b"a\"b\\c\td\x01e\x1b \xff\xfe z \xe2\x82");
        assert_eq!(
            v["msg"],
            "a\"b\\c\td\u{1}e\u{1b} \u{FFFD}\u{FFFD} z \u{FFFD}"
        );
        let v = one(&enc(), "é ✓ 😀".as_bytes());
        assert_eq!(v["msg"], "é ✓ 😀");
    }

    #[test]
    fn static_fields_and_key_styles() {
        let fields = vec![("env".to_string(), "prod \"x\"".to_string())];
        let e = Encoder::new("api", &fields, 16384, KeyStyle::Gcp, false).unwrap();
        let v = one(&e, b"hi");
        assert_eq!(v["env"], "prod \"x\"");
        assert_eq!(v["message"], "hi");
        assert!(v["time"].is_string());
        let e = Encoder::new("api", &[], 16384, KeyStyle::Ecs, false).unwrap();
        let v = one(&e, b"hi");
        assert!(v["@timestamp"].is_string());
        let mut out = Vec::new();
        e.event(&mut out, &ts(), "warn", "warn").finish();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["log.level"], "warn");
        let g = Encoder::new("api", &[], 16384, KeyStyle::Gcp, false).unwrap();
        let mut out = Vec::new();
        g.event(&mut out, &ts(), "warn", "warn").finish();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["severity"], "WARNING");
    }

    #[test]
    fn json_object_lines_keep_their_fields() {
        let fields = vec![
            ("env".to_string(), "prod".to_string()),
            ("region".to_string(), "eu".to_string()),
        ];
        let e = Encoder::new("api", &fields, 16384, KeyStyle::Default, false).unwrap();
        let v = one(
            &e,
            br#"{"level":"error","trace_id":"t1","msg":"boom","n":[1,2.5e3,{"a":null}]}"#,
        );
        assert_eq!(v["level"], "error");
        assert_eq!(v["trace_id"], "t1");
        assert_eq!(v["msg"], "boom");
        assert_eq!(v["stream"], "stdout");
        assert_eq!(v["service"], "api");
        assert_eq!(v["env"], "prod");
        assert!(v["ts"].is_string());
        // The app's own values win.
        let line = br#" {"ts":"mine","service":"other","env":"dev"} "#;
        let mut out = Vec::new();
        assert!(e.line(&mut out, &ts(), "stderr", line));
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.matches("\"ts\"").count(), 1, "{text}");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            (v["ts"].as_str(), v["service"].as_str(), v["env"].as_str()),
            (Some("mine"), Some("other"), Some("dev"))
        );
        assert_eq!(v["region"], "eu");
        assert_eq!(one(&e, b"{}")["service"], "api");
    }

    /// Found by fuzz/fuzz_targets/log_lines.rs: an app object with a lone
    /// surrogate escape was passed through, and serde_json (like other
    /// strict readers) refuses the whole line. Sent as text instead.
    #[test]
    fn lone_surrogate_escapes_make_an_object_line_text() {
        for l in [
            &br#"{"a":"\udddd"}"#[..],
            br#"{"a":"\ud800"}"#,
            br#"{"a":"\ud800x"}"#,
            br#"{"a":"\ud800\u0041"}"#,
            br#"{"\udc00":1}"#,
        ] {
            let v = one(&enc(), l);
            assert_eq!(v["msg"], String::from_utf8_lossy(l).as_ref());
        }
        // A proper pair (U+1F600) stays an object.
        let v = one(&enc(), br#"{"a":"\ud83d\ude00","b":"\u00e9"}"#);
        assert_eq!(v["a"], "\u{1F600}");
        assert_eq!(v["b"], "é");
    }

    #[test]
    fn not_quite_objects_are_text() {
        for l in [
            &b"{not json}"[..],
            b"{\"a\":1} trailing {\"b\":2}",
            b"{\"a\":01}",
            b"{\"a\":\"\x01\"}",
            b"{\"a\":1,}",
            b"{\"a\" 1}",
            b"{\"a\":tru}",
            b"{\"a\":\"\xff\"}",
        ] {
            let v = one(&enc(), l);
            assert_eq!(
                v["msg"],
                String::from_utf8_lossy(l).as_ref(),
                "{:?}",
                String::from_utf8_lossy(l)
            );
        }
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(100), "]".repeat(100));
        assert_eq!(one(&enc(), deep.as_bytes())["msg"], deep);
    }

    #[test]
    fn plain_lines_write_what_line_writes_and_stop_where_it_must() {
        let fields = [("env".to_string(), "prod".to_string())];
        let e = Encoder::new("api", &fields, 1024, KeyStyle::Default, true).unwrap();
        let long = "x".repeat(1024);
        // (line, whether plain_lines takes it)
        let cases: &[(&str, bool)] = &[
            ("listening on :8080", true),
            ("", true),
            ("a}", true),
            ("GET /a?b=1 200 3ms", true),
            ("{\"level\":\"warn\",\"msg\":\"x\"}", false),
            (" {\"level\":\"warn\"}", false),
            ("{not an object", false),
            (" indented", false),
            ("say \"hi\"", false),
            ("back\\slash", false),
            ("tab\there", false),
            ("crlf\r", false),
            ("caf\u{e9}", false),
            (&long, false),
        ];
        for stream in ["stdout", "stderr", "other"] {
            for (line, fast) in cases {
                let data = format!("{line}\nnext\n");
                let mut got = Vec::new();
                let used = e.plain_lines(&mut got, &ts(), stream, data.as_bytes());
                let mut want = Vec::new();
                if *fast && stream != "other" {
                    assert!(e.line(&mut want, &ts(), stream, line.as_bytes()));
                    assert!(e.line(&mut want, &ts(), stream, b"next"));
                    assert_eq!(used, data.len(), "{stream} {line:?}");
                } else {
                    assert_eq!(used, 0, "{stream} {line:?}");
                }
                assert_eq!(got, want, "{stream} {line:?}");
            }
        }
        // No newline yet: nothing taken.
        assert_eq!(
            e.plain_lines(&mut Vec::new(), &ts(), "stdout", b"half a li"),
            0
        );
    }

    #[test]
    fn too_long_is_refused_for_pieces() {
        let e = Encoder::new("api", &[], 1024, KeyStyle::Default, false).unwrap();
        let mut out = Vec::new();
        assert!(!e.line(&mut out, &ts(), "stdout", &[b'x'; 2000]));
        assert!(out.is_empty());
        let mut consumed = 0;
        let text = vec![b'x'; 2000];
        let mut ordinal = 1;
        while consumed < text.len() {
            let before = out.len();
            consumed += e.piece(
                &mut out,
                &ts(),
                "stdout",
                &text[consumed..],
                Piece {
                    id: 7,
                    ordinal,
                    last: true,
                },
            );
            assert!(out.len() - before <= 1024);
            ordinal += 1;
        }
        let lines: Vec<serde_json::Value> = out
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect();
        assert!(lines.len() >= 2);
        assert_eq!(lines[0]["partial"], true);
        assert_eq!(lines[0]["partial_id"], "stdout-7");
        assert!(lines.last().unwrap().get("partial").is_none());
    }

    #[test]
    fn fields_that_leave_no_room_are_an_error() {
        let big = vec![("k".to_string(), "v".repeat(1000))];
        assert!(Encoder::new("api", &big, 1024, KeyStyle::Default, false).is_err());
        assert!(Encoder::new("api", &big, 4096, KeyStyle::Default, false).is_ok());
        assert!(Encoder::new("api", &[], 1024, KeyStyle::Default, false).is_ok());
    }

    #[test]
    fn event_builder() {
        let e = Encoder::new(
            "api",
            &[("env".into(), "p".into())],
            16384,
            KeyStyle::Default,
            false,
        )
        .unwrap();
        let mut out = Vec::new();
        e.event(&mut out, &ts(), "info", "exit")
            .u64("code", 143)
            .i64("neg", -5)
            .str("signal", "TERM")
            .null("x")
            .opt_u64("m", Some(3))
            .f64_fixed("duration_s", 1.23456, 3)
            .bool("oom_kill", false)
            .str_array("command", &[b"sh", b"-c", b"\xff"])
            .finish();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["stream"], "berth");
        assert_eq!(v["level"], "info");
        assert_eq!(v["event"], "exit");
        assert_eq!(v["env"], "p");
        assert_eq!(v["code"], 143);
        assert_eq!(v["neg"], -5);
        assert_eq!(v["duration_s"], 1.235);
        assert_eq!(v["command"][2], "\u{FFFD}");
    }

    #[test]
    fn plain_ascii_fast_path_agrees_with_the_escape_table_for_every_byte_and_position() {
        for b in 0..=255u8 {
            let plain = (0x20..0x80).contains(&b) && !NEEDS_ESCAPE[b as usize];
            // Lengths below, at and past one 16-byte step, and with an
            // overlapping last step.
            for len in [1, 15, 16, 17, 31, 32, 40] {
                for at in 0..len {
                    let mut line = vec![b'a'; len];
                    line[at] = b;
                    assert_eq!(
                        is_plain_ascii(&line),
                        plain,
                        "byte {b:#04x} at {at} of {len}"
                    );
                }
            }
        }
    }

    /// Every line `text` gives on `stream`, parsed.
    fn lines_of(e: &Encoder, stream: &str, text: &[u8]) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        if !e.line(&mut out, &ts(), stream, text) {
            let mut rest = text;
            let mut ordinal = 1;
            while !rest.is_empty() {
                let last = rest.len() <= e.piece_budget(stream);
                let piece = Piece {
                    id: 1,
                    ordinal,
                    last,
                };
                rest = &rest[e.piece(&mut out, &ts(), stream, rest, piece)..];
                ordinal += 1;
            }
        }
        out.split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| {
                assert!(l.len() < e.max_line_bytes(), "{} bytes", l.len());
                serde_json::from_slice(l).unwrap()
            })
            .collect()
    }

    #[test]
    fn text_lines_get_their_streams_level_in_every_key_style() {
        for (keys, key, out, err) in [
            (KeyStyle::Default, "level", "info", "error"),
            (KeyStyle::Gcp, "severity", "INFO", "ERROR"),
            (KeyStyle::Ecs, "log.level", "info", "error"),
        ] {
            let e = Encoder::new("api", &[], 1024, keys, true).unwrap();
            for (stream, want) in [("stdout", out), ("stderr", err)] {
                let v = &lines_of(&e, stream, b"at Main.main(Main.java:3)")[0];
                assert_eq!(v[key], want, "{keys:?} {stream}");
                // Pieces of a long line carry it too, and still fit.
                for v in lines_of(&e, stream, &[b'\\'; 3000]) {
                    assert_eq!(v[key], want, "{keys:?} {stream} piece");
                }
            }
            let off = Encoder::new("api", &[], 1024, keys, false).unwrap();
            assert!(lines_of(&off, "stderr", b"x")[0].get(key).is_none());
        }
    }

    #[test]
    fn an_app_object_keeps_its_own_level_and_gets_the_streams_otherwise() {
        let e = Encoder::new("api", &[], 16384, KeyStyle::Gcp, true).unwrap();
        let v = &lines_of(&e, "stderr", br#"{"severity":"DEBUG","m":1}"#)[0];
        assert_eq!(v["severity"], "DEBUG");
        let v = &lines_of(&e, "stderr", br#"{"sev\u0065rity":"DEBUG"}"#)[0];
        assert_eq!(v["severity"], "DEBUG", "an escaped key is the same key");
        let v = &lines_of(&e, "stderr", br#"{"m":1}"#)[0];
        assert_eq!((&v["severity"], &v["m"]), (&"ERROR".into(), &1.into()));
    }

    #[test]
    fn a_static_level_field_wins_over_the_streams_level() {
        let f = [("severity".to_string(), "NOTICE".to_string())];
        let e = Encoder::new("api", &f, 16384, KeyStyle::Gcp, true).unwrap();
        let mut out = Vec::new();
        assert!(e.line(&mut out, &ts(), "stderr", b"x"));
        assert_eq!(out.windows(10).filter(|w| w == b"\"severity\"").count(), 1);
    }

    #[test]
    fn an_app_object_cannot_say_it_is_berth() {
        let e = enc();
        let forged = br#"{"stream":"berth","event":"exit","code":0,"reason":"exited"}"#;
        let v = &lines_of(&e, "stdout", forged)[0];
        assert_eq!(
            (&v["stream"], &v["app_stream"]),
            (&"stdout".into(), &"berth".into())
        );
        assert_eq!(v["event"], "exit", "the rest of the object is kept");
        let v = &lines_of(&e, "stderr", br#"{ "str\u0065am" : "berth" }"#)[0];
        assert_eq!(
            (&v["stream"], &v["app_stream"]),
            (&"stderr".into(), &"berth".into())
        );
        // Two `stream`s, or `stream` beside `app_stream`: renaming would
        // leave a duplicate key, so the line goes out as text.
        for forged in [
            &br#"{"stream":"a","stream":"berth"}"#[..],
            br#"{"stream":"berth","app_stream":"x"}"#,
            br#"{"stream":"berth","str\u0065am":"berth"}"#,
        ] {
            let mut out = Vec::new();
            assert!(e.line(&mut out, &ts(), "stdout", forged));
            let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
            assert_eq!(v["msg"].as_str().map(str::as_bytes), Some(forged));
            assert_eq!(v["stream"], "stdout");
            let raw = String::from_utf8(out).unwrap();
            assert_eq!(raw.matches("\"stream\"").count(), 1, "{raw}");
        }
        // `app_stream` alone is the app's own field.
        assert_eq!(
            lines_of(&e, "stdout", br#"{"app_stream":"x"}"#)[0]["app_stream"],
            "x"
        );
    }

    #[test]
    fn escaped_keys_decode_like_json() {
        assert!(key_is(b"stream", "stream"));
        assert!(key_is(br"str\u0065am", "stream"));
        assert!(key_is(br"\u0073tream", "stream"));
        assert!(key_is(br"a\/b\n", "a/b\n"));
        assert!(key_is(br"\ud83d\ude00", "\u{1F600}"));
        assert!(!key_is(br"str\u0065amx", "stream"));
    }
}
