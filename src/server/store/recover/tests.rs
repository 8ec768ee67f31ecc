//! Crash recovery keeps who made each change: a push the server applied but
//! could not journal before a crash (`kill -9`) is still its device's own
//! after the re-scan (PROTOCOL.md §7.2, §10). A crash is simulated by
//! forgetting the store: its buffered journal records never reach the file,
//! exactly what a killed process leaves.

use super::super::{DataPaths, StoreError, UserStore};
use crate::protocol::{ClientId, ContentHash, PushAck, PushStatus, UserId, WirePath};
use proptest::prelude::*;
use std::collections::BTreeMap;

fn p(s: &str) -> WirePath {
    WirePath::new(s).unwrap()
}

fn open(paths: &DataPaths) -> UserStore {
    open_with(paths, false)
}

/// Opens the user's store, with `--fsync` durability when `durable`.
fn open_with(paths: &DataPaths, durable: bool) -> UserStore {
    UserStore::open(paths, &UserId([9; 16]), true, durable)
        .unwrap()
        .0
}

/// Stops the store the way `kill -9` does: nothing buffered is written.
fn crash(store: UserStore) {
    std::mem::forget(store);
}

fn upload(store: &mut UserStore, client: ClientId, base: u64, path: &str, content: &[u8]) -> u64 {
    let staged = store.stage(&p(path), base, content);
    let ack = store.commit_file(base, &p(path), staged, client).unwrap();
    assert_eq!(ack.status, PushStatus::Applied, "{ack:?}");
    ack.version
}

/// The tester's F3: client 1's rewrite of `f` is applied, then the server is
/// killed before journaling it. After the re-scan client 1's next upload
/// on its old base is Applied (its own change), client 2's is a Conflict.
#[test]
fn an_upload_cut_off_from_its_journal_records_stays_its_pushers_own() {
    let dir = tempfile::tempdir().unwrap();
    let paths = DataPaths {
        base: dir.path().to_path_buf(),
    };
    let mut store = open(&paths);
    let (one, two) = (store.add_client().unwrap(), store.add_client().unwrap());
    let base = upload(&mut store, one, 0, "f", b"first");
    store.flush().unwrap();
    upload(&mut store, one, base, "f", b"second");
    upload(&mut store, one, base, "g", b"new");
    crash(store);

    let mut store = open(&paths);
    let recovered = store.tree().get(&p("f")).copied().unwrap();
    assert!(recovered.version > base, "the re-scan journals the rewrite");
    assert!(store.pushed_by(recovered.version, one));
    let g = store.tree().get(&p("g")).copied().unwrap();
    assert!(store.pushed_by(g.version, one));

    let theirs = store.stage(&p("f"), base, b"from two");
    let ack = store.commit_file(base, &p("f"), theirs, two).unwrap();
    assert_eq!(ack.status, PushStatus::Conflict, "another device's base");
    let mine = store.stage(&p("f"), base, b"third");
    let ack = store.commit_file(base, &p("f"), mine, one).unwrap();
    assert_eq!(ack.status, PushStatus::Applied, "its own change: {ack:?}");
}

/// One push, on paths that overlap (files, directories, files below them).
#[derive(Debug, Clone)]
enum Step {
    Upload {
        client: ClientId,
        at: usize,
        fresh_base: bool,
    },
    MakeDir {
        client: ClientId,
        at: usize,
    },
    Delete {
        client: ClientId,
        at: usize,
    },
    RemoveDir {
        client: ClientId,
        at: usize,
    },
    Rename {
        client: ClientId,
        from: usize,
        to: usize,
    },
    /// The end of an actor cycle: buffered records reach the file.
    Flush,
    /// `kill -9`, then a restart (replay and re-scan).
    Crash,
    /// A clean stop and restart (no re-scan).
    Restart,
}

const PATHS: &[&str] = &["a", "b", "a/x", "a/y", "b/x", "c/d/e", "c"];

fn step() -> impl Strategy<Value = Step> {
    let at = 0..PATHS.len();
    let client = 1..=3u64;
    prop_oneof![
        4 => (client.clone(), at.clone(), any::<bool>())
            .prop_map(|(client, at, fresh_base)| Step::Upload { client, at, fresh_base }),
        1 => (client.clone(), at.clone()).prop_map(|(client, at)| Step::MakeDir { client, at }),
        1 => (client.clone(), at.clone()).prop_map(|(client, at)| Step::Delete { client, at }),
        1 => (client.clone(), at.clone()).prop_map(|(client, at)| Step::RemoveDir { client, at }),
        1 => (client, at.clone(), at).prop_map(|(client, from, to)| Step::Rename { client, from, to }),
        1 => Just(Step::Flush),
        2 => Just(Step::Crash),
        1 => Just(Step::Restart),
    ]
}

/// Runs one push (a refusal, e.g. a directory in the way on disk, changes
/// nothing and is fine here).
fn push(store: &mut UserStore, step: &Step, serial: &mut usize) -> Result<PushAck, StoreError> {
    let version = |s: &UserStore, at: usize| s.tree().get(&p(PATHS[at])).map_or(0, |n| n.version);
    match *step {
        Step::Upload {
            client,
            at,
            fresh_base,
        } => {
            // Every upload has its own size, so none can pass for another.
            *serial += 1;
            let content = vec![b'x'; *serial];
            let base = if fresh_base { version(store, at) } else { 0 };
            let staged = store.stage(&p(PATHS[at]), base, &content);
            store.commit_file(base, &p(PATHS[at]), staged, client)
        }
        Step::MakeDir { client, at } => store.make_dir(&p(PATHS[at]), client),
        Step::Delete { client, at } => {
            let base = version(store, at);
            store.delete_file(base, &p(PATHS[at]), client)
        }
        Step::RemoveDir { client, at } => {
            let cursor = store.head() / 2;
            store.remove_dir(cursor, &p(PATHS[at]), client)
        }
        Step::Rename { client, from, to } => {
            let base = version(store, from);
            store.rename(base, &p(PATHS[from]), &p(PATHS[to]), client)
        }
        Step::Flush | Step::Crash | Step::Restart => unreachable!("not a push"),
    }
}

/// Who made each entry's current version, as the store says.
fn authors(store: &UserStore) -> BTreeMap<WirePath, Option<ClientId>> {
    store
        .tree()
        .iter()
        .map(|(path, node)| (path.clone(), store.authors.get(&node.version).copied()))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any pushes, cycle ends, crashes and clean restarts: after each
    /// restart every entry's author is the device whose push made it, as
    /// the store said just before the stop — whether the push's records
    /// reached the journal or only its intent did, with `--fsync` or not.
    #[test]
    fn every_entry_keeps_its_author_across_crashes(
        steps in proptest::collection::vec(step(), 1..40),
        durable in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let paths = DataPaths { base: dir.path().to_path_buf() };
        let mut store = open_with(&paths, durable);
        for _ in 0..3 {
            store.add_client().unwrap();
        }
        store.flush().unwrap();
        let mut serial = 0;
        for step in &steps {
            match step {
                Step::Flush => store.flush().unwrap(),
                Step::Crash | Step::Restart => {
                    let before = authors(&store);
                    if matches!(step, Step::Crash) {
                        crash(store);
                    } else {
                        store.close().unwrap();
                    }
                    store = open_with(&paths, durable);
                    prop_assert_eq!(authors(&store), before, "after {:?}", step);
                }
                _ => {
                    let _ = push(&mut store, step, &mut serial);
                }
            }
        }
    }
}

/// A rewrite at the same size within one timestamp tick looks journaled by
/// size and mtime: the interrupted push's file is hashed anyway.
#[test]
fn a_same_size_same_mtime_rewrite_cut_off_from_its_records_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let paths = DataPaths {
        base: dir.path().to_path_buf(),
    };
    let mut store = open(&paths);
    let one = store.add_client().unwrap();
    let base = upload(&mut store, one, 0, "f", b"aaaa");
    store.flush().unwrap();
    let Some(crate::server::store::tree::NodeKind::File { mtime_ns, .. }) =
        store.tree().get(&p("f")).map(|n| n.kind)
    else {
        panic!("f is not a file");
    };
    upload(&mut store, one, base, "f", b"bbbb");
    crash(store);
    let on_disk = dir
        .path()
        .join("AllClients")
        .join(UserId([9; 16]).to_string())
        .join("f");
    let tick = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(mtime_ns as u64);
    std::fs::File::options()
        .write(true)
        .open(&on_disk)
        .unwrap()
        .set_modified(tick)
        .unwrap();

    let store = open(&paths);
    let node = store.tree().get(&p("f")).copied().unwrap();
    let crate::server::store::tree::NodeKind::File { hash, .. } = node.kind else {
        panic!("f is not a file");
    };
    assert_eq!(hash, ContentHash::of(b"bbbb"));
    assert!(store.pushed_by(node.version, one));
}

/// The user's folder on disk.
fn folder(dir: &tempfile::TempDir) -> std::path::PathBuf {
    dir.path()
        .join("AllClients")
        .join(UserId([9; 16]).to_string())
}

/// The file's whole content as a fetch reads it, then its end check.
fn fetch_all(store: &UserStore, path: &str) -> Result<Vec<u8>, StoreError> {
    let mut reader = store.open_file(&p(path))?;
    let mut out = vec![0; reader.size() as usize];
    reader.read_chunk(&mut out)?;
    reader.verify()?;
    Ok(out)
}

/// after a clean stop, a file rewritten or added by hand
/// is journaled as a change with no author; one removed by hand stays
/// listed, is not served, and a device's Delete of it still applies.
#[test]
fn a_clean_start_journals_hand_edits_and_keeps_a_removed_file_listed() {
    let dir = tempfile::tempdir().unwrap();
    let paths = DataPaths {
        base: dir.path().to_path_buf(),
    };
    let mut store = open(&paths);
    let one = store.add_client().unwrap();
    let a = upload(&mut store, one, 0, "a", b"aaaa");
    let b = upload(&mut store, one, 0, "b", b"bbbb");
    store.close().unwrap();
    std::fs::write(folder(&dir).join("a"), b"by hand, longer").unwrap();
    std::fs::remove_file(folder(&dir).join("b")).unwrap();
    std::fs::write(folder(&dir).join("c"), b"added").unwrap();

    let (mut store, report) = UserStore::open(&paths, &UserId([9; 16]), true, false).unwrap();
    assert!(!report.recovered);
    assert_eq!((report.repaired, report.lost), (2, 1), "{report:?}");
    let node = store.tree().get(&p("a")).copied().unwrap();
    assert!(node.version > a && !store.pushed_by(node.version, one));
    assert_eq!(fetch_all(&store, "a").unwrap(), b"by hand, longer");
    assert_eq!(fetch_all(&store, "c").unwrap(), b"added");
    assert_eq!(store.tree().get(&p("b")).map(|n| n.version), Some(b));
    assert!(matches!(
        fetch_all(&store, "b"),
        Err(StoreError::Lost { damaged: false, .. })
    ));
    let ack = store.delete_file(b, &p("b"), one).unwrap();
    assert_eq!(ack.status, PushStatus::Applied, "{ack:?}");
    assert!(store.tree().get(&p("b")).is_none());
}

/// Writes `bytes` (as many as it holds) over `path` keeping its mtime:
/// a damage R-10.4's size-and-mtime comparison cannot see.
fn damage_in_place(path: &std::path::Path, bytes: &[u8]) {
    let mtime = std::fs::metadata(path).unwrap().modified().unwrap();
    std::fs::write(path, bytes).unwrap();
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_modified(mtime).unwrap();
}

/// bytes changed in place at the same size and mtime pass
/// the open's stat check but not the hash of what was read; a second look
/// finds the file damaged, later fetches fail the same check, and a new
/// version pushed over it is applied.
#[test]
fn a_file_damaged_in_place_fails_its_fetch_and_is_served_no_more() {
    let dir = tempfile::tempdir().unwrap();
    let paths = DataPaths {
        base: dir.path().to_path_buf(),
    };
    let mut store = open(&paths);
    let one = store.add_client().unwrap();
    let v = upload(&mut store, one, 0, "f", b"good bytes");
    let on_disk = folder(&dir).join("f");
    damage_in_place(&on_disk, b"good bytez");
    assert!(matches!(
        fetch_all(&store, "f"),
        Err(StoreError::ChangedOnDisk(_))
    ));
    assert_eq!(
        store.reexamine(&p("f")).unwrap(),
        crate::server::store::Reexamined::Damaged
    );
    assert!(matches!(
        fetch_all(&store, "f"),
        Err(StoreError::ChangedOnDisk(_))
    ));
    // An edit by hand that moves the mtime is a change instead.
    let w = upload(&mut store, one, v, "f", b"new version");
    assert_eq!(fetch_all(&store, "f").unwrap(), b"new version");
    std::fs::write(&on_disk, b"edited while running").unwrap();
    let seen = store.reexamine(&p("f")).unwrap();
    assert!(
        matches!(seen, crate::server::store::Reexamined::Changed(s) if s > w),
        "{seen:?}"
    );
    assert_eq!(fetch_all(&store, "f").unwrap(), b"edited while running");
}

/// a damage found at a fetch is journaled, so a restart
/// (clean, and after a compaction) still lists the file as lost; the lost
/// version uploaded again is put back as journaled, with no new version,
/// and a restart then finds nothing; an upload of other bytes is an edit.
#[test]
fn a_damage_survives_restarts_and_the_lost_version_is_put_back_without_a_change() {
    let dir = tempfile::tempdir().unwrap();
    let paths = DataPaths {
        base: dir.path().to_path_buf(),
    };
    let mut store = open(&paths);
    let one = store.add_client().unwrap();
    let v = upload(&mut store, one, 0, "f", b"good bytes");
    let g = upload(&mut store, one, 0, "g", b"gone soon");
    let on_disk = folder(&dir).join("f");
    damage_in_place(&on_disk, b"good bytez");
    assert_eq!(
        store.reexamine(&p("f")).unwrap(),
        crate::server::store::Reexamined::Damaged
    );
    store.close().unwrap();
    std::fs::remove_file(folder(&dir).join("g")).unwrap();

    // Restarted: the damage (which size and mtime cannot show) is known.
    let mut store = open(&paths);
    let lost: Vec<(String, u64)> = store
        .lost_list()
        .entries
        .iter()
        .map(|e| (e.path.as_str().to_owned(), e.version))
        .collect();
    assert_eq!(lost, [("f".to_owned(), v), ("g".to_owned(), g)]);
    store.compact().unwrap();
    store.close().unwrap();
    let mut store = open(&paths);
    assert_eq!(store.lost_list().entries.len(), 2, "kept by compaction");

    // Other bytes are an edit, not the lost copy (R-5.4.5: a new version).
    let head = store.head();
    let staged = store.stage(&p("g"), g, b"an edit of g");
    let ack = store.commit_file(g, &p("g"), staged, one).unwrap();
    assert_eq!(ack.status, PushStatus::Applied);
    assert!(ack.version > head);
    assert!(store.take_restored().is_empty());
    // The lost version itself is put back: Unchanged, same version, no change.
    let head = store.head();
    let staged = store.stage(&p("f"), 0, b"good bytes");
    let ack = store.commit_file(0, &p("f"), staged, one).unwrap();
    assert_eq!((ack.status, ack.version), (PushStatus::Unchanged, v));
    assert_eq!(store.head(), head, "no new version");
    assert_eq!(store.take_restored(), vec![(p("f"), v, one)]);
    assert_eq!(std::fs::read(&on_disk).unwrap(), b"good bytes");
    assert_eq!(fetch_all(&store, "f").unwrap(), b"good bytes");
    assert!(store.lost_list().entries.is_empty());
    store.close().unwrap();
    let store = open(&paths);
    assert!(store.lost_list().entries.is_empty(), "as journaled again");
    assert_eq!(store.head(), head);
}

/// breaker24 F6: after an unclean stop (`kill -9`, a power loss) only what
/// the last intent named may be journaled removed. A file and a directory
/// removed by hand (or lost to the disk) while the server was down stay
/// listed as lost, as after a clean stop; the devices keep their copies.
#[test]
fn after_a_crash_only_the_cut_off_push_removes_paths() {
    let dir = tempfile::tempdir().unwrap();
    let paths = DataPaths {
        base: dir.path().to_path_buf(),
    };
    let mut store = open(&paths);
    let one = store.add_client().unwrap();
    let f = upload(&mut store, one, 0, "f", b"ffff");
    let g = upload(&mut store, one, 0, "d/g", b"gggg");
    let o = upload(&mut store, one, 0, "o", b"oooo");
    let m = upload(&mut store, one, 0, "m", b"mmmm");
    store.flush().unwrap();
    // The push the crash cuts off: m renamed to n (on disk, not journaled).
    let ack = store.rename(m, &p("m"), &p("n"), one).unwrap();
    assert_eq!(ack.status, PushStatus::Applied, "{ack:?}");
    crash(store);
    std::fs::remove_file(folder(&dir).join("f")).unwrap();
    std::fs::remove_dir_all(folder(&dir).join("d")).unwrap();

    let (store, report) = UserStore::open(&paths, &UserId([9; 16]), true, false).unwrap();
    assert!(report.recovered, "{report:?}");
    assert_eq!(store.tree().get(&p("f")).map(|n| n.version), Some(f));
    assert_eq!(store.tree().get(&p("d/g")).map(|n| n.version), Some(g));
    assert_eq!(store.tree().get(&p("o")).map(|n| n.version), Some(o));
    assert!(matches!(
        fetch_all(&store, "f"),
        Err(StoreError::Lost { damaged: false, .. })
    ));
    assert!(matches!(
        fetch_all(&store, "d/g"),
        Err(StoreError::Lost { damaged: false, .. })
    ));
    assert!(folder(&dir).join("d").is_dir(), "made again for d/g");
    // The cut-off rename is completed: its source removed, its target the
    // mover's own change.
    assert!(store.tree().get(&p("m")).is_none(), "the rename's source");
    let n = store.tree().get(&p("n")).copied().unwrap();
    assert!(store.pushed_by(n.version, one));
    assert_eq!(fetch_all(&store, "n").unwrap(), b"mmmm");
}
