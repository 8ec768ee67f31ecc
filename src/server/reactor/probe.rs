//! One live connection per device (PROTOCOL.md §4.6, R-4.6.13, R-4.6.14).
//!
//! Two clients presenting one device key at once would share one cursor:
//! each would acknowledge changes the other has not applied. So a Resume
//! (Hello or KeyHello) of a device that already has a Ready connection is
//! *held* (its connection's reading paused, nothing routed) while that old
//! connection is probed with a `Ping` (request ID 0):
//!
//! ```text
//! old connection, after the probe was sent     the held Resume
//! ------------------------------------------   ------------------------------------
//! any byte read from it (or reading paused:    routed with `in_use`: its actor
//!   it sends faster than it is served)           checks the key, then refuses it
//!                                                with Error DeviceInUse (29)
//! closed (FIN, RST, a refusal)                 routed as usual
//! nothing within PROBE_WAIT (3 s) of the probe  old closed with Error Timeout,
//!   or of the last movement of the bytes         logged; then routed as usual
//!   queued ahead of it
//! ```
//!
//! The probe goes behind whatever the connection has queued (a download:
//! at most the 2 MiB outbound queue, `flow::OUTBOUND_PAUSE`, plus the
//! kernel's send buffer). While those bytes move (written to the socket,
//! or the kernel's unsent count changes) the peer is reading and the Ping
//! is on its way, so the 3 s count from the last movement; a dead peer
//! stops taking bytes once the buffers are full.
//!
//! The decision is [`judge`], a pure function; the reactor only gathers the
//! facts and carries the verdict out. A probe already running on the old
//! connection is shared by every Resume that arrives meanwhile. Two
//! Resumes of one device neither of which finds a Ready connection (both
//! `Joining`) are told apart by the user's actor, which sees its own
//! admitted connections (`actor/handshake.rs`).

use super::Reactor;
use crate::protocol::{ClientId, ErrorCode, Frame, Hello, Message, UserId};
use crate::server::bus::{ConnRef, Credential, InUse};
use crate::server::connection::Phase;
use std::time::{Duration, Instant};

/// How long an old connection has to show it is alive (any byte read)
/// after the probe `Ping` was queued, before it is closed for a new
/// connection of its device. A live client answers within one round trip
/// (R-4.3.1), and a busy one is sending anyway; 3 s covers a round trip of
/// a slow mobile link with room to spare, and with the reactor's 500 ms
/// sweep a cut-off device is back in within 3.5 s of its new Resume
/// (R-4.6.14 promises 5 s).
pub const PROBE_WAIT: Duration = Duration::from_secs(3);

/// A handshake ready to be routed to its user's actor.
pub(super) struct Pending {
    /// The new connection.
    pub conn: ConnRef,
    /// Its Hello's request ID.
    pub rid: u32,
    /// The user.
    pub user: UserId,
    /// The handshake, routed once the probe is decided.
    pub hello: Hello,
    /// The KeyHello's secret and name.
    pub credential: Option<Credential>,
    /// The guess limiter's wait for the address (R-2.2.4).
    pub limited: Option<Duration>,
}

/// A Resume waiting for the probe of its device's old connection.
pub(super) struct Held {
    /// The handshake.
    pub pending: Pending,
    /// The device's Ready connection being probed.
    pub old: ConnRef,
    /// The last time the bytes queued on `old` (the probe among them) were
    /// seen moving; the probe's time at first.
    pub moved: Instant,
    /// The kernel's unsent bytes of `old` when last looked at.
    pub unsent: u32,
}

/// What the reactor knows of the probed connection now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OldState {
    /// Closed, closing, or no longer this device's Ready connection.
    Gone,
    /// Still open: when the probe was sent and when a byte was last read.
    Open {
        /// When the probe `Ping` was queued.
        probed: Instant,
        /// When a byte was last read from it.
        last_read: Instant,
        /// The reactor stopped reading it (its requests wait at the actor,
        /// or its replies wait for it): it is busy, so alive.
        paused: bool,
        /// The last time the bytes queued ahead of (and with) the probe
        /// were seen moving to the peer (at least `probed`).
        moved: Instant,
    },
}

/// What to do with a held Resume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Keep waiting.
    Wait,
    /// The old connection is alive: route the Resume to be refused
    /// DeviceInUse once its key is checked.
    InUse,
    /// The device is free (the old connection went): route as usual.
    Free,
    /// The old connection did not answer in time: close it, then route.
    Silent,
}

/// The rule of R-4.6.14, apart from any socket.
pub fn judge(old: OldState, now: Instant) -> Verdict {
    match old {
        OldState::Gone => Verdict::Free,
        OldState::Open {
            probed,
            last_read,
            paused,
            moved,
        } => {
            if paused || last_read > probed {
                Verdict::InUse
            } else if now.saturating_duration_since(moved.max(probed)) >= PROBE_WAIT {
                Verdict::Silent
            } else {
                Verdict::Wait
            }
        }
    }
}

impl Reactor {
    /// The Ready connection of `client` of `user`, if it has one (a
    /// Visit, R-4.6.15, does not count).
    fn device_conn(&self, user: UserId, client: ClientId) -> Option<ConnRef> {
        self.registry.device_conns(user, client).find(|c| {
            self.live(*c)
                .and_then(|k| self.conns.get(k))
                .is_some_and(|conn| !conn.visit)
        })
    }

    /// Holds a Resume of a device that has a Ready connection and probes
    /// that connection; gives the handshake back (nothing held) when the
    /// device has none.
    pub(super) fn hold_if_in_use(&mut self, key: usize, pending: Pending) -> Option<Pending> {
        let Some(old) = self.device_conn(pending.user, pending.hello.client_id) else {
            return Some(pending);
        };
        let now = Instant::now();
        if let Some(o) = self.conns.get_mut(old.key) {
            if o.probed.is_none() {
                o.probed = Some(now);
                o.queue_frame(&Frame::new(0, Message::Ping));
            }
        }
        self.flush(old.key);
        if let Some(c) = self.conns.get_mut(key) {
            c.phase = Phase::Held { user: pending.user };
        }
        self.held.push(Held {
            pending,
            old,
            moved: now,
            unsent: 0,
        });
        None
    }

    /// Decides every held Resume whose probe has an answer (or ran out).
    pub(super) fn settle_held(&mut self, now: Instant) {
        if self.held.is_empty() {
            return;
        }
        let held = std::mem::take(&mut self.held);
        let mut decided = Vec::new();
        for mut h in held {
            let Some(key) = self.live(h.pending.conn) else {
                decided.push(h.old);
                continue;
            };
            self.note_movement(&mut h, now);
            let state = self.old_state(&h);
            let verdict = judge(state, now);
            if verdict == Verdict::Wait {
                self.held.push(h);
                continue;
            }
            decided.push(h.old);
            let in_use = match verdict {
                Verdict::InUse => self
                    .live(h.old)
                    .and_then(|k| self.conns.get(k))
                    .map(|o| InUse {
                        peer: o.peer,
                        since: o.since,
                    }),
                _ => None,
            };
            if verdict == Verdict::Silent {
                if let Some(old) = self.live(h.old) {
                    let text = "no answer within 3 s to the probe sent when a new \
                                connection of this device arrived (R-4.6.14)";
                    self.record(old, "timeout", Err(text));
                    self.fail(old, 0, ErrorCode::Timeout, text);
                }
            }
            self.release(key, h.pending, in_use);
        }
        // A probe nobody waits for any more is over: the next Resume of
        // that device probes again.
        for old in decided {
            if self.held.iter().any(|h| h.old == old) {
                continue;
            }
            if let Some(c) = self.live(old).and_then(|k| self.conns.get_mut(k)) {
                c.probed = None;
            }
        }
    }

    /// Records whether the bytes queued on the probed connection moved
    /// since the last look: written by the reactor, or taken by the peer
    /// from the kernel's send buffer.
    fn note_movement(&self, h: &mut Held, now: Instant) {
        let Some(c) = self.live(h.old).and_then(|k| self.conns.get(k)) else {
            return;
        };
        if c.last_write > h.moved {
            h.moved = c.last_write;
        }
        let unsent = c.transport.unsent_bytes();
        if unsent != h.unsent {
            if unsent < h.unsent {
                h.moved = now;
            }
            h.unsent = unsent;
        }
    }

    fn old_state(&self, h: &Held) -> OldState {
        let (user, client) = (h.pending.user, h.pending.hello.client_id);
        let Some(c) = self.live(h.old).and_then(|k| self.conns.get(k)) else {
            return OldState::Gone;
        };
        match (c.phase, c.probed) {
            (Phase::Ready { user: u, client: d }, Some(probed)) if u == user && d == client => {
                OldState::Open {
                    probed,
                    last_read: c.last_read,
                    paused: c.flow.read_paused() || !c.stash.is_empty(),
                    moved: h.moved,
                }
            }
            _ => OldState::Gone,
        }
    }

    /// Routes a held Resume to its actor and lets its connection read on.
    fn release(&mut self, key: usize, pending: Pending, in_use: Option<InUse>) {
        if let Some(c) = self.conns.get_mut(key) {
            if let Phase::Held { .. } = c.phase {
                c.phase = Phase::AwaitHello {
                    deadline: Instant::now() + self.config.handshake_timeout,
                };
            }
        }
        self.route_hello(key, pending, in_use);
        self.resume.push(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_rule_table() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let open = |read: u64, paused| OldState::Open {
            probed: ms(1000),
            last_read: ms(read),
            paused,
            moved: ms(1000),
        };
        let draining = |moved: u64| OldState::Open {
            probed: ms(1000),
            last_read: ms(500),
            paused: false,
            moved: ms(moved),
        };
        let cases = [
            (OldState::Gone, 1000, Verdict::Free),
            (OldState::Gone, 9000, Verdict::Free),
            (open(500, false), 1000, Verdict::Wait),
            (open(500, false), 3999, Verdict::Wait),
            (open(500, false), 4000, Verdict::Silent),
            (open(500, false), 60_000, Verdict::Silent),
            (open(1001, false), 1002, Verdict::InUse),
            (open(1001, false), 9000, Verdict::InUse),
            (open(1000, false), 4000, Verdict::Silent),
            (open(500, true), 1000, Verdict::InUse),
            (open(500, true), 9000, Verdict::InUse),
            // A download ahead of the probe still moving: wait 3 s from
            // its last movement.
            (draining(3500), 4000, Verdict::Wait),
            (draining(3500), 6499, Verdict::Wait),
            (draining(3500), 6500, Verdict::Silent),
        ];
        for (state, now, want) in cases {
            assert_eq!(judge(state, ms(now)), want, "{state:?} at {now} ms");
        }
    }

    proptest::proptest! {
        /// Whatever the times: a connection that read after the probe is
        /// never closed, and a silent one is never waited for past PROBE_WAIT.
        #[test]
        fn never_closes_a_live_one_nor_waits_forever(read in 0u64..10_000, now in 0u64..20_000, paused: bool) {
            let t0 = Instant::now();
            let probed = t0 + Duration::from_millis(5_000);
            let state = OldState::Open { probed, last_read: t0 + Duration::from_millis(read), paused, moved: probed };
            let at = t0 + Duration::from_millis(now);
            let v = judge(state, at);
            if read > 5_000 || paused {
                proptest::prop_assert_eq!(v, Verdict::InUse);
            } else if now >= 8_000 {
                proptest::prop_assert_eq!(v, Verdict::Silent);
            } else {
                proptest::prop_assert_eq!(v, Verdict::Wait);
            }
        }
    }
}
