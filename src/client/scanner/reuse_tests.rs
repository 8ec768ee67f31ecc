//! The scanner against a real ext4-style inode reuse (PROTOCOL.md ):
//! a file made on the inode number of a file just removed is a new file,
//! unless the index has no birth times (an older index: the inode alone).

use super::*;
use crate::client::index::{EntryKind, Index};
use crate::fsafe::hash_file;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::time::UNIX_EPOCH;

fn p(s: &str) -> WirePath {
    WirePath::new(s).unwrap()
}

/// The folder indexed as it is now, every file at version 1; with
/// `births` false, as an index written before birth times were kept.
fn index_of(root: &Path, births: bool) -> Index {
    let mut index = Index::new();
    for (path, entry) in Scanner::new(root).scan(None).unwrap() {
        if let DiskEntry::File(mut stat) = entry {
            if !births {
                stat.btime_ns = 0;
            }
            let hash = hash_file(&path.to_local(root)).unwrap().0;
            let kind = EntryKind::File { stat, hash };
            index.insert(path, Entry { kind, version: 1 });
        }
    }
    index
}

/// A folder of `a` and `m`, indexed with birth times and without, then
/// `rm a; echo new > b`: `None` unless `b` got `a`'s freed inode number
/// (ext4 hands it out again at once, unless a test beside this one
/// allocated first).
fn removed_and_reused() -> Option<(tempfile::TempDir, Index, Index)> {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::write(root.join("a"), "a as indexed").unwrap();
    fs::write(root.join("m"), "m stays").unwrap();
    std::thread::sleep(SETTLE + Duration::from_millis(20));
    let (index, old_index) = (index_of(root, true), index_of(root, false));
    let was = fs::metadata(root.join("a")).unwrap().ino();
    fs::remove_file(root.join("a")).unwrap();
    fs::write(root.join("b"), "a new file").unwrap();
    let reused = fs::metadata(root.join("b")).unwrap().ino() == was;
    std::thread::sleep(SETTLE + Duration::from_millis(20));
    reused.then_some((dir, index, old_index))
}

#[test]
fn a_new_file_on_a_removed_files_inode_is_a_delete_and_an_upload() {
    let (dir, index, old_index) = (0..10)
        .find_map(|_| removed_and_reused())
        .expect("a freed inode number reused in one of 10 tries");
    let root = dir.path();
    let born = fs::metadata(root.join("b")).unwrap().created().is_ok();
    let full = Scope {
        full: true,
        ..Scope::default()
    };
    let ops = |index: &Index| -> Vec<String> {
        let plan = Scanner::new(root).plan(index, &full).unwrap();
        plan.ops
            .iter()
            .map(|op| match op {
                Op::Upload { path, base, .. } => format!("up {path} {base}"),
                Op::Delete { path, base } => format!("rm {path} {base}"),
                Op::Rename { from, to, base } => format!("mv {from} {to} {base}"),
                other => format!("{other:?}"),
            })
            .collect()
    };
    if born {
        assert_eq!(ops(&index), ["up b 0", "rm a 1"]);
    } else {
        eprintln!("SKIPPED the birth time half: this file system gives none");
    }
    // An index without birth times: today's rule, the inode alone.
    assert_eq!(ops(&old_index), ["mv a b 1"]);
}

#[test]
fn an_unchanged_file_of_an_older_index_learns_its_birth_time_unread() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::write(root.join("m"), "m stays").unwrap();
    let Ok(created) = fs::metadata(root.join("m")).unwrap().created() else {
        eprintln!("SKIPPED: this file system gives no birth time");
        return;
    };
    let born = created.duration_since(UNIX_EPOCH).unwrap().as_nanos() as i64;
    std::thread::sleep(SETTLE + Duration::from_millis(20));
    let old_index = index_of(root, false);
    let full = Scope {
        full: true,
        ..Scope::default()
    };
    let plan = Scanner::new(root).plan(&old_index, &full).unwrap();
    assert!(plan.ops.is_empty(), "{:?}", plan.ops);
    let Some(EntryKind::File { stat: was, .. }) = old_index.get(&p("m")).map(|e| e.kind) else {
        panic!("indexed");
    };
    let [(path, entry)] = &plan.refreshed[..] else {
        panic!("{:?}", plan.refreshed);
    };
    let want = Stat {
        btime_ns: born,
        ..was
    };
    assert_eq!(path, &p("m"));
    assert_eq!(
        entry.kind,
        EntryKind::File {
            stat: want,
            hash: entry.hash().unwrap()
        }
    );
    assert_eq!(entry.version, 1);
}
