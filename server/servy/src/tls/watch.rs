//! Certificates that follow their files: a renewal by certbot or lego, NixOS's
//! `security.acme` on another unit, or Kubernetes swapping a Secret's `..data` symlink,
//! none of which sends servy a signal.
//!
//! Every `https.watch_interval`, each configured file is stat'ed through its symlinks;
//! when what a path resolves to changes (device, inode, size or mtime), the files are
//! reloaded exactly as on SIGHUP ([`Tls::reload`]): all pairs load and swap in together
//! for new handshakes, or the old ones keep serving and the reason is logged once and
//! counted in `servy_tls_reloads_total{result}`.
//!
//! A periodic stat rather than inotify (the `notify` crate): kubelet writes a new
//! timestamped directory and renames a `..data` symlink over the old one, so the files'
//! own inodes never change and a watch on them sees nothing; following the links on each
//! check sees the swap whatever the layout, costs two `stat` calls per pair, and needs
//! no dependency.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::Tls;

/// What a path resolves to, as far as a change of content is concerned.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Seen(Option<(u64, u64, u64, Option<SystemTime>)>);

impl Seen {
    fn of(path: &Path) -> Seen {
        use std::os::unix::fs::MetadataExt;
        Seen(
            std::fs::metadata(path)
                .ok()
                .map(|m| (m.dev(), m.ino(), m.size(), m.modified().ok())),
        )
    }
}

/// What every configured file resolves to now.
fn snapshot(tls: &Tls) -> Vec<Seen> {
    tls.files()
        .iter()
        .flat_map(|f| [Seen::of(&f.cert), Seen::of(&f.key)])
        .collect()
}

/// Starts the check on the runtime; nothing to watch without certificate files.
pub fn spawn(tls: Arc<Tls>, interval: Duration) {
    if tls.files().is_empty() {
        return;
    }
    tokio::spawn(async move {
        let mut seen = snapshot(&tls);
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let now = snapshot(&tls);
            if now == seen {
                continue;
            }
            // Remembered whether the reload works or not: a broken pair is reported
            // once, and tried again only when the files change again.
            seen = now;
            match tls.reload() {
                Ok(()) => tracing::info!("certificates reloaded: their files changed"),
                Err(e) => tracing::error!(
                    error = %e,
                    "certificate files changed but do not load; the old certificates keep serving"
                ),
            }
        }
    });
}
