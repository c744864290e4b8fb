//! Response headers beyond what each step computes: the safe defaults, the site's
//! `_headers` (resolved per file by `build.rs`) and `[headers]` from the config.
//!
//! Everything is resolved once at start-up. A file's list is built into its asset
//! ([`ResponseHeaders::for_file`], called by `Site::new`), so serving it copies prebuilt
//! values. Every other response (404, redirects, 400, 405, 503, 500) is finished by
//! [`ResponseHeaders::complete`], the outermost step of the main listener, with the
//! headers of rules that match every path: the one check it makes is whether the
//! response already carries `X-Content-Type-Options`, which every asset's list has.
//!
//! Precedence, lowest first: servy's own headers (`Cache-Control`, `Content-Type`), the
//! defaults, `_headers` (repeated names joined by `, `), `[headers]` (joined the same way
//! across its patterns, and replacing a `_headers` value of the same name).

use crate::held_body::Response;
use axum::http::header::X_CONTENT_TYPE_OPTIONS;
use axum::http::{HeaderMap, HeaderName, HeaderValue};

use crate::config::HeadersConfig;
use servy_rules::pattern::Pattern;

/// One response header, ready to copy into a response.
pub type Header = (HeaderName, HeaderValue);

/// Safe on every static site: a browser never guesses a type other than the one sent
/// (each asset's `Content-Type` comes from its name at build time).
const DEFAULTS: [(&str, &str); 1] = [("x-content-type-options", "nosniff")];

/// The resolved rules, built once in `main`.
pub struct ResponseHeaders {
    /// `[headers]`, in the config's (sorted) pattern order.
    config: Vec<(Pattern, Vec<Header>)>,
    /// What a response that is not a file gets: the defaults, then `_headers` and
    /// `[headers]` rules whose pattern is `/*`.
    every: Box<[Header]>,
}

impl ResponseHeaders {
    /// `site_every` is the build's combined `_headers` for `/*` rules. The config has
    /// been validated (`config/validate.rs`); an entry that still fails to convert is logged and
    /// skipped rather than taking the site down.
    pub fn new(config: HeadersConfig, site_every: &[(&str, &str)]) -> ResponseHeaders {
        let mut rules = Vec::with_capacity(config.0.len());
        for (pattern_text, headers) in config.0 {
            let Ok(pattern) = Pattern::parse(&pattern_text) else {
                tracing::error!(pattern = pattern_text, "invalid [headers] pattern; skipped");
                continue;
            };
            let headers = headers
                .iter()
                .filter_map(|(name, value)| header(name, value))
                .collect();
            rules.push((pattern, headers));
        }
        let mut responses = ResponseHeaders {
            config: rules,
            every: Box::new([]),
        };
        responses.every = responses.resolve(site_every, |p| p.matches_everything());
        responses
    }

    /// A file's headers: the defaults, its `_headers` (`built`), then the `[headers]`
    /// patterns that match any of its request keys (`blog/index.html`, `blog/`).
    pub fn for_file(&self, built: &[(&str, &str)], keys: &[&str]) -> Box<[Header]> {
        self.resolve(built, |p| keys.iter().any(|k| p.matches(k).is_some()))
    }

    fn resolve(&self, built: &[(&str, &str)], applies: impl Fn(&Pattern) -> bool) -> Box<[Header]> {
        let mut out: Vec<Header> = DEFAULTS.iter().filter_map(|(n, v)| header(n, v)).collect();
        for (name, value) in built.iter().filter_map(|(n, v)| header(n, v)) {
            replace(&mut out, name, value);
        }
        let mut configured: Vec<(HeaderName, String)> = Vec::new();
        for (_, headers) in self.config.iter().filter(|(p, _)| applies(p)) {
            for (name, value) in headers {
                let value = value.to_str().unwrap_or_default();
                match configured.iter_mut().find(|(n, _)| n == name) {
                    Some((_, joined)) => {
                        joined.push_str(", ");
                        joined.push_str(value);
                    }
                    None => configured.push((name.clone(), value.to_owned())),
                }
            }
        }
        for (name, value) in configured {
            if let Ok(value) = HeaderValue::try_from(value) {
                replace(&mut out, name, value);
            }
        }
        out.into_boxed_slice()
    }

    /// Finishes a response that no file built: adds the headers every path gets. An
    /// asset's response already has them (and its own), so it passes untouched.
    pub fn complete(&self, mut response: Response) -> Response {
        self.complete_map(response.headers_mut());
        response
    }

    /// [`ResponseHeaders::complete`] on a header map alone.
    pub fn complete_map(&self, h: &mut HeaderMap) {
        if !h.contains_key(X_CONTENT_TYPE_OPTIONS) {
            h.reserve(self.every.len());
            for (name, value) in self.every.iter() {
                h.insert(name.clone(), value.clone());
            }
        }
    }
}

fn header(name: &str, value: &str) -> Option<Header> {
    let parsed = HeaderName::try_from(name)
        .ok()
        .zip(HeaderValue::try_from(value).ok());
    if parsed.is_none() {
        tracing::error!(name, value, "invalid response header; skipped");
    }
    parsed
}

fn replace(list: &mut Vec<Header>, name: HeaderName, value: HeaderValue) {
    match list.iter_mut().find(|(n, _)| *n == name) {
        Some((_, old)) => *old = value,
        None => list.push((name, value)),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use crate::held_body::ResponseBody;

    use super::*;

    fn config(rules: &[(&str, &[(&str, &str)])]) -> HeadersConfig {
        HeadersConfig(
            rules
                .iter()
                .map(|(p, hs)| {
                    let hs: BTreeMap<String, String> = hs
                        .iter()
                        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                        .collect();
                    ((*p).to_owned(), hs)
                })
                .collect(),
        )
    }

    fn pairs(list: &[Header]) -> Vec<(&str, &str)> {
        list.iter()
            .map(|(n, v)| (n.as_str(), v.to_str().unwrap_or("?")))
            .collect()
    }

    #[test]
    fn nosniff_is_the_default_everywhere() {
        let r = ResponseHeaders::new(HeadersConfig::default(), &[]);
        assert_eq!(pairs(&r.every), vec![("x-content-type-options", "nosniff")]);
        assert_eq!(
            pairs(&r.for_file(&[], &["a.html"])),
            vec![("x-content-type-options", "nosniff")]
        );
    }

    #[test]
    fn config_joins_across_patterns_and_replaces_the_sites_value() {
        let r = ResponseHeaders::new(
            config(&[
                ("/*", &[("X-Frame-Options", "DENY"), ("X-Tag", "all")]),
                ("/blog/*", &[("X-Tag", "blog")]),
            ]),
            &[("x-frame-options", "SAMEORIGIN")],
        );
        assert_eq!(
            pairs(&r.every),
            vec![
                ("x-content-type-options", "nosniff"),
                ("x-frame-options", "DENY"),
                ("x-tag", "all"),
            ]
        );
        let built = [("x-frame-options", "SAMEORIGIN"), ("x-site", "1")];
        assert_eq!(
            pairs(&r.for_file(&built, &["blog/index.html", "blog/"])),
            vec![
                ("x-content-type-options", "nosniff"),
                ("x-frame-options", "DENY"),
                ("x-site", "1"),
                ("x-tag", "all, blog"),
            ]
        );
    }

    #[test]
    fn complete_adds_the_every_path_headers_only_where_missing() {
        let r = ResponseHeaders::new(
            config(&[("/*", &[("Referrer-Policy", "no-referrer")])]),
            &[],
        );
        let plain = r.complete(Response::new(ResponseBody::empty()));
        assert_eq!(plain.headers()["x-content-type-options"], "nosniff");
        assert_eq!(plain.headers()["referrer-policy"], "no-referrer");

        let mut asset = Response::new(ResponseBody::empty());
        asset
            .headers_mut()
            .insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        let asset = r.complete(asset);
        assert!(
            asset.headers().get("referrer-policy").is_none(),
            "an asset's list is its own"
        );
    }
}
