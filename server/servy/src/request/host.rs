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

use axum::http::uri::Authority;
use axum::http::{HeaderMap, StatusCode, Version, header};
use axum::response::{IntoResponse, Response};

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
/// and gives it back parsed, or `None` when there is none (or an empty one before
/// HTTP/1.1). Every reader of `Host` goes through here: the dispatch and the redirect to
/// HTTPS.
pub fn check(version: Version, headers: &HeaderMap) -> Result<Option<Authority>, HostRejection> {
    let mut hosts = headers.get_all(header::HOST).iter();
    let Some(host) = hosts.next() else {
        return if version == Version::HTTP_11 {
            Err(HostRejection::Missing)
        } else {
            Ok(None)
        };
    };
    if hosts.next().is_some() {
        return Err(HostRejection::Repeated);
    }
    // RFC 9112 §3.2 allows an empty Host only when the target has no authority, which
    // origin-form never does; HTTP/1.0 clients may still send it.
    if host.is_empty() {
        return if version == Version::HTTP_11 {
            Err(HostRejection::Invalid)
        } else {
            Ok(None)
        };
    }
    let authority = Authority::try_from(host.as_bytes()).map_err(|_| HostRejection::Invalid)?;
    // `Authority` accepts userinfo (`user@host`), which a Host header never carries, and
    // leaves the port unchecked; RFC 3986's port is `*DIGIT`.
    let text = authority.as_str();
    let after_ip_literal = text.rfind(']').map_or(text, |i| &text[i + 1..]);
    let port_ok = after_ip_literal
        .split_once(':')
        .is_none_or(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()));
    if text.contains('@') || !port_ok {
        return Err(HostRejection::Invalid);
    }
    Ok(Some(authority))
}

/// The DNS name of an authority: the port and a trailing dot dropped, lower-case; `None`
/// for an IP literal or anything else a certificate cannot cover.
pub fn dns_name(authority: &Authority) -> Option<String> {
    let name = authority.host();
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
    use axum::http::HeaderValue;
    use proptest::prelude::*;

    use super::*;

    /// The verdict alone.
    fn judge(version: Version, headers: &HeaderMap) -> Result<(), HostRejection> {
        check(version, headers).map(|_| ())
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
        let name = |host: &str| dns_name(&Authority::try_from(host).unwrap());
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
            if check(Version::HTTP_11, &h).is_ok() {
                prop_assert!(!host.is_empty());
                prop_assert!(!host.contains(['@', '/', ' ', '?', '#']), "{host:?}");
            }
        }
    }
}
