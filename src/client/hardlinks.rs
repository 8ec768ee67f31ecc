//! Files of the folder that have another name, which may be outside it
//! (`st_nlink > 1`), looked at again every [`EVERY`].
//!
//! A write through a name outside the folder makes no inotify event in
//! it, so without this the change waited for the 60 s comparison of the
//! whole folder while `status` said "in sync" (outside tester breaker21,
//! F2). Only a file with more than one link can be written that way, so
//! the scanner hands over each one it sees ([`HardLinks::seen`]) with the
//! stat it compared (a link made while the client runs is so followed
//! from the scanner's next look at the file: an event on it, or the 60 s
//! comparison), and the session re-stats a bounded batch of them at
//! each pass ([`HardLinks::pass`]); one whose size, times, inode or device
//! moved is reported as a watcher event would be (the normal detection
//! path: the scanner then decides what really changed). A file seen with
//! one link again, or gone, is dropped. A write through a writable
//! `mmap` whose descriptor was closed cannot be caught so (no event, and
//! the mtime moves only when the kernel writes the pages back): the 60 s
//! comparison stays the net for it (README "Status"; PROTOCOL.md §5.6.2,
//! informative: how the reference client tells local changes).

use super::fsutil::Stat;
use crate::fsafe;
use crate::protocol::WirePath;
use rustix::fs::FileType;
use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::Path;
use std::time::{Duration, Instant};

/// How often a batch of linked files is looked at: an edit through an
/// outside name is seen within this (plus the batch's turn, below).
pub const EVERY: Duration = Duration::from_secs(2);

/// Most linked files looked at per pass. One look is a walk of the path
/// through directory handles and an `fstatat` + `statx` (about 6 system
/// calls for a path two directories deep): a pass over 10,000 files took
/// 84 ms (median of 5, 78-85 ms, load average 9.4; `cargo test --release
/// --lib hardlinks::tests::cost -- --ignored --nocapture`), so 1,000 per
/// 2 s is about 0.4 % of one core, and a folder with up to 1,000 linked files has
/// each looked at every 2 s; 10,000 are each looked at every 20 s.
pub const PER_PASS: usize = 1000;

/// The linked files and where the last pass stopped.
#[derive(Debug, Default)]
pub struct HardLinks {
    /// Each linked file with the stat last seen.
    files: BTreeMap<WirePath, Stat>,
    /// The last path the last pass looked at (the next starts after it).
    cursor: Option<WirePath>,
    /// When the next pass is due (`None`: at once).
    due: Option<Instant>,
}

/// What one look at a linked file found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Look {
    /// A regular file, with its stat and link count.
    File(Stat, u64),
    /// Nothing, or not a regular file (a directory, symlink, ...).
    Gone,
}

/// What to do with a linked file after a look ([`judge`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Unchanged, still linked: keep looking.
    Same,
    /// Changed: report it (and keep looking while it is still linked).
    Changed { linked: bool },
    /// Unchanged but no longer linked, or gone: stop looking (a change of
    /// the kind the watcher sees comes through the watcher).
    Drop,
}

/// Pure: what a look (`now`) at a file last seen as `was` means. A change
/// is what [`crate::client::detect::judge`] would look at again: size,
/// mtime, ctime, inode or device moved.
pub fn judge(was: &Stat, now: Look) -> Verdict {
    match now {
        Look::Gone => Verdict::Changed { linked: false },
        Look::File(st, links) => {
            let moved = st.size != was.size
                || st.mtime_ns != was.mtime_ns
                || st.ctime_ns != was.ctime_ns
                || st.ino != was.ino
                || st.dev != was.dev;
            match (moved, links > 1) {
                (true, linked) => Verdict::Changed { linked },
                (false, true) => Verdict::Same,
                (false, false) => Verdict::Drop,
            }
        }
    }
}

/// Pure: the next `n` paths of `paths` after `cursor` (from the start when
/// `None` or past the end), wrapping around once, each at most once.
pub fn batch<'a, V>(
    paths: &'a BTreeMap<WirePath, V>,
    cursor: Option<&WirePath>,
    n: usize,
) -> Vec<&'a WirePath> {
    let after = match cursor {
        Some(c) => paths.range::<WirePath, _>((Bound::Excluded(c), Bound::Unbounded)),
        None => paths.range::<WirePath, _>(..),
    };
    let first: Vec<&WirePath> = after.map(|(p, _)| p).take(n).collect();
    let more = n.saturating_sub(first.len());
    let wrapped: Vec<&WirePath> = match cursor {
        Some(c) => paths
            .range::<WirePath, _>((Bound::Unbounded, Bound::Included(c)))
            .map(|(p, _)| p)
            .take(more)
            .collect(),
        None => Vec::new(),
    };
    first.into_iter().chain(wrapped).collect()
}

/// Pure: whether a pass is due at `now`.
pub fn due(next: Option<Instant>, now: Instant) -> bool {
    next.is_none_or(|t| now >= t)
}

/// Looks at `path` inside `root` through directory handles.
fn look(root: &Path, path: &WirePath) -> Look {
    match fsafe::stat(root, path) {
        Ok(Some((FileType::RegularFile, st, born))) => {
            // The cast is a no-op on x86_64 but not on every target.
            #[allow(clippy::unnecessary_cast)]
            let links = st.st_nlink as u64;
            Look::File(Stat::of_raw(&st, born), links)
        }
        _ => Look::Gone,
    }
}

impl HardLinks {
    /// The scanner saw `path` as a regular file with `stat` and `links`
    /// names: followed from that stat when linked, dropped when not.
    pub fn seen(&mut self, path: &WirePath, stat: Stat, links: u64) {
        if links > 1 {
            self.files.insert(path.clone(), stat);
        } else {
            self.files.remove(path);
        }
    }

    /// How many files are followed.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// When a pass is due at `now`: looks at the next [`PER_PASS`] files
    /// and returns those that changed (for the pending round, as a
    /// watcher's event); the next pass is [`EVERY`] later.
    pub fn pass(&mut self, root: &Path, now: Instant) -> Vec<WirePath> {
        if !due(self.due, now) {
            return Vec::new();
        }
        self.due = Some(now + EVERY);
        if self.files.is_empty() {
            return Vec::new();
        }
        let paths: Vec<WirePath> = batch(&self.files, self.cursor.as_ref(), PER_PASS)
            .into_iter()
            .cloned()
            .collect();
        let mut changed = Vec::new();
        for path in &paths {
            let Some(was) = self.files.get(path).copied() else {
                continue;
            };
            let now_is = look(root, path);
            match (judge(&was, now_is), now_is) {
                (Verdict::Same, _) => {}
                (Verdict::Drop, _) => {
                    self.files.remove(path);
                }
                (Verdict::Changed { linked }, _) => {
                    match (linked, now_is) {
                        (true, Look::File(st, _)) => {
                            self.files.insert(path.clone(), st);
                        }
                        _ => {
                            self.files.remove(path);
                        }
                    }
                    changed.push(path.clone());
                }
            }
        }
        self.cursor = paths.last().cloned();
        changed
    }
}

#[cfg(test)]
mod tests;
