//! The header state machine fed whole, byte by byte and in random splits
//! (PROTOCOL.md §17): every strict prefix of a header waits, the whole one
//! gives its exact length whatever follows, and anything else is refused.

use super::*;
use proptest::prelude::*;
use std::net::{IpAddr, Ipv6Addr};

/// v2's 12-byte signature.
const SIG: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";
/// The start of a TLS ClientHello, as it follows the header.
const TLS: &[u8] = &[
    0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
];

/// A v2 header by hand (proxy-protocol.txt §2.2), not by ppp's builder.
fn v2(command: u8, family: u8, payload: &[u8]) -> Vec<u8> {
    let mut h = SIG.to_vec();
    h.push(0x20 | command);
    h.push(family);
    h.extend_from_slice(&u16::try_from(payload.len()).expect("short").to_be_bytes());
    h.extend_from_slice(payload);
    h
}

fn v2_ipv4(src: [u8; 4], port: u16, tlvs: &[u8]) -> Vec<u8> {
    let mut p = src.to_vec();
    p.extend_from_slice(&[127, 0, 0, 1]);
    p.extend_from_slice(&port.to_be_bytes());
    p.extend_from_slice(&7000u16.to_be_bytes());
    p.extend_from_slice(tlvs);
    v2(0x1, 0x11, &p)
}

fn v2_ipv6(src: Ipv6Addr, port: u16, tlvs: &[u8]) -> Vec<u8> {
    let mut p = src.octets().to_vec();
    p.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
    p.extend_from_slice(&port.to_be_bytes());
    p.extend_from_slice(&7000u16.to_be_bytes());
    p.extend_from_slice(tlvs);
    v2(0x1, 0x21, &p)
}

/// TLVs HAProxy sends with `proxy-v2-options authority,unique-id`: an
/// authority (the SNI), a unique ID and a NOOP of padding.
fn tlvs() -> Vec<u8> {
    let mut t = Vec::new();
    for (kind, value) in [
        (0x02u8, &b"r00abcdef.route.cloudservice"[..]),
        (0x05, &b"7f000001:d2f0_7f000001:1b58_0001"[..]),
        (0x04, &[0u8; 5][..]),
    ] {
        t.push(kind);
        t.extend_from_slice(&u16::try_from(value.len()).expect("short").to_be_bytes());
        t.extend_from_slice(value);
    }
    t
}

fn client(text: &str) -> Source {
    Source::Client(text.parse().expect("address"))
}

/// Every valid header of the tests, with whom it names and its version.
fn valid() -> Vec<(Vec<u8>, Source, u8)> {
    let v6: Ipv6Addr = "2001:db8::7".parse().expect("v6");
    vec![
        (
            b"PROXY TCP4 192.0.2.7 127.0.0.1 51000 7000\r\n".to_vec(),
            client("192.0.2.7:51000"),
            1,
        ),
        (
            b"PROXY TCP6 2001:db8::7 ::1 51000 7000\r\n".to_vec(),
            client("[2001:db8::7]:51000"),
            1,
        ),
        (b"PROXY UNKNOWN\r\n".to_vec(), Source::Unknown, 1),
        (
            b"PROXY UNKNOWN ffff::1 ::1 1 2\r\n".to_vec(),
            Source::Unknown,
            1,
        ),
        (
            v2_ipv4([192, 0, 2, 7], 51000, &[]),
            client("192.0.2.7:51000"),
            2,
        ),
        (
            v2_ipv4([127, 0, 0, 2], 40000, &tlvs()),
            client("127.0.0.2:40000"),
            2,
        ),
        (
            v2_ipv6(v6, 51000, &tlvs()),
            Source::Client((IpAddr::V6(v6), 51000).into()),
            2,
        ),
        // LOCAL (HAProxy's health checks): no addresses, or some to skip.
        (v2(0x0, 0x00, &[]), Source::Local, 2),
        (v2(0x0, 0x11, &[0; 12]), Source::Local, 2),
        // PROXY with an unspecified family, and AF_UNIX: no client address.
        (v2(0x1, 0x00, &tlvs()), Source::Unknown, 2),
        (v2(0x1, 0x31, &[b'/'; 216]), Source::Unknown, 2),
    ]
}

#[test]
fn every_header_fed_byte_by_byte_waits_then_gives_its_exact_length() {
    for (header, source, version) in valid() {
        let mut stream = header.clone();
        stream.extend_from_slice(TLS);
        for n in 0..header.len() {
            assert_eq!(
                parse(&stream[..n]),
                Ok(Gathered::Incomplete),
                "{n} of {} bytes of {:?}",
                header.len(),
                String::from_utf8_lossy(&header)
            );
        }
        let want = Ok(Gathered::Complete {
            len: header.len(),
            source,
            version,
        });
        for n in header.len()..=stream.len() {
            assert_eq!(parse(&stream[..n]), want, "{n} bytes");
        }
    }
}

#[test]
fn wrong_signatures_are_refused_at_the_first_byte_that_differs() {
    // What a client speaking straight to the server sends: a ClientHello,
    // a plaintext frame; and near misses of both signatures.
    assert_eq!(parse(TLS), Err(HeaderError::NoSignature));
    assert_eq!(parse(&TLS[..1]), Err(HeaderError::NoSignature));
    assert_eq!(parse(b"CS"), Err(HeaderError::NoSignature));
    assert_eq!(parse(b"PROXX"), Err(HeaderError::NoSignature));
    assert_eq!(parse(b"proxy TCP4"), Err(HeaderError::NoSignature));
    assert_eq!(parse(b"PROX"), Ok(Gathered::Incomplete));
    assert_eq!(parse(b"\r\n\r\n\0\r\nQUIX"), Err(HeaderError::NoSignature));
    assert_eq!(parse(b"\r\n\r\n\0"), Ok(Gathered::Incomplete));
}

#[test]
fn wrong_headers_after_a_right_signature_are_refused_with_the_reason() {
    let invalid = |bytes: &[u8], version: u8| match parse(bytes) {
        Err(HeaderError::Invalid { version: v, why }) => {
            assert_eq!(v, version, "{why}");
            assert!(!why.is_empty());
        }
        other => panic!("{:?}: {other:?}", String::from_utf8_lossy(bytes)),
    };
    invalid(b"PROXY TCP4 192.0.2.7\r\n", 1);
    invalid(b"PROXY TCP4 192.0.2.7 127.0.0.1 51000 7000\rX", 1);
    invalid(b"PROXY TCP4 192.0.2.999 127.0.0.1 51000 7000\r\n", 1);
    invalid(b"PROXY TCP4 192.0.2.7 127.0.0.1 99999 7000\r\n", 1);
    invalid(b"PROXY UDP4 192.0.2.7 127.0.0.1 1 2\r\n", 1);
    invalid(b"PROXY TCP4 2001:db8::7 ::1 1 2\r\n", 1);
    // v2: version 1 in the version nibble, command 2, family 4, and an
    // IPv4 header too short for its addresses.
    let mut h = v2_ipv4([192, 0, 2, 7], 1, &[]);
    h[12] = 0x11;
    invalid(&h, 2);
    h[12] = 0x22;
    invalid(&h, 2);
    invalid(&v2(0x1, 0x41, &[0; 12]), 2);
    invalid(&v2(0x1, 0x11, &[0; 8]), 2);
}

#[test]
fn oversized_headers_are_refused_without_waiting_for_them() {
    // v2: the length field alone says so, at byte 16.
    let big = v2(0x1, 0x11, &[0; MAX_HEADER]);
    assert_eq!(
        parse(&big[..16]),
        Err(HeaderError::TooLong { limit: MAX_HEADER })
    );
    // The largest taken.
    let most = v2(0x1, 0x11, &[0; MAX_HEADER - 16]);
    assert!(matches!(
        parse(&most),
        Ok(Gathered::Complete {
            len: MAX_HEADER,
            ..
        })
    ));
    // v1: 107 bytes without a CR.
    let mut line = b"PROXY TCP4 ".to_vec();
    line.resize(MAX_V1 - 1, b'1');
    assert_eq!(parse(&line), Ok(Gathered::Incomplete));
    line.push(b'1');
    assert_eq!(parse(&line), Err(HeaderError::TooLong { limit: MAX_V1 }));
    // A CR at the last allowed byte leaves no room for the LF.
    line[MAX_V1 - 1] = b'\r';
    line.push(b'\n');
    assert_eq!(parse(&line), Err(HeaderError::TooLong { limit: MAX_V1 }));
}

#[test]
fn error_texts_name_the_problem() {
    assert_eq!(
        HeaderError::TooLong { limit: 1024 }.to_string(),
        "PROXY protocol header longer than 1024 bytes"
    );
    assert!(HeaderError::NoSignature
        .to_string()
        .starts_with("no PROXY protocol header"));
}

proptest! {
    /// A header (any of the valid ones) followed by a ClientHello, gathered
    /// in random pieces as a socket delivers them: incomplete while short,
    /// then complete with its exact length at every later look.
    #[test]
    fn random_splits_give_the_same_answer(which in 0usize..11, cuts in proptest::collection::vec(1usize..40, 1..40)) {
        let all = valid();
        let (header, source, version) = all[which % all.len()].clone();
        let mut stream = header.clone();
        stream.extend_from_slice(TLS);
        let mut gathered = 0usize;
        for cut in cuts.iter().copied().chain(std::iter::repeat(7)).take(200) {
            gathered = (gathered + cut).min(stream.len());
            let got = parse(&stream[..gathered]);
            if gathered < header.len() {
                prop_assert_eq!(got, Ok(Gathered::Incomplete));
            } else {
                prop_assert_eq!(got, Ok(Gathered::Complete { len: header.len(), source, version }));
            }
            if gathered == stream.len() {
                break;
            }
        }
    }

    /// Arbitrary bytes never panic; a complete answer is about a prefix
    /// of them, at most MAX_HEADER long, and that prefix alone says the same.
    #[test]
    fn arbitrary_bytes_are_judged_consistently(head in 0usize..3, tail in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut bytes = [&b""[..], b"PROXY ", SIG][head].to_vec();
        bytes.extend_from_slice(&tail);
        if let Ok(Gathered::Complete { len, source, version }) = parse(&bytes) {
            prop_assert!(len <= bytes.len() && len <= MAX_HEADER);
            prop_assert_eq!(parse(&bytes[..len]), Ok(Gathered::Complete { len, source, version }));
        }
    }
}
