//! Where log lines go: journald with native fields when stderr is the journal, else JSON
//! or text on stderr. Runs once in `main`, before anything else can log.

use std::io::IsTerminal;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::config::{LogConfig, LogFormat};

/// Installs the global subscriber. `level` was validated with the config, so a failure
/// here is only journald being unreachable, which falls back to text.
pub fn init(config: &LogConfig) {
    let filter = EnvFilter::try_new(&config.level).unwrap_or_else(|_| EnvFilter::new("info"));
    let format = match config.format {
        LogFormat::Auto if stderr_is_journal() => LogFormat::Journald,
        LogFormat::Auto => LogFormat::Text,
        other => other,
    };
    let (layer, fallback): (Box<dyn Layer<Registry> + Send + Sync>, _) = match format {
        LogFormat::Journald => match tracing_journald::layer() {
            Ok(journald) => (journald.boxed(), None),
            Err(e) => (text().boxed(), Some(e)),
        },
        // Flat: the request fields sit next to `level` and `target`, where log
        // pipelines look for them.
        LogFormat::Json => (
            tracing_subscriber::fmt::layer()
                .json()
                .flatten_event(true)
                .with_writer(std::io::stderr)
                .boxed(),
            None,
        ),
        LogFormat::Text | LogFormat::Auto => (text().boxed(), None),
    };
    tracing_subscriber::registry()
        .with(layer)
        .with(filter)
        .init();
    if let Some(e) = fallback {
        tracing::warn!(error = %e, "journald is unreachable; logging text to stderr");
    }
}

fn text<S>() -> impl Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
}

/// systemd sets `JOURNAL_STREAM=<dev>:<inode>` for a service whose stderr is the
/// journal; it only counts if stderr is still that stream (not redirected by a wrapper).
/// This is systemd's protocol, not configuration, so it is read here.
fn stderr_is_journal() -> bool {
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = stream.to_str().and_then(|s| s.split_once(':')) else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    // An owned duplicate, so `metadata` can fstat it without unsafe.
    let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() else {
        return false;
    };
    let Ok(meta) = std::fs::File::from(fd).metadata() else {
        return false;
    };
    meta.dev() == dev && meta.ino() == ino
}
