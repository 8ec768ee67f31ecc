//! One live connection per device (PROTOCOL.md §4.6, R-4.6.13, R-4.6.14).
//!
//! Two clients presenting one device key at once would share one cursor:
//! each would acknowledge changes the other has not applied. So a Resume
//! (Hello or KeyHello) whose key the user's actor verified, of a device
//! that already has a live connection, is *held* (its connection's reading
//! paused) while that old connection is probed with a `Ping` (request ID
//! 0). The actor asks for the probe (`FromActor::Probe`) only after the
//! key matched: a Resume with a wrong key is refused `BadCredential` and
//! never makes the server touch the device's connection, so knowing a
//! device ID is not enough to have its connection pinged (or, on a slow
//! link, closed).
//!
//! ```text
//! old connection, after the probe was sent     the held Resume (ToActor::Probed)
//! ------------------------------------------   ------------------------------------
//! any byte read from it (or reading paused:    in_use: the actor refuses it with
//!   it sends faster than it is served)           Error DeviceInUse (29)
//! closed (FIN, RST, a refusal)                 free: the actor admits it
//! nothing within PROBE_WAIT (3 s) of the probe  old closed with Error Timeout,
//!   or of the last movement of the bytes         logged; then free
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
//! Resumes of one device neither of which finds a live connection are told
//! apart by the user's actor, which sees its own admitted connections
//! (`actor/handshake.rs`).

use super::Reactor;
use crate::protocol::{ErrorCode, Frame, Message, UserId};
use crate::server::bus::{ConnRef, InUse, ToActor};
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

/// A verified Resume waiting for the probe of its device's old connection.
pub(super) struct Held {
    /// The Resume's connection.
    pub conn: ConnRef,
    /// Its user.
    pub user: UserId,
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
    /// The actor verified the Resume on `conn` and names `old`, its
    /// device's live connection: holds the Resume and probes `old`, or
    /// answers at once that the device is free when `old` is no longer a
    /// Ready connection of the same user that is not a Visit.
    pub(super) fn hold_for_probe(&mut self, conn: ConnRef, old: ConnRef) {
        let Some(key) = self.live(conn) else {
            return;
        };
        let Some(Phase::Joining { user }) = self.conns.get(key).map(|c| c.phase) else {
            return;
        };
        let live_old = self.live(old).filter(|k| {
            self.conns.get(*k).is_some_and(|o| {
                matches!(o.phase, Phase::Ready { user: u, .. } if u == user) && !o.visit
            })
        });
        let Some(old_key) = live_old else {
            self.answer_probe(key, user, old, None);
            return;
        };
        let now = Instant::now();
        if let Some(o) = self.conns.get_mut(old_key) {
            if o.probed.is_none() {
                o.probed = Some(now);
                o.queue_frame(&Frame::new(0, Message::Ping));
            }
        }
        self.flush(old_key);
        if let Some(c) = self.conns.get_mut(key) {
            c.phase = Phase::Held { user };
        }
        self.held.push(Held {
            conn,
            user,
            old,
            moved: now,
            unsent: 0,
        });
    }

    /// Decides every held Resume whose probe has an answer (or ran out).
    pub(super) fn settle_held(&mut self, now: Instant) {
        if self.held.is_empty() {
            return;
        }
        let held = std::mem::take(&mut self.held);
        let mut decided = Vec::new();
        for mut h in held {
            let Some(key) = self.live(h.conn) else {
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
            self.release(key, h, in_use);
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
        let Some(c) = self.live(h.old).and_then(|k| self.conns.get(k)) else {
            return OldState::Gone;
        };
        match (c.phase, c.probed) {
            (Phase::Ready { user: u, .. }, Some(probed)) if u == h.user => OldState::Open {
                probed,
                last_read: c.last_read,
                paused: c.flow.read_paused() || !c.stash.is_empty(),
                moved: h.moved,
            },
            _ => OldState::Gone,
        }
    }

    /// Lets a held Resume's connection read on and tells its actor what
    /// the probe found.
    fn release(&mut self, key: usize, h: Held, in_use: Option<InUse>) {
        if let Some(c) = self.conns.get_mut(key) {
            if let Phase::Held { user } = c.phase {
                c.phase = Phase::Joining { user };
            }
        }
        self.answer_probe(key, h.user, h.old, in_use);
        self.resume.push(key);
    }

    /// Sends [`ToActor::Probed`] for the Resume on `key`.
    fn answer_probe(&mut self, key: usize, user: UserId, old: ConnRef, in_use: Option<InUse>) {
        let Some(c) = self.conns.get(key) else {
            return;
        };
        let conn = ConnRef {
            key,
            generation: c.generation,
        };
        self.route(key, 0, user, ToActor::Probed { conn, old, in_use });
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
