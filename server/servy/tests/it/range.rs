//! Byte ranges: 206 with `Content-Range`, 416 when unsatisfiable, `If-Range`.

use crate::assets::demo_file;
use crate::support::{Servy, get, request};

const FILE: &str = "/search-index.json";

fn ranged(servy: &Servy, range: &str, extra: &[(&str, &str)]) -> crate::support::Response {
    let mut headers = vec![("range", range)];
    headers.extend_from_slice(extra);
    request(servy.http, "GET", FILE, &headers)
}

#[test]
fn single_ranges_are_206() {
    let servy = Servy::start("");
    let file = demo_file("search-index.json");
    let len = file.len();
    assert!(
        len >= 64 * 1024,
        "the demo file must be large enough for ranges"
    );
    for (range, start, end) in [
        ("bytes=0-99", 0, 99),
        ("bytes=1000-1999", 1000, 1999),
        ("bytes=60000-", 60000, len - 1),
        ("bytes=-500", len - 500, len - 1),
        ("bytes=-999999999", 0, len - 1),
        (&format!("bytes={}-99999999", len - 10), len - 10, len - 1),
    ] {
        let r = ranged(&servy, range, &[]);
        assert_eq!(r.status, 206, "{range}");
        assert_eq!(
            r.header("content-range"),
            Some(format!("bytes {start}-{end}/{len}").as_str()),
            "{range}"
        );
        assert_eq!(
            r.header("content-length"),
            Some((end - start + 1).to_string().as_str()),
            "{range}"
        );
        assert!(r.body == file[start..=end], "{range}: wrong bytes");
        assert!(r.header("etag").is_some(), "{range}");
        assert_eq!(
            r.header("content-type"),
            Some("application/json; charset=utf-8")
        );
    }
}

#[test]
fn unsatisfiable_is_416() {
    let servy = Servy::start("");
    let len = demo_file("search-index.json").len();
    for range in [
        format!("bytes={len}-"),
        format!("bytes={}-{}", len + 5, len + 10),
        "bytes=-0".to_string(),
    ] {
        let r = ranged(&servy, &range, &[]);
        assert_eq!(r.status, 416, "{range}");
        assert_eq!(
            r.header("content-range"),
            Some(format!("bytes */{len}").as_str()),
            "{range}"
        );
        assert!(r.body.is_empty(), "{range}");
    }
}

#[test]
fn multiple_or_invalid_ranges_get_the_whole_file() {
    let servy = Servy::start("");
    let file = demo_file("search-index.json");
    for range in ["bytes=0-9,20-29", "bytes=9-0", "lines=1-2", "bytes=x-y"] {
        let r = ranged(&servy, range, &[]);
        assert_eq!(r.status, 200, "{range}");
        assert_eq!(r.header("content-range"), None, "{range}");
        assert!(r.body == file, "{range}");
    }
}

#[test]
fn if_range_must_match_for_a_206() {
    let servy = Servy::start("");
    let full = get(servy.http, FILE);
    let etag = full.header("etag").expect("etag").to_string();
    assert_eq!(
        ranged(&servy, "bytes=0-9", &[("if-range", &etag)]).status,
        206
    );
    assert_eq!(
        ranged(&servy, "bytes=0-9", &[("if-range", "\"stale\"")]).status,
        200
    );
    assert_eq!(
        ranged(&servy, "bytes=0-9", &[("if-range", &format!("W/{etag}"))]).status,
        200,
        "weak tags never match"
    );
    if let Some(lm) = full.header("last-modified") {
        assert_eq!(ranged(&servy, "bytes=0-9", &[("if-range", lm)]).status, 206);
    }
    assert_eq!(
        ranged(
            &servy,
            "bytes=0-9",
            &[("if-range", "Mon, 01 Jan 1990 00:00:00 GMT")]
        )
        .status,
        200
    );
}

#[test]
fn ranges_apply_to_the_encoded_representation() {
    let servy = Servy::start("");
    let whole = request(servy.http, "GET", FILE, &[("accept-encoding", "br")]);
    assert_eq!(whole.header("content-encoding"), Some("br"));
    let r = ranged(&servy, "bytes=10-29", &[("accept-encoding", "br")]);
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-encoding"), Some("br"));
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes 10-29/{}", whole.body.len()).as_str())
    );
    assert!(r.body == whole.body[10..30]);
}

#[test]
fn head_ignores_range() {
    let servy = Servy::start("");
    let r = request(servy.http, "HEAD", FILE, &[("range", "bytes=0-9")]);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-length"),
        Some(demo_file("search-index.json").len().to_string().as_str())
    );
    assert!(r.body.is_empty());
}
