//! Heap allocations per request on the main listener's steady-state path, counted by a
//! counting global allocator in the unit-test binary: servy's own work alone (the
//! service, from the parsed request to the finished response), and the whole path of a
//! keep-alive connection (tokio, hyper's parsing and encoding, servy) on a thread of its
//! own, over HTTP/1.1 and h2c.
#![allow(unsafe_code)] // implementing GlobalAlloc is unsafe by definition; tests only

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::{Request, StatusCode};
use prometheus::Registry;
use tower::Service;

use crate::config::{CacheConfig, HeadersConfig, LimitsConfig, RedirectsConfig};
use crate::conn::{Server, Transport};
use crate::logging::RequestLog;
use crate::metrics::Metrics;
use crate::request::{AppState, MainService};
use crate::short_links::Redirects;
use crate::site::Site;
use crate::site::headers::ResponseHeaders;
use crate::site::rules::{EVERY_PATH_HEADERS, SiteRules};

/// The system allocator, counting this thread's allocations, and the server thread's
/// in [`SERVER_ALLOCATIONS`] for the test threads to read.
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
    static SERVER_THREAD: Cell<bool> = const { Cell::new(false) };
}

static SERVER_ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

fn count() {
    ALLOCATIONS.with(|n| n.set(n.get() + 1));
    if SERVER_THREAD.with(Cell::get) {
        SERVER_ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: every call is passed to the system allocator unchanged; the count is a
// const-initialised thread-local without a destructor, so touching it never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
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
    crate::request::service(app, metrics, &LimitsConfig::default(), Some(log))
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

/// servy's main listener on a thread of its own, as `main` runs it on one CPU (a
/// current-thread runtime, the connection layer, the service above); every allocation
/// that thread makes is counted in [`SERVER_ALLOCATIONS`]. It serves until the test
/// binary exits.
fn serve_on_a_thread() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("non-blocking");
    let addr = listener.local_addr().expect("address");
    std::thread::spawn(move || {
        SERVER_THREAD.with(|on| on.set(true));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let mut server = Server::new(&LimitsConfig::default(), None, &Registry::new());
            server
                .serve(listener, Transport::Plain, service())
                .expect("serve");
            std::future::pending::<()>().await;
        });
    });
    addr
}

/// A keep-alive HTTP/1.1 connection that reads each response whole by its
/// Content-Length.
struct Http1Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Http1Client {
    fn connect(addr: SocketAddr) -> Http1Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .expect("timeout");
        Http1Client {
            stream,
            buf: Vec::new(),
        }
    }

    /// The status and the head of the response to a GET of `target` with `headers`.
    fn get(&mut self, target: &str, headers: &str) -> (u16, String) {
        let request = format!(
            "GET {target} HTTP/1.1\r\nHost: example.org\r\nAccept-Encoding: br, gzip\r\n{headers}\r\n"
        );
        self.stream.write_all(request.as_bytes()).expect("write");
        let end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            self.fill();
        };
        let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .map_or(0, |n| n.trim().parse().expect("a length"));
        while self.buf.len() < end + length {
            self.fill();
        }
        self.buf.drain(..end + length);
        let status = head[9..12].parse().expect("a status");
        (status, head)
    }

    fn fill(&mut self) {
        let mut chunk = [0; 16 * 1024];
        let n = self.stream.read(&mut chunk).expect("read");
        assert!(n > 0, "the server closed the connection");
        self.buf.extend_from_slice(&chunk[..n]);
    }
}

/// The server thread's allocations per request made by `request`, after a warm-up: the
/// fewest over five batches of 100, so that a one-off on that thread (a timer's slot, a
/// lazily built value) is not taken for a cost of every request, which shows in every
/// batch.
fn server_allocations(mut request: impl FnMut()) -> f64 {
    const BATCH: u64 = 100;
    for _ in 0..20 {
        request();
    }
    let fewest = (0..5)
        .map(|_| {
            let before = SERVER_ALLOCATIONS.load(Ordering::Relaxed);
            for _ in 0..BATCH {
                request();
            }
            SERVER_ALLOCATIONS.load(Ordering::Relaxed) - before
        })
        .min()
        .unwrap_or(0);
    fewest as f64 / BATCH as f64
}

/// The whole path of a request on a keep-alive connection, tokio and hyper's parsing
/// and encoding included: over HTTP/1.1 hyper and tokio allocate nothing per request, so
/// a 200 and a 304 take only the response's header map (see above), a redirect its four.
/// Over h2c, h2 builds each request's map and its frames as well.
#[test]
fn allocations_per_request_on_a_keep_alive_connection() {
    let addr = serve_on_a_thread();
    let mut client = Http1Client::connect(addr);
    let (status, head) = client.get("/", "");
    assert_eq!(status, 200, "{head}");
    let etag = head
        .lines()
        .find_map(|l| l.strip_prefix("etag: "))
        .expect("an ETag")
        .to_string();
    let ok = server_allocations(|| assert_eq!(client.get("/", "").0, 200));
    let if_none_match = format!("If-None-Match: {etag}\r\n");
    let not_modified = server_allocations(|| assert_eq!(client.get("/", &if_none_match).0, 304));
    let redirect = server_allocations(|| assert_eq!(client.get("/gh", "").0, 308));
    let h2 = h2c_allocations(addr);
    eprintln!(
        "allocations per request, whole path: HTTP/1.1 200 {ok}, 304 {not_modified}, \
         redirect {redirect}; h2c 200 {h2}"
    );
    // h2 builds maps and frames for every request: were the server thread's allocations
    // not counted at all, every figure here would be 0 and the bounds below would hold.
    assert!(
        h2 >= 1.0,
        "the server thread's allocations are not being counted"
    );
    assert!(ok <= 2.0, "an HTTP/1.1 200 allocates {ok} times");
    assert!(
        not_modified <= 2.0,
        "an HTTP/1.1 304 allocates {not_modified} times"
    );
    assert!(
        redirect <= 4.0,
        "an HTTP/1.1 redirect allocates {redirect} times"
    );
    assert!(h2 <= 12.0, "an h2c request allocates {h2} times");
}

/// The server's allocations per request over one h2c connection, one request at a time.
fn h2c_allocations(addr: SocketAddr) -> f64 {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut client = runtime.block_on(async {
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (client, connection) = h2::client::handshake(tcp).await.expect("handshake");
        tokio::spawn(async move {
            let _ = connection.await;
        });
        client
    });
    // The connection's task runs whenever the runtime does, inside each `block_on`.
    let mut get = || {
        runtime.block_on(async {
            let request = Request::get("http://example.org/")
                .header("accept-encoding", "br, gzip")
                .body(())
                .expect("request");
            let (response, _) = client.send_request(request, true).expect("send");
            let response = response.await.expect("response");
            assert_eq!(response.status(), StatusCode::OK);
            let mut body = response.into_body();
            while let Some(chunk) = body.data().await {
                let chunk = chunk.expect("data");
                let _ = body.flow_control().release_capacity(chunk.len());
            }
        })
    };
    server_allocations(&mut get)
}
