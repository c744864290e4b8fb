//! `_headers`: response headers by path pattern.
//!
//! ```text
//! # a comment
//! /*
//!   X-Frame-Options: DENY
//!   Referrer-Policy: strict-origin-when-cross-origin
//! /blog/:year/:slug
//!   Cache-Control: public, max-age=600
//! ```
//!
//! - A line that starts with `/` (in the first column) opens a rule: its path pattern
//!   ([`crate::pattern`]). The indented `Name: value` lines under it are its headers.
//! - Blank lines and lines whose first non-blank character is `#` are ignored.
//! - A name given twice, in one rule or in several rules that match the same path, is
//!   sent once with the values joined by `, `, as Netlify documents for multi-value
//!   headers ([`combine`]).
//! - Anything else is an error naming the line: a header before any path, an indented
//!   path, a line without `:`, a bad name or value ([`crate::check_header`]).

use crate::header_line::check_header;
use crate::pattern::Pattern;

/// One rule: a pattern and its headers, names in lower case, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub line: usize,
    pub pattern_text: String,
    pub pattern: Pattern,
    pub headers: Vec<(String, String)>,
}

/// A line that is not `_headers` syntax. Displays as `LINE: reason`.
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

/// Parses the whole file; the first bad line is the error.
pub fn parse(text: &str) -> Result<Vec<Rule>, Error> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut rules: Vec<Rule> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let err = |reason: String| Error { line, reason };
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indented = raw.starts_with([' ', '\t']);
        if !indented {
            if !raw.starts_with('/') {
                return Err(err(format!(
                    "{trimmed:?}: a rule starts with a path (/...) in the first column, and its headers are indented under it"
                )));
            }
            let pattern = Pattern::parse(trimmed).map_err(err)?;
            rules.push(Rule {
                line,
                pattern_text: trimmed.to_owned(),
                pattern,
                headers: Vec::new(),
            });
            continue;
        }
        if trimmed.starts_with('/') && !trimmed.contains(": ") {
            return Err(err(format!(
                "{trimmed:?}: a path must start in the first column"
            )));
        }
        let Some(rule) = rules.last_mut() else {
            return Err(err(format!("{trimmed:?}: a header before any path")));
        };
        let Some((name, value)) = trimmed.split_once(':') else {
            return Err(err(format!("{trimmed:?}: a header line is `Name: value`")));
        };
        let value = value.trim();
        let name = check_header(name.trim_end(), value).map_err(err)?;
        rule.headers.push((name, value.to_owned()));
    }
    Ok(rules)
}

/// The headers of every rule that matches any of `keys` (one file's request paths, such
/// as `blog/index.html` and `blog/`), combined: one entry per name, first-seen order,
/// repeated values joined by `, `.
pub fn combine<'r>(rules: &'r [Rule], keys: &[&str]) -> Vec<(&'r str, String)> {
    let mut out: Vec<(&str, String)> = Vec::new();
    for rule in rules {
        if !keys.iter().any(|k| rule.pattern.matches(k).is_some()) {
            continue;
        }
        for (name, value) in &rule.headers {
            match out.iter_mut().find(|(n, _)| n == name) {
                Some((_, joined)) => {
                    joined.push_str(", ");
                    joined.push_str(value);
                }
                None => out.push((name, value.clone())),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    // The shapes of Netlify's documentation: a page rule with two headers, a wildcard
    // rule, a multi-value header on several lines, comments.
    const DOC: &str = "\
# a comment line
/templates/index.html
  # and an indented one
  X-Frame-Options: DENY
  X-XSS-Protection: 1; mode=block

/templates/*
  Cache-Control: public, max-age=600
/*
  Cache-Control: max-age=0
  Cache-Control: no-cache
  Cache-Control: no-store
";

    #[test]
    fn documented_examples_parse() {
        let rules = parse(DOC).expect("valid");
        assert_eq!(rules.len(), 3);
        assert_eq!(rules[0].line, 2);
        assert_eq!(rules[0].pattern_text, "/templates/index.html");
        assert_eq!(
            rules[0].headers,
            vec![
                ("x-frame-options".to_owned(), "DENY".to_owned()),
                ("x-xss-protection".to_owned(), "1; mode=block".to_owned()),
            ]
        );
        assert_eq!(rules[2].headers.len(), 3);
    }

    #[test]
    fn repeated_names_combine_with_commas_across_matching_rules() {
        let rules = parse(DOC).expect("valid");
        let headers = combine(&rules, &["templates/index.html"]);
        assert_eq!(
            headers,
            vec![
                ("x-frame-options", "DENY".to_owned()),
                ("x-xss-protection", "1; mode=block".to_owned()),
                (
                    "cache-control",
                    "public, max-age=600, max-age=0, no-cache, no-store".to_owned()
                ),
            ]
        );
        assert_eq!(
            combine(&rules, &["other.html"]),
            vec![("cache-control", "max-age=0, no-cache, no-store".to_owned())]
        );
    }

    #[test]
    fn a_rule_matches_through_any_of_a_files_paths() {
        let rules = parse("/:year/:slug\n  X-Post: yes\n").expect("valid");
        assert!(combine(&rules, &["2024/hello/index.html"]).is_empty());
        assert_eq!(
            combine(&rules, &["2024/hello/index.html", "2024/hello/"]),
            vec![("x-post", "yes".to_owned())]
        );
    }

    #[test]
    fn bad_lines_name_their_line_and_reason() {
        for (text, line, why) in [
            ("  X-A: b\n", 1, "before any path"),
            ("/a\n  X-A b\n", 2, "Name: value"),
            ("/a\nX-A: b\n", 2, "first column"),
            ("/a\n  /b\n", 2, "first column"),
            ("/a\n  X A: b\n", 2, "header name"),
            ("/a\n  X-A:\n", 2, "empty value"),
            ("/a\n  Content-Length: 5\n", 2, "set by servy"),
            ("\n\n/a/*/b\n", 3, "last segment"),
            ("/a\n  X-A: caf\u{e9}\n", 2, "visible ASCII"),
        ] {
            let err = parse(text).expect_err(text);
            assert_eq!(err.line, line, "{text:?}: {err}");
            assert!(err.reason.contains(why), "{text:?}: {err}");
        }
    }

    #[test]
    fn crlf_and_a_bom_are_tolerated() {
        let rules = parse("\u{feff}/a\r\n  X-A: b\r\n").expect("valid");
        assert_eq!(rules[0].headers, vec![("x-a".to_owned(), "b".to_owned())]);
    }

    proptest! {
        /// Any text parses or names a line that exists; never a panic.
        #[test]
        fn any_text_parses_or_names_a_real_line(text in "[ -~\t\n/:*#]{0,120}") {
            match parse(&text) {
                Ok(rules) => for r in rules {
                    prop_assert!(r.headers.iter().all(|(n, _)| n.bytes().all(|b| !b.is_ascii_uppercase())));
                },
                Err(e) => prop_assert!(e.line >= 1 && e.line <= text.lines().count()),
            }
        }

        /// Written rules come back as they were written.
        #[test]
        fn written_rules_parse_back(
            rules in prop::collection::vec(
                ("[a-z]{1,8}", prop::collection::vec(("X-[A-Za-z]{1,8}", "[!-~]([ -~]{0,20}[!-~])?"), 1..4)),
                1..4,
            )
        ) {
            let mut text = String::new();
            for (path, headers) in &rules {
                text.push_str(&format!("/{path}\n"));
                for (n, v) in headers {
                    text.push_str(&format!("  {n}: {v}\n"));
                }
            }
            let parsed = parse(&text).expect("generated rules are valid");
            prop_assert_eq!(parsed.len(), rules.len());
            for (p, (path, headers)) in parsed.iter().zip(&rules) {
                prop_assert_eq!(&p.pattern_text, &format!("/{path}"));
                let want: Vec<(String, String)> = headers.iter().map(|(n, v)| (n.to_ascii_lowercase(), v.clone())).collect();
                prop_assert_eq!(&p.headers, &want);
            }
        }
    }
}
