//! One user's server-side state: the visible folder, the journal, the tree
//! rebuilt from it, the client registry and cursors. Owned by that user's actor.
//!
//! Layout under the data directory:
//! ```text
//! AllClients/<user>/                 the user's files, exactly, browsable
//! .cloudservice-server/<user>/journal   append-only change log
//! .cloudservice-server/<user>/tmp/      uploads in progress (emptied at start)
//! .cloudservice-server/<user>/clean     present only while the actor is stopped cleanly
//! .cloudservice-server/<user>/versions/ kept versions (§14, `versions`), change times (`times`)
//! .cloudservice-server/<user>/restore-intent  present only while a restore places its entries (R-14.3.7)
//! ```
//!
//! The store owns every byte on disk: `upload` receives a pushed file into
//! `tmp/`, `apply` places it (and applies the other pushes), `fetch` reads
//! a file for a Fetch, `journal`/`compact`/`recover` keep the change log,
//! `changes` answers pulls, `tree` is the in-memory tree, `error` the
//! failures and their wire codes. Every path inside the folder goes
//! through [`crate::fsafe`] (no symlink followed).

mod apply;
mod changes;
mod compact;
pub mod delta;
mod error;
mod fetch;
mod history;
pub mod journal;
mod known;
mod lineage;
mod live;
mod lost;
mod recover;
mod restore_intent;
mod restore_plan;
#[cfg(test)]
mod restore_tests;
mod seen;
pub mod times;
pub mod tree;
mod upload;
pub mod versions;

pub use changes::Listing;
pub use error::{reason, StoreError};
pub use fetch::FileReader;
pub use recover::Reexamined;
pub use restore_intent::IntentTooBig;
pub use upload::{StagedFile, Upload};

use crate::fsafe;

use crate::protocol::{ClientId, UserId, WirePath};
use journal::{Journal, Record};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use tree::{NodeKind, Tree};

/// The file in a user's state folder that says a restore is under way
/// ([`restore_intent`]).
const RESTORE_INTENT: &str = "restore-intent";

/// The author recorded for restored changes: none (client 0, as for an
/// unseen move, §7.2 R-7.2.3), so no device's older copy counts as based on
/// them (R-14.3.3).
const RESTORE_AUTHOR: ClientId = 0;

/// Where the data directory keeps users' files and state.
#[derive(Debug, Clone)]
pub struct DataPaths {
    /// The data directory.
    pub base: PathBuf,
}

impl DataPaths {
    /// `base/AllClients`.
    pub fn all_clients(&self) -> PathBuf {
        self.base.join("AllClients")
    }

    /// `base/.cloudservice-server`.
    pub fn state_root(&self) -> PathBuf {
        self.base.join(".cloudservice-server")
    }

    /// A user's visible folder.
    pub fn user_root(&self, user: &UserId) -> PathBuf {
        self.all_clients().join(user.to_string())
    }

    /// A user's state folder.
    pub fn user_state(&self, user: &UserId) -> PathBuf {
        self.state_root().join(user.to_string())
    }
}

/// A change with its sequence number and the paths it touched, for pulls.
/// `removed` marks a path whose previous content went away (a Remove, the
/// source of a Rename, a tombstone): if something is at that path again, a
/// pull must still tell the client to drop what it had there.
#[derive(Debug, Clone)]
struct Touch {
    seq: u64,
    paths: Vec<(WirePath, bool)>,
}

/// How opening went, for the operational log.
#[derive(Debug, Default, Clone, Copy)]
pub struct OpenReport {
    /// Records replayed from the journal.
    pub replayed: usize,
    /// Bytes cut from a torn journal tail.
    pub dropped_bytes: u64,
    /// The previous run did not stop cleanly, so the folder was re-scanned.
    pub recovered: bool,
    /// Changes the re-scan found and journaled.
    pub repaired: usize,
    /// Files the journal lists that the folder lacks (R-10.5), after a
    /// clean stop: kept listed, not served.
    pub lost: usize,
    /// Entries the start's comparison looked at (R-10.4).
    pub entries: usize,
    /// Bytes it hashed: only files whose size or mtime differ.
    pub hashed_bytes: u64,
    /// How long the comparison took.
    pub took: std::time::Duration,
}

/// How long the partial build of an interrupted delta upload is kept for a
/// resume: a week (removed at the next open of the user's state after it).
pub const PARTIAL_KEEP: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

/// A user's state, open for reading and changing.
pub struct UserStore {
    root: PathBuf,
    state_dir: PathBuf,
    tmp_dir: PathBuf,
    /// Partial builds of interrupted delta uploads (resume, §13.3): kept
    /// across connections and restarts, unlike `tmp_dir`.
    partial_dir: PathBuf,
    tree: Tree,
    journal: Journal,
    history: Vec<Touch>,
    /// Changes from this sequence number on are all in `history`; a client
    /// at an older cursor gets a full listing (1 until a compaction).
    history_from: u64,
    /// The tag of each change (§5.8): which history this journal holds.
    lineage: lineage::Lineage,
    /// Records in the journal file (replayed + appended), to decide compaction.
    journal_records: usize,
    head: u64,
    clients: BTreeMap<ClientId, u64>,
    /// Each device's last partial acknowledgement (R-5.3.4), in memory.
    partials: seen::Partials,
    /// Which device pushed each change (by sequence number), so a device's
    /// own earlier pushes never count as someone else's change (§7.2).
    /// Changes of unknown author (a re-scan, an old journal) are absent.
    authors: HashMap<u64, ClientId>,
    /// The last journaled intent not yet followed by a change: the one push
    /// that may have changed the folder without its records (a crash), so
    /// the re-scan can attribute it (§7.2). Only read when reconciling.
    intent: Option<(ClientId, WirePath)>,
    /// The source of the rename `intent` announces ([`Record::MoveIntent`]):
    /// the one path besides the intent's own that the crash may have taken
    /// away. Only read when reconciling.
    intent_from: Option<WirePath>,
    /// Per (device, path of a file that was in the way): the directory
    /// where that device's pushed subtree went instead (§7.4), so every
    /// later push below the same path lands in the same conflict directory.
    /// Kept while the user's state is open.
    conflict_dirs: HashMap<(ClientId, WirePath), WirePath>,
    durable: bool,
    /// Directories whose entries changed since the last flush (fsynced by
    /// `flush` when durable).
    dirty_dirs: std::collections::BTreeSet<Option<WirePath>>,
    /// What pushes displace is kept here (§14).
    versions: versions::VersionDir,
    /// When each change was made (for a restore "at a moment", §14.3).
    times: times::ChangeTimes,
    /// `--versions-space` (u64::MAX: not checked as versions are kept).
    versions_limit: u64,
    /// Bytes of kept content, when counted since the last reap request.
    kept_bytes: Option<u64>,
    /// The kept versions passed `versions_limit` since the actor last asked.
    reap_wanted: bool,
    /// Files the tree lists whose server copy is missing or damaged
    /// (R-10.5): never served; a push or removal of the path ends it.
    /// Found again at every start (missing) or fetch (damaged).
    lost: BTreeMap<WirePath, recover::Lost>,
    /// A file became lost while the server runs (a fetch or a push found
    /// it missing or damaged) since the actor last asked
    /// ([`UserStore::take_lost_news`]): every device is told with a
    /// `Notify`, so one that holds it asks `ListLost` (R-4.4.4, R-10.11).
    lost_news: bool,
    /// Lost files put back by uploads since the actor last asked
    /// ([`UserStore::take_restored`]): path, version, device.
    restored: Vec<(WirePath, u64, ClientId)>,
    /// The restore a crash cut off, read from its intent at start and
    /// finished before the store serves anything (R-14.3.7).
    resume: Option<restore_intent::RestoreIntent>,
    /// Unit tests: a restore stops (as a crash would, its intent left)
    /// once it placed this many entries.
    #[cfg(test)]
    crash_after: Option<usize>,
    /// The files placed by the server as a `stat` saw them then, so a push
    /// that displaces one reads it only if it changed (R-14.1.4).
    known: known::KnownFiles,
}

impl UserStore {
    /// Opens a user's state, creating it when `create` is set, replaying the
    /// journal and, after an unclean stop, reconciling the tree with the folder.
    ///
    /// # Errors
    /// [`StoreError::UnknownUser`] when the user does not exist and `create`
    /// is not set; I/O errors.
    pub fn open(
        paths: &DataPaths,
        user: &UserId,
        create: bool,
        durable: bool,
    ) -> Result<(UserStore, OpenReport), StoreError> {
        let root = paths.user_root(user);
        let state_dir = paths.user_state(user);
        // A user being created has no journal yet and nothing in its folder
        // (the actor makes the state folder first, to take its owner lock,
        // so the folder's existence says nothing): there is nothing to
        // recover and no warning to give.
        let fresh = create
            && !state_dir.join("journal").exists()
            && std::fs::read_dir(&root).map_or(true, |mut entries| entries.next().is_none());
        if create {
            crate::private_dir::create_all(&root)?;
            crate::private_dir::create_all(&state_dir)?;
        } else if !root.is_dir() || !state_dir.is_dir() {
            return Err(StoreError::UnknownUser);
        }
        let tmp_dir = state_dir.join("tmp");
        if tmp_dir.exists() {
            std::fs::remove_dir_all(&tmp_dir)?;
        }
        crate::private_dir::create_all(&tmp_dir)?;
        let partial_dir = state_dir.join("partial");
        crate::private_dir::create_all(&partial_dir)?;
        crate::chunk::index::drop_stale_partials(&partial_dir, PARTIAL_KEEP);
        let replay = Journal::open(&state_dir.join("journal"))?;
        let versions = versions::VersionDir::open(&state_dir)?;
        let times = times::ChangeTimes::open(&state_dir.join("versions"))?;
        let clean_marker = state_dir.join("clean");
        let was_clean = clean_marker.exists();
        if was_clean {
            std::fs::remove_file(&clean_marker)?;
        }
        let known = known::KnownFiles::open(&state_dir, &tmp_dir);
        let mut store = UserStore {
            root,
            state_dir,
            tmp_dir,
            partial_dir,
            tree: Tree::default(),
            journal: replay.journal,
            history: Vec::new(),
            history_from: 1,
            lineage: lineage::Lineage::default(),
            journal_records: replay.records.len(),
            head: 0,
            clients: BTreeMap::new(),
            partials: seen::Partials::default(),
            authors: HashMap::new(),
            intent: None,
            intent_from: None,
            conflict_dirs: HashMap::new(),
            durable,
            dirty_dirs: std::collections::BTreeSet::new(),
            versions,
            times,
            versions_limit: u64::MAX,
            kept_bytes: None,
            reap_wanted: false,
            lost: BTreeMap::new(),
            lost_news: false,
            restored: Vec::new(),
            resume: None,
            #[cfg(test)]
            crash_after: None,
            known,
        };
        let mut report = OpenReport {
            replayed: replay.records.len(),
            dropped_bytes: replay.dropped_bytes,
            ..OpenReport::default()
        };
        for record in &replay.records {
            store.apply_record(record);
        }
        // A compacted journal lists nodes in path order: put the history
        // back in sequence order for pulls.
        store.history.sort_by_key(|t| t.seq);
        let tree = &store.tree;
        store.known.load(|path, hash, size| {
            matches!(tree.get(path).map(|n| n.kind),
                Some(NodeKind::File { hash: h, size: s, .. }) if (h, s) == (hash, size))
        });
        // Every start compares the folder with the journal (R-10.4): after
        // a clean stop too, since the folder is a plain folder that the
        // operator may have changed while the server was stopped.
        if !fresh {
            let unclean = !was_clean || replay.dropped_bytes > 0;
            let started = std::time::Instant::now();
            // A restore cut off by the stop (R-14.3.7): read first, so the
            // comparison knows the file it was writing is the restore's.
            store.load_cut_restore();
            let found = store.reconcile(unclean)?;
            // R-10.5: damage at the journaled size and mtime is invisible
            // to the comparison; a bounded share of the files is hashed
            // at each start, where the previous start stopped.
            store.verify_some(lost::START_VERIFY_BYTES, lost::START_VERIFY_FILES);
            store.finish_cut_restore();
            store.flush()?;
            report.recovered = unclean;
            report.repaired = found.changes;
            report.lost = found.lost;
            report.entries = found.entries;
            report.hashed_bytes = found.hashed_bytes;
            report.took = started.elapsed();
        }
        // A worker started again for connections that stayed open (it
        // retired, `--actor-idle`) tells them of files lost meanwhile: they
        // learned of them at no reconnection (R-4.4.4).
        store.lost_news = !store.lost.is_empty();
        Ok((store, report))
    }

    /// The user's visible folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The newest sequence number.
    pub fn head(&self) -> u64 {
        self.head
    }

    /// The tree as journaled.
    pub fn tree(&self) -> &Tree {
        &self.tree
    }

    /// Whether `--fsync` durability is on.
    pub fn durable(&self) -> bool {
        self.durable
    }

    /// Registers a new device and returns its ID.
    ///
    /// # Errors
    /// The journal append failed.
    pub fn add_client(&mut self) -> Result<ClientId, StoreError> {
        let client = self.next_client();
        self.record(Record::ClientAdded { client })?;
        Ok(client)
    }

    /// The ID [`UserStore::add_client`] will give out next.
    pub fn next_client(&self) -> ClientId {
        self.clients.keys().next_back().copied().unwrap_or(0) + 1
    }

    /// Whether `client` is registered.
    pub fn has_client(&self, client: ClientId) -> bool {
        self.clients.contains_key(&client)
    }

    /// Records that `client` applied everything up to `cursor`.
    ///
    /// # Errors
    /// The journal append failed.
    pub fn set_cursor(&mut self, client: ClientId, cursor: u64) -> Result<(), StoreError> {
        let cursor = cursor.min(self.head);
        self.partials.acknowledged(client);
        if self.clients.get(&client) == Some(&cursor) {
            return Ok(());
        }
        self.record(Record::Cursor { client, cursor })
    }

    /// Records that `client` applied everything up to `cursor` except the
    /// entries at or below `held`, which it left to its push (a
    /// `PartialAck`, R-5.3.4). Not journaled: its cursor for the journal
    /// stays the last full Ack's, and after a restart only that counts.
    pub fn set_partial_cursor(&mut self, client: ClientId, cursor: u64, held: Vec<WirePath>) {
        self.partials.record(client, cursor.min(self.head), held);
    }

    /// Makes appended records safe against a process crash (and, with
    /// `--fsync`, against power loss). Acknowledgements wait for this.
    ///
    /// # Errors
    /// The write or fsync failed.
    pub fn flush(&mut self) -> Result<(), StoreError> {
        for dir in std::mem::take(&mut self.dirty_dirs) {
            fsafe::sync_dir(&self.root, dir.as_ref())?;
        }
        // The change times noted this cycle, in one append (advisory).
        let times = if self.durable {
            self.times.sync()
        } else {
            self.times.write_out()
        };
        if let Err(e) = times {
            log::warn!("cannot write the change times: {e}");
        }
        Ok(self.journal.flush(self.durable)?)
    }

    /// Notes that the directory holding `local` changed (durable mode only).
    pub(crate) fn touched_dir(&mut self, entry: &WirePath) {
        if self.durable {
            self.dirty_dirs.insert(entry.parent());
        }
    }

    /// Flushes and leaves the marker that says the next start needs no re-scan.
    ///
    /// # Errors
    /// The flush or the marker write failed.
    pub fn close(mut self) -> Result<(), StoreError> {
        self.flush()?;
        if self.should_compact() {
            self.compact()?;
        }
        // Advisory: without it the next displacement of each file reads it.
        if let Err(e) = self.known.save() {
            log::warn!(
                "{}: cannot save what the server knows of its files: {e}",
                self.label()
            );
        }
        std::fs::write(self.state_dir.join("clean"), b"")?;
        Ok(())
    }

    /// Appends a record and applies it to the in-memory state.
    fn record(&mut self, record: Record) -> Result<(), StoreError> {
        self.journal.append(&record)?;
        if let Some(seq) = record.seq() {
            // Advisory (a restore "at a moment" reads it): a failure here
            // must not fail a change that is made and journaled.
            if let Err(e) = self.times.note(seq, versions::now_ms()) {
                log::warn!("cannot note the time of change {seq}: {e}");
            }
        }
        self.journal_records += 1;
        self.apply_record(&record);
        Ok(())
    }

    /// The sequence number the next change gets.
    fn next_seq(&self) -> u64 {
        self.head + 1
    }

    /// Applies a journal record to tree, history, head and registry.
    fn apply_record(&mut self, record: &Record) {
        if let Some(seq) = record.seq() {
            self.head = self.head.max(seq);
        }
        self.lineage.on_record(record);
        if !matches!(
            record,
            Record::ClientAdded { .. }
                | Record::Cursor { .. }
                | Record::Damaged { .. }
                | Record::MoveIntent { .. }
        ) {
            // A change, its author or a newer intent: the older intent's
            // change is journaled (or never happened).
            self.intent = None;
            self.intent_from = None;
        }
        match record {
            Record::PutFile {
                seq,
                path,
                size,
                hash,
                mtime_ns,
            } => {
                self.forget_lost(path);
                self.known.forget(path);
                // New content over a file keeps its executable bit (§15.3).
                let kind = NodeKind::File {
                    size: *size,
                    hash: *hash,
                    mtime_ns: *mtime_ns,
                    executable: self.tree.is_executable(path),
                };
                let parents = self.tree.put_file(path, kind, *seq);
                self.touch(*seq, path, false, parents);
            }
            Record::MakeDir { seq, path } => {
                let parents = self.tree.make_dir(path, *seq);
                self.touch(*seq, path, false, parents);
            }
            Record::Remove { seq, path } => {
                self.forget_lost(path);
                self.known.forget(path);
                self.tree.remove(path);
                self.touch(*seq, path, true, Vec::new());
            }
            Record::Rename { seq, from, to } => {
                self.forget_lost(from);
                // A rename changes the file's ctime (and its kept version's
                // link does): its next displacement reads it.
                self.known.forget(from);
                self.known.forget(to);
                let parents = self.tree.rename(from, to, *seq);
                self.touch(*seq, from, true, Vec::new());
                self.touch(*seq, to, false, parents);
            }
            Record::SetMode {
                seq,
                path,
                executable,
            } => {
                if self.tree.set_executable(path, *executable, *seq) {
                    self.touch(*seq, path, false, Vec::new());
                }
            }
            Record::ClientAdded { client } => {
                self.clients.insert(*client, 0);
            }
            Record::Cursor { client, cursor } => {
                self.clients.insert(*client, *cursor);
            }
            Record::Snapshot { history_from, .. } => {
                self.history_from = *history_from;
            }
            Record::Tombstone { seq, path } => {
                self.touch(*seq, path, true, Vec::new());
            }
            // Client 0 is no device: journals before this revision recorded
            // restored changes with author 0; they have none (R-14.3.3).
            Record::Author { seq, client } if *client != 0 => {
                self.authors.insert(*seq, *client);
            }
            Record::Author { .. } | Record::Chain { .. } => {}
            // R-10.5: a damage is remembered while the version it was
            // found in is current (a later change forgets it).
            Record::Damaged { seq, path, damaged } => {
                self.known.forget(path);
                let current = self.tree.get(path).is_some_and(|n| n.version == *seq);
                if *damaged && current {
                    self.lost.insert(path.clone(), recover::Lost::Damaged);
                } else if !*damaged {
                    self.lost.remove(path);
                }
            }
            Record::Intent { client, path } => {
                self.intent = Some((*client, path.clone()));
            }
            Record::MoveIntent { from } => {
                self.intent_from = Some(from.clone());
            }
        }
    }

    /// Whether `client` pushed change `seq` itself.
    fn pushed_by(&self, seq: u64, client: ClientId) -> bool {
        self.authors.get(&seq) == Some(&client)
    }

    /// Whether `client` can hold the content of change `seq` at `path` when
    /// it names that version as a base (PROTOCOL.md R-7.2.8). A device's
    /// push reaches another device only by a pull, so any authored change
    /// may be held. A change with no author (a Rename of content its mover
    /// had not seen, R-7.2.3; a restore, R-14.3.3; a re-scan's find, §10)
    /// also reaches the mover or restorer in its PushAck, which shows
    /// nothing of the content: such a version is held only once the client
    /// acknowledged a pull that brought it ([`Self::has_seen`]). Client 0
    /// is the server's own restore (R-14.3.3), which reads the tree itself:
    /// it holds every version, so a restore replaces what is at its path
    /// now (kept first, §14.1).
    fn may_hold(&self, seq: u64, path: &WirePath, client: ClientId) -> bool {
        client == 0 || self.authors.contains_key(&seq) || self.has_seen(client, path, seq)
    }

    /// Whether `client` acknowledged a pull that brought the entry of
    /// version `seq` at `path` (§5.3): `seq` is at most its acknowledged
    /// cursor, or its last PartialAck covers it (at most that cursor, and
    /// `path` not at or below a path it left to its push, R-5.3.4).
    fn has_seen(&self, client: ClientId, path: &WirePath, seq: u64) -> bool {
        seq <= self.cursor_of(client) || self.partials.covers(client, path, seq)
    }

    /// The cursor `client` last acknowledged (§5.3); 0 before its first Ack.
    fn cursor_of(&self, client: ClientId) -> u64 {
        self.clients.get(&client).copied().unwrap_or(0)
    }

    /// Whether a push by `client` based on `base` may replace what is at
    /// `path` (a file): the content there is the one of `base` (only
    /// SetModes after it, R-15.3.4) and the client can hold that content
    /// and the current version (R-7.2.8), or the current version is the
    /// client's own (R-7.2.2).
    fn base_holds(&self, path: &WirePath, base: u64, client: ClientId) -> bool {
        let Some(node) = self.tree.get(path) else {
            return false;
        };
        if self.pushed_by(node.version, client) {
            return true;
        }
        self.tree.content_unchanged_since(path, base)
            && self.may_hold(node.version, path, client)
            && self
                .tree
                .content_version(path)
                .is_some_and(|v| self.may_hold(v, path, client))
    }

    /// Journals that `client` pushed change `seq` (after its records).
    /// Client 0 is no device (a restore's changes, R-14.3.3): nothing is
    /// recorded, so the change has no author — neither anybody's own to
    /// overwrite (R-7.2.2) nor a base held before a pull (R-7.2.8).
    fn record_author(&mut self, seq: u64, client: ClientId) -> Result<(), StoreError> {
        if client == 0 {
            return Ok(());
        }
        self.record(Record::Author { seq, client })?;
        // Only the authors of versions still in the tree are ever asked
        // for: forget the others once they outnumber the tree, so memory
        // follows the tree, not the history (amortised O(1) per change).
        if self.authors.len() > 2 * self.tree.len() + 4096 {
            let live: std::collections::HashSet<u64> = self.tree.live_versions().collect();
            self.authors.retain(|seq, _| live.contains(seq));
        }
        Ok(())
    }

    /// Records that change `seq` touched `path` (and created `parents`).
    fn touch(&mut self, seq: u64, path: &WirePath, removed: bool, parents: Vec<WirePath>) {
        let mut paths = vec![(path.clone(), removed)];
        paths.extend(parents.into_iter().map(|p| (p, false)));
        match self.history.last_mut() {
            // The two sides of a rename share one sequence number.
            Some(last) if last.seq == seq => last.paths.extend(paths),
            _ => self.history.push(Touch { seq, paths }),
        }
    }
}
