//! Probe targets: parsing the `http://`, `tcp://` and `grpc://` URLs a user types, and
//! resolving host names without DNS (IP literals, our own `/etc/hosts`
//! parser, and a built-in `localhost`).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The host part of a target: a name to look up in `/etc/hosts`, or an IP literal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Host {
    Name(String),
    Ip(IpAddr),
}

/// What `berth probe` checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// `http://HOST[:PORT]/PATH`: a GET whose status decides health.
    Http {
        host: Host,
        port: u16,
        /// Request target sent on the request line, query string included (never empty).
        path: String,
        /// Value of the `Host` header: the host as written in the URL, with `:port` when not 80.
        host_header: String,
    },
    /// `tcp://HOST:PORT`: healthy when a connection opens.
    Tcp { host: Host, port: u16 },
    /// `grpc://HOST:PORT[/SERVICE]`: the standard gRPC health check.
    Grpc {
        host: Host,
        port: u16,
        /// `:authority`: the host as written in the URL, with `:port`.
        authority: String,
        /// The service asked about; empty for the server as a whole.
        service: String,
    },
}

/// A target the user typed wrong: usage error (exit 2). Display gives the one-line reason, e.g.
/// `https://… is not supported: berth probes health endpoints on loopback, without TLS; use http://`
#[derive(Debug, PartialEq, Eq)]
pub struct TargetError(pub String);

impl fmt::Display for TargetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TargetError {}

const FORMS: &str =
    "expected http://HOST[:PORT]/PATH, tcp://HOST:PORT or grpc://HOST:PORT[/SERVICE]";

/// Longest gRPC service name accepted (real ones are fully qualified
/// protobuf names, far shorter); keeps the request inside one frame.
const MAX_SERVICE: usize = 1024;

fn usage(msg: impl Into<String>) -> TargetError {
    TargetError(msg.into())
}

/// Parses `http://HOST[:PORT][/PATH][?QUERY]`, `tcp://HOST:PORT` or
/// `grpc://HOST:PORT[/SERVICE]`.
///
/// HOST is a name, an IPv4 address or a bracketed IPv6 address. The scheme is
/// case-insensitive, a `#fragment` is dropped (it is never sent), and non-ASCII
/// bytes in the path are percent-encoded.
pub fn parse_target(s: &str) -> Result<Target, TargetError> {
    if s.is_empty() {
        return Err(usage(format!("empty target: {FORMS}")));
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(usage(format!(
            "target {s:?} contains whitespace or control characters"
        )));
    }
    let Some((scheme, rest)) = s
        .split_once("://")
        .filter(|(scheme, _)| !scheme.is_empty() && scheme.bytes().all(is_scheme_byte))
    else {
        return Err(usage(format!("target {s:?} has no scheme: {FORMS}")));
    };
    let is_http = match scheme.to_ascii_lowercase().as_str() {
        "http" => true,
        "tcp" | "grpc" => false,
        "https" => {
            return Err(usage(format!(
                "{s} is not supported: berth probes health endpoints on loopback, without TLS; use http://"
            )));
        }
        _ => {
            return Err(usage(format!(
                "unsupported scheme {scheme:?} in {s:?}: {FORMS}"
            )));
        }
    };

    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    if authority.contains('@') {
        return Err(usage(format!(
            "target {s:?} has user info (user@): berth sends no credentials in the URL; use --header"
        )));
    }
    if authority.is_empty() {
        return Err(usage(format!("target {s:?} has no host: {FORMS}")));
    }
    let (host, host_text, port) = parse_authority(authority)?;
    let tail = tail.find('#').map_or(tail, |i| &tail[..i]);

    if scheme.eq_ignore_ascii_case("grpc") {
        return parse_grpc(s, host, host_text, port, tail);
    }
    if !is_http {
        let Some(port) = port else {
            return Err(usage(format!("target {s:?} needs a port: tcp://HOST:PORT")));
        };
        if !(tail.is_empty() || tail == "/") {
            return Err(usage(format!(
                "target {s:?}: tcp:// takes no path or query"
            )));
        }
        return Ok(Target::Tcp { host, port });
    }

    let port = port.unwrap_or(80);
    let path = match tail.as_bytes().first() {
        None => "/".to_string(),
        Some(b'?') => format!("/{}", encode_path(tail)),
        Some(_) => encode_path(tail),
    };
    let host_header = if port == 80 {
        host_text
    } else {
        format!("{host_text}:{port}")
    };
    Ok(Target::Http {
        host,
        port,
        path,
        host_header,
    })
}

/// The gRPC form: a port is required (gRPC has no default port), and the
/// path, if any, is one service name.
fn parse_grpc(
    s: &str,
    host: Host,
    host_text: String,
    port: Option<u16>,
    tail: &str,
) -> Result<Target, TargetError> {
    let Some(port) = port else {
        return Err(usage(format!(
            "target {s:?} needs a port: grpc://HOST:PORT[/SERVICE]"
        )));
    };
    let service = tail.strip_prefix('/').unwrap_or(tail);
    if tail.starts_with('?') || service.contains(['/', '?']) {
        return Err(usage(format!(
            "target {s:?}: grpc:// takes one service name after the port, e.g. grpc://{host_text}:{port}/my.pkg.Service"
        )));
    }
    if service.len() > MAX_SERVICE {
        return Err(usage(format!(
            "target {s:?}: service name longer than {MAX_SERVICE} bytes"
        )));
    }
    Ok(Target::Grpc {
        host,
        port,
        authority: format!("{host_text}:{port}"),
        service: service.to_string(),
    })
}

fn is_scheme_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')
}

/// Splits `host[:port]` / `[v6][:port]` into the host, its text as written, and the port if given.
fn parse_authority(authority: &str) -> Result<(Host, String, Option<u16>), TargetError> {
    if let Some(bracketed) = authority.strip_prefix('[') {
        let Some((inside, after)) = bracketed.split_once(']') else {
            return Err(usage(format!("unclosed '[' in host {authority:?}")));
        };
        if inside.contains('%') {
            return Err(usage(format!(
                "IPv6 zone ids are not supported in host {authority:?}"
            )));
        }
        let ip: Ipv6Addr = inside
            .parse()
            .map_err(|_| usage(format!("{inside:?} is not an IPv6 address")))?;
        let port = match after {
            "" => None,
            _ => match after.strip_prefix(':') {
                Some(p) => Some(parse_port(p)?),
                None => {
                    return Err(usage(format!(
                        "unexpected {after:?} after the IPv6 address in {authority:?}"
                    )));
                }
            },
        };
        return Ok((Host::Ip(IpAddr::V6(ip)), format!("[{inside}]"), port));
    }

    let (name, port) = match authority.split_once(':') {
        Some((_, p)) if p.contains(':') => {
            return Err(usage(format!(
                "IPv6 addresses must be in brackets, e.g. http://[::1]:8080/ (got {authority:?})"
            )));
        }
        Some((name, p)) => (name, Some(parse_port(p)?)),
        None => (authority, None),
    };
    if name.is_empty() {
        return Err(usage(format!("no host in {authority:?}")));
    }
    let host = match name.parse::<Ipv4Addr>() {
        Ok(ip) => Host::Ip(IpAddr::V4(ip)),
        Err(_) => {
            validate_name(name)?;
            Host::Name(name.to_string())
        }
    };
    Ok((host, name.to_string(), port))
}

fn parse_port(p: &str) -> Result<u16, TargetError> {
    if p.is_empty() {
        return Err(usage("missing port after ':'"));
    }
    match p.parse::<u16>() {
        Ok(port) if port != 0 && p.bytes().all(|b| b.is_ascii_digit()) => Ok(port),
        _ => Err(usage(format!("bad port {p:?}: expected 1-65535"))),
    }
}

/// Host names: dot-separated labels of letters, digits, `-` and `_`, optional trailing dot.
fn validate_name(name: &str) -> Result<(), TargetError> {
    let bare = name.strip_suffix('.').unwrap_or(name);
    let valid = !bare.is_empty()
        && bare.len() <= 253
        && bare.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if !valid {
        return Err(usage(format!("{name:?} is not a valid host name")));
    }
    // A name whose last label is all digits is a mistyped IPv4 address, not a name.
    if bare
        .rsplit('.')
        .next()
        .is_some_and(|last| last.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(usage(format!("{name:?} is not a valid IPv4 address")));
    }
    Ok(())
}

/// Percent-encodes the bytes that may not appear raw on an HTTP request line
/// (non-ASCII; whitespace and controls were refused earlier).
fn encode_path(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for &b in raw.as_bytes() {
        if b.is_ascii() {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Host {
        Host::Name(s.to_string())
    }

    fn v4(s: &str) -> Host {
        Host::Ip(s.parse().unwrap())
    }

    fn http(host: Host, port: u16, path: &str, host_header: &str) -> Target {
        Target::Http {
            host,
            port,
            path: path.to_string(),
            host_header: host_header.to_string(),
        }
    }

    fn usage_error(s: &str) -> String {
        match parse_target(s) {
            Err(e) => e.to_string(),
            Ok(t) => panic!("{s:?} parsed as {t:?}, expected a usage error"),
        }
    }

    #[test]
    fn http_forms() {
        assert_eq!(
            parse_target("http://localhost:8080/healthz").unwrap(),
            http(name("localhost"), 8080, "/healthz", "localhost:8080")
        );
        assert_eq!(
            parse_target("http://localhost").unwrap(),
            http(name("localhost"), 80, "/", "localhost")
        );
        assert_eq!(
            parse_target("http://localhost/").unwrap(),
            http(name("localhost"), 80, "/", "localhost")
        );
        assert_eq!(
            parse_target("http://127.0.0.1:9000/a/b").unwrap(),
            http(v4("127.0.0.1"), 9000, "/a/b", "127.0.0.1:9000")
        );
        // Explicit :80 is the default port: no :80 in the Host header.
        assert_eq!(
            parse_target("http://app:80/x").unwrap(),
            http(name("app"), 80, "/x", "app")
        );
        assert_eq!(
            parse_target("HTTP://My-App.internal:8080/").unwrap(),
            http(name("My-App.internal"), 8080, "/", "My-App.internal:8080")
        );
    }

    #[test]
    fn http_query_and_fragment() {
        assert_eq!(
            parse_target("http://h:81/ready?full=1&x=%20").unwrap(),
            http(name("h"), 81, "/ready?full=1&x=%20", "h:81")
        );
        assert_eq!(
            parse_target("http://h?verbose").unwrap(),
            http(name("h"), 80, "/?verbose", "h")
        );
        assert_eq!(
            parse_target("http://h/x#frag").unwrap(),
            http(name("h"), 80, "/x", "h")
        );
        assert_eq!(
            parse_target("http://h#frag").unwrap(),
            http(name("h"), 80, "/", "h")
        );
        assert_eq!(
            parse_target("http://h/caf\u{e9}").unwrap(),
            http(name("h"), 80, "/caf%C3%A9", "h")
        );
    }

    #[test]
    fn ipv6_brackets() {
        let lo6 = Host::Ip("::1".parse().unwrap());
        assert_eq!(
            parse_target("http://[::1]:8080/healthz").unwrap(),
            http(lo6.clone(), 8080, "/healthz", "[::1]:8080")
        );
        assert_eq!(
            parse_target("http://[::1]").unwrap(),
            http(lo6.clone(), 80, "/", "[::1]")
        );
        assert_eq!(
            parse_target("tcp://[::1]:5432").unwrap(),
            Target::Tcp {
                host: lo6,
                port: 5432
            }
        );
        assert_eq!(
            parse_target("http://[::ffff:127.0.0.1]:81/").unwrap(),
            http(
                Host::Ip("::ffff:127.0.0.1".parse().unwrap()),
                81,
                "/",
                "[::ffff:127.0.0.1]:81"
            )
        );
    }

    #[test]
    fn tcp_forms() {
        assert_eq!(
            parse_target("tcp://db:5432").unwrap(),
            Target::Tcp {
                host: name("db"),
                port: 5432
            }
        );
        assert_eq!(
            parse_target("TCP://127.0.0.1:6379/").unwrap(),
            Target::Tcp {
                host: v4("127.0.0.1"),
                port: 6379
            }
        );
    }

    #[test]
    fn grpc_forms() {
        let grpc = |host, port, authority: &str, service: &str| Target::Grpc {
            host,
            port,
            authority: authority.to_string(),
            service: service.to_string(),
        };
        assert_eq!(
            parse_target("grpc://127.0.0.1:50051").unwrap(),
            grpc(v4("127.0.0.1"), 50051, "127.0.0.1:50051", "")
        );
        assert_eq!(
            parse_target("grpc://localhost:50051/").unwrap(),
            grpc(name("localhost"), 50051, "localhost:50051", "")
        );
        assert_eq!(
            parse_target("GRPC://[::1]:9000/grpc.health.v1.Health").unwrap(),
            grpc(
                Host::Ip("::1".parse().unwrap()),
                9000,
                "[::1]:9000",
                "grpc.health.v1.Health"
            )
        );
        assert_eq!(
            parse_target("grpc://app:1/my.pkg.Svc#frag").unwrap(),
            grpc(name("app"), 1, "app:1", "my.pkg.Svc")
        );
        for (input, want) in [
            ("grpc://app", "needs a port"),
            ("grpc://app/svc", "needs a port"),
            ("grpc://app:1/a/b", "one service name"),
            ("grpc://app:1?x", "one service name"),
            ("grpc://app:1/svc?x=1", "one service name"),
            ("grpcs://app:1", "unsupported scheme"),
        ] {
            let got = usage_error(input);
            assert!(got.contains(want), "{input:?}: {got:?}");
        }
        let long = format!("grpc://app:1/{}", "s".repeat(MAX_SERVICE + 1));
        assert!(usage_error(&long).contains("longer than 1024"));
    }

    #[test]
    fn https_is_refused_with_a_clear_message() {
        let e = usage_error("https://localhost:8443/healthz");
        assert_eq!(
            e,
            "https://localhost:8443/healthz is not supported: berth probes health endpoints on loopback, without TLS; use http://"
        );
        assert!(usage_error("HTTPS://x").contains("without TLS"));
    }

    #[test]
    fn usage_errors() {
        let cases: &[(&str, &str)] = &[
            ("", "empty target"),
            ("localhost:8080", "no scheme"),
            ("/healthz", "no scheme"),
            ("://x", "no scheme"),
            ("ftp://x/", "unsupported scheme \"ftp\""),
            ("udp://x:53", "unsupported scheme"),
            ("http://", "no host"),
            ("http:///healthz", "no host"),
            ("http://:8080/", "no host"),
            ("tcp://:5432", "no host"),
            ("http://h:/", "missing port"),
            ("http://h:0/", "bad port"),
            ("http://h:65536/", "bad port"),
            ("http://h:+80/", "bad port"),
            ("http://h:80a/", "bad port"),
            ("http://h:-1/", "bad port"),
            ("tcp://db", "needs a port"),
            ("tcp://[::1]", "needs a port"),
            ("tcp://db:5432/x", "takes no path"),
            ("tcp://db:5432?x", "takes no path"),
            ("http://user@h/", "user info"),
            ("http://user:pw@h:80/", "user info"),
            ("http://::1:8080/", "must be in brackets"),
            ("http://[::1/", "unclosed"),
            ("http://[::1]x/", "after the IPv6 address"),
            ("http://[::1]:/", "missing port"),
            ("http://[nope]/", "is not an IPv6 address"),
            ("http://[127.0.0.1]/", "is not an IPv6 address"),
            ("http://[fe80::1%25eth0]/", "zone ids"),
            ("http://ho st/", "whitespace"),
            ("http://h/a b", "whitespace"),
            ("http://h/\r\nX: y", "control"),
            (" http://h/", "whitespace"),
            ("http://h_!/", "not a valid host name"),
            ("http://a..b/", "not a valid host name"),
            ("http://.a/", "not a valid host name"),
            ("http://h\u{e9}/", "not a valid host name"),
            ("http://999.1.1.1/", "not a valid IPv4 address"),
            ("http://1234/", "not a valid IPv4 address"),
        ];
        for (input, want) in cases {
            let got = usage_error(input);
            assert!(
                got.contains(want),
                "{input:?}: got {got:?}, want it to contain {want:?}"
            );
            assert!(!got.contains('\n'), "{input:?}: multi-line error {got:?}");
        }
    }
}
