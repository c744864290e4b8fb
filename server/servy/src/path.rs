//! Request target → normalised site key, or a rejection. Pure: no I/O, no state.
//!
//! The key has no leading slash and is percent-decoded: `/` → `""`, `/blog/` → `"blog/"`,
//! `/caf%C3%A9.html` → `"café.html"`. Anything that tries to leave the site is refused.

// TODO(site): pub fn normalise(path: &str) -> Result<Cow<'_, str>, PathRejection>,
// PathRejection: IntoResponse (400 or 404, no internals), property tests below.
