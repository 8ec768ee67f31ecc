//! The server's side of the TLS layer at start-up: which certificate it
//! serves (made under `DATA_DIR/tls/` on first start, or `--tls-cert` and
//! `--tls-key`), the rustls configuration the reactor hands each connection,
//! and the reload (on SIGHUP, [`super::hangup`]) that swaps the certificate
//! for new handshakes without dropping any connection.

use crate::tls::config::{server_config, CertSlot};
use crate::tls::identity::{self, IdentityError, Origin, CERT_FILE, KEY_FILE, TLS_DIR};
use crate::tls::Fingerprint;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// TLS (the default) or plaintext, from the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerSecurity {
    /// `--insecure-plaintext`: frames straight on TCP.
    Plaintext,
    /// TLS 1.3.
    Tls {
        /// `--tls-cert FILE --tls-key FILE`; none: the identity under the data directory.
        files: Option<(PathBuf, PathBuf)>,
    },
}

/// A ready TLS setup.
#[derive(Debug)]
pub struct Prepared {
    /// What every accepted connection is given.
    pub config: Arc<rustls::ServerConfig>,
    /// The certificate served (swapped on SIGHUP).
    pub slot: Arc<CertSlot>,
    /// Its fingerprint at start.
    pub fingerprint: Fingerprint,
    /// Made now or read from files.
    pub origin: Origin,
    /// The certificate and key files (re-read on SIGHUP).
    pub files: (PathBuf, PathBuf),
}

/// Loads or makes the identity and builds the rustls configuration.
///
/// # Errors
/// The identity's ([`IdentityError`]), naming the file.
pub fn prepare(
    security: &ServerSecurity,
    data_dir: &Path,
) -> Result<Option<Prepared>, IdentityError> {
    let ServerSecurity::Tls { files } = security else {
        return Ok(None);
    };
    let (id, origin, files) = match files {
        Some((cert, key)) => (
            identity::load(cert, key)?,
            Origin::Loaded,
            (cert.clone(), key.clone()),
        ),
        None => {
            let (id, origin) = identity::load_or_create(data_dir)?;
            let dir = data_dir.join(TLS_DIR);
            (id, origin, (dir.join(CERT_FILE), dir.join(KEY_FILE)))
        }
    };
    let fingerprint = id.fingerprint;
    let slot = Arc::new(CertSlot::new(id)?);
    let config =
        server_config(Arc::clone(&slot)).map_err(|e| IdentityError::Unusable(e.to_string()))?;
    Ok(Some(Prepared {
        config,
        slot,
        fingerprint,
        origin,
        files,
    }))
}

/// Re-reads the certificate files into `slot`; a bad pair is logged and
/// the old certificate kept.
pub fn reload(slot: &CertSlot, files: &(PathBuf, PathBuf)) {
    match identity::load(&files.0, &files.1).and_then(|id| {
        let fingerprint = id.fingerprint;
        slot.replace(id).map(|()| fingerprint)
    }) {
        Ok(fingerprint) => {
            log::info!("SIGHUP: serving certificate fingerprint {fingerprint} to new connections")
        }
        Err(e) => log::error!("SIGHUP: keeping the current certificate: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reload_swaps_the_certificate_and_keeps_it_on_bad_files() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let first = prepare(&ServerSecurity::Tls { files: None }, a.path())
            .unwrap()
            .unwrap();
        let (other, _) = identity::load_or_create(b.path()).unwrap();
        let other_files = (
            b.path().join(TLS_DIR).join(CERT_FILE),
            b.path().join(TLS_DIR).join(KEY_FILE),
        );
        reload(&first.slot, &other_files);
        assert_eq!(first.slot.fingerprint(), Some(other.fingerprint));
        reload(&first.slot, &(b.path().join("none"), b.path().join("none")));
        assert_eq!(first.slot.fingerprint(), Some(other.fingerprint));
        assert!(prepare(&ServerSecurity::Plaintext, a.path())
            .unwrap()
            .is_none());
    }
}
