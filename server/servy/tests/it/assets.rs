//! Embedded assets as a client sees them: bytes equal to the files on disk, directory
//! indexes, types, caching rules, the 404 page, HEAD, and the build's rebuild triggers.

use std::path::{Path, PathBuf};

use crate::support::{Servy, command, get, request};

/// The site the binary under test embeds (the tests build without `SERVY_ASSETS_DIR`).
pub fn demo_site() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../demo-site")
}

/// A demo-site file's bytes, read from disk.
pub fn demo_file(rel: &str) -> Vec<u8> {
    let path = demo_site().join(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Files of the demo site that are not served at their own path: the rule files, and
/// the page a forced `_redirects` rule takes over (`tests/it/site_rules.rs`).
pub const NOT_SERVED: [&str; 3] = ["_headers", "_redirects", "shadowed.html"];

/// Every file under the demo site served at its own path, as keys like `blog/index.html`.
pub fn demo_keys() -> Vec<String> {
    fn walk(dir: &Path, prefix: &str, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).expect("read demo site") {
            let entry = entry.expect("dir entry");
            let name = entry.file_name().into_string().expect("UTF-8 name");
            if entry.file_type().expect("file type").is_dir() {
                walk(&entry.path(), &format!("{prefix}{name}/"), out);
            } else {
                out.push(format!("{prefix}{name}"));
            }
        }
    }
    let mut keys = Vec::new();
    walk(&demo_site(), "", &mut keys);
    keys.retain(|k| !NOT_SERVED.contains(&k.as_str()));
    keys.sort();
    keys
}

/// Percent-encodes everything but unreserved characters and `/`.
pub fn url(key: &str) -> String {
    let mut out = String::from("/");
    for &b in key.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[test]
fn every_file_is_served_byte_for_byte() {
    let servy = Servy::start("");
    let keys = demo_keys();
    assert!(keys.len() >= 10, "demo site too small: {keys:?}");
    for key in keys {
        let r = get(servy.http, &url(&key));
        assert_eq!(r.status, 200, "{key}");
        let want = demo_file(&key);
        assert!(
            r.body == want,
            "{key}: body differs ({} bytes served, {} on disk)",
            r.body.len(),
            want.len()
        );
        assert_eq!(
            r.header("content-length"),
            Some(want.len().to_string().as_str()),
            "{key}"
        );
        assert_eq!(
            r.header("content-encoding"),
            None,
            "{key}: no Accept-Encoding means identity"
        );
        assert_eq!(r.header("accept-ranges"), Some("bytes"), "{key}");
        let etag = r.header("etag").unwrap_or_else(|| panic!("{key}: no ETag"));
        // Regression: the predecessor sent unquoted ETags, which caches ignore.
        assert!(
            etag.starts_with('"') && etag.ends_with('"') && etag.len() > 10,
            "{key}: ETag {etag:?} is not a quoted strong tag"
        );
    }
}

#[test]
fn root_and_directories_serve_their_index() {
    let servy = Servy::start("");
    for (path, file) in [
        ("/", "index.html"),
        ("/index.html", "index.html"),
        ("/blog", "blog/index.html"),
        ("/blog/", "blog/index.html"),
        ("/blog/first-post", "blog/first-post/index.html"),
        ("/blog/first-post/", "blog/first-post/index.html"),
        (
            "/blog/first-post/?utm_source=feed",
            "blog/first-post/index.html",
        ),
    ] {
        let r = get(servy.http, path);
        assert_eq!(r.status, 200, "{path}");
        assert!(
            r.body == demo_file(file),
            "{path}: expected the bytes of {file}"
        );
    }
}

#[test]
fn non_ascii_file_name_is_served_from_its_encoded_path() {
    let servy = Servy::start("");
    for path in ["/caf%C3%A9.html", "/caf%c3%a9.html"] {
        let r = get(servy.http, path);
        assert_eq!(r.status, 200, "{path}");
        assert!(r.body == demo_file("café.html"), "{path}");
    }
}

#[test]
fn content_types() {
    let servy = Servy::start("");
    for (path, want) in [
        ("/", "text/html; charset=utf-8"),
        ("/style.css", "text/css; charset=utf-8"),
        ("/assets/app.3f2a9c1e.css", "text/css; charset=utf-8"),
        ("/search-index.json", "application/json; charset=utf-8"),
        ("/robots.txt", "text/plain; charset=utf-8"),
        ("/favicon.png", "image/png"),
    ] {
        assert_eq!(
            get(servy.http, path).header("content-type"),
            Some(want),
            "{path}"
        );
    }
    let js = get(servy.http, "/assets/site.js");
    let js_type = js.header("content-type").unwrap_or_default();
    assert!(js_type.ends_with("javascript; charset=utf-8"), "{js_type}");
}

#[test]
fn cache_control_by_rule() {
    let servy = Servy::start("");
    for (path, want) in [
        ("/", "no-cache"),
        ("/blog/first-post/", "no-cache"),
        ("/assets/app.3f2a9c1e.css", "max-age=31536000, immutable"),
        ("/style.css", "max-age=3600"),
        ("/favicon.png", "max-age=3600"),
    ] {
        assert_eq!(
            get(servy.http, path).header("cache-control"),
            Some(want),
            "{path}"
        );
    }
}

#[test]
fn cache_control_is_configurable() {
    let servy = Servy::start(
        "[cache]\nhtml = \"max-age=60\"\nimmutable = \"max-age=7\"\ndefault = \"no-store\"\n",
    );
    assert_eq!(
        get(servy.http, "/").header("cache-control"),
        Some("max-age=60")
    );
    assert_eq!(
        get(servy.http, "/assets/app.3f2a9c1e.css").header("cache-control"),
        Some("max-age=7")
    );
    assert_eq!(
        get(servy.http, "/robots.txt").header("cache-control"),
        Some("no-store")
    );
}

#[test]
fn last_modified_follows_the_file_when_meaningful() {
    let servy = Servy::start("");
    let r = get(servy.http, "/style.css");
    let mtime = std::fs::metadata(demo_site().join("style.css"))
        .and_then(|m| m.modified())
        .expect("mtime");
    let secs = mtime
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after epoch")
        .as_secs();
    if secs > 315_532_800 {
        let want =
            httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs));
        assert_eq!(r.header("last-modified"), Some(want.as_str()));
    } else {
        // Placeholder mtimes (the Nix store's 1970-01-01T00:00:01) are no information.
        assert_eq!(r.header("last-modified"), None);
    }
}

#[test]
fn unknown_path_gets_the_sites_404_page() {
    let servy = Servy::start("");
    let r = get(servy.http, "/no/such/page");
    assert_eq!(r.status, 404);
    assert!(r.body == demo_file("404.html"));
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(r.header("cache-control"), Some("no-cache"));

    let head = request(servy.http, "HEAD", "/no/such/page", &[]);
    assert_eq!(head.status, 404);
    assert_eq!(head.header("content-length"), r.header("content-length"));
    assert!(head.body.is_empty());

    // A trailing slash on a file names a directory that does not exist.
    assert_eq!(get(servy.http, "/style.css/").status, 404);
    // The page itself, asked for by name, is a file like any other.
    assert_eq!(get(servy.http, "/404.html").status, 200);
}

#[test]
fn head_has_the_same_headers_as_get() {
    let servy = Servy::start("");
    for path in [
        "/",
        "/blog/",
        "/search-index.json",
        "/favicon.png",
        "/caf%C3%A9.html",
    ] {
        for accept in ["", "br", "gzip", "zstd;q=1, br;q=0.5"] {
            let headers: &[(&str, &str)] = if accept.is_empty() {
                &[]
            } else {
                &[("accept-encoding", accept)]
            };
            let get = request(servy.http, "GET", path, headers);
            let head = request(servy.http, "HEAD", path, headers);
            assert_eq!(head.status, get.status, "{path} {accept}");
            assert!(head.body.is_empty(), "{path} {accept}: HEAD sent a body");
            let strip = |r: &crate::support::Response| {
                let mut h: Vec<_> = r
                    .headers
                    .iter()
                    .filter(|(n, _)| n != "date")
                    .cloned()
                    .collect();
                h.sort();
                h
            };
            assert_eq!(strip(&head), strip(&get), "{path} {accept}");
        }
    }
}

/// Load tests read their URL list from `--list-assets` instead of crawling: every file of
/// the site must be on it, once, as a request target that serves that file's bytes.
#[test]
fn list_assets_prints_every_file_as_a_path_that_serves_it() {
    let out = command().arg("--list-assets").output().expect("run servy");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("UTF-8 list");
    let listed: Vec<&str> = text.lines().collect();
    assert!(
        listed.windows(2).all(|w| w[0] < w[1]),
        "sorted, no duplicates: {listed:?}"
    );
    let key_of = |path: &str| -> String {
        let encoded = path.strip_prefix('/').unwrap_or_else(|| panic!("{path:?}"));
        assert!(encoded.is_ascii(), "{path:?} is not percent-encoded");
        percent_encoding::percent_decode_str(encoded)
            .decode_utf8()
            .unwrap_or_else(|e| panic!("{path:?}: {e}"))
            .into_owned()
    };
    let mut keys: Vec<String> = listed.iter().map(|p| key_of(p)).collect();
    keys.sort();
    assert_eq!(keys, demo_keys(), "one line per file of the site");

    let servy = Servy::start("");
    for path in listed {
        let key = key_of(path);
        let r = get(servy.http, path);
        assert_eq!(r.status, 200, "{path}");
        assert!(r.body == demo_file(&key), "{path}: not the bytes of {key}");
    }
}

/// Regression: the predecessor kept serving an old embed after the site changed, because
/// its build did not tell cargo which files it read. Every file and directory of the site
/// (and the variable choosing it) must be a rerun trigger of the build script.
#[test]
fn stale_embed_every_site_file_triggers_a_rebuild() {
    let output = Path::new(env!("OUT_DIR")).with_file_name("output");
    let text = std::fs::read_to_string(&output)
        .unwrap_or_else(|e| panic!("read {}: {e}", output.display()));
    assert!(
        text.lines()
            .any(|l| l == "cargo:rerun-if-env-changed=SERVY_ASSETS_DIR")
    );
    let site = demo_site().canonicalize().expect("demo site");
    let watched: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("cargo:rerun-if-changed="))
        .collect();
    for key in demo_keys() {
        let file = site.join(&key);
        assert!(
            watched.contains(&file.to_str().expect("UTF-8")),
            "{} is not a rebuild trigger",
            file.display()
        );
        let dir = file.parent().expect("parent");
        assert!(
            watched.contains(&dir.to_str().expect("UTF-8")),
            "{} (adding a file there) is not a rebuild trigger",
            dir.display()
        );
    }
}
