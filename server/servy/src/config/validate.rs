//! What a section must satisfy beyond its types: one `validate` per section, then the
//! contradictions between sections. Each refusal names the key, as `section.key = value`.

use super::error::ConfigError;
use super::sections::{
    AcmeChallenge, AcmeConfig, CacheConfig, Config, HeadersConfig, HttpsConfig, LimitsConfig,
    LogConfig, MIN_HEADER_BYTES, MetricsConfig, RedirectsConfig, RedirectsSource,
};

/// Values that would misbehave at run time, section by section, then across sections.
pub(super) fn validate(config: &Config) -> Result<(), ConfigError> {
    config.redirects.validate()?;
    config.limits.validate()?;
    config.metrics.validate()?;
    config.https.validate()?;
    config.log.validate()?;
    config.cache.validate()?;
    config.headers.validate()?;
    config.acme.validate()?;
    across_sections(config)
}

fn refuse<T>(message: String) -> Result<T, ConfigError> {
    Err(ConfigError(message))
}

/// A zero duration would spin a loop or time out at once.
fn non_zero(durations: &[(&str, std::time::Duration)]) -> Result<(), ConfigError> {
    match durations.iter().find(|(_, d)| d.is_zero()) {
        Some((name, _)) => refuse(format!("{name} must be greater than zero")),
        None => Ok(()),
    }
}

impl RedirectsConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if ![301, 302, 307, 308].contains(&self.status) {
            return refuse(format!(
                "redirects.status = {}: must be 301, 302, 307 or 308",
                self.status
            ));
        }
        non_zero(&[
            ("redirects.refresh_interval", self.refresh_interval),
            ("redirects.min_refresh_interval", self.min_refresh_interval),
            ("redirects.connect_timeout", self.connect_timeout),
            ("redirects.timeout", self.timeout),
        ])?;
        if self.min_refresh_interval > self.refresh_interval {
            return refuse(format!(
                "redirects.min_refresh_interval ({:?}) is longer than redirects.refresh_interval ({:?})",
                self.min_refresh_interval, self.refresh_interval
            ));
        }
        if self.max_bytes == 0 {
            return refuse("redirects.max_bytes must be greater than zero".into());
        }
        if let Some(name) = &self.cache_bust {
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b))
            {
                return refuse(format!(
                    "redirects.cache_bust = {name:?}: must be a plain query parameter name"
                ));
            }
        }
        if let Some(RedirectsSource::Url(url)) = &self.source {
            if url
                .split_once("://")
                .is_none_or(|(_, rest)| rest.is_empty() || rest.starts_with('/'))
            {
                return refuse(format!("redirects.source = {url:?}: URL has no host"));
            }
        }
        Ok(())
    }
}

impl LimitsConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        non_zero(&[
            ("limits.header_read_timeout", self.header_read_timeout),
            ("limits.request_timeout", self.request_timeout),
            ("limits.shutdown_grace", self.shutdown_grace),
            ("limits.send_window", self.send_window),
        ])?;
        if self.max_concurrency == 0 {
            return refuse("limits.max_concurrency must be at least 1".into());
        }
        if self.max_connections == 0 {
            return refuse("limits.max_connections must be at least 1".into());
        }
        if !(MIN_HEADER_BYTES..=1024 * 1024).contains(&self.max_header_bytes) {
            return refuse(format!(
                "limits.max_header_bytes = {}: must be between {MIN_HEADER_BYTES} and 1048576",
                self.max_header_bytes
            ));
        }
        Ok(())
    }
}

impl MetricsConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        non_zero(&[("metrics.profiling_max", self.profiling_max)])
    }
}

impl HttpsConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        non_zero(&[
            ("https.handshake_timeout", self.handshake_timeout),
            ("https.watch_interval", self.watch_interval),
        ])?;
        if let Some(hsts) = &self.hsts {
            if hsts.is_empty() || !hsts.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) {
                return refuse(format!(
                    "https.hsts = {hsts:?}: not a valid Strict-Transport-Security value"
                ));
            }
        }
        Ok(())
    }
}

impl LogConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        // tracing-subscriber 0.3.23 panics on non-ASCII before an `=` (it slices the
        // directive by bytes); targets and levels are ASCII, so refuse anything else first.
        // Found by the property test in env.rs.
        if !self.level.is_ascii() {
            return refuse(format!(
                "log.level = {:?}: must be ASCII (targets and levels such as \"info,servy=debug\")",
                self.level
            ));
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.level) {
            return refuse(format!("log.level = {:?}: {e}", self.level));
        }
        Ok(())
    }
}

impl CacheConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        for (name, value) in [
            ("cache.html", &self.html),
            ("cache.immutable", &self.immutable),
            ("cache.default", &self.default),
        ] {
            if value.is_empty()
                || !value
                    .bytes()
                    .all(|b| b == b' ' || b == b'\t' || b.is_ascii_graphic())
            {
                return refuse(format!(
                    "{name} = {value:?}: not a valid Cache-Control header value"
                ));
            }
        }
        Ok(())
    }
}

impl HeadersConfig {
    /// The same rules as the site's `_headers`, so a pattern or header the build would
    /// refuse is refused here too.
    fn validate(&self) -> Result<(), ConfigError> {
        for (pattern, headers) in &self.0 {
            if let Err(reason) = servy_rules::pattern::Pattern::parse(pattern) {
                return refuse(format!("headers.{pattern:?}: {reason}"));
            }
            for (name, value) in headers {
                if let Err(reason) = servy_rules::check_header(name, value) {
                    return refuse(format!("headers.{pattern:?}.{name} = {value:?}: {reason}"));
                }
            }
        }
        Ok(())
    }
}

impl AcmeConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        non_zero(&[("acme.retry_min", self.retry_min)])?;
        if !self.enabled() {
            return Ok(());
        }
        for domain in &self.domains {
            if !is_host_name(domain) {
                return refuse(format!(
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
                return refuse(format!("acme.email = {email:?}: not an e-mail address"));
            }
        }
        // RFC 8555 §6.1: ACME runs over HTTPS only.
        if self
            .directory
            .strip_prefix("https://")
            .is_none_or(|rest| rest.is_empty() || rest.starts_with('/'))
        {
            return refuse(format!(
                "acme.directory = {:?}: must be an https:// URL",
                self.directory
            ));
        }
        match &self.state_dir {
            None => refuse(
                "acme.state_dir: not set, and $STATE_DIRECTORY is unset (StateDirectory=servy in the unit sets it)"
                    .into(),
            ),
            Some(dir) if !dir.is_absolute() => refuse(format!(
                "acme.state_dir = {:?}: must be an absolute path",
                dir.display()
            )),
            Some(_) => Ok(()),
        }
    }
}

/// What no single section can see: shared addresses, HTTPS without certificates, a
/// challenge the http listener could not answer.
fn across_sections(config: &Config) -> Result<(), ConfigError> {
    let listens = [
        ("http.listen", &config.http.listen),
        ("https.listen", &config.https.listen),
        ("metrics.listen", &config.metrics.listen),
    ];
    for (i, (a_name, a)) in listens.iter().enumerate() {
        for (b_name, b) in &listens[i + 1..] {
            if let Some(addr) = a.iter().find(|x| b.contains(x)) {
                return refuse(format!("{a_name} and {b_name} both contain {addr}"));
            }
        }
    }
    // With [acme], the certificates come from the CA instead of files.
    let no_certificates = config.https.certificates.is_empty() && !config.acme.enabled();
    if no_certificates && !config.https.listen.is_empty() {
        return refuse(
            "https.listen is set but https.certificates is empty and [acme] is off".into(),
        );
    }
    if no_certificates && config.https.http3 {
        return refuse("https.http3 needs https.certificates or [acme]".into());
    }
    if no_certificates && config.http.redirect_to_https {
        return refuse("http.redirect_to_https needs https.certificates or [acme]".into());
    }
    if config.acme.enabled()
        && config.acme.challenge == AcmeChallenge::Http01
        && config.http.redirect_to_https
    {
        return refuse(
            "acme.challenge = \"http-01\" needs plain HTTP on the http listener, but http.redirect_to_https is on (use tls-alpn-01)"
                .into(),
        );
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use crate::config::tests::{load, message};

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
            ("[limits]\nsend_window = \"0s\"\n", "limits.send_window"),
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
            ("[https]\nhttp3 = true\n", "https.http3 needs"),
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
}
