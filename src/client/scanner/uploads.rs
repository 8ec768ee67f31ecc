//! What each regular file on disk becomes in a look: unchanged (nothing),
//! an index refresh (stat changed, content not), a one-read upload of a new
//! file, an upload, a mode change, "still being written" (looked at again),
//! or not synced (this user may not read it). Kept apart from the walk and
//! the comparison: it is the only part of a look that reads file contents.

use super::hashing::{keeps_manifest, Hashed};
use super::{Plan, Scanner, Scope};
use crate::client::detect::{as_recorded, judge, Verdict};
use crate::client::fsutil::Stat;
use crate::client::index::{Entry, EntryKind};
use crate::client::plan::{DiskEntry, Op};
use crate::protocol::WirePath;
use std::collections::BTreeMap;
use std::time::Instant;

impl Scanner {
    /// Files on disk that are new, named in `scope`, or that the rule does
    /// not find unchanged: uploads (returned), index refreshes, or "still
    /// being written".
    pub(super) fn plan_files(
        &mut self,
        disk: &BTreeMap<WirePath, DiskEntry>,
        known: &BTreeMap<WirePath, Entry>,
        scope: &Scope,
        plan: &mut Plan,
    ) -> Vec<Op> {
        let mut uploads = Vec::new();
        let now = Instant::now();
        let vanished = match self.streams {
            true => vanished_files(disk, known),
            false => Vec::new(),
        };
        for (path, entry) in disk {
            let DiskEntry::File(stat) = *entry else {
                continue;
            };
            let (base, old_hash, recorded) = match known.get(path) {
                Some(Entry {
                    kind: EntryKind::File { stat: old, hash },
                    version,
                }) => {
                    if judge(old, &stat) == Verdict::Unchanged && !scope.named(path) {
                        if old.btime_ns == 0 && stat.btime_ns != 0 {
                            // A record from before birth times were kept
                            // the same file, so it learns its
                            // birth time without a read.
                            let stat = Stat {
                                btime_ns: stat.btime_ns,
                                ..*old
                            };
                            let kind = EntryKind::File { stat, hash: *hash };
                            let entry = Entry {
                                kind,
                                version: *version,
                            };
                            plan.refreshed.push((path.clone(), entry));
                        }
                        continue;
                    }
                    (*version, Some(*hash), as_recorded(old, &stat))
                }
                _ => (0, None, false),
            };
            // Untouched since this client recorded it (a download it
            // placed a moment ago, whose watcher event may not be in yet):
            // complete, so hashed now rather than waited for as if still
            // being written (a joining device counted its last downloads
            // "to upload" until a later look).
            let settled = scope.settled.contains(path) || recorded;
            let complete = self.settle.ready(path, stat, settled, now);
            let new = known.get(path).is_none();
            let cut_off = || crate::client::stream_push::marker(&self.root, path).exists();
            if complete && new && self.streams && streams(stat, &vanished) && !cut_off() {
                // Sent in one read, hashed as it goes (§13.8): not read here.
                match self.readable(path) {
                    Ok(true) => uploads.push(Op::Stream {
                        path: path.clone(),
                        stat,
                    }),
                    Ok(false) => plan.unstable.push(path.clone()),
                    Err(why) => self.skip(path, why),
                }
                continue;
            }
            let hashed = match complete {
                true => self.stable_hash(path, stat),
                false => Hashed::Unstable,
            };
            let hash = match hashed {
                Hashed::Done(hash) => hash,
                Hashed::Unstable => {
                    plan.unstable.push(path.clone());
                    continue;
                }
                Hashed::Unreadable(why) => {
                    self.skip(path, why);
                    continue;
                }
            };
            let old_exec = match known.get(path).map(|e| e.kind) {
                Some(EntryKind::File { stat: old, .. }) => old.exec,
                _ => false,
            };
            if old_hash == Some(hash) && old_exec != stat.exec {
                // A chmod alone: the bit travels (§15.3).
                uploads.push(Op::SetMode {
                    path: path.clone(),
                    base,
                    stat,
                    hash,
                });
            } else if old_hash == Some(hash) {
                let entry = Entry::synced_file(stat, hash, base);
                plan.refreshed.push((path.clone(), entry));
            } else {
                let path = path.clone();
                uploads.push(Op::Upload {
                    path,
                    base,
                    stat,
                    hash,
                });
            }
        }
        uploads
    }
}

/// The stats of the indexed files that are no longer files on disk: a new
/// file may be one of them moved.
fn vanished_files(
    disk: &BTreeMap<WirePath, DiskEntry>,
    known: &BTreeMap<WirePath, Entry>,
) -> Vec<Stat> {
    known
        .iter()
        .filter_map(|(p, e)| match e.kind {
            EntryKind::File { stat, .. } if !matches!(disk.get(p), Some(DiskEntry::File(_))) => {
                Some(stat)
            }
            _ => None,
        })
        .collect()
}

/// Whether a new file at `stat` goes as a one-read upload (§13.8): larger
/// than one minimum chunk (a smaller one goes whole with its hash first,
/// ), and neither the size nor the inode of a file that vanished
/// (`vanished`), which it may be, moved: such a file is hashed by the plan,
/// so the move is found by inode or content and sent as a Rename.
fn streams(stat: Stat, vanished: &[Stat]) -> bool {
    keeps_manifest(stat.size)
        && !vanished
            .iter()
            .any(|v| v.size == stat.size || v.same_inode(&stat))
}
