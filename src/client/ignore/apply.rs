//! What the rules mean for the index and for a pull reply, without I/O:
//! an ignored path's entry becomes a held base (it is no longer synced, so it
//! neither counts for the empty-folder guard nor reads as "deleted" in a full
//! listing, but what it was synced at is not forgotten) and it is dropped
//! from every pull reply (a pull never creates, overwrites or deletes it).

use super::{IgnoreRules, IGNORE_FILE};
use crate::client::index::{Entry, EntryKind, Index};
use crate::client::plan::DiskEntry;
use crate::protocol::{ChangeEntry, EntryState, WirePath};
use std::collections::{BTreeMap, HashMap, HashSet};

/// What [`follow_rules`] changed in the index.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Followed {
    /// Entries the rules hide now, held (they stay on the server and on
    /// the other devices: a rule deletes nothing).
    pub held: usize,
    /// Held bases the rules no longer hide, synced again.
    pub released: usize,
}

/// Makes the index follow `rules`: every indexed path they ignore is held
/// ([`Index::hold`]), every held path they no longer ignore is released
/// ([`Index::release`]). A released path is synced again from the base it
/// was held at, so a change made to it while it was ignored (edit, delete,
/// chmod, rename away) is pushed as a local change on that base: applied if
/// the server's copy is still that base, a conflict as usual if it changed
/// too (README "Ignoring files").
pub fn follow_rules(index: &mut Index, rules: &IgnoreRules) -> Followed {
    let ignored =
        |path: &WirePath, entry: &Entry| rules.ignores(path.as_str(), entry.kind == EntryKind::Dir);
    let back: Vec<WirePath> = index
        .held()
        .filter(|(path, entry)| !ignored(path, entry))
        .map(|(path, _)| path.clone())
        .collect();
    let away: Vec<WirePath> = index
        .iter()
        .filter(|(path, entry)| ignored(path, entry))
        .map(|(path, _)| path.clone())
        .collect();
    let mut done = Followed::default();
    for path in &back {
        done.released += usize::from(index.release(path));
    }
    for path in &away {
        done.held += usize::from(index.hold(path));
    }
    done
}

/// Drops from a pull reply the entries at ignored paths; returns how many.
/// A deletion's kind is what the index knows, or either kind when the
/// index does not know the path (leaving it alone is the safe answer).
///
/// A dropped entry at a path whose server file is held back here
/// ([`Index::hold_back`], R-5.6.5) says the server no longer has that file
/// (deleted, or replaced by a directory) or that it is ignored itself: the
/// record goes, or the folder would read "not in sync" for ever (outside
/// tester breaker15 F8: an ignored directory in the way of a server file
/// that was then deleted). The entry itself stays dropped: applied, the
/// deletion would remove the ignored directory.
pub fn filter_reply(
    entries: &mut Vec<ChangeEntry>,
    index: &mut Index,
    rules: &IgnoreRules,
) -> usize {
    let before = entries.len();
    let mut gone: Vec<WirePath> = Vec::new();
    let held: HashSet<&WirePath> = index.held_back().map(|(p, _)| p).collect();
    entries.retain(|e| {
        let path = e.path.as_str();
        let ignored = match e.state {
            EntryState::File { .. } => rules.ignores(path, false),
            EntryState::Dir => rules.ignores(path, true),
            EntryState::Deleted => match index.get(&e.path) {
                Some(entry) => rules.ignores(path, entry.kind == EntryKind::Dir),
                None => rules.ignores_either(path),
            },
        };
        if ignored && held.contains(&e.path) {
            gone.push(e.path.clone());
        }
        !ignored
    });
    for path in &gone {
        if index.unhold_back(path).is_some() {
            log::info!("{path}: the server's file held back here is gone or replaced there; no longer held back");
        }
    }
    before - entries.len()
}

/// The position in a pull reply of an entry that changes `.cloudignore`
/// (a content the index does not hold for it, or its deletion), if any.
/// The session then applies that entry alone and pulls again under the new
/// rules, so files the new rules ignore are never created by the pull that
/// brings the rules (a device joining a user gets the rules first).
pub fn rules_change(entries: &[ChangeEntry], index: &Index) -> Option<usize> {
    let at = entries
        .iter()
        .position(|e| e.path.as_str() == IGNORE_FILE)?;
    let indexed = index.get(&entries[at].path).and_then(Entry::hash);
    let changes = match entries[at].state {
        EntryState::File { hash, .. } => indexed != Some(hash),
        EntryState::Deleted => indexed.is_some(),
        EntryState::Dir => false,
    };
    changes.then_some(at)
}

/// Drops from a scan (`disk`) the directories the index does not know
/// (`known`) whose whole content is ignored: those in `holds_ignored` (a
/// directory directly holding an ignored entry) with nothing else in `disk`
/// below them, and their parents in turn. Such a directory is not pushed:
/// when another device removed it, the ignored files that kept it here must
/// not bring it back there (and, as in git, a directory of ignored files
/// alone is not content). An empty directory is still pushed.
pub fn drop_ignored_only_dirs(
    disk: &mut BTreeMap<WirePath, DiskEntry>,
    known: &BTreeMap<WirePath, Entry>,
    mut holds_ignored: HashSet<WirePath>,
) {
    let mut children: HashMap<WirePath, usize> = HashMap::new();
    for path in disk.keys() {
        if let Some(parent) = path.parent() {
            *children.entry(parent).or_default() += 1;
        }
    }
    // Below-first: every descendant sorts after its ancestor.
    let dirs: Vec<WirePath> = disk
        .iter()
        .rev()
        .filter(|(_, e)| matches!(e, DiskEntry::Dir))
        .map(|(p, _)| p.clone())
        .collect();
    for dir in dirs {
        let empty = children.get(&dir).copied().unwrap_or(0) == 0;
        if empty && holds_ignored.contains(&dir) && !known.contains_key(&dir) {
            disk.remove(&dir);
            if let Some(parent) = dir.parent() {
                if let Some(n) = children.get_mut(&parent) {
                    *n -= 1;
                }
                holds_ignored.insert(parent);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::fsutil::Stat;
    use crate::client::index::Entry;
    use crate::protocol::ContentHash;

    fn wire(p: &str) -> WirePath {
        WirePath::new(p).expect("path")
    }

    fn file_entry() -> Entry {
        Entry::synced_file(Stat::default(), ContentHash([1; 32]), 3)
    }

    #[test]
    fn ignored_paths_are_held_and_come_back_when_the_rule_goes() {
        let (rules, _) = IgnoreRules::from_text("build/\n*.log\n");
        let mut index = Index::new();
        let dir = Entry {
            kind: EntryKind::Dir,
            version: 2,
        };
        index.insert(wire("build"), dir);
        index.insert(wire("build/a.o"), file_entry());
        index.insert(wire("src"), dir);
        index.insert(wire("src/main.rs"), file_entry());
        index.insert(wire("src/run.log"), file_entry());
        index.insert(wire("x.swp"), file_entry());
        let followed = follow_rules(&mut index, &rules);
        assert_eq!(
            followed,
            Followed {
                held: 4,
                released: 0
            }
        );
        let left: Vec<&str> = index.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(left, vec!["src", "src/main.rs"]);
        let held: Vec<&str> = index.held().map(|(p, _)| p.as_str()).collect();
        assert_eq!(held, vec!["build", "build/a.o", "src/run.log", "x.swp"]);

        // The directory rule goes: its paths are synced again at the
        // versions they were held at; the others stay held.
        let (rules, _) = IgnoreRules::from_text("*.log\n");
        let followed = follow_rules(&mut index, &rules);
        assert_eq!(
            followed,
            Followed {
                held: 0,
                released: 2
            }
        );
        assert_eq!(index.get(&wire("build")), Some(&dir));
        assert_eq!(index.get(&wire("build/a.o")), Some(&file_entry()));
        let held: Vec<&str> = index.held().map(|(p, _)| p.as_str()).collect();
        assert_eq!(held, vec!["src/run.log", "x.swp"]);
        let (rules, _) = IgnoreRules::from_text("!*.swp\n");
        assert_eq!(follow_rules(&mut index, &rules).released, 2);
        assert_eq!(index.len(), 6);
    }

    #[test]
    fn a_reply_changes_the_rules_only_with_new_content_or_a_deletion() {
        let rules = wire(IGNORE_FILE);
        let entry = |state| ChangeEntry {
            path: rules.clone(),
            version: 4,
            state,
            executable: false,
        };
        let other = ChangeEntry {
            path: wire("a.txt"),
            version: 3,
            state: EntryState::Dir,
            executable: false,
        };
        let same = EntryState::File {
            size: 1,
            hash: ContentHash([1; 32]),
        };
        let new = EntryState::File {
            size: 1,
            hash: ContentHash([9; 32]),
        };
        let mut index = Index::new();
        assert_eq!(rules_change(&[other.clone(), entry(new)], &index), Some(1));
        assert_eq!(rules_change(&[entry(EntryState::Deleted)], &index), None);
        assert_eq!(rules_change(std::slice::from_ref(&other), &index), None);
        index.insert(rules.clone(), file_entry());
        assert_eq!(rules_change(&[entry(same)], &index), None);
        assert_eq!(rules_change(&[entry(new)], &index), Some(0));
        assert_eq!(rules_change(&[entry(EntryState::Deleted)], &index), Some(0));
    }

    #[test]
    fn directories_of_ignored_files_alone_are_not_pushed() {
        let mut disk: BTreeMap<WirePath, DiskEntry> = [
            ("d", DiskEntry::Dir),
            ("d/sub", DiskEntry::Dir),
            ("e", DiskEntry::Dir),
            ("e/f.txt", DiskEntry::File(Stat::default())),
            ("empty", DiskEntry::Dir),
            ("k", DiskEntry::Dir),
            ("n", DiskEntry::Dir),
            ("n/sub", DiskEntry::Dir),
            ("n.txt", DiskEntry::File(Stat::default())),
        ]
        .into_iter()
        .map(|(p, e)| (wire(p), e))
        .collect();
        let known: BTreeMap<WirePath, Entry> = [(
            wire("k"),
            Entry {
                kind: EntryKind::Dir,
                version: 1,
            },
        )]
        .into_iter()
        .collect();
        let holds: HashSet<WirePath> = ["d/sub", "e", "k", "n/sub"].into_iter().map(wire).collect();
        drop_ignored_only_dirs(&mut disk, &known, holds);
        let left: Vec<&str> = disk.keys().map(WirePath::as_str).collect();
        // d and d/sub: only ignored files. e: a real file too. empty: no
        // ignored file. k: known to the index. n: n/sub goes, then n (its
        // only child), though `n.txt` sorts between them.
        assert_eq!(left, vec!["e", "e/f.txt", "empty", "k", "n.txt"]);
    }

    #[test]
    fn filter_drops_ignored_entries_of_every_kind() {
        let (rules, _) = IgnoreRules::from_text("out/\n*.log\n");
        let file = EntryState::File {
            size: 1,
            hash: ContentHash([2; 32]),
        };
        let entry = |p: &str, state| ChangeEntry {
            path: wire(p),
            version: 9,
            state,
            executable: false,
        };
        let mut index = Index::new();
        index.insert(wire("out"), file_entry());
        let mut entries = vec![
            entry("a.log", file),
            entry("a.txt", file),
            entry("out", EntryState::Dir),
            entry("out/x", file),
            entry("keep", EntryState::Deleted),
            // The index knows `out` as a file: a rule for directories does
            // not protect it, its deletion applies.
            entry("out", EntryState::Deleted),
            // Unknown here: ignored as a directory is enough to leave it be.
            entry("gone/out", EntryState::Deleted),
            entry("b.tmp", EntryState::Deleted),
        ];
        assert_eq!(filter_reply(&mut entries, &mut index, &rules), 5);
        let left: Vec<(&str, EntryState)> =
            entries.iter().map(|e| (e.path.as_str(), e.state)).collect();
        assert_eq!(
            left,
            vec![
                ("a.txt", file),
                ("keep", EntryState::Deleted),
                ("out", EntryState::Deleted)
            ]
        );
    }

    /// breaker15 F8: a server file held back by an ignored directory that
    /// the server then deletes (or replaces by a directory) is no longer
    /// held back; one the server still has, or one nothing was said of,
    /// stays; the deletion itself is still dropped (it would remove the
    /// ignored directory).
    #[test]
    fn a_held_back_file_gone_from_the_server_is_no_longer_held() {
        let (rules, _) = IgnoreRules::from_text("cache/\nbuild/\n");
        let file = EntryState::File {
            size: 1,
            hash: ContentHash([2; 32]),
        };
        let entry = |p: &str, state| ChangeEntry {
            path: wire(p),
            version: 9,
            state,
            executable: false,
        };
        let mut index = Index::new();
        for p in ["cache", "build", "x/cache", "still"] {
            index.hold_back(&wire(p), 3);
        }
        let mut entries = vec![
            entry("cache", EntryState::Deleted),
            entry("build", EntryState::Dir),
            entry("x/cache", file),
        ];
        assert_eq!(filter_reply(&mut entries, &mut index, &rules), 2);
        let left: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(left, vec!["x/cache"], "the file goes on to the applier");
        let held: Vec<&str> = index.held_back().map(|(p, _)| p.as_str()).collect();
        assert_eq!(held, vec!["still", "x/cache"]);
    }
}
