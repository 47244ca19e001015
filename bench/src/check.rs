//! The log reader's check: every line an init passes on from `benchapp
//! spew` is checked (count, order, payload), fast enough that the reader
//! never caps the pipeline it measures. What it leaves to others: reading
//! the pipe (`drain`, `drain_lines` below just loop `read` into `feed`) and
//! timing.
//!
//! How it is fast: the checker keeps the whole expected next line as a
//! template with the 8-digit sequence number in ASCII, and steps that
//! counter in place (no number parsing). At a line boundary with a whole
//! line's worth of bytes at hand, one comparison of that many bytes against
//! the template (a `memcmp`) checks the line and its newline at once: no
//! search for the newline, no per-byte loop. Only a line that does not
//! match (berth's own events, the first JSON line, a split read, an error)
//! takes the slow path, which finds the newline and looks closer.
//!
//! What is checked:
//! - plain: each line is exactly `%08d` + (size − 9) `x` + `\n`, the number
//!   one more than the last line's, starting at 0;
//! - the limit's copier (`benchcopy`): each line is `LIMIT_HEAD` and then
//!   the plain line;
//! - json (berth `--log-format json`): each app line is `{"ts":"…"` + the
//!   envelope berth gave the first app line (which must name
//!   `"stream":"stdout"`) + the expected text as `"msg"` + `"}` + `\n`; the
//!   envelope is learned once, so every later app line must carry the same
//!   one. The timestamp's value is not checked beyond holding no `"` and no
//!   newline. Lines that are berth's own events (`"stream":"berth"`) are
//!   counted apart and skipped;
//! - at the end: no partial last line, and exactly as many app lines as
//!   the app wrote.

use std::io::Read;

use memchr::memmem;

pub type Res<T> = Result<T, String>;

const TS_KEY: &[u8] = b"{\"ts\":\"";
const MSG_KEY: &[u8] = b",\"msg\":\"";
const BERTH_EVENT: &[u8] = b"\",\"stream\":\"berth\",";
const APP_STREAM: &[u8] = b"\",\"stream\":\"stdout\",";

/// What the limit's copier (`benchcopy`) writes before each line: 80 bytes,
/// the shape of berth's head up to `"msg":"` with a fixed time (berth's
/// own head is 84 bytes and its tail `"}` 2 more: a JSON line is 186 bytes
/// for a 100-byte line, the copier's 180).
pub const LIMIT_HEAD: &str =
    "{\"ts\":\"2026-12-04T13:42:46.818454Z\",\"stream\":\"stdout\",\"service\":\"copier\",\"msg\":\"";

/// The lines `benchapp spew` writes: line `seq` of `size` bytes.
pub fn text_line(seq: u64, size: usize) -> Vec<u8> {
    let mut l = format!("{seq:08}").into_bytes();
    l.resize(size - 1, b'x');
    l.push(b'\n');
    l
}

/// Line `seq` as berth's JSON mode writes it for an app called `benchapp`
/// (the shape of berth's output, for the reader's self-test and the tests).
pub fn berth_json_line(seq: u64, size: usize) -> Vec<u8> {
    let text = text_line(seq, size);
    let mut l = b"{\"ts\":\"2026-12-04T13:42:46.818454Z\",\"stream\":\"stdout\",\"service\":\"benchapp\",\"msg\":\"".to_vec();
    l.extend_from_slice(&text[..size - 1]);
    l.extend_from_slice(b"\"}\n");
    l
}

/// One of berth's own events, as the JSON mode writes it.
pub fn berth_event_line(event: &str) -> Vec<u8> {
    format!("{{\"ts\":\"2026-12-04T13:42:46.815805Z\",\"stream\":\"berth\",\"service\":\"benchapp\",\"level\":\"info\",\"event\":\"{event}\",\"msg\":\"00000000\"}}\n").into_bytes()
}

pub struct Checker {
    json: bool,
    /// The app's text lines are this long, newline included.
    size: usize,
    /// The expected next app line from the end of its variable head on:
    /// plain, the whole line; json, from the timestamp's closing quote to
    /// the newline (empty until the first app line was seen).
    tail: Vec<u8>,
    /// Where the 8 ASCII digits of the next sequence number sit in `tail`.
    digits: usize,
    /// json: the length of `{"ts":"` and the timestamp; plain: 0.
    head: usize,
    /// plain: the fixed bytes before each line's digits (the copier's head).
    prefix: usize,
    lines: u64,
    /// berth's own event lines skipped.
    events: u64,
    /// The start of a line a read cut in two.
    carry: Vec<u8>,
}

impl Checker {
    /// A checker for `spew` lines of `size` bytes (at least 10), passed on
    /// as they are (`json` false) or as berth's JSON lines.
    pub fn new(json: bool, size: usize) -> Checker {
        assert!(size >= 10, "a spew line holds 8 digits, an x and a newline");
        Checker {
            json,
            size,
            tail: if json { Vec::new() } else { text_line(0, size) },
            digits: 0,
            head: 0,
            prefix: 0,
            lines: 0,
            events: 0,
            carry: Vec::new(),
        }
    }

    /// A checker for plain lines of `size` bytes each behind `prefix`.
    pub fn with_prefix(prefix: &[u8], size: usize) -> Checker {
        let mut c = Checker::new(false, size);
        c.tail = [prefix, &c.tail].concat();
        c.digits = prefix.len();
        c.prefix = prefix.len();
        c
    }

    /// App lines checked so far.
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// Checks the next bytes of the stream; a line may span calls.
    pub fn feed(&mut self, mut data: &[u8]) -> Res<()> {
        if !self.carry.is_empty() {
            let Some(nl) = memchr::memchr(b'\n', data) else {
                self.carry.extend_from_slice(data);
                return Ok(());
            };
            let mut line = std::mem::take(&mut self.carry);
            line.extend_from_slice(&data[..=nl]);
            self.line(&line)?;
            line.clear();
            self.carry = line; // keep its capacity
            data = &data[nl + 1..];
        }
        loop {
            // The fast path: a whole expected line compared in one go.
            let len = self.head + self.tail.len();
            if !self.tail.is_empty() && data.len() >= len && self.is_next(&data[..len]) {
                self.step();
                data = &data[len..];
                continue;
            }
            match memchr::memchr(b'\n', data) {
                Some(nl) => {
                    self.line(&data[..=nl])?;
                    data = &data[nl + 1..];
                }
                None => break,
            }
        }
        self.carry.extend_from_slice(data);
        Ok(())
    }

    /// The stream has ended: no partial line may be left, and `n` app
    /// lines must have arrived. Returns the app lines.
    pub fn finish(&self, n: u64) -> Res<u64> {
        if !self.carry.is_empty() {
            return Err(format!(
                "truncated last line ({} bytes, no newline) where line {} was due: {}",
                self.carry.len(),
                self.lines,
                String::from_utf8_lossy(&self.carry)
            ));
        }
        if self.lines != n {
            return Err(format!("{} of {n} lines arrived", self.lines));
        }
        Ok(self.lines)
    }

    /// `l` (newline included) is exactly the next expected app line.
    fn is_next(&self, l: &[u8]) -> bool {
        if l.len() != self.head + self.tail.len() || l[self.head..] != self.tail[..] {
            return false;
        }
        !self.json
            || (l.starts_with(TS_KEY)
                && memchr::memchr2(b'"', b'\n', &l[TS_KEY.len()..self.head]).is_none())
    }

    /// The ASCII counter in the template moves on to the next line's number.
    fn step(&mut self) {
        self.lines += 1;
        for c in self.tail[self.digits..self.digits + 8].iter_mut().rev() {
            if *c == b'9' {
                *c = b'0';
            } else {
                *c += 1;
                break;
            }
        }
    }

    /// The slow path: one whole line, newline included.
    fn line(&mut self, l: &[u8]) -> Res<()> {
        if !self.tail.is_empty() && self.is_next(l) {
            self.step();
            return Ok(());
        }
        if self.json {
            if ts_end(l).is_some_and(|q| l[q..].starts_with(BERTH_EVENT)) {
                self.events += 1;
                return Ok(());
            }
            if self.tail.is_empty() {
                self.learn(l);
            }
            // The line just learned, or a timestamp of another length: the
            // same check with this line's head.
            if let Some(q) = ts_end(l).filter(|_| !self.tail.is_empty()) {
                let head = std::mem::replace(&mut self.head, q);
                if self.is_next(l) {
                    self.step();
                    return Ok(());
                }
                self.head = head;
            }
        }
        Err(self.describe(l))
    }

    /// Takes the envelope of the first JSON app line as the one every app
    /// line must have; nothing when `l` is not shaped as berth's app line.
    fn learn(&mut self, l: &[u8]) {
        let Some(q) = ts_end(l) else {
            return;
        };
        if !l[q..].starts_with(APP_STREAM) || !l.ends_with(b"\"}\n") {
            return;
        }
        let Some(m) = memmem::find(&l[q..], MSG_KEY).map(|m| q + m + MSG_KEY.len()) else {
            return;
        };
        let mut tail = l[q..m].to_vec();
        self.digits = tail.len();
        let text = text_line(self.lines, self.size);
        tail.extend_from_slice(&text[..self.size - 1]);
        tail.extend_from_slice(b"\"}\n");
        self.tail = tail;
        self.head = q;
    }

    /// Why `l` is not the next app line.
    fn describe(&self, l: &[u8]) -> String {
        let text = if self.json {
            memmem::find(l, MSG_KEY).map_or(&l[..0], |m| &l[m + MSG_KEY.len()..])
        } else {
            l.get(self.prefix..).unwrap_or_default()
        };
        let seq = text.get(..8).and_then(|d| {
            d.iter().try_fold(0u64, |acc, &c| {
                c.is_ascii_digit().then(|| acc * 10 + u64::from(c - b'0'))
            })
        });
        let shown = String::from_utf8_lossy(&l[..l.len().min(300)]);
        match seq {
            Some(s) if s > self.lines => {
                format!(
                    "line {s} arrived where line {} was due (lost): {shown}",
                    self.lines
                )
            }
            Some(s) if s < self.lines => {
                format!(
                    "line {s} arrived again or late, line {} was due: {shown}",
                    self.lines
                )
            }
            Some(_) => format!(
                "line {}: payload or envelope corrupted: {shown}",
                self.lines
            ),
            None => format!("malformed line where line {} was due: {shown}", self.lines),
        }
    }
}

/// Where the timestamp's closing quote is, in a line that opens with it.
fn ts_end(l: &[u8]) -> Option<usize> {
    let rest = l.strip_prefix(TS_KEY)?;
    memchr::memchr(b'"', rest).map(|q| q + TS_KEY.len())
}

/// The checker's own time for `n` spew lines of 100 bytes, as they are or
/// as berth's JSON mode writes them (with a start and an exit event), fed
/// in pieces of a default pipe's size (64 KiB, lines cut across pieces).
/// Each piece is written just before it is checked, so it sits in the
/// cache as a piece does after `read` copied it out of a pipe; only the
/// `feed` and `finish` calls are timed.
pub fn self_test(json: bool, n: u64) -> Res<std::time::Duration> {
    const PIECE: usize = 64 * 1024;
    let mut c = Checker::new(json, 100);
    let mut pending = if json {
        berth_event_line("start")
    } else {
        Vec::new()
    };
    let mut spent = std::time::Duration::ZERO;
    let mut next = 0;
    while next < n || !pending.is_empty() {
        while pending.len() < PIECE && next < n {
            let line = if json {
                berth_json_line(next, 100)
            } else {
                text_line(next, 100)
            };
            pending.extend_from_slice(&line);
            next += 1;
            if next == n && json {
                pending.extend(berth_event_line("exit"));
            }
        }
        let k = pending.len().min(PIECE);
        let t = std::time::Instant::now();
        c.feed(&pending[..k])?;
        spent += t.elapsed();
        pending.drain(..k);
    }
    let t = std::time::Instant::now();
    c.finish(n)?;
    Ok(spent + t.elapsed())
}

/// The read buffer: far more than a pipe holds (64 KiB by default), so one
/// `read` takes all there is.
pub const READ_BYTES: usize = 1 << 20;

/// Reads `pipe` to EOF through `c`; `n` app lines must arrive.
pub fn drain(mut pipe: impl Read, c: &mut Checker, n: u64) -> Res<u64> {
    let mut buf = vec![0u8; READ_BYTES];
    loop {
        let k = pipe.read(&mut buf).map_err(|e| e.to_string())?;
        if k == 0 {
            return c.finish(n);
        }
        c.feed(&buf[..k])?;
    }
}

/// Reads `pipe` through `c` until `n` app lines have arrived, and no
/// further: the writer keeps the pipe open.
pub fn drain_lines(mut pipe: impl Read, c: &mut Checker, n: u64) -> Res<u64> {
    let mut buf = vec![0u8; READ_BYTES];
    while c.lines() < n {
        let k = pipe.read(&mut buf).map_err(|e| e.to_string())?;
        if k == 0 {
            break;
        }
        c.feed(&buf[..k])?;
    }
    c.finish(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(n: u64) -> Vec<u8> {
        (0..n).flat_map(|i| text_line(i, 100)).collect()
    }

    fn json(n: u64) -> Vec<u8> {
        let mut v = berth_event_line("start");
        for i in 0..n {
            v.extend(berth_json_line(i, 100));
            if i == n / 2 {
                v.extend(berth_event_line("warn"));
            }
        }
        v.extend(berth_event_line("exit"));
        v
    }

    /// Feeds `data` in pieces of `step` bytes.
    fn check(json: bool, data: &[u8], n: u64, step: usize) -> Res<u64> {
        let mut c = Checker::new(json, 100);
        for piece in data.chunks(step) {
            c.feed(piece)?;
        }
        c.finish(n)
    }

    fn each_step(json: bool, data: &[u8], n: u64) -> Vec<Res<u64>> {
        [1, 7, 99, 100, 101, 186, 4096, 1 << 20]
            .iter()
            .map(|&s| check(json, data, n, s))
            .collect()
    }

    #[test]
    fn accepts_every_line_in_order_however_the_reads_cut_them() {
        for r in each_step(false, &plain(1000), 1000) {
            assert_eq!(r, Ok(1000));
        }
        for r in each_step(true, &json(1000), 1000) {
            assert_eq!(r, Ok(1000));
        }
    }

    #[test]
    fn accepts_and_counts_berth_events() {
        let mut c = Checker::new(true, 100);
        c.feed(&json(10)).unwrap();
        assert_eq!((c.finish(10), c.events), (Ok(10), 3));
    }

    #[test]
    fn sequence_runs_past_a_carry_of_every_digit() {
        // 0..=1100 steps the counter through 9 → 10, 99 → 100, 999 → 1000.
        assert_eq!(check(false, &plain(1101), 1101, 4096), Ok(1101));
    }

    fn without_line(data: Vec<Vec<u8>>, k: usize) -> Vec<u8> {
        data.into_iter()
            .enumerate()
            .filter(|(i, _)| *i != k)
            .flat_map(|(_, l)| l)
            .collect()
    }

    #[test]
    fn rejects_a_lost_line() {
        let lines: Vec<Vec<u8>> = (0..100).map(|i| text_line(i, 100)).collect();
        for r in each_step(false, &without_line(lines, 42), 99) {
            assert!(r
                .unwrap_err()
                .contains("line 43 arrived where line 42 was due"));
        }
        let lines: Vec<Vec<u8>> = (0..100).map(|i| berth_json_line(i, 100)).collect();
        for r in each_step(true, &without_line(lines, 0), 99) {
            assert!(r
                .unwrap_err()
                .contains("line 1 arrived where line 0 was due"));
        }
        // The last line lost: only the count sees it.
        let r = check(false, &plain(99), 100, 4096);
        assert_eq!(r, Err("99 of 100 lines arrived".into()));
    }

    #[test]
    fn rejects_a_reordered_line() {
        let mut lines: Vec<Vec<u8>> = (0..100).map(|i| text_line(i, 100)).collect();
        lines.swap(10, 11);
        for r in each_step(false, &lines.concat(), 100) {
            assert!(r
                .unwrap_err()
                .contains("line 11 arrived where line 10 was due"));
        }
        let mut lines: Vec<Vec<u8>> = (0..100).map(|i| berth_json_line(i, 100)).collect();
        lines.swap(50, 51);
        for r in each_step(true, &lines.concat(), 100) {
            assert!(r
                .unwrap_err()
                .contains("line 51 arrived where line 50 was due"));
        }
    }

    #[test]
    fn rejects_a_corrupted_payload() {
        for (json, at) in [(false, 100 * 7 + 50), (true, 186 * 7 + 150)] {
            let mut data = if json {
                (0..10).flat_map(|i| berth_json_line(i, 100)).collect()
            } else {
                plain(10)
            };
            data[at] = b'y';
            for r in each_step(json, &data, 10) {
                assert!(r
                    .unwrap_err()
                    .contains("line 7: payload or envelope corrupted"));
            }
        }
    }

    #[test]
    fn rejects_a_truncated_last_line() {
        let mut data = plain(10);
        data.pop();
        for r in each_step(false, &data, 10) {
            assert!(r.unwrap_err().contains("truncated last line (99 bytes"));
        }
        let mut data = json(10);
        data.truncate(data.len() - 5);
        for r in each_step(true, &data, 10) {
            assert!(r.unwrap_err().contains("truncated last line"));
        }
    }

    #[test]
    fn rejects_app_lines_of_another_stream_or_envelope() {
        let stderr = String::from_utf8(berth_json_line(0, 100))
            .unwrap()
            .replace("stdout", "stderr");
        assert!(check(true, stderr.as_bytes(), 1, 4096).is_err());
        // A later line with another envelope than the first one's.
        let mut data = berth_json_line(0, 100);
        let other = String::from_utf8(berth_json_line(1, 100))
            .unwrap()
            .replace("benchapp", "benchapX");
        data.extend(other.as_bytes());
        assert!(check(true, &data, 2, 4096)
            .unwrap_err()
            .contains("line 1: payload or envelope corrupted"));
    }

    #[test]
    fn accepts_a_timestamp_of_another_length() {
        let mut data = berth_json_line(0, 100);
        let shorter = String::from_utf8(berth_json_line(1, 100))
            .unwrap()
            .replace(".818454Z", ".8Z");
        data.extend(shorter.as_bytes());
        data.extend(berth_json_line(2, 100));
        assert_eq!(check(true, &data, 3, 4096), Ok(3));
    }

    #[test]
    fn rejects_a_newline_inside_the_timestamp() {
        let mut data = berth_json_line(0, 100);
        let mut bad = berth_json_line(1, 100);
        bad[10] = b'\n';
        data.extend(bad);
        assert!(check(true, &data, 2, 4096).is_err());
    }

    #[test]
    fn checks_the_copiers_lines_behind_its_head() {
        assert_eq!(LIMIT_HEAD.len(), 80);
        let line = |i| [LIMIT_HEAD.as_bytes(), &text_line(i, 100)].concat();
        let lines: Vec<Vec<u8>> = (0..1000).map(line).collect();
        for step in [1, 99, 180, 181, 4096, 1 << 20] {
            let mut c = Checker::with_prefix(LIMIT_HEAD.as_bytes(), 100);
            for piece in lines.concat().chunks(step) {
                c.feed(piece).unwrap();
            }
            assert_eq!(c.finish(1000), Ok(1000));
        }
        let mut c = Checker::with_prefix(LIMIT_HEAD.as_bytes(), 100);
        let err = c.feed(&without_line(lines.clone(), 7)).unwrap_err();
        assert!(err.contains("line 8 arrived where line 7 was due"), "{err}");
        let mut c = Checker::with_prefix(LIMIT_HEAD.as_bytes(), 100);
        assert!(
            c.feed(&text_line(0, 100)).is_err(),
            "a line without the head"
        );
    }

    #[test]
    fn self_test_passes_its_own_lines() {
        assert!(self_test(false, 3000).is_ok());
        assert!(self_test(true, 3000).is_ok());
    }

    #[test]
    fn drain_lines_stops_at_n_and_finish_needs_them_all() {
        let mut c = Checker::new(false, 1024);
        let data: Vec<u8> = (0..50).flat_map(|i| text_line(i, 1024)).collect();
        assert_eq!(drain_lines(&data[..], &mut c, 50), Ok(50));
        let mut c = Checker::new(false, 1024);
        assert_eq!(
            drain(&data[..], &mut c, 51),
            Err("50 of 51 lines arrived".into())
        );
    }
}
