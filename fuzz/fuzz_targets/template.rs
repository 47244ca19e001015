//! The `--template` expander (prepare/template.rs) on arbitrary template
//! bytes and an arbitrary output bound.
//!
//! Properties: never panics; the output is within the bound; the result
//! (output, or error kind and line) equals a reference written here
//! another way (byte by byte, no memchr); values are never expanded again
//! (one holds `${A}`); a template without `$` comes out unchanged; an
//! error's line is within the template and its message is one line.

#![no_main]

use berth::prepare::template::{expand, ExpandError};
use libfuzzer_sys::fuzz_target;

const VARS: [(&[u8], &[u8]); 4] = [
    (b"A", b"1"),
    (b"E", b""),
    (b"B_2", b"${A} $x\n}"),
    (b"_", b"\xff"),
];

fn lookup(n: &[u8]) -> Option<&'static [u8]> {
    VARS.iter().find(|(k, _)| *k == n).map(|(_, v)| *v)
}

#[derive(Debug, PartialEq)]
enum Ref {
    Out(Vec<u8>),
    Unset(usize),
    Unterminated(usize),
    Malformed(usize),
    TooLarge,
}

/// The syntax again, as a scanner over one byte at a time.
fn reference(src: &[u8], max: usize) -> Ref {
    let mut out = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < src.len() {
        let c = src[i];
        if c != b'$' {
            if c == b'\n' {
                line += 1;
            }
            out.push(c);
            i += 1;
            continue;
        }
        if src.get(i + 1) == Some(&b'$') && src.get(i + 2) == Some(&b'{') {
            out.extend_from_slice(b"${");
            i += 3;
            continue;
        }
        if src.get(i + 1) != Some(&b'{') {
            out.push(b'$');
            i += 1;
            continue;
        }
        // ${ NAME [:-DEFAULT] }
        let mut j = i + 2;
        let name_start = j;
        while j < src.len() && (src[j].is_ascii_alphanumeric() || src[j] == b'_') {
            j += 1;
        }
        let name = &src[name_start..j];
        let mut close = j;
        while close < src.len() && src[close] != b'}' && src[close] != b'\n' {
            close += 1;
        }
        if close == src.len() || src[close] == b'\n' {
            return Ref::Unterminated(line);
        }
        let tail = &src[j..close];
        let name_ok = !name.is_empty() && !name[0].is_ascii_digit();
        let default = if tail.is_empty() {
            None
        } else if tail.len() >= 2 && &tail[..2] == b":-" {
            let d = &tail[2..];
            if (0..d.len().saturating_sub(1)).any(|k| d[k] == b'$' && d[k + 1] == b'{') {
                return Ref::Malformed(line);
            }
            Some(d)
        } else {
            return Ref::Malformed(line);
        };
        if !name_ok {
            return Ref::Malformed(line);
        }
        let v = match (lookup(name), default) {
            (Some(v), Some(d)) => {
                if v.is_empty() {
                    d
                } else {
                    v
                }
            }
            (Some(v), None) => v,
            (None, Some(d)) => d,
            (None, None) => return Ref::Unset(line),
        };
        out.extend_from_slice(v);
        i = close + 1;
    }
    if out.len() > max {
        Ref::TooLarge
    } else {
        Ref::Out(out)
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&m, src)) = input.split_first() else {
        return;
    };
    // Bounds around the sizes the inputs reach, 0 included.
    let max = usize::from(m) * 4;
    let got = expand(src, &lookup, max);
    let lines = 1 + src.iter().filter(|b| **b == b'\n').count();
    let want = reference(src, max);
    match &got {
        Ok(out) => {
            assert!(out.len() <= max);
            if !src.contains(&b'$') {
                assert_eq!(out, src);
            }
            assert_eq!(want, Ref::Out(out.clone()), "{src:?}");
        }
        Err(e) => {
            assert!(!e.to_string().contains('\n'), "{e}");
            match e {
                ExpandError::TooLarge => {
                    // berth stops at the first byte over the bound, so an
                    // error later in the template is not reached: the
                    // reference may see either.
                    assert!(!matches!(want, Ref::Out(ref o) if o.len() <= max), "{src:?}");
                }
                ExpandError::Unset { line, .. } => assert_eq!(want, Ref::Unset(*line)),
                ExpandError::Unterminated { line } => {
                    assert_eq!(want, Ref::Unterminated(*line))
                }
                ExpandError::Malformed { line, .. } => assert_eq!(want, Ref::Malformed(*line)),
            }
            if let ExpandError::Unset { line, .. }
            | ExpandError::Unterminated { line }
            | ExpandError::Malformed { line, .. } = e
            {
                assert!((1..=lines).contains(line));
            }
        }
    }
});
