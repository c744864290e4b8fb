//! The last step of the dispatch: the site's `404.html` with status 404, or a plain 404.
//!
//! Reached when no file and no redirect alias matched. `Cache-Control: no-cache`, so a
//! page added by the next deploy (or an alias added upstream) is seen at once.

use axum::body::Body;
use axum::http::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::Response;
use bytes::Bytes;

use crate::site::NotFoundPage;

const PLAIN: &[u8] = b"404 Not Found\n";

/// The 404 response: `page` is the site's `404.html` (`Site::not_found_page`), if it has
/// one. HEAD gets the same headers and no body.
pub fn respond(page: Option<NotFoundPage>, method: &Method) -> Response {
    let (bytes, content_type, content_length) = match page {
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
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    // The demo site has a 404.html (the integration tests cover that page), so the plain
    // answer of a site without one is pinned here.
    #[test]
    fn without_a_404_page_the_answer_is_a_plain_404() {
        let get = respond(None, &Method::GET);
        assert_eq!(get.status(), StatusCode::NOT_FOUND);
        let h = get.headers();
        assert_eq!(h[CONTENT_TYPE], "text/plain; charset=utf-8");
        assert_eq!(h[CONTENT_LENGTH], PLAIN.len().to_string().as_str());
        assert_eq!(h[CACHE_CONTROL], "no-cache");
        assert_eq!(
            axum::body::HttpBody::size_hint(get.body()).exact(),
            Some(PLAIN.len() as u64)
        );

        let head = respond(None, &Method::HEAD);
        assert_eq!(head.status(), StatusCode::NOT_FOUND);
        assert_eq!(head.headers(), get.headers(), "HEAD: the same headers");
        assert_eq!(
            axum::body::HttpBody::size_hint(head.body()).exact(),
            Some(0)
        );
    }

    #[test]
    fn the_sites_page_is_sent_with_its_own_type_and_length() {
        let page = NotFoundPage {
            bytes: b"<h1>gone</h1>",
            content_type: HeaderValue::from_static("text/html; charset=utf-8"),
            content_length: HeaderValue::from_static("13"),
        };
        let r = respond(Some(page), &Method::GET);
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert_eq!(r.headers()[CONTENT_TYPE], "text/html; charset=utf-8");
        assert_eq!(r.headers()[CONTENT_LENGTH], "13");
        assert_eq!(axum::body::HttpBody::size_hint(r.body()).exact(), Some(13));
    }
}
