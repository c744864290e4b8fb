//! The environment's part of the configuration: `SERVY_<SECTION>_<KEY>` for any key,
//! and the predecessor's variables (`SERVY_HOST`, `SERVY_PORT`, `SERVY_METRICS_PORT`,
//! `SERVY_REDIRECTS_URL`), turned into overrides of the file's TOML table.

use std::net::{IpAddr, SocketAddr};

use super::error::ConfigError;
use super::sections::Config;

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

/// One environment variable, resolved to a key in a section.
pub(super) struct Override {
    pub(super) var: String,
    pub(super) section: &'static str,
    pub(super) key: String,
    pub(super) value: toml::Value,
}

/// Reads `SERVY_*` variables into overrides, in precedence order (lowest first).
/// `base` supplies the half of an address a predecessor variable leaves out.
pub(super) fn overrides(
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::config::tests::{load, message};
    use crate::config::*;

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

    proptest::proptest! {
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
}
