//! The site's own rule files, `_headers` and `_redirects`, in the format Netlify and
//! Cloudflare Pages read (and Hugo can emit). Pure: text in, rules out; no I/O, no state.
//!
//! servy's build script parses both files when it embeds the site, so a bad line fails
//! the build as `_headers:LINE: reason`. servy itself uses [`pattern`] at start-up (for
//! `[headers]` and the `_redirects` rules with placeholders) and [`check_header`] to
//! validate `[headers]`. Nothing here runs per request except
//! [`pattern::Pattern::matches`] on a request that found no file.

pub mod header_line;
pub mod headers;
pub mod pattern;
pub mod redirects;

pub use header_line::{RESERVED_HEADERS, check_header};
