//! One pull: collect the `ChangeBatch` reply, let the applier change the
//! folder, download the contents it lacks through a bounded window of
//! pipelined `Fetch`es (each written to the state folder's temporary area and
//! hash-checked, made durable by a pool of fsync threads while the loop goes
//! on receiving ([`durable`]), and only then moved into place; the
//! directories it went into are synced once at the end), then report what
//! is left for the session to acknowledge. Files the applier makes from
//! content this device already has (a copy, an empty file) take the same
//! road: fsynced by the pool, then placed, before the pull can end.

mod durable;
mod kept_scan;
pub mod reconcile;

use super::applier::{remove_donors, Applied, Applier, Donor, FetchJob, Obtained};
use super::connection::Connection;
use super::delta_fetch::{wants_delta, DeltaDownload, Sources, RESUMABLE};
use super::error::ClientError;
use super::fetch_partial::{kept, PartialFetch};
use super::fsutil::{too_long_top, too_long_why};
use super::ignore::apply::{filter_reply, rules_change};
use super::ignore::source::{Peeked, RuleSource};
use super::ignore::{IgnoreRules, IGNORE_FILE};
use super::index::Index;
use super::progress::{Transfer, Verbosity};
use super::schedule::holdback::HoldBack;
use crate::chunk::index::ChunkIndex;
use crate::chunk::{IdLen, Manifest};
use crate::protocol::limits::MAX_OPEN_DELTA_DOWNLOADS;
use crate::protocol::{
    ChangeBatch, ChangeEntry, ClientId, ContentHash, ErrorCode, Fetch, FetchManifest,
    FetchManifestSince, FileBegin, Frame, History, Message, PullChecked, WirePath,
};
pub use durable::SyncPool;
use durable::{sync_dirs, Syncer};
use kept_scan::{KeptScan, Scanned};
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Most bytes of requested-but-unreceived file content. Replies wait in the
/// connection's channel until the loop reads them, so this bounds memory.
pub const FETCH_WINDOW_BYTES: u64 = 8 * 1024 * 1024;
/// Most fetches in flight at once. For small files the count, not the
/// bytes, is the window: 64 fetches of 4 KiB files kept 256 KiB in flight,
/// about the bandwidth-delay product of 100 Mbit/s at 20 ms, and 10,000 such
/// files came down at 87 Mbit/s of a 100 Mbit/s link (benches/wan.sh,
/// 2026-12-02). 256 keep 1 MiB of them in flight. The reference server reads
/// 64 pending Fetches at a time and reads on as it answers (R-3.5.1-2).
const FETCH_WINDOW_COUNT: usize = 256;
/// Most entries one pull reply may have (a full listing of a huge tree is
/// legal; this only stops a hostile server from exhausting memory).
const MAX_REPLY_ENTRIES: usize = 10_000_000;

/// Where the folder and its bookkeeping live, for one step of a pull.
#[derive(Debug)]
pub struct Ctx<'a> {
    /// The synced folder.
    pub root: &'a Path,
    /// The temporary area.
    pub tmp: &'a Path,
    /// The index.
    pub index: &'a mut Index,
    /// This device's client ID (for conflict names).
    pub me: ClientId,
    /// What is not synced: a pull leaves those paths alone.
    pub rules: &'a IgnoreRules,
    /// Where `rules` come from: looked at again before each download is
    /// placed, so a rule that appeared meanwhile keeps it out.
    pub source: &'a RuleSource,
    /// A reply that changes `.cloudignore` may be cut to that one entry
    /// (and the pull repeated under the new rules); false when this cursor
    /// was already cut once, so a rules file that cannot be placed never
    /// stalls the pull.
    pub may_defer_rules: bool,
    /// The folder's chunk index, for delta downloads (§13.4): loaded and
    /// brought up to the index at the pull's first delta download.
    pub chunks: &'a mut Option<ChunkIndex>,
    /// Where that index is saved.
    pub chunks_file: &'a Path,
    /// Where delta downloads are built (kept across runs for resumes).
    pub partial: &'a Path,
    /// Set when the server refused a FetchManifest as a kind it does not
    /// serve: the session downloads with Fetch for the rest of its run.
    pub deltas_refused: &'a mut bool,
    /// Set when the server refused a FetchShortManifest as a version 4 kind
    /// or a download from a short list failed its whole-file
    /// check: the session asks with FetchManifest from then on.
    pub short_ids_refused: &'a mut bool,
    /// Downloads that could not be written here (a full disk) or whose
    /// bytes did not match their announced hash, each waiting its delay
    /// not fetched before it is over.
    pub held: &'a HoldBack,
}

impl Ctx<'_> {
    /// Saves the chunk index (a failure only costs a re-chunking later).
    fn save_chunks(&self) {
        if let Some(index) = self.chunks.as_ref() {
            if let Err(e) = index.save(self.chunks_file) {
                log::warn!("saving the chunk index: {e}");
            }
        }
    }
}

impl Ctx<'_> {
    fn applier(&mut self) -> Applier<'_> {
        Applier::new(self.root, self.tmp, self.index, self.me).with_rules(self.rules)
    }
}

/// Where a Fetch's bytes are written.
#[derive(Debug)]
enum Sink {
    /// A file in the temporary area (gone if the download is cut off).
    Tmp(BufWriter<File>),
    /// A file of [`RESUMABLE`] bytes or more: in the partial area, where
    /// a cut-off one stays for a resume (R-13.5.4, [`super::fetch_partial`]).
    Partial(PartialFetch),
}

impl Sink {
    fn write(&mut self, data: Vec<u8>) -> std::io::Result<()> {
        match self {
            Sink::Tmp(file) => file.write_all(&data),
            Sink::Partial(file) => file.write(data),
        }
    }

    /// The file is not wanted (it failed, or cannot be written here).
    fn discard(self, tmp: &Path) {
        match self {
            Sink::Tmp(file) => {
                drop(file);
                let _ = fs::remove_file(tmp);
            }
            Sink::Partial(file) => file.discard(),
        }
    }
}

/// A download in progress.
#[derive(Debug)]
struct Download {
    begin: FileBegin,
    /// `None` once writing failed (`broken` says why): the rest of the
    /// file's bytes are counted and dropped until its FileEnd.
    file: Option<Sink>,
    tmp: PathBuf,
    hasher: blake3::Hasher,
    written: u64,
    broken: Option<String>,
}

/// A download received and verified (or a file made from local content),
/// waiting for its fsync before it is placed.
#[derive(Debug)]
struct Verified {
    job: FetchJob,
    tmp: PathBuf,
    hash: ContentHash,
    version: u64,
    /// It came over the wire (counted in the transfer's progress).
    downloaded: bool,
    /// Its chunk list, cut as it came (a resumable Fetch): recorded in the
    /// chunk index once it is placed.
    manifest: Option<Manifest>,
}

/// A reply the pull waits for, in request order (§3.4), with the bytes of
/// content it may still bring (for the fetch window).
#[derive(Debug)]
enum Awaited {
    /// A whole-file Fetch: FileBegin, FileChunks, FileEnd.
    Fetch(u32, FetchJob),
    /// A FetchManifest: FileManifest and ChunkLists (of `deltas[id]`).
    Manifest(u32),
    /// The FetchChunks of `deltas[id]`: ChunkData frames, FileEnd.
    Chunks(u32),
}

impl Awaited {
    fn id(&self) -> u32 {
        match self {
            Awaited::Fetch(id, _) | Awaited::Manifest(id) | Awaited::Chunks(id) => *id,
        }
    }
}

/// One pull, from the request to the last placed file.
#[derive(Debug)]
pub struct PullJob {
    /// The `Pull`'s request ID (every batch carries it).
    pub request_id: u32,
    cursor: u64,
    head: u64,
    full: bool,
    entries: Vec<ChangeEntry>,
    listed: bool,
    queue: VecDeque<FetchJob>,
    /// Delta downloads asked again because a local chunk failed its
    /// re-hash while copied (at most once each per job).
    asked_again: HashSet<WirePath>,
    outstanding: VecDeque<(Awaited, u64)>,
    outstanding_bytes: u64,
    /// Delta downloads in progress (§13.4), by request ID.
    deltas: HashMap<u32, DeltaDownload>,
    /// Open delta downloads that are not this pull's: the session's
    /// downloads of one-read uploads' chunk lists
    /// ([`crate::client::server_list`]), at most 2; R-13.4.4's four are
    /// shared.
    reserved: usize,
    /// The server serves delta downloads (not refused in this run).
    use_deltas: bool,
    /// Ask for lists with 16-byte IDs (FetchShortManifest, §13.6).
    short_ids: bool,
    /// Ask with FetchManifestSince (§13.7) for files whose held content's
    /// list the chunk index has: the server is not known to be older.
    list_deltas: bool,
    /// Those lists, by path, for the queued downloads (taken when asked).
    bases: HashMap<crate::protocol::WirePath, Manifest>,
    /// The folder holds a file above one minimum chunk: a delta download
    /// may find chunks here. Without one (a new device's first sync) files
    /// come whole, with no chunk list round trip.
    local_chunks: bool,
    /// Queued downloads whose content a cut-off download left in the
    /// partial area ([`kept`]): resumed as delta downloads.
    kept: HashSet<WirePath>,
    download: Option<Download>,
    /// Verified downloads whose fsync runs ([`durable`]), by their key.
    syncing: HashMap<u64, Verified>,
    syncer: Syncer,
    next_key: u64,
    /// Directories files were placed in: synced once before the pull ends.
    placed_in: BTreeSet<PathBuf>,
    /// The chunk index gained the lists of placed delta downloads: saved
    /// when the pull settles.
    chunks_changed: bool,
    failed: bool,
    /// Downloads that could not be written here: path and why.
    unwritable: Vec<(crate::protocol::WirePath, String)>,
    /// Downloads left out because their path is held back ([`Ctx::held`]).
    held_back: usize,
    /// Held-back paths ([`Ctx::held`]) placed by this pull, by whatever
    /// route (a download whose wait was over, a copy of local content):
    /// no longer held.
    placed_held: Vec<crate::protocol::WirePath>,
    /// Delta downloads dropped before their end (their file could not be
    /// written, or a chunk came damaged): their remaining ChunkData are
    /// dropped until their FileEnd (path and why).
    discarding: HashMap<u32, (crate::protocol::WirePath, Dropped)>,
    result: Applied,
    transfer: Option<Transfer>,
    first: bool,
    verbosity: Verbosity,
    /// The reply was cut to its `.cloudignore` entry: pull again.
    rules_first: bool,
    /// Asked with PullModes: the reply's entries carry the executable bit.
    modes: bool,
    /// Asked with PullChecked (§5.8): a `History` frame comes first.
    checked: bool,
    /// That frame, once it came.
    history: Option<History>,
    /// A diverged reply waits for the server's kept versions before it is
    /// reconciled and applied ([`kept_scan`]).
    scan: Option<KeptScan>,
    /// Rules changed on disk since the pull began ([`RuleSource::peek`]).
    peeked: Option<Peeked>,
    /// Files the reply deleted, kept in the temporary area as chunk
    /// sources for its delta downloads: removed when the pull
    /// settles or ends.
    donors: Vec<Donor>,
}

/// What a finished pull reports.
#[derive(Debug)]
pub struct Finished {
    /// The reply's head: the cursor to acknowledge, unless `failed`.
    pub head: u64,
    /// The reply was a full listing.
    pub full: bool,
    /// Something could not be applied or downloaded: do not advance the cursor.
    pub failed: bool,
    /// Local paths to push (kept edits, conflict copies).
    pub dirty: BTreeSet<crate::protocol::WirePath>,
    /// Paths pushed before they are pulled ([`Applied::deferred`]).
    pub deferred: BTreeSet<crate::protocol::WirePath>,
    /// Paths changed on disk.
    pub changed: usize,
    /// Paths whose change could not be applied or placed, with why
    /// ([`super::applier::failure_why`]).
    pub failures: std::collections::BTreeMap<crate::protocol::WirePath, String>,
    /// Paths whose change waits for a program writing there
    /// ([`Applied::held_open`], R-5.7.4).
    pub held_open: BTreeSet<crate::protocol::WirePath>,
    /// Only the reply's `.cloudignore` entry was applied: do not advance
    /// the cursor; pull again under the new rules.
    pub rules_first: bool,
    /// Downloads that could not be written here: path and why.
    pub unwritable: Vec<(crate::protocol::WirePath, String)>,
    /// Downloads left out because their path waits.
    pub held_back: usize,
    /// Held-back paths placed by this pull, by whatever route.
    pub placed_held: Vec<crate::protocol::WirePath>,
    /// The reply's `History` frame (a PullChecked, §5.8).
    pub history: Option<History>,
}

impl PullJob {
    /// Delta downloads of this pull ask for lists with 16-byte chunk IDs
    /// (FetchShortManifest, §13.6) when `short_ids`.
    pub fn with_short_ids(mut self, short_ids: bool) -> PullJob {
        self.short_ids = short_ids;
        self
    }

    /// Delta downloads of files this device holds an older content of ask
    /// for the list relative to that content's list (FetchManifestSince,
    /// §13.7) when `list_deltas` (and `short_ids`).
    pub fn with_list_deltas(mut self, list_deltas: bool) -> PullJob {
        self.list_deltas = list_deltas;
        self
    }

    /// Sends `PullModes{cursor}` (with `modes`, §15.2) or `Pull{cursor}`.
    /// Files are made durable by `pool` (the client's, for its run).
    ///
    /// # Errors
    /// When the write fails.
    pub fn start(
        conn: &mut Connection,
        (cursor, modes, use_deltas): (u64, bool, bool),
        (first, verbosity): (bool, Verbosity),
        pool: SyncPool,
    ) -> Result<PullJob, ClientError> {
        let request_id = if modes {
            conn.request(Message::PullModes { cursor })?
        } else {
            conn.request(Message::Pull { cursor })?
        };
        Ok(PullJob::new(
            request_id,
            (cursor, modes, use_deltas),
            (first, verbosity),
            pool,
        ))
    }

    /// Sends `PullChecked` (§5.8) from `point` ([`Index::pull_point`]:
    /// cursor, checked change, its tag); the reply's entries carry modes.
    ///
    /// # Errors
    /// When the write fails.
    pub fn start_checked(
        conn: &mut Connection,
        (point, use_deltas): ((u64, u64, u64), bool),
        (first, verbosity): (bool, Verbosity),
        pool: SyncPool,
    ) -> Result<PullJob, ClientError> {
        let (cursor, check_seq, check_tag) = point;
        let ask = PullChecked {
            cursor,
            check_seq,
            check_tag,
        };
        let request_id = conn.request(Message::PullChecked(ask))?;
        let mut job = PullJob::new(
            request_id,
            (cursor, true, use_deltas),
            (first, verbosity),
            pool,
        );
        job.checked = true;
        Ok(job)
    }

    fn new(
        request_id: u32,
        (cursor, modes, use_deltas): (u64, bool, bool),
        (first, verbosity): (bool, Verbosity),
        pool: SyncPool,
    ) -> PullJob {
        PullJob {
            request_id,
            cursor,
            head: 0,
            full: false,
            entries: Vec::new(),
            listed: false,
            queue: VecDeque::new(),
            asked_again: HashSet::new(),
            outstanding: VecDeque::new(),
            outstanding_bytes: 0,
            deltas: HashMap::new(),
            reserved: 0,
            use_deltas,
            short_ids: false,
            list_deltas: false,
            bases: HashMap::new(),
            local_chunks: false,
            kept: HashSet::new(),
            download: None,
            syncing: HashMap::new(),
            syncer: Syncer::new(pool),
            next_key: 0,
            placed_in: BTreeSet::new(),
            chunks_changed: false,
            failed: false,
            unwritable: Vec::new(),
            held_back: 0,
            placed_held: Vec::new(),
            discarding: HashMap::new(),
            result: Applied::default(),
            transfer: None,
            first,
            verbosity,
            rules_first: false,
            modes,
            checked: false,
            history: None,
            scan: None,
            peeked: None,
            donors: Vec::new(),
        }
    }

    /// The `Pull`'s request ID while its reply (its last batch) has not
    /// come in full; `None` once it has (R-9.2.4: a reply to a later
    /// request then proves the rest of it lost).
    pub fn awaiting_reply(&self) -> Option<u32> {
        if let Some(scan) = &self.scan {
            return Some(scan.request);
        }
        (!self.listed).then_some(self.request_id)
    }

    /// Whether this pull waits for the server: its reply has not come in
    /// full, or chunks it fetched have not all arrived (a download).
    pub fn awaits_server(&self) -> bool {
        !self.listed || !self.outstanding.is_empty()
    }

    /// Delta downloads this pull has open.
    pub fn open_deltas(&self) -> usize {
        self.deltas.len()
    }

    /// Open delta downloads the session holds beside this pull's; the
    /// pull opens at most the rest of R-13.4.4's four (at least one).
    pub fn set_reserved(&mut self, reserved: usize) {
        self.reserved = reserved;
    }

    /// True when `request_id` answers this pull or one of its fetches.
    pub fn owns(&self, request_id: u32) -> bool {
        request_id == self.request_id
            || self.scan.as_ref().is_some_and(|s| s.request == request_id)
            || self
                .outstanding
                .front()
                .is_some_and(|(a, _)| a.id() == request_id)
    }

    /// Handles a frame addressed to this pull.
    ///
    /// # Errors
    /// `Protocol` for a reply that breaks the protocol; I/O errors on the
    /// temporary area.
    pub fn on_frame(
        &mut self,
        frame: Frame,
        conn: &mut Connection,
        ctx: &mut Ctx<'_>,
    ) -> Result<(), ClientError> {
        self.handle(frame, conn, ctx)?;
        if self.listed
            && self.scan.is_none()
            && self.queue.is_empty()
            && self.outstanding.is_empty()
        {
            self.settle(ctx);
        }
        Ok(())
    }

    fn handle(
        &mut self,
        frame: Frame,
        conn: &mut Connection,
        ctx: &mut Ctx<'_>,
    ) -> Result<(), ClientError> {
        if let Some(scan) = self.scan.as_mut().filter(|s| s.request == frame.request_id) {
            if scan.on_message(frame.message, conn, ctx.index)? == Scanned::More {
                return Ok(());
            }
            let Some(scan) = self.scan.take() else {
                return Ok(());
            };
            let (h, entries, known) = scan.finish();
            self.reconcile(&entries, h, &known, ctx);
            return self.apply_listing(entries, conn, ctx);
        }
        if frame.request_id == self.request_id {
            return match frame.message {
                Message::History(h) if self.checked && self.history.is_none() => {
                    if h.diverged {
                        log::debug!(
                            "pull from {}: the server's history differs from this device's after {} (head {})",
                            self.cursor, h.common, h.head
                        );
                    }
                    self.history = Some(h);
                    Ok(())
                }
                Message::ModeBatch(_) if self.checked && self.history.is_none() => Err(
                    ClientError::Protocol("a PullChecked reply without its History frame".into()),
                ),
                Message::ChangeBatch(batch) if !self.modes => self.on_batch(batch, conn, ctx),
                Message::ModeBatch(batch) if self.modes => self.on_batch(batch, conn, ctx),
                Message::Error(e) => Err(ClientError::Protocol(format!(
                    "pull refused: {:?} {}",
                    e.code, e.message
                ))),
                other => Err(unexpected(&other)),
            };
        }
        if matches!(
            self.outstanding.front(),
            Some((Awaited::Manifest(_) | Awaited::Chunks(_), _))
        ) {
            return self.on_delta_frame(frame, conn, ctx);
        }
        match frame.message {
            Message::FileBegin(begin) => self.on_begin(begin, ctx),
            Message::FileChunk(data) => self.on_chunk(data),
            Message::FileEnd => {
                self.on_end(ctx)?;
                self.fill_window(conn)
            }
            Message::Error(e) => {
                if let Some(Awaited::Fetch(_, job)) = self.pop_awaited() {
                    if e.code == ErrorCode::NotFound {
                        log::debug!("{} is gone on the server; the next pull says why", job.path);
                    } else if e.code == ErrorCode::Storage {
                        // The server cannot serve its copy (missing or
                        // damaged there, changed on its disk,
                        // held back with R-5.6.8's growing wait
                        // and named, not asked for again at every pull.
                        log::warn!("could not download {}: {}", job.path, e.message);
                        self.unwritable(job.path, e.message);
                    } else {
                        log::warn!("could not download {}: {}", job.path, e.message);
                        self.failed = true;
                    }
                }
                self.drop_download();
                self.fill_window(conn)
            }
            other => Err(unexpected(&other)),
        }
    }

    /// A frame of a delta download (§13.4): the manifest reply, then the
    /// chunks. The download whose reply is due is at the window's front.
    fn on_delta_frame(
        &mut self,
        frame: Frame,
        conn: &mut Connection,
        ctx: &mut Ctx<'_>,
    ) -> Result<(), ClientError> {
        let Some((awaited, _)) = self.outstanding.front() else {
            return Err(unexpected(&frame.message));
        };
        let (id, listing) = match awaited {
            Awaited::Manifest(id) => (*id, true),
            Awaited::Chunks(id) => (*id, false),
            Awaited::Fetch(..) => return Err(unexpected(&frame.message)),
        };
        if self.discarding.contains_key(&id) {
            return self.on_discarded_frame(id, frame.message, conn);
        }
        let Some(download) = self.deltas.get_mut(&id) else {
            return Err(unexpected(&frame.message));
        };
        match frame.message {
            Message::FileManifest(header) if listing => download.on_header(header)?,
            Message::ChunkList(entries) if listing => download.on_list(&entries, IdLen::Full)?,
            Message::ShortChunkList(entries) if listing => {
                let entries: Vec<_> = entries.into_iter().map(|e| e.to_entry()).collect();
                download.on_list(&entries, IdLen::Short)?
            }
            Message::ChunkListDelta(delta) if listing => download.on_list_delta(&delta)?,
            Message::ChunkData(chunk) if !listing => match download.on_chunk(&chunk) {
                Ok(n) => {
                    if let Some(t) = self.transfer.as_mut() {
                        t.add_bytes(n);
                    }
                }
                Err(ClientError::DamagedChunk(why)) => {
                    // a chunk whose bytes are not its BLAKE3 (the
                    // server's copy is damaged) is not written; the download
                    // fails as if answered Error `Storage`: its verified
                    // chunks stay for the next try, the rest of its chunks
                    // are dropped as they come, the connection stays.
                    if let Some(d) = self.deltas.remove(&id) {
                        let path = d.job.path.clone();
                        d.suspend();
                        self.discarding.insert(id, (path, Dropped::Damaged(why)));
                    }
                }
                Err(e) => {
                    let Some(why) = e.write_failure() else {
                        return Err(e);
                    };
                    // this file cannot be written here; its build
                    // goes (kept, it would hold the full disk) and the rest
                    // of its chunks are dropped as they come.
                    if let Some(d) = self.deltas.remove(&id) {
                        let path = d.job.path.clone();
                        d.discard();
                        self.discarding.insert(id, (path, Dropped::Unwritable(why)));
                    }
                }
            },
            Message::FileEnd if !listing => return self.delta_done(id, conn, ctx),
            Message::Error(e) => {
                self.pop_awaited();
                // Its verified chunks stay for the next try.
                let path = self.deltas.remove(&id).map(|d| {
                    let path = d.job.path.clone();
                    d.suspend();
                    path
                });
                let wire = path;
                let path = wire.as_ref().map(|p| p.to_string()).unwrap_or_default();
                match e.code {
                    ErrorCode::NotFound => {
                        log::debug!("{path} is gone on the server; the next pull says why");
                    }
                    // A server without short lists: it closes;
                    // the next connection asks with FetchManifest.
                    ErrorCode::BadFrame
                        if listing && e.message.contains("unsupported protocol version 4") =>
                    {
                        log::warn!(
                            "the server does not serve 16-byte chunk IDs ({}): asking for 32-byte ones",
                            e.message
                        );
                        *ctx.short_ids_refused = true;
                        return Err(ClientError::ConnectionLost(format!(
                            "server refused a short chunk list: {}",
                            e.message
                        )));
                    }
                    // A server without delta downloads (§13.4): it closes;
                    // the next connection downloads whole files.
                    ErrorCode::BadFrame | ErrorCode::WrongPhase if listing => {
                        log::warn!(
                            "the server does not serve delta downloads ({}): downloading whole files",
                            e.message
                        );
                        *ctx.deltas_refused = true;
                        return Err(ClientError::ConnectionLost(format!(
                            "server refused a delta download: {}",
                            e.message
                        )));
                    }
                    // As for a whole download.
                    ErrorCode::Storage if wire.is_some() => {
                        log::warn!("could not download {path}: {}", e.message);
                        if let Some(wire) = wire {
                            self.unwritable(wire, e.message);
                        }
                    }
                    _ => {
                        log::warn!("could not download {path}: {}", e.message);
                        self.failed = true;
                    }
                }
                return self.fill_window(conn);
            }
            other => return Err(unexpected(&other)),
        }
        if listing && self.deltas.get(&id).is_some_and(DeltaDownload::listed) {
            self.delta_listed(id, conn, ctx)?;
        }
        Ok(())
    }

    /// A frame of a delta download dropped before its end: chunks are
    /// dropped; its FileEnd (or an Error) ends it as a download that could
    /// not be written or that failed (a damaged chunk, R-13.4.5).
    fn on_discarded_frame(
        &mut self,
        id: u32,
        message: Message,
        conn: &mut Connection,
    ) -> Result<(), ClientError> {
        match message {
            Message::ChunkData(_) => Ok(()),
            Message::FileEnd | Message::Error(_) => {
                self.pop_awaited();
                match self.discarding.remove(&id) {
                    Some((path, Dropped::Unwritable(why))) => self.unwritable(path, why),
                    // Held back as a whole download that fails
                    // verification (on_end): the server sends the same
                    // damaged bytes at every try (breaker22 F2).
                    Some((path, Dropped::Damaged(why))) => {
                        log::warn!("could not download {path}: {why}");
                        self.unwritable(path, format!("{why} (the server's copy may be damaged)"));
                    }
                    None => {}
                }
                self.fill_window(conn)
            }
            other => Err(unexpected(&other)),
        }
    }

    /// A download that could not be written here: failed (the cursor stays),
    /// reported for the session's hold.
    fn unwritable(&mut self, path: crate::protocol::WirePath, why: String) {
        log::debug!("could not write the download of {path}: {why}");
        self.failed = true;
        if let Some(t) = self.transfer.as_mut() {
            t.file_done();
        }
        self.unwritable.push((path, why));
    }

    /// The whole chunk list is in: build what this device has, ask for the
    /// rest (the reply joins the back of the window).
    fn delta_listed(
        &mut self,
        id: u32,
        conn: &mut Connection,
        ctx: &mut Ctx<'_>,
    ) -> Result<(), ClientError> {
        self.pop_awaited();
        let index = ctx
            .chunks
            .get_or_insert_with(|| ChunkIndex::load(ctx.chunks_file));
        let root = ctx.root;
        // The reply's deleted files kept as chunk sources, under
        // their old paths, unless the folder holds a file there again.
        let donors: Vec<(crate::protocol::WirePath, std::path::PathBuf)> = self
            .donors
            .iter()
            .filter(|d| ctx.index.get(&d.path).is_none())
            .map(|d| (d.path.clone(), d.at.clone()))
            .collect();
        let donated = self
            .donors
            .iter()
            .filter(|d| ctx.index.get(&d.path).is_none())
            .map(|d| (&d.path, d.hash));
        let files = ctx
            .index
            .iter()
            .filter_map(|(path, entry)| match entry.kind {
                super::index::EntryKind::File { stat, hash } if wants_delta(stat.size) => {
                    Some((path, hash))
                }
                _ => None,
            })
            .chain(donated);
        let open = |p: &crate::protocol::WirePath| match donors.iter().find(|(d, _)| d == p) {
            Some((_, at)) => File::open(at),
            None => File::open(root.join(p.as_str())),
        };
        if index.refresh(files, open) > 0 {
            ctx.save_chunks();
        }
        let Some(index) = ctx.chunks.as_ref() else {
            return Ok(());
        };
        let Some(download) = self.deltas.get_mut(&id) else {
            return Ok(());
        };
        let sources = Sources {
            root,
            index,
            tmp: ctx.tmp,
            partial: ctx.partial,
            donors: &donors,
        };
        let name = format!("delta-{}-{id}", std::process::id());
        // Asked before anything local is copied: the chunks travel while
        // the build is filled from this device's files below.
        let frames = match download.ask(&sources, &name) {
            Ok(frames) => frames,
            Err(e) => {
                let Some(why) = e.write_failure() else {
                    return Err(e);
                };
                if let Some(d) = self.deltas.remove(&id) {
                    let path = d.job.path.clone();
                    d.discard();
                    self.unwritable(path, why);
                }
                return self.fill_window(conn);
            }
        };
        let missing = download.missing_bytes();
        for frame in frames {
            conn.send(id, &Message::FetchChunks(frame))?;
        }
        self.outstanding_bytes += missing;
        self.outstanding.push_back((Awaited::Chunks(id), missing));
        if let Err(e) = download.fill(&sources) {
            let Some(why) = e.write_failure() else {
                return Err(e);
            };
            // As a ChunkData that cannot be written: the build
            // is gone, the chunks asked are dropped as they come.
            if let Some(d) = self.deltas.remove(&id) {
                let path = d.job.path.clone();
                d.discard();
                self.discarding.insert(id, (path, Dropped::Unwritable(why)));
            }
        }
        Ok(())
    }

    /// `FileEnd` of a delta download: check the file whole and place it.
    fn delta_done(
        &mut self,
        id: u32,
        conn: &mut Connection,
        ctx: &mut Ctx<'_>,
    ) -> Result<(), ClientError> {
        self.pop_awaited();
        let Some(download) = self.deltas.remove(&id) else {
            return Err(ClientError::Protocol(
                "file end outside a file transfer".into(),
            ));
        };
        let job = download.job.clone();
        if download.local_chunks_failed() {
            // A chunk of this device's files changed since it was indexed
            // (DeltaDownload::ask asked for the rest before the copy found
            // out): asked again once, the next build resumes from this
            // one's verified chunks and fetches what is missing.
            download.suspend();
            if self.asked_again.insert(job.path.clone()) {
                log::debug!(
                    "{}: local chunks changed while copied; asking again",
                    job.path
                );
                self.queue.push_front(job);
            } else {
                log::warn!(
                    "could not download {}: local chunks kept changing",
                    job.path
                );
                self.failed = true;
            }
            return self.fill_window(conn);
        }
        let short = download.id_len() == IdLen::Short;
        let finished = match download.finish() {
            Ok(finished) => finished,
            Err(e) => {
                let Some(why) = e.write_failure() else {
                    return Err(e);
                };
                self.unwritable(job.path.clone(), why);
                return self.fill_window(conn);
            }
        };
        if finished.is_none() && short {
            // a 16-byte ID collision is the one honest cause; the
            // next download of this file asks for 32-byte IDs.
            *ctx.short_ids_refused = true;
        }
        match finished {
            Some(built) => {
                log::debug!(
                    "received {} as a delta: {} of {} bytes from this device, {} read back",
                    job.path,
                    built.reused,
                    job.size,
                    built.read_back
                );
                if let Some(t) = self.transfer.as_mut() {
                    t.add_bytes(built.reused);
                }
                // Synced where it was built (DeltaDownload::finish).
                let placed = self.place(
                    ctx,
                    Verified {
                        job: job.clone(),
                        tmp: built.tmp,
                        hash: built.hash,
                        version: built.version,
                        downloaded: true,
                        manifest: None,
                    },
                );
                // The list the server sent, verified with the whole file:
                // the next delta download needs not chunk this file again
                // (the index stays a hint: every chunk taken through it is
                // re-hashed as it is copied).
                if let (true, Some(index)) = (placed, ctx.chunks.as_mut()) {
                    index.record(&job.path, &built.manifest);
                    self.chunks_changed = true;
                }
            }
            // Asked again at once with 32-byte IDs (above).
            None if short => self.failed = true,
            // As a whole download that fails verification (on_end):
            // held back, not asked again at every pull.
            None => self.unwritable(
                job.path,
                "its bytes do not match the hash the server announced (the server's copy may be damaged)"
                    .to_owned(),
            ),
        }
        self.fill_window(conn)
    }

    fn on_batch(
        &mut self,
        batch: ChangeBatch,
        conn: &mut Connection,
        ctx: &mut Ctx<'_>,
    ) -> Result<(), ClientError> {
        if self.listed {
            return Err(ClientError::Protocol("batch after the last one".into()));
        }
        if self
            .history
            .is_some_and(|h| h.head != batch.head || (h.diverged && !batch.full))
        {
            return Err(ClientError::Protocol(
                "a batch disagrees with its History frame (R-5.8.2)".into(),
            ));
        }
        self.head = batch.head;
        self.full |= batch.full;
        if self.entries.len() + batch.entries.len() > MAX_REPLY_ENTRIES {
            return Err(ClientError::Protocol("pull reply too long".into()));
        }
        self.entries.extend(batch.entries);
        if !batch.last {
            return Ok(());
        }
        self.listed = true;
        let mut entries = std::mem::take(&mut self.entries);
        let rules_at = rules_change(&entries, ctx.index).filter(|_| ctx.may_defer_rules);
        if let Some(at) = rules_at {
            log::debug!("pull: {IGNORE_FILE} changes; applying it first");
            entries = vec![entries.swap_remove(at)];
            self.rules_first = true;
            // Only one entry of the listing: nothing else may read as gone.
            self.full = false;
        }
        let skipped = filter_reply(&mut entries, &mut *ctx.index, ctx.rules);
        if skipped > 0 {
            log::debug!("pull: {skipped} entries at ignored paths left alone");
        }
        if let Some(h) = self.history.filter(|h| h.diverged && !self.rules_first) {
            // reconciled once the server's kept versions are read,
            // when this device synced anything after `common`.
            if ctx.index.iter().any(|(_, e)| e.version > h.common) {
                self.scan = Some(KeptScan::start(conn, h, entries)?);
                return Ok(());
            }
            self.reconcile(&entries, h, &reconcile::Known::new(h.common), ctx);
        }
        self.apply_listing(entries, conn, ctx)
    }

    /// Applies the whole reply's `entries` and queues the downloads.
    fn apply_listing(
        &mut self,
        entries: Vec<ChangeEntry>,
        conn: &mut Connection,
        ctx: &mut Ctx<'_>,
    ) -> Result<(), ClientError> {
        if !entries.is_empty() || self.full {
            log::debug!(
                "pull from {}: {} entries{}, head {}",
                self.cursor,
                entries.len(),
                if self.full { " (full listing)" } else { "" },
                self.head
            );
        }
        for e in &entries {
            log::debug!("server: {} {:?} v{}", e.path, e.state, e.version);
        }
        let mut applied = ctx
            .applier()
            .with_modes(self.modes)
            .with_head(self.head)
            .handing_over_obtained()
            .keeping_donors()
            .apply(&entries, self.full)?;
        self.donors = std::mem::take(&mut applied.donors);
        for made in std::mem::take(&mut applied.obtained) {
            if let Some(job) = self.hold(ctx, made) {
                applied.fetches.push(job);
            }
        }
        self.result.changed += applied.changed;
        self.failed |= applied.failed;
        self.result.dirty.extend(applied.dirty);
        self.result.deferred.extend(applied.deferred);
        self.result.failures.append(&mut applied.failures);
        self.result.held_open.append(&mut applied.held_open);
        // A file below a directory whose whole path is too long for this
        // system (the folder's path in front, PATH_MAX) is not placed
        // here: the scanner and the watcher, which take whole paths, could
        // not see it change (README "Long paths"). It is not fetched, only
        // listed as failed, and the pull repeats as for any failure (a
        // free check then). Before, it was downloaded whole at every pull
        // only to fail at the rename (outside tester breaker15 F12: 20 MiB
        // every 2 s). A file whose own whole path alone is too long is
        // placed through a handle on its directory (breaker21 F3).
        let (unplaceable, placeable): (Vec<FetchJob>, Vec<FetchJob>) = applied
            .fetches
            .into_iter()
            .partition(|f| too_long_top(ctx.root, &f.path).is_some_and(|top| top != f.path));
        applied.fetches = placeable;
        for f in unplaceable {
            log::debug!("{}: path too long here; not downloaded", f.path);
            let why = too_long_why(ctx.root, &f.path);
            self.result.failures.insert(f.path, why);
            self.failed = true;
        }
        if !applied.fetches.is_empty() {
            let bytes = applied.fetches.iter().map(|f| f.size).sum();
            self.transfer = Some(Transfer::start(
                "download",
                applied.fetches.len() as u64,
                bytes,
                self.first,
                self.verbosity,
            ));
        }
        let now = std::time::Instant::now();
        let (held, fetches): (Vec<FetchJob>, Vec<FetchJob>) = applied
            .fetches
            .into_iter()
            .partition(|f| ctx.held.blocks(&f.path, now));
        if !held.is_empty() {
            // their wait is not over; the cursor stays before them.
            for f in &held {
                if let Some((at, why)) = ctx.held.blocked_by(&f.path, now) {
                    log::debug!(
                        "{} is held back here ({at}: {why}); not downloaded before its next try",
                        f.path
                    );
                }
            }
            self.held_back += held.len();
            self.failed = true;
        }
        self.kept = fetches
            .iter()
            .filter(|f| self.use_deltas && wants_delta(f.size))
            .filter(|f| kept(ctx.partial, &f.path, &f.hash, f.size))
            .map(|f| f.path.clone())
            .collect();
        self.queue = fetches.into();
        self.local_chunks = !self.donors.is_empty()
            || ctx.index.iter().any(|(_, e)| {
                matches!(e.kind, super::index::EntryKind::File { stat, .. } if wants_delta(stat.size))
            });
        self.note_bases(ctx);
        self.fill_window(conn)
    }

    /// the server lost changes this device saw (up to `h.common`
    /// both agree): the index is set so that applying the listing and the
    /// pushes after it put back what the server lost ([`reconcile`]).
    fn reconcile(
        &mut self,
        entries: &[ChangeEntry],
        h: History,
        known: &reconcile::Known,
        ctx: &mut Ctx<'_>,
    ) {
        let root = ctx.root;
        let present = |path: &WirePath| {
            !matches!(
                super::fsutil::check_path(root, path),
                Ok(super::fsutil::Local::Absent)
            )
        };
        let done = reconcile::reconcile(entries, ctx.index, h.common, known, present);
        log::info!(
            "reconciling with the server's history: {} path(s) already agree, {} edit(s) and \
             {} deletion(s) to push again, {} path(s) the server lacks or changed too, {} \
             path(s) the server held after the restore and changed since (taken from it)",
            done.agreed,
            done.edits,
            done.deletions,
            done.unindexed,
            done.followed
        );
        self.result.dirty.extend(done.dirty);
    }

    /// The chunk lists of the contents this device holds at the queued
    /// delta downloads' paths, when the chunk index has them: those files
    /// are asked for with FetchManifestSince, so a changed file's
    /// list comes as a few runs and its new entries. The list is only the
    /// form of the answer: the build checks every chunk and the whole file.
    fn note_bases(&mut self, ctx: &mut Ctx<'_>) {
        if !(self.use_deltas && self.short_ids && self.list_deltas) {
            return;
        }
        let held: Vec<(crate::protocol::WirePath, ContentHash)> = self
            .queue
            .iter()
            .filter(|job| wants_delta(job.size))
            .filter_map(|job| {
                let hash = ctx.index.get(&job.path).and_then(|e| e.hash())?;
                Some((job.path.clone(), hash))
            })
            .collect();
        if held.is_empty() {
            return;
        }
        let index = ctx
            .chunks
            .get_or_insert_with(|| ChunkIndex::load(ctx.chunks_file));
        for (path, hash) in held {
            if let Some(list) = index.manifest_of(&path, hash) {
                self.bases.insert(path, list);
            }
        }
    }

    fn fill_window(&mut self, conn: &mut Connection) -> Result<(), ClientError> {
        while let Some(job) = self.queue.front() {
            let room = self.outstanding.is_empty()
                || (self.outstanding.len() < FETCH_WINDOW_COUNT
                    && self.outstanding_bytes + job.size <= FETCH_WINDOW_BYTES);
            if !room {
                break;
            }
            // Without local chunks a file comes whole (Fetch: no chunk list,
            // no FetchChunks round trip), unless a cut-off download of it
            // left bytes to resume from.
            let worth = self.local_chunks || self.kept.contains(&job.path);
            let delta = self.use_deltas && worth && wants_delta(job.size);
            // a fifth open delta download is refused (and the
            // connection closed), so the next one waits for a FileEnd.
            // Places the session's list downloads hold are not the pull's.
            let most = MAX_OPEN_DELTA_DOWNLOADS
                .saturating_sub(self.reserved)
                .max(1);
            if delta && self.deltas.len() >= most {
                break;
            }
            let Some(job) = self.queue.pop_front() else {
                break;
            };
            let size = job.size;
            let awaited = if delta {
                let ask = FetchManifest {
                    version: job.version,
                    path: job.path.clone(),
                };
                let base = match self.short_ids {
                    true => self.bases.remove(&job.path),
                    false => None,
                };
                let (id, download) = match (base, self.short_ids) {
                    (Some(base), _) => {
                        let since = FetchManifestSince {
                            version: ask.version,
                            base_hash: base.hash,
                            path: ask.path,
                        };
                        let id = conn.request(Message::FetchManifestSince(since))?;
                        (id, DeltaDownload::since(job, base))
                    }
                    (None, true) => {
                        let id = conn.request(Message::FetchShortManifest(ask))?;
                        (id, DeltaDownload::new(job, IdLen::Short))
                    }
                    (None, false) => {
                        let id = conn.request(Message::FetchManifest(ask))?;
                        (id, DeltaDownload::new(job, IdLen::Full))
                    }
                };
                self.deltas.insert(id, download);
                Awaited::Manifest(id)
            } else {
                let id = conn.request(Message::Fetch(Fetch {
                    version: job.version,
                    path: job.path.clone(),
                }))?;
                Awaited::Fetch(id, job)
            };
            self.outstanding_bytes += size;
            self.outstanding.push_back((awaited, size));
        }
        Ok(())
    }

    fn on_begin(&mut self, begin: FileBegin, ctx: &mut Ctx<'_>) -> Result<(), ClientError> {
        let Some((Awaited::Fetch(id, job), _)) = self.outstanding.front() else {
            return Err(ClientError::Protocol("file data nobody asked for".into()));
        };
        if begin.path != job.path || self.download.is_some() {
            return Err(ClientError::Protocol(format!(
                "fetch reply for {} while {} was asked",
                begin.path, job.path
            )));
        }
        let tmp = ctx.tmp.join(format!("fetch-{}-{id}", std::process::id()));
        // a large file is written where a cut-off download stays
        // for a resume (as a delta download, so only with a server that
        // serves them).
        let resumable = self.use_deltas && begin.size >= RESUMABLE && wants_delta(begin.size);
        let made = match resumable {
            true => PartialFetch::create(ctx.partial, &begin.path, &begin.hash, begin.size)
                .map(Sink::Partial),
            false => {
                // Buffer no more than the file needs (a 256 KiB buffer per
                // 4 KiB file costs an mmap and page faults each time).
                let buffer = usize::try_from(begin.size)
                    .unwrap_or(usize::MAX)
                    .clamp(8 * 1024, 256 * 1024);
                File::create(&tmp).map(|file| Sink::Tmp(BufWriter::with_capacity(buffer, file)))
            }
        };
        let (file, broken) = match made {
            Ok(file) => (Some(file), None),
            // the bytes are dropped as they come; FileEnd reports it.
            Err(e) => (None, Some(format!("create download file: {e}"))),
        };
        self.download = Some(Download {
            begin,
            file,
            tmp,
            hasher: blake3::Hasher::new(),
            written: 0,
            broken,
        });
        Ok(())
    }

    fn on_chunk(&mut self, data: Vec<u8>) -> Result<(), ClientError> {
        let Some(d) = self.download.as_mut() else {
            return Err(ClientError::Protocol(
                "chunk outside a file transfer".into(),
            ));
        };
        let total = d.written.checked_add(data.len() as u64);
        if total.is_none_or(|t| t > d.begin.size) {
            return Err(ClientError::Protocol(format!(
                "more bytes than announced for {}",
                d.begin.path
            )));
        }
        d.hasher.update(&data);
        d.written += data.len() as u64;
        if let Some(t) = self.transfer.as_mut() {
            t.add_bytes(data.len() as u64);
        }
        if let Some(file) = d.file.as_mut() {
            if let Err(e) = file.write(data) {
                // this file cannot be written here; what it took
                // goes now, the rest of its bytes are dropped.
                if let Some(file) = d.file.take() {
                    file.discard(&d.tmp);
                }
                d.broken = Some(format!("write download file: {e}"));
            }
        }
        Ok(())
    }

    fn on_end(&mut self, ctx: &mut Ctx<'_>) -> Result<(), ClientError> {
        let Some(d) = self.download.take() else {
            return Err(ClientError::Protocol(
                "file end outside a file transfer".into(),
            ));
        };
        let Some(Awaited::Fetch(_, job)) = self.pop_awaited() else {
            if let Some(file) = d.file {
                file.discard(&d.tmp);
            }
            return Err(ClientError::Protocol(
                "file end outside a file transfer".into(),
            ));
        };
        let hash = ContentHash(*d.hasher.finalize().as_bytes());
        let whole = d.written == d.begin.size && hash == d.begin.hash;
        let file = match (d.file, d.broken) {
            (Some(file), None) if !whole => {
                // The bytes do not match what the server announced: the
                // server's copy changed behind its back (a hand edit, a
                // damaged disk), or the link corrupted them. Held back
                // with the growing wait of a file that cannot be written
                // never fetched again at every pull: a damaged
                // 10 GiB file would otherwise be downloaded without end
                // (outside tester breaker22 F2).
                file.discard(&d.tmp);
                let why = if d.written == d.begin.size {
                    "its bytes do not match the hash the server announced (the server's copy may be damaged)".to_owned()
                } else {
                    format!(
                        "the server sent {} of the {} bytes it announced (the server's copy may be damaged)",
                        d.written, d.begin.size
                    )
                };
                log::warn!("download of {} failed verification: {why}", job.path);
                self.unwritable(job.path, why);
                return Ok(());
            }
            (Some(Sink::Tmp(file)), None) => file
                .into_inner()
                .map(|file| (file, None))
                .map_err(|e| e.into_error()),
            (Some(Sink::Partial(file)), None) => file.finish(&d.tmp, hash),
            (file, broken) => {
                if let Some(file) = file {
                    file.discard(&d.tmp);
                }
                Err(std::io::Error::other(broken.unwrap_or_default()))
            }
        };
        let (file, manifest): (File, Option<Manifest>) = match file {
            Ok(done) => done,
            Err(e) => {
                let _ = fs::remove_file(&d.tmp);
                let why = match e.kind() {
                    std::io::ErrorKind::Other => e.to_string(),
                    _ => format!("write download file: {e}"),
                };
                self.unwritable(job.path, why);
                return Ok(());
            }
        };
        // Placed once its fsync is back (`collect`), not before.
        let key = self.next_key;
        self.next_key += 1;
        self.syncer.submit(key, file);
        self.syncing.insert(
            key,
            Verified {
                job,
                tmp: d.tmp,
                hash,
                version: d.begin.version,
                downloaded: true,
                manifest,
            },
        );
        self.collect(ctx, false);
        Ok(())
    }

    /// A file the applier made from local content: fsynced by the pool like
    /// a download, placed when that is back (`collect`), so the pull never
    /// ends (and is never acknowledged) before it is durable.
    ///
    /// The file is opened again here ([`Obtained::reopen`]): none is open
    /// between the reply's apply and its turn at the fsync queue, so a
    /// reply of 20,000 renames holds no more descriptors than one of ten
    /// (breaker22 F3). One that is no longer the file made is removed and
    /// its job returned (`Some`), to be downloaded.
    fn hold(&mut self, ctx: &mut Ctx<'_>, made: Obtained) -> Option<FetchJob> {
        let file = match made.reopen() {
            Ok(file) => file,
            Err(e) => {
                log::info!(
                    "{} cannot be used for {} ({e}); it is downloaded",
                    made.tmp.display(),
                    made.job.path
                );
                let _ = fs::remove_file(&made.tmp);
                return Some(made.job);
            }
        };
        let Obtained { job, tmp, .. } = made;
        let key = self.next_key;
        self.next_key += 1;
        self.syncer.submit(key, file);
        self.syncing.insert(
            key,
            Verified {
                hash: job.hash,
                version: job.version,
                job,
                tmp,
                downloaded: false,
                manifest: None,
            },
        );
        self.collect(ctx, false);
        None
    }

    /// Places the downloads whose fsync is back: those ready now, then
    /// (with `all`, or while more than [`Syncer::limit`] wait) waiting for
    /// the rest. A failed fsync is a failed download (fetched again).
    fn collect(&mut self, ctx: &mut Ctx<'_>, all: bool) {
        loop {
            let wait = all || self.syncer.pending() > self.syncer.limit();
            let next = match wait {
                true => self.syncer.wait_done(),
                false => self.syncer.try_done(),
            };
            let Some((key, synced)) = next else {
                break;
            };
            let Some(mut v) = self.syncing.remove(&key) else {
                continue;
            };
            match synced {
                Ok(()) => {
                    let (path, manifest) = (v.job.path.clone(), v.manifest.take());
                    if self.place(ctx, v) {
                        self.record(ctx, &path, manifest);
                    }
                }
                Err(e) => {
                    log::warn!(
                        "could not write {}: {e}; it will be fetched again",
                        v.job.path
                    );
                    let _ = fs::remove_file(&v.tmp);
                    self.failed = true;
                    if crate::client::error::is_no_space(&e) {
                        let why = format!("sync download file: {e}");
                        self.unwritable.push((v.job.path.clone(), why));
                    }
                }
            }
        }
        if all {
            // Only if the fsync threads are gone: nothing more comes back.
            for (_, v) in self.syncing.drain() {
                log::warn!("{} was not synced; it will be fetched again", v.job.path);
                let _ = fs::remove_file(&v.tmp);
                self.failed = true;
            }
        }
    }

    /// Records in the chunk index the list of a placed file that came
    /// whole (cut as it came, [`super::fetch_partial`]), as a delta
    /// download's list is: its next edit's download asks for the list
    /// relative to it (§13.7), and nothing reads the file again to cut it.
    fn record(&mut self, ctx: &mut Ctx<'_>, path: &WirePath, manifest: Option<Manifest>) {
        let Some(manifest) = manifest else {
            return;
        };
        ctx.chunks
            .get_or_insert_with(|| ChunkIndex::load(ctx.chunks_file))
            .record(path, &manifest);
        self.chunks_changed = true;
    }

    /// Moves a verified, durable download into place and notes its
    /// directory (synced by `settle`). Returns whether it was placed.
    fn place(&mut self, ctx: &mut Ctx<'_>, v: Verified) -> bool {
        // An ignored path is never written by a pull, also when the rule
        // came (edited here, or pulled in this very reply) while the file
        // was downloading: checked now, against the rules on disk.
        let path = v.job.path.as_str();
        if ctx
            .source
            .peek(&mut self.peeked)
            .is_some_and(|rules| rules.ignores(path, false))
        {
            log::info!("not placing {path}: {IGNORE_FILE} ignores it now");
            let _ = fs::remove_file(&v.tmp);
            // Not acknowledged: the next pull runs under the new rules.
            self.failed = true;
            if let Some(t) = self.transfer.as_mut().filter(|_| v.downloaded) {
                t.file_done();
            }
            return false;
        }
        let placed = ctx
            .applier()
            .place(&v.job, &v.tmp, (v.hash, v.version), &mut self.result);
        let done = match placed {
            Ok(()) => {
                if ctx.held.holds(&v.job.path) {
                    self.placed_held.push(v.job.path.clone());
                }
                let dir = v.job.path.parent().map_or_else(
                    || ctx.root.to_path_buf(),
                    |parent| parent.to_local(ctx.root),
                );
                self.placed_in.insert(dir);
                true
            }
            Err(e) => {
                log::debug!("could not write {}: {e}", v.job.path);
                // held back like a download that did not fit, with
                // a growing wait. Any placement that failed does: one that
                // fails for a reason that does not pass (a read-only drive,
                // a directory this user may not write) was fetched again
                // whole at every pull (outside tester breaker16, F2).
                let why = match e.is_no_space() {
                    true => e.to_string(),
                    false => super::applier::failure_why(ctx.root, &v.job.path, &e),
                };
                self.unwritable.push((v.job.path.clone(), why));
                let _ = fs::remove_file(&v.tmp);
                let _ = fs::remove_file(super::applier::origin_note(&v.tmp));
                self.failed = true;
                false
            }
        };
        if let Some(t) = self.transfer.as_mut().filter(|_| v.downloaded) {
            t.file_done();
        }
        done
    }

    /// Every download is in: wait for the last fsyncs, place those files,
    /// and sync the directories they went into, so the cursor the session
    /// then saves never covers a file a crash could still lose.
    fn settle(&mut self, ctx: &mut Ctx<'_>) {
        self.collect(ctx, true);
        remove_donors(&mut self.donors);
        if std::mem::take(&mut self.chunks_changed) {
            ctx.save_chunks();
        }
        let dirs = std::mem::take(&mut self.placed_in);
        if let Err(e) = sync_dirs(dirs.iter().map(PathBuf::as_path)) {
            log::warn!("could not sync the folder's directories: {e}");
            self.failed = true;
        }
    }

    /// Takes the reply at the window's front off the window.
    fn pop_awaited(&mut self) -> Option<Awaited> {
        let (awaited, bytes) = self.outstanding.pop_front()?;
        self.outstanding_bytes -= bytes;
        Some(awaited)
    }

    /// The Fetch being received ends before its FileEnd (an Error, or the
    /// pull is abandoned): a file in the temporary area goes; one in the
    /// partial area stays, for a resume.
    fn drop_download(&mut self) {
        if let Some(d) = self.download.take() {
            match d.file {
                Some(Sink::Partial(file)) => drop(file),
                Some(file) => file.discard(&d.tmp),
                None => {}
            }
        }
    }

    /// Files this pull left out because their path waits.
    pub fn held_back(&self) -> usize {
        self.held_back
    }

    /// The pull ends with delta downloads unfinished (the connection was
    /// lost): their verified chunks stay for a resume.
    fn drop_deltas(&mut self) {
        for (_, d) in self.deltas.drain() {
            d.suspend();
        }
    }

    /// Files still to download (queued or requested).
    pub fn downloads_pending(&self) -> u64 {
        (self.queue.len() + self.outstanding.len() + self.syncing.len()) as u64
    }

    /// True once the reply is applied and every download placed.
    pub fn is_done(&self) -> bool {
        self.listed
            && self.scan.is_none()
            && self.queue.is_empty()
            && self.outstanding.is_empty()
            && self.syncing.is_empty()
            && self.placed_in.is_empty()
    }

    /// Ends the pull (finished or abandoned) and reports.
    pub fn finish(mut self) -> Finished {
        self.drop_download();
        self.drop_deltas();
        remove_donors(&mut self.donors);
        // Abandoned before their fsync came back: never placed.
        for (_, v) in self.syncing.drain() {
            let _ = fs::remove_file(&v.tmp);
            // A file taken from the stash carries its origin note.
            let _ = fs::remove_file(super::applier::origin_note(&v.tmp));
        }
        // What was placed stays placed: its renames are made durable too.
        if let Err(e) = sync_dirs(self.placed_in.iter().map(PathBuf::as_path)) {
            log::warn!("could not sync the folder's directories: {e}");
        }
        let complete = self.is_done();
        log::debug!("pull ends: {} file(s) fsynced", self.syncer.synced());
        if let Some(t) = self.transfer.take() {
            t.finish();
        }
        Finished {
            head: self.head,
            full: self.full,
            failed: self.failed || self.result.failed || !complete,
            rules_first: self.rules_first,
            dirty: std::mem::take(&mut self.result.dirty),
            deferred: std::mem::take(&mut self.result.deferred),
            changed: self.result.changed,
            failures: std::mem::take(&mut self.result.failures),
            held_open: std::mem::take(&mut self.result.held_open),
            unwritable: std::mem::take(&mut self.unwritable),
            held_back: self.held_back,
            placed_held: std::mem::take(&mut self.placed_held),
            history: self.history,
        }
    }
}

/// Why a delta download was dropped before its FileEnd.
#[derive(Debug)]
enum Dropped {
    /// Its file could not be written here: held back.
    Unwritable(String),
    /// A chunk's bytes were not its BLAKE3: failed, as an
    /// Error `Storage` would have it.
    Damaged(String),
}

fn unexpected(message: &Message) -> ClientError {
    ClientError::Protocol(format!("unexpected {:?} in a pull reply", message.kind()))
}

#[cfg(test)]
mod tests {
    //! The ack rule for files a pull makes from local content: placed only
    //! once their fsync is back, and the pull not done before.

    use super::*;
    use crate::client::fsutil::Stat;
    use crate::client::index::{Entry, EntryKind};
    use crate::protocol::{EntryState, WirePath};

    fn wp(s: &str) -> WirePath {
        WirePath::new(s).expect("test path")
    }

    #[test]
    fn files_made_from_local_content_wait_for_their_fsync_and_hold_the_pull() {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().join("sync");
        let tmp = dir.path().join("tmp");
        let partial = dir.path().join("partial");
        for d in [&root.join("a"), &tmp, &partial] {
            fs::create_dir_all(d).expect("dirs");
        }
        let data = crate::chunk::test_bytes(70_000, 3);
        fs::write(root.join("a/x"), &data).expect("write");
        let stat = Stat::of(&fs::metadata(root.join("a/x")).expect("stat"));
        let hash = ContentHash::of(&data);
        let mut index = Index::new();
        let as_dir = Entry {
            kind: EntryKind::Dir,
            version: 1,
        };
        index.insert(wp("a"), as_dir);
        index.insert(wp("a/x"), Entry::synced_file(stat, hash, 1));
        // A remote rename of a/x to b/y, and a new empty file.
        let file = |path: &str, size: u64, hash: ContentHash| ChangeEntry {
            path: wp(path),
            version: 2,
            state: EntryState::File { size, hash },
            executable: false,
        };
        let entries = vec![
            ChangeEntry {
                path: wp("a"),
                version: 2,
                state: EntryState::Deleted,
                executable: false,
            },
            ChangeEntry {
                path: wp("b"),
                version: 2,
                state: EntryState::Dir,
                executable: false,
            },
            // At another name: a/ did not move whole, the
            // file is taken from it.
            file("b/y", data.len() as u64, hash),
            file("e", 0, ContentHash::of(b"")),
        ];
        let source = RuleSource::load(&root);
        let rules = IgnoreRules::default();
        let (mut chunks, mut refused, mut short_refused) = (None, false, false);
        let mut ctx = Ctx {
            root: &root,
            tmp: &tmp,
            index: &mut index,
            me: 2,
            rules: &rules,
            source: &source,
            may_defer_rules: false,
            chunks: &mut chunks,
            chunks_file: &dir.path().join("chunks"),
            partial: &partial,
            deltas_refused: &mut refused,
            short_ids_refused: &mut short_refused,
            held: &HoldBack::default(),
        };
        let mut applied = ctx
            .applier()
            .handing_over_obtained()
            .apply(&entries, false)
            .expect("apply");
        assert!(applied.fetches.is_empty(), "nothing to download");
        assert_eq!(applied.obtained.len(), 2, "the copy and the empty file");

        let (pool, queue) = SyncPool::gated();
        let mut job = PullJob::new(9, (0, true, true), (false, Verbosity::Quiet), pool);
        job.listed = true;
        for made in std::mem::take(&mut applied.obtained) {
            assert!(job.hold(&mut ctx, made).is_none(), "still the file made");
        }
        // Their fsyncs have not run: nothing placed, the pull not done.
        assert!(!root.join("b/y").exists() && !root.join("e").exists());
        assert!(!job.is_done(), "a pull is not done before its fsyncs");
        assert_eq!(job.downloads_pending(), 2);
        let jobs: Vec<_> = queue.try_iter().collect();
        assert_eq!(jobs.len(), 2, "both went to the pool");
        for j in jobs {
            j.run();
        }
        job.settle(&mut ctx);
        assert!(job.is_done());
        assert_eq!(job.syncer.synced(), 2);
        assert_eq!(fs::read(root.join("b/y")).expect("placed"), data);
        assert_eq!(fs::read(root.join("e")).expect("placed"), b"");
        assert!(!root.join("a").exists());
        assert_eq!(ctx.index.get(&wp("b/y")).and_then(|e| e.hash()), Some(hash));
        let done = job.finish();
        assert!(!done.failed);
        assert_eq!(
            fs::read_dir(&tmp).expect("tmp").count(),
            0,
            "tmp/ left empty"
        );
    }
}
