//! The decision tables, row by row.

use super::*;
use crate::protocol::{ContentHash, WirePath};

fn p(s: &str) -> WirePath {
    WirePath::new(s).unwrap()
}

fn stat(size: u64) -> Stat {
    Stat {
        size,
        mtime_ns: 7,
        ..Stat::default()
    }
}

/// One push of each kind.
fn ops() -> [(&'static str, Op); 5] {
    [
        (
            "upload",
            Op::Upload {
                path: p("f"),
                base: 1,
                stat: stat(3),
                hash: ContentHash::of(b"abc"),
            },
        ),
        ("mkdir", Op::MakeDir { path: p("d") }),
        (
            "delete",
            Op::Delete {
                path: p("f"),
                base: 1,
            },
        ),
        ("rmdir", Op::RemoveDir { path: p("d") }),
        (
            "rename",
            Op::Rename {
                from: p("a"),
                to: p("b"),
                base: 1,
            },
        ),
    ]
}

#[test]
fn push_answers_table() {
    use AckDecision::{Applied, FollowConflictName as Follow, Refused, Unchanged};
    use PushStatus as S;
    let file = Expect::File(stat(3));
    // Columns: Applied, Unchanged, Conflict, Stale.
    let table = [
        ("upload", [Applied, Unchanged, Follow(file), Refused]),
        ("mkdir", [Applied, Unchanged, Follow(Expect::Dir), Refused]),
        ("delete", [Applied, Unchanged, Refused, Refused]),
        ("rmdir", [Applied, Unchanged, Refused, Refused]),
        (
            "rename",
            [Applied, Unchanged, Follow(Expect::Free), Refused],
        ),
    ];
    let statuses = [S::Applied, S::Unchanged, S::Conflict, S::Stale];
    for ((name, op), (row, want)) in ops().into_iter().zip(table) {
        assert_eq!(name, row);
        for (status, want) in statuses.into_iter().zip(want) {
            assert_eq!(on_push_answer(&op, status), want, "{name} {status:?}");
        }
    }
}

#[test]
fn mirror_table() {
    use Mirror::{AlreadyThere, Gone, Leave, Move};
    let pushed = Local::File(stat(3));
    let edited = Local::File(stat(4));
    let file = Expect::File(stat(3));
    let rows = [
        // expect, at the source, at the conflict name → decision
        (file, pushed, Local::Absent, Move),
        (file, pushed, edited, Move),
        (file, Local::Absent, pushed, AlreadyThere),
        (file, pushed, pushed, AlreadyThere),
        (file, edited, Local::Absent, Leave),
        (file, Local::Absent, Local::Absent, Gone),
        (file, Local::Dir, Local::Absent, Leave),
        (file, Local::Foreign, Local::Absent, Leave),
        (Expect::Dir, Local::Dir, Local::Absent, Move),
        (Expect::Dir, Local::Dir, pushed, Move),
        (Expect::Dir, pushed, Local::Absent, Leave),
        (Expect::Dir, Local::Absent, Local::Dir, Leave),
        (Expect::Dir, Local::Foreign, Local::Absent, Leave),
        (Expect::Free, Local::Dir, Local::Absent, Move),
        (Expect::Free, pushed, Local::Dir, Move),
        (Expect::Free, Local::Absent, Local::Absent, Move),
    ];
    for (expect, from, to, want) in rows {
        assert_eq!(mirror(expect, from, to), want, "{expect:?} {from:?} {to:?}");
    }
}

/// One letter per [`PullDecision`] (`-`: the combination cannot occur).
fn decision(code: char) -> Option<PullDecision> {
    use PullDecision::*;
    Some(match code {
        'R' => Record,
        'A' => Apply,
        'C' => ClearDirThenApply,
        'K' => KeepLocalChange,
        'E' => KeepEdit,
        'P' => PushFirst,
        'X' => ConflictCopyThenApply,
        'F' => Foreign,
        'H' => HeldBack,
        '-' => return None,
        other => panic!("unknown decision code {other}"),
    })
}

/// For each server entry, a matrix: one row per index state (nothing, a
/// directory, the server's file A, another file B), one column per disk
/// state (absent, directory, foreign, a file holding the server's content,
/// the synced content, anything else, an ignored directory). `Synced` needs an indexed file, and
/// the server's content counts before the synced one.
#[test]
fn pull_decisions_table() {
    let a = ContentHash::of(b"A");
    let b = ContentHash::of(b"B");
    let indexed = [
        Indexed::Nothing,
        Indexed::Dir,
        Indexed::File(a),
        Indexed::File(b),
    ];
    let disk = [
        Disk::Absent,
        Disk::Dir,
        Disk::Foreign,
        Disk::File(Content::Server),
        Disk::File(Content::Synced),
        Disk::File(Content::Edited),
        Disk::IgnoredDir,
    ];
    let tables = [
        // Absent Dir Foreign Server Synced Edited IgnoredDir
        (
            Server::File(a),
            ["APFR-PH", "ACFR-PH", "KKKR-KK", "PPFRAPH"],
        ),
        (Server::Dir, ["ARF--XR", "KRK--KR", "ARF-AXR", "ARF-AXR"]),
        (
            Server::Deleted,
            ["AAF--EA", "AAF--EA", "AAF-AEA", "AAF-AEA"],
        ),
    ];
    for (server, rows) in tables {
        for (index_state, row) in indexed.iter().zip(rows) {
            for (disk_state, code) in disk.iter().zip(row.chars()) {
                let Some(want) = decision(code) else {
                    continue;
                };
                assert_eq!(
                    on_pull(*index_state, *disk_state, server),
                    want,
                    "server {server:?}, index {index_state:?}, disk {disk_state:?}"
                );
            }
        }
    }
}

#[test]
fn set_aside_table() {
    use OnRemove::{PutBack, Remove};
    use OnSwappedOut::{ConflictCopy, Discard, SwapBack};
    let rows = [
        (SetAside::NotAFile, PutBack, SwapBack),
        (SetAside::HeldOpen, PutBack, SwapBack),
        (SetAside::File(Content::Synced), Remove, Discard),
        (SetAside::File(Content::Server), PutBack, Discard),
        (SetAside::File(Content::Edited), PutBack, ConflictCopy),
    ];
    for (set_aside, remove, swapped) in rows {
        assert_eq!(on_remove(set_aside), remove, "{set_aside:?}");
        assert_eq!(on_swapped_out(set_aside), swapped, "{set_aside:?}");
    }
}

#[test]
fn mode_decisions_table() {
    use ModeDecision::{Agree, Apply, KeepLocal, PushFirst};
    // (indexed, local, server) → decision: every combination.
    let rows = [
        (None, None, false, Agree),
        (None, None, true, Agree),
        (None, Some(false), false, Agree),
        (None, Some(false), true, Apply),
        (None, Some(true), false, Apply),
        (Some(false), None, false, Agree),
        (Some(false), None, true, PushFirst),
        (Some(true), None, false, PushFirst),
        (Some(false), Some(false), false, Agree),
        (Some(false), Some(false), true, Apply),
        (Some(false), Some(true), false, KeepLocal),
        (Some(false), Some(true), true, Agree),
        (Some(true), Some(true), false, Apply),
        (Some(true), Some(false), true, KeepLocal),
        (Some(true), Some(false), false, Agree),
        (Some(true), Some(true), true, Agree),
    ];
    for (indexed, local, server, want) in rows {
        assert_eq!(
            on_pull_mode(indexed, local, server),
            want,
            "index {indexed:?}, local {local:?}, server {server}"
        );
    }
}
