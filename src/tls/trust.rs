//! How a client trusts a server: by trust on first use (the fingerprint seen
//! on the first connection is recorded in `FOLDER/.cloudservice/known_server`
//! and required from then on, as SSH does with known_hosts), by a pinned
//! fingerprint (`--server-fingerprint HEX`), or by a CA (`--ca FILE`).
//!
//! [`TrustVerifier`] is the rustls certificate verifier for all three; it keeps
//! what it saw, so the client can record it or explain a refusal.

use super::config::provider;
use super::Fingerprint;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The file in the client's state folder that records the server's fingerprint.
pub const KNOWN_SERVER_FILE: &str = "known_server";

/// What the client requires of the server's certificate.
#[derive(Debug, Clone)]
pub enum TrustPolicy {
    /// The recorded fingerprint, if any; anything on the very first use.
    FirstUse {
        /// What `known_server` holds.
        known: Option<Fingerprint>,
    },
    /// Exactly this fingerprint (`--server-fingerprint`).
    Pinned(Fingerprint),
    /// A chain to one of these roots, for this host name (`--ca FILE`).
    Ca {
        /// The CA certificates.
        roots: Arc<RootCertStore>,
        /// The server's name as the certificate must state it (the
        /// SERVER_IP argument: the SNI carries the routing key instead).
        host: ServerName<'static>,
    },
}

/// Why the client refused the server's certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustFailure {
    /// The fingerprint differs from the one recorded on first use.
    Changed {
        /// Recorded in `known_server`.
        recorded: Fingerprint,
        /// Presented now.
        presented: Fingerprint,
    },
    /// The fingerprint differs from `--server-fingerprint`.
    NotPinned {
        /// Given on the command line.
        pinned: Fingerprint,
        /// Presented now.
        presented: Fingerprint,
    },
    /// The chain does not lead to the `--ca` roots (rustls's reason).
    Ca(String),
}

impl fmt::Display for TrustFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrustFailure::Changed {
                recorded,
                presented,
            } => write!(
                f,
                "the server's certificate changed: this folder recorded fingerprint {recorded}, \
                 the server presented {presented}. Someone may be intercepting the connection. \
                 If the operator replaced the certificate (cloud-server prints its fingerprint \
                 at start), run once with --server-fingerprint {presented} (or, for a certificate \
                 signed by a CA, with --ca FILE: trusted from then on)"
            ),
            TrustFailure::NotPinned { pinned, presented } => write!(
                f,
                "the server presented certificate fingerprint {presented}, not the pinned {pinned}"
            ),
            TrustFailure::Ca(why) => write!(f, "the server's certificate is not trusted: {why}"),
        }
    }
}

impl std::error::Error for TrustFailure {}

/// Why trust material could not be read.
#[derive(Debug)]
pub enum TrustFileError {
    /// The file could not be read or written.
    Io(PathBuf, io::Error),
    /// The file's content is not what it should be.
    Bad(PathBuf, String),
}

impl fmt::Display for TrustFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrustFileError::Io(p, e) => write!(f, "{}: {e}", p.display()),
            TrustFileError::Bad(p, why) => write!(f, "{}: {why}", p.display()),
        }
    }
}

impl std::error::Error for TrustFileError {}

/// The fingerprint recorded in `state_dir/known_server`, if any.
///
/// # Errors
/// Unreadable, or not a fingerprint (never silently ignored: that would
/// turn a tampered file into a fresh first use).
pub fn load_known(state_dir: &Path) -> Result<Option<Fingerprint>, TrustFileError> {
    let path = state_dir.join(KNOWN_SERVER_FILE);
    match fs::read_to_string(&path) {
        Ok(text) => text
            .parse()
            .map(Some)
            .map_err(|e| TrustFileError::Bad(path, format!("{e}"))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(TrustFileError::Io(path, e)),
    }
}

/// Records `fingerprint` in `state_dir/known_server` (through a temporary name).
///
/// # Errors
/// The write failed.
pub fn save_known(state_dir: &Path, fingerprint: Fingerprint) -> Result<(), TrustFileError> {
    let path = state_dir.join(KNOWN_SERVER_FILE);
    let tmp = state_dir.join(format!("{KNOWN_SERVER_FILE}.tmp"));
    let fail = |e| TrustFileError::Io(path.clone(), e);
    fs::write(&tmp, format!("{fingerprint}\n")).map_err(fail)?;
    fs::rename(&tmp, &path).map_err(fail)
}

/// The file in the client's state folder that records the CA a folder was
/// told to trust (`--ca FILE`): a copy of that PEM, so later runs without
/// the option keep requiring a chain to it instead of falling back to trust
/// on first use.
pub const TRUSTED_CA_FILE: &str = "trusted_ca.pem";

/// How a folder's state says its server is trusted, if it says so at all:
/// whichever was used last ([`record_fingerprint`], [`record_ca`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordedTrust {
    /// Nothing recorded: the folder never talked TLS to a server.
    Nothing,
    /// `known_server`: this certificate (first use or a pin).
    Fingerprint(Fingerprint),
    /// `trusted_ca.pem`: a chain to these CA certificates (PEM path).
    Ca(PathBuf),
}

/// What `state_dir` records about trusting the server.
///
/// # Errors
/// As [`load_known`]: a damaged `known_server` is an error, never a fresh
/// first use.
pub fn recorded_trust(state_dir: &Path) -> Result<RecordedTrust, TrustFileError> {
    let ca = state_dir.join(TRUSTED_CA_FILE);
    if ca.exists() {
        return Ok(RecordedTrust::Ca(ca));
    }
    Ok(load_known(state_dir)?.map_or(RecordedTrust::Nothing, RecordedTrust::Fingerprint))
}

/// Records that the server is trusted by `fingerprint` from now on (first
/// use, or `--server-fingerprint`): `known_server`, and no recorded CA.
///
/// # Errors
/// A write or removal failed.
pub fn record_fingerprint(
    state_dir: &Path,
    fingerprint: Fingerprint,
) -> Result<(), TrustFileError> {
    save_known(state_dir, fingerprint)?;
    remove_if_there(&state_dir.join(TRUSTED_CA_FILE))
}

/// Records that the server is trusted by a chain to the CA certificates in
/// `pem` (the bytes of `--ca FILE`) from now on: `trusted_ca.pem`, and no
/// recorded fingerprint.
///
/// # Errors
/// A write or removal failed.
pub fn record_ca(state_dir: &Path, pem: &[u8]) -> Result<(), TrustFileError> {
    let path = state_dir.join(TRUSTED_CA_FILE);
    let tmp = state_dir.join(format!("{TRUSTED_CA_FILE}.tmp"));
    let fail = |e| TrustFileError::Io(path.clone(), e);
    if fs::read(&path).is_ok_and(|had| had == pem) {
        return remove_if_there(&state_dir.join(KNOWN_SERVER_FILE));
    }
    fs::write(&tmp, pem).map_err(fail)?;
    fs::rename(&tmp, &path).map_err(fail)?;
    remove_if_there(&state_dir.join(KNOWN_SERVER_FILE))
}

fn remove_if_there(path: &Path) -> Result<(), TrustFileError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(TrustFileError::Io(path.to_owned(), e)),
    }
}

/// Reads the CA certificates of `--ca FILE` (PEM).
///
/// # Errors
/// Unreadable, or no certificate in it.
pub fn load_roots(path: &Path) -> Result<RootCertStore, TrustFileError> {
    let pem = fs::read(path).map_err(|e| TrustFileError::Io(path.to_owned(), e))?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem).filter_map(Result::ok) {
        roots
            .add(cert)
            .map_err(|e| TrustFileError::Bad(path.to_owned(), e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(TrustFileError::Bad(
            path.to_owned(),
            "no PEM certificate".into(),
        ));
    }
    Ok(roots)
}

/// The rustls verifier applying a [`TrustPolicy`].
#[derive(Debug)]
pub struct TrustVerifier {
    policy: TrustPolicy,
    provider: Arc<CryptoProvider>,
    webpki: Option<Arc<WebPkiServerVerifier>>,
    seen: Mutex<Option<Fingerprint>>,
    failure: Mutex<Option<TrustFailure>>,
}

impl TrustVerifier {
    /// A verifier for `policy`.
    pub fn new(policy: TrustPolicy) -> TrustVerifier {
        let provider = provider();
        let webpki = match &policy {
            TrustPolicy::Ca { roots, .. } => {
                WebPkiServerVerifier::builder_with_provider(Arc::clone(roots), provider.clone())
                    .build()
                    .ok()
            }
            _ => None,
        };
        TrustVerifier {
            policy,
            provider,
            webpki,
            seen: Mutex::new(None),
            failure: Mutex::new(None),
        }
    }

    /// The fingerprint of the last certificate the server presented.
    pub fn seen(&self) -> Option<Fingerprint> {
        self.seen.lock().ok().and_then(|s| *s)
    }

    /// Why the last certificate was refused, if it was.
    pub fn failure(&self) -> Option<TrustFailure> {
        self.failure.lock().ok().and_then(|f| f.clone())
    }

    /// The decision alone, apart from rustls (unit-testable).
    pub fn decide(
        &self,
        presented: Fingerprint,
        check_chain: impl FnOnce(&WebPkiServerVerifier, &ServerName<'static>) -> Result<(), String>,
    ) -> Result<(), TrustFailure> {
        match &self.policy {
            TrustPolicy::FirstUse { known: None } => Ok(()),
            TrustPolicy::FirstUse {
                known: Some(recorded),
            } if *recorded == presented => Ok(()),
            TrustPolicy::FirstUse {
                known: Some(recorded),
            } => Err(TrustFailure::Changed {
                recorded: *recorded,
                presented,
            }),
            TrustPolicy::Pinned(pinned) if *pinned == presented => Ok(()),
            TrustPolicy::Pinned(pinned) => Err(TrustFailure::NotPinned {
                pinned: *pinned,
                presented,
            }),
            TrustPolicy::Ca { host, .. } => match &self.webpki {
                Some(webpki) => check_chain(webpki, host).map_err(TrustFailure::Ca),
                None => Err(TrustFailure::Ca("no usable CA certificate".into())),
            },
        }
    }
}

impl ServerCertVerifier for TrustVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _sni: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let presented = Fingerprint::of_der(end_entity);
        if let Ok(mut seen) = self.seen.lock() {
            *seen = Some(presented);
        }
        let verdict = self.decide(presented, |webpki, host| {
            webpki
                .verify_server_cert(end_entity, intermediates, host, ocsp_response, now)
                .map(|_| ())
                .map_err(|e| e.to_string())
        });
        match verdict {
            Ok(()) => Ok(ServerCertVerified::assertion()),
            Err(failure) => {
                let error = rustls::Error::General(failure.to_string());
                if let Ok(mut slot) = self.failure.lock() {
                    *slot = Some(failure);
                }
                Err(error)
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_chain(_: &WebPkiServerVerifier, _: &ServerName<'static>) -> Result<(), String> {
        Err("unused".into())
    }

    #[test]
    fn first_use_accepts_anything_then_only_the_recorded() {
        let a = Fingerprint([1; 32]);
        let b = Fingerprint([2; 32]);
        let first = TrustVerifier::new(TrustPolicy::FirstUse { known: None });
        assert_eq!(first.decide(a, no_chain), Ok(()));
        let later = TrustVerifier::new(TrustPolicy::FirstUse { known: Some(a) });
        assert_eq!(later.decide(a, no_chain), Ok(()));
        let err = later.decide(b, no_chain).unwrap_err();
        assert_eq!(
            err,
            TrustFailure::Changed {
                recorded: a,
                presented: b
            }
        );
        let text = err.to_string();
        assert!(text.contains(&a.to_string()) && text.contains(&b.to_string()));
        assert!(text.contains("--server-fingerprint"), "{text}");
    }

    #[test]
    fn pinned_accepts_only_the_pin() {
        let a = Fingerprint([1; 32]);
        let pinned = TrustVerifier::new(TrustPolicy::Pinned(a));
        assert_eq!(pinned.decide(a, no_chain), Ok(()));
        assert!(pinned.decide(Fingerprint([3; 32]), no_chain).is_err());
    }

    #[test]
    fn the_last_trust_recorded_is_the_one_kept() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path();
        assert_eq!(recorded_trust(state).unwrap(), RecordedTrust::Nothing);
        let fp = Fingerprint([7; 32]);
        record_fingerprint(state, fp).unwrap();
        assert_eq!(
            recorded_trust(state).unwrap(),
            RecordedTrust::Fingerprint(fp)
        );
        record_ca(state, b"ca pem").unwrap();
        assert_eq!(
            recorded_trust(state).unwrap(),
            RecordedTrust::Ca(state.join(TRUSTED_CA_FILE))
        );
        assert!(load_known(state).unwrap().is_none(), "the pin is replaced");
        assert_eq!(fs::read(state.join(TRUSTED_CA_FILE)).unwrap(), b"ca pem");
        record_ca(state, b"ca pem").unwrap();
        record_fingerprint(state, fp).unwrap();
        assert_eq!(
            recorded_trust(state).unwrap(),
            RecordedTrust::Fingerprint(fp)
        );
        assert!(!state.join(TRUSTED_CA_FILE).exists(), "the CA is replaced");
        fs::write(state.join(KNOWN_SERVER_FILE), "tampered").unwrap();
        assert!(recorded_trust(state).is_err(), "never a fresh first use");
    }

    #[test]
    fn known_server_file_round_trips_and_refuses_garbage() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load_known(dir.path()).unwrap().is_none());
        let fp = Fingerprint([7; 32]);
        save_known(dir.path(), fp).unwrap();
        assert_eq!(load_known(dir.path()).unwrap(), Some(fp));
        fs::write(dir.path().join(KNOWN_SERVER_FILE), "tampered").unwrap();
        assert!(matches!(
            load_known(dir.path()),
            Err(TrustFileError::Bad(..))
        ));
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        fs::write(&path, "nothing").unwrap();
        assert!(matches!(load_roots(&path), Err(TrustFileError::Bad(..))));
        assert!(matches!(
            load_roots(&dir.path().join("missing")),
            Err(TrustFileError::Io(..))
        ));
    }
}
