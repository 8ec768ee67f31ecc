//! After an unclean stop: make the journal agree with the folder, which is the
//! truth for content (files are renamed into place before they are journaled),
//! and attribute what the interrupted push left unjournaled to its device.

use super::journal::Record;
use super::tree::NodeKind;
use super::{StoreError, UserStore};
use crate::fsafe::{hash_reader, open_file};
use crate::protocol::{ClientId, WirePath};
use aside::Stale;
use std::collections::BTreeSet;

/// At most this many lines of one start's comparison are logged one by one.
const MAX_LOGGED: usize = 100;

/// What the start's comparison found, for the log.
#[derive(Debug, Default)]
pub(super) struct Reconciled {
    /// Changes journaled.
    pub changes: usize,
    /// Files kept listed as lost.
    pub lost: usize,
    /// Entries in the folder.
    pub entries: usize,
    /// Bytes hashed (files whose size or mtime differ).
    pub hashed_bytes: u64,
}

/// Why a file the tree lists is not served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lost {
    /// Not in the folder.
    Missing,
    /// Its bytes no longer give the journaled hash at the journaled size
    /// and mtime.
    Damaged,
}

/// What [`UserStore::reexamine`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reexamined {
    /// As journaled after all.
    Unchanged,
    /// Changed outside the server: journaled as this change.
    Changed(u64),
    /// Gone from the folder: lost.
    Missing,
    /// Other bytes at the same size and mtime: lost.
    Damaged,
    /// The tree lists no file there (any more).
    NotAFile,
}

/// A start's change, for the log: what was found and how it is journaled.
/// `cut` names the push or restore the stop cut off when the last intent
/// announced the fix: its change, not one made in the server's folder.
fn describe(fix: &Record, tree: &super::tree::Tree, cut: Option<&str>) -> String {
    const WHO: &str = "journaled as a change made in the server's folder";
    if let Some(cut) = cut {
        let what = match fix {
            Record::PutFile { path, .. } => path.to_string(),
            Record::MakeDir { path, .. } => format!("directory {path}"),
            Record::SetMode { path, .. } => format!("the executable bit of {path}"),
            _ => String::new(),
        };
        if let (false, Some(seq)) = (what.is_empty(), fix.seq()) {
            return format!(
                "{what} was placed by {cut} that the stop cut off: journaled as its change ({seq})"
            );
        }
    }
    match fix {
        Record::PutFile { seq, path, .. } if tree.get(path).is_some() => {
            format!("{path} changed outside the server (size or mtime differ from the journal): {WHO} ({seq})")
        }
        Record::PutFile { seq, path, .. } => format!("{path} added outside the server: {WHO} ({seq})"),
        Record::MakeDir { seq, path } => {
            format!("directory {path} added outside the server: {WHO} ({seq})")
        }
        Record::SetMode { seq, path, .. } => {
            format!("{path}: executable bit changed outside the server: {WHO} ({seq})")
        }
        Record::Remove { seq, path } => format!(
            "{path} is gone after an unclean stop: journaled as removed ({seq}), as a push the stop cut off left it"
        ),
        _ => String::new(),
    }
}

/// A file's modification time in ns, as the walk reads it.
pub(super) fn meta_mtime_ns(meta: &std::fs::Metadata) -> i64 {
    use std::os::unix::fs::MetadataExt;
    meta.mtime()
        .saturating_mul(1_000_000_000)
        .saturating_add(meta.mtime_nsec())
}

/// What the re-scan makes of one file.
enum Fix {
    /// The journal agrees with it.
    None,
    /// Gone since the scan listed it (it then counts as missing).
    Vanished,
    /// This record makes the journal agree.
    Put(Record),
    /// Other content than the journal's, with an older mtime: a copy put
    /// back, not an edit.
    Stale(Stale),
}

/// Whether the re-scan's `fix` is (part of) the change `intent` announced:
/// something put at its path, below it (a renamed directory's entries), or
/// above it (the parent directories it created). Removals need no author
/// (§7.2 only asks who made a path's current version).
fn announced(fix: &Record, intent: &WirePath) -> bool {
    match fix {
        Record::PutFile { path, .. }
        | Record::MakeDir { path, .. }
        | Record::SetMode { path, .. } => path.is_within(intent) || intent.is_within(path),
        _ => false,
    }
}

/// Splits the paths the tree lists but the folder lacks (with whether
/// each is a directory) into those the crash's push took away, to be
/// journaled removed, and those that are lost. Only after an
/// `unclean` stop, and only at or below a path the last intent `announced`
/// (an upload's or rename's target, a deletion's path, a rename's source):
/// at most one push can be on disk unjournaled.
fn split_missing(
    missing: Vec<(WirePath, bool)>,
    unclean: bool,
    announced: &[&WirePath],
) -> (Vec<WirePath>, Vec<(WirePath, bool)>) {
    let mut removed = Vec::new();
    let mut lost = Vec::new();
    for (path, dir) in missing {
        if unclean && announced.iter().any(|at| path.is_within(at)) {
            removed.push(path);
        } else {
            lost.push((path, dir));
        }
    }
    (removed, lost)
}

impl UserStore {
    /// Journals that `client`'s push is about to change `path` on disk, and
    /// hands the journal to the kernel before the change is made. So at a
    /// process crash at most this one change is on disk unjournaled, and the
    /// re-scan knows whose it is: the device's own push then never comes
    /// back to it as someone else's change (§7.2). Written to the kernel,
    /// not synced: after a power loss (`--fsync`) such a change may still be
    /// found with an unknown author (a conflict copy, nothing lost).
    ///
    /// # Errors
    /// The journal append or write failed (nothing was changed on disk).
    pub(super) fn intend(&mut self, client: ClientId, path: &WirePath) -> Result<(), StoreError> {
        self.record(Record::Intent {
            client,
            path: path.clone(),
        })?;
        Ok(self.journal.flush(false)?)
    }

    /// [`UserStore::intend`] for a rename of `from` to `to`: the intent
    /// also names the source, the one other path the rename takes away, so
    /// a re-scan after a crash journals `from` removed and nothing else
    ///
    ///
    /// # Errors
    /// The journal append or write failed (nothing was changed on disk).
    pub(super) fn intend_move(
        &mut self,
        client: ClientId,
        from: &WirePath,
        to: &WirePath,
    ) -> Result<(), StoreError> {
        self.record(Record::Intent {
            client,
            path: to.clone(),
        })?;
        self.record(Record::MoveIntent { from: from.clone() })?;
        Ok(self.journal.flush(false)?)
    }

    /// Journals every difference between the folder and the tree;
    /// returns what it found. What the last intent announced is journaled
    /// as that device's change; anything else has no author: a change made
    /// in the server's folder. A path the tree lists that the folder lacks
    /// is removed from the journal only after an `unclean` stop and only
    /// at or below what the last intent named (its target, or a rename's
    /// source): the one push's removal or rename the crash left
    /// unjournaled. Every other missing path was removed by hand
    /// or lost to the disk, which a power loss makes likely, and is kept
    /// listed as lost: never propagated as a deletion, so the
    /// devices keep the last copies (breaker24 F6: every missing path was
    /// deleted on every device after any unclean stop).
    ///
    /// # Errors
    /// The folder cannot be listed, a changed file cannot be read, the
    /// journal append failed.
    pub(super) fn reconcile(&mut self, unclean: bool) -> Result<Reconciled, StoreError> {
        let intent = self.intent.take();
        let intent_from = self.intent_from.take();
        let announced_paths: Vec<&WirePath> = intent
            .iter()
            .map(|(_, at)| at)
            .chain(intent_from.iter())
            .collect();
        let mut seen: BTreeSet<WirePath> = BTreeSet::new();
        let mut fixes: Vec<Record> = Vec::new();
        let mut stale: Vec<Stale> = Vec::new();
        let mut out = Reconciled::default();
        let mut seq = self.head;
        // Through directory handles, like every other access: a legal path
        // longer than PATH_MAX allows below the data directory is found too.
        let walked = crate::fsafe::walk::scan(&self.root)?;
        let walked = self.set_aside_kind_changes(walked, &announced_paths);
        for found in walked {
            out.entries += 1;
            let path = found.path;
            match found.file {
                None => {
                    if !matches!(self.tree.get(&path), Some(n) if n.is_dir()) {
                        seq += 1;
                        fixes.push(Record::MakeDir {
                            seq,
                            path: path.clone(),
                        });
                    }
                }
                Some((len, mtime)) => {
                    // The interrupted push may have rewritten its file at the
                    // same size within one timestamp tick: hash it anyway.
                    let suspect = intent.as_ref().is_some_and(|(_, at)| path.is_within(at));
                    // What the cut-off push announced is completed as found.
                    let pushed = announced_paths.iter().any(|at| path.is_within(at));
                    let (fix, hashed) =
                        self.file_fix(&path, (len, mtime), (suspect, !pushed), seq + 1)?;
                    out.hashed_bytes += hashed;
                    match fix {
                        Fix::Vanished => continue,
                        // Taken out of its path below: the journal's
                        // version there is then missing, so lost.
                        Fix::Stale(s) => {
                            stale.push(s);
                            continue;
                        }
                        Fix::None => {}
                        Fix::Put(record) => {
                            seq += 1;
                            fixes.push(record);
                        }
                    }
                    // A PutFile keeps a file's bit (§15.3), so the tree's
                    // bit is what the journal says after the fixes too.
                    if found.executable != self.tree.is_executable(&path) {
                        seq += 1;
                        fixes.push(Record::SetMode {
                            seq,
                            path: path.clone(),
                            executable: found.executable,
                        });
                    }
                }
            }
            seen.insert(path);
        }
        for moved in self.set_aside_stale(stale) {
            seq += 1;
            fixes.push(Record::PutFile {
                seq,
                path: moved.at,
                size: moved.stale.size,
                hash: moved.stale.hash,
                mtime_ns: moved.stale.mtime_ns,
            });
        }
        let missing: Vec<(WirePath, bool)> = self
            .tree
            .iter()
            .filter(|(p, _)| !seen.contains(*p))
            .map(|(p, n)| (p.clone(), n.is_dir()))
            .collect();
        let (removed, lost) = split_missing(missing, unclean, &announced_paths);
        for path in WirePath::top_most(removed) {
            seq += 1;
            fixes.push(Record::Remove { seq, path });
        }
        self.keep_lost(lost, &mut out);
        out.changes = fixes.len();
        let label = self.label();
        // Whose the announced fixes are (R-14.3.7: a cut restore's file is
        // the restore's, not a hand's).
        let cut = match (&intent, &self.resume) {
            (Some((0, _)), Some(restore)) => Some(format!("the restore of {}", restore.path)),
            (Some((0, _)), None) | (None, _) => None,
            (Some((client, _)), _) => Some(format!("device {client}'s push")),
        };
        for (n, fix) in fixes.iter().enumerate() {
            if n == MAX_LOGGED {
                log::warn!("{label}: {} more changes found", fixes.len() - n);
                break;
            }
            let by = match &intent {
                Some((_, at)) if announced(fix, at) => cut.as_deref(),
                _ => None,
            };
            log::warn!("{label}: {}", describe(fix, &self.tree, by));
        }
        self.record_fixes(fixes, intent)?;
        Ok(out)
    }

    /// After a clean stop: the directories the tree lists but the folder
    /// lacks are made again (empty, so what the tree lists below them has
    /// a place), and the files are kept listed as lost.
    fn keep_lost(&mut self, missing: Vec<(WirePath, bool)>, out: &mut Reconciled) {
        let label = self.label();
        for (path, dir) in missing {
            if dir {
                match crate::fsafe::make_dirs(&self.root, &path) {
                    Ok(()) => log::warn!(
                        "{label}: directory {path} was removed outside the server: made again \
                         (empty) for what the journal lists below it"
                    ),
                    Err(e) => log::warn!(
                        "{label}: directory {path} was removed outside the server and cannot \
                         be made again: {e}"
                    ),
                }
                continue;
            }
            out.lost += 1;
            if out.lost <= MAX_LOGGED {
                log::warn!(
                    "{label}: {path} (v{}) is missing (removed outside the server, or lost to \
                     the disk): not deleted on the devices, which keep their copies; not \
                     served until a device pushes it again (an edit there) or it is put back \
                     while the server is stopped; to delete it everywhere, delete it on a device",
                    self.tree.get(&path).map_or(0, |n| n.version)
                );
            }
            self.lost.insert(path, Lost::Missing);
        }
        if out.lost > MAX_LOGGED {
            log::warn!("{label}: {} more files missing", out.lost - MAX_LOGGED);
        }
    }

    /// `AllClients/<user>`, for the log.
    pub fn label(&self) -> String {
        let user = self
            .root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        format!("AllClients/{user}")
    }

    /// Forgets that files at or below `path` are lost: a change journaled
    /// there replaced, removed or moved them (a moved one missing on disk
    /// is found again at its next fetch).
    pub(super) fn forget_lost(&mut self, path: &WirePath) {
        if self.lost.is_empty() {
            return;
        }
        self.lost.retain(|p, _| !p.is_within(path));
    }

    /// Whether a file became lost while the server runs since the last
    /// call; the flag is cleared.
    pub fn take_lost_news(&mut self) -> bool {
        std::mem::take(&mut self.lost_news)
    }

    /// Whether the server's copy of `path` is known missing or damaged,
    /// and which (`Some(true)`: damaged).
    pub(super) fn lost_kind(&self, path: &WirePath) -> Option<bool> {
        self.lost.get(path).map(|l| matches!(l, Lost::Damaged))
    }

    /// Examines the file at `path` again after a fetch found it not as
    /// journaled: its size or mtime changed (an edit by hand while
    /// the server runs) → journaled as a change made in the server's
    /// folder, as the start's comparison would; gone → lost
    /// (missing); the same size and mtime with other bytes (bit rot, a
    /// write that kept the times) → lost (damaged): neither is served nor
    /// propagated.
    ///
    /// # Errors
    /// The file cannot be read; the journal append failed.
    pub fn reexamine(&mut self, path: &WirePath) -> Result<Reexamined, StoreError> {
        let journaled = match self.tree.get(path).map(|n| n.kind) {
            Some(NodeKind::File {
                size,
                mtime_ns,
                hash,
                ..
            }) => (size, mtime_ns, hash),
            _ => return Ok(Reexamined::NotAFile),
        };
        let Some(file) = open_file(&self.root, path)? else {
            self.lost_news |= self.lost.insert(path.clone(), Lost::Missing).is_none();
            return Ok(Reexamined::Missing);
        };
        let meta = file.metadata()?;
        let stat = (meta.len(), meta_mtime_ns(&meta));
        let (hash, size) = hash_reader(&file)?;
        self.guard_kept(path, hash, &meta);
        if stat == (journaled.0, journaled.1) {
            if (size, hash) == (journaled.0, journaled.2) {
                if self.lost.remove(path) == Some(Lost::Damaged) {
                    let seq = self.tree.get(path).map_or(0, |n| n.version);
                    self.record(Record::Damaged {
                        seq,
                        path: path.clone(),
                        damaged: false,
                    })?;
                }
                return Ok(Reexamined::Unchanged);
            }
            // Journaled, so a restart (whose comparison reads only size
            // and mtime) still knows; once per damage.
            if self.lost.insert(path.clone(), Lost::Damaged) != Some(Lost::Damaged) {
                self.lost_news = true;
                let seq = self.tree.get(path).map_or(0, |n| n.version);
                self.record(Record::Damaged {
                    seq,
                    path: path.clone(),
                    damaged: true,
                })?;
            }
            return Ok(Reexamined::Damaged);
        }
        let seq = self.next_seq();
        self.record(Record::PutFile {
            seq,
            path: path.clone(),
            size,
            hash,
            mtime_ns: stat.1,
        })?;
        Ok(Reexamined::Changed(seq))
    }

    /// The record (as change `seq`) that makes the journal agree with the
    /// file at `path` of size and mtime `stat` (bytes, ns). A file whose
    /// size and mtime the tree has is taken as journaled unless `suspect`.
    /// Unless `may_be_stale` is false, other content with an older mtime
    /// than the tree's file is a stale copy, not a change.
    ///
    /// # Errors
    /// The file cannot be opened or read.
    fn file_fix(
        &self,
        path: &WirePath,
        (len, mtime): (u64, i64),
        (suspect, may_be_stale): (bool, bool),
        seq: u64,
    ) -> Result<(Fix, u64), StoreError> {
        let current = self.tree.get(path).and_then(|n| match n.kind {
            NodeKind::File { hash, mtime_ns, .. } => Some((n.version, hash, mtime_ns)),
            NodeKind::Dir => None,
        });
        let journaled = match self.tree.get(path).map(|n| n.kind) {
            Some(NodeKind::File {
                size,
                mtime_ns,
                hash,
                ..
            }) if size == len && mtime_ns == mtime => Some(hash),
            _ => None,
        };
        if journaled.is_some() && !suspect {
            return Ok((Fix::None, 0));
        }
        let Some(file) = open_file(&self.root, path)? else {
            return Ok((Fix::Vanished, 0));
        };
        let meta = file.metadata()?;
        let (hash, size) = hash_reader(file)?;
        if journaled == Some(hash) {
            return Ok((Fix::None, size));
        }
        // Edited in place: a kept version sharing its inode is damaged too.
        self.guard_kept(path, hash, &meta);
        if let Some((version, was, was_mtime)) = current {
            if may_be_stale && was != hash && clash::is_stale(mtime, was_mtime) {
                let stale = Stale {
                    path: path.clone(),
                    size,
                    hash,
                    mtime_ns: mtime,
                    version,
                };
                return Ok((Fix::Stale(stale), size));
            }
        }
        // New or changed content, or only a new mtime: either way one
        // record, so the next re-scan need not hash it.
        let put = Record::PutFile {
            seq,
            path: path.clone(),
            size,
            hash,
            mtime_ns: mtime,
        };
        Ok((Fix::Put(put), size))
    }

    /// R-10.14's look at one file whose size or mtime differ from the
    /// journal while the server runs: the record that makes the journal
    /// agree (none when it does), and whether the journal's file at `path`
    /// is lost now (gone). An older mtime is taken as an edit here, not as
    /// a stale copy (R-10.13 is the start's rule): the push then meets it
    /// as a conflict, and nothing is lost either way.
    ///
    /// # Errors
    /// The file cannot be opened or read.
    pub(super) fn live_file_fix(
        &mut self,
        path: &WirePath,
        stat: (u64, i64),
    ) -> Result<(Option<Record>, bool), StoreError> {
        let (fix, _) = self.file_fix(path, stat, (false, false), self.next_seq())?;
        Ok(match fix {
            Fix::Vanished => (None, self.tree.get(path).is_some()),
            Fix::Put(record) => (Some(record), false),
            Fix::None | Fix::Stale(_) => (None, false),
        })
    }

    /// Journals the re-scan's `fixes`, each with `intent`'s device as its
    /// author when the intent announced it.
    fn record_fixes(
        &mut self,
        fixes: Vec<Record>,
        intent: Option<(ClientId, WirePath)>,
    ) -> Result<(), StoreError> {
        for fix in fixes {
            let author = match &intent {
                // Client 0: a change announced without an author (a move
                // of content its pusher had not seen, see `rename`).
                Some((client, at)) if *client != 0 && announced(&fix, at) => Some(*client),
                _ => None,
            };
            let seq = fix.seq();
            self.record(fix)?;
            if let (Some(client), Some(seq)) = (author, seq) {
                self.record_author(seq, client)?;
            }
        }
        Ok(())
    }
}

mod aside;
mod clash;
#[cfg(test)]
mod hand_tests;
#[cfg(test)]
mod tests;
