//! The state directory: the ACME account and the current certificate, each one file,
//! mode 0600, replaced atomically (write, fsync, rename), so a crash or a kill mid-write
//! leaves the previous file whole. A restart reads them and does not order again.
//!
//! Layout: `<state_dir>/acme/<CA>/account.json` and `.../certificate.pem` (the chain
//! and its key in one file, so the pair can never be half-replaced). `<CA>` is the
//! directory URL made into a file name: an account belongs to one CA, and switching
//! from staging to production must not reuse staging's certificate.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use instant_acme::AccountCredentials;

use super::certificate::Certificate;

#[derive(Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// Creates the directory (0700) if needed.
    pub fn open(state_dir: &Path, directory_url: &str) -> io::Result<Store> {
        let dir = state_dir.join("acme").join(ca_dir_name(directory_url));
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)?;
        Ok(Store { dir })
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
    /// (`O_EXCL`, which NFSv3+ and local filesystems honour), renewed by touching it, and
    /// taken over once its last renewal is older than `lease`.
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
                    writeln!(file, "pid {}", std::process::id())?;
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

    /// Marks the held lease as alive now.
    pub fn renew_lease(&self) -> io::Result<()> {
        fs::File::options()
            .write(true)
            .open(self.lease_path())?
            .set_modified(SystemTime::now())
    }

    /// Gives the lease back (the order is over, whatever its outcome).
    pub fn release_lease(&self) {
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

    pub fn publish_http01(&self, token: &str, key_authorization: &str) -> io::Result<()> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(self.http01_dir())?;
        replace(&self.http01_dir().join(token), key_authorization.as_bytes())
    }

    /// The answer another replica published for `token`, if any. Tokens are base64url
    /// (RFC 8555 §8.1), so anything else is not looked up on disk.
    pub fn http01(&self, token: &str) -> Option<String> {
        let token_ok = !token.is_empty()
            && token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !token_ok {
            return None;
        }
        fs::read_to_string(self.http01_dir().join(token)).ok()
    }

    pub fn clear_http01(&self) {
        let _ = fs::remove_dir_all(self.http01_dir());
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
}
