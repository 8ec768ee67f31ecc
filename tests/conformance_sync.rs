//! Conformance of the real server with PROTOCOL.md §5.1–§5.3 (Pull,
//! ChangeBatch, Ack) and §7 (versions and conflicts): raw frames over
//! loopback, replies decoded by hand from the spec's tables.

mod common;

use common::raw::*;
use common::Server;
use std::time::Duration;

/// Checks every batch of one reply against §5.2's layout rules; returns
/// (head, full).
fn check_reply(batches: &[RawFrame]) -> (u64, bool) {
    let head = batches[0].u64_at(0);
    let full = batches[0].payload[8] & 1 != 0;
    for (i, b) in batches.iter().enumerate() {
        let flags = b.payload[8];
        assert_eq!(flags & 0xfc, 0, "flag bits 2..7");
        assert_eq!(b.u64_at(0), head, "same head in every batch");
        assert_eq!(flags & 1 != 0, full, "same full flag in every batch");
        assert_eq!(
            flags & 2 != 0,
            i + 1 == batches.len(),
            "only the last has last"
        );
        let count = u16::from_be_bytes([b.payload[9], b.payload[10]]);
        assert!(count <= 4096, "{count} entries");
    }
    for e in entries(batches) {
        assert!(matches!(e.state, FILE | DIR | DELETED), "{e:?}");
        if e.state != FILE {
            assert_eq!((e.size, e.hash), (0, [0; 32]), "{e:?}");
        }
    }
    (head, full)
}

/// (state, version, path) of each entry.
fn summary(batches: &[RawFrame]) -> Vec<(u8, u64, String)> {
    entries(batches)
        .into_iter()
        .map(|e| (e.state, e.version, e.path))
        .collect()
}

/// Which reply a cursor gets: full for 0 and beyond the head, incremental
/// in between, one empty batch at the head.
#[test]
/// Covers: R-5.2.6, R-5.2.1, R-5.2.9, R-7.1.2
fn r_5_1_1_the_cursor_decides_the_kind_of_reply() {
    let server = Server::start();
    let (mut a, _, _) = Raw::new_user(server.addr);
    a.send(&upload(1, 0, b"one", "d/one.txt", 16)); // 1
    a.expect_ack(1);
    a.send(&upload(2, 0, b"two", "two.txt", 16)); // 2
    a.expect_ack(2);
    a.send(&u64_path(DELETE, 3, 2, "two.txt")); // 3
    a.expect_ack(3);
    let listing = vec![
        (DIR, 1, "d".to_string()),
        (FILE, 1, "d/one.txt".to_string()),
    ];
    for cursor in [0u64, 4, 99, u64::MAX] {
        let reply = a.pull(10, cursor);
        assert_eq!(check_reply(&reply), (3, true), "cursor {cursor}");
        assert_eq!(summary(&reply), listing, "cursor {cursor}");
    }
    let reply = a.pull(11, 1);
    assert_eq!(check_reply(&reply), (3, false));
    let got = summary(&reply);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!((got[0].0, got[0].2.as_str()), (DELETED, "two.txt"));
    let reply = a.pull(12, 3);
    assert_eq!(reply.len(), 1);
    assert_eq!(
        reply[0].bytes(),
        frame(CHANGE_BATCH, 12, &[0, 0, 0, 0, 0, 0, 0, 3, 2, 0, 0])
    );
}

/// A journal compacted at a clean stop still answers every cursor
/// correctly (a full listing is always correct): 5,000 changes, restart,
/// then the listing and an incremental pull match the tree.
#[test]
/// Covers: R-5.2.8, R-10.1
fn r_5_1_2_a_compacted_journal_still_answers_pulls() {
    // Plaintext: a second handle on the socket writes from another thread.
    let mut server = Server::options().plaintext().start();
    let (mut a, user, _) = Raw::new_user(server.addr);
    let mut writer = a.stream.try_clone().expect("clone");
    let sender = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        for i in 0..5000u32 {
            bytes.extend_from_slice(&match i % 2 {
                0 => make_dir(i + 1, "flip/flop"),
                _ => u64_path(REMOVE_DIR, i + 1, u64::MAX, "flip"),
            });
        }
        bytes.extend_from_slice(&upload(5001, 0, b"kept", "kept.txt", 16));
        std::io::Write::write_all(&mut writer, &bytes).is_ok()
    });
    for rid in 1..=5001u32 {
        assert_eq!(a.expect_ack(rid).0, 0, "every push is applied");
    }
    assert!(sender.join().expect("writer"));
    let head = check_reply(&a.pull(9, 0)).0;
    drop(a);
    server.stop();
    server.restart();
    let mut c = Raw::connect(server.addr);
    c.send(&hello(1, 3, user, 1));
    assert_eq!(c.expect(WELCOME, 1).u64_at(24), head);
    let full = c.pull(2, 0);
    assert_eq!(check_reply(&full), (head, true));
    let got = entries(&full);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!((got[0].version, got[0].path.as_str()), (5001, "kept.txt"));
    for e in &got {
        let on_disk = std::fs::read(
            server
                .data
                .join("AllClients")
                .join(hex(&user))
                .join(&e.path),
        )
        .expect("file on disk");
        assert_eq!(e.hash, *blake3::hash(&on_disk).as_bytes());
    }
    let inc = c.pull(3, head - 1);
    let (h, full_flag) = check_reply(&inc);
    assert_eq!(h, head);
    let names: Vec<String> = entries(&inc).into_iter().map(|e| e.path).collect();
    assert!(
        full_flag || names == vec!["kept.txt".to_string()],
        "{names:?}"
    );
}

/// A reply longer than one batch: 4,100 directories are sent as several
/// batches of at most 4,096 entries, and long paths keep each batch's
/// payload within 1 MiB.
#[test]
/// Covers: R-5.2.2, R-5.2.1
fn r_5_2_3_batches_hold_at_most_4096_entries_and_1_mib() {
    let server = Server::start();
    let (mut a, _, _) = Raw::new_user(server.addr);
    let mut bytes = Vec::new();
    for i in 0..4100u32 {
        bytes.extend_from_slice(&make_dir(i + 1, &format!("d{i:05}")));
    }
    let long = vec!["l".repeat(250); 15].join("/");
    for i in 0..300u32 {
        bytes.extend_from_slice(&make_dir(5000 + i, &format!("{long}/{i:04}")));
    }
    a.send(&bytes);
    for rid in (1..=4100u32).chain(5000..5300) {
        a.expect_ack(rid);
    }
    let reply = a.pull(7, 0);
    check_reply(&reply);
    assert!(reply.len() >= 3, "{} batches", reply.len());
    assert!(reply.iter().all(|b| b.payload.len() <= 1_048_576));
    assert_eq!(entries(&reply).len(), 4100 + 15 + 300);
}

/// Each path once, in its current state; the one exception (content moved
/// away, then something new at the path) is Deleted then the new state.
#[test]
/// Covers: R-5.2.7
fn r_5_2_4_each_path_once_with_its_current_state() {
    let server = Server::start();
    let (mut a, _, _) = Raw::new_user(server.addr);
    a.send(&upload(1, 0, b"0", "base", 16)); // 1
    a.expect_ack(1);
    let mut v = 0;
    for (rid, text) in [(2, "a"), (3, "b"), (4, "c")] {
        a.send(&upload(rid, v, text.as_bytes(), "edited.txt", 16)); // 2, 3, 4
        v = a.expect_ack(rid).1;
    }
    a.send(&upload(5, 0, b"tmp", "brief.txt", 16)); // 5
    a.expect_ack(5);
    a.send(&u64_path(DELETE, 6, 5, "brief.txt")); // 6
    a.expect_ack(6);
    a.send(&upload(7, 0, b"in a", "a/old.txt", 16)); // 7
    a.expect_ack(7);
    a.send(&rename(8, 7, "a", "b")); // 8
    assert_eq!(a.expect_ack(8), (0, 8, "b".to_string()));
    a.send(&upload(9, 0, b"new", "a/new.txt", 16)); // 9
    a.expect_ack(9);
    let reply = a.pull(10, 1);
    check_reply(&reply);
    let got = summary(&reply);
    let deleted: Vec<&str> = got
        .iter()
        .filter(|e| e.0 == DELETED)
        .map(|e| e.2.as_str())
        .collect();
    assert!(
        deleted.contains(&"a") && deleted.contains(&"brief.txt"),
        "{got:?}"
    );
    for e in &got {
        let times = got.iter().filter(|o| o.2 == e.2).count();
        assert!(times == 1 || e.2 == "a", "{} listed {times} times", e.2);
    }
    let mut live: Vec<(u8, u64, &str)> = got
        .iter()
        .filter(|e| e.0 != DELETED)
        .map(|e| (e.0, e.1, e.2.as_str()))
        .collect();
    live[2..].sort_by_key(|e| e.2);
    assert_eq!(
        live,
        vec![
            (DIR, 9, "a"),
            (DIR, 8, "b"),
            (FILE, 9, "a/new.txt"),
            (FILE, 8, "b/old.txt"),
            (FILE, 4, "edited.txt"),
        ]
    );
}

/// A Rename lists `from` as Deleted and `to` with everything below it at
/// the rename's sequence number; parents it created are Dir entries.
#[test]
/// Covers: R-5.4.10, R-5.4.2
fn r_5_2_5_a_rename_touches_from_and_everything_below_to() {
    let server = Server::start();
    let (mut a, _, _) = Raw::new_user(server.addr);
    a.send(&upload(1, 0, b"1", "src/x/1.txt", 16)); // 1
    a.expect_ack(1);
    a.send(&upload(2, 0, b"2", "src/2.txt", 16)); // 2
    a.expect_ack(2);
    a.send(&rename(3, 0, "src", "p/q/dst")); // 3
    assert_eq!(a.expect_ack(3), (0, 3, "p/q/dst".to_string()));
    let got = summary(&a.pull(4, 2));
    assert_eq!(
        got,
        vec![
            (DELETED, 3, "src".to_string()),
            (DIR, 3, "p".to_string()),
            (DIR, 3, "p/q".to_string()),
            (DIR, 3, "p/q/dst".to_string()),
            (DIR, 3, "p/q/dst/x".to_string()),
            (FILE, 3, "p/q/dst/2.txt".to_string()),
            (FILE, 3, "p/q/dst/x/1.txt".to_string()),
        ]
    );
}

/// Deleted entries carry the sequence number of the change that removed
/// them, not the reply's head.
#[test]
/// Covers: R-5.2.5
fn r_7_1_3_deleted_entries_carry_the_removing_change() {
    let server = Server::start();
    let (mut a, _, _) = Raw::new_user(server.addr);
    a.send(&upload(1, 0, b"x", "old", 16)); // 1
    a.expect_ack(1);
    a.send(&u64_path(DELETE, 2, 1, "old")); // 2
    a.expect_ack(2);
    a.send(&make_dir(3, "photos")); // 3
    a.expect_ack(3);
    assert_eq!(
        summary(&a.pull(4, 1)),
        vec![
            (DELETED, 2, "old".to_string()),
            (DIR, 3, "photos".to_string())
        ]
    );
}

/// A full listing has no Deleted entries, lists every directory after its
/// ancestors and every file after every directory.
#[test]
/// Covers: R-5.2.6
fn r_5_2_7_entries_are_ordered_deleted_dirs_files() {
    let server = Server::start();
    let (mut a, _, _) = Raw::new_user(server.addr);
    let names = ["z/y/x/f", "a/b", "m", "z/a", "b/c/d/e/g", "q/r/s"];
    for (i, n) in names.iter().enumerate() {
        a.send(&upload(i as u32 + 1, 0, n.as_bytes(), n, 16));
        a.expect_ack(i as u32 + 1);
    }
    a.send(&u64_path(REMOVE_DIR, 20, 6, "q"));
    a.expect_ack(20);
    a.send(&u64_path(DELETE, 21, 3, "m"));
    a.expect_ack(21);
    for cursor in [0u64, 2] {
        let got = entries(&a.pull(30, cursor));
        let rank = |s: u8| match s {
            DELETED => 0,
            DIR => 1,
            _ => 2,
        };
        assert!(
            got.windows(2).all(|w| rank(w[0].state) <= rank(w[1].state)),
            "{got:?}"
        );
        for (i, e) in got.iter().enumerate() {
            let mut parent = e.path.as_str();
            while let Some((up, _)) = parent.rsplit_once('/') {
                parent = up;
                if e.state != DELETED {
                    let at = got.iter().position(|o| o.path == parent && o.state == DIR);
                    if cursor == 0 {
                        assert!(at.is_some_and(|at| at < i), "{parent} before {}", e.path);
                    }
                }
            }
        }
        if cursor == 0 {
            assert!(got.iter().all(|e| e.state != DELETED));
            assert_eq!(got.iter().filter(|e| e.state == FILE).count(), 4);
        }
    }
}

/// An Ack gets no reply, whatever its ID, even above the head; the
/// connection goes on.
#[test]
/// Covers: R-5.3.3
fn r_5_3_2_an_ack_above_the_head_is_taken_as_the_head() {
    let server = Server::start();
    let (mut a, _, _) = Raw::new_user(server.addr);
    a.send(&make_dir(1, "d"));
    a.expect_ack(1);
    for (rid, cursor) in [(0u32, 1u64), (77, 1000), (78, u64::MAX)] {
        a.send(&frame(ACK, rid, &cursor.to_be_bytes()));
    }
    a.expect_silence(Duration::from_millis(500));
    a.ping_pong(5);
    server.wait_log("request=ack outcome=ok");
    assert!(!server.conn_log().contains("request=ack outcome=error"));
}

/// Versions count 1, 2, 3, … without gaps: every Applied or Conflict push is
/// one number (a push that creates parents too); Unchanged and Stale take
/// none.
#[test]
/// Covers: R-5.4.2, R-7.1.3
fn r_7_1_1_sequence_numbers_have_no_gaps() {
    let server = Server::start();
    let (mut a, user, _) = Raw::new_user(server.addr);
    let (mut b, _) = Raw::join(server.addr, user);
    a.send(&upload(1, 0, b"x", "a/b/c.txt", 16));
    assert_eq!(a.expect_ack(1), (0, 1, "a/b/c.txt".to_string()));
    a.send(&make_dir(2, "a")); // Unchanged
    assert_eq!(a.expect_ack(2).0, 3);
    a.send(&u64_path(DELETE, 3, 0, "nothing")); // Unchanged
    assert_eq!(a.expect_ack(3).0, 3);
    b.send(&upload(4, 0, b"y", "a/b/c.txt", 16)); // Conflict
    assert_eq!(b.expect_ack(4).1, 2);
    a.send(&rename(5, 1, "a", "r")); // Applied
    assert_eq!(a.expect_ack(5).1, 3);
    a.send(&u64_path(DELETE, 6, 1, "r")); // Stale (a directory)
    assert_eq!(a.expect_ack(6).0, 2);
    a.send(&make_dir(7, "s/t"));
    assert_eq!(a.expect_ack(7).1, 4);
    let got = summary(&a.pull(8, 0));
    assert!(got.iter().any(|e| e == &(DIR, 4, "s".to_string())));
    assert!(got.iter().any(|e| e == &(DIR, 4, "s/t".to_string())));
    assert!(
        got.iter()
            .filter(|e| e.2.starts_with("r"))
            .all(|e| e.1 == 3),
        "{got:?}"
    );
}

/// A RemoveDir that removes two files and keeps a newer one is one change:
/// one sequence number, reported in its PushAck.
#[test]
/// Covers: R-5.4.2, R-5.4.3
fn r_7_1_1_a_partly_stale_remove_dir_is_one_change() {
    let server = Server::start();
    let (mut a, user, _) = Raw::new_user(server.addr);
    let (mut b, _) = Raw::join(server.addr, user);
    for (rid, name) in [(1, "rm/a.txt"), (2, "rm/b.txt")] {
        a.send(&upload(rid, 0, b"x", name, 16));
        a.expect_ack(rid);
    }
    b.send(&upload(3, 0, b"new", "rm/new.txt", 16)); // 3, after A's cursor 2
    b.expect_ack(3);
    a.send(&u64_path(REMOVE_DIR, 4, 2, "rm"));
    assert_eq!(a.expect_ack(4), (2, 4, "rm".to_string()));
    let mut c = Raw::new_user(server.addr).0;
    c.ping_pong(1);
    let head = check_reply(&a.pull(5, 0)).0;
    assert_eq!(head, 4);
}

/// Both sides survive: a concurrent upload becomes a conflict copy, a
/// Delete of a modified file is Stale, an upload of a deleted file comes
/// back.
#[test]
/// Covers: R-7.5.1, R-7.5.2
fn r_7_3_1_both_sides_survive() {
    let server = Server::start();
    let (mut a, user, _) = Raw::new_user(server.addr);
    let (mut b, _) = Raw::join(server.addr, user);
    a.send(&upload(1, 0, b"base", "r.txt", 16)); // 1
    a.expect_ack(1);
    a.send(&upload(2, 1, b"by A", "r.txt", 16)); // 2
    a.expect_ack(2);
    b.send(&upload(3, 1, b"by B", "r.txt", 16)); // 3, Conflict
    let (status, version, copy) = b.expect_ack(3);
    assert_eq!((status, version), (1, 3));
    assert!(
        copy.starts_with("r (conflict 2 ") && copy.ends_with(").txt"),
        "{copy}"
    );
    b.send(&u64_path(DELETE, 4, 1, "r.txt"));
    assert_eq!(b.expect_ack(4), (2, 2, "r.txt".to_string()));
    a.send(&u64_path(DELETE, 5, 2, "r.txt")); // 4
    a.expect_ack(5);
    b.send(&upload(6, 2, b"edit of a deleted file", "r.txt", 16)); // 5
    assert_eq!(b.expect_ack(6), (0, 5, "r.txt".to_string()));
    let got = entries(&b.pull(7, 0));
    let find = |p: &str| got.iter().find(|e| e.path == p).cloned();
    assert_eq!(
        find(&copy).map(|e| (e.version, e.hash)),
        Some((3, *blake3::hash(b"by B").as_bytes()))
    );
    assert_eq!(
        find("r.txt").map(|e| e.hash),
        Some(*blake3::hash(b"edit of a deleted file").as_bytes())
    );
}

/// Conflict names: `stem (conflict <client> <YYYY-MM-DD HHMMSS>[ n]).ext`,
/// in the same parent, at the server's UTC time, the next attempt when
/// taken.
#[test]
/// Covers: R-5.4.5
fn r_7_4_1_conflict_copy_names() {
    let server = Server::start();
    let (mut a, user, _) = Raw::new_user(server.addr);
    let (mut b, client) = Raw::join(server.addr, user);
    a.send(&upload(1, 0, b"base", "docs/archive.tar.gz", 16));
    a.expect_ack(1);
    a.send(&upload(2, 1, b"A", "docs/archive.tar.gz", 16));
    a.expect_ack(2);
    let mut copies = Vec::new();
    for rid in 3..6u32 {
        b.send(&upload(
            rid,
            1,
            format!("B{rid}").as_bytes(),
            "docs/archive.tar.gz",
            16,
        ));
        let (status, _, path) = b.expect_ack(rid);
        assert_eq!(status, 1);
        copies.push(path);
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let mut stamps = Vec::new();
    for copy in &copies {
        let tag = copy
            .strip_prefix(&format!("docs/archive.tar (conflict {client} "))
            .and_then(|r| r.strip_suffix(").gz"))
            .unwrap_or_else(|| panic!("bad conflict name {copy}"));
        let (stamp, n) = match tag.len() {
            17 => (tag, 1),
            _ => (
                &tag[..17],
                tag[18..].parse::<u32>().expect("attempt number"),
            ),
        };
        let b = stamp.as_bytes();
        assert!(b[4] == b'-' && b[7] == b'-' && b[10] == b' ', "{stamp}");
        let secs = civil_secs(stamp);
        assert!(secs + 5 >= now && secs <= now, "{stamp} is not now (UTC)");
        stamps.push((stamp.to_string(), n));
    }
    for (i, (stamp, n)) in stamps.iter().enumerate() {
        let earlier = stamps[..i].iter().filter(|(s, _)| s == stamp).count() as u32;
        assert_eq!(*n, earlier + 1, "{copies:?}");
    }
}

/// Seconds since 1970 of `YYYY-MM-DD HHMMSS` (UTC), by the civil calendar.
fn civil_secs(stamp: &str) -> u64 {
    let num = |r: std::ops::Range<usize>| stamp[r].parse::<i64>().expect("digits");
    let (y, m, d) = (num(0..4), num(5..7), num(8..10));
    let (hh, mm, ss) = (num(11..13), num(13..15), num(15..17));
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    (days * 86_400 + hh * 3600 + mm * 60 + ss) as u64
}

/// Below a Deleted directory, an incremental reply lists only the entries
/// that changed after the cursor (as Deleted), not the older ones.
#[test]
fn r_5_2_14_entries_below_a_deleted_directory() {
    let server = Server::start();
    let (mut a, _, _) = Raw::new_user(server.addr);
    a.send(&upload(1, 0, b"old", "d/old.txt", 16)); // 1
    a.expect_ack(1);
    a.send(&upload(2, 0, b"new", "d/sub/new.txt", 16)); // 2
    a.expect_ack(2);
    a.send(&u64_path(REMOVE_DIR, 3, 2, "d")); // 3
    a.expect_ack(3);
    assert_eq!(
        summary(&a.pull(4, 1)),
        vec![
            (DELETED, 3, "d".to_string()),
            (DELETED, 3, "d/sub".to_string()),
            (DELETED, 3, "d/sub/new.txt".to_string()),
        ]
    );
}
