//! The `Host` header, checked before anything else looks at the request (RFC 9112 §3.2).
//!
//! Step 1 of the dispatch, with the method check. A server "MUST respond with a 400 (Bad
//! Request) status code to any HTTP/1.1 request message that lacks a Host header field
//! and to any request message that contains more than one Host header field line or a
//! Host header field with an invalid field value". nginx does; hyper leaves it to us.
//! Certificates and HTTPS redirects are chosen by host, so the header must be one
//! well-formed value before anything trusts it.
//!
//! HTTP/2 carries the authority in `:authority`, so an h2 request may have no `Host`.

use axum::http::{StatusCode, Version, header};
use axum::response::{IntoResponse, Response};

use crate::request_headers::{Lines, RequestHeaders};

/// Why the request's `Host` cannot be trusted. The client sees only the status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostRejection {
    /// An HTTP/1.1 request without `Host`.
    Missing,
    /// More than one `Host` line.
    Repeated,
    /// Not `host[:port]` (RFC 9110 §7.2): empty in HTTP/1.1, userinfo, a path, bad bytes.
    Invalid,
}

/// Accepts exactly one well-formed `Host` (none is fine before HTTP/1.1, and in HTTP/2)
/// and gives its text back, or `None` when there is none (or an empty one before
/// HTTP/1.1). Every reader of `Host` goes through here: the dispatch and the redirect to
/// HTTPS. It reads the bytes in place: nothing is copied or allocated.
pub fn check<'a>(
    version: Version,
    headers: &RequestHeaders<'a>,
) -> Result<Option<&'a str>, HostRejection> {
    let host = match headers.host() {
        Lines::One(host) => host,
        Lines::Many => return Err(HostRejection::Repeated),
        Lines::None if version == Version::HTTP_11 => return Err(HostRejection::Missing),
        Lines::None => return Ok(None),
    };
    // RFC 9112 §3.2 allows an empty Host only when the target has no authority, which
    // origin-form never does; HTTP/1.0 clients may still send it.
    if host.is_empty() {
        return if version == Version::HTTP_11 {
            Err(HostRejection::Invalid)
        } else {
            Ok(None)
        };
    }
    match is_authority(host.as_bytes()) {
        // Only ASCII passes, so this is the same text.
        true => std::str::from_utf8(host.as_bytes())
            .map(Some)
            .map_err(|_| HostRejection::Invalid),
        false => Err(HostRejection::Invalid),
    }
}

/// `host [ ":" port ]` as RFC 3986 §3.2 has it, without userinfo (a Host never carries
/// one): an IP literal in brackets, or a non-empty reg-name (unreserved characters,
/// percent-encodings and sub-delims, which covers IPv4), then an optional port of digits.
fn is_authority(text: &[u8]) -> bool {
    let (host_ok, port) = match text {
        [b'[', rest @ ..] => {
            let Some(end) = rest.iter().position(|&b| b == b']') else {
                return false;
            };
            let (literal, after) = (&rest[..end], &rest[end + 1..]);
            let literal_ok = !literal.is_empty()
                && literal
                    .iter()
                    .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
            match after {
                [] => (literal_ok, None),
                [b':', port @ ..] => (literal_ok, Some(port)),
                _ => return false,
            }
        }
        // A reg-name has no `:`, so the first one starts the port.
        _ => match reg_name_len(text) {
            Some(name) => (name > 0, text.get(name + 1..)),
            None => return false,
        },
    };
    host_ok && port.is_none_or(|port| port.iter().all(u8::is_ascii_digit))
}

/// The length of the reg-name `text` starts with, up to its end or a `:`; `None` when a
/// byte before that is not allowed in one. One pass, one table look-up a byte.
fn reg_name_len(text: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(&b) = text.get(i) {
        i += match b {
            b':' => break,
            _ if REG_NAME[usize::from(b)] => 1,
            b'%' => match text.get(i + 1..i + 3) {
                Some([h, l]) if h.is_ascii_hexdigit() && l.is_ascii_hexdigit() => 3,
                _ => return None,
            },
            _ => return None,
        };
    }
    Some(i)
}

/// The bytes a reg-name takes as they are: unreserved characters and sub-delims, one
/// table look-up a byte.
const REG_NAME: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric();
        b += 1;
    }
    let others = b"-._~!$&'()*+,;=";
    let mut i = 0;
    while i < others.len() {
        table[others[i] as usize] = true;
        i += 1;
    }
    table
};

/// The DNS name of an authority (`host[:port]`): the port and a trailing dot dropped,
/// lower-case; `None` for an IP literal or anything else a certificate cannot cover.
pub fn dns_name(authority: &str) -> Option<String> {
    let name = match authority.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => authority,
    };
    let name = name.strip_suffix('.').unwrap_or(name);
    let plain = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    plain.then(|| name.to_ascii_lowercase())
}

impl IntoResponse for HostRejection {
    fn into_response(self) -> Response {
        (
            StatusCode::BAD_REQUEST,
            [
                (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            "400 Bad Request\n",
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderMap, HeaderValue};
    use proptest::prelude::*;

    use super::*;

    /// The verdict alone.
    fn judge(version: Version, headers: &HeaderMap) -> Result<(), HostRejection> {
        check(version, &RequestHeaders::of(headers)).map(|_| ())
    }

    fn headers(hosts: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for host in hosts {
            h.append(
                header::HOST,
                HeaderValue::from_str(host).expect("valid value"),
            );
        }
        h
    }

    #[test]
    fn one_well_formed_host_passes() {
        for host in [
            "example.com",
            "example.com:8080",
            "127.0.0.1:80",
            "[::1]:8080",
            "localhost",
            "[::1]",
            "example.com:",
            "caf%C3%A9.example",
            "xn--bcher-kva.example",
        ] {
            assert_eq!(judge(Version::HTTP_11, &headers(&[host])), Ok(()), "{host}");
        }
    }

    #[test]
    fn http_1_1_without_host_is_refused() {
        assert_eq!(
            judge(Version::HTTP_11, &HeaderMap::new()),
            Err(HostRejection::Missing)
        );
        assert_eq!(
            judge(Version::HTTP_11, &headers(&[""])),
            Err(HostRejection::Invalid)
        );
    }

    #[test]
    fn older_versions_and_h2_may_omit_it() {
        for version in [Version::HTTP_10, Version::HTTP_09, Version::HTTP_2] {
            assert_eq!(judge(version, &HeaderMap::new()), Ok(()), "{version:?}");
        }
        assert_eq!(judge(Version::HTTP_10, &headers(&[""])), Ok(()));
    }

    #[test]
    fn repeated_host_is_refused_in_every_version() {
        for version in [Version::HTTP_10, Version::HTTP_11, Version::HTTP_2] {
            let same = headers(&["a.example", "a.example"]);
            assert_eq!(judge(version, &same), Err(HostRejection::Repeated));
        }
    }

    #[test]
    fn malformed_hosts_are_refused() {
        for host in [
            "user@example.com",
            "example.com/path",
            "exa mple.com",
            "example.com:port",
            "[::1",
            "a?b",
            "a:b:80",
            ":80",
            "[]",
            "[::1]x",
            "[::1]:8o",
            "ex%zzample.com",
            "ex%2",
        ] {
            assert_eq!(
                judge(Version::HTTP_11, &headers(&[host])),
                Err(HostRejection::Invalid),
                "{host}"
            );
        }
    }

    #[test]
    fn dns_names_drop_the_port_and_the_trailing_dot() {
        let name = dns_name;
        assert_eq!(name("Example.ORG"), Some("example.org".into()));
        assert_eq!(name("example.org:8080"), Some("example.org".into()));
        assert_eq!(name("example.org."), Some("example.org".into()));
        assert_eq!(name("[::1]:80"), None);
    }

    proptest! {
        /// Whatever a client puts in Host, the check answers (never panics), and what it
        /// accepts is a plain `host[:port]`.
        #[test]
        fn any_host_is_judged_without_panicking(host in "[ -~]{0,40}") {
            let Ok(value) = HeaderValue::from_str(&host) else { return Ok(()); };
            let mut h = HeaderMap::new();
            h.insert(header::HOST, value);
            if check(Version::HTTP_11, &RequestHeaders::of(&h)).is_ok() {
                prop_assert!(!host.is_empty());
                prop_assert!(!host.contains(['@', '/', ' ', '?', '#']), "{host:?}");
            }
        }
    }
}
