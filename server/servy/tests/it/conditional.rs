//! Conditional requests: `If-None-Match` and `If-Modified-Since` → 304 with validators.

use crate::support::{Servy, get, request};

fn assert_304(r: &crate::support::Response, etag: &str, what: &str) {
    assert_eq!(r.status, 304, "{what}");
    assert!(r.body.is_empty(), "{what}: a 304 has no body");
    assert_eq!(
        r.header("etag"),
        Some(etag),
        "{what}: the 304 names the representation"
    );
    assert!(
        r.header("cache-control").is_some(),
        "{what}: no Cache-Control on the 304"
    );
}

#[test]
fn matching_etag_is_304_with_validators() {
    let servy = Servy::start("");
    let full = get(servy.http, "/");
    let etag = full.header("etag").expect("etag").to_string();
    let r = request(servy.http, "GET", "/", &[("if-none-match", &etag)]);
    assert_304(&r, &etag, "exact");
    assert_eq!(r.header("cache-control"), full.header("cache-control"));
    assert_eq!(r.header("vary"), Some("accept-encoding"));
    assert_eq!(r.header("last-modified"), full.header("last-modified"));
    assert_eq!(r.header("content-encoding"), None);
}

#[test]
fn weak_lists_and_star_match() {
    let servy = Servy::start("");
    let etag = get(servy.http, "/style.css")
        .header("etag")
        .expect("etag")
        .to_string();
    for value in [
        format!("W/{etag}"),
        format!("\"nope\", W/\"other\",{etag}"),
        "*".to_string(),
    ] {
        let r = request(
            servy.http,
            "GET",
            "/style.css",
            &[("if-none-match", &value)],
        );
        assert_304(&r, &etag, &value);
    }
    let head = request(
        servy.http,
        "HEAD",
        "/style.css",
        &[("if-none-match", &etag)],
    );
    assert_304(&head, &etag, "HEAD");
}

#[test]
fn other_etags_get_the_full_response() {
    let servy = Servy::start("");
    let etag = get(servy.http, "/style.css")
        .header("etag")
        .expect("etag")
        .to_string();
    let unquoted = etag.trim_matches('"').to_string();
    for value in ["\"nope\"", "W/\"nope\", \"also-nope\"", unquoted.as_str()] {
        let r = request(servy.http, "GET", "/style.css", &[("if-none-match", value)]);
        assert_eq!(r.status, 200, "{value}");
        assert!(r.body == crate::assets::demo_file("style.css"));
    }
}

#[test]
fn etag_is_per_encoding() {
    let servy = Servy::start("");
    let identity = get(servy.http, "/style.css")
        .header("etag")
        .expect("etag")
        .to_string();
    let br = request(
        servy.http,
        "GET",
        "/style.css",
        &[("accept-encoding", "br")],
    );
    assert_eq!(br.header("content-encoding"), Some("br"));
    let br_etag = br.header("etag").expect("etag").to_string();
    assert_ne!(identity, br_etag);
    // The br tag validates the br representation...
    let r = request(
        servy.http,
        "GET",
        "/style.css",
        &[("accept-encoding", "br"), ("if-none-match", &br_etag)],
    );
    assert_304(&r, &br_etag, "br");
    assert_eq!(r.header("vary"), Some("accept-encoding"));
    // ...but not the identity one this client would get now.
    let r = request(
        servy.http,
        "GET",
        "/style.css",
        &[("if-none-match", &br_etag)],
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("etag"), Some(identity.as_str()));
}

#[test]
fn if_modified_since_when_last_modified_exists() {
    let servy = Servy::start("");
    let full = get(servy.http, "/robots.txt");
    let Some(last_modified) = full.header("last-modified").map(str::to_owned) else {
        // A site with placeholder mtimes sends no Last-Modified, so dates validate nothing.
        let r = request(
            servy.http,
            "GET",
            "/robots.txt",
            &[("if-modified-since", "Fri, 01 Jan 2100 00:00:00 GMT")],
        );
        assert_eq!(r.status, 200);
        return;
    };
    let etag = full.header("etag").expect("etag").to_string();
    let r = request(
        servy.http,
        "GET",
        "/robots.txt",
        &[("if-modified-since", &last_modified)],
    );
    assert_304(&r, &etag, "same date");
    assert_eq!(r.header("last-modified"), Some(last_modified.as_str()));
    let r = request(
        servy.http,
        "GET",
        "/robots.txt",
        &[("if-modified-since", "Fri, 01 Jan 2100 00:00:00 GMT")],
    );
    assert_eq!(r.status, 304, "later date");
    let r = request(
        servy.http,
        "GET",
        "/robots.txt",
        &[("if-modified-since", "Mon, 01 Jan 1990 00:00:00 GMT")],
    );
    assert_eq!(r.status, 200, "earlier date");
    let r = request(
        servy.http,
        "GET",
        "/robots.txt",
        &[("if-modified-since", "not a date")],
    );
    assert_eq!(r.status, 200, "garbage date");
    // If-None-Match decides when both are sent (RFC 9110 §13.2.2).
    let r = request(
        servy.http,
        "GET",
        "/robots.txt",
        &[
            ("if-none-match", "\"nope\""),
            ("if-modified-since", &last_modified),
        ],
    );
    assert_eq!(r.status, 200, "If-None-Match wins");
}
