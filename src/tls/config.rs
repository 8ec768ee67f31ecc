//! The rustls configurations: TLS 1.3 only, the ring provider's cipher
//! suites (TLS13_AES_256_GCM_SHA384, TLS13_AES_128_GCM_SHA256,
//! TLS13_CHACHA20_POLY1305_SHA256), ALPN `cloudservice/1`, no session
//! tickets (a device keeps one long connection; resumption would only cost
//! server memory). The server picks the first of its suites the client
//! offers (TLS_AES_256_GCM_SHA384 from every client we know) and keeps that
//! suite's record keys compact ([`super::compact_keys`], issue 12).

use super::identity::{IdentityError, ServerIdentity};
use super::{Fingerprint, ALPN};
use rustls::client::danger::ServerCertVerifier;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::sync::{Arc, RwLock};

/// The crypto provider both ends use.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The server's current certificate, swappable while connections stay up
/// (SIGHUP re-reads `--tls-cert/--tls-key`): a new handshake takes whatever
/// is here; established connections keep their keys.
#[derive(Debug)]
pub struct CertSlot {
    current: RwLock<(Arc<CertifiedKey>, Fingerprint)>,
}

impl CertSlot {
    /// A slot holding `identity`.
    ///
    /// # Errors
    /// The key is not usable for TLS.
    pub fn new(identity: ServerIdentity) -> Result<CertSlot, IdentityError> {
        let fingerprint = identity.fingerprint;
        let key = certified_key(identity)?;
        Ok(CertSlot {
            current: RwLock::new((key, fingerprint)),
        })
    }

    /// Replaces the certificate for new handshakes.
    ///
    /// # Errors
    /// The key is not usable; the old certificate stays.
    pub fn replace(&self, identity: ServerIdentity) -> Result<(), IdentityError> {
        let fingerprint = identity.fingerprint;
        let key = certified_key(identity)?;
        if let Ok(mut slot) = self.current.write() {
            *slot = (key, fingerprint);
        }
        Ok(())
    }

    /// The fingerprint of the certificate served now.
    pub fn fingerprint(&self) -> Option<Fingerprint> {
        self.current.read().ok().map(|s| s.1)
    }
}

impl ResolvesServerCert for CertSlot {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().map(|s| Arc::clone(&s.0))
    }
}

fn certified_key(identity: ServerIdentity) -> Result<Arc<CertifiedKey>, IdentityError> {
    let signer = provider()
        .key_provider
        .load_private_key(identity.key)
        .map_err(|e| IdentityError::Unusable(e.to_string()))?;
    let key = CertifiedKey::new(identity.chain, signer);
    key.keys_match()
        .map_err(|e| IdentityError::Unusable(e.to_string()))?;
    Ok(Arc::new(key))
}

/// The server's crypto provider: [`provider`] with compact record keys for
/// its 32-byte-key suites ([`super::compact_keys`]), same suites, same order.
pub fn server_provider() -> Arc<CryptoProvider> {
    Arc::new(super::compact_keys::with_compact_keys(
        rustls::crypto::ring::default_provider(),
    ))
}

/// The server configuration around `slot`.
///
/// # Errors
/// rustls refused the protocol versions (cannot happen with ring and 1.3).
pub fn server_config(slot: Arc<CertSlot>) -> Result<Arc<rustls::ServerConfig>, rustls::Error> {
    let mut config = rustls::ServerConfig::builder_with_provider(server_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_cert_resolver(slot);
    config.alpn_protocols = vec![ALPN.to_vec()];
    // The server's order decides: AES-256-GCM (compact keys) whenever the
    // client offers it, whatever it prefers.
    config.ignore_client_order = true;
    config.send_tls13_tickets = 0;
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    Ok(Arc::new(config))
}

/// The client configuration checking the server with `verifier`.
///
/// # Errors
/// rustls refused the protocol versions (cannot happen with ring and 1.3).
pub fn client_config(
    verifier: Arc<dyn ServerCertVerifier>,
) -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![ALPN.to_vec()];
    config.resumption = rustls::client::Resumption::disabled();
    Ok(Arc::new(config))
}

/// A client configuration pinned to a fingerprint nobody has (tests that
/// only need a ClientHello, or a refused handshake).
#[cfg(test)]
pub fn test_client_config() -> Arc<rustls::ClientConfig> {
    let verifier = super::trust::TrustVerifier::new(super::trust::TrustPolicy::Pinned(
        Fingerprint([0xee; 32]),
    ));
    client_config(Arc::new(verifier)).expect("config")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls13_only_no_tickets_no_client_certificates() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (identity, _) = crate::tls::identity::load_or_create(dir.path()).expect("identity");
        let slot = Arc::new(CertSlot::new(identity).expect("slot"));
        let server = server_config(slot).expect("server config");
        assert_eq!(server.send_tls13_tickets, 0);
        assert!(server.ignore_client_order);
        assert_eq!(
            server.crypto_provider().cipher_suites[0].suite(),
            rustls::CipherSuite::TLS13_AES_256_GCM_SHA384
        );
        assert_eq!(server.alpn_protocols, vec![ALPN.to_vec()]);
        let client = test_client_config();
        assert!(!client.client_auth_cert_resolver.has_certs());
        assert_eq!(client.alpn_protocols, vec![ALPN.to_vec()]);
        // Only TLS 1.3 suites are offered.
        for suite in &client.crypto_provider().cipher_suites {
            assert_eq!(suite.version(), &rustls::version::TLS13);
        }
    }
}
