//! What a `PushAck` means for this device (protocol-spec §5.4): index
//! updates (done here), the local move that mirrors a conflict copy (done by
//! the caller, which owns the disk), the paths to compare again, whether to
//! pull, and how far back the cursor must go so that the next pull lists a
//! path this device had to forget.

use super::ops::Op;
use crate::client::conflict::{on_push_answer, AckDecision};
use crate::client::fsutil::Stat;
use crate::client::index::{Entry, EntryKind, Index};
use crate::protocol::{PushAck, PushStatus, WirePath};

pub use crate::client::conflict::Expect;

/// Move the local `from` to `to` (a conflict-copy name the server chose).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalMove {
    /// Where this device's entry is.
    pub from: WirePath,
    /// Where the server put it.
    pub to: WirePath,
    /// When to do it.
    pub expect: Expect,
    /// The index entry for `to` once the move is made (or found made).
    pub record: Option<Entry>,
}

/// What an acknowledgement asks of the session.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct AckEffect {
    /// Paths to compare with the index again.
    pub dirty: Vec<WirePath>,
    /// The server moved on: pull soon.
    pub pull: bool,
    /// The cursor must be at most this, or the next pull would not list a
    /// path this device forgot (its server version is at or below the
    /// cursor): a refused push must never leave the device unable to
    /// converge.
    pub rewind: Option<u64>,
    /// The cursor may move forward to this: the push's change came right
    /// after the cursor, so nothing happened on the server in between.
    pub advance: Option<u64>,
    /// The local move that mirrors a conflict copy.
    pub local_move: Option<LocalMove>,
}

/// Digests the server's answer `ack` to `op`: updates `index` and says what
/// else to do. `cursor` is the device's pull cursor now. What the answer
/// means is decided by [`on_push_answer`]; here it is recorded. An uploaded
/// file hashed so soon after its last write that a same-size rewrite in the
/// same timestamp tick could follow unseen is indexed untrusted
/// ([`Entry::synced_file`]), so the next look hashes it again.
pub fn on_ack(index: &mut Index, op: &Op, ack: &PushAck, cursor: u64) -> AckEffect {
    let mut effect = AckEffect::default();
    let decision = on_push_answer(op, ack.status);
    match op {
        Op::Upload {
            path, stat, hash, ..
        } => {
            // The server's copy has the bit the file it replaced had, or
            // none (a new file, a conflict copy; §15.3): indexed so, a
            // local bit that differs is found and sent by the next look.
            let kept = match (decision, index.get(path).map(|e| e.kind)) {
                (
                    AckDecision::Applied | AckDecision::Unchanged,
                    Some(EntryKind::File { stat: old, .. }),
                ) => old.exec,
                _ => false,
            };
            let server = Stat {
                exec: kept,
                ..*stat
            };
            let entry = Entry::synced_file(server, *hash, ack.version);
            if kept != stat.exec && decision != AckDecision::Refused {
                effect.dirty.push(ack.path.clone());
            }
            entry_ack(index, path, entry, decision, ack, &mut effect);
        }
        Op::SetMode {
            path, stat, hash, ..
        } => match decision {
            AckDecision::Applied | AckDecision::Unchanged => {
                let entry = Entry::synced_file(*stat, *hash, ack.version);
                record_unless_newer(index, path, entry, &mut effect);
            }
            _ => {
                // Changed elsewhere meanwhile: the pull brings the newer
                // version, then the bit is compared again.
                effect.dirty.push(path.clone());
                effect.pull = true;
            }
        },
        Op::Stream { path, .. } => {
            // Only a sealed stream is acknowledged, and it is recorded as
            // the Upload it became (session::push); an answer to an
            // abandoned one is the server's mistake: look at the path again.
            effect.dirty.push(path.clone());
            effect.pull = true;
        }
        Op::MakeDir { path } => {
            let dir = Entry {
                kind: EntryKind::Dir,
                version: ack.version,
            };
            entry_ack(index, path, dir, decision, ack, &mut effect);
        }
        Op::Delete { path, .. } => {
            index.remove(path);
            if decision == AckDecision::Refused {
                // Changed elsewhere meanwhile: the newer version comes back by pull.
                log::info!("{path} was changed elsewhere; the server kept it");
                effect.dirty.push(path.clone());
                effect.pull = true;
            }
        }
        Op::RemoveDir { path } => remove_dir_ack(index, path, decision, &mut effect),
        Op::Rename { from, to, .. } => {
            rename_ack(index, (from, to), decision, (ack, cursor), &mut effect)
        }
    }
    if ack.status == PushStatus::Applied {
        index_created_parents(index, &ack.path, ack.version);
    }
    let landed = matches!(ack.status, PushStatus::Applied | PushStatus::Conflict);
    if landed && Some(ack.version) == cursor.checked_add(1) {
        effect.advance = Some(ack.version);
    }
    let refused = ack.status == PushStatus::Stale;
    if refused && ack.version > 0 && ack.version <= cursor {
        // The server still holds something there, at a version this device's
        // cursor is already past: only a pull from before it brings it back.
        let back = ack.version - 1;
        effect.rewind = Some(effect.rewind.map_or(back, |r| r.min(back)));
    }
    effect
}

/// An answer to an `Upload` or a `MakeDir` of `path`, whose index record
/// would be `entry`: recorded, or (a conflict) recorded at the server's
/// conflict name once the local entry followed it there, or refused.
fn entry_ack(
    index: &mut Index,
    path: &WirePath,
    entry: Entry,
    decision: AckDecision,
    ack: &PushAck,
    effect: &mut AckEffect,
) {
    match decision {
        AckDecision::Applied | AckDecision::Unchanged => {
            record_unless_newer(index, path, entry, effect)
        }
        AckDecision::FollowConflictName(expect) => {
            if expect == Expect::Dir {
                log::warn!(
                    "conflict: {path} is a file elsewhere; this directory is now {}",
                    ack.path
                );
            } else {
                log::warn!(
                    "conflict: {path} was changed elsewhere; this device's version is now {}",
                    ack.path
                );
                // The file this device based its upload on is now the
                // server's business; a directory indexed there (one the
                // server kept from a RemoveDir) stays, to be removed.
                if index.get(path).is_some_and(|e| e.hash().is_some()) {
                    index.remove(path);
                }
            }
            effect.local_move = Some(LocalMove {
                from: path.clone(),
                to: ack.path.clone(),
                expect,
                record: Some(entry),
            });
            effect.dirty.extend([path.clone(), ack.path.clone()]);
            effect.pull = true;
        }
        AckDecision::Refused => {
            effect.dirty.push(path.clone());
            effect.pull = true;
        }
    }
}

/// Records `entry` (what a push's answer says the server holds at `path`)
/// unless the index already holds `path` at a later version: a pull that
/// listed a later change of the path was applied before this answer was
/// (its record is the newer truth, and overwriting it with the older
/// version made the next look push the path again on a stale base). The
/// path is compared again either way.
pub fn record_unless_newer(
    index: &mut Index,
    path: &WirePath,
    entry: Entry,
    effect: &mut AckEffect,
) {
    match index.get(path) {
        Some(known) if known.version > entry.version => {
            log::debug!(
                "{path}: the answer's v{} is older than the indexed v{}; kept",
                entry.version,
                known.version
            );
            if !effect.dirty.contains(path) {
                effect.dirty.push(path.clone());
            }
        }
        _ => index.insert(path.clone(), entry),
    }
}

/// An answer to a `RemoveDir` of `path`: the subtree is forgotten; refused,
/// the directory itself stays indexed.
fn remove_dir_ack(
    index: &mut Index,
    path: &WirePath,
    decision: AckDecision,
    effect: &mut AckEffect,
) {
    let own = index.get(path).copied();
    index.remove_subtree(path);
    if decision == AckDecision::Refused {
        log::info!("part of {path} was changed elsewhere; the server kept it");
        // The server kept the directory (and the ancestors of what it
        // kept) at versions the cursor may be past: still indexed, it
        // is removed again by the next push once the pull brought
        // what was kept, instead of staying on the server unseen.
        if let Some(dir) = own.filter(|e| e.kind == EntryKind::Dir) {
            index.insert(path.clone(), dir);
        }
        effect.dirty.push(path.clone());
        effect.pull = true;
        // The subdirectories the server kept (holding a kept change)
        // have versions the cursor may be past, and were forgotten
        // above: only a full listing brings them back.
        effect.rewind = Some(0);
    }
}

/// An answer to a `Rename` of `from` to `to`; `cursor` is the pull cursor
/// when the answer came.
fn rename_ack(
    index: &mut Index,
    (from, to): (&WirePath, &WirePath),
    decision: AckDecision,
    (ack, cursor): (&PushAck, u64),
    effect: &mut AckEffect,
) {
    match decision {
        AckDecision::Applied => {
            if Some(ack.version) == cursor.checked_add(1) {
                index.rebase(from, to, Some(ack.version));
            } else {
                index.rebase(from, to, None);
                behind_unpulled_changes(index, to, effect);
            }
            // The moved entries keep their indexed bits, the disk may not:
            // a chmod made before the rename was planned travels with the
            // rename's plan only as the moved file's stat.
            moved_look_again(to, effect);
        }
        AckDecision::Unchanged => {
            index.rebase(from, to, None);
            moved_look_again(to, effect);
        }
        AckDecision::FollowConflictName(expect) => {
            log::warn!(
                "conflict: {to} exists elsewhere; moved entry is now {}",
                ack.path
            );
            effect.local_move = Some(LocalMove {
                from: to.clone(),
                to: ack.path.clone(),
                expect,
                record: None,
            });
            index.rebase(from, &ack.path, Some(ack.version));
            forget_moved(index, &ack.path, effect);
            effect.dirty.extend([to.clone(), ack.path.clone()]);
            effect.pull = true;
        }
        AckDecision::Refused => {
            log::info!("{from} changed elsewhere before it could be moved to {to}");
            index.remove_subtree(from);
            effect.dirty.extend([from.clone(), to.clone()]);
            effect.pull = true;
        }
    }
}

/// A rename's destination is compared with the index again: a file renamed
/// and chmodded before one look (`mv a.sh b.sh; chmod -x b.sh`) was planned
/// as the Rename alone (the rename took the place of the upload that would
/// have carried the bit), so its bit is sent by the next look (SetMode).
fn moved_look_again(to: &WirePath, effect: &mut AckEffect) {
    if !effect.dirty.contains(to) {
        effect.dirty.push(to.clone());
    }
}

/// The server made the missing parents of what a push placed, under the
/// push's version (protocol-spec §5.4); indexed here too, or the next plan
/// would take them for new local directories (a rename onto one of them is
/// a Conflict), and no pull lists them once the cursor followed the push.
fn index_created_parents(index: &mut Index, path: &WirePath, version: u64) {
    let mut up = path.parent();
    while let Some(dir) = up {
        if index.get(&dir).is_some() {
            break;
        }
        let entry = Entry {
            kind: EntryKind::Dir,
            version,
        };
        index.insert(dir.clone(), entry);
        up = dir.parent();
    }
}

/// A rename the server applied behind changes this device has not pulled
/// yet: another device may have edited or deleted something inside the
/// source, and the server moved what it had, not what this index moved, all
/// under the rename's version. So the moved entries keep their old versions
/// (a push based on them cannot silently replace or delete the server's
/// content: it is Stale or a conflict until a pull agreed) and a pull is
/// asked for before the next push round: it lists every moved entry, and
/// the applier adopts the new version wherever the content is the indexed
/// one. A deletion inside a moved directory is listed only at the old path,
/// and no incremental pull would ever say the moved copy is gone: for a
/// directory the cursor goes back to 0, and the full listing that brings
/// removes what the server no longer has (or keeps a local edit to push).
fn behind_unpulled_changes(index: &Index, to: &WirePath, effect: &mut AckEffect) {
    effect.dirty.push(to.clone());
    effect.pull = true;
    if index.get(to).is_some_and(|e| e.kind == EntryKind::Dir) {
        effect.rewind = Some(0);
    }
}

/// After a rename the server applied onto a conflict name, what the server moved may differ
/// from what the index moved: another device may have edited the source
/// (the server moves the edit; Rename's base is informative only) or
/// deleted something inside it (listed at the old path, so no pull would
/// ever say it is gone below the destination). Recording this device's
/// hashes there would make the next push overwrite the edit, or keep a
/// deleted file forever. So the index forgets the moved entries; the pull
/// (asked for here, and done before the next push round) indexes again
/// whatever matches by content, a differing file becomes a conflict copy
/// there, and what the server no longer has is pushed again as new.
fn forget_moved(index: &mut Index, dir: &WirePath, effect: &mut AckEffect) {
    index.remove_subtree(dir);
    effect.dirty.push(dir.clone());
    effect.pull = true;
}

#[cfg(test)]
mod tests;
