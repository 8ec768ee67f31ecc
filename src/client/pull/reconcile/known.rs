//! What the server's kept versions (PROTOCOL.md §14) say it held of this
//! device's synced state after `common`: a path whose synced
//! content the server held after `common` and then replaced, deleted or
//! renamed away was not lost there; whatever came after it is the server's
//! newer state, and this device (which did not change the path since it
//! synced it) takes it instead of pushing its copy again.
//!
//! The case (outside tester breaker18, F5): A and B in sync; a backup; A
//! makes, edits and deletes files and B receives them; B stops; the server
//! is restored; A pushes what the server lost again, then deletes, renames
//! and edits some of those paths. B comes back: its content of those paths
//! is older than the server's, though the server's numbers for it are lost.
//! The versions the server kept for A's later changes name B's content: the
//! server knew it, so B follows instead of bringing it back.
//!
//! A content the server held only up to `common` (displaced by a change this
//! device acknowledged) is not evidence: this device's copy at a version
//! after `common` is a later change that the server lost.

use crate::client::index::{EntryKind, Index};
use crate::protocol::{KeptKind, KeptVersion, WirePath};
use std::collections::HashMap;

/// The kept versions that hold this device's synced state of a path after
/// `common`: path → (`since`, `seq`) of the latest one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Known {
    common: u64,
    by_path: HashMap<WirePath, (u64, u64)>,
}

impl Known {
    /// Nothing known yet, for a server whose history agrees with this
    /// device's up to `common`.
    pub fn new(common: u64) -> Known {
        Known {
            common,
            by_path: HashMap::new(),
        }
    }

    /// Notes `kept` when it is what `index` holds at its path, synced after
    /// `common`, and the server displaced it after `common`. Only such
    /// entries are stored, so memory is bounded by the index, not by the
    /// server's listing.
    pub fn note(&mut self, kept: &KeptVersion, index: &Index) {
        if kept.seq <= self.common || kept.since >= kept.seq {
            return;
        }
        let Some(here) = index.get(&kept.path) else {
            return;
        };
        if here.version <= self.common {
            return;
        }
        let same = match (here.kind, kept.kind) {
            (EntryKind::Dir, KeptKind::Dir) => true,
            (EntryKind::File { hash, .. }, KeptKind::File { hash: theirs, .. }) => hash == theirs,
            _ => false,
        };
        if !same {
            return;
        }
        let slot = self
            .by_path
            .entry(kept.path.clone())
            .or_insert((kept.since, kept.seq));
        if kept.seq > slot.1 {
            *slot = (kept.since, kept.seq);
        }
    }

    /// The change that put this device's synced state of `path` in place on
    /// the server (its `since`), when the server held it after `common` and
    /// replaced it since.
    pub fn since(&self, path: &WirePath) -> Option<u64> {
        self.by_path.get(path).map(|&(since, _)| since)
    }

    /// How many paths are known.
    pub fn len(&self) -> usize {
        self.by_path.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.by_path.is_empty()
    }
}
