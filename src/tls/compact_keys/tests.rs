//! Compact record keys seal and open exactly as ring's eager keys do.

use super::*;
use proptest::prelude::*;
use rustls::crypto::cipher::OutboundChunks;
use rustls::{CipherSuite, ContentType, ProtocolVersion};

/// ring's suites with 32-byte keys, eager.
fn eager_suites() -> Vec<&'static Tls13CipherSuite> {
    rustls::crypto::ring::default_provider()
        .cipher_suites
        .into_iter()
        .filter_map(|s| match s {
            SupportedCipherSuite::Tls13(t) if t.aead_alg.key_len() == KEY_LEN => Some(t),
            _ => None,
        })
        .collect()
}

fn tls13(suite: SupportedCipherSuite) -> &'static Tls13CipherSuite {
    #[allow(irrefutable_let_patterns)]
    let SupportedCipherSuite::Tls13(t) = suite
    else {
        panic!("not a TLS 1.3 suite")
    };
    t
}

fn seal(enc: &mut dyn MessageEncrypter, typ: ContentType, payload: &[u8], seq: u64) -> Vec<u8> {
    let msg = OutboundPlainMessage {
        typ,
        version: ProtocolVersion::TLSv1_2,
        payload: OutboundChunks::Single(payload),
    };
    enc.encrypt(msg, seq).expect("seal").encode()
}

/// Opens one whole record (5-byte header first); `None` if it does not open.
fn open(dec: &mut dyn MessageDecrypter, record: &[u8], seq: u64) -> Option<(ContentType, Vec<u8>)> {
    let mut body = record[5..].to_vec();
    let msg = InboundOpaqueMessage::new(
        ContentType::from(record[0]),
        ProtocolVersion::TLSv1_2,
        &mut body,
    );
    dec.decrypt(msg, seq)
        .ok()
        .map(|m| (m.typ, m.payload.to_vec()))
}

#[test]
fn wraps_the_32_byte_suites_keeps_the_others_and_the_order() {
    let eager = rustls::crypto::ring::default_provider();
    let compacted = with_compact_keys(rustls::crypto::ring::default_provider());
    let names = |p: &CryptoProvider| {
        p.cipher_suites
            .iter()
            .map(|s| s.suite())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&eager), names(&compacted));
    for (e, c) in eager.cipher_suites.iter().zip(&compacted.cipher_suites) {
        let (e, c) = (tls13(*e), tls13(*c));
        let wrapped = !std::ptr::addr_eq(e.aead_alg, c.aead_alg);
        assert_eq!(
            wrapped,
            e.aead_alg.key_len() == KEY_LEN,
            "{:?}",
            e.common.suite
        );
        assert_eq!(e.aead_alg.key_len(), c.aead_alg.key_len());
        assert_eq!(
            e.common.confidentiality_limit,
            c.common.confidentiality_limit
        );
    }
    let wrapped: Vec<CipherSuite> = compacted
        .cipher_suites
        .iter()
        .filter(|s| {
            !eager
                .cipher_suites
                .iter()
                .any(|e| std::ptr::addr_eq(tls13(*e).aead_alg, tls13(**s).aead_alg))
        })
        .map(|s| s.suite())
        .collect();
    assert_eq!(
        wrapped,
        [
            CipherSuite::TLS13_AES_256_GCM_SHA384,
            CipherSuite::TLS13_CHACHA20_POLY1305_SHA256
        ]
    );
    // Wrapping again gives the same 'static wrapper (made once per process).
    let again = with_compact_keys(rustls::crypto::ring::default_provider());
    for (a, b) in compacted.cipher_suites.iter().zip(&again.cipher_suites) {
        assert!(std::ptr::eq(tls13(*a), tls13(*b)));
    }
}

#[test]
fn a_compact_key_is_a_small_allocation() {
    // What rustls keeps per direction: the box's contents.
    assert!(std::mem::size_of::<CompactEncrypter>() <= 80);
    assert!(std::mem::size_of::<CompactDecrypter>() <= 80);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Any key, IV, sequence number, content type and payload (up to one
    /// full record): the compact encrypter's record is byte for byte ring's,
    /// each side opens the other's, and a flipped bit or another sequence
    /// number does not open.
    #[test]
    fn compact_keys_seal_and_open_as_ring_does(
        key in any::<[u8; 32]>(),
        iv in any::<[u8; 12]>(),
        seq in any::<u64>(),
        typ in prop::sample::select(vec![ContentType::ApplicationData, ContentType::Handshake, ContentType::Alert]),
        payload in prop::collection::vec(any::<u8>(), 0..16_385),
        flip in any::<prop::sample::Index>(),
    ) {
        for suite in eager_suites() {
            let eager = suite.aead_alg;
            let compact = tls13(compact(SupportedCipherSuite::Tls13(suite))).aead_alg;
            let mut e_enc = eager.encrypter(AeadKey::from(key), Iv::from(iv));
            let mut c_enc = compact.encrypter(AeadKey::from(key), Iv::from(iv));
            let mut e_dec = eager.decrypter(AeadKey::from(key), Iv::from(iv));
            let mut c_dec = compact.decrypter(AeadKey::from(key), Iv::from(iv));
            prop_assert_eq!(c_enc.encrypted_payload_len(payload.len()), e_enc.encrypted_payload_len(payload.len()));
            let by_ring = seal(e_enc.as_mut(), typ, &payload, seq);
            let by_compact = seal(c_enc.as_mut(), typ, &payload, seq);
            prop_assert_eq!(&by_ring, &by_compact);
            prop_assert_eq!(by_compact.len() - 5, c_enc.encrypted_payload_len(payload.len()));
            prop_assert_eq!(open(c_dec.as_mut(), &by_ring, seq), Some((typ, payload.clone())));
            prop_assert_eq!(open(e_dec.as_mut(), &by_compact, seq), Some((typ, payload.clone())));
            prop_assert_eq!(open(c_dec.as_mut(), &by_compact, seq.wrapping_add(1)), None);
            let mut tampered = by_compact.clone();
            let at = 5 + flip.index(tampered.len() - 5);
            tampered[at] ^= 1;
            prop_assert_eq!(open(c_dec.as_mut(), &tampered, seq), None);
        }
    }
}
