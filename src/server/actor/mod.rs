//! One thread per user: the only code that touches that user's folder,
//! journal, registry and cursors, so none of it needs a lock.
//!
//! The actor drains its inbox in cycles. Within a cycle it applies requests
//! and queues replies; at the end it flushes the journal *before* any
//! acknowledgement leaves, produces bulk output within each connection's
//! credit, notifies the user's other connections, and wakes the reactor once.

mod delta;
mod delta_fetch;
mod handshake;
mod list_delta;
mod peer;
mod presence;
mod requests;
mod stream;

use crate::protocol::{ClientId, ErrorCode, Message, UserId, WirePath};
use crate::server::bus::{ConnRef, FromActor, ToActor};
use crate::server::conn_log::{ConnEvent, ConnLog};
use crate::server::events::EventSink;
use crate::server::store::{DataPaths, Reexamined, StoreError, UserStore};
use crossbeam_channel::RecvTimeoutError;
use crossbeam_channel::{Receiver, Sender};
use mio::Waker;
use peer::Peer;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What every actor shares: where data lives, how durable to be, and the way
/// back to the reactor.
pub struct ActorContext {
    /// The data directory.
    pub paths: DataPaths,
    /// `--fsync`.
    pub durable: bool,
    /// Messages to the reactor.
    pub out: Sender<FromActor>,
    /// Wakes the reactor after sending.
    pub waker: Arc<Waker>,
    /// The connection log.
    pub log: ConnLog,
    /// Where operator events (a new user) go.
    pub events: EventSink,
    /// How long an actor waits without messages before offering to retire.
    pub idle: Duration,
    /// This server's shard (`--shard N`, §16): a handshake for a user it
    /// does not hold whose tag is not N is refused `WrongShard`.
    pub shard: Option<u8>,
    /// Actor threads alive now; past [`CROWD`] they retire after [`CROWD_IDLE`].
    pub alive: AtomicUsize,
    /// Users waiting for an actor thread (the registry's cap is reached):
    /// then an idle actor retires at once to make room.
    pub waiting: AtomicUsize,
    /// Asks the reaper for a user's versions past `--versions-space` (§14.4).
    pub reap: crate::server::reaper::ReapTrigger,
    /// When each user's storage refusals were last told on stderr
    /// (at most once a minute per user; every one is in the connection log).
    pub storage_warnings: crate::server::warnings::WarnLimiter,
}

/// Above this many live actors (a connection storm: thousands of users
/// handshaking at once), actors retire after [`CROWD_IDLE`] instead of `idle`,
/// so the thread count and memory follow the work, not the user count.
pub const CROWD: usize = crate::server::flow::MAX_ACTORS / 2;
/// The short idle period used while more than [`CROWD`] actors are alive.
pub const CROWD_IDLE: Duration = Duration::from_millis(500);
/// The idle period while users wait for a thread: just long enough to take
/// a request that is already on its way.
pub const WAITING_IDLE: Duration = Duration::from_millis(5);

impl ActorContext {
    /// How long an actor may sit idle right now.
    fn idle_period(&self) -> Duration {
        if self.waiting.load(Ordering::Relaxed) > 0 {
            WAITING_IDLE.min(self.idle)
        } else if self.alive.load(Ordering::Relaxed) > CROWD {
            CROWD_IDLE.min(self.idle)
        } else {
            self.idle
        }
    }
}

/// Most inbox messages handled in one cycle before replies go out, so a long
/// upload still gets its acknowledgements flushed regularly.
const CYCLE_BUDGET: usize = 256;

/// Runs a user's actor until the reactor drops its sender. After `idle`
/// without messages and with no work pending it offers to retire.
pub fn run(user: UserId, ctx: Arc<ActorContext>, inbox: Receiver<ToActor>) {
    ctx.alive.fetch_add(1, Ordering::Relaxed);
    let mut actor = Actor {
        user,
        ctx,
        store: None,
        owner: None,
        away: None,
        unknown: false,
        peers: HashMap::new(),
        pushers: HashSet::new(),
        received: 0,
        reported_head: None,
        chunks: None,
        chunks_dirty: false,
        seen: HashMap::new(),
    };
    loop {
        let wait = if actor.unknown && actor.peers.is_empty() {
            Duration::ZERO
        } else {
            actor.ctx.idle_period()
        };
        let first = match inbox.recv_timeout(wait) {
            Ok(msg) => msg,
            Err(RecvTimeoutError::Timeout) => {
                if actor.is_quiet() {
                    actor.save_chunk_index();
                    actor.note_all_seen();
                    let _ = actor.ctx.out.send(FromActor::WantsRetire {
                        user,
                        received: actor.received,
                    });
                    let _ = actor.ctx.waker.wake();
                    // Wait for the reactor's answer (the sender dropped) or more work.
                    match inbox.recv() {
                        Ok(msg) => msg,
                        Err(_) => break,
                    }
                } else {
                    continue;
                }
            }
            Err(RecvTimeoutError::Disconnected) => break,
        };
        actor.received += 1;
        actor.handle(first);
        for _ in 1..CYCLE_BUDGET {
            match inbox.try_recv() {
                Ok(msg) => {
                    actor.received += 1;
                    actor.handle(msg);
                }
                Err(_) => break,
            }
        }
        actor.end_cycle();
    }
    actor.save_chunk_index();
    actor.note_all_seen();
    if let Some(store) = actor.store.take() {
        if let Err(e) = store.close() {
            log::error!("user {user}: closing state: {e}");
        }
    }
    // The owner lock goes before `Exited` is sent: the reactor starts the
    // next actor of this user on `Exited` (with the messages that arrived
    // while this one retired), and that actor's `try_own` fails while this
    // thread still holds the lock: it took the user for moved away, dropped
    // its Adopts and with them the requests (stall14: a push never answered,
    // tests/actor_retire.rs).
    drop(actor.owner.take());
    actor.ctx.alive.fetch_sub(1, Ordering::Relaxed);
    let _ = actor.ctx.out.send(FromActor::Exited { user });
    let _ = actor.ctx.waker.wake();
}

struct Actor {
    user: UserId,
    ctx: Arc<ActorContext>,
    store: Option<UserStore>,
    /// The lock on the user's state (§16.3), held while `store` is open
    /// and released when the actor ends, after the store is closed.
    owner: Option<crate::server::moves::OwnerLock>,
    /// The user is being moved or was moved away (§16.3): every handshake
    /// is refused with its code.
    away: Option<crate::server::moves::Away>,
    /// The user does not exist: every handshake is refused.
    unknown: bool,
    peers: HashMap<ConnRef, Peer>,
    /// Connections that changed the tree this cycle.
    pushers: HashSet<ConnRef>,
    /// Messages taken from the inbox (for the retirement handshake).
    received: u64,
    /// The head last reported to the reactor.
    reported_head: Option<(u64, u64)>,
    /// Where the user's chunks are (delta uploads, §13.3); loaded at the
    /// first delta transfer.
    chunks: Option<crate::chunk::index::ChunkIndex>,
    /// Lists were added to `chunks` by delta downloads since it was saved
    /// (saved when the actor is idle or exits, not per download: the index
    /// is a hint, rebuilt from the files if lost).
    chunks_dirty: bool,
    /// The `last_seen` stored for each device of this user, as far as this
    /// actor knows (Unix seconds; presence.rs).
    seen: HashMap<ClientId, u64>,
}

impl Actor {
    /// No connection has a reply, an upload, a delta download, output or
    /// a Resume waiting for its probe pending.
    fn is_quiet(&self) -> bool {
        self.peers.values().all(|p| {
            p.parked.is_none()
                && p.jobs.is_empty()
                && p.upload.is_none()
                && p.delta.is_none()
                && p.served.is_empty()
                && p.out.is_empty()
        })
    }

    /// Saves the chunk index if delta downloads added to it.
    fn save_chunk_index(&mut self) {
        if !self.chunks_dirty {
            return;
        }
        if let (Some(index), Some(store)) = (self.chunks.as_ref(), self.store.as_ref()) {
            if let Err(e) = index.save(&store.chunk_index_file()) {
                log::warn!("user {}: saving the chunk index: {e}", self.user);
            }
        }
        self.chunks_dirty = false;
    }

    fn handle(&mut self, msg: ToActor) {
        match msg {
            ToActor::Hello {
                conn,
                peer,
                request_id,
                hello,
                credential,
                limited,
            } => self.on_hello(
                conn,
                peer,
                handshake::HelloRequest {
                    request_id,
                    hello,
                    credential,
                    limited,
                },
            ),
            ToActor::Probed { conn, old, in_use } => self.on_probed(conn, old, in_use),
            ToActor::Request { conn, frame, cost } => {
                let Some(peer) = self.peers.get_mut(&conn) else {
                    return;
                };
                if peer.parked.is_some() {
                    // Pipelined behind a Resume that waits for its probe.
                    peer.deferred.push((frame, cost));
                    return;
                }
                let answerable = !peer.close && peer.client.is_some();
                let held = peer.flow.took(cost, answerable);
                let client = peer.client;
                if answerable {
                    self.on_request(conn, frame, held);
                }
                if let Some(client) = client {
                    self.note_seen(client);
                }
            }
            ToActor::Credit { conn, bytes } => {
                if let Some(peer) = self.peers.get_mut(&conn) {
                    peer.flow.grant(bytes);
                }
            }
            ToActor::Adopt {
                conn,
                peer,
                client,
                visit,
                since,
            } => {
                let mut adopted = Peer::new(peer);
                adopted.client = Some(client);
                adopted.announced = true;
                // An actor restarted while the connection stayed open: it
                // is still a Visit (or the device's live connection) since
                // the same moment.
                adopted.visit = visit;
                adopted.since = since;
                self.peers.insert(conn, adopted);
                if self.store.is_none() && !self.open_store(false) {
                    self.refuse_adopted(conn);
                }
            }
            ToActor::Detach { conn } => {
                if let Some(mut peer) = self.peers.remove(&conn) {
                    peer.abandon_upload();
                    if let Some(client) = peer.client {
                        self.note_seen(client);
                    }
                }
            }
        }
    }

    /// Logs one request outcome for `conn`.
    fn log(&self, conn: ConnRef, request: &str, outcome: Result<&str, &str>) {
        let Some(peer) = self.peers.get(&conn) else {
            return;
        };
        self.ctx.log.record(&ConnEvent {
            peer: peer.addr,
            user: Some(self.user),
            client: peer.client,
            request,
            outcome,
        });
    }

    /// Logs a refused request (`outcome=error` with `text`) and, for
    /// `Storage` or `NoSpace` (the disk is failing or full: the operator
    /// must act), a
    /// stderr warning, at most one a minute per user
    /// ([`crate::server::warnings`]).
    fn refused(&self, conn: ConnRef, request: &str, code: ErrorCode, text: &str) {
        self.log(conn, request, Err(text));
        let now = std::time::Instant::now();
        let storage = matches!(code, ErrorCode::Storage | ErrorCode::NoSpace);
        if storage && self.ctx.storage_warnings.allow(self.user, now) {
            log::warn!(
                "user {}: {request} refused ({code:?}): {text}; further refusals of this user \
                 in the next minute are only in connectionLog.txt",
                self.user
            );
        }
    }

    /// Ends a cycle: the journal first, then the head, then each
    /// connection's output; one wake-up for the reactor.
    fn end_cycle(&mut self) {
        self.end_cycle_once(false);
        // A fetch found the server's copy not as journaled: the
        // file is examined again now, and a change found goes out at once
        // like another device's push (Notify to every connection). So does
        // a file found lost, by that look or by a push's
        // the devices ask which, and one that holds
        // it puts it back, without asking after every pull.
        let changed = self.reexamine_failed_fetches();
        let lost = self.store.as_mut().is_some_and(UserStore::take_lost_news);
        if changed || lost {
            self.end_cycle_once(true);
        }
    }

    /// Logs each fetch that failed because the server's copy is not as
    /// journaled and examines that file again. Returns
    /// whether that journaled a change.
    fn reexamine_failed_fetches(&mut self) -> bool {
        let failed: Vec<(ConnRef, WirePath, StoreError, &'static str)> = self
            .peers
            .iter_mut()
            .flat_map(|(conn, p)| {
                let conn = *conn;
                p.failed_fetches
                    .drain(..)
                    .map(move |(path, e, request)| (conn, path, e, request))
            })
            .collect();
        let Some(head_before) = self.store.as_ref().map(UserStore::head) else {
            return false;
        };
        for (conn, path, e, request) in failed {
            self.refused(conn, request, e.code(), &e.to_string());
            if matches!(e, StoreError::Lost { .. }) {
                continue;
            }
            let Some(store) = self.store.as_mut() else {
                return false;
            };
            let label = store.label();
            match store.reexamine(&path) {
                Ok(Reexamined::Changed(seq)) => log::warn!(
                    "{label}: {path} changed outside the server while it runs (size or mtime \
                     differ from the journal): journaled as change {seq}, made in the server's folder"
                ),
                Ok(Reexamined::Missing) => log::warn!(
                    "{label}: {path} is missing (removed outside the server): not deleted on \
                     the devices, which keep their copies; not served until a device pushes it again"
                ),
                Ok(Reexamined::Damaged) => log::error!(
                    "{label}: {path} is damaged: the journaled size and mtime but other bytes \
                     (a failing disk?): not served, left as it is for inspection; the devices \
                     keep their copies and a new version pushed from one replaces it"
                ),
                Ok(Reexamined::Unchanged) => {
                    log::info!("{label}: {path} examined again: as journaled")
                }
                Ok(Reexamined::NotAFile) => {}
                Err(e) => log::warn!("{label}: cannot examine {path} again: {e}"),
            }
        }
        self.store.as_ref().map(UserStore::head) != Some(head_before)
    }

    /// One end of a cycle (see [`Actor::end_cycle`]); `notify_all`: every
    /// connection is told the new head, as after another device's push.
    fn end_cycle_once(&mut self, notify_all: bool) {
        self.flush_journal();
        if self.store.as_mut().is_some_and(UserStore::take_reap_wanted) {
            self.ctx.reap.request(self.user);
        }
        let head = self.store.as_ref().map(|s| s.head()).unwrap_or(0);
        let tag = self.store.as_ref().map(|s| s.head_tag()).unwrap_or(0);
        let pushers = std::mem::take(&mut self.pushers);
        let mut sent = false;
        // Before any Notify or reply of this cycle: the reactor answers
        // up-to-date pulls itself and must never be behind what a client saw.
        if self.store.is_some() && self.reported_head != Some((head, tag)) {
            self.reported_head = Some((head, tag));
            sent |= self
                .ctx
                .out
                .send(FromActor::Head {
                    user: self.user,
                    head,
                    tag,
                })
                .is_ok();
        }
        for (conn, peer) in self.peers.iter_mut() {
            if let Some(store) = self.store.as_ref() {
                peer.produce(store);
            }
            let others_pushed = notify_all || pushers.iter().any(|p| p != conn);
            if others_pushed && peer.client.is_some() && !peer.close {
                peer.reply(0, Message::Notify { head });
            }
            sent |= send_output(&self.ctx.out, *conn, peer);
        }
        self.peers.retain(|_, p| !p.close);
        if sent {
            if let Err(e) = self.ctx.waker.wake() {
                log::error!("cannot wake the reactor: {e}");
            }
        }
    }

    /// Writes the journal. If that fails, nothing queued this cycle may be
    /// acknowledged: the replies are dropped and those connections closed.
    fn flush_journal(&mut self) {
        let Some(store) = self.store.as_mut() else {
            return;
        };
        if let Err(e) = store.flush() {
            log::error!("user {}: journal flush failed: {e}", self.user);
            // `NoSpace` when the disk is full, else `Storage` (§4.5).
            let code = match e.code() {
                crate::protocol::ErrorCode::NoSpace => crate::protocol::ErrorCode::NoSpace,
                _ => crate::protocol::ErrorCode::Storage,
            };
            for peer in self.peers.values_mut() {
                if !peer.out.is_empty() {
                    peer.out.clear();
                    peer.bulk = 0;
                    peer.fail(0, code, "journal write failed");
                }
            }
        }
    }
}

/// Sends what one connection has this cycle, in the order the reactor relies
/// on: its bytes, then `Ready` (after the Welcome bytes, so the reactor never
/// answers for it ahead of them), then the cost handled, then `Close`.
/// Returns whether anything was sent.
/// The user's chunk index (§13.3), loaded from `store`'s index file at its
/// first use. A free function over the actor's two fields, so callers can
/// keep `store` borrowed beside it.
fn loaded_chunks<'a>(
    slot: &'a mut Option<crate::chunk::index::ChunkIndex>,
    store: &UserStore,
) -> &'a mut crate::chunk::index::ChunkIndex {
    slot.get_or_insert_with(|| crate::chunk::index::ChunkIndex::load(&store.chunk_index_file()))
}

fn send_output(out: &Sender<FromActor>, conn: ConnRef, peer: &mut Peer) -> bool {
    let mut sent = false;
    if !peer.out.is_empty() {
        let bytes = std::mem::take(&mut peer.out);
        let bulk = std::mem::take(&mut peer.bulk);
        sent |= out.send(FromActor::Send { conn, bytes, bulk }).is_ok();
    }
    if let (false, Some(client)) = (peer.announced, peer.client) {
        peer.announced = true;
        sent |= out.send(FromActor::Ready { conn, client }).is_ok();
    }
    if let Some(old) = peer.probe.take() {
        sent |= out.send(FromActor::Probe { conn, old }).is_ok();
    }
    if let Some(cost) = peer.flow.take_released() {
        sent |= out.send(FromActor::Processed { conn, cost }).is_ok();
    }
    if peer.close {
        sent |= out.send(FromActor::Close { conn }).is_ok();
    }
    sent
}
