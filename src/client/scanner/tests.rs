//! The scanner against temporary folders: offline edits, renames, unstable files.

use super::hashing::keeps_manifest;
use super::*;
use crate::chunk::MIN_CHUNK;
use crate::client::error::ClientError;
use crate::client::fsutil::{check_path, Local};
use crate::client::index::{EntryKind, Index};
use crate::fsafe::hash_file;
use crate::protocol::ContentHash;
use std::fs;

fn p(s: &str) -> WirePath {
    WirePath::new(s).unwrap()
}

/// Indexes the folder as it is now, every entry at version 1.
fn index_of(root: &Path) -> Index {
    let mut scanner = Scanner::new(root);
    let mut index = Index::new();
    for (path, entry) in scanner.scan(None).unwrap() {
        let kind = match entry {
            DiskEntry::Dir => EntryKind::Dir,
            DiskEntry::File(stat) => EntryKind::File {
                stat,
                hash: hash_file(&path.to_local(root)).unwrap().0,
            },
        };
        index.insert(path, Entry { kind, version: 1 });
    }
    index
}

fn settle() {
    std::thread::sleep(SETTLE + Duration::from_millis(20));
}

fn full() -> Scope {
    Scope {
        full: true,
        ..Scope::default()
    }
}

#[test]
fn new_tree_is_planned_parents_first_and_skips_symlinks_and_state() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::create_dir_all(root.join("a/empty")).unwrap();
    fs::create_dir_all(root.join(".cloudservice/tmp")).unwrap();
    fs::write(root.join("a/ünï cödé.txt"), "x").unwrap();
    fs::write(root.join("zero"), "").unwrap();
    std::os::unix::fs::symlink("/etc", root.join("link")).unwrap();
    settle();
    let plan = Scanner::new(root).plan(&Index::new(), &full()).unwrap();
    let paths: Vec<String> = plan
        .ops
        .iter()
        .map(|op| match op {
            Op::MakeDir { path } => format!("mkdir {path}"),
            Op::Upload { path, base, .. } => format!("up {path} {base}"),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        paths,
        [
            "mkdir a",
            "mkdir a/empty",
            "up a/ünï cödé.txt 0",
            "up zero 0"
        ]
    );
}

#[test]
fn offline_changes_become_pushes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::create_dir_all(root.join("d/sub")).unwrap();
    fs::create_dir_all(root.join("gone/deep")).unwrap();
    for (f, c) in [
        ("keep", "k"),
        ("edit", "e1"),
        ("del", "d"),
        ("mv-src", "moved content"),
        ("d/sub/f", "f"),
        ("gone/deep/g", "g"),
        ("touched", "t"),
    ] {
        fs::write(root.join(f), c).unwrap();
    }
    let index = index_of(root);
    // `new` is made before anything is removed: ext4 hands a new file the
    // inode a removal just freed (here 300 of 300 times for `rm a; touch
    // b` in one directory), and a new file on the inode of `del` or
    // `gone/deep/g` is that file moved and edited: a Rename, not
    // a Delete and an upload. Which freed inode `new` got depended on what
    // the tests running beside this one allocated meanwhile, so the test
    // failed now and then under load.
    fs::write(root.join("new"), "n").unwrap();
    fs::write(root.join("edit"), "e2 longer").unwrap();
    fs::remove_file(root.join("del")).unwrap();
    fs::rename(root.join("mv-src"), root.join("d/mv-dst")).unwrap();
    fs::remove_dir_all(root.join("gone")).unwrap();
    fs::write(root.join("touched"), "t").unwrap();
    settle();
    let plan = Scanner::new(root).plan(&index, &full()).unwrap();
    assert!(!plan.renames_only);
    let find = |want: &str| plan.ops.iter().any(|op| format!("{op:?}").contains(want));
    assert!(plan.ops.contains(&Op::Rename {
        from: p("mv-src"),
        to: p("d/mv-dst"),
        base: 1
    }));
    assert!(plan.ops.contains(&Op::Delete {
        path: p("del"),
        base: 1
    }));
    assert!(plan.ops.contains(&Op::RemoveDir { path: p("gone") }));
    assert!(find("Upload { path: WirePath(\"edit\"), base: 1"));
    assert!(find("Upload { path: WirePath(\"new\"), base: 0"));
    assert_eq!(plan.ops.len(), 5, "{:?}", plan.ops);
    assert_eq!(plan.refreshed.len(), 1);
    assert_eq!(plan.refreshed[0].0, p("touched"));
}

#[test]
fn directory_rename_is_one_rename_and_partial_scope_works() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::create_dir_all(root.join("photos/2024")).unwrap();
    for i in 0..5 {
        fs::write(root.join(format!("photos/2024/{i}.jpg")), format!("img{i}")).unwrap();
    }
    let index = index_of(root);
    fs::create_dir(root.join("archive")).unwrap();
    fs::rename(root.join("photos"), root.join("archive/pics")).unwrap();
    let mut scope = Scope::default();
    scope.add(p("photos"));
    scope.add(p("archive/pics"));
    let plan = Scanner::new(root).plan(&index, &scope).unwrap();
    assert!(plan.renames_only);
    assert_eq!(
        plan.ops,
        [Op::Rename {
            from: p("photos"),
            to: p("archive/pics"),
            base: 1
        }]
    );
    let mut moved = index.clone();
    moved.rebase(&p("photos"), &p("archive/pics"), Some(2));
    let plan = Scanner::new(root).plan(&moved, &scope).unwrap();
    assert_eq!(plan.ops, [Op::MakeDir { path: p("archive") }]);
}

#[test]
fn file_being_written_is_not_pushed_yet() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("busy"), "half").unwrap();
    let plan = Scanner::new(dir.path())
        .plan(&Index::new(), &full())
        .unwrap();
    assert!(plan.ops.is_empty());
    assert_eq!(plan.unstable, [p("busy")]);
}

#[test]
fn vanished_root_is_an_error_not_a_deletion() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("sync");
    fs::create_dir(&root).unwrap();
    fs::write(root.join("f"), "x").unwrap();
    let index = index_of(&root);
    fs::remove_dir_all(&root).unwrap();
    let err = Scanner::new(&root).plan(&index, &full()).unwrap_err();
    assert!(matches!(err, ClientError::FolderVanished(_)));
}

/// What can take the place of a synced file or directory and is not
/// synced itself.
#[derive(Clone, Copy, Debug)]
enum Odd {
    Symlink,
    DanglingSymlink,
    Fifo,
    Socket,
    CharDevice,
}

/// Makes `odd` at `at`; false when this system does not let the test make
/// it (a device node needs CAP_MKNOD).
fn make(odd: Odd, at: &Path) -> bool {
    match odd {
        Odd::Symlink => std::os::unix::fs::symlink("/tmp", at).unwrap(),
        Odd::DanglingSymlink => std::os::unix::fs::symlink("/nonexistent/x", at).unwrap(),
        Odd::Fifo => rustix::fs::mknodat(
            rustix::fs::CWD,
            at,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap(),
        Odd::Socket => {
            // The socket file outlives the listener.
            std::os::unix::net::UnixListener::bind(at).unwrap();
        }
        Odd::CharDevice => {
            let made = rustix::fs::mknodat(
                rustix::fs::CWD,
                at,
                rustix::fs::FileType::CharacterDevice,
                rustix::fs::Mode::from_raw_mode(0o600),
                rustix::fs::makedev(1, 3),
            );
            return made.is_ok();
        }
    }
    true
}

/// A synced file or directory replaced by a symlink, FIFO, socket or
/// device is gone from this device: its deletion is planned, in a full
/// scan and when the watcher names the path, whatever took its place
/// (breaker13's L3: a FIFO kept the file everywhere and a socket deleted
/// it; a directory replaced by a symlink kept its files everywhere). The
/// RemoveDir's cursor stays below what the applier holds back behind the
/// new thing.
#[test]
fn a_file_or_directory_replaced_by_a_symlink_or_special_file_is_deleted() {
    let odds = [
        Odd::Symlink,
        Odd::DanglingSymlink,
        Odd::Fifo,
        Odd::Socket,
        Odd::CharDevice,
    ];
    for odd in odds {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("d/sub")).unwrap();
        fs::write(root.join("d/sub/f"), "x").unwrap();
        fs::write(root.join("f.txt"), "file").unwrap();
        fs::write(root.join("keep"), "k").unwrap();
        settle();
        let index = index_of(root);
        fs::remove_dir_all(root.join("d")).unwrap();
        fs::remove_file(root.join("f.txt")).unwrap();
        if !make(odd, &root.join("d")) {
            continue;
        }
        make(odd, &root.join("f.txt"));
        let scoped = Scope {
            full: false,
            paths: [p("d"), p("d/sub/f"), p("f.txt")].into_iter().collect(),
            ..Scope::default()
        };
        for scope in [full(), scoped] {
            let plan = Scanner::new(root).plan(&index, &scope).unwrap();
            let mut ops = plan.ops.clone();
            ops.sort_by_key(|op| format!("{op:?}"));
            assert_eq!(
                ops,
                vec![
                    Op::Delete {
                        path: p("f.txt"),
                        base: 1
                    },
                    Op::RemoveDir { path: p("d") },
                ],
                "{odd:?} {scope:?}"
            );
            assert!(plan.unstable.is_empty(), "{odd:?}");
        }
    }
}

#[test]
fn a_file_just_written_waits_unless_its_writer_closed_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let index = Index::default();
    fs::write(root.join("fresh.txt"), b"just written").unwrap();
    let mut scope = Scope::default();
    scope.add(p("fresh.txt"));
    let plan = Scanner::new(root).plan(&index, &scope).unwrap();
    assert_eq!(plan.unstable, vec![p("fresh.txt")]);
    assert!(plan.ops.is_empty());

    scope.add_settled(p("fresh.txt"));
    let plan = Scanner::new(root).plan(&index, &scope).unwrap();
    assert!(plan.unstable.is_empty());
    assert!(
        matches!(plan.ops.as_slice(), [Op::Upload { path, .. }] if *path == p("fresh.txt")),
        "{:?}",
        plan.ops
    );
    // A later write takes the settled mark away again.
    scope.add(p("fresh.txt"));
    assert!(scope.settled.is_empty());
}

/// Sets a file's mtime to `ns` nanoseconds since the epoch.
fn set_mtime(path: &Path, ns: i64) {
    let when = std::time::UNIX_EPOCH + Duration::from_nanos(ns as u64);
    fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(when)
        .unwrap();
}

#[test]
fn a_file_dated_in_the_future_goes_once_it_stops_changing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let index = Index::default();
    let hour = 3_600_000_000_000i64;
    let year_2100 = 4_102_444_800_000_000_000i64;
    fs::write(root.join("ahead.txt"), b"an hour ahead").unwrap();
    set_mtime(
        &root.join("ahead.txt"),
        crate::client::fsutil::now_ns() + hour,
    );
    fs::write(root.join("y2100.txt"), b"far ahead").unwrap();
    set_mtime(&root.join("y2100.txt"), year_2100);
    let mut scanner = Scanner::new(root);
    // No close-after-write seen (a start-up scan): the first look waits...
    let plan = scanner.plan(&index, &full()).unwrap();
    assert_eq!(plan.unstable, vec![p("ahead.txt"), p("y2100.txt")]);
    // ...and an equal look SETTLE later pushes both, whatever their dates.
    settle();
    let plan = scanner.plan(&index, &full()).unwrap();
    assert!(plan.unstable.is_empty(), "{:?}", plan.unstable);
    let uploads: Vec<&WirePath> = plan.ops.iter().map(Op::path).collect();
    assert_eq!(uploads, vec![&p("ahead.txt"), &p("y2100.txt")]);
    // With a close-after-write event it goes at once.
    let mut scope = Scope::default();
    scope.add_settled(p("y2100.txt"));
    let plan = Scanner::new(root).plan(&index, &scope).unwrap();
    assert_eq!(plan.ops.len(), 1, "{:?}", plan);
}

/// The index must not trust a stat recorded moments after a write, even
/// when the content matched what was synced: a same-size rewrite in the same
/// timestamp tick (or one that puts the mtime back) would pass for it.
#[test]
fn a_refreshed_stat_taken_right_after_a_write_is_not_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let f = root.join("f.txt");
    fs::write(&f, b"aaaa").unwrap();
    let mut index = index_of(root);
    // As after an acknowledgement within the settle window: mtime untrusted.
    if let Some(Entry {
        kind: EntryKind::File { stat, .. },
        ..
    }) = index.get(&p("f.txt")).copied()
    {
        let kind = EntryKind::File {
            stat: Stat {
                mtime_ns: 0,
                ..stat
            },
            hash: ContentHash::of(b"aaaa"),
        };
        index.insert(p("f.txt"), Entry { kind, version: 1 });
    }
    fs::write(&f, b"aaaa").unwrap();
    let mut scope = Scope::default();
    scope.add_settled(p("f.txt"));
    let plan = Scanner::new(root).plan(&index, &scope).unwrap();
    assert!(plan.ops.is_empty(), "{:?}", plan.ops);
    for (path, entry) in plan.refreshed {
        index.insert(path, entry);
    }
    // Rewritten with the same size, the mtime put back as it was.
    let before = fs::metadata(&f).unwrap();
    fs::write(&f, b"bbbb").unwrap();
    set_mtime(&f, crate::client::fsutil::mtime_ns(&before));
    let mut scope = Scope::default();
    scope.add_settled(p("f.txt"));
    let plan = Scanner::new(root).plan(&index, &scope).unwrap();
    assert!(
        matches!(plan.ops.as_slice(), [Op::Upload { hash, .. }] if *hash == ContentHash::of(b"bbbb")),
        "the rewrite was not seen: {:?}",
        plan.ops
    );
}

/// Issue 11: the scan cuts the chunk list of every file that may go as a
/// delta in the read that hashes it, and hands it over once, only for the
/// stat and hash it was read at; random sizes around the threshold.
#[test]
fn the_scan_keeps_each_delta_files_chunk_list_from_its_one_read() {
    use crate::chunk::manifest_of_reader;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let min = MIN_CHUNK as usize;
    let sizes = [
        0,
        1,
        min - 1,
        min,
        min + 1,
        3 * min + 17,
        700_000,
        2_500_001,
    ];
    for (i, size) in sizes.iter().enumerate() {
        fs::write(
            root.join(format!("f{i}")),
            crate::chunk::test_bytes(*size, i as u64),
        )
        .unwrap();
    }
    settle();
    let mut scanner = Scanner::new(root);
    let plan = scanner.plan(&Index::new(), &full()).unwrap();
    let mut uploads = 0;
    for op in &plan.ops {
        let Op::Upload {
            path, stat, hash, ..
        } = op
        else {
            continue;
        };
        uploads += 1;
        let other = ContentHash([7; 32]);
        assert!(scanner.take_manifest(path, *stat, other).is_none());
        // A refused take does not consume it; the right one comes once.
        let kept = scanner.take_manifest(path, *stat, *hash);
        let bytes = fs::read(path.to_local(root)).unwrap();
        if keeps_manifest(stat.size) {
            let kept = kept.unwrap_or_else(|| panic!("no chunk list for {path}"));
            assert_eq!(kept, manifest_of_reader(&bytes[..]).unwrap(), "{path}");
            assert!(scanner.take_manifest(path, *stat, *hash).is_none());
        } else {
            assert!(kept.is_none(), "{path} is sent whole");
        }
    }
    assert_eq!(uploads, sizes.len());

    // Read at another stat (the file changed after the scan): not handed.
    fs::write(root.join("f7"), crate::chunk::test_bytes(2_500_001, 99)).unwrap();
    settle();
    let plan = scanner.plan(&Index::new(), &full()).unwrap();
    let (path, stat, hash) = plan
        .ops
        .iter()
        .find_map(|op| match op {
            Op::Upload {
                path, stat, hash, ..
            } if path.as_str() == "f7" => Some((path.clone(), *stat, *hash)),
            _ => None,
        })
        .unwrap();
    let moved = Stat {
        mtime_ns: stat.mtime_ns + 1,
        ..stat
    };
    assert!(scanner.take_manifest(&path, moved, hash).is_none());
    let kept = scanner.take_manifest(&path, stat, hash).unwrap();
    assert_eq!(kept.hash, hash);
}

/// A download this client placed a moment ago (so its record is racy and
/// its mtime recent) that a look reaches before the watcher's event of the
/// placement: untouched since its record, it is complete, hashed at once
/// and found unchanged; it is not held as a file still being written
/// (which `cloud-client status` counted "to upload": a joining device
/// showed 19-44 of its last downloads so, until a later look). Written
/// again since its record, it waits as any fresh write does.
#[test]
fn a_file_untouched_since_this_client_recorded_it_is_not_still_being_written() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::write(root.join("placed.txt"), b"downloaded").unwrap();
    fs::write(root.join("written.txt"), b"downloaded").unwrap();
    let mut index = Index::default();
    for name in ["placed.txt", "written.txt"] {
        let Ok(Local::File(stat)) = check_path(root, &p(name)) else {
            panic!("{name} is a file");
        };
        let hash = hash_file(&root.join(name)).unwrap().0;
        index.insert(p(name), Entry::placed_file(stat, Some(stat), hash, 7));
        let Some(EntryKind::File { stat: record, .. }) = index.get(&p(name)).map(|e| e.kind) else {
            panic!("{name} indexed");
        };
        assert_eq!(record.mtime_ns, 0, "a record this fresh is untrusted");
    }
    std::thread::sleep(Duration::from_millis(20));
    fs::write(root.join("written.txt"), b"written here, longer").unwrap();
    let plan = Scanner::new(root).plan(&index, &full()).unwrap();
    assert_eq!(plan.unstable, vec![p("written.txt")]);
    assert!(plan.ops.is_empty(), "{:?}", plan.ops);
    let refreshed: Vec<&WirePath> = plan.refreshed.iter().map(|(path, _)| path).collect();
    assert_eq!(refreshed, [&p("placed.txt")]);
}

/// breaker23 F4: a file moved and edited right before a look is
/// too fresh to be read (it may still be written), so it waits; its old path
/// must wait with it, not go as a Delete (which drops another device's
/// chmod and brings the old name back with another device's edit). Also
/// when the next look covers the old path alone (the pull names it: "changed
/// here and on the server"), a moved directory's fresh file, and a chain
/// `c1 -> c2 -> c3`. Once the files have settled it is one Rename each.
#[test]
fn a_file_moved_and_edited_just_before_a_look_waits_with_its_old_path() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::create_dir_all(root.join("d")).unwrap();
    for f in ["a.bin", "c1.bin", "s.bin", "d/f.bin", "keep"] {
        fs::write(root.join(f), format!("content of {f}\n").repeat(50)).unwrap();
    }
    settle();
    let index = index_of(root);
    settle();
    fs::rename(root.join("a.bin"), root.join("a2.bin")).unwrap();
    append_to(&root.join("a2.bin"), "more\n");
    fs::rename(root.join("c1.bin"), root.join("c2.bin")).unwrap();
    fs::rename(root.join("c2.bin"), root.join("c3.bin")).unwrap();
    append_to(&root.join("c3.bin"), "more\n");
    fs::rename(root.join("s.bin"), root.join("s2.bin")).unwrap();
    fs::OpenOptions::new()
        .write(true)
        .open(root.join("s2.bin"))
        .unwrap()
        .set_len(10)
        .unwrap();
    let mut scanner = Scanner::new(root);
    let plan = scanner.plan(&index, &full()).unwrap();
    let removes: Vec<&Op> = plan.ops.iter().filter(|op| op.removes()).collect();
    assert!(removes.is_empty(), "{:?}", plan.ops);
    for path in ["a.bin", "a2.bin", "c1.bin", "c3.bin", "s.bin", "s2.bin"] {
        assert!(
            plan.unstable.contains(&p(path)),
            "{path}: {:?}",
            plan.unstable
        );
    }
    // The old path alone, as a pull names it: still no Delete.
    let only_old = Scope {
        paths: [p("a.bin")].into(),
        ..Scope::default()
    };
    let plan = scanner.plan(&index, &only_old).unwrap();
    assert!(plan.ops.is_empty(), "{:?}", plan.ops);
    assert!(plan.unstable.contains(&p("a2.bin")), "{:?}", plan.unstable);
    settle();
    let plan = scanner.plan(&index, &full()).unwrap();
    let renames: Vec<(String, String)> = plan
        .ops
        .iter()
        .filter_map(|op| match op {
            Op::Rename { from, to, .. } => Some((from.to_string(), to.to_string())),
            _ => None,
        })
        .collect();
    for (from, to) in [
        ("a.bin", "a2.bin"),
        ("c1.bin", "c3.bin"),
        ("s.bin", "s2.bin"),
    ] {
        assert!(
            renames.contains(&(from.to_owned(), to.to_owned())),
            "{from} -> {to}: {:?}",
            plan.ops
        );
    }
    assert!(!plan.ops.iter().any(Op::removes), "{:?}", plan.ops);

    // A moved directory with a fresh file: the directory goes as a Rename
    // at once (its files are matched by inode, fresh or not), the file's
    // edit after it.
    let index = index_of(root);
    settle();
    fs::rename(root.join("d"), root.join("e")).unwrap();
    append_to(&root.join("e/f.bin"), "more\n");
    let plan = scanner.plan(&index, &full()).unwrap();
    assert_eq!(
        plan.ops,
        vec![Op::Rename {
            from: p("d"),
            to: p("e"),
            base: 1
        }]
    );
}

fn append_to(path: &Path, text: &str) {
    use std::io::Write;
    let mut f = fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}
