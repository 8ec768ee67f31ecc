//! An actor's view of one attached connection: its client, its pending
//! replies, its open upload, and the output it may still produce.

use crate::protocol::limits::CHUNK_SIZE;
use crate::protocol::message::put_header;
use crate::protocol::{
    ChangeBatch, ClientId, ContentHash, ErrorCode, ErrorReport, FileBegin, Frame, Kind, Message,
    WirePath,
};
use crate::server::store::{Listing, StoreError, UserStore};
use std::collections::VecDeque;
use std::fs::File;
use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Bulk bytes a connection may have queued between the actor and its socket:
/// the actor produces more only as the reactor reports bytes written.
pub const CREDIT_WINDOW: i64 = 1024 * 1024;

/// A file being received.
pub struct Upload {
    /// The `FileBegin`'s request ID (chunks and end must carry it).
    pub request_id: u32,
    /// What was announced.
    pub begin: FileBegin,
    /// The temp file; `None` once a write failed (the rest is discarded).
    pub file: Option<File>,
    /// Its path.
    pub temp: PathBuf,
    /// Bytes received so far.
    pub written: u64,
    /// Hash of the bytes received so far.
    pub hasher: blake3::Hasher,
    /// The first write error, reported at `FileEnd`.
    pub error: Option<String>,
}

/// A reply still to be produced, in request order.
pub enum Job {
    /// Small reply bytes queued behind bulk work, to keep replies in order.
    Control(Vec<u8>),
    /// A pull reply, sent as batches.
    Listing {
        /// The pull's request ID.
        request_id: u32,
        /// What to send.
        listing: Listing,
        /// Entries already sent.
        pos: usize,
        /// Inbound cost of the Pull, reported as handled when the reply is done.
        cost: usize,
    },
    /// A fetch reply.
    Fetch {
        /// The fetch's request ID.
        request_id: u32,
        /// The file.
        path: WirePath,
        /// The open file and bytes left, once started.
        open: Option<(File, u64)>,
        /// The file opened (or the failure met) before the reply's turn,
        /// because a later push of this connection could change it.
        pinned: Option<Opened>,
        /// Inbound cost of the Fetch, reported as handled when the reply is done.
        cost: usize,
    },
}

/// What opening a fetched file gave: the file, its version, size and hash,
/// or the store's error.
pub type Opened = Result<(File, u64, u64, ContentHash), StoreError>;

/// One attached connection.
pub struct Peer {
    /// Peer address, for the log.
    pub addr: SocketAddr,
    /// Registered client, once the handshake is accepted.
    pub client: Option<ClientId>,
    /// The reactor has been told the handshake succeeded.
    pub announced: bool,
    /// Bulk bytes it may still be sent.
    pub credit: i64,
    /// Replies waiting for credit.
    pub jobs: VecDeque<Job>,
    /// The open upload, if any.
    pub upload: Option<Upload>,
    /// The open delta upload (§12.3), if any.
    pub delta: Option<super::delta::DeltaUpload>,
    /// Frames produced this cycle.
    pub out: Vec<u8>,
    /// Bulk bytes among `out`.
    pub bulk: usize,
    /// Inbound bytes handled this cycle.
    pub processed: usize,
    /// Close after sending `out`.
    pub close: bool,
}

impl Peer {
    /// A connection that just sent its `Hello`.
    pub fn new(addr: SocketAddr) -> Peer {
        Peer {
            addr,
            client: None,
            announced: false,
            credit: CREDIT_WINDOW,
            jobs: VecDeque::new(),
            upload: None,
            delta: None,
            out: Vec::new(),
            bulk: 0,
            processed: 0,
            close: false,
        }
    }

    /// Queues a small reply, behind any bulk reply still in progress.
    pub fn reply(&mut self, request_id: u32, message: Message) {
        let frame = Frame::new(request_id, message);
        if self.jobs.is_empty() {
            frame.encode(&mut self.out);
        } else {
            self.jobs.push_back(Job::Control(frame.to_bytes()));
        }
    }

    /// Queues an error reply.
    pub fn error(&mut self, request_id: u32, code: ErrorCode, message: &str) {
        self.reply(
            request_id,
            Message::Error(ErrorReport {
                code,
                message: message.to_owned(),
            }),
        );
    }

    /// Queues an error reply and asks for the connection to close after it.
    pub fn fail(&mut self, request_id: u32, code: ErrorCode, message: &str) {
        self.jobs.clear();
        self.error(request_id, code, message);
        self.close = true;
    }

    /// Drops the open upload and its temp file.
    pub fn abandon_upload(&mut self) {
        self.delta = None;
        if let Some(upload) = self.upload.take() {
            drop(upload.file);
            let _ = std::fs::remove_file(&upload.temp);
        }
    }

    /// Opens the file of every fetch still waiting for its turn, before this
    /// connection's next push is applied: a connection's frames are processed
    /// in arrival order (§3.4), so a Fetch answers with the state it was
    /// sent against, not with what a push pipelined after it made. At most
    /// 64 fetches are pending per connection (`REPLY_COST`), which bounds
    /// the files held open.
    pub fn pin_fetches(&mut self, store: &UserStore) {
        for job in self.jobs.iter_mut() {
            if let Job::Fetch {
                path,
                open: None,
                pinned: pinned @ None,
                ..
            } = job
            {
                *pinned = Some(store.open_file(path));
            }
        }
    }

    /// Produces queued replies while credit lasts.
    pub fn produce(&mut self, store: &UserStore) {
        while self.credit > 0 && !self.close {
            let Some(job) = self.jobs.front_mut() else {
                return;
            };
            let before = self.out.len();
            let (done, cost) = match job {
                Job::Control(bytes) => {
                    self.out.extend_from_slice(bytes);
                    (true, 0)
                }
                Job::Listing {
                    request_id,
                    listing,
                    pos,
                    cost,
                } => {
                    *pos = next_batch(&mut self.out, *request_id, listing, *pos);
                    (*pos >= listing.entries.len(), *cost)
                }
                Job::Fetch {
                    request_id,
                    path,
                    open,
                    pinned,
                    cost,
                } => (
                    fetch_step(&mut self.out, *request_id, path, open, pinned, store),
                    *cost,
                ),
            };
            let produced = self.out.len() - before;
            if !matches!(self.jobs.front(), Some(Job::Control(_))) {
                self.credit -= produced as i64;
                self.bulk += produced;
            }
            if done {
                self.processed += cost;
                self.jobs.pop_front();
            }
        }
    }
}

/// Encodes the batch starting at entry `pos`; returns the next position.
fn next_batch(out: &mut Vec<u8>, request_id: u32, listing: &Listing, pos: usize) -> usize {
    let mut batch = ChangeBatch {
        head: listing.head,
        full: listing.full,
        last: false,
        entries: Vec::new(),
    };
    let mut used = 0usize;
    let mut next = pos;
    while let Some(entry) = listing.entries.get(next) {
        let len = entry.encoded_len();
        if !batch.has_room_for(used, len) {
            break;
        }
        used += len;
        batch.entries.push(entry.clone());
        next += 1;
    }
    batch.last = next >= listing.entries.len();
    Frame::new(request_id, Message::ChangeBatch(batch)).encode(out);
    next
}

/// One step of a fetch reply: `FileBegin`, one chunk, or the end. Returns
/// true when the reply is complete.
fn fetch_step(
    out: &mut Vec<u8>,
    request_id: u32,
    path: &WirePath,
    open: &mut Option<(File, u64)>,
    pinned: &mut Option<Opened>,
    store: &UserStore,
) -> bool {
    let Some((file, remaining)) = open else {
        match pinned.take().unwrap_or_else(|| store.open_file(path)) {
            Ok((file, version, size, hash)) => {
                let begin = FileBegin {
                    version,
                    size,
                    hash,
                    path: path.clone(),
                };
                Frame::new(request_id, Message::FileBegin(begin)).encode(out);
                *open = Some((file, size));
                return false;
            }
            Err(e) => {
                let (code, text) = match &e {
                    StoreError::Io(io) if io.kind() == std::io::ErrorKind::NotFound => {
                        (ErrorCode::NotFound, format!("no file at {path}"))
                    }
                    other => (ErrorCode::Storage, other.to_string()),
                };
                let report = ErrorReport {
                    code,
                    message: text,
                };
                Frame::new(request_id, Message::Error(report)).encode(out);
                return true;
            }
        }
    };
    if *remaining == 0 {
        Frame::new(request_id, Message::FileEnd).encode(out);
        return true;
    }
    let n = (*remaining).min(CHUNK_SIZE as u64) as usize;
    let start = out.len();
    put_header(out, Kind::FileChunk, request_id, n as u32);
    let data_at = out.len();
    out.resize(data_at + n, 0);
    match file.read_exact(&mut out[data_at..]) {
        Ok(()) => {
            *remaining -= n as u64;
            false
        }
        Err(e) => {
            out.truncate(start);
            let report = ErrorReport {
                code: ErrorCode::Storage,
                message: format!("reading {path}: {e}"),
            };
            Frame::new(request_id, Message::Error(report)).encode(out);
            true
        }
    }
}
