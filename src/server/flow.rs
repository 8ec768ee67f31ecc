//! Flow control, in one place (as h2 keeps its windows in one file): what a
//! connection may have pending in each direction, and the one rule for which
//! requests count until they are answered. Nobody else touches these integers.
//!
//! Two windows per connection, one on each thread:
//!
//! ```text
//!            inbound cost (ConnFlow, reactor)              credit (PeerFlow, actor)
//! socket ──▶ charge(cost) ─▶ ToActor::Request ─▶ actor ─▶ spend(bytes) ─▶ FromActor::Send ─▶ socket
//!            release(cost) ◀─ FromActor::Processed ◀─┘     grant(bytes) ◀─ ToActor::Credit ◀─ wrote
//! ```
//!
//! - **Inbound cost** ([`ConnFlow`], reactor): every request is charged its
//!   [`Cost`] when it is routed to the actor and released when the actor
//!   reports it handled ([`FromActor::Processed`](super::bus::FromActor)).
//!   At [`INBOUND_CAP`] the reactor stops reading the socket, so a client can
//!   never queue more work at its actor than that. A Pull or a Fetch stays
//!   charged until its whole reply has been produced ([`cost_of`]), so a
//!   client that asks but never reads is stopped too.
//! - **Outbound queue** ([`ConnFlow`], reactor): at [`OUTBOUND_PAUSE`] bytes
//!   waiting for the socket the reactor stops reading as well.
//! - **Credit** ([`PeerFlow`], actor): the actor produces bulk output
//!   (`ChangeBatch`es, `FileChunk`s) only while it holds credit; the reactor
//!   gives credit back as those bytes reach the socket, in steps of
//!   [`CREDIT_STEP`] ([`ConnFlow::take_credit`]). At most about
//!   [`CREDIT_WINDOW`] bulk bytes of one connection are in memory at once.
//! - **Actor threads**: at most [`MAX_ACTORS`] at once; the registry parks the
//!   messages of further users until one exits.

use crate::protocol::Message;

/// Stop reading a connection while this much inbound cost waits for its actor.
pub const INBOUND_CAP: usize = 4 * 1024 * 1024;
/// What a small request counts against [`INBOUND_CAP`] until its actor handled it.
pub const SMALL_COST: usize = 64;
/// What a Pull or Fetch counts until its reply has been produced: at most
/// `INBOUND_CAP / REPLY_COST` = 64 such replies are pending per connection
/// (which also bounds the files a connection's fetches hold open).
pub const REPLY_COST: usize = 64 * 1024;
/// Stop reading a connection while this many bytes wait to be written to it
/// (a client that sends requests but does not read the replies).
pub const OUTBOUND_PAUSE: usize = 2 * 1024 * 1024;
/// Credit bulk bytes back to the actor in steps of this size.
pub const CREDIT_STEP: usize = 128 * 1024;
/// Bulk bytes a connection may have queued between the actor and its socket:
/// the actor produces more only as the reactor reports bytes written.
pub const CREDIT_WINDOW: i64 = 1024 * 1024;
/// Most actor threads at once. A storm of thousands of users connecting at
/// the same moment queues behind this instead of spawning a thread (with its
/// stack mappings and journal descriptor) per user.
pub const MAX_ACTORS: usize = 256;

/// What one request counts against its connection's inbound window, and
/// when that is given back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cost {
    /// Bytes of [`INBOUND_CAP`] it takes.
    pub bytes: usize,
    /// Held until the request's reply has been produced (Pull, Fetch), not
    /// merely until the actor took the request.
    pub until_answered: bool,
}

/// The one rule: what a request from a client costs. A chunk costs its
/// length (plus [`SMALL_COST`]); a Pull or Fetch [`REPLY_COST`], held until
/// its reply is produced; anything else [`SMALL_COST`].
pub fn cost_of(message: &Message) -> Cost {
    match message {
        Message::FileChunk(data) => Cost {
            bytes: data.len() + SMALL_COST,
            until_answered: false,
        },
        // Delta upload bytes (§13.3): counted like FileChunk data.
        Message::ChunkData(chunk) => Cost {
            bytes: chunk.data.len() + SMALL_COST,
            until_answered: false,
        },
        Message::ChunkList(entries) => Cost {
            bytes: entries.len() * crate::chunk::manifest::ENTRY_WIRE_LEN + SMALL_COST,
            until_answered: false,
        },
        // Held as the 36-byte entries they become in the receiver.
        Message::ShortChunkList(entries) => Cost {
            bytes: entries.len() * crate::chunk::manifest::ENTRY_WIRE_LEN + SMALL_COST,
            until_answered: false,
        },
        // Its operations; the list it expands to is bounded by the base
        // list the actor already holds.
        Message::ChunkListDelta(delta) => Cost {
            bytes: delta.wire_len() + SMALL_COST,
            until_answered: false,
        },
        // A delta download's chunk reply (§13.4): held like a Fetch, plus
        // the runs it holds (up to 1 MiB per frame) until it is produced.
        Message::FetchChunks(ask) => Cost {
            bytes: REPLY_COST + ask.ranges.len() * 8,
            until_answered: true,
        },
        // Its paths (up to 1 MiB) are held until the actor recorded them.
        Message::PartialAck(ack) => Cost {
            bytes: ack.encoded_len() + SMALL_COST,
            until_answered: false,
        },
        // A VersionList page is up to half a MiB: held like a Pull's reply.
        Message::Pull { .. }
        | Message::PullModes { .. }
        | Message::PullChecked(_)
        | Message::ListLost
        | Message::Fetch(_)
        | Message::FetchManifest(_)
        | Message::FetchShortManifest(_)
        | Message::FetchManifestSince(_)
        | Message::ListVersions(_) => Cost {
            bytes: REPLY_COST,
            until_answered: true,
        },
        _ => Cost {
            bytes: SMALL_COST,
            until_answered: false,
        },
    }
}

/// The reactor's side of one connection: inbound cost charged and not yet
/// released, bytes queued for the socket, bulk bytes written and not yet
/// credited back to the actor.
#[derive(Debug, Default)]
pub struct ConnFlow {
    inbound: usize,
    queued: usize,
    bulk_written: usize,
}

impl ConnFlow {
    /// A request was routed to the actor.
    pub fn charge(&mut self, cost: Cost) {
        self.inbound += cost.bytes;
    }

    /// The actor reports `bytes` of cost handled.
    pub fn release(&mut self, bytes: usize) {
        self.inbound = self.inbound.saturating_sub(bytes);
    }

    /// Nothing of this connection is pending at the actor: every earlier
    /// request has been answered, so an answer given now keeps request order.
    pub fn settled(&self) -> bool {
        self.inbound == 0
    }

    /// `n` bytes were queued for the socket.
    pub fn queued(&mut self, n: usize) {
        self.queued += n;
    }

    /// `n` queued bytes reached the socket.
    pub fn wrote(&mut self, n: usize) {
        self.queued = self.queued.saturating_sub(n);
    }

    /// A queued buffer holding `bulk` bulk bytes has been written whole.
    pub fn wrote_bulk(&mut self, bulk: usize) {
        self.bulk_written += bulk;
    }

    /// Whether reading must pause: too much work waits at the actor, or too
    /// many bytes wait for the socket.
    pub fn read_paused(&self) -> bool {
        self.inbound >= INBOUND_CAP || self.queued >= OUTBOUND_PAUSE
    }

    /// Bulk bytes to credit back to the actor: when a [`CREDIT_STEP`] has
    /// accumulated, or when the queue ran dry (`queue_empty`).
    pub fn take_credit(&mut self, queue_empty: bool) -> Option<usize> {
        if self.bulk_written >= CREDIT_STEP || (self.bulk_written > 0 && queue_empty) {
            Some(std::mem::take(&mut self.bulk_written))
        } else {
            None
        }
    }
}

/// The actor's side of one connection: the credit left for bulk output and
/// the inbound cost handled since it was last reported.
#[derive(Debug)]
pub struct PeerFlow {
    credit: i64,
    released: usize,
}

impl Default for PeerFlow {
    fn default() -> Self {
        PeerFlow {
            credit: CREDIT_WINDOW,
            released: 0,
        }
    }
}

impl PeerFlow {
    /// A request arrived. `answerable` is false when it will not be answered
    /// (the connection is closing or not yet accepted). Returns the cost the
    /// reply must release when it is done (0: released now).
    pub fn took(&mut self, cost: Cost, answerable: bool) -> usize {
        if answerable && cost.until_answered {
            cost.bytes
        } else {
            self.released += cost.bytes;
            0
        }
    }

    /// A reply holding `bytes` of cost is complete.
    pub fn answered(&mut self, bytes: usize) {
        self.released += bytes;
    }

    /// Cost handled since the last report, to send as `Processed`.
    pub fn take_released(&mut self) -> Option<usize> {
        (self.released > 0).then(|| std::mem::take(&mut self.released))
    }

    /// Whether bulk output may be produced now.
    pub fn may_produce(&self) -> bool {
        self.credit > 0
    }

    /// `bytes` of bulk output were produced (the last step may overdraw).
    pub fn spend(&mut self, bytes: usize) {
        self.credit -= bytes as i64;
    }

    /// The reactor wrote `bytes` of this connection's bulk output.
    pub fn grant(&mut self, bytes: usize) {
        self.credit += bytes as i64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Fetch, WirePath};

    #[test]
    fn the_cost_rule() {
        let path = WirePath::new("a").unwrap();
        let fetch = Message::Fetch(Fetch {
            version: 1,
            path: path.clone(),
        });
        let table: Vec<(Message, usize, bool)> = vec![
            (Message::Pull { cursor: 3 }, REPLY_COST, true),
            (fetch, REPLY_COST, true),
            (Message::FileChunk(vec![0; 1000]), 1000 + SMALL_COST, false),
            (Message::FileEnd, SMALL_COST, false),
            (Message::Ack { cursor: 1 }, SMALL_COST, false),
            (Message::Ping, SMALL_COST, false),
            (Message::MakeDir { path }, SMALL_COST, false),
        ];
        for (message, bytes, until_answered) in table {
            let kind = message.kind();
            assert_eq!(
                cost_of(&message),
                Cost {
                    bytes,
                    until_answered
                },
                "{kind:?}"
            );
        }
    }

    #[test]
    fn reading_pauses_at_either_limit_and_resumes_on_release() {
        let mut flow = ConnFlow::default();
        assert!(flow.settled() && !flow.read_paused());
        let pull = cost_of(&Message::Pull { cursor: 0 });
        for _ in 0..INBOUND_CAP / REPLY_COST {
            assert!(!flow.read_paused());
            flow.charge(pull);
        }
        assert!(flow.read_paused());
        flow.release(REPLY_COST);
        assert!(!flow.read_paused() && !flow.settled());
        flow.release(usize::MAX);
        assert!(flow.settled());
        flow.queued(OUTBOUND_PAUSE);
        assert!(flow.read_paused());
        flow.wrote(1);
        assert!(!flow.read_paused());
    }

    #[test]
    fn credit_returns_in_steps_or_when_the_queue_runs_dry() {
        let mut flow = ConnFlow::default();
        assert_eq!(flow.take_credit(true), None);
        flow.wrote_bulk(1000);
        assert_eq!(flow.take_credit(false), None);
        assert_eq!(flow.take_credit(true), Some(1000));
        flow.wrote_bulk(CREDIT_STEP);
        assert_eq!(flow.take_credit(false), Some(CREDIT_STEP));
        assert_eq!(flow.take_credit(true), None);
    }

    #[test]
    fn the_actor_produces_within_its_credit_and_reports_released_cost() {
        let mut peer = PeerFlow::default();
        assert!(peer.may_produce());
        peer.spend(CREDIT_WINDOW as usize + 10);
        assert!(!peer.may_produce());
        peer.grant(10);
        assert!(!peer.may_produce());
        peer.grant(1);
        assert!(peer.may_produce());

        let pull = cost_of(&Message::Pull { cursor: 0 });
        assert_eq!(peer.took(pull, true), REPLY_COST);
        assert_eq!(peer.take_released(), None);
        assert_eq!(peer.took(pull, false), 0);
        assert_eq!(peer.took(cost_of(&Message::Ping), true), 0);
        assert_eq!(peer.take_released(), Some(REPLY_COST + SMALL_COST));
        peer.answered(REPLY_COST);
        assert_eq!(peer.take_released(), Some(REPLY_COST));
        assert_eq!(peer.take_released(), None);
    }
}
