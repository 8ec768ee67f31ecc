//! A server that lost changes this device saw (PROTOCOL.md §5.8, R-5.8.4):
//! its data directory was restored from an older backup. The reply is a
//! full listing of what the server holds now, and `common` says up to which
//! change both histories agree. Before the listing is applied, the index is
//! set so that the ordinary pull and push machinery puts back what the
//! server lost and takes what it gained:
//!
//! | Here (index) | Server lists | Index becomes | Then |
//! |---|---|---|---|
//! | synced after `common` | the same content | the server's version | nothing |
//! | file synced after `common` | another file, made by `common` | the server's file, stat untrusted | the local file is an edit on the server's version: pushed |
//! | synced after `common`, and the server kept that state as displaced after `common` ([`Known`]) | something else, made after it, or nothing | that state at the server's version of it | the server knew it and replaced it: as any full listing (its newer state is taken; a local change since the sync is a conflict, R-5.8.4) |
//! | synced after `common` | something else, made after `common` | not indexed | both changed: the local copy meets the server's as an unsynced file (kept, a conflict copy if they differ) |
//! | synced after `common` | nothing | not indexed | a new local file or directory: pushed |
//! | nothing, and nothing on disk | a path made by `common` | the server's state | this device deleted it (it saw it): the deletion is pushed |
//! | nothing | a path made after `common` | nothing | downloaded |
//! | synced by `common` | anything | unchanged | as any full listing |
//!
//! A directory the device deleted is not deleted on the server when
//! something below it there is newer than `common` (another device put it
//! there after the restore): it is made again here with that content.
//! Decisions only; the caller passes what is on disk as `present`.

mod known;

pub use known::Known;

use crate::client::fsutil::Stat;
use crate::client::index::{Entry, EntryKind, Index};
use crate::protocol::{ChangeEntry, EntryState, WirePath};
use std::collections::{BTreeMap, BTreeSet};

/// What the reconciliation did to the index.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reconciled {
    /// Paths to look at again and push (not indexed any more, or indexed
    /// with the server's state the local one differs from).
    pub dirty: BTreeSet<WirePath>,
    /// Entries that took the server's version (same content).
    pub agreed: usize,
    /// Local edits put back on the server's older version.
    pub edits: usize,
    /// Paths this device holds that the server lacks or holds otherwise.
    pub unindexed: usize,
    /// Deletions made here that the server lost.
    pub deletions: usize,
    /// Paths whose synced state the server held after `common` and
    /// replaced, deleted or moved since ([`Known`]): the server's state is
    /// taken as for any full listing.
    pub followed: usize,
}

/// A stat that is never trusted: the file is hashed at its next look.
fn untrusted(size: u64, exec: bool) -> Stat {
    Stat {
        size,
        exec,
        ..Stat::default()
    }
}

/// Sets `index` for the full listing `entries` of a server whose history
/// agrees with this device's up to `common` (R-5.8.4; see the module's
/// table). `present(path)`: something is at `path` on disk here. `known`:
/// what the server's kept versions say it held of this device's state.
pub fn reconcile(
    entries: &[ChangeEntry],
    index: &mut Index,
    common: u64,
    known: &Known,
    present: impl Fn(&WirePath) -> bool,
) -> Reconciled {
    let mut out = Reconciled::default();
    let listed: BTreeMap<&WirePath, &ChangeEntry> = entries
        .iter()
        .filter(|e| e.state != EntryState::Deleted)
        .map(|e| (&e.path, e))
        .collect();
    // Deleted here (not indexed, not on disk) and made by `common` on the
    // server: candidates for a deletion the server lost.
    // A server file held back here was never placed.
    let held_back: BTreeSet<WirePath> = index.held_back().map(|(p, _)| p.clone()).collect();
    let mut lost_deletions: BTreeSet<&WirePath> = BTreeSet::new();
    for (&path, entry) in &listed {
        match index.get(path).copied() {
            Some(here) if here.version > common => {
                out_of_step(path, here, entry, (common, known), index, &mut out);
            }
            Some(_) => {}
            None if entry.version <= common && !present(path) && !held_back.contains(path) => {
                lost_deletions.insert(path);
            }
            None => {}
        }
    }
    // A directory stays when anything listed below it is not deleted here.
    let kept_dirs: BTreeSet<WirePath> = listed
        .keys()
        .filter(|p| !lost_deletions.contains(*p))
        .flat_map(|p| ancestors(p))
        .collect();
    for path in lost_deletions {
        let entry = listed[path];
        let kind = match entry.state {
            EntryState::File { size, hash } => EntryKind::File {
                stat: untrusted(size, entry.executable),
                hash,
            },
            EntryState::Dir if kept_dirs.contains(path) => continue,
            EntryState::Dir => EntryKind::Dir,
            EntryState::Deleted => continue,
        };
        index.insert(
            path.clone(),
            Entry {
                kind,
                version: entry.version,
            },
        );
        out.deletions += 1;
        out.dirty.insert(path.clone());
    }
    // Held here after `common`, absent from the server: lost there.
    let unlisted: Vec<WirePath> = index
        .iter()
        .filter(|(p, e)| e.version > common && !listed.contains_key(p))
        .map(|(p, _)| p.clone())
        .collect();
    for path in unlisted {
        if follow(&path, None, known, index) {
            out.followed += 1;
            continue;
        }
        index.remove(&path);
        out.unindexed += 1;
        out.dirty.insert(path);
    }
    out
}

/// When the server held this device's synced state of `path` after
/// `common` and replaced it since ([`Known`]), indexes that state at the
/// server's version of it: the listing (`listed`: its entry there, if any,
/// made after that version) is then applied as for any full listing, so
/// the server's newer state is taken, or meets a local change as a
/// conflict. Returns whether it did.
fn follow(path: &WirePath, listed: Option<&ChangeEntry>, known: &Known, index: &mut Index) -> bool {
    let Some(since) = known.since(path) else {
        return false;
    };
    // The server's state at `path` must be newer than the known one, or
    // the applier would keep this device's copy as its own later push.
    if listed.is_some_and(|e| e.version <= since) {
        return false;
    }
    let Some(here) = index.get(path).copied() else {
        return false;
    };
    index.insert(
        path.clone(),
        Entry {
            version: since,
            ..here
        },
    );
    true
}

/// A path this device synced after `common` that the server lists.
fn out_of_step(
    path: &WirePath,
    here: Entry,
    entry: &ChangeEntry,
    (common, known): (u64, &Known),
    index: &mut Index,
    out: &mut Reconciled,
) {
    let agrees = match (here.kind, entry.state) {
        (EntryKind::Dir, EntryState::Dir) => true,
        (EntryKind::File { hash: mine, .. }, EntryState::File { hash, .. }) => mine == hash,
        _ => false,
    };
    if agrees {
        index.insert(
            path.clone(),
            Entry {
                version: entry.version,
                ..here
            },
        );
        out.agreed += 1;
        return;
    }
    match (here.kind, entry.state) {
        (EntryKind::File { stat, .. }, EntryState::File { hash, .. })
            if entry.version <= common =>
        {
            index.insert(
                path.clone(),
                Entry {
                    kind: EntryKind::File {
                        stat: untrusted(stat.size, stat.exec),
                        hash,
                    },
                    version: entry.version,
                },
            );
            out.edits += 1;
            out.dirty.insert(path.clone());
        }
        _ if follow(path, Some(entry), known, index) => out.followed += 1,
        _ => {
            index.remove(path);
            out.unindexed += 1;
            out.dirty.insert(path.clone());
        }
    }
}

/// Every directory above `path`.
fn ancestors(path: &WirePath) -> Vec<WirePath> {
    let mut out = Vec::new();
    let mut current = path.parent();
    while let Some(p) = current {
        current = p.parent();
        out.push(p);
    }
    out
}

#[cfg(test)]
mod known_tests;
#[cfg(test)]
mod tests;
