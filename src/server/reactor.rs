//! The single-threaded mio reactor: accepts, reads, decodes, routes frames to
//! user actors, writes their replies. It never touches the disk and never blocks.

use super::bus::{ConnRef, FromActor, ToActor};
use super::conn_log::{ConnEvent, ConnLog};
use super::connection::{Connection, Phase, REPLY_COST, SMALL_COST};
use super::limiter::GuessLimiter;
use super::registry::ActorRegistry;
use super::trim;
use super::ServerConfig;
use crate::protocol::{
    ChangeBatch, ErrorCode, ErrorReport, Frame, FrameError, Hello, HelloMode, Message, Status,
    UserId,
};
use crossbeam_channel::Receiver;
use mio::net::{TcpListener, UnixStream};
use mio::{Events, Interest, Poll, Token};
use rand::RngCore;
use slab::Slab;
use std::io::{self, Read};
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
    read_buf: Vec<u8>,
    resume: Vec<usize>,
    shutdown_deadline: Option<Instant>,
    accept_blocked: bool,
    /// Actor threads ended since memory was last trimmed.
    exits_since_trim: usize,
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
            read_buf: vec![0; READ_BUF],
            resume: Vec::new(),
            shutdown_deadline: None,
            accept_blocked: false,
            exits_since_trim: 0,
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
                            self.on_readable(key);
                        }
                        if event.is_writable() {
                            self.flush(key);
                        }
                    }
                }
            }
            self.drain_inbox();
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
            Phase::Joining { user } => (Some(user), None),
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
            if self.conns.len() >= self.config.max_connections {
                let report = ErrorReport {
                    code: ErrorCode::Busy,
                    message: "server at its connection limit".to_owned(),
                };
                let bytes = Frame::new(0, Message::Error(report)).to_bytes();
                let _ = io::Write::write(&mut stream, &bytes);
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
            self.next_generation = self.next_generation.wrapping_add(1);
            let deadline = Instant::now() + self.config.handshake_timeout;
            entry.insert(Connection::new(
                stream,
                peer,
                self.next_generation,
                deadline,
            ));
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
                let _ = conn.flush();
            }
            self.close_now(key);
        }
        self.log.flush();
        log::info!("stopped");
    }

    fn on_readable(&mut self, key: usize) {
        let mut buf = std::mem::take(&mut self.read_buf);
        while let Some(conn) = self.conns.get_mut(key) {
            if conn.read_paused() {
                break;
            }
            if !conn.stash.is_empty() {
                // Bytes read earlier but left undecoded when reading paused.
                let stash = std::mem::take(&mut conn.stash);
                if !self.ingest(key, &stash) {
                    break;
                }
                continue;
            }
            match conn.stream.read(&mut buf) {
                Ok(0) => {
                    self.close_now(key);
                    break;
                }
                Ok(n) => {
                    if !self.ingest(key, &buf[..n]) {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.close_now(key);
                    break;
                }
            }
        }
        self.read_buf = buf;
    }

    /// Decodes and dispatches every frame in `bytes`. Returns false when the
    /// connection stopped reading (closed or closing).
    fn ingest(&mut self, key: usize, bytes: &[u8]) -> bool {
        let mut input = bytes;
        while !input.is_empty() {
            let Some(conn) = self.conns.get_mut(key) else {
                return false;
            };
            if matches!(conn.phase, Phase::Closing { .. }) {
                return false;
            }
            match conn.decoder.feed(&mut input) {
                Ok(Status::Complete(frame)) => {
                    conn.last_seen = Instant::now();
                    self.on_frame(key, frame);
                    if let Some(conn) = self.conns.get_mut(key) {
                        if conn.read_paused() && !input.is_empty() {
                            // The actor has enough of this connection's
                            // requests: keep the rest until it catches up.
                            if !matches!(conn.phase, Phase::Closing { .. }) {
                                conn.stash = input.to_vec();
                            }
                            return false;
                        }
                    }
                }
                Ok(Status::Partial) => break,
                Err(e) => {
                    self.on_bad_frame(key, e);
                    return false;
                }
            }
        }
        self.conns
            .get(key)
            .is_some_and(|c| !matches!(c.phase, Phase::Closing { .. }))
    }

    fn on_bad_frame(&mut self, key: usize, error: FrameError) {
        let code = match error {
            FrameError::BadPath(_) => ErrorCode::BadPath,
            _ => ErrorCode::BadFrame,
        };
        let text = error.to_string();
        self.record(key, "frame", Err(&text));
        // §3.3: the bad frame's request ID whenever its header was valid.
        let rid = self
            .conns
            .get(key)
            .and_then(|c| c.decoder.failed_request_id())
            .unwrap_or(0);
        self.fail(key, rid, code, &text);
    }

    /// Sends an error and closes the connection after it.
    fn fail(&mut self, key: usize, request_id: u32, code: ErrorCode, text: &str) {
        if let Some(conn) = self.conns.get_mut(key) {
            let report = ErrorReport {
                code,
                message: text.to_owned(),
            };
            conn.queue_frame(&Frame::new(request_id, Message::Error(report)));
        }
        self.begin_close(key);
    }

    fn on_frame(&mut self, key: usize, frame: Frame) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let rid = frame.request_id;
        let phase = conn.phase;
        match (phase, frame.message) {
            (Phase::Closing { .. }, _) => {}
            (Phase::AwaitHello { .. }, Message::Hello(hello)) => self.on_hello(key, rid, hello),
            (Phase::AwaitHello { .. }, other) => {
                let text = format!("expected Hello, got {:?}", other.kind());
                self.record(key, "frame", Err(&text));
                self.fail(key, rid, ErrorCode::WrongPhase, &text);
            }
            (
                _,
                m @ (Message::Hello(_)
                | Message::Welcome(_)
                | Message::ChangeBatch(_)
                | Message::Notify { .. }
                | Message::Error(_)
                | Message::PushAck(_)),
            ) => {
                let text = format!("{:?} is not allowed from a client here", m.kind());
                self.record(key, "frame", Err(&text));
                self.fail(key, rid, ErrorCode::WrongPhase, &text);
            }
            (Phase::Ready { .. }, Message::Ping) if conn.inflight == 0 => {
                // Every earlier request of this connection has been answered
                // (its replies are queued ahead), so the Pong keeps request
                // order (§3.4). Otherwise the actor queues it behind them.
                conn.queue_frame(&Frame::new(rid, Message::Pong));
                self.flush(key);
            }
            (_, Message::Pong) => {}
            (Phase::Ready { user, client }, Message::Pull { cursor })
                if conn.inflight == 0 && self.registry.known_head(&user) == Some(cursor) =>
            {
                // Up to date, and every earlier request of this connection has
                // been answered (its replies are queued ahead of this one):
                // answer here, so idle clients never wake (or keep alive) the
                // user's actor.
                let batch = ChangeBatch {
                    head: cursor,
                    full: cursor == 0,
                    last: true,
                    entries: Vec::new(),
                };
                conn.queue_frame(&Frame::new(rid, Message::ChangeBatch(batch)));
                let detail = format!("cursor {cursor} -> {cursor}, 0 entries");
                self.log.record(&ConnEvent {
                    peer: conn.peer,
                    user: Some(user),
                    client: Some(client),
                    request: "pull",
                    outcome: Ok(&detail),
                });
                self.flush(key);
            }
            (Phase::Ready { .. }, Message::Ack { cursor }) if conn.last_ack == Some(cursor) => {
                // The same cursor again: already recorded.
            }
            (Phase::Joining { user } | Phase::Ready { user, .. }, message) => {
                if let Message::Ack { cursor } = message {
                    conn.last_ack = Some(cursor);
                }
                let cost = match &message {
                    Message::FileChunk(data) => data.len() + SMALL_COST,
                    Message::ChunkData(chunk) => chunk.data.len() + SMALL_COST,
                    Message::ChunkList(entries) => entries.len() * 36 + SMALL_COST,
                    Message::Pull { .. } | Message::Fetch(_) => REPLY_COST,
                    _ => SMALL_COST,
                };
                conn.inflight += cost;
                let conn_ref = ConnRef {
                    key,
                    generation: conn.generation,
                };
                let frame = Frame::new(rid, message);
                let msg = ToActor::Request {
                    conn: conn_ref,
                    frame,
                    cost,
                };
                self.route(key, rid, user, msg);
            }
        }
    }

    fn on_hello(&mut self, key: usize, rid: u32, hello: Hello) {
        let Some(conn) = self.conns.get(key) else {
            return;
        };
        let peer = conn.peer;
        let generation = conn.generation;
        let user = match hello.mode {
            HelloMode::NewUser => {
                let mut bytes = [0u8; 16];
                while bytes == UserId::NONE.0 {
                    rand::rng().fill_bytes(&mut bytes);
                }
                UserId(bytes)
            }
            HelloMode::NewClient | HelloMode::Resume => {
                let now = Instant::now();
                if hello.user_id == UserId::NONE || self.limiter.is_blocked(peer.ip(), now) {
                    let text = if hello.user_id == UserId::NONE {
                        "unknown user"
                    } else {
                        "unknown user (too many failed attempts from this address; wait a minute)"
                    };
                    self.limiter.record_failure(peer.ip(), now);
                    self.record(key, "hello", Err(text));
                    self.fail(key, rid, ErrorCode::UnknownUser, "unknown user");
                    return;
                }
                hello.user_id
            }
        };
        let msg = ToActor::Hello {
            conn: ConnRef { key, generation },
            peer,
            request_id: rid,
            hello,
        };
        if !self.route(key, rid, user, msg) {
            return;
        }
        self.registry
            .attach(user, ConnRef { key, generation }, peer);
        if let Some(conn) = self.conns.get_mut(key) {
            conn.phase = Phase::Joining { user };
            conn.attached = Some(user);
        }
    }

    /// Hands a message to `user`'s actor; when no worker thread can be
    /// started, answers `Busy` and closes. Returns whether it was delivered.
    fn route(&mut self, key: usize, rid: u32, user: UserId, msg: ToActor) -> bool {
        if self.registry.send(user, msg).is_ok() {
            return true;
        }
        self.fail(
            key,
            rid,
            ErrorCode::Busy,
            "cannot start a worker for this user",
        );
        false
    }

    fn drain_inbox(&mut self) {
        while let Ok(msg) = self.inbox.try_recv() {
            match msg {
                FromActor::Send { conn, bytes, bulk } => {
                    if let Some(key) = self.live(conn) {
                        if let Some(c) = self.conns.get_mut(key) {
                            c.queue(bytes, bulk);
                        }
                        self.flush(key);
                    }
                }
                FromActor::Ready { conn, client } => {
                    if let Some(c) = self.live(conn).and_then(|k| self.conns.get_mut(k)) {
                        if let Phase::Joining { user } = c.phase {
                            c.phase = Phase::Ready { user, client };
                            self.registry.set_client(user, conn, client);
                        }
                    }
                }
                FromActor::Refused { conn } => {
                    if let Some(c) = self.live(conn).and_then(|k| self.conns.get(k)) {
                        self.limiter.record_failure(c.peer.ip(), Instant::now());
                    }
                }
                FromActor::Close { conn } => {
                    if let Some(key) = self.live(conn) {
                        self.begin_close(key);
                    }
                }
                FromActor::Processed { conn, cost } => {
                    if let Some(key) = self.live(conn) {
                        if let Some(c) = self.conns.get_mut(key) {
                            c.inflight = c.inflight.saturating_sub(cost);
                        }
                        self.resume.push(key);
                    }
                }
                FromActor::WantsRetire { user, received } => {
                    self.registry.offer_retire(user, received)
                }
                FromActor::Head { user, head } => self.registry.set_head(user, head),
                FromActor::Exited { user } => {
                    if self.registry.exited(user) {
                        self.close_user(user);
                    }
                    self.exits_since_trim += 1;
                }
            }
        }
    }

    /// An actor died unexpectedly: its connections cannot continue.
    fn close_user(&mut self, user: UserId) {
        let keys: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| c.attached == Some(user))
            .map(|(k, _)| k)
            .collect();
        for key in keys {
            self.fail(key, 0, ErrorCode::Storage, "internal error for this user");
        }
    }

    /// Writes what is queued; credits bulk bytes back to the actor; finishes
    /// a close once the queue is empty.
    fn flush(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let paused = conn.read_paused();
        if conn.flush().is_err() {
            self.close_now(key);
            return;
        }
        if paused && !conn.read_paused() {
            self.resume.push(key);
        }
        if let (Some(bytes), Some(user)) = (conn.take_credit(), conn.attached) {
            let conn_ref = ConnRef {
                key,
                generation: conn.generation,
            };
            let _ = self.registry.send(
                user,
                ToActor::Credit {
                    conn: conn_ref,
                    bytes,
                },
            );
        }
        if matches!(conn.phase, Phase::Closing { .. })
            && conn.out_empty()
            && self.shutdown_deadline.is_none()
        {
            self.close_now(key);
        }
    }

    fn resume_paused(&mut self) {
        let keys = std::mem::take(&mut self.resume);
        for key in keys {
            if self.conns.get(key).is_some_and(|c| !c.read_paused()) {
                self.on_readable(key);
            }
        }
    }

    /// Stops reading, tells the actor, and closes once the queue is written.
    fn begin_close(&mut self, key: usize) {
        self.detach(key);
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if !matches!(conn.phase, Phase::Closing { .. }) {
            conn.phase = Phase::Closing {
                deadline: Instant::now() + CLOSE_GRACE,
            };
        }
        self.flush(key);
    }

    fn detach(&mut self, key: usize) {
        let Some(conn_ref) = self.conn_ref(key) else {
            return;
        };
        let Some(user) = self.conns.get_mut(key).and_then(|c| c.attached.take()) else {
            return;
        };
        let _ = self.registry.send(user, ToActor::Detach { conn: conn_ref });
        self.registry.detach(user, conn_ref);
    }

    fn close_now(&mut self, key: usize) {
        self.detach(key);
        if self.conns.contains(key) {
            let mut conn = self.conns.remove(key);
            let _ = self.poll.registry().deregister(&mut conn.stream);
        }
    }

    fn sweep(&mut self, now: Instant) {
        let idle = self.config.idle_timeout;
        let mut expired: Vec<(usize, &'static str)> = Vec::new();
        for (key, conn) in self.conns.iter() {
            match conn.phase {
                Phase::AwaitHello { deadline } if now >= deadline => {
                    expired.push((key, "handshake timeout"));
                }
                Phase::Joining { .. } | Phase::Ready { .. }
                    if now.duration_since(conn.last_seen) >= idle && conn.inflight == 0 =>
                {
                    expired.push((key, "idle timeout"));
                }
                Phase::Closing { deadline } if now >= deadline => expired.push((key, "")),
                _ => {}
            }
        }
        for (key, why) in expired {
            if why.is_empty() {
                self.close_now(key);
            } else {
                self.record(key, "timeout", Err(why));
                self.fail(key, 0, ErrorCode::Timeout, why);
            }
        }
        self.limiter.expire(now);
        if self.exits_since_trim >= trim::EXITS_PER_TRIM
            || (self.exits_since_trim > 0 && self.registry.threads() == 0)
        {
            self.exits_since_trim = 0;
            trim::release_free_memory();
        }
        if self.accept_blocked {
            self.accept();
        }
    }
}
