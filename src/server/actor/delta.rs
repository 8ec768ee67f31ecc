//! Delta uploads (PROTOCOL.md §13.3) in the user's actor: receive the chunk
//! list, take every chunk the user's files already hold (re-read and
//! re-hashed), ask for the rest, assemble the new version in the temp area,
//! check it whole (hashed as it is written: no second read), and commit it
//! like any upload.
//!
//! Decisions (which chunks, whether bytes are right) are the sans-I/O
//! [`AssemblyPlan`] and [`ManifestReceiver`]; this file only reads and
//! writes. The reactor never sees a byte of it.

use super::Actor;
use crate::chunk::index::{fill_from_index, fill_in_place};
use crate::chunk::{AssemblyPlan, ChunkEntry, IdLen, Manifest, ManifestReceiver};
use crate::protocol::{ChunkData, ChunkRanges, ClientId, ErrorCode, FileManifest, Message};
use crate::server::bus::ConnRef;
use crate::server::store::delta::DeltaBuild;
use std::fs::File;
use std::io;

/// A delta upload in progress on one connection.
pub struct DeltaUpload {
    /// The `FileManifest`'s request ID; every frame of the upload carries it.
    pub request_id: u32,
    /// What was announced.
    pub header: FileManifest,
    /// Where it is.
    pub stage: Stage,
    /// A `ChunkListDelta` was received for this upload (§13.7: at most
    /// one, as its first list frame).
    pub delta_tried: bool,
}

/// The two halves of a delta upload.
pub enum Stage {
    /// `ChunkList` frames still arriving.
    Listing(ManifestReceiver),
    /// The list is in and `ChunksNeeded` was sent: the file is being built.
    Building(Box<Building>),
    /// Writing the build failed (disk full, I/O error) after `ChunksNeeded`
    /// was sent: the build is gone (a partial build would pin the full
    /// disk), the client's remaining `ChunkData` are dropped unread, and its
    /// `FileEnd` is answered with this error; the connection
    /// stays open.
    Refused {
        /// The error code (`Storage`).
        code: ErrorCode,
        /// The error text (path and OS error).
        text: String,
    },
}

/// A file being built from chunks.
pub struct Building {
    /// The validated list.
    pub manifest: Manifest,
    /// Which chunks are in place.
    pub plan: AssemblyPlan,
    /// The temp file, `size` bytes long, filled chunk by chunk (it
    /// removes itself unless committed).
    pub build: DeltaBuild,
    /// Bytes of chunks taken from the user's own files.
    pub reused: u64,
}

impl Actor {
    pub(super) fn begin_delta(&mut self, conn: ConnRef, rid: u32, header: FileManifest) {
        match ManifestReceiver::new(header.size, header.hash, header.chunk_count) {
            Ok(receiver) => {
                let upload = DeltaUpload {
                    request_id: rid,
                    header,
                    stage: Stage::Listing(receiver),
                    delta_tried: false,
                };
                if let Some(peer) = self.peers.get_mut(&conn) {
                    peer.delta = Some(upload);
                }
                if self.delta_ready_to_build(conn) {
                    self.start_building(conn);
                }
            }
            Err(e) => self.refuse_delta(
                conn,
                rid,
                ErrorCode::BadFrame,
                &format!("{}: {e}", header.path),
            ),
        }
    }

    /// One `ChunkList` ([`IdLen::Full`]) or `ShortChunkList`
    /// ([`IdLen::Short`], §13.6) frame of the open upload's list.
    pub(super) fn delta_list(
        &mut self,
        conn: ConnRef,
        rid: u32,
        entries: &[ChunkEntry],
        id_len: IdLen,
    ) {
        let pushed = match self.peers.get_mut(&conn).and_then(|p| p.delta.as_mut()) {
            Some(DeltaUpload {
                stage: Stage::Listing(receiver),
                ..
            }) => receiver.push_ids(entries, id_len),
            _ => {
                let text = "ChunkList outside a chunk list";
                self.log(conn, "frame", Err(text));
                self.fail(conn, rid, ErrorCode::WrongPhase, text);
                return;
            }
        };
        if let Err(e) = pushed {
            self.refuse_delta(conn, rid, ErrorCode::BadFrame, &e.to_string());
        } else if self.delta_ready_to_build(conn) {
            self.start_building(conn);
        }
    }

    fn delta_ready_to_build(&self, conn: ConnRef) -> bool {
        matches!(
            self.peers.get(&conn).and_then(|p| p.delta.as_ref()),
            Some(DeltaUpload { stage: Stage::Listing(r), .. }) if r.is_complete()
        )
    }

    /// The list is complete: validate it, create the temp file, copy in every
    /// chunk the user's files hold, and answer `ChunksNeeded`.
    fn start_building(&mut self, conn: ConnRef) {
        let Some(upload) = self.peers.get_mut(&conn).and_then(|p| p.delta.take()) else {
            return;
        };
        let rid = upload.request_id;
        let Stage::Listing(receiver) = upload.stage else {
            return;
        };
        let manifest = match receiver.finish() {
            Ok(m) => m,
            Err(e) => {
                let text = format!("{}: {e}", upload.header.path);
                return self.refuse_delta(conn, rid, ErrorCode::BadFrame, &text);
            }
        };
        let plan = match AssemblyPlan::new(&manifest) {
            Ok(plan) => plan,
            Err(e) => return self.refuse_delta(conn, rid, ErrorCode::BadFrame, &e.to_string()),
        };
        let Some(store) = self.store.as_ref() else {
            return;
        };
        // the files the user's other uploads in progress write are
        // theirs (two devices uploading one path at once).
        let live: Vec<&std::path::Path> = self
            .peers
            .values()
            .filter_map(|p| match &p.delta {
                Some(DeltaUpload {
                    stage: Stage::Building(b),
                    ..
                }) => Some(b.build.at()),
                _ => None,
            })
            .collect();
        let begun = store.begin_delta(&upload.header.path, manifest.size, &manifest.hash, &live);
        let build = match begun {
            Ok(build) => build,
            Err(e) => {
                // the Error takes the place of ChunksNeeded, so the
                // client sends no ChunkData or FileEnd for it; the upload
                // is over and the connection stays open (§4.5 Storage).
                let text = format!("{}: {e}", upload.header.path);
                if let Some(peer) = self.peers.get_mut(&conn) {
                    peer.error(rid, e.code(), &text);
                }
                self.refused(conn, "push-file", e.code(), &text);
                return;
            }
        };
        let mut building = Box::new(Building {
            manifest,
            plan,
            build,
            reused: 0,
        });
        self.fill_from_partial(&mut building);
        self.fill_from_stream_leftovers(&upload.header.path, &mut building);
        self.fill_from_own_files(&mut building);
        let ranges = building.plan.missing_ranges();
        let upload = DeltaUpload {
            request_id: rid,
            header: upload.header,
            stage: Stage::Building(building),
            delta_tried: upload.delta_tried,
        };
        if let Some(peer) = self.peers.get_mut(&conn) {
            for frame in ChunkRanges::split(&ranges) {
                peer.reply(rid, Message::ChunksNeeded(frame));
            }
            peer.delta = Some(upload);
        }
    }

    /// Takes every chunk an interrupted upload of the same content left in
    /// the build file (re-read and re-hashed), so a resumed upload sends
    /// only the rest.
    fn fill_from_partial(&mut self, building: &mut Building) {
        if !building.build.resumed() {
            return;
        }
        let target = &building.build;
        let mut write = |bytes: &[u8], offsets: &[u64]| -> io::Result<()> {
            for &o in offsets {
                target
                    .write_at(bytes, o)
                    .map_err(|e| io::Error::other(e.to_string()))?;
            }
            Ok(())
        };
        let found = fill_in_place(
            building.build.file(),
            &building.manifest,
            &mut building.plan,
            &mut write,
        );
        if let Ok(bytes) = found {
            building.reused += bytes;
            log::debug!(
                "user {}: resumed a delta upload with {bytes} bytes",
                self.user
            );
        }
    }

    /// Copies into `building` every chunk some file of the user holds,
    /// re-read and re-hashed (a stale index entry leaves the chunk missing).
    fn fill_from_own_files(&mut self, building: &mut Building) {
        self.refresh_chunk_index();
        let (Some(store), Some(index)) = (self.store.as_ref(), self.chunks.as_ref()) else {
            return;
        };
        let target = &building.build;
        let mut write = |bytes: &[u8], offsets: &[u64]| -> io::Result<()> {
            for &o in offsets {
                target
                    .write_at(bytes, o)
                    .map_err(|e| io::Error::other(e.to_string()))?;
            }
            Ok(())
        };
        let open = |p: &crate::protocol::WirePath| store.open_chunk_source(p).ok();
        // A write that fails leaves wrong bytes where the chunk goes: the
        // whole-file check at FileEnd then refuses the build; nothing is stored.
        if let Ok(reused) = fill_from_index(index, &mut building.plan, open, &mut write) {
            building.reused += reused;
        }
    }

    /// Loads the user's chunk index (once) and brings it up to the files
    /// (re-chunking only files changed since it was saved).
    pub(super) fn refresh_chunk_index(&mut self) {
        let Some(store) = self.store.as_ref() else {
            return;
        };
        let index = super::loaded_chunks(&mut self.chunks, store);
        let open = |p: &crate::protocol::WirePath| -> io::Result<File> {
            store
                .open_chunk_source(p)
                .map_err(|e| io::Error::other(e.to_string()))
        };
        if index.refresh(store.file_hashes(), open) > 0 {
            if let Err(e) = index.save(&store.chunk_index_file()) {
                log::warn!("user {}: saving the chunk index: {e}", self.user);
            }
        }
    }

    pub(super) fn delta_chunk(&mut self, conn: ConnRef, rid: u32, chunk: &ChunkData) {
        let stage = self
            .peers
            .get_mut(&conn)
            .and_then(|p| p.delta.as_mut())
            .map(|u| &mut u.stage);
        if matches!(stage.as_deref(), Some(Stage::Refused { .. })) {
            // the build failed; the rest is dropped until FileEnd.
            return;
        }
        let Some(Stage::Building(building)) = stage else {
            let text = "ChunkData before the chunk list was complete";
            self.log(conn, "frame", Err(text));
            self.fail(conn, rid, ErrorCode::WrongPhase, text);
            return;
        };
        let Some(entry) = building.manifest.chunks.get(chunk.index as usize).copied() else {
            let text = format!("ChunkData index {} is not in the list", chunk.index);
            return self.refuse_delta(conn, rid, ErrorCode::HashMismatch, &text);
        };
        let offsets = match building.plan.fill(&entry.id, &chunk.data) {
            Ok(offsets) => offsets.to_vec(),
            Err(e) => return self.refuse_delta(conn, rid, ErrorCode::HashMismatch, &e.to_string()),
        };
        for o in offsets {
            if let Err(e) = building.build.write_at(&chunk.data, o) {
                // answered at FileEnd (the client is still sending
                // chunks); the build and its bytes go now.
                let (code, text) = (e.code(), e.to_string());
                if let Some(upload) = self.peers.get_mut(&conn).and_then(|p| p.delta.as_mut()) {
                    upload.stage = Stage::Refused { code, text };
                }
                return;
            }
        }
    }

    /// `FileEnd` of a delta upload: every chunk in place and the whole file
    /// hashing right, then the commit of §5.4 and the index updated.
    pub(super) fn end_delta(&mut self, conn: ConnRef, client: ClientId) {
        let Some(upload) = self.peers.get_mut(&conn).and_then(|p| p.delta.take()) else {
            return;
        };
        let rid = upload.request_id;
        let path = upload.header.path.clone();
        let building = match upload.stage {
            Stage::Building(building) => building,
            Stage::Refused { code, text } => return self.delta_error(conn, rid, code, &text),
            Stage::Listing(_) => {
                let text = format!("{path}: FileEnd before the chunk list was complete");
                return self.refuse_delta(conn, rid, ErrorCode::SizeMismatch, &text);
            }
        };
        if !building.plan.is_complete() {
            let text = format!(
                "{path}: {} bytes of chunks missing",
                building.plan.missing_bytes()
            );
            return self.delta_error(conn, rid, ErrorCode::SizeMismatch, &text);
        }
        let Building {
            manifest,
            plan,
            build,
            reused,
        } = *building;
        // With short IDs (§13.6) the index records the whole IDs the plan
        // learnt from the bytes it checked.
        let manifest = match manifest.id_len {
            IdLen::Full => manifest,
            IdLen::Short => plan.full_manifest(&manifest).unwrap_or(manifest),
        };
        // Blocks the whole-file check reads back (0 unless a resumed build
        // held chunks in place or too many blocks were open at once).
        let read_back = build.read_back_bytes();
        let staged = match build.finish(upload.header.hash) {
            Ok(staged) => staged,
            Err(e) => return self.delta_error(conn, rid, e.code(), &e.to_string()),
        };
        let Some(store) = self.store.as_mut() else {
            return;
        };
        let before = store.head();
        let result = store.commit_file(upload.header.version, &path, staged, client);
        if let (Ok(ack), Some(index)) = (&result, self.chunks.as_mut()) {
            index.record(&ack.path, &manifest);
            if let Err(e) = index.save(&store.chunk_index_file()) {
                log::warn!("user {}: saving the chunk index: {e}", self.user);
            }
        }
        let what = format!(
            "{path} ({} bytes, {reused} reused, delta, {read_back} read back for the check)",
            manifest.size
        );
        self.finish_push(conn, rid, "push-file", &what, before, result);
    }

    /// Answers `code` to a delta upload that ended without being stored;
    /// the connection stays open (§13.3).
    fn delta_error(&mut self, conn: ConnRef, rid: u32, code: ErrorCode, text: &str) {
        if let Some(peer) = self.peers.get_mut(&conn) {
            peer.error(rid, code, text);
        }
        self.refused(conn, "push-file", code, text);
    }

    /// Drops the connection's delta upload (its temp file goes with it) and
    /// closes the connection with `code` (§13.3: nothing is stored).
    pub(super) fn refuse_delta(&mut self, conn: ConnRef, rid: u32, code: ErrorCode, text: &str) {
        if let Some(peer) = self.peers.get_mut(&conn) {
            peer.delta = None;
        }
        self.refused(conn, "push-file", code, text);
        self.fail(conn, rid, code, text);
    }
}
