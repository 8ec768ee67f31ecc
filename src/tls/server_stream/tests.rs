//! A client [`TlsStream`] and a [`ServerTlsStream`] talking through the
//! in-memory pipes of the buffered stream's tests (bounded, `WouldBlock`).

use super::*;
use crate::tls::config::{client_config, server_config, CertSlot};
use crate::tls::identity::load_or_create;
use crate::tls::stream::tests::{pipe_pair, Pipe};
use crate::tls::stream::TlsStream;
use crate::tls::trust::{TrustPolicy, TrustVerifier};
use crate::tls::Fingerprint;
use proptest::prelude::*;
use rustls::pki_types::ServerName;

/// Either end, driven like a reactor drives a socket.
trait End {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize>;
    fn write(&mut self, buf: &[u8]) -> io::Result<usize>;
    fn flush_tls(&mut self) -> io::Result<bool>;
}

impl End for TlsStream<Pipe> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        TlsStream::read(self, buf)
    }
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        TlsStream::write(self, buf)
    }
    fn flush_tls(&mut self) -> io::Result<bool> {
        TlsStream::flush_tls(self)
    }
}

thread_local! {
    /// The sealing scratch, shared by every server stream of a test thread
    /// as the reactor's is by every connection: what an earlier write left
    /// in it must not matter.
    static SEAL: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl End for ServerTlsStream<Pipe> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        SEAL.with(|scratch| ServerTlsStream::read(self, buf, &mut scratch.borrow_mut()))
    }
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        SEAL.with(|seal| ServerTlsStream::write(self, buf, &mut seal.borrow_mut()))
    }
    fn flush_tls(&mut self) -> io::Result<bool> {
        ServerTlsStream::flush_tls(self)
    }
}

struct Pair {
    client: TlsStream<Pipe>,
    server: ServerTlsStream<Pipe>,
}

fn pair(capacity: usize, policy: impl FnOnce(Fingerprint) -> TrustPolicy) -> Pair {
    let dir = tempfile::tempdir().unwrap();
    let (identity, _) = load_or_create(dir.path()).unwrap();
    let fingerprint = identity.fingerprint;
    let slot = Arc::new(CertSlot::new(identity).unwrap());
    let server_cfg = server_config(slot).unwrap();
    let verifier = Arc::new(TrustVerifier::new(policy(fingerprint)));
    let client_cfg = client_config(verifier).unwrap();
    let (a, b) = pipe_pair(capacity);
    let name = ServerName::try_from("new.cloudservice").unwrap();
    Pair {
        client: TlsStream::new(rustls::ClientConnection::new(client_cfg, name).unwrap(), a),
        server: ServerTlsStream::new(server_cfg, b).unwrap(),
    }
}

/// Moves `data` from `from` to `to`, both sides stepping like the reactor
/// (write until WouldBlock, flush on writable, read until WouldBlock).
fn transfer(from: &mut dyn End, to: &mut dyn End, data: &[u8]) -> Vec<u8> {
    transfer_reading(from, to, data, 4096)
}

/// [`transfer`], reading `read_len` bytes at most per read.
fn transfer_reading(from: &mut dyn End, to: &mut dyn End, data: &[u8], read_len: usize) -> Vec<u8> {
    let mut sent = 0;
    let mut got = Vec::new();
    let mut buf = vec![0u8; read_len];
    for _ in 0..1_000_000 {
        if got.len() == data.len() {
            return got;
        }
        if sent < data.len() {
            match from.write(&data[sent..]) {
                Ok(n) => sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // The server cannot send before its handshake is complete.
                Err(e) if e.kind() == io::ErrorKind::NotConnected => {}
                Err(e) => panic!("write: {e}"),
            }
        } else {
            from.flush_tls().unwrap();
        }
        to.flush_tls().unwrap();
        let _ = from
            .read(&mut buf)
            .map(|n| assert_eq!(n, 0, "no data expected back"));
        loop {
            match to.read(&mut buf) {
                Ok(0) => panic!("unexpected end"),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("read: {e}"),
            }
        }
    }
    panic!("no progress: {} of {} bytes", got.len(), data.len());
}

/// Reads until the server's stream would block (draining what it holds).
fn settle(server: &mut ServerTlsStream<Pipe>) {
    let mut buf = [0u8; 1024];
    loop {
        match End::read(server, &mut buf) {
            Ok(n) => assert_eq!(n, 0, "no data expected"),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("read: {e}"),
        }
    }
}

/// Every byte the server's pipe received, raw (TLS records).
fn raw_from_server(client: &mut TlsStream<Pipe>) -> Vec<u8> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = client.socket_mut().read(&mut buf) {
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
    }
    raw
}

#[test]
fn handshake_both_directions_then_no_buffer_while_idle() {
    let mut p = pair(1024, TrustPolicy::Pinned);
    let up: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(transfer(&mut p.client, &mut p.server, &up), up);
    let down: Vec<u8> = (0..70_000u32).map(|i| (i % 241) as u8).collect();
    assert_eq!(transfer(&mut p.server, &mut p.client, &down), down);
    assert_eq!(p.server.alpn_protocol(), Some(crate::tls::ALPN));
    assert_eq!(
        p.server.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    settle(&mut p.server);
    assert!(!p.server.wants_write());
    assert_eq!(p.server.buffered_capacity(), 0, "idle: no buffers held");
}

#[test]
fn a_wrong_pin_fails_the_handshake_on_both_sides() {
    let mut p = pair(64 * 1024, |_| TrustPolicy::Pinned(Fingerprint([9; 32])));
    let mut buf = [0u8; 256];
    let mut client_err = None;
    let mut server_err = None;
    for _ in 0..50 {
        let _ = p.client.write(b"x");
        match End::read(&mut p.server, &mut buf) {
            Err(e) if e.kind() != io::ErrorKind::WouldBlock => server_err = Some(e),
            _ => {}
        }
        match p.client.read(&mut buf) {
            Err(e) if e.kind() != io::ErrorKind::WouldBlock => client_err = Some(e),
            _ => {}
        }
        if client_err.is_some() && server_err.is_some() {
            break;
        }
    }
    let client_err = client_err.expect("client refused");
    assert!(client_err.to_string().contains("pinned"), "{client_err}");
    let server_err = server_err.expect("the server saw the alert");
    assert_eq!(server_err.kind(), io::ErrorKind::InvalidData);
}

#[test]
fn garbage_instead_of_a_client_hello_is_invalid_data_and_an_alert() {
    let mut p = pair(64 * 1024, TrustPolicy::Pinned);
    p.client
        .socket_mut()
        .write_all(b"CS\x01garbage that is not TLS")
        .unwrap();
    let mut buf = [0u8; 64];
    let err = End::read(&mut p.server, &mut buf).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
    let raw = raw_from_server(&mut p.client);
    assert_eq!(raw.first(), Some(&0x15), "a TLS alert record: {raw:02x?}");
}

#[test]
fn a_tls12_only_client_hello_gets_a_protocol_version_alert() {
    let mut p = pair(64 * 1024, TrustPolicy::Pinned);
    p.client
        .socket_mut()
        .write_all(&tls12_only_client_hello())
        .unwrap();
    let mut buf = [0u8; 64];
    let err = End::read(&mut p.server, &mut buf).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
    // Alert record, fatal (2), protocol_version (70), RFC 8446 §6.2.
    let raw = raw_from_server(&mut p.client);
    assert_eq!(raw.len(), 7, "{raw:02x?}");
    assert_eq!((raw[0], raw[5], raw[6]), (0x15, 2, 70), "{raw:02x?}");
}

#[test]
fn a_peer_gone_mid_handshake_is_an_error_not_a_hang() {
    let mut p = pair(64 * 1024, TrustPolicy::Pinned);
    let _ = p.client.write(b"x");
    p.client.socket().close();
    let mut buf = [0u8; 64];
    let err = loop {
        match End::read(&mut p.server, &mut buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            other => break other,
        }
    };
    assert!(
        matches!(&err, Err(e) if e.kind() == io::ErrorKind::UnexpectedEof),
        "{err:?}"
    );
}

#[test]
fn writing_before_the_handshake_is_not_connected() {
    let mut p = pair(64 * 1024, TrustPolicy::Pinned);
    let _ = p.client.write(b"x");
    settle(&mut p.server);
    let err = p.server.write(b"too early", &mut Vec::new()).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotConnected);
}

#[test]
fn a_slow_reader_bounds_what_the_server_holds() {
    let mut p = pair(4096, TrustPolicy::Pinned);
    transfer(&mut p.client, &mut p.server, b"hello");
    let chunk = vec![7u8; 16 * 1024];
    let mut accepted = 0;
    for _ in 0..1000 {
        match End::write(&mut p.server, &chunk) {
            Ok(n) => accepted += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(accepted <= SEND_LIMIT + 4096, "accepted {accepted}");
    assert!(p.server.wants_write());
    assert!(p.server.buffered_capacity() <= 2 * SEND_LIMIT);
}

#[test]
fn a_whole_frame_is_sealed_and_sent_in_one_write() {
    // Room for the frame's records in the socket: one call takes it all
    // (issue 12: four calls of SEND_LIMIT each cost four sendto).
    let frame = vec![9u8; crate::protocol::limits::CHUNK_SIZE + 12];
    let mut p = pair(2 * WRITE_BATCH, TrustPolicy::Pinned);
    transfer(&mut p.client, &mut p.server, b"hello");
    assert_eq!(End::write(&mut p.server, &frame).unwrap(), frame.len());
    assert!(!p.server.wants_write(), "the socket took every record");
    let mut plain = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    while plain.len() < frame.len() {
        match p.client.read(&mut buf) {
            Ok(n) => plain.extend_from_slice(&buf[..n]),
            Err(e) => panic!("{e} after {} bytes", plain.len()),
        }
    }
    assert_eq!(plain, frame);
}

#[test]
fn a_bulk_upload_is_read_a_frame_per_socket_read_and_only_a_partial_record_kept() {
    // 256 KiB and a bit (a FileChunk frame's worth and a partial record)
    // waiting in the socket; the reactor reads with its 256 KiB buffer.
    let mut p = pair(4 * WRITE_BATCH, TrustPolicy::Pinned);
    transfer(&mut p.client, &mut p.server, b"hello");
    let data: Vec<u8> = (0..crate::protocol::limits::CHUNK_SIZE + 5000)
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    let mut sent = 0;
    while sent < data.len() {
        sent += p.client.write(&data[sent..]).unwrap();
        p.client.flush_tls().unwrap();
    }
    let before = p.server.socket().reads;
    let mut buf = vec![0u8; crate::protocol::limits::CHUNK_SIZE];
    let n = End::read(&mut p.server, &mut buf).unwrap();
    // At most the caller's room less one record is decrypted into it.
    assert!(n >= buf.len() - 2 * RECORD, "{n}");
    assert_eq!(buf[..n], data[..n]);
    assert!(
        p.server.socket().reads - before <= 2,
        "{} socket reads for {n} bytes",
        p.server.socket().reads - before
    );
    // What the connection keeps between reads: a partial record at most.
    assert!(
        p.server.buffered_capacity() <= std::mem::size_of::<Buffers>() + RECORD,
        "{}",
        p.server.buffered_capacity()
    );
    let mut got = buf[..n].to_vec();
    while got.len() < data.len() {
        match End::read(&mut p.server, &mut buf) {
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!("{e} after {} bytes", got.len()),
        }
    }
    assert_eq!(got, data);
    let mut one = [0u8; 1];
    let end = End::read(&mut p.server, &mut one);
    assert!(
        matches!(&end, Err(e) if e.kind() == io::ErrorKind::WouldBlock),
        "{end:?}"
    );
    assert_eq!(p.server.buffered_capacity(), 0, "idle again: no buffer");
}

#[test]
fn one_large_write_to_a_slow_reader_keeps_at_most_one_batch() {
    let mut p = pair(4096, TrustPolicy::Pinned);
    transfer(&mut p.client, &mut p.server, b"hello");
    let big = vec![3u8; 4 * WRITE_BATCH];
    let accepted = End::write(&mut p.server, &big).unwrap();
    assert_eq!(accepted, WRITE_BATCH);
    let again = End::write(&mut p.server, &big[accepted..]);
    assert!(
        matches!(&again, Err(e) if e.kind() == io::ErrorKind::WouldBlock),
        "{again:?}"
    );
    assert!(p.server.wants_write());
    // The batch's records (22 bytes of overhead per 16 KiB record), less
    // what the pipe took, and the buffers' box.
    assert!(
        p.server.buffered_capacity() <= WRITE_BATCH + 17 * 22 + 256,
        "{}",
        p.server.buffered_capacity()
    );
}

#[test]
fn close_notify_both_ways_reads_as_a_clean_end() {
    let mut p = pair(64 * 1024, TrustPolicy::Pinned);
    transfer(&mut p.client, &mut p.server, b"hello");
    p.client.close_notify();
    let mut buf = [0u8; 16];
    assert_eq!(End::read(&mut p.server, &mut buf).unwrap(), 0);
    assert_eq!(
        End::read(&mut p.server, &mut buf).unwrap(),
        0,
        "and stays ended"
    );
    p.server.close_notify();
    assert_eq!(p.client.read(&mut buf).unwrap(), 0);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn any_payload_any_socket_capacity(
        data in proptest::collection::vec(any::<u8>(), 1..60_000),
        capacity in 1usize..20_000,
        // Smaller and larger than a record: decrypted bytes go straight to
        // the reader's buffer, the rest waits in `plain`, order kept.
        read_len in 1usize..70_000,
    ) {
        let mut p = pair(capacity, TrustPolicy::Pinned);
        prop_assert_eq!(
            transfer_reading(&mut p.client, &mut p.server, &data, read_len),
            data.clone()
        );
        prop_assert_eq!(transfer(&mut p.server, &mut p.client, &data), data);
        settle(&mut p.server);
        prop_assert!(p.server.flush_tls().unwrap());
        prop_assert_eq!(p.server.buffered_capacity(), 0);
    }
}

/// A client offering exactly `suites`, in that order of preference.
fn pair_offering(suites: &[rustls::SupportedCipherSuite]) -> Pair {
    let dir = tempfile::tempdir().unwrap();
    let (identity, _) = load_or_create(dir.path()).unwrap();
    let fingerprint = identity.fingerprint;
    let slot = Arc::new(CertSlot::new(identity).unwrap());
    let server_cfg = server_config(slot).unwrap();
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites = suites.to_vec();
    let verifier = TrustVerifier::new(TrustPolicy::Pinned(fingerprint));
    let mut client_cfg = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    client_cfg.alpn_protocols = vec![crate::tls::ALPN.to_vec()];
    let (a, b) = pipe_pair(64 * 1024);
    let name = ServerName::try_from("new.cloudservice").unwrap();
    Pair {
        client: TlsStream::new(
            rustls::ClientConnection::new(Arc::new(client_cfg), name).unwrap(),
            a,
        ),
        server: ServerTlsStream::new(server_cfg, b).unwrap(),
    }
}

/// The server picks TLS_AES_256_GCM_SHA384 (compact keys) whenever it is
/// offered, whatever the client prefers, and each suite a client
/// may offer alone works both ways, compact keys or not.
#[test]
fn the_server_picks_aes_256_and_every_suite_carries_data() {
    use rustls::crypto::ring::cipher_suite::{
        TLS13_AES_128_GCM_SHA256 as AES128, TLS13_AES_256_GCM_SHA384 as AES256,
        TLS13_CHACHA20_POLY1305_SHA256 as CHACHA,
    };
    let cases = [
        (vec![AES128, CHACHA, AES256], AES256),
        (vec![CHACHA, AES256], AES256),
        (vec![AES128], AES128),
        (vec![CHACHA], CHACHA),
    ];
    let up: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let down: Vec<u8> = (0..150_000u32).map(|i| (i * 13 % 241) as u8).collect();
    for (offered, expected) in cases {
        let mut p = pair_offering(&offered);
        assert_eq!(transfer(&mut p.client, &mut p.server, &up), up);
        assert_eq!(transfer(&mut p.server, &mut p.client, &down), down);
        let chosen = p.server.tls.negotiated_cipher_suite().map(|s| s.suite());
        assert_eq!(chosen, Some(expected.suite()), "client offered {offered:?}");
        assert_eq!(
            p.client.tls().negotiated_cipher_suite().map(|s| s.suite()),
            Some(expected.suite())
        );
    }
}

mod reads;
