//! Tests of how a PushAck updates the index: cursor rewinds for refused
//! pushes, and an upload raced by a local write is indexed untrusted.

use super::*;
use crate::client::fsutil::Stat;
use crate::protocol::ContentHash;

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

fn file(version: u64) -> Entry {
    Entry {
        kind: EntryKind::File {
            stat: stat(1, 7),
            hash: ContentHash::of(b"x"),
        },
        version,
    }
}

fn stale(version: u64, path: &str) -> PushAck {
    PushAck {
        status: PushStatus::Stale,
        version,
        path: p(path),
    }
}

#[test]
fn a_refused_rename_below_the_cursor_rewinds_it() {
    let mut index = Index::new();
    index.insert(p("a"), file(3));
    let op = Op::Rename {
        from: p("a"),
        to: p("a/a"),
        base: 3,
    };
    let effect = on_ack(&mut index, &op, &stale(3, "a"), 10);
    assert_eq!(effect.rewind, Some(2), "the next pull lists `a` again");
    assert!(effect.pull);
    assert!(index.get(&p("a")).is_none());
}

#[test]
fn a_refused_push_above_the_cursor_needs_no_rewind() {
    let mut index = Index::new();
    index.insert(p("f"), file(3));
    let op = Op::Delete {
        path: p("f"),
        base: 3,
    };
    let effect = on_ack(&mut index, &op, &stale(12, "f"), 10);
    assert_eq!(effect.rewind, None);
    assert!(effect.pull);
    let gone = on_ack(&mut index, &op, &stale(0, "f"), 10);
    assert_eq!(
        gone.rewind, None,
        "absent on the server: nothing to bring back"
    );
}

#[test]
fn a_racy_upload_is_indexed_untrusted() {
    let mut index = Index::new();
    let op = Op::Upload {
        path: p("f"),
        base: 0,
        stat: stat(1, crate::client::fsutil::now_ns()),
        hash: ContentHash::of(b"x"),
    };
    let ack = PushAck {
        status: PushStatus::Applied,
        version: 4,
        path: p("f"),
    };
    on_ack(&mut index, &op, &ack, 3);
    match index.get(&p("f")).map(|e| e.kind) {
        Some(EntryKind::File { stat, .. }) => assert_eq!(stat.mtime_ns, 0),
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_applied_rename_looks_at_its_destination_again() {
    // `mv a.sh b.sh; chmod -x b.sh` seen in one look is planned as the
    // Rename alone; the bit is found and sent by the next look.
    let mut index = Index::new();
    index.insert(p("a.sh"), file(3));
    let op = Op::Rename {
        from: p("a.sh"),
        to: p("b.sh"),
        base: 3,
    };
    let ack = PushAck {
        status: PushStatus::Applied,
        version: 11,
        path: p("b.sh"),
    };
    let effect = on_ack(&mut index, &op, &ack, 10);
    assert_eq!(effect.dirty, vec![p("b.sh")]);
    assert_eq!(effect.advance, Some(11));
    assert_eq!(index.get(&p("b.sh")).map(|e| e.version), Some(11));
}

/// An answer older than what the index already holds at its path (a pull
/// that listed a later change of the path was applied first) does not
/// replace the newer record, whatever the push and the status: the path is
/// only compared again. An answer at or above the record replaces it.
#[test]
fn an_older_answer_never_replaces_a_newer_index_entry() {
    let hash = ContentHash::of(b"x");
    let ops = [
        Op::Upload {
            path: p("f"),
            base: 3,
            stat: stat(1, 7),
            hash,
        },
        Op::SetMode {
            path: p("f"),
            base: 3,
            stat: stat(1, 7),
            hash,
        },
        Op::MakeDir { path: p("f") },
    ];
    for op in &ops {
        for status in [PushStatus::Applied, PushStatus::Unchanged] {
            let mut index = Index::new();
            index.insert(p("f"), file(12));
            let ack = PushAck {
                status,
                version: 10,
                path: p("f"),
            };
            let effect = on_ack(&mut index, op, &ack, 9);
            assert_eq!(
                index.get(&p("f")).copied(),
                Some(file(12)),
                "{op:?} {status:?}"
            );
            assert!(effect.dirty.contains(&p("f")), "{op:?} {status:?}");
            let ack = PushAck { version: 13, ..ack };
            on_ack(&mut index, op, &ack, 9);
            assert_eq!(index.get(&p("f")).map(|e| e.version), Some(13), "{op:?}");
        }
    }
}
