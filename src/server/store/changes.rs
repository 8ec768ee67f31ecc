//! Pull replies (PROTOCOL.md §5.1–5.2): the current state of every path
//! touched after a cursor, coalesced, ordered deletions → directories → files.

use super::UserStore;
use crate::protocol::{ChangeEntry, ClientId, EntryState, History, PullChecked, WirePath};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// What a pull reply carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// The cursor the client reaches after applying everything.
    pub head: u64,
    /// The listing is the whole tree.
    pub full: bool,
    /// Entries in sending order.
    pub entries: Vec<ChangeEntry>,
}

impl UserStore {
    /// The reply to a `PullChecked` of `client` (PROTOCOL.md §5.8): its
    /// `History` frame and listing. When the journal does not hold the
    /// history the client saw the listing is full and `common`
    /// is the cursor the client last acknowledged here (at most the head):
    /// every change up to it is one this client saw.
    pub fn changes_checked(&self, client: ClientId, ask: PullChecked) -> (History, Listing) {
        let point = (ask.cursor, ask.check_seq, ask.check_tag);
        let diverged = self
            .lineage
            .diverged(self.head, point, |seq| self.pushed_by(seq, client));
        let (listing, common) = if diverged {
            let common = self.cursor_of(client).min(self.head);
            (self.changes_since(0), common)
        } else {
            (self.changes_since(ask.cursor), ask.cursor)
        };
        let history = History {
            head: listing.head,
            head_tag: self.head_tag(),
            common,
            diverged,
        };
        (history, listing)
    }

    /// The tag of the newest change (0: unknown, R-5.8.3).
    pub fn head_tag(&self) -> u64 {
        self.lineage.head_tag(self.head)
    }

    /// The changes a client at `cursor` has not seen.
    pub fn changes_since(&self, cursor: u64) -> Listing {
        let head = self.head;
        if cursor == head && cursor != 0 {
            return Listing {
                head,
                full: false,
                entries: Vec::new(),
            };
        }
        let full = cursor == 0 || cursor > head || cursor + 1 < self.history_from;
        let mut states: BTreeMap<WirePath, ChangeEntry> = BTreeMap::new();
        let mut replaced: BTreeSet<WirePath> = BTreeSet::new();
        // Path → the newest change after the cursor that removed it (or
        // moved it away); a tombstone of a compaction counts as one.
        let mut removals: HashMap<WirePath, u64> = HashMap::new();
        if full {
            for (path, node) in self.tree.iter() {
                states.insert(path.clone(), node.entry(path));
            }
        } else {
            let start = self.history.partition_point(|t| t.seq <= cursor);
            for touch in &self.history[start..] {
                for (path, removed) in &touch.paths {
                    if *removed {
                        removals.insert(path.clone(), touch.seq);
                    }
                    self.add_current_state(path, cursor, &mut states);
                    if *removed && self.tree.get(path).is_some() {
                        replaced.insert(path.clone());
                    }
                }
            }
        }
        // §7.1: a Deleted entry carries the change that removed the path:
        // the newest removal, after the cursor, of the path or of a
        // directory above it.
        let removed_at = |path: &WirePath| {
            let mut newest = removals.get(path).copied();
            let mut current = path.parent();
            while let Some(p) = current {
                if let Some(seq) = removals.get(&p) {
                    newest = newest.max(Some(*seq));
                }
                current = p.parent();
            }
            newest.unwrap_or(head)
        };
        for entry in states.values_mut() {
            if entry.state == EntryState::Deleted {
                entry.version = removed_at(&entry.path);
            }
        }
        let replaced: Vec<(WirePath, u64)> = replaced
            .into_iter()
            .map(|p| {
                let seq = removed_at(&p);
                (p, seq)
            })
            .collect();
        Listing {
            head,
            full,
            entries: order(states, replaced),
        }
    }

    /// Adds `path`'s current state, and for a directory every entry below it
    /// that changed after `cursor` (a moved directory's content).
    fn add_current_state(
        &self,
        path: &WirePath,
        cursor: u64,
        states: &mut BTreeMap<WirePath, ChangeEntry>,
    ) {
        if states.contains_key(path) {
            return;
        }
        match self.tree.get(path) {
            None => {
                states.insert(
                    path.clone(),
                    ChangeEntry {
                        path: path.clone(),
                        version: self.head,
                        state: EntryState::Deleted,
                        executable: false,
                    },
                );
            }
            Some(node) => {
                states.insert(path.clone(), node.entry(path));
                if node.is_dir() {
                    for (below, n) in self.tree.descendants(path) {
                        if n.version > cursor {
                            states.insert(below.clone(), n.entry(below));
                        }
                    }
                }
            }
        }
    }
}

/// Deletions first, then directories (parents before children, which path
/// order gives), then files. A path in `replaced` lost its old content (it was
/// removed or moved away, then made again): it is listed as Deleted first and
/// again with its current state.
fn order(
    states: BTreeMap<WirePath, ChangeEntry>,
    replaced: Vec<(WirePath, u64)>,
) -> Vec<ChangeEntry> {
    let mut deleted: Vec<ChangeEntry> = replaced
        .into_iter()
        .map(|(path, version)| ChangeEntry {
            path,
            version,
            state: EntryState::Deleted,
            executable: false,
        })
        .collect();
    let mut dirs = Vec::new();
    let mut files = Vec::new();
    for (_, entry) in states {
        match entry.state {
            EntryState::Deleted => deleted.push(entry),
            EntryState::Dir => dirs.push(entry),
            EntryState::File { .. } => files.push(entry),
        }
    }
    deleted.extend(dirs);
    deleted.extend(files);
    deleted
}
