//! One client connection as the reactor sees it: socket, decoder, phase,
//! and a bounded outbound queue. Holds no buffer while idle. Its limits are
//! kept by [`ConnFlow`] (`flow.rs`).

use super::flow::ConnFlow;
use super::metrics::metrics;
use super::transport::Transport;
use crate::protocol::limits::MAX_FIRST_PAYLOAD;
use crate::protocol::{ClientId, Frame, FrameDecoder, UserId};
use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::time::{Instant, SystemTime};

/// [`Connection::last_unsent`] after a write: the send queue's size not
/// looked at since (SIOCOUTQ never says more than an `int`).
pub const UNSENT_UNKNOWN: u32 = u32::MAX;

/// Where a connection is in the session state machine (PROTOCOL.md §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for `Hello` until the deadline.
    AwaitHello {
        /// When the handshake timeout fires.
        deadline: Instant,
    },
    /// `Hello` went to the user's actor; its answer is pending. Frames the
    /// client pipelines meanwhile are forwarded in order.
    Joining {
        /// The user named (or created).
        user: UserId,
    },
    /// A Resume of a device that already has a Ready connection, held
    /// (not read, not routed) while that connection is probed
    /// (`reactor/probe.rs`, PROTOCOL.md ); at most
    /// `probe::PROBE_WAIT` later it is routed and becomes `Joining`.
    Held {
        /// The user named.
        user: UserId,
    },
    /// Handshake accepted.
    Ready {
        /// The user.
        user: UserId,
        /// The device.
        client: ClientId,
    },
    /// Sending what is queued, then closing; nothing more is read.
    Closing {
        /// Close even if the peer does not read by then.
        deadline: Instant,
    },
}

impl Phase {
    /// The user this connection belongs to, once named.
    pub fn user(&self) -> Option<UserId> {
        match self {
            Phase::Joining { user } | Phase::Ready { user, .. } => Some(*user),
            Phase::AwaitHello { .. } | Phase::Held { .. } | Phase::Closing { .. } => None,
        }
    }
}

/// Bytes queued for the socket, with how many of them are bulk output to be
/// credited back to the actor once written.
struct OutBuf {
    bytes: Vec<u8>,
    sent: usize,
    bulk: usize,
}

/// A connection.
pub struct Connection {
    /// The socket, under TLS unless `--insecure-plaintext`.
    pub transport: Transport,
    /// The peer.
    pub peer: SocketAddr,
    /// Generation, to recognise stale messages about an older connection in this slot.
    pub generation: u32,
    /// Incremental frame decoder.
    pub decoder: FrameDecoder,
    /// Session phase.
    pub phase: Phase,
    /// The user a `Joining`/`Ready` connection was attached to, kept through
    /// `Closing` so the actor can be told it is gone.
    pub attached: Option<UserId>,
    /// Last time anything moved on this connection: bytes arrived from the
    /// socket (a whole frame or not, TLS records or not) or queued bytes
    /// reached it (the idle timer, PROTOCOL.md §8, R-8.2: a connection the
    /// server is still sending to, or still receiving from, is not idle).
    pub last_seen: Instant,
    /// The transport's count of bytes read from the socket at the last look
    /// ([`Transport::received`]): a change means bytes arrived.
    pub last_received: u64,
    /// Counted among the connections of its address that have not yet
    /// sent their Hello (`reactor/admit.rs`, R-3.5.5).
    pub counted: bool,
    /// The kernel's unacknowledged send queue at the last idle check
    /// (bytes, [`Transport::unsent_bytes`]): a download still draining from
    /// the kernel's buffers is not idle while this number moves.
    /// [`UNSENT_UNKNOWN`] after a write: the first check after it counts as
    /// a change, so the timer runs out no sooner than one period after the
    /// queue was last seen to move.
    pub last_unsent: u32,
    /// Inbound cost at the actor, bytes queued, credit to return.
    pub flow: ConnFlow,
    /// Bytes read but not yet decoded because reading paused mid-buffer
    /// (empty, and unallocated, almost always).
    pub stash: Vec<u8>,
    /// The last cursor acknowledged on this connection (repeats are dropped).
    pub last_ack: Option<u64>,
    /// When the connection was accepted (wall clock), for the text of
    /// Error `DeviceInUse`.
    pub since: SystemTime,
    /// When a byte was last read from the socket: the answer to a probe
    /// (`reactor/probe.rs`).
    pub last_read: Instant,
    /// The handshake was a Visit (PROTOCOL.md ): not the device's
    /// live connection, and never a Pull, PullModes or Ack.
    pub visit: bool,
    /// When queued bytes last reached the socket: a probe queued behind a
    /// download is still on its way while this moves (`reactor/probe.rs`).
    pub last_write: Instant,
    /// When a probe `Ping` was queued on this connection, while a new
    /// Resume of its device waits for the answer.
    pub probed: Option<Instant>,
    /// From a trusted proxy (`--proxy-protocol`) and its PROXY protocol
    /// header not taken yet (`reactor/proxied.rs`, PROTOCOL.md §17):
    /// nothing else is read before it.
    pub proxy_header: bool,
    out: VecDeque<OutBuf>,
}

impl Connection {
    /// A new connection awaiting its `Hello`.
    pub fn new(transport: Transport, peer: SocketAddr, generation: u32, deadline: Instant) -> Self {
        Connection {
            transport,
            peer,
            generation,
            // Before the Hello no frame may be larger than a KeyHello
            // raised once the Hello has been taken.
            decoder: FrameDecoder::with_limit(MAX_FIRST_PAYLOAD),
            phase: Phase::AwaitHello { deadline },
            attached: None,
            last_seen: Instant::now(),
            last_received: 0,
            counted: false,
            last_unsent: 0,
            flow: ConnFlow::default(),
            stash: Vec::new(),
            last_ack: None,
            since: SystemTime::now(),
            last_read: Instant::now(),
            last_write: Instant::now(),
            probed: None,
            visit: false,
            proxy_header: false,
            out: VecDeque::new(),
        }
    }

    /// Whether reading should pause: inbound or outbound backlog too large,
    /// closing, or the Hello still being decided (Joining, Held: nothing
    /// after the Hello is read before the Welcome, so an unidentified peer
    /// never makes the server hold its pipelined bytes, R-3.5.5).
    pub fn read_paused(&self) -> bool {
        self.flow.read_paused()
            || matches!(
                self.phase,
                Phase::Closing { .. } | Phase::Held { .. } | Phase::Joining { .. }
            )
    }

    /// Notes bytes that arrived from the socket since the last look: the
    /// connection is not idle while they keep coming, whole frame
    /// or not.
    pub fn note_arrivals(&mut self, now: Instant) {
        let received = self.transport.received();
        if received != self.last_received {
            self.last_received = received;
            self.last_seen = now;
        }
    }

    /// True when nothing waits to be written (frames, or TLS records).
    pub fn out_empty(&self) -> bool {
        self.out.is_empty() && !self.transport.wants_write()
    }

    /// Queues encoded bytes.
    pub fn queue(&mut self, bytes: Vec<u8>, bulk: usize) {
        if bytes.is_empty() {
            return;
        }
        self.flow.queued(bytes.len());
        self.out.push_back(OutBuf {
            bytes,
            sent: 0,
            bulk,
        });
    }

    /// Queues one frame.
    pub fn queue_frame(&mut self, frame: &Frame) {
        self.queue(frame.to_bytes(), 0);
    }

    /// Writes queued bytes until the socket would block or the queue is empty.
    /// `seal` is the reactor's scratch room for TLS records ([`Transport::write`]).
    ///
    /// # Errors
    /// The socket failed; the connection must close.
    pub fn flush(&mut self, seal: &mut Vec<u8>) -> io::Result<()> {
        while let Some(front) = self.out.front_mut() {
            match self.transport.write(&front.bytes[front.sent..], seal) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    metrics().sent_bytes.inc_by(n as u64);
                    // Bytes moved: a download being read is not idle.
                    self.last_seen = Instant::now();
                    self.last_write = self.last_seen;
                    self.last_unsent = UNSENT_UNKNOWN;
                    front.sent += n;
                    self.flow.wrote(n);
                    if front.sent == front.bytes.len() {
                        self.flow.wrote_bulk(front.bulk);
                        self.out.pop_front();
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        if self.out.is_empty() {
            // Give the memory back: an idle connection holds no buffers.
            self.out = VecDeque::new();
        }
        // TLS records rustls still holds (handshake messages, or the tail of
        // what was written above).
        self.transport.flush()?;
        Ok(())
    }

    /// Takes the bulk bytes to credit back ([`ConnFlow::take_credit`]).
    pub fn take_credit(&mut self) -> Option<usize> {
        self.flow.take_credit(self.out.is_empty())
    }
}
