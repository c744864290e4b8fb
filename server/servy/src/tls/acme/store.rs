//! The state directory: the ACME account and the current certificate, each one file,
//! mode 0600, replaced atomically (write, fsync, rename), so a crash or a kill mid-write
//! leaves the previous file whole. A restart reads them and does not order again.
//!
//! Layout: `<state_dir>/acme/<CA>/account.json` and `.../certificate.pem` (the chain
//! and its key in one file, so the pair can never be half-replaced). `<CA>` is the
//! directory URL made into a file name: an account belongs to one CA, and switching
//! from staging to production must not reuse staging's certificate.
//!
//! Replicas share the directory: beside those two files it holds the order lease and the
//! open challenges' answers (`http-01/<token>`, `tls-alpn-01/<domain>.pem`), so the
//! replica the CA's validation reaches answers for the one that ordered.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use instant_acme::AccountCredentials;

use super::certificate::Certificate;

#[derive(Clone)]
pub struct Store {
    dir: PathBuf,
    /// What this process writes in the order lease, to tell its own lease from one another
    /// replica took over (host, pid and start time: unique across machines sharing a volume).
    owner: Arc<str>,
}

impl Store {
    /// Creates the directory (0700) if needed.
    pub fn open(state_dir: &Path, directory_url: &str) -> io::Result<Store> {
        let dir = state_dir.join("acme").join(ca_dir_name(directory_url));
        private_dir(&dir)?;
        Ok(Store {
            dir,
            owner: owner_token().into(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn account_path(&self) -> PathBuf {
        self.dir.join("account.json")
    }

    fn certificate_path(&self) -> PathBuf {
        self.dir.join("certificate.pem")
    }

    /// The stored account, if there is one.
    pub fn account(&self) -> Result<Option<AccountCredentials>, String> {
        let path = self.account_path();
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| format!("{}: {e}", path.display())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    pub fn save_account(&self, credentials: &AccountCredentials) -> io::Result<()> {
        let json = serde_json::to_vec_pretty(credentials).map_err(io::Error::other)?;
        replace(&self.account_path(), &json)
    }

    /// Sets the account aside (as `account.json.gone`) so the next attempt makes a new
    /// one; kept rather than deleted, since its key still signs for old orders.
    pub fn forget_account(&self) -> io::Result<()> {
        fs::rename(self.account_path(), self.dir.join("account.json.gone"))
    }

    /// The stored certificate, if there is one. An unreadable or unparsable file is an
    /// error the caller logs; it then orders a new one.
    pub fn certificate(&self) -> Result<Option<Certificate>, String> {
        let path = self.certificate_path();
        match fs::read(&path) {
            Ok(pem) => Certificate::from_pem(&pem)
                .map(Some)
                .map_err(|e| format!("{}: {e}", path.display())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    fn lease_path(&self) -> PathBuf {
        self.dir.join("order.lease")
    }

    /// Where HTTP-01 answers are published, so any replica sharing the directory answers.
    fn http01_dir(&self) -> PathBuf {
        self.dir.join("http-01")
    }

    /// Takes the order lease unless another live process holds it: created exclusively
    /// (`O_EXCL`, which NFSv3+ and local filesystems honour) with this process's owner
    /// token in it, renewed by touching it, and taken over once its last renewal is older
    /// than `lease`.
    pub fn try_lease(&self, lease: Duration) -> io::Result<bool> {
        let path = self.lease_path();
        for _ in 0..2 {
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
            {
                Ok(mut file) => {
                    file.write_all(self.owner.as_bytes())?;
                    file.sync_all()?;
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    let renewed = fs::metadata(&path)?.modified()?;
                    let age = SystemTime::now()
                        .duration_since(renewed)
                        .unwrap_or_default();
                    if age < lease {
                        return Ok(false);
                    }
                    tracing::warn!(age = ?age, "acme: taking over a stale order lease");
                    // Whoever removes it first races the others to create it again.
                    match fs::remove_file(&path) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(e) => return Err(e),
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(false)
    }

    /// Whether the lease file is this process's (not gone, not taken over).
    fn lease_is_ours(&self) -> io::Result<bool> {
        match fs::read(self.lease_path()) {
            Ok(held) => Ok(held == self.owner.as_bytes()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Marks the held lease as alive now. [`LeaseLost`] when another replica took it
    /// over meanwhile (this process stalled longer than the lease): the caller must stop
    /// its order, since the new holder is ordering too.
    pub fn renew_lease(&self) -> io::Result<()> {
        if !self.lease_is_ours()? {
            return Err(io::Error::other(LeaseLost));
        }
        fs::File::options()
            .write(true)
            .open(self.lease_path())?
            .set_modified(SystemTime::now())
    }

    /// Gives the lease back (the order is over, whatever its outcome), unless another
    /// replica holds it by now.
    pub fn release_lease(&self) {
        match self.lease_is_ours() {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                tracing::warn!(error = %e, "acme: could not read the order lease");
                return;
            }
        }
        if let Err(e) = fs::remove_file(self.lease_path())
            && e.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(error = %e, "acme: could not release the order lease");
        }
    }

    /// Whether a live process holds the lease.
    pub fn lease_held(&self, lease: Duration) -> bool {
        fs::metadata(self.lease_path())
            .and_then(|m| m.modified())
            .is_ok_and(|renewed| {
                SystemTime::now()
                    .duration_since(renewed)
                    .unwrap_or_default()
                    < lease
            })
    }

    /// `None` for anything but a base64url token (RFC 8555 §8.1): it is never a path.
    fn http01_path(&self, token: &str) -> Option<PathBuf> {
        let token_ok = !token.is_empty()
            && token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        token_ok.then(|| self.http01_dir().join(token))
    }

    pub fn publish_http01(&self, token: &str, key_authorization: &str) -> io::Result<()> {
        let path = self.http01_path(token);
        publish(
            path,
            || format!("not an ACME token: {token:?}"),
            key_authorization,
        )
    }

    /// The answer another replica published for `token`, if any.
    pub fn http01(&self, token: &str) -> Option<String> {
        fs::read_to_string(self.http01_path(token)?).ok()
    }

    /// Removes this process's answer only: after a lease takeover, another replica's
    /// answers may sit beside it.
    pub fn clear_http01(&self, token: &str) {
        if let Some(path) = self.http01_path(token) {
            let _ = fs::remove_file(path);
        }
    }

    /// Where TLS-ALPN-01 validation certificates are published, one PEM file (chain and
    /// key) per domain.
    fn tls_alpn01_dir(&self) -> PathBuf {
        self.dir.join("tls-alpn-01")
    }

    /// `None` for a name that is not a plain lower-case DNS name (it is never a path).
    fn tls_alpn01_path(&self, domain: &str) -> Option<PathBuf> {
        let plain = !domain.is_empty()
            && !domain.starts_with('.')
            && !domain.contains("..")
            && domain
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        plain.then(|| self.tls_alpn01_dir().join(format!("{domain}.pem")))
    }

    pub fn publish_tls_alpn01(&self, domain: &str, pem: &str) -> io::Result<()> {
        let path = self.tls_alpn01_path(domain);
        publish(path, || format!("not a DNS name: {domain:?}"), pem)
    }

    /// The validation certificate (chain and key, PEM) another replica published for
    /// `domain` (lower-case), if any.
    pub fn tls_alpn01(&self, domain: &str) -> Option<Vec<u8>> {
        fs::read(self.tls_alpn01_path(domain)?).ok()
    }

    /// Removes this process's answer only, as [`Store::clear_http01`].
    pub fn clear_tls_alpn01(&self, domain: &str) {
        if let Some(path) = self.tls_alpn01_path(domain) {
            let _ = fs::remove_file(path);
        }
    }

    /// Stores the chain and key as one PEM file.
    pub fn save_certificate(&self, chain_pem: &str, key_pem: &str) -> io::Result<()> {
        let mut pem = String::with_capacity(chain_pem.len() + key_pem.len() + 1);
        pem.push_str(chain_pem);
        if !pem.ends_with('\n') {
            pem.push('\n');
        }
        pem.push_str(key_pem);
        replace(&self.certificate_path(), pem.as_bytes())
    }
}

/// Another replica took the order lease over: this process must stop ordering.
#[derive(Debug)]
pub struct LeaseLost;

impl std::fmt::Display for LeaseLost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("another replica took the order lease over")
    }
}

impl std::error::Error for LeaseLost {}

/// `owner <host> <pid> <start, ns since the epoch>`: two processes never write the same.
fn owner_token() -> String {
    let host = fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let started = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!("owner {} {} {started}\n", host.trim(), std::process::id())
}

/// Writes a challenge answer to `path` (`None`: the name was refused, for `why`), in a
/// 0700 directory made if needed.
fn publish(path: Option<PathBuf>, why: impl FnOnce() -> String, answer: &str) -> io::Result<()> {
    let path = path.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, why()))?;
    if let Some(dir) = path.parent() {
        private_dir(dir)?;
    }
    replace(&path, answer.as_bytes())
}

/// Creates `dir` and its parents, the new ones mode 0700.
fn private_dir(dir: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Writes `bytes` to a temporary file (0600) beside `path`, syncs it, and renames it
/// over `path`.
fn replace(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp, path)?;
    // The rename itself is durable once the directory is synced.
    fs::File::open(path.parent().unwrap_or(Path::new(".")))?.sync_all()
}

/// `https://acme-v02.api.letsencrypt.org/directory` → `acme-v02.api.letsencrypt.org_directory`.
fn ca_dir_name(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.trim_end_matches('/')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn ca_names_are_file_names() {
        assert_eq!(
            ca_dir_name("https://acme-v02.api.letsencrypt.org/directory"),
            "acme-v02.api.letsencrypt.org_directory"
        );
        assert_eq!(
            ca_dir_name("https://127.0.0.1:14000/dir/"),
            "127.0.0.1_14000_dir"
        );
        assert!(!ca_dir_name("https://x/../../etc").contains('/'));
    }

    #[test]
    fn a_certificate_round_trips_with_mode_0600() {
        let dir = std::env::temp_dir().join(format!("servy-store-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let store = Store::open(&dir, "https://ca.test/dir").unwrap();
        assert!(store.certificate().unwrap().is_none());
        assert!(store.account().unwrap().is_none());

        let (cert, key) = crate::tls::certs::self_signed_pem(&["example.org"]);
        store.save_certificate(&cert, &key).unwrap();
        let loaded = store.certificate().unwrap().expect("stored");
        assert_eq!(loaded.names, ["example.org"]);
        let mode = fs::metadata(store.certificate_path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let dir_mode = fs::metadata(store.dir()).unwrap().permissions().mode();
        assert_eq!(dir_mode & 0o777, 0o700);

        fs::write(store.certificate_path(), "not pem").unwrap();
        assert!(store.certificate().is_err());
        let _ = fs::remove_dir_all(&dir);
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("servy-store-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_lease_taken_over_is_lost_to_its_stalled_holder_which_then_leaves_it_alone() {
        let dir = temp_dir("lease");
        let lease = Duration::from_secs(30);
        let first = Store::open(&dir, "https://ca.test/dir").unwrap();
        let second = Store::open(&dir, "https://ca.test/dir").unwrap();
        assert!(first.try_lease(lease).unwrap());
        assert!(
            !second.try_lease(lease).unwrap(),
            "a live lease is not taken"
        );
        first.renew_lease().unwrap();

        // The holder stalls past the lease: nobody touched it for a minute.
        fs::File::options()
            .write(true)
            .open(first.lease_path())
            .unwrap()
            .set_modified(SystemTime::now() - Duration::from_secs(60))
            .unwrap();
        assert!(!first.lease_held(lease));
        assert!(
            second.try_lease(lease).unwrap(),
            "a stale lease is taken over"
        );

        let lost = first.renew_lease().unwrap_err();
        assert!(
            lost.get_ref().is_some_and(|e| e.is::<LeaseLost>()),
            "{lost}"
        );
        first.release_lease();
        assert!(
            second.lease_held(lease),
            "the old holder removed the new holder's lease"
        );
        second.renew_lease().unwrap();
        second.release_lease();
        assert!(!first.lease_path().exists());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn challenge_answers_are_named_by_token_or_domain_never_by_path() {
        let dir = temp_dir("answers");
        let store = Store::open(&dir, "https://ca.test/dir").unwrap();
        for token in ["", "../account.json", "a/b", "a.b"] {
            assert!(store.publish_http01(token, "x").is_err(), "{token:?}");
            assert_eq!(store.http01(token), None);
        }
        for domain in ["", "../x", "a/b", ".a.test", "a..test", "A.test"] {
            assert!(store.publish_tls_alpn01(domain, "x").is_err(), "{domain:?}");
            assert_eq!(store.tls_alpn01(domain), None);
        }
        store.publish_http01("t0k-_en", "t0k-_en.thumb").unwrap();
        store.publish_tls_alpn01("a.test", "pem").unwrap();
        assert_eq!(store.http01("t0k-_en").as_deref(), Some("t0k-_en.thumb"));
        assert_eq!(store.tls_alpn01("a.test").as_deref(), Some(&b"pem"[..]));
        store.clear_http01("t0k-_en");
        store.clear_tls_alpn01("a.test");
        assert_eq!(store.http01("t0k-_en"), None);
        assert_eq!(store.tls_alpn01("a.test"), None);
        let _ = fs::remove_dir_all(&dir);
    }
}
