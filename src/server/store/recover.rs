//! After an unclean stop: make the journal agree with the folder, which is the
//! truth for content (files are renamed into place before they are journaled),
//! and attribute what the interrupted push left unjournaled to its device.

use super::journal::Record;
use super::tree::NodeKind;
use super::{StoreError, UserStore};
use crate::fsafe::{hash_reader, open_file};
use crate::protocol::{ClientId, WirePath};
use std::collections::BTreeSet;

/// What the re-scan makes of one file.
enum Fix {
    /// The journal agrees with it.
    None,
    /// Gone since the scan listed it (it then counts as missing).
    Vanished,
    /// This record makes the journal agree.
    Put(Record),
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

    /// Journals every difference between the folder and the tree; returns how
    /// many changes that took. What the last intent announced is journaled
    /// as that device's change.
    pub(super) fn reconcile(&mut self) -> Result<usize, StoreError> {
        let intent = self.intent.take();
        let mut seen: BTreeSet<WirePath> = BTreeSet::new();
        let mut fixes: Vec<Record> = Vec::new();
        let mut seq = self.head;
        // Through directory handles, like every other access: a legal path
        // longer than PATH_MAX allows below the data directory is found too.
        for found in crate::fsafe::walk::scan(&self.root)? {
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
                    match self.file_fix(&path, (len, mtime), suspect, seq + 1)? {
                        Fix::Vanished => continue,
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
        let missing: Vec<WirePath> = self
            .tree
            .iter()
            .filter(|(p, _)| !seen.contains(*p))
            .map(|(p, _)| p.clone())
            .collect();
        for path in WirePath::top_most(missing) {
            seq += 1;
            fixes.push(Record::Remove { seq, path });
        }
        let count = fixes.len();
        self.record_fixes(fixes, intent)?;
        Ok(count)
    }

    /// The record (as change `seq`) that makes the journal agree with the
    /// file at `path` of size and mtime `stat` (bytes, ns). A file whose
    /// size and mtime the tree has is taken as journaled unless `suspect`.
    ///
    /// # Errors
    /// The file cannot be opened or read.
    fn file_fix(
        &self,
        path: &WirePath,
        (len, mtime): (u64, i64),
        suspect: bool,
        seq: u64,
    ) -> Result<Fix, StoreError> {
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
            return Ok(Fix::None);
        }
        let Some(file) = open_file(&self.root, path)? else {
            return Ok(Fix::Vanished);
        };
        let (hash, size) = hash_reader(file)?;
        if journaled == Some(hash) {
            return Ok(Fix::None);
        }
        // New or changed content, or only a new mtime: either way one
        // record, so the next re-scan need not hash it.
        Ok(Fix::Put(Record::PutFile {
            seq,
            path: path.clone(),
            size,
            hash,
            mtime_ns: mtime,
        }))
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

#[cfg(test)]
mod tests;
