//! The redirects file format: text in, `alias → target` entries out. Pure: no I/O, no state.
//!
//! Runs on the refresher's side, never on the request path. One entry per line:
//!
//! ```text
//! # comment
//! gh      https://github.com/someone     # a trailing comment too
//! /cv/    https://example.org/cv.pdf
//! ```
//!
//! - Fields are separated by any run of spaces or tabs; CRLF line ends and a leading UTF-8
//!   BOM are tolerated; blank lines are ignored.
//! - `#` starts a comment when it begins a field (at the start of a line or after
//!   whitespace). A `#` inside a field is kept, so `https://x.org/page#part` keeps its
//!   fragment.
//! - The alias is normalised as a request path is: percent-decoded, slashes trimmed at both
//!   ends and repeated ones collapsed (`/gh/` → `gh`). Matching is exact (no prefixes) and
//!   case-sensitive, as paths are.
//! - The target must be an absolute `http://` or `https://` URL with a host, in printable
//!   ASCII (percent-encode anything else), because it goes verbatim into `Location`.
//! - A line that breaks a rule is reported with its line number and skipped; the valid
//!   rest still loads. A repeated alias keeps the *last* line (the file reads top to
//!   bottom, like a config override) and is reported as a warning.

use std::collections::HashMap;
use std::fmt;

use percent_encoding::percent_decode_str;

/// The result of parsing a whole file: valid entries in file order (duplicates already
/// resolved, last wins) and every problem found, in line order.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    pub entries: Vec<Entry>,
    pub problems: Vec<Problem>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Normalised: no leading or trailing slash, percent-decoded.
    pub alias: String,
    pub target: String,
    /// 1-based, for log messages.
    pub line: usize,
}

/// A line that was skipped (or, for `Duplicate`, overridden), for the refresher to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line number.
    pub line: usize,
    pub kind: ProblemKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProblemKind {
    /// Not exactly two fields (after removing a comment).
    FieldCount(usize),
    /// The alias is empty after trimming slashes (`/`), or cannot match any request path
    /// (`.`/`..` segments, invalid percent-encoding).
    BadAlias(String),
    /// The target is not an absolute http(s) URL in printable ASCII.
    BadTarget(String),
    /// This alias was already defined on `first`; this later line wins.
    Duplicate { alias: String, first: usize },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: ", self.line)?;
        match &self.kind {
            ProblemKind::FieldCount(n) => {
                write!(
                    f,
                    "expected 2 fields (alias and target), found {n}; line skipped"
                )
            }
            ProblemKind::BadAlias(why) => write!(f, "bad alias: {why}; line skipped"),
            ProblemKind::BadTarget(why) => write!(f, "bad target: {why}; line skipped"),
            ProblemKind::Duplicate { alias, first } => {
                write!(
                    f,
                    "alias {alias:?} already defined on line {first}; this line wins"
                )
            }
        }
    }
}

/// Parses a whole redirects file. Never fails as a whole: bad lines become problems.
pub fn parse(text: &str) -> Parsed {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut parsed = Parsed::default();
    // alias → index into `parsed.entries`, so a duplicate replaces in place.
    let mut seen: HashMap<String, usize> = HashMap::new();
    // `lines()` strips a trailing `\r`, so CRLF files parse as LF ones.
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        match parse_line(raw) {
            Ok(None) => {}
            Ok(Some((alias, target))) => {
                let entry = Entry {
                    alias,
                    target,
                    line,
                };
                if let Some(&at) = seen.get(&entry.alias) {
                    let first = parsed.entries[at].line;
                    let alias = entry.alias.clone();
                    parsed.entries[at] = entry;
                    parsed.problems.push(Problem {
                        line,
                        kind: ProblemKind::Duplicate { alias, first },
                    });
                } else {
                    seen.insert(entry.alias.clone(), parsed.entries.len());
                    parsed.entries.push(entry);
                }
            }
            Err(kind) => parsed.problems.push(Problem { line, kind }),
        }
    }
    parsed
}

/// One line: `Ok(None)` for blank or comment lines.
fn parse_line(raw: &str) -> Result<Option<(String, String)>, ProblemKind> {
    let fields: Vec<&str> = raw
        .split([' ', '\t', '\r'])
        .filter(|f| !f.is_empty())
        .take_while(|f| !f.starts_with('#'))
        .collect();
    match fields.as_slice() {
        [] => Ok(None),
        [alias, target] => {
            let alias = normalise_alias(alias)?;
            check_target(target)?;
            Ok(Some((alias, (*target).to_string())))
        }
        other => Err(ProblemKind::FieldCount(other.len())),
    }
}

/// `/gh/` → `gh`, `caf%C3%A9` → `café`, `a//b` → `a/b`: the form `path::normalise` gives
/// request paths, so an alias matches exactly the requests it looks like.
fn normalise_alias(alias: &str) -> Result<String, ProblemKind> {
    let bad = |why: &str| Err(ProblemKind::BadAlias(format!("{alias:?} {why}")));
    let bytes = alias.as_bytes();
    let malformed = bytes.iter().enumerate().any(|(i, &b)| {
        b == b'%'
            && !(bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
    });
    if malformed {
        return bad("has a `%` without two hex digits");
    }
    let Ok(decoded) = percent_decode_str(alias).decode_utf8() else {
        return bad("is not UTF-8 once percent-decoded");
    };
    if decoded.chars().any(char::is_control) || decoded.contains('\\') {
        return bad("has a control character or backslash");
    }
    // Repeated slashes collapse on the request side too.
    let segments: Vec<&str> = decoded.split('/').filter(|seg| !seg.is_empty()).collect();
    if segments.is_empty() {
        return bad("is empty without its slashes");
    }
    if segments.iter().any(|seg| *seg == "." || *seg == "..") {
        return bad("has a `.` or `..` segment, which no request path can match");
    }
    Ok(segments.join("/"))
}

/// An absolute http(s) URL with a non-empty host, every byte printable ASCII (it goes
/// into a `Location` header as is).
fn check_target(target: &str) -> Result<(), ProblemKind> {
    let bad = |why: &str| Err(ProblemKind::BadTarget(format!("{target:?} {why}")));
    if let Some(c) = target.chars().find(|c| !c.is_ascii_graphic()) {
        return bad(&format!(
            "contains {c:?}: percent-encode non-ASCII characters"
        ));
    }
    let lower = target.to_ascii_lowercase();
    let rest = if lower.starts_with("https://") {
        &target["https://".len()..]
    } else if lower.starts_with("http://") {
        &target["http://".len()..]
    } else {
        return bad("is not an absolute http:// or https:// URL");
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    let host = match host_port.rfind(':') {
        // `[::1]:8080` or `host:8080`, but not the colons inside `[::1]`.
        Some(colon) if !host_port[colon..].contains(']') => {
            let port = &host_port[colon + 1..];
            if !port.bytes().all(|b| b.is_ascii_digit()) {
                return bad("has a port that is not a number");
            }
            &host_port[..colon]
        }
        _ => host_port,
    };
    if host.is_empty() {
        return bad("has no host");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entries(text: &str) -> Vec<(String, String)> {
        parse(text)
            .entries
            .into_iter()
            .map(|e| (e.alias, e.target))
            .collect()
    }

    fn pair(a: &str, t: &str) -> (String, String) {
        (a.to_string(), t.to_string())
    }

    #[test]
    fn alias_and_target_per_line() {
        let p = parse("gh https://github.com/x\nblog http://example.org/b?x=1#top\n");
        assert!(p.problems.is_empty(), "{:?}", p.problems);
        assert_eq!(
            p.entries,
            vec![
                Entry {
                    alias: "gh".into(),
                    target: "https://github.com/x".into(),
                    line: 1
                },
                Entry {
                    alias: "blog".into(),
                    target: "http://example.org/b?x=1#top".into(),
                    line: 2
                },
            ]
        );
    }

    #[test]
    fn comments_blank_lines_tabs_crlf_and_bom_are_tolerated() {
        let text = "\u{feff}# header\r\n\r\n   \t\r\n\tgh \t  https://github.com/x\t\r\n  # indented comment\r\nmail https://m.example  # trailing comment\r\nfrag https://x.example/p#not-a-comment\r\n";
        let p = parse(text);
        assert!(p.problems.is_empty(), "{:?}", p.problems);
        assert_eq!(
            entries(text),
            vec![
                pair("gh", "https://github.com/x"),
                pair("mail", "https://m.example"),
                pair("frag", "https://x.example/p#not-a-comment"),
            ]
        );
        assert_eq!(p.entries[0].line, 4);
    }

    #[test]
    fn alias_slashes_are_trimmed_and_percent_decoded() {
        assert_eq!(
            entries(
                "/gh/ https://a.example\n/talks//2024 https://b.example\ncaf%C3%A9 https://c.example"
            ),
            vec![
                pair("gh", "https://a.example"),
                pair("talks/2024", "https://b.example"),
                pair("café", "https://c.example")
            ]
        );
    }

    #[test]
    fn wrong_field_counts_are_reported_with_line_numbers() {
        let p = parse("ok https://a.example\nlonely\nthree https://a.example extra\n");
        assert_eq!(
            entries("ok https://a.example"),
            vec![pair("ok", "https://a.example")]
        );
        assert_eq!(p.entries.len(), 1);
        assert_eq!(
            p.problems,
            vec![
                Problem {
                    line: 2,
                    kind: ProblemKind::FieldCount(1)
                },
                Problem {
                    line: 3,
                    kind: ProblemKind::FieldCount(3)
                },
            ]
        );
        assert_eq!(
            p.problems[0].to_string(),
            "line 2: expected 2 fields (alias and target), found 1; line skipped"
        );
    }

    #[test]
    fn targets_must_be_absolute_http_urls() {
        for bad in [
            "ftp://x.example",
            "/relative",
            "example.org",
            "https://",
            "https:///path",
            "http://user@/p",
            "https://x.example:port/",
            "javascript:alert(1)",
            "https://caf\u{e9}.example",
        ] {
            let p = parse(&format!("a {bad}"));
            assert!(p.entries.is_empty(), "{bad:?} was accepted");
            assert!(
                matches!(
                    p.problems.as_slice(),
                    [Problem {
                        line: 1,
                        kind: ProblemKind::BadTarget(_)
                    }]
                ),
                "{bad:?}: {:?}",
                p.problems
            );
        }
        for good in [
            "HTTPS://X.example",
            "http://[::1]:8080/x",
            "https://u:p@h.example:443/?q#f",
            "http://h",
        ] {
            assert_eq!(
                entries(&format!("a {good}")),
                vec![pair("a", good)],
                "{good:?} was rejected"
            );
        }
    }

    #[test]
    fn aliases_that_cannot_match_a_path_are_rejected() {
        for bad in [
            "/", "//", "../x", "a/./b", "%FF", "a%00b", "a%5Cb", "100%", "a%2",
        ] {
            let p = parse(&format!("{bad} https://x.example"));
            assert!(p.entries.is_empty(), "{bad:?} was accepted");
            assert!(
                matches!(p.problems[0].kind, ProblemKind::BadAlias(_)),
                "{bad:?}: {:?}",
                p.problems
            );
        }
    }

    #[test]
    fn a_repeated_alias_keeps_the_last_line_and_warns() {
        let p = parse("gh https://one.example\nx https://x.example\n/gh/ https://two.example\n");
        assert_eq!(
            p.entries
                .iter()
                .map(|e| (e.alias.as_str(), e.target.as_str(), e.line))
                .collect::<Vec<_>>(),
            vec![
                ("gh", "https://two.example", 3),
                ("x", "https://x.example", 2)
            ]
        );
        assert_eq!(
            p.problems,
            vec![Problem {
                line: 3,
                kind: ProblemKind::Duplicate {
                    alias: "gh".into(),
                    first: 1
                }
            }]
        );
    }

    #[test]
    fn nothing_but_comments_parses_to_nothing() {
        assert_eq!(parse("# only\n\n  # comments\n"), Parsed::default());
        assert_eq!(parse(""), Parsed::default());
    }

    fn alias_strategy() -> impl Strategy<Value = String> {
        "[A-Za-z0-9_.~-]{1,12}(/[A-Za-z0-9_~-]{1,8}){0,2}".prop_filter("dot segments", |a| {
            a.split('/').all(|s| s != "." && s != "..")
        })
    }

    fn target_strategy() -> impl Strategy<Value = String> {
        (
            "https?",
            "[a-z0-9-]{1,20}(\\.[a-z]{2,5})?",
            "(/[A-Za-z0-9._~%?=&#-]{0,20}){0,3}",
        )
            .prop_map(|(scheme, host, path)| format!("{scheme}://{host}{path}"))
    }

    proptest! {
        #[test]
        fn never_panics_on_any_text(text in any::<String>()) {
            let p = parse(&text);
            // Every entry is a valid header value, which `lookup` relies on.
            for e in &p.entries {
                prop_assert!(axum::http::HeaderValue::from_str(&e.target).is_ok());
                prop_assert!(!e.alias.starts_with('/') && !e.alias.ends_with('/'));
            }
        }

        #[test]
        fn never_panics_on_line_shaped_noise(lines in proptest::collection::vec("[ \t#/a-z:%.\\[\\]@\r]{0,30}", 0..20)) {
            let _ = parse(&lines.join("\n"));
        }

        #[test]
        fn valid_lines_round_trip(
            pairs in proptest::collection::vec((alias_strategy(), target_strategy()), 0..20),
            sep in "[ \t]{1,4}",
            crlf in any::<bool>(),
            slashes in any::<bool>(),
        ) {
            let eol = if crlf { "\r\n" } else { "\n" };
            let text: String = pairs
                .iter()
                .map(|(a, t)| if slashes { format!("/{a}/{sep}{t}{eol}") } else { format!("{a}{sep}{t}{eol}") })
                .collect();
            let p = parse(&text);
            // Expected: last definition of each alias wins, at the position of its first.
            let mut expected: Vec<(String, String)> = Vec::new();
            for (a, t) in &pairs {
                match expected.iter_mut().find(|(x, _)| x == a) {
                    Some(slot) => slot.1 = t.clone(),
                    None => expected.push((a.clone(), t.clone())),
                }
            }
            prop_assert_eq!(p.entries.into_iter().map(|e| (e.alias, e.target)).collect::<Vec<_>>(), expected);
            prop_assert!(
                p.problems.iter().all(|pr| matches!(pr.kind, ProblemKind::Duplicate { .. })),
                "unexpected problems: {:?}",
                p.problems
            );
        }
    }
}
