//! HTTP/3: a QUIC endpoint (quinn) on each `quic` UDP socket, HTTP/3 on it (h3), and each
//! request bridged to the same request service as the https listener's, so it meets the
//! site, its rules, the headers, the metrics and the log exactly as HTTP/1.1 and HTTP/2
//! requests do. The connection layer's third protocol, beside `http1.rs` and `http2.rs`.
//!
//! Bounds, as for TCP:
//! - connections: `limits.max_connections` per socket; QUIC has no backlog to wait in,
//!   so one past the cap is refused (CONNECTION_REFUSED) rather than queued;
//! - address validation: with [`RETRY_ABOVE`] handshakes or more in flight, a client
//!   whose address is not yet validated gets a Retry first (stateless), so a flood of
//!   spoofed Initials cannot hold handshake state; below it nobody pays the round trip;
//! - streams: [`super::H2_MAX_STREAMS`] requests at once per connection, as HTTP/2;
//! - handshake: `https.handshake_timeout`, as TLS over TCP;
//! - idle: `limits.header_read_timeout`, as HTTP/2's idle close;
//! - header section: `limits.max_header_bytes`, as HTTP/2's header list;
//! - 0-RTT: off (the TLS config from `tls::Tls::quic_config`; checked at start).
//!
//! The drain: the endpoint refuses new connections, every connection sends GOAWAY, its
//! in-flight responses finish, and the client gets up to [`DRAIN_LINGER`] to take the
//! last bytes and close before servy closes it.

use std::convert::Infallible;
use std::io;
use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::Request;
use axum::http::{Method, StatusCode, header};
use axum::response::Response;
use bytes::{Buf, Bytes};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use h3::error::Code;
use h3::server::{RequestResolver, RequestStream};
use http_body_util::BodyExt;
use hyper::body::Body as _;
use prometheus::{IntCounter, IntGauge, Registry};
use quinn::crypto::rustls::QuicServerConfig;
use quinn::{Endpoint, EndpointConfig, Incoming, TokioRuntime, TransportConfig, VarInt};
use tokio::sync::{OwnedSemaphorePermit, watch};
use tokio::task::JoinHandle;
use tower::{Service, ServiceExt};

use super::alt_svc::AltSvc;
use super::cap::ConnectionCap;
use crate::config::LimitsConfig;
use crate::held_body;

/// Handshakes in flight from which unvalidated clients get a Retry first. A browser
/// opening a page makes one; dozens at once from the open internet is a flood.
const RETRY_ABOVE: usize = 64;

/// How long a connection that is done (drained, or the client's GOAWAY) waits, once its
/// responses are written, for the client to take the last bytes and close: closing
/// discards what is not yet acknowledged.
const DRAIN_LINGER: Duration = Duration::from_secs(1);

/// Request body bytes read (and dropped) after a response: servy answers GET and HEAD,
/// whose requests end with their headers; a longer body is stopped with H3_NO_ERROR.
const MAX_UNREAD_BODY: usize = 64 * 1024;

/// The HTTP/3 request service: servy's, for requests without a body.
pub trait Http3Service:
    Service<Request<()>, Response = held_body::Response, Error = Infallible, Future: Send>
    + Clone
    + Send
    + 'static
{
}

impl<S> Http3Service for S
where
    S: Service<Request<()>, Response = held_body::Response, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
{
}

/// The QUIC endpoints and every connection they started.
pub struct Http3 {
    endpoints: Vec<Endpoint>,
    accepting: Vec<JoinHandle<()>>,
    caps: Vec<ConnectionCap>,
    stop: watch::Sender<bool>,
    alt_svc: AltSvc,
}

/// What every connection of every endpoint shares.
struct Shared {
    limits: Limits,
    metrics: QuicMetrics,
    /// Handshakes started and not yet done, across endpoints (see [`RETRY_ABOVE`]).
    handshaking: AtomicUsize,
}

#[derive(Clone, Copy)]
struct Limits {
    max_header_bytes: u64,
    body_read_timeout: Duration,
    handshake_timeout: Duration,
}

impl Http3 {
    /// Serves HTTP/3 with `service` on each socket, and advertises it with `alt_svc`. A
    /// handshake gets `handshake_timeout`, as the https listener's.
    pub fn serve<S: Http3Service>(
        sockets: Vec<UdpSocket>,
        tls: rustls::ServerConfig,
        handshake_timeout: Duration,
        limits: &LimitsConfig,
        service: S,
        registry: &Registry,
        alt_svc: AltSvc,
    ) -> io::Result<Http3> {
        let config = server_config(tls, limits)?;
        let shared = Arc::new(Shared {
            limits: Limits {
                max_header_bytes: limits.max_header_bytes as u64,
                body_read_timeout: limits.header_read_timeout,
                handshake_timeout,
            },
            metrics: QuicMetrics::register(registry),
            handshaking: AtomicUsize::new(0),
        });
        let stop = watch::channel(false).0;
        let mut http3 = Http3 {
            endpoints: Vec::new(),
            accepting: Vec::new(),
            caps: Vec::new(),
            stop,
            alt_svc,
        };
        let runtime = Arc::new(TokioRuntime);
        let mut port = None;
        for socket in sockets {
            port = port.or(socket.local_addr().ok().map(|a| a.port()));
            let endpoint = Endpoint::new(
                EndpointConfig::default(),
                Some(config.clone()),
                socket,
                runtime.clone(),
            )?;
            let cap = ConnectionCap::new(limits.max_connections);
            let task = accept_loop(
                endpoint.clone(),
                service.clone(),
                shared.clone(),
                cap.clone(),
                http3.stop.subscribe(),
            );
            http3.accepting.push(tokio::spawn(task));
            http3.endpoints.push(endpoint);
            http3.caps.push(cap);
        }
        if let Some(port) = port {
            http3.alt_svc.advertise(port);
        }
        Ok(http3)
    }

    /// Stops advertising and accepting, sends GOAWAY on every connection and lets their
    /// in-flight responses finish for up to `grace`. True if all closed in time.
    pub async fn drain(self, grace: Duration) -> bool {
        self.alt_svc.withdraw();
        let _ = self.stop.send(true);
        for task in self.accepting {
            let _ = task.await;
        }
        for endpoint in &self.endpoints {
            endpoint.set_server_config(None); // new connections are refused
        }
        let all = async {
            for cap in &self.caps {
                cap.all_closed().await;
            }
            for endpoint in &self.endpoints {
                endpoint.close(VarInt::from(Code::H3_NO_ERROR.value() as u32), b"");
                endpoint.wait_idle().await;
            }
        };
        tokio::time::timeout(grace, all).await.is_ok()
    }
}

/// quinn's server config: servy's TLS for QUIC and the bounds in the module's docs.
fn server_config(
    tls: rustls::ServerConfig,
    limits: &LimitsConfig,
) -> io::Result<quinn::ServerConfig> {
    if tls.max_early_data_size != 0 {
        return Err(io::Error::other("0-RTT must stay off for HTTP/3"));
    }
    let crypto = QuicServerConfig::try_from(tls).map_err(io::Error::other)?;
    let mut transport = TransportConfig::default();
    let idle =
        quinn::IdleTimeout::try_from(limits.header_read_timeout).map_err(io::Error::other)?;
    transport
        .max_idle_timeout(Some(idle))
        .max_concurrent_bidi_streams(VarInt::from_u32(super::H2_MAX_STREAMS))
        // A client's control stream and QPACK's two, with room for the greasing ones.
        .max_concurrent_uni_streams(VarInt::from_u32(8))
        // Requests carry headers only: no room for large uploads in servy's memory.
        .stream_receive_window(VarInt::from_u32(64 * 1024))
        .receive_window(VarInt::from_u32(1024 * 1024));
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    config.transport_config(Arc::new(transport));
    Ok(config)
}

async fn accept_loop<S: Http3Service>(
    endpoint: Endpoint,
    service: S,
    shared: Arc<Shared>,
    cap: ConnectionCap,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let incoming = tokio::select! {
            incoming = endpoint.accept() => incoming,
            _ = stop.changed() => return,
        };
        let Some(incoming) = incoming else {
            return; // the endpoint was closed
        };
        let Some(slot) = cap.try_admit() else {
            shared.metrics.refused.inc();
            incoming.refuse();
            continue;
        };
        let under_load = shared.handshaking.load(Ordering::Relaxed) >= RETRY_ABOVE;
        if under_load && !incoming.remote_address_validated() && incoming.may_retry() {
            shared.metrics.retries.inc();
            let _ = incoming.retry();
            continue;
        }
        let task = serve_connection(
            incoming,
            service.clone(),
            shared.clone(),
            slot,
            stop.clone(),
        );
        tokio::spawn(task);
    }
}

/// One QUIC connection: the handshake, then HTTP/3 until the client closes, the idle
/// timeout, or the drain. `_slot` holds its place under the connection cap.
async fn serve_connection<S: Http3Service>(
    incoming: Incoming,
    service: S,
    shared: Arc<Shared>,
    _slot: OwnedSemaphorePermit,
    mut stop: watch::Receiver<bool>,
) {
    let metrics = &shared.metrics;
    let Ok(connecting) = incoming.accept() else {
        metrics.handshake_failures.inc();
        return;
    };
    shared.handshaking.fetch_add(1, Ordering::Relaxed);
    let handshake = tokio::time::timeout(shared.limits.handshake_timeout, connecting);
    let connected = tokio::select! {
        connected = handshake => Some(connected),
        _ = stop.changed() => None,
    };
    shared.handshaking.fetch_sub(1, Ordering::Relaxed);
    let connection = match connected {
        Some(Ok(Ok(connection))) => connection,
        Some(Ok(Err(e))) => {
            metrics.handshake_failures.inc();
            tracing::debug!(error = %e, "QUIC handshake failed");
            return;
        }
        // Dropped unfinished, the connection is closed.
        Some(Err(_)) => {
            metrics.handshake_failures.inc();
            tracing::debug!("QUIC handshake timed out");
            return;
        }
        None => return,
    };
    metrics.open.inc();
    let _open = Decrement(&metrics.open);
    let quic = connection.clone();
    let built = h3::server::builder()
        .max_field_section_size(shared.limits.max_header_bytes)
        .build::<_, Bytes>(h3_quinn::Connection::new(connection))
        .await;
    let mut h3 = match built {
        Ok(h3) => h3,
        Err(e) => {
            tracing::debug!(error = %e, "HTTP/3 connection setup failed");
            return;
        }
    };
    // Polled by this task, not spawned: a request is answered on the thread that read
    // it, without a wake-up across threads.
    let mut requests = FuturesUnordered::new();
    let mut draining = *stop.borrow();
    loop {
        if draining && requests.is_empty() {
            break;
        }
        tokio::select! {
            accepted = h3.accept() => match accepted {
                Ok(Some(resolver)) => {
                    requests.push(respond(resolver, service.clone(), shared.limits));
                }
                // The client's GOAWAY, its close, the idle timeout: no more requests.
                Ok(None) | Err(_) => break,
            },
            Some(()) = requests.next(), if !requests.is_empty() => {}
            _ = stop.changed(), if !draining => {
                draining = true;
                // GOAWAY: requests already accepted are answered, later ones refused.
                let _ = h3.shutdown(0).await;
            }
        }
    }
    // A closed connection fails its streams' writes at once; an open one lets them finish.
    while requests.next().await.is_some() {}
    // Dropping `h3` closes the connection, which discards what the client has not yet
    // acknowledged: it gets a moment to take the last bytes and close first.
    let _ = tokio::time::timeout(DRAIN_LINGER, quic.closed()).await;
    drop(h3);
}

/// One request: servy's service answers it, the head and the body go out, the stream is
/// finished, and what is left of the request is read to its end (dropping it unread
/// would make quinn send STOP_SENDING, which clients report as a reset stream).
async fn respond<S: Http3Service>(
    resolver: RequestResolver<h3_quinn::Connection, Bytes>,
    service: S,
    limits: Limits,
) {
    let (request, mut stream) = match resolver.resolve_request().await {
        Ok(resolved) => resolved,
        Err(e) => {
            tracing::debug!(error = %e, "HTTP/3 request refused");
            return;
        }
    };
    let head_only = request.method() == Method::HEAD;
    let Ok(response) = service.oneshot(request).await;
    let (mut head, mut body) = response.into_parts();
    // hyper writes Content-Length from the body's size for HTTP/1.1 and HTTP/2; h3 does not.
    if !head.headers.contains_key(header::CONTENT_LENGTH) && has_body_length(head.status) {
        if let Some(len) = body.size_hint().exact() {
            head.headers.insert(header::CONTENT_LENGTH, len.into());
        }
    }
    if stream
        .send_response(Response::from_parts(head, ()))
        .await
        .is_err()
    {
        return;
    }
    if !head_only {
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else {
                stream.stop_stream(Code::H3_INTERNAL_ERROR);
                return;
            };
            if let Ok(data) = frame.into_data() {
                if !data.is_empty() && stream.send_data(data).await.is_err() {
                    return;
                }
            }
        }
    }
    if stream.finish().await.is_err() {
        return;
    }
    read_to_end(&mut stream, limits.body_read_timeout).await;
}

/// Reads the request stream to its end, or stops it (H3_NO_ERROR: the response is
/// complete, RFC 9114 §4.1) when it is long or slow.
async fn read_to_end(
    stream: &mut RequestStream<h3_quinn::BidiStream<Bytes>, Bytes>,
    timeout: Duration,
) {
    let drained = async {
        let mut read = 0;
        while let Ok(Some(chunk)) = stream.recv_data().await {
            read += chunk.remaining();
            if read > MAX_UNREAD_BODY {
                return false;
            }
        }
        true
    };
    if !matches!(tokio::time::timeout(timeout, drained).await, Ok(true)) {
        stream.stop_sending(Code::H3_NO_ERROR);
    }
}

/// Statuses that carry a body (and so a Content-Length): not 1xx, 204 or 304.
fn has_body_length(status: StatusCode) -> bool {
    !(status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED)
}

/// Decrements a gauge when dropped: a connection counts as open until its task ends.
struct Decrement<'a>(&'a IntGauge);

impl Drop for Decrement<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The QUIC series, registered once.
struct QuicMetrics {
    /// `servy_quic_connections_open`: established and not yet closed.
    open: IntGauge,
    /// `servy_quic_handshake_failures_total`.
    handshake_failures: IntCounter,
    /// `servy_quic_retries_total`: Retry packets sent to validate an address under load.
    retries: IntCounter,
    /// `servy_quic_refused_total`: connections refused at `limits.max_connections`.
    refused: IntCounter,
}

impl QuicMetrics {
    fn register(registry: &Registry) -> QuicMetrics {
        let open = IntGauge::new(
            "servy_quic_connections_open",
            "HTTP/3 (QUIC) connections established and not yet closed.",
        )
        .expect("valid metric");
        let counter = |name: &str, help: &str| IntCounter::new(name, help).expect("valid metric");
        let metrics = QuicMetrics {
            open,
            handshake_failures: counter(
                "servy_quic_handshake_failures_total",
                "QUIC handshakes that failed or timed out.",
            ),
            retries: counter(
                "servy_quic_retries_total",
                "QUIC Retry packets sent to validate a client's address while many handshakes were in flight.",
            ),
            refused: counter(
                "servy_quic_refused_total",
                "QUIC connections refused at limits.max_connections.",
            ),
        };
        for c in [
            Box::new(metrics.open.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(metrics.handshake_failures.clone()),
            Box::new(metrics.retries.clone()),
            Box::new(metrics.refused.clone()),
        ] {
            registry.register(c).expect("metric names are unique");
        }
        metrics
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// servy's own TLS config for QUIC (no certificate is needed to build it).
    fn tls() -> rustls::ServerConfig {
        let config = crate::config::HttpsConfig::default();
        crate::tls::Tls::new(&config, &Registry::new())
            .expect("no files to load")
            .quic_config()
    }

    #[test]
    fn an_endpoint_with_0rtt_on_is_refused() {
        let limits = LimitsConfig::default();
        assert!(server_config(tls(), &limits).is_ok());
        let mut early = tls();
        early.max_early_data_size = u32::MAX;
        let refused = server_config(early, &limits).expect_err("0-RTT on");
        assert!(refused.to_string().contains("0-RTT"), "{refused}");
    }

    #[test]
    fn bodies_are_counted_only_for_statuses_that_carry_one() {
        assert!(has_body_length(StatusCode::OK));
        assert!(has_body_length(StatusCode::PARTIAL_CONTENT));
        assert!(!has_body_length(StatusCode::NOT_MODIFIED));
        assert!(!has_body_length(StatusCode::NO_CONTENT));
    }
}
