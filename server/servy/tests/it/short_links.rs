//! Short links end to end: servy against a real upstream (`servy-stub`) or a local file,
//! through every status, header and query rule, the refresh schedule (periodic, on a miss,
//! SIGHUP) and every upstream failure, which must keep the last good map.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::support::{Servy, TempDir, get, raw, request};

const FILE: &str = "# short links\ngh https://github.com/someone\n/talks/ https://talks.example/list?year=2024#latest\n";
const FLIPPED: &str = "gh https://gitlab.example/someone\nnew https://new.example/\n";

/// A running `servy-stub`, killed on drop.
struct Stub {
    addr: SocketAddr,
    child: Child,
    _dir: TempDir,
}

impl Stub {
    /// Serves `content`; `POST /control/mode/flip` switches to [`FLIPPED`].
    fn start(content: &str) -> Stub {
        Stub::start_at(content, "127.0.0.1:0")
    }

    /// As `start`, listening on `listen`.
    fn start_at(content: &str, listen: &str) -> Stub {
        let binary = stub_binary();
        let dir = TempDir::new();
        let file = dir.write("redirects.txt", content);
        let alt = dir.write("alt.txt", FLIPPED);
        let mut child = Command::new(&binary)
            .args(["--listen", listen, "--file"])
            .arg(&file)
            .arg("--alt-file")
            .arg(&alt)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", binary.display()));
        let mut first = String::new();
        let stdout = child.stdout.take().expect("stdout piped");
        BufReader::new(stdout)
            .read_line(&mut first)
            .expect("read stub stdout");
        let addr = first
            .trim()
            .strip_prefix("listening on ")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| {
                panic!("servy-stub's first line is not `listening on ADDR`: {first:?}")
            });
        Stub {
            addr,
            child,
            _dir: dir,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/redirects.txt", self.addr)
    }

    /// `POST /control/mode/<mode>` (`flip` included).
    fn mode(&self, mode: &str) {
        let r = request(self.addr, "POST", &format!("/control/mode/{mode}"), &[]);
        assert_eq!(r.status, 200, "stub mode {mode}: {}", r.text());
    }

    fn set_content(&self, text: &str) {
        let req = format!(
            "PUT /control/content HTTP/1.1\r\nhost: stub\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{text}",
            text.len()
        );
        let answer = String::from_utf8_lossy(&raw(self.addr, req.as_bytes())).into_owned();
        assert!(
            answer.starts_with("HTTP/1.1 200"),
            "stub PUT content: {answer}"
        );
    }

    /// The last request for the redirects file: `METHOD TARGET`, then `name: value` lines.
    fn last(&self) -> String {
        get(self.addr, "/control/last").text()
    }

    /// Requests the stub got for the redirects file so far.
    fn count(&self) -> u64 {
        let text = get(self.addr, "/control/count").text();
        text.trim()
            .parse()
            .unwrap_or_else(|_| panic!("stub count: {text:?}"))
    }
}

impl Drop for Stub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `servy-stub` is another package, so cargo gives no `CARGO_BIN_EXE_` for it; it is built
/// into the same directory as servy by `cargo build --workspace`. `SERVY_STUB_BIN` names
/// it explicitly where it lives elsewhere (a packaged build).
fn stub_binary() -> PathBuf {
    let path = std::env::var_os("SERVY_STUB_BIN").map_or_else(
        || Path::new(env!("CARGO_BIN_EXE_servy")).with_file_name("servy-stub"),
        PathBuf::from,
    );
    assert!(
        path.exists(),
        "{} is missing: run `cargo build -p servy-stub` (or `cargo build --workspace`) before \
         the tests, or set SERVY_STUB_BIN",
        path.display()
    );
    path
}

/// servy fetching from `source`, with extra `[redirects]` keys.
fn servy(source: &str, extra: &str) -> Servy {
    Servy::start(&format!("[redirects]\nsource = {source:?}\n{extra}\n"))
}

/// Polls `f` until it returns true or `timeout` passes.
fn eventually(timeout: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        thread::sleep(Duration::from_millis(25));
    }
}

/// The value of one series in `/metrics` (`name{labels}` exactly as exposed), if present.
fn metric(servy: &Servy, series: &str) -> Option<f64> {
    let text = get(servy.metrics, "/metrics").text();
    text.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

fn refreshes(servy: &Servy, result: &str) -> f64 {
    metric(
        servy,
        &format!("servy_redirects_refreshes_total{{result=\"{result}\"}}"),
    )
    .unwrap_or(0.0)
}

#[test]
fn an_alias_answers_308_with_location_and_a_short_max_age() {
    let stub = Stub::start(FILE);
    let servy = servy(&stub.url(), "");
    for path in ["/gh", "/gh/"] {
        let r = get(servy.http, path);
        assert_eq!(r.status, 308, "{path}");
        assert_eq!(
            r.header("location"),
            Some("https://github.com/someone"),
            "{path}"
        );
        assert_eq!(r.header("cache-control"), Some("max-age=300"));
        assert_eq!(r.header("content-length"), Some("0"));
        assert_eq!(
            r.header("access-control-allow-origin"),
            None,
            "CORS is off by default"
        );
        assert!(r.body.is_empty());
    }
    let head = request(servy.http, "HEAD", "/talks", &[]);
    assert_eq!(head.status, 308);
    assert_eq!(
        head.header("location"),
        Some("https://talks.example/list?year=2024#latest")
    );
    assert_eq!(get(servy.http, "/nope").status, 404);
    assert_eq!(
        metric(&servy, "servy_redirects_served{alias=\"gh\"}"),
        Some(2.0)
    );
    assert_eq!(
        metric(&servy, "servy_redirects_served{alias=\"talks\"}"),
        Some(1.0)
    );
    assert_eq!(metric(&servy, "servy_redirects_defined"), Some(2.0));
    assert_eq!(refreshes(&servy, "ok"), 1.0);
    assert!(
        metric(&servy, "servy_redirects_last_success_timestamp_seconds").is_some_and(|t| t > 1.0e9)
    );
}

#[test]
fn every_configured_status_is_sent() {
    let dir = TempDir::new();
    let file = dir.write("redirects.txt", FILE);
    for status in [301, 302, 307, 308] {
        let servy = servy(&file.display().to_string(), &format!("status = {status}"));
        let r = get(servy.http, "/gh");
        assert_eq!(r.status, status);
        assert_eq!(r.header("location"), Some("https://github.com/someone"));
    }
}

#[test]
fn query_append_joins_the_targets_query_before_its_fragment() {
    let dir = TempDir::new();
    let file = dir.write("redirects.txt", FILE);
    let servy = servy(&file.display().to_string(), "query = \"append\"");
    let r = get(servy.http, "/gh?tab=repos&q=a%20b");
    assert_eq!(
        r.header("location"),
        Some("https://github.com/someone?tab=repos&q=a%20b")
    );
    let r = get(servy.http, "/talks?utm=x");
    assert_eq!(
        r.header("location"),
        Some("https://talks.example/list?year=2024&utm=x#latest")
    );
    let r = get(servy.http, "/gh?");
    assert_eq!(
        r.header("location"),
        Some("https://github.com/someone"),
        "an empty query adds nothing"
    );
}

#[test]
fn query_drop_sends_the_target_unchanged() {
    let dir = TempDir::new();
    let file = dir.write("redirects.txt", FILE);
    let servy = servy(&file.display().to_string(), "query = \"drop\"");
    let r = get(servy.http, "/gh?tab=repos");
    assert_eq!(r.header("location"), Some("https://github.com/someone"));
}

#[test]
fn cors_and_max_age_follow_the_config() {
    let dir = TempDir::new();
    let file = dir.write("redirects.txt", FILE);
    let servy = servy(&file.display().to_string(), "cors = true\nmax_age = \"1m\"");
    let r = get(servy.http, "/gh");
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert_eq!(r.header("cache-control"), Some("max-age=60"));
}

/// Files always win: an alias can never hide a page of the site.
#[test]
fn files_win_over_aliases() {
    let dir = TempDir::new();
    let file = dir.write(
        "redirects.txt",
        "index.html https://evil.example/\nblog https://evil.example/blog\nrobots.txt https://evil.example/r\n",
    );
    let servy = servy(&file.display().to_string(), "");
    for path in ["/index.html", "/blog/", "/robots.txt"] {
        let r = get(servy.http, path);
        assert_eq!(r.status, 200, "{path} must be the site's file");
        assert_eq!(r.header("location"), None, "{path}");
    }
    assert_eq!(metric(&servy, "servy_redirects_defined"), Some(3.0));
}

#[test]
fn a_local_file_source_loads_and_reports_rejected_lines() {
    let dir = TempDir::new();
    let file = dir.write(
        "redirects.txt",
        "gh https://github.com/someone\nbroken\nrel /relative\n",
    );
    let servy = servy(&file.display().to_string(), "");
    assert_eq!(get(servy.http, "/gh").status, 308);
    assert_eq!(get(servy.http, "/rel").status, 404);
    // stderr is collected by a thread: wait for the lines rather than race it.
    for line in ["line 2: expected 2 fields", "line 3: bad target"] {
        assert!(
            servy.wait_stderr(Duration::from_secs(5), line),
            "{line:?} not logged:\n{}",
            servy.stderr()
        );
    }
}

/// Regression: both predecessors fetched the redirects file on every unknown path, so a
/// crawler's 404s became an amplified load on the upstream.
#[test]
fn a_flood_of_misses_costs_at_most_one_fetch_per_min_refresh_interval() {
    let stub = Stub::start(FILE);
    let servy = servy(
        &stub.url(),
        "refresh_interval = \"1h\"\nmin_refresh_interval = \"1s\"",
    );
    let before = stub.count();
    assert_eq!(before, 1, "one fetch at start");
    stub.mode("flip");
    let start = Instant::now();
    for i in 0..200 {
        assert_eq!(get(servy.http, &format!("/missing-{i}")).status, 404);
    }
    // Let any refresh the flood scheduled happen.
    thread::sleep(Duration::from_millis(1300));
    let elapsed = start.elapsed().as_secs_f64();
    let fetches = stub.count() - before;
    let allowed = elapsed.floor() as u64 + 1;
    assert!(
        fetches <= allowed,
        "{fetches} fetches for 200 misses in {elapsed:.2} s; at most {allowed} allowed"
    );
    // And misses did wake the refresher (the periodic refresh is an hour away).
    eventually(Duration::from_secs(5), "/new after the misses", || {
        get(servy.http, "/new").header("location") == Some("https://new.example/")
    });
}

#[test]
fn the_periodic_refresh_picks_up_a_changed_file() {
    let stub = Stub::start(FILE);
    let servy = servy(
        &stub.url(),
        "refresh_interval = \"1s\"\nmin_refresh_interval = \"1s\"",
    );
    stub.mode("flip");
    // No request to servy meanwhile: only the timer can cause these fetches.
    eventually(Duration::from_secs(5), "two periodic fetches", || {
        stub.count() >= 3
    });
    assert_eq!(
        get(servy.http, "/gh").header("location"),
        Some("https://gitlab.example/someone")
    );
    assert_eq!(get(servy.http, "/new").status, 308);
    assert_eq!(
        get(servy.http, "/talks").status,
        404,
        "a removed alias is gone"
    );
}

#[test]
fn sighup_refreshes_at_once() {
    let stub = Stub::start(FILE);
    // Intervals far beyond the test: only SIGHUP can cause the second fetch.
    let servy = servy(
        &stub.url(),
        "refresh_interval = \"1h\"\nmin_refresh_interval = \"1h\"",
    );
    stub.mode("flip");
    servy.signal(libc::SIGHUP);
    eventually(Duration::from_secs(5), "/new after SIGHUP", || {
        get(servy.http, "/new").status == 308
    });
    assert_eq!(stub.count(), 2);
}

/// At most one fetch is in flight: SIGHUPs and misses that arrive while upstream is slow
/// wait for the fetch in progress instead of opening more connections to it.
#[test]
fn a_slow_fetch_is_never_joined_by_a_second_one() {
    let stub = Stub::start(FILE);
    let servy = servy(
        &stub.url(),
        "refresh_interval = \"1h\"\nmin_refresh_interval = \"100ms\"\ntimeout = \"10s\"",
    );
    assert_eq!(stub.count(), 1, "one fetch at start");
    stub.mode("delay?ms=3000");
    servy.signal(libc::SIGHUP);
    eventually(Duration::from_secs(2), "the slow fetch to start", || {
        stub.count() == 2
    });
    // Everything that asks for a refresh, while that fetch is still waiting on upstream.
    for i in 0..3 {
        servy.signal(libc::SIGHUP);
        assert_eq!(get(servy.http, &format!("/missing-{i}")).status, 404);
        thread::sleep(Duration::from_millis(150));
    }
    assert_eq!(
        stub.count(),
        2,
        "a second fetch started while the first was in flight"
    );
    assert_eq!(get(servy.http, "/gh").status, 308, "the map keeps serving");
    // The queued requests are served afterwards, one after another.
    eventually(Duration::from_secs(5), "the next fetch", || {
        stub.count() == 3
    });
}

#[test]
fn an_unreachable_upstream_at_start_still_serves_the_site() {
    // Bound then released: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind")
        .port();
    let servy = servy(&format!("http://127.0.0.1:{port}/redirects.txt"), "");
    assert_eq!(get(servy.http, "/").status, 200);
    assert_eq!(get(servy.metrics, "/readyz").status, 200);
    assert_eq!(get(servy.http, "/gh").status, 404);
    // The first load failed; retries (backoff from 1 s) may have followed by now.
    assert!(refreshes(&servy, "connect") >= 1.0);
    assert_eq!(metric(&servy, "servy_redirects_defined"), Some(0.0));
}

/// Regression: a source that came up just after servy was first loaded only after a
/// miss plus min_refresh_interval (9.6 s measured), or refresh_interval with no miss.
/// A failed first load is now retried with backoff from 1 s.
#[test]
fn a_source_that_starts_late_is_loaded_by_the_boot_retries() {
    let addr = crate::support::free_addr();
    let servy = servy(&format!("http://{addr}/redirects.txt"), "");
    assert!(refreshes(&servy, "connect") >= 1.0, "the first load failed");
    thread::sleep(Duration::from_millis(1500));
    let _stub = Stub::start_at(FILE, &addr.to_string());
    let started = Instant::now();
    // Only /metrics is asked: no miss nudges the refresher.
    eventually(Duration::from_secs(10), "the late source loaded", || {
        metric(&servy, "servy_redirects_defined") == Some(2.0)
    });
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "loaded {:?} after the source came up",
        started.elapsed()
    );
    assert_eq!(get(servy.http, "/gh").status, 308);
}

/// Each way the upstream can fail keeps the last good map and is counted by its reason.
#[test]
fn upstream_failures_keep_the_last_good_map() {
    let stub = Stub::start(FILE);
    let servy = servy(
        &stub.url(),
        "refresh_interval = \"1h\"\nmin_refresh_interval = \"200ms\"\ntimeout = \"500ms\"\nmax_bytes = 100000",
    );
    for (mode, result) in [
        ("delay?ms=3000", "timeout"),
        ("status?code=500", "status"),
        ("garbage", "not_utf8"),
        ("oversized?bytes=2000000", "too_large"),
        ("drop", "http"),
    ] {
        stub.mode(mode);
        // A miss asks for a refresh; the failure must not change what is served.
        eventually(Duration::from_secs(5), result, || {
            assert_eq!(
                get(servy.http, "/gh").status,
                308,
                "mode {mode}: the last good map serves"
            );
            get(servy.http, "/not-an-alias");
            refreshes(&servy, result) >= 1.0
        });
    }
    stub.mode("ok");
    stub.set_content("# everything commented out\n\n");
    eventually(Duration::from_secs(5), "empty", || {
        get(servy.http, "/not-an-alias");
        refreshes(&servy, "empty") >= 1.0
    });
    assert_eq!(
        get(servy.http, "/gh").header("location"),
        Some("https://github.com/someone")
    );
    assert_eq!(metric(&servy, "servy_redirects_defined"), Some(2.0));
    assert!(
        servy.wait_stderr(Duration::from_secs(5), "keeping the last good map"),
        "failures are logged:\n{}",
        servy.stderr()
    );
}

#[test]
fn an_unchanged_upstream_answers_304_and_the_map_is_kept() {
    let stub = Stub::start(FILE);
    let servy = servy(
        &stub.url(),
        "refresh_interval = \"1h\"\nmin_refresh_interval = \"200ms\"",
    );
    eventually(Duration::from_secs(5), "a 304 refresh", || {
        get(servy.http, "/not-an-alias");
        refreshes(&servy, "not_modified") >= 1.0
    });
    assert_eq!(
        refreshes(&servy, "ok"),
        1.0,
        "only the first load transferred the file"
    );
    assert_eq!(get(servy.http, "/gh").status, 308);
}

/// gist CDNs cache: `cache_bust` makes every fetch a distinct URL. The fetch also names
/// itself and revalidates with the ETag it was given.
#[test]
fn fetches_carry_the_cache_bust_parameter_user_agent_and_etag() {
    let stub = Stub::start(FILE);
    let servy = servy(
        &stub.url(),
        "cache_bust = \"nocache\"\nmin_refresh_interval = \"200ms\"",
    );
    let first = stub.last();
    let target = first.lines().next().unwrap_or_default();
    let secs = target
        .strip_prefix("GET /redirects.txt?nocache=")
        .unwrap_or_else(|| panic!("no cache-bust parameter in {target:?}"));
    assert!(
        secs.parse::<u64>().is_ok_and(|s| s > 1_000_000_000),
        "not unix seconds: {secs:?}"
    );
    let ua = format!("user-agent: servy/{}", env!("CARGO_PKG_VERSION"));
    assert!(
        first.lines().any(|l| l == ua),
        "expected {ua:?} in:\n{first}"
    );
    assert!(
        !first.contains("if-none-match"),
        "nothing to revalidate yet:\n{first}"
    );
    eventually(Duration::from_secs(5), "a second fetch", || {
        get(servy.http, "/not-an-alias");
        stub.count() >= 2
    });
    // Every fetch after the first revalidates; read it before asking the stub ourselves.
    let later = stub.last();
    let etag = get(stub.addr, "/redirects.txt")
        .header("etag")
        .map(str::to_owned)
        .expect("stub sends an ETag");
    let expected = format!("if-none-match: {etag}");
    assert!(
        later.lines().any(|l| l == expected),
        "expected {expected:?} in:\n{later}"
    );
}

/// A failed first load is not final: once the upstream answers, a later refresh loads it.
#[test]
fn an_upstream_that_recovers_is_loaded_by_a_later_refresh() {
    let stub = Stub::start(FILE);
    stub.mode("status?code=503");
    let servy = servy(&stub.url(), "min_refresh_interval = \"200ms\"");
    assert_eq!(refreshes(&servy, "status"), 1.0);
    assert_eq!(get(servy.http, "/gh").status, 404, "nothing loaded yet");
    stub.mode("ok");
    eventually(
        Duration::from_secs(5),
        "/gh after the upstream recovered",
        || get(servy.http, "/gh").status == 308,
    );
    assert_eq!(metric(&servy, "servy_redirects_defined"), Some(2.0));
}

/// Regression: on a machine without CA certificates (a minimal container) building the
/// HTTP client failed and servy exited 78, so the site was not served at all. Now an
/// https source only fails its refreshes, and a plain-http source needs no roots.
#[test]
fn a_machine_without_ca_certificates_still_serves_and_fetches_plain_http() {
    let no_roots = [
        ("SSL_CERT_FILE", "/nonexistent/ca.pem"),
        ("SSL_CERT_DIR", "/nonexistent"),
    ];
    let https = Servy::builder()
        .config("[redirects]\nsource = \"https://127.0.0.1:9/redirects.txt\"\n")
        .env(no_roots[0].0, no_roots[0].1)
        .env(no_roots[1].0, no_roots[1].1)
        .start();
    assert_eq!(get(https.http, "/").status, 200);
    assert_eq!(refreshes(&https, "client"), 1.0);

    let stub = Stub::start(FILE);
    let http = Servy::builder()
        .config(&format!("[redirects]\nsource = {:?}\n", stub.url()))
        .env(no_roots[0].0, no_roots[0].1)
        .env(no_roots[1].0, no_roots[1].1)
        .start();
    assert_eq!(get(http.http, "/gh").status, 308);
}
