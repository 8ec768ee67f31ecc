//! Files a pull reply deletes, kept out of the folder as chunk sources for
//! the reply's delta downloads (PROTOCOL.md ).
//!
//! Why: a reply lists its deletions first, so the applier used to
//! delete X before the download of Y looked for local chunks; after
//! `cp X Y; edit Y; rm X` (or `mv X Y; edit Y`) on another device, this
//! device then received Y whole (16.8 MB for a 16 MiB file with a 1 MiB
//! edit, tests/e2e_copy_edit_delete.rs) although it held all but the edit.
//! Now a synced file the reply deletes still leaves the folder at the same
//! step (moved into the temporary area, judged there, as every deletion,
//! [`Applier::remove_synced`]), but instead of being unlinked it is renamed
//! to `tmp/donor-<BLAKE3 hex>` and handed to the pull, which offers it to
//! the chunk index under its old path and removes it once the reply's
//! downloads are in (`PullJob::settle`, `PullJob::finish`). A donor has no
//! origin note, so a crash leaves nothing in the folder and `clear_tmp`
//! removes the donor at the next start.
//!
//! Bounded: only files a delta download could use (`wants_delta`), and at
//! most as many bytes as the reply's delta-sized files hold (the disk space
//! of the rest is given back at once, as before).

use super::Applier;
use crate::client::delta_fetch::wants_delta;
use crate::protocol::{ChangeEntry, ContentHash, EntryState, WirePath};
use std::fs;
use std::path::{Path, PathBuf};

/// A deleted file's content kept as a chunk source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Donor {
    /// The folder path it was deleted from (its name in the chunk index).
    pub path: WirePath,
    /// Its content's BLAKE3 (the synced content the index recorded).
    pub hash: ContentHash,
    /// Where it is now: `tmp/donor-<hash>`.
    pub at: PathBuf,
}

/// The donors of one reply and the bytes still allowed.
#[derive(Debug, Default)]
pub struct Donors {
    /// Bytes more that may be kept.
    budget: u64,
    /// Kept so far.
    kept: Vec<Donor>,
}

impl Donors {
    /// Donors for `entries` (one reply): the budget is the bytes of its
    /// files that may come as delta downloads.
    pub fn for_reply(entries: &[ChangeEntry]) -> Donors {
        let budget = entries
            .iter()
            .filter_map(|e| match e.state {
                EntryState::File { size, .. } if wants_delta(size) => Some(size),
                _ => None,
            })
            .fold(0u64, u64::saturating_add);
        Donors {
            budget,
            kept: Vec::new(),
        }
    }

    /// Takes the donors kept (the caller removes them when done).
    pub fn take(&mut self) -> Vec<Donor> {
        std::mem::take(&mut self.kept)
    }
}

/// Removes every donor's file (best effort: what a failure leaves in the
/// temporary area goes at the next start).
pub fn remove_donors(donors: &mut Vec<Donor>) {
    for donor in donors.drain(..) {
        if let Err(e) = fs::remove_file(&donor.at) {
            log::debug!("removing {}: {e}", donor.at.display());
        }
        if let Some(dir) = donor.at.parent() {
            crate::client::staging::tidy(dir);
        }
    }
}

impl Applier<'_> {
    /// Keeps the synced file at `aside` (deleted from `path`, content
    /// `hash`, `size` bytes) as a donor when this reply may use it and the
    /// budget allows; returns whether it did (else the caller deletes it).
    pub(super) fn keep_as_donor(
        &mut self,
        path: &WirePath,
        hash: ContentHash,
        size: u64,
        aside: &Path,
    ) -> bool {
        let Some(donors) = self.donors.as_mut() else {
            return false;
        };
        if !wants_delta(size) || size > donors.budget || donors.kept.iter().any(|d| d.hash == hash)
        {
            return false;
        }
        // Beside `aside`: the temporary area, or the staging directory of
        // the drive the file was on; never across mounts.
        let at = aside
            .parent()
            .unwrap_or(self.tmp)
            .join(format!("donor-{hash}"));
        if let Err(e) = fs::rename(aside, &at) {
            log::debug!("keeping {path} as a chunk source: {e}");
            return false;
        }
        donors.budget -= size;
        log::debug!("deleted {path}; its content stays a chunk source until the pull ends");
        donors.kept.push(Donor {
            path: path.clone(),
            hash,
            at,
        });
        true
    }
}

#[cfg(test)]
mod tests;
