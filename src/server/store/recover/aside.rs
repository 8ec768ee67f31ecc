//! The start's comparison setting aside what a hand change put where the
//! journal lists something else: the hand-made entry
//! goes to a conflict name (a change made in the server's folder) or, when
//! it is a copy of a version the server keeps, out of the folder; the
//! journaled entry keeps its path and, lost, comes back from the devices
//! (§10.2). Nothing is deleted on a device and nothing the operator put
//! there is dropped.

use super::clash::{self, SERVER_FOLDER};
use crate::fsafe::walk::Found;
use crate::fsafe::{self as storefs, OnDisk};
use crate::protocol::conflict::free_conflict_path;
use crate::protocol::versions::KeptKind;
use crate::protocol::{ContentHash, WirePath};
use crate::server::store::{StoreError, UserStore};
use std::collections::{HashMap, HashSet};
use std::time::SystemTime;

/// A file the comparison found to be a stale copy.
#[derive(Debug, Clone)]
pub(super) struct Stale {
    pub path: WirePath,
    pub size: u64,
    pub hash: ContentHash,
    pub mtime_ns: i64,
    /// The version the journal lists there, for the log.
    pub version: u64,
}

/// A stale copy moved to a conflict name: journaled there as a new file.
pub(super) struct MovedStale {
    pub at: WirePath,
    pub stale: Stale,
}

impl UserStore {
    /// A conflict name for `path` (§7.4, client 0) free in the tree and on
    /// disk.
    fn aside_name(&self, path: &WirePath) -> Result<WirePath, StoreError> {
        let taken = |candidate: &WirePath| -> Result<bool, StoreError> {
            Ok(self.tree.get(candidate).is_some()
                || storefs::inspect(&self.root, candidate)? != OnDisk::Absent)
        };
        free_conflict_path(path, SERVER_FOLDER, SystemTime::now(), taken)?
            .ok_or_else(|| StoreError::NoFreeConflictName(path.clone()))
    }

    /// Moves every top-most entry whose kind differs from the tree's
    /// ([`clash::kind_changes`]) to a conflict name and returns `found` as
    /// the folder now is: the hand-made entry is then found there, as an
    /// entry added by hand, and the journaled one is missing at its path,
    /// so it is lost, not removed. An entry that cannot
    /// be moved is left out of this start's comparison (its journaled
    /// entry stays lost; the next start tries again), never journaled over
    /// the tree's (breaker24 F1: a directory replaced by a file was
    /// journaled as that file, and every device deleted the directory).
    pub(super) fn set_aside_kind_changes(
        &mut self,
        mut found: Vec<Found>,
        announced: &[&WirePath],
    ) -> Vec<Found> {
        let label = self.label();
        for path in clash::kind_changes(&found, &self.tree, announced) {
            let was = if self.tree.get(&path).is_some_and(|n| n.is_dir()) {
                "directory"
            } else {
                "file"
            };
            let moved = self
                .aside_name(&path)
                .and_then(|to| Ok(storefs::rename(&self.root, &path, &to).map(|()| to)?));
            match moved {
                Ok(to) => {
                    log::warn!(
                        "{label}: the journal's {was} {path} was replaced outside the server by \
                         another kind of entry: that entry is moved to {to} (journaled as a \
                         change made in the server's folder), the {was} stays at {path} and \
                         what it held comes back from the devices"
                    );
                    found = clash::moved(found, &path, &to);
                }
                Err(e) => {
                    log::warn!(
                        "{label}: the journal's {was} {path} was replaced outside the server by \
                         another kind of entry, which cannot be moved aside ({e}): left as it \
                         is, not journaled; the {was}'s files are lost until it is"
                    );
                    found.retain(|f| !f.path.is_within(&path));
                }
            }
        }
        found
    }

    /// Takes each stale copy out of its path, so the journal's
    /// current version, now missing, is lost and comes back from a device
    /// (§10.2) instead of being rolled back: a copy whose content the kept
    /// versions (§14) hold for that path is removed from the folder (its
    /// bytes stay kept, `restore` brings them back); any other is moved to
    /// a conflict name and returned, to be journaled there. One that cannot
    /// be moved stays where it is, unjournaled: the path is lost all the
    /// same, never served, and the next start looks again.
    pub(super) fn set_aside_stale(&mut self, stale: Vec<Stale>) -> Vec<MovedStale> {
        let label = self.label();
        let kept = self.kept_among(&stale);
        let mut out = Vec::new();
        for s in stale {
            let (path, version) = (s.path.clone(), s.version);
            if kept.contains(&(s.path.clone(), s.hash)) {
                match storefs::remove(&self.root, &path) {
                    Ok(()) => log::warn!(
                        "{label}: {path} holds an older copy (mtime older than v{version}'s, \
                         content of a version the server keeps): not taken as an edit; removed \
                         from the folder (its version stays kept); v{version} comes back from \
                         the devices"
                    ),
                    Err(e) => log::warn!(
                        "{label}: {path} holds an older copy of a kept version, which cannot be \
                         removed ({e}): not served; v{version} is lost"
                    ),
                }
                continue;
            }
            let moved = self
                .aside_name(&path)
                .and_then(|to| Ok(storefs::rename(&self.root, &path, &to).map(|()| to)?));
            match moved {
                Ok(at) => {
                    log::warn!(
                        "{label}: {path} holds an older copy (mtime older than v{version}'s, \
                         other content): not taken as an edit; moved to {at} (journaled as a \
                         change made in the server's folder); v{version} comes back from the \
                         devices"
                    );
                    out.push(MovedStale { at, stale: s });
                }
                Err(e) => log::warn!(
                    "{label}: {path} holds an older copy, which cannot be moved aside ({e}): \
                     not served; v{version} is lost"
                ),
            }
        }
        out
    }

    /// Which of `stale` (path and content) the kept versions hold, their
    /// object present: one pass over the index, only when there is any.
    fn kept_among(&self, stale: &[Stale]) -> HashSet<(WirePath, ContentHash)> {
        let mut kept = HashSet::new();
        if stale.is_empty() {
            return kept;
        }
        let wanted: HashMap<&WirePath, ContentHash> =
            stale.iter().map(|s| (&s.path, s.hash)).collect();
        let scanned = self.versions.scan(|entry| {
            if let KeptKind::File { hash, .. } = entry.kind {
                if wanted.get(&entry.path) == Some(&hash) {
                    kept.insert((entry.path, hash));
                }
            }
            true
        });
        if let Err(e) = scanned {
            log::warn!("{}: cannot read the kept versions: {e}", self.label());
            return HashSet::new();
        }
        kept.retain(|(_, hash)| self.versions.object(hash).is_file());
        kept
    }
}
