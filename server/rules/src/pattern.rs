//! Path patterns, as both files write them: `/about`, `/blog/*`, `/:year/:slug/*`.
//!
//! - A pattern starts with `/`; it is matched segment by segment against a request path
//!   as servy normalised it (percent-decoded, no repeated slashes). A trailing slash is
//!   ignored on both sides, as Netlify ignores it: `/blog` and `/blog/` are one path.
//! - `:name` is a whole segment and matches any one non-empty segment.
//! - `*` is a whole last segment and matches the rest, zero or more segments: `/blog/*`
//!   matches `/blog`, `/blog/` and `/blog/a/b`. What it matched is the `splat`.
//! - Anything else is literal and case-sensitive, like file names.

/// A parsed pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    segments: Vec<Segment>,
    /// Ends in `*`.
    splat: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Placeholder(String),
}

/// What a match bound: each placeholder's segment, then the splat (if the pattern has
/// one), in pattern order.
pub type Captures<'a> = Vec<(&'a str, &'a str)>;

impl Pattern {
    pub fn parse(text: &str) -> Result<Pattern, String> {
        let Some(rest) = text.strip_prefix('/') else {
            return Err(format!(
                "{text:?} is not a path: patterns start with / (host and scheme rules are not supported)"
            ));
        };
        let mut segments = Vec::new();
        let mut splat = false;
        let parts: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
        for (i, part) in parts.iter().enumerate() {
            if *part == "*" {
                if i + 1 != parts.len() {
                    return Err(format!("in {text:?}, * must be the last segment"));
                }
                splat = true;
            } else if let Some(name) = part.strip_prefix(':') {
                if !is_name(name) {
                    return Err(format!(
                        "in {text:?}, {part:?} is not a placeholder (`:` then letters, digits, _)"
                    ));
                }
                if name == "splat" {
                    return Err(format!("in {text:?}, :splat is what * matched; use *"));
                }
                if segments.contains(&Segment::Placeholder(name.to_owned())) {
                    return Err(format!("in {text:?}, :{name} appears twice"));
                }
                segments.push(Segment::Placeholder(name.to_owned()));
            } else if part.contains('*') {
                return Err(format!(
                    "in {text:?}, * must be a whole segment (`/dir/*`), not part of {part:?}"
                ));
            } else if part.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(format!(
                    "{text:?} contains whitespace or a control character"
                ));
            } else if *part == "." || *part == ".." {
                return Err(format!(
                    "{text:?} has a . or .. segment, which no request has"
                ));
            } else {
                segments.push(Segment::Literal((*part).to_owned()));
            }
        }
        Ok(Pattern { segments, splat })
    }

    /// `/*`: every path, the site's pages and everything else.
    pub fn matches_everything(&self) -> bool {
        self.segments.is_empty() && self.splat
    }

    /// No placeholder and no splat: one path only.
    pub fn is_literal(&self) -> bool {
        !self.splat
            && self
                .segments
                .iter()
                .all(|s| matches!(s, Segment::Literal(_)))
    }

    /// The one path a literal pattern names, as a site key (`blog/old`, `""` for `/`).
    pub fn literal_key(&self) -> Option<String> {
        self.is_literal().then(|| {
            self.segments
                .iter()
                .map(|s| match s {
                    Segment::Literal(l) | Segment::Placeholder(l) => l.as_str(),
                })
                .collect::<Vec<_>>()
                .join("/")
        })
    }

    /// The placeholder names, then `splat` if the pattern has one.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.segments
            .iter()
            .filter_map(|s| match s {
                Segment::Placeholder(n) => Some(n.as_str()),
                Segment::Literal(_) => None,
            })
            .chain(self.splat.then_some("splat"))
    }

    /// Matches a site key (a normalised request path without its leading slash:
    /// `blog/first-post/`, `""` for `/`), and returns what the placeholders bound.
    pub fn matches<'a>(&'a self, key: &'a str) -> Option<Captures<'a>> {
        // A trailing slash is kept in the splat (`/news/*` → `/blog/:splat` keeps
        // `/news/post/` a directory) and ignored by whole segments.
        let mut rest = key.trim_start_matches('/');
        let mut captures = Vec::new();
        for segment in &self.segments {
            if rest.is_empty() {
                return None;
            }
            let (part, tail) = rest.split_once('/').unwrap_or((rest, ""));
            match segment {
                Segment::Literal(l) if l == part => {}
                Segment::Literal(_) => return None,
                Segment::Placeholder(name) => captures.push((name.as_str(), part)),
            }
            rest = tail;
        }
        if self.splat {
            captures.push(("splat", rest));
        } else if !rest.is_empty() {
            return None;
        }
        Some(captures)
    }
}

/// `[A-Za-z0-9_]+`: what may follow `:` in a placeholder.
pub fn is_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Each `:name` in `template` that starts with a letter or `_`, with where it starts and
/// ends. A `:` followed by a digit or anything else (`https://`, `:8080`) is text.
fn placeholders(template: &str) -> impl Iterator<Item = (usize, usize, &str)> {
    let bytes = template.as_bytes();
    let mut i = 0;
    std::iter::from_fn(move || {
        while i < bytes.len() {
            let start = i;
            i += 1;
            if bytes[start] != b':' {
                continue;
            }
            let first = bytes.get(i).copied().unwrap_or(b' ');
            if !(first.is_ascii_alphabetic() || first == b'_') {
                continue;
            }
            let mut end = i;
            while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
                end += 1;
            }
            i = end;
            return Some((start, end, &template[start + 1..end]));
        }
        None
    })
}

/// The first `:name` in `template` that `pattern` does not bind, if any: a typo that
/// would otherwise reach a browser as literal text.
pub fn unbound(template: &str, pattern: &Pattern) -> Option<String> {
    placeholders(template)
        .find(|(_, _, name)| !pattern.names().any(|n| n == *name))
        .map(|(_, _, name)| format!(":{name}"))
}

/// `template` with each bound `:name` replaced by what it matched (`:splat` by the rest).
pub fn substitute(template: &str, captures: &Captures<'_>) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut copied = 0;
    for (start, end, name) in placeholders(template) {
        if let Some((_, value)) = captures.iter().find(|(n, _)| *n == name) {
            out.push_str(&template[copied..start]);
            out.push_str(value);
            copied = end;
        }
    }
    out.push_str(&template[copied..]);
    out
}

/// The normalised request paths that reach a file: its key, and for `dir/index.html`
/// also `dir/` (how its pages are linked), so `/blog/*` and `/:year/:slug` match pages.
/// One function, so that `_headers` (build time) and `[headers]` (start-up) agree.
pub fn request_keys(key: &str) -> Vec<&str> {
    let mut keys = vec![key];
    if let Some(dir) = key
        .strip_suffix("index.html")
        .filter(|d| d.is_empty() || d.ends_with('/'))
    {
        keys.push(dir);
    }
    keys
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn p(text: &str) -> Pattern {
        Pattern::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn literal_paths_match_themselves_with_or_without_the_trailing_slash() {
        let about = p("/about");
        assert_eq!(about.matches("about"), Some(vec![]));
        assert_eq!(about.matches("about/"), Some(vec![]));
        assert_eq!(about.matches("about/x"), None);
        assert_eq!(about.matches("About"), None, "case-sensitive, like files");
        assert_eq!(p("/").matches(""), Some(vec![]));
        assert_eq!(p("/").matches("a"), None);
        assert_eq!(about.literal_key().as_deref(), Some("about"));
        assert_eq!(p("/blog/").literal_key().as_deref(), Some("blog"));
    }

    #[test]
    fn a_splat_matches_the_rest_including_nothing() {
        let blog = p("/blog/*");
        assert_eq!(blog.matches("blog"), Some(vec![("splat", "")]));
        assert_eq!(blog.matches("blog/"), Some(vec![("splat", "")]));
        assert_eq!(
            blog.matches("blog/a/b.html"),
            Some(vec![("splat", "a/b.html")])
        );
        assert_eq!(blog.matches("blog/a/"), Some(vec![("splat", "a/")]));
        assert_eq!(blog.matches("blogs/a"), None);
        assert!(p("/*").matches_everything());
        assert_eq!(p("/*").matches(""), Some(vec![("splat", "")]));
        assert!(!blog.is_literal());
    }

    #[test]
    fn placeholders_bind_one_segment_each() {
        let post = p("/:year/:slug");
        assert_eq!(
            post.matches("2024/hello/"),
            Some(vec![("year", "2024"), ("slug", "hello")])
        );
        assert_eq!(post.matches("2024"), None);
        assert_eq!(post.matches("2024/hello/more"), None);
        assert_eq!(
            p("/news/:year/*").matches("news/2004/02/12/x"),
            Some(vec![("year", "2004"), ("splat", "02/12/x")])
        );
    }

    #[test]
    fn bad_patterns_say_why() {
        for (text, why) in [
            ("blog/*", "start with /"),
            ("https://a.example/*", "start with /"),
            ("/a/*/b", "last segment"),
            ("/a*", "whole segment"),
            ("/:", "not a placeholder"),
            ("/:a-b", "not a placeholder"),
            ("/:x/:x", "twice"),
            ("/:splat", "use *"),
            ("/a/../b", ". or .."),
        ] {
            let err = Pattern::parse(text).expect_err(text);
            assert!(err.contains(why), "{text}: {err}");
        }
    }

    #[test]
    fn substitution_replaces_bound_names_only() {
        let from = p("/blog/:year/:month/:date/:slug");
        let caps = from.matches("blog/2004/02/12/hello").expect("matches");
        assert_eq!(
            substitute("/posts/:year-:month-:date-:slug", &caps),
            "/posts/2004-02-12-hello"
        );
        let news = p("/news/*");
        let caps = news.matches("news/a/b").expect("matches");
        assert_eq!(
            substitute("https://x.example:8080/:splat", &caps),
            "https://x.example:8080/a/b"
        );
        assert_eq!(unbound("/posts/:year/:slug", &from), None);
        assert_eq!(unbound("/posts/:yeer", &from).as_deref(), Some(":yeer"));
        assert_eq!(unbound("https://x.example:8080/", &news), None);
    }

    fn segment() -> impl Strategy<Value = String> {
        "[a-z0-9._-]{1,6}".prop_filter("no dot segments", |s| s != "." && s != "..")
    }

    proptest! {
        /// A literal pattern matches exactly the path it names, with or without a slash.
        #[test]
        fn a_literal_pattern_matches_only_its_own_path(
            segs in prop::collection::vec(segment(), 0..4),
            other in prop::collection::vec(segment(), 0..4),
        ) {
            let key = segs.join("/");
            let pattern = p(&format!("/{key}"));
            prop_assert!(pattern.is_literal());
            prop_assert!(pattern.matches(&key).is_some());
            let slashed = format!("{key}/");
            prop_assert!(pattern.matches(&slashed).is_some());
            let other = other.join("/");
            prop_assert_eq!(pattern.matches(&other).is_some(), other == key);
        }

        /// Replacing each segment by a placeholder and substituting the captures back
        /// gives the path that was matched.
        #[test]
        fn placeholders_and_splat_round_trip(
            segs in prop::collection::vec(segment(), 1..5),
            cut in 0usize..5,
        ) {
            let cut = cut.min(segs.len());
            let names: Vec<String> = (0..cut).map(|i| format!(":p{i}")).collect();
            let mut text = format!("/{}", names.join("/"));
            if !text.ends_with('/') { text.push('/'); }
            text.push('*');
            let pattern = p(&text);
            let key = segs.join("/");
            let caps = pattern.matches(&key).expect("every path of at least cut segments");
            let template = format!("/{}", names.iter().cloned().chain([":splat".to_owned()]).collect::<Vec<_>>().join("/"));
            let back = substitute(&template, &caps);
            prop_assert_eq!(back.trim_end_matches('/'), format!("/{key}"));
        }

        /// Any text is parsed or refused, never a panic; what parses matches without one.
        #[test]
        fn any_text_parses_or_is_refused(text in "\\PC{0,24}", key in "[a-z/]{0,12}") {
            if let Ok(pattern) = Pattern::parse(&text) {
                let _ = pattern.matches(&key);
            }
        }
    }
}
