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

use instant_acme::AccountCredentials;

use super::certificate::Certificate;

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
