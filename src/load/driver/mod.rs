//! The load generator's event loop: one mio poll over every connection, a
//! timer heap for pulls and pushes, sockets and reply timeouts; the protocol
//! steps (frames received, pulls and pushes sent) are in [`steps`].

mod steps;

use super::link::Link;
use super::socket::connect_from;
use super::{LoadConfig, LoadError, Milestone, Report};
use crate::protocol::{Frame, FrameDecoder, Hello, HelloMode, Message, Status, UserId};
use mio::{Events, Interest, Poll, Token};
use rand::Rng;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::io;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// How often reply timeouts are checked.
const SWEEP_EVERY: Duration = Duration::from_millis(500);
/// How long the end of the measure phase waits for outstanding replies.
const DRAIN: Duration = Duration::from_secs(3);

/// Where one connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Not started yet.
    Waiting,
    /// Non-blocking connect in progress.
    Connecting { since: Instant },
    /// Hello sent, Welcome awaited.
    Joining { rid: u32, sent: Instant },
    /// Welcome received.
    Ready,
    /// Failed or closed; never used again.
    Dead,
}

struct Conn {
    user: usize,
    stream: Option<Link>,
    phase: Phase,
    decoder: FrameDecoder,
    out: Vec<u8>,
    next_rid: u32,
    cursor: u64,
    /// Outstanding pull: request ID and when it was sent.
    pull: Option<(u32, Instant)>,
    /// A Notify arrived while a pull was outstanding: pull once more after it.
    pull_again: bool,
    /// Outstanding push: request ID and when it was sent.
    push: Option<(u32, Instant)>,
    push_version: u64,
    pushes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Pull,
    Push,
}

/// The whole load run's state.
pub(super) struct Driver<'a> {
    cfg: &'a LoadConfig,
    poll: Poll,
    conns: Vec<Conn>,
    users: usize,
    user_ids: Vec<Option<UserId>>,
    /// Per user: connections waiting for the creator's Welcome.
    waiting: Vec<Vec<usize>>,
    queue: VecDeque<usize>,
    handshaking: usize,
    ready: usize,
    dead: usize,
    timers: BinaryHeap<Reverse<(Instant, usize, Timer)>>,
    measure_start: Option<Instant>,
    report: Report,
    next_source: usize,
}

impl<'a> Driver<'a> {
    pub(super) fn new(cfg: &'a LoadConfig, users: usize) -> Result<Driver<'a>, LoadError> {
        let poll = Poll::new().map_err(LoadError::Poll)?;
        let conns = (0..cfg.connections)
            .map(|i| Conn {
                user: i % users,
                stream: None,
                phase: Phase::Waiting,
                decoder: FrameDecoder::new(),
                out: Vec::new(),
                next_rid: 1,
                cursor: 0,
                pull: None,
                pull_again: false,
                push: None,
                push_version: 0,
                pushes: 0,
            })
            .collect();
        let user_ids = if cfg.user_ids.is_empty() {
            vec![None; users]
        } else {
            cfg.user_ids.iter().copied().map(Some).collect()
        };
        let mut report = Report {
            target: cfg.connections,
            ..Report::default()
        };
        for user in &cfg.user_ids {
            let tag = crate::tls::routing::shard_tag(user);
            report.shards.entry(tag).or_default().users += 1;
        }
        Ok(Driver {
            cfg,
            poll,
            conns,
            users,
            user_ids,
            waiting: vec![Vec::new(); users],
            queue: (0..cfg.connections).collect(),
            handshaking: 0,
            ready: 0,
            dead: 0,
            timers: BinaryHeap::new(),
            measure_start: None,
            report,
            next_source: 0,
        })
    }

    pub(super) fn run(
        mut self,
        on_milestone: &mut dyn FnMut(Milestone),
    ) -> Result<Report, LoadError> {
        let mut events = Events::with_capacity(4096);
        let mut buf = vec![0u8; 64 * 1024];
        self.setup(&mut events, &mut buf)?;
        self.report.connected = self.ready;
        on_milestone(Milestone::Connected {
            held: self.ready,
            failed: self.dead,
        });
        self.hold(&mut events, &mut buf)?;
        on_milestone(Milestone::Measuring);
        self.measure(&mut events, &mut buf)?;
        self.report.held = self.ready;
        self.report.user_ids = self.user_ids.iter().flatten().copied().collect();
        for conn in &mut self.conns {
            if let Some(mut stream) = conn.stream.take() {
                let _ = self.poll.registry().deregister(stream.socket_mut());
            }
        }
        Ok(self.report)
    }

    fn stopped(&self) -> bool {
        self.cfg.stop.load(Ordering::Relaxed)
    }

    fn error(&mut self, cause: impl Into<String>) {
        *self.report.errors.entry(cause.into()).or_default() += 1;
    }

    /// One poll round: waits up to `timeout`, handles every event, and runs
    /// the reply-timeout sweep when due.
    fn turn(
        &mut self,
        events: &mut Events,
        buf: &mut [u8],
        timeout: Duration,
        sweep: &mut Instant,
    ) -> Result<(), LoadError> {
        match self.poll.poll(events, Some(timeout)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(LoadError::Poll(e)),
        }
        for event in events.iter() {
            let key = event.token().0;
            if matches!(
                self.conns.get(key).map(|c| c.phase),
                Some(Phase::Connecting { .. })
            ) {
                self.finish_connect(key);
            }
            if event.is_readable() || event.is_read_closed() || event.is_error() {
                self.on_readable(key, buf);
            }
            if event.is_writable() {
                self.flush(key);
            }
        }
        let now = Instant::now();
        if now >= *sweep {
            self.sweep(now);
            *sweep = now + SWEEP_EVERY;
        }
        Ok(())
    }

    fn setup(&mut self, events: &mut Events, buf: &mut [u8]) -> Result<(), LoadError> {
        let start = Instant::now();
        let mut sweep = start + SWEEP_EVERY;
        let rate = f64::from(self.cfg.connect_rate.max(1));
        let mut tokens = 1.0f64;
        let mut last = start;
        while self.ready + self.dead < self.conns.len()
            && start.elapsed() < self.cfg.setup_timeout
            && !self.stopped()
        {
            let now = Instant::now();
            tokens = (tokens + now.duration_since(last).as_secs_f64() * rate).min(rate.max(1.0));
            last = now;
            while tokens >= 1.0 && self.handshaking < self.cfg.max_handshakes {
                let Some(key) = self.queue.pop_front() else {
                    break;
                };
                if self.start(key) {
                    tokens -= 1.0;
                }
            }
            let timeout = if self.queue.is_empty() {
                Duration::from_millis(100)
            } else {
                Duration::from_millis(2)
            };
            self.turn(events, buf, timeout, &mut sweep)?;
        }
        for key in 0..self.conns.len() {
            if self.conns[key].phase != Phase::Ready && self.conns[key].phase != Phase::Dead {
                self.error("setup_timeout");
                self.kill(key);
            }
        }
        self.report.setup = start.elapsed();
        Ok(())
    }

    fn hold(&mut self, events: &mut Events, buf: &mut [u8]) -> Result<(), LoadError> {
        let Some(go) = self.cfg.go_file.clone() else {
            return Ok(());
        };
        let start = Instant::now();
        let mut sweep = start + SWEEP_EVERY;
        while !go.exists() && start.elapsed() < self.cfg.setup_timeout && !self.stopped() {
            self.turn(events, buf, Duration::from_millis(100), &mut sweep)?;
        }
        Ok(())
    }

    fn measure(&mut self, events: &mut Events, buf: &mut [u8]) -> Result<(), LoadError> {
        let start = Instant::now();
        self.measure_start = Some(start);
        let mut rng = rand::rng();
        let pull_ns = self.cfg.pull_every.as_nanos().max(1) as u64;
        for key in 0..self.conns.len() {
            if self.conns[key].phase == Phase::Ready {
                let at = start + Duration::from_nanos(rng.random_range(0..pull_ns));
                self.timers.push(Reverse((at, key, Timer::Pull)));
                if let Some(every) = self.cfg.push_every {
                    let ns = every.as_nanos().max(1) as u64;
                    let at = start + Duration::from_nanos(rng.random_range(0..ns));
                    self.timers.push(Reverse((at, key, Timer::Push)));
                }
            }
        }
        let end = start + self.cfg.duration;
        let mut sweep = start + SWEEP_EVERY;
        loop {
            let now = Instant::now();
            if now >= end || self.stopped() {
                break;
            }
            while let Some(Reverse((at, key, timer))) = self.timers.peek().copied() {
                if at > now {
                    break;
                }
                self.timers.pop();
                self.fire(key, timer, at);
            }
            let next = self
                .timers
                .peek()
                .map_or(end, |Reverse((at, _, _))| (*at).min(end));
            let timeout = next
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(100));
            self.turn(events, buf, timeout, &mut sweep)?;
        }
        self.report.measured = start.elapsed();
        self.timers.clear();
        let drain_end = Instant::now() + DRAIN;
        while Instant::now() < drain_end
            && self
                .conns
                .iter()
                .any(|c| c.phase == Phase::Ready && (c.pull.is_some() || c.push.is_some()))
        {
            self.turn(events, buf, Duration::from_millis(20), &mut sweep)?;
        }
        Ok(())
    }

    /// Starts connection `key`. Returns false when it must wait for its
    /// user's ID (it is parked and restarted when the ID arrives).
    fn start(&mut self, key: usize) -> bool {
        let user = self.conns[key].user;
        if self.user_ids[user].is_none() && key >= self.users {
            self.waiting[user].push(key);
            return false;
        }
        let source = if self.cfg.sources.is_empty() {
            None
        } else {
            self.next_source = (self.next_source + 1) % self.cfg.sources.len();
            Some(self.cfg.sources[self.next_source])
        };
        let mut socket = match connect_from(self.cfg.server, source) {
            Ok(s) => s,
            Err(e) => {
                self.error(format!(
                    "connect:{}",
                    e.raw_os_error()
                        .map_or_else(|| format!("{:?}", e.kind()), |c| format!("errno{c}"))
                ));
                self.kill(key);
                return true;
            }
        };
        if let Err(e) = self.poll.registry().register(
            &mut socket,
            Token(key),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            self.error(format!("register:{:?}", e.kind()));
            self.kill(key);
            return true;
        }
        let stream = match Link::new(socket, self.cfg.tls.as_ref(), self.user_ids[user].as_ref()) {
            Ok(link) => link,
            Err(e) => {
                self.error(format!("tls:{e}"));
                self.kill(key);
                return true;
            }
        };
        let conn = &mut self.conns[key];
        conn.stream = Some(stream);
        conn.phase = Phase::Connecting {
            since: Instant::now(),
        };
        self.handshaking += 1;
        true
    }

    fn finish_connect(&mut self, key: usize) {
        let Some(stream) = self.conns[key].stream.as_ref().map(Link::socket) else {
            return;
        };
        match stream.take_error() {
            Ok(None) => {}
            Ok(Some(_)) | Err(_) => {
                self.error("connect:refused");
                self.kill(key);
                return;
            }
        }
        match stream.peer_addr() {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotConnected => return,
            Err(_) => {
                self.error("connect:refused");
                self.kill(key);
                return;
            }
        }
        let _ = stream.set_nodelay(true);
        let user = self.conns[key].user;
        let hello = match self.user_ids[user] {
            Some(id) => Hello {
                mode: HelloMode::NewClient,
                user_id: id,
                client_id: 0,
            },
            None => Hello {
                mode: HelloMode::NewUser,
                user_id: UserId::NONE,
                client_id: 0,
            },
        };
        let rid = self.send(key, Message::Hello(hello));
        if self.conns[key].phase != Phase::Dead {
            self.conns[key].phase = Phase::Joining {
                rid,
                sent: Instant::now(),
            };
        }
    }

    /// Marks a connection dead and closes its socket.
    fn kill(&mut self, key: usize) {
        let conn = &mut self.conns[key];
        match conn.phase {
            Phase::Dead => return,
            Phase::Ready => self.ready -= 1,
            Phase::Connecting { .. } | Phase::Joining { .. } => self.handshaking -= 1,
            Phase::Waiting => {}
        }
        conn.phase = Phase::Dead;
        conn.pull = None;
        conn.push = None;
        if let Some(mut stream) = conn.stream.take() {
            let _ = self.poll.registry().deregister(stream.socket_mut());
        }
        self.dead += 1;
        let user = conn.user;
        if key < self.users && self.user_ids[user].is_none() {
            // The creator failed: its user's other connections cannot join.
            for waiter in std::mem::take(&mut self.waiting[user]) {
                self.error("no_user");
                self.conns[waiter].phase = Phase::Dead;
                self.dead += 1;
            }
        }
    }

    /// Encodes and sends a frame with the next request ID; returns the ID.
    fn send(&mut self, key: usize, message: Message) -> u32 {
        let conn = &mut self.conns[key];
        let rid = conn.next_rid;
        conn.next_rid = conn.next_rid.wrapping_add(1).max(1);
        Frame::new(rid, message).encode(&mut conn.out);
        self.flush(key);
        rid
    }

    fn send_with(&mut self, key: usize, rid: u32, message: Message) {
        Frame::new(rid, message).encode(&mut self.conns[key].out);
    }

    fn flush(&mut self, key: usize) {
        let conn = &mut self.conns[key];
        let Some(stream) = conn.stream.as_mut() else {
            return;
        };
        let mut written = 0;
        let mut failed = false;
        while written < conn.out.len() {
            match stream.write(&conn.out[written..]) {
                Ok(0) => {
                    failed = true;
                    break;
                }
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::NotConnected => break,
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
        conn.out.drain(..written);
        if !failed && stream.flush().is_err() {
            failed = true;
        }
        if conn.out.is_empty() && conn.out.capacity() > 4096 {
            conn.out = Vec::new();
        }
        if failed {
            self.error("write");
            self.kill(key);
        }
    }

    fn on_readable(&mut self, key: usize, buf: &mut [u8]) {
        loop {
            let Some(stream) = self.conns.get_mut(key).and_then(|c| c.stream.as_mut()) else {
                return;
            };
            match stream.read(buf) {
                Ok(0) => {
                    self.error("closed_by_server");
                    self.kill(key);
                    return;
                }
                Ok(n) => {
                    let mut input = &buf[..n];
                    while !input.is_empty() {
                        let conn = &mut self.conns[key];
                        match conn.decoder.feed(&mut input) {
                            Ok(Status::Complete(frame)) => self.on_frame(key, frame),
                            Ok(Status::Partial) => break,
                            Err(e) => {
                                self.error(format!("bad_frame:{e:?}"));
                                self.kill(key);
                                return;
                            }
                        }
                        if self.conns[key].phase == Phase::Dead {
                            return;
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return,
                Err(_) => {
                    self.error("reset");
                    self.kill(key);
                    return;
                }
            }
        }
    }

    fn sweep(&mut self, now: Instant) {
        let limit = self.cfg.reply_timeout;
        for key in 0..self.conns.len() {
            let conn = &mut self.conns[key];
            match conn.phase {
                Phase::Connecting { since: t } | Phase::Joining { sent: t, .. }
                    if now.duration_since(t) > limit =>
                {
                    self.error("handshake_timeout");
                    self.kill(key);
                }
                Phase::Ready => {
                    if conn
                        .pull
                        .is_some_and(|(_, t)| now.duration_since(t) > limit)
                    {
                        conn.pull = None;
                        self.error("pull_timeout");
                    } else if conn
                        .push
                        .is_some_and(|(_, t)| now.duration_since(t) > limit)
                    {
                        conn.push = None;
                        self.error("push_timeout");
                    }
                }
                _ => {}
            }
        }
    }
}
