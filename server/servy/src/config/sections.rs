//! Every section of the configuration, with its defaults: the schema a `servy.toml`
//! is read into. `mod.rs` and `env.rs` load it; `validate.rs` holds the checks a
//! deserialised section must still pass.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::serde_helpers::{addr_list, duration};

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub http: HttpConfig,
    pub https: HttpsConfig,
    pub metrics: MetricsConfig,
    pub redirects: RedirectsConfig,
    pub log: LogConfig,
    pub cache: CacheConfig,
    pub limits: LimitsConfig,
    pub acme: AcmeConfig,
    pub headers: HeadersConfig,
}

/// Extra response headers by path pattern (`"/*"`, `"/blog/*"`, `"/:year/:slug"`): pattern
/// → header name → value. They join the site's `_headers` and replace a value it gives
/// for the same name, so an operator can tighten a policy without a rebuild.
#[derive(Debug, Clone, Deserialize, Default, PartialEq, Eq)]
#[serde(transparent)]
pub struct HeadersConfig(pub BTreeMap<String, BTreeMap<String, String>>);

/// The main listener. Ignored for sockets passed by systemd as `http`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Addresses to bind; a list, or one comma-separated string (handy in env vars).
    #[serde(with = "addr_list")]
    pub listen: Vec<SocketAddr>,
    /// Answer every request with a 308 to `https://<host><path>`, for hosts a
    /// certificate covers (any other Host is refused, so the redirect is never open).
    pub redirect_to_https: bool,
    /// `auto`: bodies embedded in the binary go out with sendfile(2) from the executable
    /// (HTTP/1.1 without TLS); `off` (the default: it did not win on the blog scenario in
    /// the benchmark): always a vectored write.
    pub zero_copy: ZeroCopyMode,
    /// Smallest body sent with sendfile; below it the copy of a write is cheaper.
    pub zero_copy_min_bytes: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ZeroCopyMode {
    Auto,
    #[default]
    Off,
}

/// The HTTPS listener and its certificates. `listen` is ignored when systemd passes a
/// socket named `https`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpsConfig {
    #[serde(with = "addr_list")]
    pub listen: Vec<SocketAddr>,
    /// `Strict-Transport-Security` value sent on every HTTPS response, if set.
    pub hsts: Option<String>,
    /// Time a client gets to finish the TLS handshake.
    #[serde(with = "duration")]
    pub handshake_timeout: Duration,
    /// Chain + key pairs; SNI picks one, the first is the default.
    pub certificates: Vec<CertificateFiles>,
    /// How often the certificate files are checked for a change (a renewal, a swapped
    /// Kubernetes Secret); a change reloads them as SIGHUP does.
    #[serde(with = "duration")]
    pub watch_interval: Duration,
    /// HTTP/3: QUIC on UDP at the https addresses (or on a socket systemd passes as
    /// `quic`), with the same certificates, and `Alt-Svc` on HTTPS responses.
    pub http3: bool,
}

/// One certificate: PEM chain (leaf first) and PEM private key. A relative path is a
/// name in `$CREDENTIALS_DIRECTORY` when systemd sets it (`LoadCredential=`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The metrics listener: `/metrics`, `/healthz`, `/readyz`, `/debug/pprof/profile`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Empty disables the metrics listener (unless systemd passes a `metrics` socket).
    #[serde(with = "addr_list")]
    pub listen: Vec<SocketAddr>,
    /// Serve a CPU profile at `/debug/pprof/profile?seconds=N`. Off: sampling costs CPU.
    pub profiling: bool,
    /// Upper bound on `seconds` for one profile.
    #[serde(with = "duration")]
    pub profiling_max: Duration,
}

/// Where short links come from and how they are kept fresh.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedirectsConfig {
    /// An http(s) URL or a local file path; `None` means no redirects.
    pub source: Option<RedirectsSource>,
    #[serde(with = "duration")]
    pub refresh_interval: Duration,
    /// A miss may trigger a refresh, but never more often than this.
    #[serde(with = "duration")]
    pub min_refresh_interval: Duration,
    /// 301, 302, 307 or 308.
    pub status: u16,
    /// `Cache-Control: max-age` on redirect responses; short, so a retargeted alias
    /// takes effect within minutes.
    #[serde(with = "duration")]
    pub max_age: Duration,
    /// Send `Access-Control-Allow-Origin: *` on redirects (gosherve did).
    pub cors: bool,
    /// Append `?<name>=<unix time>` to URL fetches to step around CDN caches (gists).
    pub cache_bust: Option<String>,
    /// What happens to a request's query string: `drop` or `append` to the target.
    pub query: QueryPolicy,
    #[serde(with = "duration")]
    pub connect_timeout: Duration,
    #[serde(with = "duration")]
    pub timeout: Duration,
    /// Largest redirects body accepted, in bytes.
    pub max_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedirectsSource {
    Url(String),
    File(PathBuf),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum QueryPolicy {
    #[default]
    Append,
    Drop,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A tracing filter: `info`, `warn,servy=debug`, ...
    pub level: String,
    pub format: LogFormat,
    /// One line per request. On by default; the benchmark turns it off as nginx's access log is.
    pub requests: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// journald when stderr is connected to the journal (`JOURNAL_STREAM`), else text.
    #[default]
    Auto,
    Journald,
    Json,
    Text,
}

/// `Cache-Control` by rule. Values are sent verbatim.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// HTML revalidates every time, so a new deploy is seen at once.
    pub html: String,
    /// Fingerprinted names (`app.3f2a9c1e.css`) never change content.
    pub immutable: String,
    /// Everything else.
    pub default: String,
}

/// Robustness bounds: nothing a client sends can hold the server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Time to receive a request's headers (slowloris).
    #[serde(with = "duration")]
    pub header_read_timeout: Duration,
    /// Accepted so that older configs still load, and otherwise unused: every answer is
    /// built from memory without waiting, so there is nothing for a timer to bound
    /// (`main` says so once when it is set to anything but its default).
    #[serde(with = "duration")]
    pub request_timeout: Duration,
    /// Requests in flight before load shedding answers 503.
    pub max_concurrency: usize,
    /// How long SIGTERM waits for in-flight responses.
    #[serde(with = "duration")]
    pub shutdown_grace: Duration,
    /// Open connections per listener (the site's, the metrics'); at the cap new ones
    /// wait in the kernel's backlog until one closes (nginx's `worker_connections`).
    pub max_connections: usize,
    /// Largest request head (HTTP/1) or header list (HTTP/2), in bytes; an HTTP/1 head
    /// over it gets 431.
    pub max_header_bytes: usize,
    /// Bytes per second a client must take its responses at, averaged over
    /// `send_window`, whenever servy has bytes waiting for it; a slower one (a slow
    /// reader, one that never reads) loses its connection. 0 turns the check off.
    pub min_send_rate: u64,
    /// The span `min_send_rate` is averaged over (nginx's `send_timeout` is 60 s).
    #[serde(with = "duration")]
    pub send_window: Duration,
}

/// hyper refuses a smaller HTTP/1 read buffer than this (its `max_buf_size` asserts it).
pub const MIN_HEADER_BYTES: usize = 8 * 1024;

/// Certificates that servy obtains and renews itself from an ACME CA (RFC 8555).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AcmeConfig {
    /// Host names on the certificate; empty (the default) turns ACME off.
    pub domains: Vec<String>,
    /// A contact for the CA's expiry and policy mail; optional.
    pub email: Option<String>,
    /// The CA's directory URL. Let's Encrypt production by default.
    pub directory: String,
    /// Where the account key and the certificate live; `$STATE_DIRECTORY` (systemd's
    /// `StateDirectory=`) when unset.
    pub state_dir: Option<PathBuf>,
    /// A PEM root certificate to trust for the CA's own HTTPS (a private or test CA);
    /// the system's roots when unset.
    pub ca_roots: Option<PathBuf>,
    pub challenge: AcmeChallenge,
    /// First wait after a failed order; it doubles on each failure up to six hours.
    #[serde(with = "duration")]
    pub retry_min: Duration,
}

/// How the CA checks that servy answers for the domains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
pub enum AcmeChallenge {
    /// RFC 8737: on the https listener, with the `acme-tls/1` ALPN protocol. Needs no
    /// port 80 and works on the socket systemd passes.
    #[default]
    #[serde(rename = "tls-alpn-01")]
    TlsAlpn01,
    /// RFC 8555 §8.3: `/.well-known/acme-challenge/<token>` on the http listener, for
    /// setups where 443 is terminated elsewhere.
    #[serde(rename = "http-01")]
    Http01,
}

/// Let's Encrypt's production directory. Staging, for trying things out without its
/// rate limits: `https://acme-staging-v02.api.letsencrypt.org/directory`.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

impl AcmeConfig {
    pub fn enabled(&self) -> bool {
        !self.domains.is_empty()
    }
}

impl Default for AcmeConfig {
    fn default() -> Self {
        Self {
            domains: Vec::new(),
            email: None,
            directory: LETS_ENCRYPT.into(),
            state_dir: None,
            ca_roots: None,
            challenge: AcmeChallenge::TlsAlpn01,
            retry_min: Duration::from_secs(60),
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 8080))],
            zero_copy: ZeroCopyMode::Off,
            zero_copy_min_bytes: 32 * 1024,
            redirect_to_https: false,
        }
    }
}

impl Default for HttpsConfig {
    fn default() -> Self {
        Self {
            listen: Vec::new(),
            hsts: None,
            handshake_timeout: Duration::from_secs(10),
            certificates: Vec::new(),
            watch_interval: Duration::from_secs(10),
            http3: false,
        }
    }
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 8081))],
            profiling: false,
            profiling_max: Duration::from_secs(60),
        }
    }
}

impl Default for RedirectsConfig {
    fn default() -> Self {
        Self {
            source: None,
            refresh_interval: Duration::from_secs(300),
            min_refresh_interval: Duration::from_secs(10),
            status: 308,
            max_age: Duration::from_secs(300),
            cors: false,
            cache_bust: None,
            query: QueryPolicy::Append,
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(15),
            max_bytes: 1024 * 1024,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: LogFormat::Auto,
            requests: true,
        }
    }
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            html: "no-cache".into(),
            // No `public`: these responses carry no Authorization, so shared caches may
            // store them anyway, and REDbot flags `public` as unnecessary.
            immutable: "max-age=31536000, immutable".into(),
            default: "max-age=3600".into(),
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_concurrency: 4096,
            shutdown_grace: Duration::from_secs(10),
            // Sized for a small VM: 12,000 idle connections fit in MemoryMax=64M with room
            // to spare (docs/benchmarks.md has the memory per connection), and a client
            // holding 10,000 still leaves room for others.
            max_connections: 12_000,
            // nginx allows 8 KiB per line and 32 KiB in all; 16 KiB is plenty for a site
            // that sets no large cookies.
            max_header_bytes: 16 * 1024,
            // 1 KiB/s: GPRS, the slowest mobile data still in service, delivers about
            // five times that, so a phone on a bad link never trips it; a client held
            // below it for a whole window is stalling, not downloading.
            min_send_rate: 1024,
            send_window: Duration::from_secs(60),
        }
    }
}

impl<'de> Deserialize<'de> for RedirectsSource {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.trim().is_empty() {
            return Err(serde::de::Error::custom(
                "redirects source is empty (leave it out for no redirects)",
            ));
        }
        Ok(RedirectsSource::parse(&s))
    }
}

impl RedirectsSource {
    /// `http://` or `https://` is a URL; anything else is a local file path.
    pub fn parse(s: &str) -> Self {
        let s = s.trim();
        if s.starts_with("http://") || s.starts_with("https://") {
            RedirectsSource::Url(s.to_string())
        } else {
            RedirectsSource::File(PathBuf::from(s))
        }
    }
}

impl fmt::Display for RedirectsSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RedirectsSource::Url(u) => f.write_str(u),
            RedirectsSource::File(p) => write!(f, "{}", p.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_is_url_or_path() {
        assert_eq!(
            RedirectsSource::parse("https://x/y"),
            RedirectsSource::Url("https://x/y".into())
        );
        assert_eq!(
            RedirectsSource::parse("./r.txt"),
            RedirectsSource::File("./r.txt".into())
        );
    }
}
