//! The reactor's inbound half: bytes from a socket → frames → a verdict
//! ([`legality::judge`]) → the handshake, an answer given here, or a request
//! charged to the connection's inbound window and routed to the user's actor.

use super::Reactor;
use crate::protocol::limits::{CHUNK_SIZE, MAX_FIRST_PAYLOAD, MAX_PAYLOAD};
use crate::protocol::{
    ErrorCode, ErrorReport, Frame, FrameError, FrameFill, Hello, HelloMode, Message, Status, UserId,
};
use crate::server::bus::{ConnRef, Credential, ToActor};
use crate::server::connection::Phase;
use crate::server::flow;
use crate::server::legality::{self, Stage, Verdict};
use crate::server::limiter;
use crate::server::members::Member;
use crate::server::metrics::metrics;
use crate::server::pull_reply::{self, PullReply};
use crate::server::transport::Mismatch;
use crate::server::user_ids;
use std::io;
use std::time::{Duration, Instant};

/// Most bytes read at once from a connection that has not sent its Hello:
/// what it leaves undecoded behind the Hello (`Connection::stash`) is at
/// most this.
const FIRST_READ: usize = 1024;

impl Reactor {
    /// `key`'s socket is readable; `read_closed`: the peer has ended its
    /// side (mio's `is_read_closed`), which a PROXY protocol header still
    /// incomplete cannot tell by peeking (`reactor/proxied.rs`).
    pub(super) fn on_readable(&mut self, key: usize, read_closed: bool) {
        let mut buf = std::mem::take(&mut self.read_buf);
        self.read_into(key, &mut buf, read_closed);
        if let Some(conn) = self.conns.get_mut(key) {
            conn.note_arrivals(Instant::now());
        }
        self.read_buf = buf;
    }

    /// Reads and decodes until the socket would block, the connection
    /// pauses or it ends.
    fn read_into(&mut self, key: usize, buf: &mut [u8], read_closed: bool) {
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
            if conn.proxy_header {
                match self.take_proxy_header(key, buf, read_closed) {
                    super::proxied::Step::Took => continue,
                    super::proxied::Step::Wait | super::proxied::Step::Closed => break,
                }
            }
            let awaiting_hello = matches!(conn.phase, Phase::AwaitHello { .. });
            let room = if awaiting_hello {
                FIRST_READ
            } else {
                buf.len()
            };
            if !awaiting_hello
                && !matches!(conn.phase, Phase::Closing { .. })
                && conn.transport.reads_frames()
            {
                if !self.read_frame(key) {
                    break;
                }
                continue;
            }
            match conn.transport.read(&mut buf[..room], &mut self.seal_buf) {
                Ok(0) => {
                    self.note_abandoned_handshake(key);
                    self.close_now(key);
                    break;
                }
                Ok(n) => {
                    metrics().received_bytes.inc_by(n as u64);
                    conn.last_read = Instant::now();
                    if !self.ingest(key, &buf[..n]) {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.on_read_error(key, &e);
                    break;
                }
            }
        }
    }

    /// A read failed: a transport mismatch is answered with one plaintext
    /// `Error` frame (PROTOCOL.md §12.4); a failed TLS handshake is logged
    /// (rustls already queued its alert); either way the connection ends.
    /// Both are `request=tls` lines (README "connectionLog.txt"), counted
    /// by `tls_failures_total`, not as connections refused at the limit.
    fn on_read_error(&mut self, key: usize, error: &io::Error) {
        if let Some(mismatch) = Mismatch::of(error) {
            let text = mismatch.to_string();
            self.record(key, "tls", Err(&text));
            self.fail(key, 0, ErrorCode::BadFrame, &text);
            return;
        }
        if error.kind() == io::ErrorKind::InvalidData {
            let handshaking = self
                .conns
                .get(key)
                .is_some_and(|c| c.transport.tls_handshaking());
            let text = if handshaking {
                format!("TLS handshake failed: {error}")
            } else {
                format!("TLS record refused: {error}")
            };
            self.record(key, "tls", Err(&text));
        } else {
            self.note_abandoned_handshake(key);
        }
        self.close_now(key);
    }

    /// A connection that ends part-way through its TLS handshake is a
    /// `request=tls` line too (a client that refused the certificate
    /// closes without a word the server can read).
    fn note_abandoned_handshake(&mut self, key: usize) {
        if self
            .conns
            .get(key)
            .is_some_and(|c| c.transport.tls_handshake_started())
        {
            self.record(
                key,
                "tls",
                Err("TLS handshake abandoned: the client closed the connection before finishing it (a client that refuses the certificate does so)"),
            );
        }
    }

    /// One read of a TLS connection straight into its frame decoder, up
    /// to the end of one frame ([`crate::server::transport::Transport::read_frame`]:
    /// each record copied once, into the frame's payload, not into the
    /// reactor's buffer first), and that frame dispatched once whole.
    /// Returns false when reading stops: the socket would block, or the
    /// connection ended or is closing.
    fn read_frame(&mut self, key: usize) -> bool {
        let Some(conn) = self.conns.get_mut(key) else {
            return false;
        };
        let mut fill = FrameFill::new(&mut conn.decoder, CHUNK_SIZE);
        let read = conn.transport.read_frame(&mut fill, &mut self.seal_buf);
        let done = fill.take();
        match read {
            Ok(0) if done.is_none() => {
                self.close_now(key);
                return false;
            }
            Ok(n) => {
                metrics().received_bytes.inc_by(n as u64);
                conn.last_read = Instant::now();
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return true,
            Err(e) => {
                self.on_read_error(key, &e);
                return false;
            }
        }
        match done {
            Some(Ok(frame)) => {
                conn.last_seen = Instant::now();
                self.on_frame(key, frame);
            }
            Some(Err(e)) => {
                self.on_bad_frame(key, e);
                return false;
            }
            None => {}
        }
        self.conns
            .get(key)
            .is_some_and(|c| !matches!(c.phase, Phase::Closing { .. }))
    }

    /// Decodes and dispatches every frame in `bytes`. Returns false when the
    /// connection stopped reading (closed or closing).
    pub(super) fn ingest(&mut self, key: usize, bytes: &[u8]) -> bool {
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

    pub(super) fn on_bad_frame(&mut self, key: usize, error: FrameError) {
        let code = match error {
            FrameError::BadPath(_) => ErrorCode::BadPath,
            _ => ErrorCode::BadFrame,
        };
        let first = self
            .conns
            .get(key)
            .is_some_and(|c| matches!(c.phase, Phase::AwaitHello { .. }));
        let text = match error {
            FrameError::FrameTooLong(n) if first && n <= MAX_PAYLOAD => format!(
                "{error} for a connection that has not sent its Hello: at most {MAX_FIRST_PAYLOAD} payload bytes (a KeyHello) before it"
            ),
            _ => error.to_string(),
        };
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
    pub(super) fn fail(&mut self, key: usize, request_id: u32, code: ErrorCode, text: &str) {
        if let Some(conn) = self.conns.get_mut(key) {
            metrics().error_sent(code);
            let report = ErrorReport {
                code,
                message: text.to_owned(),
            };
            conn.queue_frame(&Frame::new(request_id, Message::Error(report)));
        }
        self.begin_close(key);
    }

    /// Judges a frame by [`legality::judge`] and acts on the verdict.
    pub(super) fn on_frame(&mut self, key: usize, frame: Frame) {
        let Some(conn) = self.conns.get(key) else {
            return;
        };
        let stage = match conn.phase {
            // A held Resume's connection is not read (`probe.rs`).
            Phase::Closing { .. } | Phase::Held { .. } => return,
            Phase::AwaitHello { .. } => Stage::AwaitHello,
            Phase::Joining { .. } | Phase::Ready { .. } => Stage::Attached,
        };
        let rid = frame.request_id;
        match legality::judge(stage, frame.message.kind(), rid) {
            Verdict::Refuse(why) => {
                self.record(key, "frame", Err(&why.log_text()));
                self.fail(key, rid, why.code(), &why.message());
            }
            Verdict::Ignore => {}
            Verdict::Handshake => match frame.message {
                Message::Hello(hello) => self.on_hello(key, rid, hello, None),
                Message::KeyHello(k) => {
                    let hello = Hello {
                        mode: k.mode,
                        user_id: k.user_id,
                        client_id: k.client_id,
                    };
                    let credential = Credential {
                        secret: k.secret,
                        name: k.name,
                    };
                    self.on_hello(key, rid, hello, Some(credential));
                }
                _ => {}
            },
            Verdict::Request => self.on_request(key, frame),
        }
    }

    /// A request of an attached connection: answered here when that keeps
    /// request order and spares the actor (a Ping, an up-to-date Pull, a
    /// repeated Ack), otherwise charged to the connection's inbound window
    /// and routed to the user's actor.
    pub(super) fn on_request(&mut self, key: usize, frame: Frame) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let Some(user) = conn.phase.user() else {
            return;
        };
        let rid = frame.request_id;
        // Every earlier request of this connection has been answered (its
        // replies are queued ahead), so an answer given here keeps request
        // order (§3.4). Otherwise the actor queues it behind them.
        let settled = conn.flow.settled();
        if conn.visit
            && matches!(
                frame.message,
                Message::Pull { .. }
                    | Message::PullModes { .. }
                    | Message::PullChecked(_)
                    | Message::Ack { .. }
                    | Message::PartialAck(_)
            )
        {
            // a Visit connection never moves the device's cursor.
            let text =
                "Pull, PullModes, PullChecked, Ack and PartialAck are not legal on a Visit connection";
            self.record(key, "frame", Err(text));
            self.fail(key, rid, ErrorCode::WrongPhase, text);
            return;
        }
        match (conn.phase, &frame.message) {
            (Phase::Ready { .. }, Message::Ping) if settled => {
                conn.queue_frame(&Frame::new(rid, Message::Pong));
                self.flush(key);
                return;
            }
            (Phase::Ready { .. }, &Message::Pull { cursor })
                if settled && self.registry.known_head(&user) == Some(cursor) =>
            {
                // Up to date: answered here, so idle clients never wake (or
                // keep alive) the user's actor.
                self.answer_up_to_date(key, rid, cursor, false);
                return;
            }
            (Phase::Ready { .. }, &Message::PullModes { cursor })
                if settled && self.registry.known_head(&user) == Some(cursor) =>
            {
                self.answer_up_to_date(key, rid, cursor, true);
                return;
            }
            (Phase::Ready { .. }, &Message::PullChecked(ask))
                if settled
                    && ask.check_tag != 0
                    && self.registry.known_head_tag(&user) == Some((ask.cursor, ask.check_tag))
                    && ask.check_seq == ask.cursor =>
            {
                // At the head and in the same history (§5.8): answered
                // here as a PullModes at the head, after its History frame.
                let Some(conn) = self.conns.get_mut(key) else {
                    return;
                };
                let mut bytes = Vec::new();
                pull_reply::encode_up_to_date_checked(&mut bytes, rid, ask.cursor, ask.check_tag);
                conn.queue(bytes, 0);
                let reply = PullReply {
                    head: ask.cursor,
                    full: false,
                    entries: &[],
                    modes: true,
                };
                self.record(key, "pull", Ok(&pull_reply::log_detail(ask.cursor, reply)));
                self.flush(key);
                return;
            }
            (Phase::Ready { .. }, &Message::Ack { cursor }) if conn.last_ack == Some(cursor) => {
                // The same cursor again: already recorded.
                return;
            }
            (_, &Message::Ack { cursor }) => conn.last_ack = Some(cursor),
            _ => {}
        }
        let cost = flow::cost_of(&frame.message);
        conn.flow.charge(cost);
        let msg = ToActor::Request {
            conn: ConnRef {
                key,
                generation: conn.generation,
            },
            frame,
            cost,
        };
        self.route(key, rid, user, msg);
    }

    /// Answers a Pull from a client at the head (see [`pull_reply`]).
    pub(super) fn answer_up_to_date(&mut self, key: usize, rid: u32, cursor: u64, modes: bool) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let mut bytes = Vec::new();
        pull_reply::encode_up_to_date(&mut bytes, rid, cursor, modes);
        conn.queue(bytes, 0);
        let reply = PullReply {
            head: cursor,
            full: cursor == 0,
            entries: &[],
            modes,
        };
        self.record(key, "pull", Ok(&pull_reply::log_detail(cursor, reply)));
        self.flush(key);
    }

    pub(super) fn on_hello(
        &mut self,
        key: usize,
        rid: u32,
        hello: Hello,
        credential: Option<Credential>,
    ) {
        let Some(conn) = self.conns.get(key) else {
            return;
        };
        let peer = conn.peer;
        let generation = conn.generation;
        if let Some(away) = self.away.get(&hello.user_id).copied() {
            // Being moved or moved away (§16.3): refused before any actor.
            self.record(key, "hello", Err(away.text()));
            self.fail(key, rid, away.code(), away.text());
            return;
        }
        let mut limited = None;
        let user = match hello.mode {
            HelloMode::NewUser => user_ids::mint_for(self.config.shard),
            HelloMode::NewClient | HelloMode::Resume | HelloMode::Visit => {
                let now = Instant::now();
                let wait = self.limiter.retry_after(peer.ip(), now);
                if hello.user_id == UserId::NONE {
                    self.limiter.record_failure(peer.ip(), now);
                    self.record(key, "hello", Err("unknown user"));
                    self.fail(key, rid, ErrorCode::UnknownUser, "unknown user");
                    return;
                }
                // a refused address is answered TooManyAttempts
                // without a lookup, except a device proving itself with a
                // non-zero device key; its actor admits it only on a match.
                let keyed = hello.mode.resumes()
                    && credential.as_ref().is_some_and(|c| !c.secret.is_none());
                if let (Some(wait), false) = (wait, keyed) {
                    let text = limiter::refusal_text(wait);
                    self.record(key, "hello", Err(&text));
                    self.fail(key, rid, ErrorCode::TooManyAttempts, &text);
                    return;
                }
                limited = wait;
                hello.user_id
            }
        };
        if let Some(conn) = self.conns.get_mut(key) {
            conn.visit = hello.mode == HelloMode::Visit;
        }
        // a Resume of a device with a live connection is held
        // for the probe of that connection only once its actor has
        // verified the key (`FromActor::Probe`, `probe.rs`).
        let pending = Pending {
            conn: ConnRef { key, generation },
            rid,
            user,
            hello,
            credential,
            limited,
        };
        self.route_hello(key, pending);
    }

    /// Routes a handshake to its user's actor and attaches the connection.
    fn route_hello(&mut self, key: usize, p: Pending) {
        let Some(conn) = self.conns.get(key) else {
            return;
        };
        let peer = conn.peer;
        let member = Member::joining(peer, conn.visit, conn.since);
        let msg = ToActor::Hello {
            conn: p.conn,
            peer,
            request_id: p.rid,
            hello: p.hello,
            credential: p.credential,
            limited: p.limited,
        };
        let user = p.user;
        if !self.route(key, p.rid, user, msg) {
            return;
        }
        self.registry.attach(user, p.conn, member);
        self.identified(key);
        if let Some(conn) = self.conns.get_mut(key) {
            conn.phase = Phase::Joining { user };
            conn.attached = Some(user);
            // Identified: frames up to MAX_PAYLOAD from now on (read once
            // the Hello is accepted, `Connection::read_paused`).
            conn.decoder.set_limit(MAX_PAYLOAD);
        }
    }

    /// Hands a message to `user`'s actor; when no worker thread can be
    /// started, answers `Busy` and closes. Returns whether it was delivered.
    pub(super) fn route(&mut self, key: usize, rid: u32, user: UserId, msg: ToActor) -> bool {
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
}

/// A handshake ready to be routed to its user's actor.
pub(super) struct Pending {
    /// The new connection.
    pub conn: ConnRef,
    /// Its Hello's request ID.
    pub rid: u32,
    /// The user.
    pub user: UserId,
    /// The handshake.
    pub hello: Hello,
    /// The KeyHello's secret and name.
    pub credential: Option<Credential>,
    /// The guess limiter's wait for the address.
    pub limited: Option<Duration>,
}
