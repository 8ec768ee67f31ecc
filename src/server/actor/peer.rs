//! An actor's view of one attached connection: its client, its pending
//! replies, its open upload, and the output it may still produce. The bytes
//! of uploads and fetches are the store's (`store::Upload`,
//! `store::FileReader`); a peer only holds them and frames them.

use super::delta_fetch::{chunks_step, manifest_step, ChunkCursor, ServedFiles};
use crate::protocol::limits::CHUNK_SIZE;
use crate::protocol::message::put_header;
use crate::protocol::{
    ChunkRange, ClientId, ErrorCode, ErrorReport, FileBegin, Frame, Kind, Message, WirePath,
};
use crate::server::flow::PeerFlow;
use crate::server::metrics::metrics;
use crate::server::pull_reply::{self, PullReply};
use crate::server::store::{FileReader, Listing, StoreError, Upload, UserStore};
use std::collections::VecDeque;
use std::net::SocketAddr;

/// The upload open on a connection: its request ID (chunks and end must
/// carry it) and the store's receiving end.
pub struct OpenUpload {
    /// The `FileBegin`'s request ID.
    pub request_id: u32,
    /// Where the bytes go.
    pub upload: Upload,
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
        /// A PullModes: `ModeBatch` frames, entries with their mode (§15.2).
        modes: bool,
        /// Entries already sent.
        pos: usize,
        /// Inbound cost the Pull holds until the reply is done ([`PeerFlow::took`]).
        cost: usize,
    },
    /// A fetch reply.
    Fetch {
        /// The fetch's request ID.
        request_id: u32,
        /// The file.
        path: WirePath,
        /// The open file, once started.
        open: Option<FileReader>,
        /// The file opened (or the failure met) before the reply's turn,
        /// because a later push of this connection could change it.
        pinned: Option<Opened>,
        /// Inbound cost the Fetch holds until the reply is done ([`PeerFlow::took`]).
        cost: usize,
    },
    /// A delta download's manifest reply (§13.4): `FileManifest`, then
    /// `ChunkList` frames of the list pinned in [`Peer::served`].
    Manifest {
        /// The `FetchManifest`'s request ID.
        request_id: u32,
        /// List entries sent; `None` before the `FileManifest`.
        sent: Option<usize>,
        /// Inbound cost held until the reply is done ([`PeerFlow::took`]).
        cost: usize,
    },
    /// A `FetchChunks` reply (§13.4): `ChunkData` per index asked, and
    /// `FileEnd` after the download's last `FetchChunks`.
    Chunks {
        /// The download's request ID.
        request_id: u32,
        /// The runs asked, checked against the list.
        ranges: Vec<ChunkRange>,
        /// The run being sent.
        run: usize,
        /// Chunks of that run sent.
        within: u32,
        /// The download's last `FetchChunks`.
        last: bool,
        /// Inbound cost held until the reply is done ([`PeerFlow::took`]).
        cost: usize,
    },
}

/// What opening a fetched file gave: the reader, or the store's error.
pub type Opened = Result<FileReader, StoreError>;

/// One attached connection.
pub struct Peer {
    /// Peer address, for the log.
    pub addr: SocketAddr,
    /// Registered client, once the handshake is accepted.
    pub client: Option<ClientId>,
    /// The reactor has been told the handshake succeeded.
    pub announced: bool,
    /// Credit for bulk output, and inbound cost handled but not yet reported.
    pub flow: PeerFlow,
    /// Replies waiting for credit.
    pub jobs: VecDeque<Job>,
    /// The open upload, if any.
    pub upload: Option<OpenUpload>,
    /// The open delta upload (§13.3), if any.
    pub delta: Option<super::delta::DeltaUpload>,
    /// The open delta downloads (§13.4), by request ID.
    pub served: ServedFiles,
    /// Fetches this connection's replies failed because the server's copy
    /// is not as journaled: the path and the error, for
    /// the connection log and, unless already known lost, the actor's
    /// second look at the file.
    pub failed_fetches: Vec<(WirePath, StoreError, &'static str)>,
    /// Frames produced this cycle.
    pub out: Vec<u8>,
    /// Bulk bytes among `out`.
    pub bulk: usize,
    /// Close after sending `out`.
    pub close: bool,
    /// When the actor first saw the connection (its Hello, or its
    /// adoption): what Error `DeviceInUse` tells.
    pub since: std::time::SystemTime,
    /// The handshake was a Visit: not the device's live
    /// connection. Kept across an actor restart ([`ToActor::Adopt`]).
    ///
    /// [`ToActor::Adopt`]: crate::server::bus::ToActor::Adopt
    pub visit: bool,
    /// A verified Resume waiting for the probe of its device's live
    /// connection; not admitted yet.
    pub parked: Option<super::handshake::Parked>,
    /// The live connection the reactor is to probe for `parked`: sent as
    /// `FromActor::Probe` with this cycle's output.
    pub probe: Option<crate::server::bus::ConnRef>,
    /// Requests pipelined behind a parked Resume's Hello, handled in
    /// arrival order once it is decided (bounded by the inbound window,
    /// `flow::INBOUND_CAP`: their cost is not released meanwhile).
    pub deferred: Vec<(crate::protocol::Frame, crate::server::flow::Cost)>,
}

impl Peer {
    /// A connection that just sent its `Hello`.
    pub fn new(addr: SocketAddr) -> Peer {
        Peer {
            addr,
            client: None,
            announced: false,
            flow: PeerFlow::default(),
            jobs: VecDeque::new(),
            upload: None,
            delta: None,
            served: ServedFiles::new(),
            failed_fetches: Vec::new(),
            out: Vec::new(),
            bulk: 0,
            close: false,
            since: std::time::SystemTime::now(),
            visit: false,
            parked: None,
            probe: None,
            deferred: Vec::new(),
        }
    }

    /// Whether this connection is `client`'s live connection in the sense
    /// of: admitted (or being admitted), not closing, not a Visit.
    pub fn is_live_device(&self, client: ClientId) -> bool {
        self.client == Some(client) && !self.close && !self.visit
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
        metrics().error_sent(code);
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

    /// Drops the open upload (its temp file removes itself) and the open
    /// delta downloads (their files close).
    pub fn abandon_upload(&mut self) {
        // A delta upload cut off mid-way keeps its verified chunks for a
        // resume (§13.3); a whole upload starts again.
        if let Some(super::delta::DeltaUpload {
            stage: super::delta::Stage::Building(building),
            ..
        }) = self.delta.take()
        {
            building.build.suspend();
        }
        // A one-read upload keeps what it received.
        if let Some(open) = self.upload.take() {
            open.upload.suspend();
        }
        self.served.clear();
    }

    /// Opens the file of every fetch still waiting for its turn, before this
    /// connection's next push is applied: a connection's frames are processed
    /// in arrival order (§3.4), so a Fetch answers with the state it was
    /// sent against, not with what a push pipelined after it made. At most
    /// 64 fetches are pending per connection (`flow::REPLY_COST`), which bounds
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
        while self.flow.may_produce() && !self.close {
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
                    modes,
                    pos,
                    cost,
                } => {
                    *pos = pull_reply::encode_batch(
                        &mut self.out,
                        *request_id,
                        listing_reply(listing, *modes),
                        *pos,
                    );
                    (*pos >= listing.entries.len(), *cost)
                }
                Job::Fetch {
                    request_id,
                    path,
                    open,
                    pinned,
                    cost,
                } => match fetch_step(&mut self.out, *request_id, path, open, pinned, store) {
                    Ok(done) => (done, *cost),
                    Err(e) => {
                        self.failed_fetches.push((path.clone(), e, "fetch"));
                        (true, *cost)
                    }
                },
                Job::Manifest {
                    request_id,
                    sent,
                    cost,
                } => (
                    manifest_step(&mut self.out, *request_id, sent, &self.served),
                    *cost,
                ),
                Job::Chunks {
                    request_id,
                    ranges,
                    run,
                    within,
                    last,
                    cost,
                } => {
                    let at = ChunkCursor {
                        rid: *request_id,
                        ranges,
                        run,
                        within,
                        last: *last,
                    };
                    (chunks_step(&mut self.out, at, &mut self.served), *cost)
                }
            };
            let produced = self.out.len() - before;
            if !matches!(self.jobs.front(), Some(Job::Control(_))) {
                self.flow.spend(produced);
                self.bulk += produced;
            }
            if done {
                self.flow.answered(cost);
                self.jobs.pop_front();
            }
        }
    }
}

/// The pull reply a store listing gives (`modes`: to a PullModes, §15.2).
pub fn listing_reply(listing: &Listing, modes: bool) -> PullReply<'_> {
    PullReply {
        head: listing.head,
        full: listing.full,
        entries: &listing.entries,
        modes,
    }
}

/// One step of a fetch reply: `FileBegin`, one chunk, or the end. Returns
/// whether the reply is complete, or — when the server's copy is not as
/// journaled — the failure, after its Error frame: the
/// caller logs it and has the file examined again. The bytes are the
/// store's ([`FileReader`]); this decides only what frame answers.
fn fetch_step(
    out: &mut Vec<u8>,
    request_id: u32,
    path: &WirePath,
    open: &mut Option<FileReader>,
    pinned: &mut Option<Opened>,
    store: &UserStore,
) -> Result<bool, StoreError> {
    let failed = |out: &mut Vec<u8>, e: StoreError| {
        error_frame(out, request_id, &e);
        match e {
            StoreError::ChangedOnDisk(_) | StoreError::Lost { .. } => Err(e),
            _ => Ok(true),
        }
    };
    let Some(reader) = open else {
        match pinned.take().unwrap_or_else(|| store.open_file(path)) {
            Ok(reader) => {
                let begin = FileBegin {
                    version: reader.version(),
                    size: reader.size(),
                    hash: reader.hash(),
                    path: path.clone(),
                };
                Frame::new(request_id, Message::FileBegin(begin)).encode(out);
                *open = Some(reader);
                return Ok(false);
            }
            Err(e) => return failed(out, e),
        }
    };
    let n = reader.next_len(CHUNK_SIZE);
    if n == 0 {
        // The bytes sent were the journaled ones, or the client is told
        // so instead of FileEnd (it holds the download back, R-5.6.8).
        return match reader.verify() {
            Ok(()) => {
                Frame::new(request_id, Message::FileEnd).encode(out);
                Ok(true)
            }
            Err(e) => failed(out, e),
        };
    }
    let start = out.len();
    put_header(out, Kind::FileChunk, request_id, n as u32);
    let data_at = out.len();
    out.resize(data_at + n, 0);
    match reader.read_chunk(&mut out[data_at..]) {
        Ok(()) => Ok(false),
        Err(e) => {
            out.truncate(start);
            failed(out, e)
        }
    }
}

/// Encodes the Error frame that answers a store failure.
pub(super) fn error_frame(out: &mut Vec<u8>, request_id: u32, e: &StoreError) {
    metrics().error_sent(e.code());
    let report = ErrorReport {
        code: e.code(),
        message: e.to_string(),
    };
    Frame::new(request_id, Message::Error(report)).encode(out);
}
