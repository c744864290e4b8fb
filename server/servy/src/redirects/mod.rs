//! Short links: a lock-free alias → target map, swapped whole by the refresher.
//!
//! A miss on the request path only *nudges* the refresher; it never waits for it, and the
//! refresher turns any number of nudges into at most one fetch per `min_refresh_interval`.

pub mod fetch;
pub mod parse;
pub mod refresher;

// TODO(redirects): pub struct Redirects (cheap Clone); Redirects::lookup(&self, key: &str,
// query: Option<&str>) -> Option<Response>; Redirects::nudge(&self); refresher spawn.
