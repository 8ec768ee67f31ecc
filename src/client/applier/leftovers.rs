//! Files the applier moved into the temporary area and had not settled when
//! the client stopped (a crash, SIGKILL): a file set aside before a deletion
//! ([`Applier::remove_synced`]) or swapped out by a download's exchange
//! ([`Applier::place`]). Each such move is preceded by a note of the folder
//! path the file comes from, `NAME.origin` beside it, removed once the file
//! is settled. At the next start [`Applier::recover_leftovers`] settles what
//! a note names: exactly the synced version the index records is deleted
//! (the server holds it); anything else goes back to its path, or becomes a
//! conflict copy beside it when the path is taken. `StateDir::open` keeps
//! noted files and clears the rest of the temporary area.
//!
//! A drive mounted inside the folder has its own staging directory for
//! these moves (`crate::client::staging`, R-5.6.12); the start settles the
//! noted files there too, then removes the rest and the directory.
//!
//! The note is written, not synced: it covers a process crash (the page
//! cache survives it), not a power loss.

use super::{Applied, Applier};
use crate::client::error::ClientError;
use crate::client::fsutil::{ensure_parent, hash_file, Stat};
use crate::client::staging;
use crate::protocol::{ContentHash, WirePath};
use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Suffix of the note beside a file in the temporary area.
pub const ORIGIN_SUFFIX: &str = ".origin";

/// Where the note for the file at `at` lives.
pub fn origin_note(at: &Path) -> PathBuf {
    let mut name = OsString::from(at.as_os_str());
    name.push(ORIGIN_SUFFIX);
    PathBuf::from(name)
}

/// What becomes of a file left in the temporary area.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leftover {
    /// The server's content a download brought (its note names that
    /// content): deleted, the repeated pull places it again.
    Discard,
    /// Exactly what the index says was synced at its path, set aside for a
    /// deletion (a file the server removed or moved, perhaps stashed for
    /// its new path): back to its path if that is free, so the repeated
    /// pull, which removes it again, renames it where the server now has
    /// it instead of downloading it (breaker23 F2); deleted if the path is
    /// taken (the server holds it).
    Restore,
    /// Anything else (an edit, a file the index does not know, not a regular
    /// file): it goes back to its path, or beside it as a conflict copy.
    PutBack,
}

/// Decides [`Leftover`]: `synced` is whether the file is the version the
/// index records for its path, `servers` whether it is the content its
/// note names as the server's.
pub fn on_leftover(synced: bool, servers: bool) -> Leftover {
    match (synced, servers) {
        (_, true) => Leftover::Discard,
        (true, false) => Leftover::Restore,
        (false, false) => Leftover::PutBack,
    }
}

impl Applier<'_> {
    /// Writes the note that the file about to be moved to `at` comes from
    /// `path`. `server`: content that may be dropped if found at `at` (a
    /// download noted before its exchange still holds the server's version,
    /// which the repeated pull brings again). Note text: the path, then
    /// optionally a line with that content's BLAKE3 in hex.
    ///
    /// # Errors
    /// The note cannot be written (the move must then not be made).
    pub(super) fn note_origin(
        &self,
        at: &Path,
        path: &WirePath,
        server: Option<ContentHash>,
    ) -> Result<(), ClientError> {
        let note = origin_note(at);
        let text = match server {
            Some(hash) => format!("{path}\n{hash}"),
            None => path.as_str().to_owned(),
        };
        fs::write(&note, text).map_err(|e| ClientError::io(format!("write {}", note.display()), e))
    }

    /// Removes the note for `at` once its file is settled (best effort: a
    /// stale note whose file is gone is removed at the next start).
    pub(super) fn forget_origin(at: &Path) {
        let _ = fs::remove_file(origin_note(at));
    }

    /// Settles every noted file in the temporary area (see the module
    /// comment). Paths put back or kept as conflict copies are added to
    /// `out.dirty`, so they are compared and pushed.
    ///
    /// # Errors
    /// Listing the temporary area. A leftover that cannot be settled is
    /// logged and kept, with its note, for the next start.
    pub fn recover_leftovers(&mut self, out: &mut Applied) -> Result<(), ClientError> {
        self.recover_in(self.tmp, out)?;
        // The staging directories of drives mounted inside the folder
        // settled the same way, then emptied and removed.
        let root = self
            .root
            .canonicalize()
            .unwrap_or_else(|_| self.root.to_path_buf());
        for dir in staging::drive_stagings(&root) {
            let settled = self
                .recover_in(&dir, out)
                .and_then(|()| crate::client::state::clear_tmp(&dir));
            match settled {
                Ok(()) => staging::tidy(&dir),
                Err(e) => log::warn!("left {} as it is: {e}", dir.display()),
            }
        }
        Ok(())
    }

    /// [`Self::recover_leftovers`] for one directory (the temporary area,
    /// or a drive's staging directory).
    fn recover_in(&mut self, dir: &Path, out: &mut Applied) -> Result<(), ClientError> {
        let listing =
            fs::read_dir(dir).map_err(|e| ClientError::io(format!("list {}", dir.display()), e))?;
        let notes: Vec<PathBuf> = listing
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.as_os_str().to_string_lossy().ends_with(ORIGIN_SUFFIX))
            .collect();
        for note in notes {
            let text = note.as_os_str().to_string_lossy();
            let at = PathBuf::from(&text[..text.len() - ORIGIN_SUFFIX.len()]);
            let text = fs::read_to_string(&note).unwrap_or_default();
            let (path, server) = text.split_once('\n').unwrap_or((text.as_str(), ""));
            let path = WirePath::new(path).ok();
            let settled = match (fs::symlink_metadata(&at), path) {
                (Err(e), _) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                (Ok(meta), Some(path)) => self.recover_one(&path, &at, &meta, server, out),
                (found, _) => Err(ClientError::UnsafePath(format!(
                    "its origin is unknown ({found:?})"
                ))),
            };
            match settled {
                Ok(()) => {
                    let _ = fs::remove_file(&note);
                }
                // Kept with its note: tried again at the next start.
                Err(e) => log::warn!("left {} in the temporary area: {e}", at.display()),
            }
        }
        Ok(())
    }

    /// Moves the synced version at `at` back to `path` if nothing is there
    /// (never over anything); false if the path is taken.
    fn restore_synced(&self, path: &WirePath, at: &Path) -> io::Result<bool> {
        match crate::client::rename::rename_noreplace(at, &self.local(path)) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Settles the leftover at `at` from `path`; `server` is the hex hash
    /// of content that may be dropped (empty: none).
    fn recover_one(
        &mut self,
        path: &WirePath,
        at: &Path,
        meta: &fs::Metadata,
        server: &str,
        out: &mut Applied,
    ) -> Result<(), ClientError> {
        let is_file = meta.file_type().is_file();
        let synced = is_file && self.synced_hash_at(path, Stat::of(meta), at).is_some();
        let servers = is_file
            && !server.is_empty()
            && hash_file(at).is_ok_and(|(hash, _)| hash.to_string() == server.trim());
        let discard = |at: &Path| {
            fs::remove_file(at).map_err(|e| ClientError::io(format!("delete {}", at.display()), e))
        };
        match on_leftover(synced, servers) {
            Leftover::Discard => discard(at),
            Leftover::Restore => {
                let back = ensure_parent(self.root, path).and_then(|()| {
                    self.restore_synced(path, at)
                        .map_err(|e| ClientError::io("put back", e))
                });
                match back {
                    Ok(true) => {
                        log::debug!(
                            "put {path} back from an interrupted step (the synced version)"
                        );
                        Ok(())
                    }
                    // Taken, or no way back: the server holds this version.
                    _ => discard(at),
                }
            }
            Leftover::PutBack => {
                ensure_parent(self.root, path)?;
                let kept = self.put_back(path, at)?;
                log::warn!(
                    "recovered {path} from an interrupted step{}",
                    kept.as_ref().map_or(String::new(), |k| format!(
                        " (its path was taken: kept as {k})"
                    ))
                );
                out.dirty.insert(kept.unwrap_or_else(|| path.clone()));
                Ok(())
            }
        }
    }
}
