//! Path normalisation as clients see it: traversal attempts with exact bytes on the wire
//! are refused (400, or 414 when overlong), never served and never a crash.

use crate::assets::demo_file;
use crate::support::{Servy, get, raw};

/// Sends one request line with these exact target bytes; returns the status code.
fn status_of(servy: &Servy, target: &[u8]) -> (u16, String) {
    let mut req = b"GET ".to_vec();
    req.extend_from_slice(target);
    req.extend_from_slice(b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let bytes = raw(servy.http, &req);
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "no status line for {:?}: {text:?}",
                String::from_utf8_lossy(target)
            )
        });
    (status, text)
}

#[test]
fn traversal_attempts_are_refused() {
    let servy = Servy::start("");
    for target in [
        &b"/../etc/passwd"[..],
        b"/../../../../etc/passwd",
        b"/blog/../../etc/passwd",
        b"/blog/..",
        b"/%2e%2e/etc/passwd",
        b"/%2E%2E/%2E%2E/etc/passwd",
        b"/.%2e/etc/passwd",
        b"/blog/%2e%2e/index.html",
        b"/./index.html",
        b"/%2f%2fetc/passwd",
        b"/blog%2findex.html",
        b"/..%5c..%5cetc/passwd",
        b"/..\\..\\etc\\passwd",
        b"/index.html%00.png",
        b"/%00",
        b"/%ff%fe",
        b"/caf%C3",
        b"/%",
        b"/%zz",
    ] {
        let (status, text) = status_of(&servy, target);
        assert_eq!(
            status,
            400,
            "{:?} answered {status}",
            String::from_utf8_lossy(target)
        );
        assert!(
            !text.contains("root:"),
            "{:?} leaked a file",
            String::from_utf8_lossy(target)
        );
    }
    // Still serving after all that.
    assert_eq!(get(servy.http, "/").status, 200);
}

#[test]
fn overlong_paths_are_414() {
    let servy = Servy::start("");
    let long = format!("/{}", "a/".repeat(600));
    let (status, _) = status_of(&servy, long.as_bytes());
    assert_eq!(status, 414);
    // Just under the limit is an ordinary miss.
    let under = format!("/{}", "b".repeat(1000));
    assert_eq!(status_of(&servy, under.as_bytes()).0, 404);
}

#[test]
fn raw_bytes_on_the_wire() {
    let servy = Servy::start("");
    // A UTF-8 name sent unencoded (some clients do) names the same file as its
    // percent-encoded form; invalid UTF-8 and control bytes are refused.
    let req = b"GET /caf\xc3\xa9.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec();
    let r = crate::support::http::parse(&raw(servy.http, &req), false).expect("a response");
    assert_eq!(r.status, 200);
    assert!(r.body == demo_file("café.html"));
    for target in [&b"/\xff\xfe"[..], b"/caf\xc3", b"/a\x01b", b"/a\x7fb"] {
        let (status, _) = status_of(&servy, target);
        assert_eq!(
            status,
            400,
            "{:?} answered {status}",
            String::from_utf8_lossy(target)
        );
    }
    assert_eq!(get(servy.http, "/").status, 200);
}

#[test]
fn repeated_slashes_collapse() {
    let servy = Servy::start("");
    for path in [
        "//",
        "//blog//first-post//",
        "/blog///first-post/index.html",
    ] {
        let r = get(servy.http, path);
        assert_eq!(r.status, 200, "{path}");
    }
    assert!(
        get(servy.http, "//blog//first-post//").body == demo_file("blog/first-post/index.html")
    );
}

#[test]
fn dots_inside_names_are_not_traversal() {
    let servy = Servy::start("");
    assert_eq!(get(servy.http, "/assets/app.3f2a9c1e.css").status, 200);
    assert_eq!(get(servy.http, "/a..b").status, 404);
    assert_eq!(get(servy.http, "/...").status, 404);
}
