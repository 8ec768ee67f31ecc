//! An upload whose whole-file hash follows its bytes (protocol version 6,
//! PROTOCOL.md §13.8): `StreamBegin` opens it like `FileBegin`, its
//! `FileChunk`s go through the same [`crate::server::store::Upload`] (one
//! pass over the bytes as they arrive: the whole file's BLAKE3, and the
//! chunk list cut and hashed from them, R-13.8.5), and `StreamEnd` closes
//! it with the hash, checked as `FileEnd` checks `FileBegin`'s,
//! the list recorded in the chunk index with the commit, or abandons it
//!

use super::peer::OpenUpload;
use super::Actor;
use crate::chunk::Manifest;
use crate::protocol::{ClientId, ErrorCode, PushAck, PushStatus, StreamBegin, StreamEnd};
use crate::server::bus::ConnRef;

/// The text of the Error that answers an abandoned upload.
pub const ABANDONED: &str = "upload abandoned by the client: its file changed while it was read";

impl Actor {
    /// `StreamBegin` (R): an upload is open until its `StreamEnd` (R).
    pub(super) fn begin_stream(&mut self, conn: ConnRef, rid: u32, begin: StreamBegin) {
        let Some(store) = self.store.as_ref() else {
            return;
        };
        let upload = store.begin_stream(begin);
        if let Some(peer) = self.peers.get_mut(&conn) {
            peer.upload = Some(OpenUpload {
                request_id: rid,
                upload,
            });
        }
    }

    /// An upload end of the wrong form: `FileEnd` for a `StreamBegin`
    /// upload or `StreamEnd` for a `FileBegin` one: WrongPhase
    /// and close; the upload (its temp file) goes.
    pub(super) fn wrong_end(&mut self, conn: ConnRef, rid: u32) {
        let text = match self.peers.get_mut(&conn).and_then(|p| p.upload.take()) {
            Some(open) if open.upload.is_stream() => "FileEnd closing a StreamBegin upload",
            _ => "StreamEnd closing a FileBegin upload",
        };
        self.log(conn, "push-file", Err(text));
        self.fail(conn, rid, ErrorCode::WrongPhase, text);
    }

    /// `StreamEnd` (R): the hash checked and the push applied, or nothing
    /// stored (a mismatch, an abandoned upload); the connection stays open.
    pub(super) fn end_stream(&mut self, conn: ConnRef, client: ClientId, end: StreamEnd) {
        let Some(peer) = self.peers.get_mut(&conn) else {
            return;
        };
        let Some(OpenUpload { request_id, upload }) = peer.upload.take() else {
            // `admit` (legality::judge) lets a StreamEnd through only while
            // an upload is open.
            return;
        };
        let (path, base) = (upload.path().clone(), upload.base());
        let hash = match end {
            StreamEnd::Sealed(hash) => hash,
            StreamEnd::Abandoned => {
                // Dropping the upload removes its temp file.
                drop(upload);
                let text = format!("{path}: {ABANDONED}");
                peer.error(request_id, ErrorCode::HashMismatch, &text);
                self.refused(conn, "push-file", ErrorCode::HashMismatch, &text);
                return;
            }
        };
        let (staged, list) = match upload.seal(hash) {
            Ok((staged, list)) => (Ok(staged), list),
            Err(e) => (Err(e), None),
        };
        let how = ", hash after the data";
        let ack = self.commit_upload(conn, client, (request_id, base, &path), staged, how);
        if let (Some(ack), Some(list)) = (ack, list) {
            self.record_streamed_list(&ack, &list);
        }
    }

    /// Records in the chunk index the list a stream upload's bytes were cut
    /// into as they arrived, under the path its push landed at:
    /// it is the list of the content the PushAck names, ready before any
    /// download asks for it, so no download reads and cuts the stored file
    /// for it. A later commit of the path records its own list over it
    /// (the index serves a list only for the hash it was made from). Saved
    /// with the index when the actor is next idle.
    fn record_streamed_list(&mut self, ack: &PushAck, list: &Manifest) {
        if !matches!(
            ack.status,
            PushStatus::Applied | PushStatus::Conflict | PushStatus::Unchanged
        ) {
            return;
        }
        let Some(store) = self.store.as_ref() else {
            return;
        };
        let index = super::loaded_chunks(&mut self.chunks, store);
        index.record(&ack.path, list);
        self.chunks_dirty = true;
    }
}

impl Actor {
    /// Copies into `building` every chunk of its list that the kept bytes
    /// of an interrupted one-read upload of `path` hold at its offset
    /// (re-read and re-hashed against the list: ), then
    /// removes those bytes: what they held is in the build now, which is
    /// itself kept if this upload is cut off too.
    pub(super) fn fill_from_stream_leftovers(
        &mut self,
        path: &crate::protocol::WirePath,
        building: &mut super::delta::Building,
    ) {
        let Some(store) = self.store.as_ref() else {
            return;
        };
        // A one-read upload of the path still being received on another
        // connection is not a leftover.
        let open: Vec<std::path::PathBuf> = self
            .peers
            .values()
            .filter_map(|p| p.upload.as_ref())
            .filter_map(|u| u.upload.temp_path().map(|p| p.to_path_buf()))
            .collect();
        for (at, source) in store.stream_leftovers(path) {
            if open.contains(&at) {
                continue;
            }
            let target = &building.build;
            let mut write = |bytes: &[u8], offsets: &[u64]| -> std::io::Result<()> {
                for &o in offsets {
                    target
                        .write_at(bytes, o)
                        .map_err(|e| std::io::Error::other(e.to_string()))?;
                }
                Ok(())
            };
            let found = crate::chunk::index::fill_from_source(
                &source,
                &building.manifest,
                &mut building.plan,
                &mut write,
            );
            if let Ok(bytes) = found {
                building.reused += bytes;
                log::debug!(
                    "user {}: {bytes} bytes of an interrupted one-read upload of {path} reused",
                    self.user
                );
            }
            let _ = std::fs::remove_file(at);
        }
    }
}
