//! The running server's look at a path before a push changes it
//! (PROTOCOL.md ): what was added, replaced or edited there by hand
//! since the journal last saw it is journaled first, as a change made in
//! the server's folder (as the start's comparison would, R-10.4), so the
//! push meets it as it meets another device's change and the rules of
//! §5.4 and §7.3 keep both sides (breaker24 F10, F4: a push destroyed the
//! hand file, or kept its bytes under the old version's hash). And the
//! guard that keeps a kept version (§14) from handing out other bytes
//! than its hash when a hand edit reached it through a shared inode (F9).
//!
//! The decision is [`decide`] (pure, unit-tested); the rest looks and
//! journals. A look is one `fstatat` after the walk to the parent; only a
//! file whose size or mtime differ from the journal is read.

use super::journal::Record;
use super::recover::Lost;
use super::tree::NodeKind;
use super::{StoreError, UserStore};
use crate::fsafe::{self, FsError};
use crate::protocol::{ContentHash, WirePath};
use rustix::fs::FileType;
use std::collections::BTreeSet;

/// What the journal lists at a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Listed {
    /// Nothing.
    Nothing,
    /// A directory.
    Dir,
    /// A file as journaled.
    File {
        size: u64,
        mtime_ns: i64,
        executable: bool,
    },
}

/// What a look (without following a symlink) finds at a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Seen {
    /// Nothing.
    Nothing,
    /// A directory.
    Dir,
    /// A regular file.
    File {
        size: u64,
        mtime_ns: i64,
        executable: bool,
    },
    /// A symlink or special file: never followed nor served.
    Other,
}

/// What to do about a path before a push changes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// The folder agrees with the journal, as far as a look tells (an
    /// edit that kept size and mtime is found at its fetch, R-10.6).
    Agree,
    /// A regular file not listed, or not at the journaled size and mtime:
    /// hash it and journal what differs.
    Hash,
    /// Only the executable bit differs: journal it (§15).
    Mode(bool),
    /// A directory the journal does not list: journal it made, and what
    /// is below it.
    NewDir,
    /// A listed file that the folder lacks, or where something else
    /// stands: lost, never journaled removed.
    Lost,
    /// A listed directory that is there: look below it when the push
    /// takes the whole subtree (RemoveDir, a directory's Rename).
    Below,
}

/// The step for a path the journal lists as `listed` where a look found
/// `seen`. A directory listed where the folder has none, or has a file, is
/// left to the next start (R-10.5 makes it again; what stands there is
/// never removed by a push, see `UserStore::foreign_at`).
pub(super) fn decide(listed: Listed, seen: Seen) -> Step {
    match (listed, seen) {
        (Listed::Nothing, Seen::File { .. }) => Step::Hash,
        (Listed::Nothing, Seen::Dir) => Step::NewDir,
        (Listed::Nothing, Seen::Nothing | Seen::Other) => Step::Agree,
        (
            Listed::File {
                size,
                mtime_ns,
                executable,
            },
            Seen::File {
                size: s,
                mtime_ns: m,
                executable: x,
            },
        ) => {
            if (size, mtime_ns) != (s, m) {
                Step::Hash
            } else if executable != x {
                Step::Mode(x)
            } else {
                Step::Agree
            }
        }
        (Listed::File { .. }, Seen::Nothing | Seen::Dir | Seen::Other) => Step::Lost,
        (Listed::Dir, Seen::Dir) => Step::Below,
        (Listed::Dir, Seen::Nothing | Seen::File { .. } | Seen::Other) => Step::Agree,
    }
}

/// Whose is what stands at a path (see `UserStore::standing`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Standing {
    /// Nothing is there.
    Absent,
    /// What the journal lists there.
    Ours,
    /// Something the journal does not list there.
    Foreign,
}

/// The look's type and stat as a [`Seen`].
fn seen_of(kind: FileType, st: &rustix::fs::Stat) -> Seen {
    match kind {
        FileType::Directory => Seen::Dir,
        FileType::RegularFile => Seen::File {
            size: st.st_size as u64,
            mtime_ns: fsafe::walk::stat_mtime_ns(st),
            executable: fsafe::is_executable_mode(st.st_mode),
        },
        _ => Seen::Other,
    }
}

impl UserStore {
    /// Before a push changes `path`: looks at it on disk and
    /// journals what a hand changed there since the journal last saw it,
    /// as changes made in the server's folder (no author): a file added,
    /// replaced or edited (size or mtime moved), a directory added (with
    /// what is below it), a bit flipped; a listed file gone is lost
    /// . With `deep` (a push that takes the whole subtree) the
    /// same for everything below a listed directory. An ancestor the
    /// journal does not list that is a file on disk is journaled too, so
    /// the push goes to a conflict directory instead of failing on it.
    /// Returns whether anything was journaled (the push then decides
    /// against the new state: a conflict copy, never an overwrite).
    ///
    /// # Errors
    /// A changed file cannot be read; the journal append failed.
    pub(super) fn catch_up(&mut self, path: &WirePath, deep: bool) -> Result<bool, StoreError> {
        let head = self.head;
        let mut ancestors = Vec::new();
        let mut up = path.parent();
        while let Some(a) = up {
            up = a.parent();
            ancestors.push(a);
        }
        for a in ancestors.iter().rev() {
            if self.tree.get(a).is_some() {
                continue;
            }
            match self.look(a)? {
                Some(Seen::Dir) => continue,
                Some(seen @ Seen::File { .. }) => {
                    self.catch_up_seen(a, seen, false)?;
                    return Ok(self.head != head);
                }
                _ => break,
            }
        }
        if let Some(seen) = self.look(path)? {
            self.catch_up_seen(path, seen, deep)?;
        }
        Ok(self.head != head)
    }

    /// What is at `path` on disk; `None` when the walk there meets a file
    /// or a symlink (the push refuses or places it on its own terms).
    fn look(&self, path: &WirePath) -> Result<Option<Seen>, StoreError> {
        match fsafe::lstat(&self.root, path) {
            Ok(None) => Ok(Some(Seen::Nothing)),
            Ok(Some((kind, st))) => Ok(Some(seen_of(kind, &st))),
            Err(FsError::NotADirectory(_) | FsError::Unsafe(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// What the journal lists at `path`.
    fn listed(&self, path: &WirePath) -> Listed {
        match self.tree.get(path).map(|n| n.kind) {
            None => Listed::Nothing,
            Some(NodeKind::File { size, mtime_ns, .. }) => Listed::File {
                size,
                mtime_ns,
                executable: self.tree.is_executable(path),
            },
            Some(_) => Listed::Dir,
        }
    }

    /// Journals what [`decide`] asks for `path`, where `seen` was found.
    fn catch_up_seen(&mut self, path: &WirePath, seen: Seen, deep: bool) -> Result<(), StoreError> {
        match decide(self.listed(path), seen) {
            Step::Agree => {}
            Step::Hash => {
                if let Seen::File {
                    size,
                    mtime_ns,
                    executable,
                } = seen
                {
                    self.hand_file(path, (size, mtime_ns), executable)?;
                }
            }
            Step::Mode(executable) => {
                let seq = self.next_seq();
                self.hand_record(Record::SetMode {
                    seq,
                    path: path.clone(),
                    executable,
                })?;
            }
            Step::NewDir => {
                let seq = self.next_seq();
                self.hand_record(Record::MakeDir {
                    seq,
                    path: path.clone(),
                })?;
                self.catch_up_below(path)?;
            }
            Step::Lost => self.mark_lost(path),
            Step::Below if deep => self.catch_up_below(path)?,
            Step::Below => {}
        }
        Ok(())
    }

    /// Hashes the file at `path` (size and mtime `stat`) and journals it
    /// if its content or mtime is not the journal's (as ), then its
    /// executable bit if that differs.
    fn hand_file(
        &mut self,
        path: &WirePath,
        stat: (u64, i64),
        executable: bool,
    ) -> Result<(), StoreError> {
        match self.live_file_fix(path, stat)? {
            (Some(record), _) => self.hand_record(record)?,
            (None, true) => {
                self.mark_lost(path);
                return Ok(());
            }
            (None, false) => return Ok(()),
        }
        if self.tree.is_executable(path) != executable {
            let seq = self.next_seq();
            self.hand_record(Record::SetMode {
                seq,
                path: path.clone(),
                executable,
            })?;
        }
        Ok(())
    }

    /// Every entry below the directory `path`, on disk and in the journal,
    /// compared as [`decide`] says; a listed file below it that the folder
    /// lacks is lost.
    fn catch_up_below(&mut self, path: &WirePath) -> Result<(), StoreError> {
        let mut found_paths = BTreeSet::new();
        for found in fsafe::walk::scan_below(&self.root, path)? {
            let seen = match found.file {
                None => Seen::Dir,
                Some((size, mtime_ns)) => Seen::File {
                    size,
                    mtime_ns,
                    executable: found.executable,
                },
            };
            // Below is walked already: no second walk for a directory.
            self.catch_up_seen(&found.path, seen, false)?;
            found_paths.insert(found.path);
        }
        let gone: Vec<WirePath> = self
            .tree
            .descendants(path)
            .filter(|(p, n)| !n.is_dir() && !found_paths.contains(*p))
            .map(|(p, _)| p.clone())
            .collect();
        for p in gone {
            self.mark_lost(&p);
        }
        Ok(())
    }

    /// Journals a change found on disk, with no author, and logs it.
    fn hand_record(&mut self, record: Record) -> Result<(), StoreError> {
        let label = self.label();
        let (what, path) = match &record {
            Record::PutFile { path, .. } if self.tree.get(path).is_some() => ("changed", path),
            Record::PutFile { path, .. } => ("added", path),
            Record::MakeDir { path, .. } => ("added (directory)", path),
            Record::SetMode { path, .. } => ("executable bit changed", path),
            _ => return self.record(record),
        };
        log::warn!(
            "{label}: {path} {what} outside the server while it runs, found before a push \
             changed it: journaled as a change made in the server's folder ({})",
            record.seq().unwrap_or(0)
        );
        self.record(record)
    }

    /// Keeps the listed file `path` as lost (missing, R-10.5) unless it is
    /// known lost already, and logs it once.
    fn mark_lost(&mut self, path: &WirePath) {
        if self.lost.contains_key(path) {
            return;
        }
        self.lost.insert(path.clone(), Lost::Missing);
        self.lost_news = true;
        log::warn!(
            "{}: {path} (v{}) is missing from the server's folder (removed or replaced outside \
             the server while it runs): not deleted on the devices, which keep their copies; \
             lost until a device puts it back",
            self.label(),
            self.tree.get(path).map_or(0, |n| n.version)
        );
    }

    /// Whose is what stands at `path` on disk: [`Standing::Foreign`] when
    /// it is another type than the journal lists, or stands at the name of
    /// a file lost as missing (a hand's directory where a file was, a file
    /// where a directory was, a file put there since). A push that removes
    /// or moves `path` leaves a foreign entry where it is, since it is not
    /// the server's, and journals it right after.
    pub(super) fn standing(&self, path: &WirePath) -> Result<Standing, StoreError> {
        let seen = match self.look(path)? {
            Some(seen) => seen,
            None => return Ok(Standing::Foreign),
        };
        let missing = self.lost_kind(path) == Some(false);
        Ok(match (self.listed(path), seen) {
            (_, Seen::Nothing) => Standing::Absent,
            (Listed::File { .. }, Seen::File { .. }) if !missing => Standing::Ours,
            (Listed::Dir, Seen::Dir) => Standing::Ours,
            _ => Standing::Foreign,
        })
    }

    /// After a hand edit of `path` in place was found (its content is
    /// `now`): if the journal's content of `path` is kept as a version
    /// whose object is this very inode (a file renamed away or whose bit
    /// was flipped stays one inode with its kept object), that object holds
    /// the hand's bytes now, not its hash: it is set aside, so no restore
    /// hands them out under that hash and the next keep of that content
    /// stores it anew (breaker24 F9, §14.1).
    pub(super) fn guard_kept(&self, path: &WirePath, now: ContentHash, meta: &std::fs::Metadata) {
        use std::os::unix::fs::MetadataExt;
        let Some(NodeKind::File { hash, .. }) = self.tree.get(path).map(|n| n.kind) else {
            return;
        };
        if hash == now
            || meta.nlink() < 2
            || !self.versions.is_linked_to(&hash, meta.dev(), meta.ino())
        {
            return;
        }
        let label = self.label();
        match self.versions.set_aside(&hash) {
            Ok(_) => log::warn!(
                "{label}: {path} was changed in place outside the server, and the kept content \
                 {hash} shared its inode: it no longer holds that content and is set aside \
                 (restoring a version with it is refused until a push keeps it again)"
            ),
            Err(e) => log::warn!("{label}: setting aside the damaged kept content {hash}: {e}"),
        }
    }
}

#[cfg(test)]
mod family_tests;
#[cfg(test)]
mod known_tests;
#[cfg(test)]
mod tests;
