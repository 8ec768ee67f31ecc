//! Client and server [`TlsStream`]s talking through in-memory pipes that
//! behave like non-blocking sockets (a bounded capacity, `WouldBlock`).

use super::*;
use crate::tls::config::{client_config, server_config, CertSlot};
use crate::tls::identity::load_or_create;
use crate::tls::trust::{TrustPolicy, TrustVerifier};
use crate::tls::Fingerprint;
use proptest::prelude::*;
use rustls::pki_types::ServerName;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Arc;

/// One direction of a socket pair: a bounded byte queue.
#[derive(Default)]
pub(crate) struct Queue {
    bytes: VecDeque<u8>,
    closed: bool,
}

/// One end of an in-memory socket pair.
pub(crate) struct Pipe {
    inbound: Rc<RefCell<Queue>>,
    outbound: Rc<RefCell<Queue>>,
    capacity: usize,
    /// Calls of `read` that gave bytes (a socket's `recvfrom`).
    pub(crate) reads: usize,
}

pub(crate) fn pipe_pair(capacity: usize) -> (Pipe, Pipe) {
    let a = Rc::new(RefCell::new(Queue::default()));
    let b = Rc::new(RefCell::new(Queue::default()));
    (
        Pipe {
            inbound: Rc::clone(&a),
            outbound: Rc::clone(&b),
            capacity,
            reads: 0,
        },
        Pipe {
            inbound: b,
            outbound: a,
            capacity,
            reads: 0,
        },
    )
}

impl Read for Pipe {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut q = self.inbound.borrow_mut();
        if q.bytes.is_empty() {
            return if q.closed {
                Ok(0)
            } else {
                Err(io::ErrorKind::WouldBlock.into())
            };
        }
        let n = buf.len().min(q.bytes.len());
        for (slot, b) in buf.iter_mut().zip(q.bytes.drain(..n)) {
            *slot = b;
        }
        self.reads += 1;
        Ok(n)
    }
}

impl Write for Pipe {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut q = self.outbound.borrow_mut();
        let room = self.capacity.saturating_sub(q.bytes.len());
        if room == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = room.min(buf.len());
        q.bytes.extend(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Pipe {
    pub(crate) fn close(&self) {
        self.outbound.borrow_mut().closed = true;
    }
}

struct Pair {
    client: TlsStream<Pipe>,
    server: TlsStream<Pipe>,
    fingerprint: Fingerprint,
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
        server: TlsStream::new(rustls::ServerConnection::new(server_cfg).unwrap(), b),
        fingerprint,
    }
}

/// Moves `data` from `from` to `to` through the pipe, both sides stepping
/// like a reactor would (write until WouldBlock, read until WouldBlock).
fn transfer(from: &mut TlsStream<Pipe>, to: &mut TlsStream<Pipe>, data: &[u8]) -> Vec<u8> {
    let mut sent = 0;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    for _ in 0..1_000_000 {
        if got.len() == data.len() {
            return got;
        }
        if sent < data.len() {
            match from.write(&data[sent..]) {
                Ok(n) => sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("write: {e}"),
            }
        } else {
            from.flush_tls().unwrap();
        }
        // A writable socket: what each side holds goes out (the reactor
        // flushes on every writable event).
        to.flush_tls().unwrap();
        // The other side also answers handshake messages while reading.
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

#[test]
fn handshake_then_both_directions() {
    let mut p = pair(1024, TrustPolicy::Pinned);
    let up: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(transfer(&mut p.client, &mut p.server, &up), up);
    let down = b"welcome".to_vec();
    assert_eq!(transfer(&mut p.server, &mut p.client, &down), down);
    assert_eq!(p.server.tls().alpn_protocol(), Some(crate::tls::ALPN));
    assert_eq!(
        p.server.tls().protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    assert!(
        p.server.tls().peer_certificates().is_none(),
        "no client certificate"
    );
    let sni = match p.server.tls() {
        rustls::Connection::Server(s) => s.server_name().map(str::to_owned),
        rustls::Connection::Client(_) => None,
    };
    assert_eq!(sni.as_deref(), Some("new.cloudservice"));
    assert!(!p.fingerprint.0.iter().all(|b| *b == 0));
}

#[test]
fn a_wrong_pin_fails_the_handshake_on_both_sides() {
    let mut p = pair(64 * 1024, |_| TrustPolicy::Pinned(Fingerprint([9; 32])));
    let mut buf = [0u8; 256];
    let mut client_err = None;
    let mut server_err = None;
    for _ in 0..50 {
        let _ = p.client.write(b"x");
        match p.server.read(&mut buf) {
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
    assert_eq!(client_err.kind(), io::ErrorKind::InvalidData);
    assert!(client_err.to_string().contains("pinned"), "{client_err}");
    assert!(server_err.is_some(), "the server saw the alert");
}

#[test]
fn garbage_instead_of_a_client_hello_is_invalid_data() {
    let mut p = pair(64 * 1024, TrustPolicy::Pinned);
    p.client
        .socket_mut()
        .write_all(b"CS\x01garbage that is not TLS")
        .unwrap();
    let mut buf = [0u8; 64];
    let err = p.server.read(&mut buf).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
}

#[test]
fn a_peer_gone_mid_handshake_is_an_error_not_a_hang() {
    let mut p = pair(64 * 1024, TrustPolicy::Pinned);
    let _ = p.client.write(b"x");
    p.client.socket().close();
    let mut buf = [0u8; 64];
    let err = loop {
        match p.server.read(&mut buf) {
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
fn a_slow_reader_bounds_what_rustls_holds() {
    let mut p = pair(4096, TrustPolicy::Pinned);
    transfer(&mut p.client, &mut p.server, b"hello");
    // The client never reads: the server's writes must start blocking once
    // the pipe and rustls's buffer are full, not buffer without end.
    let chunk = vec![7u8; 16 * 1024];
    let mut accepted = 0;
    for _ in 0..1000 {
        match p.server.write(&chunk) {
            Ok(n) => accepted += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(
        accepted <= SEND_LIMIT + 4096 + 16 * 1024,
        "accepted {accepted}"
    );
    assert!(p.server.wants_write());
}

#[test]
fn close_notify_reads_as_a_clean_end() {
    let mut p = pair(64 * 1024, TrustPolicy::Pinned);
    transfer(&mut p.client, &mut p.server, b"hello");
    p.client.close_notify();
    let mut buf = [0u8; 16];
    assert_eq!(p.server.read(&mut buf).unwrap(), 0);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn any_payload_any_socket_capacity(
        data in proptest::collection::vec(any::<u8>(), 1..40_000),
        capacity in 1usize..20_000,
    ) {
        let mut p = pair(capacity, TrustPolicy::Pinned);
        prop_assert_eq!(transfer(&mut p.client, &mut p.server, &data), data.clone());
        prop_assert_eq!(transfer(&mut p.server, &mut p.client, &data), data);
    }
}
