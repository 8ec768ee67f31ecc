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
use crate::client::mounts::ident::{self, FsIdent};
use crate::client::mounts::{dev_name, top_of, Judge, Parked, Surveyed, Why};
use crate::client::scanner::{Op, Scope};
use crate::protocol::WirePath;
use std::collections::{BTreeMap, BTreeSet};
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

/// What becomes of the recorded identities after a full comparison
/// (R-5.6.9, [`ident`]): the file system now at each device number is
/// recorded when it is the recorded one (a new mount ID), when none was
/// recorded, or, when it is another one, once every file recorded on the
/// number was judged this round and none had to wait (`waiting`: the
/// recorded devices of parked files) — from then on its files are its own.
/// Devices no file is recorded on any more are dropped (`live`). Returns
/// the new records and the devices settled as another file system.
pub(super) fn next_idents(
    recorded: &BTreeMap<u64, FsIdent>,
    surveyed: &[(u64, Surveyed)],
    waiting: &BTreeSet<u64>,
    live: &BTreeSet<u64>,
) -> (BTreeMap<u64, FsIdent>, Vec<u64>) {
    let mut next: BTreeMap<u64, FsIdent> = recorded
        .iter()
        .filter(|(dev, _)| live.contains(dev))
        .map(|(dev, id)| (*dev, id.clone()))
        .collect();
    let mut settled = Vec::new();
    for (dev, found) in surveyed {
        match found {
            Surveyed::New(id) | Surveyed::Same(id) => {
                next.insert(*dev, id.clone());
            }
            Surveyed::Other(id) if !waiting.contains(dev) => {
                next.insert(*dev, id.clone());
                settled.push(*dev);
            }
            Surveyed::Other(_) => {}
        }
    }
    (next, settled)
}

impl Session<'_> {
    /// Takes out of `ops` what a file system mounted inside the folder
    /// explains (see the module): parks, refetches, keeps both; warns once
    /// per mount point, and says when a gone one is back. Runs before the
    /// round records refreshed files, whose old records are the evidence of
    /// a file system mounted again under another device number. After a
    /// comparison of the whole folder (`full`), records the identities of
    /// the file systems the files are on ([`next_idents`]).
    pub(super) fn settle_mounts(&mut self, ops: &mut Vec<Op>, full: bool) {
        let known: Vec<(u64, u64)> = self.push.renumbered.iter().map(|(a, b)| (*a, *b)).collect();
        let idents = std::mem::take(&mut self.push.idents);
        let mut judge = Judge::with_renumbered(&self.root, &self.index, &idents, known)
            .with_older(self.push.older.iter().map(|(k, v)| (*k, *v)));
        let mut verdicts = Vec::new();
        let mut gone = BTreeSet::new();
        let mut replaced = BTreeSet::new();
        let mut waiting = BTreeSet::new();
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
                } if *base > 0 => match judge.joined_file(path, stat) {
                    Some(why) => {
                        let was = match self.index.get(path).map(|e| e.kind) {
                            Some(EntryKind::File { stat, .. }) => stat.dev,
                            _ => 0,
                        };
                        let parked = Parked {
                            point: judge.mount_of(path).unwrap_or_else(|| top_of(path)),
                            why,
                            now: stat.dev,
                            was,
                        };
                        (Some(parked), Some(path.clone()))
                    }
                    None => (None, None),
                },
                _ => (None, None),
            };
            let Some(point) = point else {
                return true;
            };
            let hidden = point.hidden();
            let verdict = match (keep, op) {
                (Some(path), _) if !pulling => Verdict::KeepBoth(path),
                (Some(path), _) => Verdict::Park(vec![path]),
                (None, Op::Rename { from, to, .. }) if hidden && !pulling => {
                    Verdict::Refetch(from.clone(), Some(to.clone()))
                }
                (None, Op::Rename { from, to, .. }) => {
                    Verdict::Park(vec![from.clone(), to.clone()])
                }
                (None, op) if hidden && !pulling => Verdict::Refetch(op.path().clone(), None),
                (None, op) => Verdict::Park(vec![op.path().clone()]),
            };
            if matches!(verdict, Verdict::Park(_)) {
                waiting.insert(point.was);
            }
            match &verdict {
                Verdict::Park(_) => {}
                Verdict::Refetch(path, _) => log::info!(
                    "{path}: missing {}; not a deletion: the server's version is downloaded in its place",
                    match point.why {
                        Why::Older => "from an older state of the file system holding it (something on it is older than what was synced from it)",
                        _ => "because another file system is at its place",
                    }
                ),
                Verdict::KeepBoth(_) => {}
            }
            if hidden {
                replaced.insert(point);
            } else {
                gone.insert(point);
            }
            verdicts.push(verdict);
            false
        });
        self.push.renumbered.extend(judge.renumbering());
        self.push.older.extend(judge.older_verdicts());
        let surveyed = if full { judge.survey() } else { Vec::new() };
        drop(judge);
        let mut settled = Vec::new();
        self.push.idents = idents;
        if full {
            let live: BTreeSet<u64> = self
                .index
                .iter()
                .filter_map(|(_, e)| match e.kind {
                    EntryKind::File { stat, .. } if stat.dev != 0 => Some(stat.dev),
                    _ => None,
                })
                .collect();
            let (next, other) = next_idents(&self.push.idents, &surveyed, &waiting, &live);
            if next != self.push.idents {
                settled = other;
                self.push.idents = next;
                self.push.idents_changed = true;
            }
        }
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
        for dev in &settled {
            log::info!(
                "the file system now at device {} is recorded as the one its files are on",
                dev_name(*dev)
            );
        }
        self.save_idents(!settled.is_empty());
        self.say_mounts(gone, replaced);
        self.push.parked = parked;
    }

    /// Records the identity of each file system files are recorded on that
    /// has none yet (files downloaded onto a drive since the last full
    /// comparison, a first run), so that a swap before the next full
    /// comparison is told apart. Called once the index is saved:
    /// the file system there now is the one the saved records were made on.
    pub(super) fn record_new_idents(&mut self) {
        let mut judge = Judge::new(&self.root, &self.index, &self.push.idents);
        let new: Vec<(u64, FsIdent)> = judge
            .survey()
            .into_iter()
            .filter_map(|(dev, found)| match found {
                Surveyed::New(id) => Some((dev, id)),
                _ => None,
            })
            .collect();
        if new.is_empty() {
            return;
        }
        self.push.idents.extend(new);
        self.push.idents_changed = true;
        self.save_idents(false);
    }

    /// Writes the recorded identities when they changed. When a device
    /// number was settled as another file system (`after_index`), the
    /// index, whose records of the old one's files this round dropped, is
    /// written first: a sidecar naming the new file system beside an index
    /// still holding the old one's records would take their absence for
    /// removals after a crash.
    fn save_idents(&mut self, after_index: bool) {
        if !self.push.idents_changed {
            return;
        }
        if after_index {
            if let Err(e) = self.index.save(&self.state.index_file()) {
                log::warn!("saving the index: {e}");
                return;
            }
        }
        match ident::save(self.state.path(), &self.push.idents) {
            Ok(()) => self.push.idents_changed = false,
            Err(e) => log::warn!("saving {}: {e}", ident::MOUNTS_FILE),
        }
    }

    /// The warnings: once per gone mount point (and when it is back), once
    /// per file system found in another's place (not once per device its
    /// files were recorded on), once per older state.
    fn say_mounts(&mut self, gone: BTreeSet<Parked>, replaced: BTreeSet<Parked>) {
        let points: BTreeSet<WirePath> = replaced.iter().map(|p| p.point.clone()).collect();
        for parked in replaced {
            let key = (parked.point.clone(), parked.why, parked.now);
            if !self.push.replaced_said.insert(key) {
                continue;
            }
            let point = &parked.point;
            let (now, was) = (dev_name(parked.now), dev_name(parked.was));
            match parked.why {
                Why::Older => log::warn!(
                    "{point}: the files here are an older state than the synced ones (files or directories on it older than what was synced from it: an older copy or image of the drive, or the clock went back); not syncing deletions or edits from it until the client is restarted: keeping the server's files, downloading them onto it, and keeping its own different files as conflict copies"
                ),
                _ if parked.now == parked.was => log::warn!(
                    "{point}: another file system is mounted here (device {now} again, but another file system ID); not syncing deletions or edits from it: keeping the server's files, downloading them onto it, and keeping its own different files as conflict copies"
                ),
                _ => log::warn!(
                    "{point}: another file system is mounted here (device {now}, was {was}); not syncing deletions or edits from it: keeping the server's files, downloading them onto it, and keeping its own different files as conflict copies"
                ),
            }
        }
        let at = |set: &BTreeSet<Parked>| -> BTreeSet<WirePath> {
            set.iter().map(|p| p.point.clone()).collect()
        };
        let (now_gone, was_gone) = (at(&gone), at(&self.push.gone_mounts));
        for point in now_gone.difference(&was_gone) {
            log::warn!(
                "{point}: the file system mounted here is gone; not syncing deletions under it until it is back"
            );
        }
        for point in was_gone.difference(&now_gone) {
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
                // One line per file at info level: the warning is the mount
                // point's, said once (say_mounts).
                log::info!(
                    "{path}: this copy came with another file system (or is an older state of the file: its ctime is before the synced one's) and differs from the synced version: kept as {copy}, the server's version downloaded in its place"
                );
                self.refetch_hidden(path);
                self.mark(copy, Instant::now());
                true
            }
            Err(e) => {
                log::warn!(
                    "{path}: this copy came with another file system (or is an older state of the file) and differs from the synced version, and could not be set aside ({e}); not pushing it"
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

#[cfg(test)]
mod tests {
    use super::*;

    fn id(fsid: u64) -> FsIdent {
        FsIdent {
            fsid,
            kind: 1,
            ..FsIdent::default()
        }
    }

    /// Another file system at a number is recorded only when none of its
    /// files had to wait; the recorded one (a new mount) and a new number
    /// are recorded; numbers no file is on any more are dropped.
    #[test]
    fn identities_are_recorded_when_settled() {
        let recorded = BTreeMap::from([(1, id(10)), (2, id(20)), (3, id(30)), (9, id(90))]);
        let surveyed = [
            (1, Surveyed::Same(FsIdent { mount: 5, ..id(10) })),
            (2, Surveyed::Other(id(21))),
            (3, Surveyed::Other(id(31))),
            (4, Surveyed::New(id(40))),
        ];
        let waiting = BTreeSet::from([3]);
        let live = BTreeSet::from([1, 2, 3, 4]);
        let (next, settled) = next_idents(&recorded, &surveyed, &waiting, &live);
        assert_eq!(
            next,
            BTreeMap::from([
                (1, FsIdent { mount: 5, ..id(10) }),
                (2, id(21)),
                (3, id(30)),
                (4, id(40)),
            ])
        );
        assert_eq!(settled, vec![2]);
    }
}
