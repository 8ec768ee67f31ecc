//! The server's kept versions in reconciliation (R-5.8.4, [`Known`]): a
//! late device follows what the server did after holding its state, and
//! pushes again only what the server never held.

use super::tests::{dir, dirty, file, h, index_of, p, stat};
use super::*;
use crate::protocol::{Cause, KeptKind, KeptVersion};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn kept_file(path: &str, n: u8, since: u64, seq: u64) -> KeptVersion {
    KeptVersion {
        seq,
        since,
        time_ms: 0,
        cause: Cause::Overwritten,
        kind: KeptKind::File {
            size: 1,
            hash: h(n),
            mtime_ns: 0,
            executable: false,
        },
        path: p(path),
    }
}

fn kept_dir(path: &str, since: u64, seq: u64) -> KeptVersion {
    KeptVersion {
        kind: KeptKind::Dir,
        cause: Cause::RenamedAway,
        ..kept_file(path, 0, since, seq)
    }
}

fn known_of(common: u64, index: &Index, kept: &[KeptVersion]) -> Known {
    let mut known = Known::new(common);
    for k in kept {
        known.note(k, index);
    }
    known
}

/// breaker18 F5 at the index: backup at 3 (B acknowledged 3); in the lost
/// history B got g1 (10), f2's edit (11), d2 and d2/a (12), n (13). After
/// the restore A pushed g1, f2, d2, d2/a again (4..7), then deleted g1 (8),
/// edited f2 (9) and renamed d2 to d3 (10). n the server never held.
#[test]
fn what_the_server_held_after_the_restore_and_changed_since_is_followed() {
    let mut index = index_of(&[
        ("g1", Some(1), 10),
        ("f2", Some(2), 11),
        ("d2", None, 12),
        ("d2/a", Some(3), 12),
        ("n", Some(4), 13),
        ("old", Some(5), 2),
    ]);
    let kept = vec![
        kept_file("f2", 20, 1, 5),
        kept_file("g1", 1, 4, 8),
        kept_file("f2", 2, 5, 9),
        kept_dir("d2", 6, 10),
        kept_file("d2/a", 3, 7, 10),
        // Held only up to the common point: no evidence.
        kept_file("n", 4, 1, 3),
    ];
    let known = known_of(3, &index, &kept);
    assert_eq!(known.len(), 4);
    let listing = vec![
        file("f2", 21, 9),
        dir("d3", 10),
        file("d3/a", 3, 10),
        file("old", 5, 2),
    ];
    let on_disk = dirty(&["g1", "f2", "d2", "d2/a", "n", "old"]);
    let done = reconcile(&listing, &mut index, 3, &known, |path| {
        on_disk.contains(path)
    });
    assert_eq!(done.followed, 4);
    assert_eq!(done.dirty, dirty(&["n"]), "only n is pushed again");
    for (path, since) in [("g1", 4), ("f2", 5), ("d2", 6), ("d2/a", 7)] {
        assert_eq!(
            index.get(&p(path)).map(|e| e.version),
            Some(since),
            "{path}: at the server's version of this device's state"
        );
    }
    // The stat is kept: an unchanged file is taken as unchanged.
    assert!(matches!(
        index.get(&p("f2")).map(|e| e.kind),
        Some(EntryKind::File { stat: kept, hash }) if kept == stat() && hash == h(2)
    ));
    assert!(index.get(&p("n")).is_none());
}

/// Another content, a directory for a file, a version displaced by the
/// common change itself, or a device entry synced by `common`: not known.
#[test]
fn only_this_devices_own_state_displaced_after_common_is_known() {
    let index = index_of(&[("a", Some(1), 9), ("b", None, 9), ("c", Some(3), 2)]);
    let kept = vec![
        kept_file("a", 2, 4, 6),
        kept_file("b", 0, 4, 6),
        kept_file("a", 1, 1, 3),
        kept_file("c", 3, 4, 6),
        kept_file("z", 1, 4, 6),
        kept_file("a", 1, 6, 6),
    ];
    assert!(known_of(3, &index, &kept).is_empty());
    let later = known_of(
        3,
        &index,
        &[kept_file("a", 1, 4, 6), kept_file("a", 1, 7, 8)],
    );
    assert_eq!(later.since(&p("a")), Some(7), "the latest holding");
}

/// A path state in the model: absent, a directory, or a file content.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum S {
    None,
    Dir,
    File(u8),
}

const PATHS: [&str; 5] = ["a", "b", "c", "d", "e"];

/// A history: change `i` (sequence number `i + 1`) sets a path to a state.
type Journal = Vec<(usize, S)>;

/// Each path's state and the version that made it, after the first `upto`
/// changes.
fn replay(journal: &Journal, upto: usize) -> Vec<(S, u64)> {
    let mut at = vec![(S::None, 0); PATHS.len()];
    for (i, (path, state)) in journal.iter().take(upto).enumerate() {
        at[*path] = (*state, i as u64 + 1);
    }
    at
}

/// The versions a server keeps for `journal` (§14.1).
fn kept_of(journal: &Journal) -> Vec<KeptVersion> {
    let mut out = Vec::new();
    for upto in 1..=journal.len() {
        let (path, _) = journal[upto - 1];
        let (old, since) = replay(journal, upto - 1)[path];
        let seq = upto as u64;
        match old {
            S::None => {}
            S::Dir => out.push(kept_dir(PATHS[path], since, seq)),
            S::File(n) => out.push(kept_file(PATHS[path], n, since, seq)),
        }
    }
    out
}

/// Appends `count` changes, each to a state other than the path's current
/// one; `prefer(path)`, when given, is taken with probability 1/2 (a
/// device pushing its copy again).
fn grow(rng: &mut StdRng, journal: &mut Journal, count: usize, prefer: Option<&[(S, u64)]>) {
    for _ in 0..count {
        let path = rng.random_range(0..PATHS.len());
        let now = replay(journal, journal.len())[path].0;
        let mut next = match rng.random_range(0..6) {
            0 => S::None,
            1 => S::Dir,
            n => S::File(n as u8),
        };
        if let Some(state) = prefer.map(|p| p[path].0).filter(|_| rng.random_bool(0.5)) {
            next = state;
        }
        if next != now {
            journal.push((path, next));
        }
    }
}

/// Random orders of (restore point, changes before and after it, what the
/// late device acknowledged and synced, what the online device pushed
/// again): a path the server held in this device's state after `common`
/// (replaying the server's journal, not its kept list) and changed since is
/// followed, at a version the server's listing then supersedes; a path it
/// never held so is pushed again or met as a conflict; nothing the device
/// synced by `common` changes.
#[test]
fn randomized_restores_push_again_only_what_the_server_never_held() {
    for seed in 0..3_000u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut shared = Journal::new();
        let count = rng.random_range(0..8);
        grow(&mut rng, &mut shared, count, None);
        let backup = shared.len();
        let common = rng.random_range(0..=backup) as u64;
        // The lost history the late device synced.
        let mut lost = shared.clone();
        let count = rng.random_range(0..8);
        grow(&mut rng, &mut lost, count, None);
        let device = replay(&lost, lost.len());
        // The restored server: the backup, then the other device's pushes.
        let mut server = shared.clone();
        let count = rng.random_range(0..10);
        grow(&mut rng, &mut server, count, Some(&device));
        let head = server.len() as u64;
        let now = replay(&server, server.len());
        let mut index = Index::new();
        for (i, &(state, version)) in device.iter().enumerate() {
            let kind = match state {
                S::None => continue,
                S::Dir => EntryKind::Dir,
                S::File(n) => EntryKind::File {
                    stat: stat(),
                    hash: h(n),
                },
            };
            index.insert(p(PATHS[i]), Entry { kind, version });
        }
        let before = index.clone();
        let listing: Vec<ChangeEntry> = now
            .iter()
            .enumerate()
            .filter_map(|(i, &(state, version))| match state {
                S::None => None,
                S::Dir => Some(dir(PATHS[i], version)),
                S::File(n) => Some(file(PATHS[i], n, version)),
            })
            .collect();
        let mut kept = kept_of(&server);
        // ListVersions order does not matter.
        if rng.random_bool(0.5) {
            kept.reverse();
        }
        let known = known_of(common, &index, &kept);
        let done = reconcile(&listing, &mut index, common, &known, |path| {
            before.get(path).is_some()
        });
        for (i, &(mine, synced)) in device.iter().enumerate() {
            let path = p(PATHS[i]);
            let why = format!(
                "seed {seed}, {}: mine {mine:?} v{synced}, server {:?}, common {common}, \
                 head {head}\nshared {shared:?}\nserver {server:?}",
                PATHS[i], now[i]
            );
            if mine == S::None {
                continue;
            }
            if synced <= common {
                assert_eq!(index.get(&path), before.get(&path), "{why}");
                continue;
            }
            let (theirs, version) = now[i];
            if theirs == mine {
                assert_eq!(index.get(&path).map(|e| e.version), Some(version), "{why}");
                assert!(!done.dirty.contains(&path), "{why}");
                continue;
            }
            let held_after =
                (common as usize..=server.len()).any(|upto| replay(&server, upto)[i].0 == mine);
            if held_after {
                assert!(!done.dirty.contains(&path), "followed, not pushed: {why}");
                let entry = index.get(&path).copied().expect("still indexed");
                assert_eq!(
                    entry.kind,
                    before.get(&path).expect("indexed").kind,
                    "{why}"
                );
                // The server's own version of this state, superseded by
                // what it lists now (or gone from the listing).
                let at = entry.version as usize;
                assert_eq!(replay(&server, at)[i].0, mine, "{why}");
                match theirs {
                    S::None => assert!(entry.version <= head, "{why}"),
                    _ => assert!(entry.version < version, "{why}"),
                }
            } else {
                assert!(
                    done.dirty.contains(&path),
                    "pushed again or a conflict: {why}"
                );
            }
        }
    }
}

#[test]
fn the_model_keeps_what_each_change_displaces() {
    let journal: Journal = vec![(0, S::File(2)), (0, S::Dir), (1, S::File(3)), (0, S::None)];
    let kept = kept_of(&journal);
    assert_eq!(kept.len(), 2);
    assert_eq!(
        (kept[0].since, kept[0].seq, kept[0].kind),
        (1, 2, kept_file("a", 2, 0, 0).kind)
    );
    assert_eq!(
        (kept[1].since, kept[1].seq, kept[1].kind),
        (2, 4, KeptKind::Dir)
    );
}
