//! The embedded site: lookup of a normalised key, then conditional → encoding → range.
//!
//! Everything expensive (hashing, MIME, compression, header values) happened in
//! `build.rs`; here we only look things up and hand out `&'static` bytes.

pub mod conditional;
pub mod negotiate;
pub mod range;

// TODO(site): pub struct Site; Site::new(CacheConfig) -> Site (builds the lookup table once);
// Site::respond(&self, key: &str, method: &Method, headers: &HeaderMap) -> Option<Response>;
// Site::paths() for --list-assets; Site::not_found_page() for not_found.rs.
