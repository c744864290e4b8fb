//! The main listener: the middleware stack around one dispatch handler.
//!
//! The main listener has no routes, only the steps below, so it is a single handler
//! (a direct handler skips axum's routing work). Real routes live on the metrics listener.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::{not_found, path, redirects::Redirects, site::Site};

/// What the request path needs, built once in `main`.
#[derive(Clone)]
pub struct AppState {
    pub site: &'static Site,
    pub redirects: Redirects,
}

/// What a response carried, attached as a response extension for the request log.
#[derive(Clone, Debug)]
pub enum Served {
    Asset(&'static str),
    Redirect(Arc<str>),
    NotFound,
}

/// One request, in order:
///
/// 1. GET and HEAD only; anything else is 405 with `Allow`.
/// 2. Normalise the path once (or refuse it: 400/404).
/// 3. Site: embedded asset → conditional (304) → encoding → range (206/416).
///    Files always win over aliases, so a redirect can never shadow a page.
/// 4. Redirect alias → 30x + `Location`.
/// 5. Not found: `404.html` or a plain 404; the miss nudges the redirects refresher
///    (new aliases appear without a restart) without waiting for it.
pub async fn dispatch(State(app): State<AppState>, req: Request) -> Response {
    let (parts, _body) = req.into_parts();
    if parts.method != Method::GET && parts.method != Method::HEAD {
        return (StatusCode::METHOD_NOT_ALLOWED, [(header::ALLOW, "GET, HEAD")]).into_response();
    }
    let key = match path::normalise(parts.uri.path()) {
        Ok(key) => key,
        Err(rejection) => return rejection.into_response(),
    };
    if let Some(response) = app.site.respond(&key, &parts.method, &parts.headers) {
        return response;
    }
    if let Some(response) = app.redirects.lookup(&key, parts.uri.query()) {
        return response;
    }
    app.redirects.nudge();
    not_found::respond(app.site, &parts.method)
}
