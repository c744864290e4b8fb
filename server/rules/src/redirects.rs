//! `_redirects`: the site's own redirects and rewrites, in file order.
//!
//! ```text
//! # from                to                       [status][!]
//! /home                 /
//! /blog/*               /news/:splat             302
//! /news/:year/:slug     /posts/:year-:slug       308
//! /app/*                /app/index.html          200
//! /old.html             https://example.org/     301!
//! ```
//!
//! - Fields are separated by spaces or tabs. A line whose first field starts with `#`
//!   is a comment, as is everything from a field that starts with `#`.
//! - `from` is a path pattern ([`crate::pattern`]). `to` is a path or an `http(s)://`
//!   URL, in which `:name` and `:splat` are replaced by what `from` matched.
//! - The status is 301 (the default), 302, 307, 308, or 200: a rewrite, which answers
//!   with another file of this site at the requested path (`to` must then be a path).
//! - `!` after the status forces the rule: it applies even where a file exists. Without
//!   it, files win, as on Netlify.
//! - Netlify's conditions (query parameters, `Country=`, `Language=`, `Role=`), proxying
//!   to another host with 200, and statuses such as 404 are not supported: such a line is
//!   an error, not a rule silently read another way.

use crate::pattern::{self, Pattern};

/// One rule, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub line: usize,
    pub from_text: String,
    pub from: Pattern,
    pub to: String,
    pub status: u16,
    pub force: bool,
}

/// A line that is not `_redirects` syntax. Displays as `LINE: reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub line: usize,
    pub reason: String,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.line, self.reason)
    }
}

/// Statuses a rule may carry. 301 is Netlify's default.
pub const STATUSES: [u16; 5] = [301, 302, 307, 308, 200];

/// Parses the whole file; the first bad line is the error.
pub fn parse(text: &str) -> Result<Vec<Rule>, Error> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut rules = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let err = |reason: String| Error { line, reason };
        let fields: Vec<&str> = raw
            .split([' ', '\t', '\r'])
            .filter(|f| !f.is_empty())
            .take_while(|f| !f.starts_with('#'))
            .collect();
        let (from_text, to, status) = match fields.as_slice() {
            [] => continue,
            [from, to] => (*from, *to, None),
            [from, to, status] => (*from, *to, Some(*status)),
            [_] => {
                return Err(err(
                    "a rule is `from to [status][!]`; this line has no target".into(),
                ));
            }
            [_, second, ..] if second.contains('=') => {
                return Err(err(format!(
                    "{second:?}: query conditions are not supported; only `from to [status][!]`"
                )));
            }
            [_, _, _, extra, ..] => {
                return Err(err(format!(
                    "{extra:?}: conditions (Country=, Language=, Role=) and extra fields are not supported; only `from to [status][!]`"
                )));
            }
        };
        let from = Pattern::parse(from_text).map_err(err)?;
        let (status, force) = match status {
            None => (301, false),
            Some(text) => {
                let (digits, force) = match text.strip_suffix('!') {
                    Some(digits) => (digits, true),
                    None => (text, false),
                };
                let status = digits
                    .parse::<u16>()
                    .ok()
                    .filter(|s| STATUSES.contains(s))
                    .ok_or_else(|| {
                        err(format!(
                            "status {text:?}: must be 301, 302, 307, 308 or 200, optionally followed by !"
                        ))
                    })?;
                (status, force)
            }
        };
        check_target(to, status).map_err(err)?;
        if let Some(name) = pattern::unbound(to, &from) {
            return Err(err(format!(
                "{to:?} uses {name}, which {from_text:?} does not bind"
            )));
        }
        rules.push(Rule {
            line,
            from_text: from_text.to_owned(),
            from,
            to: to.to_owned(),
            status,
            force,
        });
    }
    Ok(rules)
}

fn check_target(to: &str, status: u16) -> Result<(), String> {
    if let Some(c) = to.chars().find(|c| c.is_control()) {
        return Err(format!("{c:?} in the target"));
    }
    let url = to.starts_with("https://") || to.starts_with("http://");
    if status == 200 {
        if !to.starts_with('/') || to.starts_with("//") {
            return Err(format!(
                "{to:?}: a 200 rewrite serves a file of this site, so its target is a path (/...); proxying is not supported"
            ));
        }
        if to.contains(['?', '#']) {
            return Err(format!("{to:?}: a rewrite names a file, without ? or #"));
        }
    } else if !(to.starts_with('/') || url) {
        return Err(format!(
            "{to:?}: the target is a path (/...) or an http:// or https:// URL"
        ));
    }
    if url
        && to
            .split_once("://")
            .is_some_and(|(_, rest)| rest.is_empty() || rest.starts_with('/'))
    {
        return Err(format!("{to:?}: the URL has no host"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    // The shapes of Netlify's documentation: default status, explicit statuses, splats,
    // placeholders, a rewrite, a forced rule, comments.
    const DOC: &str = "\
# Redirects from what the browser requests to what we serve
/home              /
/blog/my-post.php  /blog/my-post  # a trailing comment
/news              /blog                302
/cuties            https://www.petsofnetlify.com
/news/*            /blog/:splat
/news/:year/:month/:date/:slug  /blog/:year/:month/:date/:slug  307
/*                 /index.html          200
/app/*             /app/index.html      200!
/old               /new                 308!
";

    #[test]
    fn documented_examples_parse() {
        let rules = parse(DOC).expect("valid");
        let summary: Vec<(usize, &str, &str, u16, bool)> = rules
            .iter()
            .map(|r| {
                (
                    r.line,
                    r.from_text.as_str(),
                    r.to.as_str(),
                    r.status,
                    r.force,
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (2, "/home", "/", 301, false),
                (3, "/blog/my-post.php", "/blog/my-post", 301, false),
                (4, "/news", "/blog", 302, false),
                (5, "/cuties", "https://www.petsofnetlify.com", 301, false),
                (6, "/news/*", "/blog/:splat", 301, false),
                (
                    7,
                    "/news/:year/:month/:date/:slug",
                    "/blog/:year/:month/:date/:slug",
                    307,
                    false
                ),
                (8, "/*", "/index.html", 200, false),
                (9, "/app/*", "/app/index.html", 200, true),
                (10, "/old", "/new", 308, true),
            ]
        );
    }

    #[test]
    fn bad_lines_name_their_line_and_reason() {
        for (text, line, why) in [
            ("/a\n", 1, "no target"),
            ("/a /b 404\n", 1, "must be 301"),
            ("/a /b 30x!\n", 1, "must be 301"),
            ("/a /b 301 Country=us\n", 1, "not supported"),
            ("/store id=:id /b 301\n", 1, "query conditions"),
            ("\n# c\na /b\n", 3, "start with /"),
            ("/a b\n", 1, "the target is a path"),
            (
                "/a https://x.example/ 200\n",
                1,
                "proxying is not supported",
            ),
            ("/a /b?x 200\n", 1, "without ? or #"),
            ("/a/:id /b/:ide\n", 1, ":ide"),
            ("/a https:///x\n", 1, "no host"),
            ("https://old.example/* /:splat 301!\n", 1, "start with /"),
        ] {
            let err = parse(text).expect_err(text);
            assert_eq!(err.line, line, "{text:?}: {err}");
            assert!(err.reason.contains(why), "{text:?}: {err}");
        }
    }

    proptest! {
        /// Any text parses or names a line that exists; never a panic.
        #[test]
        fn any_text_parses_or_names_a_real_line(text in "[ -~\t\n/:*#!]{0,120}") {
            match parse(&text) {
                Ok(rules) => for r in rules {
                    prop_assert!(STATUSES.contains(&r.status));
                },
                Err(e) => prop_assert!(e.line >= 1 && e.line <= text.lines().count()),
            }
        }

        /// Written rules come back as they were written.
        #[test]
        fn written_rules_parse_back(
            rules in prop::collection::vec(
                ("[a-z]{1,8}", "[a-z]{0,8}", prop::sample::select(STATUSES.to_vec()), any::<bool>()),
                1..6,
            )
        ) {
            let text: String = rules
                .iter()
                .map(|(from, to, status, force)| {
                    format!("/{from}\t /{to}  {status}{}\n", if *force { "!" } else { "" })
                })
                .collect();
            let parsed = parse(&text).expect("generated rules are valid");
            prop_assert_eq!(parsed.len(), rules.len());
            for (p, (from, to, status, force)) in parsed.iter().zip(&rules) {
                prop_assert_eq!(&p.from_text, &format!("/{from}"));
                prop_assert_eq!(&p.to, &format!("/{to}"));
                prop_assert_eq!(p.status, *status);
                prop_assert_eq!(p.force, *force);
            }
        }
    }
}
