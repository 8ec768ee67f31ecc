//! Conformance of the server to PROTOCOL.md §14.3 for what a restore
//! places and keeps: a file comes back with its content and executable bit
//! as one change and keeps only the state it replaced; a
//! directory whose files of that moment were all reaped is not restored
//! as an empty shell, and the refusal counts what expired (R-14.3.2,
//!

mod common;

use cloudservice::protocol::{
    Delete, ErrorCode, KeptKind, KeptVersion, ListVersions, Message, PushStatus, RemoveDir,
    Restore, RestoreAt,
};
use common::{p, Server, WireClient};
use std::time::Duration;

/// Every kept entry at or below `under`.
fn list_all(c: &mut WireClient, under: &str) -> Vec<KeptVersion> {
    let mut request = ListVersions {
        after_seq: 0,
        after: None,
        under: Some(p(under)),
    };
    let mut all = Vec::new();
    loop {
        let rid = c.send(Message::ListVersions(request.clone()));
        let page = match c.reply(rid) {
            Message::VersionList(page) => page,
            other => panic!("expected VersionList, got {other:?}"),
        };
        if let Some(last) = page.entries.last() {
            request.after_seq = last.seq;
            request.after = Some(last.path.clone());
        }
        let more = page.more;
        all.extend(page.entries);
        if !more {
            return all;
        }
    }
}

/// (size, executable) of each kept file entry, in listing order.
fn kept_states(entries: &[KeptVersion]) -> Vec<(u64, u64, bool)> {
    entries
        .iter()
        .filter_map(|e| match e.kind {
            KeptKind::File {
                size, executable, ..
            } => Some((e.seq, size, executable)),
            KeptKind::Dir => None,
        })
        .collect()
}

fn restore(c: &mut WireClient, seq: u64, path: &str) -> cloudservice::protocol::PushAck {
    c.push(Message::Restore(Restore { seq, path: p(path) }))
        .expect("Restore answered with a PushAck")
}

/// A deleted executable file comes back executable as the one change after
/// the deletion, and nothing new is kept (nothing was at the path); a
/// non-executable version restored over an executable file is one change
/// too, and the one version it keeps is the file it replaced, with its bit
/// (outside tester breaker10: two changes, and the content without the bit
/// kept as a version the file never had).
///
#[test]
fn r_14_3_6_a_restore_is_one_change_with_content_and_bit() {
    let server = Server::start();
    let mut c = WireClient::new_user(server.addr);
    let v1 = c.put("s.sh", b"#!/bin/sh\n", 0).expect("put").version;
    let x = c.set_mode("s.sh", v1, true);
    let rid = c.send(Message::Delete(Delete {
        base_version: x,
        path: p("s.sh"),
    }));
    let deleted = match c.reply(rid) {
        Message::PushAck(ack) => ack.version,
        other => panic!("expected PushAck, got {other:?}"),
    };
    let before = list_all(&mut c, "s.sh");
    let ack = restore(&mut c, deleted, "s.sh");
    assert_eq!(ack.status, PushStatus::Applied, "{ack:?}");
    assert_eq!(ack.version, deleted + 1, "one change");
    let (head, _, _) = c.pull(0);
    assert_eq!(head, deleted + 1, "one change");
    assert_eq!(
        server.copy_of(&c.user, "s.sh"),
        (b"#!/bin/sh\n".to_vec(), true)
    );
    assert_eq!(list_all(&mut c, "s.sh"), before, "no version kept");

    // The reverse: 'one' (not executable) over 'two!' (executable).
    let v1 = c.put("t.sh", b"one", 0).expect("put").version;
    let v2 = c.put("t.sh", b"two!", v1).expect("put").version;
    c.set_mode("t.sh", v2, true);
    let before = list_all(&mut c, "t.sh");
    let ack = restore(&mut c, v2, "t.sh");
    let (head, _, _) = c.pull(0);
    assert_eq!((ack.version, head), (head, ack.version));
    assert_eq!(
        ack.version,
        before.iter().map(|e| e.seq).max().unwrap_or(0) + 1,
        "one change"
    );
    assert_eq!(server.copy_of(&c.user, "t.sh"), (b"one".to_vec(), false));
    let after = list_all(&mut c, "t.sh");
    assert_eq!(after[..before.len()], before[..]);
    // Kept by the restore: 'two!' (4 bytes), executable; nothing else.
    assert_eq!(
        kept_states(&after[before.len()..]),
        vec![(ack.version, 4, true)]
    );
}

fn delete(c: &mut WireClient, path: &str, base: u64) -> u64 {
    c.push(Message::Delete(Delete {
        base_version: base,
        path: p(path),
    }))
    .expect("Delete answered with a PushAck")
    .version
}

fn remove_dir(c: &mut WireClient, path: &str) -> u64 {
    c.push(Message::RemoveDir(RemoveDir {
        cursor: u64::MAX / 2,
        path: p(path),
    }))
    .expect("RemoveDir answered with a PushAck")
    .version
}

/// The server's age limit in these tests: 0.0002 days, 17.28 s.
const AGE: &str = "0.0002";

/// Files deleted one by one whose records pass the age limit, while the
/// later removal of their directory is still kept (outside tester
/// breaker10's finding 6): restoring the directory by the number of the
/// first deletion, or at a moment before it, is `NoSuchVersion` saying how
/// many entries expired, and changes nothing (it brought back an empty
/// directory, Applied). By the number of its removal it was empty then,
/// and it comes back empty. A directory of which one file expired and one
/// is kept comes back with the kept one.
///
#[test]
fn r_14_3_2_a_directory_whose_files_expired_is_not_restored_empty() {
    let server = Server::start_with(&["--keep-versions", AGE, "--reap-every", "1"]);
    let mut c = WireClient::new_user(server.addr);
    let mut versions = Vec::new();
    for f in ["e6/f1", "e6/f2", "e6/f3", "p6/a", "p6/b"] {
        versions.push(c.put(f, f.as_bytes(), 0).expect("put").version);
    }
    let before_ms = cloudservice::server::store::versions::now_ms();
    std::thread::sleep(Duration::from_millis(5));
    let deleted_at = std::time::Instant::now();
    let first = delete(&mut c, "e6/f1", versions[0]);
    delete(&mut c, "e6/f2", versions[1]);
    delete(&mut c, "e6/f3", versions[2]);
    let pa = delete(&mut c, "p6/a", versions[3]);
    // Half the age limit later, the directories go (p6 with p6/b).
    std::thread::sleep(Duration::from_secs(9).saturating_sub(deleted_at.elapsed()));
    let rm_e6 = remove_dir(&mut c, "e6");
    remove_dir(&mut c, "p6");
    // The deletions' records pass the limit; the removals' do not yet.
    let limit = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let left = list_all(&mut c, "e6");
        if left.iter().all(|e| e.kind == KeptKind::Dir) {
            assert_eq!(left.len(), 1, "the removal of e6 is still kept: {left:?}");
            break;
        }
        assert!(std::time::Instant::now() < limit, "never reaped: {left:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (head, _, _) = c.pull(0);
    let refused = c
        .push(Message::Restore(Restore {
            seq: first,
            path: p("e6"),
        }))
        .expect_err("nothing of e6 as it was before the first deletion is kept");
    assert_eq!(refused.code, ErrorCode::NoSuchVersion);
    assert!(
        refused.message.contains("3 entries under e6") && refused.message.contains("expired"),
        "{}",
        refused.message
    );
    let refused = c
        .push(Message::RestoreAt(RestoreAt {
            time_ms: before_ms,
            path: p("e6"),
        }))
        .expect_err("nothing of e6 as it was then is kept");
    assert_eq!(refused.code, ErrorCode::NoSuchVersion);
    assert!(
        refused.message.contains("3 entries under it then expired"),
        "{}",
        refused.message
    );
    let (after, _, _) = c.pull(0);
    assert_eq!(after, head, "a refused restore changed something");
    assert!(!server.user_dir(&c.user).join("e6").exists());
    // Partly kept: the kept file comes back, the expired one does not.
    let ack = restore(&mut c, pa, "p6");
    assert_eq!(ack.status, PushStatus::Applied, "{ack:?}");
    let p6 = server.user_dir(&c.user).join("p6");
    assert_eq!(std::fs::read(p6.join("b")).expect("p6/b back"), b"p6/b");
    assert!(!p6.join("a").exists());
    // By the number of its removal e6 was empty: it comes back empty.
    let ack = restore(&mut c, rm_e6, "e6");
    assert_eq!(ack.status, PushStatus::Applied, "{ack:?}");
    let e6 = server.user_dir(&c.user).join("e6");
    assert_eq!(std::fs::read_dir(&e6).expect("e6 back").count(), 0);
}

/// RestoreAt's `time_ms` is a `u64` (§14.3): a moment after every change
/// (up to 2^64 − 1) is answered as says for T after the last
/// change — S is the head + 1, so a path there now is Unchanged and an
/// absent one is NoSuchVersion — and the refusal's text names that moment,
/// never a date before 1970 (the outside tester's breaker16 F6.6: every
/// value from 2^63 on read as a negative time, `1969-12-31T23:59:59.999Z`).
///
///
#[test]
fn r_14_3_5_a_moment_past_2_63_is_after_every_change_not_before_1970() {
    let server = Server::start();
    let mut c = WireClient::new_user(server.addr);
    let placed = c.put("f", b"content", 0).expect("f");
    for time_ms in [u64::MAX, 1 << 63, (1 << 63) - 1] {
        let ack = c
            .push(Message::RestoreAt(RestoreAt {
                time_ms,
                path: p("f"),
            }))
            .expect("f at a moment after every change: as it is now");
        assert_eq!(
            (ack.status, ack.version, ack.path.as_str()),
            (PushStatus::Unchanged, placed.version, "f"),
            "{time_ms}"
        );
        let refused = c
            .push(Message::RestoreAt(RestoreAt {
                time_ms,
                path: p("absent"),
            }))
            .expect_err("absent then and now");
        assert_eq!(refused.code, ErrorCode::NoSuchVersion, "{time_ms}");
        assert!(
            !refused.message.contains("1969") && refused.message.contains(&time_ms.to_string()),
            "{time_ms}: {}",
            refused.message
        );
    }
}
