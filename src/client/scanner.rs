//! Finding local changes: walk (part of) the folder, compare it with the
//! index, and turn the differences into the pushes that reproduce them on the
//! server — renames detected by content, deletions included. Runs at start-up
//! over the whole folder (offline changes) and later over the paths the
//! watcher reported.

use super::detect::{as_recorded, judge, Verdict};
use super::error::ClientError;
use super::fsutil::{
    check_path, check_path_counted, is_too_long, open_in, os_reason, too_long_why, Local, Stat,
};
use super::hardlinks::HardLinks;
use super::ignore::{apply::drop_ignored_only_dirs, IgnoreRules};
use super::index::{Entry, EntryKind, Index};
use super::plan;
use crate::chunk::{manifest_of_reader_sized, Manifest, MIN_CHUNK};
use crate::client::status::heartbeat::{Beating, Heartbeat};
use crate::fsafe::hash_reader;
use crate::protocol::limits::STATE_DIR_NAME;
use crate::protocol::{ContentHash, UserId, WirePath};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod ignored_moves;
mod scope;
mod settle;
use ignored_moves::IgnoredMoves;
pub use scope::Scope;
use settle::Settle;

/// How long a file without a close-after-write event must be seen unchanged
/// before it is pushed (see [`settle`]); also the retry delay for files
/// still being written.
pub const SETTLE: Duration = settle::QUIET;

pub use super::plan::{DiskEntry, Op};

/// The result of comparing the folder with the index.
#[derive(Debug, Default)]
pub struct Plan {
    /// Pushes, in sending order.
    pub ops: Vec<Op>,
    /// Files whose stat changed but whose content did not: index updates only.
    pub refreshed: Vec<(WirePath, Entry)>,
    /// Paths still being written or that changed while hashed: look again later.
    pub unstable: Vec<WirePath>,
    /// The plan holds only directory renames; everything else in the same
    /// scopes must be planned again once they are acknowledged (the server
    /// gives moved entries new versions).
    pub renames_only: bool,
}

/// What reading a file for its hash found.
enum Hashed {
    /// Read whole, unchanged meanwhile.
    Done(ContentHash),
    /// Changed while read, or gone: still being written, look again later.
    Unstable,
    /// This user may not read it (`unreadable (Permission denied)`): not
    /// synced until that changes, and not a pending upload.
    Unreadable(String),
}

/// What the walk makes of one entry.
enum Seen {
    /// A directory or regular file to compare.
    Entry(WirePath, DiskEntry),
    /// Not synced.
    Skip,
    /// Not synced, and nothing below it either.
    SkipTree,
}

/// Walks the folder and compares; remembers which odd entries it already
/// warned about so a rescan does not repeat itself.
#[derive(Debug)]
pub struct Scanner {
    root: PathBuf,
    warned: HashSet<PathBuf>,
    /// Paths that could not be read during the last scan: what the index
    /// lists below them is unknown, not deleted.
    unreadable: Vec<WirePath>,
    /// What cannot be synced now for a reason only this process can see
    /// (a file it may not read, a path too long with the folder's in
    /// front), with why: published in the status file, warned about once
    /// per state (a path that becomes syncable again is warned about anew
    /// if it stops being so).
    skipped: BTreeMap<WirePath, String>,
    /// Files waiting to be seen unchanged.
    settle: Settle,
    /// Indexed files whose inode is at an ignored name: a move through it
    /// may be under way ([`ignored_moves`]).
    ignored_moves: IgnoredMoves,
    /// What is not synced: neither walked nor compared with the index.
    rules: IgnoreRules,
    /// Directories that directly hold an ignored entry (last scan).
    holds_ignored: HashSet<WirePath>,
    /// Chunk lists of the files hashed by the last plan, cut in the same
    /// read as their hash (issue 11: a delta upload does not read the file
    /// a second time), by path, with the stat they were read at. Taken by
    /// [`Scanner::take_manifest`]; dropped at the next plan.
    manifests: HashMap<WirePath, (Stat, Manifest)>,
    /// Chunk entries held in `manifests` (bounded by [`MAX_KEPT_CHUNKS`]).
    kept_chunks: usize,
    /// Beaten as the walk and the hashing advance (a long scan is not a
    /// hung client): [`crate::client::status::heartbeat`].
    heart: Option<Heartbeat>,
    /// New files may be planned as [`Op::Stream`] (the server takes
    /// protocol version 6, PROTOCOL.md §13.8): not read by the plan.
    streams: bool,
    /// This device's user: a running device of the same user found below
    /// the folder stops the scan ([`crate::client::nesting::runs_inside`]).
    user: Option<UserId>,
    /// Such a device's folder, found by the walk in progress.
    nested_device: Option<PathBuf>,
    /// The files seen with more than one name, which a write through a
    /// name outside the folder changes without an event here (breaker21
    /// F2): looked at again by [`Scanner::linked_pass`].
    links: HardLinks,
}

/// Most chunk entries the scanner keeps between a plan and its pushes
/// (36 bytes each on the wire, about 48 in memory: ≈ 48 MiB, the lists of
/// ≈ 80 GiB of files). Files hashed past it are chunked again when sent.
pub const MAX_KEPT_CHUNKS: usize = 1 << 20;

/// Whether the scan cuts a file of `size` bytes into chunks while hashing
/// it: a file that may go as a delta upload (above one minimum chunk,
/// as [`crate::client::delta_push::DeltaSupport::wants`]).
fn keeps_manifest(size: u64) -> bool {
    size > u64::from(MIN_CHUNK)
}

impl Scanner {
    /// Beats `heart` as scans advance.
    pub fn set_heartbeat(&mut self, heart: Heartbeat) {
        self.heart = Some(heart);
    }

    /// The user this folder is synced for (checked against devices below it).
    pub fn set_user(&mut self, user: UserId) {
        self.user = Some(user);
    }

    /// A scanner for the folder `root`.
    pub fn new(root: &Path) -> Scanner {
        Scanner {
            root: root.to_path_buf(),
            warned: HashSet::new(),
            unreadable: Vec::new(),
            skipped: BTreeMap::new(),
            settle: Settle::default(),
            ignored_moves: IgnoredMoves::default(),
            rules: IgnoreRules::default(),
            holds_ignored: HashSet::new(),
            manifests: HashMap::new(),
            kept_chunks: 0,
            heart: None,
            streams: false,
            user: None,
            nested_device: None,
            links: HardLinks::default(),
        }
    }

    /// Looks again, when due, at a batch of the files seen with more than
    /// one name ([`HardLinks::pass`]); returns those that changed, for the
    /// pending round as a watcher's event would bring them.
    pub fn linked_pass(&mut self, now: std::time::Instant) -> Vec<WirePath> {
        self.links.pass(&self.root, now)
    }

    /// Whether new files are planned as one-read uploads ([`Op::Stream`],
    /// PROTOCOL.md §13.8): off until the session knows the server may take
    /// them, and for good once a server refused version 6.
    pub fn set_streams(&mut self, on: bool) {
        self.streams = on;
    }

    /// Replaces the ignore rules (`.cloudignore` changed).
    pub fn set_rules(&mut self, rules: IgnoreRules) {
        self.rules = rules;
    }

    /// Logs `skipping PATH: WHY` the first time `path` is skipped.
    pub fn warn_once(&mut self, path: &Path, why: &str) {
        if self.warned.insert(path.to_path_buf()) {
            log::warn!("skipping {}: {why}", path.display());
        }
    }

    /// What this scanner found it cannot sync ([`Scanner::skip`]): path and
    /// why, in path order.
    pub fn not_synced(&self) -> impl Iterator<Item = (&WirePath, &String)> {
        self.skipped.iter()
    }

    /// Records that `path` cannot be synced now, and why; warns once
    /// (`skipping PATH: why`).
    fn skip(&mut self, path: &WirePath, why: String) {
        self.warn_once(&path.to_local(&self.root), &why);
        self.skipped.insert(path.clone(), why);
    }

    /// Every directory and regular file in `scope` (the whole folder for
    /// `None`), except the state folder, symlinks, special files and names
    /// the protocol cannot carry (each skipped with one warning; a synced
    /// path that became a symlink or special file is missing from the
    /// result, so its deletion is planned).
    ///
    /// # Errors
    /// [`ClientError::FolderVanished`] when the folder itself is gone; other
    /// I/O errors while walking.
    pub fn scan(
        &mut self,
        scope: Option<&WirePath>,
    ) -> Result<BTreeMap<WirePath, DiskEntry>, ClientError> {
        if !self.root.is_dir() {
            return Err(ClientError::FolderVanished(self.root.clone()));
        }
        let mut out = BTreeMap::new();
        let start = match scope {
            None => self.root.clone(),
            Some(path) => match self.look_at(path, &mut out) {
                Some(start) => start,
                None => return Ok(out),
            },
        };
        let mut walk = walkdir::WalkDir::new(&start)
            .follow_links(false)
            .sort_by_file_name()
            .into_iter();
        while let Some(item) = walk.next() {
            if let Some(heart) = &self.heart {
                heart.beat_if_due();
            }
            let item = match item {
                Ok(item) => item,
                Err(e) => {
                    self.walk_error(&e)?;
                    continue;
                }
            };
            match self.classify(&item) {
                Seen::Entry(wire, entry) => {
                    out.insert(wire, entry);
                }
                Seen::Skip => {}
                Seen::SkipTree => walk.skip_current_dir(),
            }
        }
        if let Some(inner) = self.nested_device.take() {
            return Err(ClientError::NestedFolder {
                inner,
                outer: self.root.clone(),
                started_on_inner: false,
            });
        }
        Ok(out)
    }

    /// Where a scan of `path` alone walks from: `None` when there is
    /// nothing to walk (a file at `path` went into `out`, unless ignored).
    fn look_at(
        &mut self,
        path: &WirePath,
        out: &mut BTreeMap<WirePath, DiskEntry>,
    ) -> Option<PathBuf> {
        let (local, links) = match check_path_counted(&self.root, path) {
            Ok(looked) => looked,
            // Could not look (a directory on the way this user may not
            // read): unknown, never taken for a deletion.
            Err(e) => {
                self.warn_once(&path.to_local(&self.root), &format!("unreadable ({e})"));
                self.unreadable.push(path.clone());
                return None;
            }
        };
        match local {
            Local::Absent => None,
            // `rm -r conf; mv conf.new conf`: `conf/a.ini` is gone, not odd.
            Local::Foreign if below_a_file(&self.root, path) => None,
            // A symlink, FIFO, socket or device at the path or above it:
            // what was synced there is gone from this device, as in a full
            // scan ([`Scanner::classify`]).
            Local::Foreign => {
                self.warn_once(
                    &path.to_local(&self.root),
                    "a symlink or special file (not synced) is here or above it",
                );
                None
            }
            Local::File(stat) => {
                if !self.rules.ignores(path.as_str(), false) {
                    // Its link count (a second name may be outside).
                    self.links.seen(path, stat, links);
                    out.insert(path.clone(), DiskEntry::File(stat));
                }
                None
            }
            Local::Dir if self.rules.ignores(path.as_str(), true) => None,
            Local::Dir => Some(path.to_local(&self.root)),
        }
    }

    /// An unreadable entry: remembered as unknown (so it is not taken for a
    /// deletion); an unreadable folder is an error.
    fn walk_error(&mut self, e: &walkdir::Error) -> Result<(), ClientError> {
        let gone = e
            .io_error()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::NotFound);
        if gone {
            return Ok(());
        }
        let at = e.path().map(Path::to_path_buf).unwrap_or_default();
        let rel = at.strip_prefix(&self.root).ok().and_then(Path::to_str);
        match rel.map(WirePath::new) {
            Some(Ok(wire)) => {
                let why = match e.io_error() {
                    Some(io) if is_too_long(io) => too_long_why(&self.root, &wire),
                    Some(io) => format!("unreadable ({})", os_reason(io)),
                    None => e.to_string(),
                };
                self.skip(&wire, why);
                self.unreadable.push(wire);
                Ok(())
            }
            _ => Err(ClientError::io(
                format!("read {}", self.root.display()),
                std::io::Error::other(e.to_string()),
            )),
        }
    }

    /// What one walked entry means for syncing.
    fn classify(&mut self, item: &walkdir::DirEntry) -> Seen {
        let Ok(rel) = item.path().strip_prefix(&self.root) else {
            return Seen::Skip;
        };
        if rel.as_os_str().is_empty() {
            return Seen::Skip;
        }
        let ft = item.file_type();
        let skip = if ft.is_dir() {
            Seen::SkipTree
        } else {
            Seen::Skip
        };
        if rel.as_os_str() == STATE_DIR_NAME {
            return skip;
        }
        let wire = match rel.to_str().map(WirePath::new) {
            Some(Ok(wire)) => wire,
            Some(Err(e)) => {
                self.warn_once(item.path(), &format!("name not syncable ({e})"));
                return skip;
            }
            None => {
                self.warn_once(item.path(), "name is not UTF-8");
                return skip;
            }
        };
        if self.rules.ignores(wire.as_str(), ft.is_dir()) {
            if let Some(parent) = wire.parent() {
                self.holds_ignored.insert(parent);
            }
            if ft.is_file() {
                self.ignored_moves
                    .seen(wire, walkdir::DirEntryExt::ino(item));
            }
            return skip;
        }
        if ft.is_dir() {
            if self
                .user
                .is_some_and(|user| crate::client::nesting::runs_inside(item.path(), user))
            {
                self.nested_device = Some(item.path().to_path_buf());
                return Seen::SkipTree;
            }
            Seen::Entry(wire, DiskEntry::Dir)
        } else if ft.is_file() {
            match item.metadata() {
                Ok(meta) => {
                    let stat = Stat::of(&meta);
                    let links = std::os::unix::fs::MetadataExt::nlink(&meta);
                    self.links.seen(&wire, stat, links);
                    Seen::Entry(wire, DiskEntry::File(stat))
                }
                // Longer than PATH_MAX with the folder's path: looked at
                // through directory handles instead (read the same way).
                Err(e) if e.io_error().is_some_and(is_too_long) => {
                    match check_path_counted(&self.root, &wire) {
                        Ok((Local::File(stat), links)) => {
                            self.links.seen(&wire, stat, links);
                            Seen::Entry(wire, DiskEntry::File(stat))
                        }
                        _ => {
                            self.unreadable.push(wire);
                            Seen::Skip
                        }
                    }
                }
                Err(_) => {
                    // Replaced or removed mid-walk: unknown, not deleted.
                    self.unreadable.push(wire);
                    Seen::Skip
                }
            }
        } else {
            let why = if ft.is_symlink() {
                "symlinks are not synced"
            } else {
                "not a regular file or directory"
            };
            self.warn_once(item.path(), why);
            // What the index lists here (a file or directory replaced by a
            // symlink, FIFO, socket or device) is gone from this device:
            // the comparison pushes its deletion, whatever the new thing
            // is (breaker13's L3: a FIFO kept the file everywhere, a
            // socket deleted it). Unlike an unreadable entry, nothing here
            // is unknown: lstat said what is there. The RemoveDir's cursor
            // stays below what the applier held back behind it,
            // and the server keeps the removed files' versions.
            Seen::Skip
        }
    }

    /// Compares `scope` with `index` and plans the pushes, in the order
    /// they must be sent ([`plan::order`]).
    ///
    /// # Errors
    /// As [`Scanner::scan`].
    pub fn plan(&mut self, index: &Index, scope: &Scope) -> Result<Plan, ClientError> {
        let started = Instant::now();
        self.manifests.clear();
        self.kept_chunks = 0;
        let scope = &scope.with_other_links(index, &self.root);
        let roots = scope.roots(index);
        let before: BTreeMap<WirePath, String> = self
            .skipped
            .extract_if(.., |p, _| Scope::covers(&roots, p))
            .collect();
        let (mut disk, mut known) = self.snapshot(index, scope)?;
        // A file here that the index has at a path outside this look (one
        // step of a swap or cycle reported apart from the others): that
        // path's directory is compared too, so the move pairs as a whole
        // not as an upload here and a Delete there.
        let elsewhere = elsewhere(&disk, &known, index, &roots);
        let wide;
        let scope = if elsewhere.is_empty() {
            scope
        } else {
            let mut wider = scope.clone();
            for path in elsewhere {
                wider.add_metadata(path);
            }
            wide = wider;
            (disk, known) = self.snapshot(index, &wide)?;
            &wide
        };
        let mut plan = Plan::default();
        let (mut deleted_dirs, mut added_dirs) = plan::dir_changes(&disk, &known);
        let renames = plan::dir_renames(&disk, &known, &deleted_dirs, &added_dirs);
        let ops = if renames.is_empty() {
            let mut uploads = self.plan_files(&disk, &known, scope, &mut plan);
            let roots = scope.roots(index);
            let unstable: HashSet<&WirePath> = plan.unstable.iter().collect();
            self.settle
                .retain(|p| unstable.contains(p) || !Scope::covers(&roots, p));
            // A vanished file whose inode is at a file not read yet is that
            // file moved: compared again with it, never pushed as a Delete
            // now (R-7.2.4, breaker23 F4).
            let unsettled: Vec<(WirePath, Stat)> = plan
                .unstable
                .iter()
                .filter_map(|p| match disk.get(p) {
                    Some(DiskEntry::File(stat)) => Some((p.clone(), *stat)),
                    _ => None,
                })
                .chain(self.settle.watched())
                .collect();
            let wait = plan::wait_for_moves(&disk, &known, &deleted_dirs, &unsettled);
            if let Some(first) = wait.vanished.first() {
                log::debug!(
                    "{first} gone, its file moved to a path not read yet: looked at again with it"
                );
                known.retain(|p, _| !wait.holds(p));
                deleted_dirs.retain(|d| !wait.holds(d));
                added_dirs.retain(|d| !wait.holds(d));
                uploads.retain(|op| !wait.holds(op.path()));
                let again = wait.vanished.into_iter().chain(wait.moved_to);
                let again: BTreeSet<WirePath> = again.chain(plan.unstable.drain(..)).collect();
                plan.unstable.extend(again);
            }
            // A file moved out through an ignored name, with more steps
            // to come: looked at again, not a Delete now.
            let covers = |p: &WirePath| Scope::covers(&roots, p);
            let now = Instant::now();
            let rules = &self.rules;
            let ignored = |p: &WirePath| rules.ignores(p.as_str(), false);
            let moves = &mut self.ignored_moves;
            let held = moves.hold(&self.root, &disk, &known, ignored, covers, now);
            if let Some(first) = held.first() {
                log::debug!("{first}'s file is at an ignored name: looked at again later");
                known.retain(|p, _| !held.contains(p));
                uploads.retain(|op| !held.contains(op.path()));
                plan.unstable.extend(held);
            }
            plan::file_changes(&disk, &known, &deleted_dirs, added_dirs, uploads)
        } else {
            plan.renames_only = true;
            // Files were not looked at: what was known of them stays.
            for (path, why) in &before {
                self.skipped
                    .entry(path.clone())
                    .or_insert_with(|| why.clone());
            }
            renames
        };
        self.forget_fixed(before);
        let root = &self.root;
        let taken = |p: &WirePath| {
            index.get(p).is_some()
                || disk.contains_key(p)
                || p.to_local(root).symlink_metadata().is_ok()
        };
        plan.ops = plan::order(ops, &taken);
        if scope.full {
            let ms = started.elapsed().as_secs_f64() * 1e3;
            log::debug!("compared {} paths with the index in {ms:.1} ms", disk.len());
        }
        Ok(plan)
    }

    /// Paths skipped before this plan and not now: syncable again, so a
    /// later problem with them is warned about again.
    fn forget_fixed(&mut self, before: BTreeMap<WirePath, String>) {
        for (path, why) in before {
            if !self.skipped.contains_key(&path) {
                log::info!("{path} can be synced again (was: {why})");
                self.warned.remove(&path.to_local(&self.root));
            }
        }
    }

    /// The disk and the index within `scope`, without what could not be read
    /// (never read "could not look" as "deleted").
    #[allow(clippy::type_complexity)]
    fn snapshot(
        &mut self,
        index: &Index,
        scope: &Scope,
    ) -> Result<(BTreeMap<WirePath, DiskEntry>, BTreeMap<WirePath, Entry>), ClientError> {
        let mut disk = BTreeMap::new();
        let mut known: BTreeMap<WirePath, Entry> = BTreeMap::new();
        self.unreadable.clear();
        self.holds_ignored.clear();
        self.ignored_moves.clear_walk();
        for root in scope.roots(index) {
            disk.extend(self.scan(root.as_ref())?);
            known.extend(index.subtree(root.as_ref()).map(|(k, v)| (k.clone(), *v)));
        }
        // An ignored path is never pushed: what the index still lists there
        // (a rule added since) is left alone on the server, not deleted.
        known.retain(|p, e| !self.rules.ignores(p.as_str(), e.kind == EntryKind::Dir));
        drop_ignored_only_dirs(&mut disk, &known, std::mem::take(&mut self.holds_ignored));
        for blind in &self.unreadable {
            known.retain(|p, _| !p.is_within(blind));
            disk.retain(|p, _| !p.is_within(blind));
        }
        Ok((disk, known))
    }

    /// Files on disk that are new, named in `scope`, or that the rule does
    /// not find unchanged: uploads (returned), index refreshes, or "still
    /// being written".
    fn plan_files(
        &mut self,
        disk: &BTreeMap<WirePath, DiskEntry>,
        known: &BTreeMap<WirePath, Entry>,
        scope: &Scope,
        plan: &mut Plan,
    ) -> Vec<Op> {
        let mut uploads = Vec::new();
        let now = Instant::now();
        let vanished = match self.streams {
            true => vanished_files(disk, known),
            false => Vec::new(),
        };
        for (path, entry) in disk {
            let DiskEntry::File(stat) = *entry else {
                continue;
            };
            let (base, old_hash, recorded) = match known.get(path) {
                Some(Entry {
                    kind: EntryKind::File { stat: old, hash },
                    version,
                }) => {
                    if judge(old, &stat) == Verdict::Unchanged && !scope.named(path) {
                        if old.btime_ns == 0 && stat.btime_ns != 0 {
                            // A record from before birth times were kept
                            // the same file, so it learns its
                            // birth time without a read.
                            let stat = Stat {
                                btime_ns: stat.btime_ns,
                                ..*old
                            };
                            let kind = EntryKind::File { stat, hash: *hash };
                            let entry = Entry {
                                kind,
                                version: *version,
                            };
                            plan.refreshed.push((path.clone(), entry));
                        }
                        continue;
                    }
                    (*version, Some(*hash), as_recorded(old, &stat))
                }
                _ => (0, None, false),
            };
            // Untouched since this client recorded it (a download it
            // placed a moment ago, whose watcher event may not be in yet):
            // complete, so hashed now rather than waited for as if still
            // being written (a joining device counted its last downloads
            // "to upload" until a later look).
            let settled = scope.settled.contains(path) || recorded;
            let complete = self.settle.ready(path, stat, settled, now);
            let new = known.get(path).is_none();
            let cut_off = || super::stream_push::marker(&self.root, path).exists();
            if complete && new && self.streams && streams(stat, &vanished) && !cut_off() {
                // Sent in one read, hashed as it goes (§13.8): not read here.
                match self.readable(path) {
                    Ok(true) => uploads.push(Op::Stream {
                        path: path.clone(),
                        stat,
                    }),
                    Ok(false) => plan.unstable.push(path.clone()),
                    Err(why) => self.skip(path, why),
                }
                continue;
            }
            let hashed = match complete {
                true => self.stable_hash(path, stat),
                false => Hashed::Unstable,
            };
            let hash = match hashed {
                Hashed::Done(hash) => hash,
                Hashed::Unstable => {
                    plan.unstable.push(path.clone());
                    continue;
                }
                Hashed::Unreadable(why) => {
                    self.skip(path, why);
                    continue;
                }
            };
            let old_exec = match known.get(path).map(|e| e.kind) {
                Some(EntryKind::File { stat: old, .. }) => old.exec,
                _ => false,
            };
            if old_hash == Some(hash) && old_exec != stat.exec {
                // A chmod alone: the bit travels (§15.3).
                uploads.push(Op::SetMode {
                    path: path.clone(),
                    base,
                    stat,
                    hash,
                });
            } else if old_hash == Some(hash) {
                let entry = Entry::synced_file(stat, hash, base);
                plan.refreshed.push((path.clone(), entry));
            } else {
                let path = path.clone();
                uploads.push(Op::Upload {
                    path,
                    base,
                    stat,
                    hash,
                });
            }
        }
        uploads
    }

    /// Hashes a file and checks it did not change meanwhile
    /// ([`Hashed::Unstable`] when it did, or vanished: it is still being
    /// written; [`Hashed::Unreadable`] when this user may not open it). A
    /// file that may go as a delta upload is cut into chunks in the same
    /// read, and its chunk list kept for [`Scanner::take_manifest`]. A path
    /// too long for the system with the folder's in front is opened
    /// through directory handles ([`open_in`]).
    fn stable_hash(&mut self, path: &WirePath, before: Stat) -> Hashed {
        let file: File = match open_in(&self.root, path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                return Hashed::Unreadable(format!("unreadable ({})", os_reason(&e)));
            }
            Err(_) => return Hashed::Unstable,
        };
        let file = Beating {
            inner: file,
            heart: self.heart.as_ref(),
        };
        let read = if keeps_manifest(before.size) && self.kept_chunks < MAX_KEPT_CHUNKS {
            manifest_of_reader_sized(BufReader::with_capacity(1 << 20, file), before.size)
                .map(|m| (m.hash, m.size, Some(m)))
                .ok()
        } else {
            hash_reader(file).map(|(hash, len)| (hash, len, None)).ok()
        };
        let Some((hash, len, manifest)) = read else {
            return Hashed::Unstable;
        };
        match check_path(&self.root, path) {
            Ok(Local::File(after)) if after == before && len == before.size => {
                if let Some(manifest) = manifest {
                    self.kept_chunks += manifest.chunks.len();
                    self.manifests.insert(path.clone(), (before, manifest));
                }
                Hashed::Done(hash)
            }
            _ => Hashed::Unstable,
        }
    }

    /// Whether this user may open the file at `path` (`Err`: why not, as
    /// [`Scanner::stable_hash`] says it); `Ok(false)` when it is gone. A
    /// file planned as [`Op::Stream`] is not read by the plan, so a file
    /// it may not read must still be found here, not at every send.
    fn readable(&self, path: &WirePath) -> Result<bool, String> {
        match open_in(&self.root, path) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                Err(format!("unreadable ({})", os_reason(&e)))
            }
            Err(_) => Ok(false),
        }
    }

    /// The chunk list the last plan cut from `path` while hashing it, if
    /// it was read at `stat` and has `hash` (an `Op::Upload`'s fields);
    /// taken once.
    pub fn take_manifest(
        &mut self,
        path: &WirePath,
        stat: Stat,
        hash: ContentHash,
    ) -> Option<Manifest> {
        let (at, manifest) = self.manifests.get(path)?;
        if *at != stat || manifest.hash != hash {
            return None;
        }
        self.manifests.remove(path).map(|(_, manifest)| manifest)
    }
}

/// Most paths [`elsewhere`] adds to a look.
const MAX_ELSEWHERE: usize = 1_000;

/// The directories (a top-level file: itself) of the indexed paths outside
/// `roots` whose file (device and inode) is at a path of `disk` the index
/// has no such file at: the other ends of moves of which this look saw
/// only one.
fn elsewhere(
    disk: &BTreeMap<WirePath, DiskEntry>,
    known: &BTreeMap<WirePath, Entry>,
    index: &Index,
    roots: &[Option<WirePath>],
) -> BTreeSet<WirePath> {
    let mut out = BTreeSet::new();
    for (path, entry) in disk {
        let DiskEntry::File(now) = entry else {
            continue;
        };
        let same = match known.get(path).map(|e| e.kind) {
            Some(EntryKind::File { stat, .. }) => !stat.other_file(now),
            _ => false,
        };
        if same || now.ino == 0 {
            continue;
        }
        for other in index.paths_of_inode(now.dev, now.ino) {
            if !Scope::covers(roots, other) && out.len() < MAX_ELSEWHERE {
                out.insert(other.parent().unwrap_or_else(|| other.clone()));
            }
        }
    }
    out
}

/// The stats of the indexed files that are no longer files on disk: a new
/// file may be one of them moved.
fn vanished_files(
    disk: &BTreeMap<WirePath, DiskEntry>,
    known: &BTreeMap<WirePath, Entry>,
) -> Vec<Stat> {
    known
        .iter()
        .filter_map(|(p, e)| match e.kind {
            EntryKind::File { stat, .. } if !matches!(disk.get(p), Some(DiskEntry::File(_))) => {
                Some(stat)
            }
            _ => None,
        })
        .collect()
}

/// Whether a new file at `stat` goes as a one-read upload (§13.8): larger
/// than one minimum chunk (a smaller one goes whole with its hash first,
/// ), and neither the size nor the inode of a file that vanished
/// (`vanished`), which it may be, moved: such a file is hashed by the plan,
/// so the move is found by inode or content and sent as a Rename.
fn streams(stat: Stat, vanished: &[Stat]) -> bool {
    keeps_manifest(stat.size)
        && !vanished
            .iter()
            .any(|v| v.size == stat.size || v.same_inode(&stat))
}

/// True when an ancestor of `path` is a regular file (reached through real
/// directories only): nothing can be at `path`.
fn below_a_file(root: &Path, path: &WirePath) -> bool {
    let mut at = root.to_path_buf();
    let parts: Vec<&str> = path.components().collect();
    for part in &parts[..parts.len().saturating_sub(1)] {
        at.push(part);
        match std::fs::symlink_metadata(&at) {
            Ok(meta) if meta.file_type().is_dir() => {}
            Ok(meta) => return meta.file_type().is_file(),
            Err(_) => return false,
        }
    }
    false
}

#[cfg(test)]
mod reuse_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod type_change_tests;
