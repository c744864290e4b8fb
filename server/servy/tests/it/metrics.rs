//! The metrics listener: `/metrics` content (the predecessor's series and labels plus
//! the new ones), `/healthz`, `/readyz`, and the optional pprof endpoint.

use std::io::Read;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use crate::support::{Servy, TempDir, get, request};

/// The value of one sample line (`name{labels} value`), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .and_then(|v| v.trim().parse().ok())
}

fn scrape(servy: &Servy) -> String {
    let r = get(servy.metrics, "/metrics");
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .is_some_and(|t| t.starts_with("text/plain; version=0.0.4"))
    );
    r.text()
}

#[test]
fn requests_are_counted_by_status_without_path_labels() {
    let servy = Servy::start("[log]\nrequests = false\n");
    assert_eq!(get(servy.http, "/").status, 200);
    assert_eq!(get(servy.http, "/").status, 200);
    assert_eq!(get(servy.http, "/no-such-page-7f3a").status, 404);
    assert_eq!(
        request(servy.http, "POST", "/", &[("content-length", "0")]).status,
        405
    );

    let text = scrape(&servy);
    assert_eq!(sample(&text, "servy_requests_total"), Some(4.0), "{text}");
    // The support client speaks HTTP/1.1; the other protocols are there at 0.
    for (protocol, count) in [
        ("HTTP/1.0", 0.0),
        ("HTTP/1.1", 4.0),
        ("HTTP/2", 0.0),
        ("HTTP/3", 0.0),
    ] {
        let series = format!("servy_requests_by_protocol_total{{protocol=\"{protocol}\"}}");
        assert_eq!(sample(&text, &series), Some(count), "{text}");
    }
    assert_eq!(
        sample(&text, "servy_response_status{status=\"200\"}"),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "servy_response_status{status=\"404\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "servy_response_status{status=\"405\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "servy_request_duration_seconds_count"),
        Some(4.0),
        "{text}"
    );
    assert!(
        !text.contains("no-such-page"),
        "an unknown path became a label:\n{text}"
    );
}

#[test]
fn response_bytes_follow_content_length_and_head_sends_none() {
    let servy = Servy::start("");
    let r = get(servy.http, "/");
    let len: f64 = r
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .expect("content-length");
    assert_eq!(request(servy.http, "HEAD", "/", &[]).status, 200);
    let text = scrape(&servy);
    assert_eq!(
        sample(&text, "servy_response_bytes_total"),
        Some(len),
        "{text}"
    );
}

#[test]
fn every_documented_series_is_exported() {
    let dir = TempDir::new();
    let source = dir.write("redirects.txt", "gh https://github.com/example\n");
    let servy = Servy::start(&format!("[redirects]\nsource = \"{}\"\n", source.display()));
    assert_eq!(get(servy.http, "/").status, 200);
    assert_eq!(get(servy.http, "/gh").status, 308);
    let text = scrape(&servy);
    for name in [
        "servy_requests_total",
        "servy_response_status",
        "servy_request_duration_seconds_bucket",
        "servy_response_bytes_total",
        "servy_redirects_defined",
        "servy_redirects_last_success_timestamp_seconds",
        "servy_build_info{version=\"",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(name)),
            "{name} missing:\n{text}"
        );
    }
    assert_eq!(
        sample(&text, "servy_redirects_served{alias=\"gh\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "servy_redirects_defined"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "servy_redirects_refreshes_total{result=\"ok\"}"),
        Some(1.0),
        "{text}"
    );
    assert!(
        sample(&text, "servy_redirects_last_success_timestamp_seconds").is_some_and(|t| t > 1.0e9),
        "{text}"
    );
    let version = format!(
        "servy_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    assert!(text.contains(&version), "{text}");
}

#[test]
fn healthz_and_readyz_answer_once_ready() {
    let servy = Servy::start("");
    let h = get(servy.metrics, "/healthz");
    assert_eq!((h.status, h.text().as_str()), (200, "ok\n"));
    assert_eq!(get(servy.metrics, "/readyz").status, 200);
    assert_eq!(get(servy.metrics, "/nope").status, 404);
}

#[test]
fn readyz_waits_for_the_first_redirects_load() {
    // An upstream that accepts and never answers: the first load hangs until its timeout.
    let upstream = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!(
        "http://{}/redirects.txt",
        upstream.local_addr().expect("addr")
    );
    let config =
        format!("[redirects]\nsource = \"{url}\"\ntimeout = \"5s\"\nconnect_timeout = \"1s\"\n");
    let servy = Servy::builder().config(&config).no_wait().start();
    let (_held, _) = upstream.accept().expect("servy connects upstream");

    // Assets and liveness work meanwhile; readiness does not, and neither does READY=1.
    let start = Instant::now();
    assert_eq!(get(servy.metrics, "/healthz").status, 200);
    assert_eq!(get(servy.metrics, "/readyz").status, 503);
    assert_eq!(get(servy.http, "/").status, 200);
    assert!(!servy.notifications().iter().any(|n| n == "READY=1"));
    assert!(
        start.elapsed() < Duration::from_millis(4000),
        "checks were too slow to mean anything"
    );

    assert!(
        servy.wait_notification(Duration::from_secs(10), |n| n == "READY=1"),
        "{}",
        servy.stderr()
    );
    assert_eq!(get(servy.metrics, "/readyz").status, 200);
}

#[test]
fn profiling_is_off_by_default() {
    let servy = Servy::start("");
    assert_eq!(
        get(servy.metrics, "/debug/pprof/profile?seconds=1").status,
        404
    );
}

#[test]
fn profile_is_gzipped_pprof_and_one_at_a_time() {
    let servy = Servy::start("[metrics]\nprofiling = true\nprofiling_max = \"5s\"\n");
    let addr = servy.metrics;
    let first = std::thread::spawn(move || get(addr, "/debug/pprof/profile?seconds=2"));
    // Keep the server a little busy so the profile has samples, and try a second profile.
    let deadline = Instant::now() + Duration::from_millis(1500);
    let mut conflict = None;
    while Instant::now() < deadline {
        get(servy.http, "/");
        if conflict.is_none() {
            std::thread::sleep(Duration::from_millis(200));
            conflict = Some(get(addr, "/debug/pprof/profile?seconds=1").status);
        }
    }
    assert_eq!(conflict, Some(409));

    let r = first.join().expect("profile thread");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(&r.body[..2], &[0x1f, 0x8b], "gzip magic");
    let mut proto = Vec::new();
    flate2::read::GzDecoder::new(&r.body[..])
        .read_to_end(&mut proto)
        .expect("valid gzip");
    // The profile's string table names its sample type, as Go's does.
    let contains = |needle: &[u8]| proto.windows(needle.len()).any(|w| w == needle);
    assert!(
        contains(b"cpu") && contains(b"nanoseconds"),
        "not a CPU profile"
    );

    assert_eq!(
        get(addr, "/debug/pprof/profile?seconds=6").status,
        400,
        "above profiling_max"
    );
    assert_eq!(get(addr, "/debug/pprof/profile?seconds=0").status, 400);
}
