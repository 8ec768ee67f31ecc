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
//!   record (a partial record, exactly its size); freed when a read ends
//!   with nothing left over. While a `read` runs, `incoming` is the
//!   caller's scratch buffer, lent with the partial record copied to its
//!   front ([`ServerTlsStream::read`]'s `scratch`, the reactor's one, the
//!   same as `write`'s `seal`), so a bulk upload is read [`READ_ROOM`]
//!   bytes per `recvfrom`, as plaintext is, without a large buffer per
//!   connection or one allocated, zeroed and freed per readable event.
//! - `outgoing`: encrypted bytes not yet taken by the socket, at most
//!   [`WRITE_BATCH`] plus its records' overhead; freed once sent.
//! - `plain`: decrypted bytes the caller's buffer had no room for; freed
//!   once taken.
//!
//! Bytes are copied as little as the API allows (issue 12, TLS download and
//! upload cost): a record is decrypted in place in the lent scratch and
//! copied once, straight into the caller's buffer (`plain` only takes what
//! does not fit); a `write` seals its records into a scratch buffer the caller keeps
//! for all connections ([`ServerTlsStream::write`]'s `seal`, the reactor's
//! one), which is neither allocated nor zeroed again, and writes them to the
//! socket from there; only what the socket does not take is copied into
//! `outgoing`.

use super::stream::SEND_LIMIT;
use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError, UnbufferedStatus};
use std::io::{self, Read, Write};
use std::sync::Arc;

mod read;

/// The least a socket read asks for, even when the caller's buffer has
/// less room left (what does not fit waits in `plain`): what a handshake
/// message, a Hello or a Ping needs.
const MIN_READ: usize = 4096;

/// The scratch lent to a read is at least this long: sixteen full TLS
/// records, a whole FileChunk frame of a bulk upload per `recvfrom`, as the
/// plaintext reactor reads into its 256 KiB buffer. Reads into a
/// per-connection buffer of two records, regrown from 4 KiB at each
/// readable event, cost about 16,400 `recvfrom` per 256 MiB uploaded;
/// reads of this size 1,100-1,800, plaintext 1,040-1,300 (issue 12,
/// BENCHMARKS.md "TLS reads and writes of a whole frame").
pub const READ_ROOM: usize = 16 * RECORD;

/// The largest TLS 1.3 record on the wire: 16 KiB of plaintext, at most
/// 256 bytes of expansion and the 5-byte header (RFC 8446 §5.2).
const RECORD: usize = 16 * 1024 + 256 + 5;

/// Plaintext one `write` seals at once when no encrypted byte waits for
/// the socket: a whole FileChunk frame (`CHUNK_SIZE` = 256 KiB of data and
/// its 12-byte header, PROTOCOL.md §5.5) with room to spare. Sealing at
/// most [`SEND_LIMIT`] per call cost a bulk download four `sendto` calls
/// per frame, each one a loopback softirq pass and a wake-up of the reader
/// (issue 12: about 4,400 calls per 256 MiB downloaded, 1,080-1,380 with
/// a frame per call; plaintext 260-420, BENCHMARKS.md "TLS reads and
/// writes of a whole frame"). It also bounds what a connection keeps for a
/// slow socket: at most this plus 22 bytes per record.
pub const WRITE_BATCH: usize = crate::protocol::limits::CHUNK_SIZE + 4096;

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
    /// Bytes at the front of `incoming` rustls has consumed: the bytes it
    /// has yet to process are `incoming[start..filled]`. Consumed records
    /// are skipped, not shifted away one by one: rustls takes one record
    /// per call, and shifting a 256 KiB read's tail after each of its 16
    /// records moved every byte about 7 more times (callgrind, BENCHMARKS.md
    /// "TLS reads and writes of a whole frame").
    start: usize,
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

    /// Skips the next `n` bytes of `incoming` (rustls consumed them).
    fn discard(&mut self, n: usize) {
        self.start += n;
        if self.start == self.filled {
            self.start = 0;
            self.filled = 0;
        }
    }

    /// Bytes read from the socket that rustls has not consumed yet.
    fn pending(&self) -> usize {
        self.filled - self.start
    }

    /// Moves the bytes rustls has not consumed to the front of `incoming`.
    fn compact(&mut self) {
        if self.start > 0 {
            self.incoming.copy_within(self.start..self.filled, 0);
            self.filled -= self.start;
            self.start = 0;
        }
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

    /// Lets rustls process what `incoming` holds, one state at a time:
    /// handshake records go to `outgoing`, plaintext to `out` and what does
    /// not fit there to `plain`; also returns how many bytes went to `out`.
    fn step(&mut self, out: &mut dyn PlainOut) -> io::Result<(Step, usize)> {
        let Self { tls, io, .. } = self;
        let b = io.get_or_insert_with(Box::default);
        let UnbufferedStatus { discard, state } =
            tls.process_tls_records(&mut b.incoming[b.start..b.filled]);
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
                tls.process_tls_records(&mut b.incoming[b.start..b.filled]);
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
    /// When no encrypted byte waits, up to [`WRITE_BATCH`] bytes are
    /// sealed at once; else only as many as keep what waits within
    /// [`SEND_LIMIT`].
    ///
    /// `seal` is scratch room the records are sealed into before the socket
    /// takes them: its contents on entry do not matter, and it keeps its
    /// length (at most [`WRITE_BATCH`] plus 22 bytes per 16 KiB record) so
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
        let room = match b.outgoing.len() - b.sent {
            // Nothing waits: seal a whole frame at once (one socket write,
            // not one per SEND_LIMIT).
            0 => WRITE_BATCH,
            waiting => SEND_LIMIT.saturating_sub(waiting),
        };
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
                tls.process_tls_records(&mut b.incoming[b.start..b.filled]);
            let mut sink = Sink {
                out: &mut SliceOut::new(&mut []),
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
            tls.process_tls_records(&mut b.incoming[b.start..b.filled]);
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
    out: &'o mut dyn PlainOut,
    /// Bytes given to `out`.
    given: usize,
    plain: &'p mut Vec<u8>,
}

impl Sink<'_, '_> {
    fn put(&mut self, payload: &[u8]) {
        let n = if self.plain.is_empty() {
            let n = self.out.put(payload);
            self.given += n;
            n
        } else {
            0
        };
        self.plain.extend_from_slice(&payload[n..]);
    }
}

/// Where a read puts the plaintext it decrypts: a caller's buffer
/// ([`ServerTlsStream::read`]) or the frame decoder
/// ([`ServerTlsStream::read_frame`]).
pub trait PlainOut {
    /// Bytes it can take still.
    fn room(&self) -> usize;
    /// Takes as much of `bytes` as it has room for; returns how much.
    fn put(&mut self, bytes: &[u8]) -> usize;
    /// `n` bytes were read from the socket and are about to be decrypted
    /// into it (a hint, to make room once for them).
    fn arriving(&mut self, _n: usize) {}
}

/// A caller's buffer, filled from its start.
struct SliceOut<'a> {
    buf: &'a mut [u8],
    filled: usize,
}

impl<'a> SliceOut<'a> {
    fn new(buf: &'a mut [u8]) -> SliceOut<'a> {
        SliceOut { buf, filled: 0 }
    }
}

impl PlainOut for SliceOut<'_> {
    fn room(&self) -> usize {
        self.buf.len() - self.filled
    }

    fn put(&mut self, bytes: &[u8]) -> usize {
        let n = bytes.len().min(self.room());
        self.buf[self.filled..self.filled + n].copy_from_slice(&bytes[..n]);
        self.filled += n;
        n
    }
}

impl PlainOut for crate::protocol::FrameFill<'_> {
    fn room(&self) -> usize {
        crate::protocol::FrameFill::room(self)
    }

    fn put(&mut self, bytes: &[u8]) -> usize {
        self.append(bytes)
    }

    fn arriving(&mut self, n: usize) {
        crate::protocol::FrameFill::arriving(self, n);
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
