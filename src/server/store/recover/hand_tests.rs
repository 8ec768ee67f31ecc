//! Hand changes made while the server is stopped that the start's comparison
//! must not turn into deletions or roll-backs (R-10.12, R-10.13; breaker24
//! F1, F2, F13): a directory replaced by a file, a file by a directory, an
//! older backup copied back with its times. Every version the devices hold
//! as the newest stays listed (served, or lost and put back by a device);
//! everything the operator put in the folder stays somewhere.

use super::super::{DataPaths, StoreError, UserStore};
use crate::protocol::versions::KeptKind;
use crate::protocol::{ClientId, ContentHash, PushStatus, UserId, WirePath};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

fn p(s: &str) -> WirePath {
    WirePath::new(s).unwrap()
}

fn open(dir: &Path) -> UserStore {
    let paths = DataPaths {
        base: dir.to_path_buf(),
    };
    UserStore::open(&paths, &UserId([9; 16]), true, false)
        .unwrap()
        .0
}

fn folder(dir: &Path) -> PathBuf {
    dir.join("AllClients").join(UserId([9; 16]).to_string())
}

/// A push of `content` to `path` on `base`; its status and version.
fn push(
    store: &mut UserStore,
    client: ClientId,
    base: u64,
    path: &str,
    content: &[u8],
) -> (PushStatus, u64, WirePath) {
    let staged = store.stage(&p(path), base, content);
    let ack = store.commit_file(base, &p(path), staged, client).unwrap();
    (ack.status, ack.version, ack.path)
}

/// The file's content as a fetch sends it, end check included.
fn fetch_all(store: &UserStore, path: &WirePath) -> Result<Vec<u8>, StoreError> {
    let mut reader = store.open_file(path)?;
    let mut out = vec![0; reader.size() as usize];
    reader.read_chunk(&mut out)?;
    reader.verify()?;
    Ok(out)
}

/// Every file the store serves, by path.
fn served(store: &UserStore) -> BTreeMap<WirePath, Vec<u8>> {
    let files: Vec<WirePath> = store
        .tree()
        .iter()
        .filter(|(_, n)| !n.is_dir())
        .map(|(p, _)| p.clone())
        .collect();
    files
        .into_iter()
        .filter_map(|path| fetch_all(store, &path).ok().map(|c| (path, c)))
        .collect()
}

/// The version and hash the tree lists at `path`, if a file.
fn listed(store: &UserStore, path: &str) -> Option<(u64, ContentHash)> {
    let node = store.tree().get(&p(path))?;
    match node.kind {
        crate::server::store::tree::NodeKind::File { hash, .. } => Some((node.version, hash)),
        crate::server::store::tree::NodeKind::Dir => None,
    }
}

/// Sets `path`'s mtime (as `cp -a` or `touch -d` does).
fn set_mtime(path: &Path, when: SystemTime) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(when)
        .unwrap();
}

/// A device that holds `content` at `path`'s listed version puts it back
/// Unchanged, and the server serves it again.
fn put_back(store: &mut UserStore, path: &str, content: &[u8]) {
    let (version, _) = listed(store, path).expect("listed");
    let (status, got, _) = push(store, 1, version, path, content);
    assert_eq!((status, got), (PushStatus::Unchanged, version), "{path}");
    assert_eq!(fetch_all(store, &p(path)).unwrap(), content, "{path}");
}

/// The lost files the store names, by path.
fn lost(store: &UserStore) -> BTreeSet<String> {
    store
        .lost_list()
        .entries
        .iter()
        .map(|e| e.path.as_str().to_owned())
        .collect()
}

/// breaker24 F1: `rm -r d; echo x > d` while stopped. Before: the start
/// journaled `d` as a file over the directory, so every device deleted
/// `d/a` and `d/b`. Now `d` stays a directory, its files are lost (put
/// back by a device), and the hand-made file is kept under a conflict name.
#[test]
fn a_directory_replaced_by_a_file_is_lost_not_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    let one = store.add_client().unwrap();
    push(&mut store, one, 0, "d/a", b"A");
    push(&mut store, one, 0, "d/sub/b", b"B");
    let before = (listed(&store, "d/a"), listed(&store, "d/sub/b"));
    store.close().unwrap();
    let s = folder(dir.path());
    std::fs::remove_dir_all(s.join("d")).unwrap();
    std::fs::write(s.join("d"), b"made by hand").unwrap();

    let mut store = open(dir.path());
    assert!(store.tree().get(&p("d")).is_some_and(|n| n.is_dir()));
    assert_eq!((listed(&store, "d/a"), listed(&store, "d/sub/b")), before);
    assert_eq!(
        lost(&store),
        BTreeSet::from(["d/a".into(), "d/sub/b".into()])
    );
    let files = served(&store);
    let hand: Vec<&WirePath> = files
        .iter()
        .filter(|(_, c)| c.as_slice() == b"made by hand")
        .map(|(p, _)| p)
        .collect();
    assert_eq!(hand.len(), 1, "{files:?}");
    assert!(hand[0].as_str().starts_with("d (conflict 0 "), "{hand:?}");
    assert!(s.join("d").is_dir());
    put_back(&mut store, "d/a", b"A");
    put_back(&mut store, "d/sub/b", b"B");
}

/// breaker24 F2: `rm f; mkdir f; echo x > f/x` while stopped. The file is
/// lost at its path (put back by a device), the hand-made directory is one
/// change under one conflict name, and nothing else gets a conflict copy.
#[test]
fn a_file_replaced_by_a_directory_is_lost_and_the_directory_set_aside() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    let one = store.add_client().unwrap();
    push(&mut store, one, 0, "f", b"F");
    push(&mut store, one, 0, "g", b"G");
    let before = listed(&store, "f");
    store.close().unwrap();
    let s = folder(dir.path());
    std::fs::remove_file(s.join("f")).unwrap();
    std::fs::create_dir_all(s.join("f/sub")).unwrap();
    std::fs::write(s.join("f/sub/x"), b"X by hand").unwrap();

    let mut store = open(dir.path());
    assert_eq!(listed(&store, "f"), before);
    assert_eq!(lost(&store), BTreeSet::from(["f".into()]));
    let conflicts: Vec<String> = store
        .tree()
        .iter()
        .map(|(p, _)| p.as_str().to_owned())
        .filter(|p| p.contains("(conflict"))
        .collect();
    assert_eq!(conflicts.len(), 3, "one directory set aside: {conflicts:?}");
    assert!(conflicts[0].starts_with("f (conflict 0 "), "{conflicts:?}");
    assert_eq!(
        fetch_all(&store, &p(&format!("{}/sub/x", conflicts[0]))).unwrap(),
        b"X by hand"
    );
    assert_eq!(fetch_all(&store, &p("g")).unwrap(), b"G");
    put_back(&mut store, "f", b"F");
}

/// breaker24 F13: an older backup copied back with its times (`cp -a`)
/// while stopped. Before: the start journaled every older copy as an edit
/// and every device rolled back. Now the newer versions stay listed and
/// come back from the devices; an older copy of a kept version leaves the
/// folder (it stays kept), one of content the server does not keep goes
/// to a conflict name; a deliberate revert (a fresh mtime) is an edit.
#[test]
fn an_older_backup_copied_back_does_not_roll_back() {
    let dir = tempfile::tempdir().unwrap();
    let s = folder(dir.path());
    let mut store = open(dir.path());
    let one = store.add_client().unwrap();
    let a1 = push(&mut store, one, 0, "a", b"a one").1;
    let c1 = push(&mut store, one, 0, "c", b"c one").1;
    let backup = std::fs::metadata(s.join("a")).unwrap().modified().unwrap();
    std::thread::sleep(Duration::from_millis(20));
    push(&mut store, one, a1, "a", b"a two, newer");
    push(&mut store, one, 0, "b", b"b, never backed up");
    push(&mut store, one, c1, "c", b"c two");
    let (a2, b1) = (listed(&store, "a"), listed(&store, "b"));
    store.close().unwrap();
    // `cp -a backup/. AllClients/ID/`: a as it was, with its old time.
    std::fs::write(s.join("a"), b"a one").unwrap();
    set_mtime(&s.join("a"), backup);
    // Bytes the server never held, with an older time (`cp -p` of
    // something else): not an edit either, but kept.
    std::fs::write(s.join("b"), b"other, older").unwrap();
    set_mtime(&s.join("b"), backup);
    // A deliberate revert by hand (fresh mtime) is an edit.
    std::fs::write(s.join("c"), b"c one").unwrap();

    let mut store = open(dir.path());
    assert_eq!((listed(&store, "a"), listed(&store, "b")), (a2, b1));
    assert_eq!(lost(&store), BTreeSet::from(["a".into(), "b".into()]));
    assert!(
        !s.join("a").exists(),
        "the kept version's copy left the folder"
    );
    let files = served(&store);
    let aside: Vec<&WirePath> = files
        .iter()
        .filter(|(_, c)| c.as_slice() == b"other, older")
        .map(|(p, _)| p)
        .collect();
    assert!(
        aside.len() == 1 && aside[0].as_str().starts_with("b (conflict 0 "),
        "{files:?}"
    );
    assert_eq!(files.get(&p("c")).map(Vec::as_slice), Some(&b"c one"[..]));
    put_back(&mut store, "a", b"a two, newer");
    put_back(&mut store, "b", b"b, never backed up");
    // Starting again changes nothing more.
    let head = store.head();
    store.close().unwrap();
    let store = open(dir.path());
    assert_eq!(store.head(), head);
    assert!(lost(&store).is_empty());
}

/// One thing an operator does to the stopped server's folder.
#[derive(Debug, Clone)]
enum Hand {
    DeleteFile(usize),
    DeleteDir(usize),
    FileToDir(usize),
    DirToFile(usize),
    Edit(usize),
    Add(usize),
    Chmod(usize),
    /// `cp -a backup/. AllClients/ID/`.
    RestoreBackup,
}

/// Files the devices push; with the directories above them, the places the
/// hand changes act on.
const FILES: &[&str] = &["a/x", "a/y", "b", "c/d/e", "c/f", "g"];
const PLACES: &[&str] = &["a", "c", "c/d", "a/x", "a/y", "b", "c/d/e", "c/f", "g", "n"];

fn hand() -> impl Strategy<Value = Hand> {
    let at = 0..PLACES.len();
    prop_oneof![
        1 => at.clone().prop_map(Hand::DeleteFile),
        1 => at.clone().prop_map(Hand::DeleteDir),
        1 => at.clone().prop_map(Hand::FileToDir),
        1 => at.clone().prop_map(Hand::DirToFile),
        2 => at.clone().prop_map(Hand::Edit),
        1 => at.clone().prop_map(Hand::Add),
        1 => at.prop_map(Hand::Chmod),
        1 => Just(Hand::RestoreBackup),
    ]
}

/// A regular file's bytes and mtime, per path below `root`.
type Snapshot = BTreeMap<String, (Vec<u8>, SystemTime)>;

fn snapshot(root: &Path) -> Snapshot {
    let mut out = Snapshot::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let meta = e.metadata().unwrap();
            if meta.is_dir() {
                todo.push(e.path());
            } else {
                let rel = e
                    .path()
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.insert(
                    rel,
                    (std::fs::read(e.path()).unwrap(), meta.modified().unwrap()),
                );
            }
        }
    }
    out
}

/// Does `op` to the folder `s`, as a shell would (what would fail there,
/// like `cp` over a directory, does nothing); new content is unique.
fn do_hand(s: &Path, op: &Hand, backup: &Snapshot, serial: &mut usize) {
    let mut fresh = || {
        *serial += 1;
        format!("by hand {serial}").into_bytes()
    };
    let at = |i: usize| s.join(PLACES[i]);
    match *op {
        Hand::DeleteFile(i) if at(i).is_file() => std::fs::remove_file(at(i)).unwrap(),
        Hand::DeleteDir(i) if at(i).is_dir() => std::fs::remove_dir_all(at(i)).unwrap(),
        Hand::FileToDir(i) if at(i).is_file() => {
            std::fs::remove_file(at(i)).unwrap();
            std::fs::create_dir(at(i)).unwrap();
            std::fs::write(at(i).join("h"), fresh()).unwrap();
        }
        Hand::DirToFile(i) if at(i).is_dir() => {
            std::fs::remove_dir_all(at(i)).unwrap();
            std::fs::write(at(i), fresh()).unwrap();
        }
        Hand::Edit(i) if at(i).is_file() => std::fs::write(at(i), fresh()).unwrap(),
        Hand::Add(i) if !at(i).exists() && at(i).parent().is_some_and(|d| d.is_dir()) => {
            std::fs::write(at(i), fresh()).unwrap()
        }
        Hand::Chmod(i) if at(i).is_file() => {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(at(i)).unwrap().permissions().mode();
            std::fs::set_permissions(at(i), std::fs::Permissions::from_mode(mode ^ 0o100)).unwrap();
        }
        Hand::RestoreBackup => {
            for (rel, (bytes, mtime)) in backup {
                let to = s.join(rel);
                if to.is_dir() || std::fs::create_dir_all(to.parent().unwrap()).is_err() {
                    continue;
                }
                std::fs::write(&to, bytes).unwrap();
                set_mtime(&to, *mtime);
            }
        }
        _ => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Any hand changes to the stopped server's folder (deletions, a kind
    /// changed either way, nested, edits, additions, chmod, an older
    /// backup copied back), with a device holding an edit of its own: after
    /// the start no file the devices held as newest is deleted or rolled
    /// back (each keeps its version, served or lost and then put back by
    /// the device), and everything the operator left in the folder is
    /// served somewhere or kept as a version of its path.
    #[test]
    fn no_newest_content_is_lost_to_hand_changes(
        rewrites in proptest::collection::vec(any::<bool>(), FILES.len()),
        ops in proptest::collection::vec(hand(), 1..8),
        offline in 0..FILES.len(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let s = folder(dir.path());
        let mut store = open(dir.path());
        let (one, two) = (store.add_client().unwrap(), store.add_client().unwrap());
        let mut held: BTreeMap<&str, Vec<u8>> = BTreeMap::new();
        for f in FILES {
            let content = format!("{f} first").into_bytes();
            push(&mut store, one, 0, f, &content);
            held.insert(f, content);
        }
        let backup = snapshot(&s);
        std::thread::sleep(Duration::from_millis(5));
        for (f, again) in FILES.iter().zip(&rewrites) {
            if *again {
                let content = format!("{f} second").into_bytes();
                let base = listed(&store, f).unwrap().0;
                push(&mut store, one, base, f, &content);
                held.insert(f, content);
            }
        }
        let versions: BTreeMap<&str, (u64, ContentHash)> =
            FILES.iter().map(|f| (*f, listed(&store, f).unwrap())).collect();
        let head = store.head();
        store.close().unwrap();
        let mut serial = 0;
        for op in &ops {
            do_hand(&s, op, &backup, &mut serial);
        }
        let left = snapshot(&s);

        let mut store = open(dir.path());
        // Nothing journaled removed, and each file the devices hold is at
        // its version, or replaced by an edit by hand (never older bytes).
        let removed = store.history.iter().filter(|t| t.seq > head).any(|t| t.paths.iter().any(|(_, gone)| *gone));
        prop_assert!(!removed, "a removal was journaled after {:?}", ops);
        for f in FILES {
            let now = listed(&store, f);
            prop_assert!(now.is_some(), "{} not listed after {:?}", f, ops);
            let (version, _) = now.unwrap();
            if version != versions[f].0 {
                let got = fetch_all(&store, &p(f)).unwrap();
                // A new version: an edit by hand, or the same bytes with
                // the executable bit changed by hand.
                prop_assert!(got.starts_with(b"by hand") || got == held[f], "{} rolled back to {:?} after {:?}",
                    f, String::from_utf8_lossy(&got), ops);
            }
        }
        // Everything the operator left is served, or kept for its path.
        let files = served(&store);
        let mut kept: HashSet<(String, ContentHash)> = HashSet::new();
        store.versions.scan(|e| {
            if let KeptKind::File { hash, .. } = e.kind {
                kept.insert((e.path.as_str().to_owned(), hash));
            }
            true
        }).unwrap();
        for (rel, (bytes, _)) in &left {
            let somewhere = files.values().any(|c| c == bytes)
                || kept.contains(&(rel.clone(), ContentHash::of(bytes)));
            prop_assert!(somewhere, "{} ({:?}) dropped after {:?}", rel, String::from_utf8_lossy(bytes), ops);
        }
        // The device puts back every lost file it holds; the
        // other device's offline edit then meets the result as any push.
        for entry in store.lost_list().entries {
            let content = held[entry.path.as_str()].clone();
            prop_assert_eq!(ContentHash::of(&content), entry.hash);
            put_back(&mut store, entry.path.as_str(), &content);
        }
        for f in FILES {
            let (version, _) = listed(&store, f).unwrap();
            if version == versions[f].0 {
                prop_assert_eq!(fetch_all(&store, &p(f)).unwrap(), held[f].clone());
            }
        }
        let edit = b"device two's offline edit".to_vec();
        let (_, _, at) = push(&mut store, two, versions[FILES[offline]].0, FILES[offline], &edit);
        prop_assert_eq!(fetch_all(&store, &at).unwrap(), edit);
        let files_after = served(&store);
        for (path, content) in &files {
            if path.as_str() != FILES[offline] || *content == held[FILES[offline]] {
                continue;
            }
            prop_assert!(files_after.values().any(|c| c == content), "{} lost to device two's edit", path);
        }
    }
}
