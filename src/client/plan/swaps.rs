//! Renames among paths that are still there: swaps (`mv a t; mv b a; mv t
//! b`), cycles (`a -> b -> c -> a`) and chains (`mv b c; mv a b`) of files
//! or directories. Nothing vanished, so [`super::resolve`]'s pairing of a
//! gone path with a new one finds nothing; each path instead holds another
//! file than the index lists (another inode, R-7.2.4), or a directory holds
//! mostly other files. Planned as Deletes and uploads, a swap re-sends the
//! content of every file in it and a Delete drops what another device did
//! to the old path meanwhile (an edit, a chmod); as renames, the server
//! moves what it has and [`super::order`] sends a cycle through a
//! temporary name.
//!
//! A rename may only fill a path the server still holds (a path the index
//! lists) when another rename of the same plan frees it: `mv a b` over an
//! existing `b` stays what it was (an upload of `b` and a Delete of `a`),
//! since a Rename onto `b` would be a Conflict.

use super::ops::{DiskEntry, Op};
use crate::client::fsutil::Stat;
use crate::client::index::{Entry, EntryKind};
use crate::protocol::WirePath;
use std::collections::{BTreeMap, BTreeSet};

/// The indexed files that are still files on disk but known to be other
/// files ([`Stat::other_file`]: another inode, or the same number born
/// again), with their indexed version and stat. An edit in place keeps the
/// inode; an editor's save through a new file (`vim`, `sed -i`) does not,
/// so being here alone means nothing: only a pairing with a file that
/// holds the old inode makes a rename.
pub fn replaced_files(
    disk: &BTreeMap<WirePath, DiskEntry>,
    known: &BTreeMap<WirePath, Entry>,
) -> BTreeMap<WirePath, (u64, Stat)> {
    known
        .iter()
        .filter_map(|(p, e)| match (e.kind, disk.get(p)) {
            (EntryKind::File { stat, .. }, Some(DiskEntry::File(now))) if stat.other_file(now) => {
                Some((p.clone(), (e.version, stat)))
            }
            _ => None,
        })
        .collect()
}

/// A rename of a file among paths still there, and the upload it takes
/// the place of.
struct Link {
    from: WirePath,
    base: u64,
    upload: Op,
}

/// Pairs each of `sources` (indexed files gone, or replaced: see
/// [`replaced_files`], with version and indexed stat) with the upload of
/// the file holding its inode, where that upload is of a new path (base 0)
/// or of a replaced one. Takes the paired uploads out of `uploads` and
/// returns the renames; an upload left at a replaced path whose old file a
/// rename moved away is then of a new file there (base 0: the server no
/// longer has the old one there, and its chunk list is no base).
///
/// A pairing is kept only when every path it fills that the server holds
/// is freed by another kept pairing, and every replaced source's path is
/// filled again by a pairing or an upload (so the new file there is not
/// lost); the others are dropped, to a fixed point.
pub fn chain_renames(
    sources: &[(WirePath, u64, Stat)],
    replaced: &BTreeMap<WirePath, (u64, Stat)>,
    uploads: &mut Vec<Op>,
) -> Vec<Op> {
    let mut links: Vec<Link> = Vec::new();
    for (from, base, was) in sources {
        let found = uploads.iter().position(|op| {
            let (Op::Upload { stat, .. } | Op::Stream { stat, .. }) = op else {
                return false;
            };
            let path = op.path();
            let fresh = base_of(op) == 0 || replaced.contains_key(path);
            fresh && was.same_inode(stat) && !path.is_within(from)
        });
        if let Some(i) = found {
            links.push(Link {
                from: from.clone(),
                base: *base,
                upload: uploads.remove(i),
            });
        }
    }
    loop {
        let freed: BTreeSet<&WirePath> = links.iter().map(|l| &l.from).collect();
        let filled: BTreeSet<&WirePath> = links
            .iter()
            .map(|l| l.upload.path())
            .chain(uploads.iter().map(Op::path))
            .collect();
        let broken = links.iter().position(|l| {
            let to = l.upload.path();
            (replaced.contains_key(to) && !freed.contains(to))
                || (replaced.contains_key(&l.from) && !filled.contains(&l.from))
        });
        let Some(i) = broken else {
            break;
        };
        let link = links.remove(i);
        uploads.push(link.upload);
    }
    let freed: BTreeSet<WirePath> = links.iter().map(|l| l.from.clone()).collect();
    for op in uploads.iter_mut() {
        if let Op::Upload { path, base, .. } = op {
            if freed.contains(path) {
                *base = 0;
            }
        }
    }
    links
        .into_iter()
        .map(|l| Op::Rename {
            from: l.from,
            to: l.upload.path().clone(),
            base: l.base,
        })
        .collect()
}

/// The base version of an upload (0 for a one-read upload: always new).
fn base_of(op: &Op) -> u64 {
    match op {
        Op::Upload { base, .. } | Op::SetMode { base, .. } => *base,
        _ => 0,
    }
}

/// The directories the index and the disk both list that do not hold, for
/// the most part, what the index says: `emptied` ones, of whose indexed
/// files fewer than half are still there as the same file, and `refilled`
/// ones, of whose files on disk fewer than half are the indexed file at
/// that path. A directory swapped with another is both. Only directories
/// above a file that is not the indexed one are counted, so a plan where
/// every file is where it was costs one pass over the files.
pub fn moved_out_dirs(
    disk: &BTreeMap<WirePath, DiskEntry>,
    known: &BTreeMap<WirePath, Entry>,
) -> (Vec<WirePath>, Vec<WirePath>) {
    // (indexed files, of them the same file) and (disk files, of them the
    // indexed file) per directory.
    let mut kept: BTreeMap<WirePath, (usize, usize)> = BTreeMap::new();
    let mut held: BTreeMap<WirePath, (usize, usize)> = BTreeMap::new();
    let same = |p: &WirePath| match (known.get(p).map(|e| e.kind), disk.get(p)) {
        (Some(EntryKind::File { stat, .. }), Some(DiskEntry::File(now))) => !stat.other_file(now),
        _ => false,
    };
    let moved: Vec<&WirePath> = known
        .iter()
        .filter(|(p, e)| matches!(e.kind, EntryKind::File { .. }) && !same(p))
        .map(|(p, _)| p)
        .chain(
            disk.iter()
                .filter(|(p, d)| matches!(d, DiskEntry::File(_)) && !same(p))
                .map(|(p, _)| p),
        )
        .collect();
    let mut candidates: BTreeSet<WirePath> = BTreeSet::new();
    for path in moved {
        for up in std::iter::successors(path.parent(), WirePath::parent) {
            let both = known.get(&up).is_some_and(|e| e.kind == EntryKind::Dir)
                && disk.get(&up) == Some(&DiskEntry::Dir);
            if both && !candidates.insert(up) {
                break;
            }
        }
    }
    if candidates.is_empty() {
        return (Vec::new(), Vec::new());
    }
    let count = |map: &mut BTreeMap<WirePath, (usize, usize)>, path: &WirePath| {
        let is_same = same(path);
        for up in std::iter::successors(path.parent(), WirePath::parent) {
            if candidates.contains(&up) {
                let slot = map.entry(up).or_default();
                slot.0 += 1;
                slot.1 += usize::from(is_same);
            }
        }
    };
    for (path, entry) in known {
        if matches!(entry.kind, EntryKind::File { .. }) {
            count(&mut kept, path);
        }
    }
    for (path, entry) in disk {
        if matches!(entry, DiskEntry::File(_)) {
            count(&mut held, path);
        }
    }
    let mostly_other = |map: &BTreeMap<WirePath, (usize, usize)>| -> Vec<WirePath> {
        map.iter()
            .filter(|(_, (all, same))| *all > 0 && same * 2 < *all)
            .map(|(p, _)| p.clone())
            .collect()
    };
    (mostly_other(&kept), mostly_other(&held))
}

/// Drops, to a fixed point, the directory renames the server must not get:
/// one that fills a directory the index lists (the server holds it) that no
/// other kept rename frees (a rename onto it would be a Conflict), and one
/// whose source is still a directory on disk that no other kept rename
/// fills. The second is a directory only emptied (`mkdir b; mv a/x b/`, a
/// stays): the index knows no directory inodes, so "its files are in b"
/// does not tell `mv a b; mkdir a` from that, and a Rename would carry to
/// `b` whatever another device added to `a` meanwhile. Its files go as file
/// renames instead, which both cases agree with. A swapped or cycled
/// directory is still there too, but another rename of the plan fills it.
pub fn keep_freed_dirs(
    mut renames: Vec<Op>,
    known: &BTreeMap<WirePath, Entry>,
    disk: &BTreeMap<WirePath, DiskEntry>,
) -> Vec<Op> {
    loop {
        let freed: BTreeSet<&WirePath> = renames.iter().filter_map(Op::frees).collect();
        let filled: BTreeSet<&WirePath> = renames.iter().filter_map(Op::occupies).collect();
        let broken = renames.iter().position(|op| {
            let to = op.path();
            let held = known.get(to).is_some_and(|e| e.kind == EntryKind::Dir);
            let stays = op.frees().is_some_and(|from| {
                disk.get(from) == Some(&DiskEntry::Dir) && !filled.contains(from)
            });
            (held && !freed.contains(to)) || stays
        });
        match broken {
            Some(i) => {
                renames.remove(i);
            }
            None => return renames,
        }
    }
}

/// The indexed files that wait for a later look because a move through
/// an ignored name is under way (`mv a a.tmp~; mv b a; mv a.tmp~ b` with
/// `*~` ignored, its steps seen in different looks): each file gone or
/// replaced (see [`replaced_files`]) whose inode is at one of `holders`
/// (ignored files, with their stats), and then each whose inode is at a
/// path that waits, to a fixed point. Planned now, the first would be a
/// Delete (its file is out of sight) and the second an upload of content
/// the server has; a look after the last step finds the swap. Returns
/// each waiting path with the ignored holder at the start of its chain.
pub fn held_by_ignored(
    disk: &BTreeMap<WirePath, DiskEntry>,
    known: &BTreeMap<WirePath, Entry>,
    holders: &[(WirePath, Stat)],
) -> BTreeMap<WirePath, WirePath> {
    let mut held: BTreeMap<WirePath, WirePath> = BTreeMap::new();
    if holders.is_empty() {
        return held;
    }
    let moved: Vec<(&WirePath, Stat)> = known
        .iter()
        .filter_map(|(p, e)| match (e.kind, disk.get(p)) {
            (EntryKind::File { stat, .. }, Some(DiskEntry::File(now))) => {
                stat.other_file(now).then_some((p, stat))
            }
            (EntryKind::File { stat, .. }, _) => Some((p, stat)),
            _ => None,
        })
        .collect();
    loop {
        let found = moved.iter().find_map(|(path, was)| {
            if held.contains_key(*path) {
                return None;
            }
            let by_ignored = holders
                .iter()
                .find(|(_, now)| was.same_inode(now))
                .map(|(holder, _)| holder.clone());
            let by_waiting = || {
                held.iter().find_map(|(at, holder)| match disk.get(at) {
                    Some(DiskEntry::File(now)) if was.same_inode(now) => Some(holder.clone()),
                    _ => None,
                })
            };
            by_ignored.or_else(by_waiting).map(|h| ((*path).clone(), h))
        });
        match found {
            Some((path, holder)) => {
                held.insert(path, holder);
            }
            None => return held,
        }
    }
}

#[cfg(test)]
mod tests;
