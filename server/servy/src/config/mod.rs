//! The whole configuration schema: TOML file, then environment overlay, then validation.
//!
//! Config is validated once here and flows one way: `main` hands each module only its
//! own section (`HttpConfig`, `RedirectsConfig`, ...). Nothing past this file reads
//! environment variables or config files.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Exit code for a configuration error, distinct so systemd can refuse to restart on it
/// (`RestartPreventExitStatus=78`, EX_CONFIG from sysexits.h).
pub const EXIT_CONFIG: i32 = 78;

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
    /// Time to produce a response.
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
            // Sized for a small VM: at about 4 KiB each, 12,000 idle connections fit in
            // MemoryMax=64M with room to spare, and a client holding 10,000 still leaves
            // room for others.
            max_connections: 12_000,
            // nginx allows 8 KiB per line and 32 KiB in all; 16 KiB is plenty for a site
            // that sets no large cookies.
            max_header_bytes: 16 * 1024,
        }
    }
}

/// Why a configuration was refused, as one line: the file and line, or the variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(String);

impl fmt::Display for ConfigError {
    /// Always one line: a reason quoted from a parser may carry newlines of its own.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut lines = self.0.lines().map(str::trim).filter(|l| !l.is_empty());
        if let Some(first) = lines.next() {
            f.write_str(first)?;
        }
        lines.try_for_each(|l| write!(f, " {l}"))
    }
}

impl std::error::Error for ConfigError {}

/// The sections `SERVY_<SECTION>_<KEY>` may address. Other `SERVY_*` variables (such as
/// the build-time `SERVY_ASSETS_DIR`) are not ours to judge and are ignored.
const SECTIONS: [&str; 8] = [
    "http",
    "https",
    "metrics",
    "redirects",
    "log",
    "cache",
    "limits",
    "acme",
];

impl Config {
    /// The file (if any), then the environment, then validation. `env` is passed in so
    /// nothing else in servy reads configuration from the environment, and tests can
    /// hand in exactly the variables they mean.
    ///
    /// Precedence, lowest first: defaults, the file, the predecessor's variables
    /// (`SERVY_HOST`, `SERVY_PORT`, `SERVY_METRICS_PORT`, `SERVY_REDIRECTS_URL`), then
    /// `SERVY_<SECTION>_<KEY>`, so the precise new name wins over an old alias.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut credentials = None;
        let mut state_directory = None;
        let env: Vec<(String, String)> = env
            .into_iter()
            .filter(|(k, v)| {
                // systemd's `LoadCredential=` directory: where relative certificate names live.
                if k == "CREDENTIALS_DIRECTORY" {
                    credentials = Some(PathBuf::from(v));
                }
                // systemd's `StateDirectory=` (a colon-separated list when there are several).
                if k == "STATE_DIRECTORY" && !v.is_empty() {
                    state_directory = v.split(':').next().map(PathBuf::from);
                }
                k != "CREDENTIALS_DIRECTORY"
            })
            .collect();
        let (mut table, file_config) = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| ConfigError(format!("reading {}: {e}", path.display())))?;
                // Deserialising the text itself keeps spans, so an unknown key names its line.
                let config: Config = toml::from_str(&text)
                    .map_err(|e| ConfigError(describe(&path.display().to_string(), &text, &e)))?;
                let table: toml::Table = text
                    .parse()
                    .map_err(|e| ConfigError(describe("", &text, &e)))?;
                (table, config)
            }
            None => (toml::Table::new(), Config::default()),
        };

        let overrides = overrides(env, &file_config)?;
        let mut config = file_config;
        for o in overrides {
            let section = table
                .entry(o.section)
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            let Some(section) = section.as_table_mut() else {
                return Err(ConfigError(format!(
                    "{}: [{}] is not a table",
                    o.var, o.section
                )));
            };
            section.insert(o.key.clone(), o.value);
            // One variable at a time, so an error names the variable that caused it.
            config =
                toml::Value::Table(table.clone())
                    .try_into()
                    .map_err(|e: toml::de::Error| {
                        ConfigError(format!("{}: {}", o.var, e.message().trim()))
                    })?;
        }
        if config.acme.state_dir.is_none() {
            config.acme.state_dir = state_directory;
        }
        config.validate()?;
        if let Some(dir) = credentials {
            for files in &mut config.https.certificates {
                files.cert = dir.join(&files.cert);
                files.key = dir.join(&files.key);
            }
        }
        Ok(config)
    }

    /// Contradictions and values that would misbehave at run time.
    fn validate(&self) -> Result<(), ConfigError> {
        let err = |m: String| Err(ConfigError(m));
        let r = &self.redirects;
        if ![301, 302, 307, 308].contains(&r.status) {
            return err(format!(
                "redirects.status = {}: must be 301, 302, 307 or 308",
                r.status
            ));
        }
        for (name, d) in [
            ("redirects.refresh_interval", r.refresh_interval),
            ("redirects.min_refresh_interval", r.min_refresh_interval),
            ("redirects.connect_timeout", r.connect_timeout),
            ("redirects.timeout", r.timeout),
            (
                "limits.header_read_timeout",
                self.limits.header_read_timeout,
            ),
            ("limits.request_timeout", self.limits.request_timeout),
            ("limits.shutdown_grace", self.limits.shutdown_grace),
            ("metrics.profiling_max", self.metrics.profiling_max),
            ("acme.retry_min", self.acme.retry_min),
            ("https.handshake_timeout", self.https.handshake_timeout),
        ] {
            if d.is_zero() {
                return err(format!("{name} must be greater than zero"));
            }
        }
        if r.min_refresh_interval > r.refresh_interval {
            return err(format!(
                "redirects.min_refresh_interval ({:?}) is longer than redirects.refresh_interval ({:?})",
                r.min_refresh_interval, r.refresh_interval
            ));
        }
        if r.max_bytes == 0 {
            return err("redirects.max_bytes must be greater than zero".into());
        }
        if let Some(name) = &r.cache_bust {
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b))
            {
                return err(format!(
                    "redirects.cache_bust = {name:?}: must be a plain query parameter name"
                ));
            }
        }
        if let Some(RedirectsSource::Url(url)) = &r.source {
            if url
                .split_once("://")
                .is_none_or(|(_, rest)| rest.is_empty() || rest.starts_with('/'))
            {
                return err(format!("redirects.source = {url:?}: URL has no host"));
            }
        }
        if self.limits.max_concurrency == 0 {
            return err("limits.max_concurrency must be at least 1".into());
        }
        if self.limits.max_connections == 0 {
            return err("limits.max_connections must be at least 1".into());
        }
        if !(MIN_HEADER_BYTES..=1024 * 1024).contains(&self.limits.max_header_bytes) {
            return err(format!(
                "limits.max_header_bytes = {}: must be between {MIN_HEADER_BYTES} and 1048576",
                self.limits.max_header_bytes
            ));
        }
        let listens = [
            ("http.listen", &self.http.listen),
            ("https.listen", &self.https.listen),
            ("metrics.listen", &self.metrics.listen),
        ];
        for (i, (a_name, a)) in listens.iter().enumerate() {
            for (b_name, b) in &listens[i + 1..] {
                if let Some(addr) = a.iter().find(|x| b.contains(x)) {
                    return err(format!("{a_name} and {b_name} both contain {addr}"));
                }
            }
        }
        let https = &self.https;
        // With [acme], the certificates come from the CA instead of files.
        let no_certificates = https.certificates.is_empty() && !self.acme.enabled();
        if no_certificates && !https.listen.is_empty() {
            return err(
                "https.listen is set but https.certificates is empty and [acme] is off".into(),
            );
        }
        if no_certificates && self.http.redirect_to_https {
            return err("http.redirect_to_https needs https.certificates or [acme]".into());
        }
        if let Some(hsts) = &https.hsts {
            if hsts.is_empty() || !hsts.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) {
                return err(format!(
                    "https.hsts = {hsts:?}: not a valid Strict-Transport-Security value"
                ));
            }
        }
        // tracing-subscriber 0.3.23 panics on non-ASCII before an `=` (it slices the
        // directive by bytes); targets and levels are ASCII, so refuse anything else first.
        // Found by the property test below.
        if !self.log.level.is_ascii() {
            return err(format!(
                "log.level = {:?}: must be ASCII (targets and levels such as \"info,servy=debug\")",
                self.log.level
            ));
        }
        self.acme.validate()?;
        if self.acme.enabled()
            && self.acme.challenge == AcmeChallenge::Http01
            && self.http.redirect_to_https
        {
            return err(
                "acme.challenge = \"http-01\" needs plain HTTP on the http listener, but http.redirect_to_https is on (use tls-alpn-01)"
                    .into(),
            );
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            return err(format!("log.level = {:?}: {e}", self.log.level));
        }
        for (name, value) in [
            ("cache.html", &self.cache.html),
            ("cache.immutable", &self.cache.immutable),
            ("cache.default", &self.cache.default),
        ] {
            if value.is_empty()
                || !value
                    .bytes()
                    .all(|b| b == b' ' || b == b'\t' || b.is_ascii_graphic())
            {
                return err(format!(
                    "{name} = {value:?}: not a valid Cache-Control header value"
                ));
            }
        }
        for (pattern, headers) in &self.headers.0 {
            if let Err(reason) = servy_rules::pattern::Pattern::parse(pattern) {
                return err(format!("headers.{pattern:?}: {reason}"));
            }
            for (name, value) in headers {
                if let Err(reason) = servy_rules::check_header(name, value) {
                    return err(format!("headers.{pattern:?}.{name} = {value:?}: {reason}"));
                }
            }
        }
        Ok(())
    }
}

impl AcmeConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let err = |m: String| Err(ConfigError(m));
        if !self.enabled() {
            return Ok(());
        }
        for domain in &self.domains {
            if !is_host_name(domain) {
                return err(format!(
                    "acme.domains: {domain:?} is not a host name (lower case, no wildcard: \
                     TLS-ALPN-01 and HTTP-01 cannot prove a wildcard)"
                ));
            }
        }
        if let Some(email) = &self.email {
            let ok = email.split_once('@').is_some_and(|(user, host)| {
                !user.is_empty()
                    && !host.is_empty()
                    && !email.contains(|c: char| c.is_whitespace() || c == ',')
            });
            if !ok {
                return err(format!("acme.email = {email:?}: not an e-mail address"));
            }
        }
        // RFC 8555 §6.1: ACME runs over HTTPS only.
        if self
            .directory
            .strip_prefix("https://")
            .is_none_or(|rest| rest.is_empty() || rest.starts_with('/'))
        {
            return err(format!(
                "acme.directory = {:?}: must be an https:// URL",
                self.directory
            ));
        }
        match &self.state_dir {
            None => err(
                "acme.state_dir: not set, and $STATE_DIRECTORY is unset (StateDirectory=servy in the unit sets it)"
                    .into(),
            ),
            Some(dir) if !dir.is_absolute() => err(format!(
                "acme.state_dir = {:?}: must be an absolute path",
                dir.display()
            )),
            Some(_) => Ok(()),
        }
    }
}

/// A DNS name a CA will certify: lower-case LDH labels, at least two of them.
fn is_host_name(name: &str) -> bool {
    let labels: Vec<&str> = name.split('.').collect();
    name.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

/// One line out of a toml error: `file: line N: message`.
fn describe(file: &str, text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim().replace('\n', " ");
    let prefix = if file.is_empty() {
        String::new()
    } else {
        format!("{file}: ")
    };
    match e.span() {
        Some(span) => {
            let line = text.as_bytes()[..span.start.min(text.len())]
                .iter()
                .filter(|b| **b == b'\n')
                .count()
                + 1;
            format!("{prefix}line {line}: {message}")
        }
        None => format!("{prefix}{message}"),
    }
}

/// One environment variable, resolved to a key in a section.
struct Override {
    var: String,
    section: &'static str,
    key: String,
    value: toml::Value,
}

/// Reads `SERVY_*` variables into overrides, in precedence order (lowest first).
/// `base` supplies the half of an address a predecessor variable leaves out.
fn overrides(
    env: impl IntoIterator<Item = (String, String)>,
    base: &Config,
) -> Result<Vec<Override>, ConfigError> {
    let mut legacy = Vec::new();
    let mut generic = Vec::new();
    let (mut host, mut port, mut metrics_port) = (None, None, None);
    for (var, raw) in env {
        let Some(rest) = var.strip_prefix("SERVY_").map(str::to_string) else {
            continue;
        };
        match rest.as_str() {
            "HOST" => host = Some(raw),
            "PORT" => port = Some(raw),
            "METRICS_PORT" => metrics_port = Some(raw),
            "REDIRECTS_URL" => legacy.push(Override {
                var,
                section: "redirects",
                key: "source".into(),
                value: toml::Value::String(raw),
            }),
            _ => {
                let Some((section, key)) = rest.split_once('_') else {
                    continue;
                };
                let section = section.to_ascii_lowercase();
                let Some(section) = SECTIONS.iter().copied().find(|s| *s == section) else {
                    continue;
                };
                generic.push(Override {
                    var,
                    section,
                    key: key.to_ascii_lowercase(),
                    value: env_value(&raw),
                });
            }
        }
    }

    let parse_host = |h: &str| -> Result<IpAddr, ConfigError> {
        if h.eq_ignore_ascii_case("localhost") {
            return Ok(IpAddr::from([127, 0, 0, 1]));
        }
        h.trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| ConfigError(format!("SERVY_HOST={h:?}: not an IP address")))
    };
    let parse_port = |var: &str, p: &str| -> Result<u16, ConfigError> {
        p.trim()
            .parse()
            .map_err(|_| ConfigError(format!("{var}={p:?}: not a port number")))
    };
    let host = host.as_deref().map(parse_host).transpose()?;
    let first_http = base
        .http
        .listen
        .first()
        .copied()
        .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 8080)));
    if host.is_some() || port.is_some() {
        let port = match &port {
            Some(p) => parse_port("SERVY_PORT", p)?,
            None => first_http.port(),
        };
        let addr = SocketAddr::new(host.unwrap_or(first_http.ip()), port);
        let var = if host.is_some() {
            "SERVY_HOST"
        } else {
            "SERVY_PORT"
        };
        legacy.push(Override {
            var: var.into(),
            section: "http",
            key: "listen".into(),
            value: addr_value(addr),
        });
    }
    if let Some(p) = &metrics_port {
        // The predecessor served metrics on the same host as the site.
        let ip = host
            .or(base.metrics.listen.first().map(SocketAddr::ip))
            .unwrap_or(first_http.ip());
        let addr = SocketAddr::new(ip, parse_port("SERVY_METRICS_PORT", p)?);
        legacy.push(Override {
            var: "SERVY_METRICS_PORT".into(),
            section: "metrics",
            key: "listen".into(),
            value: addr_value(addr),
        });
    }
    legacy.extend(generic);
    Ok(legacy)
}

fn addr_value(addr: SocketAddr) -> toml::Value {
    toml::Value::Array(vec![toml::Value::String(addr.to_string())])
}

/// An environment value is read as a TOML value when it is one (`308`, `true`,
/// `["a", "b"]`, `"quoted"`), else as a plain string (`5m`, `info`, a URL, a
/// comma-separated address list).
fn env_value(raw: &str) -> toml::Value {
    match format!("v = {raw}").parse::<toml::Table>() {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(raw.to_string())),
        Err(_) => toml::Value::String(raw.to_string()),
    }
}

/// Durations as `"250ms"`, `"10s"`, `"5m"`, `"1h"`, `"1d"`, or an integer of seconds.
mod duration {
    use serde::Deserializer;
    use serde::de::{self, Visitor};
    use std::fmt;
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration such as \"10s\" or \"5m\"")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Duration, E> {
                super::parse_duration(s).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Duration, E> {
                Ok(Duration::from_secs(n))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Duration, E> {
                u64::try_from(n)
                    .map(Duration::from_secs)
                    .map_err(|_| E::custom("a duration cannot be negative"))
            }
        }
        d.deserialize_any(V)
    }
}

/// Socket addresses as a list, or as one comma-separated string.
mod addr_list {
    use serde::Deserializer;
    use serde::de::{self, SeqAccess, Visitor};
    use std::fmt;
    use std::net::SocketAddr;

    fn parse<E: de::Error>(s: &str) -> Result<SocketAddr, E> {
        s.trim().parse().map_err(|_| {
            E::custom(format!(
                "invalid socket address {s:?}: expected e.g. \"127.0.0.1:8080\" or \"[::1]:8080\""
            ))
        })
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<SocketAddr>, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Vec<SocketAddr>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of socket addresses")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
                s.split(',')
                    .filter(|p| !p.trim().is_empty())
                    .map(parse)
                    .collect()
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    out.push(parse(&s)?);
                }
                Ok(out)
            }
        }
        d.deserialize_any(V)
    }
}

/// Parses `250ms`, `10s`, `5m`, `1h`, `1d`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: expected e.g. \"10s\", \"5m\""))?;
    let scale = match unit.trim() {
        "ms" => return Ok(Duration::from_millis(n)),
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => {
            return Err(format!(
                "invalid duration {s:?}: unit must be ms, s, m, h or d"
            ));
        }
    };
    n.checked_mul(scale)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("duration {s:?} is too long"))
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

    fn load(toml: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = std::env::temp_dir().join(format!(
            "servy-config-test-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("servy.toml");
        std::fs::write(&path, toml).unwrap();
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        let result = Config::load(Some(&path), env);
        let _ = std::fs::remove_dir_all(&dir);
        result
    }

    fn message(r: Result<Config, ConfigError>) -> String {
        r.expect_err("expected a config error").to_string()
    }

    #[test]
    fn empty_file_is_the_defaults() {
        let c = load("", &[]).unwrap();
        assert_eq!(c.http.listen, vec!["127.0.0.1:8080".parse().unwrap()]);
        assert_eq!(c.redirects.status, 308);
        assert_eq!(c.redirects.source, None);
    }

    #[test]
    fn zero_copy_mode_from_file_and_environment() {
        assert_eq!(load("", &[]).unwrap().http.zero_copy, ZeroCopyMode::Off);
        let c = load(
            "[http]\nzero_copy = \"auto\"\nzero_copy_min_bytes = 1\n",
            &[],
        )
        .unwrap();
        assert_eq!(
            (c.http.zero_copy, c.http.zero_copy_min_bytes),
            (ZeroCopyMode::Auto, 1)
        );
        let c = load("", &[("SERVY_HTTP_ZERO_COPY", "auto")]).unwrap();
        assert_eq!(c.http.zero_copy, ZeroCopyMode::Auto);
        let m = message(load("[http]\nzero_copy = \"always\"\n", &[]));
        assert!(m.contains("line 2") && m.contains("always"), "{m}");
    }

    #[test]
    fn no_file_is_the_defaults() {
        let c = Config::load(None, std::iter::empty()).unwrap();
        assert_eq!(c.metrics.listen, vec!["127.0.0.1:8081".parse().unwrap()]);
    }

    #[test]
    fn issue_example_parses() {
        let c = load(
            r#"
[http]
listen = ["127.0.0.1:8080"]
[metrics]
listen = ["127.0.0.1:8081"]
[redirects]
source = "http://127.0.0.1:9000/redirects.txt"
refresh_interval = "5m"
min_refresh_interval = "10s"
status = 308
[log]
level = "info"
format = "auto"
"#,
            &[],
        )
        .unwrap();
        assert_eq!(
            c.redirects.source,
            Some(RedirectsSource::Url(
                "http://127.0.0.1:9000/redirects.txt".into()
            ))
        );
        assert_eq!(c.redirects.refresh_interval, Duration::from_secs(300));
        assert_eq!(c.log.format, LogFormat::Auto);
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let m = message(load(
            "[http]\nlisten = []\n\n[redirects]\nstatuss = 301\n",
            &[],
        ));
        assert!(m.contains("line 5"), "{m}");
        assert!(m.contains("statuss"), "{m}");
        assert!(!m.contains('\n'), "one line: {m}");
    }

    #[test]
    fn unknown_section_names_it() {
        let m = message(load("[htpp]\nlisten = []\n", &[]));
        assert!(m.contains("line 1") && m.contains("htpp"), "{m}");
    }

    #[test]
    fn syntax_error_names_the_line() {
        let m = message(load("[log]\nlevel = \n", &[]));
        assert!(m.contains("line 2"), "{m}");
    }

    #[test]
    fn generic_env_overlay() {
        let c = load(
            "[redirects]\nstatus = 301\n",
            &[
                ("SERVY_REDIRECTS_STATUS", "302"),
                ("SERVY_REDIRECTS_REFRESH_INTERVAL", "1h"),
                ("SERVY_LOG_REQUESTS", "false"),
                ("SERVY_HTTP_LISTEN", "127.0.0.1:1,[::1]:2"),
                ("SERVY_CACHE_DEFAULT", "public, max-age=60"),
                ("SERVY_LIMITS_REQUEST_TIMEOUT", "5"),
                ("SERVY_ASSETS_DIR", "/somewhere"), // not a section: ignored
                ("OTHER", "x"),
            ],
        )
        .unwrap();
        assert_eq!(c.redirects.status, 302);
        assert_eq!(c.redirects.refresh_interval, Duration::from_secs(3600));
        assert!(!c.log.requests);
        assert_eq!(
            c.http.listen,
            vec!["127.0.0.1:1".parse().unwrap(), "[::1]:2".parse().unwrap()]
        );
        assert_eq!(c.cache.default, "public, max-age=60");
        assert_eq!(c.limits.request_timeout, Duration::from_secs(5));
    }

    #[test]
    fn env_unknown_key_names_the_variable() {
        let m = message(load("", &[("SERVY_HTTP_LISTN", "127.0.0.1:1")]));
        assert!(
            m.starts_with("SERVY_HTTP_LISTN:") && m.contains("listn"),
            "{m}"
        );
    }

    #[test]
    fn env_bad_value_names_the_variable() {
        let m = message(load("", &[("SERVY_REDIRECTS_STATUS", "many")]));
        assert!(m.starts_with("SERVY_REDIRECTS_STATUS:"), "{m}");
    }

    #[test]
    fn predecessor_variables() {
        let c = load(
            "",
            &[
                ("SERVY_REDIRECTS_URL", "https://example.org/r.txt"),
                ("SERVY_HOST", "0.0.0.0"),
                ("SERVY_PORT", "9090"),
                ("SERVY_METRICS_PORT", "9091"),
                ("SERVY_LOG_LEVEL", "debug"),
            ],
        )
        .unwrap();
        assert_eq!(
            c.redirects.source,
            Some(RedirectsSource::Url("https://example.org/r.txt".into()))
        );
        assert_eq!(c.http.listen, vec!["0.0.0.0:9090".parse().unwrap()]);
        assert_eq!(c.metrics.listen, vec!["0.0.0.0:9091".parse().unwrap()]);
        assert_eq!(c.log.level, "debug");
    }

    #[test]
    fn predecessor_port_alone_keeps_the_configured_host() {
        let c = load(
            "[http]\nlisten = [\"10.0.0.1:80\"]\n",
            &[("SERVY_PORT", "8000")],
        )
        .unwrap();
        assert_eq!(c.http.listen, vec!["10.0.0.1:8000".parse().unwrap()]);
    }

    #[test]
    fn new_names_win_over_predecessor_names() {
        let c = load(
            "",
            &[
                ("SERVY_REDIRECTS_SOURCE", "/etc/r.txt"),
                ("SERVY_REDIRECTS_URL", "https://old/r"),
            ],
        )
        .unwrap();
        assert_eq!(
            c.redirects.source,
            Some(RedirectsSource::File("/etc/r.txt".into()))
        );
    }

    #[test]
    fn predecessor_host_may_be_localhost_or_ipv6() {
        let c = load("", &[("SERVY_HOST", "localhost"), ("SERVY_PORT", "80")]).unwrap();
        assert_eq!(c.http.listen, vec!["127.0.0.1:80".parse().unwrap()]);
        let c = load("", &[("SERVY_HOST", "::1"), ("SERVY_METRICS_PORT", "81")]).unwrap();
        assert_eq!(c.http.listen, vec!["[::1]:8080".parse().unwrap()]);
        assert_eq!(c.metrics.listen, vec!["[::1]:81".parse().unwrap()]);
    }

    #[test]
    fn bad_predecessor_port() {
        let m = message(load("", &[("SERVY_PORT", "eighty")]));
        assert!(m.starts_with("SERVY_PORT="), "{m}");
    }

    #[test]
    fn validation() {
        let cases = [
            ("[redirects]\nstatus = 200\n", "redirects.status"),
            (
                "[redirects]\nmin_refresh_interval = \"10m\"\nrefresh_interval = \"5m\"\n",
                "min_refresh_interval",
            ),
            (
                "[limits]\nrequest_timeout = \"0s\"\n",
                "limits.request_timeout",
            ),
            ("[limits]\nmax_concurrency = 0\n", "max_concurrency"),
            ("[limits]\nmax_connections = 0\n", "limits.max_connections"),
            (
                "[limits]\nmax_header_bytes = 4096\n",
                "limits.max_header_bytes",
            ),
            (
                "[http]\nlisten = [\"127.0.0.1:9\"]\n[metrics]\nlisten = [\"127.0.0.1:9\"]\n",
                "127.0.0.1:9",
            ),
            ("[log]\nlevel = \"info,=[\"\n", "log.level"),
            // Regression: a non-ASCII filter made tracing-subscriber panic.
            ("[log]\nlevel = \" \u{0c92}=\"\n", "must be ASCII"),
            ("[cache]\nhtml = \"a\\nb\"\n", "cache.html"),
            ("[redirects]\nsource = \"https://\"\n", "no host"),
            ("[redirects]\ncache_bust = \"a&b\"\n", "cache_bust"),
            (
                "[http]\nlisten = [\"localhost:80\"]\n",
                "invalid socket address",
            ),
            ("[redirects]\ntimeout = \"5 parsecs\"\n", "invalid duration"),
            (
                "[headers.\"/*\"]\n\"X Frame\" = \"DENY\"\n",
                "headers.\"/*\".X Frame",
            ),
            (
                "[headers.\"/*\"]\nX-Note = \"caf\u{e9}\"\n",
                "headers.\"/*\".X-Note",
            ),
            (
                "[headers.\"/*\"]\nContent-Length = \"1\"\n",
                "set by servy itself",
            ),
            ("[headers.\"blog/*\"]\nX-A = \"b\"\n", "headers.\"blog/*\""),
            ("[headers]\n\"/*\" = \"DENY\"\n", "line 2"),
            (
                "[https]\nlisten = [\"127.0.0.1:8443\"]\n",
                "https.certificates is empty",
            ),
            ("[http]\nredirect_to_https = true\n", "redirect_to_https"),
            (
                "[https]\nlisten = [\"127.0.0.1:8080\"]\n[[https.certificates]]\ncert = \"c\"\nkey = \"k\"\n",
                "http.listen and https.listen both contain 127.0.0.1:8080",
            ),
            (
                "[https]\nhsts = \"max-age=1\\r\\nx: y\"\n[[https.certificates]]\ncert = \"c\"\nkey = \"k\"\n",
                "https.hsts",
            ),
            (
                "[https]\nhandshake_timeout = \"0s\"\n",
                "https.handshake_timeout",
            ),
            (
                "[[https.certificates]]\ncert = \"c\"\n",
                "missing field `key`",
            ),
        ];
        for (toml, needle) in cases {
            let m = message(load(toml, &[]));
            assert!(m.contains(needle), "{toml:?}: expected {needle:?} in {m:?}");
        }
    }

    #[test]
    fn acme_is_off_by_default_and_state_dir_comes_from_systemd() {
        let c = load("", &[("STATE_DIRECTORY", "/var/lib/servy:/var/lib/other")]).unwrap();
        assert!(!c.acme.enabled());
        assert_eq!(c.acme.directory, LETS_ENCRYPT);
        let c = load(
            "[acme]\ndomains = [\"example.org\", \"www.example.org\"]\nchallenge = \"http-01\"\n",
            &[("STATE_DIRECTORY", "/var/lib/servy:/var/lib/other")],
        )
        .unwrap();
        assert_eq!(c.acme.domains, ["example.org", "www.example.org"]);
        assert_eq!(c.acme.state_dir, Some(PathBuf::from("/var/lib/servy")));
        assert_eq!(c.acme.challenge, AcmeChallenge::Http01);
        // An explicit path wins over systemd's.
        let c = load(
            "[acme]\ndomains = [\"example.org\"]\nstate_dir = \"/srv/acme\"\n",
            &[("STATE_DIRECTORY", "/var/lib/servy")],
        )
        .unwrap();
        assert_eq!(c.acme.state_dir, Some(PathBuf::from("/srv/acme")));
        assert_eq!(c.acme.challenge, AcmeChallenge::TlsAlpn01);
        let c = load(
            "",
            &[
                ("SERVY_ACME_DOMAINS", "[\"example.org\"]"),
                ("SERVY_ACME_STATE_DIR", "/srv/acme"),
            ],
        )
        .unwrap();
        assert_eq!(c.acme.domains, ["example.org"]);
    }

    #[test]
    fn acme_validation() {
        let with =
            |rest: &str| format!("[acme]\ndomains = [\"example.org\"]\nstate_dir = \"/s\"\n{rest}");
        let cases = [
            (
                "[acme]\ndomains = [\"example.org\"]\n".to_string(),
                "acme.state_dir",
            ),
            (
                "[acme]\ndomains = [\"*.example.org\"]\nstate_dir = \"/s\"\n".into(),
                "acme.domains",
            ),
            (
                "[acme]\ndomains = [\"Example.org\"]\nstate_dir = \"/s\"\n".into(),
                "acme.domains",
            ),
            (
                "[acme]\ndomains = [\"localhost\"]\nstate_dir = \"/s\"\n".into(),
                "acme.domains",
            ),
            (with("email = \"nobody\"\n"), "acme.email"),
            (
                with("directory = \"http://ca.test/dir\"\n"),
                "acme.directory",
            ),
            (
                with("state_dir = \"rel\"\n").replace("state_dir = \"/s\"\n", ""),
                "absolute",
            ),
            (with("challenge = \"dns-01\"\n"), "dns-01"),
            (with("retry_min = \"0s\"\n"), "acme.retry_min"),
            (
                with("challenge = \"http-01\"\n[http]\nredirect_to_https = true\n"),
                "redirect_to_https",
            ),
        ];
        for (toml, needle) in cases {
            let m = message(load(&toml, &[]));
            assert!(m.contains(needle), "{toml:?}: expected {needle:?} in {m:?}");
        }
    }

    #[test]
    fn certificate_names_are_resolved_against_the_credentials_directory() {
        let c = load(
            "[[https.certificates]]\ncert = \"fullchain.pem\"\nkey = \"/etc/ssl/key.pem\"\n",
            &[("CREDENTIALS_DIRECTORY", "/run/credentials/servy.service")],
        )
        .unwrap();
        assert_eq!(
            c.https.certificates,
            vec![CertificateFiles {
                cert: "/run/credentials/servy.service/fullchain.pem".into(),
                key: "/etc/ssl/key.pem".into(),
            }]
        );
        let c = load("[[https.certificates]]\ncert = \"a\"\nkey = \"b\"\n", &[]).unwrap();
        assert_eq!(c.https.certificates[0].cert, PathBuf::from("a"));
    }

    #[test]
    fn https_from_the_environment() {
        let c = load(
            "",
            &[
                ("SERVY_HTTPS_LISTEN", "127.0.0.1:8443"),
                (
                    "SERVY_HTTPS_CERTIFICATES",
                    "[{ cert = \"c.pem\", key = \"k.pem\" }]",
                ),
                ("SERVY_HTTPS_HSTS", "max-age=60"),
            ],
        )
        .unwrap();
        assert_eq!(c.https.listen, vec!["127.0.0.1:8443".parse().unwrap()]);
        assert_eq!(c.https.certificates[0].key, PathBuf::from("k.pem"));
        assert_eq!(c.https.hsts.as_deref(), Some("max-age=60"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172800)));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("5w").is_err());
        assert!(parse_duration("99999999999999999999h").is_err());
    }

    proptest::proptest! {
        #[test]
        fn durations_never_panic_and_round_trip(text in "\\PC{0,12}", n in 0u64..1_000_000) {
            let _ = parse_duration(&text);
            proptest::prop_assert_eq!(parse_duration(&format!("{n}s")), Ok(Duration::from_secs(n)));
            proptest::prop_assert_eq!(parse_duration(&format!("{n}ms")), Ok(Duration::from_millis(n)));
        }

        #[test]
        fn any_environment_value_loads_or_is_refused_in_one_line(value in "\\PC{0,40}") {
            for var in ["SERVY_HTTP_LISTEN", "SERVY_REDIRECTS_STATUS", "SERVY_LOG_LEVEL", "SERVY_PORT"] {
                let env = [(var.to_string(), value.clone())];
                if let Err(e) = Config::load(None, env) {
                    proptest::prop_assert!(!e.to_string().contains('\n'), "{}", e);
                }
            }
        }
    }

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
