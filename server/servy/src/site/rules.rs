//! The site's `_redirects`: parsed and checked by `build.rs`, resolved here at start-up.
//!
//! Where the rules sit in the dispatch, and why:
//!
//! 1. A **forced** rule (`301!`) answers before a file: at start-up, each file path whose
//!    first matching rule is forced is withdrawn from the site ([`SiteRules::new`]).
//! 2. **Files** win over every other rule, as on Netlify.
//! 3. **Exact** paths: each path a literal rule names (and each withdrawn file path)
//!    maps to the first rule in file order that matches it. One hash lookup.
//! 4. **Short links** from the URL-hosted file (`short_links/`). They change at run time;
//!    site rules change with a deploy, reviewed with the pages. So a short link never
//!    takes over a path the site names exactly, but it does win over a site *pattern*:
//!    a link is one exact path, a pattern is a fallback (`/* /index.html 200` must not
//!    swallow every short link).
//! 5. **Patterns** (placeholders, splats), in file order: tried only on a request that
//!    found nothing above, so they cost nothing on the paths that are served.
//!
//! A redirect carries `Location` (with the request's query appended, as Netlify does)
//! and `Cache-Control: no-cache` (a rule changes with a deploy, like HTML). A 200 is a
//! rewrite: the target file answers at the requested path, with its own headers.

use std::collections::HashMap;
use std::sync::Arc;

use axum::http::header::{CACHE_CONTROL, CONTENT_LENGTH, LOCATION};
use axum::http::{HeaderValue, Method, StatusCode};
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};

use crate::held_body::{Response, ResponseBody};
use crate::path;
use crate::request_headers::RequestHeaders;
use crate::served::Served;
use crate::site::Site;
use servy_rules::pattern::{self, Captures, Pattern};

/// The build-time tables (`$OUT_DIR/site_rules.rs`).
mod table {
    /// One `_redirects` line, as `build.rs` checked it.
    pub struct RuleEntry {
        pub line: usize,
        pub from: &'static str,
        pub to: &'static str,
        pub status: u16,
        pub force: bool,
    }

    include!(concat!(env!("OUT_DIR"), "/site_rules.rs"));
}

/// `_headers` of the rules that match every path, for responses that are not a file.
pub use table::EVERY_PATH_HEADERS;

/// What is left to encode in a `Location` built from a template and captures: bytes a
/// header value cannot carry, and those that would end the path early.
const LOCATION_ENCODE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'<')
    .add(b'>')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'#')
    .add(b'?');

/// What a whole authored target needs encoded: only what a header cannot carry.
const NOT_VISIBLE_ASCII: &AsciiSet = &CONTROLS.add(b' ').add(b'"');

/// The compiled rules, built once in `main` and never changed.
pub struct SiteRules {
    /// Step 3: trimmed key (`old`, `blog/2020`, `""`) → the answer, fully built.
    exact: HashMap<Box<str>, Answer>,
    /// Step 5: rules with placeholders or a splat, in file order.
    patterns: Vec<Rule>,
}

struct Rule {
    from: Pattern,
    to: &'static str,
    status: StatusCode,
}

enum Answer {
    Redirect {
        status: StatusCode,
        target: Arc<str>,
        location: HeaderValue,
    },
    /// The normalised key of the file to serve.
    Rewrite(Box<str>),
}

/// What a rule needs from the request: a rewrite answers it as the file would.
#[derive(Clone, Copy)]
pub struct Asked<'a> {
    pub method: &'a Method,
    pub headers: &'a RequestHeaders<'a>,
    /// Appended to a redirect's target, as Netlify does.
    pub query: Option<&'a str>,
}

/// What a rule says about a request.
pub enum Outcome {
    Response(Response, Served),
    /// The rule is a rewrite to a file the site no longer has under that key (only
    /// reachable from a pattern with placeholders): the request is a 404.
    Missing,
}

impl SiteRules {
    /// Compiles the build's rules against `site`, withdrawing the file paths that a
    /// forced rule takes over.
    pub fn new(site: &mut Site) -> SiteRules {
        let rules: Vec<(Rule, bool)> = table::REDIRECT_RULES
            .iter()
            .filter_map(|entry| {
                let from = Pattern::parse(entry.from)
                    .inspect_err(|e| {
                        tracing::error!(line = entry.line, e, "_redirects rule skipped")
                    })
                    .ok()?;
                let status = StatusCode::from_u16(entry.status).ok()?;
                Some((
                    Rule {
                        from,
                        to: entry.to,
                        status,
                    },
                    entry.force,
                ))
            })
            .collect();

        let first_match = |key: &str| -> Option<(&Rule, bool, String)> {
            rules.iter().find_map(|(rule, force)| {
                let captures = rule.from.matches(key)?;
                Some((rule, *force, rule.target(&captures)))
            })
        };
        let mut exact = HashMap::new();
        let mut claim = |key: &str, rule: &Rule, target: String| {
            exact
                .entry(key.trim_matches('/').into())
                .or_insert_with(|| rule.answer(target));
        };
        let mut withdrawn = Vec::new();
        for key in site.keys() {
            if let Some((rule, true, target)) = first_match(key) {
                claim(key, rule, target);
                withdrawn.push(key);
            }
        }
        for key in withdrawn {
            site.withdraw(key);
        }
        for (rule, _) in &rules {
            if let Some(key) = rule.from.literal_key() {
                if let Some((first, _, target)) = first_match(&key) {
                    claim(&key, first, target);
                }
            }
        }
        let patterns = rules
            .into_iter()
            .filter(|(rule, _)| !rule.from.is_literal())
            .map(|(rule, _)| rule)
            .collect();
        SiteRules { exact, patterns }
    }

    /// Step 3 of the order above: a path a rule names exactly.
    pub fn exact(&self, site: &Site, key: &str, asked: Asked<'_>) -> Option<Outcome> {
        if self.exact.is_empty() {
            return None;
        }
        let answer = self.exact.get(key.trim_matches('/'))?;
        Some(match answer {
            Answer::Redirect {
                status,
                target,
                location,
            } => {
                let location = match asked.query {
                    Some(q) if !q.is_empty() => with_query(target, q),
                    _ => location.clone(),
                };
                Outcome::Response(
                    redirect(*status, location),
                    Served::Redirect(target.clone()),
                )
            }
            Answer::Rewrite(file) => rewrite(site, file, asked),
        })
    }

    /// Step 5: the first pattern rule that matches, in file order.
    pub fn pattern(&self, site: &Site, key: &str, asked: Asked<'_>) -> Option<Outcome> {
        self.patterns.iter().find_map(|rule| {
            let captures = rule.from.matches(key)?;
            let target = rule.target(&captures);
            Some(if rule.status == StatusCode::OK {
                match path::normalise(&target) {
                    Ok(file) => rewrite(site, &file, asked),
                    Err(_) => Outcome::Missing,
                }
            } else {
                let location = match asked.query {
                    Some(q) if !q.is_empty() => with_query(&target, q),
                    _ => header_value(&target),
                };
                Outcome::Response(
                    redirect(rule.status, location),
                    Served::Redirect(target.into()),
                )
            })
        })
    }

    /// Rules compiled (exact paths, patterns), for the start-up log.
    pub fn len(&self) -> (usize, usize) {
        (self.exact.len(), self.patterns.len())
    }
}

impl Rule {
    /// `to` with the captures substituted, each percent-encoded where a URL needs it.
    fn target(&self, captures: &Captures<'_>) -> String {
        let encoded: Vec<(&str, String)> = captures
            .iter()
            .map(|(name, value)| {
                (
                    *name,
                    utf8_percent_encode(value, LOCATION_ENCODE).to_string(),
                )
            })
            .collect();
        let borrowed: Captures<'_> = encoded.iter().map(|(n, v)| (*n, v.as_str())).collect();
        pattern::substitute(self.to, &borrowed)
    }

    fn answer(&self, target: String) -> Answer {
        if self.status == StatusCode::OK {
            let file = path::normalise(&target)
                .map(|k| k.into_owned())
                .unwrap_or_default();
            Answer::Rewrite(file.into())
        } else {
            Answer::Redirect {
                status: self.status,
                location: header_value(&target),
                target: target.into(),
            }
        }
    }
}

fn rewrite(site: &Site, file: &str, asked: Asked<'_>) -> Outcome {
    match site.rewrite(file, asked.method, asked.headers) {
        Some((response, served)) => Outcome::Response(response, served),
        None => Outcome::Missing,
    }
}

fn redirect(status: StatusCode, location: HeaderValue) -> Response {
    let mut response = Response::new(ResponseBody::empty());
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(LOCATION, location);
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
    response
}

/// A target as a header value; the parser refused control characters, and anything else
/// outside visible ASCII is percent-encoded here.
fn header_value(target: &str) -> HeaderValue {
    let encoded;
    let text = if target.bytes().all(|b| b.is_ascii_graphic()) {
        target
    } else {
        encoded = utf8_percent_encode(target, NOT_VISIBLE_ASCII).to_string();
        &encoded
    };
    HeaderValue::try_from(text).unwrap_or(HeaderValue::from_static("/"))
}

/// The request's query joins the target's (`?` or `&`), before any fragment.
fn with_query(target: &str, query: &str) -> HeaderValue {
    let (base, fragment) = target.split_at(target.find('#').unwrap_or(target.len()));
    let sep = if base.contains('?') { '&' } else { '?' };
    header_value(&format!("{base}{sep}{query}{fragment}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_location_is_visible_ascii() {
        assert_eq!(header_value("/blog/"), "/blog/");
        assert_eq!(header_value("/caf\u{e9}.html"), "/caf%C3%A9.html");
        assert_eq!(
            header_value("https://x.example/a b?q=1#f"),
            "https://x.example/a%20b?q=1#f"
        );
    }

    #[test]
    fn the_query_joins_before_the_fragment() {
        assert_eq!(with_query("/a", "x=1"), "/a?x=1");
        assert_eq!(with_query("/a?b=2#top", "x=1"), "/a?b=2&x=1#top");
    }

    #[test]
    fn captures_are_encoded_so_they_cannot_end_the_path() {
        let rule = Rule {
            from: Pattern::parse("/news/:year/*").expect("valid"),
            to: "/blog/:splat?y=:year",
            status: StatusCode::MOVED_PERMANENTLY,
        };
        // Decoded keys may hold what `%20`, `%3F` and `%23` stood for.
        let captures = rule
            .from
            .matches("news/20?4/a b/\u{fc}#x")
            .expect("matches");
        assert_eq!(rule.target(&captures), "/blog/a%20b/%C3%BC%23x?y=20%3F4");
    }
}
