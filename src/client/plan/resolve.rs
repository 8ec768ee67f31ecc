//! From "what the disk holds" and "what the index holds" (both in memory) to
//! the pushes that reproduce the difference: directory renames (matched by
//! the files they hold), file renames (matched by content), deletions,
//! directory removals, new directories and uploads. No I/O: the scanner
//! walks, stats and hashes, and hands the results here. A file moved and
//! edited is matched by its inode instead.

use super::ops::{DiskEntry, Op};
use crate::client::fsutil::Stat;
use crate::client::index::{Entry, EntryKind};
use crate::protocol::{ContentHash, WirePath};
use std::collections::{BTreeMap, BTreeSet};

/// Above this many (deleted dir × added dir × file) comparisons, directory
/// renames are not searched (they become delete + upload, still correct).
const RENAME_SEARCH_BUDGET: usize = 2_000_000;

/// Directories the index knows that are no longer directories on disk (top
/// most only), and directories on disk the index does not know as such.
pub fn dir_changes(
    disk: &BTreeMap<WirePath, DiskEntry>,
    known: &BTreeMap<WirePath, Entry>,
) -> (Vec<WirePath>, Vec<WirePath>) {
    let deleted: Vec<WirePath> = WirePath::top_most(
        known
            .iter()
            .filter(|(p, e)| e.kind == EntryKind::Dir && disk.get(*p) != Some(&DiskEntry::Dir))
            .map(|(p, _)| p.clone()),
    );
    let added: Vec<WirePath> = disk
        .iter()
        .filter(|(p, d)| **d == DiskEntry::Dir && !is_dir(known.get(*p)))
        .map(|(p, _)| p.clone())
        .collect();
    (deleted, added)
}

/// The directory renames among `deleted` and `added` (see [`dir_changes`]),
/// each preceded by the Delete of any indexed file that sat at its
/// destination or at an ancestor of it and is gone from disk (`rm x; mv d x`):
/// a rename onto a path the server still holds would be a Conflict. Empty
/// when no directory was renamed.
pub fn dir_renames(
    disk: &BTreeMap<WirePath, DiskEntry>,
    known: &BTreeMap<WirePath, Entry>,
    deleted: &[WirePath],
    added: &[WirePath],
) -> Vec<Op> {
    let renames = match_dir_renames(known, disk, deleted, added);
    let mut ops = Vec::new();
    let mut freed = BTreeSet::new();
    for rename in &renames {
        let to = rename.path();
        for at in
            std::iter::once(to.clone()).chain(std::iter::successors(to.parent(), WirePath::parent))
        {
            let in_the_way = match known.get(&at) {
                Some(Entry {
                    kind: EntryKind::File { .. },
                    version,
                }) => (!matches!(disk.get(&at), Some(DiskEntry::File(_)))).then_some(*version),
                _ => None,
            };
            if let Some(base) = in_the_way {
                if freed.insert(at.clone()) {
                    ops.push(Op::Delete { path: at, base });
                }
            }
        }
    }
    ops.extend(renames);
    ops
}

/// Every push but directory renames: file renames, deletions, directory
/// removals (`deleted`), new directories (`added`) and `uploads` (new or
/// changed files, from the scanner).
pub fn file_changes(
    disk: &BTreeMap<WirePath, DiskEntry>,
    known: &BTreeMap<WirePath, Entry>,
    deleted: &[WirePath],
    added: Vec<WirePath>,
    mut uploads: Vec<Op>,
) -> Vec<Op> {
    let mut ops = Vec::new();
    plan_removals(disk, known, deleted, &mut uploads, &mut ops);
    for dir in added {
        ops.push(Op::MakeDir { path: dir });
    }
    ops.extend(uploads);
    ops
}

/// Indexed files and directories that are gone: renames (a deleted file whose
/// content reappeared as a new file; that upload is taken out of `uploads`),
/// then file deletions, then directory removals.
fn plan_removals(
    disk: &BTreeMap<WirePath, DiskEntry>,
    known: &BTreeMap<WirePath, Entry>,
    deleted_dirs: &[WirePath],
    uploads: &mut Vec<Op>,
    ops: &mut Vec<Op>,
) {
    let deleted_files: Vec<(WirePath, u64, ContentHash, Stat)> = known
        .iter()
        .filter_map(|(p, e)| match e.kind {
            EntryKind::File { hash, stat } if !matches!(disk.get(p), Some(DiskEntry::File(_))) => {
                Some((p.clone(), e.version, hash, stat))
            }
            _ => None,
        })
        .collect();
    let mut renamed_from = BTreeSet::new();
    for (from, base, hash, stat) in &deleted_files {
        let candidate = uploads
            .iter()
            .enumerate()
            .filter(|(_, op)| matches!(op, Op::Upload { base: 0, hash: h, .. } if h == hash))
            .max_by_key(|(_, op)| op.path().file_name() == from.file_name())
            .map(|(i, _)| i)
            .or_else(|| same_file(uploads, from, stat));
        if let Some(i) = candidate {
            let to = uploads.remove(i).path().clone();
            renamed_from.insert(from.clone());
            let (from, base) = (from.clone(), *base);
            ops.push(Op::Rename { from, to, base });
        }
    }
    for (path, base, _, _) in &deleted_files {
        let under_deleted_dir = deleted_dirs.iter().any(|d| path.is_within(d));
        if !renamed_from.contains(path) && !under_deleted_dir {
            let (path, base) = (path.clone(), *base);
            ops.push(Op::Delete { path, base });
        }
    }
    for dir in deleted_dirs {
        ops.push(Op::RemoveDir { path: dir.clone() });
    }
}

/// The new file (an upload with base 0) that is the vanished file `was`
/// itself, moved and edited before this look (`mv t.sh u.sh; echo >> u.sh`
/// while the client was stopped, or between two looks): the same inode on
/// the same device (PROTOCOL.md ). Its content differs, so it is not
/// found by content; planned as a Rename, the moved file keeps what the
/// server changed meanwhile (its executable bit, R-15.2.4), and the edit
/// follows as an upload on the moved version (the destination is compared
/// again after the Rename's answer, `plan::ack`). Inode 0 means unknown. A
/// file moved below a directory of its own old name (`a` to `a/a`) is left
/// to a Delete and an upload, as before: that Rename goes through a
/// temporary name and its old path is listed deleted by the next pull.
fn same_file(uploads: &[Op], from: &WirePath, was: &Stat) -> Option<usize> {
    uploads.iter().position(|op| {
        matches!(op, Op::Upload { base: 0, stat, path, .. }
            if was.ino != 0 && stat.ino == was.ino && stat.dev == was.dev
                && !path.is_within(from))
    })
}

fn is_dir(entry: Option<&Entry>) -> bool {
    matches!(
        entry,
        Some(Entry {
            kind: EntryKind::Dir,
            ..
        })
    )
}

/// Pairs each vanished directory with the new directory that holds most of
/// its files (same relative name, size and mtime: a move keeps all three).
fn match_dir_renames(
    known: &BTreeMap<WirePath, Entry>,
    disk: &BTreeMap<WirePath, DiskEntry>,
    deleted: &[WirePath],
    added: &[WirePath],
) -> Vec<Op> {
    let mut ops = Vec::new();
    let mut taken: Vec<WirePath> = Vec::new();
    let mut budget = RENAME_SEARCH_BUDGET;
    for from in deleted {
        let files: Vec<(&str, Stat)> = known
            .range(from.clone()..)
            .take_while(|(p, _)| p.is_within(from))
            .filter_map(|(p, e)| match e.kind {
                EntryKind::File { stat, .. } => Some((&p.as_str()[from.as_str().len()..], stat)),
                EntryKind::Dir => None,
            })
            .collect();
        if files.is_empty() {
            continue;
        }
        let mut best: Option<(usize, bool, &WirePath)> = None;
        for to in added {
            if taken.iter().any(|t| to.is_within(t) || t.is_within(to)) || to.is_within(from) {
                continue;
            }
            budget = budget.saturating_sub(files.len());
            if budget == 0 {
                return ops;
            }
            let score = files
                .iter()
                .filter(|(rest, stat)| {
                    let Ok(moved) = WirePath::new(&format!("{to}{rest}")) else {
                        return false;
                    };
                    match disk.get(&moved) {
                        Some(DiskEntry::File(now)) => {
                            now.size == stat.size
                                && (stat.mtime_ns == 0 || now.mtime_ns == stat.mtime_ns)
                        }
                        _ => false,
                    }
                })
                .count();
            let same_name = to.file_name() == from.file_name();
            if score * 2 >= files.len()
                && score > 0
                && best.is_none_or(|(s, n, _)| (score, same_name) > (s, n))
            {
                best = Some((score, same_name, to));
            }
        }
        if let Some((_, _, to)) = best {
            taken.push(to.clone());
            let base = known.get(from).map(|e| e.version).unwrap_or(0);
            ops.push(Op::Rename {
                from: from.clone(),
                to: to.clone(),
                base,
            });
        }
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> WirePath {
        WirePath::new(s).unwrap()
    }

    fn stat(dev: u64, ino: u64) -> Stat {
        Stat {
            size: 5,
            mtime_ns: 1,
            ctime_ns: 1,
            dev,
            ino,
            exec: false,
        }
    }

    /// a vanished file and a new file with another content are one
    /// file moved and edited exactly when device and inode are the same
    /// (and known); otherwise a Delete and a new upload, as before.
    #[test]
    fn a_moved_and_edited_file_is_a_rename_by_its_inode() {
        let old = ContentHash::of(b"t\n");
        let new = ContentHash::of(b"t\nmore\n");
        for (was, now, rename) in [
            (stat(1, 7), stat(1, 7), true),
            (stat(1, 7), stat(1, 8), false),
            (stat(1, 7), stat(2, 7), false),
            (stat(1, 0), stat(1, 0), false),
        ] {
            let known: BTreeMap<WirePath, Entry> =
                [(p("t.sh"), Entry::synced_file(was, old, 3))].into();
            let disk: BTreeMap<WirePath, DiskEntry> = [(p("u.sh"), DiskEntry::File(now))].into();
            let upload = Op::Upload {
                path: p("u.sh"),
                base: 0,
                stat: now,
                hash: new,
            };
            let ops = file_changes(&disk, &known, &[], Vec::new(), vec![upload.clone()]);
            let want = if rename {
                vec![Op::Rename {
                    from: p("t.sh"),
                    to: p("u.sh"),
                    base: 3,
                }]
            } else {
                vec![
                    Op::Delete {
                        path: p("t.sh"),
                        base: 3,
                    },
                    upload,
                ]
            };
            assert_eq!(ops, want, "{was:?} -> {now:?}");
        }
    }
}
