//! What the actor does with each request: handshakes, pulls, fetches,
//! acknowledgements, uploads and the other pushes.

use super::peer::{Job, OpenUpload, Peer};
use super::Actor;
use crate::protocol::{
    ClientId, ErrorCode, FileBegin, Frame, Hello, HelloMode, Message, PushAck, Welcome,
};
use crate::server::bus::{ConnRef, FromActor};
use crate::server::store::{StoreError, UserStore};
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

    fn fail(&mut self, conn: ConnRef, request_id: u32, code: ErrorCode, text: &str) {
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
            Message::FileEnd => self.end_upload(conn, rid, client),
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
    fn finish_push(
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
                // §4.5: `code` never makes a permanent failure look
                // retryable, or a client retries it for ever.
                if let Some(peer) = self.peers.get_mut(&conn) {
                    peer.error(rid, e.code(), &text);
                }
                self.log(conn, request, Err(&text));
            }
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

    fn upload_chunk(&mut self, conn: ConnRef, rid: u32, data: &[u8]) {
        let Some(peer) = self.peers.get_mut(&conn) else {
            return;
        };
        let Some(open) = peer.upload.as_mut() else {
            self.log(conn, "frame", Err("FileChunk without FileBegin"));
            self.fail(
                conn,
                rid,
                ErrorCode::WrongPhase,
                "FileChunk without FileBegin",
            );
            return;
        };
        if let Err(e) = open.upload.write(data) {
            // More bytes than announced: the upload (and its temp file) goes.
            let text = e.to_string();
            peer.upload = None;
            self.log(conn, "push-file", Err(&text));
            self.fail(conn, rid, e.code(), &text);
        }
    }

    fn end_upload(&mut self, conn: ConnRef, end_rid: u32, client: ClientId) {
        let Some(peer) = self.peers.get_mut(&conn) else {
            return;
        };
        let Some(OpenUpload { request_id, upload }) = peer.upload.take() else {
            self.log(conn, "frame", Err("FileEnd without FileBegin"));
            self.fail(
                conn,
                end_rid,
                ErrorCode::WrongPhase,
                "FileEnd without FileBegin",
            );
            return;
        };
        let (path, base) = (upload.path().clone(), upload.base());
        let staged = match upload.finish() {
            Ok(staged) => staged,
            Err(e) => {
                let text = e.to_string();
                peer.error(request_id, e.code(), &text);
                self.log(conn, "push-file", Err(&text));
                return;
            }
        };
        let Some(store) = self.store.as_mut() else {
            return;
        };
        let what = format!("{path} ({} bytes)", staged.size);
        let before = store.head();
        let result = store.commit_file(base, &path, staged, client);
        self.finish_push(conn, request_id, "push-file", &what, before, result);
    }
}
