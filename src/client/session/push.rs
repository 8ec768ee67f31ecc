//! Push rounds: the dirty paths compared with the index, the plan's pushes
//! written (pipelined), the round closed when every one is acknowledged
//! (acknowledgements: [`super::acks`]).

use super::emptied::check_not_emptied;
use super::Session;
use crate::chunk::index::ChunkIndex;
use crate::chunk::Manifest;
use crate::client::delta_push::DeltaSupport;
use crate::client::error::ClientError;
use crate::client::fsutil::{check_path, open_in, Local};
use crate::client::held_open::{blocks_push, group};
use crate::client::index::Index;
use crate::client::lost;
use crate::client::progress::Transfer;
use crate::client::push::{send_op, Lists};
use crate::client::scanner::{Op, Scope, SETTLE};
use crate::client::schedule::holdback::HoldBack;
use crate::client::schedule::removal::{self, Decision, Hold};
use crate::client::stream_push::{hash_first_if_known, HashFirst};
use crate::fsafe::hash::hash_reader;
use crate::protocol::{LostList, WirePath};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// With `--once`, files still being written after this long are left for
/// the next run.
const ONCE_UNSTABLE_LIMIT: Duration = Duration::from_secs(30);

/// What the session knows of its pushes.
#[derive(Default)]
pub(super) struct PushState {
    /// Pushes sent and not yet acknowledged, by request ID.
    pub(super) inflight: HashMap<u32, Op>,
    /// The round's upload progress.
    pub(super) transfer: Option<Transfer>,
    /// Paths to compare with the index at the next round (when:
    /// [`crate::client::schedule::Timers::dirty_due`]).
    pub(super) dirty: Scope,
    /// Paths that were still being written; looked at again later.
    pub(super) retry: Scope,
    /// Paths in `dirty` that the watcher reported but that are as this
    /// device itself placed them (a download, a directory a pull made):
    /// compared like the others, but not counted "to upload"
    /// ([`Session::note_echoes`]).
    pub(super) echoes: HashSet<WirePath>,
    /// A round over the whole folder was sent (start-up is complete).
    pub(super) full_round_sent: bool,
    /// The last pull deferred paths until this device pushed them: the
    /// next round goes before the next pull
    /// ([`crate::client::schedule::Status::push_first`]).
    pub(super) first: bool,
    /// Paths whose push the server answered `Unstorable` (§4.5), until a
    /// push of the path is acknowledged: they do not hold the pull cursor
    /// back ([`super::pull::must_repeat`]).
    pub(super) unstorable: HashSet<WirePath>,
    /// Paths the last pull held back for a program writing there
    /// their pushes, and those of their SQLite companions, wait
    /// ([`Session::keep_back_held_open`]) until the pull applies them.
    pub(super) held_open: BTreeSet<WirePath>,
    /// Whether the server takes delta uploads (PROTOCOL.md §13.1).
    pub(super) delta: DeltaSupport,
    /// The server refused protocol version 6: new files are
    /// hashed before they are sent, for the rest of the run.
    pub(super) no_streams: bool,
    /// A round held back while its removal grows (R-5.6.6, [`removal`]):
    /// its paths, planned again with the next round's.
    pub(super) held: Option<(Scope, Hold)>,
    /// The chunk lists of delta uploads in flight, by request ID: recorded
    /// in the folder's chunk index when acknowledged, as the base of the
    /// path's next delta list (§13.7).
    pub(super) lists: HashMap<u32, Manifest>,
    /// The chunk index changed since it was saved.
    pub(super) chunks_changed: bool,
    /// One-read uploads' chunk lists asked from the server (§13.8).
    pub(super) server_lists: crate::client::server_list::ServerLists,
    /// Paths whose upload the server refused with `NoSpace` (its disk is
    /// full) or `Storage` (another failure that may pass), R-5.6.8: each
    /// waits a growing delay ([`HoldBack`]) while the other changes go on.
    pub(super) space: HoldBack,
    /// Paths of changes kept back with a held path (a rename of it, a change
    /// in or of its directory): planned again when a hold's wait is over.
    pub(super) waiting: Scope,
    /// Removals (and copies from another file system) not pushed because
    /// the file system mounted above them went away, or while a pull runs
    /// (R-5.6.9, [`super::mounted`]): planned again with every round,
    /// pushed only if the rule no longer holds them.
    pub(super) parked: Scope,
    /// The mount points those removals were under (warned about once).
    pub(super) gone_mounts: BTreeSet<crate::client::mounts::Parked>,
    /// File systems found in another's place (or older states), warned
    /// about once each: by mount point, what was found and the device now.
    pub(super) replaced_said: BTreeSet<(WirePath, crate::client::mounts::Why, u64)>,
    /// The identities of the file systems files are recorded on, by device
    /// number (`FOLDER/.cloudservice/mounts`, R-5.6.9,
    /// [`crate::client::mounts::ident`]).
    pub(super) idents: BTreeMap<u64, crate::client::mounts::ident::FsIdent>,
    /// `idents` not written yet.
    pub(super) idents_changed: bool,
    /// File systems mounted again under another device number: recorded
    /// device to the one now ([`crate::client::mounts::Judge`]'s evidence,
    /// kept: once the files are recorded again the index no longer holds it).
    pub(super) renumbered: HashMap<u64, u64>,
    /// Per mount, whether its file system is an older state of the
    /// recorded one ([`crate::client::mounts::Judge::held_older`]): found
    /// once, held for the run (breaker20 F1). Seeded at start before the
    /// folder is touched.
    pub(super) older: HashMap<crate::client::mounts::FsKey, bool>,
    /// The folder may hold changes no watcher event named (the watcher
    /// lost events, the connection was lost, the rules changed): set with
    /// a comparison of the whole folder for that reason, cleared when such
    /// a round is planned. The status is not in sync meanwhile (the
    /// periodic safety comparison does not set it: between two, the
    /// watcher's events are trusted).
    pub(super) unknown: bool,
    /// Files the server lost that this device holds at the lost version
    /// uploaded again at the next round, unless that round has
    /// another push for the path (an edit here goes by the usual rules).
    pub(super) lost: BTreeMap<WirePath, Op>,
}

/// Whether `op` must wait for a path `space` holds at `now`: it
/// changes that path, or a path containing it or contained in it.
pub(super) fn waits_for_space(op: &Op, space: &HoldBack, now: Instant) -> bool {
    space.blocks(op.path(), now) || op.frees().is_some_and(|p| space.blocks(p, now))
}

/// The synced files `ops` remove: one per `Delete`, the indexed files below
/// each `RemoveDir`.
pub(super) fn removed_files(ops: &[Op], index: &Index) -> usize {
    ops.iter()
        .map(|op| match op {
            Op::Delete { .. } => 1,
            Op::RemoveDir { path } => index
                .subtree(Some(path))
                .filter(|(_, e)| e.hash().is_some())
                .count(),
            _ => 0,
        })
        .sum()
}

impl Session<'_> {
    /// Compares the whole folder with the index at the next round, due `now`.
    pub(super) fn mark_all(&mut self, now: Instant) {
        self.push.dirty.add_all();
        self.timers.round_now(now);
    }

    /// Compares `path` with the index at a round due by `due`.
    pub(super) fn mark(&mut self, path: WirePath, due: Instant) {
        self.push.echoes.remove(&path);
        self.push.dirty.add(path);
        self.timers.round_due_by(due);
    }

    /// Compares the dirty paths with the index and sends the pushes.
    pub(super) fn push_round(&mut self) -> Result<(), ClientError> {
        let mut scope = std::mem::take(&mut self.push.dirty);
        self.push.first = false;
        self.push.echoes.clear();
        let held = self.push.held.take().map(|(mut held, hold)| {
            // The held paths are older: the new marks go over them.
            held.merge(std::mem::take(&mut scope));
            scope = held;
            hold
        });
        // Removals parked under a gone mount: looked at again every round.
        scope.merge(std::mem::take(&mut self.push.parked));
        self.timers.round_taken();
        let streams = !self.push.no_streams && self.push.delta != DeltaSupport::No;
        self.scanner.set_streams(streams);
        let mut plan = self.scanner.plan(&self.index, &scope)?;
        if scope.full {
            self.push.unknown = false;
        }
        for (path, op) in std::mem::take(&mut self.push.lost) {
            if !plan.ops.iter().any(|o| o.path() == &path) {
                plan.ops.push(op);
            }
        }
        if !self.pull.modes {
            // A server without the executable bit (§15.1): a chmod is
            // recorded here only.
            plan.ops.retain(|op| match op {
                Op::SetMode {
                    path,
                    base,
                    stat,
                    hash,
                } => {
                    let entry = crate::client::index::Entry::synced_file(*stat, *hash, *base);
                    plan.refreshed.push((path.clone(), entry));
                    false
                }
                _ => true,
            });
        }
        // Before the refreshed records go in: their old devices are the
        // evidence of a file system mounted again under another number.
        self.settle_mounts(&mut plan.ops, scope.full);
        for (path, entry) in plan.refreshed {
            self.index.insert(path, entry);
        }
        self.keep_back_for_space(&scope, &mut plan.ops);
        self.keep_back_held_open(&mut plan.ops);
        self.hold_unstable(plan.unstable);
        let removed = removed_files(&plan.ops, &self.index);
        let synced = self.index.file_count();
        match removal::decide(held, removed, synced, Instant::now()) {
            Decision::Hold { hold, until } => {
                if held.is_none() {
                    log::info!(
                        "{removed} of {synced} synced files removed here: waiting until the removal stops growing before pushing"
                    );
                }
                self.push.held = Some((scope, hold));
                self.timers.hold_until(until);
                return Ok(());
            }
            Decision::Send if held.is_some() => {
                log::info!("the removal settled at {removed} of {synced} synced files");
            }
            Decision::Send => {}
        }
        let removes = plan.ops.iter().any(Op::removes);
        if removes && !self.confirmed_empty {
            check_not_emptied(&self.root, &self.index, self.rules.rules())?;
        }
        if plan.renames_only {
            // Plan the rest once the renames are acknowledged.
            self.push.dirty.merge(scope.clone());
            self.timers.round_now(Instant::now());
        }
        self.start_transfer(&plan.ops, scope.full);
        if self.conn.is_none() {
            self.push.dirty.merge(scope);
            return Ok(());
        }
        self.send_ops(plan.ops)?;
        if removes {
            // `--confirm-empty` covered this removal; the guard is back for
            // the rest of the run.
            self.confirmed_empty = false;
        }
        if scope.full {
            self.push.full_round_sent = true;
        }
        if self.push.inflight.is_empty() {
            self.round_done();
        }
        Ok(())
    }

    /// The server's `LostList`: each lost file this device holds
    /// at the lost version, as recorded ([`lost::holds`]), is uploaded
    /// again at a round due now; the server takes it back only if its
    /// bytes are the journal's.
    pub(super) fn on_lost_list(&mut self, list: &LostList) {
        if list.entries.is_empty() {
            return;
        }
        let now = Instant::now();
        for entry in &list.entries {
            let here = match check_path(&self.root, &entry.path) {
                Ok(Local::File(stat)) => Some(stat),
                _ => None,
            };
            let stat = match lost::holds(entry, self.index.get(&entry.path), here.as_ref()) {
                lost::Holds::Yes(stat) => stat,
                lost::Holds::IfHashIs(stat) => {
                    let hashed = open_in(&self.root, &entry.path).and_then(hash_reader);
                    match hashed {
                        Ok((hash, size)) if (hash, size) == (entry.hash, entry.size) => stat,
                        _ => continue,
                    }
                }
                lost::Holds::No => continue,
            };
            log::info!(
                "{}: the server lost its copy (v{}); uploading this device's copy of that version",
                entry.path,
                entry.version
            );
            let op = Op::Upload {
                path: entry.path.clone(),
                base: entry.version,
                stat,
                hash: entry.hash,
            };
            self.push.lost.insert(entry.path.clone(), op);
            self.mark(entry.path.clone(), now);
        }
    }

    /// the pushes of paths the server has no room for wait for
    /// their delay (kept in `waiting`, planned again when a wait is over);
    /// a held path being tried that this round (which compared it) has
    /// nothing more to push for is no longer held.
    fn keep_back_for_space(&mut self, scope: &Scope, ops: &mut Vec<Op>) {
        if self.push.space.is_empty() {
            return;
        }
        let now = Instant::now();
        let compared = |p: &WirePath| scope.full || scope.paths.contains(p);
        let done: Vec<WirePath> = self
            .push
            .space
            .trying()
            .filter(|p| {
                compared(p)
                    && !ops
                        .iter()
                        .any(|op| op.path() == *p || op.frees() == Some(*p))
            })
            .cloned()
            .collect();
        for path in done {
            log::info!("{path}: nothing left to push; no longer held back");
            self.push.space.succeeded(&path);
        }
        let space = &self.push.space;
        let waiting = &mut self.push.waiting;
        ops.retain(|op| {
            if !waits_for_space(op, space, now) {
                return true;
            }
            waiting.add(op.path().clone());
            if let Some(from) = op.frees() {
                waiting.add(from.clone());
            }
            false
        });
    }

    /// a push of a path the pull holds back for a program that
    /// writes there (or of a file of its SQLite group) waits: on the old
    /// base it would be answered Conflict, and following the server's
    /// conflict name moves the program's file away from under it. The
    /// path is compared again once the pull lets it go
    /// ([`Session::hold_pushes_for_writers`]).
    fn keep_back_held_open(&mut self, ops: &mut Vec<Op>) {
        let held = &self.push.held_open;
        if held.is_empty() {
            return;
        }
        ops.retain(|op| {
            let waits =
                blocks_push(op.path(), held) || op.frees().is_some_and(|p| blocks_push(p, held));
            if waits {
                log::debug!(
                    "{}: not pushed while a program writes there (its pull is held back)",
                    op.path()
                );
            }
            !waits
        });
    }

    /// The pull that just ended held `now_held` back for programs writing
    /// there: from now on their pushes wait; the files of paths
    /// it no longer holds are compared again, so what waited is pushed.
    pub(super) fn hold_pushes_for_writers(&mut self, now_held: BTreeSet<WirePath>, now: Instant) {
        let released: Vec<WirePath> = self
            .push
            .held_open
            .difference(&now_held)
            .flat_map(group)
            .collect();
        self.push.held_open = now_held;
        for path in released {
            self.mark(path, now);
        }
    }

    /// Files still being written wait for [`SETTLE`] and are looked at
    /// again; with `--once`, not beyond [`ONCE_UNSTABLE_LIMIT`].
    fn hold_unstable(&mut self, unstable: Vec<WirePath>) {
        if unstable.is_empty() {
            self.timers.unstable_since = None;
            return;
        }
        let since = *self.timers.unstable_since.get_or_insert_with(Instant::now);
        if self.config.once && since.elapsed() > ONCE_UNSTABLE_LIMIT {
            // A file that never stops changing must not keep --once alive.
            for path in &unstable {
                log::warn!("{path} keeps changing; not pushed this time");
            }
            return;
        }
        for path in unstable {
            self.push.retry.add(path);
        }
        self.timers.retry_at(Instant::now() + SETTLE);
    }

    /// A progress bar for the round's uploads (shown on a first sync's
    /// whole-folder round).
    fn start_transfer(&mut self, ops: &[Op], full: bool) {
        let sizes: Vec<u64> = ops
            .iter()
            .filter_map(|op| match op {
                Op::Upload { stat, .. } | Op::Stream { stat, .. } => Some(stat.size),
                _ => None,
            })
            .collect();
        if !sizes.is_empty() {
            let first = self.first_run.first_sync && full;
            self.push.transfer = Some(Transfer::start(
                "upload",
                sizes.len() as u64,
                sizes.iter().sum(),
                first,
                self.config.verbosity,
            ));
        }
    }

    /// Writes the pushes, recording each in flight; a file that vanished
    /// before it could be read is compared again. Stops at shutdown.
    fn send_ops(&mut self, ops: Vec<Op>) -> Result<(), ClientError> {
        // Uploads the server checks before it answers: the liveness rule
        // gives a blocked send their allowance too (the server may stop
        // reading while it checks), so the watch learns of each one sent.
        let mut checking = self.checking();
        let Some(conn) = self.conn.as_mut() else {
            return Ok(());
        };
        let mut sent = 0usize;
        for op in ops {
            if self.shutdown.load(Ordering::SeqCst) {
                break;
            }
            let transfer = &mut self.push.transfer;
            let heart = self.publisher.heart.as_ref();
            let mut on_bytes = |n: u64| {
                if let Some(t) = transfer.as_mut() {
                    t.add_bytes(n);
                }
                // A long upload advances: the client is not hung.
                if let Some(heart) = heart {
                    heart.beat_if_due();
                }
            };
            // A RemoveDir's cursor: what this device has seen,
            // below what it holds back under the directory.
            let cursor = match &op {
                Op::RemoveDir { path } => self.index.remove_dir_cursor(path),
                _ => self.index.seen(),
            };
            let delta = &mut self.push.delta;
            let mut lists = Lists {
                servers_lists: self.pull.deltas,
                ..Lists::default()
            };
            let op = match op {
                // A new file that starts as a file this device knows (a
                // copy): hashed first, so it goes as a delta (§13.8).
                Op::Stream { path, stat } => {
                    let file = self.state.chunk_index_file();
                    let index = self
                        .pull
                        .chunks
                        .get_or_insert_with(|| ChunkIndex::load(&file));
                    match hash_first_if_known(&self.root, &path, stat, index) {
                        HashFirst::Stream => Op::Stream { path, stat },
                        HashFirst::Hashed(manifest) => {
                            let hash = manifest.hash;
                            lists.manifest = Some(manifest);
                            Op::Upload {
                                path,
                                base: 0,
                                stat,
                                hash,
                            }
                        }
                        HashFirst::Changed => {
                            self.push.dirty.add(path);
                            continue;
                        }
                    }
                }
                op => op,
            };
            if let Op::Upload {
                path,
                stat,
                hash,
                base,
            } = &op
            {
                // The scan's chunk list of the file: not read a second time.
                if lists.manifest.is_none() {
                    lists.manifest = self.scanner.take_manifest(path, *stat, *hash);
                }
                // The base content's list, when the chunk index holds it.
                let base_hash = self.index.get(path).and_then(|e| e.hash());
                if let (Some(base_hash), true) = (base_hash, *base > 0) {
                    let file = self.state.chunk_index_file();
                    let index = self
                        .pull
                        .chunks
                        .get_or_insert_with(|| ChunkIndex::load(&file));
                    lists.base_list = index.manifest_of(path, base_hash);
                }
            }
            let sent_op = send_op(
                conn,
                &self.root,
                &op,
                (cursor, &mut lists),
                delta,
                &mut on_bytes,
            );
            if lists.v6_refused {
                self.push.no_streams = true;
            }
            match sent_op? {
                Some(id) => {
                    // A sealed one-read upload is recorded as the Upload of
                    // the hash of the bytes it sent (§13.8).
                    let op = match (op, lists.sealed) {
                        (Op::Stream { path, stat }, Some(hash)) => Op::Upload {
                            path,
                            base: 0,
                            stat,
                            hash,
                        },
                        (op, _) => op,
                    };
                    if let Op::Upload { stat, .. } | Op::Stream { stat, .. } = &op {
                        checking = checking.saturating_add(stat.size);
                    }
                    let wanted = match (&op, lists.server_list) {
                        (Op::Upload { path, hash, .. }, true) => Some((path.clone(), *hash)),
                        _ => None,
                    };
                    self.push.inflight.insert(id, op);
                    conn.watch_mut().awaiting(true, checking, Instant::now());
                    if let Some(list) = lists.sent {
                        self.push.lists.insert(id, list);
                    }
                    if let Some((path, hash)) = wanted {
                        // Asked right behind its StreamEnd: the answer
                        // follows the PushAck.
                        self.push.server_lists.want(path, hash);
                        super::server_lists::ask(
                            conn,
                            &mut self.push.server_lists,
                            self.pull.job.as_mut(),
                        )?;
                    }
                    sent += 1;
                }
                None => self.push.dirty.add(op.path().clone()),
            }
        }
        if sent > 0 {
            log::info!("pushing {sent} change(s)");
        }
        Ok(())
    }

    /// The last push of a round was answered: [`Session::round_done`], and
    /// the pull that deferred paths to this round is repeated now (the
    /// server answers in order, so the repeat lists the pushes' outcome,
    /// A round that sent nothing (the file still being written)
    /// does not repeat it: that would pull again at every retry of the
    /// round; the pull's own retry ([`PULL_RETRY`]) comes anyway.
    ///
    /// [`PULL_RETRY`]: crate::client::schedule::PULL_RETRY
    pub(super) fn round_answered(&mut self) {
        if std::mem::take(&mut self.pull.after_round) {
            self.pull.wanted = true;
        }
        self.round_done();
    }

    /// Every push of the round is answered: the progress bar ends and the
    /// index is saved.
    pub(super) fn round_done(&mut self) {
        if let Some(t) = self.push.transfer.take() {
            t.finish();
        }
        self.push.lists.clear();
        if std::mem::take(&mut self.push.chunks_changed) {
            if let Some(index) = self.pull.chunks.as_ref() {
                if let Err(e) = index.save(&self.state.chunk_index_file()) {
                    log::warn!("saving the chunk index: {e}");
                }
            }
        }
        self.save_index(Instant::now());
    }
}
