//! The configuration, read once at start-up: the TOML file, then the environment
//! overlay, then validation. One file per stage: `sections.rs` (the schema and its
//! defaults), `env.rs` (the `SERVY_*` variables), `validate.rs` (each section's checks),
//! `serde_helpers.rs` (durations and address lists), `error.rs` (the one-line error).
//!
//! Config is validated once here and flows one way: `main` hands each module only its
//! own section (`HttpConfig`, `RedirectsConfig`, ...). Nothing past this folder reads
//! environment variables or config files.

mod env;
mod error;
mod sections;
mod serde_helpers;
mod validate;

use std::path::{Path, PathBuf};

pub use error::ConfigError;
use error::describe;
pub use sections::*;

/// Exit code for a configuration error, distinct so systemd can refuse to restart on it
/// (`RestartPreventExitStatus=78`, EX_CONFIG from sysexits.h).
pub const EXIT_CONFIG: i32 = 78;

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

        let overrides = env::overrides(env, &file_config)?;
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
        validate::validate(&config)?;
        if let Some(dir) = credentials {
            for files in &mut config.https.certificates {
                files.cert = dir.join(&files.cert);
                files.key = dir.join(&files.key);
            }
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    pub(super) fn load(toml: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
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

    pub(super) fn message(r: Result<Config, ConfigError>) -> String {
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

    /// The keys the parser accepts under `prefix` (a table header, "" for the top), as
    /// serde names them when it refuses an unknown one.
    fn accepted_keys(prefix: &str) -> Option<Vec<String>> {
        let text = format!("{prefix}\n__probe = 1\n");
        let error = toml::from_str::<Config>(&text).err()?.to_string();
        let (_, expected) = error.split_once("unknown field `__probe`, expected")?;
        Some(
            expected
                .split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_string)
                .collect(),
        )
    }

    /// Every key the parser accepts, as `section.key` (and `section.table.key` for a
    /// nested table or array of tables), found by probing the parser itself.
    fn every_key() -> Vec<String> {
        let mut keys = Vec::new();
        let mut tables = vec![String::new()];
        while let Some(table) = tables.pop() {
            for form in [format!("[{table}]"), format!("[[{table}]]"), String::new()] {
                if form.is_empty() != table.is_empty() {
                    continue;
                }
                let Some(found) = accepted_keys(&form) else {
                    continue;
                };
                for key in found {
                    let name = match table.as_str() {
                        "" => key,
                        _ => format!("{table}.{key}"),
                    };
                    keys.push(name.clone());
                    tables.push(name);
                }
                break;
            }
        }
        keys.sort();
        keys
    }

    /// docs/configuration.md names every key the parser accepts, so the reference
    /// cannot drift from the code.
    #[test]
    fn every_key_is_in_the_configuration_reference() {
        let keys = every_key();
        assert!(keys.contains(&"https.certificates.cert".to_string()), "{keys:?}");
        assert!(keys.contains(&"limits.max_connections".to_string()), "{keys:?}");
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/configuration.md");
        let reference = std::fs::read_to_string(path).expect("docs/configuration.md");
        let missing: Vec<&String> = keys
            .iter()
            .filter(|k| k.contains('.') && !reference.contains(&format!("`{k}`")))
            .collect();
        assert!(missing.is_empty(), "not in docs/configuration.md: {missing:?}");
        for var in ["SERVY_HOST", "SERVY_PORT", "SERVY_METRICS_PORT", "SERVY_REDIRECTS_URL"] {
            assert!(reference.contains(var), "{var} is not in docs/configuration.md");
        }
        assert!(reference.contains(&EXIT_CONFIG.to_string()), "the exit code");
    }
}
