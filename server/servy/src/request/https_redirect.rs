//! `[http] redirect_to_https`: the plain listener answers every request with a 308 to
//! the same host and path over HTTPS. In place of the router's dispatch on that listener.
//!
//! Only a host some certificate covers is redirected; any other Host gets 421, so the
//! redirect can never send a client to a site of the client's choosing (an open
//! redirect), and never to a name whose handshake would fail anyway.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::handler::Handler;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use tower::Service;

use super::stack::stack;
use crate::config::LimitsConfig;
use crate::metrics::Metrics;
use crate::tls::Certificates;

/// The plain listener's service when `redirect_to_https` is on: the usual middleware
/// (metrics, shedding, timeouts) around [`redirect`].
pub fn service(
    certificates: Arc<Certificates>,
    metrics: Arc<Metrics>,
    limits: &LimitsConfig,
    log_requests: bool,
) -> impl Service<Request<Incoming>, Response = Response, Error = Infallible, Future: Send + 'static>
+ Clone
+ Send
+ 'static {
    stack(
        redirect.with_state(certificates),
        metrics,
        limits,
        log_requests,
    )
}

/// 308 keeps the method (RFC 9110 §15.4.9), so a form POST stays a POST over HTTPS.
async fn redirect(State(certificates): State<Arc<Certificates>>, req: Request) -> Response {
    // HTTP/1.1 carries the host in `Host`; h2c in `:authority` (the URI's).
    let host = req
        .uri()
        .host()
        .or_else(|| req.headers().get(header::HOST)?.to_str().ok());
    let Some(host) = host.and_then(hostname) else {
        return (StatusCode::BAD_REQUEST, "a Host header is required\n").into_response();
    };
    if !certificates.covers(&host) {
        return (
            StatusCode::MISDIRECTED_REQUEST,
            "this server has no certificate for that host\n",
        )
            .into_response();
    }
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    match HeaderValue::try_from(format!("https://{host}{path}")) {
        Ok(location) => (
            StatusCode::PERMANENT_REDIRECT,
            [(header::LOCATION, location)],
        )
            .into_response(),
        Err(_) => StatusCode::BAD_REQUEST.into_response(),
    }
}

/// The host name of a `Host` value: port and a trailing dot dropped, lower-case; `None`
/// unless it is a plain DNS name (which is all a certificate can cover).
fn hostname(host: &str) -> Option<String> {
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    let name = name.strip_suffix('.').unwrap_or(name);
    let plain = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    plain.then(|| name.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::hostname;

    #[test]
    fn host_values() {
        assert_eq!(hostname("Example.ORG"), Some("example.org".into()));
        assert_eq!(hostname("example.org:8080"), Some("example.org".into()));
        assert_eq!(hostname("example.org."), Some("example.org".into()));
        assert_eq!(hostname(""), None);
        assert_eq!(hostname("evil.test/x"), None);
        assert_eq!(hostname("a@b"), None);
        assert_eq!(hostname("[::1]:80"), None);
    }
}
