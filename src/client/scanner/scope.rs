//! Which part of the folder a push round compares with the index, which
//! files it must read whatever their stat says, and which of them the
//! watcher saw completed (closed after writing, or moved in whole).

use crate::client::fsutil::{check_path, Local};
use crate::client::index::{Entry, EntryKind, Index};
use crate::protocol::WirePath;
use std::collections::BTreeSet;
use std::path::Path;

/// Which part of the folder to compare: all of it, or some subtrees.
///
/// `paths` are the paths something named (the watcher reported them written,
/// a pull or an acknowledgement left them to look at): each is compared as
/// a subtree, and a file named there is hashed even when its stat matches
/// the index (a stat can hide a write; an event cannot). `full` adds the
/// rest of the folder, compared by stat ([`crate::client::detect::judge`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    /// Compare the whole folder.
    pub full: bool,
    /// Paths named since the last round: compared, and their files hashed.
    pub paths: BTreeSet<WirePath>,
    /// Files whose writer closed them (or that were moved in whole) with no
    /// write reported since: complete, so they may be hashed and pushed at
    /// once whatever their timestamps say. Kept even when `full`.
    pub settled: BTreeSet<WirePath>,
}

impl Scope {
    /// Nothing to compare.
    pub fn is_empty(&self) -> bool {
        !self.full && self.paths.is_empty()
    }

    /// Adds a path that was written to (it is not settled any more); kept
    /// when the scope is full: its file is still hashed.
    pub fn add(&mut self, path: WirePath) {
        self.settled.remove(&path);
        self.paths.insert(path);
    }

    /// Adds a path whose metadata only changed (a settled file stays settled).
    pub fn add_metadata(&mut self, path: WirePath) {
        self.paths.insert(path);
    }

    /// Adds a file whose writer closed it, or that was moved in whole.
    pub fn add_settled(&mut self, path: WirePath) {
        self.settled.insert(path.clone());
        self.paths.insert(path);
    }

    /// Widens to the whole folder.
    pub fn add_all(&mut self) {
        self.full = true;
    }

    /// True when the file at `path` must be hashed whatever its stat says.
    pub fn named(&self, path: &WirePath) -> bool {
        self.paths.contains(path)
    }

    /// This scope plus every other name of the files it names: a write
    /// through one hard link changes all of them, and the watcher reports
    /// only the name written through. Names are found through the index, by
    /// the inode the index recorded and the inode the path holds now.
    pub fn with_other_links(&self, index: &Index, root: &Path) -> Scope {
        let mut out = self.clone();
        for path in &self.paths {
            let mut inodes = Vec::with_capacity(2);
            if let Some(Entry {
                kind: EntryKind::File { stat, .. },
                ..
            }) = index.get(path)
            {
                inodes.push((stat.dev, stat.ino));
            }
            if let Ok(Local::File(now)) = check_path(root, path) {
                inodes.push((now.dev, now.ino));
            }
            for (dev, ino) in inodes {
                out.paths.extend(index.paths_of_inode(dev, ino).cloned());
            }
        }
        out
    }

    /// Merges another scope in (its settled marks too: they were made later
    /// than anything that could have unsettled them here).
    pub fn merge(&mut self, other: Scope) {
        self.full |= other.full;
        self.paths.extend(other.paths);
        self.settled.extend(other.settled);
    }

    /// True when `path` lies in what this scope compares, given its roots.
    pub(super) fn covers(roots: &[Option<WirePath>], path: &WirePath) -> bool {
        roots
            .iter()
            .any(|root| root.as_ref().is_none_or(|r| path.is_within(r)))
    }

    /// The subtrees to walk: each path lifted to its highest ancestor that the
    /// index does not know as a directory (a new directory is compared as a
    /// whole), then those inside another dropped. `[None]` is the whole folder.
    pub(super) fn roots(&self, index: &Index) -> Vec<Option<WirePath>> {
        if self.full {
            return vec![None];
        }
        let mut lifted = BTreeSet::new();
        for path in &self.paths {
            let mut top = path.clone();
            while let Some(parent) = top.parent() {
                match index.get(&parent) {
                    Some(Entry {
                        kind: EntryKind::Dir,
                        ..
                    }) => break,
                    _ => top = parent,
                }
            }
            lifted.insert(top);
        }
        WirePath::top_most(lifted).into_iter().map(Some).collect()
    }
}
