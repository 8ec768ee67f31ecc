use super::*;
use crate::protocol::ContentHash;

pub(super) fn p(s: &str) -> WirePath {
    WirePath::new(s).unwrap()
}

pub(super) fn h(n: u8) -> ContentHash {
    ContentHash([n; 32])
}

pub(super) fn file(path: &str, n: u8, version: u64) -> ChangeEntry {
    ChangeEntry {
        path: p(path),
        version,
        state: EntryState::File {
            size: 1,
            hash: h(n),
        },
        executable: false,
    }
}

pub(super) fn dir(path: &str, version: u64) -> ChangeEntry {
    ChangeEntry {
        path: p(path),
        version,
        state: EntryState::Dir,
        executable: false,
    }
}

pub(super) fn stat() -> Stat {
    Stat {
        size: 1,
        mtime_ns: 5,
        ctime_ns: 5,
        dev: 1,
        ino: 9,
        exec: false,
        btime_ns: 0,
    }
}

pub(super) fn index_of(entries: &[(&str, Option<u8>, u64)]) -> Index {
    let mut index = Index::new();
    for (path, content, version) in entries {
        let kind = match content {
            Some(n) => EntryKind::File {
                stat: stat(),
                hash: h(*n),
            },
            None => EntryKind::Dir,
        };
        index.insert(
            p(path),
            Entry {
                kind,
                version: *version,
            },
        );
    }
    index
}

pub(super) fn dirty(paths: &[&str]) -> BTreeSet<WirePath> {
    paths.iter().map(|s| p(s)).collect()
}

/// The breaker's case: backup at 3; then f1 edited (5), n1 made (6),
/// dnew/x made (7), f3 edited (8), f2 deleted; the server restored to 3.
#[test]
fn what_the_server_lost_is_pushed_again_and_a_deletion_stays() {
    let mut index = index_of(&[
        ("f1", Some(11), 5),
        ("f3", Some(13), 8),
        ("n1", Some(20), 6),
        ("dnew", None, 7),
        ("dnew/x", Some(21), 7),
        ("kept", Some(30), 2),
    ]);
    let listing = vec![
        file("f1", 1, 1),
        file("f2", 2, 2),
        file("f3", 3, 3),
        file("kept", 30, 2),
    ];
    let on_disk = dirty(&["f1", "f3", "n1", "dnew", "dnew/x", "kept"]);
    let done = reconcile(&listing, &mut index, 3, &Known::new(3), |path| {
        on_disk.contains(path)
    });
    assert_eq!(
        done.dirty,
        dirty(&["f1", "f2", "f3", "n1", "dnew", "dnew/x"])
    );
    assert_eq!((done.edits, done.deletions, done.unindexed), (2, 1, 3));
    // An edit on the server's version, hashed at the next look.
    let f1 = index.get(&p("f1")).copied().unwrap();
    assert_eq!(f1.version, 1);
    assert_eq!(f1.hash(), Some(h(1)));
    assert!(matches!(f1.kind, EntryKind::File { stat, .. } if stat.mtime_ns == 0));
    // The deletion made here: indexed as the server's, absent here.
    assert_eq!(
        index.get(&p("f2")).map(|e| (e.version, e.hash())),
        Some((2, Some(h(2))))
    );
    for gone in ["n1", "dnew", "dnew/x"] {
        assert!(index.get(&p(gone)).is_none(), "{gone}: pushed as new");
    }
    assert_eq!(index.get(&p("kept")).map(|e| e.version), Some(2));
}

/// After the restore other devices pushed first: the head passed this
/// device's cursor with other changes under the same numbers.
#[test]
fn changes_made_after_the_restore_are_not_undone() {
    let mut index = index_of(&[("f3", Some(13), 8), ("same", Some(40), 6), ("d", None, 7)]);
    let listing = vec![
        dir("d", 5),
        dir("old", 2),
        file("f3", 99, 5),
        file("g", 50, 4),
        file("old/a", 60, 2),
        file("old/new", 61, 6),
        file("same", 40, 9),
        dir("gone", 1),
    ];
    let on_disk = dirty(&["f3", "same", "d"]);
    let done = reconcile(&listing, &mut index, 3, &Known::new(3), |path| {
        on_disk.contains(path)
    });
    // f3: changed on both sides after the backup: not indexed, so the
    // local copy meets the server's (kept both ways).
    assert!(index.get(&p("f3")).is_none());
    assert!(done.dirty.contains(&p("f3")));
    // g and old/new came after the restore: left to be downloaded.
    assert!(index.get(&p("g")).is_none());
    assert!(index.get(&p("old/new")).is_none());
    // old/a and gone were deleted here; old holds new content: it stays.
    assert_eq!(index.get(&p("old/a")).map(|e| e.version), Some(2));
    assert_eq!(index.get(&p("gone")).map(|e| e.version), Some(1));
    assert!(index.get(&p("old")).is_none());
    // The same content on both sides takes the server's version.
    assert_eq!(index.get(&p("same")).map(|e| e.version), Some(9));
    assert_eq!(index.get(&p("d")).map(|e| e.version), Some(5));
    assert_eq!(done.dirty, dirty(&["f3", "old/a", "gone"]));
    assert_eq!(done.agreed, 2);
}

/// A device that saw nothing the server lost changes nothing.
#[test]
fn a_device_at_or_before_the_common_point_is_untouched() {
    let mut index = index_of(&[("a", Some(1), 2), ("d", None, 3)]);
    let before = index.clone();
    let listing = vec![dir("d", 3), file("a", 1, 2), file("b", 2, 3)];
    let done = reconcile(&listing, &mut index, 3, &Known::new(3), |_| false);
    // b: made by 3 and absent here, not indexed: it was deleted here.
    assert_eq!(done.deletions, 1);
    let mut want = before;
    want.insert(
        p("b"),
        Entry {
            kind: EntryKind::File {
                stat: untrusted(1, false),
                hash: h(2),
            },
            version: 3,
        },
    );
    assert_eq!(index, want);
}
