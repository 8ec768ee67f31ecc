//! The placement record's form and [`settled`]'s table.

use super::*;
use crate::client::applier::removal_log::{records, Record, Removal};
use crate::protocol::ContentHash;

fn p(s: &str) -> WirePath {
    WirePath::new(s).expect("path")
}

const OLD: i64 = 1_700_000_000_000_000_000;
const NOW: i64 = OLD + 3_600_000_000_000;

fn stat(ino: u64, size: u64, mtime_ns: i64) -> Stat {
    Stat {
        size,
        mtime_ns,
        ctime_ns: mtime_ns + 7,
        dev: 2049,
        ino,
        exec: false,
        btime_ns: mtime_ns - 3,
    }
}

fn placement(path: &str, version: u64, stat: Stat) -> Placement {
    Placement {
        path: p(path),
        entry: Entry {
            kind: EntryKind::File {
                stat,
                hash: ContentHash::of(path.as_bytes()),
            },
            version,
        },
    }
}

/// Placements and removals, with any legal name and every stat field
/// set, read back in the order written; a torn tail is skipped.
#[test]
fn placements_and_removals_round_trip_in_order_and_a_torn_tail_is_skipped() {
    let names = ["a.txt", "d/with space", "ünï/cödé", "x y z", "P", "P x"];
    let mut text = String::new();
    let mut want = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let placed = placement(
            name,
            i as u64 + 10,
            Stat {
                exec: i % 2 == 0,
                ..stat(100 + i as u64, i as u64, OLD + i as i64)
            },
        );
        text.push_str(&placed.encode());
        want.push(Record::Placement(placed));
        let removal = Removal {
            path: p(name),
            version: i as u64,
            hash: ContentHash::of(b"r").to_string(),
        };
        text.push_str(&format!(
            "{} {} {}\0",
            removal.version, removal.hash, removal.path
        ));
        want.push(Record::Removal(removal));
    }
    assert_eq!(records(&text), want);
    let whole = text.clone();
    // A crash in the middle of the next append, at every byte.
    let next = placement("next.txt", 99, stat(7, 1, OLD)).encode();
    for cut in 0..next.len() - 1 {
        let torn = format!("{whole}{}", &next[..cut]);
        assert_eq!(records(&torn), want, "cut at byte {cut}");
    }
}

/// Every state of the path at start, with and without a newer record: only
/// the very file placed (its inode) is recorded; as placed and trusted
/// when untouched, else with an unknown mtime (hashed at the next look).
#[test]
fn only_the_file_placed_is_recorded_and_an_edit_of_it_is_hashed() {
    let placed = stat(11, 6, OLD);
    let logged = placement("f", 5, placed);
    let at = |now: Local, indexed: Option<&Entry>| settled(&logged, indexed, now, NOW);
    // Untouched (the rename moved the ctime): recorded as it is now, trusted.
    let there = Stat {
        ctime_ns: OLD + 50,
        ..placed
    };
    let got = at(Local::File(there), None).expect("recorded");
    assert_eq!(got.version, 5);
    assert_eq!(
        got.kind,
        EntryKind::File {
            stat: there,
            hash: ContentHash::of(b"f")
        }
    );
    // The bit recorded is the logged one (a chmod since is a change).
    let chmodded = Stat {
        exec: true,
        ..there
    };
    match at(Local::File(chmodded), None).map(|e| e.kind) {
        Some(EntryKind::File { stat, .. }) => assert!(!stat.exec),
        other => panic!("{other:?}"),
    }
    // Edited in place (same inode): recorded with the mtime unknown.
    for edited in [
        Stat { size: 9, ..placed },
        Stat {
            mtime_ns: NOW - 5,
            ..placed
        },
        Stat { size: 0, ..placed },
    ] {
        match at(Local::File(edited), None).map(|e| e.kind) {
            Some(EntryKind::File { stat, .. }) => {
                assert_eq!(stat.mtime_ns, 0, "{edited:?}");
                assert_eq!(stat.ino, 11);
            }
            other => panic!("{edited:?}: {other:?}"),
        }
    }
    // Racy now (written a moment ago): recorded, hashed at the next look.
    let racy = Stat {
        mtime_ns: NOW - 1_000,
        ..placed
    };
    let racy_log = placement("f", 5, racy);
    match settled(&racy_log, None, Local::File(racy), NOW).map(|e| e.kind) {
        Some(EntryKind::File { stat, .. }) => assert_eq!(stat.mtime_ns, 0),
        other => panic!("{other:?}"),
    }
    // Not the file placed: another inode, another birth, nothing, a
    // directory, a symlink.
    let reborn = Stat {
        btime_ns: OLD + 1,
        ..placed
    };
    for other in [
        Local::File(stat(12, 6, OLD)),
        Local::File(reborn),
        Local::File(Stat { dev: 1, ..placed }),
        Local::Absent,
        Local::Dir,
        Local::Foreign,
    ] {
        assert_eq!(at(other, None), None, "{other:?}");
    }
    // The index holds the path at a newer version: left as it is; an
    // older or the same version is replaced.
    let newer = Entry {
        version: 6,
        ..logged.entry
    };
    assert_eq!(at(Local::File(there), Some(&newer)), None);
    let older = Entry {
        version: 4,
        ..logged.entry
    };
    assert!(at(Local::File(there), Some(&older)).is_some());
    assert!(at(Local::File(there), Some(&logged.entry)).is_some());
    // An unknown inode identifies nothing.
    let unknown = placement("f", 5, Stat { ino: 0, ..placed });
    assert_eq!(
        settled(&unknown, None, Local::File(Stat { ino: 0, ..placed }), NOW),
        None
    );
}

/// A directory the pull made (or recorded) is recorded while the path is
/// a directory and the index holds nothing newer there.
#[test]
fn a_directory_is_recorded_only_while_it_is_one() {
    let logged = Placement {
        path: p("d/e"),
        entry: Entry {
            kind: EntryKind::Dir,
            version: 8,
        },
    };
    assert_eq!(
        Placement::parse(logged.encode().trim_end_matches('\0')),
        Some(logged.clone())
    );
    assert_eq!(settled(&logged, None, Local::Dir, NOW), Some(logged.entry));
    for other in [Local::Absent, Local::Foreign, Local::File(stat(3, 1, OLD))] {
        assert_eq!(settled(&logged, None, other, NOW), None, "{other:?}");
    }
    let newer = Entry {
        version: 9,
        ..logged.entry
    };
    assert_eq!(settled(&logged, Some(&newer), Local::Dir, NOW), None);
}
