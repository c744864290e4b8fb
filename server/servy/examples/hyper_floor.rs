//! The floor of servy's stack, for benchmarks only (never shipped): a minimal hyper 1 +
//! tokio server that answers every request from memory with the same 4 KiB body and 5
//! fixed headers. What it costs per request is what hyper's parsing and framing plus
//! tokio's I/O cost by themselves; servy's own work is what it spends above this
//! (tests/bench/instructions.py and tests/bench/https.py measure both).
//!
//! HTTP/1.1 and h2c on one port (hyper-util's auto builder reads the preface), or both
//! over TLS by ALPN when given a certificate and key:
//!
//! ```text
//! cargo run --release -p servy --example hyper_floor -- 127.0.0.1:8080 current-thread
//! cargo run --release -p servy --example hyper_floor -- 127.0.0.1:8443 multi-thread cert.pem key.pem
//! ```

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

const BODY: [u8; 4096] = [b'x'; 4096];

fn usage() -> ! {
    eprintln!("usage: hyper_floor ADDRESS current-thread|multi-thread [CERT.pem KEY.pem]");
    std::process::exit(2);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() != 2 && args.len() != 4 {
        usage();
    }
    let address: SocketAddr = args[0].parse().unwrap_or_else(|_| usage());
    let mut runtime = match args[1].as_str() {
        "current-thread" => tokio::runtime::Builder::new_current_thread(),
        "multi-thread" => tokio::runtime::Builder::new_multi_thread(),
        _ => usage(),
    };
    let tls = (args.len() == 4).then(|| acceptor(&args[2], &args[3]));
    let runtime = runtime.enable_all().build().expect("tokio runtime");
    runtime.block_on(serve(address, tls));
}

fn acceptor(cert: &str, key: &str) -> TlsAcceptor {
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .expect("certificate PEM");
    let key = PrivateKeyDer::from_pem_file(key).expect("key PEM");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("certificate and key");
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    TlsAcceptor::from(Arc::new(config))
}

async fn serve(address: SocketAddr, tls: Option<TlsAcceptor>) {
    let listener = TcpListener::bind(address).await.expect("bind");
    eprintln!(
        "hyper_floor: listening on {}",
        listener.local_addr().expect("address")
    );
    let builder = Arc::new(auto::Builder::new(TokioExecutor::new()));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let builder = builder.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(answer);
            match tls {
                None => {
                    let _ = builder
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                }
                Some(tls) => {
                    if let Ok(stream) = tls.accept(stream).await {
                        let _ = builder
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    }
                }
            }
        });
    }
}

async fn answer(_: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut response = Response::new(Full::new(Bytes::from_static(&BODY)));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    headers.insert(
        header::ETAG,
        HeaderValue::from_static("\"0123456789abcdef\""),
    );
    headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Ok(response)
}
