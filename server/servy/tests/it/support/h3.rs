//! An HTTP/3 client for the tests (quinn + h3, trusting only the test CA) behind a
//! blocking API, and a small HTTP/2 client over TLS (h2) to read the headers HTTP/2
//! responses carry. Responses come back as the raw client's [`Response`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes};
use quinn::crypto::rustls::QuicClientConfig;
use rustls::ClientConfig;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::runtime::Runtime;

use super::http::Response;

/// How long one request may take before the test fails.
const TIMEOUT: Duration = Duration::from_secs(10);

/// One QUIC connection speaking HTTP/3, with its own runtime.
pub struct H3 {
    runtime: Runtime,
    connection: quinn::Connection,
    send: h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>,
    host: String,
    endpoint: quinn::Endpoint,
}

/// The head and the whole body of one HTTP/3 response, and whether the stream ended
/// cleanly (its end read, no reset).
pub struct H3Response {
    pub response: Response,
    pub clean_end: bool,
}

impl H3 {
    /// Connects to `addr` with SNI `name`, offering ALPN `h3`.
    pub fn connect(addr: SocketAddr, name: &str, tls: &ClientConfig) -> Result<H3, String> {
        H3::connect_with_window(addr, name, tls, None)
    }

    /// As [`H3::connect`]; with `window`, each response stream may hold only that many
    /// bytes the test has not read, so servy's writes wait for the test's reads.
    pub fn connect_with_window(
        addr: SocketAddr,
        name: &str,
        tls: &ClientConfig,
        window: Option<u32>,
    ) -> Result<H3, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let mut tls = tls.clone();
        tls.alpn_protocols = vec![b"h3".to_vec()];
        let quic = QuicClientConfig::try_from(Arc::new(tls)).map_err(|e| e.to_string())?;
        let (endpoint, connection, send) = runtime.block_on(async {
            let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap())
                .map_err(|e| e.to_string())?;
            let mut client = quinn::ClientConfig::new(Arc::new(quic));
            if let Some(window) = window {
                let mut transport = quinn::TransportConfig::default();
                transport.stream_receive_window(quinn::VarInt::from_u32(window));
                client.transport_config(Arc::new(transport));
            }
            endpoint.set_default_client_config(client);
            let connecting = endpoint.connect(addr, name).map_err(|e| e.to_string())?;
            let connection = tokio::time::timeout(TIMEOUT, connecting)
                .await
                .map_err(|_| "QUIC handshake timed out".to_string())?
                .map_err(|e| format!("QUIC handshake: {e}"))?;
            let (mut driver, send) = h3::client::new(h3_quinn::Connection::new(connection.clone()))
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(async move {
                let _ = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
            });
            Ok::<_, String>((endpoint, connection, send))
        })?;
        Ok(H3 {
            runtime,
            connection,
            send,
            host: name.to_string(),
            endpoint,
        })
    }

    /// The leaf certificate servy presented.
    pub fn peer_leaf(&self) -> CertificateDer<'static> {
        let identity = self.connection.peer_identity().expect("a peer identity");
        let chain = identity
            .downcast::<Vec<CertificateDer<'static>>>()
            .expect("rustls certificates");
        chain[0].clone()
    }

    /// GET `path`.
    pub fn get(&mut self, path: &str) -> Response {
        self.request("GET", path, &[])
    }

    /// One request with `headers`; panics if it fails or the stream does not end cleanly.
    pub fn request(&mut self, method: &str, path: &str, headers: &[(&str, &str)]) -> Response {
        let answer = self
            .exchange(method, path, headers, None)
            .unwrap_or_else(|e| panic!("{method} {path} over HTTP/3: {e}"));
        assert!(
            answer.clean_end,
            "{method} {path}: the stream did not end cleanly"
        );
        answer.response
    }

    /// One request. With `late_body`, the request stream stays open until the whole
    /// response has been read; then `late_body` is sent and the stream finished, which
    /// fails if servy stopped reading the request (STOP_SENDING) after answering.
    pub fn exchange(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        late_body: Option<&'static [u8]>,
    ) -> Result<H3Response, String> {
        let mut request = axum::http::Request::builder()
            .method(method)
            .uri(format!("https://{}{path}", self.host));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(()).map_err(|e| e.to_string())?;
        let send = &mut self.send;
        let work = async {
            let mut stream = send
                .send_request(request)
                .await
                .map_err(|e| e.to_string())?;
            if late_body.is_none() {
                stream.finish().await.map_err(|e| e.to_string())?;
            }
            let head = stream.recv_response().await.map_err(|e| e.to_string())?;
            let mut body = Vec::new();
            let clean_end = read_body(&mut stream, &mut body).await;
            if let Some(late) = late_body {
                // Give a STOP_SENDING from servy time to arrive before writing.
                tokio::time::sleep(Duration::from_millis(200)).await;
                stream
                    .send_data(Bytes::from_static(late))
                    .await
                    .map_err(|e| format!("the request stream was stopped: {e}"))?;
                stream
                    .finish()
                    .await
                    .map_err(|e| format!("the request stream was stopped: {e}"))?;
            }
            let headers = head
                .headers()
                .iter()
                .map(|(n, v)| (n.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
                .collect();
            let response = Response {
                status: head.status().as_u16(),
                headers,
                body,
            };
            Ok(H3Response {
                response,
                clean_end,
            })
        };
        self.runtime.block_on(async {
            tokio::time::timeout(TIMEOUT, work)
                .await
                .map_err(|_| "timed out".to_string())?
        })
    }

    /// GET `path`: the head, then `between()`, then the body; the body, and whether its
    /// stream ended cleanly.
    pub fn get_with_pause(&mut self, path: &str, between: impl FnOnce()) -> (Vec<u8>, bool) {
        let request = axum::http::Request::get(format!("https://{}{path}", self.host))
            .body(())
            .expect("request");
        let send = &mut self.send;
        let mut stream = self.runtime.block_on(async {
            let mut stream = send.send_request(request).await.expect("send request");
            stream.finish().await.expect("finish request");
            let head = stream.recv_response().await.expect("a response head");
            assert_eq!(head.status(), 200, "GET {path}");
            stream
        });
        between();
        self.runtime.block_on(async {
            let mut body = Vec::new();
            let read = read_body(&mut stream, &mut body);
            let clean = tokio::time::timeout(TIMEOUT, read).await.unwrap_or(false);
            (body, clean)
        })
    }

    /// Closes the connection as a client does when it is done (CONNECTION_CLOSE, sent
    /// before the client's runtime goes away).
    pub fn close(self) {
        self.connection
            .close(quinn::VarInt::from_u32(0x100), b"done");
        let endpoint = self.endpoint.clone();
        self.runtime.block_on(async {
            let _ = tokio::time::timeout(TIMEOUT, endpoint.wait_idle()).await;
        });
    }

    /// Waits until the connection is closed (by servy), up to `within`; the reason.
    pub fn closed(&self, within: Duration) -> Option<String> {
        let connection = self.connection.clone();
        self.runtime.block_on(async {
            tokio::time::timeout(within, connection.closed())
                .await
                .ok()
                .map(|e| e.to_string())
        })
    }
}

/// One HTTP/2 GET over TLS; the response head's headers and status.
pub fn h2_get(addr: SocketAddr, name: &str, tls: &ClientConfig, path: &str) -> Response {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut tls = tls.clone();
    tls.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));
    let server_name = ServerName::try_from(name.to_string()).expect("a name");
    let uri = format!("https://{name}{path}");
    runtime.block_on(async move {
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let stream = connector
            .connect(server_name, tcp)
            .await
            .expect("TLS handshake");
        let (mut client, connection) = h2::client::handshake(stream).await.expect("h2 handshake");
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let request = axum::http::Request::get(uri).body(()).expect("request");
        let (response, _) = client.send_request(request, true).expect("send");
        let response = tokio::time::timeout(TIMEOUT, response)
            .await
            .expect("h2 response in time")
            .expect("h2 response");
        let headers = response
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        Response {
            status: response.status().as_u16(),
            headers,
            body: Vec::new(),
        }
    })
}

/// Reads a response body to its end into `body`; whether the stream ended cleanly
/// (rather than reset).
async fn read_body<S: h3::quic::RecvStream>(
    stream: &mut h3::client::RequestStream<S, Bytes>,
    body: &mut Vec<u8>,
) -> bool {
    loop {
        match stream.recv_data().await {
            Ok(Some(mut chunk)) => {
                while chunk.has_remaining() {
                    let part = chunk.chunk();
                    body.extend_from_slice(part);
                    let n = part.len();
                    chunk.advance(n);
                }
            }
            Ok(None) => return true,
            Err(_) => return false,
        }
    }
}
