//! The last step of the dispatch: the site's `404.html` with status 404, or a plain 404.
//!
//! Reached when no file and no redirect alias matched. `Cache-Control: no-cache`, so a
//! page added by the next deploy (or an alias added upstream) is seen at once.

use axum::http::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};

use crate::held_body::{Response, ResponseBody};

const PLAIN: &[u8] = b"404 Not Found\n";

/// The body and headers a 404 carries, built once at start-up (`Site::new`).
pub struct NotFoundPage {
    pub bytes: &'static [u8],
    /// Its type, length and `Cache-Control`, then whatever `finish` added to them (the
    /// headers every path gets): a 404 clones a finished map.
    headers: HeaderMap,
}

impl NotFoundPage {
    pub fn new(
        bytes: &'static [u8],
        content_type: HeaderValue,
        finish: impl FnOnce(&mut HeaderMap),
    ) -> NotFoundPage {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, content_type);
        headers.insert(CONTENT_LENGTH, HeaderValue::from(bytes.len()));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        finish(&mut headers);
        NotFoundPage { bytes, headers }
    }

    /// For a site without `404.html`.
    pub fn plain(finish: impl FnOnce(&mut HeaderMap)) -> NotFoundPage {
        let content_type = HeaderValue::from_static("text/plain; charset=utf-8");
        NotFoundPage::new(PLAIN, content_type, finish)
    }
}

/// The 404 response carrying `page` (`Site::not_found_page`). HEAD gets the same headers
/// and no body.
pub fn respond(page: &NotFoundPage, method: &Method) -> Response {
    let body = if method == Method::HEAD {
        ResponseBody::empty()
    } else {
        ResponseBody::from_static(page.bytes)
    };
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::NOT_FOUND;
    *response.headers_mut() = page.headers.clone();
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    // The demo site has a 404.html (the integration tests cover that page), so the plain
    // answer of a site without one is pinned here.
    #[test]
    fn without_a_404_page_the_answer_is_a_plain_404() {
        let page = NotFoundPage::plain(|_| {});
        let get = respond(&page, &Method::GET);
        assert_eq!(get.status(), StatusCode::NOT_FOUND);
        let h = get.headers();
        assert_eq!(h[CONTENT_TYPE], "text/plain; charset=utf-8");
        assert_eq!(h[CONTENT_LENGTH], PLAIN.len().to_string().as_str());
        assert_eq!(h[CACHE_CONTROL], "no-cache");
        assert_eq!(
            axum::body::HttpBody::size_hint(get.body()).exact(),
            Some(PLAIN.len() as u64)
        );

        let head = respond(&page, &Method::HEAD);
        assert_eq!(head.status(), StatusCode::NOT_FOUND);
        assert_eq!(head.headers(), get.headers(), "HEAD: the same headers");
        assert_eq!(
            axum::body::HttpBody::size_hint(head.body()).exact(),
            Some(0)
        );
    }

    #[test]
    fn the_sites_page_is_sent_with_its_own_type_and_length() {
        let page = NotFoundPage::new(
            b"<h1>gone</h1>",
            HeaderValue::from_static("text/html; charset=utf-8"),
            |h| {
                h.insert(
                    "x-content-type-options",
                    HeaderValue::from_static("nosniff"),
                );
            },
        );
        let r = respond(&page, &Method::GET);
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert_eq!(r.headers()[CONTENT_TYPE], "text/html; charset=utf-8");
        assert_eq!(r.headers()[CONTENT_LENGTH], "13");
        assert_eq!(r.headers()["x-content-type-options"], "nosniff");
        assert_eq!(axum::body::HttpBody::size_hint(r.body()).exact(), Some(13));
    }
}
