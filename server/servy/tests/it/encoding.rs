//! Precompressed variants: chosen from `Accept-Encoding`, decoding back to the file.

use std::io::Read;

use crate::assets::demo_file;
use crate::support::{Servy, get, request};

pub fn decode(coding: &str, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match coding {
        "br" => brotli::Decompressor::new(body, 4096)
            .read_to_end(&mut out)
            .map(|_| ()),
        "gzip" => flate2::read::GzDecoder::new(body)
            .read_to_end(&mut out)
            .map(|_| ()),
        "zstd" => zstd::stream::read::Decoder::new(body)
            .and_then(|mut d| d.read_to_end(&mut out))
            .map(|_| ()),
        other => panic!("unexpected coding {other}"),
    }
    .unwrap_or_else(|e| panic!("{coding} body does not decode: {e}"));
    out
}

#[test]
fn each_encoding_decodes_to_the_original() {
    let servy = Servy::start("");
    let original = demo_file("search-index.json");
    let identity = get(servy.http, "/search-index.json");
    let mut etags = vec![identity.header("etag").expect("etag").to_string()];
    for coding in ["br", "gzip", "zstd"] {
        let r = request(
            servy.http,
            "GET",
            "/search-index.json",
            &[("accept-encoding", coding)],
        );
        assert_eq!(r.status, 200, "{coding}");
        assert_eq!(r.header("content-encoding"), Some(coding));
        assert_eq!(r.header("vary"), Some("accept-encoding"), "{coding}");
        assert_eq!(
            r.header("content-length"),
            Some(r.body.len().to_string().as_str()),
            "{coding}"
        );
        assert!(
            r.body.len() < original.len() / 2,
            "{coding}: {} bytes is not much smaller than {}",
            r.body.len(),
            original.len()
        );
        assert!(
            decode(coding, &r.body) == original,
            "{coding} does not decode to the file"
        );
        etags.push(r.header("etag").expect("etag").to_string());
    }
    let mut unique = etags.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        4,
        "each representation needs its own ETag: {etags:?}"
    );
}

#[test]
fn browsers_get_brotli() {
    let servy = Servy::start("");
    for path in ["/", "/style.css", "/assets/site.js", "/caf%C3%A9.html"] {
        let r = request(
            servy.http,
            "GET",
            path,
            &[("accept-encoding", "gzip, deflate, br, zstd")],
        );
        assert_eq!(r.header("content-encoding"), Some("br"), "{path}");
    }
}

#[test]
fn q_values_choose() {
    let servy = Servy::start("");
    for (accept, want) in [
        ("br;q=0.5, gzip;q=0.9", Some("gzip")),
        ("GZIP;Q=0.2 , ZSTD ; q=0.3", Some("zstd")),
        ("*", Some("br")),
        ("*;q=0.1, br;q=0", Some("zstd")),
        ("gzip;q=0", None),
        ("identity", None),
        ("br;q=0.4, identity;q=0.5", None),
        ("deflate, compress", None),
        // Nothing acceptable: identity rather than a 406.
        ("identity;q=0, *;q=0", None),
    ] {
        let r = request(
            servy.http,
            "GET",
            "/search-index.json",
            &[("accept-encoding", accept)],
        );
        assert_eq!(r.status, 200, "{accept}");
        assert_eq!(r.header("content-encoding"), want, "{accept}");
        assert_eq!(r.header("vary"), Some("accept-encoding"), "{accept}");
    }
}

#[test]
fn identity_without_accept_encoding_still_varies() {
    let servy = Servy::start("");
    let r = get(servy.http, "/search-index.json");
    assert_eq!(r.header("content-encoding"), None);
    assert_eq!(r.header("vary"), Some("accept-encoding"));
    assert!(r.body == demo_file("search-index.json"));
}

#[test]
fn files_without_variants_do_not_vary() {
    let servy = Servy::start("");
    // robots.txt is too small to gain from compression; a PNG is compressed already.
    for path in ["/robots.txt", "/favicon.png"] {
        let r = request(
            servy.http,
            "GET",
            path,
            &[("accept-encoding", "br, gzip, zstd")],
        );
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("content-encoding"), None, "{path}");
        assert_eq!(r.header("vary"), None, "{path}");
    }
}

#[test]
fn head_reports_the_encoded_length() {
    let servy = Servy::start("");
    let get = request(
        servy.http,
        "GET",
        "/search-index.json",
        &[("accept-encoding", "br")],
    );
    let head = request(
        servy.http,
        "HEAD",
        "/search-index.json",
        &[("accept-encoding", "br")],
    );
    assert_eq!(head.header("content-encoding"), Some("br"));
    assert_eq!(
        head.header("content-length"),
        Some(get.body.len().to_string().as_str())
    );
    assert!(head.body.is_empty());
}
