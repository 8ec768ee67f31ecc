//! Record keys that cost an idle TLS connection 2 x ~80 bytes instead of
//! 2 x ~560 (issue 12: <= 4 KiB per idle connection).
//!
//! ring's AEAD key (`aead::LessSafeKey`) holds the expanded AES key schedule
//! and the GHASH table, about 540 bytes, whatever the suite (its key type is
//! an enum sized for AES-GCM, so ChaCha20-Poly1305 costs the same). rustls
//! keeps one for each direction for as long as a connection lives. The
//! wrappers here keep only the 32-byte traffic key and the 12-byte IV (RFC
//! 8446 §7.3) and build ring's key, through rustls's own ring record
//! protection, for each record: the record layer (nonce, additional data,
//! inner content type, tag) stays rustls's code; only *when* the key is
//! expanded changes. The cost is one key expansion (AES-256: 15 round keys
//! and the GHASH table, well under a microsecond with AES-NI) and one
//! allocation per record, next to the record's encryption itself
//! (BENCHMARKS.md, "Idle TLS memory: record keys expanded per record").
//!
//! Only suites with 32-byte keys (TLS_AES_256_GCM_SHA384,
//! TLS_CHACHA20_POLY1305_SHA256) are wrapped: rustls's public `AeadKey` can
//! only be rebuilt from 32 bytes. Others keep ring's eager keys.

use rustls::crypto::cipher::{
    AeadKey, InboundOpaqueMessage, InboundPlainMessage, Iv, MessageDecrypter, MessageEncrypter,
    OutboundOpaqueMessage, OutboundPlainMessage, Tls13AeadAlgorithm, UnsupportedOperationError,
    NONCE_LEN,
};
use rustls::crypto::CryptoProvider;
use rustls::{ConnectionTrafficSecrets, Error, SupportedCipherSuite, Tls13CipherSuite};
use std::sync::OnceLock;
use zeroize::Zeroize;

/// Key length of the suites this wraps (AES-256-GCM, ChaCha20-Poly1305).
const KEY_LEN: usize = 32;

/// `provider` with each TLS 1.3 suite of a 32-byte key replaced by the same
/// suite with compact keys, in the same order, others unchanged.
pub fn with_compact_keys(mut provider: CryptoProvider) -> CryptoProvider {
    provider.cipher_suites = provider.cipher_suites.into_iter().map(compact).collect();
    provider
}

/// The compact form of `suite` (the same suite when it cannot be made so).
/// Each distinct suite is wrapped once per process: the wrapper must be
/// `'static` for rustls, so it is made once and kept.
pub fn compact(suite: SupportedCipherSuite) -> SupportedCipherSuite {
    static MADE: OnceLock<std::sync::Mutex<Vec<(SupportedCipherSuite, SupportedCipherSuite)>>> =
        OnceLock::new();
    // Irrefutable without rustls's "tls12" feature (TLS 1.3 only here),
    // kept refutable in case it is ever enabled.
    #[allow(irrefutable_let_patterns)]
    let SupportedCipherSuite::Tls13(inner) = suite
    else {
        return suite;
    };
    if inner.aead_alg.key_len() != KEY_LEN {
        return suite;
    }
    let made = MADE.get_or_init(Default::default);
    let Ok(mut made) = made.lock() else {
        return suite;
    };
    if let Some((_, wrapped)) = made.iter().find(|(s, _)| s.suite() == suite.suite()) {
        return *wrapped;
    }
    let aead: &'static CompactAead = Box::leak(Box::new(CompactAead {
        inner: inner.aead_alg,
    }));
    let wrapped: &'static Tls13CipherSuite = Box::leak(Box::new(Tls13CipherSuite {
        common: rustls::CipherSuiteCommon {
            suite: inner.common.suite,
            hash_provider: inner.common.hash_provider,
            confidentiality_limit: inner.common.confidentiality_limit,
        },
        hkdf_provider: inner.hkdf_provider,
        aead_alg: aead,
        quic: None,
    }));
    let wrapped = SupportedCipherSuite::Tls13(wrapped);
    made.push((suite, wrapped));
    wrapped
}

/// A suite's AEAD whose encrypters and decrypters keep the raw key.
struct CompactAead {
    inner: &'static dyn Tls13AeadAlgorithm,
}

/// The raw traffic key and IV of one direction (zeroed when dropped).
struct RawKey {
    key: [u8; KEY_LEN],
    iv: [u8; NONCE_LEN],
}

impl RawKey {
    fn new(key: &AeadKey, iv: &Iv) -> Result<RawKey, Error> {
        let (Ok(key), Ok(iv)) = (
            <[u8; KEY_LEN]>::try_from(key.as_ref()),
            <[u8; NONCE_LEN]>::try_from(iv.as_ref()),
        ) else {
            return Err(Error::General("unexpected TLS key length".into()));
        };
        Ok(RawKey { key, iv })
    }

    /// rustls's key and IV types, for one use (they zero themselves).
    fn parts(&self) -> (AeadKey, Iv) {
        (AeadKey::from(self.key), Iv::from(self.iv))
    }
}

impl Drop for RawKey {
    fn drop(&mut self) {
        self.key.zeroize();
        self.iv.zeroize();
    }
}

impl Tls13AeadAlgorithm for CompactAead {
    fn encrypter(&self, key: AeadKey, iv: Iv) -> Box<dyn MessageEncrypter> {
        match RawKey::new(&key, &iv) {
            Ok(raw) => {
                let overhead = self.inner.encrypter(key, iv).encrypted_payload_len(0);
                Box::new(CompactEncrypter {
                    inner: self.inner,
                    raw,
                    overhead,
                })
            }
            // Cannot happen (rustls asks for key_len() bytes): fall back
            // to the eager key rather than fail.
            Err(_) => self.inner.encrypter(key, iv),
        }
    }

    fn decrypter(&self, key: AeadKey, iv: Iv) -> Box<dyn MessageDecrypter> {
        match RawKey::new(&key, &iv) {
            Ok(raw) => Box::new(CompactDecrypter {
                inner: self.inner,
                raw,
            }),
            Err(_) => self.inner.decrypter(key, iv),
        }
    }

    fn key_len(&self) -> usize {
        self.inner.key_len()
    }

    fn extract_keys(
        &self,
        key: AeadKey,
        iv: Iv,
    ) -> Result<ConnectionTrafficSecrets, UnsupportedOperationError> {
        self.inner.extract_keys(key, iv)
    }

    fn fips(&self) -> bool {
        self.inner.fips()
    }
}

/// One direction's sealing key, expanded for each record.
struct CompactEncrypter {
    inner: &'static dyn Tls13AeadAlgorithm,
    raw: RawKey,
    /// Ciphertext minus plaintext length of a record (inner content type
    /// and tag), as the inner encrypter reports it.
    overhead: usize,
}

impl MessageEncrypter for CompactEncrypter {
    fn encrypt(
        &mut self,
        msg: OutboundPlainMessage<'_>,
        seq: u64,
    ) -> Result<OutboundOpaqueMessage, Error> {
        let (key, iv) = self.raw.parts();
        self.inner.encrypter(key, iv).encrypt(msg, seq)
    }

    fn encrypted_payload_len(&self, payload_len: usize) -> usize {
        payload_len + self.overhead
    }
}

/// One direction's opening key, expanded for each record.
struct CompactDecrypter {
    inner: &'static dyn Tls13AeadAlgorithm,
    raw: RawKey,
}

impl MessageDecrypter for CompactDecrypter {
    fn decrypt<'a>(
        &mut self,
        msg: InboundOpaqueMessage<'a>,
        seq: u64,
    ) -> Result<InboundPlainMessage<'a>, Error> {
        let (key, iv) = self.raw.parts();
        self.inner.decrypter(key, iv).decrypt(msg, seq)
    }
}

#[cfg(test)]
mod tests;
