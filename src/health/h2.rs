//! HTTP/2 framing (RFC 9113 §4, §6) as far as one gRPC call needs it: the
//! connection preface, the 9-byte frame header, padding, writing frames
//! (split at the default 16 KiB frame size) and the error-code names. No
//! streams beyond the first, no flow control of our own: the request and
//! its answer are a few hundred bytes, far inside the 64 KiB initial
//! windows. The state machine that reads an answer is in [`super::grpc`].

/// The client connection preface (§3.4), sent before our SETTINGS.
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The frame header's size.
pub const HEAD_LEN: usize = 9;

/// `SETTINGS_MAX_FRAME_SIZE`'s default, which we never raise: a peer's
/// larger frame is a protocol error, so no frame needs more memory.
pub const MAX_FRAME: usize = 16_384;

// Frame types (§6).
pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const PUSH_PROMISE: u8 = 0x5;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;
pub const CONTINUATION: u8 = 0x9;

// Flags.
pub const END_STREAM: u8 = 0x1;
pub const ACK: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;
pub const PADDED: u8 = 0x8;
pub const PRIORITY_FLAG: u8 = 0x20;

/// SETTINGS_ENABLE_PUSH (§6.5.2): we turn server push off.
pub const SETTINGS_ENABLE_PUSH: u16 = 0x2;
/// SETTINGS_MAX_HEADER_LIST_SIZE: advisory, tells the server our limit.
pub const SETTINGS_MAX_HEADER_LIST_SIZE: u16 = 0x6;

/// A frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    pub len: usize,
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
}

impl Head {
    pub fn parse(b: [u8; HEAD_LEN]) -> Head {
        let [l0, l1, l2, kind, flags, s0, s1, s2, s3] = b;
        Head {
            len: usize::from(l0) << 16 | usize::from(l1) << 8 | usize::from(l2),
            kind,
            flags,
            // The reserved top bit is ignored (§4.1).
            stream: u32::from_be_bytes([s0, s1, s2, s3]) & 0x7fff_ffff,
        }
    }
}

/// Appends one frame.
pub fn write_frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    let len = payload.len().min(MAX_FRAME) as u32;
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload.get(..len as usize).unwrap_or_default());
}

/// Appends `payload` as frames of at most [`MAX_FRAME`] bytes: the first of
/// `kind`, the rest of `more` (CONTINUATION after HEADERS, DATA after DATA),
/// `last_flag` on the last one only.
pub fn write_split(out: &mut Vec<u8>, kind: u8, more: u8, last_flag: u8, payload: &[u8]) {
    let mut chunks = payload.chunks(MAX_FRAME).peekable();
    let mut this = kind;
    if chunks.peek().is_none() {
        write_frame(out, kind, last_flag, 1, &[]);
    }
    while let Some(chunk) = chunks.next() {
        let flags = if chunks.peek().is_none() {
            last_flag
        } else {
            0
        };
        write_frame(out, this, flags, 1, chunk);
        this = more;
    }
}

/// The payload of a DATA or HEADERS frame without its padding and (HEADERS)
/// priority fields (§6.1, §6.2). Err: the padding does not fit.
pub fn unpad<'p>(head: &Head, payload: &'p [u8]) -> Result<&'p [u8], String> {
    let bad = || format!("frame {} with bad padding", name_of_kind(head.kind));
    let (pad, mut rest) = if head.flags & PADDED != 0 {
        let (&pad, rest) = payload.split_first().ok_or_else(bad)?;
        (usize::from(pad), rest)
    } else {
        (0, payload)
    };
    if head.kind == HEADERS && head.flags & PRIORITY_FLAG != 0 {
        rest = rest.get(5..).ok_or_else(bad)?;
    }
    let keep = rest.len().checked_sub(pad).ok_or_else(bad)?;
    Ok(rest.get(..keep).unwrap_or_default())
}

fn name_of_kind(kind: u8) -> &'static str {
    match kind {
        DATA => "DATA",
        HEADERS => "HEADERS",
        _ => "frame",
    }
}

/// RFC 9113 §7 error codes.
pub fn error_name(code: u32) -> &'static str {
    const NAMES: [&str; 14] = [
        "NO_ERROR",
        "PROTOCOL_ERROR",
        "INTERNAL_ERROR",
        "FLOW_CONTROL_ERROR",
        "SETTINGS_TIMEOUT",
        "STREAM_CLOSED",
        "FRAME_SIZE_ERROR",
        "REFUSED_STREAM",
        "CANCEL",
        "COMPRESSION_ERROR",
        "CONNECT_ERROR",
        "ENHANCE_YOUR_CALM",
        "INADEQUATE_SECURITY",
        "HTTP_1_1_REQUIRED",
    ];
    usize::try_from(code)
        .ok()
        .and_then(|i| NAMES.get(i))
        .copied()
        .unwrap_or("unknown error")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_through_the_header() {
        let mut out = Vec::new();
        write_frame(&mut out, PING, ACK, 0, b"12345678");
        assert_eq!(out.len(), HEAD_LEN + 8);
        let head = Head::parse(out[..HEAD_LEN].try_into().unwrap());
        assert_eq!(
            head,
            Head {
                len: 8,
                kind: PING,
                flags: ACK,
                stream: 0
            }
        );
        // The reserved bit is ignored.
        let head = Head::parse([0, 0, 1, 0, 1, 0x80, 0, 0, 1]);
        assert_eq!((head.len, head.stream), (1, 1));
    }

    #[test]
    fn long_payloads_are_split_with_the_flag_on_the_last() {
        let mut out = Vec::new();
        let block = vec![7u8; MAX_FRAME + 10];
        write_split(&mut out, HEADERS, CONTINUATION, END_HEADERS, &block);
        let first = Head::parse(out[..HEAD_LEN].try_into().unwrap());
        assert_eq!(
            (first.kind, first.flags, first.len),
            (HEADERS, 0, MAX_FRAME)
        );
        let at = HEAD_LEN + MAX_FRAME;
        let second = Head::parse(out[at..at + HEAD_LEN].try_into().unwrap());
        assert_eq!(
            (second.kind, second.flags, second.len),
            (CONTINUATION, END_HEADERS, 10)
        );
        let mut out = Vec::new();
        write_split(&mut out, DATA, DATA, END_STREAM, &[]);
        assert_eq!(out, [0, 0, 0, DATA, END_STREAM, 0, 0, 0, 1]);
    }

    #[test]
    fn padding_and_priority_are_stripped() {
        let head = |kind, flags| Head {
            len: 0,
            kind,
            flags,
            stream: 1,
        };
        assert_eq!(unpad(&head(DATA, 0), b"abc").unwrap(), b"abc");
        assert_eq!(unpad(&head(DATA, PADDED), b"\x02abcXX").unwrap(), b"abc");
        assert_eq!(
            unpad(
                &head(HEADERS, PADDED | PRIORITY_FLAG),
                b"\x01\0\0\0\x03\x10hiX"
            )
            .unwrap(),
            b"hi"
        );
        assert!(unpad(&head(DATA, PADDED), b"\x09abc").is_err());
        assert!(unpad(&head(DATA, PADDED), b"").is_err());
        assert!(unpad(&head(HEADERS, PRIORITY_FLAG), b"\0\0").is_err());
    }

    #[test]
    fn error_names() {
        assert_eq!(error_name(0), "NO_ERROR");
        assert_eq!(error_name(11), "ENHANCE_YOUR_CALM");
        assert_eq!(error_name(13), "HTTP_1_1_REQUIRED");
        assert_eq!(error_name(14), "unknown error");
        assert_eq!(error_name(u32::MAX), "unknown error");
    }
}
