//! Carries out [`whole_dirs::plan`]: each directory another device renamed
//! is renamed here with one `renameat2` (PROTOCOL.md ), before the
//! reply's deletions, so whatever it holds that is not synced travels with
//! it and its mode stays.
//!
//! After each rename the index is rebased (the synced entries are at the
//! new path, with their old versions and stats), the reply's deletions at
//! or below the new path are dropped (they are about what was there before,
//! which moved away first), and every moved entry the reply does not list
//! is deleted as the deletion of the old path would have deleted it. The
//! rest of the reply is then applied as usual: a file listed with its
//! indexed content is recorded (the same inode, judged unchanged), one
//! edited elsewhere is downloaded over it, one changed here is pushed.
//! A move that cannot be made (the target is in the way, the source is a
//! mount point or not the synced directory, a cycle longer than a swap)
//! falls back to the per-file steps of.

use super::whole_dirs::{plan, DirMove, Reply};
use super::{Applied, Applier};
use crate::client::error::ClientError;
use crate::client::fsutil::{check_path, ensure_parent, reach_held, Local};
use crate::client::index::EntryKind;
use crate::client::rename::{exchange, rename_noreplace};
use crate::protocol::{EntryState, WirePath};
use std::collections::{BTreeMap, BTreeSet};

/// How many synced files below a source are looked at to tell that the
/// local directory is the synced one (the same inode as indexed).
const IDENTITY_PROBES: usize = 64;

impl Applier<'_> {
    /// Renames the directories of the reply that moved whole
    /// ([`whole_dirs::plan`]); `listed` is the final state of each path the
    /// reply lists as a file or directory, `deletions` the deletions about
    /// to be applied. Returns the deletions to apply instead.
    ///
    /// # Errors
    /// The removal log cannot be written.
    pub(super) fn move_whole_dirs(
        &mut self,
        listed: BTreeMap<WirePath, EntryState>,
        deletions: Vec<(WirePath, u64)>,
        out: &mut Applied,
    ) -> Result<Vec<(WirePath, u64)>, ClientError> {
        if deletions.is_empty() {
            return Ok(deletions);
        }
        let mut reply = Reply {
            listed,
            deleted: BTreeMap::new(),
            refused: BTreeSet::new(),
        };
        for (path, version) in &deletions {
            let v = reply.deleted.entry(path.clone()).or_insert(*version);
            *v = (*v).max(*version);
        }
        let mut added: Vec<(WirePath, u64)> = Vec::new();
        // Each round moves one directory out of the index's way or refuses
        // one source: bounded by the directories the index holds.
        let rounds = self.index.len() + 1;
        for _ in 0..rounds {
            let moves = plan(self.index, &reply);
            let Some(step) = self.next_step(&moves)? else {
                break;
            };
            let (done, moved) = match step {
                Step::Rename(m) => (self.rename_whole(&m)?, vec![m]),
                Step::Swap(a, b) => (self.swap_whole(&a, &b)?, vec![a, b]),
            };
            if !done {
                reply.refused.extend(moved.into_iter().map(|m| m.from));
                continue;
            }
            for m in &moved {
                reply.deleted.retain(|p, _| !p.is_within(&m.to));
            }
            for m in &moved {
                for (p, v) in unlisted_below(self, &reply, m) {
                    reply.deleted.insert(p.clone(), v);
                    added.push((p, v));
                }
                out.changed += 1;
            }
        }
        let mut kept: Vec<(WirePath, u64)> = deletions
            .into_iter()
            .filter(|(p, _)| reply.deleted.contains_key(p))
            .collect();
        kept.extend(
            added
                .into_iter()
                .filter(|(p, _)| reply.deleted.contains_key(p)),
        );
        Ok(kept)
    }

    /// The first move of `moves` that can be made now: a swap of two
    /// directories each moving to the other, or a rename whose target is
    /// free (nothing on disk, nothing indexed) and whose source is the
    /// synced directory ([`Self::is_synced_dir`]).
    fn next_step(&self, moves: &[DirMove]) -> Result<Option<Step>, ClientError> {
        for m in moves {
            if !self.is_synced_dir(&m.from)? {
                continue;
            }
            let back = moves.iter().find(|n| n.from == m.to && n.to == m.from);
            if let Some(back) = back {
                if self.is_synced_dir(&back.from)? {
                    return Ok(Some(Step::Swap(m.clone(), back.clone())));
                }
                continue;
            }
            let free = self.index.subtree(Some(&m.to)).next().is_none()
                && check_path(self.root, &m.to)? == Local::Absent;
            if free {
                return Ok(Some(Step::Rename(m.clone())));
            }
        }
        Ok(None)
    }

    /// Whether the local directory at `dir` is the one the index records:
    /// a real directory there (not a file, symlink or special file), and,
    /// when it holds synced files, one of the first [`IDENTITY_PROBES`]
    /// of them is there as the very file indexed (same inode). A directory
    /// of the same name made here since (its files all new) is not moved.
    fn is_synced_dir(&self, dir: &WirePath) -> Result<bool, ClientError> {
        if check_path(self.root, dir)? != Local::Dir {
            return Ok(false);
        }
        let files: Vec<(WirePath, crate::client::fsutil::Stat)> = self
            .index
            .subtree(Some(dir))
            .filter_map(|(p, e)| match e.kind {
                EntryKind::File { stat, .. } => Some((p.clone(), stat)),
                EntryKind::Dir => None,
            })
            .take(IDENTITY_PROBES)
            .collect();
        if files.is_empty() {
            return Ok(true);
        }
        for (p, stat) in files {
            if let Local::File(now) = check_path(self.root, &p)? {
                if now.same_inode(&stat) {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// Logs the removal of every synced file below `dir`: a
    /// crash between the rename and the index's save then never takes the
    /// old paths, missing, for deletions made here (nor, with
    /// [`Self::log_moving_in`], the new ones for files added here,
    ///
    fn log_moved_out(&self, dir: &WirePath) -> Result<(), ClientError> {
        let files: Vec<WirePath> = self
            .index
            .subtree(Some(dir))
            .filter(|(_, e)| e.hash().is_some())
            .map(|(p, _)| p.clone())
            .collect();
        for p in files {
            self.log_removal(&p, &self.local(&p))?;
        }
        Ok(())
    }

    /// Renames `m.from` to `m.to` (one `renameat2` with `RENAME_NOREPLACE`,
    /// through handles on both parents) and rebases the index. Returns
    /// false, having changed nothing in the index, when the rename is
    /// refused (logged; the per-file steps then apply).
    fn rename_whole(&mut self, m: &DirMove) -> Result<bool, ClientError> {
        if let Err(e) = ensure_parent(self.root, &m.to) {
            log::info!(
                "not renaming {} to {} whole: {e}; its files are moved one by one",
                m.from,
                m.to
            );
            return Ok(false);
        }
        self.log_moved_out(&m.from)?;
        self.log_moving_in(&m.from, &m.to)?;
        let (from, to) = (reach_held(self.root, &m.from), reach_held(self.root, &m.to));
        self.before_step_at(&m.from);
        if let Err(e) = rename_noreplace(&from, &to) {
            log::info!(
                "not renaming {} to {} whole: {e}; its files are moved one by one",
                m.from,
                m.to
            );
            return Ok(false);
        }
        if !to.still_in(self.root, &m.to)? {
            // The target's parent left the folder meanwhile (the user
            // moved it): the directory goes back where it was.
            if rename_noreplace(&to, &from).is_ok() {
                return Ok(false);
            }
        }
        self.index.rebase(&m.from, &m.to, None);
        log::info!(
            "renamed directory {} to {} as the server has it (moved whole, R-5.2.20)",
            m.from,
            m.to
        );
        Ok(true)
    }

    /// Swaps the directories of two moves each onto the other (one
    /// `RENAME_EXCHANGE`) and swaps their entries in the index. Returns
    /// false when the file system cannot exchange or refuses.
    fn swap_whole(&mut self, a: &DirMove, b: &DirMove) -> Result<bool, ClientError> {
        self.log_moved_out(&a.from)?;
        self.log_moved_out(&b.from)?;
        self.log_moving_in(&a.from, &a.to)?;
        self.log_moving_in(&b.from, &b.to)?;
        let (pa, pb) = (
            reach_held(self.root, &a.from),
            reach_held(self.root, &b.from),
        );
        self.before_step_at(&a.from);
        match exchange(&pa, &pb) {
            Ok(true) => {}
            Ok(false) | Err(_) => {
                log::info!(
                    "not swapping {} and {} whole: their files are moved one by one",
                    a.from,
                    b.from
                );
                return Ok(false);
            }
        }
        let from_a = self.index.remove_subtree(&a.from);
        let from_b = self.index.remove_subtree(&b.from);
        for (path, entry) in from_a {
            if let Some(moved) = path.rebase(&a.from, &a.to) {
                self.index.insert(moved, entry);
            }
        }
        for (path, entry) in from_b {
            if let Some(moved) = path.rebase(&b.from, &b.to) {
                self.index.insert(moved, entry);
            }
        }
        log::info!(
            "swapped directories {} and {} as the server has them (moved whole, R-5.2.20)",
            a.from,
            b.from
        );
        Ok(true)
    }
}

/// One step of [`Applier::move_whole_dirs`].
enum Step {
    Rename(DirMove),
    Swap(DirMove, DirMove),
}

/// The moved entries below `m.to` the reply does not list as a file or a
/// directory (the top-most of them, with none listed below): the server
/// deleted them (or moved them elsewhere) with the rename, at its version.
fn unlisted_below(applier: &Applier<'_>, reply: &Reply, m: &DirMove) -> Vec<(WirePath, u64)> {
    let below: Vec<WirePath> = applier
        .index
        .subtree(Some(&m.to))
        .map(|(p, _)| p.clone())
        .filter(|p| !reply.listed.contains_key(p) && !reply.lists_below(p))
        .collect();
    WirePath::top_most(below)
        .into_iter()
        .map(|p| (p, m.version))
        .collect()
}
