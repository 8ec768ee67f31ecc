//! The session's side of push acknowledgements: the index and folder
//! updates are decided by [`crate::client::plan::ack`] and made by
//! [`crate::client::push::apply_ack`]; here the session marks paths to look
//! at again, moves the cursor (forward when its own change is the next one,
//! back when a refused push made it forget a path) and closes the round.

use super::Session;
use crate::chunk::index::ChunkIndex;
use crate::chunk::IdLen;
use crate::client::connection::closes_connection;
use crate::client::error::ClientError;
use crate::client::push::apply_ack;
use crate::client::scanner::Op;
use crate::client::schedule::{DEBOUNCE, PUSH_RETRY};
use crate::protocol::{ErrorCode, ErrorReport, PushAck, PushStatus};
use std::time::Instant;

impl Session<'_> {
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
            self.round_done();
        }
        Ok(())
    }

    /// An error answering a push: the server stays connected for content
    /// errors (hash or size mismatch, storage), and the path is tried again;
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
                    self.round_done();
                }
                return Ok(());
            }
            if report.code == ErrorCode::Storage {
                // the server's disk is full (or failing): this path
                // waits a growing delay; the other changes go on.
                let now = Instant::now();
                let wait = self.push.space.failed(op.path(), &report.message, now);
                log::warn!(
                    "the server could not store {} ({}); holding it back, next try in {} s",
                    op.path(),
                    report.message,
                    wait.as_secs()
                );
                self.publisher.last_error = Some(format!(
                    "the server could not store {}: {}; next try in {} s",
                    op.path(),
                    report.message,
                    wait.as_secs()
                ));
                if self.push.inflight.is_empty() {
                    self.round_done();
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
                    self.round_done();
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
            self.round_done();
        }
        Ok(())
    }
}
