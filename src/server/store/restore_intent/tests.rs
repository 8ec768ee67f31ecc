//! The restore intent's layout, and restores cut off at every entry.

use super::super::DataPaths;
use super::*;
use crate::protocol::UserId;

fn p(s: &str) -> WirePath {
    WirePath::new(s).expect("path")
}

fn sample() -> RestoreIntent {
    RestoreIntent {
        seq: 20309,
        path: p("d003/ünï"),
        done: 7,
        conflict_dirs: vec![(p("d003"), p("d003 (conflict 1 2026-12-04 21-40-00)"))],
    }
}

/// Every intent reads back as written; every cut, every flipped byte
/// and any trailing byte is refused, never taken as another intent.
#[test]
fn an_intent_reads_back_whole_or_not_at_all() {
    for intent in [RestoreIntent::new(1, p("a")), sample()] {
        let bytes = intent.encode().expect("fits");
        assert_eq!(RestoreIntent::decode(&bytes), Ok(intent.clone()));
        for cut in 0..bytes.len() {
            assert!(
                RestoreIntent::decode(&bytes[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        for at in 0..bytes.len() {
            for bit in 0..8 {
                let mut bad = bytes.clone();
                bad[at] ^= 1 << bit;
                assert!(RestoreIntent::decode(&bad).is_err(), "byte {at} bit {bit}");
            }
        }
        let mut long = bytes.clone();
        long.push(0);
        assert!(RestoreIntent::decode(&long).is_err());
    }
    assert_eq!(
        RestoreIntent::decode(b"CSRX\x01abcd"),
        Err(IntentError::BadMagic)
    );
    let mut other = sample().encode().expect("fits");
    other[4] = 2;
    assert_eq!(
        RestoreIntent::decode(&other),
        Err(IntentError::BadVersion(2))
    );
}

/// A path or a count the layout's `u16` cannot say is refused, never cut
/// to fit (it was cut: a 65,536-entry list was written as 65,535, and a
/// path past 65,535 bytes as its first 65,535): every size up to the limit
/// reads back whole, every size past it is an error naming it.
#[test]
fn a_path_or_a_count_too_long_is_refused_not_cut() {
    let dir = (p("d"), p("d (conflict 1 2026-12-04 21-40-00)"));
    for n in [0, 1, 2, 1000, 65_534, 65_535, 65_536, 65_537, 70_000] {
        let mut intent = sample();
        intent.conflict_dirs = vec![dir.clone(); n];
        match intent.encode() {
            Ok(bytes) => {
                assert!(n <= 65_535, "{n} conflict directories written");
                assert_eq!(RestoreIntent::decode(&bytes), Ok(intent), "{n}");
            }
            Err(e) => {
                assert!(n > 65_535, "{n}: {e}");
                assert_eq!(e, IntentTooBig::ConflictDirs(n));
            }
        }
    }
    // A wire path is at most 4096 bytes (§6), so no `WirePath` reaches the
    // path's limit: its writer is tried on the text around that limit.
    for len in [0, 1, 4096, 65_534, 65_535, 65_536, 65_537, 1 << 20] {
        let mut out = Vec::new();
        let text = "a".repeat(len);
        match put_path(&mut out, &text) {
            Ok(()) => {
                assert!(len <= 65_535, "a path of {len} bytes written");
                assert_eq!(out.len(), 2 + len);
                assert_eq!(usize::from(u16::from_be_bytes([out[0], out[1]])), len);
            }
            Err(e) => {
                assert!(len > 65_535, "{len}: {e}");
                assert_eq!(e, IntentTooBig::Path(len));
                assert!(out.is_empty(), "{len}: nothing written");
            }
        }
    }
}

/// An entry placed at its own path, or at its place in a recorded
/// conflict directory, is found again by a replay; a fresh conflict
/// name is not.
#[test]
fn which_placings_a_replay_finds_again() {
    let intent = sample();
    let at = |status, path: &str| PushAck {
        status,
        version: 9,
        path: p(path),
    };
    let cases = [
        ("d003/f", at(PushStatus::Applied, "d003/f"), true),
        ("d003/f", at(PushStatus::Unchanged, "d003/f"), true),
        (
            "d003/f",
            at(
                PushStatus::Conflict,
                "d003 (conflict 1 2026-12-04 21-40-00)/f",
            ),
            true,
        ),
        (
            "d003/f",
            at(
                PushStatus::Conflict,
                "d003/f (conflict 1 2026-12-04 21-40-00)",
            ),
            false,
        ),
        (
            "d003/s/g",
            at(
                PushStatus::Conflict,
                "d003 (conflict 1 2026-12-04 21-40-00)/s/g (conflict 2)",
            ),
            false,
        ),
        ("e/f", at(PushStatus::Conflict, "e/f (conflict 2)"), false),
    ];
    for (entry, ack, want) in cases {
        assert_eq!(
            intent.replays_to(&p(entry), &ack),
            want,
            "{entry} -> {}",
            ack.path
        );
    }
}

fn open(dir: &Path) -> UserStore {
    let paths = DataPaths {
        base: dir.to_path_buf(),
    };
    UserStore::open(&paths, &UserId([6; 16]), true, false)
        .expect("open store")
        .0
}

fn put(store: &mut UserStore, path: &str, content: &[u8]) {
    let base = store.tree().get(&p(path)).map_or(0, |n| n.version);
    let staged = store.stage(&p(path), base, content);
    store
        .commit_file(base, &p(path), staged, 1)
        .expect("commit");
}

/// Every file below the user's folder, by path, with its content.
fn files(store: &UserStore) -> Vec<(String, Vec<u8>)> {
    let root = store.root().to_path_buf();
    let mut out: Vec<(String, Vec<u8>)> = walkdir::WalkDir::new(&root)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let rel = e.path().strip_prefix(&root).expect("below root");
            // Conflict names hold the time: one name for all.
            let rel = rel.display().to_string();
            let rel = match rel.split_once(" (conflict ") {
                Some((head, tail)) => {
                    let rest = tail.split_once(')').map_or("", |(_, r)| r);
                    format!("{head} (conflict){rest}")
                }
                None => rel,
            };
            (rel, std::fs::read(e.path()).expect("read"))
        })
        .collect();
    out.sort();
    out
}

/// A restore that a crash stops after `k` of its entries (its intent
/// left on disk) is finished by the next open, for every `k`: the
/// folder and the journal end as after an uninterrupted restore, each
/// entry placed once, and the intent is gone. With `file_now`, a file
/// stands where the directory was: the restore goes to ONE conflict
/// directory, not a second one for the entries placed after the crash.
#[test]
fn a_restore_cut_at_any_entry_is_finished_at_the_next_open() {
    for file_now in [false, true] {
        let n = 6;
        // The reference: the same restore, not cut.
        let reference = {
            let dir = tempfile::tempdir().expect("tempdir");
            let (mut store, seq) = removed(dir.path(), n, file_now);
            let ack = store.restore(seq, &p("d")).expect("restore");
            assert_eq!(ack.status == PushStatus::Conflict, file_now);
            (files(&store), store.head())
        };
        for k in 0..=n {
            let dir = tempfile::tempdir().expect("tempdir");
            let (mut store, seq) = removed(dir.path(), n, file_now);
            store.crash_after = Some(k);
            assert!(store.restore(seq, &p("d")).is_err(), "k {k}");
            assert!(store.state_dir.join(RESTORE_INTENT).exists(), "k {k}");
            // A crash: no close, no clean marker.
            drop(store);
            let store = open(dir.path());
            let what = format!("file_now {file_now}, cut after {k} entries");
            assert_eq!((files(&store), store.head()), reference, "{what}");
            assert!(!store.state_dir.join(RESTORE_INTENT).exists(), "{what}");
            let conflict_dirs = std::fs::read_dir(store.root())
                .expect("list root")
                .filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().contains("(conflict "))
                .count();
            assert_eq!(conflict_dirs, usize::from(file_now), "{what}");
        }
    }
}

/// A store whose directory `d` of `n` files was removed (and, with
/// `file_now`, replaced by a file): the store and the removal's change.
fn removed(dir: &Path, n: usize, file_now: bool) -> (UserStore, u64) {
    let mut store = open(dir);
    for i in 0..n {
        put(
            &mut store,
            &format!("d/f{i}"),
            format!("file {i}").as_bytes(),
        );
    }
    put(&mut store, "other", b"stays");
    store
        .remove_dir(store.head(), &p("d"), 1)
        .expect("rm -rf d");
    let seq = store.head();
    if file_now {
        put(&mut store, "d", b"a file where d was");
    }
    (store, seq)
}

/// An intent file that is not one (damaged, cut) is removed at open
/// and the store opens: nothing is placed from it.
#[test]
fn an_unreadable_intent_is_dropped_at_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) = removed(dir.path(), 2, false);
    let state = store.state_dir.clone();
    let head = store.head();
    drop(store);
    std::fs::write(state.join(RESTORE_INTENT), b"CSRI\x01garbage").expect("write");
    let store = open(dir.path());
    assert_eq!(store.head(), head);
    assert!(!state.join(RESTORE_INTENT).exists());
}
