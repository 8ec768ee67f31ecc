//! The server's TLS identity: a key pair and its certificate. Made with
//! `rcgen` on the first start (a self-signed ECDSA P-256 certificate) and kept
//! under `DATA_DIR/tls/` in files only the owner can read (0600); or loaded
//! from `--tls-cert FILE --tls-key FILE` (PEM, e.g. from an ACME client).

use super::Fingerprint;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The folder under the data directory that holds the made identity.
pub const TLS_DIR: &str = "tls";
/// The certificate file (PEM) in [`TLS_DIR`].
pub const CERT_FILE: &str = "server.crt";
/// The private key file (PEM, PKCS#8) in [`TLS_DIR`].
pub const KEY_FILE: &str = "server.key";

/// A certificate chain (leaf first) and its private key.
#[derive(Debug)]
pub struct ServerIdentity {
    /// The chain presented to clients, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The leaf's private key.
    pub key: PrivateKeyDer<'static>,
    /// SHA-256 of the leaf certificate.
    pub fingerprint: Fingerprint,
}

/// Why an identity could not be loaded or made. Each names the file.
#[derive(Debug)]
pub enum IdentityError {
    /// A file could not be read.
    Read(PathBuf, io::Error),
    /// A file holds no certificate, or no private key, in PEM.
    NoPem(PathBuf, &'static str),
    /// The certificate exists without its key, or the reverse: refusing to
    /// make a new identity over half of an old one.
    HalfPresent(PathBuf),
    /// Writing a new identity failed.
    Write(PathBuf, io::Error),
    /// `rcgen` could not make the key or certificate.
    Generate(String),
    /// The key does not suit TLS (unsupported algorithm or not the
    /// certificate's key).
    Unusable(String),
}

impl fmt::Display for IdentityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdentityError::Read(p, e) => write!(f, "cannot read {}: {e}", p.display()),
            IdentityError::NoPem(p, what) => {
                write!(f, "{} holds no PEM {what}", p.display())
            }
            IdentityError::HalfPresent(p) => write!(
                f,
                "{} is missing while its pair exists; restore it or remove both to make a new identity",
                p.display()
            ),
            IdentityError::Write(p, e) => write!(f, "cannot write {}: {e}", p.display()),
            IdentityError::Generate(e) => write!(f, "cannot make a certificate: {e}"),
            IdentityError::Unusable(e) => write!(f, "unusable TLS key or certificate: {e}"),
        }
    }
}

impl std::error::Error for IdentityError {}

/// Where an identity came from, for the start-up message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Made now, on this start.
    Created,
    /// Read from files.
    Loaded,
}

/// Reads a PEM certificate chain and a PEM private key.
///
/// # Errors
/// A file unreadable or without the expected PEM section.
pub fn load(cert: &Path, key: &Path) -> Result<ServerIdentity, IdentityError> {
    let cert_pem = fs::read(cert).map_err(|e| IdentityError::Read(cert.to_owned(), e))?;
    let key_pem = fs::read(key).map_err(|e| IdentityError::Read(key.to_owned(), e))?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .filter_map(Result::ok)
        .collect();
    let Some(leaf) = chain.first() else {
        return Err(IdentityError::NoPem(cert.to_owned(), "certificate"));
    };
    let fingerprint = Fingerprint::of_der(leaf);
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|_| IdentityError::NoPem(key.to_owned(), "private key"))?;
    Ok(ServerIdentity {
        chain,
        key,
        fingerprint,
    })
}

/// Loads `DATA_DIR/tls/server.{crt,key}`, making them first when neither exists.
///
/// # Errors
/// See [`IdentityError`]; half of an identity present is an error, never
/// silently replaced (clients that recorded the old fingerprint would refuse).
pub fn load_or_create(data_dir: &Path) -> Result<(ServerIdentity, Origin), IdentityError> {
    let dir = data_dir.join(TLS_DIR);
    let cert = dir.join(CERT_FILE);
    let key = dir.join(KEY_FILE);
    match (cert.exists(), key.exists()) {
        (true, true) => return load(&cert, &key).map(|id| (id, Origin::Loaded)),
        (true, false) => return Err(IdentityError::HalfPresent(key)),
        (false, true) => return Err(IdentityError::HalfPresent(cert)),
        (false, false) => {}
    }
    let made = rcgen::generate_simple_self_signed(vec!["cloudservice".to_owned()])
        .map_err(|e| IdentityError::Generate(e.to_string()))?;
    crate::private_dir::create_all(&dir).map_err(|e| IdentityError::Write(dir.clone(), e))?;
    // The key first: a crash between the two leaves a key alone, which the
    // next start reports (HalfPresent) rather than a certificate without a key.
    write_private(&key, made.key_pair.serialize_pem().as_bytes())?;
    write_private(&cert, made.cert.pem().as_bytes())?;
    load(&cert, &key).map(|id| (id, Origin::Created))
}

/// Writes `bytes` to `path` with mode 0600 through a temporary name, so a
/// partial file is never seen under the real name.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), IdentityError> {
    let tmp = path.with_extension("tmp");
    let fail = |e| IdentityError::Write(path.to_owned(), e);
    let _ = fs::remove_file(&tmp);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(fail)?;
    file.write_all(bytes).map_err(fail)?;
    file.sync_all().map_err(fail)?;
    fs::rename(&tmp, path).map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn made_once_then_loaded_with_the_same_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        let (first, origin) = load_or_create(dir.path()).unwrap();
        assert_eq!(origin, Origin::Created);
        for name in [CERT_FILE, KEY_FILE] {
            let mode = fs::metadata(dir.path().join(TLS_DIR).join(name))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{name}");
        }
        let (again, origin) = load_or_create(dir.path()).unwrap();
        assert_eq!(origin, Origin::Loaded);
        assert_eq!(first.fingerprint, again.fingerprint);
        assert_eq!(first.fingerprint, Fingerprint::of_der(&again.chain[0]));
    }

    #[test]
    fn half_an_identity_is_refused_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        load_or_create(dir.path()).unwrap();
        let key = dir.path().join(TLS_DIR).join(KEY_FILE);
        fs::remove_file(&key).unwrap();
        assert!(matches!(
            load_or_create(dir.path()),
            Err(IdentityError::HalfPresent(p)) if p == key
        ));
    }

    #[test]
    fn unreadable_or_empty_files_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("c.pem");
        let key = dir.path().join("k.pem");
        assert!(matches!(load(&cert, &key), Err(IdentityError::Read(p, _)) if p == cert));
        fs::write(&cert, "not pem").unwrap();
        fs::write(&key, "not pem").unwrap();
        let err = load(&cert, &key).unwrap_err();
        assert!(err.to_string().contains("c.pem"), "{err}");
    }
}
