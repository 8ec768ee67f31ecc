//! Which directories of a pull reply moved whole (PROTOCOL.md ):
//! the rule, without I/O.
//!
//! A reply lists states, not moves: another device's `mv proj
//! project` arrives as `proj` Deleted, `project` Dir and every file below
//! `project`. Applied path by path, the directory was rebuilt here: new
//! directories, each file moved from a donor, the old directory removed.
//! Everything this device holds in it and does not sync (an ignored
//! `node_modules/`, editor swap files, symlinks, the folder of another
//! user's client, a drive mounted below it) stayed behind in the old one,
//! and the directories' modes were lost (outside tester breaker26 FA, F0b).
//! So the applier first looks for directories that moved whole and renames
//! each with one `renameat` before the rest of the reply is applied.
//!
//! The rule ([`plan`]): a directory `X` the index holds moved to `Y` when
//! - the reply deletes `X` (a Deleted entry at `X` or above it; with a full
//!   listing: `X` is not listed), and lists `Y` as a directory that this
//!   device does not hold synced (not indexed, or deleted by the same reply
//!   at `Y` itself: a swap or a chain) and that no deletion of the reply
//!   covers from above;
//! - neither holds the other;
//! - one of the files indexed below `X` is listed below `Y` at the same
//!   relative path with the same content (which names `Y`; of the files
//!   listed with that content, only those whose paths end with the most
//!   components in common with the indexed file's own: among identical
//!   files, `old/d1/f` names `new/d1`, not every `new/dN`), more than half
//!   of the files indexed below `X` are listed below `Y` with the same
//!   content (anywhere below it: a subdirectory may have been renamed too),
//!   and they are at least half of the files the reply lists below `Y`. So a
//!   directory that also had files edited, added or removed elsewhere still
//!   moves, and one that only shares a few files with `Y` does not. `X`
//!   without files: the same with its subdirectories, by relative path.
//!
//! Among candidates, the one with the most matching files goes first
//! (then those matched by subdirectories; ties: the shorter source, then
//! the path order); a directory is the source or the
//! target of one move only, and a source below another move's source
//! travels with it (the caller asks again after each move, with the index
//! rebased: a directory renamed inside a renamed directory is found then).

use crate::client::index::{EntryKind, Index};
use crate::protocol::{ContentHash, EntryState, WirePath};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ops::Bound;

/// One directory that moved whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirMove {
    /// Where it is here (indexed).
    pub from: WirePath,
    /// Where the server has it now.
    pub to: WirePath,
    /// The version of the deletion that removed `from` (its rename's).
    pub version: u64,
    /// How many of its entries the reply lists at `to` unchanged.
    pub matched: usize,
    /// Matched by files (else by subdirectories: it holds no file).
    pub by_files: bool,
}

/// What the reply says, as [`plan`] needs it.
#[derive(Debug, Default)]
pub struct Reply {
    /// Final state of every path the reply lists as a file or directory.
    pub listed: BTreeMap<WirePath, EntryState>,
    /// Deletions to apply: path → version.
    pub deleted: BTreeMap<WirePath, u64>,
    /// Sources whose move was tried and refused here: never again, and
    /// what is below them may move on its own.
    pub refused: BTreeSet<WirePath>,
}

impl Reply {
    /// The version of the deletion that covers `path` (at it or at the
    /// nearest ancestor), if any.
    pub fn deletion_of(&self, path: &WirePath) -> Option<u64> {
        let mut at = Some(path.clone());
        while let Some(p) = at {
            if let Some(v) = self.deleted.get(&p) {
                return Some(*v);
            }
            at = p.parent();
        }
        None
    }

    /// Whether the reply lists anything strictly below `dir`.
    pub fn lists_below(&self, dir: &WirePath) -> bool {
        self.below(dir).next().is_some()
    }

    /// What the reply lists strictly below `dir` ("dir/" sorts first and
    /// "dir0" right after the last of them: '0' follows '/').
    fn below<'a>(
        &'a self,
        dir: &WirePath,
    ) -> impl Iterator<Item = (&'a WirePath, &'a EntryState)> + 'a {
        let lo = format!("{dir}/");
        let hi = format!("{dir}0");
        self.listed
            .range::<str, _>((Bound::Included(lo.as_str()), Bound::Excluded(hi.as_str())))
    }

    /// Files the reply lists strictly below `dir`.
    fn files_below(&self, dir: &WirePath) -> usize {
        self.below(dir)
            .filter(|(_, s)| matches!(s, EntryState::File { .. }))
            .count()
    }

    /// Directories the reply lists strictly below `dir`.
    fn dirs_below(&self, dir: &WirePath) -> usize {
        self.below(dir)
            .filter(|(_, s)| **s == EntryState::Dir)
            .count()
    }
}

/// The path `rel` (relative) strips from the end of `path`: `path` is
/// `Y/rel`; `None` when it does not end so or `Y` would be empty.
fn prefix_of(path: &WirePath, rel: &str) -> Option<WirePath> {
    let whole = path.as_str();
    let cut = whole.len().checked_sub(rel.len() + 1)?;
    if cut == 0 || !whole.ends_with(rel) || whole.as_bytes().get(cut) != Some(&b'/') {
        return None;
    }
    WirePath::new(&whole[..cut]).ok()
}

/// `path` relative to its ancestor `dir`.
fn relative<'p>(path: &'p WirePath, dir: &WirePath) -> &'p str {
    path.as_str()
        .get(dir.as_str().len() + 1..)
        .unwrap_or_default()
}

/// Whether `y` may receive a directory: listed as one, not held synced
/// here (not indexed, or deleted by the reply at `y` itself: a swap or a
/// chain), and below no directory the reply deletes (whose removal would
/// then take what moved in).
fn is_target(y: &WirePath, reply: &Reply, index: &Index) -> bool {
    let above = y.parent().and_then(|p| reply.deletion_of(&p));
    reply.listed.get(y) == Some(&EntryState::Dir)
        && above.is_none()
        && (index.get(y).is_none() || reply.deleted.contains_key(y))
}

/// `rel` (a relative path) with its components in reverse order, each
/// followed by `/`: a path ends with `/rel` exactly when its own
/// [`tail_key`] starts with this one (a component holds no `/`).
fn tail_key(rel: &str) -> String {
    let mut key = String::with_capacity(rel.len() + 1);
    for part in rel.rsplit('/') {
        key.push_str(part);
        key.push('/');
    }
    key
}

/// The reply's files and directories by their reversed paths, so the
/// entries that end with the same components are one range. Matching by
/// content alone paired every file with every file of the same content:
/// identical (empty) files made it quadratic (100,000 renamed took minutes).
struct Tails<'a> {
    /// Per content, the reversed path of each listed file and the path,
    /// in key order.
    files: HashMap<ContentHash, Vec<(String, &'a WirePath)>>,
    /// Reversed path of each listed directory, and the path.
    dirs: BTreeMap<String, &'a WirePath>,
}

/// How many whole components two [`tail_key`]s start with in common.
fn shared_parts(a: &str, b: &str) -> usize {
    a.split_inclusive('/')
        .zip(b.split_inclusive('/'))
        .take_while(|(x, y)| x == y && x.ends_with('/'))
        .count()
}

impl<'a> Tails<'a> {
    fn of(reply: &'a Reply) -> Tails<'a> {
        let mut tails = Tails {
            files: HashMap::new(),
            dirs: BTreeMap::new(),
        };
        for (path, state) in &reply.listed {
            let key = tail_key(path.as_str());
            match state {
                EntryState::File { hash, .. } => {
                    tails.files.entry(*hash).or_default().push((key, path));
                }
                EntryState::Dir => {
                    tails.dirs.insert(key, path);
                }
                EntryState::Deleted => {}
            }
        }
        for same in tails.files.values_mut() {
            same.sort_unstable();
        }
        tails
    }

    /// The listed files of content `hash`, other than `path` itself, that
    /// end with the most components in common with the indexed file
    /// `path`, and how many that is (0: none of that content). These are
    /// where `path` went: a file of a source `X` at `rel` names `Y` when
    /// one of them is `Y/rel`. Among identical files, `old/d1/f` names
    /// `new/d1` (through `new/d1/f`), not every `new/dN`.
    fn best_for(&self, path: &WirePath, hash: ContentHash) -> (usize, Vec<&'a WirePath>) {
        let Some(same) = self.files.get(&hash) else {
            return (0, Vec::new());
        };
        let key = tail_key(path.as_str());
        let at = same.partition_point(|(k, _)| k.as_str() < key.as_str());
        let after = match same.get(at) {
            Some((k, _)) if *k == key => at + 1,
            _ => at,
        };
        let shared = |i: Option<usize>| {
            i.and_then(|i| same.get(i))
                .map_or(0, |(k, _)| shared_parts(k, &key))
        };
        let best = shared(at.checked_sub(1)).max(shared(Some(after)));
        if best == 0 {
            return (0, Vec::new());
        }
        // The run of keys that start with the first `best` components.
        let cut: usize = key.split_inclusive('/').take(best).map(str::len).sum();
        let prefix = &key[..cut];
        let lo = same.partition_point(|(k, _)| k.as_str() < prefix);
        let run = same[lo..]
            .iter()
            .take_while(|(k, _)| k.starts_with(prefix))
            .filter(|(k, _)| *k != key)
            .map(|(_, p)| *p)
            .collect();
        (best, run)
    }

    /// Every `Y` whose `Y/rel` the reply lists as a directory.
    fn dir_at<'s>(&'s self, rel: &'s str) -> impl Iterator<Item = WirePath> + 's {
        let (lo, hi) = tail_range(rel);
        self.dirs
            .range(lo..hi)
            .filter_map(move |(_, path)| prefix_of(path, rel))
    }
}

/// The keys of the paths that end with `/rel` below a non-empty `Y`: those
/// starting with `rel`'s key (its last `/` kept: one more component
/// follows), up to the same with the `/` raised to `0`, the next byte.
fn tail_range(rel: &str) -> (String, String) {
    let lo = tail_key(rel);
    let mut hi = lo.clone();
    hi.pop();
    hi.push('0');
    (lo, hi)
}

/// The directories that moved whole, in the order to try them (see the
/// module comment for the rule).
pub fn plan(index: &Index, reply: &Reply) -> Vec<DirMove> {
    let tails = Tails::of(reply);
    let mut candidates: Vec<DirMove> = Vec::new();
    let sources = index
        .iter()
        .filter(|(p, e)| e.kind == EntryKind::Dir && !reply.refused.contains(*p))
        .filter_map(|(p, _)| reply.deletion_of(p).map(|v| (p, v)));
    for (x, version) in sources {
        let mut counts: BTreeMap<WirePath, usize> = BTreeMap::new();
        let mut hashes: Vec<ContentHash> = Vec::new();
        let mut dirs = 0usize;
        for (p, e) in index.subtree(Some(x)).filter(|(p, _)| *p != x) {
            let rel = relative(p, x);
            match e.kind {
                EntryKind::File { hash, .. } => {
                    hashes.push(hash);
                    let (best, went) = tails.best_for(p, hash);
                    if rel.split('/').count() <= best {
                        for y in went.iter().filter_map(|there| prefix_of(there, rel)) {
                            counts.entry(y).or_default();
                        }
                    }
                }
                EntryKind::Dir => dirs += 1,
            }
        }
        let files = hashes.len();
        if files > 0 {
            // Found where one of X's files is at its relative path; counted
            // wherever below: a subdirectory renamed inside the moved
            // directory (X/in -> Y/out) still counts as X's.
            for (y, matched) in counts.iter_mut() {
                let there: HashSet<ContentHash> = reply
                    .below(y)
                    .filter_map(|(_, s)| match s {
                        EntryState::File { hash, .. } => Some(*hash),
                        _ => None,
                    })
                    .collect();
                *matched = hashes.iter().filter(|h| there.contains(h)).count();
            }
        }
        if files == 0 {
            // Only directories below: match them by name.
            for (p, _) in index.subtree(Some(x)).filter(|(p, _)| *p != x) {
                for y in tails.dir_at(relative(p, x)) {
                    *counts.entry(y).or_default() += 1;
                }
            }
        }
        for (y, matched) in counts {
            let (own, theirs) = match files {
                0 => (dirs, reply.dirs_below(&y)),
                _ => (files, reply.files_below(&y)),
            };
            let clear = matched > 0 && 2 * matched > own && 2 * matched >= theirs;
            if clear && !y.is_within(x) && !x.is_within(&y) && is_target(&y, reply, index) {
                candidates.push(DirMove {
                    from: x.clone(),
                    to: y,
                    version,
                    matched,
                    by_files: files > 0,
                });
            }
        }
    }
    candidates.sort_by(|a, b| {
        (b.by_files, b.matched)
            .cmp(&(a.by_files, a.matched))
            .then(a.from.depth().cmp(&b.from.depth()))
            .then(a.from.cmp(&b.from))
            .then(a.to.cmp(&b.to))
    });
    let mut chosen: Vec<DirMove> = Vec::new();
    for c in candidates {
        let taken = chosen
            .iter()
            .any(|m| c.from.is_within(&m.from) || m.from.is_within(&c.from) || c.to == m.to);
        if !taken {
            chosen.push(c);
        }
    }
    chosen
}

#[cfg(test)]
mod tests;
