//! From "what the disk holds" and "what the index holds" (both in memory) to
//! the pushes that reproduce the difference: directory renames (matched by
//! the files they hold, each the same file: its inode, R-7.2.5), file
//! renames (the same inode first, then the same content), deletions,
//! directory removals, new directories and uploads. No I/O: the scanner
//! walks, stats and hashes, and hands the results here. A file moved and
//! edited is matched by its inode.

use super::ops::{DiskEntry, Op};
use super::swaps;
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
    // Directories swapped or moved in a cycle are still there: also
    // matched, by what they hold now (super::swaps).
    let (emptied, refilled) = swaps::moved_out_dirs(disk, known);
    let renames = if emptied.is_empty() || (refilled.is_empty() && added.is_empty()) {
        match_dir_renames(known, disk, deleted, added, &BTreeSet::new())
    } else {
        let strict: BTreeSet<WirePath> = emptied.iter().cloned().collect();
        // Parents first: a directory moved whole is one rename, not one of
        // its subdirectories' (none is paired below a paired one).
        let mut from: Vec<WirePath> = deleted.iter().cloned().chain(emptied).collect();
        from.sort();
        let to: Vec<WirePath> = added.iter().cloned().chain(refilled).collect();
        let renames = match_dir_renames(known, disk, &from, &to, &strict);
        swaps::keep_freed_dirs(renames, known, disk)
    };
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

/// The indexed paths whose comparison must wait for a later look
/// each vanished file (gone from `disk`, which holds at least
/// the compared scope) whose inode is that of a file not read yet
/// (`unsettled`: the paths and stats of the files the scanner found still being
/// written or changed too recently to be known complete, in this look or
/// an earlier one), or, for such a file below a removed directory
/// (`deleted_dirs`, top most), that directory. Such a file is the vanished
/// one moved, most likely edited too (`mv a b; echo >> b` right before a
/// start or a look), and is paired with it by its inode ([`same_file`])
/// once read; planning the vanished path now would push a Delete, and the
/// moved file later as a new one, dropping what another device did to it
/// meanwhile (a chmod) or bringing its old name back (an edit). The caller
/// leaves the returned paths, and what is below them, out of this plan and
/// looks at them again with the unsettled files. Freshness only postpones
/// the pairing, it never breaks it (breaker23 F4).
pub fn wait_for_moves(
    disk: &BTreeMap<WirePath, DiskEntry>,
    known: &BTreeMap<WirePath, Entry>,
    deleted_dirs: &[WirePath],
    unsettled: &[(WirePath, Stat)],
) -> Wait {
    let mut wait = Wait::default();
    if unsettled.is_empty() {
        return wait;
    }
    for (path, entry) in known {
        let EntryKind::File { stat, .. } = entry.kind else {
            continue;
        };
        if matches!(disk.get(path), Some(DiskEntry::File(_))) {
            continue;
        }
        let mut moved = unsettled
            .iter()
            .filter(|(_, now)| stat.same_inode(now))
            .peekable();
        if moved.peek().is_none() {
            continue;
        }
        wait.moved_to.extend(moved.map(|(to, _)| to.clone()));
        let top = deleted_dirs.iter().find(|d| path.is_within(d));
        wait.vanished.insert(top.unwrap_or(path).clone());
    }
    wait
}

/// What [`wait_for_moves`] found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Wait {
    /// Indexed paths (a vanished file, or the removed directory above it)
    /// left out of this plan, with what is below them.
    pub vanished: BTreeSet<WirePath>,
    /// The unsettled files they wait for: looked at again with them.
    pub moved_to: BTreeSet<WirePath>,
}

impl Wait {
    /// True when `path` is a waiting path or below one.
    pub fn holds(&self, path: &WirePath) -> bool {
        self.vanished.iter().any(|w| path.is_within(w))
    }
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
    // The same file (inode) first, for every vanished file, then the same
    // content for the rest, unless it is known to be another file
    // ([`Stat::other_file`]: another inode, or the same number born
    // again): two vanished files with one content must not take each
    // other's moved file, and a copy is not a move: a Rename
    // would carry to the copy whatever another device made of the
    // original meanwhile.
    for by_inode in [true, false] {
        for (from, base, hash, stat) in &deleted_files {
            if renamed_from.contains(from) {
                continue;
            }
            let candidate = if by_inode {
                same_file(uploads, from, stat)
            } else {
                uploads
                    .iter()
                    .enumerate()
                    .filter(|(_, op)| {
                        matches!(op, Op::Upload { base: 0, hash: h, stat: now, .. }
                            if h == hash && !stat.other_file(now))
                    })
                    .max_by_key(|(_, op)| op.path().file_name() == from.file_name())
                    .map(|(i, _)| i)
            };
            if let Some(i) = candidate {
                let to = uploads.remove(i).path().clone();
                renamed_from.insert(from.clone());
                let (from, base) = (from.clone(), *base);
                ops.push(Op::Rename { from, to, base });
            }
        }
    }
    // Files swapped, moved in a cycle or a chain: paths still there that
    // hold another indexed file (super::swaps).
    let replaced = swaps::replaced_files(disk, known);
    if !replaced.is_empty() {
        let sources: Vec<(WirePath, u64, Stat)> = deleted_files
            .iter()
            .filter(|(p, ..)| !renamed_from.contains(p))
            .map(|(p, base, _, stat)| (p.clone(), *base, *stat))
            .chain(
                replaced
                    .iter()
                    .map(|(p, (base, stat))| (p.clone(), *base, *stat)),
            )
            .collect();
        for op in swaps::chain_renames(&sources, &replaced, uploads) {
            renamed_from.extend(op.frees().cloned());
            ops.push(op);
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
/// the same device, born at the same time where both birth times are known
/// ([`Stat::same_inode`], PROTOCOL.md: `rm a; echo new > b` gives
/// `b` the inode number of `a` on ext4, not its birth time; that is a
/// Delete and a new file). Its content differs, so it is not
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
            if was.same_inode(stat) && !path.is_within(from))
    })
}

/// True when a file indexed as `was` may be the file `now` moved: the same
/// inode on the same device when both are known, not born again
/// ([`Stat::same_inode`], R-7.2.5); without an inode,
/// the same size and modification time (a move keeps both; a record whose
/// mtime is not trusted, 0, proves nothing and matches nothing).
fn moved_file(was: &Stat, now: &Stat) -> bool {
    if was.ino != 0 && now.ino != 0 {
        was.same_inode(now)
    } else {
        was.size == now.size && was.mtime_ns != 0 && now.mtime_ns == was.mtime_ns
    }
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
/// its files, each the same file: the same inode on the same
/// device anywhere below it (a move keeps the inode, also of a file renamed
/// inside the moved directory), or, for a file whose inode is not known,
/// the same relative name, size and modification time ([`moved_file`]).
/// Name and size alone are not enough: `rm -rf d1; mv d2 x` of two
/// directories with files of the same names and sizes (`d1/f0.txt`,
/// `d2/f0.txt`) paired the removed d1 with x, so the server moved d1's files
/// there and the rename of d2 went as a removal and an upload of every file.
/// A directory still on disk (`strict`: one whose files mostly left,
/// [`swaps::moved_out_dirs`]) is paired only with a directory holding most
/// of them at their own relative names (a swap moves the directory whole;
/// `p` is not moved because its subdirectory `p/e` was swapped), and no
/// directory is paired when one above or below it already is.
fn match_dir_renames(
    known: &BTreeMap<WirePath, Entry>,
    disk: &BTreeMap<WirePath, DiskEntry>,
    deleted: &[WirePath],
    added: &[WirePath],
    strict: &BTreeSet<WirePath>,
) -> Vec<Op> {
    let mut ops: Vec<Op> = Vec::new();
    let mut taken: Vec<WirePath> = Vec::new();
    let mut budget = RENAME_SEARCH_BUDGET;
    // The known inodes of the files below each new directory, with their
    // stats (for the birth time: [`Stat::same_inode`]).
    let mut inodes: BTreeMap<&WirePath, BTreeMap<(u64, u64), Stat>> = BTreeMap::new();
    for to in added {
        let below = disk
            .range(to.clone()..)
            .take_while(|(p, _)| p.is_within(to))
            .filter_map(|(_, d)| match d {
                DiskEntry::File(s) if s.ino != 0 => Some(((s.dev, s.ino), *s)),
                _ => None,
            });
        inodes.insert(to, below.collect());
    }
    for from in deleted {
        let files: Vec<(&str, Stat)> = known
            .range(from.clone()..)
            .take_while(|(p, _)| p.is_within(from))
            .filter_map(|(p, e)| match e.kind {
                EntryKind::File { stat, .. } => Some((&p.as_str()[from.as_str().len()..], stat)),
                EntryKind::Dir => None,
            })
            .collect();
        let paired = |op: &Op| {
            op.frees()
                .is_some_and(|f| f.is_within(from) || from.is_within(f))
        };
        // A directory still there that held one file: a swap of it alone
        // looks the same as a swap of the directories, and a file rename
        // costs what a directory rename does (without directory identity
        // in the index, the cheaper guess is the one that carries nothing
        // another device added).
        if files.is_empty() || ops.iter().any(paired) || (strict.contains(from) && files.len() < 2)
        {
            continue;
        }
        // (files found, of them at their own relative name, same name).
        let mut best: Option<((usize, usize, bool), &WirePath)> = None;
        for to in added {
            if taken.iter().any(|t| to.is_within(t) || t.is_within(to)) || to.is_within(from) {
                continue;
            }
            if strict.contains(from) && !subdirs_followed(known, disk, from, to) {
                continue;
            }
            budget = budget.saturating_sub(files.len());
            if budget == 0 {
                return ops;
            }
            let below = inodes.get(to);
            let (mut score, mut in_place) = (0, 0);
            for (rest, stat) in &files {
                let here = WirePath::new(&format!("{to}{rest}"))
                    .ok()
                    .and_then(|moved| match disk.get(&moved) {
                        Some(DiskEntry::File(now)) => Some(*now),
                        _ => None,
                    });
                if here.is_some_and(|now| moved_file(stat, &now)) {
                    (score, in_place) = (score + 1, in_place + 1);
                } else if below
                    .and_then(|b| b.get(&(stat.dev, stat.ino)))
                    .is_some_and(|now| stat.same_inode(now))
                {
                    score += 1;
                }
            }
            // Among directories holding as many (`archive` and
            // `archive/pics` after `mv photos archive/pics`), the one where
            // they keep their relative names.
            if strict.contains(from) {
                score = in_place;
            }
            let rank = (score, in_place, to.file_name() == from.file_name());
            if score * 2 >= files.len() && score > 0 && best.is_none_or(|(r, _)| rank > r) {
                best = Some((rank, to));
            }
        }
        if let Some((_, to)) = best {
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

/// Whether every directory the index lists below `from` is a directory at
/// its relative path below `to` on disk: what a whole directory moved
/// shows. Asked of a directory still on disk (a swap or cycle, matched by
/// the files it holds): files swapped between two directories (`mv b/x
/// t; mv c/x b/x; mv t c/x`) leave the subdirectories where they were, and
/// a directory swap inferred from the files would carry them, and what
/// another device added there, to the other side.
fn subdirs_followed(
    known: &BTreeMap<WirePath, Entry>,
    disk: &BTreeMap<WirePath, DiskEntry>,
    from: &WirePath,
    to: &WirePath,
) -> bool {
    known
        .range(from.clone()..)
        .take_while(|(p, _)| p.is_within(from))
        .filter(|(p, e)| e.kind == EntryKind::Dir && *p != from)
        .all(|(p, _)| {
            WirePath::new(&format!("{to}{}", &p.as_str()[from.as_str().len()..]))
                .is_ok_and(|moved| disk.get(&moved) == Some(&DiskEntry::Dir))
        })
}

#[cfg(test)]
mod offline_tests;

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> WirePath {
        WirePath::new(s).unwrap()
    }

    fn stat(dev: u64, ino: u64, btime_ns: i64) -> Stat {
        Stat {
            size: 5,
            mtime_ns: 1,
            ctime_ns: 1,
            dev,
            ino,
            exec: false,
            btime_ns,
        }
    }

    /// a vanished file and a new file with another content are one
    /// file moved and edited exactly when device and inode are the same
    /// (and known) and the birth times do not differ (where both are
    /// known: an older index or a file system without them falls back to
    /// the inode alone); otherwise a Delete and a new upload, as before.
    /// The same content under a reused inode number is not the file moved
    /// either (`rm a; echo same > b`): a copy is not a move.
    #[test]
    fn a_moved_and_edited_file_is_a_rename_by_its_inode_and_birth() {
        let old = ContentHash::of(b"t\n");
        let new = ContentHash::of(b"t\nmore\n");
        for (was, now, content, rename) in [
            (stat(1, 7, 0), stat(1, 7, 0), new, true),
            (stat(1, 7, 0), stat(1, 8, 0), new, false),
            (stat(1, 7, 0), stat(2, 7, 0), new, false),
            (stat(1, 0, 0), stat(1, 0, 0), new, false),
            (stat(1, 7, 100), stat(1, 7, 100), new, true),
            (stat(1, 7, 100), stat(1, 7, 200), new, false),
            (stat(1, 7, 0), stat(1, 7, 200), new, true),
            (stat(1, 7, 100), stat(1, 7, 0), new, true),
            (stat(1, 7, 100), stat(1, 7, 100), old, true),
            (stat(1, 7, 100), stat(1, 7, 200), old, false),
            (stat(1, 7, 100), stat(1, 8, 100), old, false),
            (stat(1, 7, 0), stat(1, 7, 200), old, true),
        ] {
            let known: BTreeMap<WirePath, Entry> =
                [(p("t.sh"), Entry::synced_file(was, old, 3))].into();
            let disk: BTreeMap<WirePath, DiskEntry> = [(p("u.sh"), DiskEntry::File(now))].into();
            let upload = Op::Upload {
                path: p("u.sh"),
                base: 0,
                stat: now,
                hash: content,
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

    /// breaker23 F4: a vanished file waits (no Delete this look) exactly
    /// when a file not read yet holds its inode (same device, inode, birth
    /// where known): whatever that file's size, mtime or name (a chain
    /// `a -> b -> c` is `a -> c`), found in this look's unstable files or
    /// in those watched since an earlier look (outside the scope). Below a
    /// removed directory, the directory waits. A file still on disk, or one
    /// whose inode no unsettled file holds, is planned as before.
    #[test]
    fn a_vanished_file_waits_for_an_unsettled_file_with_its_inode() {
        let h = ContentHash::of(b"x");
        let dir = Entry {
            kind: EntryKind::Dir,
            version: 1,
        };
        let known: BTreeMap<WirePath, Entry> = [
            (p("a"), Entry::synced_file(stat(1, 7, 100), h, 2)),
            (p("b"), Entry::synced_file(stat(1, 8, 100), h, 2)),
            (p("k"), Entry::synced_file(stat(1, 9, 100), h, 2)),
            (p("d"), dir),
            (p("d/f"), Entry::synced_file(stat(1, 10, 100), h, 2)),
        ]
        .into();
        let grown = |s: Stat| Stat {
            size: 99,
            mtime_ns: 0,
            ..s
        };
        let disk: BTreeMap<WirePath, DiskEntry> = [
            (p("c"), DiskEntry::File(grown(stat(1, 7, 100)))),
            (p("k"), DiskEntry::File(stat(1, 9, 100))),
            (p("n"), DiskEntry::File(grown(stat(1, 10, 0)))),
            (p("x"), DiskEntry::File(stat(1, 8, 200))),
        ]
        .into();
        let set = |v: &[&str]| v.iter().map(|s| p(s)).collect::<BTreeSet<_>>();
        let at = |path: &str| match disk.get(&p(path)) {
            Some(DiskEntry::File(s)) => (p(path), *s),
            _ => (p(path), stat(2, 1, 0)),
        };
        for (unsettled, vanished, moved_to) in [
            (vec![], vec![], vec![]),
            (vec![at("c")], vec!["a"], vec!["c"]),
            // Watched since an earlier look, not in this look's disk.
            (
                vec![(p("out/c"), grown(stat(1, 7, 0)))],
                vec!["a"],
                vec!["out/c"],
            ),
            // The file under the removed directory: the directory waits.
            (vec![at("n")], vec!["d"], vec!["n"]),
            // Another device, inode or birth: not the moved file.
            (vec![(p("y"), stat(2, 7, 100))], vec![], vec![]),
            (vec![at("x")], vec![], vec![]),
            // `k` is still on disk: nothing waits for it.
            (vec![at("k")], vec![], vec![]),
            (
                vec![at("c"), at("n"), at("x")],
                vec!["a", "d"],
                vec!["c", "n"],
            ),
        ] {
            let wait = wait_for_moves(&disk, &known, &[p("d")], &unsettled);
            let want = Wait {
                vanished: set(&vanished),
                moved_to: set(&moved_to),
            };
            assert_eq!(wait, want, "{unsettled:?}");
            assert_eq!(wait.holds(&p("d/f")), vanished.contains(&"d"));
        }
    }

    /// with R-7.2.4's birth time: a removed directory is not paired
    /// with a new one whose files only got its files' inode numbers.
    #[test]
    fn a_new_directory_on_reused_inode_numbers_is_not_a_rename() {
        let h = ContentHash::of(b"x");
        for (born, rename) in [(100, true), (200, false), (0, true)] {
            let known: BTreeMap<WirePath, Entry> = [
                (
                    p("d"),
                    Entry {
                        kind: EntryKind::Dir,
                        version: 1,
                    },
                ),
                (p("d/f"), Entry::synced_file(stat(1, 7, 100), h, 2)),
                (p("d/g"), Entry::synced_file(stat(1, 8, 100), h, 2)),
            ]
            .into();
            let disk: BTreeMap<WirePath, DiskEntry> = [
                (p("e"), DiskEntry::Dir),
                (p("e/other"), DiskEntry::File(stat(1, 7, born))),
                (p("e/names"), DiskEntry::File(stat(1, 8, born))),
            ]
            .into();
            let (deleted, added) = dir_changes(&disk, &known);
            let ops = dir_renames(&disk, &known, &deleted, &added);
            let want = match rename {
                true => vec![Op::Rename {
                    from: p("d"),
                    to: p("e"),
                    base: 1,
                }],
                false => vec![],
            };
            assert_eq!(ops, want, "born {born}");
        }
    }
}
