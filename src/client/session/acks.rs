//! The session's side of push acknowledgements: the index and folder
//! updates are decided by [`crate::client::plan::ack`] and made by
//! [`crate::client::push::apply_ack`]; here the session marks paths to look
//! at again, moves the cursor (forward when its own change is the next one,
//! back when a refused push made it forget a path) and closes the round.

use super::Session;
use crate::chunk::index::ChunkIndex;
use crate::chunk::IdLen;
use crate::client::connection::closes_connection;
use crate::client::error::{ClientError, StoreRefusal};
use crate::client::push::apply_ack;
use crate::client::scanner::Op;
use crate::client::schedule::{DEBOUNCE, PUSH_RETRY};
use crate::protocol::{ErrorCode, ErrorReport, Frame, Message, PushAck, PushStatus};
use std::time::Instant;

/// Whether request `a` was sent before request `b` on one connection. IDs
/// go 1, 2, 3, … and past `u32::MAX` back to 1
/// ([`crate::client::connection::Connection::next_request_id`]), so they
/// compare as TCP sequence numbers do: `b` is later when it is less than
/// 2^31 ahead of `a` (no push waits for 2^31 requests).
pub(super) fn sent_before(a: u32, b: u32) -> bool {
    let ahead = b.wrapping_sub(a);
    ahead != 0 && ahead < 1 << 31
}

/// The push among `inflight` (request IDs) that `frame` proves will never
/// be answered, if any: the server sends every reply of a request before
/// any reply of a later one, so a reply to a request sent after a
/// push that is still in flight means that push's answer was skipped.
/// Frames that are no reply (ID 0: Notify, an Error that answers nothing;
/// a Ping) prove nothing, and neither does a closing Error, which may
/// overtake earlier replies. Returns the oldest such push. The
/// pull's reply is checked the same way, with its request ID as
/// the one push.
pub(super) fn skipped_push(frame: &Frame, inflight: impl Iterator<Item = u32>) -> Option<u32> {
    let id = frame.request_id;
    match &frame.message {
        _ if id == 0 => return None,
        Message::Notify { .. } | Message::Ping => return None,
        Message::Error(report) if closes_connection(report.code) => return None,
        _ => {}
    }
    let mut skipped = inflight.filter(|&push| sent_before(push, id));
    let first = skipped.next()?;
    Some(skipped.fold(first, |a, b| if sent_before(b, a) { b } else { a }))
}

impl Session<'_> {
    /// a reply that overtook a push in flight means the server
    /// will never answer that push (a server that lost it: stall14). The
    /// connection is given up with the reason (logged, and kept for
    /// `cloud-client status`); reconnecting plans every push in flight again.
    ///
    /// # Errors
    /// [`ClientError::ConnectionLost`] naming the push and the reply.
    pub(super) fn check_no_push_skipped(&self, frame: &Frame) -> Result<(), ClientError> {
        let Some(push) = skipped_push(frame, self.push.inflight.keys().copied()) else {
            return Ok(());
        };
        let path = self
            .push
            .inflight
            .get(&push)
            .map_or_else(String::new, |op| op.path().to_string());
        Err(ClientError::ConnectionLost(format!(
            "the server answered request {} ({:?}) but never the push of {path} \
             (request {push}) sent before it; {} push(es) unanswered",
            frame.request_id,
            frame.message.kind(),
            self.push.inflight.len()
        )))
    }

    /// the same for the pull: a reply that overtook the pull's
    /// reply (its last batch not in yet) means the server will never send
    /// the rest. The connection is given up with the reason (logged, and
    /// kept for `cloud-client status`); reconnecting pulls again from the
    /// same cursor (nothing of the unfinished pull was applied).
    ///
    /// # Errors
    /// [`ClientError::ConnectionLost`] naming the pull and the reply.
    pub(super) fn check_no_pull_skipped(&self, frame: &Frame) -> Result<(), ClientError> {
        let awaited = self.pull.job.as_ref().and_then(|j| j.awaiting_reply());
        let Some(pull) = awaited.and_then(|id| skipped_push(frame, std::iter::once(id))) else {
            return Ok(());
        };
        Err(ClientError::ConnectionLost(format!(
            "the server answered request {} ({:?}) but never the pull (request {pull}, from \
             cursor {}) sent before it; pulling again",
            frame.request_id,
            frame.message.kind(),
            self.index.cursor()
        )))
    }

    pub(super) fn on_push_ack(&mut self, id: u32, ack: &PushAck) -> Result<(), ClientError> {
        let Some(op) = self.push.inflight.remove(&id) else {
            return Err(ClientError::Protocol(format!(
                "push ack for unknown request {id}"
            )));
        };
        log::debug!("ack {:?} v{} for {}", ack.status, ack.version, ack.path);
        self.push.unstorable.remove(op.path());
        if self.push.space.succeeded(op.path()) {
            log::info!("{}: the server took it; no longer held back", op.path());
        }
        let cursor = self.index.cursor();
        let me = self.identity.client;
        let effect = apply_ack(&self.root, &mut self.index, &op, ack, (cursor, me));
        if let Some(list) = self.push.lists.remove(&id) {
            // The content is on the server at that path: its list is the
            // base of the path's next delta list (§13.7).
            if matches!(ack.status, PushStatus::Applied | PushStatus::Unchanged)
                && list.id_len == IdLen::Full
            {
                let file = self.state.chunk_index_file();
                let index = self
                    .pull
                    .chunks
                    .get_or_insert_with(|| ChunkIndex::load(&file));
                index.record(&ack.path, &list);
                self.push.chunks_changed = true;
            }
        }
        if let Some(back) = effect.rewind {
            self.rewind_cursor(back);
        }
        if let Some(next) = effect.advance {
            // Nothing else happened on the server in between: our own
            // change is the next one, so the cursor may follow it.
            self.index.set_cursor(next);
        }
        let now = Instant::now();
        for path in effect.dirty {
            self.mark(path, now + DEBOUNCE);
        }
        self.pull.wanted |= effect.pull;
        if let (Op::Upload { .. }, Some(t)) = (&op, self.push.transfer.as_mut()) {
            t.file_done();
        }
        if self.push.inflight.is_empty() {
            self.round_answered();
        }
        Ok(())
    }

    /// An error answering a push: the server stays connected for content
    /// errors (hash or size mismatch, storage, no space), and the path is tried again;
    /// and for `Unstorable` (§4.5), which is permanent: the same push would
    /// fail the same way, so it is not retried (the change stays local until
    /// the user renames or moves it; a later full comparison offers it again).
    pub(super) fn on_push_error(
        &mut self,
        id: u32,
        report: &ErrorReport,
    ) -> Result<(), ClientError> {
        if closes_connection(report.code) {
            return Err(ClientError::ConnectionLost(report.message.clone()));
        }
        self.push.lists.remove(&id);
        if let Some(op) = self.push.inflight.remove(&id) {
            if report.code == ErrorCode::Unstorable {
                self.push.unstorable.insert(op.path().clone());
                log::error!(
                    "the server cannot store {} ({}); it stays on this device only: rename or move it",
                    op.path(),
                    report.message
                );
                if self.push.inflight.is_empty() {
                    self.round_answered();
                }
                return Ok(());
            }
            if let Some(refusal) = StoreRefusal::of(report.code) {
                // the server's disk is full (NoSpace) or it failed
                // otherwise (Storage): this path waits a growing delay; the
                // other changes go on. Told as what it is.
                let now = Instant::now();
                let why = refusal.why(op.path(), &report.message);
                if let Some(wait) = self.push.space.failed(op.path(), &why, now) {
                    log::warn!(
                        "{}: {why}; holding it back, next try in {} s",
                        op.path(),
                        wait.as_secs()
                    );
                    self.publisher.last_error = Some(format!(
                        "{}: {why}; next try in {} s",
                        op.path(),
                        wait.as_secs()
                    ));
                }
                if self.push.inflight.is_empty() {
                    self.round_answered();
                }
                return Ok(());
            }
            if report.code == ErrorCode::HashMismatch && matches!(op, Op::Upload { .. }) {
                self.push.delta.after_hash_mismatch();
            }
            if matches!(op, Op::Stream { .. }) {
                // A one-read upload this client abandoned.
                log::info!(
                    "{} changed while it was being sent; sending it again",
                    op.path()
                );
                self.push.retry.add(op.path().clone());
                self.timers.retry_at(Instant::now() + PUSH_RETRY);
                if self.push.inflight.is_empty() {
                    self.round_answered();
                }
                return Ok(());
            }
            log::warn!(
                "server refused {} ({:?}: {}); will retry",
                op.path(),
                report.code,
                report.message
            );
            self.push.retry.add(op.path().clone());
            self.timers.retry_at(Instant::now() + PUSH_RETRY);
        }
        if self.push.inflight.is_empty() {
            self.round_answered();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ErrorCode;
    use rand::{rngs::StdRng, Rng as _, SeedableRng};

    fn frame(id: u32, message: Message) -> Frame {
        Frame::new(id, message)
    }

    fn ack_of(id: u32) -> Frame {
        frame(id, Message::Pong)
    }

    /// IDs compare in sending order across the wrap past `u32::MAX` to 1.
    #[test]
    fn request_ids_compare_in_sending_order_across_the_wrap() {
        assert!(sent_before(1, 2));
        assert!(!sent_before(2, 1));
        assert!(!sent_before(7, 7));
        assert!(sent_before(u32::MAX, 1), "1 follows u32::MAX");
        assert!(!sent_before(1, u32::MAX));
        assert!(sent_before(u32::MAX - 3, 2));
    }

    /// Every combination of a window of pushes in flight and the ID of a
    /// reply, the window placed anywhere (across the wrap too): the reply
    /// proves a skip exactly when some push was sent before its request,
    /// and the one named is the oldest of those.
    #[test]
    fn a_reply_proves_a_skip_exactly_when_it_overtook_a_push() {
        let mut rng = StdRng::seed_from_u64(0x9e37_79b9_7f4a_7c15);
        let mut next = || rng.random::<u64>();
        // Sending positions 0..40 mapped to IDs from `start`, skipping 0.
        let id_at = |start: u32, pos: u32| {
            let id = start.wrapping_add(pos);
            if id >= start || start == 0 {
                id
            } else {
                id.wrapping_add(1)
            }
        };
        for _ in 0..2_000 {
            let start = match next() % 3 {
                0 => 1,
                1 => u32::MAX - (next() % 40) as u32,
                _ => next() as u32 | 1,
            };
            let inflight: Vec<u32> = (0..40u32).filter(|_| next() % 4 == 0).collect();
            let reply = (next() % 40) as u32;
            let ids: Vec<u32> = inflight.iter().map(|&p| id_at(start, p)).collect();
            let got = skipped_push(&ack_of(id_at(start, reply)), ids.iter().copied());
            let want = inflight
                .iter()
                .filter(|&&p| p < reply)
                .min()
                .map(|&p| id_at(start, p));
            assert_eq!(
                got, want,
                "start {start}, in flight {inflight:?}, reply {reply}"
            );
        }
    }

    /// Frames that answer nothing, and a closing Error (which may overtake
    /// earlier replies, R-3.4.9), prove nothing; the push's own answer and
    /// a non-closing Error of a later request do.
    #[test]
    fn only_a_reply_to_a_later_request_proves_a_skip() {
        let inflight = [5u32, 9];
        let error = |code| {
            Message::Error(ErrorReport {
                code,
                message: String::new(),
            })
        };
        let cases = [
            (frame(0, Message::Notify { head: 3 }), None),
            (frame(0, error(ErrorCode::Busy)), None),
            (frame(12, Message::Ping), None),
            (frame(12, error(ErrorCode::ShuttingDown)), None),
            (frame(5, Message::Pong), None),
            (frame(4, Message::Pong), None),
            (frame(7, Message::Pong), Some(5)),
            (frame(12, error(ErrorCode::HashMismatch)), Some(5)),
        ];
        for (f, want) in cases {
            assert_eq!(
                skipped_push(&f, inflight.iter().copied()),
                want,
                "{:?}",
                f.message
            );
        }
    }
}
