//! Test app that floods: `spew lines N [--width W]` writes N numbered lines
//! alternating stdout/stderr (`out 17 xxxx…`, `err 18 xxxx…`);
//! `spew bytes N` writes N bytes of `a` with no newline to stdout;
//! `spew hostile` writes invalid UTF-8, control characters, a CRLF line, a
//! JSON object line and an unterminated last line.

use std::io::Write;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map(String::as_str).unwrap_or("lines");
    let n: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let width: usize = match args.get(3).map(String::as_str) {
        Some("--width") => args[4].parse().unwrap(),
        _ => 100,
    };
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, stdout.lock());
    let mut err = std::io::BufWriter::with_capacity(64 * 1024, stderr.lock());
    match mode {
        "lines" => {
            for i in 0..n {
                let (w, tag): (&mut dyn Write, &str) = if i % 2 == 0 {
                    (&mut out, "out")
                } else {
                    (&mut err, "err")
                };
                let head = format!("{tag} {i} ");
                let pad = width.saturating_sub(head.len() + 1);
                w.write_all(head.as_bytes()).unwrap();
                w.write_all(&vec![b'x'; pad]).unwrap();
                w.write_all(b"\n").unwrap();
            }
        }
        "stdout" => {
            // N lines of exactly `width` bytes (newline included), stdout only.
            let mut line = vec![b'x'; width.max(2)];
            *line.last_mut().unwrap() = b'\n';
            for _ in 0..n {
                out.write_all(&line).unwrap();
            }
        }
        "bytes" => {
            let chunk = vec![b'a'; 64 * 1024];
            let mut left = n;
            while left > 0 {
                let k = left.min(chunk.len() as u64) as usize;
                out.write_all(&chunk[..k]).unwrap();
                left -= k as u64;
            }
        }
        "hostile" => {
            out.write_all(b"bad \xff\xfe utf8\n").unwrap();
            out.write_all(b"ctl \x01\x1b[31m tab\there\n").unwrap();
            out.write_all(b"crlf line\r\n").unwrap();
            out.write_all(b"{\"level\":\"error\",\"trace_id\":\"abc\",\"msg\":\"boom\"}\n")
                .unwrap();
            out.write_all(b"unterminated").unwrap();
        }
        m => panic!("spew: unknown mode {m}"),
    }
    out.flush().unwrap();
    err.flush().unwrap();
}
