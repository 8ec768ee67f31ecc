//! Conformance of the server to PROTOCOL.md §14 (version history and trash),
//! over the wire with our codec: what a push displaces is listed with its
//! cause, kind, size and hash; listings page in (change, path) order;
//! a Restore is a new change other devices are told about and can fetch;
//! a version not kept is `NoSuchVersion` on an open connection; VersionList
//! from a client is refused; kept versions survive a SIGKILL of the server.

mod common;

use cloudservice::protocol::{
    Cause, ContentHash, ErrorCode, ErrorReport, KeptKind, KeptVersion, ListVersions, Message,
    PushAck, PushStatus, RemoveDir, Rename, Restore, RestoreAt, VersionList, WirePath,
};
use common::{assert_error, p, Server, WireClient};
use std::time::Duration;

/// Every entry at or below `under`, page by page; also returns the page sizes.
fn list_all(c: &mut WireClient, under: Option<&str>) -> (Vec<KeptVersion>, Vec<usize>) {
    let mut request = ListVersions {
        after_seq: 0,
        after: None,
        under: under.map(p),
    };
    let (mut all, mut pages) = (Vec::new(), Vec::new());
    loop {
        let rid = c.send(Message::ListVersions(request.clone()));
        let page = match c.reply(rid) {
            Message::VersionList(page) => page,
            other => panic!("expected VersionList, got {other:?}"),
        };
        pages.push(page.entries.len());
        let more = page.more;
        if let Some(last) = page.entries.last() {
            request.after_seq = last.seq;
            request.after = Some(last.path.clone());
        }
        all.extend(page.entries);
        if !more {
            return (all, pages);
        }
    }
}

fn summary(entries: &[KeptVersion]) -> Vec<(u64, &str, Cause, Option<ContentHash>)> {
    entries
        .iter()
        .map(|e| {
            let hash = match e.kind {
                KeptKind::File { hash, .. } => Some(hash),
                KeptKind::Dir => None,
            };
            (e.seq, e.path.as_str(), e.cause, hash)
        })
        .collect()
}

/// Overwrite, Delete, Rename and RemoveDir each keep what they displace.
///
#[test]
fn r_14_1_1_every_displaced_version_is_listed() {
    let server = Server::start();
    let mut c = WireClient::new_user(server.addr);
    let before = cloudservice::server::store::versions::now_ms();
    let v1 = c.put("a.txt", b"one", 0).expect("put").version;
    let v2 = c.put("a.txt", b"two", v1).expect("overwrite").version;
    let v3 = c.put("b.txt", b"bee", 0).expect("put").version;
    let del = c
        .push(Message::Delete(cloudservice::protocol::Delete {
            base_version: v3,
            path: p("b.txt"),
        }))
        .expect("delete")
        .version;
    let mv = c
        .push(Message::Rename(Rename {
            base_version: v2,
            from: p("a.txt"),
            to: p("c.txt"),
        }))
        .expect("rename")
        .version;
    c.put("d/e/f.txt", b"f", 0).expect("put");
    let rm = c
        .push(Message::RemoveDir(RemoveDir {
            cursor: mv + 10,
            path: p("d"),
        }))
        .expect("rmdir")
        .version;
    let (all, _) = list_all(&mut c, None);
    let h = |b: &[u8]| Some(ContentHash::of(b));
    assert_eq!(
        summary(&all),
        vec![
            (v2, "a.txt", Cause::Overwritten, h(b"one")),
            (del, "b.txt", Cause::Deleted, h(b"bee")),
            (mv, "a.txt", Cause::RenamedAway, h(b"two")),
            (rm, "d", Cause::Deleted, None),
            (rm, "d/e", Cause::Deleted, None),
            (rm, "d/e/f.txt", Cause::Deleted, h(b"f")),
        ]
    );
    let after = cloudservice::server::store::versions::now_ms();
    for e in &all {
        assert!((before..=after).contains(&e.time_ms), "{e:?}");
    }
    assert!(matches!(all[0].kind, KeptKind::File { size: 3, .. }));
    // Listing under a path narrows to it and below.
    let (under_d, _) = list_all(&mut c, Some("d/e"));
    let paths: Vec<&str> = under_d.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["d/e", "d/e/f.txt"]);
}

/// Pages hold at most 128 entries, in (change, path) order, and together
/// list each entry once.
///
#[test]
fn r_14_2_1_listings_page_in_change_then_path_order() {
    let server = Server::start();
    let mut c = WireClient::new_user(server.addr);
    let first = c.put("t/f000", &[0, 1], 0).expect("put").version;
    for i in 1..200 {
        c.put(&format!("t/f{i:03}"), &[i as u8, 1], 0).expect("put");
    }
    let again = c.put("t/f000", b"again", first).expect("overwrite");
    assert_eq!(again.status, PushStatus::Applied);
    c.push(Message::RemoveDir(RemoveDir {
        cursor: 10_000,
        path: p("t"),
    }))
    .expect("rmdir");
    let (all, pages) = list_all(&mut c, None);
    assert_eq!(all.len(), 1 + 1 + 200, "{pages:?}");
    assert!(pages.iter().all(|n| *n <= 128), "{pages:?}");
    assert_eq!(pages.len(), 2, "{pages:?}");
    let keys: Vec<(u64, &WirePath)> = all.iter().map(|e| (e.seq, &e.path)).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(keys, sorted, "order or duplicates");
}

/// A client that sends VersionList gets WrongPhase and the connection closes.
///
#[test]
fn r_14_2_2_version_list_from_a_client_is_refused() {
    let server = Server::start();
    let mut c = WireClient::new_user(server.addr);
    let rid = c.send(Message::VersionList(VersionList {
        more: false,
        entries: Vec::new(),
    }));
    let frames = c.until_closed();
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(frames[0].request_id, rid);
    assert_error(&frames[0].message, ErrorCode::WrongPhase);
}

/// A restore is a new change: the restoring device gets a PushAck, another
/// device a Notify, its pull the entry, its fetch the old bytes; a
/// restored directory comes back with everything the removal took.
///
#[test]
fn r_14_3_1_a_restore_is_a_new_change_every_device_receives() {
    let server = Server::start();
    let mut a = WireClient::new_user(server.addr);
    let mut b = WireClient::new_client(server.addr, a.user);
    let v1 = a.put("doc.txt", b"old words", 0).expect("put").version;
    let v2 = a.put("doc.txt", b"new words", v1).expect("put").version;
    a.put("dir/x", b"x", 0).expect("put");
    a.put("dir/y/z", b"z", 0).expect("put");
    let rm = a
        .push(Message::RemoveDir(RemoveDir {
            cursor: 1000,
            path: p("dir"),
        }))
        .expect("rmdir")
        .version;
    let (_, _, _) = b.pull(0);
    let ack = a
        .push(Message::Restore(Restore {
            seq: v2,
            path: p("doc.txt"),
        }))
        .expect("restore");
    assert_eq!(ack.status, PushStatus::Applied);
    assert_eq!(ack.path, p("doc.txt"));
    assert!(ack.version > rm, "{ack:?}");
    assert!(b.wait_notify(Duration::from_secs(5)).is_some(), "no Notify");
    let (head, _, entries) = b.pull(rm);
    assert_eq!(head, ack.version);
    assert!(
        entries.iter().any(|e| e.path == p("doc.txt")),
        "{entries:?}"
    );
    assert_eq!(b.fetch("doc.txt").expect("fetch").1, b"old words");
    // What the restore replaced is itself kept.
    let (all, _) = list_all(&mut a, Some("doc.txt"));
    assert_eq!(all.last().map(|e| e.cause), Some(Cause::Overwritten));
    assert!(
        matches!(all.last().map(|e| e.kind), Some(KeptKind::File { size: 9, hash, .. }) if hash == ContentHash::of(b"new words")),
        "{all:?}"
    );
    // The directory, whole.
    a.push(Message::Restore(Restore {
        seq: rm,
        path: p("dir"),
    }))
    .expect("restore dir");
    assert_eq!(b.fetch("dir/x").expect("x").1, b"x");
    assert_eq!(b.fetch("dir/y/z").expect("z").1, b"z");
}

/// A restore is nobody's own change, not even the restoring device's: that
/// device's later push of its older copy (an edit it had not pushed when
/// it restored) is a Conflict, and the restored content stays (outside
/// tester: before, the push was Applied and the restore silently undone).
#[test]
fn r_14_3_3_a_restore_is_not_the_restoring_devices_own_change() {
    let server = Server::start();
    let mut a = WireClient::new_user(server.addr);
    let v1 = a.put("rr.txt", b"r1", 0).expect("put").version;
    let v2 = a.put("rr.txt", b"r2", v1).expect("put").version;
    let restored = a
        .push(Message::Restore(Restore {
            seq: v2,
            path: p("rr.txt"),
        }))
        .expect("restore");
    assert_eq!(restored.status, PushStatus::Applied);
    // The device's unpushed edit, based on what it last had (v2).
    let late = a.put("rr.txt", b"local edit", v2).expect("put");
    assert_eq!(late.status, PushStatus::Conflict, "{late:?}");
    assert_ne!(late.path, p("rr.txt"));
    assert_eq!(a.fetch("rr.txt").expect("fetch").1, b"r1");
    let copy = late.path.to_string();
    assert_eq!(a.fetch(&copy).expect("fetch copy").1, b"local edit");
    // Once it has pulled the restore (and acknowledged it: a restored
    // version has no author, R-7.2.8), its edits apply as usual.
    let (head, _, _) = a.pull(0);
    a.send(Message::Ack { cursor: head });
    let edit = a
        .put("rr.txt", b"r1 and more", restored.version)
        .expect("put");
    assert_eq!(edit.status, PushStatus::Applied, "{edit:?}");
}

/// A version not kept is NoSuchVersion with the Restore's ID; nothing
/// changes and the connection stays open.
///
#[test]
fn r_14_3_2_no_such_version_changes_nothing_and_keeps_the_connection() {
    let server = Server::start();
    let mut c = WireClient::new_user(server.addr);
    let v = c.put("f", b"1", 0).expect("put").version;
    for (seq, path) in [(v, "f"), (v + 5, "f"), (v, "elsewhere")] {
        let rid = c.send(Message::Restore(Restore { seq, path: p(path) }));
        let reply = c.reply(rid);
        assert_error(&reply, ErrorCode::NoSuchVersion);
    }
    let (head, _, _) = c.pull(0);
    assert_eq!(head, v, "nothing changed");
    let rid = c.send(Message::Ping);
    assert_eq!(c.reply(rid), Message::Pong);
}

/// A kept version survives a SIGKILL of the server right after the push's
/// acknowledgement, and is restorable after the restart.
///
#[test]
fn r_14_1_1_kept_versions_survive_a_kill() {
    let mut server = Server::start();
    let mut c = WireClient::new_user(server.addr);
    let (user, client) = (c.user, c.client);
    let v1 = c.put("k.txt", b"keep me", 0).expect("put").version;
    let v2 = c.put("k.txt", b"replaced", v1).expect("put").version;
    server.kill9();
    server.start_again();
    let mut c = WireClient::resume(server.addr, user, client);
    let (all, _) = list_all(&mut c, None);
    assert_eq!(
        summary(&all),
        vec![(
            v2,
            "k.txt",
            Cause::Overwritten,
            Some(ContentHash::of(b"keep me"))
        )]
    );
    c.push(Message::Restore(Restore {
        seq: v2,
        path: p("k.txt"),
    }))
    .expect("restore");
    assert_eq!(c.fetch("k.txt").expect("fetch").1, b"keep me");
}

/// SIGKILL of the server at random moments of a stream of overwrites (so
/// at every step of keeping a version, over the rounds): after the restart
/// every acknowledged overwrite's displaced content is listed and the
/// newest one restores byte for byte; nothing unacknowledged is needed.
/// `VERSIONS_CRASH_SEED` replays a run.
///
#[test]
fn r_14_1_1_a_kill_at_any_moment_loses_no_acknowledged_version() {
    let mut rng = common::Rng::new(common::seed("VERSIONS_CRASH_SEED"));
    let mut server = Server::start();
    let c = WireClient::new_user(server.addr);
    let (user, client) = (c.user, c.client);
    drop(c);
    let content = |round: u64, i: u64| format!("round {round} write {i}\n").into_bytes();
    let mut acked: Vec<(u64, ContentHash)> = Vec::new();
    for round in 0..6u64 {
        let mut c = WireClient::resume(server.addr, user, client);
        let (_, _, entries) = c.pull(0);
        let current = entries.iter().find(|e| e.path == p("c.txt"));
        let base = current.map(|e| e.version).unwrap_or(0);
        let done = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let record = std::sync::Arc::clone(&done);
        let writer = std::thread::spawn(move || {
            let mut base = base;
            // Only a known content's overwrite is checked: the content
            // before the first write of a round is whatever the last
            // round left, possibly an unacknowledged write.
            let mut previous: Option<Vec<u8>> = None;
            for i in 0..10_000 {
                let body = content(round, i);
                let Ok(ack) = c.put("c.txt", &body, base) else {
                    return;
                };
                if let Some(prev) = previous.take() {
                    if ack.status == PushStatus::Applied {
                        if let Ok(mut list) = record.lock() {
                            list.push((ack.version, ContentHash::of(&prev)));
                        }
                    }
                }
                base = ack.version;
                previous = Some(body);
            }
        });
        std::thread::sleep(Duration::from_millis(20 + rng.below(200)));
        server.kill9();
        // The writer ends with the connection (its panic is the expected end).
        let _ = writer.join();
        acked.extend(done.lock().map(|l| l.clone()).unwrap_or_default());
        server.start_again();
    }
    assert!(
        acked.len() > 6,
        "too few acknowledged overwrites: {}",
        acked.len()
    );
    let mut c = WireClient::resume(server.addr, user, client);
    let (all, _) = list_all(&mut c, Some("c.txt"));
    let listed: std::collections::HashSet<(u64, ContentHash)> = all
        .iter()
        .filter_map(|e| match e.kind {
            KeptKind::File { hash, .. } => Some((e.seq, hash)),
            KeptKind::Dir => None,
        })
        .collect();
    for (seq, hash) in &acked {
        assert!(
            listed.contains(&(*seq, *hash)),
            "the version displaced by acknowledged change {seq} is not listed"
        );
    }
    let (seq, hash) = *acked.last().expect("one at least");
    c.push(Message::Restore(Restore {
        seq,
        path: p("c.txt"),
    }))
    .expect("restore");
    let (_, bytes) = c.fetch("c.txt").expect("fetch");
    assert_eq!(ContentHash::of(&bytes), hash);
}

fn kept_bit(e: &KeptVersion) -> Option<bool> {
    match e.kind {
        KeptKind::File { executable, .. } => Some(executable),
        KeptKind::Dir => None,
    }
}

/// A SetMode that changes a file's bit displaces a version: the file with
/// its former bit (content stored once). Restoring from the chmod brings
/// back the bit as it was; restoring from a later content edit brings back
/// the old content with the bit it had then (outside tester: the chmod was
/// not kept, so the old content came back with the new bit).
///
#[test]
fn r_14_1_1_a_mode_change_displaces_a_version() {
    let server = Server::start();
    let mut c = WireClient::new_user(server.addr);
    let v1 = c.put("s.sh", b"echo one\n", 0).expect("put").version;
    let chmod = c.set_mode("s.sh", v1, true);
    let (all, _) = list_all(&mut c, Some("s.sh"));
    assert_eq!(
        summary(&all),
        vec![(
            chmod,
            "s.sh",
            Cause::Overwritten,
            Some(ContentHash::of(b"echo one\n"))
        )]
    );
    assert_eq!(kept_bit(&all[0]), Some(false));
    assert_eq!(all[0].since, v1);
    let edit = c.put("s.sh", b"echo two\n", chmod).expect("edit").version;
    let (all, _) = list_all(&mut c, Some("s.sh"));
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!((all[1].seq, all[1].since), (edit, chmod));
    assert_eq!(kept_bit(&all[1]), Some(true));
    // Just before the edit: the old content, executable.
    c.push(Message::Restore(Restore {
        seq: edit,
        path: p("s.sh"),
    }))
    .expect("restore before the edit");
    assert_eq!(
        server.copy_of(&c.user, "s.sh"),
        (b"echo one\n".to_vec(), true)
    );
    // Just before the chmod: the old content, not executable.
    let ack = c
        .push(Message::Restore(Restore {
            seq: chmod,
            path: p("s.sh"),
        }))
        .expect("restore before the chmod");
    assert_eq!(ack.status, PushStatus::Applied, "{ack:?}");
    assert_eq!(
        server.copy_of(&c.user, "s.sh"),
        (b"echo one\n".to_vec(), false)
    );
}

/// A restore that would place exactly what is there (same content, same
/// bit) changes nothing and says so: Unchanged with the path's own current
/// version, no new change (outside tester: Applied with another path's
/// change number).
///
#[test]
fn r_14_3_4_a_restore_that_changes_nothing_is_unchanged() {
    let server = Server::start();
    let mut c = WireClient::new_user(server.addr);
    let v1 = c.put("n.txt", b"same", 0).expect("put").version;
    let v2 = c.put("n.txt", b"other", v1).expect("put").version;
    let v3 = c.put("n.txt", b"same", v2).expect("put").version;
    let elsewhere = c.put("zz.txt", b"another path", 0).expect("put").version;
    let ack = c
        .push(Message::Restore(Restore {
            seq: v2,
            path: p("n.txt"),
        }))
        .expect("restore");
    assert_eq!(ack.status, PushStatus::Unchanged, "{ack:?}");
    assert_eq!((ack.version, ack.path.as_str()), (v3, "n.txt"));
    let (head, _, _) = c.pull(0);
    assert_eq!(head, elsewhere, "a no-op restore made a change");
    // A directory whose kept entries are all there as they were, too.
    c.put("d/x", b"x", 0).expect("put");
    let rm = c
        .push(Message::RemoveDir(RemoveDir {
            cursor: 1000,
            path: p("d"),
        }))
        .expect("rmdir")
        .version;
    let back = c
        .push(Message::Restore(Restore {
            seq: rm,
            path: p("d"),
        }))
        .expect("restore dir");
    assert_eq!(back.status, PushStatus::Applied, "{back:?}");
    let again = c
        .push(Message::Restore(Restore {
            seq: rm,
            path: p("d"),
        }))
        .expect("restore dir again");
    assert_eq!(again.status, PushStatus::Unchanged, "{again:?}");
    assert_eq!(again.path, p("d"));
    let (head, _, _) = c.pull(0);
    assert_eq!(head, back.version, "a no-op restore made a change");
}

fn restore_at(c: &mut WireClient, time_ms: u64, path: &str) -> Result<PushAck, ErrorReport> {
    c.push(Message::RestoreAt(RestoreAt {
        time_ms,
        path: p(path),
    }))
}

fn now_ms() -> u64 {
    cloudservice::server::store::versions::now_ms()
}

/// A few milliseconds, so that consecutive changes get distinct times.
fn pause() {
    std::thread::sleep(Duration::from_millis(5));
}

/// RestoreAt restores the state of a path at a moment, and every boundary
/// is exact: at a change's own time that change is part of the state, a
/// millisecond before it is not; before the path was first made and
/// between its deletion and its re-creation it did not exist (NoSuchVersion,
/// nothing changes; outside tester: `--at` brought back a later version);
/// a path unchanged since is Unchanged; a directory comes back with what
/// was below it then, and what was made in it since stays.
///
#[test]
fn r_14_3_5_restore_at_is_the_state_of_the_path_at_that_moment() {
    let server = Server::start();
    let mut c = WireClient::new_user(server.addr);
    let before_first = now_ms();
    pause();
    let v1 = c.put("f", b"one", 0).expect("put").version;
    pause();
    let v2 = c.put("f", b"two", v1).expect("put").version;
    pause();
    let del = c
        .push(Message::Delete(cloudservice::protocol::Delete {
            base_version: v2,
            path: p("f"),
        }))
        .expect("delete")
        .version;
    pause();
    let v4 = c.put("f", b"three", 0).expect("re-create").version;
    pause();
    c.put("f", b"four", v4).expect("put");
    let (all, _) = list_all(&mut c, Some("f"));
    let time_of = |seq: u64| {
        all.iter()
            .find(|e| e.seq == seq)
            .map(|e| e.time_ms)
            .unwrap_or_else(|| panic!("change {seq} not listed: {all:?}"))
    };
    let (t2, t_del) = (time_of(v2), time_of(del));
    assert!(t2 < t_del, "{all:?}");
    let (head, _, _) = c.pull(0);

    // It did not exist: before it was first made, exactly at its deletion,
    // and between the deletion and the re-creation.
    for (what, at) in [
        ("before the first version", before_first),
        ("at the deletion", t_del),
        ("after the deletion", t_del + 1),
    ] {
        let rid = c.send(Message::RestoreAt(RestoreAt {
            time_ms: at,
            path: p("f"),
        }));
        let reply = c.reply(rid);
        assert_error(&reply, ErrorCode::NoSuchVersion);
        match reply {
            Message::Error(e) => assert!(e.message.contains("did not exist"), "{what}: {e:?}"),
            other => panic!("{what}: {other:?}"),
        }
    }
    let rid = c.send(Message::RestoreAt(RestoreAt {
        time_ms: 5,
        path: p("never"),
    }));
    assert_error(&c.reply(rid), ErrorCode::NoSuchVersion);
    // Now: as it is.
    let same = restore_at(&mut c, now_ms() + 10, "f").expect("now");
    assert_eq!(same.status, PushStatus::Unchanged, "{same:?}");
    assert_eq!(c.pull(0).0, head, "nothing changed");

    // A millisecond before change v2: the first version.
    let ack = restore_at(&mut c, t2 - 1, "f").expect("before v2");
    assert_eq!((ack.status, ack.path.as_str()), (PushStatus::Applied, "f"));
    assert_eq!(c.fetch("f").expect("fetch").1, b"one");
    // Exactly at change v2's time: v2 is part of that state.
    restore_at(&mut c, t2, "f").expect("at v2");
    assert_eq!(c.fetch("f").expect("fetch").1, b"two");

    // A directory at a moment: what was below it then comes back; what was
    // made in it since stays.
    c.put("d/x", b"x", 0).expect("put");
    c.put("d/sub/y", b"y", 0).expect("put");
    pause();
    let then = now_ms();
    pause();
    c.push(Message::RemoveDir(RemoveDir {
        cursor: 10_000,
        path: p("d"),
    }))
    .expect("rmdir");
    c.put("d/z", b"z", 0).expect("put");
    let ack = restore_at(&mut c, then, "d").expect("directory");
    assert_eq!(ack.status, PushStatus::Applied, "{ack:?}");
    assert_eq!(c.fetch("d/x").expect("x").1, b"x");
    assert_eq!(c.fetch("d/sub/y").expect("y").1, b"y");
    assert_eq!(c.fetch("d/z").expect("z").1, b"z");
}

/// The change times survive a restart: a RestoreAt after the server was
/// killed and started again finds the same state.
///
#[test]
fn r_14_3_5_change_times_survive_a_restart() {
    let mut server = Server::start();
    let mut c = WireClient::new_user(server.addr);
    let (user, client) = (c.user, c.client);
    let v1 = c.put("g", b"first", 0).expect("put").version;
    pause();
    let then = now_ms();
    pause();
    c.put("g", b"second", v1).expect("put");
    pause();
    let later = now_ms();
    pause();
    c.put("h", b"made later", 0).expect("put");
    drop(c);
    server.kill9();
    server.start_again();
    let mut c = WireClient::resume(server.addr, user, client);
    let rid = c.send(Message::RestoreAt(RestoreAt {
        time_ms: later,
        path: p("h"),
    }));
    assert_error(&c.reply(rid), ErrorCode::NoSuchVersion);
    restore_at(&mut c, then, "g").expect("restore");
    assert_eq!(c.fetch("g").expect("fetch").1, b"first");
}
