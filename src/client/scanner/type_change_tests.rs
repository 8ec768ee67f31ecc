//! The scanner when a directory was replaced by a file (`rm -r conf; mv
//! conf.new conf`) and the watcher names paths that were below it.

use super::*;
use crate::client::fsutil::{check_path, Local};
use crate::client::index::{EntryKind, Index};
use crate::protocol::ContentHash;
use std::fs;

fn p(s: &str) -> WirePath {
    WirePath::new(s).unwrap()
}

/// A stat record with this size and mtime (the other fields, if any, from
/// a real directory).
fn stat(size: u64, mtime_ns: i64) -> Stat {
    let mut stat = Stat::of(&std::fs::metadata(".").unwrap());
    stat.size = size;
    stat.mtime_ns = mtime_ns;
    stat
}

fn dir(version: u64) -> Entry {
    Entry {
        kind: EntryKind::Dir,
        version,
    }
}

#[test]
fn a_path_below_what_is_now_a_file_is_gone_not_unreadable() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    fs::write(root.join("conf"), "new").unwrap();
    let mut scanner = Scanner::new(root);
    assert!(scanner.scan(Some(&p("conf/a.ini"))).unwrap().is_empty());
    assert!(scanner.unreadable.is_empty(), "gone, not unknown");
    assert!(
        scanner.warned.is_empty(),
        "no warning about a vanished file"
    );
}

#[test]
fn a_directory_replaced_by_a_renamed_file_removes_the_directory_first() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    fs::write(root.join("conf"), "new").unwrap();
    let now = match check_path(root, &p("conf")).unwrap() {
        Local::File(now) => now,
        other => panic!("{other:?}"),
    };
    std::thread::sleep(SETTLE + Duration::from_millis(20));
    let hash = ContentHash::of(b"new");
    let mut index = Index::new();
    index.insert(p("conf"), dir(1));
    let old_file = |version| Entry {
        kind: EntryKind::File {
            stat: stat(3, 1),
            hash: ContentHash::of(b"old"),
        },
        version,
    };
    index.insert(p("conf/a.ini"), old_file(1));
    index.insert(
        p("conf.new"),
        Entry {
            kind: EntryKind::File { stat: now, hash },
            version: 2,
        },
    );
    let mut scope = Scope::default();
    for path in ["conf", "conf/a.ini", "conf.new"] {
        scope.add(p(path));
    }
    let plan = Scanner::new(root).plan(&index, &scope).unwrap();
    assert_eq!(
        plan.ops,
        vec![
            Op::RemoveDir { path: p("conf") },
            Op::Rename {
                from: p("conf.new"),
                to: p("conf"),
                base: 2
            },
        ]
    );
}
