//! SOCKET instances (`"tcp:*:5432"`, `"udp:[::1]:*"`, `"unix:/run/*"`, `"*"`) and the
//! canonical socket addresses they match (`tcp:127.0.0.1:5432`, `unix:@name`, `unix:`).
//! An internet instance is three fields, kind, host and port, matched each on its own, so
//! the brackets of an IPv6 host are not a glob class; a UNIX instance is a glob on the
//! path (or `@` abstract name; empty for an unnamed socket).

use glob::{MatchOptions, Pattern};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The forms an instance takes, for messages.
pub(super) const FORMS: &str = "\"*\", \"tcp:HOST:PORT\", \"udp:HOST:PORT\" (HOST and PORT may be *), \"tcp:*\", \"udp:*\" or \"unix:PATH\"";

/// One SOCKET instance, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum SocketPattern {
    /// `*`: every socket of every family.
    Any,
    /// `tcp:HOST:PORT` or `udp:HOST:PORT`; `None` is `*`.
    Inet {
        kind: InetKind,
        host: Option<IpAddr>,
        port: Option<u16>,
    },
    /// `unix:GLOB`.
    Unix(Pattern),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum InetKind {
    Tcp,
    Udp,
}

fn inet_kind(word: &str) -> Option<InetKind> {
    match word.to_ascii_lowercase().as_str() {
        "tcp" => Some(InetKind::Tcp),
        "udp" => Some(InetKind::Udp),
        _ => None,
    }
}

/// `HOST:PORT` (IPv6 host in brackets) as its text parts.
fn split_host_port(rest: &str) -> Result<(&str, &str), String> {
    if let Some(bracketed) = rest.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or_else(|| format!("no ']' after the IPv6 host in {rest:?}"))?;
        let port = after
            .strip_prefix(':')
            .ok_or_else(|| format!("expected ':PORT' after [{host}]"))?;
        return Ok((host, port));
    }
    let (host, port) = rest
        .rsplit_once(':')
        .ok_or_else(|| format!("expected HOST:PORT, found {rest:?}"))?;
    if host.contains(':') {
        return Err(format!(
            "IPv6 host {host:?} must be written in brackets: [{host}]:{port}"
        ));
    }
    Ok((host, port))
}

fn host(text: &str, bracketed: bool) -> Result<Option<IpAddr>, String> {
    if text == "*" {
        return Ok(None);
    }
    let ip = if bracketed {
        text.parse::<Ipv6Addr>().map(IpAddr::V6)
    } else {
        text.parse::<Ipv4Addr>().map(IpAddr::V4)
    };
    ip.map(|ip| Some(ip.to_canonical()))
        .map_err(|_| format!("invalid host {text:?} (expected *, an IPv4 address or [IPv6])"))
}

fn port(text: &str) -> Result<Option<u16>, String> {
    if text == "*" {
        return Ok(None);
    }
    match text.parse::<u16>() {
        Ok(p) if text.chars().all(|c| c.is_ascii_digit()) => Ok(Some(p)),
        _ => Err(format!(
            "invalid port {text:?} (expected * or a number up to 65535)"
        )),
    }
}

impl SocketPattern {
    /// Parses an instance; the error says what is wrong, in words.
    pub(super) fn parse(text: &str) -> Result<SocketPattern, String> {
        if text == "*" {
            return Ok(SocketPattern::Any);
        }
        let Some((kind, rest)) = text.split_once(':') else {
            return Err(format!("expected {FORMS}"));
        };
        if kind.eq_ignore_ascii_case("unix") {
            return Pattern::new(rest)
                .map(SocketPattern::Unix)
                .map_err(|e| format!("invalid path pattern {rest:?}: {}", e.msg));
        }
        let Some(kind) = inet_kind(kind) else {
            return Err(format!("unknown socket kind {kind:?} (expected {FORMS})"));
        };
        if rest == "*" {
            return Ok(SocketPattern::Inet {
                kind,
                host: None,
                port: None,
            });
        }
        let (h, p) = split_host_port(rest)?;
        Ok(SocketPattern::Inet {
            kind,
            host: host(h, rest.starts_with('['))?,
            port: port(p)?,
        })
    }

    /// Whether the canonical `address` is one this instance names.
    pub(super) fn matches(&self, address: &str) -> bool {
        const MATCH: MatchOptions = MatchOptions {
            case_sensitive: true,
            require_literal_separator: false,
            require_literal_leading_dot: false,
        };
        match self {
            SocketPattern::Any => true,
            SocketPattern::Unix(glob) => address
                .strip_prefix("unix:")
                .is_some_and(|path| glob.matches_with(path, MATCH)),
            SocketPattern::Inet { kind, host, port } => {
                let Some((k, rest)) = address.split_once(':') else {
                    return false;
                };
                let Ok((h, p)) = split_host_port(rest) else {
                    return false;
                };
                let (Ok(Some(h)), Ok(Some(p))) =
                    (self::host(h, rest.starts_with('[')), self::port(p))
                else {
                    return false;
                };
                inet_kind(k) == Some(*kind)
                    && host.is_none_or(|want| want == h)
                    && port.is_none_or(|want| want == p)
            }
        }
    }

    /// How specific the instance is, greater is more: a kind beats `*`; then more literal
    /// fields (host, port); for UNIX paths, the FILE glob order (`glob`).
    pub(super) fn specificity<G: Ord + Default>(&self, glob: impl Fn(&str) -> G) -> (bool, u8, G) {
        match self {
            SocketPattern::Any => (false, 0, G::default()),
            SocketPattern::Inet { host, port, .. } => (
                true,
                u8::from(host.is_some()) + u8::from(port.is_some()),
                G::default(),
            ),
            SocketPattern::Unix(p) => (true, 0, glob(p.as_str())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, address: &str) -> bool {
        SocketPattern::parse(pattern).unwrap().matches(address)
    }

    #[test]
    fn instances_match_kind_host_and_port_apart() {
        assert!(matches("*", "tcp:1.2.3.4:5"));
        assert!(matches("*", "netlink:0"));
        assert!(matches("tcp:*", "tcp:[::1]:80"));
        assert!(!matches("tcp:*", "udp:1.2.3.4:80"));
        assert!(matches("tcp:*:5432", "tcp:10.0.0.1:5432"));
        assert!(matches("tcp:*:5432", "tcp:[::1]:5432"));
        assert!(!matches("tcp:*:5432", "tcp:10.0.0.1:5433"));
        assert!(matches("tcp:127.0.0.1:*", "tcp:127.0.0.1:9"));
        assert!(matches("tcp:[::1]:*", "tcp:[::1]:9"));
        assert!(matches("tcp:[0::1]:*", "tcp:[::1]:9"));
        assert!(!matches("tcp:[::1]:*", "tcp:[::2]:9"));
        // a v4-mapped IPv6 address is its IPv4 address
        assert!(matches("udp:127.0.0.1:53", "udp:[::ffff:127.0.0.1]:53"));
        assert!(matches("unix:*", "unix:"));
        assert!(matches("unix:*", "unix:@abstract"));
        assert!(matches("unix:/run/*", "unix:/run/systemd/journal/stdout"));
        assert!(!matches("unix:/run/*", "tcp:1.2.3.4:5"));
        assert!(matches("unix:", "unix:"));
        assert!(!matches("unix:", "unix:/x"));
        assert!(matches("unix:@a[bc]", "unix:@ac"));
        // an address that does not parse is matched by * only
        assert!(!matches("tcp:*", "tcp:nonsense"));
    }

    #[test]
    fn bad_instances_say_why() {
        for (text, why) in [
            ("", "expected"),
            ("/run/x", "expected"),
            ("sctp:*", "unknown socket kind"),
            ("tcp:::1:5", "brackets"),
            ("tcp:[::1:5", "no ']'"),
            ("tcp:[::1]5", "':PORT'"),
            ("tcp:1.2.3:5", "invalid host"),
            ("tcp:[1.2.3.4]:5", "invalid host"),
            ("tcp:localhost:5", "invalid host"),
            ("tcp:*:65536", "invalid port"),
            ("tcp:*:+5", "invalid port"),
            ("tcp:1.2.3.4", "expected HOST:PORT"),
            ("unix:[", "invalid path pattern"),
        ] {
            let e = SocketPattern::parse(text).unwrap_err();
            assert!(e.contains(why), "{text:?}: {e}");
        }
    }

    #[test]
    fn kinds_and_literal_fields_are_more_specific() {
        let s = |p: &str| SocketPattern::parse(p).unwrap().specificity(|g| g.len());
        assert!(s("tcp:*") > s("*"));
        assert!(s("tcp:*:5") > s("tcp:*"));
        assert!(s("tcp:1.2.3.4:5") > s("tcp:*:5"));
        assert!(s("unix:/a/b") > s("unix:*"));
    }
}
