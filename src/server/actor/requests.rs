//! What the actor does with each request: handshakes, pulls, fetches,
//! acknowledgements, uploads and the other pushes.

use super::peer::{Job, Peer, Upload};
use super::Actor;
use crate::protocol::{
    ClientId, ErrorCode, FileBegin, Frame, Hello, HelloMode, Message, PushAck, Welcome,
};
use crate::server::bus::{ConnRef, FromActor};
use crate::server::store::{StagedFile, StoreError, UserStore};
use std::io::Write;
use std::net::SocketAddr;

impl Actor {
    pub(super) fn on_hello(
        &mut self,
        conn: ConnRef,
        addr: SocketAddr,
        request_id: u32,
        hello: Hello,
    ) {
        self.peers.insert(conn, Peer::new(addr));
        let request = match hello.mode {
            HelloMode::NewUser => "new-user",
            HelloMode::NewClient => "new-client",
            HelloMode::Resume => "resume",
        };
        if self.store.is_none() && !self.unknown {
            let create = hello.mode == HelloMode::NewUser;
            if !self.open_store(create) && !self.unknown {
                let text = "cannot open the user's state";
                self.log(conn, request, Err(text));
                self.fail(conn, request_id, ErrorCode::Storage, text);
                return;
            }
        }
        let Some(store) = self.store.as_mut() else {
            self.log(conn, request, Err("unknown user"));
            self.fail(conn, request_id, ErrorCode::UnknownUser, "unknown user");
            let _ = self.ctx.out.send(FromActor::Refused { conn });
            return;
        };
        let client = match hello.mode {
            HelloMode::NewUser | HelloMode::NewClient => store.add_client(),
            HelloMode::Resume if store.has_client(hello.client_id) => Ok(hello.client_id),
            HelloMode::Resume => {
                self.log(conn, request, Err("unknown client"));
                self.fail(conn, request_id, ErrorCode::UnknownClient, "unknown client");
                return;
            }
        };
        let client = match client {
            Ok(c) => c,
            Err(e) => {
                let text = e.to_string();
                self.log(conn, request, Err(&text));
                self.fail(conn, request_id, ErrorCode::Storage, &text);
                return;
            }
        };
        let head = store.head();
        if hello.mode == HelloMode::NewUser {
            let mut stdout = std::io::stdout().lock();
            let _ = writeln!(stdout, "new user {}", self.user);
            let _ = stdout.flush();
        }
        if let Some(peer) = self.peers.get_mut(&conn) {
            peer.client = Some(client);
            peer.reply(
                request_id,
                Message::Welcome(Welcome {
                    user_id: self.user,
                    client_id: client,
                    head,
                }),
            );
        }
        self.log(conn, request, Ok(&format!("head {head}")));
    }

    /// Opens (or, with `create`, creates) the user's state. Returns false when
    /// it is unknown (`self.unknown` is then set) or cannot be opened.
    pub(super) fn open_store(&mut self, create: bool) -> bool {
        match UserStore::open(&self.ctx.paths, &self.user, create, self.ctx.durable) {
            Ok((store, report)) => {
                if report.recovered || report.dropped_bytes > 0 {
                    log::warn!(
                        "user {}: recovered after an unclean stop: {} records replayed, {} torn bytes dropped, {} changes found on disk",
                        self.user, report.replayed, report.dropped_bytes, report.repaired
                    );
                }
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

    pub(super) fn fail(&mut self, conn: ConnRef, request_id: u32, code: ErrorCode, text: &str) {
        if let Some(peer) = self.peers.get_mut(&conn) {
            peer.fail(request_id, code, text);
        }
    }

    pub(super) fn on_request(&mut self, conn: ConnRef, frame: Frame, cost: usize) {
        let Some(store) = self.store.as_mut() else {
            return;
        };
        let Some(peer) = self.peers.get_mut(&conn) else {
            return;
        };
        let Some(client) = peer.client else {
            return;
        };
        let rid = frame.request_id;
        let before = store.head();
        if let Some(delta) = &peer.delta {
            let in_upload = matches!(
                frame.message,
                Message::ChunkList(_) | Message::ChunkData(_) | Message::FileEnd
            );
            let keep_alive = matches!(frame.message, Message::Ping | Message::Pong);
            if !keep_alive && (!in_upload || rid != delta.request_id) {
                peer.delta = None;
                let text = "only ChunkList/ChunkData/FileEnd of the open upload are allowed";
                self.log(conn, "frame", Err(text));
                self.fail(conn, rid, ErrorCode::WrongPhase, text);
                return;
            }
        }
        if let Some(upload) = &peer.upload {
            let in_upload = matches!(frame.message, Message::FileChunk(_) | Message::FileEnd);
            let keep_alive = matches!(frame.message, Message::Ping | Message::Pong);
            if !keep_alive && (!in_upload || rid != upload.request_id) {
                self.log(
                    conn,
                    "frame",
                    Err("message not allowed while a file upload is open"),
                );
                self.fail(
                    conn,
                    rid,
                    ErrorCode::WrongPhase,
                    "only FileChunk/FileEnd of the open upload are allowed",
                );
                return;
            }
        }
        let push = matches!(
            frame.message,
            Message::FileEnd
                | Message::MakeDir { .. }
                | Message::Delete(_)
                | Message::RemoveDir(_)
                | Message::Rename(_)
        );
        if push {
            peer.pin_fetches(store);
        }
        match frame.message {
            Message::Pull { cursor } => {
                let listing = store.changes_since(cursor);
                let detail = format!(
                    "cursor {cursor} -> {}, {} entries{}",
                    listing.head,
                    listing.entries.len(),
                    if listing.full { ", full" } else { "" }
                );
                peer.jobs.push_back(Job::Listing {
                    request_id: rid,
                    listing,
                    pos: 0,
                    cost,
                });
                self.log(conn, "pull", Ok(&detail));
            }
            Message::Ack { cursor } => {
                let result = store.set_cursor(client, cursor);
                match result {
                    Ok(()) => self.log(conn, "ack", Ok(&format!("cursor {cursor}"))),
                    Err(e) => self.log(conn, "ack", Err(&e.to_string())),
                }
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
            Message::FileChunk(data) => self.upload_chunk(conn, rid, &data),
            Message::FileEnd if peer.delta.is_some() => self.end_delta(conn, client),
            Message::FileEnd => self.end_upload(conn, rid, client),
            Message::FileManifest(header) => self.begin_delta(conn, rid, header),
            Message::ChunkList(entries) => self.delta_list(conn, rid, &entries),
            Message::ChunkData(chunk) => self.delta_chunk(conn, rid, &chunk),
            Message::MakeDir { path } => {
                let result = store.make_dir(&path, client);
                self.finish_push(conn, rid, "push-mkdir", &path.to_string(), before, result);
            }
            Message::Delete(d) => {
                let result = store.delete_file(d.base_version, &d.path, client);
                self.finish_push(
                    conn,
                    rid,
                    "push-delete",
                    &d.path.to_string(),
                    before,
                    result,
                );
            }
            Message::RemoveDir(r) => {
                let result = store.remove_dir(r.cursor, &r.path, client);
                self.finish_push(conn, rid, "push-rmdir", &r.path.to_string(), before, result);
            }
            Message::Rename(r) => {
                let result = store.rename(&r.from, &r.to, client);
                let what = format!("{} -> {}", r.from, r.to);
                self.finish_push(conn, rid, "push-rename", &what, before, result);
            }
            // Queued behind the replies of earlier requests (§3.4).
            Message::Ping => peer.reply(rid, Message::Pong),
            Message::Pong => {}
            other => {
                let text = format!("{:?} is not a request", other.kind());
                self.log(conn, "frame", Err(&text));
                self.fail(conn, rid, ErrorCode::WrongPhase, &text);
            }
        }
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
                let detail = format!("{what}: {:?} v{} at {}", ack.status, ack.version, ack.path);
                if let Some(peer) = self.peers.get_mut(&conn) {
                    peer.reply(rid, Message::PushAck(ack));
                }
                self.log(conn, request, Ok(&detail));
            }
            Err(e) => {
                let text = format!("{what}: {e}");
                // §4.5: a failure that retrying cannot fix must not look
                // retryable, or a client retries it for ever.
                let code = if e.is_permanent() {
                    ErrorCode::Unstorable
                } else {
                    ErrorCode::Storage
                };
                if let Some(peer) = self.peers.get_mut(&conn) {
                    peer.error(rid, code, &text);
                }
                self.log(conn, request, Err(&text));
            }
        }
    }

    fn begin_upload(&mut self, conn: ConnRef, rid: u32, begin: FileBegin) {
        let Some(store) = self.store.as_mut() else {
            return;
        };
        let temp = store.temp_path();
        let (file, error) = match std::fs::File::create(&temp) {
            Ok(f) => (Some(f), None),
            Err(e) => (None, Some(format!("cannot create a temp file: {e}"))),
        };
        if let Some(peer) = self.peers.get_mut(&conn) {
            peer.upload = Some(Upload {
                request_id: rid,
                begin,
                file,
                temp,
                written: 0,
                hasher: blake3::Hasher::new(),
                error,
            });
        }
    }

    fn upload_chunk(&mut self, conn: ConnRef, rid: u32, data: &[u8]) {
        let Some(peer) = self.peers.get_mut(&conn) else {
            return;
        };
        let Some(upload) = peer.upload.as_mut() else {
            self.log(conn, "frame", Err("FileChunk without FileBegin"));
            self.fail(
                conn,
                rid,
                ErrorCode::WrongPhase,
                "FileChunk without FileBegin",
            );
            return;
        };
        let written = upload.written.checked_add(data.len() as u64);
        if written.is_none_or(|w| w > upload.begin.size) {
            let text = format!(
                "{}: more bytes than the announced {}",
                upload.begin.path, upload.begin.size
            );
            peer.abandon_upload();
            self.log(conn, "push-file", Err(&text));
            self.fail(conn, rid, ErrorCode::SizeMismatch, &text);
            return;
        }
        upload.written += data.len() as u64;
        upload.hasher.update(data);
        if let Some(file) = upload.file.as_mut() {
            if let Err(e) = file.write_all(data) {
                upload.error = Some(format!("writing {}: {e}", upload.begin.path));
                upload.file = None;
                let _ = std::fs::remove_file(&upload.temp);
            }
        }
    }

    fn end_upload(&mut self, conn: ConnRef, end_rid: u32, client: ClientId) {
        let Some(peer) = self.peers.get_mut(&conn) else {
            return;
        };
        let Some(mut upload) = peer.upload.take() else {
            self.log(conn, "frame", Err("FileEnd without FileBegin"));
            self.fail(
                conn,
                end_rid,
                ErrorCode::WrongPhase,
                "FileEnd without FileBegin",
            );
            return;
        };
        let rid = upload.request_id;
        let path = upload.begin.path.clone();
        let hash = crate::protocol::ContentHash(*upload.hasher.finalize().as_bytes());
        let failure = if upload.written != upload.begin.size {
            Some((
                ErrorCode::SizeMismatch,
                format!(
                    "{path}: {} bytes received, {} announced",
                    upload.written, upload.begin.size
                ),
            ))
        } else if hash != upload.begin.hash {
            Some((
                ErrorCode::HashMismatch,
                format!("{path}: content does not match its hash"),
            ))
        } else if let Some(e) = upload.error.take() {
            Some((ErrorCode::Storage, e))
        } else if let Some(Err(e)) = upload.file.take().map(|mut f| {
            f.flush()?;
            if self.ctx.durable {
                // --fsync: the content is on disk before it becomes visible.
                f.sync_data()?;
            }
            Ok::<(), std::io::Error>(())
        }) {
            Some((ErrorCode::Storage, format!("writing {path}: {e}")))
        } else {
            None
        };
        if let Some((code, text)) = failure {
            let _ = std::fs::remove_file(&upload.temp);
            peer.error(rid, code, &text);
            self.log(conn, "push-file", Err(&text));
            return;
        }
        let Some(store) = self.store.as_mut() else {
            return;
        };
        let staged = StagedFile {
            temp: upload.temp,
            size: upload.written,
            hash,
        };
        let before = store.head();
        let result = store.commit_file(upload.begin.version, &path, staged, client);
        let what = format!("{path} ({} bytes)", upload.written);
        self.finish_push(conn, rid, "push-file", &what, before, result);
    }
}
