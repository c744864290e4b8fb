//! Getting the redirects file's text: from an http(s) URL or a local file, bounded in time
//! and size. Runs on the refresher task only, never on the request path.
//!
//! URL fetches are conditional (`If-None-Match` / `If-Modified-Since` from the last
//! accepted body, so an unchanged file costs a 304), may carry a cache-busting query
//! parameter (gist CDNs serve stale copies otherwise), and stop reading as soon as the body
//! passes `max_bytes` rather than buffering whatever upstream sends.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::{ETAG, HeaderValue, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED};
use reqwest::{StatusCode, Url};
use tokio::io::AsyncReadExt;

use crate::config::{RedirectsConfig, RedirectsSource};

/// Why a refresh did not produce a new map. The variant name is the bounded `result`
/// label of `servy_redirects_refreshes_total` and the `result` log field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Connecting or the whole fetch took longer than its timeout.
    Timeout,
    /// No connection: refused, unreachable, DNS, TLS handshake.
    Connect,
    /// Connected, but the exchange broke: connection dropped, malformed response.
    Http,
    /// Upstream answered with a non-2xx status (other than a 304 to our conditional GET).
    Status(u16),
    /// The body is larger than `max_bytes`.
    TooLarge,
    /// The body is not UTF-8 text.
    NotUtf8,
    /// The body holds no valid line: an emptied or truncated file is kept out.
    Empty,
    /// Reading the local file failed.
    Io(io::ErrorKind),
    /// No HTTP client could be built (e.g. a machine without CA certificates). The site
    /// still serves; each refresh tries again and says why it cannot fetch.
    Client(String),
}

impl Failure {
    /// The metric label: a fixed set, never a value upstream chooses.
    pub fn label(&self) -> &'static str {
        match self {
            Failure::Timeout => "timeout",
            Failure::Connect => "connect",
            Failure::Http => "http",
            Failure::Status(_) => "status",
            Failure::TooLarge => "too_large",
            Failure::NotUtf8 => "not_utf8",
            Failure::Empty => "empty",
            Failure::Io(_) => "io",
            Failure::Client(_) => "client",
        }
    }

    fn from_reqwest(e: &reqwest::Error) -> Failure {
        if e.is_timeout() {
            Failure::Timeout
        } else if e.is_connect() {
            Failure::Connect
        } else {
            Failure::Http
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Timeout => f.write_str("timed out"),
            Failure::Connect => f.write_str("could not connect"),
            Failure::Http => f.write_str("the HTTP exchange failed"),
            Failure::Status(code) => write!(f, "upstream answered {code}"),
            Failure::TooLarge => f.write_str("body larger than redirects.max_bytes"),
            Failure::NotUtf8 => f.write_str("body is not UTF-8 text"),
            Failure::Empty => f.write_str("no valid redirect line"),
            Failure::Io(kind) => write!(f, "read failed: {kind}"),
            Failure::Client(reason) => write!(f, "no HTTP client: {reason}"),
        }
    }
}

/// What upstream last said about the body we accepted, sent back on the next fetch.
#[derive(Debug, Clone, Default)]
pub struct Validators {
    etag: Option<HeaderValue>,
    last_modified: Option<HeaderValue>,
}

#[derive(Debug)]
pub enum Fetched {
    /// A new body, with the validators to keep if the caller accepts it.
    Body {
        text: String,
        validators: Validators,
    },
    /// 304: what we have is current.
    NotModified,
}

/// One configured source, with its client and the validators of the last accepted body.
pub struct Fetcher {
    source: Source,
    max_bytes: u64,
    timeout: Duration,
    validators: Validators,
}

enum Source {
    Url {
        /// Built once; an error here must not stop servy from serving its site.
        client: Result<reqwest::Client, String>,
        url: Url,
        cache_bust: Option<String>,
    },
    File(PathBuf),
}

impl Fetcher {
    /// A source that cannot be fetched from at all (a malformed URL) is refused here, with
    /// the reason as one line, before anything is bound.
    pub fn new(source: &RedirectsSource, config: &RedirectsConfig) -> Result<Fetcher, String> {
        let source = match source {
            RedirectsSource::File(path) => Source::File(path.clone()),
            RedirectsSource::Url(url) => {
                let url = Url::parse(url).map_err(|e| format!("redirects.source {url:?}: {e}"))?;
                Source::Url {
                    client: client(config, url.scheme() == "https"),
                    url,
                    cache_bust: config.cache_bust.clone(),
                }
            }
        };
        Ok(Fetcher {
            source,
            max_bytes: config.max_bytes,
            timeout: config.timeout,
            validators: Validators::default(),
        })
    }

    /// The source as logs show it.
    pub fn describe(&self) -> String {
        match &self.source {
            Source::Url { url, .. } => url.to_string(),
            Source::File(path) => path.display().to_string(),
        }
    }

    pub async fn fetch(&self) -> Result<Fetched, Failure> {
        match &self.source {
            Source::Url {
                client,
                url,
                cache_bust,
            } => match client {
                Ok(client) => self.fetch_url(client, url, cache_bust.as_deref()).await,
                Err(reason) => Err(Failure::Client(reason.clone())),
            },
            // A FIFO or a hung network mount must not wedge the refresher either.
            Source::File(path) => tokio::time::timeout(self.timeout, self.read_file(path))
                .await
                .unwrap_or(Err(Failure::Timeout)),
        }
    }

    /// Keep the validators of a body that became the map, for the next conditional GET.
    pub fn accept(&mut self, validators: Validators) {
        self.validators = validators;
    }

    async fn fetch_url(
        &self,
        client: &reqwest::Client,
        url: &Url,
        cache_bust: Option<&str>,
    ) -> Result<Fetched, Failure> {
        let mut url = url.clone();
        if let Some(name) = cache_bust {
            let secs = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs();
            url.query_pairs_mut().append_pair(name, &secs.to_string());
        }
        let mut request = client.get(url);
        if let Some(etag) = &self.validators.etag {
            request = request.header(IF_NONE_MATCH, etag.clone());
        }
        if let Some(date) = &self.validators.last_modified {
            request = request.header(IF_MODIFIED_SINCE, date.clone());
        }
        let mut response = request
            .send()
            .await
            .map_err(|e| Failure::from_reqwest(&e))?;
        let status = response.status();
        let conditional = self.validators.etag.is_some() || self.validators.last_modified.is_some();
        if status == StatusCode::NOT_MODIFIED && conditional {
            return Ok(Fetched::NotModified);
        }
        if !status.is_success() {
            return Err(Failure::Status(status.as_u16()));
        }
        if response
            .content_length()
            .is_some_and(|len| len > self.max_bytes)
        {
            return Err(Failure::TooLarge);
        }
        let validators = Validators {
            etag: response.headers().get(ETAG).cloned(),
            last_modified: response.headers().get(LAST_MODIFIED).cloned(),
        };
        // Chunk by chunk, so a lying or absent Content-Length cannot make us buffer more
        // than the cap.
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| Failure::from_reqwest(&e))?
        {
            if (body.len() + chunk.len()) as u64 > self.max_bytes {
                return Err(Failure::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        let text = String::from_utf8(body).map_err(|_| Failure::NotUtf8)?;
        Ok(Fetched::Body { text, validators })
    }

    async fn read_file(&self, path: &PathBuf) -> Result<Fetched, Failure> {
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|e| Failure::Io(e.kind()))?;
        let mut body = Vec::new();
        // One byte over the cap tells "too large" from "exactly the cap".
        file.take(self.max_bytes.saturating_add(1))
            .read_to_end(&mut body)
            .await
            .map_err(|e| Failure::Io(e.kind()))?;
        if body.len() as u64 > self.max_bytes {
            return Err(Failure::TooLarge);
        }
        let text = String::from_utf8(body).map_err(|_| Failure::NotUtf8)?;
        Ok(Fetched::Body {
            text,
            validators: Validators::default(),
        })
    }
}

/// One client for the process's life: connection reuse, rustls with the ring provider and
/// the platform's roots, both timeouts, and a User-Agent upstream logs can recognise.
fn client(config: &RedirectsConfig, https: bool) -> Result<reqwest::Client, String> {
    // reqwest is built without a default crypto provider; installing one twice is harmless
    // (the error only says one is there already).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut builder = reqwest::Client::builder();
    if !https {
        // A plain-http source needs no certificate roots, so a machine without any
        // (a minimal container) can still fetch it.
        builder = builder.tls_certs_only(std::iter::empty());
    }
    builder
        .connect_timeout(config.connect_timeout)
        .timeout(config.timeout)
        .user_agent(concat!("servy/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| {
            let mut reason = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                reason = format!("{reason}: {s}");
                source = s.source();
            }
            reason
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file_fetcher(content: &[u8], max_bytes: u64) -> (Fetcher, tempfile_path::TempPath) {
        let path = tempfile_path::TempPath::new();
        std::fs::File::create(&path.0)
            .and_then(|mut f| f.write_all(content))
            .expect("write temp file");
        let config = RedirectsConfig {
            max_bytes,
            ..Default::default()
        };
        let fetcher =
            Fetcher::new(&RedirectsSource::File(path.0.clone()), &config).expect("file source");
        (fetcher, path)
    }

    /// A unique file under the temp dir, removed on drop (no extra dependency for one use).
    mod tempfile_path {
        use std::path::PathBuf;
        use std::sync::atomic::{AtomicUsize, Ordering};

        pub struct TempPath(pub PathBuf);

        impl TempPath {
            pub fn new() -> Self {
                static N: AtomicUsize = AtomicUsize::new(0);
                let n = N.fetch_add(1, Ordering::Relaxed);
                TempPath(
                    std::env::temp_dir()
                        .join(format!("servy-fetch-test-{}-{n}", std::process::id())),
                )
            }
        }

        impl Drop for TempPath {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.0);
            }
        }
    }

    #[tokio::test]
    async fn a_file_is_read_up_to_the_cap() {
        let (f, _p) = file_fetcher(b"gh https://x.example\n", 21);
        assert!(
            matches!(f.fetch().await, Ok(Fetched::Body { text, .. }) if text == "gh https://x.example\n")
        );
        let (f, _p) = file_fetcher(b"gh https://x.example\n", 20);
        assert_eq!(f.fetch().await.err(), Some(Failure::TooLarge));
    }

    #[tokio::test]
    async fn a_non_utf8_file_is_refused() {
        let (f, _p) = file_fetcher(b"gh https://x.example/\xff\n", 1024);
        assert_eq!(f.fetch().await.err(), Some(Failure::NotUtf8));
    }

    #[tokio::test]
    async fn a_missing_file_is_an_io_failure() {
        let config = RedirectsConfig::default();
        let f = Fetcher::new(
            &RedirectsSource::File("/nonexistent/servy/redirects.txt".into()),
            &config,
        )
        .unwrap();
        assert_eq!(
            f.fetch().await.err(),
            Some(Failure::Io(io::ErrorKind::NotFound))
        );
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_connect_failure() {
        // Bind then drop: the port is (almost certainly) closed for the next moment.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let source = RedirectsSource::Url(format!("http://127.0.0.1:{port}/redirects.txt"));
        let f = Fetcher::new(&source, &RedirectsConfig::default()).unwrap();
        assert_eq!(f.fetch().await.err(), Some(Failure::Connect));
    }

    #[test]
    fn a_bad_url_is_a_build_error() {
        let source = RedirectsSource::Url("http://exa mple/".into());
        assert!(Fetcher::new(&source, &RedirectsConfig::default()).is_err());
    }

    #[test]
    fn labels_are_a_fixed_set() {
        assert_eq!(Failure::Status(503).label(), "status");
        assert_eq!(Failure::Io(io::ErrorKind::PermissionDenied).label(), "io");
        assert_eq!(Failure::Status(503).to_string(), "upstream answered 503");
    }
}
