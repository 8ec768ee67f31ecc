//! The four requests and the push rules, against the real server binary.

mod common;

use cloudservice::protocol::{
    Delete, EntryState, ErrorCode, HelloMode, Message, PushStatus, RemoveDir, Rename, UserId,
};
use common::*;
use std::time::Duration;

#[test]
fn new_user_uploads_and_new_client_downloads() {
    let server = Server::start();
    let mut a = WireClient::new_user(server.addr);
    assert_ne!(a.user, UserId::NONE);
    assert_eq!(a.client, 1);
    let line = server
        .next_line(Duration::from_secs(5))
        .expect("new user line");
    assert_eq!(line, format!("new user {}", a.user));

    let big: Vec<u8> = (0..700_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let ack = a.put("docs/hello.txt", b"hello\n", 0).expect("push");
    assert_eq!(ack.status, PushStatus::Applied);
    assert_eq!(ack.version, 1);
    a.put("big.bin", &big, 0).expect("push big");
    a.put("empty", b"", 0).expect("push empty");
    a.push(Message::MakeDir {
        path: p("empty dir/inner"),
    })
    .expect("mkdir");

    // The server's folder holds exactly the user's files.
    let on_server = tree(&server.user_dir(&a.user));
    assert_eq!(
        on_server.get("docs/hello.txt"),
        Some(&Some(b"hello\n".to_vec()))
    );
    assert_eq!(on_server.get("big.bin"), Some(&Some(big.clone())));
    assert_eq!(on_server.get("empty"), Some(&Some(Vec::new())));
    assert_eq!(on_server.get("empty dir/inner"), Some(&None));
    assert_eq!(on_server.len(), 6);

    let mut b = WireClient::new_client(server.addr, a.user);
    assert_eq!(b.client, 2);
    let (head, full, entries) = b.pull(0);
    assert!(full);
    assert_eq!(head, 4);
    let names: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        names,
        vec![
            "docs",
            "empty dir",
            "empty dir/inner",
            "big.bin",
            "docs/hello.txt",
            "empty"
        ]
    );
    let (begin, data) = b.fetch("big.bin").expect("fetch");
    assert_eq!(data, big);
    assert_eq!(begin.size, big.len() as u64);
    let (_, data) = b.fetch("empty").expect("fetch empty");
    assert!(data.is_empty());
    b.send(Message::Ack { cursor: head });
    let log = server.wait_log("request=ack");
    assert!(log.contains("request=new-user outcome=ok"), "{log}");
    assert!(log.contains("request=new-client outcome=ok"), "{log}");
    assert!(log.contains("request=push-file outcome=ok"), "{log}");
    assert!(log.contains("request=fetch outcome=ok"), "{log}");
}

#[test]
fn pull_is_coalesced_and_notify_reaches_the_other_client() {
    let server = Server::start();
    let mut a = WireClient::new_user(server.addr);
    a.put("f.txt", b"one", 0).expect("v1");
    let mut b = WireClient::new_client(server.addr, a.user);
    let (cursor, _, _) = b.pull(0);

    let v2 = a.put("f.txt", b"two", 1).expect("v2").version;
    let v3 = a.put("f.txt", b"three", v2).expect("v3").version;
    a.put("gone.txt", b"x", 0).expect("gone");
    let gone_v = a.put("gone.txt", b"y", 4).expect("gone v2").version;
    a.push(Message::Delete(Delete {
        base_version: gone_v,
        path: p("gone.txt"),
    }))
    .expect("delete");
    assert!(
        b.wait_notify(Duration::from_secs(5)).is_some(),
        "B was notified"
    );

    let (head, full, entries) = b.pull(cursor);
    assert!(!full);
    assert_eq!(head, 6);
    assert_eq!(entries.len(), 2, "{entries:?}");
    assert_eq!(entries[0].path.as_str(), "gone.txt");
    assert_eq!(entries[0].state, EntryState::Deleted);
    assert_eq!(entries[1].path.as_str(), "f.txt");
    assert_eq!(entries[1].version, v3);
    // Nothing new: an empty final batch.
    let (same, _, none) = b.pull(head);
    assert_eq!(same, head);
    assert!(none.is_empty());
}

#[test]
fn concurrent_edits_keep_both_versions() {
    let server = Server::start();
    let mut a = WireClient::new_user(server.addr);
    let v1 = a.put("report.txt", b"base", 0).expect("v1").version;
    let mut b = WireClient::new_client(server.addr, a.user);
    let v2 = a.put("report.txt", b"edit by A", v1).expect("A edit");
    assert_eq!(v2.status, PushStatus::Applied);
    let late = b.put("report.txt", b"edit by B", v1).expect("B edit");
    assert_eq!(late.status, PushStatus::Conflict);
    let name = late.path.as_str().to_owned();
    assert!(name.starts_with("report (conflict 2 "), "{name}");
    assert!(name.ends_with(").txt"), "{name}");
    let files = tree(&server.user_dir(&a.user));
    assert_eq!(files.get("report.txt"), Some(&Some(b"edit by A".to_vec())));
    assert_eq!(files.get(&name), Some(&Some(b"edit by B".to_vec())));

    // A stale delete keeps the modified file.
    let stale = b
        .push(Message::Delete(Delete {
            base_version: v1,
            path: p("report.txt"),
        }))
        .expect("delete");
    assert_eq!(stale.status, PushStatus::Stale);
    assert!(server.user_dir(&a.user).join("report.txt").exists());

    // Both reach a third device.
    let mut c = WireClient::new_client(server.addr, a.user);
    let (_, _, entries) = c.pull(0);
    let names: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
    assert!(
        names.contains(&"report.txt") && names.contains(&name.as_str()),
        "{names:?}"
    );
}

#[test]
fn rename_moves_without_upload_and_remove_dir_keeps_newer_files() {
    let server = Server::start();
    let mut a = WireClient::new_user(server.addr);
    a.put("d/x.txt", b"x", 0).expect("x");
    a.put("d/sub/y.txt", b"y", 0).expect("y");
    let mut b = WireClient::new_client(server.addr, a.user);
    let (cursor, _, _) = b.pull(0);

    let moved = a
        .push(Message::Rename(Rename {
            base_version: 0,
            from: p("d"),
            to: p("e/d2"),
        }))
        .expect("rename");
    assert_eq!(moved.status, PushStatus::Applied);
    let files = tree(&server.user_dir(&a.user));
    assert_eq!(files.get("e/d2/sub/y.txt"), Some(&Some(b"y".to_vec())));
    assert!(!files.contains_key("d"));
    let (head, _, entries) = b.pull(cursor);
    let summary: Vec<(String, bool)> = entries
        .iter()
        .map(|e| (e.path.to_string(), e.state == EntryState::Deleted))
        .collect();
    assert!(summary.contains(&("d".to_owned(), true)), "{summary:?}");
    assert!(
        summary.contains(&("e/d2/sub/y.txt".to_owned(), false)),
        "{summary:?}"
    );

    // B removes e/ as it knew it, while A adds a file there first.
    a.put("e/d2/new.txt", b"new", 0).expect("new");
    let rm = b
        .push(Message::RemoveDir(RemoveDir {
            cursor: head,
            path: p("e"),
        }))
        .expect("rmdir");
    assert_eq!(rm.status, PushStatus::Stale);
    let files = tree(&server.user_dir(&a.user));
    let names: Vec<&String> = files.keys().collect();
    assert_eq!(names, vec!["e", "e/d2", "e/d2/new.txt"]);

    // With nothing newer the whole tree goes.
    let (head, _, _) = b.pull(head);
    let rm = b
        .push(Message::RemoveDir(RemoveDir {
            cursor: head,
            path: p("e"),
        }))
        .expect("rmdir all");
    assert_eq!(rm.status, PushStatus::Applied);
    assert!(tree(&server.user_dir(&a.user)).is_empty());
}

#[test]
fn unknown_ids_are_refused_and_logged() {
    let server = Server::start();
    let mut guess = WireClient::connect(server.addr);
    let stranger: UserId = "0123456789abcdef0123456789abcdef".parse().unwrap();
    let err = guess
        .hello(HelloMode::NewClient, stranger, 0)
        .expect_err("refused");
    assert_eq!(err.code, ErrorCode::UnknownUser);
    assert!(guess.until_closed().is_empty());
    server.wait_log("request=new-client outcome=error detail=\"unknown user\"");
    assert!(!server
        .data
        .join("AllClients")
        .join(stranger.to_string())
        .exists());

    let a = WireClient::new_user(server.addr);
    let mut other = WireClient::connect(server.addr);
    let err = other
        .hello(HelloMode::Resume, a.user, 99)
        .expect_err("refused");
    assert_eq!(err.code, ErrorCode::UnknownClient);
}

#[test]
fn connection_limit_refuses_cleanly() {
    let server = Server::start_with(&["--max-connections", "2"]);
    let _a = WireClient::new_user(server.addr);
    let _b = WireClient::new_user(server.addr);
    // Refused before any TLS handshake, in plaintext.
    let mut c = WireClient::connect_plain(server.addr);
    let frames = c.until_closed();
    assert_eq!(frames.len(), 1);
    assert_error(&frames[0].message, ErrorCode::Busy);
    server.wait_log("request=connect outcome=error");
}

#[test]
fn handshake_timeout_frees_silent_connections() {
    let server = Server::start_with(&["--handshake-timeout", "0.3"]);
    let mut silent = WireClient::connect(server.addr);
    let frames = silent.until_closed();
    assert_eq!(frames.len(), 1);
    assert_error(&frames[0].message, ErrorCode::Timeout);
    server.wait_log("request=timeout outcome=error detail=\"handshake timeout\"");
}

#[test]
fn ping_is_answered_on_a_ready_connection() {
    let server = Server::start();
    let mut a = WireClient::new_user(server.addr);
    let rid = a.send(Message::Ping);
    assert_eq!(a.reply(rid), Message::Pong);
}

#[test]
fn idle_actors_retire_while_connections_stay_usable() {
    let server = Server::start_with(&["--actor-idle", "0.2"]);
    let mut a = WireClient::new_user(server.addr);
    a.put("one.txt", b"1", 0).expect("push");
    let mut b = WireClient::new_client(server.addr, a.user);
    let (cursor, _, _) = b.pull(0);
    // The actor retires; an up-to-date pull is answered by the reactor
    // without starting a thread.
    let pid = server.pid();
    assert!(eventually(Duration::from_secs(5), || actor_threads(pid) == 0));
    let (head, _, entries) = b.pull(cursor);
    assert_eq!((head, entries.len()), (cursor, 0));
    assert_eq!(actor_threads(pid), 0);
    // A push wakes a new actor that adopted both connections: B is notified.
    std::thread::sleep(Duration::from_millis(600));
    a.put("two.txt", b"2", 0).expect("push after retirement");
    assert!(b.wait_notify(Duration::from_secs(5)).is_some());
    let (_, _, entries) = b.pull(cursor);
    assert_eq!(entries.len(), 1);
    assert_eq!(b.fetch("two.txt").expect("fetch").1, b"2");
}

#[test]
fn a_port_in_use_or_a_bad_argument_is_a_one_line_error() {
    let server = Server::start();
    let taken = server.addr.port().to_string();
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cloud-server"))
        .args([taken.as_str(), "--bind", "127.0.0.1", "--data-dir"])
        .arg(dir.path())
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].starts_with("cloud-server: cannot listen on 127.0.0.1:"),
        "{err}"
    );

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cloud-server"))
        .args(["not-a-port"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid value 'not-a-port'"));
}

#[test]
fn a_directory_moved_away_and_made_again_is_first_reported_deleted() {
    let server = Server::start();
    let mut a = WireClient::new_user(server.addr);
    a.put("a/x.txt", b"x", 0).expect("x");
    a.put("a/y.txt", b"y", 0).expect("y");
    let mut b = WireClient::new_client(server.addr, a.user);
    let (cursor, _, _) = b.pull(0);
    a.push(Message::Rename(Rename {
        base_version: 0,
        from: p("a"),
        to: p("b"),
    }))
    .expect("rename");
    a.put("a/new.txt", b"new", 0).expect("new a");
    let (_, _, entries) = b.pull(cursor);
    let summary: Vec<(String, EntryState)> = entries
        .iter()
        .map(|e| (e.path.to_string(), e.state))
        .collect();
    let deleted_at = summary
        .iter()
        .position(|(p, s)| p == "a" && *s == EntryState::Deleted)
        .expect("a reported deleted (its old a/y.txt must go)");
    let made_at = summary
        .iter()
        .position(|(p, s)| p == "a" && *s == EntryState::Dir)
        .expect("a reported as a directory again");
    assert!(deleted_at < made_at, "{summary:?}");
    assert!(summary.iter().any(|(p, _)| p == "b/y.txt"), "{summary:?}");
    assert!(summary.iter().any(|(p, _)| p == "a/new.txt"), "{summary:?}");
}

#[test]
fn a_storm_of_new_users_is_served_by_a_bounded_number_of_threads() {
    // All 600 connect before any sends its Hello: from one address that is
    // beyond R-3.5.5's default bound (they would evict each other).
    let server = Server::start_with(&["--max-handshakes-per-address", "1000"]);
    let pid = server.pid();
    let mut clients: Vec<WireClient> = (0..600).map(|_| WireClient::connect(server.addr)).collect();
    for c in &mut clients {
        c.send(Message::Hello(cloudservice::protocol::Hello {
            mode: HelloMode::NewUser,
            user_id: UserId::NONE,
            client_id: 0,
        }));
    }
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let done = std::sync::Arc::clone(&done);
        std::thread::spawn(move || {
            let mut peak = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(actor_threads(pid));
                std::thread::sleep(Duration::from_millis(5));
            }
            peak
        })
    };
    for c in &mut clients {
        assert!(matches!(c.next().message, Message::Welcome(_)));
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let peak = sampler.join().unwrap();
    // A thread that reported its exit may take a moment to disappear.
    assert!(
        peak <= cloudservice::server::registry::MAX_ACTORS + 16,
        "{peak} actor threads at once"
    );
    assert!(peak > 0);
}
