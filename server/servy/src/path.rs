//! Request target → normalised site key, or a rejection. Pure: no I/O, no state.
//!
//! Step 2 of the dispatch, run once per request. The key has no leading slash and is
//! percent-decoded: `/` → `""`, `/blog/` → `"blog/"`, `/caf%C3%A9.html` → `"café.html"`.
//! It borrows the request's path unless something had to change (decoding, `//`).
//!
//! Rules, in the order they are checked:
//! - longer than [`MAX_PATH_BYTES`] → 414;
//! - not starting with `/`, a `%` not followed by two hex digits, a backslash (raw or
//!   `%5C`), an encoded slash (`%2F`: it would let a name contain `/`), a NUL or other
//!   control byte, invalid UTF-8 after decoding, or a `.`/`..` segment (raw or encoded:
//!   clients remove dot segments before sending, so one that arrives is probing) → 400;
//! - repeated slashes collapse (`/blog//first-post/` is `blog/first-post/`), as nginx's
//!   default `merge_slashes` does: a sloppy link still works and cannot name anything new.

use std::borrow::Cow;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Longest request path accepted, in bytes as sent (before decoding). No file of a
/// personal site has a path this long; a longer one is a probe or a mistake.
pub const MAX_PATH_BYTES: usize = 1024;

/// Why a request path names nothing the site could serve. The client sees only the status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathRejection {
    /// Longer than [`MAX_PATH_BYTES`].
    TooLong,
    /// Not origin-form, or a `%` without two hex digits after it.
    Malformed,
    /// Decodes to bytes that are not UTF-8.
    InvalidUtf8,
    /// A NUL or other control character, raw or encoded.
    Control,
    /// `%2F`: a slash inside a segment.
    EncodedSlash,
    /// `\`, raw or `%5C`: some systems read it as a separator.
    Backslash,
    /// A `.` or `..` segment, raw or encoded.
    Traversal,
}

impl PathRejection {
    pub fn status(self) -> StatusCode {
        match self {
            PathRejection::TooLong => StatusCode::URI_TOO_LONG,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

impl IntoResponse for PathRejection {
    fn into_response(self) -> Response {
        let body = match self {
            PathRejection::TooLong => "414 URI Too Long\n",
            _ => "400 Bad Request\n",
        };
        (
            self.status(),
            [
                (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            body,
        )
            .into_response()
    }
}

/// Normalises a request path (`uri.path()`) into a site key; see the module docs.
pub fn normalise(path: &str) -> Result<Cow<'_, str>, PathRejection> {
    if path.len() > MAX_PATH_BYTES {
        return Err(PathRejection::TooLong);
    }
    let rest = path.strip_prefix('/').ok_or(PathRejection::Malformed)?;
    let bytes = rest.as_bytes();
    if as_is(bytes)? {
        return Ok(Cow::Borrowed(rest));
    }

    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let decoded = if b == b'%' {
            let hi = bytes.get(i + 1).and_then(|&c| hex(c));
            let lo = bytes.get(i + 2).and_then(|&c| hex(c));
            let (Some(hi), Some(lo)) = (hi, lo) else {
                return Err(PathRejection::Malformed);
            };
            i += 3;
            match hi << 4 | lo {
                b'/' => return Err(PathRejection::EncodedSlash),
                d => d,
            }
        } else {
            i += 1;
            if b == b'/' && (out.is_empty() || out.last() == Some(&b'/')) {
                continue; // collapse `//`, and drop slashes left at the start
            }
            b
        };
        check_byte(decoded)?;
        out.push(decoded);
    }
    let key = String::from_utf8(out).map_err(|_| PathRejection::InvalidUtf8)?;
    check_segments(&key)?;
    Ok(Cow::Owned(key))
}

/// One pass over the path after its leading slash: `Ok(true)` when it is a key as it
/// stands (nothing to decode, no slash to collapse, every byte and segment allowed),
/// `Ok(false)` when it must be rewritten (`%`, a leading or doubled slash), which then
/// checks everything again on the decoded bytes.
fn as_is(bytes: &[u8]) -> Result<bool, PathRejection> {
    let mut segment = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if PLAIN[usize::from(b)] {
            continue;
        }
        match b {
            b'%' => return Ok(false),
            b'/' if i == segment => return Ok(false),
            b'/' => {
                check_segment(&bytes[segment..i])?;
                segment = i + 1;
            }
            _ => check_byte(b)?,
        }
    }
    check_segment(&bytes[segment..])?;
    Ok(true)
}

/// The bytes [`as_is`] passes with one table look-up: all but `%`, `/` and those
/// [`check_byte`] refuses.
const PLAIN: [bool; 256] = {
    let mut table = [true; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = !matches!(b as u8, b'%' | b'/' | b'\\' | 0..=0x1f | 0x7f);
        b += 1;
    }
    table
};

fn check_segment(segment: &[u8]) -> Result<(), PathRejection> {
    match segment {
        b"." | b".." => Err(PathRejection::Traversal),
        _ => Ok(()),
    }
}

fn check_byte(b: u8) -> Result<(), PathRejection> {
    match b {
        b'\\' => Err(PathRejection::Backslash),
        0..=0x1f | 0x7f => Err(PathRejection::Control),
        _ => Ok(()),
    }
}

fn check_segments(key: &str) -> Result<(), PathRejection> {
    if key
        .split('/')
        .any(|segment| segment == "." || segment == "..")
    {
        return Err(PathRejection::Traversal);
    }
    Ok(())
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ok(path: &str) -> String {
        normalise(path)
            .unwrap_or_else(|e| panic!("{path:?} rejected: {e:?}"))
            .into_owned()
    }

    fn err(path: &str) -> PathRejection {
        match normalise(path) {
            Ok(key) => panic!("{path:?} accepted as {key:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn plain_paths_borrow() {
        assert!(matches!(normalise("/"), Ok(Cow::Borrowed(""))));
        assert!(matches!(normalise("/blog/"), Ok(Cow::Borrowed("blog/"))));
        assert!(matches!(
            normalise("/blog/first-post"),
            Ok(Cow::Borrowed("blog/first-post"))
        ));
        assert!(matches!(
            normalise("/.well-known/security.txt"),
            Ok(Cow::Borrowed(".well-known/security.txt"))
        ));
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(ok("/caf%C3%A9.html"), "café.html");
        assert_eq!(ok("/caf%c3%a9.html"), "café.html");
        assert_eq!(ok("/a%20b"), "a b");
        assert_eq!(ok("/100%25.html"), "100%.html");
        assert_eq!(ok("/café.html"), "café.html");
    }

    #[test]
    fn repeated_slashes_collapse() {
        assert_eq!(ok("//"), "");
        assert_eq!(ok("//blog//first-post//"), "blog/first-post/");
        assert_eq!(ok("/blog//"), "blog/");
    }

    #[test]
    fn traversal_is_refused() {
        for path in [
            "/..",
            "/../etc/passwd",
            "/a/../b",
            "/a/..",
            "/.",
            "/./a",
            "/%2e%2e/x",
            "/%2E%2E",
            "/.%2e/x",
            "//../x",
            "/a/%2e/b",
        ] {
            assert_eq!(err(path), PathRejection::Traversal, "{path}");
        }
        // Dots inside a name are fine.
        assert_eq!(ok("/a..b/...html"), "a..b/...html");
    }

    #[test]
    fn separators_and_control_bytes_are_refused() {
        assert_eq!(err("/a%2Fb"), PathRejection::EncodedSlash);
        assert_eq!(err("/a%2fb"), PathRejection::EncodedSlash);
        assert_eq!(err("/..%5c..%5cx"), PathRejection::Backslash);
        assert_eq!(err("/a\\b"), PathRejection::Backslash);
        assert_eq!(err("/a%00b"), PathRejection::Control);
        assert_eq!(err("/a\0b"), PathRejection::Control);
        assert_eq!(err("/a%0Ab"), PathRejection::Control);
        assert_eq!(err("/a%7f"), PathRejection::Control);
    }

    #[test]
    fn malformed_and_invalid_utf8_are_refused() {
        assert_eq!(err("/a%"), PathRejection::Malformed);
        assert_eq!(err("/a%2"), PathRejection::Malformed);
        assert_eq!(err("/a%zz"), PathRejection::Malformed);
        assert_eq!(err("*"), PathRejection::Malformed);
        assert_eq!(err(""), PathRejection::Malformed);
        assert_eq!(err("/%FF"), PathRejection::InvalidUtf8);
        assert_eq!(err("/%C3"), PathRejection::InvalidUtf8);
    }

    #[test]
    fn overlong_paths_are_refused() {
        let at_limit = format!("/{}", "a".repeat(MAX_PATH_BYTES - 1));
        assert_eq!(ok(&at_limit).len(), MAX_PATH_BYTES - 1);
        let over = format!("/{}", "a".repeat(MAX_PATH_BYTES));
        assert_eq!(err(&over), PathRejection::TooLong);
        assert_eq!(err(&over).status(), StatusCode::URI_TOO_LONG);
        assert_eq!(PathRejection::Traversal.status(), StatusCode::BAD_REQUEST);
    }

    proptest! {
        #[test]
        fn never_panics_and_keys_stay_inside(path in "\\PC*") {
            let _ = normalise(&path);
            let _ = normalise(&format!("/{path}"));
        }

        #[test]
        fn accepted_keys_are_safe(path in "(/|%2[eEfF]|%5[cC]|%00|%[0-9a-fA-F]{2}|\\.|\\.\\.|\\\\|[a-z]|é|%)*") {
            if let Ok(key) = normalise(&path) {
                prop_assert!(!key.starts_with('/'), "{key:?}");
                prop_assert!(!key.contains('\\') && !key.contains('\0'), "{key:?}");
                prop_assert!(!key.contains("//"), "{key:?}");
                prop_assert!(key.split('/').all(|s| s != ".." && s != "."), "{key:?}");
            }
        }

        #[test]
        fn unencoded_safe_paths_round_trip(segments in proptest::collection::vec("[a-zA-Z0-9_-][a-zA-Z0-9._-]{0,12}", 0..6)) {
            let key = segments.join("/");
            let path = format!("/{key}");
            prop_assume!(key.split('/').all(|s| s != "." && s != ".."));
            prop_assert_eq!(normalise(&path).map(Cow::into_owned), Ok(key));
        }
    }
}
