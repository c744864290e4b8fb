//! The last step: the site's `404.html` with status 404, or a plain-text 404.

// TODO(site): pub fn respond(site: &Site, method: &Method) -> Response
