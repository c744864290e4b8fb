//! What answered a request, carried on the response for the request line and the
//! metrics to read. It lives below every layer that produces one (the site, its rules,
//! the short links) and the one that reads it (`request::observe`).

use std::sync::Arc;

/// What a response carried, for the request log (a response extension). A 404 has none.
#[derive(Clone, Debug)]
pub enum Served {
    Asset(&'static str),
    Redirect(Arc<str>),
}
