//! Journal compaction: when the journal has grown well past the tree it
//! describes, rewrite it as a snapshot, so opening a user stays proportional
//! to the user's tree rather than to its whole history.
//!
//! The snapshot keeps what pulls need: every node with its version (a node
//! changed after a cursor has a version above it) and a tombstone for each
//! path removed after `history_from`. A client whose cursor is older than
//! that gets a full listing instead of an incremental one (PROTOCOL.md §5.1).

use super::journal::{Journal, Record};
use super::tree::NodeKind;
use super::{StoreError, UserStore};
use crate::protocol::WirePath;
use std::collections::BTreeMap;

/// Deletions kept for incremental pulls: the last this many changes.
pub const KEEP_CHANGES: u64 = 100_000;

/// Compact when the journal holds more than this many records beyond twice
/// what a snapshot would write.
const SLACK: usize = 4096;

impl UserStore {
    /// Whether the journal is worth rewriting.
    pub(super) fn should_compact(&self) -> bool {
        let snapshot_size = self.tree.len() + 2 * self.clients.len() + 1;
        self.journal_records > 2 * snapshot_size + SLACK
    }

    /// The records of a compacted journal for the current state.
    pub(super) fn snapshot_records(&self) -> Vec<Record> {
        let oldest_cursor = self.clients.values().copied().min().unwrap_or(self.head);
        let history_from = (oldest_cursor + 1)
            .max(self.head.saturating_sub(KEEP_CHANGES) + 1)
            .max(self.history_from);
        let mut records = vec![Record::Snapshot {
            head: self.head,
            history_from,
        }];
        for (path, node) in self.tree.iter() {
            records.push(match node.kind {
                NodeKind::File {
                    size,
                    hash,
                    mtime_ns,
                    ..
                } => Record::PutFile {
                    seq: node.version,
                    path: path.clone(),
                    size,
                    hash,
                    mtime_ns,
                },
                NodeKind::Dir => Record::MakeDir {
                    seq: node.version,
                    path: path.clone(),
                },
            });
            // A new file starts without the bit (§15.3): say it again.
            if self.tree.is_executable(path) {
                records.push(Record::SetMode {
                    seq: node.version,
                    path: path.clone(),
                    executable: true,
                });
            }
        }
        let mut gone: BTreeMap<WirePath, u64> = BTreeMap::new();
        let start = self.history.partition_point(|t| t.seq < history_from);
        for touch in &self.history[start..] {
            for (path, removed) in &touch.paths {
                if *removed || self.tree.get(path).is_none() {
                    gone.insert(path.clone(), touch.seq);
                }
            }
        }
        // The tags a client may still name (§5.8, R-5.8.1), and the newest.
        let acked: std::collections::BTreeSet<u64> = self.clients.values().copied().collect();
        records.extend(self.lineage.snapshot_records(|seq| acked.contains(&seq)));
        let mut tombstones: Vec<(u64, WirePath)> = gone.into_iter().map(|(p, s)| (s, p)).collect();
        tombstones.sort();
        for (seq, path) in tombstones {
            records.push(Record::Tombstone { seq, path });
        }
        // The authors of the versions still in the tree: base-version and
        // RemoveDir decisions need nothing older (§7.2).
        let versions: std::collections::BTreeSet<u64> = self.tree.live_versions().collect();
        for seq in versions {
            if let Some(client) = self.authors.get(&seq) {
                records.push(Record::Author {
                    seq,
                    client: *client,
                });
            }
        }
        // Damages found in current versions: a restart keeps them.
        for (path, lost) in &self.lost {
            if let (super::recover::Lost::Damaged, Some(node)) = (lost, self.tree.get(path)) {
                records.push(Record::Damaged {
                    seq: node.version,
                    path: path.clone(),
                    damaged: true,
                });
            }
        }
        for (client, cursor) in &self.clients {
            records.push(Record::ClientAdded { client: *client });
            records.push(Record::Cursor {
                client: *client,
                cursor: *cursor,
            });
        }
        records
    }

    /// Rewrites the journal as a snapshot (durably, atomically).
    pub(super) fn compact(&mut self) -> Result<(), StoreError> {
        let records = self.snapshot_records();
        let before = self.journal_records;
        Journal::replace_with(&self.state_dir.join("journal"), &records)?;
        self.journal_records = records.len();
        log::info!(
            "compacted a journal from {before} to {} records",
            records.len()
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{DataPaths, UserStore};
    use crate::protocol::{UserId, WirePath};

    fn p(s: &str) -> WirePath {
        WirePath::new(s).unwrap()
    }

    fn put(store: &mut UserStore, path: &str, content: &[u8], base: u64) -> u64 {
        let staged = store.stage(&p(path), base, content);
        store
            .commit_file(base, &p(path), staged, 1)
            .unwrap()
            .version
    }

    #[test]
    fn pulls_after_a_compaction_match_pulls_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let paths = DataPaths {
            base: dir.path().to_path_buf(),
        };
        let user = UserId([7; 16]);
        let (mut store, _) = UserStore::open(&paths, &user, true, false).unwrap();
        let client = store.add_client().unwrap();
        let mut v = put(&mut store, "a/x.txt", b"1", 0);
        put(&mut store, "a/y.txt", b"y", 0);
        put(&mut store, "gone.txt", b"g", 0);
        store.set_cursor(client, store.head()).unwrap();
        let early = store.head();
        for round in 0..5000u32 {
            v = put(&mut store, "a/x.txt", &round.to_be_bytes(), v);
        }
        let mid = store.head();
        store.delete_file(3, &p("gone.txt"), 1).unwrap();
        store.rename(0, &p("a"), &p("b/a2"), 1).unwrap();
        let new = put(&mut store, "a/new.txt", b"new", 0);
        // An executable file keeps its bit through the snapshot (§15.3).
        store.set_mode(new, &p("a/new.txt"), true, 1).unwrap();
        store.make_dir(&p("empty"), 1).unwrap();
        let cursors = [0, 1, early, mid, store.head() - 2, store.head()];
        let before: Vec<_> = cursors.iter().map(|c| store.changes_since(*c)).collect();
        assert!(store.should_compact());
        store.close().unwrap();

        let (store, report) = UserStore::open(&paths, &user, false, false).unwrap();
        assert!(!report.recovered);
        assert!(store.tree().is_executable(&p("a/new.txt")));
        assert!(!store.tree().is_executable(&p("b/a2/x.txt")));
        // The tree, the registry, and the tags of the last changes (§5.8).
        let tags = super::super::lineage::RECENT_TAGS as usize + 2;
        assert!(
            report.replayed < 20 + tags,
            "compacted to {} records",
            report.replayed
        );
        for (cursor, expected) in cursors.iter().zip(&before) {
            let after = store.changes_since(*cursor);
            if *cursor >= early {
                // Every registered client is at `early` or later: their
                // incremental pulls are unchanged.
                assert_eq!(&after, expected, "pull from cursor {cursor}");
            } else {
                // Older cursors get the whole tree instead.
                assert!(after.full, "cursor {cursor}");
                assert_eq!(after.entries.len(), store.tree().len());
            }
        }
        assert!(store.has_client(client));
    }

    #[test]
    fn authors_follow_the_tree_and_survive_a_compaction() {
        let dir = tempfile::tempdir().unwrap();
        let paths = DataPaths {
            base: dir.path().to_path_buf(),
        };
        let user = UserId([8; 16]);
        let (mut store, _) = UserStore::open(&paths, &user, true, false).unwrap();
        store.add_client().unwrap();
        let first = put(&mut store, "f.txt", b"0", 0);
        let mut v = first;
        for round in 0..6000u32 {
            v = put(&mut store, "f.txt", &round.to_be_bytes(), v);
        }
        assert!(
            store.authors.len() <= 2 * store.tree().len() + 4097,
            "{} authors for {} nodes",
            store.authors.len(),
            store.tree().len()
        );
        assert!(store.pushed_by(v, 1));
        store.close().unwrap();
        let (mut store, _) = UserStore::open(&paths, &user, false, false).unwrap();
        // Client 1's own last upload: its Delete from an old base applies.
        let ack = store.delete_file(first, &p("f.txt"), 1).unwrap();
        assert_eq!(ack.status, crate::protocol::PushStatus::Applied);
    }
}
