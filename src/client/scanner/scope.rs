//! Which part of the folder the next comparison covers, and which of its
//! files the watcher saw completed (closed after writing, or moved in whole).

use crate::client::index::{Entry, EntryKind, Index};
use crate::protocol::WirePath;
use std::collections::BTreeSet;

/// Which part of the folder to compare: all of it, or some subtrees.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    /// Compare the whole folder.
    pub full: bool,
    /// Subtrees to compare (ignored when `full`).
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

    /// Adds a path that was written to (it is not settled any more).
    pub fn add(&mut self, path: WirePath) {
        self.settled.remove(&path);
        self.insert(path);
    }

    /// Adds a path whose metadata only changed (a settled file stays settled).
    pub fn add_metadata(&mut self, path: WirePath) {
        self.insert(path);
    }

    /// Adds a file whose writer closed it, or that was moved in whole.
    pub fn add_settled(&mut self, path: WirePath) {
        self.settled.insert(path.clone());
        self.insert(path);
    }

    fn insert(&mut self, path: WirePath) {
        if !self.full {
            self.paths.insert(path);
        }
    }

    /// Widens to the whole folder.
    pub fn add_all(&mut self) {
        self.full = true;
        self.paths.clear();
    }

    /// Merges another scope in (its settled marks too: they were made later
    /// than anything that could have unsettled them here).
    pub fn merge(&mut self, other: Scope) {
        if other.full {
            self.add_all();
        } else {
            for p in other.paths {
                self.insert(p);
            }
        }
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
        let mut out: Vec<WirePath> = Vec::new();
        for path in lifted {
            if !out.last().is_some_and(|last| path.is_within(last)) {
                out.push(path);
            }
        }
        out.into_iter().map(Some).collect()
    }
}
