//! The single-threaded mio reactor: accepts, reads, decodes, routes frames to
//! user actors, writes their replies. It never touches the disk and never blocks.
//!
//! - this file: the loop (tokens [`LISTENER`], [`WAKER`], [`SIGNAL`]),
//!   `accept`, shutdown, `sweep` (timeouts, accept retries, memory trims);
//! - `frames.rs`: socket → frames → legality → handshake / answer / route;
//! - `outbox.rs`: actor messages → socket queues, `flush` with credit
//!   returned, closing.
//!
//! Limits are `ConnFlow`'s (`flow.rs`); which message is legal when is
//! `legality::judge`; new user IDs come from `user_ids`.

mod admit;
mod frames;
mod outbox;
pub mod probe;
mod proxied;

use super::bus::{ConnRef, FromActor};
use super::config::ServerConfig;
use super::conn_log::{ConnEvent, ConnLog};
use super::connection::{Connection, Phase};
use super::limiter::GuessLimiter;
use super::metrics::metrics;
use super::registry::ActorRegistry;
use super::transport::Transport;
use super::trim::TrimSchedule;
use crate::protocol::{ClientId, ErrorCode, ErrorReport, Frame, Message, UserId};
use crossbeam_channel::Receiver;
use mio::net::{TcpListener, UnixStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;
use std::collections::{HashMap, HashSet};
use std::io::{self, Read};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Token of the listening socket.
pub const LISTENER: Token = Token(usize::MAX - 1);
/// Token of the waker the actors ring.
pub const WAKER: Token = Token(usize::MAX - 2);
/// Token of the signal pipe (SIGINT/SIGTERM).
pub const SIGNAL: Token = Token(usize::MAX - 3);

/// How often timeouts and idle actors are checked.
const SWEEP_EVERY: Duration = Duration::from_millis(500);
/// How long a closing connection may take to read what is queued for it.
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// How long shutdown waits for actors and sockets to drain.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Shared read buffer size: one per reactor, none per connection.
const READ_BUF: usize = 256 * 1024;

/// The reactor's state.
pub struct Reactor {
    poll: Poll,
    listener: TcpListener,
    signals: UnixStream,
    conns: Slab<Connection>,
    next_generation: u32,
    registry: ActorRegistry,
    inbox: Receiver<FromActor>,
    limiter: GuessLimiter,
    log: ConnLog,
    config: ServerConfig,
    tls: Option<Arc<rustls::ServerConfig>>,
    read_buf: Vec<u8>,
    /// Scratch room TLS records are sealed into before the socket takes
    /// them, and read and decrypted in, shared by all connections (a read
    /// and a write never overlap): it grows once to one write's records or
    /// one read's room (about 266 KiB) and is neither allocated nor zeroed
    /// again.
    seal_buf: Vec<u8>,
    resume: Vec<usize>,
    shutdown_deadline: Option<Instant>,
    accept_blocked: bool,
    /// When to give freed actor memory back to the OS.
    trim: TrimSchedule,
    /// Devices the operator revoked, as the revocation watcher reported
    /// them (PROTOCOL.md §4.6): a connection of one is closed when it
    /// becomes Ready, whatever its actor decided before the revocation.
    revoked: HashSet<(UserId, ClientId)>,
    /// Users being moved or moved away, as the moves watcher reported them
    /// (PROTOCOL.md §16.3): their handshakes are refused here, before any
    /// actor runs.
    away: HashMap<UserId, crate::server::moves::Away>,
    /// Resumes waiting for the probe of their device's live connection
    /// (`probe.rs`, PROTOCOL.md ); almost always empty.
    held: Vec<probe::Held>,
    /// Connections that have not sent their Hello yet, oldest first, and
    /// how many per address (`admit.rs`, R-3.5.5).
    unidentified: admit::Unidentified,
}

/// Everything the reactor needs, built by [`super::run`].
pub struct ReactorParts {
    /// The poll instance (the waker is registered on it).
    pub poll: Poll,
    /// The bound listener.
    pub listener: TcpListener,
    /// Read end of the signal pipe.
    pub signals: UnixStream,
    /// The actors.
    pub registry: ActorRegistry,
    /// Messages from actors.
    pub inbox: Receiver<FromActor>,
    /// The connection log.
    pub log: ConnLog,
    /// The configuration.
    pub config: ServerConfig,
    /// What each connection's TLS starts from; none under `--insecure-plaintext`.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl Reactor {
    /// Registers the listener and signal pipe.
    ///
    /// # Errors
    /// Registration failed.
    pub fn new(mut parts: ReactorParts) -> io::Result<Reactor> {
        parts
            .poll
            .registry()
            .register(&mut parts.listener, LISTENER, Interest::READABLE)?;
        parts
            .poll
            .registry()
            .register(&mut parts.signals, SIGNAL, Interest::READABLE)?;
        Ok(Reactor {
            poll: parts.poll,
            listener: parts.listener,
            signals: parts.signals,
            conns: Slab::new(),
            next_generation: 0,
            registry: parts.registry,
            inbox: parts.inbox,
            limiter: GuessLimiter::default(),
            log: parts.log,
            config: parts.config,
            tls: parts.tls,
            read_buf: vec![0; READ_BUF],
            seal_buf: Vec::new(),
            resume: Vec::new(),
            shutdown_deadline: None,
            accept_blocked: false,
            trim: TrimSchedule::default(),
            revoked: HashSet::new(),
            away: HashMap::new(),
            held: Vec::new(),
            unidentified: admit::Unidentified::default(),
        })
    }

    /// Runs until a shutdown signal has been handled and everything drained.
    ///
    /// # Errors
    /// `poll` itself failed.
    pub fn run(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        let mut next_sweep = Instant::now() + SWEEP_EVERY;
        loop {
            match self.poll.poll(&mut events, Some(SWEEP_EVERY)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(),
                    WAKER => {}
                    SIGNAL => self.on_signal(),
                    Token(key) => {
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            self.on_readable(key, event.is_read_closed());
                        }
                        if event.is_writable() {
                            self.flush(key);
                        }
                    }
                }
            }
            self.drain_inbox();
            self.settle_held(Instant::now());
            self.resume_paused();
            let now = Instant::now();
            if now >= next_sweep {
                self.sweep(now);
                next_sweep = now + SWEEP_EVERY;
            }
            if let Some(deadline) = self.shutdown_deadline {
                let drained =
                    self.registry.threads() == 0 && self.conns.iter().all(|(_, c)| c.out_empty());
                if drained || now >= deadline {
                    self.finish_shutdown();
                    return Ok(());
                }
            }
        }
    }

    /// New connections beyond this many are refused.
    pub fn max_connections(&self) -> usize {
        self.config.max_connections
    }

    fn conn_ref(&self, key: usize) -> Option<ConnRef> {
        self.conns.get(key).map(|c| ConnRef {
            key,
            generation: c.generation,
        })
    }

    /// The slab key of `conn`, if it is still the same connection.
    fn live(&self, conn: ConnRef) -> Option<usize> {
        match self.conns.get(conn.key) {
            Some(c) if c.generation == conn.generation => Some(conn.key),
            _ => None,
        }
    }

    fn record(&self, key: usize, request: &str, outcome: Result<&str, &str>) {
        let Some(c) = self.conns.get(key) else {
            return;
        };
        let (user, client) = match c.phase {
            Phase::Ready { user, client } => (Some(user), Some(client)),
            Phase::Joining { user } | Phase::Held { user } => (Some(user), None),
            _ => (c.attached, None),
        };
        self.log.record(&ConnEvent {
            peer: c.peer,
            user,
            client,
            request,
            outcome,
        });
    }

    fn accept(&mut self) {
        if self.shutdown_deadline.is_some() {
            return;
        }
        loop {
            let (mut stream, peer) = match self.listener.accept() {
                Ok(pair) => pair,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Out of file descriptors, most likely: try again at the next sweep.
                    if !self.accept_blocked {
                        log::error!("accept failed: {e}; retrying shortly");
                    }
                    self.accept_blocked = true;
                    return;
                }
            };
            self.accept_blocked = false;
            // A trusted proxy's connections are its clients' (§17): not
            // limited per address by the proxy's address; each is re-keyed
            // to its client's address once its header is taken.
            let proxied = self.config.trusts_proxy(peer.ip());
            if !self.make_room(peer.ip(), proxied) {
                let report = ErrorReport {
                    code: ErrorCode::Busy,
                    message: "server at its connection limit".to_owned(),
                };
                let bytes = Frame::new(0, Message::Error(report)).to_bytes();
                metrics().error_sent(ErrorCode::Busy);
                if let Ok(n) = io::Write::write(&mut stream, &bytes) {
                    metrics().sent_bytes.inc_by(n as u64);
                }
                log::warn!(
                    "refused {peer}: at the limit of {} connections",
                    self.config.max_connections
                );
                self.log.record(&ConnEvent {
                    peer,
                    user: None,
                    client: None,
                    request: "connect",
                    outcome: Err("connection limit reached"),
                });
                continue;
            }
            let _ = stream.set_nodelay(true);
            let entry = self.conns.vacant_entry();
            let key = entry.key();
            if let Err(e) = self.poll.registry().register(
                &mut stream,
                Token(key),
                Interest::READABLE | Interest::WRITABLE,
            ) {
                log::error!("cannot register {peer}: {e}");
                continue;
            }
            let transport = match Transport::new(stream, self.tls.as_ref()) {
                Ok(transport) => transport,
                Err(e) => {
                    log::error!("cannot start TLS for {peer}: {e}");
                    continue;
                }
            };
            self.next_generation = self.next_generation.wrapping_add(1);
            let deadline = Instant::now() + self.config.handshake_timeout;
            let mut conn = Connection::new(transport, peer, self.next_generation, deadline);
            conn.counted = true;
            conn.proxy_header = proxied;
            entry.insert(conn);
            self.unidentified.add(
                ConnRef {
                    key,
                    generation: self.next_generation,
                },
                peer.ip(),
            );
        }
    }

    fn on_signal(&mut self) {
        let mut buf = [0u8; 64];
        while matches!(self.signals.read(&mut buf), Ok(n) if n > 0) {}
        if self.shutdown_deadline.is_some() {
            return;
        }
        log::info!("shutting down: no new connections; letting actors finish");
        self.shutdown_deadline = Some(Instant::now() + SHUTDOWN_GRACE);
        let _ = self.poll.registry().deregister(&mut self.listener);
        let now = Instant::now();
        for (_, conn) in self.conns.iter_mut() {
            conn.phase = Phase::Closing {
                deadline: now + SHUTDOWN_GRACE,
            };
        }
        self.registry.retire_all();
    }

    fn finish_shutdown(&mut self) {
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            if let Some(conn) = self.conns.get_mut(key) {
                let report = ErrorReport {
                    code: ErrorCode::ShuttingDown,
                    message: "server shutting down".to_owned(),
                };
                conn.queue_frame(&Frame::new(0, Message::Error(report)));
                metrics().error_sent(ErrorCode::ShuttingDown);
                let _ = conn.flush(&mut self.seal_buf);
            }
            self.close_now(key);
        }
        self.log.flush();
        log::info!("stopped");
    }

    fn sweep(&mut self, now: Instant) {
        let idle = self.config.idle_timeout;
        let mut expired: Vec<(usize, &'static str)> = Vec::new();
        let mut phases = [0usize; 4];
        for (key, conn) in self.conns.iter_mut() {
            phases[phase_index(&conn.phase)] += 1;
            match conn.phase {
                Phase::AwaitHello { deadline } if now >= deadline => {
                    // A TLS handshake still going is a TLS failure: no
                    // Error frame can reach a peer without keys.
                    let why = if conn.proxy_header {
                        "proxy"
                    } else if conn.transport.tls_handshaking() {
                        "tls"
                    } else {
                        "handshake timeout"
                    };
                    expired.push((key, why));
                }
                Phase::Joining { .. } | Phase::Ready { .. }
                    if now.duration_since(conn.last_seen) >= idle && conn.flow.settled() =>
                {
                    // The tail of a download sits in the kernel's buffers
                    // after its last write; while the peer drains it the
                    // connection is not idle. A peer that reads
                    // nothing for a whole period is.
                    let unsent = conn.transport.unsent_bytes();
                    if send_queue_moved(unsent, conn.last_unsent) {
                        conn.last_unsent = unsent;
                        conn.last_seen = now;
                    } else {
                        expired.push((key, "idle timeout"));
                    }
                }
                Phase::Closing { deadline } if now >= deadline => expired.push((key, "")),
                _ => {}
            }
        }
        for (key, why) in expired {
            if why.is_empty() {
                self.close_now(key);
            } else if why == "proxy" {
                let text = format!(
                    "no whole PROXY protocol header within {} s (--handshake-timeout) from a trusted proxy (--proxy-protocol)",
                    self.config.handshake_timeout.as_secs_f64()
                );
                self.refuse_proxied(key, &text);
            } else if why == "tls" {
                let text = format!(
                    "TLS handshake not finished within {} s (--handshake-timeout)",
                    self.config.handshake_timeout.as_secs_f64()
                );
                self.record(key, "tls", Err(&text));
                self.close_now(key);
            } else {
                self.record(key, "timeout", Err(why));
                self.fail(key, 0, ErrorCode::Timeout, why);
            }
        }
        self.compact_unidentified();
        metrics().set_connections(phases);
        metrics().actors.set(self.registry.threads() as i64);
        self.limiter.expire(now);
        self.trim.tick(self.registry.threads());
        if self.accept_blocked {
            self.accept();
        }
    }
}

/// Index of `phase` in [`super::metrics::PHASES`].
fn phase_index(phase: &Phase) -> usize {
    match phase {
        Phase::AwaitHello { .. } => 0,
        Phase::Joining { .. } | Phase::Held { .. } => 1,
        Phase::Ready { .. } => 2,
        Phase::Closing { .. } => 3,
    }
}

/// Whether the kernel's send queue of a connection whose idle time ran out
/// moved since the last look (`unsent`, `last`: bytes written and not yet
/// acknowledged, [`crate::server::transport::Transport::unsent_bytes`]): the peer is still taking
/// a reply's tail, so the connection is not idle (PROTOCOL.md ). A
/// queue that emptied since the last look moved too: its last bytes left
/// just now, and the peer may still be reading them from its own receive
/// buffer (a Timeout sent then lands right after the reply's end:
/// `r_8_2_a_slowly_read_download_is_not_idle` failed 1 run in 16, 3 in 16
/// with larger TLS writes). So is the first look after a write (`last` is
/// [`crate::server::connection::UNSENT_UNKNOWN`]): the queue may have
/// emptied just before it. The client thus gets one whole period after
/// its reply's last byte left the queue to read what its own buffers hold.
/// An unchanged queue, empty or not, is idle.
fn send_queue_moved(unsent: u32, last: u32) -> bool {
    unsent != last
}

#[cfg(test)]
mod tests {
    use super::send_queue_moved;

    /// a queue that shrank, grew or emptied since the last look
    /// moved (the last case: the reply's tail left just now); one that
    /// stayed as it was, empty or stuck, did not.
    #[test]
    fn an_emptied_send_queue_moved_an_unchanged_one_did_not() {
        assert!(send_queue_moved(4096, 65536), "drained part-way");
        assert!(send_queue_moved(0, 65536), "emptied since the last look");
        assert!(send_queue_moved(65536, 0), "written since");
        let after_a_write = crate::server::connection::UNSENT_UNKNOWN;
        assert!(
            send_queue_moved(0, after_a_write),
            "first look after a write"
        );
        assert!(send_queue_moved(65536, after_a_write));
        assert!(!send_queue_moved(0, 0), "nothing queued, nothing moved");
        assert!(
            !send_queue_moved(65536, 65536),
            "a peer that stopped reading"
        );
    }
}
