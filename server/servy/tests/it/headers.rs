//! Response headers: `X-Content-Type-Options: nosniff` on every response, the demo site's
//! `_headers` by pattern and placeholder, `[headers]` from the config, and the build
//! refusing a bad `_headers` or `_redirects` line.

use std::path::Path;
use std::process::Command;

use crate::support::{Servy, TempDir, command, get, raw, request};

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Every kind of response servy sends carries nosniff and the demo site's `/*` headers.
#[test]
fn every_response_carries_nosniff_and_the_every_path_headers() {
    let dir = TempDir::new();
    let links = dir.write("links.txt", "gh https://github.com/someone\n");
    let servy = Servy::start(&format!(
        "[redirects]\nsource = {:?}\n",
        links.display().to_string()
    ));
    let etag = get(servy.http, "/style.css")
        .header("etag")
        .expect("etag")
        .to_owned();
    let cases = [
        ("asset", request(servy.http, "GET", "/", &[])),
        (
            "304",
            request(servy.http, "GET", "/style.css", &[("if-none-match", &etag)]),
        ),
        (
            "206",
            request(servy.http, "GET", "/style.css", &[("range", "bytes=0-9")]),
        ),
        (
            "416",
            request(
                servy.http,
                "GET",
                "/style.css",
                &[("range", "bytes=99999-")],
            ),
        ),
        ("404", get(servy.http, "/nowhere")),
        (
            "405",
            request(servy.http, "POST", "/", &[("content-length", "0")]),
        ),
        ("400 path", get(servy.http, "/a/../b")),
        (
            "400 host",
            crate::support::http::parse(
                &raw(servy.http, b"GET / HTTP/1.1\r\nconnection: close\r\n\r\n"),
                false,
            )
            .expect("a response"),
        ),
        ("site redirect", get(servy.http, "/moved")),
        ("short link", get(servy.http, "/gh")),
    ];
    for (what, r) in cases {
        assert_eq!(
            r.header_all("x-content-type-options"),
            ["nosniff"],
            "{what}: {r:?}"
        );
        assert_eq!(r.header("content-security-policy"), Some(CSP), "{what}");
        assert_eq!(r.header("x-frame-options"), Some("DENY"), "{what}");
        assert_eq!(
            r.header("referrer-policy"),
            Some("strict-origin-when-cross-origin"),
            "{what}"
        );
    }
}

#[test]
fn headers_apply_by_pattern_and_by_placeholder_and_repeated_names_join() {
    let servy = Servy::start("");
    // `/blog/*` and `/blog/:slug` both match the post; `X-Section` is joined.
    let post = get(servy.http, "/blog/first-post/");
    assert_eq!(post.header_all("x-section"), ["blog, post"]);
    assert_eq!(post.header("x-post"), Some("yes"));
    // The same file by its file name: `/blog/*` still matches, `/blog/:slug` matched the
    // page's directory path, and a file has one set of headers whatever path reached it.
    let by_name = get(servy.http, "/blog/first-post/index.html");
    assert_eq!(by_name.header("x-post"), Some("yes"));
    // A file matches through any path that reaches it: `/blog/` is `/blog/index.html`,
    // whose name is one segment under /blog, as on Netlify.
    let index = get(servy.http, "/blog/");
    assert_eq!(index.header("x-section"), Some("blog, post"));
    // Outside /blog, neither.
    let home = get(servy.http, "/");
    assert_eq!(home.header("x-section"), None);
    // HEAD carries the same headers.
    let head = request(servy.http, "HEAD", "/blog/first-post/", &[]);
    assert_eq!(head.header("x-section"), Some("blog, post"));
}

#[test]
fn config_headers_join_the_sites_and_replace_a_name_it_gives() {
    let servy = Servy::start(
        "[headers.\"/*\"]\n\
         Permissions-Policy = \"camera=()\"\n\
         X-Frame-Options = \"SAMEORIGIN\"\n\
         [headers.\"/blog/:slug\"]\n\
         X-Section = \"configured\"\n\
         Cache-Control = \"public, max-age=60\"\n",
    );
    let post = get(servy.http, "/blog/first-post/");
    assert_eq!(post.header_all("x-section"), ["configured"]);
    assert_eq!(post.header("cache-control"), Some("public, max-age=60"));
    assert_eq!(post.header("permissions-policy"), Some("camera=()"));
    assert_eq!(post.header_all("x-frame-options"), ["SAMEORIGIN"]);
    assert_eq!(
        post.header("x-post"),
        Some("yes"),
        "the site's other headers stay"
    );
    let home = get(servy.http, "/");
    assert_eq!(home.header("x-section"), None);
    assert_eq!(home.header("cache-control"), Some("no-cache"));
    let missing = get(servy.http, "/nowhere");
    assert_eq!(missing.header("permissions-policy"), Some("camera=()"));
    assert_eq!(missing.header("x-frame-options"), Some("SAMEORIGIN"));
}

#[test]
fn a_bad_config_header_exits_78_naming_the_key() {
    for (toml, needle) in [
        (
            "[headers.\"/*\"]\n\"X Frame\" = \"DENY\"\n",
            "headers.\"/*\".X Frame",
        ),
        (
            "[headers.\"/*\"]\nX-A = \"caf\u{e9}\"\n",
            "headers.\"/*\".X-A",
        ),
        (
            "[headers.\"/*\"]\nContent-Length = \"1\"\n",
            "Content-Length",
        ),
        ("[headers.\"blog\"]\nX-A = \"b\"\n", "headers.\"blog\""),
    ] {
        let dir = TempDir::new();
        let path = dir.write("servy.toml", toml);
        let o = command()
            .args(["--check", "--config", path.to_str().expect("utf-8")])
            .output()
            .expect("run servy");
        let e = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(78), "{toml:?}: {e}");
        assert!(
            e.contains(needle) && e.lines().count() == 1,
            "{toml:?}: {e}"
        );
    }
}

/// Runs the crate's own build script (the one cargo built for this binary) on `site`.
fn build_site(site: &Path) -> (bool, String) {
    let out = TempDir::new();
    let o = Command::new(env!("SERVY_BUILD_SCRIPT"))
        .env("OUT_DIR", out.path())
        .env("CARGO_MANIFEST_DIR", env!("CARGO_MANIFEST_DIR"))
        .env("SERVY_ASSETS_DIR", site)
        .output()
        .expect("run the build script");
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// A full `cargo build` per broken site would take minutes; the build script is the
/// code that decides, so the test runs it directly, as cargo would.
#[test]
fn the_build_fails_on_a_bad_line_naming_file_and_line() {
    for (file, text, needle) in [
        (
            "_headers",
            "/*\n  X-Frame-Options: DENY\n  X-Frame-Options DENY\n",
            "_headers:3: ",
        ),
        ("_headers", "# c\n  X-A: b\n", "_headers:2: "),
        ("_redirects", "/a /b 301\n\n/c /d 404\n", "_redirects:3: "),
        ("_redirects", "/a /missing.html 200\n", "_redirects:1: "),
    ] {
        let site = TempDir::new();
        site.write("index.html", "<h1>hi</h1>\n");
        site.write(file, text);
        let (ok, stderr) = build_site(site.path());
        assert!(!ok, "{file} {text:?} built");
        assert!(
            stderr.contains(needle),
            "{file} {text:?}: {needle:?} not in {stderr}"
        );
    }
    // The same site with good files builds (so the failures above are the lines').
    let site = TempDir::new();
    site.write("index.html", "<h1>hi</h1>\n");
    site.write("_headers", "/*\n  X-Frame-Options: DENY\n");
    site.write("_redirects", "/a /index.html 200\n");
    let (ok, stderr) = build_site(site.path());
    assert!(ok, "{stderr}");
}

/// With HTTPS: the plain listener's redirect to HTTPS and every HTTPS response carry the
/// same headers as plain HTTP (the Observatory's A+ run depends on both).
#[test]
fn the_https_redirect_and_https_responses_carry_the_headers_too() {
    use crate::support::tls::{self, Pki};
    let (dir, pki) = (TempDir::new(), Pki::new());
    let leaf = pki.issue(&dir, "a", &["a.test"], 1, (2031, 1, 2));
    let servy = Servy::builder()
        .config(&format!(
            "[http]\nredirect_to_https = true\n[https]\nhsts = \"max-age=63072000\"\n\
             [[https.certificates]]\ncert = {:?}\nkey = {:?}\n",
            leaf.cert, leaf.key
        ))
        .https()
        .start();
    let redirect = request(servy.http, "GET", "/", &[("host", "a.test")]);
    assert_eq!(redirect.status, 308);
    assert_eq!(redirect.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(redirect.header("content-security-policy"), Some(CSP));

    let addr = servy.https.expect("an https socket");
    for path in ["/", "/nowhere", "/moved"] {
        // One connection per request: `tls::get` asks the server to close.
        let mut conn = tls::connect(addr, "a.test", pki.client(&[])).expect("handshake");
        let r = tls::get(&mut conn, "a.test", path);
        assert_eq!(
            r.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
        assert_eq!(r.header("content-security-policy"), Some(CSP), "{path}");
        assert_eq!(
            r.header("strict-transport-security"),
            Some("max-age=63072000"),
            "{path}"
        );
    }
}
