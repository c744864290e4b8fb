//! `Range` and `If-Range`: which bytes of the chosen representation to send.
//!
//! The last part of step 3 of the dispatch, for GET only (RFC 9110 §14.2: other methods
//! ignore Range). Ranges apply to the representation actually sent, so a `br` response's
//! ranges are offsets into the brotli bytes, and its ETag is what `If-Range` must match.
//!
//! Only a single byte range is honoured. Several ranges would need a
//! `multipart/byteranges` body built and copied per request; the clients that use ranges
//! (resumed downloads, media seeking) ask for one, and RFC 9110 §14.2 lets a server
//! ignore `Range` and send the whole representation, so a multi-range request gets 200.

use std::ops::RangeInclusive;

use axum::http::HeaderMap;
use axum::http::header::{IF_RANGE, RANGE};

use super::conditional::unix_secs;

/// What to send for a GET of a representation `len` bytes long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 200 with the whole representation.
    Full,
    /// 206 with these bytes (inclusive, within the representation).
    Partial(RangeInclusive<u64>),
    /// 416 with `Content-Range: bytes */len`.
    Unsatisfiable,
}

/// Reads `Range` and `If-Range` for the representation with this ETag and length.
pub fn evaluate(headers: &HeaderMap, etag: &str, last_modified: Option<u64>, len: u64) -> Outcome {
    let Some(range) = headers.get(RANGE) else {
        return Outcome::Full;
    };
    if let Some(if_range) = headers.get(IF_RANGE)
        && !if_range_holds(if_range.as_bytes(), etag, last_modified)
    {
        return Outcome::Full;
    }
    parse(range.as_bytes(), len)
}

/// `If-Range` matches only with a strong validator (RFC 9110 §13.1.5): the exact ETag
/// (a weak `W/` tag never matches), or a date equal to the Last-Modified.
fn if_range_holds(value: &[u8], etag: &str, last_modified: Option<u64>) -> bool {
    let value = value.trim_ascii();
    if value.starts_with(b"\"") || value.starts_with(b"W/") {
        return value == etag.as_bytes();
    }
    let date = std::str::from_utf8(value)
        .ok()
        .and_then(|s| httpdate::parse_http_date(s).ok())
        .and_then(unix_secs);
    matches!((date, last_modified), (Some(date), Some(lm)) if date == lm)
}

/// Parses a `Range` value against a representation of `len` bytes.
pub fn parse(value: &[u8], len: u64) -> Outcome {
    let value = value.trim_ascii();
    let Some(spec) = value
        .get(..6)
        .filter(|unit| unit.eq_ignore_ascii_case(b"bytes="))
        .map(|_| &value[6..])
    else {
        return Outcome::Full; // another unit, or garbage: ignored
    };
    if spec.contains(&b',') {
        return Outcome::Full; // several ranges: see the module docs
    }
    let Some(dash) = spec.iter().position(|&b| b == b'-') else {
        return Outcome::Full;
    };
    let (first, last) = (spec[..dash].trim_ascii(), spec[dash + 1..].trim_ascii());
    match (number(first), number(last)) {
        // `-n`: the last n bytes.
        (None, Some(n)) if first.is_empty() => {
            if n == 0 || len == 0 {
                Outcome::Unsatisfiable
            } else {
                Outcome::Partial(len.saturating_sub(n)..=len - 1)
            }
        }
        // `a-`: from a to the end.
        (Some(a), None) if last.is_empty() => {
            if a >= len {
                Outcome::Unsatisfiable
            } else {
                Outcome::Partial(a..=len - 1)
            }
        }
        // `a-b`, with b clamped to the end.
        (Some(a), Some(b)) if a <= b => {
            if a >= len {
                Outcome::Unsatisfiable
            } else {
                Outcome::Partial(a..=b.min(len - 1))
            }
        }
        _ => Outcome::Full, // syntactically invalid: ignored
    }
}

/// A run of ASCII digits; values beyond u64 saturate (they are past any end anyway).
fn number(s: &[u8]) -> Option<u64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0u64, |n, &d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use proptest::prelude::*;

    #[test]
    fn single_ranges() {
        assert_eq!(parse(b"bytes=0-99", 1000), Outcome::Partial(0..=99));
        assert_eq!(parse(b"bytes=500-", 1000), Outcome::Partial(500..=999));
        assert_eq!(parse(b"bytes=-100", 1000), Outcome::Partial(900..=999));
        assert_eq!(parse(b"bytes=-5000", 1000), Outcome::Partial(0..=999));
        assert_eq!(parse(b"bytes=900-5000", 1000), Outcome::Partial(900..=999));
        assert_eq!(parse(b"bytes=999-999", 1000), Outcome::Partial(999..=999));
        assert_eq!(
            parse(b"Bytes = 1-2", 1000),
            Outcome::Full,
            "space before '=' is not the unit"
        );
        assert_eq!(parse(b"BYTES=1-2", 1000), Outcome::Partial(1..=2));
        assert_eq!(parse(b"bytes= 1 - 2 ", 1000), Outcome::Partial(1..=2));
    }

    #[test]
    fn unsatisfiable() {
        assert_eq!(parse(b"bytes=1000-", 1000), Outcome::Unsatisfiable);
        assert_eq!(parse(b"bytes=1000-2000", 1000), Outcome::Unsatisfiable);
        assert_eq!(parse(b"bytes=-0", 1000), Outcome::Unsatisfiable);
        assert_eq!(parse(b"bytes=0-", 0), Outcome::Unsatisfiable);
        assert_eq!(parse(b"bytes=-1", 0), Outcome::Unsatisfiable);
        assert_eq!(
            parse(b"bytes=99999999999999999999999-", 10),
            Outcome::Unsatisfiable
        );
    }

    #[test]
    fn ignored_means_full() {
        for value in [
            &b"bytes=5-1"[..],
            b"bytes=0-1,5-6",
            b"items=0-1",
            b"bytes=",
            b"bytes=-",
            b"bytes=a-b",
            b"bytes=1",
            b"",
            b"bytes=--1",
        ] {
            assert_eq!(
                parse(value, 1000),
                Outcome::Full,
                "{:?}",
                String::from_utf8_lossy(value)
            );
        }
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|&(n, v)| (n.parse().expect("valid name"), HeaderValue::from_static(v)))
            .collect()
    }

    #[test]
    fn if_range() {
        let etag = "\"tag\"";
        let lm = Some(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        let ok = |h: &[(&'static str, &'static str)]| evaluate(&headers(h), etag, lm, 100);
        assert_eq!(ok(&[("range", "bytes=0-9")]), Outcome::Partial(0..=9));
        assert_eq!(
            ok(&[("range", "bytes=0-9"), ("if-range", "\"tag\"")]),
            Outcome::Partial(0..=9)
        );
        assert_eq!(
            ok(&[("range", "bytes=0-9"), ("if-range", "\"old\"")]),
            Outcome::Full
        );
        assert_eq!(
            ok(&[("range", "bytes=0-9"), ("if-range", "W/\"tag\"")]),
            Outcome::Full
        );
        assert_eq!(
            ok(&[
                ("range", "bytes=0-9"),
                ("if-range", "Sun, 06 Nov 1994 08:49:37 GMT")
            ]),
            Outcome::Partial(0..=9)
        );
        assert_eq!(
            ok(&[
                ("range", "bytes=0-9"),
                ("if-range", "Sun, 06 Nov 1994 08:49:38 GMT")
            ]),
            Outcome::Full
        );
        assert_eq!(
            ok(&[("range", "bytes=0-9"), ("if-range", "garbage")]),
            Outcome::Full
        );
        assert_eq!(
            evaluate(
                &headers(&[
                    ("range", "bytes=0-9"),
                    ("if-range", "Sun, 06 Nov 1994 08:49:37 GMT")
                ]),
                etag,
                None,
                100
            ),
            Outcome::Full
        );
        assert_eq!(ok(&[("if-range", "\"tag\"")]), Outcome::Full);
    }

    proptest! {
        #[test]
        fn partial_ranges_lie_inside(value in "(bytes|BYTES|x)=[0-9]{0,4}-[0-9]{0,4}", len in 0u64..5000) {
            match parse(value.as_bytes(), len) {
                Outcome::Partial(r) => prop_assert!(r.start() <= r.end() && *r.end() < len),
                Outcome::Full | Outcome::Unsatisfiable => {}
            }
        }

        #[test]
        fn never_panics(value in proptest::collection::vec(any::<u8>(), 0..40), len in any::<u64>()) {
            let _ = parse(&value, len);
        }
    }
}
