//! A delta upload's chunk list sent relative to the base version's list
//! (protocol version 5, PROTOCOL.md §13.7): expanded against the list the
//! user's chunk index holds for the path, then received exactly as a
//! `ShortChunkList`; a base the index does not hold is answered
//! `ListBaseUnknown`, and the client sends the whole list.

use super::delta::{DeltaUpload, Stage};
use super::Actor;
use crate::chunk::IdLen;
use crate::protocol::list_delta::expand;
use crate::protocol::{ChunkListDelta, ErrorCode, Message};
use crate::server::bus::ConnRef;

impl Actor {
    /// A `ChunkListDelta` (R): legal once per upload, as its first list
    /// frame; anything else is BadFrame and close.
    pub(super) fn delta_list_delta(&mut self, conn: ConnRef, rid: u32, delta: &ChunkListDelta) {
        let open = match self.peers.get(&conn).and_then(|p| p.delta.as_ref()) {
            Some(DeltaUpload {
                stage: Stage::Listing(receiver),
                header,
                delta_tried: false,
                ..
            }) if receiver.received() == 0 => Ok((header.path.clone(), header.chunk_count)),
            Some(_) => Err("ChunkListDelta after another list frame of the upload"),
            None => Err("ChunkListDelta outside a chunk list"),
        };
        let (path, announced) = match open {
            Ok(open) => open,
            Err(text) => return self.refuse_delta(conn, rid, ErrorCode::BadFrame, text),
        };
        if let Some(upload) = self.peers.get_mut(&conn).and_then(|p| p.delta.as_mut()) {
            upload.delta_tried = true;
        }
        self.refresh_chunk_index();
        let base = self
            .chunks
            .as_ref()
            .and_then(|index| index.list_of(&path, delta.base_hash));
        let Some(base) = base else {
            // one defined answer; the upload stays open for the
            // whole list (ChunkList or ShortChunkList frames).
            if let Some(peer) = self.peers.get_mut(&conn) {
                peer.reply(rid, Message::ListBaseUnknown);
            }
            self.log(
                conn,
                "push-file",
                Ok(&format!("{path}: base list unknown, whole list asked")),
            );
            return;
        };
        match expand(&base.chunks, &delta.ops, announced) {
            Ok(list) => self.delta_list(conn, rid, &list, IdLen::Short),
            Err(e) => {
                let text = format!("{path}: {e}");
                self.refuse_delta(conn, rid, ErrorCode::BadFrame, &text)
            }
        }
    }
}
