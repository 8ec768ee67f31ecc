//! The reactor's outbound half: what actors send back (bytes, readiness,
//! released cost, retirement), writing to sockets with credit returned to
//! the actor, and closing connections.

use super::{Reactor, CLOSE_GRACE};
use crate::protocol::{ErrorCode, UserId};
use crate::server::bus::{ConnRef, FromActor, ToActor};
use crate::server::connection::Phase;
use std::time::Instant;

impl Reactor {
    pub(super) fn drain_inbox(&mut self) {
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
                    let Some(key) = self.live(conn) else {
                        continue;
                    };
                    if let Some(c) = self.conns.get_mut(key) {
                        if let Phase::Joining { user } = c.phase {
                            c.phase = Phase::Ready { user, client };
                            // Reading paused while the Hello was decided.
                            self.resume.push(key);
                            self.registry.set_client(user, conn, client);
                            if self.revoked.contains(&(user, client)) {
                                self.close_revoked_or_lifted(key);
                            }
                        }
                    }
                }
                FromActor::Revoked { user, client } => {
                    self.revoked.insert((user, client));
                    let keys: Vec<usize> = self
                        .conns
                        .iter()
                        .filter(|(_, c)| {
                            matches!(c.phase, Phase::Ready { user: u, client: d } if u == user && d == client)
                        })
                        .map(|(k, _)| k)
                        .collect();
                    for key in keys {
                        self.close_revoked(key);
                    }
                }
                FromActor::Reinstated { user, client } => {
                    self.revoked.remove(&(user, client));
                }
                FromActor::Away { user, away } => self.on_away(user, away),
                FromActor::Probe { conn, old } => self.hold_for_probe(conn, old),
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
                            c.flow.release(cost);
                        }
                        self.resume.push(key);
                    }
                }
                FromActor::WantsRetire { user, received } => {
                    self.registry.offer_retire(user, received)
                }
                FromActor::Head { user, head, tag } => self.registry.set_head(user, head, tag),
                FromActor::Exited { user } => {
                    if self.registry.exited(user) {
                        self.close_user(user);
                    }
                    self.trim.actor_exited();
                }
            }
        }
    }

    /// A connection just made Ready whose device the watcher's last listing
    /// still shows revoked. The actor's handshake read the revocation on
    /// disk after that listing (R-4.6.5 refuses a revoked Resume there), so
    /// either the revocation was lifted since (`cloud-server reinstate`; the
    /// watcher reports it within [`POLL_EVERY`]) or the device was revoked
    /// again after the handshake's look. The reactor cannot tell the two
    /// apart without the disk, so it closes with the retryable `Busy`
    /// (request ID 0, PROTOCOL.md §4.5): the client reconnects, and the
    /// next handshake reads the disk again and answers `Revoked` only if
    /// the device is still revoked. Closing with `Revoked` here told a
    /// reinstated device's client it was revoked for good (outside
    /// tester's finding, a client restarted right after `reinstate`).
    ///
    /// [`POLL_EVERY`]: crate::server::revocations::POLL_EVERY
    fn close_revoked_or_lifted(&mut self, key: usize) {
        let text = "this device's revocation is changing; reconnect";
        self.record(key, "revoke", Err(text));
        self.fail(key, 0, ErrorCode::Busy, text);
    }

    /// Closes a Ready connection of a revoked device with Error `Revoked`
    /// (request ID 0, PROTOCOL.md §4.6) and logs it.
    fn close_revoked(&mut self, key: usize) {
        let text = "this device was revoked by the operator";
        self.record(key, "revoke", Err(text));
        self.fail(key, 0, ErrorCode::Revoked, text);
    }

    /// The moves watcher saw `user`'s marker change (§16.3). A user now
    /// away has its connections closed with the marker's Error and its
    /// actor retired, so its state is closed and its owner lock freed for
    /// the export; its later handshakes are refused in [`Self::on_hello`].
    fn on_away(&mut self, user: UserId, away: Option<crate::server::moves::Away>) {
        let Some(away) = away else {
            self.away.remove(&user);
            log::info!("user {user} is served here again");
            return;
        };
        self.away.insert(user, away);
        let keys: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| c.attached == Some(user))
            .map(|(k, _)| k)
            .collect();
        log::info!(
            "user {user}: {} ({} connections closed)",
            away.text(),
            keys.len()
        );
        for key in keys {
            self.record(key, "move", Err(away.text()));
            self.fail(key, 0, away.code(), away.text());
        }
        self.registry.retire(user);
    }

    /// An actor died unexpectedly: its connections cannot continue.
    pub(super) fn close_user(&mut self, user: UserId) {
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
    pub(super) fn flush(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let paused = conn.read_paused();
        if conn.flush(&mut self.seal_buf).is_err() {
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

    pub(super) fn resume_paused(&mut self) {
        let keys = std::mem::take(&mut self.resume);
        for key in keys {
            if self.conns.get(key).is_some_and(|c| !c.read_paused()) {
                self.on_readable(key, false);
            }
        }
    }

    /// Stops reading, tells the actor, and closes once the queue is written.
    pub(super) fn begin_close(&mut self, key: usize) {
        self.identified(key);
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

    pub(super) fn detach(&mut self, key: usize) {
        let Some(conn_ref) = self.conn_ref(key) else {
            return;
        };
        let Some(user) = self.conns.get_mut(key).and_then(|c| c.attached.take()) else {
            return;
        };
        let _ = self.registry.send(user, ToActor::Detach { conn: conn_ref });
        self.registry.detach(user, conn_ref);
    }

    pub(super) fn close_now(&mut self, key: usize) {
        self.identified(key);
        self.detach(key);
        if self.conns.contains(key) {
            let mut conn = self.conns.remove(key);
            conn.transport.close_notify();
            if let Some(socket) = conn.transport.socket_mut() {
                let _ = self.poll.registry().deregister(socket);
            }
        }
    }
}
