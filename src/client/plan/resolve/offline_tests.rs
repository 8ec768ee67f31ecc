//! The start-up comparison of a folder changed while its client was stopped
//! (outside tester breaker9's finding 2, R-7.2.5): directories whose files
//! have the same names and sizes (`d1/f0.txt`, `d2/f0.txt`: "base 1 0",
//! "base 2 0"), untrusted records (mtime 0, as right after a download), and a
//! random mix of `rm -rf`, directory renames, file renames, edits (same
//! size), deletions and new files (some a copy of an indexed file). The
//! planner's rounds (renames alone first, as the scanner does) are applied
//! to an in-memory server until nothing is left. Checked: the server ends
//! with the folder; every Rename is a move the user made (a directory to its
//! new name, a file to the path its inode is at now), never one of a removed
//! directory or file; an unedited moved file is never uploaded.

use super::*;
use crate::client::plan::order;
use proptest::prelude::*;

fn p(s: &str) -> WirePath {
    WirePath::new(s).unwrap()
}

/// What the user did to one indexed directory while the client was off.
#[derive(Debug, Clone, Copy)]
enum DirDid {
    Keep,
    RemoveAll,
    Rename,
}

/// What the user did to one indexed file (in a directory not removed).
#[derive(Debug, Clone, Copy)]
enum FileDid {
    Keep,
    Edit,
    Rename,
    RenameAndEdit,
    Delete,
}

#[derive(Debug, Clone)]
struct Offline {
    files_per_dir: usize,
    dirs: Vec<DirDid>,
    files: Vec<FileDid>,
    /// (directory, which indexed file's content to copy; out of range: new content).
    new_files: Vec<(usize, usize)>,
}

fn offline() -> impl Strategy<Value = Offline> {
    (2usize..6, 1usize..5).prop_flat_map(|(dirs, per)| {
        let dir = prop_oneof![
            Just(DirDid::Keep),
            Just(DirDid::RemoveAll),
            Just(DirDid::Rename)
        ];
        let file = prop_oneof![
            3 => Just(FileDid::Keep),
            1 => Just(FileDid::Edit),
            1 => Just(FileDid::Rename),
            1 => Just(FileDid::RenameAndEdit),
            1 => Just(FileDid::Delete),
        ];
        (
            proptest::collection::vec(dir, dirs),
            proptest::collection::vec(file, dirs * per),
            proptest::collection::vec((0..dirs, 0..dirs * per + 1), 0..4),
        )
            .prop_map(move |(dirs, files, new_files)| Offline {
                files_per_dir: per,
                dirs,
                files,
                new_files,
            })
    })
}

fn stat(size: usize, ino: u64, mtime_ns: i64) -> Stat {
    Stat {
        size: size as u64,
        mtime_ns,
        ctime_ns: mtime_ns,
        dev: 1,
        ino,
        exec: false,
        btime_ns: 0,
    }
}

/// The folder as the stopped client left it (index) and as the user left it
/// (disk, with each file's content), and the directory renames made.
struct World {
    known: BTreeMap<WirePath, Entry>,
    disk: BTreeMap<WirePath, DiskEntry>,
    content: BTreeMap<WirePath, ContentHash>,
    dir_renamed: BTreeMap<WirePath, WirePath>,
    /// Inodes whose content the user changed or made: the only uploads.
    written: BTreeSet<u64>,
}

fn world(case: &Offline) -> World {
    let per = case.files_per_dir;
    let mut w = World {
        known: BTreeMap::new(),
        disk: BTreeMap::new(),
        content: BTreeMap::new(),
        dir_renamed: BTreeMap::new(),
        written: BTreeSet::new(),
    };
    let mut version = 0;
    let base = |d: usize, f: usize| format!("base {d} {f}\n");
    for (d, did) in case.dirs.iter().enumerate() {
        version += 1;
        let dir = p(&format!("d{d}"));
        w.known.insert(
            dir.clone(),
            Entry {
                kind: EntryKind::Dir,
                version,
            },
        );
        let now_dir = match did {
            DirDid::Keep => Some(dir.clone()),
            DirDid::RemoveAll => None,
            DirDid::Rename => {
                let to = p(&format!("ren{d}"));
                w.dir_renamed.insert(dir.clone(), to.clone());
                Some(to)
            }
        };
        if let Some(at) = &now_dir {
            w.disk.insert(at.clone(), DiskEntry::Dir);
        }
        for f in 0..per {
            version += 1;
            let ino = 100 + (d * per + f) as u64;
            let text = base(d, f);
            let hash = ContentHash::of(text.as_bytes());
            // Downloaded just before the stop: the record is not trusted.
            let record = Entry {
                kind: EntryKind::File {
                    stat: stat(text.len(), ino, 0),
                    hash,
                },
                version,
            };
            w.known.insert(p(&format!("d{d}/f{f}.txt")), record);
            let Some(at) = &now_dir else { continue };
            let (name, edited) = match case.files[d * per + f] {
                FileDid::Keep => (format!("f{f}.txt"), false),
                FileDid::Edit => (format!("f{f}.txt"), true),
                FileDid::Rename => (format!("g{f}.txt"), false),
                FileDid::RenameAndEdit => (format!("g{f}.txt"), true),
                FileDid::Delete => continue,
            };
            let now_text = if edited {
                w.written.insert(ino);
                format!("edit {d} {f}\n")
            } else {
                text
            };
            let path = p(&format!("{at}/{name}"));
            w.disk
                .insert(path.clone(), DiskEntry::File(stat(now_text.len(), ino, 7)));
            w.content.insert(path, ContentHash::of(now_text.as_bytes()));
        }
    }
    for (n, (d, copy)) in case.new_files.iter().enumerate() {
        let at = match case.dirs[*d] {
            DirDid::Keep => format!("d{d}"),
            DirDid::Rename => format!("ren{d}"),
            DirDid::RemoveAll => continue,
        };
        let text = if *copy < case.dirs.len() * per {
            base(copy / per, copy % per)
        } else {
            format!("new {n}\n")
        };
        let ino = 1_000 + n as u64;
        w.written.insert(ino);
        let path = p(&format!("{at}/new{n}.txt"));
        w.disk
            .insert(path.clone(), DiskEntry::File(stat(text.len(), ino, 7)));
        w.content.insert(path, ContentHash::of(text.as_bytes()));
    }
    w
}

/// The uploads the scanner would plan: every file whose content is not the
/// indexed one (the records are untrusted, so each file is hashed).
fn uploads(w: &World) -> Vec<Op> {
    let mut out = Vec::new();
    for (path, entry) in &w.disk {
        let DiskEntry::File(now) = *entry else {
            continue;
        };
        let hash = w.content[path];
        let base = match w.known.get(path) {
            Some(Entry {
                kind: EntryKind::File { hash: old, .. },
                version,
            }) => {
                if *old == hash {
                    continue;
                }
                *version
            }
            _ => 0,
        };
        out.push(Op::Upload {
            path: path.clone(),
            base,
            stat: now,
            hash,
        });
    }
    out
}

/// Server tree: path → content (`None`: a directory).
type Tree = BTreeMap<WirePath, Option<ContentHash>>;

fn make_parents(tree: &mut Tree, path: &WirePath) {
    let mut up = path.parent();
    while let Some(dir) = up {
        tree.entry(dir.clone()).or_insert(None);
        up = dir.parent();
    }
}

/// Applies `op` to the server and to the index as an Applied answer would,
/// checking that the server can apply it as meant (no Stale or Conflict in
/// a world where nobody else changed anything).
fn apply(op: &Op, w: &mut World, server: &mut Tree, version: &mut u64) {
    *version += 1;
    let v = *version;
    let subtree = |t: &Tree, at: &WirePath| -> Vec<WirePath> {
        t.keys().filter(|k| k.is_within(at)).cloned().collect()
    };
    match op {
        Op::Stream { .. } => panic!("a scanner with streams off plans no one-read upload"),
        Op::Rename { from, to, .. } => {
            assert!(server.contains_key(from), "rename of a missing {from}");
            assert!(!server.contains_key(to), "rename onto {to}");
            for k in subtree(server, from) {
                let value = server.remove(&k).unwrap();
                server.insert(k.rebase(from, to).unwrap(), value);
            }
            make_parents(server, to);
            let moved: Vec<WirePath> = w
                .known
                .keys()
                .filter(|k| k.is_within(from))
                .cloned()
                .collect();
            for k in moved {
                let entry = w.known.remove(&k).unwrap();
                w.known.insert(k.rebase(from, to).unwrap(), entry);
            }
        }
        Op::Delete { path, .. } => {
            assert_eq!(server.get(path).map(Option::is_some), Some(true));
            server.remove(path);
            w.known.remove(path);
        }
        Op::RemoveDir { path } => {
            assert_eq!(server.get(path), Some(&None), "rmdir {path}");
            for k in subtree(server, path) {
                server.remove(&k);
            }
            w.known.retain(|k, _| !k.is_within(path));
        }
        Op::MakeDir { path } => {
            make_parents(server, path);
            server.insert(path.clone(), None);
            let dir = Entry {
                kind: EntryKind::Dir,
                version: v,
            };
            w.known.insert(path.clone(), dir);
        }
        Op::Upload {
            path, stat, hash, ..
        } => {
            assert_ne!(server.get(path), Some(&None), "upload onto a directory");
            make_parents(server, path);
            server.insert(path.clone(), Some(*hash));
            let file = Entry {
                kind: EntryKind::File {
                    stat: *stat,
                    hash: *hash,
                },
                version: v,
            };
            w.known.insert(path.clone(), file);
        }
        Op::SetMode { .. } => panic!("no mode changed"),
    }
}

/// The checks on one Rename, before it is applied.
fn check_rename(op: &Op, w: &World, removed_dirs: &BTreeSet<WirePath>) {
    let Op::Rename { from, to, .. } = op else {
        return;
    };
    assert!(
        !removed_dirs.iter().any(|d| from.is_within(d)),
        "Rename of {from} (removed with its directory) to {to}"
    );
    match w.known.get(from).map(|e| e.kind) {
        Some(EntryKind::Dir) => {
            assert_eq!(w.dir_renamed.get(from), Some(to), "wrong directory rename");
        }
        Some(EntryKind::File { stat: was, .. }) => match w.disk.get(to) {
            Some(DiskEntry::File(now)) => {
                // Not a copy (`cp d0/f0.txt d1/new0.txt`), even of a
                // file whose own inode is gone.
                assert_eq!(now.ino, was.ino, "Rename {from} -> {to}: another file");
            }
            other => panic!("Rename {from} -> {to} onto {other:?}"),
        },
        None => panic!("Rename of unindexed {from}"),
    }
}

fn run(case: &Offline) {
    let mut w = world(case);
    let mut server: Tree = w.known.iter().map(|(k, e)| (k.clone(), e.hash())).collect();
    let removed_dirs: BTreeSet<WirePath> = case
        .dirs
        .iter()
        .enumerate()
        .filter(|(_, d)| matches!(d, DirDid::RemoveAll))
        .map(|(i, _)| p(&format!("d{i}")))
        .collect();
    let mut version = 1_000;
    let mut rounds = 0;
    loop {
        rounds += 1;
        assert!(rounds < 10, "does not end");
        let (deleted, added) = dir_changes(&w.disk, &w.known);
        let renames = dir_renames(&w.disk, &w.known, &deleted, &added);
        let ops = if renames.is_empty() {
            let ups = uploads(&w);
            file_changes(&w.disk, &w.known, &deleted, added, ups)
        } else {
            renames
        };
        if ops.is_empty() {
            break;
        }
        let taken = |q: &WirePath| w.known.contains_key(q) || w.disk.contains_key(q);
        let ops = order(ops, &taken);
        for op in &ops {
            check_rename(op, &w, &removed_dirs);
            if let Op::Upload { stat, path, .. } = op {
                assert!(
                    w.written.contains(&stat.ino),
                    "{path} uploaded, though its content is the indexed one"
                );
            }
            apply(op, &mut w, &mut server, &mut version);
        }
    }
    let folder: Tree = w
        .disk
        .iter()
        .map(|(k, d)| {
            (
                k.clone(),
                matches!(d, DiskEntry::File(_)).then(|| w.content[k]),
            )
        })
        .collect();
    assert_eq!(server, folder, "the server does not hold the folder");
}

/// The tester's cases: `rm -rf d1; mv d2 renB2` (and `rm -rf d3` too), with
/// files of the same names and sizes in every directory.
#[test]
fn a_removed_directory_is_never_taken_for_the_renamed_one() {
    use DirDid::*;
    for dirs in [
        vec![Keep, RemoveAll, Rename, Keep],
        vec![Keep, RemoveAll, Rename, RemoveAll],
        vec![RemoveAll, RemoveAll, RemoveAll, Rename],
    ] {
        let files = vec![FileDid::Keep; dirs.len() * 3];
        let case = Offline {
            files_per_dir: 3,
            dirs,
            files,
            new_files: Vec::new(),
        };
        run(&case);
        // And the rename is one Rename: the first round is exactly it.
        let w = world(&case);
        let (deleted, added) = dir_changes(&w.disk, &w.known);
        let renames = dir_renames(&w.disk, &w.known, &deleted, &added);
        let want: Vec<Op> = w
            .dir_renamed
            .iter()
            .map(|(from, to)| Op::Rename {
                from: from.clone(),
                to: to.clone(),
                base: w.known[from].version,
            })
            .collect();
        assert_eq!(renames, want, "{case:?}");
    }
}

/// Two vanished files with one content: the moved one is paired with its
/// own new name (inode), the other is deleted; a copy of a removed file is
/// a new file. Without inodes (0: unknown) the content still pairs.
#[test]
fn a_copy_does_not_take_the_place_of_the_moved_file() {
    let text = ContentHash::of(b"same\n");
    for (ino, renamed) in [(9, false), (0, true)] {
        let known: BTreeMap<WirePath, Entry> =
            [(p("a.txt"), Entry::synced_file(stat(5, ino, 0), text, 1))].into();
        let now = stat(5, ino.min(1) * 10, 7);
        let disk: BTreeMap<WirePath, DiskEntry> = [(p("b.txt"), DiskEntry::File(now))].into();
        let upload = Op::Upload {
            path: p("b.txt"),
            base: 0,
            stat: now,
            hash: text,
        };
        let ops = file_changes(&disk, &known, &[], Vec::new(), vec![upload.clone()]);
        let want = if renamed {
            vec![Op::Rename {
                from: p("a.txt"),
                to: p("b.txt"),
                base: 1,
            }]
        } else {
            vec![
                Op::Delete {
                    path: p("a.txt"),
                    base: 1,
                },
                upload,
            ]
        };
        assert_eq!(ops, want, "inode {ino}");
    }
    let text = ContentHash::of(b"same\n");
    let known: BTreeMap<WirePath, Entry> = [
        (p("a.txt"), Entry::synced_file(stat(5, 1, 0), text, 1)),
        (p("b.txt"), Entry::synced_file(stat(5, 2, 0), text, 2)),
    ]
    .into();
    let now = stat(5, 2, 7);
    let disk: BTreeMap<WirePath, DiskEntry> = [(p("c.txt"), DiskEntry::File(now))].into();
    let upload = Op::Upload {
        path: p("c.txt"),
        base: 0,
        stat: now,
        hash: text,
    };
    let ops = file_changes(&disk, &known, &[], Vec::new(), vec![upload]);
    assert_eq!(
        ops,
        vec![
            Op::Rename {
                from: p("b.txt"),
                to: p("c.txt"),
                base: 2
            },
            Op::Delete {
                path: p("a.txt"),
                base: 1
            },
        ]
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn offline_changes_are_pushed_as_made(case in offline()) {
        run(&case);
    }
}
