//! Delta uploads (PROTOCOL.md §12.3) in the user's actor: receive the chunk
//! list, take every chunk the user's files already hold (re-read and
//! re-hashed), ask for the rest, assemble the new version in the temp area,
//! check it whole, and commit it like any upload.
//!
//! Decisions (which chunks, whether bytes are right) are the sans-I/O
//! [`AssemblyPlan`] and [`ManifestReceiver`]; this file only reads and
//! writes. The reactor never sees a byte of it.

use super::Actor;
use crate::chunk::{AssemblyPlan, ChunkEntry, Manifest, ManifestReceiver};
use crate::protocol::{ChunkData, ChunkRanges, ClientId, ErrorCode, FileManifest, Message};
use crate::server::bus::ConnRef;
use crate::server::chunk_index::ChunkIndex;
use crate::server::store::StagedFile;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

/// A delta upload in progress on one connection.
pub struct DeltaUpload {
    /// The `FileManifest`'s request ID; every frame of the upload carries it.
    pub request_id: u32,
    /// What was announced.
    pub header: FileManifest,
    /// Where it is.
    pub stage: Stage,
}

/// The two halves of a delta upload.
pub enum Stage {
    /// `ChunkList` frames still arriving.
    Listing(ManifestReceiver),
    /// The list is in and `ChunksNeeded` was sent: the file is being built.
    Building(Box<Building>),
}

/// A file being built from chunks.
pub struct Building {
    /// The validated list.
    pub manifest: Manifest,
    /// Which chunks are in place.
    pub plan: AssemblyPlan,
    /// The temp file, `size` bytes long, filled chunk by chunk.
    pub file: File,
    /// Its path, removed on every way out but the commit.
    pub temp: PathBuf,
    /// Bytes of chunks taken from the user's own files.
    pub reused: u64,
}

impl Drop for Building {
    fn drop(&mut self) {
        // Committed files were renamed away; anything else is abandoned.
        let _ = std::fs::remove_file(&self.temp);
    }
}

/// The name of the chunk index file in the user's server state folder.
const INDEX_FILE: &str = "chunks";

impl Actor {
    pub(super) fn begin_delta(&mut self, conn: ConnRef, rid: u32, header: FileManifest) {
        match ManifestReceiver::new(header.size, header.hash, header.chunk_count) {
            Ok(receiver) => {
                let upload = DeltaUpload {
                    request_id: rid,
                    header,
                    stage: Stage::Listing(receiver),
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

    pub(super) fn delta_list(&mut self, conn: ConnRef, rid: u32, entries: &[ChunkEntry]) {
        let pushed = match self.peers.get_mut(&conn).and_then(|p| p.delta.as_mut()) {
            Some(DeltaUpload {
                stage: Stage::Listing(receiver),
                ..
            }) => receiver.push(entries),
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
        let Some(store) = self.store.as_mut() else {
            return;
        };
        let temp = store.temp_path();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&temp)
            .and_then(|f| f.set_len(manifest.size).map(|()| f));
        let file = match file {
            Ok(f) => f,
            Err(e) => {
                let _ = std::fs::remove_file(&temp);
                let text = format!("{}: cannot create a temp file: {e}", upload.header.path);
                // The client's ChunkData/FileEnd that follow would find no
                // upload: close, as nothing of them can be used.
                self.log(conn, "push-file", Err(&text));
                self.fail(conn, rid, ErrorCode::Storage, &text);
                return;
            }
        };
        let mut building = Box::new(Building {
            manifest,
            plan,
            file,
            temp,
            reused: 0,
        });
        self.fill_from_own_files(&mut building);
        let ranges = building.plan.missing_ranges();
        let upload = DeltaUpload {
            request_id: rid,
            header: upload.header,
            stage: Stage::Building(building),
        };
        if let Some(peer) = self.peers.get_mut(&conn) {
            for frame in ChunkRanges::split(&ranges) {
                peer.reply(rid, Message::ChunksNeeded(frame));
            }
            peer.delta = Some(upload);
        }
    }

    /// Copies into `building` every chunk some file of the user holds,
    /// re-read and re-hashed (a stale index entry leaves the chunk missing).
    fn fill_from_own_files(&mut self, building: &mut Building) {
        let Some(store) = self.store.as_ref() else {
            return;
        };
        let index_file = self.ctx.paths.user_state(&self.user).join(INDEX_FILE);
        let index = self
            .chunks
            .get_or_insert_with(|| ChunkIndex::load(&index_file));
        let files = store
            .tree()
            .iter()
            .filter_map(|(path, node)| match node.kind {
                crate::server::store::tree::NodeKind::File { hash, .. } => Some((path, hash)),
                _ => None,
            });
        let open = |p: &crate::protocol::WirePath| -> io::Result<File> {
            store
                .open_file(p)
                .map(|(f, ..)| f)
                .map_err(|e| io::Error::other(e.to_string()))
        };
        if index.refresh(files, open) > 0 {
            if let Err(e) = index.save(&index_file) {
                log::warn!("user {}: saving the chunk index: {e}", self.user);
            }
        }
        let mut opened: HashMap<crate::protocol::WirePath, Option<File>> = HashMap::new();
        let wanted: Vec<_> = building.plan.distinct().collect();
        let mut buf = Vec::new();
        for (id, len) in wanted {
            let Some(at) = index.locate(&id) else {
                continue;
            };
            if at.len != len {
                continue;
            }
            let source = opened
                .entry(at.path.clone())
                .or_insert_with(|| store.open_file(&at.path).ok().map(|(f, ..)| f));
            let Some(source) = source.as_ref() else {
                continue;
            };
            buf.resize(len as usize, 0);
            if source.read_exact_at(&mut buf, at.offset).is_err() {
                continue;
            }
            if let Ok(offsets) = building.plan.fill(&id, &buf) {
                let offsets = offsets.to_vec();
                if offsets
                    .iter()
                    .all(|&o| building.file.write_all_at(&buf, o).is_ok())
                {
                    building.reused += u64::from(len) * offsets.len() as u64;
                }
            }
        }
    }

    pub(super) fn delta_chunk(&mut self, conn: ConnRef, rid: u32, chunk: &ChunkData) {
        let Some(Stage::Building(building)) = self
            .peers
            .get_mut(&conn)
            .and_then(|p| p.delta.as_mut())
            .map(|u| &mut u.stage)
        else {
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
            if let Err(e) = building.file.write_all_at(&chunk.data, o) {
                let text = format!("writing a chunk: {e}");
                if let Some(peer) = self.peers.get_mut(&conn) {
                    peer.delta = None;
                }
                return self.fail(conn, rid, ErrorCode::Storage, &text);
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
        let Stage::Building(building) = upload.stage else {
            let text = format!("{path}: FileEnd before the chunk list was complete");
            return self.refuse_delta(conn, rid, ErrorCode::SizeMismatch, &text);
        };
        let failure = if !building.plan.is_complete() {
            Some((
                ErrorCode::SizeMismatch,
                format!(
                    "{path}: {} bytes of chunks missing",
                    building.plan.missing_bytes()
                ),
            ))
        } else {
            match whole_hash(&building.file) {
                Ok(hash) if hash == upload.header.hash => None,
                Ok(_) => Some((
                    ErrorCode::HashMismatch,
                    format!("{path}: content does not match its hash"),
                )),
                Err(e) => Some((ErrorCode::Storage, format!("reading back {path}: {e}"))),
            }
        };
        let synced = if self.ctx.durable {
            building.file.sync_data()
        } else {
            Ok(())
        };
        let failure = failure.or_else(|| {
            synced
                .err()
                .map(|e| (ErrorCode::Storage, format!("writing {path}: {e}")))
        });
        if let Some((code, text)) = failure {
            if let Some(peer) = self.peers.get_mut(&conn) {
                peer.error(rid, code, &text);
            }
            self.log(conn, "push-file", Err(&text));
            return;
        }
        let Some(store) = self.store.as_mut() else {
            return;
        };
        let staged = StagedFile {
            temp: building.temp.clone(),
            size: building.manifest.size,
            hash: upload.header.hash,
        };
        let before = store.head();
        let result = store.commit_file(upload.header.version, &path, staged, client);
        if let (Ok(ack), Some(index)) = (&result, self.chunks.as_mut()) {
            index.record(&ack.path, &building.manifest);
            let file = self.ctx.paths.user_state(&self.user).join(INDEX_FILE);
            if let Err(e) = index.save(&file) {
                log::warn!("user {}: saving the chunk index: {e}", self.user);
            }
        }
        let what = format!(
            "{path} ({} bytes, {} reused, delta)",
            building.manifest.size, building.reused
        );
        self.finish_push(conn, rid, "push-file", &what, before, result);
    }

    /// Drops the connection's delta upload (its temp file goes with it) and
    /// closes the connection with `code` (§12.3: nothing is stored).
    fn refuse_delta(&mut self, conn: ConnRef, rid: u32, code: ErrorCode, text: &str) {
        if let Some(peer) = self.peers.get_mut(&conn) {
            peer.delta = None;
        }
        self.log(conn, "push-file", Err(text));
        self.fail(conn, rid, code, text);
    }
}

/// BLAKE3 of a whole file, read from the start.
fn whole_hash(file: &File) -> io::Result<crate::protocol::ContentHash> {
    let mut hasher = blake3::Hasher::new();
    let mut reader = BufReader::with_capacity(1 << 20, file);
    std::io::Seek::seek(&mut reader, std::io::SeekFrom::Start(0))?;
    hasher.update_reader(&mut reader)?;
    Ok(crate::protocol::ContentHash(*hasher.finalize().as_bytes()))
}
