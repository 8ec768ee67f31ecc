//! Applying a pull reply to the folder without ever losing a local edit.
//!
//! Rules (the lead's design notes, "Pull"): deletions first, then directories,
//! then files. A local file is deleted or overwritten only when its content is
//! still what the index says was synced; anything else is a local edit that is
//! kept in place and pushed — on the server's version when the server did
//! not change the path, on its old base when it did, so that the server
//! decides (PROTOCOL.md §7.2; [`super::conflict::on_pull`] has every rule). Contents arrive through the state
//! folder's temporary area and are hash-checked before a rename makes them
//! visible; a file the folder already holds (a remote rename, a copy) is
//! reused instead of downloaded. Every path is checked so that nothing is
//! written through a symlink or outside the folder.

use super::conflict::{on_pull, on_pull_mode, Disk, Indexed, ModeDecision, PullDecision, Server};
use super::detect::{judge, Verdict};
use super::error::ClientError;
use super::fsutil::{
    check_path, copy_hashed, ensure_dirs, ensure_parent, is_too_long, open_nofollow, os_reason,
    reach, too_long_why, Local, Reach, Stat,
};
use super::held_open::Change;
use super::ignore::kept::kept_out;
use super::ignore::IgnoreRules;
use super::index::{Entry, EntryKind, Index};
use super::staging;
use crate::protocol::{ChangeEntry, ClientId, ContentHash, EntryState, WirePath};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use donors::Donors;
pub use donors::{remove_donors, Donor};
pub use leftovers::{origin_note, ORIGIN_SUFFIX};
pub use place::RaceHook;
use taken::{stash_use, Reuse, Stashed};

/// A file whose content must be downloaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchJob {
    /// Where it goes.
    pub path: WirePath,
    /// The version the pull reply announced.
    pub version: u64,
    /// Announced size.
    pub size: u64,
    /// Announced hash.
    pub hash: ContentHash,
    /// What the local path held when the job was planned (for tests and
    /// diagnostics). Placement does not trust it: whatever it actually
    /// replaces is judged against the index at that instant (see `place`).
    pub expect: Local,
    /// The executable bit the server gave (a ModeBatch, §15.2); `None`
    /// from a server without modes: the local file's bit is kept.
    pub exec: Option<bool>,
    /// A bit changed here, on a file this reply deleted whose content this
    /// job brings (the server moved it, R-15.2.5): the file appears with
    /// it, the server's `exec` is indexed, and a SetMode follows.
    pub carried: Option<bool>,
}

/// What applying a reply left to do.
#[derive(Debug, Default)]
pub struct Applied {
    /// Contents to download, in order.
    pub fetches: Vec<FetchJob>,
    /// Local paths that now need pushing (kept edits, conflict copies).
    pub dirty: BTreeSet<WirePath>,
    /// How many paths changed on disk.
    pub changed: usize,
    /// A path could not be applied: the cursor must not advance.
    pub failed: bool,
    /// Paths changed here and on the server, pushed before they are pulled
    /// (`defer_to_push`): the cursor must not pass them while that push can
    /// still succeed.
    pub deferred: BTreeSet<WirePath>,
    /// Paths whose change could not be applied, with why
    /// ([`failure_why`]): the session says so once per state and lists
    /// them in the status file.
    pub failures: BTreeMap<WirePath, String>,
    /// Files of the reply made from content this device already had (a
    /// copy, an empty file), not yet placed: with
    /// [`Applier::handing_over_obtained`] the caller places them once
    /// their fsync is back, as it does downloads.
    pub obtained: Vec<Obtained>,
    /// Files the reply deleted, kept in the temporary area as chunk
    /// sources for its delta downloads ([`Applier::keeping_donors`],
    /// the caller removes them ([`remove_donors`]) once the
    /// reply's downloads are in.
    pub donors: Vec<Donor>,
    /// Paths whose change from the server waits while a program here holds
    /// the file (or a file of its SQLite group) open for writing
    /// ([`crate::client::held_open`], R-5.7.4); also in [`Applied::failures`].
    /// This device's pushes of them wait too.
    pub held_open: BTreeSet<WirePath>,
}

/// A file of a pull reply made in the temporary area from local content
/// ([`Applier::obtain`]): verified (its hash and size are the job's), not
/// yet durable nor placed.
///
/// It holds no open descriptor, only the file's identity: the caller of a
/// reply gets them all at once ([`Applied::obtained`]), and another
/// device's `mv` of a directory of 5,000 files (R-5.2.19: each placed by
/// renaming the file set aside) held 5,000 descriptors until the reply was
/// applied; at the open-file limit the rest failed with EMFILE and were
/// downloaded again (outside tester breaker22 F3). [`Obtained::reopen`]
/// opens it again for its fsync, only while it is still the file made.
#[derive(Debug)]
pub struct Obtained {
    /// Where it goes, and its content hash and version.
    pub job: FetchJob,
    /// The file in the temporary area.
    pub tmp: PathBuf,
    /// Its stat once written and checked (flushed): inode, device, birth
    /// time, size, times and bit ([`still_made`]).
    pub made: Stat,
}

impl Obtained {
    /// `file`, open at `tmp`, written (flushed) and checked for `job`: its
    /// stat is kept and the descriptor closed.
    ///
    /// # Errors
    /// The stat of the open file (then `tmp` is removed).
    fn of(job: FetchJob, tmp: PathBuf, file: &fs::File) -> Result<Obtained, ClientError> {
        match file.metadata() {
            Ok(meta) => Ok(Obtained {
                job,
                tmp,
                made: Stat::of(&meta),
            }),
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                Err(ClientError::io(format!("stat {}", tmp.display()), e))
            }
        }
    }

    /// Opens the file again (no symlink followed), for its fsync, when it
    /// is still the file made ([`still_made`]): what the checks vouched
    /// for is what is synced and placed.
    ///
    /// # Errors
    /// Opening or stating it, or it is another file or was written since.
    pub fn reopen(&self) -> io::Result<fs::File> {
        let file = open_nofollow(&self.tmp)?;
        let now = Stat::of(&file.metadata()?);
        match still_made(&self.made, &now) {
            true => Ok(file),
            false => Err(io::Error::other(
                "it changed in the temporary area after it was made",
            )),
        }
    }
}

/// Pure: whether the file now at an [`Obtained`]'s path (`now`) is the one
/// made there (`made`), unchanged: the same inode on the same device (a
/// known one, not 0), born at the same time, with the same size, times
/// and bit. A write since moves the times; a file put in its place has
/// another inode (or birth time).
pub fn still_made(made: &Stat, now: &Stat) -> bool {
    made.ino != 0 && made == now
}

impl Applied {
    /// Whether the pull must be repeated from the same cursor: something
    /// failed, or a path waits for its push.
    pub fn must_repeat(&self) -> bool {
        self.failed || !self.deferred.is_empty()
    }
}

/// Applies pull replies for one folder.
#[derive(Debug)]
pub struct Applier<'a> {
    root: &'a Path,
    tmp: &'a Path,
    index: &'a mut Index,
    me: ClientId,
    /// Deleted files kept in the temporary area because the same reply wants
    /// their content elsewhere (a remote rename): hash → stashed files,
    /// placed there by rename ([`taken`], breaker21 F6).
    stash: HashMap<ContentHash, Vec<Stashed>>,
    /// How many of the current reply's files (not yet obtained) want each
    /// content: a stashed file is renamed into place only when no later
    /// file needs it as a source ([`stash_use`]).
    wanters: HashMap<ContentHash, usize>,
    /// Indexed files by content, for the hashes the current reply wants.
    by_hash: HashMap<ContentHash, WirePath>,
    counter: u64,
    /// Called just before each step that replaces, removes or creates a
    /// local path (tests put a concurrent writer here).
    hook: Option<RaceHook<'a>>,
    /// Called between the stat that vouches for a file a download replaces
    /// and the exchange (tests only; vouch.rs).
    vouched_hook: Option<RaceHook<'a>>,
    /// Called right after a download is moved into place, before it is
    /// looked at and indexed (tests only; placed.rs).
    placed_hook: Option<RaceHook<'a>>,
    /// The reply's entries carry the executable bit (a ModeBatch, §15.2).
    modes: bool,
    /// Files obtained locally go to [`Applied::obtained`] instead of being
    /// synced and placed here.
    hand_over: bool,
    /// The ignore rules, to tell a directory kept out of sync (never
    /// pushed) from one waiting for its push.
    rules: Option<&'a IgnoreRules>,
    /// The reply's head (§5.2): a path the index holds at a newer version
    /// was pushed by this device after the reply was made, so a full
    /// listing that does not name it does not mean it is gone.
    head: u64,
    /// Bits changed here and not pushed, of files the current reply deletes
    /// content hash → (the deleted path, the local bit). A file
    /// the same reply brings with that content (the server's rename of it)
    /// appears with the bit, which is then pushed; the rest are dropped with
    /// a log line when the reply is applied.
    carried: HashMap<ContentHash, (WirePath, bool)>,
    /// Files edited here and not pushed, at paths the current reply
    /// deletes, whose indexed content the reply brings to another path (the
    /// server's rename of them, R-5.2.17): indexed content hash → (the
    /// deleted path, its indexed stat, its stat now). The edit moves there.
    follow: HashMap<ContentHash, Vec<(WirePath, Stat, Stat)>>,
    /// Files deleted here and not pushed, below paths the current reply
    /// deletes, whose content the reply brings to another path:
    /// content hash → (the deleted path, its indexed stat). The deletion
    /// follows: the new path is indexed, not fetched, and pushed as deleted.
    deleted_here: HashMap<ContentHash, Vec<(WirePath, Stat)>>,
    /// Paths whose step failed in the current [`Applier::apply`], with why.
    failures: BTreeMap<WirePath, String>,
    /// With [`Applier::keeping_donors`]: the synced files the current
    /// reply deletes that are kept as chunk sources.
    donors: Option<Donors>,
}

impl<'a> Applier<'a> {
    /// An applier for the folder `root`, with downloads staged in `tmp`.
    pub fn new(root: &'a Path, tmp: &'a Path, index: &'a mut Index, me: ClientId) -> Self {
        Applier {
            root,
            tmp,
            index,
            me,
            stash: HashMap::new(),
            wanters: HashMap::new(),
            by_hash: HashMap::new(),
            counter: 0,
            hook: None,
            vouched_hook: None,
            placed_hook: None,
            modes: false,
            hand_over: false,
            rules: None,
            head: u64::MAX,
            carried: HashMap::new(),
            follow: HashMap::new(),
            deleted_here: HashMap::new(),
            failures: BTreeMap::new(),
            donors: None,
        }
    }

    /// Synced files a reply deletes are not unlinked when a delta download
    /// of the same reply may use their chunks: they leave the folder as
    /// before, into the temporary area, and are handed over in
    /// [`Applied::donors`] (R-5.2.18, [`donors`]).
    pub fn keeping_donors(mut self) -> Self {
        self.donors = Some(Donors::default());
        self
    }

    /// The head of the reply being applied (§5.2): with it, indexed paths
    /// newer than the reply are never taken as gone by a full listing.
    pub fn with_head(mut self, head: u64) -> Self {
        self.head = head;
        self
    }

    /// Files the reply wants that this device already has (copies, empty
    /// files) are not placed by [`Applier::apply`] but handed over in
    /// [`Applied::obtained`], for the caller to fsync with its downloads
    /// (batched, off its loop) and place. Without this, `apply` fsyncs each
    /// one and its directory before it returns.
    pub fn handing_over_obtained(mut self) -> Self {
        self.hand_over = true;
        self
    }

    /// Judges local directories against `rules`: a server file is held
    /// back, not waited for, where one the rules keep out of sync is in its
    /// way.
    pub fn with_rules(mut self, rules: &'a IgnoreRules) -> Self {
        self.rules = Some(rules);
        self
    }

    /// Applies the executable bit of the entries (`modes`: they come from a
    /// ModeBatch, §15.2), as well as their content.
    pub fn with_modes(mut self, modes: bool) -> Self {
        self.modes = modes;
        self
    }

    /// Applies a whole reply (all its batches). When `full` is set, indexed
    /// paths the reply does not list are gone on the server.
    ///
    /// # Errors
    /// Local I/O failures other than on a single path (which are logged and
    /// retried by the next pull).
    pub fn apply(&mut self, entries: &[ChangeEntry], full: bool) -> Result<Applied, ClientError> {
        let mut out = Applied::default();
        if let Some(donors) = self.donors.as_mut() {
            *donors = Donors::for_reply(entries);
        }
        self.wanters.clear();
        for e in entries {
            if let EntryState::File { size, hash } = e.state {
                if size > 0 {
                    *self.wanters.entry(hash).or_default() += 1;
                }
            }
        }
        let wanted: HashSet<ContentHash> = self.wanters.keys().copied().collect();
        // Every listed path is decided again; a full listing that does not
        // list a held-back file says it is gone from the server.
        let listed: HashSet<&WirePath> = entries.iter().map(|e| &e.path).collect();
        let held_back: Vec<WirePath> = self
            .index
            .held_back()
            .map(|(p, _)| p.clone())
            .filter(|p| full || listed.contains(p))
            .collect();
        for path in &held_back {
            self.index.unhold_back(path);
        }
        // An entry older than what the index holds at its path is already
        // superseded here (this device's own acknowledged push, R-5.2.15).
        let (current, superseded): (Vec<&ChangeEntry>, Vec<&ChangeEntry>) =
            entries.iter().partition(|e| !self.is_superseded(e));
        // A deletion superseded at its own path still removes what the
        // index holds below that path from before it: the path
        // was made again after it (this device's upload into the directory
        // re-made it on the server while the deletion could not be applied
        // here, a read-only directory), not the files below it that the
        // deletion removed. Skipped whole, they stayed here for good and
        // nothing said so (breaker27 F5).
        let below_only: Vec<(WirePath, u64)> = superseded
            .iter()
            .filter(|e| e.state == EntryState::Deleted && self.holds_older_below(e))
            .map(|e| (e.path.clone(), e.version))
            .collect();
        for entry in &superseded {
            log::debug!(
                "pull: {} {:?} v{} left alone{}: this device already has v{}",
                entry.path,
                entry.state,
                entry.version,
                match below_only.iter().any(|(p, _)| *p == entry.path) {
                    true => " at that path, applied below it",
                    false => "",
                },
                self.index.get(&entry.path).map_or(0, |e| e.version)
            );
        }
        // A path the reply lists as deleted and again as a file whose
        // content is the one indexed here: the index already holds what the
        // server holds there now (this device's own rename onto a path
        // removed before it, acknowledged behind unpulled changes, keeps the
        // moved file's older version): the deletion is not applied to it
        // the file entry brings its version.
        let remade: HashSet<&WirePath> = current
            .iter()
            .filter(|e| match e.state {
                EntryState::File { hash, .. } => self
                    .index
                    .get(&e.path)
                    .is_some_and(|indexed| indexed.hash() == Some(hash)),
                _ => false,
            })
            .map(|e| &e.path)
            .collect();
        let mut deletions: Vec<(WirePath, u64)> = current
            .iter()
            .filter(|e| e.state == EntryState::Deleted && !remade.contains(&e.path))
            .map(|e| (e.path.clone(), e.version))
            .collect();
        if full {
            let head = self.head;
            let unlisted = self
                .index
                .iter()
                .filter(|(_, e)| e.version <= head)
                .map(|(p, _)| p);
            let gone = unlisted.filter(|p| !listed.contains(p)).cloned();
            deletions.extend(WirePath::top_most(gone).into_iter().map(|p| (p, head)));
        }
        // Directories another device renamed are renamed here whole first
        // the index then holds their entries at the new paths.
        let states: BTreeMap<WirePath, EntryState> = entries
            .iter()
            .filter(|e| e.state != EntryState::Deleted)
            .map(|e| (e.path.clone(), e.state))
            .collect();
        let mut deletions = self.move_whole_dirs(states, deletions, &mut out)?;
        deletions.extend(below_only);
        self.by_hash = self.indexed_by_hash(&wanted);
        let mut ok = true;
        for (path, version) in &deletions {
            ok &= self.guard(path, |me| {
                me.apply_deleted(path, *version, &wanted, &mut out)
            });
        }
        for entry in current.iter().filter(|e| e.state == EntryState::Dir) {
            ok &= self.guard(&entry.path, |me| me.apply_dir(entry, &mut out));
        }
        for entry in &current {
            if let EntryState::File { size, hash } = entry.state {
                ok &= self.guard(&entry.path, |me| me.apply_file(entry, size, hash, &mut out));
            }
        }
        out.failed |= !ok;
        out.failures.append(&mut self.failures);
        for (_, (path, exec)) in self.carried.drain() {
            log::info!(
                "dropped the chmod {} of {path}: the server deleted the file (R-15.2.5)",
                if exec { "+x" } else { "-x" }
            );
        }
        self.follow.clear();
        self.deleted_here.clear();
        for stashed in self.stash.drain().flat_map(|(_, files)| files) {
            let _ = fs::remove_file(&stashed.at);
            Self::forget_origin(&stashed.at);
            if let Some(dir) = stashed.at.parent() {
                staging::tidy(dir);
            }
        }
        if let Some(donors) = self.donors.as_mut() {
            out.donors = donors.take();
        }
        Ok(out)
    }

    /// Indexed files by content, for the hashes in `wanted`.
    fn indexed_by_hash(&self, wanted: &HashSet<ContentHash>) -> HashMap<ContentHash, WirePath> {
        self.index
            .iter()
            .filter_map(|(path, entry)| match entry.hash() {
                Some(hash) if wanted.contains(&hash) => Some((hash, path.clone())),
                _ => None,
            })
            .collect()
    }

    /// Runs one path's step; a failure on that path is recorded
    /// ([`Applied::failures`]: the session logs it once) and the others go
    /// on. Returns false on failure (the pull is then repeated).
    fn guard(
        &mut self,
        path: &WirePath,
        step: impl FnOnce(&mut Self) -> Result<(), ClientError>,
    ) -> bool {
        match step(self) {
            Ok(()) => true,
            Err(e) => {
                log::debug!("could not apply the server's change to {path}: {e}");
                let why = failure_why(self.root, path, &e);
                self.failures.insert(path.clone(), why);
                false
            }
        }
    }

    /// `path` in the folder as the step's system calls reach it: the
    /// whole path, or through a handle on its parent when that is longer
    /// than the system takes ([`reach`], breaker21 F3).
    fn local(&self, path: &WirePath) -> Reach {
        reach(self.root, path)
    }

    /// `path` in the folder as a whole path: for messages and for the
    /// directories above it (staging, [`Self::stage_dir`]).
    fn whole(&self, path: &WirePath) -> PathBuf {
        path.to_local(self.root)
    }

    /// Whether the index holds `entry`'s path at a newer version than the
    /// entry: the server made the entry's state before a change this
    /// device already has (its own acknowledged push), so applying it
    /// would undo that change here.
    fn is_superseded(&self, entry: &ChangeEntry) -> bool {
        self.index
            .get(&entry.path)
            .is_some_and(|indexed| indexed.version > entry.version)
    }

    /// Whether the index holds, strictly below a Deleted `entry`'s path,
    /// something at the entry's version or older: what the deletion
    /// removed on the server.
    fn holds_older_below(&self, entry: &ChangeEntry) -> bool {
        self.index
            .subtree(Some(&entry.path))
            .any(|(p, e)| *p != entry.path && e.version <= entry.version)
    }

    /// Applies the deletion of `path` by change `version`: what is there
    /// and below it goes, except what was changed here (kept, to push)
    /// and what the index holds at a newer version than the deletion
    /// (made after it: this device's own later pushes, R-5.2.15), the
    /// path itself included.
    fn apply_deleted(
        &mut self,
        path: &WirePath,
        version: u64,
        wanted: &HashSet<ContentHash>,
        out: &mut Applied,
    ) -> Result<(), ClientError> {
        // Files deleted here (not pushed yet) that the reply brings back
        // elsewhere: the server moved them; the deletion follows.
        let deleted_here: Vec<(WirePath, ContentHash, Stat)> = self
            .index
            .subtree(Some(path))
            .filter(|(_, e)| e.version <= version)
            .filter_map(|(p, e)| match e.kind {
                EntryKind::File { hash, stat } if wanted.contains(&hash) => {
                    Some((p.clone(), hash, stat))
                }
                _ => None,
            })
            .collect();
        for (p, hash, stat) in deleted_here {
            if check_path(self.root, &p)? == Local::Absent {
                self.deleted_here.entry(hash).or_default().push((p, stat));
            }
        }
        let newer_here = self.index.get(path).is_some_and(|e| e.version > version);
        match check_path(self.root, path)? {
            Local::Absent => {}
            Local::Foreign => log::warn!("not deleting {path}: it is a symlink or special file"),
            Local::File(_) if newer_here => {}
            // Kept, indexed as it is, until its SQLite companions close
            // the repeated pull lists the deletion again.
            Local::File(_) if self.held_for_writer(path, Change::Delete, out) => return Ok(()),
            Local::File(stat) => {
                self.remove_file_if_synced(path, stat, wanted, out)?;
            }
            Local::Dir => self.remove_tree(path, version, wanted, out)?,
        }
        self.index.remove_subtree_up_to(path, version);
        Ok(())
    }

    /// Deletes (or stashes) a file whose content is the synced one; keeps and
    /// marks for pushing anything else. Returns whether it was removed.
    fn remove_file_if_synced(
        &mut self,
        path: &WirePath,
        stat: Stat,
        wanted: &HashSet<ContentHash>,
        out: &mut Applied,
    ) -> Result<bool, ClientError> {
        let entry = self.index.get(path).copied();
        let indexed = Indexed::of(entry);
        let decision = on_pull(indexed, self.disk(path, Local::File(stat)), Server::Deleted);
        if decision != PullDecision::Apply {
            if let Some(Entry {
                kind: EntryKind::File { hash, stat: was },
                ..
            }) = entry
            {
                if wanted.contains(&hash) {
                    // The reply brings this file's indexed content to
                    // another path: the server moved it; the edit follows
                    // there unless it cannot (then kept here).
                    let edits = self.follow.entry(hash).or_default();
                    edits.push((path.clone(), was, stat));
                }
            }
        }
        if decision != PullDecision::Apply || !self.remove_synced(path, wanted, out)? {
            log::info!("kept {path}: changed here, the server deleted it");
            out.dirty.insert(path.clone());
            return Ok(false);
        }
        if let (true, Some(hash), Some(was)) = (
            self.modes,
            entry.and_then(|e| e.hash()),
            indexed_exec(entry),
        ) {
            if let Some(bit) = carried_mode(was, stat.exec) {
                self.carried.insert(hash, (path.clone(), bit));
            }
        }
        log::debug!("deleted {path}");
        out.changed += 1;
        Ok(true)
    }

    /// Removes a directory tree the server deleted by change `version`,
    /// keeping every file that was changed or created here, every entry
    /// the index holds at a newer version (made after the deletion), and
    /// the directories holding them.
    fn remove_tree(
        &mut self,
        dir: &WirePath,
        version: u64,
        wanted: &HashSet<ContentHash>,
        out: &mut Applied,
    ) -> Result<(), ClientError> {
        let base = self.whole(dir);
        let mut newer: Vec<WirePath> = Vec::new();
        let walk = walkdir::WalkDir::new(&base)
            .follow_links(false)
            .contents_first(true);
        for item in walk {
            let Ok(item) = item else { continue };
            let Some(rel) = item
                .path()
                .strip_prefix(self.root)
                .ok()
                .and_then(|r| r.to_str())
                .and_then(|r| WirePath::new(r).ok())
            else {
                continue;
            };
            let ft = item.file_type();
            if self.index.get(&rel).is_some_and(|e| e.version > version) {
                newer.push(rel);
                continue;
            }
            if ft.is_file() {
                // A file whose whole path is too long is looked at through
                // directory handles ([`check_path`]), as the scanner does.
                let stat = match item.metadata() {
                    Ok(meta) => Some(Stat::of(&meta)),
                    Err(e) if e.io_error().is_some_and(is_too_long) => {
                        match check_path(self.root, &rel)? {
                            Local::File(stat) => Some(stat),
                            _ => None,
                        }
                    }
                    Err(_) => None,
                };
                if let Some(stat) = stat {
                    // Kept while its SQLite companions are open.
                    if !self.held_for_writer(&rel, Change::Delete, out) {
                        self.remove_file_if_synced(&rel, stat, wanted, out)?;
                    }
                }
            } else if ft.is_dir() {
                let known = matches!(
                    self.index.get(&rel),
                    Some(Entry {
                        kind: EntryKind::Dir,
                        ..
                    })
                );
                // A directory still holding what came after the deletion
                // stays, as synced as what it holds.
                let holds_newer = newer.iter().any(|n| n.is_within(&rel));
                if !holds_newer && (!known || fs::remove_dir(&*self.local(&rel)).is_err()) {
                    out.dirty.insert(rel);
                }
            }
        }
        Ok(())
    }

    fn apply_dir(&mut self, entry: &ChangeEntry, out: &mut Applied) -> Result<(), ClientError> {
        let path = &entry.path;
        let dir = Entry {
            kind: EntryKind::Dir,
            version: entry.version,
        };
        let local = check_path(self.root, path)?;
        let indexed = Indexed::of(self.index.get(path).copied());
        let decision = on_pull(indexed, self.disk(path, local), Server::Dir);
        // Each way that records the directory notes it first, before it
        // is made (R-5.2.21, [`placement_log`]).
        match (decision, local) {
            (PullDecision::Record, _) => self.log_placed_dir(path, entry.version)?,
            // Removed, replaced (or its parent) here, unchanged on the server.
            (PullDecision::KeepLocalChange, _) => {
                self.agrees(path, None, entry.version, out);
                return Ok(());
            }
            (PullDecision::Foreign, _) if self.clear_file_ancestor(path, out)? == Local::Absent => {
                self.log_placed_dir(path, entry.version)?;
                ensure_dirs(self.root, path)?;
                out.changed += 1;
            }
            (PullDecision::Foreign, _) => {
                self.hold_back_foreign(path, entry.version, "directory");
                return Ok(());
            }
            (PullDecision::Apply, Local::Absent) => {
                self.log_placed_dir(path, entry.version)?;
                ensure_dirs(self.root, path)?;
                log::debug!("created directory {path}");
                out.changed += 1;
            }
            (PullDecision::Apply | PullDecision::ConflictCopyThenApply, Local::File(_)) => {
                let removed = decision == PullDecision::Apply
                    && self.remove_synced(path, &HashSet::new(), out)?;
                if !removed {
                    let kept = self.conflict_copy(path)?;
                    out.dirty.insert(kept);
                }
                self.index.remove(path);
                self.log_placed_dir(path, entry.version)?;
                ensure_dirs(self.root, path)?;
                out.changed += 1;
            }
            // Not decided for a directory (`conflict::on_pull`): leave the
            // path, compare it again and repeat the pull.
            _ => {
                out.dirty.insert(path.clone());
                out.failed = true;
                return Ok(());
            }
        }
        self.index.insert(path.clone(), dir);
        Ok(())
    }

    /// A server file at `entry.path`: decided by [`on_pull`] from the index,
    /// the disk (a local file judged against the index and the server's
    /// `hash`) and the server's entry, then carried out.
    fn apply_file(
        &mut self,
        entry: &ChangeEntry,
        size: u64,
        hash: ContentHash,
        out: &mut Applied,
    ) -> Result<(), ClientError> {
        let path = &entry.path;
        let indexed = self.index.get(path).copied();
        let local = check_path(self.root, path)?;
        if indexed.is_none() && local == Local::Absent && self.follows(path, hash, entry, out)? {
            return Ok(());
        }
        let disk = match local {
            Local::File(stat) => Disk::File(self.file_content(path, stat, hash)?),
            Local::Dir if self.keeps_out(path) => Disk::IgnoredDir,
            other => self.disk(path, other),
        };
        let decision = on_pull(Indexed::of(indexed), disk, Server::File(hash));
        // Neither the server's file nor a conflict copy under the feet of
        // a program writing there: a decision that changes the
        // path, now or through a push first, waits for it to close.
        let changes = !matches!(
            decision,
            PullDecision::Record
                | PullDecision::KeepLocalChange
                | PullDecision::Foreign
                | PullDecision::HeldBack
        );
        if changes && self.held_for_writer(path, Change::Replace, out) {
            return Ok(());
        }
        let expect = match decision {
            PullDecision::Record => {
                if let Local::File(stat) = local {
                    let stat = self.agree_on_mode(path, stat, indexed, entry, out)?;
                    self.index_file(path, stat, hash, entry.version);
                }
                return Ok(());
            }
            PullDecision::KeepLocalChange => {
                // Deleted, edited or replaced here, content unchanged on the
                // server; its bit may have changed there.
                if !self.keep_local_change_mode(path, local, indexed, entry, out)? {
                    self.defer_to_push(path, out);
                    return Ok(());
                }
                if self.agrees(path, Some(hash), entry.version, out) && self.modes {
                    self.index_exec(path, entry.executable);
                }
                return Ok(());
            }
            PullDecision::Foreign => match self.clear_file_ancestor(path, out)? {
                Local::Absent => Local::Absent,
                _ => {
                    self.hold_back_foreign(path, entry.version, "file");
                    return Ok(());
                }
            },
            PullDecision::HeldBack => {
                if self.index.hold_back(path, entry.version) {
                    log::warn!(
                        "not placing the server's file {path}: an ignored directory is in the way here \
                         (`cloud-client status` lists it; move the directory away to receive the file)"
                    );
                }
                return Ok(());
            }
            PullDecision::Apply => local,
            PullDecision::ClearDirThenApply => {
                self.remove_tree(path, entry.version, &HashSet::new(), out)?;
                self.index.remove_subtree_up_to(path, entry.version);
                match check_path(self.root, path)? {
                    Local::Absent => Local::Absent,
                    // An edit inside was kept: the repeated pull brings the file.
                    _ => {
                        out.failed = true;
                        return Ok(());
                    }
                }
            }
            PullDecision::PushFirst
            | PullDecision::KeepEdit
            | PullDecision::ConflictCopyThenApply => {
                self.defer_to_push(path, out);
                return Ok(());
            }
        };
        let job = FetchJob {
            path: path.clone(),
            version: entry.version,
            size,
            hash,
            expect,
            exec: self.modes.then_some(entry.executable),
            carried: None,
        };
        let job = self.carry_mode(job)?;
        self.obtain(job, out)
    }

    /// A file the reply brings to `path` (nothing here, nothing indexed)
    /// with the content of a file this reply deleted that was edited or
    /// deleted here and not pushed: the server moved that file (a rename of
    /// it or of a directory above it). The local change follows it
    /// the edited file is moved to `path`, or — deleted here —
    /// `path` is indexed without being fetched; indexed with the server's
    /// version and the old stat, the next look pushes the edit (an upload on
    /// that version) or the deletion. Returns whether it did.
    fn follows(
        &mut self,
        path: &WirePath,
        hash: ContentHash,
        entry: &ChangeEntry,
        out: &mut Applied,
    ) -> Result<bool, ClientError> {
        if let Some((from, was, now)) = take_best(self.follow.get_mut(&hash), path, |e| &e.0) {
            // Moved only if it is still the file judged (not changed since).
            if check_path(self.root, &from)? != Local::File(now) {
                return Ok(false);
            }
            ensure_parent(self.root, path)?;
            let (src, dst) = (self.local(&from), self.local(path));
            fs::rename(&src, &dst).map_err(|e| {
                ClientError::io(format!("move {} to {}", src.display(), dst.display()), e)
            })?;
            self.index_file(path, was, hash, entry.version);
            log::info!("the edit of {from} follows it to {path} (moved on the server)");
            out.dirty.remove(&from);
            out.dirty.insert(path.clone());
            out.changed += 1;
            self.remove_emptied_dirs(&from, out);
            return Ok(true);
        }
        if let Some((from, was)) = take_best(self.deleted_here.get_mut(&hash), path, |e| &e.0) {
            self.index_file(path, was, hash, entry.version);
            log::info!("the deletion of {from} follows it to {path} (moved on the server)");
            out.dirty.insert(path.clone());
            return Ok(true);
        }
        Ok(false)
    }

    /// Removes the directories above `moved` that the index no longer
    /// holds (the reply deleted them) and that are now empty.
    fn remove_emptied_dirs(&mut self, moved: &WirePath, out: &mut Applied) {
        let mut up = moved.parent();
        while let Some(dir) = up {
            if self.index.get(&dir).is_some() || fs::remove_dir(self.local(&dir)).is_err() {
                break;
            }
            out.dirty.remove(&dir);
            up = dir.parent();
        }
    }

    /// True when the local directory at `path` is one the rules keep out
    /// of sync ([`kept_out`]; never without rules).
    fn keeps_out(&self, path: &WirePath) -> bool {
        self.rules
            .is_some_and(|rules| kept_out(self.root, path, rules, self.index))
    }

    /// The local file at `path` (stat `stat`) holds the server's content,
    /// or a local edit of content the server did not change: its executable
    /// bit follows the server's (`entry`, when modes are known) unless it
    /// was changed here since the index (then the index records the
    /// server's bit and the path is pushed: a SetMode). Decided by
    /// [`on_pull_mode`]. Returns the stat to index.
    fn agree_on_mode(
        &mut self,
        path: &WirePath,
        stat: Stat,
        indexed: Option<Entry>,
        entry: &ChangeEntry,
        out: &mut Applied,
    ) -> Result<Stat, ClientError> {
        if !self.modes {
            return Ok(stat);
        }
        match on_pull_mode(indexed_exec(indexed), Some(stat.exec), entry.executable) {
            ModeDecision::Agree | ModeDecision::PushFirst => Ok(stat),
            ModeDecision::KeepLocal => {
                out.dirty.insert(path.clone());
                Ok(Stat {
                    exec: entry.executable,
                    ..stat
                })
            }
            ModeDecision::Apply => self.give_server_bit(path, stat, entry.executable, out),
        }
    }

    /// The bit half of a [`PullDecision::KeepLocalChange`]: a local file
    /// (edited here) takes the server's new bit as [`Self::agree_on_mode`]
    /// says; a file moved or deleted here whose bit the server changed
    /// cannot take it, so its push goes first (returns false: the caller
    /// defers to the push, [`ModeDecision::PushFirst`]).
    fn keep_local_change_mode(
        &mut self,
        path: &WirePath,
        local: Local,
        indexed: Option<Entry>,
        entry: &ChangeEntry,
        out: &mut Applied,
    ) -> Result<bool, ClientError> {
        if !self.modes {
            return Ok(true);
        }
        match local {
            Local::File(stat) => {
                self.agree_on_mode(path, stat, indexed, entry, out)?;
                Ok(true)
            }
            Local::Absent | Local::Dir => {
                let decision = on_pull_mode(indexed_exec(indexed), None, entry.executable);
                Ok(decision != ModeDecision::PushFirst)
            }
            Local::Foreign => Ok(true),
        }
    }

    /// Records `exec` as the bit of the indexed file at `path`.
    fn index_exec(&mut self, path: &WirePath, exec: bool) {
        if let Some(mut e) = self.index.get(path).copied() {
            if let EntryKind::File { ref mut stat, .. } = e.kind {
                stat.exec = exec;
                self.index.insert(path.clone(), e);
            }
        }
    }

    /// The server's `what` (file or directory) at `path`, `version`, is not
    /// placed: a symlink or special file is at the path or above it, and
    /// this client never writes through or over one (README "Symlinks").
    /// Held back as for an ignored directory: recorded
    /// with its version, so `status` lists it and the folder is not in
    /// sync, a RemoveDir above it keeps it on the server, and it
    /// is pulled again once the way is free. Skipping it silently let the
    /// cursor pass it: it never arrived, and this device's RemoveDir of a
    /// directory above it deleted it on the server (outside tester
    /// breaker13, findings 1 and 2).
    fn hold_back_foreign(&mut self, path: &WirePath, version: u64, what: &str) {
        if self.index.hold_back(path, version) {
            log::warn!(
                "not placing the server's {what} {path}: a symlink or special file is in the way here \
                 (`cloud-client status` lists it; remove or rename it to receive the server's {what})"
            );
        }
    }

    /// A server entry below a local regular file: this device replaced a
    /// directory by a file (or edited a file the server turned into a
    /// directory) and has not pushed it yet. Both sides are kept: the local
    /// file becomes a conflict copy (pushed later) and the entry is applied.
    /// Skipping the entry would be worse than untidy: the cursor would pass
    /// it, and this device's RemoveDir of that directory would then delete on
    /// the server a file it never had. Returns what is at `path` afterwards
    /// (still `Foreign` behind a symlink, which is never touched).
    fn clear_file_ancestor(
        &mut self,
        path: &WirePath,
        out: &mut Applied,
    ) -> Result<Local, ClientError> {
        let mut ancestors = Vec::new();
        let mut current = path.parent();
        while let Some(dir) = current {
            current = dir.parent();
            ancestors.push(dir);
        }
        for dir in ancestors.iter().rev() {
            match check_path(self.root, dir)? {
                Local::Dir => {}
                Local::File(_) => {
                    let kept = self.conflict_copy(dir)?;
                    log::warn!(
                        "{dir} is a file here and a directory on the server; kept this device's file as {kept}"
                    );
                    if self.index.get(dir).is_some_and(|e| e.hash().is_some()) {
                        self.index.remove(dir);
                    }
                    out.dirty.insert(kept);
                    out.changed += 1;
                    break;
                }
                Local::Absent | Local::Foreign => break,
            }
        }
        check_path(self.root, path)
    }

    /// A path changed here (edited or deleted since the index) that the
    /// server also holds a newer version of. The client cannot tell whether
    /// that version is another device's or this device's own push that was
    /// applied but never acknowledged (a crash, a lost connection), so it
    /// does not decide: the local state and the index entry stay (the push
    /// carries the old base), the path is pushed, and the pull is repeated
    /// (its cursor must not pass the entry). The server applies the push if
    /// the newer version was this device's own (PROTOCOL.md §7.2), or
    /// answers Conflict / Stale, whose handling brings the other version.
    fn defer_to_push(&mut self, path: &WirePath, out: &mut Applied) {
        log::info!("{path} changed here and on the server: pushing it before pulling it");
        out.dirty.insert(path.clone());
        out.deferred.insert(path.clone());
    }

    /// Gets a file's content: empty files directly, a file this reply
    /// deleted (another device's rename) by renaming it into place
    /// ([`taken`]), other content the folder already holds by copying it,
    /// anything else by queueing a download. What is made here is as
    /// durable as a download before it is placed ([`Self::obtained`]).
    fn obtain(&mut self, job: FetchJob, out: &mut Applied) -> Result<(), ClientError> {
        if job.size == 0 {
            let tmp = self.stage_name(&job.path, "empty")?;
            let file =
                fs::File::create(&tmp).map_err(|e| ClientError::io("create temporary file", e))?;
            let made = Obtained::of(job, tmp, &file)?;
            return self.obtained(made, out);
        }
        let wanted_after = match self.wanters.get_mut(&job.hash) {
            Some(n) => {
                *n = n.saturating_sub(1);
                *n
            }
            None => 0,
        };
        let stashed = self.stash.get(&job.hash).map_or(0, Vec::len);
        if stash_use(stashed, wanted_after) == Some(Reuse::Take)
            && self.obtain_by_taking(&job, out)?
        {
            return Ok(());
        }
        if let Some(source) = self.reusable(job.hash) {
            let tmp = self.stage_name(&job.path, "copy")?;
            match copy_hashed(&source, &tmp) {
                Ok((got, n, file)) if got == job.hash && n == job.size => {
                    log::debug!("reused local content for {}", job.path);
                    let made = Obtained::of(job, tmp, &file)?;
                    return self.obtained(made, out);
                }
                _ => {
                    let _ = fs::remove_file(&tmp);
                }
            }
        }
        out.fetches.push(job);
        Ok(())
    }

    /// A file made from local content: handed over to the caller (who
    /// syncs it with its downloads), or synced here, placed, and its
    /// directory synced, so it is never placed before its data is durable.
    fn obtained(&mut self, made: Obtained, out: &mut Applied) -> Result<(), ClientError> {
        if self.hand_over {
            out.obtained.push(made);
            return Ok(());
        }
        if let Err(e) = made.reopen().and_then(|file| file.sync_all()) {
            let _ = fs::remove_file(&made.tmp);
            return Err(ClientError::io("sync temporary file", e));
        }
        let Obtained { job, tmp, .. } = made;
        self.place(&job, &tmp, (job.hash, job.version), out)?;
        let dir = job
            .path
            .parent()
            .map_or_else(|| Reach::plain(self.root.to_path_buf()), |p| self.local(&p));
        fs::File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| ClientError::io(format!("sync {}", dir.display()), e))
    }

    /// A local file (stashed, or indexed and unchanged) holding `hash`.
    fn reusable(&self, hash: ContentHash) -> Option<Reach> {
        if let Some(stashed) = self.stash.get(&hash).and_then(|files| files.last()) {
            return Some(Reach::plain(stashed.at.clone()));
        }
        let path = self.by_hash.get(&hash)?;
        match self.index.get(path)?.kind {
            EntryKind::File { stat, hash: h } if h == hash => match check_path(self.root, path) {
                Ok(Local::File(now)) if judge(&stat, &now) == Verdict::Unchanged => {
                    Some(self.local(path))
                }
                _ => None,
            },
            _ => None,
        }
    }

    /// A fresh name in the temporary area.
    pub fn tmp_name(&mut self, what: &str) -> PathBuf {
        self.counter += 1;
        self.tmp
            .join(format!("{what}-{}-{}", std::process::id(), self.counter))
    }

    /// Where files going to, or coming from, the folder path `path` are
    /// staged so that every rename stays inside one mount (R-5.6.12,
    /// [`staging`]): the temporary area, or the staging directory of the
    /// drive mounted inside the folder that holds `path`'s directory (or
    /// the nearest existing one above it).
    ///
    /// # Errors
    /// The drive's staging directory cannot be made (a read-only drive),
    /// or its mount's top cannot be looked at.
    fn stage_dir(&self, path: &WirePath) -> Result<PathBuf, ClientError> {
        let local = self.whole(path);
        let parent = local.parent().unwrap_or(self.root);
        let dir = staging::existing_dir(self.root, parent);
        match staging::staging_for(self.root, self.tmp, &dir) {
            Ok(Some(staging)) => Ok(staging),
            Ok(None) => Ok(self.tmp.to_path_buf()),
            Err(e) => Err(ClientError::io(
                format!("stage on the file system of {}", dir.display()),
                e,
            )),
        }
    }

    /// A fresh name in the staging directory for `path` ([`Self::stage_dir`]).
    ///
    /// # Errors
    /// As [`Self::stage_dir`].
    pub fn stage_name(&mut self, path: &WirePath, what: &str) -> Result<PathBuf, ClientError> {
        self.counter += 1;
        let name = format!("{what}-{}-{}", std::process::id(), self.counter);
        Ok(self.stage_dir(path)?.join(name))
    }

    fn index_file(&mut self, path: &WirePath, stat: Stat, hash: ContentHash, version: u64) {
        let entry = Entry::synced_file(stat, hash, version);
        self.index.insert(path.clone(), entry);
    }
}

/// Why the server's change to `path` could not be applied here, for the
/// log and the status file: a path too long with the folder's in front
/// ([`too_long_why`]), a file this user may not read or write
/// (`the server's change waits: Permission denied here`), or the error.
pub fn failure_why(root: &Path, path: &WirePath, e: &ClientError) -> String {
    match e {
        ClientError::Io { cause, .. } if is_too_long(cause) => too_long_why(root, path),
        ClientError::Io { cause, .. } if cause.kind() == io::ErrorKind::PermissionDenied => {
            format!("the server's change waits: {} here", os_reason(cause))
        }
        other => format!("the server's change could not be applied: {other}"),
    }
}

/// A file the server deleted, whose bit was `indexed` when this device last
/// agreed with the server and is `local` now: the bit changed here and not
/// pushed yet, which follows the file if the server moved it, or
/// `None` (nothing changed here).
pub fn carried_mode(indexed: bool, local: bool) -> Option<bool> {
    (indexed != local).then_some(local)
}

/// Takes from `candidates` (files with the content a reply brings to
/// `path`) the one whose name is `path`'s, else the first.
fn take_best<T>(
    candidates: Option<&mut Vec<T>>,
    path: &WirePath,
    from: impl Fn(&T) -> &WirePath,
) -> Option<T> {
    let candidates = candidates?;
    if candidates.is_empty() {
        return None;
    }
    let at = candidates
        .iter()
        .position(|c| from(c).file_name() == path.file_name())
        .unwrap_or(0);
    Some(candidates.remove(at))
}

/// The executable bit the index records for a file (`None`: no file indexed).
fn indexed_exec(entry: Option<Entry>) -> Option<bool> {
    match entry?.kind {
        EntryKind::File { stat, .. } => Some(stat.exec),
        EntryKind::Dir => None,
    }
}

mod agree;
#[cfg(test)]
mod crash_tests;
mod donors;
#[cfg(test)]
mod echo_tests;
#[cfg(test)]
mod follow_tests;
mod held;
mod leftovers;
#[cfg(test)]
mod mode_tests;
mod move_whole;
#[cfg(test)]
mod moved_out_tests;
mod place;
mod placed;
#[cfg(test)]
mod placed_tests;
#[cfg(test)]
mod placement_crash_tests;
pub mod placement_log;
#[cfg(test)]
mod race_tests;
pub mod removal_log;
mod server_bit;
mod taken;
#[cfg(test)]
mod test_folder;
#[cfg(test)]
mod tests;
mod vouch;
#[cfg(test)]
mod vouch_tests;
pub mod whole_dirs;
