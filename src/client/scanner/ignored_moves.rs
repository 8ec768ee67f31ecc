//! Moves through an ignored name, seen in several looks: which indexed
//! files wait for a later look instead of going as a Delete or an upload
//! now ([`plan::swaps::held_by_ignored`] decides; this keeps what it needs
//! across looks), and for how long at most.
//!
//! `mv a a.tmp~; sleep 1; mv b a; sleep 1; mv a.tmp~ b` with `*~` ignored:
//! the first look finds `a` gone and its file out of sight. A Delete then
//! would drop what another device does to `a` meanwhile and re-send the
//! content later; the last look finds a swap, sent as renames. A file moved
//! to an ignored name for good is deleted on the server once [`HOLD`] has
//! passed, as it was before, only later.

use crate::client::fsutil::{check_path, Local, Stat};
use crate::client::index::{Entry, EntryKind};
use crate::client::plan::{self, DiskEntry};
use crate::protocol::WirePath;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

/// How long a file whose inode sits at an ignored name waits before it is
/// taken for removed: the steps of a swap a person types one by one.
pub const HOLD: Duration = Duration::from_secs(10);

/// Most ignored files remembered per walk (their names and inode numbers,
/// for the look that follows): a folder with more ignored files than this
/// only loses the wait for the rest.
const MAX_SEEN: usize = 100_000;

/// Most directories listed per look for ignored files beside indexed
/// files that left their paths.
const MAX_LISTED: usize = 64;

/// The ignored files of directory `dir` (`None`: the folder) whose inode
/// number is one of `inodes`.
fn ignored_beside(
    root: &Path,
    dir: Option<&WirePath>,
    inodes: &BTreeSet<u64>,
    ignored: &impl Fn(&WirePath) -> bool,
) -> Vec<WirePath> {
    use std::os::unix::fs::DirEntryExt;
    let local = dir.map_or_else(|| root.to_path_buf(), |d| d.to_local(root));
    let Ok(list) = std::fs::read_dir(local) else {
        return Vec::new();
    };
    list.filter_map(Result::ok)
        .filter(|item| inodes.contains(&item.ino()))
        .filter_map(|item| {
            let name = item.file_name().into_string().ok()?;
            let text = dir.map_or_else(|| name.clone(), |d| format!("{d}/{name}"));
            WirePath::new(&text).ok()
        })
        .filter(|p| ignored(p))
        .collect()
}

/// What the last walk saw ignored, and the files waiting.
#[derive(Debug, Default)]
pub struct IgnoredMoves {
    /// Ignored files of the walk in progress: path and inode number (from
    /// the directory entry: no `stat` for ignored files).
    seen: Vec<(WirePath, u64)>,
    /// Waiting indexed paths: the ignored file that holds the start of
    /// their chain, and since when they wait.
    held: BTreeMap<WirePath, (WirePath, Instant)>,
}

impl IgnoredMoves {
    /// A new walk begins.
    pub fn clear_walk(&mut self) {
        self.seen.clear();
    }

    /// The walk passed the ignored file `path` with inode number `ino`.
    pub fn seen(&mut self, path: WirePath, ino: u64) {
        if self.seen.len() < MAX_SEEN {
            self.seen.push((path, ino));
        }
    }

    /// The indexed paths of this look (`known`, `disk`; `covers` says what
    /// the look compares) to leave out of its plan and look at again: see
    /// [`plan::swaps::held_by_ignored`]. The holders are the ignored files
    /// this walk saw and those earlier waits named, looked at again now;
    /// a path that waited [`HOLD`] waits no more.
    pub fn hold(
        &mut self,
        root: &Path,
        disk: &BTreeMap<WirePath, DiskEntry>,
        known: &BTreeMap<WirePath, Entry>,
        ignored: impl Fn(&WirePath) -> bool,
        covers: impl Fn(&WirePath) -> bool,
        now: Instant,
    ) -> BTreeSet<WirePath> {
        // The indexed files that are not where the index has them.
        let moved: Vec<(&WirePath, u64)> = known
            .iter()
            .filter_map(|(p, e)| match (e.kind, disk.get(p)) {
                (EntryKind::File { stat, .. }, Some(DiskEntry::File(now))) => {
                    stat.other_file(now).then_some((p, stat.ino))
                }
                (EntryKind::File { stat, .. }, _) => Some((p, stat.ino)),
                _ => None,
            })
            .collect();
        if moved.is_empty() && self.held.is_empty() {
            return BTreeSet::new();
        }
        let inodes: BTreeSet<u64> = moved.iter().map(|(_, ino)| *ino).collect();
        let mut names: BTreeSet<WirePath> = self
            .seen
            .iter()
            .filter(|(_, ino)| inodes.contains(ino))
            .map(|(p, _)| p.clone())
            .collect();
        // A look at named paths walks only them, not the ignored file
        // beside: their directories are listed (a few).
        let dirs: BTreeSet<Option<WirePath>> = moved.iter().map(|(p, _)| p.parent()).collect();
        for dir in dirs.into_iter().take(MAX_LISTED) {
            names.extend(ignored_beside(root, dir.as_ref(), &inodes, &ignored));
        }
        names.extend(self.held.values().map(|(holder, _)| holder.clone()));
        let holders: Vec<(WirePath, Stat)> = names
            .into_iter()
            .filter_map(|p| match check_path(root, &p) {
                Ok(Local::File(stat)) => Some((p.clone(), stat)),
                _ => None,
            })
            .collect();
        let found = plan::swaps::held_by_ignored(disk, known, &holders);
        self.held
            .retain(|path, _| !covers(path) || found.contains_key(path));
        let mut out = BTreeSet::new();
        for (path, holder) in found {
            let since = self.held.get(&path).map_or(now, |(_, since)| *since);
            if now.saturating_duration_since(since) < HOLD {
                self.held.insert(path.clone(), (holder, since));
                out.insert(path);
            }
        }
        out
    }
}
