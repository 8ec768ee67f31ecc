//! The entries of the folder whose paths the protocol cannot carry
//! (PROTOCOL.md §6.1), remembered across looks, and the files below them:
//! what [`plan::stranded`] needs to tell a synced file moved to such a path
//! (its old path held, R-6.2.3) from one removed (a Delete).
//!
//! A walk meets such an entry and skips it with everything below it; the
//! watcher reports one made while the client runs
//! ([`crate::client::watcher::WatchEvent::Unsyncable`]). A look that finds
//! indexed files gone walks these entries (bounded) for their files, and
//! lists the directories the gone files were in for new ones (a move whose
//! event did not arrive).

use super::Scanner;
use crate::client::fsutil::Stat;
use crate::client::index::{Entry, EntryKind};
use crate::client::plan::stranded::{held_by_stranded, Held, Stranded};
use crate::client::plan::{self, DiskEntry};
use crate::protocol::WirePath;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Most unsyncable entries remembered: past it, a file moved below a new
/// one is found only through its old directory's listing.
const MAX_ROOTS: usize = 10_000;

/// Most entries walked below them per look: a file moved past it goes as
/// a Delete, as before.
const MAX_WALKED: usize = 100_000;

/// Most directories listed per look for unsyncable names beside gone files.
const MAX_LISTED: usize = 64;

/// The unsyncable entries of the folder: path relative to it, and why.
#[derive(Debug, Default)]
pub struct StrandedRoots {
    roots: BTreeMap<PathBuf, String>,
}

impl StrandedRoots {
    /// Remembers the unsyncable entry `rel` (relative to the folder), and
    /// why it cannot be synced.
    pub fn note(&mut self, rel: &Path, why: &str) {
        if self.roots.len() < MAX_ROOTS || self.roots.contains_key(rel) {
            self.roots.insert(rel.to_path_buf(), why.to_owned());
        }
    }

    /// The regular files at or below the remembered entries of `root`
    /// (those gone are forgotten), after listing `dirs` for new unsyncable
    /// names.
    fn find(&mut self, root: &Path, dirs: &BTreeSet<Option<WirePath>>) -> Vec<Stranded> {
        for dir in dirs.iter().take(MAX_LISTED) {
            let local = dir
                .as_ref()
                .map_or_else(|| root.to_path_buf(), |d| d.to_local(root));
            let Ok(list) = std::fs::read_dir(&local) else {
                continue;
            };
            for item in list.filter_map(Result::ok) {
                let path = item.path();
                let Ok(rel) = path.strip_prefix(root) else {
                    continue;
                };
                if let Some(why) = unsyncable(rel) {
                    self.note(rel, &why);
                }
            }
        }
        let mut out = Vec::new();
        let mut walked = 0;
        self.roots
            .retain(|rel, _| root.join(rel).symlink_metadata().is_ok());
        for (rel, why) in &self.roots {
            let walk = walkdir::WalkDir::new(root.join(rel)).follow_links(false);
            for item in walk.into_iter().filter_map(Result::ok) {
                walked += 1;
                if walked > MAX_WALKED {
                    return out;
                }
                if !item.file_type().is_file() {
                    continue;
                }
                let (Ok(meta), Ok(at)) = (item.metadata(), item.path().strip_prefix(root)) else {
                    continue;
                };
                out.push(Stranded {
                    at: at.to_string_lossy().into_owned(),
                    why: why.clone(),
                    stat: Stat::of(&meta),
                });
            }
        }
        out
    }
}

/// Why the path `rel` (relative to the folder) cannot be synced, as the
/// scanner says it; `None` when it can. The client's state folder is the
/// client's own, not a stranded file's place.
pub fn unsyncable(rel: &Path) -> Option<String> {
    if rel.as_os_str() == crate::protocol::limits::STATE_DIR_NAME {
        return None;
    }
    match rel.to_str().map(WirePath::new) {
        Some(Ok(_)) => None,
        Some(Err(e)) => Some(format!("name not syncable ({e})")),
        None => Some("name is not UTF-8".to_owned()),
    }
}

impl Scanner {
    /// Remembers an unsyncable entry the watcher reported (`entry`: under
    /// the folder, as the watcher names it), so a synced file moved there
    /// keeps its old path.
    pub fn note_unsyncable(&mut self, entry: &Path, why: &str) {
        let canonical = crate::client::watcher::canonical_root(&self.root);
        let rel = entry
            .strip_prefix(&self.root)
            .or_else(|_| entry.strip_prefix(&canonical));
        if let Ok(rel) = rel {
            self.stranded.note(rel, why);
        }
    }

    /// The paths listed as moved to an unsyncable name: a change at an
    /// unsyncable entry (the file removed, moved on) looks at them again.
    pub fn stranded_paths(&self) -> Vec<WirePath> {
        self.skipped
            .iter()
            .filter(|(_, why)| why.starts_with(plan::stranded::MOVED))
            .filter_map(|(path, _)| path.to_str().and_then(|p| WirePath::new(p).ok()))
            .collect()
    }

    /// The indexed paths of this look whose files are stranded
    /// ([`held_by_stranded`]); looks for them only when an indexed file of
    /// `known` is gone from `disk`.
    pub(super) fn hold_stranded(
        &mut self,
        disk: &BTreeMap<WirePath, DiskEntry>,
        known: &BTreeMap<WirePath, Entry>,
    ) -> Held {
        let gone = known
            .iter()
            .filter(|(p, e)| matches!(e.kind, EntryKind::File { .. }) && !disk.contains_key(*p));
        // Each gone file's nearest directory still there.
        let mut dirs: BTreeSet<Option<WirePath>> = BTreeSet::new();
        for (path, _) in gone {
            let mut at = path.parent();
            while let Some(dir) = at
                .as_ref()
                .filter(|d| disk.get(*d) != Some(&DiskEntry::Dir))
            {
                at = dir.parent();
            }
            dirs.insert(at);
        }
        if dirs.is_empty() {
            return Held::default();
        }
        let found = self.stranded.find(&self.root, &dirs);
        held_by_stranded(disk, known, &found)
    }
}
