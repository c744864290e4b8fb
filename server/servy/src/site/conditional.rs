//! Validators: does the client already hold the representation we would send?
//!
//! Part of step 3 of the dispatch, after the encoding is chosen (the ETag compared is that
//! representation's own) and before ranges. RFC 9110 §13.2.2 order for GET/HEAD:
//! `If-None-Match` decides when present (weak comparison, lists, `*`); only without it,
//! and only when the asset has a meaningful Last-Modified, does `If-Modified-Since`.
//! A "yes" becomes a 304 carrying the validators and caching headers, with no body.

use axum::http::HeaderMap;
use axum::http::header::{IF_MODIFIED_SINCE, IF_NONE_MATCH};

/// True when the client's cached copy is current: answer 304.
///
/// `etag` is the chosen representation's quoted strong ETag; `last_modified` is the
/// asset's Last-Modified in Unix seconds, if it has one.
pub fn not_modified(headers: &HeaderMap, etag: &str, last_modified: Option<u64>) -> bool {
    let mut if_none_match = headers.get_all(IF_NONE_MATCH).iter().peekable();
    if if_none_match.peek().is_some() {
        return if_none_match.any(|value| none_match_hits(value.as_bytes(), etag.as_bytes()));
    }
    let (Some(last_modified), Some(since)) = (last_modified, headers.get(IF_MODIFIED_SINCE)) else {
        return false;
    };
    match since
        .to_str()
        .ok()
        .and_then(|s| httpdate::parse_http_date(s.trim()).ok())
    {
        Some(since) => unix_secs(since).is_some_and(|since| last_modified <= since),
        // An unparseable date is ignored (RFC 9110 §13.1.3): send the full response.
        None => false,
    }
}

/// One `If-None-Match` field value: `*`, or a list of entity tags, each maybe `W/`-weak.
/// Weak comparison: `W/"x"` and `"x"` both match `"x"`.
fn none_match_hits(value: &[u8], etag: &[u8]) -> bool {
    value.split(|&b| b == b',').any(|item| {
        let item = item.trim_ascii();
        let item = item.strip_prefix(b"W/").unwrap_or(item);
        item == b"*" || item == etag
    })
}

pub fn unix_secs(t: std::time::SystemTime) -> Option<u64> {
    t.duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const ETAG: &str = "\"abcDEF123_-\"";
    // Sun, 06 Nov 1994 08:49:37 GMT
    const LM: u64 = 784_111_777;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for &(name, value) in pairs {
            map.append(name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn no_validators_means_full_response() {
        assert!(!not_modified(&headers(&[]), ETAG, Some(LM)));
    }

    #[test]
    fn if_none_match_exact_weak_lists_and_star() {
        assert!(not_modified(
            &headers(&[("if-none-match", "\"abcDEF123_-\"")]),
            ETAG,
            None
        ));
        assert!(not_modified(
            &headers(&[("if-none-match", "W/\"abcDEF123_-\"")]),
            ETAG,
            None
        ));
        assert!(not_modified(
            &headers(&[("if-none-match", "\"x\", W/\"y\" ,\"abcDEF123_-\"")]),
            ETAG,
            None
        ));
        assert!(not_modified(
            &headers(&[("if-none-match", "*")]),
            ETAG,
            None
        ));
        assert!(not_modified(
            &headers(&[
                ("if-none-match", "\"x\""),
                ("if-none-match", "\"abcDEF123_-\"")
            ]),
            ETAG,
            None
        ));
    }

    #[test]
    fn if_none_match_misses() {
        assert!(!not_modified(
            &headers(&[("if-none-match", "\"x\", W/\"y\"")]),
            ETAG,
            None
        ));
        // Unquoted tags are not the same tag (the predecessor sent unquoted ETags).
        assert!(!not_modified(
            &headers(&[("if-none-match", "abcDEF123_-")]),
            ETAG,
            None
        ));
        assert!(!not_modified(
            &headers(&[("if-none-match", "\"ABCdef123_-\"")]),
            ETAG,
            None
        ));
        assert!(!not_modified(
            &headers(&[("if-none-match", "")]),
            ETAG,
            None
        ));
    }

    #[test]
    fn if_none_match_takes_precedence_over_if_modified_since() {
        let h = headers(&[
            ("if-none-match", "\"other\""),
            ("if-modified-since", "Sun, 06 Nov 1994 08:49:37 GMT"),
        ]);
        assert!(!not_modified(&h, ETAG, Some(LM)));
    }

    #[test]
    fn if_modified_since() {
        let same = headers(&[("if-modified-since", "Sun, 06 Nov 1994 08:49:37 GMT")]);
        assert!(not_modified(&same, ETAG, Some(LM)));
        let later = headers(&[("if-modified-since", "Mon, 07 Nov 1994 08:49:37 GMT")]);
        assert!(not_modified(&later, ETAG, Some(LM)));
        let earlier = headers(&[("if-modified-since", "Sun, 06 Nov 1994 08:49:36 GMT")]);
        assert!(!not_modified(&earlier, ETAG, Some(LM)));
        // Obsolete formats are still dates (RFC 9110 §5.6.7).
        let rfc850 = headers(&[("if-modified-since", "Sunday, 06-Nov-94 08:49:37 GMT")]);
        assert!(not_modified(&rfc850, ETAG, Some(LM)));
    }

    #[test]
    fn if_modified_since_ignored_without_last_modified_or_when_garbage() {
        let later = headers(&[("if-modified-since", "Mon, 07 Nov 1994 08:49:37 GMT")]);
        assert!(!not_modified(&later, ETAG, None));
        let garbage = headers(&[("if-modified-since", "yesterday")]);
        assert!(!not_modified(&garbage, ETAG, Some(LM)));
    }
}
