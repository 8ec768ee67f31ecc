//! Synced files moved to a path the protocol cannot carry (PROTOCOL.md §6.1:
//! a backslash, a control character, a name that is not UTF-8 or over 255
//! bytes, a path over 4,096 bytes or 64 levels): `mv report.txt
//! 'report\2026.txt'`, `mv proj l/l/…/l/`. The file is not gone, only out
//! of the protocol's reach, so its old path is neither a Delete nor a
//! RemoveDir (breaker25 F4: every other device lost it): the old path stays
//! on the server and the other devices and is listed as not synced here
//! until the file is moved to a legal name again (then the usual rename,
//! with the old path still indexed) or removed (then the Delete,
//! once the file is nowhere in the folder)..
//!
//! The scanner finds the files at such paths (their stats); this decides,
//! without I/O, which indexed paths they hold.

use super::ops::DiskEntry;
use crate::client::fsutil::Stat;
use crate::client::index::{Entry, EntryKind};
use crate::protocol::WirePath;
use std::collections::{BTreeMap, BTreeSet};

/// A regular file the walk found at a path the protocol cannot carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stranded {
    /// Where it is, relative to the folder, as the log and `status` show
    /// a name (control characters escaped).
    pub at: String,
    /// Why that path cannot be synced (the first component that breaks a
    /// rule, and the rule).
    pub why: String,
    /// Its stat: the same file as an indexed one when
    /// [`Stat::same_inode`].
    pub stat: Stat,
}

/// What a look leaves out because its files are stranded.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Held {
    /// Every indexed path to leave out of the plan (neither deleted nor
    /// compared): the files found stranded and every indexed path below a
    /// directory that is gone from disk and held one of them.
    pub paths: BTreeSet<WirePath>,
    /// The top-most of them, with what `status` says of each (where it is
    /// now and why that cannot be synced).
    pub listed: BTreeMap<WirePath, String>,
}

impl Held {
    /// True when `path` is left out.
    pub fn holds(&self, path: &WirePath) -> bool {
        self.paths.contains(path)
    }
}

/// The indexed paths of `known` that `stranded` holds: an indexed file
/// gone from its path (nothing at it on `disk`) whose file (device, inode
/// and birth time, [`Stat::same_inode`]) is stranded; and a gone indexed
/// directory that held such a file, with everything the index lists below
/// it (a directory moved too deep holds many files, and one that cannot be
/// found there may lie past the scanner's bound: none is deleted).
///
/// A path that holds another file or a directory now is not held: that is
/// an edit or a kind change of the path, pushed as such, never a deletion
/// of what moved.
pub fn held_by_stranded(
    disk: &BTreeMap<WirePath, DiskEntry>,
    known: &BTreeMap<WirePath, Entry>,
    stranded: &[Stranded],
) -> Held {
    let mut held = Held::default();
    if stranded.is_empty() {
        return held;
    }
    let mut files: BTreeMap<WirePath, &Stranded> = BTreeMap::new();
    for (path, entry) in known {
        let EntryKind::File { stat, .. } = entry.kind else {
            continue;
        };
        if disk.contains_key(path) {
            continue;
        }
        if let Some(found) = stranded.iter().find(|s| stat.same_inode(&s.stat)) {
            files.insert(path.clone(), found);
        }
    }
    // The gone directories that held a stranded file (top-most first).
    let gone_dir = |d: &WirePath| {
        !disk.contains_key(d) && known.get(d).is_some_and(|e| e.kind == EntryKind::Dir)
    };
    // Each with the first file found stranded below it.
    let mut dirs: BTreeMap<WirePath, (&WirePath, &Stranded)> = BTreeMap::new();
    for (path, found) in &files {
        let mut top = None;
        let mut at = path.parent();
        while let Some(dir) = at {
            if !gone_dir(&dir) {
                break;
            }
            at = dir.parent();
            top = Some(dir);
        }
        if let Some(top) = top {
            dirs.entry(top).or_insert((path, found));
        }
    }
    for (dir, (inner, found)) in &dirs {
        let below = known.keys().filter(|p| p.is_within(dir));
        held.paths.extend(below.cloned());
        // Where the directory went: the file's new path less its part
        // below the directory, when it kept that part (otherwise the
        // file's own new path).
        let tail = inner.as_str().strip_prefix(dir.as_str()).unwrap_or("");
        let at = found.at.strip_suffix(tail).unwrap_or(&found.at);
        held.listed.insert(dir.clone(), says(at, &found.why));
    }
    for (path, found) in &files {
        if held.paths.insert(path.clone()) {
            held.listed
                .insert(path.clone(), says(&found.at, &found.why));
        }
    }
    held
}

/// How `status` begins the line of a held path.
pub const MOVED: &str = "moved to a name that cannot be synced";

/// What `status` lists for a held path whose file is at `at`.
fn says(at: &str, why: &str) -> String {
    format!("{MOVED}: {at}: {why}; kept on the server and the other devices")
}

#[cfg(test)]
mod tests;
