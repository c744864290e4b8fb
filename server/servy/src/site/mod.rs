//! The embedded site: lookup of a normalised key, then encoding → conditional → range.
//!
//! Step 3 of the dispatch. Everything expensive (hashing, MIME, compression, header
//! values) happened in `build.rs`, which wrote the table included below; rust-embed put
//! the bytes of the originals and of the compressed variants in the binary. [`Site::new`]
//! ties the two together once at startup, so a request is a hash lookup, a few header
//! comparisons and `&'static` bytes handed to hyper without a copy.
//!
//! The encoding is chosen before the validators are compared because an ETag belongs to
//! one representation (RFC 9110 §8.8.3): a client holding the gzip bytes sends the gzip
//! ETag, and a 304 must name the representation it validates.

pub mod conditional;
pub mod headers;
pub mod negotiate;
pub mod not_found;
pub mod range;
pub mod rules;

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::OnceLock;

use axum::http::header::{
    ACCEPT_RANGES, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE,
    ETAG, LAST_MODIFIED, VARY,
};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use rust_embed::RustEmbed;

use crate::config::CacheConfig;
use crate::held_body::{Response, ResponseBody};
use crate::request_headers::RequestHeaders;
use crate::served::Served;
use crate::site::headers::{Header, ResponseHeaders};
use crate::site::not_found::NotFoundPage;
use negotiate::Coding;
use range::Outcome;
use servy_rules::pattern::request_keys;

/// The build-time table: one row per file, sorted by key.
mod table {
    use super::negotiate::Coding;

    pub struct Entry {
        /// The normalised key (`blog/index.html`), which is also the rust-embed path.
        pub key: &'static str,
        /// The percent-encoded request target that names the file (`/caf%C3%A9.html`).
        pub url: &'static str,
        pub content_type: &'static str,
        pub class: CacheClass,
        pub last_modified: Option<LastModified>,
        pub identity: Rep,
        pub variants: &'static [VariantEntry],
        /// From the site's `_headers`: `(lower-case name, value)`, repeated names joined.
        pub headers: &'static [(&'static str, &'static str)],
    }

    pub struct Rep {
        /// Quoted strong ETag.
        pub etag: &'static str,
        pub len: u64,
        /// `len` in decimal, so Content-Length is a static header value.
        pub len_text: &'static str,
    }

    pub struct VariantEntry {
        pub coding: Coding,
        /// The rust-embed path under `$OUT_DIR/variants`.
        pub file: &'static str,
        pub rep: Rep,
    }

    pub struct LastModified {
        pub secs: u64,
        pub text: &'static str,
    }

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum CacheClass {
        Html,
        Immutable,
        Default,
    }

    include!(concat!(env!("OUT_DIR"), "/assets.rs"));
}

pub use table::CacheClass;

/// The site's files as they were at build time (`SERVY_ASSETS_DIR` or the demo site).
#[derive(RustEmbed)]
#[folder = "$SERVY_SITE_DIR"]
struct Originals;

/// The brotli, zstd and gzip variants `build.rs` kept (`<key>.br`, `.zst`, `.gz`).
#[derive(RustEmbed)]
#[folder = "$OUT_DIR/variants"]
struct Variants;

/// One representation of an asset, with its header values built once.
struct Representation {
    bytes: &'static [u8],
    etag: &'static str,
    etag_value: HeaderValue,
    content_length: HeaderValue,
    /// `None` for identity.
    encoding: Option<HeaderValue>,
    /// Every header of its 200 to a GET, to a HEAD and of its 304, built the first time
    /// one is sent ([`Asset::ok_headers`]): a response clones a finished map instead of
    /// inserting a dozen headers one by one. Built on first use rather than at start-up,
    /// so a large site holds maps only for what is asked for (about 1.4 KiB each).
    ok: OnceLock<HeaderMap>,
    ok_to_head: OnceLock<HeaderMap>,
    not_modified: OnceLock<HeaderMap>,
}

/// One file of the site, ready to serve.
pub struct Asset {
    key: &'static str,
    content_type: HeaderValue,
    cache_control: HeaderValue,
    last_modified: Option<(u64, HeaderValue)>,
    identity: Representation,
    /// Parallel to `variants`: what [`negotiate::choose`] picks from.
    codings: Vec<(Coding, u64)>,
    variants: Vec<Representation>,
    /// Defaults, `_headers` and `[headers]`, resolved once (`site/headers.rs`); set last, so
    /// a rule's `Cache-Control` or `Content-Type` wins over the computed one.
    extra: Box<[Header]>,
}

/// The lookup from normalised key to asset, built once at startup and never changed.
pub struct Site {
    assets: Vec<Asset>,
    /// Every key a request may normalise to: `a/b.html`, and for `a/index.html` also
    /// `a` and `a/` (and `""` for the root), so no request formats a string to look up.
    lookup: HashMap<&'static str, usize, KeyHash>,
    /// Keys a forced `_redirects` rule took over (`site/rules.rs`): not served at their own
    /// path, still served by a 200 rewrite.
    withdrawn: HashMap<&'static str, usize>,
    /// Chosen once: the site's `404.html`, or the plain page when it has none.
    not_found: NotFoundPage,
}

impl Site {
    /// Builds the lookup from the embedded table. `cache` gives the `Cache-Control` of each
    /// class (config validation has refused invalid values; one that slipped through falls
    /// back to the default for its class rather than failing).
    pub fn new(cache: CacheConfig, headers: &ResponseHeaders) -> Site {
        let defaults = CacheConfig::default();
        let class_value = |configured: &str, default: &str| -> HeaderValue {
            HeaderValue::from_str(configured).unwrap_or_else(|_| {
                tracing::warn!(
                    value = configured,
                    "invalid Cache-Control value; using the default"
                );
                HeaderValue::from_str(default).unwrap_or(HeaderValue::from_static("no-cache"))
            })
        };
        let html = class_value(&cache.html, &defaults.html);
        let immutable = class_value(&cache.immutable, &defaults.immutable);
        let default = class_value(&cache.default, &defaults.default);

        let mut assets = Vec::with_capacity(table::ENTRIES.len());
        for entry in table::ENTRIES {
            let Some(identity) = Originals::get(entry.key).map(|f| leak(f.data)) else {
                tracing::error!(
                    key = entry.key,
                    "asset in the table but not embedded; skipped"
                );
                continue;
            };
            let mut codings = Vec::with_capacity(entry.variants.len());
            let mut variants = Vec::with_capacity(entry.variants.len());
            for variant in entry.variants {
                let Some(bytes) = Variants::get(variant.file).map(|f| leak(f.data)) else {
                    tracing::error!(
                        file = variant.file,
                        "variant in the table but not embedded; skipped"
                    );
                    continue;
                };
                codings.push((variant.coding, variant.rep.len));
                variants.push(Representation::new(
                    bytes,
                    &variant.rep,
                    Some(variant.coding.header_value()),
                ));
            }
            let cache_control = match entry.class {
                CacheClass::Html => html.clone(),
                CacheClass::Immutable => immutable.clone(),
                CacheClass::Default => default.clone(),
            };
            assets.push(Asset {
                key: entry.key,
                content_type: HeaderValue::from_static(entry.content_type),
                cache_control,
                last_modified: entry
                    .last_modified
                    .as_ref()
                    .map(|lm| (lm.secs, HeaderValue::from_static(lm.text))),
                identity: Representation::new(identity, &entry.identity, None),
                codings,
                variants,
                extra: headers.for_file(entry.headers, &request_keys(entry.key)),
            });
        }

        let mut lookup = HashMap::with_capacity_and_hasher(assets.len() * 2, KeyHash::default());
        for (i, asset) in assets.iter().enumerate() {
            lookup.insert(asset.key, i);
        }
        // Directory keys only where no file has that name (files always win).
        for (i, asset) in assets.iter().enumerate() {
            if let Some(dir) = asset
                .key
                .strip_suffix("index.html")
                .filter(|d| d.is_empty() || d.ends_with('/'))
            {
                lookup.entry(dir).or_insert(i);
                if let Some(bare) = dir.strip_suffix('/') {
                    lookup.entry(bare).or_insert(i);
                }
            }
        }
        // The every-path headers now, so a 404 passes `complete` untouched.
        let finish = |h: &mut HeaderMap| {
            headers.complete_map(h);
            h.values_mut().for_each(make_static);
        };
        let not_found = match lookup.get("404.html") {
            Some(&i) => NotFoundPage::new(
                assets[i].identity.bytes,
                assets[i].content_type.clone(),
                finish,
            ),
            None => NotFoundPage::plain(finish),
        };
        Site {
            assets,
            lookup,
            withdrawn: HashMap::new(),
            not_found,
        }
    }

    /// Every key a request may name a file by (`a/index.html`, `a/`, `a`, `""`).
    pub fn keys(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.lookup.keys().copied()
    }

    /// Stops serving `key` at its own path: a forced `_redirects` rule answers there.
    /// A rewrite can still serve it ([`Site::rewrite`]).
    pub fn withdraw(&mut self, key: &str) {
        if let Some((key, i)) = self.lookup.remove_entry(key) {
            self.withdrawn.insert(key, i);
        }
    }

    /// A `_redirects` 200 rule: the file at `key` answers at another path, exactly as it
    /// would at its own (encoding, validators, ranges), even if a forced rule took its
    /// own path over.
    pub fn rewrite(
        &self,
        key: &str,
        method: &Method,
        headers: &RequestHeaders<'_>,
    ) -> Option<(Response, Served)> {
        let i = self.lookup.get(key).or_else(|| self.withdrawn.get(key))?;
        self.respond_with(&self.assets[*i], method, headers)
    }

    /// Answers a GET or HEAD for a normalised key, or `None` when no file has that key:
    ///
    /// 1. look the key up (`""`, `dir`, `dir/` reach `index.html`);
    /// 2. choose the representation from `Accept-Encoding`;
    /// 3. its validators match → 304;
    /// 4. GET with a `Range` → 206 or 416; otherwise 200 (HEAD: headers only).
    ///
    /// The response comes with the file it serves, for the request log.
    pub fn respond(
        &self,
        key: &str,
        method: &Method,
        headers: &RequestHeaders<'_>,
    ) -> Option<(Response, Served)> {
        self.respond_with(&self.assets[*self.lookup.get(key)?], method, headers)
    }

    fn respond_with(
        &self,
        asset: &Asset,
        method: &Method,
        headers: &RequestHeaders<'_>,
    ) -> Option<(Response, Served)> {
        // Images and other files that compress badly have no variants: identity is the
        // only answer, so `Accept-Encoding` is not even parsed for them.
        let chosen = if asset.codings.is_empty() {
            None
        } else {
            negotiate::choose(&negotiate::weights_of(headers), &asset.codings)
        };
        let rep = match chosen {
            Some(i) => &asset.variants[i],
            None => &asset.identity,
        };
        let last_modified = asset.last_modified.as_ref().map(|(secs, _)| *secs);
        if headers.conditional()
            && conditional::not_modified(headers.map(), rep.etag, last_modified)
        {
            let headers = asset.not_modified_headers(rep);
            let response = prebuilt(StatusCode::NOT_MODIFIED, ResponseBody::empty(), headers);
            return Some((response, Served::Asset(asset.key)));
        }
        let len = rep.bytes.len() as u64;
        let outcome = if method == Method::GET && headers.range() {
            range::evaluate(headers.map(), rep.etag, last_modified, len)
        } else {
            Outcome::Full
        };
        let response = match outcome {
            Outcome::Full if method == Method::HEAD => {
                let headers = asset.ok_to_head_headers(rep);
                prebuilt(StatusCode::OK, ResponseBody::empty(), headers)
            }
            Outcome::Full => {
                let body = ResponseBody::from_static(rep.bytes);
                prebuilt(StatusCode::OK, body, asset.ok_headers(rep))
            }
            Outcome::Partial(range) => {
                let mut response = asset.partial(rep, *range.start(), *range.end());
                asset.finish(response.headers_mut());
                response
            }
            Outcome::Unsatisfiable => {
                let mut response = asset.unsatisfiable(rep);
                asset.finish(response.headers_mut());
                response
            }
        };
        Some((response, Served::Asset(asset.key)))
    }

    /// Every embedded file as the request target that serves it with 200, sorted, one per
    /// file: percent-encoded, with a leading slash, directory indexes by their file name
    /// (`/blog/index.html`; `/blog/` serves the same bytes). For `servy --list-assets`.
    /// A file whose path a forced `_redirects` rule took over is left out.
    pub fn paths(&self) -> impl Iterator<Item = &'static str> + use<> {
        let mut urls: Vec<&'static str> = table::ENTRIES
            .iter()
            .filter(|e| self.lookup.contains_key(e.key))
            .map(|e| e.url)
            .collect();
        urls.sort_unstable();
        urls.into_iter()
    }

    /// The bytes of every representation (originals and variants), for start-up checks.
    pub fn bodies(&self) -> impl Iterator<Item = &'static [u8]> + '_ {
        self.assets.iter().flat_map(|a| {
            std::iter::once(a.identity.bytes).chain(a.variants.iter().map(|v| v.bytes))
        })
    }

    /// Number of embedded files.
    pub fn len(&self) -> usize {
        self.assets.len()
    }

    /// The page a 404 carries (see [`Site::new`]).
    pub fn not_found_page(&self) -> &NotFoundPage {
        &self.not_found
    }
}

impl Representation {
    fn new(
        bytes: &'static [u8],
        rep: &table::Rep,
        encoding: Option<HeaderValue>,
    ) -> Representation {
        debug_assert_eq!(bytes.len() as u64, rep.len, "table and embed disagree");
        Representation {
            bytes,
            etag: rep.etag,
            etag_value: HeaderValue::from_static(rep.etag),
            content_length: if bytes.len() as u64 == rep.len {
                HeaderValue::from_static(rep.len_text)
            } else {
                HeaderValue::from(bytes.len())
            },
            encoding,
            ok: OnceLock::new(),
            ok_to_head: OnceLock::new(),
            not_modified: OnceLock::new(),
        }
    }
}

/// The lookup's hash: rustc-hash's, which takes a key eight bytes at a time where the
/// default SipHash takes a few hundred instructions a key. SipHash's keying defends a
/// map that requests insert into; this one is built once from the site's own keys, so a
/// request can only look up.
type KeyHash = rustc_hash::FxBuildHasher;

/// Moves a value's bytes to memory that lives as long as the process, so that cloning
/// it into each response, and dropping it there, touches no reference count. The site's
/// values are fixed from start-up on; the few bytes are leaked once.
fn make_static(value: &mut HeaderValue) {
    // `to_str` and `from_static` accept the same bytes: visible ASCII, spaces and tabs.
    if let Ok(text) = value.to_str() {
        *value = HeaderValue::from_static(Box::leak(Box::from(text)));
    }
}

/// A response with a prebuilt header map.
fn prebuilt(status: StatusCode, body: ResponseBody, headers: &HeaderMap) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers.clone();
    response
}

impl Asset {
    /// `rep`'s 200 headers to a GET: the validators, the entity headers, then the defaults
    /// and rules, which win. No `Content-Length`: the connection layer writes the body's
    /// exact length (hyper for HTTP/1.1 and HTTP/2, `conn/http3.rs` for HTTP/3), one
    /// header fewer to clone and encode per response.
    fn ok_headers<'a>(&self, rep: &'a Representation) -> &'a HeaderMap {
        rep.ok.get_or_init(|| self.full_headers(rep, false))
    }

    /// `rep`'s 200 headers to a HEAD: as to a GET, with the `Content-Length` of the body
    /// a GET gets, since a HEAD response has none to measure.
    fn ok_to_head_headers<'a>(&self, rep: &'a Representation) -> &'a HeaderMap {
        rep.ok_to_head.get_or_init(|| self.full_headers(rep, true))
    }

    fn full_headers(&self, rep: &Representation, content_length: bool) -> HeaderMap {
        let mut h = HeaderMap::new();
        self.entity_headers(&mut h, rep);
        if content_length {
            h.insert(CONTENT_LENGTH, rep.content_length.clone());
        }
        self.finish(&mut h);
        h.values_mut().for_each(make_static);
        h
    }

    /// `rep`'s 304 headers: the validators, then the defaults and rules.
    fn not_modified_headers<'a>(&self, rep: &'a Representation) -> &'a HeaderMap {
        rep.not_modified.get_or_init(|| {
            let mut h = HeaderMap::new();
            self.validators(&mut h, rep);
            self.finish(&mut h);
            h.values_mut().for_each(make_static);
            h
        })
    }

    fn response(&self, status: StatusCode, body: ResponseBody, headers: usize) -> Response {
        let mut response = Response::new(body);
        *response.status_mut() = status;
        response.headers_mut().reserve(headers);
        response
    }

    /// 206 with bytes `start..=end` of the representation, still borrowed from the binary.
    fn partial(&self, rep: &Representation, start: u64, end: u64) -> Response {
        let len = rep.bytes.len();
        // `range::parse` keeps both bounds inside the representation.
        let slice = rep
            .bytes
            .get(start as usize..=end as usize)
            .unwrap_or_default();
        let body = ResponseBody::from_static(slice);
        let mut response = self.response(StatusCode::PARTIAL_CONTENT, body, 10);
        self.entity_headers(response.headers_mut(), rep);
        let h = response.headers_mut();
        h.insert(CONTENT_LENGTH, HeaderValue::from(slice.len()));
        h.insert(
            CONTENT_RANGE,
            content_range(&format!("bytes {start}-{end}/{len}")),
        );
        response
    }

    /// 416: the range lies outside the representation; say how long it is.
    fn unsatisfiable(&self, rep: &Representation) -> Response {
        let mut response =
            self.response(StatusCode::RANGE_NOT_SATISFIABLE, ResponseBody::empty(), 5);
        self.validators(response.headers_mut(), rep);
        let len = rep.bytes.len();
        response
            .headers_mut()
            .insert(CONTENT_RANGE, content_range(&format!("bytes */{len}")));
        response
    }

    /// What a 304 (and a 416) carries: the validators and caching headers, no entity.
    fn validators(&self, h: &mut HeaderMap, rep: &Representation) {
        h.insert(ETAG, rep.etag_value.clone());
        h.insert(CACHE_CONTROL, self.cache_control.clone());
        if let Some((_, value)) = &self.last_modified {
            h.insert(LAST_MODIFIED, value.clone());
        }
        if !self.variants.is_empty() {
            h.insert(VARY, HeaderValue::from_static("accept-encoding"));
        }
    }

    /// The headers from the defaults and the rules, last so they win.
    fn finish(&self, h: &mut HeaderMap) {
        h.reserve(self.extra.len());
        for (name, value) in self.extra.iter() {
            h.insert(name.clone(), value.clone());
        }
    }

    /// Everything a 200 or 206 carries except Content-Length.
    fn entity_headers(&self, h: &mut HeaderMap, rep: &Representation) {
        self.validators(h, rep);
        h.insert(CONTENT_TYPE, self.content_type.clone());
        h.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        if let Some(encoding) = &rep.encoding {
            h.insert(CONTENT_ENCODING, encoding.clone());
        }
    }
}

fn content_range(text: &str) -> HeaderValue {
    // Digits, spaces, `*`, `-` and `/` only: always a valid header value.
    HeaderValue::from_str(text).unwrap_or(HeaderValue::from_static("bytes */0"))
}

/// rust-embed hands out `Cow::Borrowed(&'static [u8])` for embedded files (release, and
/// debug with `debug-embed`), so this is free. An owned buffer (never expected) is leaked
/// once at startup so the request path still sees `&'static`.
fn leak(data: Cow<'static, [u8]>) -> &'static [u8] {
    match data {
        Cow::Borrowed(bytes) => bytes,
        Cow::Owned(bytes) => Box::leak(bytes.into_boxed_slice()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site() -> Site {
        Site::new(
            CacheConfig::default(),
            &ResponseHeaders::new(Default::default(), &[]),
        )
    }

    #[test]
    fn embedded_bytes_are_borrowed_from_the_binary() {
        // Zero-copy serving depends on this: `Bytes::from_static` needs `&'static`.
        let file = Originals::get("index.html").expect("demo site has index.html");
        assert!(matches!(file.data, Cow::Borrowed(_)));
    }

    #[test]
    fn directory_keys_reach_their_index() {
        let site = site();
        for key in [
            "",
            "blog",
            "blog/",
            "blog/first-post",
            "blog/first-post/",
            "blog/index.html",
        ] {
            let r = site.respond(key, &Method::GET, &RequestHeaders::of(&HeaderMap::new()));
            assert_eq!(r.map(|(r, _)| r.status()), Some(StatusCode::OK), "{key:?}");
        }
        for key in ["nope", "style.css/", "blog//", "index.htm"] {
            assert!(
                site.respond(key, &Method::GET, &RequestHeaders::of(&HeaderMap::new()))
                    .is_none(),
                "{key:?}"
            );
        }
    }

    #[test]
    fn table_rows_match_the_embed() {
        for entry in table::ENTRIES {
            let file = Originals::get(entry.key).expect("every row is embedded");
            assert_eq!(file.data.len() as u64, entry.identity.len, "{}", entry.key);
            for v in entry.variants {
                let file = Variants::get(v.file).expect("every variant is embedded");
                assert_eq!(file.data.len() as u64, v.rep.len, "{}", v.file);
                assert_ne!(v.rep.etag, entry.identity.etag);
            }
        }
    }

    #[test]
    fn cache_classes() {
        let class = |key: &str| {
            table::ENTRIES
                .iter()
                .find(|e| e.key == key)
                .map(|e| e.class)
        };
        assert_eq!(class("index.html"), Some(CacheClass::Html));
        assert_eq!(
            class("assets/app.3f2a9c1e.css"),
            Some(CacheClass::Immutable)
        );
        assert_eq!(class("style.css"), Some(CacheClass::Default));
    }

    #[test]
    fn paths_are_sorted_request_targets() {
        let paths: Vec<_> = site().paths().collect();
        assert!(paths.windows(2).all(|w| w[0] < w[1]));
        assert!(paths.iter().all(|p| p.starts_with('/') && p.is_ascii()));
        assert!(paths.contains(&"/caf%C3%A9.html"));
        assert!(paths.contains(&"/blog/first-post/index.html"));
    }
}
