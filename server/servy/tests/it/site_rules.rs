//! The site's own `_redirects` (server/demo-site/_redirects): statuses, splats and
//! placeholders, rewrites, forced and unforced rules, the order against short links, and
//! neither rule file being served.

use crate::assets::demo_file;
use crate::support::{Servy, TempDir, get, request};

fn redirect(servy: &Servy, path: &str) -> (u16, String) {
    let r = get(servy.http, path);
    let location = r.header("location").unwrap_or("<none>").to_owned();
    (r.status, location)
}

#[test]
fn the_rule_files_are_not_served() {
    let servy = Servy::start("");
    for path in ["/_headers", "/_redirects"] {
        let r = get(servy.http, path);
        assert_eq!(r.status, 404, "{path}");
        assert!(!r.text().contains("Content-Security-Policy"), "{path}");
    }
}

#[test]
fn each_status_is_sent_with_its_location_and_301_is_the_default() {
    let servy = Servy::start("");
    for (path, want) in [
        ("/old-home", (301, "/")),
        ("/moved", (301, "/blog/")),
        ("/moved/", (301, "/blog/")),
        ("/temp", (307, "/blog/first-post/")),
        // Non-ASCII in a target leaves percent-encoded: a header value is ASCII.
        ("/perm", (308, "/caf%C3%A9.html")),
    ] {
        assert_eq!(
            redirect(&servy, path),
            (want.0, want.1.to_owned()),
            "{path}"
        );
    }
    let r = get(servy.http, "/moved");
    assert_eq!(r.header("cache-control"), Some("no-cache"));
    assert_eq!(r.header("content-length"), Some("0"));
    let head = request(servy.http, "HEAD", "/temp", &[]);
    assert_eq!(head.status, 307);
    assert_eq!(head.header("location"), Some("/blog/first-post/"));
}

#[test]
fn splats_and_placeholders_fill_the_target_and_the_query_is_kept() {
    let servy = Servy::start("");
    for (path, want) in [
        ("/news/first-post/", "/blog/first-post/"),
        ("/news/a/b.html", "/blog/a/b.html"),
        ("/news", "/blog/"),
        ("/news/x?utm=1", "/blog/x?utm=1"),
    ] {
        assert_eq!(redirect(&servy, path), (301, want.to_owned()), "{path}");
    }
    assert_eq!(
        redirect(&servy, "/posts/2024/hello?ref=feed"),
        (302, "/blog/hello/?y=2024&ref=feed".to_owned())
    );
    // A placeholder is one segment: two or three segments do not match.
    assert_eq!(get(servy.http, "/posts/2024").status, 404);
    assert_eq!(get(servy.http, "/posts/2024/a/b").status, 404);
}

#[test]
fn a_200_rule_serves_another_file_at_the_requested_path() {
    let servy = Servy::start("");
    for path in ["/app", "/app/", "/app/settings/profile"] {
        let r = get(servy.http, path);
        assert_eq!(r.status, 200, "{path}");
        assert!(r.body == demo_file("index.html"), "{path}: not index.html");
        assert!(r.header("location").is_none(), "{path}");
    }
    let r = get(servy.http, "/about");
    assert_eq!(r.status, 200);
    assert!(r.body == demo_file("blog/first-post/index.html"));
    // The file's own headers come with it, validators included.
    assert_eq!(r.header("x-post"), Some("yes"));
    let etag = r.header("etag").expect("etag").to_owned();
    let again = request(servy.http, "GET", "/about", &[("if-none-match", &etag)]);
    assert_eq!(again.status, 304);
}

#[test]
fn files_win_unless_the_rule_is_forced() {
    let servy = Servy::start("");
    // `/robots.txt /blog/ 301`: not forced, the file answers.
    let r = get(servy.http, "/robots.txt");
    assert_eq!(r.status, 200);
    assert!(r.body == demo_file("robots.txt"));
    // `/shadowed.html /blog/ 302!`: forced, the rule answers although the file exists...
    assert_eq!(
        redirect(&servy, "/shadowed.html"),
        (302, "/blog/".to_owned())
    );
    // ...and a rewrite still reaches the file.
    let r = get(servy.http, "/unshadowed");
    assert_eq!(r.status, 200);
    assert!(r.body == demo_file("shadowed.html"));
}

/// The order, outermost first: forced site rules, files, exact site rules, short links,
/// site patterns. A short link never takes a path the site names exactly, and a site
/// pattern (a fallback) never hides a short link.
#[test]
fn exact_site_rules_beat_short_links_and_short_links_beat_site_patterns() {
    let dir = TempDir::new();
    let links = dir.write(
        "links.txt",
        "site-first https://short.example/a\n\
         fallback/x https://short.example/b\n\
         shadowed.html https://short.example/c\n\
         gh https://github.com/someone\n",
    );
    let servy = Servy::start(&format!(
        "[redirects]\nsource = {:?}\n",
        links.display().to_string()
    ));
    assert_eq!(redirect(&servy, "/site-first"), (302, "/blog/".to_owned()));
    assert_eq!(
        redirect(&servy, "/fallback/x"),
        (308, "https://short.example/b".to_owned())
    );
    assert_eq!(redirect(&servy, "/fallback/y"), (302, "/blog/".to_owned()));
    assert_eq!(
        redirect(&servy, "/shadowed.html"),
        (302, "/blog/".to_owned())
    );
    assert_eq!(
        redirect(&servy, "/gh"),
        (308, "https://github.com/someone".to_owned())
    );
}

#[test]
fn list_assets_leaves_out_a_file_a_forced_rule_took_over() {
    let out = crate::support::command()
        .arg("--list-assets")
        .output()
        .expect("run servy");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.lines().any(|l| l == "/robots.txt"), "{text}");
    assert!(!text.lines().any(|l| l == "/shadowed.html"), "{text}");
    assert!(
        !text.contains("_headers") && !text.contains("_redirects"),
        "{text}"
    );
}
