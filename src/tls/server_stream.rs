//! The server's TLS connection over a non-blocking socket, on rustls's
//! unbuffered API ([`rustls::server::UnbufferedServerConnection`]), with the
//! same calling convention as [`super::stream::TlsStream`]: `read` gives
//! plaintext or `WouldBlock`, `write` takes plaintext or `WouldBlock`.
//!
//! Why not the buffered `ServerConnection`: it keeps a receive buffer of at
//! least 4 KiB per connection for as long as the connection lives, which
//! alone is more than an idle connection may cost (issue 12: ≤ 4 KiB each
//! for 19,000 idle connections). Here every buffer belongs to this adapter
//! and is given back as soon as it is empty, so an idle connection holds
//! only rustls's record keys and state, and one pointer (`io: None`) for
//! its buffers and their offsets ([`Buffers`], about 100 bytes, allocated
//! for a readable or writable event and dropped when all three are empty):
//!
//! - `incoming`: encrypted bytes read from the socket and not yet a whole
//!   record, in a buffer that starts small and grows while reads fill it;
//!   freed when a read ends with nothing left over.
//! - `outgoing`: encrypted bytes not yet taken by the socket, at most
//!   [`SEND_LIMIT`] plus one `write`'s records; freed once sent.
//! - `plain`: decrypted bytes the caller's buffer had no room for; freed
//!   once taken.
//!
//! Bytes are copied as little as the API allows (issue 12, TLS download and
//! upload cost): a record is decrypted in place in `incoming` and copied
//! once, straight into the caller's buffer (`plain` only takes what does not
//! fit); a `write` seals its records into a scratch buffer the caller keeps
//! for all connections ([`ServerTlsStream::write`]'s `seal`, the reactor's
//! one), which is neither allocated nor zeroed again, and writes them to the
//! socket from there; only what the socket does not take is copied into
//! `outgoing`.

use super::stream::SEND_LIMIT;
use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError, UnbufferedStatus};
use std::io::{self, Read, Write};
use std::sync::Arc;

/// The first socket read of a readable event asks for this much: what a
/// handshake message, a Hello or a Ping needs. A small scratch buffer per
/// event keeps a storm of handshakes from scattering large freed buffers
/// under the few hundred bytes each connection keeps.
const FIRST_READ: usize = 4096;

/// Reads grow (doubling, while each one fills the buffer) up to this: two
/// full TLS records (16 KiB of plaintext plus at most 256 bytes of
/// overhead each, RFC 8446 §5.2), for bulk uploads.
const MAX_READ: usize = 2 * (16 * 1024 + 256 + 5);

/// First guess of the room one handshake record needs (the certificate
/// message may ask for more, see [`encode_into`]).
const HANDSHAKE_ROOM: usize = 4096;

/// Room for the records of one `encrypt` call of `n` plaintext bytes: a
/// header, content type and AEAD tag (5 + 1 + 16) per 16 KiB record.
fn sealed_len(n: usize) -> usize {
    n + (n / (16 * 1024) + 1) * 22
}

/// A server-side TLS connection over the socket `S`.
pub struct ServerTlsStream<S> {
    tls: UnbufferedServerConnection,
    sock: S,
    /// The buffers while bytes move; `None` while idle (issue 12: an idle
    /// connection keeps one pointer here, not three empty vectors and
    /// their offsets).
    io: Option<Box<Buffers>>,
    /// The peer's close_notify was seen: reads give `Ok(0)` from now on.
    peer_closed: bool,
    /// Encrypted bytes read from the socket so far.
    received: u64,
}

/// What a connection holds while bytes move (see the module doc).
#[derive(Default)]
struct Buffers {
    incoming: Vec<u8>,
    /// Bytes of `incoming` filled from the socket (the rest is spare room).
    filled: usize,
    outgoing: Vec<u8>,
    /// Bytes of `outgoing` already written to the socket.
    sent: usize,
    plain: Vec<u8>,
    /// Bytes of `plain` already given to the caller.
    taken: usize,
}

impl Buffers {
    /// No buffer is allocated: the box itself can go.
    fn is_released(&self) -> bool {
        self.incoming.capacity() == 0 && self.outgoing.capacity() == 0 && self.plain.capacity() == 0
    }

    /// Drops the first `n` bytes of `incoming` (rustls consumed them).
    fn discard(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        self.incoming.copy_within(n..self.filled, 0);
        self.filled -= n;
    }
}

/// What one step of rustls's state machine left us to do.
enum Step {
    /// Call rustls again (it produced output or plaintext).
    Again,
    /// rustls needs more bytes from the peer.
    NeedInput,
    /// The peer closed cleanly.
    PeerClosed,
}

impl<S: Read + Write> ServerTlsStream<S> {
    /// A fresh server connection over `sock`.
    ///
    /// # Errors
    /// rustls refused to start a connection with `config`.
    pub fn new(
        config: Arc<rustls::ServerConfig>,
        sock: S,
    ) -> Result<ServerTlsStream<S>, rustls::Error> {
        Ok(ServerTlsStream {
            tls: UnbufferedServerConnection::new(config)?,
            sock,
            io: None,
            peer_closed: false,
            received: 0,
        })
    }

    /// The socket (to register it with a poller, or peek at it).
    pub fn socket(&self) -> &S {
        &self.sock
    }

    /// The socket, mutably.
    pub fn socket_mut(&mut self) -> &mut S {
        &mut self.sock
    }

    /// Gives the socket back (rustls's state is dropped).
    pub fn into_socket(self) -> S {
        self.sock
    }

    /// Encrypted bytes read from the socket so far (a record still
    /// incomplete counted too).
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Whether the TLS handshake is still going (not yet finished, or
    /// failed before finishing).
    pub fn is_handshaking(&self) -> bool {
        self.tls.is_handshaking()
    }

    /// The negotiated ALPN protocol, once the handshake got that far.
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        self.tls.alpn_protocol()
    }

    /// The negotiated TLS version, once known.
    pub fn protocol_version(&self) -> Option<rustls::ProtocolVersion> {
        self.tls.protocol_version()
    }

    /// Bytes this connection holds in its own buffers now (allocated
    /// capacity; rustls's keys and state not counted). Zero when idle.
    pub fn buffered_capacity(&self) -> usize {
        self.io.as_ref().map_or(0, |b| {
            std::mem::size_of::<Buffers>()
                + b.incoming.capacity()
                + b.outgoing.capacity()
                + b.plain.capacity()
        })
    }

    /// The buffers, allocated if this connection was idle.
    fn bufs(&mut self) -> &mut Buffers {
        self.io.get_or_insert_with(Box::default)
    }

    /// Drops the buffers' box once nothing is left in it.
    fn release_if_idle(&mut self) {
        if self.io.as_ref().is_some_and(|b| b.is_released()) {
            self.io = None;
        }
    }

    /// Reads plaintext into `buf` (decrypted records are copied straight
    /// into it): `Ok(0)` at a clean end (close_notify),
    /// `WouldBlock` when the socket has nothing more now, `UnexpectedEof` when
    /// the peer closed without close_notify, `InvalidData` when its bytes are
    /// not TLS or the handshake failed (the alert is sent first, if it can be).
    ///
    /// # Errors
    /// As above, and the socket's own errors.
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let result = self.read_inner(buf);
        self.release_if_idle();
        result
    }

    fn read_inner(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // Plaintext bytes already put in `buf` by this call.
        let mut given = 0;
        loop {
            let b = self.bufs();
            if b.taken < b.plain.len() {
                // Left over from a record `buf` had no room for: it comes
                // before anything decrypted later.
                let n = (buf.len() - given).min(b.plain.len() - b.taken);
                buf[given..given + n].copy_from_slice(&b.plain[b.taken..b.taken + n]);
                b.taken += n;
                if b.taken == b.plain.len() {
                    b.plain = Vec::new();
                    b.taken = 0;
                }
                return Ok(given + n);
            }
            if self.peer_closed || given == buf.len() {
                return Ok(given);
            }
            let (step, n) = self.step(&mut buf[given..])?;
            given += n;
            match step {
                Step::Again => continue,
                Step::PeerClosed => {
                    self.peer_closed = true;
                    continue;
                }
                Step::NeedInput => {}
            }
            self.flush_tls()?;
            match self.read_socket() {
                // The end is reported by the next call, after these bytes.
                Ok(0) if given > 0 => return Ok(given),
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    if e.kind() == io::ErrorKind::WouldBlock {
                        self.release_incoming();
                        if given > 0 {
                            return Ok(given);
                        }
                    }
                    return Err(e);
                }
            }
        }
    }

    /// Reads what the socket has into `incoming`'s spare room, which starts
    /// at [`FIRST_READ`] bytes and doubles, up to [`MAX_READ`], while reads
    /// fill it.
    fn read_socket(&mut self) -> io::Result<usize> {
        let Self {
            io, sock, received, ..
        } = self;
        let b = io.get_or_insert_with(Box::default);
        if b.filled == b.incoming.len() {
            let room = match b.incoming.len() {
                0 => FIRST_READ,
                len => len.min(MAX_READ),
            };
            b.incoming.resize(b.filled + room, 0);
        }
        let n = sock.read(&mut b.incoming[b.filled..])?;
        b.filled += n;
        *received += n as u64;
        Ok(n)
    }

    /// An idle connection keeps no receive buffer, only a partial record.
    fn release_incoming(&mut self) {
        let b = self.bufs();
        if b.filled == 0 {
            b.incoming = Vec::new();
        } else {
            b.incoming.truncate(b.filled);
            b.incoming.shrink_to_fit();
        }
    }

    /// Lets rustls process what `incoming` holds, one state at a time:
    /// handshake records go to `outgoing`, plaintext to `out` and what does
    /// not fit there to `plain`; also returns how many bytes went to `out`.
    fn step(&mut self, out: &mut [u8]) -> io::Result<(Step, usize)> {
        let Self { tls, io, .. } = self;
        let b = io.get_or_insert_with(Box::default);
        let UnbufferedStatus { discard, state } =
            tls.process_tls_records(&mut b.incoming[..b.filled]);
        let mut sink = Sink {
            out,
            given: 0,
            plain: &mut b.plain,
        };
        let step = match state {
            Ok(state) => handle(state, &mut sink, &mut b.outgoing),
            Err(e) => Err(e),
        };
        let given = sink.given;
        b.discard(discard);
        match step {
            Ok(step) => Ok((step, given)),
            Err(e) => {
                self.send_alert();
                Err(io::Error::new(io::ErrorKind::InvalidData, e))
            }
        }
    }

    /// After a failure, encodes the alert rustls queued and tries to send it.
    fn send_alert(&mut self) {
        for _ in 0..4 {
            let Self { tls, io, .. } = self;
            let b = io.get_or_insert_with(Box::default);
            let UnbufferedStatus { discard, state } =
                tls.process_tls_records(&mut b.incoming[..b.filled]);
            let more = match state {
                Ok(ConnectionState::EncodeTlsData(mut encode)) => {
                    let _ = encode_into(&mut b.outgoing, HANDSHAKE_ROOM, |out| {
                        Ok(encode.encode(out)?)
                    });
                    true
                }
                Ok(ConnectionState::TransmitTlsData(transmit)) => {
                    transmit.done();
                    true
                }
                _ => false,
            };
            b.discard(discard);
            if !more {
                break;
            }
        }
        let _ = self.flush_tls();
    }

    /// Encrypts up to `buf.len()` plaintext bytes and writes what the socket
    /// takes; returns how many plaintext bytes were accepted.
    ///
    /// `seal` is scratch room the records are sealed into before the socket
    /// takes them: its contents on entry do not matter, and it keeps its
    /// length (at most [`SEND_LIMIT`] plus 22 bytes per 16 KiB record) so
    /// that the next call, for any connection, neither allocates nor zeroes
    /// it again. Only what the socket does not take is kept by the
    /// connection.
    ///
    /// # Errors
    /// `WouldBlock` when [`SEND_LIMIT`] encrypted bytes already wait for the
    /// socket; `NotConnected` before the handshake is complete (nothing
    /// could be sent yet; the connection is to be dropped); `InvalidData`
    /// when rustls fails; the socket's own errors.
    pub fn write(&mut self, buf: &[u8], seal: &mut Vec<u8>) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let result = self.write_inner(buf, seal);
        self.release_if_idle();
        result
    }

    fn write_inner(&mut self, buf: &[u8], seal: &mut Vec<u8>) -> io::Result<usize> {
        self.flush_tls()?;
        let b = self.bufs();
        let room = SEND_LIMIT.saturating_sub(b.outgoing.len() - b.sent);
        if room == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let data = &buf[..buf.len().min(room)];
        if b.sent > 0 {
            // What the socket took is gone: keep only what still waits.
            b.outgoing.drain(..b.sent);
            b.sent = 0;
        }
        let sealed = loop {
            let Self { tls, io, .. } = self;
            let b = io.get_or_insert_with(Box::default);
            let UnbufferedStatus { discard, state } =
                tls.process_tls_records(&mut b.incoming[..b.filled]);
            let mut sink = Sink {
                out: &mut [],
                given: 0,
                plain: &mut b.plain,
            };
            let step = match state {
                Ok(ConnectionState::WriteTraffic(mut traffic)) => {
                    let sealed = seal_into(seal, sealed_len(data.len()), |out| {
                        Ok(traffic.encrypt(data, out)?)
                    });
                    b.discard(discard);
                    break sealed.map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                }
                Ok(ConnectionState::BlockedHandshake) => {
                    b.discard(discard);
                    return Err(io::Error::new(
                        io::ErrorKind::NotConnected,
                        "TLS handshake not complete",
                    ));
                }
                Ok(state) => handle(state, &mut sink, &mut b.outgoing),
                Err(e) => Err(e),
            };
            b.discard(discard);
            match step {
                Ok(Step::Again) => {}
                Ok(Step::NeedInput | Step::PeerClosed) => {
                    return Err(io::Error::new(
                        io::ErrorKind::NotConnected,
                        "TLS connection cannot send",
                    ))
                }
                Err(e) => {
                    self.send_alert();
                    return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                }
            }
        };
        self.send_sealed(&seal[..sealed])?;
        Ok(data.len())
    }

    /// Sends `records` after what `outgoing` holds (handshake records, or
    /// what the socket did not take before): straight from `records` when
    /// nothing waits, and keeps in `outgoing` what the socket does not take.
    fn send_sealed(&mut self, mut records: &[u8]) -> io::Result<()> {
        let Self { io, sock, .. } = self;
        let b = io.get_or_insert_with(Box::default);
        if b.sent == b.outgoing.len() {
            while !records.is_empty() {
                match sock.write(records) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) => records = &records[n..],
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
        }
        b.outgoing.extend_from_slice(records);
        self.flush_tls()?;
        Ok(())
    }

    /// True while encrypted bytes wait for the socket.
    pub fn wants_write(&self) -> bool {
        self.io.as_ref().is_some_and(|b| b.sent < b.outgoing.len())
    }

    /// Writes pending encrypted bytes; `Ok(true)` when none are left (and
    /// the send buffer is given back), `Ok(false)` when the socket would block.
    ///
    /// # Errors
    /// The socket failed.
    pub fn flush_tls(&mut self) -> io::Result<bool> {
        let Self { io, sock, .. } = self;
        let Some(b) = io.as_mut() else {
            return Ok(true);
        };
        while b.sent < b.outgoing.len() {
            match sock.write(&b.outgoing[b.sent..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => b.sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        b.outgoing = Vec::new();
        b.sent = 0;
        self.release_if_idle();
        Ok(true)
    }

    /// Queues a close_notify alert (once the handshake is complete) and
    /// tries to send it with whatever else waits.
    pub fn close_notify(&mut self) {
        let Self { tls, io, .. } = self;
        let b = io.get_or_insert_with(Box::default);
        let UnbufferedStatus { discard, state } =
            tls.process_tls_records(&mut b.incoming[..b.filled]);
        if let Ok(ConnectionState::WriteTraffic(mut traffic)) = state {
            let _ = encode_into(&mut b.outgoing, sealed_len(2), |out| {
                Ok(traffic.queue_close_notify(out)?)
            });
        }
        b.discard(discard);
        let _ = self.flush_tls();
        self.release_if_idle();
    }
}

/// Where decrypted application data goes: the caller's buffer `out` while
/// it has room and nothing waits in `plain`, then `plain` (order kept).
struct Sink<'o, 'p> {
    out: &'o mut [u8],
    /// Bytes of `out` filled.
    given: usize,
    plain: &'p mut Vec<u8>,
}

impl Sink<'_, '_> {
    fn put(&mut self, payload: &[u8]) {
        let n = if self.plain.is_empty() {
            let n = payload.len().min(self.out.len() - self.given);
            self.out[self.given..self.given + n].copy_from_slice(&payload[..n]);
            self.given += n;
            n
        } else {
            0
        };
        self.plain.extend_from_slice(&payload[n..]);
    }
}

/// Acts on a state that needs no plaintext from the caller: gives
/// decrypted records to `sink`, encodes handshake records into `outgoing`.
fn handle<Data>(
    state: ConnectionState<'_, '_, Data>,
    sink: &mut Sink<'_, '_>,
    outgoing: &mut Vec<u8>,
) -> Result<Step, rustls::Error> {
    Ok(match state {
        ConnectionState::ReadTraffic(mut traffic) => {
            while let Some(record) = traffic.next_record() {
                sink.put(record?.payload);
            }
            Step::Again
        }
        ConnectionState::EncodeTlsData(mut encode) => {
            encode_into(outgoing, HANDSHAKE_ROOM, |out| Ok(encode.encode(out)?))?;
            Step::Again
        }
        ConnectionState::TransmitTlsData(transmit) => {
            // The records are in `outgoing`, which the caller flushes.
            transmit.done();
            Step::Again
        }
        ConnectionState::BlockedHandshake | ConnectionState::WriteTraffic(_) => Step::NeedInput,
        ConnectionState::PeerClosed | ConnectionState::Closed => Step::PeerClosed,
        // Early data is never accepted (max_early_data_size is 0).
        _ => return Err(rustls::Error::General("unexpected TLS state".into())),
    })
}

/// Why rustls did not fill a buffer.
enum Unfilled {
    /// It needs this many bytes of room.
    TooSmall(usize),
    /// It failed.
    Failed(String),
}

impl From<EncryptError> for Unfilled {
    fn from(e: EncryptError) -> Unfilled {
        match e {
            EncryptError::InsufficientSize(s) => Unfilled::TooSmall(s.required_size),
            other => Unfilled::Failed(other.to_string()),
        }
    }
}

impl From<EncodeError> for Unfilled {
    fn from(e: EncodeError) -> Unfilled {
        match e {
            EncodeError::InsufficientSize(s) => Unfilled::TooSmall(s.required_size),
            other => Unfilled::Failed(other.to_string()),
        }
    }
}

/// Has `fill` write into `scratch` from its start, with at least `room`
/// bytes of room (more when rustls asks for more); `scratch` only grows, so
/// once it is large enough nothing is allocated or zeroed. Returns the
/// bytes written.
///
/// # Errors
/// rustls failed, or asked for room twice.
fn seal_into(
    scratch: &mut Vec<u8>,
    mut room: usize,
    mut fill: impl FnMut(&mut [u8]) -> Result<usize, Unfilled>,
) -> Result<usize, rustls::Error> {
    for _ in 0..2 {
        if scratch.len() < room {
            scratch.resize(room, 0);
        }
        match fill(scratch) {
            Ok(n) => return Ok(n),
            Err(Unfilled::TooSmall(required)) if required > scratch.len() => room = required,
            Err(Unfilled::TooSmall(_)) => break,
            Err(Unfilled::Failed(e)) => return Err(rustls::Error::General(e)),
        }
    }
    Err(rustls::Error::General(
        "TLS record larger than announced".into(),
    ))
}

/// Appends what `fill` writes to `out`, starting with `room` bytes of room
/// and growing to the size rustls asks for when that is too small.
///
/// # Errors
/// rustls failed, or asked for room twice.
fn encode_into(
    out: &mut Vec<u8>,
    mut room: usize,
    mut fill: impl FnMut(&mut [u8]) -> Result<usize, Unfilled>,
) -> Result<usize, rustls::Error> {
    let start = out.len();
    for _ in 0..2 {
        out.resize(start + room, 0);
        let result = fill(&mut out[start..]);
        out.truncate(start + *result.as_ref().unwrap_or(&0));
        match result {
            Ok(n) => return Ok(n),
            Err(Unfilled::TooSmall(required)) if required > room => room = required,
            Err(Unfilled::TooSmall(_)) => break,
            Err(Unfilled::Failed(e)) => return Err(rustls::Error::General(e)),
        }
    }
    Err(rustls::Error::General(
        "TLS record larger than announced".into(),
    ))
}

/// A ClientHello offering TLS 1.2 only: legacy version 0x0303, no
/// supported_versions extension, one TLS 1.2 suite (RFC 5246 §7.4.1.2).
/// For tests (unit and tests/tls_hostile.rs): the server must answer it
/// with a protocol_version alert.
#[doc(hidden)]
pub fn tls12_only_client_hello() -> Vec<u8> {
    let mut body = vec![0x03, 0x03];
    body.extend_from_slice(&[0x42; 32]); // random
    body.push(0); // no session id
    body.extend_from_slice(&[0x00, 0x02, 0xc0, 0x2f]); // ECDHE_RSA_AES_128_GCM_SHA256
    body.extend_from_slice(&[0x01, 0x00]); // null compression
                                           // supported_groups: x25519; ec_point_formats: uncompressed;
                                           // signature_algorithms: rsa_pkcs1_sha256.
    let groups = [0x00, 0x0a, 0x00, 0x04, 0x00, 0x02, 0x00, 0x1d];
    let points = [0x00, 0x0b, 0x00, 0x02, 0x01, 0x00];
    let signatures = [0x00, 0x0d, 0x00, 0x04, 0x00, 0x02, 0x04, 0x01];
    let extensions = [&groups[..], &points, &signatures].concat();
    body.extend_from_slice(&(extensions.len() as u16).to_be_bytes());
    body.extend_from_slice(&extensions);
    let mut handshake = vec![0x01, 0x00];
    handshake.extend_from_slice(&(body.len() as u16).to_be_bytes());
    handshake.extend_from_slice(&body);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend_from_slice(&(handshake.len() as u16).to_be_bytes());
    record.extend_from_slice(&handshake);
    record
}

#[cfg(test)]
mod tests;
