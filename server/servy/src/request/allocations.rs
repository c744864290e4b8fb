//! Heap allocations per request on the main listener's steady-state path, counted by a
//! counting global allocator in the unit-test binary: servy's own work, from the parsed
//! request to the finished response (hyper's parsing and encoding are not in it).
#![allow(unsafe_code)] // implementing GlobalAlloc is unsafe by definition; tests only

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;

use axum::http::{Request, StatusCode};
use tower::Service;

use super::{AppState, MainService};
use crate::config::{CacheConfig, HeadersConfig, LimitsConfig, RedirectsConfig};
use crate::logging::RequestLog;
use crate::metrics::Metrics;
use crate::short_links::Redirects;
use crate::site::Site;
use crate::site::headers::ResponseHeaders;
use crate::site::rules::{EVERY_PATH_HEADERS, SiteRules};

/// The system allocator, counting this thread's allocations.
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every call is passed to the system allocator unchanged; the count is a
// const-initialised thread-local without a destructor, so touching it never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

/// The main listener's service as `main` builds it, with a request log whose writer is
/// gone (lines are counted as dropped; the enqueue path is the same).
fn service() -> MainService<AppState> {
    let headers: &'static ResponseHeaders = Box::leak(Box::new(ResponseHeaders::new(
        HeadersConfig::default(),
        EVERY_PATH_HEADERS,
    )));
    let mut site = Site::new(CacheConfig::default(), headers);
    let rules: &'static SiteRules = Box::leak(Box::new(SiteRules::new(&mut site)));
    let site: &'static Site = Box::leak(Box::new(site));
    let metrics = Arc::new(Metrics::new());
    let text = "gh https://github.com/me\n";
    let (redirects, _refresher) = Redirects::new(RedirectsConfig::default(), &metrics).unwrap();
    redirects.load_for_tests(text);
    let app = AppState {
        site,
        rules,
        headers,
        redirects,
        acme: None,
    };
    let log = RequestLog::detached(metrics.log_lines_dropped.clone());
    super::service(app, metrics, &LimitsConfig::default(), Some(log))
}

/// Allocations of `rounds` calls for `target` with `headers`, after a warm-up.
fn per_request(target: &str, headers: &[(&str, &str)], status: StatusCode) -> f64 {
    let mut svc = service();
    let request = || {
        let mut req = Request::get(target).header("host", "example.org");
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        req.body(()).unwrap()
    };
    let rounds = 200;
    let requests: Vec<_> = (0..rounds + 20).map(|_| request()).collect();
    let mut requests = requests.into_iter();
    for req in requests.by_ref().take(20) {
        let Ok(response) = futures_ready(svc.call(req));
        assert_eq!(response.status(), status, "{target}");
    }
    let before = allocations();
    for req in requests {
        let response = futures_ready(svc.call(req));
        drop(response);
    }
    (allocations() - before) as f64 / rounds as f64
}

/// The value of a future servy returns ready.
fn futures_ready<F: std::future::IntoFuture>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future.into_future());
    let waker = std::task::Waker::noop();
    match future
        .as_mut()
        .poll(&mut std::task::Context::from_waker(waker))
    {
        std::task::Poll::Ready(output) => output,
        std::task::Poll::Pending => panic!("servy's answer waited"),
    }
}

/// What a request costs in allocations today, as a bound that fails when it grows. A
/// 200, a 304 and a 404 take two: the response's header map, its index table and its
/// entries (cloned from a prebuilt map: hyper takes each `http::Response` and drops its
/// map, so each needs one of its own). Bodies are the binary's bytes, held without a
/// box; the place among the requests in flight is a counter; the log record copies the
/// path. A redirect builds its map header by header, and the every-path headers grow it.
#[test]
fn allocations_per_request_do_not_grow() {
    let ok = per_request("/", &[("accept-encoding", "br, gzip")], StatusCode::OK);
    let etag = {
        let mut svc = service();
        let req = Request::get("/")
            .header("host", "x")
            .header("accept-encoding", "br, gzip");
        let Ok(response) = futures_ready(svc.call(req.body(()).unwrap()));
        response.headers()["etag"].to_str().unwrap().to_string()
    };
    let not_modified = per_request(
        "/",
        &[("accept-encoding", "br, gzip"), ("if-none-match", &etag)],
        StatusCode::NOT_MODIFIED,
    );
    let redirect = per_request("/gh", &[], StatusCode::PERMANENT_REDIRECT);
    let missing = per_request("/no-such-page", &[], StatusCode::NOT_FOUND);
    eprintln!(
        "allocations per request: 200 {ok}, 304 {not_modified}, redirect {redirect}, 404 {missing}"
    );
    assert!(ok <= 2.0, "a 200 allocates {ok} times");
    assert!(not_modified <= 2.0, "a 304 allocates {not_modified} times");
    assert!(redirect <= 4.0, "a redirect allocates {redirect} times");
    assert!(missing <= 2.0, "a 404 allocates {missing} times");
}
