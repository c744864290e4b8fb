//! The last step of the dispatch: the site's `404.html` with status 404, or a plain 404.
//!
//! Reached when no file and no redirect alias matched. `Cache-Control: no-cache`, so a
//! page added by the next deploy (or an alias added upstream) is seen at once.

use axum::body::Body;
use axum::http::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::Response;
use bytes::Bytes;

use crate::router::Served;
use crate::site::Site;

const PLAIN: &[u8] = b"404 Not Found\n";

/// The 404 response; HEAD gets the same headers and no body.
pub fn respond(site: &Site, method: &Method) -> Response {
    let (bytes, content_type, content_length) = match site.not_found_page() {
        Some(page) => (page.bytes, page.content_type, page.content_length),
        None => (
            PLAIN,
            HeaderValue::from_static("text/plain; charset=utf-8"),
            HeaderValue::from(PLAIN.len()),
        ),
    };
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        Body::from(Bytes::from_static(bytes))
    };
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::NOT_FOUND;
    let h = response.headers_mut();
    h.reserve(3);
    h.insert(CONTENT_TYPE, content_type);
    h.insert(CONTENT_LENGTH, content_length);
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response.extensions_mut().insert(Served::NotFound);
    response
}
