//! A peer's bytes quoted in a one-line message: a probed server's status
//! line or gRPC headers, the drilled app's malformed answer. Escaped, so
//! they cannot end the line or forge another, and bounded in bytes *after*
//! escaping: an escape is up to 10 bytes (`\u{10ffff}`), so a bound on the
//! bytes taken in is not one on the line (issue 22: a gRPC `content-type` of
//! 62 ESC bytes made a 409-byte verdict).

use std::fmt::Write;

/// What ends an excerpt that was cut.
pub const ELLIPSIS: &str = "...";

/// `bytes` as at most `max` bytes of printable text (`max` is at least
/// [`ELLIPSIS`]'s length): UTF-8 as Rust's `{:?}` shows a string (control,
/// unprintable and format characters, `"` and `\` escaped; `'` kept),
/// invalid bytes as `\xNN`. What does not fit is cut at a whole escape or
/// character and marked with [`ELLIPSIS`]. Works in O(`max`) after the
/// input's leading valid UTF-8, however long the input.
pub fn bounded(bytes: &[u8], max: usize) -> String {
    let max = max.max(ELLIPSIS.len());
    let room = max - ELLIPSIS.len();
    let mut out = String::new();
    // out's length after the last piece that still leaves room for the ellipsis.
    let mut fits = 0;
    let pieces = bytes.utf8_chunks().flat_map(|chunk| {
        let chars = chunk.valid().chars().map(Piece::Char);
        chars.chain(chunk.invalid().iter().map(|&b| Piece::Byte(b)))
    });
    for piece in pieces {
        match piece {
            Piece::Char('\'') => out.push('\''),
            Piece::Char(c) => out.extend(c.escape_debug()),
            Piece::Byte(b) => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
        if out.len() > max {
            out.truncate(fits);
            out.push_str(ELLIPSIS);
            return out;
        }
        if out.len() <= room {
            fits = out.len();
        }
    }
    out
}

/// [`bounded`] in double quotes (the quotes not counted in `max`).
pub fn quoted(bytes: &[u8], max: usize) -> String {
    format!("\"{}\"", bounded(bytes, max))
}

enum Piece {
    Char(char),
    Byte(u8),
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The longest escape `bounded` writes for one piece.
    const LONGEST_ESCAPE: usize = "\\u{10ffff}".len();

    /// Reverses `bounded`'s escaping; None when `s` holds a cut or unknown
    /// escape, so a cut inside one fails the property below.
    fn unescape(s: &str) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        let mut chars = s.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                let mut buf = [0; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                continue;
            }
            let decoded = match chars.next()? {
                'n' => '\n',
                'r' => '\r',
                't' => '\t',
                '0' => '\0',
                '\\' => '\\',
                '"' => '"',
                '\'' => '\'',
                'x' => {
                    let hex: String = chars.by_ref().take(2).collect();
                    out.push(
                        u8::from_str_radix(&hex, 16)
                            .ok()
                            .filter(|_| hex.len() == 2)?,
                    );
                    continue;
                }
                'u' => {
                    if chars.next()? != '{' {
                        return None;
                    }
                    let rest = chars.as_str();
                    let (hex, after) = rest.split_once('}')?;
                    chars = after.chars();
                    char::from_u32(u32::from_str_radix(hex, 16).ok()?)?
                }
                _ => return None,
            };
            let mut buf = [0; 4];
            out.extend_from_slice(decoded.encode_utf8(&mut buf).as_bytes());
        }
        Some(out)
    }

    #[test]
    fn controls_quotes_and_invalid_bytes_are_escaped_text_is_kept() {
        assert_eq!(
            bounded(b"caf\xc3\xa9 \"it's\"\r\n\x1b[31m\\\xff\xc3", 100),
            "caf\u{e9} \\\"it's\\\"\\r\\n\\u{1b}[31m\\\\\\xff\\xc3"
        );
        // Bidi overrides and C1 controls would reorder or restyle the line.
        assert_eq!(
            bounded("a\u{202e}b\u{85}".as_bytes(), 100),
            "a\\u{202e}b\\u{85}"
        );
        assert_eq!(quoted(b"x\"y", 10), "\"x\\\"y\"");
    }

    #[test]
    fn the_bound_counts_escapes_not_input_bytes() {
        // 60 ESC characters: 360 bytes escaped, cut to 60 with the ellipsis.
        let shown = bounded(&[0x1b; 60], 60);
        assert_eq!(shown, format!("{}...", "\\u{1b}".repeat(9)));
        assert_eq!(bounded(&[b'x'; 60], 60), "x".repeat(60));
        assert_eq!(bounded(&[b'x'; 61], 60), format!("{}...", "x".repeat(57)));
        assert_eq!(
            bounded("\u{e9}".repeat(40).as_bytes(), 10),
            "\u{e9}\u{e9}\u{e9}..."
        );
    }

    #[test]
    fn a_bound_below_the_ellipsis_counts_as_its_length() {
        assert_eq!(bounded(b"", 0), "");
        assert_eq!(bounded(b"abc", 1), "abc");
        assert_eq!(bounded(b"abcd", 0), "...");
    }

    proptest! {
        #[test]
        fn output_is_bounded_printable_and_reverses_to_a_prefix(
            bytes in proptest::collection::vec(any::<u8>(), 0..600),
            max in ELLIPSIS.len()..400,
        ) {
            let full = bounded(&bytes, usize::MAX);
            prop_assert_eq!(unescape(&full), Some(bytes.clone()));
            let shown = bounded(&bytes, max);
            prop_assert!(shown.len() <= max, "{} > {max}: {shown:?}", shown.len());
            prop_assert!(!shown.chars().any(char::is_control), "{shown:?}");
            if full.len() <= max {
                prop_assert_eq!(shown, full);
            } else {
                let kept = shown.strip_suffix(ELLIPSIS).expect("a cut ends with the ellipsis");
                // Cut at a piece's end (reverses whole), and no earlier than needed.
                let prefix = unescape(kept).expect("no escape is cut");
                prop_assert!(bytes.starts_with(&prefix));
                prop_assert!(full.starts_with(kept));
                prop_assert!(kept.len() + ELLIPSIS.len() + LONGEST_ESCAPE > max);
            }
        }
    }
}
