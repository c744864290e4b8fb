//! The whole configuration schema: TOML file, then environment overlay, then validation.
//!
//! Config is validated once here and flows one way: `main` hands each module only its
//! own section (`HttpConfig`, `RedirectsConfig`, ...). Nothing past this file reads
//! environment variables or config files.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// Exit code for a configuration error, distinct so systemd can refuse to restart on it
/// (`RestartPreventExitStatus=78`, EX_CONFIG from sysexits.h).
pub const EXIT_CONFIG: i32 = 78;

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub http: HttpConfig,
    pub metrics: MetricsConfig,
    pub redirects: RedirectsConfig,
    pub log: LogConfig,
    pub cache: CacheConfig,
    pub limits: LimitsConfig,
}

/// The main listener. Ignored for sockets passed by systemd as `http`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub listen: Vec<SocketAddr>,
}

/// The metrics listener: `/metrics`, `/healthz`, `/readyz`, `/debug/pprof/profile`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Empty disables the metrics listener (unless systemd passes a `metrics` socket).
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
    /// Time to produce a response.
    #[serde(with = "duration")]
    pub request_timeout: Duration,
    /// Requests in flight before load shedding answers 503.
    pub max_concurrency: usize,
    /// How long SIGTERM waits for in-flight responses.
    #[serde(with = "duration")]
    pub shutdown_grace: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self { listen: vec![SocketAddr::from(([127, 0, 0, 1], 8080))] }
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
        Self { level: "info".into(), format: LogFormat::Auto, requests: true }
    }
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            html: "no-cache".into(),
            immutable: "public, max-age=31536000, immutable".into(),
            default: "public, max-age=3600".into(),
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
        }
    }
}

// TODO(runtime): Deserialize for RedirectsSource (URL if http(s)://, else path),
// the `duration` serde module ("250ms", "10s", "5m", "1h"), `Config::load(path, env)`,
// the SERVY_<SECTION>_<KEY> overlay plus predecessor variables, and validation.
mod duration {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        super::parse_duration(&s).map_err(serde::de::Error::custom)
    }
}

/// Parses `250ms`, `10s`, `5m`, `1h`, `1d`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("invalid duration {s:?}: expected e.g. \"10s\", \"5m\""))?;
    let secs = match unit.trim() {
        "ms" => return Ok(Duration::from_millis(n)),
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86400,
        _ => return Err(format!("invalid duration {s:?}: unit must be ms, s, m, h or d")),
    };
    Ok(Duration::from_secs(secs))
}

impl<'de> Deserialize<'de> for RedirectsSource {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(RedirectsSource::parse(&s))
    }
}

impl RedirectsSource {
    pub fn parse(s: &str) -> Self {
        if s.starts_with("http://") || s.starts_with("https://") {
            RedirectsSource::Url(s.to_string())
        } else {
            RedirectsSource::File(PathBuf::from(s))
        }
    }
}
