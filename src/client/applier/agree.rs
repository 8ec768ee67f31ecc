//! Judging a local path against the index, for the conflict decisions of
//! [`crate::client::conflict`]: is a file still the synced version
//! ([`Applier::synced_hash`]), what is on disk ([`Applier::disk`]), and
//! "the server still holds what this device last synced"
//! ([`Applier::agrees`]), the test that lets a local change (a deletion, an
//! edit, a type change) wait for the push instead of being overwritten or
//! turned into a conflict copy.

use super::{Applied, Applier};
use crate::client::conflict::{Content, Disk};
use crate::client::detect::{judge, Verdict};
use crate::client::error::ClientError;
use crate::client::fsutil::{hash_file, Local, Stat};
use crate::client::index::EntryKind;
use crate::protocol::{ContentHash, WirePath};
use std::path::Path;

impl Applier<'_> {
    /// The content hash if the local file (whose stat is `stat` now) still
    /// holds what was synced, by the one rule ([`judge`]): a same-size edit
    /// that kept the old mtime is caught by its ctime or inode and hashed.
    pub(super) fn synced_hash(&self, path: &WirePath, stat: Stat) -> Option<ContentHash> {
        self.synced_hash_at(path, stat, &self.local(path))
    }

    /// [`Self::synced_hash`] for `path`'s file after it was moved to `at`
    /// (set aside before being deleted or replaced): the one rule that says
    /// whether a file is still the version the index says was synced.
    pub(super) fn synced_hash_at(
        &self,
        path: &WirePath,
        stat: Stat,
        at: &Path,
    ) -> Option<ContentHash> {
        let entry = self.index.get(path)?;
        let EntryKind::File { stat: old, hash } = entry.kind else {
            return None;
        };
        match judge(&old, &stat) {
            Verdict::Unchanged => Some(hash),
            Verdict::Changed => None,
            Verdict::MustHash => {
                let (now, _) = hash_file(at).ok()?;
                (now == hash).then_some(hash)
            }
        }
    }

    /// What the local regular file at `path` (whose stat is `stat` now)
    /// holds, against the server's file `server` and the index, in
    /// [`Content`]'s order of precedence. Hashed unless the index's record
    /// of it is certainly current ([`judge`] says `Unchanged`).
    ///
    /// # Errors
    /// The file cannot be read.
    pub(super) fn file_content(
        &self,
        path: &WirePath,
        stat: Stat,
        server: ContentHash,
    ) -> Result<Content, ClientError> {
        let indexed = self.index.get(path).and_then(|e| e.hash());
        let trusted = match self.index.get(path).map(|e| e.kind) {
            Some(EntryKind::File { stat: old, hash })
                if judge(&old, &stat) == Verdict::Unchanged =>
            {
                Some(hash)
            }
            _ => None,
        };
        let local = match trusted {
            Some(hash) => hash,
            None => {
                hash_file(&self.local(path))
                    .map_err(|e| ClientError::io(format!("read {path}"), e))?
                    .0
            }
        };
        Ok(if local == server {
            Content::Server
        } else if indexed == Some(local) {
            Content::Synced
        } else {
            Content::Edited
        })
    }

    /// What is at a local path, for the conflict decisions: a regular file
    /// is judged against the index ([`Self::synced_hash`]; hashed only when
    /// its stat cannot tell).
    pub(super) fn disk(&self, path: &WirePath, local: Local) -> Disk {
        match local {
            Local::Absent => Disk::Absent,
            Local::Dir => Disk::Dir,
            Local::Foreign => Disk::Foreign,
            Local::File(stat) if self.synced_hash(path, stat).is_some() => {
                Disk::File(Content::Synced)
            }
            Local::File(_) => Disk::File(Content::Edited),
        }
    }

    /// True when the server's entry at `path` (`server`: its content hash, or
    /// `None` for a directory) is what the index says was synced there. The
    /// version alone does not say so: a rename gives what it moves its own
    /// version, content another device changed included. When it holds, the
    /// index takes the server's `version` (the push of the local change is
    /// then based on it) and the path is marked for pushing.
    pub(super) fn agrees(
        &mut self,
        path: &WirePath,
        server: Option<ContentHash>,
        version: u64,
        out: &mut Applied,
    ) -> bool {
        let Some(mut entry) = self.index.get(path).copied() else {
            return false;
        };
        if entry.hash() != server {
            return false;
        }
        entry.version = version;
        self.index.insert(path.clone(), entry);
        out.dirty.insert(path.clone());
        true
    }
}
