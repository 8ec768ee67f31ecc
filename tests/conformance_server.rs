//! Server behaviour that issue 10 found contradicting PROTOCOL.md, driven
//! with raw frames against the real server binary: reply order with Pong
//! (§3.4, §4.3), request IDs of closing Errors (§3.3, §4.5), unknown Error
//! codes (§4.5), one change per push and its Notify (§4.4, §5.4), versions
//! of Deleted entries (§7.1), a device's own pushes (§7.2) and one conflict
//! directory per pushed subtree (§7.4).

mod common;

use cloudservice::protocol::{
    decode_all, ChangeEntry, Delete, EntryState, ErrorCode, Fetch, Frame, Kind, Message,
    PartialAck, PushAck, PushStatus, RemoveDir, Rename, SetMode, Status,
};
use common::*;
use std::time::Duration;

#[test]
fn pong_keeps_request_order_behind_a_pipelined_pull() {
    let server = Server::start();
    let mut a = WireClient::new_user(server.addr);
    for i in 0..50 {
        a.put(&format!("dir/file {i}.txt"), b"x", 0).expect("push");
    }
    // One write: Pull (rid 4, cursor 0: a full listing the actor builds) and
    // Ping (rid 5). The Pong must come after the whole pull reply.
    let mut bytes = Frame::new(4, Message::Pull { cursor: 0 }).to_bytes();
    bytes.extend(Frame::new(5, Message::Ping).to_bytes());
    a.send_raw(&bytes);
    let mut seen = Vec::new();
    loop {
        let frame = a.next();
        let done = frame.message.kind() == Kind::Pong;
        seen.push((frame.message.kind(), frame.request_id));
        if done {
            break;
        }
    }
    let (last, batches) = seen.split_last().expect("frames");
    assert_eq!(*last, (Kind::Pong, 5), "{seen:?}");
    assert!(
        !batches.is_empty(),
        "the pull reply came after the Pong: {seen:?}"
    );
    assert!(
        batches.iter().all(|s| *s == (Kind::ChangeBatch, 4)),
        "{seen:?}"
    );
}

#[test]
fn pong_never_interleaves_a_slow_fetch_reply() {
    let server = Server::start();
    let mut a = WireClient::new_user(server.addr);
    let big: Vec<u8> = (0..6 * 1024 * 1024u32).map(|i| (i % 253) as u8).collect();
    a.put("big.bin", &big, 0).expect("push");
    // A slow reader: ask for 6 MiB, read nothing while the server's window
    // and the socket buffers fill, then Ping.
    a.send_with(
        10,
        Message::Fetch(Fetch {
            version: 1,
            path: p("big.bin"),
        }),
    );
    std::thread::sleep(Duration::from_millis(300));
    a.send_with(11, Message::Ping);
    std::thread::sleep(Duration::from_millis(300));
    let mut kinds = Vec::new();
    let mut data = Vec::new();
    loop {
        let frame = a.next();
        kinds.push((frame.message.kind(), frame.request_id));
        if let Message::FileChunk(chunk) = &frame.message {
            data.extend_from_slice(chunk);
        }
        if frame.message.kind() == Kind::Pong {
            break;
        }
    }
    assert_eq!(kinds.first(), Some(&(Kind::FileBegin, 10)));
    assert_eq!(
        &kinds[kinds.len() - 2..],
        &[(Kind::FileEnd, 10), (Kind::Pong, 11)],
        "the Pong interleaved the fetch reply: {kinds:?}"
    );
    assert_eq!(data, big);
}

#[test]
fn ping_during_an_upload_is_answered_and_the_upload_goes_on() {
    let server = Server::start();
    let mut a = WireClient::new_user(server.addr);
    let content = b"abcdef";
    a.send_with(
        20,
        Message::FileBegin(cloudservice::protocol::FileBegin {
            version: 0,
            size: 6,
            hash: cloudservice::protocol::ContentHash::of(content),
            path: p("u.txt"),
        }),
    );
    a.send_with(20, Message::FileChunk(b"abc".to_vec()));
    a.send_with(21, Message::Ping);
    assert_eq!(a.reply(21), Message::Pong);
    a.send_with(20, Message::FileChunk(b"def".to_vec()));
    a.send_with(20, Message::FileEnd);
    assert!(matches!(a.reply(20), Message::PushAck(_)));
}

/// Sends `bytes` after a handshake and returns the closing Error's frame.
fn closing_error(server: &Server, bytes: &[u8]) -> Frame {
    let mut c = WireClient::new_user(server.addr);
    c.send_raw(bytes);
    let frames = c.until_closed();
    frames
        .into_iter()
        .find(|f| matches!(f.message, Message::Error(_)))
        .expect("a closing Error")
}

#[test]
fn closing_errors_carry_the_bad_frames_request_id() {
    let server = Server::start();
    // BadPath: MakeDir rid 7 "../x".
    let e = closing_error(&server, &raw::frame(0x30, 7, &raw::path_field(b"../x")));
    assert_error(&e.message, ErrorCode::BadPath);
    assert_eq!(e.request_id, 7);
    // Every path rule gives BadPath with the frame's ID, in every push kind.
    let mut delete = 5u64.to_be_bytes().to_vec();
    delete.extend(raw::path_field(b"a//b"));
    let e = closing_error(&server, &raw::frame(0x31, 8, &delete));
    assert_error(&e.message, ErrorCode::BadPath);
    assert_eq!(e.request_id, 8);
    let mut fetch = 0u64.to_be_bytes().to_vec();
    fetch.extend(raw::path_field(b".cloudservice/x"));
    let e = closing_error(&server, &raw::frame(0x14, 0x0102_0304, &fetch));
    assert_error(&e.message, ErrorCode::BadPath);
    assert_eq!(e.request_id, 0x0102_0304);
    // Payload-level BadFrame: a Ping with a payload byte (TrailingBytes),
    // a Pull cut short (Truncated).
    let e = closing_error(&server, &raw::frame(0x03, 9, &[0]));
    assert_error(&e.message, ErrorCode::BadFrame);
    assert_eq!(e.request_id, 9);
    let e = closing_error(&server, &raw::frame(0x10, 10, &[0, 0, 0]));
    assert_error(&e.message, ErrorCode::BadFrame);
    assert_eq!(e.request_id, 10);
    // Out of phase: FileEnd with no upload, FileChunk with no upload.
    let e = closing_error(&server, &raw::frame(0x22, 12, &[]));
    assert_error(&e.message, ErrorCode::WrongPhase);
    assert_eq!(e.request_id, 12);
    let e = closing_error(&server, &raw::frame(0x21, 13, b"xy"));
    assert_error(&e.message, ErrorCode::WrongPhase);
    assert_eq!(e.request_id, 13);
    // A bad header has no trustworthy ID: 0.
    let mut bad_magic = raw::frame(0x10, 14, &[0; 8]);
    bad_magic[0] = b'X';
    let e = closing_error(&server, &bad_magic);
    assert_error(&e.message, ErrorCode::BadFrame);
    assert_eq!(e.request_id, 0);
}

#[test]
fn an_unknown_error_code_decodes_and_a_client_sent_error_is_wrong_phase() {
    // The codec: an Error frame with a code no version defines decodes.
    let mut payload = 999u16.to_be_bytes().to_vec();
    payload.extend([0, 2, b'h', b'i']);
    let frame = raw::frame(0x05, 3, &payload);
    let (frames, rest) = decode_all(&frame);
    assert_eq!(rest, Ok(Status::Complete(())));
    assert_eq!(frames.len(), 1);
    match &frames[0].message {
        Message::Error(e) => {
            assert_eq!(e.code, ErrorCode::Unknown(999));
            assert_eq!(e.message, "hi");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(frames[0].to_bytes(), frame, "re-encodes to the same bytes");
    // The server: Error is a server-only kind (§3.2), whatever its code.
    let server = Server::start();
    let e = closing_error(&server, &frame);
    assert_error(&e.message, ErrorCode::WrongPhase);
    assert_eq!(e.request_id, 3);
}

fn entry<'a>(entries: &'a [ChangeEntry], path: &str) -> &'a ChangeEntry {
    entries
        .iter()
        .find(|e| e.path.as_str() == path)
        .unwrap_or_else(|| panic!("{path} not listed: {entries:?}"))
}

#[test]
fn a_remove_dir_that_keeps_a_newer_file_is_one_change_and_notifies() {
    let server = Server::start();
    let mut a = WireClient::new_user(server.addr);
    a.put("rm/a.txt", b"a", 0).expect("a");
    a.put("rm/b.txt", b"b", 0).expect("b");
    let mut b = WireClient::new_client(server.addr, a.user);
    let (cursor, _, _) = b.pull(0);
    assert_eq!(cursor, 2);
    a.put("rm/new.txt", b"new", 0).expect("new");
    let ack = b
        .push(Message::RemoveDir(RemoveDir {
            cursor,
            path: p("rm"),
        }))
        .expect("rmdir");
    assert_eq!(ack.status, PushStatus::Stale);
    assert_eq!(ack.version, 4, "one push, one sequence number");
    assert_eq!(
        a.wait_notify(Duration::from_secs(5)),
        Some(4),
        "the other connection hears of the partial removal"
    );
    let on_server = tree(&server.user_dir(&a.user));
    assert_eq!(on_server.len(), 2, "{on_server:?}");
    assert_eq!(on_server.get("rm/new.txt"), Some(&Some(b"new".to_vec())));
    // Item 3: the removed files carry the removing change's number.
    let (head, full, entries) = b.pull(cursor);
    assert_eq!((head, full), (4, false));
    assert_eq!(entry(&entries, "rm/a.txt").state, EntryState::Deleted);
    assert_eq!(entry(&entries, "rm/a.txt").version, 4);
    assert_eq!(entry(&entries, "rm/b.txt").version, 4);
    assert_eq!(entry(&entries, "rm/new.txt").version, 3);
}

#[test]
fn other_push_kinds_notify_exactly_when_the_tree_changed() {
    let server = Server::start();
    let mut a = WireClient::new_user(server.addr);
    let mut b = WireClient::new_client(server.addr, a.user);
    // Each changing push: one sequence number and one Notify to the other.
    let mut head = 0;
    for (i, message) in [
        Message::MakeDir { path: p("d/e") },
        Message::Rename(Rename {
            base_version: 1,
            from: p("d"),
            to: p("x/d2"),
        }),
        Message::MakeDir { path: p("x") },
        Message::Delete(Delete {
            base_version: 9,
            path: p("nothing"),
        }),
    ]
    .into_iter()
    .enumerate()
    {
        let ack = a.push(message).expect("push");
        let changes = matches!(ack.status, PushStatus::Applied | PushStatus::Conflict);
        if changes {
            head += 1;
            assert_eq!(ack.version, head, "push {i}: {ack:?}");
            assert_eq!(b.wait_notify(Duration::from_secs(5)), Some(head));
        } else {
            assert_eq!(b.wait_notify(Duration::from_millis(300)), None, "{i}");
        }
    }
    let (now, _, _) = b.pull(0);
    assert_eq!(now, head);
}

#[test]
fn deleted_entries_keep_their_removal_number_across_restart_and_compaction() {
    let mut server = Server::start();
    let mut a = WireClient::new_user(server.addr);
    a.put("x.txt", b"x", 0).expect("x");
    a.put("dir/in.txt", b"i", 0).expect("in");
    let user = a.user;
    let x = a
        .push(Message::Delete(Delete {
            base_version: 1,
            path: p("x.txt"),
        }))
        .expect("delete")
        .version;
    assert_eq!(x, 3);
    let d = a
        .push(Message::RemoveDir(RemoveDir {
            cursor: 2,
            path: p("dir"),
        }))
        .expect("rmdir")
        .version;
    assert_eq!(d, 4);
    // Enough later changes that the journal is compacted at the clean stop.
    let mut v = 0;
    for round in 0..4200u32 {
        v = a
            .put("busy.txt", &round.to_be_bytes(), v)
            .expect("busy")
            .version;
    }
    let check = |c: &mut WireClient| {
        let (head, full, entries) = c.pull(1);
        assert!(!full);
        assert_eq!(head, v);
        assert_eq!(entry(&entries, "x.txt").version, 3, "{entries:?}");
        assert_eq!(entry(&entries, "dir").version, 4);
        assert_eq!(entry(&entries, "dir/in.txt").version, 4);
    };
    check(&mut a);
    drop(a);
    let journal = server
        .user_dir(&user)
        .parent()
        .and_then(|p| p.parent())
        .expect("data dir")
        .join(".cloudservice-server")
        .join(user.to_string())
        .join("journal");
    let before = std::fs::metadata(&journal).expect("journal").len();
    server.stop();
    let after = std::fs::metadata(&journal).expect("journal").len();
    assert!(after * 4 < before, "compacted: {before} -> {after} bytes");
    server.restart();
    let mut again = WireClient::resume(server.addr, user, 1);
    check(&mut again);
}

#[test]
fn a_devices_own_earlier_pushes_never_make_its_push_stale() {
    let server = Server::start();
    let mut a = WireClient::new_user(server.addr);
    let mut b = WireClient::new_client(server.addr, a.user);
    // Creates d/f, then removes d before its next pull (cursor 0).
    a.put("d/f", b"f", 0).expect("d/f");
    let ack = a
        .push(Message::RemoveDir(RemoveDir {
            cursor: 0,
            path: p("d"),
        }))
        .expect("rmdir");
    assert_eq!(ack.status, PushStatus::Applied, "{ack:?}");
    // Deletes a file it changed twice, with the first version as base.
    let g1 = a.put("g", b"1", 0).expect("g1").version;
    a.put("g", b"2", g1).expect("g2");
    let ack = a
        .push(Message::Delete(Delete {
            base_version: g1,
            path: p("g"),
        }))
        .expect("delete");
    assert_eq!(ack.status, PushStatus::Applied, "{ack:?}");
    // Two uploads pipelined from the same base: the second replaces the first.
    a.put("h", b"first", 0).expect("h1");
    let ack = a.put("h", b"second", 0).expect("h2");
    assert_eq!(ack.status, PushStatus::Applied, "{ack:?}");
    // Another device's change still counts as unseen.
    b.put("e/other", b"o", 0).expect("other");
    a.put("e/mine", b"m", 0).expect("mine");
    let ack = a
        .push(Message::RemoveDir(RemoveDir {
            cursor: 0,
            path: p("e"),
        }))
        .expect("rmdir e");
    assert_eq!(ack.status, PushStatus::Stale);
    let k = a.put("k", b"k", 0).expect("k").version;
    b.put("k", b"k by b", k).expect("k by b");
    let ack = a
        .push(Message::Delete(Delete {
            base_version: k,
            path: p("k"),
        }))
        .expect("delete k");
    assert_eq!(ack.status, PushStatus::Stale);
    let tree = tree(&server.user_dir(&a.user));
    let names: Vec<&str> = tree.keys().map(|k| k.as_str()).collect();
    assert_eq!(names, vec!["e", "e/other", "h", "k"]);
    assert_eq!(tree.get("h"), Some(&Some(b"second".to_vec())));
    assert_eq!(tree.get("k"), Some(&Some(b"k by b".to_vec())));
}

#[test]
fn one_pushed_subtree_below_a_file_gets_one_conflict_directory() {
    let server = Server::start();
    let mut a = WireClient::new_user(server.addr);
    let mut b = WireClient::new_client(server.addr, a.user);
    a.put("notes", b"a file", 0).expect("notes");
    a.put("todo", b"a file too", 0).expect("todo");
    // B had made directories there (it never saw the files).
    let dir = b
        .push(Message::MakeDir { path: p("notes") })
        .expect("mkdir notes");
    assert_eq!(dir.status, PushStatus::Conflict);
    let root = dir.path.as_str().to_owned();
    assert!(root.starts_with("notes (conflict 2 "), "{root}");
    for (path, want) in [
        ("notes/a.txt", format!("{root}/a.txt")),
        ("notes/sub/b.txt", format!("{root}/sub/b.txt")),
        ("notes/c.txt", format!("{root}/c.txt")),
    ] {
        let ack = b.put(path, path.as_bytes(), 0).expect("push below");
        assert_eq!(ack.status, PushStatus::Conflict);
        assert_eq!(ack.path.as_str(), want);
    }
    let ack = b
        .push(Message::MakeDir {
            path: p("notes/sub/deeper"),
        })
        .expect("mkdir");
    assert_eq!(ack.path.as_str(), format!("{root}/sub/deeper"));
    // The same directory again: already there.
    let again = b
        .push(Message::MakeDir { path: p("notes") })
        .expect("again");
    assert_eq!(
        (again.status, again.path.as_str()),
        (PushStatus::Unchanged, root.as_str())
    );
    // B edits its file again: its own earlier push there is replaced.
    let own = b
        .put("notes/a.txt", b"B's second edit", 0)
        .expect("own edit");
    assert_eq!(own.path.as_str(), format!("{root}/a.txt"));
    // A edits the copy in the conflict directory; B's next edit of
    // `notes/a.txt` must not replace A's change.
    let (head, _, entries) = a.pull(0);
    let v = entry(&entries, &format!("{root}/a.txt")).version;
    a.put(&format!("{root}/a.txt"), b"A's edit", v)
        .expect("A edits");
    let later = b.put("notes/a.txt", b"B's third edit", 0).expect("third");
    assert_eq!(later.status, PushStatus::Conflict);
    assert!(
        later
            .path
            .as_str()
            .starts_with(&format!("{root}/a (conflict 2 ")),
        "{later:?} (head was {head})"
    );
    let (_, data) = a.fetch(&format!("{root}/a.txt")).expect("A's edit kept");
    assert_eq!(data, b"A's edit");
    // Starting with a file below the other file: the same rule.
    let first = b.put("todo/1.txt", b"1", 0).expect("todo/1");
    let second = b.put("todo/2.txt", b"2", 0).expect("todo/2");
    let parent = |a: &PushAck| a.path.parent().expect("parent").as_str().to_owned();
    assert_eq!(parent(&first), parent(&second));
    assert!(parent(&first).starts_with("todo (conflict 2 "));
    let tree = tree(&server.user_dir(&a.user));
    let conflict_dirs = tree
        .keys()
        .filter(|k| !k.contains('/') && k.contains("(conflict"))
        .count();
    assert_eq!(conflict_dirs, 2, "{tree:?}");
    assert_eq!(tree.get("notes"), Some(&Some(b"a file".to_vec())));
}

/// The outside tester's N2: a directory renamed onto a file whose conflict
/// directory (for this client) already holds entries is decided there like
/// a push at that place (R-7.4.1.5): it lands at that place's conflict
/// name, with everything in it; nothing in the conflict directory changes.
/// It was Error Storage ("Directory not empty"), which promises success on
/// a retry that fails the same way for ever.
#[test]
fn r_7_4_1_5_a_directory_renamed_onto_a_file_with_a_full_conflict_directory() {
    let server = Server::start();
    let mut a = WireClient::new_user(server.addr);
    let mut b = WireClient::new_client(server.addr, a.user);
    a.put("f", b"A's file", 0).expect("f");
    let below = b.put("f/a.txt", b"below", 0).expect("f/a.txt");
    assert_eq!(below.status, PushStatus::Conflict);
    let dir = below.path.parent().expect("parent").as_str().to_owned();
    b.push(Message::MakeDir { path: p("mv") })
        .expect("mkdir mv");
    b.put("mv/x.txt", b"moved", 0).expect("mv/x.txt");
    let version = b
        .pull(0)
        .2
        .iter()
        .find(|e| e.path.as_str() == "mv")
        .map(|e| e.version);
    let ack = b
        .push(Message::Rename(Rename {
            base_version: version.expect("mv listed"),
            from: p("mv"),
            to: p("f"),
        }))
        .expect("rename mv onto f: a PushAck, not an Error");
    assert_eq!(ack.status, PushStatus::Conflict, "{ack:?}");
    let landed = ack.path.as_str().to_owned();
    assert!(
        landed.starts_with(&format!("{dir} (conflict 2 ")) || landed.starts_with("f (conflict 2 "),
        "{landed}"
    );
    assert_ne!(landed, dir);
    let tree = tree(&server.user_dir(&a.user));
    assert_eq!(tree.get("f"), Some(&Some(b"A's file".to_vec())));
    assert_eq!(
        tree.get(&format!("{dir}/a.txt")),
        Some(&Some(b"below".to_vec()))
    );
    assert_eq!(
        tree.get(&format!("{landed}/x.txt")),
        Some(&Some(b"moved".to_vec()))
    );
    assert!(!tree.contains_key("mv"), "{tree:?}");
}

/// Found by the soak: A renames `f` after B changed it (A had not pulled
/// B's change), so the server moves B's content to `g` under A's change
/// number. A's next upload of its older copy of `g` must not count as
/// "A's own later push" (§7.2) and overwrite B's content: it is a Conflict,
/// and `g` keeps B's content. Before the fix it was Applied and B's bytes
/// were gone. The same for a directory whose file B changed.
#[test]
fn r_7_2_3_a_rename_of_content_the_mover_never_saw_is_not_its_own() {
    let server = Server::start();
    let mut a = WireClient::new_user(server.addr);
    let mut b = WireClient::new_client(server.addr, a.user);
    let v1 = a.put("f", b"A's f", 0).expect("f").version;
    let v2 = b.put("f", b"B's f", v1).expect("B's f");
    assert_eq!(v2.status, PushStatus::Applied);
    let moved = a
        .push(Message::Rename(Rename {
            base_version: v1,
            from: p("f"),
            to: p("g"),
        }))
        .expect("rename f g");
    assert_eq!(moved.status, PushStatus::Applied, "{moved:?}");
    // A's index still says version 1 (its cursor is behind B's change);
    // after a Conflict answer it would say nothing (base 0). Both must be
    // refused.
    let again = a.put("g", b"A's f, edited", v1).expect("A's g");
    assert_eq!(again.status, PushStatus::Conflict, "{again:?}");
    let again = a.put("g", b"A's f, edited again", 0).expect("A's g");
    assert_eq!(again.status, PushStatus::Conflict, "{again:?}");
    // A directory: B changes a file inside, A moves the directory.
    let d1 = a.put("d/x", b"A's x", 0).expect("d/x").version;
    b.put("d/x", b"B's x", d1).expect("B's x");
    let (_, _, entries) = a.pull(0);
    let dir = entry(&entries, "d").version;
    let moved = a
        .push(Message::Rename(Rename {
            base_version: dir.min(d1),
            from: p("d"),
            to: p("e"),
        }))
        .expect("rename d e");
    assert_eq!(moved.status, PushStatus::Applied, "{moved:?}");
    let again = a.put("e/x", b"A's x, edited", d1).expect("A's e/x");
    assert_eq!(again.status, PushStatus::Conflict, "{again:?}");
    let tree = tree(&server.user_dir(&a.user));
    assert_eq!(tree.get("g"), Some(&Some(b"B's f".to_vec())));
    assert_eq!(tree.get("e/x"), Some(&Some(b"B's x".to_vec())));
}

/// A legal path of exactly 4,096 bytes (17 components; the longest 255).
fn longest_path(top: &str) -> String {
    let mut parts = vec![top.to_owned()];
    let mut used = top.len();
    let mut i = 0;
    while used < 4096 {
        let room = 4096 - used - 1;
        let len = room.min(255);
        let ch = (b'a' + (i % 26) as u8) as char;
        parts.push(ch.to_string().repeat(len));
        used += len + 1;
        i += 1;
    }
    let path = parts.join("/");
    assert_eq!(path.len(), 4096);
    path
}

#[test]
fn every_legal_path_is_storable_even_past_path_max_with_the_data_dir() {
    let mut server = Server::start();
    let mut a = WireClient::new_user(server.addr);
    let user = a.user;
    let deep = longest_path("top");
    let content: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let ack = a
        .put(&deep, &content, 0)
        .expect("a 4096-byte path is stored");
    assert_eq!(ack.status, PushStatus::Applied);
    assert_eq!(a.fetch(&deep).expect("fetch").1, content);
    // Renamed away and back, listed in a pull, and found again by the
    // re-scan after a crash without being reported as changed.
    let moved = deep.replacen("top", "pot", 1);
    let ack = a
        .push(Message::Rename(Rename {
            base_version: 1,
            from: p("top"),
            to: p("pot"),
        }))
        .expect("rename");
    assert_eq!(ack.status, PushStatus::Applied);
    assert_eq!(a.fetch(&moved).expect("fetch moved").1, content);
    let head = ack.version;
    drop(a);
    server.kill9();
    server.restart();
    let mut b = WireClient::new_client(server.addr, user);
    let (after, _, entries) = b.pull(0);
    assert_eq!(after, head, "the re-scan found nothing new: {entries:?}");
    assert_eq!(entry(&entries, &moved).version, head);
    let ack = b
        .push(Message::RemoveDir(RemoveDir {
            cursor: after,
            path: p("pot"),
        }))
        .expect("rmdir");
    assert_eq!(ack.status, PushStatus::Applied);
    assert!(b.fetch(&moved).is_err());
    assert!(tree(&server.user_dir(&user)).is_empty());
}

#[test]
fn a_push_that_can_never_be_stored_gets_a_permanent_error() {
    let server = Server::start();
    let mut a = WireClient::new_user(server.addr);
    let mut b = WireClient::new_client(server.addr, a.user);
    a.put("top", b"a file", 0).expect("top");
    // B never saw the file `top`: its file below goes below the conflict
    // name of `top`, which makes the path longer than 4096 bytes.
    let e = b
        .put(&longest_path("top"), b"x", 0)
        .expect_err("cannot be placed");
    assert_eq!(e.code, ErrorCode::Unstorable, "{}", e.message);
    assert!(!e.code.is_retryable());
    // The connection stays open and nothing changed.
    let (head, _, entries) = b.pull(0);
    assert_eq!(head, 1, "{entries:?}");
}

/// Found by the soak (seed 1796231409745713861, stop 28): the same as
/// above, but the mover renames twice. The first move had no author; the
/// second, based on the first's version, must not make B's content A's own.
#[test]
fn r_7_2_3_a_second_rename_does_not_make_an_unseen_move_the_movers_own() {
    let server = Server::start();
    let mut a = WireClient::new_user(server.addr);
    let mut b = WireClient::new_client(server.addr, a.user);
    let v1 = a.put("f", b"A's f", 0).expect("f").version;
    let v2 = b.put("f", b"B's f", v1).expect("B's f");
    assert_eq!(v2.status, PushStatus::Applied);
    let first = a
        .push(Message::Rename(Rename {
            base_version: v1,
            from: p("f"),
            to: p("g"),
        }))
        .expect("rename f g");
    assert_eq!(first.status, PushStatus::Applied, "{first:?}");
    let second = a
        .push(Message::Rename(Rename {
            base_version: first.version,
            from: p("g"),
            to: p("h"),
        }))
        .expect("rename g h");
    assert_eq!(second.status, PushStatus::Applied, "{second:?}");
    let again = a.put("h", b"A's f, edited", second.version).expect("A's h");
    assert_eq!(again.status, PushStatus::Conflict, "{again:?}");
    let tree = tree(&server.user_dir(&a.user));
    assert_eq!(tree.get("h"), Some(&Some(b"B's f".to_vec())));
}

/// The directory form of the soak's loss (seed 1796231409745713861): B
/// edits a file inside `d`; A, which has not pulled it, moves `d` twice.
/// A pull can bring the moved directory's version to A without the file's
/// (A's local edit of the file is left to its push, R-5.6.1), so the second
/// Rename is based on the first's version: the file below must still count
/// as unseen (A's acknowledged cursor is below it), and A's older copy of
/// the file, pushed on its old base or on the moved version, is a Conflict.
#[test]
fn r_7_2_3_a_directory_moved_twice_keeps_the_unseen_change_below_it() {
    for stale_base in [true, false] {
        let server = Server::start();
        let mut a = WireClient::new_user(server.addr);
        let mut b = WireClient::new_client(server.addr, a.user);
        let x1 = a.put("d/x", b"A's x", 0).expect("d/x").version;
        let (head, _, entries) = a.pull(0);
        a.send(Message::Ack { cursor: head });
        let dir = entry(&entries, "d").version;
        b.put("d/x", b"B's x", x1).expect("B's x");
        let first = a
            .push(Message::Rename(Rename {
                base_version: dir,
                from: p("d"),
                to: p("e"),
            }))
            .expect("rename d e");
        assert_eq!(first.status, PushStatus::Applied, "{first:?}");
        let second = a
            .push(Message::Rename(Rename {
                base_version: first.version,
                from: p("e"),
                to: p("f"),
            }))
            .expect("rename e f");
        assert_eq!(second.status, PushStatus::Applied, "{second:?}");
        let base = if stale_base { x1 } else { second.version };
        let again = a.put("f/x", b"A's x, edited", base).expect("A's f/x");
        assert_eq!(again.status, PushStatus::Conflict, "base {base}: {again:?}");
        let tree = tree(&server.user_dir(&a.user));
        assert_eq!(
            tree.get("f/x"),
            Some(&Some(b"B's x".to_vec())),
            "base {base}"
        );
    }
}

/// The other side of: once the mover pulled the moved entries and
/// acknowledged them, the move's version is a base it holds, so its edit
/// on that version is Applied (no needless conflict copy), and so is a
/// Delete or SetMode on it.
#[test]
fn r_7_2_8_an_unseen_move_is_held_once_the_cursor_reached_it() {
    let server = Server::start();
    let mut a = WireClient::new_user(server.addr);
    let mut b = WireClient::new_client(server.addr, a.user);
    let v1 = a.put("f", b"A's f", 0).expect("f").version;
    b.put("f", b"B's f", v1).expect("B's f");
    let moved = a
        .push(Message::Rename(Rename {
            base_version: v1,
            from: p("f"),
            to: p("g"),
        }))
        .expect("rename f g");
    // Not yet pulled: the move's version is no base A can hold.
    let early = a
        .push(Message::SetMode(SetMode {
            base_version: moved.version,
            executable: true,
            path: p("g"),
        }))
        .expect("SetMode");
    assert_eq!(early.status, PushStatus::Stale, "{early:?}");
    let (head, _, entries) = a.pull(0);
    assert_eq!(entry(&entries, "g").version, moved.version);
    a.send(Message::Ack { cursor: head });
    let edit = a
        .put("g", b"B's f, edited by A", moved.version)
        .expect("A's g");
    assert_eq!(edit.status, PushStatus::Applied, "{edit:?}");
    let gone = a
        .push(Message::Delete(Delete {
            base_version: edit.version,
            path: p("g"),
        }))
        .expect("Delete");
    assert_eq!(gone.status, PushStatus::Applied, "{gone:?}");
}

/// What A does in the tests after its pull: nothing (today's
/// client: the reply is not acknowledged while a path waits for its push),
/// or a PartialAck naming one path.
fn partial_ack(a: &mut WireClient, head: u64, held: Option<&str>) {
    if let Some(path) = held {
        a.send(Message::PartialAck(PartialAck {
            cursor: head,
            held: vec![p(path)],
        }));
    }
}

/// removes R-7.2.8's accepted cost: A pulled B's edits of `d/x`
/// and `g`, left its own edit of `g` to its push (so no full Ack), moved
/// `d` to `e` and edited `e/x` on the version it pulled. With no Ack the
/// server counts B's `d/x` as unseen by A, the move gets no author and
/// A's edit became a needless conflict copy (A had seen B's content: the
/// `None` row, today's client). A PartialAck naming `g` says A applied the
/// rest: Applied. Naming `d/x` (or `d`) keeps B's `d/x` unseen: Conflict,
/// B's content stays (the loss guards against). `g` itself is a
/// real conflict in every row.
#[test]
fn r_5_3_4_a_partial_ack_makes_what_the_pull_applied_seen() {
    for held in [None, Some("g"), Some("d/x"), Some("d")] {
        let server = Server::start();
        let mut a = WireClient::new_user(server.addr);
        let mut b = WireClient::new_client(server.addr, a.user);
        let x1 = a.put("d/x", b"A's x", 0).expect("d/x").version;
        let g1 = a.put("g", b"A's g", 0).expect("g").version;
        let (head, _, _) = a.pull(0);
        a.send(Message::Ack { cursor: head });
        let x2 = b.put("d/x", b"B's x", x1).expect("B's x").version;
        b.put("g", b"B's g", g1).expect("B's g");
        let (head, _, entries) = a.pull(head);
        assert_eq!(entry(&entries, "d/x").version, x2);
        partial_ack(&mut a, head, held);
        let moved = a
            .push(Message::Rename(Rename {
                base_version: x1,
                from: p("d"),
                to: p("e"),
            }))
            .expect("rename d e");
        assert_eq!(moved.status, PushStatus::Applied, "{held:?}: {moved:?}");
        // A keeps the base it pulled: the move's version is not one above
        // its cursor.
        let edit = a.put("e/x", b"B's x, edited by A", x2).expect("e/x");
        let g = a.put("g", b"A's g, edited", g1).expect("g");
        assert_eq!(g.status, PushStatus::Conflict, "{held:?}: {g:?}");
        let tree = tree(&server.user_dir(&a.user));
        if held == Some("g") {
            assert_eq!(edit.status, PushStatus::Applied, "{held:?}: {edit:?}");
            assert_eq!(tree.get("e/x"), Some(&Some(b"B's x, edited by A".to_vec())));
        } else {
            assert_eq!(edit.status, PushStatus::Conflict, "{held:?}: {edit:?}");
            assert_eq!(tree.get("e/x"), Some(&Some(b"B's x".to_vec())), "{held:?}");
        }
    }
}

/// The same for a version with no author: B moved `f` to `h`
/// without having pulled C's edit of `f`, so the move has no author. A
/// pulled `h` (and left its edit of `g` to its push): A's edit of `h` on
/// the move's version is Applied once a PartialAck names only `g`, and a
/// Conflict with no Ack or when the PartialAck names `h`.
#[test]
fn r_5_3_4_an_unauthored_version_a_partial_ack_covers_is_held() {
    for held in [None, Some("g"), Some("h")] {
        let server = Server::start();
        let mut a = WireClient::new_user(server.addr);
        let mut b = WireClient::new_client(server.addr, a.user);
        let mut c = WireClient::new_client(server.addr, a.user);
        let f1 = a.put("f", b"f", 0).expect("f").version;
        let g1 = a.put("g", b"A's g", 0).expect("g").version;
        let (head, _, _) = a.pull(0);
        a.send(Message::Ack { cursor: head });
        c.put("f", b"C's f", f1).expect("C's f");
        b.put("g", b"B's g", g1).expect("B's g");
        let moved = b
            .push(Message::Rename(Rename {
                base_version: f1,
                from: p("f"),
                to: p("h"),
            }))
            .expect("B renames f h");
        let (head, _, entries) = a.pull(head);
        assert_eq!(entry(&entries, "h").version, moved.version);
        partial_ack(&mut a, head, held);
        let edit = a.put("h", b"C's f, edited by A", moved.version).expect("h");
        let tree = tree(&server.user_dir(&a.user));
        if held == Some("g") {
            assert_eq!(edit.status, PushStatus::Applied, "{held:?}: {edit:?}");
            assert_eq!(tree.get("h"), Some(&Some(b"C's f, edited by A".to_vec())));
        } else {
            assert_eq!(edit.status, PushStatus::Conflict, "{held:?}: {edit:?}");
            assert_eq!(tree.get("h"), Some(&Some(b"C's f".to_vec())), "{held:?}");
        }
    }
}
