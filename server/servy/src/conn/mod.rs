//! The connection layer: accepting connections on every listener and running HTTP on
//! them, and the drain at shutdown. First on the request path: `listeners` opens the
//! sockets, this loop accepts, `http1`/`http2` speak the protocol, and each request goes
//! to the request layer (`request/`) as a [`RequestService`]. HTTP/3 has its own
//! endpoint and loop (`http3.rs`), advertised on the https listener by `alt_svc.rs`.
//!
//! Each listener has a [`Transport`]: plain connections sniff HTTP/1 vs h2c; TLS
//! connections do the handshake (in `tls`) and let ALPN choose.
//!
//! hyper-util's connection builder is used directly rather than `axum::serve`, which
//! cannot set a header-read timeout (slowloris).

mod alt_svc;
mod batched_io;
mod cap;
mod held_response;
mod http1;
mod http2;
pub mod http3;
pub mod listeners;
mod send_rate;
pub mod zero_copy;

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use prometheus::{IntCounterVec, Opts, Registry};
use tokio_rustls::server::TlsStream;

use crate::config::LimitsConfig;
use crate::request::RequestService;
use crate::tls::{self, Protocol};
use batched_io::{IntoBatch, PlainBatch};
use cap::ConnectionCap;
use send_rate::{ResetOnClose, SendRate, SendRule};

use zero_copy::ZeroCopy;

pub use alt_svc::AltSvc;

/// Streams one HTTP/2 connection may have open at once (nginx's default).
const H2_MAX_STREAMS: u32 = 128;

/// Bytes a connection's socket may hold not yet sent (`TCP_NOTSENT_LOWAT`, inherited
/// from the listener). Without it the kernel takes up to 4 MiB per connection whatever
/// the client reads, so a slow reader pins megabytes and servy cannot see it is slow:
/// its writes succeed. With it, writes wait once this much is queued, which is when the
/// minimum send rate (`send_rate`) starts to measure. A client that keeps up never
/// finds this much unsent, so it never waits on it.
const NOTSENT_LOWAT: u32 = 128 * 1024;

/// What an HTTP/2 connection without TLS (h2c, prior knowledge) starts with.
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The accept loops of every listener (http, https, metrics) and every connection they
/// started.
pub struct Server {
    builders: Arc<Builders>,
    graceful: Arc<GracefulShutdown>,
    stop: watch::Sender<bool>,
    accepting: Vec<JoinHandle<()>>,
    /// `limits.max_connections`, and each listener's count against it.
    max_connections: usize,
    caps: Vec<ConnectionCap>,
}

/// How an accepted connection becomes a byte stream that speaks HTTP.
#[derive(Clone)]
pub enum Transport {
    Plain,
    Tls(tls::Acceptor),
}

/// One builder per protocol: servy sniffs the protocol itself (see [`sniff`]).
struct Builders {
    /// hyper's own HTTP/1 builder: [`crate::conn::http1`] needs its connection type.
    http1: hyper::server::conn::http1::Builder,
    http2: http2::Settings,
    header_read_timeout: Duration,
    /// sendfile for embedded bodies on plain HTTP/1.1 connections; `None` when off.
    zero_copy: Option<&'static ZeroCopy>,
    /// `limits.min_send_rate` over `limits.send_window` (see [`send_rate`]).
    send_rule: SendRule,
    /// `servy_slow_clients_closed_total{protocol}`: connections closed by that rule.
    slow_clients_closed: IntCounterVec,
}

impl Server {
    pub fn new(
        limits: &LimitsConfig,
        zero_copy: Option<&'static ZeroCopy>,
        registry: &Registry,
    ) -> Server {
        let mut http1 = hyper::server::conn::http1::Builder::new();
        // A head over max_header_bytes gets 431; the read buffer need not grow past it
        // (hyper's floor is 8 KiB). The header-read timeout is `http1`'s own.
        http1
            .header_read_timeout(None)
            .max_header_size(limits.max_header_bytes)
            .max_buf_size(limits.max_header_bytes.max(crate::config::MIN_HEADER_BYTES));
        let http2 = http2::Settings {
            idle_timeout: limits.header_read_timeout,
            max_header_list_size: u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX),
        };
        let builders = Arc::new(Builders {
            http1,
            http2,
            header_read_timeout: limits.header_read_timeout,
            zero_copy,
            send_rule: SendRule {
                min_rate: limits.min_send_rate,
                window: limits.send_window,
            },
            slow_clients_closed: slow_clients_closed(registry),
        });
        Server {
            builders,
            graceful: Arc::new(GracefulShutdown::new()),
            stop: watch::channel(false).0,
            accepting: Vec::new(),
            max_connections: limits.max_connections,
            caps: Vec::new(),
        }
    }

    /// Starts accepting on `listener`, serving each request with `service`.
    pub fn serve<S>(
        &mut self,
        listener: std::net::TcpListener,
        transport: Transport,
        service: S,
    ) -> io::Result<()>
    where
        S: RequestService,
    {
        socket2::SockRef::from(&listener).set_tcp_notsent_lowat(NOTSENT_LOWAT)?;
        let listener = TcpListener::from_std(listener)?;
        // Per listener, so a flood on the site cannot lock out the metrics listener.
        let cap = ConnectionCap::new(self.max_connections);
        self.caps.push(cap.clone());
        let task = accept_loop(
            listener,
            transport,
            service,
            self.builders.clone(),
            self.graceful.clone(),
            cap,
            self.stop.subscribe(),
        );
        self.accepting.push(tokio::spawn(task));
        Ok(())
    }

    /// Stops accepting (the listening sockets close), then lets in-flight requests
    /// finish for up to `grace`. True if every connection finished in time.
    pub async fn drain(self, grace: Duration) -> bool {
        let _ = self.stop.send(true);
        for task in self.accepting {
            let _ = task.await;
        }
        // The accept loops held the only other references.
        let Ok(graceful) = Arc::try_unwrap(self.graceful) else {
            return false;
        };
        // HTTP/2 connections are watched by `graceful`; every connection holds a slot.
        let caps = async {
            for cap in &self.caps {
                cap.all_closed().await;
            }
        };
        let all = async { tokio::join!(graceful.shutdown(), caps) };
        tokio::time::timeout(grace, all).await.is_ok()
    }
}

async fn accept_loop<S>(
    listener: TcpListener,
    transport: Transport,
    service: S,
    builders: Arc<Builders>,
    graceful: Arc<GracefulShutdown>,
    cap: ConnectionCap,
    mut stop: watch::Receiver<bool>,
) where
    S: RequestService,
{
    loop {
        // At the cap, stop accepting until a connection closes (see `cap`).
        let slot = tokio::select! {
            slot = cap.admit() => slot,
            _ = stop.changed() => return,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.changed() => return,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(e) => {
                // Out of fds or memory: back off instead of spinning; the peer whose
                // connection failed is already gone.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Responses are small and written whole: don't let Nagle hold their tails.
        let _ = stream.set_nodelay(true);
        let watcher = graceful.watcher();
        let builders = builders.clone();
        let service = service.clone();
        let mut stop = stop.clone();
        let transport = transport.clone();
        let task = async move {
            // A preconnected browser socket that never spoke must not hold the drain,
            // so both the sniff and the handshake give way to `stop`.
            match transport {
                Transport::Plain => {
                    let sniffed = tokio::select! {
                        sniffed = tokio::time::timeout(builders.header_read_timeout, sniff(stream)) => sniffed,
                        _ = stop.changed() => return,
                    };
                    let Ok(Ok((mut stream, protocol))) = sniffed else {
                        return; // silent, slow or gone before saying anything: close
                    };
                    // h2 interleaves frames of many streams in its own buffers: writes
                    // as before. TLS streams never get here: their bytes are encrypted.
                    if protocol == Protocol::Http1 {
                        stream.zero_copy = builders.zero_copy;
                    }
                    serve_http(stream, protocol, &builders, service, watcher, stop).await;
                }
                Transport::Tls(acceptor) => {
                    let accepted = tokio::select! {
                        accepted = Box::pin(acceptor.accept(stream)) => accepted,
                        _ = stop.changed() => return,
                    };
                    let (stream, protocol) = match accepted {
                        Ok(accepted) => accepted,
                        Err(e) => {
                            tracing::debug!(error = %e, "TLS handshake failed");
                            return;
                        }
                    };
                    // Boxed: a task is sized for its largest state, and a TLS stream is
                    // large; plain connections (most of them, and idle ones) stay small.
                    Box::pin(serve_http(
                        stream, protocol, &builders, service, watcher, stop,
                    ))
                    .await;
                }
            }
            drop(slot);
        };
        tokio::spawn(task);
    }
}

/// HTTP/1 (which gives its buffers back while idle, see [`http1`]) or HTTP/2 on a
/// connection that is ready to speak it. `watcher` holds the drain until it returns.
async fn serve_http<I, S>(
    io: I,
    protocol: Protocol,
    builders: &Builders,
    service: S,
    watcher: Watcher,
    stop: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + ResetOnClose + IntoBatch + Unpin + Send + 'static,
    S: RequestService,
{
    let label = match protocol {
        Protocol::Http1 => "http1",
        Protocol::Http2 => "http2",
        Protocol::AcmeChallenge => return,
    };
    let closed = builders.slow_clients_closed.with_label_values(&[label]);
    match protocol {
        Protocol::Http2 => {
            let (io, outbox) = batched_io::batched(io.into_batch());
            let io = SendRate::new(io, builders.send_rule, closed, label);
            // Boxed, so an HTTP/1 connection's task does not carry room for HTTP/2's state.
            Box::pin(http2::serve(io, outbox, service, &builders.http2, watcher)).await;
        }
        Protocol::Http1 => {
            let io = SendRate::new(io, builders.send_rule, closed, label);
            let timeout = builders.header_read_timeout;
            http1::serve(&builders.http1, io, service, timeout, stop).await;
            drop(watcher);
        }
        // An ACME validator needs the TLS-ALPN-01 handshake only: it was the answer.
        Protocol::AcmeChallenge => {}
    }
}

/// `servy_slow_clients_closed_total{protocol}`, registered once per server.
fn slow_clients_closed(registry: &Registry) -> IntCounterVec {
    let counter = IntCounterVec::new(
        Opts::new(
            "servy_slow_clients_closed_total",
            "Connections closed for taking their responses slower than limits.min_send_rate.",
        ),
        &["protocol"],
    )
    .expect("valid metric");
    registry
        .register(Box::new(counter.clone()))
        .expect("metric names are unique");
    counter
}

impl ResetOnClose for Sniffed {
    fn reset_on_close(&self) {
        let _ = self.stream.set_zero_linger();
    }
}

impl IntoBatch for Sniffed {
    type Batch = PlainBatch<Sniffed>;

    fn into_batch(self) -> PlainBatch<Sniffed> {
        PlainBatch::new(self)
    }
}

impl ResetOnClose for TlsStream<TcpStream> {
    fn reset_on_close(&self) {
        let _ = self.get_ref().0.set_zero_linger();
    }
}

/// Reads just enough to tell HTTP/1 from h2c. hyper-util's own detection has no
/// deadline, so a client that connects and says nothing would hold a connection
/// forever; here it runs under the header-read timeout.
async fn sniff(mut stream: TcpStream) -> io::Result<(Sniffed, Protocol)> {
    let mut head = [0u8; 24];
    let mut len = 0;
    loop {
        let n = stream.read(&mut head[len..]).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        len += n;
        let still_h2 = head[..len] == H2_PREFACE[..len];
        if !still_h2 || len == head.len() {
            let sniffed = Sniffed {
                head,
                len,
                pos: 0,
                stream,
                zero_copy: None,
            };
            let protocol = match still_h2 {
                true => Protocol::Http2,
                false => Protocol::Http1,
            };
            return Ok((sniffed, protocol));
        }
    }
}

/// A stream that first replays the bytes [`sniff`] read, and writes embedded bodies
/// with [`ZeroCopy`] when it is set.
struct Sniffed {
    head: [u8; 24],
    len: usize,
    pos: usize,
    stream: TcpStream,
    zero_copy: Option<&'static ZeroCopy>,
}

impl AsyncRead for Sniffed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.pos < self.len {
            let n = (self.len - self.pos).min(buf.remaining());
            let start = self.pos;
            buf.put_slice(&self.head[start..start + n]);
            self.pos += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Sniffed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.zero_copy {
            Some(zero_copy) => zero_copy.poll_write_vectored(&mut self.stream, cx, bufs),
            None => Pin::new(&mut self.stream).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
