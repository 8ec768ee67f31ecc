//! History checks (PROTOCOL.md §5.8, protocol version 8) against the real
//! server with raw frames: the History frame before the ModeBatch reply,
//! the verdict table of R-5.8.2 (same history, another tag, a cursor past
//! the head, own pushes past the checked change, another device's), tags
//! that survive a restart and a compaction, the reactor's
//! up-to-date answer, and a data directory restored from a copy whose
//! head then passes the device's cursor again with other changes.

mod common;

use cloudservice::protocol::{
    ChangeBatch, ChangeEntry, EntryState, History, Message, PullChecked, UserId,
};
use common::*;
use std::process::Command;

/// Sends a PullChecked and reads its reply: the History, then the batches.
fn pull_checked(c: &mut WireClient, point: (u64, u64, u64)) -> (History, bool, Vec<ChangeEntry>) {
    let (cursor, check_seq, check_tag) = point;
    let rid = c.send(Message::PullChecked(PullChecked {
        cursor,
        check_seq,
        check_tag,
    }));
    let history = match c.reply(rid) {
        Message::History(h) => h,
        other => panic!("a PullChecked reply starts with History, not {other:?}"),
    };
    let mut entries = Vec::new();
    loop {
        match c.reply(rid) {
            Message::ModeBatch(ChangeBatch {
                head,
                full,
                last,
                entries: more,
            }) => {
                assert_eq!(
                    head, history.head,
                    "R-5.8.2: a batch's head is the History's"
                );
                entries.extend(more);
                if last {
                    return (history, full, entries);
                }
            }
            other => panic!("unexpected frame in a PullChecked reply: {other:?}"),
        }
    }
}

fn paths(entries: &[ChangeEntry]) -> Vec<String> {
    entries
        .iter()
        .filter(|e| e.state != EntryState::Deleted)
        .map(|e| e.path.to_string())
        .collect()
}

/// The head and its tag, from an up-to-date check.
fn head_of(c: &mut WireClient) -> (u64, u64) {
    let (h, _, _) = pull_checked(c, (0, 0, 0));
    (h.head, h.head_tag)
}

#[test]
fn r_5_8_2_the_verdict_follows_the_table() {
    let server = Server::start();
    let mut a = WireClient::new_user(server.addr);
    for (i, name) in ["f1", "f2", "f3"].iter().enumerate() {
        let ack = a.put(name, name.as_bytes(), 0).expect("put");
        assert_eq!(ack.version, i as u64 + 1);
    }
    // Cursor 0: a full listing, not diverged, with the head's tag.
    let (h, full, entries) = pull_checked(&mut a, (0, 0, 0));
    assert!(full && !h.diverged);
    assert_eq!((h.head, h.common), (3, 0));
    assert_ne!(h.head_tag, 0, "R-5.8.1: every change has a tag");
    assert_eq!(paths(&entries), ["f1", "f2", "f3"]);
    let t3 = h.head_tag;
    a.send(Message::Ack { cursor: 3 });
    // The same history: an empty reply (answered by the reactor too).
    for _ in 0..2 {
        let (h, full, entries) = pull_checked(&mut a, (3, 3, t3));
        assert!(!full && !h.diverged && entries.is_empty(), "{h:?}");
        assert_eq!((h.head, h.head_tag, h.common), (3, t3, 3));
    }
    // Another tag at the same number: diverged, full, common = the Ack.
    let (h, full, entries) = pull_checked(&mut a, (3, 3, t3 ^ 1));
    assert!(full && h.diverged, "{h:?}");
    assert_eq!((h.head, h.common), (3, 3));
    assert_eq!(paths(&entries), ["f1", "f2", "f3"]);
    // A cursor or a checked change past the head.
    for point in [(5, 5, t3), (5, 3, t3), (2, 5, t3), (7, 7, 0)] {
        let (h, full, _) = pull_checked(&mut a, point);
        assert!(full && h.diverged, "{point:?}: {h:?}");
    }
    // Tag 0 checks only the numbers; pulling again from before the checked
    // change is no divergence.
    let (h, full, entries) = pull_checked(&mut a, (1, 3, t3));
    assert!(!full && !h.diverged);
    assert_eq!(paths(&entries), ["f2", "f3"]);
    assert!(!pull_checked(&mut a, (3, 3, 0)).0.diverged);
    // Own pushes past the checked change: not diverged; another device's
    // change in between: diverged.
    assert_eq!(a.put("f4", b"4", 0).expect("f4").version, 4);
    let (h, full, _) = pull_checked(&mut a, (4, 3, t3));
    assert!(!full && !h.diverged, "a's own push 4: {h:?}");
    let mut b = WireClient::new_client(server.addr, a.user);
    assert_eq!(b.put("f5", b"5", 0).expect("f5").version, 5);
    let (h, _, _) = pull_checked(&mut a, (5, 3, t3));
    assert!(h.diverged, "5 is b's change: {h:?}");
    let (h, _, _) = pull_checked(&mut b, (5, 3, t3));
    assert!(h.diverged, "4 is a's change: {h:?}");
    // An older kind is answered as before.
    let (head, full, _) = a.pull(3);
    assert_eq!((head, full), (5, false));
}

#[test]
fn r_5_8_1_tags_survive_a_restart_and_a_compaction() {
    let mut server = Server::start();
    let mut a = WireClient::new_user(server.addr);
    let user = a.user;
    a.put("x", b"x", 0).expect("x");
    let (h1, t1) = head_of(&mut a);
    let mut v = 0;
    for round in 0..4200u32 {
        v = a
            .put("busy", &round.to_be_bytes(), v)
            .expect("busy")
            .version;
    }
    let (h2, t2) = head_of(&mut a);
    assert_eq!(h2, v);
    a.send(Message::Ack { cursor: h1 });
    let _ = head_of(&mut a);
    drop(a);
    server.restart();
    let mut a = WireClient::resume(server.addr, user, 1);
    assert_eq!(
        head_of(&mut a),
        (h2, t2),
        "the same tag after a compaction and restart"
    );
    for (seq, tag) in [(h1, t1), (h2, t2)] {
        let (h, _, _) = pull_checked(&mut a, (seq, seq, tag));
        assert!(!h.diverged, "change {seq} keeps its tag: {h:?}");
    }
    // The chain goes on after the snapshot, and again after a restart.
    let next = a.put("after", b"a", 0).expect("after").version;
    let (h3, t3) = head_of(&mut a);
    assert_eq!(h3, next);
    drop(a);
    server.restart();
    let mut a = WireClient::resume(server.addr, user, 1);
    assert_eq!(head_of(&mut a), (h3, t3));
}

/// `cp -a from to`.
fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    let ok = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .expect("cp")
        .success();
    assert!(ok);
}

/// The data directory restored from a copy; then another device pushes
/// more changes than were lost: the head passes the device's cursor again,
/// the number names another change, the tag tells.
#[test]
fn a_restored_data_directory_is_found_out_even_when_the_head_passed_again() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("data");
    let mut server = Server::start_in(&data, &[]);
    let mut a = WireClient::new_user(server.addr);
    let user: UserId = a.user;
    a.put("f1", b"1", 0).expect("f1");
    let (h, t) = head_of(&mut a);
    a.send(Message::Ack { cursor: h });
    let _ = head_of(&mut a);
    drop(a);
    server.stop();
    copy_dir(&data, &dir.path().join("backup"));
    server.start_again();
    let mut a = WireClient::resume(server.addr, user, 1);
    a.put("lost1", b"l1", 0).expect("lost1");
    a.put("lost2", b"l2", 0).expect("lost2");
    let (lost_head, lost_tag) = head_of(&mut a);
    assert_eq!(lost_head, h + 2);
    drop(a);
    server.stop();
    std::fs::remove_dir_all(&data).expect("rm data");
    copy_dir(&dir.path().join("backup"), &data);
    server.start_again();
    let mut c = WireClient::new_client(server.addr, user);
    for name in ["c1", "c2", "c3"] {
        c.put(name, b"c", 0).expect("c");
    }
    let mut a = WireClient::resume(server.addr, user, 1);
    let (hist, full, entries) = pull_checked(&mut a, (lost_head, lost_head, lost_tag));
    assert!(hist.head > lost_head, "the head passed the cursor again");
    assert!(full && hist.diverged, "{hist:?}");
    assert_eq!(hist.common, h, "common: what the device acknowledged here");
    assert_eq!(paths(&entries), ["c1", "c2", "c3", "f1"]);
    // The untouched history still checks out.
    assert!(!pull_checked(&mut a, (h, h, t)).0.diverged);
}
