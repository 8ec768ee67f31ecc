//! Which history this journal holds (PROTOCOL.md §5.8): every change gets a
//! 64-bit tag, a hash chain over the journal records of the changes up to
//! it, so a client that names the tag of the change it last saw finds out
//! when the server no longer holds that history (its data directory was
//! restored from an older backup, R-5.8.2).
//!
//! ```text
//! tag(seq) = first 8 bytes (big-endian) of BLAKE3(tag(previous change) u64 | record body); 0 is read as 1
//! ```
//! Nothing new is stored per change: the tags are computed again from the
//! journal at every open. Compaction writes a `Chain` record for each
//! change whose tag it keeps (those a client may still name: each
//! registered device's acknowledged cursor and the last [`RECENT_TAGS`]
//! changes) and the chain continues from the newest. A snapshot written before tags existed starts the chain from 0;
//! the tags of the changes it replaced are unknown (0 on the wire).

use super::journal::Record;

/// The tags of the changes this journal knows, in sequence order.
#[derive(Debug, Default, Clone)]
pub struct Lineage {
    tags: Vec<(u64, u64)>,
    /// The newest change with a known place in the chain, and its tag (0:
    /// unknown, after an old snapshot).
    last: (u64, u64),
    /// `last` was made by a change record: another record with the same
    /// sequence number folds into its tag. Not after a snapshot or a
    /// `Chain` record, whose following records restate the tree.
    open: bool,
}

/// The next tag of the chain.
fn next(previous: u64, body: &[u8]) -> u64 {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&previous.to_be_bytes());
    hasher.update(body);
    let mut first = [0u8; 8];
    first.copy_from_slice(&hasher.finalize().as_bytes()[..8]);
    u64::from_be_bytes(first).max(1)
}

impl Lineage {
    /// Takes a journal record into the chain (every record, in journal
    /// order, at replay and as it is appended).
    pub fn on_record(&mut self, record: &Record) {
        let seq = match record {
            Record::PutFile { seq, .. }
            | Record::MakeDir { seq, .. }
            | Record::Remove { seq, .. }
            | Record::Rename { seq, .. }
            | Record::SetMode { seq, .. } => *seq,
            Record::Snapshot { head, .. } => {
                self.last = (*head, 0);
                self.open = false;
                return;
            }
            Record::Chain { seq, tag } => {
                self.insert(*seq, *tag);
                if *seq >= self.last.0 {
                    self.last = (*seq, *tag);
                    self.open = false;
                }
                return;
            }
            _ => return,
        };
        if seq > self.last.0 {
            let tag = next(self.last.1, &record.body());
            self.tags.push((seq, tag));
            self.last = (seq, tag);
            self.open = true;
        } else if seq == self.last.0 && self.open {
            let tag = next(self.last.1, &record.body());
            self.insert(seq, tag);
            self.last = (seq, tag);
        }
        // Older: a snapshot restating the tree (its changes are chained).
    }

    fn insert(&mut self, seq: u64, tag: u64) {
        match self.tags.binary_search_by_key(&seq, |&(s, _)| s) {
            Ok(i) => self.tags[i].1 = tag,
            Err(i) => self.tags.insert(i, (seq, tag)),
        }
    }

    /// The tag of change `seq`, when known.
    pub fn tag_at(&self, seq: u64) -> Option<u64> {
        self.tags
            .binary_search_by_key(&seq, |&(s, _)| s)
            .ok()
            .map(|i| self.tags[i].1)
    }

    /// The tag of the change `head` (0: unknown, R-5.8.3).
    pub fn head_tag(&self, head: u64) -> u64 {
        self.tag_at(head).unwrap_or(0)
    }

    /// R-5.8.2: whether a client that pulls from `cursor` and last saw
    /// change `check_seq` with tag `check_tag` saw a history this journal
    /// does not hold: a cursor or checked change past the head; a tag that
    /// is not the one of that change here (or whose change's tag is no
    /// longer known: compacted away, never the case for a device this
    /// journal registered and that saw this history, §10.1); or a cursor
    /// above the checked change (the client's own pushes moved it) over a
    /// change `own` says this client did not push. Tag 0 checks no tag.
    pub fn diverged(
        &self,
        head: u64,
        (cursor, check_seq, check_tag): (u64, u64, u64),
        own: impl Fn(u64) -> bool,
    ) -> bool {
        if cursor > head || check_seq > head {
            return true;
        }
        if check_seq == 0 || check_tag == 0 {
            return false;
        }
        if self.tag_at(check_seq) != Some(check_tag) {
            return true;
        }
        (check_seq + 1..=cursor).any(|seq| !own(seq))
    }

    /// The `Chain` records a snapshot keeps: the tags of the changes a
    /// client may still name (R-5.8.1): those `keep` says (each registered
    /// device's acknowledged cursor), the last [`RECENT_TAGS`] changes, and
    /// always the newest (the chain continues from it).
    pub fn snapshot_records(&self, keep: impl Fn(u64) -> bool) -> Vec<Record> {
        let recent = self.last.0.saturating_sub(RECENT_TAGS);
        let mut out: Vec<Record> = self
            .tags
            .iter()
            .filter(|&&(seq, _)| seq > recent || keep(seq))
            .map(|&(seq, tag)| Record::Chain { seq, tag })
            .collect();
        let newest_kept = out
            .last()
            .is_some_and(|r| matches!(r, Record::Chain { seq, .. } if *seq == self.last.0));
        if !newest_kept && self.last.1 != 0 {
            out.push(Record::Chain {
                seq: self.last.0,
                tag: self.last.1,
            });
        }
        out
    }
}

/// How many of the newest changes keep their tag through a compaction
/// besides the devices' acknowledged cursors: a device names the head of
/// the last reply it applied, which it acknowledges at once unless that
/// pull is repeated (its cursor then stays near the head).
pub const RECENT_TAGS: u64 = 256;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::WirePath;

    fn dir(seq: u64, name: &str) -> Record {
        Record::MakeDir {
            seq,
            path: WirePath::new(name).unwrap(),
        }
    }

    fn replay(records: &[Record]) -> Lineage {
        let mut l = Lineage::default();
        for r in records {
            l.on_record(r);
        }
        l
    }

    #[test]
    fn tags_name_the_history_not_the_number() {
        let common = vec![dir(1, "a"), dir(2, "b")];
        let mut lost = common.clone();
        lost.push(dir(3, "c"));
        let mut other = common.clone();
        other.push(dir(3, "d"));
        let (lost, other, again) = (replay(&lost), replay(&other), replay(&lost_again()));
        assert_eq!(lost.tag_at(2), other.tag_at(2));
        assert_ne!(lost.tag_at(3), other.tag_at(3));
        assert_eq!(
            lost.tag_at(3),
            again.tag_at(3),
            "replay gives the same tags"
        );
        let t3 = lost.tag_at(3).unwrap();
        let t2 = lost.tag_at(2).unwrap();
        let mine = |_| true;
        let theirs = |_| false;
        assert!(!lost.diverged(3, (3, 3, t3), theirs));
        assert!(
            other.diverged(3, (3, 3, t3), mine),
            "the same number, another change"
        );
        assert!(
            replay(&common).diverged(2, (3, 3, t3), mine),
            "cursor past the head"
        );
        assert!(!other.diverged(3, (2, 2, t2), theirs));
        assert!(
            !other.diverged(3, (1, 2, t2), theirs),
            "pulling again from before"
        );
        assert!(
            !other.diverged(3, (3, 3, 0), theirs),
            "no tag: nothing to check"
        );
        assert!(!other.diverged(3, (0, 0, 0), theirs));
        // Own pushes moved the cursor past the checked change: 3 must be
        // this client's.
        assert!(!other.diverged(3, (3, 2, t2), mine));
        assert!(
            other.diverged(3, (3, 2, t2), theirs),
            "3 is another device's"
        );
    }

    fn lost_again() -> Vec<Record> {
        vec![dir(1, "a"), dir(2, "b"), dir(3, "c")]
    }

    #[test]
    fn a_snapshot_keeps_the_chain_going() {
        let full = replay(&[dir(1, "a"), dir(2, "b"), dir(3, "c"), dir(4, "e")]);
        let base = replay(&[dir(1, "a"), dir(2, "b"), dir(3, "c")]);
        // A compacted journal: snapshot, the tree restated, the kept tags.
        let mut compacted = vec![
            Record::Snapshot {
                head: 3,
                history_from: 3,
            },
            dir(1, "a"),
            dir(2, "b"),
            dir(3, "c"),
        ];
        compacted.extend(base.snapshot_records(|seq| seq == 2));
        compacted.push(dir(4, "e"));
        let after = replay(&compacted);
        assert_eq!(after.tag_at(1), base.tag_at(1), "kept: one of the recent");
        assert_eq!(after.tag_at(2), base.tag_at(2));
        assert_eq!(after.tag_at(3), base.tag_at(3));
        assert_eq!(after.tag_at(4), full.tag_at(4));
        // An old snapshot without tags: unknown, then a chain from 0.
        let old = replay(&[
            Record::Snapshot {
                head: 3,
                history_from: 1,
            },
            dir(3, "c"),
            dir(4, "e"),
        ]);
        assert_eq!(old.head_tag(3), 0);
        assert!(old.tag_at(4).is_some_and(|t| t != 0));
    }
}
