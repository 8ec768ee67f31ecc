//! The push round's side of file systems mounted inside the folder
//! (PROTOCOL.md, [`crate::client::mounts`]): removals of files that
//! are not there right now are taken out of the round, and files that are
//! another file system's copies are not pushed over the server's versions.
//!
//! - A file gone with the file system that held it (unmounted, not
//!   mounted yet): its removal is parked, planned again every round, until
//!   the file system is back.
//! - A file missing because another file system is at its place (another
//!   drive swapped in, an empty one mounted anew, one mounted over its
//!   directory): the file is the server's, and the drive joins the folder.
//!   Its record is dropped and held back at its version, so the next pull
//!   downloads it onto the drive.
//! - A file there on another file system, with other content than synced
//!   (an older copy on a backup drive, breaker18 F10): the join rule (README
//!   "where they differ from the server's version both are kept"). The
//!   drive's file moves to a conflict name next to it (same directory, same
//!   file system: a rename) and goes up as a new file; the path is held back
//!   so the pull puts the server's version there. The server's version stays
//!   the file, as when a folder joins and the server names the joining
//!   device's different file its conflict copy; the stale copy never
//!   replaces it (uploading it as an edit did, and uploading it as a new
//!   file would replace it where this device wrote the server's version
//!   itself, R-5.4.5).

use super::Session;
use crate::client::aside::set_aside_as_copy;
use crate::client::index::EntryKind;
use crate::client::mounts::{dev_name, top_of, Judge, Parked};
use crate::client::scanner::{Op, Scope};
use crate::protocol::WirePath;
use std::collections::BTreeSet;
use std::time::Instant;

/// What one round's judge decided for one planned push.
enum Verdict {
    /// Not pushed now; planned again with every round (the paths).
    Park(Vec<WirePath>),
    /// The indexed entries at and below the path are the server's on a
    /// file system that joined: refetched onto it (and the second path,
    /// a rename's new name, compared again: a new file now).
    Refetch(WirePath, Option<WirePath>),
    /// The file at the path is another file system's copy: kept as a
    /// conflict copy, the server's version refetched.
    KeepBoth(WirePath),
}

impl Session<'_> {
    /// Takes out of `ops` what a file system mounted inside the folder
    /// explains (see the module): parks, refetches, keeps both; warns once
    /// per mount point, and says when a gone one is back. Runs before the
    /// round records refreshed files, whose old records are the evidence of
    /// a file system mounted again under another device number.
    pub(super) fn settle_mounts(&mut self, ops: &mut Vec<Op>) {
        let known = self.push.renumbered.iter().map(|(a, b)| (*a, *b));
        let mut judge = Judge::with_renumbered(&self.root, &self.index, known);
        let mut verdicts = Vec::new();
        let mut gone = BTreeSet::new();
        let mut replaced = BTreeSet::new();
        let pulling = self.pull.job.is_some();
        ops.retain(|op| {
            let (point, keep) = match op {
                Op::Delete { path, .. } => (judge.gone_file(path), None),
                Op::RemoveDir { path } => (judge.gone_dir(path), None),
                Op::Rename { from, .. } => {
                    (judge.gone_file(from).or_else(|| judge.gone_dir(from)), None)
                }
                Op::Upload {
                    path, base, stat, ..
                } if *base > 0 && judge.joined_file(path, stat.dev) => {
                    let was = match self.index.get(path).map(|e| e.kind) {
                        Some(EntryKind::File { stat, .. }) => stat.dev,
                        _ => 0,
                    };
                    let parked = Parked {
                        point: judge.mount_of(path).unwrap_or_else(|| top_of(path)),
                        hidden: true,
                        now: stat.dev,
                        was,
                    };
                    (Some(parked), Some(path.clone()))
                }
                _ => (None, None),
            };
            let Some(point) = point else {
                return true;
            };
            let verdict = match (keep, op) {
                (Some(path), _) if !pulling => Verdict::KeepBoth(path),
                (Some(path), _) => Verdict::Park(vec![path]),
                (None, Op::Rename { from, to, .. }) if point.hidden && !pulling => {
                    Verdict::Refetch(from.clone(), Some(to.clone()))
                }
                (None, Op::Rename { from, to, .. }) => {
                    Verdict::Park(vec![from.clone(), to.clone()])
                }
                (None, op) if point.hidden && !pulling => Verdict::Refetch(op.path().clone(), None),
                (None, op) => Verdict::Park(vec![op.path().clone()]),
            };
            if point.hidden {
                replaced.insert(point);
            } else {
                gone.insert(point);
            }
            verdicts.push(verdict);
            false
        });
        self.push.renumbered.extend(judge.renumbering());
        let mut parked = Scope::default();
        for verdict in verdicts {
            match verdict {
                Verdict::Park(paths) => paths.into_iter().for_each(|p| parked.add(p)),
                Verdict::Refetch(path, then) => {
                    self.refetch_hidden(&path);
                    if let Some(then) = then {
                        self.mark(then, Instant::now());
                    }
                }
                Verdict::KeepBoth(path) => {
                    if !self.keep_both(&path) {
                        parked.add(path);
                    }
                }
            }
        }
        self.say_mounts(gone, replaced);
        self.push.parked = parked;
    }

    /// The warnings: once per gone mount point (and when it is back), once
    /// per file system found in another's place.
    fn say_mounts(&mut self, gone: BTreeSet<Parked>, replaced: BTreeSet<Parked>) {
        let points: BTreeSet<WirePath> = replaced.iter().map(|p| p.point.clone()).collect();
        for parked in replaced {
            if self.push.replaced_said.contains(&parked) {
                continue;
            }
            let point = &parked.point;
            let (now, was) = (dev_name(parked.now), dev_name(parked.was));
            log::warn!(
                "{point}: another file system is mounted here (device {now}, was {was}); not syncing deletions or edits from it: keeping the server's files, downloading them onto it, and keeping its own different files as conflict copies"
            );
            self.push.replaced_said.insert(parked);
        }
        for parked in gone.difference(&self.push.gone_mounts) {
            let point = &parked.point;
            log::warn!(
                "{point}: the file system mounted here is gone; not syncing deletions under it until it is back"
            );
        }
        for parked in self.push.gone_mounts.difference(&gone) {
            let point = &parked.point;
            // Another file system in its place is not the gone one back
            // (said above).
            if !points.contains(point) {
                log::info!("{point}: the file system mounted here is back");
            }
        }
        self.push.gone_mounts = gone;
    }

    /// The file at `path` is another file system's copy (F10): moved to a
    /// conflict name next to it (pushed as a new file), the path's record
    /// dropped and held back so the pull downloads the server's version in
    /// its place. False when it could not be moved (it stays, parked).
    fn keep_both(&mut self, path: &WirePath) -> bool {
        match set_aside_as_copy(&self.root, &self.index, path, self.identity.client) {
            Ok(copy) => {
                log::warn!(
                    "{path}: this copy came with another file system and differs from the synced version: kept as {copy}, the server's version downloaded in its place"
                );
                self.refetch_hidden(path);
                self.mark(copy, Instant::now());
                true
            }
            Err(e) => {
                log::warn!(
                    "{path}: this copy came with another file system and differs from the synced version, and could not be set aside ({e}); not pushing it"
                );
                false
            }
        }
    }

    /// The indexed entries at and below `path`, hidden by a file system
    /// mounted over them: no longer this device's (their removal is never
    /// pushed), held back at their versions, so the next pull brings the
    /// server's back onto the mounted file system (`retry_held_back`
    /// rewinds the cursor to them, the applier downloads them).
    fn refetch_hidden(&mut self, path: &WirePath) {
        let entries: Vec<(WirePath, u64)> = self
            .index
            .subtree(Some(path))
            .map(|(p, e)| (p.clone(), e.version))
            .collect();
        for (p, version) in entries {
            self.index.remove(&p);
            self.index.hold_back(&p, version);
        }
        self.pull.wanted = true;
    }
}
