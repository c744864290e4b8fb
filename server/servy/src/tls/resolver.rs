//! Which certificate a handshake gets: chosen by SNI among the current set, read
//! lock-free on every handshake and replaced whole (SIGHUP, or another module installing
//! one at run time), so a handshake never sees half a reload.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::certs::Loaded;

/// The ALPN protocol of a TLS-ALPN-01 challenge handshake (RFC 8737).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// Every certificate servy can present, and the writers that change them.
///
/// Two sources: the files of `[[https.certificates]]` (replaced together on reload)
/// and certificates installed at run time by name ([`Certificates::install`]). An
/// installed certificate wins over a file for the names it covers.
pub struct Certificates {
    current: ArcSwap<CertSet>,
    sources: Mutex<Sources>,
    /// TLS-ALPN-01 answers by name, presented only to a ClientHello offering `acme-tls/1`.
    challenges: ArcSwap<HashMap<String, Arc<CertifiedKey>>>,
    /// Where an answer this process did not publish is looked for: another replica's,
    /// when replicas share the ACME state (the CA's validation reaches any of them).
    shared_challenges: OnceLock<Box<SharedChallenges>>,
}

/// A lookup of another replica's TLS-ALPN-01 answer by lower-case name.
pub type SharedChallenges = dyn Fn(&str) -> Option<Arc<CertifiedKey>> + Send + Sync;

#[derive(Default)]
struct Sources {
    files: Vec<Loaded>,
    installed: Vec<Loaded>,
}

/// One immutable snapshot: what a handshake reads.
#[derive(Default)]
struct CertSet {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// `*.example.org` stored under `example.org`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    /// For a ClientHello without SNI or with a name no certificate covers: the first
    /// file, as nginx's first `server` block (clients will say the name is wrong).
    default: Option<Arc<CertifiedKey>>,
    /// `(name, notAfter)` of every certificate, for the expiry metric.
    expiries: Vec<(String, i64)>,
}

impl CertSet {
    fn build(sources: &Sources) -> CertSet {
        let mut set = CertSet::default();
        // Files first, then installed ones, so the later insert (installed) wins.
        for loaded in sources.files.iter().chain(&sources.installed) {
            for name in &loaded.names {
                match name.strip_prefix("*.") {
                    Some(parent) => set.wildcard.insert(parent.to_string(), loaded.key.clone()),
                    None => set.exact.insert(name.clone(), loaded.key.clone()),
                };
            }
            set.expiries
                .push((loaded.label().to_string(), loaded.not_after));
        }
        set.default = sources
            .files
            .first()
            .or(sources.installed.first())
            .map(|l| l.key.clone());
        set
    }

    fn find(&self, name: &str) -> Option<&Arc<CertifiedKey>> {
        self.exact.get(name).or_else(|| {
            let (_, parent) = name.split_once('.')?;
            self.wildcard.get(parent)
        })
    }
}

impl Certificates {
    pub fn new(files: Vec<Loaded>) -> Arc<Certificates> {
        let sources = Sources {
            files,
            installed: Vec::new(),
        };
        Arc::new(Certificates {
            current: ArcSwap::from_pointee(CertSet::build(&sources)),
            sources: Mutex::new(sources),
            challenges: ArcSwap::default(),
            shared_challenges: OnceLock::new(),
        })
    }

    /// Replaces the certificates that came from files (a reload that loaded all of them).
    pub fn replace_files(&self, files: Vec<Loaded>) {
        self.update(|s| s.files = files);
    }

    /// Serves `loaded` for the names it covers from the next handshake on, replacing a
    /// certificate installed earlier for the same names (a renewal).
    pub fn install(&self, loaded: Loaded) {
        self.update(|s| {
            s.installed.retain(|l| l.names != loaded.names);
            s.installed.push(loaded);
        });
    }

    /// Sets (or with `None`, removes) the TLS-ALPN-01 challenge certificate for `name`.
    pub fn set_challenge(&self, name: &str, key: Option<Arc<CertifiedKey>>) {
        let name = name.to_ascii_lowercase();
        self.challenges.rcu(|map| {
            let mut map = HashMap::clone(map);
            match &key {
                Some(k) => map.insert(name.clone(), k.clone()),
                None => map.remove(&name),
            };
            map
        });
    }

    /// Sets where answers published by other replicas are found (once, at start-up).
    pub fn set_shared_challenges(&self, lookup: Box<SharedChallenges>) {
        if self.shared_challenges.set(lookup).is_err() {
            tracing::warn!("tls: shared challenge answers were already set; keeping the first");
        }
    }

    fn challenge(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        let own = self.challenges.load().get(name).cloned();
        own.or_else(|| self.shared_challenges.get().and_then(|lookup| lookup(name)))
    }

    /// True if a certificate (not merely the default) covers `host`.
    pub fn covers(&self, host: &str) -> bool {
        self.current.load().find(host).is_some()
    }

    /// `(name, notAfter)` of every certificate served now.
    pub fn expiries(&self) -> Vec<(String, i64)> {
        self.current.load().expiries.clone()
    }

    fn update(&self, change: impl FnOnce(&mut Sources)) {
        let mut sources = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        change(&mut sources);
        self.current.store(Arc::new(CertSet::build(&sources)));
    }
}

/// rustls' view of [`Certificates`].
pub struct Resolver(pub Arc<Certificates>);

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Resolver")
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = hello.server_name().map(str::to_ascii_lowercase);
        let acme = hello
            .alpn()
            .is_some_and(|mut offered| offered.any(|p| p == ACME_TLS_ALPN));
        if acme {
            // A validator gets the challenge certificate or nothing, never the site's.
            return self.0.challenge(name.as_deref()?);
        }
        let set = self.0.current.load();
        name.as_deref()
            .and_then(|n| set.find(n))
            .or(set.default.as_ref())
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::certs;

    fn loaded(names: &[&str]) -> Loaded {
        let (cert, key) = certs::self_signed_pem(names);
        let provider = rustls::crypto::ring::default_provider();
        certs::from_pem(cert.as_bytes(), key.as_bytes(), &provider).unwrap()
    }

    fn current(c: &Certificates, name: &str) -> Option<Arc<CertifiedKey>> {
        c.current.load().find(name).cloned()
    }

    #[test]
    fn names_wildcards_and_what_is_covered() {
        let c = Certificates::new(vec![loaded(&["a.test", "*.w.test"])]);
        assert!(c.covers("a.test") && c.covers("x.w.test"));
        // A wildcard covers one label, not the parent or deeper names.
        assert!(!c.covers("w.test") && !c.covers("y.x.w.test") && !c.covers("b.test"));
    }

    #[test]
    fn an_installed_certificate_wins_for_its_names_and_survives_a_file_reload() {
        let file = loaded(&["a.test", "b.test"]);
        let c = Certificates::new(vec![file.clone()]);
        let acme = loaded(&["b.test"]);
        c.install(acme.clone());
        assert!(Arc::ptr_eq(&current(&c, "b.test").unwrap(), &acme.key));
        assert!(Arc::ptr_eq(&current(&c, "a.test").unwrap(), &file.key));
        // A renewal for the same names replaces it; a reload of the files keeps it.
        let renewed = loaded(&["b.test"]);
        c.install(renewed.clone());
        c.replace_files(vec![loaded(&["a.test", "b.test"])]);
        assert!(Arc::ptr_eq(&current(&c, "b.test").unwrap(), &renewed.key));
        assert_eq!(
            c.expiries().len(),
            2,
            "one file, one installed: {:?}",
            c.expiries()
        );
    }

    #[test]
    fn challenges_are_set_and_removed_by_name() {
        let c = Certificates::new(Vec::new());
        let answer = loaded(&["a.test"]).key;
        c.set_challenge("A.test", Some(answer.clone()));
        assert!(Arc::ptr_eq(
            c.challenges.load().get("a.test").unwrap(),
            &answer
        ));
        c.set_challenge("a.test", None);
        assert!(c.challenges.load().is_empty());
    }
}
