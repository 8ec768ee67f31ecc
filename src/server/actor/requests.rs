//! What the actor does with each request: handshakes, pulls, fetches,
//! acknowledgements, uploads and the other pushes.

use super::peer::{listing_reply, Job, OpenUpload};
use super::Actor;
use crate::chunk::IdLen;
use crate::protocol::{
    ClientId, ErrorCode, FetchManifest, FileBegin, Frame, Message, PullChecked, PushAck,
    PushStatus, WirePath,
};
use crate::server::bus::ConnRef;
use crate::server::legality::{self, Stage, Verdict};
use crate::server::metrics::metrics;
use crate::server::moves::{self, Away};
use crate::server::pull_reply;
use crate::server::restore_backup;
use crate::server::store::{StagedFile, StoreError, UserStore};

impl Actor {
    /// Opens (or, with `create`, creates) the user's state. Returns false when
    /// it is unknown (`self.unknown` is then set) or cannot be opened.
    pub(super) fn open_store(&mut self, create: bool) -> bool {
        if let Err(away) = self.claim(create) {
            self.away = Some(away);
            self.unknown = true;
            return false;
        }
        match UserStore::open(&self.ctx.paths, &self.user, create, self.ctx.durable) {
            Ok((mut store, report)) => {
                store.set_versions_limit(self.ctx.reap.max_bytes);
                if report.recovered || report.dropped_bytes > 0 {
                    log::warn!(
                        "user {}: recovered after an unclean stop: {} records replayed, {} torn bytes dropped, {} changes found on disk",
                        self.user, report.replayed, report.dropped_bytes, report.repaired
                    );
                } else if report.repaired > 0 || report.lost > 0 {
                    log::warn!(
                        "user {}: the folder was changed outside the server while it was stopped: {} changes journaled as made in the server's folder, {} files missing (kept listed, not deleted on the devices)",
                        self.user, report.repaired, report.lost
                    );
                }
                // the cost of the start's comparison, for operators
                // of large folders.
                log::debug!(
                    "user {}: folder compared with the journal in {:.3} s: {} entries, {} bytes hashed",
                    self.user,
                    report.took.as_secs_f64(),
                    report.entries,
                    report.hashed_bytes
                );
                self.store = Some(store);
                true
            }
            Err(StoreError::UnknownUser) => {
                self.unknown = true;
                false
            }
            Err(e) => {
                log::error!("user {}: cannot open state: {e}", self.user);
                false
            }
        }
    }

    /// Takes the user's owner lock before its state is opened (§16.3):
    /// refused while the user has a move marker, or while an export or
    /// import holds the lock. The marker is looked at again once the lock
    /// is held, so an export that began meanwhile is never missed. A user
    /// with no state directory (unknown, not being created) needs no lock.
    fn claim(&mut self, create: bool) -> Result<(), Away> {
        let paths = &self.ctx.paths;
        if let Some(away) = moves::marker(paths, &self.user) {
            return Err(away);
        }
        let state = paths.user_state(&self.user);
        if create {
            if let Err(e) = crate::private_dir::create_all(&state) {
                log::error!("user {}: cannot make its state folder: {e}", self.user);
            }
        } else if !state.is_dir() {
            return Ok(());
        }
        match moves::try_own(paths, &self.user) {
            Ok(Some(lock)) => self.owner = Some(lock),
            Ok(None) => return Err(Away::Moving),
            Err(e) => {
                // UserStore::open reports the folder's trouble itself.
                log::error!("user {}: cannot lock its state: {e}", self.user);
                return Ok(());
            }
        }
        match moves::marker(paths, &self.user) {
            Some(away) => {
                self.owner = None;
                Err(away)
            }
            None => Ok(()),
        }
    }

    /// Closes a connection handed to this actor (its previous actor
    /// retired while it stayed open) when the user's state cannot be
    /// opened: moved away or being exported (the `Away` code and text),
    /// or unreadable (`Storage`). Its requests would otherwise go
    /// unanswered and the client wait for ever; told with an Error that
    /// answers no request (ID 0, R-3.4.3) and closed, it reconnects and
    /// its Hello gets the same answer. Logged to connectionLog.txt
    /// (`request=adopt outcome=error`) and the server log.
    pub(super) fn refuse_adopted(&mut self, conn: ConnRef) {
        let (code, text) = match self.away {
            Some(away) => (away.code(), away.text()),
            None => (ErrorCode::Storage, "cannot open the user's state"),
        };
        log::warn!(
            "user {}: a connection handed to a new worker is closed: {text}",
            self.user
        );
        self.log(conn, "adopt", Err(text));
        self.fail(conn, 0, code, text);
    }

    pub(super) fn fail(&mut self, conn: ConnRef, request_id: u32, code: ErrorCode, text: &str) {
        if let Some(peer) = self.peers.get_mut(&conn) {
            peer.fail(request_id, code, text);
        }
    }

    /// Whether `frame` is legal on `conn` now ([`legality::judge`] with the
    /// connection's upload stage); a refused frame is answered `WrongPhase`
    /// and the connection closes.
    fn admit(&mut self, conn: ConnRef, frame: &Frame) -> bool {
        let Some(peer) = self.peers.get(&conn) else {
            return false;
        };
        let stage = match (&peer.upload, &peer.delta) {
            (Some(upload), _) => Stage::Uploading {
                request_id: upload.request_id,
            },
            (None, Some(delta)) => Stage::DeltaUploading {
                request_id: delta.request_id,
            },
            (None, None) => Stage::NoUpload,
        };
        match legality::judge(stage, frame.message.kind(), frame.request_id) {
            Verdict::Request => true,
            Verdict::Ignore | Verdict::Handshake => false,
            Verdict::Refuse(why) => {
                self.log(conn, "frame", Err(&why.log_text()));
                self.fail(conn, frame.request_id, why.code(), &why.message());
                false
            }
        }
    }

    /// Handles one legal request of a connection whose handshake was
    /// accepted. `cost` is what the reply must release when it is done
    /// (Pull, Fetch: [`crate::server::flow::PeerFlow::took`]).
    pub(super) fn on_request(&mut self, conn: ConnRef, frame: Frame, cost: usize) {
        if !self.admit(conn, &frame) {
            return;
        }
        let (Some(store), Some(peer)) = (self.store.as_mut(), self.peers.get_mut(&conn)) else {
            return;
        };
        let Some(client) = peer.client else {
            return;
        };
        let rid = frame.request_id;
        let push = matches!(
            frame.message,
            Message::FileEnd
                | Message::StreamEnd(_)
                | Message::MakeDir { .. }
                | Message::Delete(_)
                | Message::RemoveDir(_)
                | Message::Rename(_)
                | Message::SetMode(_)
                | Message::Restore(_)
                | Message::RestoreAt(_)
        );
        if push {
            peer.pin_fetches(store);
        }
        match frame.message {
            Message::Pull { cursor } => self.on_pull(conn, rid, cursor, cost, false),
            Message::PullModes { cursor } => self.on_pull(conn, rid, cursor, cost, true),
            Message::PullChecked(ask) => self.on_pull_checked(conn, rid, client, ask, cost),
            Message::ListVersions(request) => {
                let detail = match &request.under {
                    Some(p) => format!("{p} after {}", request.after_seq),
                    None => format!("/ after {}", request.after_seq),
                };
                match store.list_versions(&request) {
                    Ok(list) => {
                        let detail = format!("{detail}: {} entries", list.entries.len());
                        peer.reply(rid, Message::VersionList(list));
                        peer.flow.answered(cost);
                        self.log(conn, "versions", Ok(&detail));
                    }
                    Err(e) => {
                        let text = format!("{detail}: {e}");
                        peer.error(rid, e.code(), &text);
                        peer.flow.answered(cost);
                        self.refused(conn, "versions", e.code(), &text);
                    }
                }
            }
            // the files whose server copy is lost, as journaled.
            Message::ListLost => {
                let list = store.lost_list();
                let detail = format!(
                    "{} file(s){}",
                    list.entries.len(),
                    if list.more { " and more" } else { "" }
                );
                peer.reply(rid, Message::LostList(list));
                peer.flow.answered(cost);
                self.log(conn, "lost", Ok(&detail));
            }
            Message::Ack { cursor } => {
                let result = store.set_cursor(client, cursor);
                match result {
                    Ok(()) => self.log(conn, "ack", Ok(&format!("cursor {cursor}"))),
                    Err(e) => self.log(conn, "ack", Err(&e.to_string())),
                }
            }
            Message::PartialAck(ack) => {
                let detail = format!("cursor {} but {} path(s)", ack.cursor, ack.held.len());
                store.set_partial_cursor(client, ack.cursor, ack.held);
                self.log(conn, "ack", Ok(&detail));
            }
            Message::Fetch(fetch) => {
                let detail = format!("{} v{}", fetch.path, fetch.version);
                peer.jobs.push_back(Job::Fetch {
                    request_id: rid,
                    path: fetch.path,
                    open: None,
                    pinned: None,
                    cost,
                });
                self.log(conn, "fetch", Ok(&detail));
            }
            Message::FileBegin(begin) => self.begin_upload(conn, rid, begin),
            Message::FileChunk(data) => self.upload_chunk(conn, rid, data),
            Message::FileEnd if peer.delta.is_some() => self.end_delta(conn, client),
            Message::FileEnd if peer.upload.as_ref().is_some_and(|u| u.upload.is_stream()) => {
                self.wrong_end(conn, rid)
            }
            Message::FileEnd => self.end_upload(conn, client),
            Message::StreamBegin(begin) => self.begin_stream(conn, rid, begin),
            Message::StreamEnd(_)
                if peer.upload.as_ref().is_some_and(|u| !u.upload.is_stream()) =>
            {
                self.wrong_end(conn, rid)
            }
            Message::StreamEnd(end) => self.end_stream(conn, client, end),
            Message::FileManifest(header) => self.begin_delta(conn, rid, header),
            Message::ChunkList(entries) => self.delta_list(conn, rid, &entries, IdLen::Full),
            Message::ShortChunkList(entries) => {
                let entries: Vec<_> = entries.into_iter().map(|e| e.to_entry()).collect();
                self.delta_list(conn, rid, &entries, IdLen::Short)
            }
            Message::ChunkListDelta(delta) => self.delta_list_delta(conn, rid, &delta),
            Message::ChunkData(chunk) => self.delta_chunk(conn, rid, &chunk),
            Message::FetchManifest(ask) => {
                self.on_fetch_manifest(conn, rid, ask, cost, (IdLen::Full, None))
            }
            Message::FetchShortManifest(ask) => {
                self.on_fetch_manifest(conn, rid, ask, cost, (IdLen::Short, None))
            }
            Message::FetchManifestSince(ask) => {
                let base = Some(ask.base_hash);
                let ask = FetchManifest {
                    version: ask.version,
                    path: ask.path,
                };
                self.on_fetch_manifest(conn, rid, ask, cost, (IdLen::Short, base))
            }
            Message::FetchChunks(ask) => self.on_fetch_chunks(conn, rid, ask, cost),
            // Queued behind the replies of earlier requests (§3.4).
            Message::Ping => peer.reply(rid, Message::Pong),
            Message::Pong => {}
            other => self.on_push(conn, rid, client, other),
        }
    }

    /// A Pull (or with `modes` a PullModes, §15.2): its listing becomes a
    /// job that `Peer::produce` sends as batches within the connection's credit.
    fn on_pull(&mut self, conn: ConnRef, rid: u32, cursor: u64, cost: usize, modes: bool) {
        let (Some(store), Some(peer)) = (self.store.as_ref(), self.peers.get_mut(&conn)) else {
            return;
        };
        let listing = store.changes_since(cursor);
        let detail = pull_reply::log_detail(cursor, listing_reply(&listing, modes));
        peer.jobs.push_back(Job::Listing {
            request_id: rid,
            listing,
            modes,
            pos: 0,
            cost,
        });
        self.log(conn, "pull", Ok(&detail));
    }

    /// A PullChecked (§5.8): the `History` frame, then the listing as
    /// `ModeBatch` frames; a full one when the client saw a history this
    /// journal does not hold, logged once per reply.
    fn on_pull_checked(
        &mut self,
        conn: ConnRef,
        rid: u32,
        client: ClientId,
        ask: PullChecked,
        cost: usize,
    ) {
        let (Some(store), Some(peer)) = (self.store.as_ref(), self.peers.get_mut(&conn)) else {
            return;
        };
        let (history, listing) = store.changes_checked(client, ask);
        let mut detail = pull_reply::log_detail(ask.cursor, listing_reply(&listing, true));
        if history.diverged {
            detail.push_str(&format!(
                ", history diverged (checked {} tag {:016x}; common {})",
                ask.check_seq, ask.check_tag, history.common
            ));
            let now = crate::server::devices::unix_now();
            let by_command = restore_backup::restored_by_command(&self.ctx.paths);
            let advice = restore_backup::restore_advice(
                now,
                by_command.as_ref(),
                &self.ctx.paths.base,
                &self.user,
                |secs| format!("unix time {secs}"),
            );
            log::warn!(
                "user {}: device {client} saw changes this server does not hold \
                 (cursor {}, head {}): was the data directory restored from a backup? \
                 the device reconciles (R-5.8.4). {advice} (R-4.6.17; see `cloud-server \
                 devices DATA_DIR {}`)",
                self.user,
                ask.cursor,
                store.head(),
                self.user
            );
            let found = format!(
                "{now} device {client} had seen changes up to {} that this server does not \
                 hold (its head was {})",
                ask.cursor,
                store.head()
            );
            if let Err(e) = restore_backup::note_restore_found(&self.ctx.paths, &self.user, &found)
            {
                log::error!("user {}: cannot record the restore: {e}", self.user);
            }
        }
        peer.jobs.push_back(Job::Control(
            Frame::new(rid, Message::History(history)).to_bytes(),
        ));
        peer.jobs.push_back(Job::Listing {
            request_id: rid,
            listing,
            modes: true,
            pos: 0,
            cost,
        });
        self.log(conn, "pull", Ok(&detail));
    }

    /// MakeDir, Delete, RemoveDir, Rename, SetMode: applied to the store at once.
    fn on_push(&mut self, conn: ConnRef, rid: u32, client: ClientId, message: Message) {
        let Some(store) = self.store.as_mut() else {
            return;
        };
        let before = store.head();
        let (request, what, result) = match message {
            Message::MakeDir { path } => (
                "push-mkdir",
                path.to_string(),
                store.make_dir(&path, client),
            ),
            Message::Delete(d) => (
                "push-delete",
                d.path.to_string(),
                store.delete_file(d.base_version, &d.path, client),
            ),
            Message::RemoveDir(r) => (
                "push-rmdir",
                r.path.to_string(),
                store.remove_dir(r.cursor, &r.path, client),
            ),
            Message::Rename(r) => (
                "push-rename",
                format!("{} -> {}", r.from, r.to),
                store.rename(r.base_version, &r.from, &r.to, client),
            ),
            Message::SetMode(m) => (
                "push-mode",
                format!("{} {}", m.path, if m.executable { "+x" } else { "-x" }),
                store.set_mode(m.base_version, &m.path, m.executable, client),
            ),
            Message::Restore(r) => (
                "restore",
                format!("{} v{}", r.path, r.seq),
                store.restore(r.seq, &r.path),
            ),
            Message::RestoreAt(r) => (
                "restore",
                format!("{} at {} ms", r.path, r.time_ms),
                store.restore_at(r.time_ms, &r.path),
            ),
            other => {
                // legality::judge lets no other kind through.
                let text = format!("{:?} is not a request", other.kind());
                self.log(conn, "frame", Err(&text));
                self.fail(conn, rid, ErrorCode::WrongPhase, &text);
                return;
            }
        };
        self.finish_push(conn, rid, request, &what, before, result);
    }

    /// Replies to a push and logs it. `before` is the head before the push:
    /// whenever the push changed the tree (whatever its status, e.g. a
    /// RemoveDir that removed part of a directory and is Stale), the user's
    /// other connections get a Notify (§4.4).
    pub(super) fn finish_push(
        &mut self,
        conn: ConnRef,
        rid: u32,
        request: &str,
        what: &str,
        before: u64,
        result: Result<PushAck, StoreError>,
    ) {
        if self.store.as_ref().is_some_and(|s| s.head() > before) {
            self.pushers.insert(conn);
        }
        match result {
            Ok(ack) => {
                match ack.status {
                    PushStatus::Applied => {
                        metrics().pushes_applied.inc();
                    }
                    PushStatus::Conflict => {
                        metrics().conflicts.inc();
                    }
                    PushStatus::Stale | PushStatus::Unchanged => {}
                }
                let detail = format!("{what}: {:?} v{} at {}", ack.status, ack.version, ack.path);
                if let Some(peer) = self.peers.get_mut(&conn) {
                    peer.reply(rid, Message::PushAck(ack));
                }
                self.log(conn, request, Ok(&detail));
                self.log_restored(conn);
            }
            Err(e) => {
                let text = format!("{what}: {e}");
                // §4.5: `code` never makes a permanent failure look
                // retryable, or a client retries it for ever.
                if let Some(peer) = self.peers.get_mut(&conn) {
                    peer.error(rid, e.code(), &text);
                }
                self.refused(conn, request, e.code(), &text);
            }
        }
    }

    /// Logs each lost file a push put back: a line on stderr
    /// naming the device, and `request=restore-lost` in the connection log.
    fn log_restored(&mut self, conn: ConnRef) {
        let Some(store) = self.store.as_mut() else {
            return;
        };
        let restored = store.take_restored();
        let (label, left) = (store.label(), store.lost_count());
        for (path, version, client) in restored {
            log::warn!(
                "{label}: {path} (v{version}) restored from device {client}: its lost copy is \
                 back, as journaled ({left} file(s) still lost)"
            );
            let detail = format!("{path} v{version} restored from device {client}");
            self.log(conn, "restore-lost", Ok(&detail));
        }
    }

    fn begin_upload(&mut self, conn: ConnRef, rid: u32, begin: FileBegin) {
        let Some(store) = self.store.as_ref() else {
            return;
        };
        let upload = store.begin_upload(begin);
        if let Some(peer) = self.peers.get_mut(&conn) {
            peer.upload = Some(OpenUpload {
                request_id: rid,
                upload,
            });
        }
    }

    fn upload_chunk(&mut self, conn: ConnRef, rid: u32, data: Vec<u8>) {
        let Some(peer) = self.peers.get_mut(&conn) else {
            return;
        };
        let Some(open) = peer.upload.as_mut() else {
            // `admit` (legality::judge) lets a FileChunk through only
            // while an upload is open.
            return;
        };
        if let Err(e) = open.upload.write_owned(data) {
            // More bytes than announced: the upload (and its temp file) goes.
            let text = e.to_string();
            peer.upload = None;
            self.log(conn, "push-file", Err(&text));
            self.fail(conn, rid, e.code(), &text);
        }
    }

    fn end_upload(&mut self, conn: ConnRef, client: ClientId) {
        let Some(peer) = self.peers.get_mut(&conn) else {
            return;
        };
        let Some(OpenUpload { request_id, upload }) = peer.upload.take() else {
            // `admit` (legality::judge) lets a FileEnd through only
            // while an upload is open.
            return;
        };
        let (path, base) = (upload.path().clone(), upload.base());
        let finished = upload.finish();
        self.commit_upload(conn, client, (request_id, base, &path), finished, "");
    }

    /// The end of an upload (`FileEnd`, or `StreamEnd` with `how` saying
    /// so): the staged file committed and the push answered, or the
    /// upload's error sent and logged; the connection stays open. Returns
    /// the PushAck sent when the file was committed.
    pub(super) fn commit_upload(
        &mut self,
        conn: ConnRef,
        client: ClientId,
        (request_id, base, path): (u32, u64, &WirePath),
        finished: Result<StagedFile, StoreError>,
        how: &str,
    ) -> Option<PushAck> {
        let staged = match finished {
            Ok(staged) => staged,
            Err(e) => {
                let text = e.to_string();
                if let Some(peer) = self.peers.get_mut(&conn) {
                    peer.error(request_id, e.code(), &text);
                }
                self.refused(conn, "push-file", e.code(), &text);
                return None;
            }
        };
        let store = self.store.as_mut()?;
        let what = format!("{path} ({} bytes{how})", staged.size);
        let before = store.head();
        let result = store.commit_file(base, path, staged, client);
        let ack = result.as_ref().ok().cloned();
        self.finish_push(conn, request_id, "push-file", &what, before, result);
        ack
    }
}
