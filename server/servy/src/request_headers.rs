//! A request's headers with the few fields servy's answer depends on found in one pass.
//!
//! A request carries three to fifteen headers. One pass comparing each name with the
//! handful servy reads costs less than a hashed look-up for each of them, and it is made
//! once for the `Host` check (`request/host.rs`) and the site (`site/`), which both read
//! it. It lives below both.

use axum::http::header::{ACCEPT_ENCODING, HOST, IF_MODIFIED_SINCE, IF_NONE_MATCH, RANGE};
use axum::http::{HeaderMap, HeaderValue};

/// A request's headers (see the module).
pub struct RequestHeaders<'a> {
    map: &'a HeaderMap,
    host: Lines<'a>,
    accept_encoding: Lines<'a>,
    conditional: bool,
    range: bool,
}

/// How many lines of one field a request sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lines<'a> {
    None,
    One(&'a HeaderValue),
    /// Two or more: their values are in [`RequestHeaders::map`].
    Many,
}

impl<'a> Lines<'a> {
    fn add(&mut self, value: &'a HeaderValue) {
        *self = match self {
            Lines::None => Lines::One(value),
            _ => Lines::Many,
        };
    }
}

impl<'a> RequestHeaders<'a> {
    pub fn of(map: &'a HeaderMap) -> RequestHeaders<'a> {
        let mut headers = RequestHeaders {
            map,
            host: Lines::None,
            accept_encoding: Lines::None,
            conditional: false,
            range: false,
        };
        for (name, value) in map {
            match *name {
                HOST => headers.host.add(value),
                ACCEPT_ENCODING => headers.accept_encoding.add(value),
                IF_NONE_MATCH | IF_MODIFIED_SINCE => headers.conditional = true,
                RANGE => headers.range = true,
                _ => {}
            }
        }
        headers
    }

    /// Every header, for the fields read only when [`RequestHeaders::conditional`] or
    /// [`RequestHeaders::range`] says they are there, and for repeated lines.
    pub fn map(&self) -> &'a HeaderMap {
        self.map
    }

    pub fn host(&self) -> Lines<'a> {
        self.host
    }

    pub fn accept_encoding(&self) -> Lines<'a> {
        self.accept_encoding
    }

    /// `If-None-Match` or `If-Modified-Since` is present.
    pub fn conditional(&self) -> bool {
        self.conditional
    }

    /// `Range` is present (`If-Range` means nothing without it).
    pub fn range(&self) -> bool {
        self.range
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_pass_finds_each_field_and_counts_repeated_lines() {
        let mut map = HeaderMap::new();
        map.append(HOST, HeaderValue::from_static("example.org"));
        map.append(ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
        map.append(ACCEPT_ENCODING, HeaderValue::from_static("br"));
        map.append(RANGE, HeaderValue::from_static("bytes=0-1"));
        let headers = RequestHeaders::of(&map);
        assert_eq!(
            headers.host(),
            Lines::One(&HeaderValue::from_static("example.org"))
        );
        assert_eq!(headers.accept_encoding(), Lines::Many);
        assert!(headers.range());
        assert!(!headers.conditional());

        let empty = HeaderMap::new();
        let headers = RequestHeaders::of(&empty);
        assert_eq!(headers.host(), Lines::None);
        assert!(!headers.range() && !headers.conditional());
    }
}
