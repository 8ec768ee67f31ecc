//! Restores and the executable bit (§14.1, §14.3): a version is content
//! and bit, so a restore places both as ONE change, and the only version
//! it keeps is what was at the path before it (a state the file really
//! had), never the restored content with the other bit.

use super::{DataPaths, UserStore};
use crate::protocol::{KeptKind, KeptVersion, ListVersions, PushStatus, UserId, WirePath};
use std::os::unix::fs::PermissionsExt;

fn p(s: &str) -> WirePath {
    WirePath::new(s).expect("test path")
}

fn open(dir: &std::path::Path) -> UserStore {
    let paths = DataPaths {
        base: dir.to_path_buf(),
    };
    UserStore::open(&paths, &UserId([6; 16]), true, false)
        .expect("open store")
        .0
}

/// Puts `content` at `path` with the bit `x`, as a device's pushes would
/// (an upload, then a SetMode when the bit is wanted and differs).
fn put(store: &mut UserStore, path: &str, content: &[u8], x: bool) {
    let base = store.tree().get(&p(path)).map_or(0, |n| n.version);
    let staged = store.stage(&p(path), base, content);
    let ack = store
        .commit_file(base, &p(path), staged, 1)
        .expect("commit");
    if store.tree().is_executable(&p(path)) != x {
        store.set_mode(ack.version, &p(path), x, 1).expect("chmod");
    }
}

fn kept(store: &UserStore) -> Vec<KeptVersion> {
    let mut all = Vec::new();
    let mut request = ListVersions {
        after_seq: 0,
        after: None,
        under: None,
    };
    loop {
        let page = store.list_versions(&request).expect("list");
        all.extend(page.entries.iter().cloned());
        match (page.more, page.entries.last()) {
            (true, Some(last)) => {
                request.after_seq = last.seq;
                request.after = Some(last.path.clone());
            }
            _ => return all,
        }
    }
}

/// (content, bit) of a kept file entry.
fn state_of(entry: &KeptVersion, store: &UserStore) -> (Vec<u8>, bool) {
    match entry.kind {
        KeptKind::File {
            hash, executable, ..
        } => {
            let object = store.versions.object(&hash);
            (std::fs::read(object).expect("object"), executable)
        }
        KeptKind::Dir => panic!("a directory"),
    }
}

/// (content, bit) on disk and in the tree, which must agree.
fn on_disk(store: &UserStore, path: &str) -> Option<(Vec<u8>, bool)> {
    let local = p(path).to_local(store.root());
    let content = std::fs::read(&local).ok()?;
    let mode = std::fs::metadata(&local)
        .expect("meta")
        .permissions()
        .mode();
    let x = mode & 0o100 != 0;
    assert_eq!(store.tree().is_executable(&p(path)), x, "tree vs disk bit");
    Some((content, x))
}

/// Every combination of what is at the path now (nothing, the same
/// content with either bit, other content with either bit, a directory
/// removed with it) and the kept version's bit: the restore is one change
/// (or none when everything is as it was), the file has the kept content
/// and bit, and the versions it kept are exactly the states the path had.
#[test]
fn a_restore_is_one_change_with_content_and_bit_and_keeps_no_phantom() {
    // (what is there now: None = deleted, Some((same content?, bit))).
    let nows: [Option<(bool, bool)>; 5] = [
        None,
        Some((true, false)),
        Some((true, true)),
        Some((false, false)),
        Some((false, true)),
    ];
    for kept_x in [false, true] {
        for now in nows {
            for in_removed_dir in [false, true] {
                if in_removed_dir && now.is_some() {
                    continue;
                }
                let case = format!("kept x={kept_x}, now={now:?}, dir removed={in_removed_dir}");
                let dir = tempfile::tempdir().expect("tempdir");
                let mut store = open(dir.path());
                let path = if in_removed_dir { "d/s.sh" } else { "s.sh" };
                put(&mut store, path, b"#!/bin/sh\nold\n", kept_x);
                // Displace the version to restore.
                let version = store.tree().get(&p(path)).expect("file").version;
                if in_removed_dir {
                    store.remove_dir(store.head(), &p("d"), 1).expect("rmdir");
                } else {
                    store.delete_file(version, &p(path), 1).expect("delete");
                }
                let displaced_by = store.head();
                if let Some((same, x)) = now {
                    let content: &[u8] = if same { b"#!/bin/sh\nold\n" } else { b"new\n" };
                    put(&mut store, path, content, x);
                }
                let before = on_disk(&store, path);
                let kept_before = kept(&store).len();
                let head = store.head();
                let top = if in_removed_dir { "d" } else { path };
                let ack = store
                    .restore(displaced_by, &p(top))
                    .unwrap_or_else(|e| panic!("{case}: {e}"));
                let want = (b"#!/bin/sh\nold\n".to_vec(), kept_x);
                assert_eq!(on_disk(&store, path), Some(want.clone()), "{case}");
                let changes = store.head() - head;
                let new_kept: Vec<KeptVersion> = kept(&store).split_off(kept_before);
                if before.as_ref() == Some(&want) {
                    assert_eq!(ack.status, PushStatus::Unchanged, "{case}");
                    assert_eq!(changes, 0, "{case}");
                    assert!(new_kept.is_empty(), "{case}: {new_kept:?}");
                    continue;
                }
                assert_eq!(ack.status, PushStatus::Applied, "{case}");
                // The directory (when removed) and the file: one change each.
                let expected = if in_removed_dir { 2 } else { 1 };
                assert_eq!(changes, expected, "{case}: changes");
                assert_eq!(ack.version, store.head(), "{case}");
                // What the restore displaced: the state before it, once.
                let displaced: Vec<(Vec<u8>, bool)> =
                    new_kept.iter().map(|e| state_of(e, &store)).collect();
                let want_kept: Vec<(Vec<u8>, bool)> = before.into_iter().collect();
                assert_eq!(displaced, want_kept, "{case}: kept by the restore");
            }
        }
    }
}

/// A directory restore brings each file back with its bit as one change
/// each, keeps nothing (nothing was there), and a second restore changes
/// nothing.
#[test]
fn a_directory_of_executables_comes_back_one_change_per_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = open(dir.path());
    put(&mut store, "bin/a.sh", b"a", true);
    put(&mut store, "bin/b.txt", b"b", false);
    put(&mut store, "bin/sub/c.sh", b"c", true);
    store.remove_dir(store.head(), &p("bin"), 1).expect("rmdir");
    let removed = store.head();
    let kept_before = kept(&store).len();
    let head = store.head();
    store.restore(removed, &p("bin")).expect("restore");
    // bin, bin/sub, and one change per file.
    assert_eq!(store.head() - head, 5);
    assert_eq!(on_disk(&store, "bin/a.sh"), Some((b"a".to_vec(), true)));
    assert_eq!(on_disk(&store, "bin/b.txt"), Some((b"b".to_vec(), false)));
    assert_eq!(on_disk(&store, "bin/sub/c.sh"), Some((b"c".to_vec(), true)));
    assert_eq!(kept(&store).len(), kept_before, "no phantom versions");
    let again = store.restore(removed, &p("bin")).expect("again");
    assert_eq!(again.status, PushStatus::Unchanged);
}

/// The bit travels with the change in the journal: a reopened store has
/// the restored file with its bit at the one change's version.
#[test]
fn the_restored_bit_survives_a_reopen_and_is_one_change() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = open(dir.path());
    put(&mut store, "s.sh", b"#!/bin/sh\n", true);
    let v = store.tree().get(&p("s.sh")).expect("file").version;
    store.delete_file(v, &p("s.sh"), 1).expect("delete");
    let deleted = store.head();
    let ack = store.restore(deleted, &p("s.sh")).expect("restore");
    assert_eq!(ack.version, deleted + 1);
    store.close().expect("close");
    let store = open(dir.path());
    assert_eq!(store.head(), deleted + 1);
    let node = store.tree().get(&p("s.sh")).expect("restored");
    assert_eq!(node.version, deleted + 1);
    assert!(store.tree().is_executable(&p("s.sh")));
    // A pull from before the restore lists it once, executable.
    let listing = store.changes_since(deleted);
    let entries: Vec<_> = listing
        .entries
        .iter()
        .filter(|e| e.path == p("s.sh"))
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert!(entries[0].executable);
    assert_eq!(entries[0].version, deleted + 1);
}
