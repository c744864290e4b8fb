//! One request: the served file (behaving as the current mode says) or the control API.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Frame, Incoming};
use hyper::header::{CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use hyper::{Method, Request, Response, StatusCode};

use crate::state::{Content, Mode, State};

pub type Body = BoxBody<Bytes, Infallible>;

/// Returned to hyper to make it close the connection without a response (`drop` mode).
#[derive(Debug)]
pub struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped on purpose")
    }
}

impl std::error::Error for Dropped {}

/// Largest body `PUT /control/content` takes.
const MAX_CONTENT: usize = 64 * 1024 * 1024;

pub async fn respond(state: Arc<State>, req: Request<Incoming>) -> Result<Response<Body>, Dropped> {
    let path = req.uri().path().to_owned();
    let query = req.uri().query().map(str::to_owned);
    let method = req.method().clone();
    let served_path = path == "/" || path == "/redirects.txt";
    match (&method, path.as_str()) {
        (&Method::GET | &Method::HEAD, _) if served_path => serve(&state, &req).await,
        (_, _) if served_path => Ok(text(StatusCode::METHOD_NOT_ALLOWED, "GET or HEAD\n")),
        (&Method::GET, "/control/count") => {
            Ok(text(StatusCode::OK, format!("{}\n", state.count())))
        }
        (&Method::GET, "/control/last") => Ok(text(StatusCode::OK, state.last())),
        (&Method::GET, "/control/mode") => Ok(text(StatusCode::OK, format!("{}\n", state.mode()))),
        (&Method::POST, "/control/mode/flip") => {
            state.flip();
            Ok(text(StatusCode::OK, "ok\n"))
        }
        (&Method::POST, mode) if mode.starts_with("/control/mode/") => {
            match Mode::parse(&mode["/control/mode/".len()..], query.as_deref()) {
                Ok(mode) => {
                    state.set_mode(mode);
                    Ok(text(StatusCode::OK, "ok\n"))
                }
                Err(e) => Ok(text(StatusCode::BAD_REQUEST, format!("{e}\n"))),
            }
        }
        (&Method::PUT, "/control/content") => {
            match Limited::new(req.into_body(), MAX_CONTENT).collect().await {
                Ok(body) => {
                    state.set_content(body.to_bytes());
                    Ok(text(StatusCode::OK, "ok\n"))
                }
                Err(e) => Ok(text(StatusCode::BAD_REQUEST, format!("{e}\n"))),
            }
        }
        (&Method::POST, "/control/reset") => {
            state.reset();
            Ok(text(StatusCode::OK, "ok\n"))
        }
        _ => Ok(text(StatusCode::NOT_FOUND, "not found\n")),
    }
}

/// The redirects file, as the current mode has it.
async fn serve(state: &State, req: &Request<Incoming>) -> Result<Response<Body>, Dropped> {
    let (mode, content) = state.serve(head(req));
    match mode {
        Mode::Ok => Ok(file(req, content)),
        Mode::Delay(wait) => {
            tokio::time::sleep(wait).await;
            Ok(file(req, content))
        }
        Mode::Status(code) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            Ok(text(status, format!("stub: status {code}\n")))
        }
        Mode::Garbage => Ok(Response::new(Full::new(garbage()).boxed())),
        Mode::Oversized(bytes) => {
            let body = Repeat {
                chunk: lines_chunk(),
                remaining: bytes,
            };
            let mut response = Response::new(body.boxed());
            response.headers_mut().insert(
                CONTENT_TYPE,
                "text/plain; charset=utf-8".parse().expect("static"),
            );
            Ok(response)
        }
        Mode::Drop => Err(Dropped),
    }
}

/// `GET /redirects.txt?x=1` and one `name: value` line per header, as received.
fn head(req: &Request<Incoming>) -> String {
    let mut out = format!("{} {}\n", req.method(), req.uri());
    for (name, value) in req.headers() {
        out.push_str(&format!(
            "{name}: {}\n",
            String::from_utf8_lossy(value.as_bytes())
        ));
    }
    out
}

/// 200 with the content and its ETag, or 304 when the client already has it.
fn file(req: &Request<Incoming>, content: Content) -> Response<Body> {
    let matches = req
        .headers()
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == "*" || tag == content.etag);
    let mut response = if matches {
        let mut r = Response::new(Full::new(Bytes::new()).boxed());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        let mut r = Response::new(Full::new(content.body).boxed());
        r.headers_mut().insert(
            CONTENT_TYPE,
            "text/plain; charset=utf-8".parse().expect("static"),
        );
        r
    };
    if let Ok(etag) = content.etag.parse() {
        response.headers_mut().insert(ETAG, etag);
    }
    response
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()).boxed());
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        "text/plain; charset=utf-8".parse().expect("static"),
    );
    response
}

/// 4 KiB that are not UTF-8 (0xFF never appears in UTF-8) and not redirect lines.
fn garbage() -> Bytes {
    let mut x = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    let mut out = vec![0xFF, 0xFE, 0x00];
    while out.len() < 4096 {
        // xorshift64: varied bytes without a dependency.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.into()
}

/// 64 KiB of valid-looking redirect lines, so `oversized` fails on size alone.
fn lines_chunk() -> Bytes {
    let mut out = String::with_capacity(64 * 1024 + 64);
    let mut i = 0;
    while out.len() < 64 * 1024 {
        out.push_str(&format!("big{i} https://example.org/{i}\n"));
        i += 1;
    }
    out.truncate(64 * 1024);
    Bytes::from(out)
}

/// A body of `remaining` bytes sent in chunks with no Content-Length, so a client can only
/// enforce a size cap while reading.
struct Repeat {
    chunk: Bytes,
    remaining: u64,
}

impl hyper::body::Body for Repeat {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let n = self.remaining.min(self.chunk.len() as u64) as usize;
        self.remaining -= n as u64;
        Poll::Ready(Some(Ok(Frame::data(self.chunk.slice(..n)))))
    }
}
