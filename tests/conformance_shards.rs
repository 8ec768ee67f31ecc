//! Conformance with PROTOCOL.md §16 (shards): the IDs a shard mints carry
//! its tag, a shard refuses users it does not hold with WrongShard, a user
//! on the move is refused with Moving (its open connections too), and
//! `cloud-server export|import` move a user between two running shards
//! with every acknowledged change and without ever serving it twice. Also
//! the real client, which waits out Moving and WrongShard.

mod common;

use cloudservice::protocol::{ErrorCode, FileBegin, Frame, HelloMode, Message, PushStatus, UserId};
use cloudservice::tls::routing::shard_tag;
use common::{eventually, tree, write, Client, Rng, Server, WireClient};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A user ID, drawn from `rng`, whose tag is `tag` (or, with `not`, is not).
fn id_with_tag(rng: &mut Rng, tag: u8, not: bool) -> UserId {
    loop {
        let mut bytes = [0u8; 16];
        for b in &mut bytes {
            *b = rng.below(256) as u8;
        }
        let user = UserId(bytes);
        if (shard_tag(&user) == tag) != not && user != UserId::NONE {
            return user;
        }
    }
}

/// A Hello of `mode` for `user` on a new connection: the Error it gets
/// (asserted to have request ID 1 and to close the connection).
fn refusal(server: &Server, mode: HelloMode, user: UserId, client: u64) -> (ErrorCode, String) {
    let mut c = WireClient::connect(server.addr);
    let report = c
        .hello(mode, user, client)
        .expect_err("the handshake must be refused");
    assert!(c.until_closed().is_empty(), "closed after the Error");
    (report.code, report.message)
}

/// Waits (5 s at most) until a Resume of `user` is refused with `code`
/// (the moves watcher looks every 100 ms; Moving until then).
fn eventually_refused(server: &Server, user: UserId, code: ErrorCode) {
    let mut last = None;
    let ok = eventually(Duration::from_secs(5), || {
        let got = refusal(server, HelloMode::Resume, user, 1).0;
        assert!(
            got == code || got == ErrorCode::Moving,
            "{got:?} while waiting for {code:?}"
        );
        last = Some(got);
        got == code
    });
    assert!(ok, "still {last:?}, not {code:?}");
}

/// The move marker file of `user` in `data` (PROTOCOL.md §16.3).
fn marker(data: &Path, user: &UserId) -> std::path::PathBuf {
    data.join(".cloudservice-server/moves")
        .join(user.to_string())
}

fn set_marker(data: &Path, user: &UserId, text: &str) {
    let dir = data.join(".cloudservice-server/moves");
    std::fs::create_dir_all(&dir).expect("moves dir");
    std::fs::write(marker(data, user), text).expect("marker");
}

/// Reads frames until an Error with request ID 0 and the close; panics on
/// anything else but Notify.
fn expect_closing_error(c: &mut WireClient) -> ErrorCode {
    let frames = c.until_closed();
    let errors: Vec<_> = frames
        .iter()
        .filter_map(|f| match &f.message {
            Message::Error(e) => Some((f.request_id, e.code)),
            _ => None,
        })
        .collect();
    assert_eq!(errors.len(), 1, "one Error before the close: {frames:?}");
    assert_eq!(errors[0].0, 0, "request ID 0 on an open connection");
    errors[0].1
}

#[test]
///
fn r_16_1_1_a_shard_mints_only_ids_of_its_tag() {
    let shard = Server::start_with(&["--shard", "42"]);
    let mut ids = std::collections::HashSet::new();
    for _ in 0..20 {
        let c = WireClient::new_user(shard.addr);
        assert_eq!(shard_tag(&c.user), 42, "tag of {}", c.user);
        assert!(ids.insert(c.user), "an ID came twice");
    }
    // Tag 42 fixes the first byte of the routing key, nothing of the ID's
    // own bytes: they differ in every position somewhere among 20 IDs.
    for i in 0..16 {
        let values: std::collections::HashSet<u8> = ids.iter().map(|u| u.0[i]).collect();
        assert!(values.len() > 1, "byte {i} is the same in every ID");
    }
    // A server without --shard mints any tag.
    let plain = Server::start();
    let tags: std::collections::HashSet<u8> = (0..12)
        .map(|_| shard_tag(&WireClient::new_user(plain.addr).user))
        .collect();
    assert!(tags.len() > 1, "12 users, one tag: {tags:?}");
}

#[test]
///
fn r_16_2_1_a_shard_refuses_users_of_other_tags_it_does_not_hold() {
    let mut rng = Rng::new(common::seed("SHARDS_SEED"));
    let data = tempfile::tempdir().expect("temp");
    // A user made before sharding, with a tag other than 7: held here, so
    // served once the server runs as shard 7.
    let mut server = Server::start_in(data.path(), &[]);
    let held = loop {
        let c = WireClient::new_user(server.addr);
        if shard_tag(&c.user) != 7 {
            break c.user;
        }
    };
    server.stop();
    let server = Server::start_in(data.path(), &["--shard", "7"]);
    WireClient::resume(server.addr, held, 1);
    let mut texts = std::collections::HashSet::new();
    for round in 0..6 {
        let foreign = id_with_tag(&mut rng, 7, true);
        let mode = if round % 2 == 0 {
            HelloMode::Resume
        } else {
            HelloMode::NewClient
        };
        let (code, text) = refusal(&server, mode, foreign, u64::from(round % 2 == 0));
        assert_eq!(code, ErrorCode::WrongShard, "foreign tag {foreign}");
        assert!(!text.contains(&foreign.to_string()));
        texts.insert(text);
        // An unknown user of the shard's own tag is just unknown.
        let own = id_with_tag(&mut rng, 7, false);
        assert_eq!(
            refusal(&server, mode, own, 1).0,
            ErrorCode::UnknownUser,
            "own tag {own}"
        );
    }
    assert_eq!(texts.len(), 1, "the text does not depend on the ID");
    let log = server.conn_log();
    assert!(log.contains("another shard"), "WrongShard is logged");
}

#[test]
///
fn r_16_2_2_a_user_on_the_move_is_refused_and_its_connections_closed() {
    let server = Server::start_with(&["--shard", "0"]);
    let mut a = WireClient::new_user(server.addr);
    let user = a.user;
    a.put("a.txt", b"before", 0).expect("upload");
    // Another device: device 1 has its live connection in `a`.
    let second = WireClient::connect(server.addr)
        .hello(HelloMode::NewClient, user, 0)
        .expect("join")
        .client_id;
    let mut ready = WireClient::resume(server.addr, user, second);
    let (head, _, _) = ready.pull(0);
    // The operator's export marks the user moving (§16.3): open
    // connections get Moving (request ID 0) and close within a second.
    set_marker(&server.data, &user, "moving\n");
    let started = std::time::Instant::now();
    assert_eq!(expect_closing_error(&mut ready), ErrorCode::Moving);
    assert_eq!(expect_closing_error(&mut a), ErrorCode::Moving);
    assert!(started.elapsed() < Duration::from_secs(2));
    for mode in [HelloMode::Resume, HelloMode::NewClient] {
        assert_eq!(refusal(&server, mode, user, 1).0, ErrorCode::Moving);
    }
    // The marker gone (a failed export undoes it): served as before.
    std::fs::remove_file(marker(&server.data, &user)).expect("unmark");
    assert!(eventually(Duration::from_secs(5), || {
        let mut c = WireClient::connect(server.addr);
        c.hello(HelloMode::Resume, user, 1).is_ok()
    }));
    let mut c = WireClient::resume(server.addr, user, 1);
    assert_eq!(c.pull(0).0, head);
    // Moved away: WrongShard, for good; its tag is this shard's, yet it is
    // not served.
    set_marker(&server.data, &user, "moved\n");
    assert_eq!(expect_closing_error(&mut c), ErrorCode::WrongShard);
    eventually_refused(&server, user, ErrorCode::WrongShard);
}

/// What a pusher sent: the pushes acknowledged (Applied), by path, and the
/// one in flight when the server refused (applied or not: never acknowledged).
type Pushed = (Vec<(String, Vec<u8>)>, (String, Vec<u8>));

/// Uploads `f<i>.txt` one after the other until the server refuses,
/// counting acknowledgements in `count`.
fn push_until_refused(c: &mut WireClient, rng: &mut Rng, count: &AtomicUsize) -> Pushed {
    let mut acked = Vec::new();
    for i in 0..100_000u32 {
        let path = format!("f{i}.txt");
        let content: Vec<u8> = (0..1 + rng.below(3000))
            .map(|_| rng.below(256) as u8)
            .collect();
        let rid = c.next_request_id();
        let begin = Message::FileBegin(FileBegin {
            version: 0,
            size: content.len() as u64,
            hash: cloudservice::protocol::ContentHash::of(&content),
            path: common::p(&path),
        });
        // A failed write means the server closed: its Error is read below.
        let _ = c.try_send_frames(&[
            Frame::new(rid, begin),
            Frame::new(rid, Message::FileChunk(content.clone())),
            Frame::new(rid, Message::FileEnd),
        ]);
        match c.read(Duration::from_secs(10)) {
            common::Read1::Frame(Frame {
                message: Message::PushAck(ack),
                request_id,
            }) if request_id == rid => {
                assert_eq!(ack.status, PushStatus::Applied);
                acked.push((path, content));
                count.store(acked.len(), Ordering::Relaxed);
            }
            // The server's close can reset the connection before its Error
            // is read (our writes crossed it): refused all the same.
            common::Read1::Closed => return (acked, (path, content)),
            common::Read1::Frame(Frame {
                message: Message::Error(e),
                ..
            }) => {
                assert_eq!(e.code, ErrorCode::Moving, "{e:?}");
                return (acked, (path, content));
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    panic!("never refused");
}

#[test]
///
fn r_16_3_1_export_and_import_move_every_acknowledged_change() {
    let mut rng = Rng::new(common::seed("SHARDS_SEED"));
    let a = Server::start_with(&["--shard", "0"]);
    let b = Server::start_with(&["--shard", "1"]);
    let mut c = WireClient::new_user(a.addr);
    let user = c.user;
    let export = tempfile::tempdir().expect("temp");
    let dir = export.path().join("user");
    // Pushes go on while the export runs: it must take every change A
    // acknowledged and nothing after.
    let count = Arc::new(AtomicUsize::new(0));
    let pusher = {
        let mut rng = Rng::new(rng.next_u64());
        let count = Arc::clone(&count);
        std::thread::spawn(move || {
            let pushed = push_until_refused(&mut c, &mut rng, &count);
            (c, pushed)
        })
    };
    let before = 10 + rng.below(150) as usize;
    let started = eventually(Duration::from_secs(60), || {
        count.load(Ordering::Relaxed) >= before
    });
    assert!(started, "the pusher got {before} acknowledgements");
    let out = a.admin(
        "export",
        &[&user.to_string(), "--to", dir.to_str().unwrap()],
    );
    assert!(out.contains("refuses it (WrongShard)"), "{out}");
    let sni = format!(
        "route: {}",
        cloudservice::tls::routing::sni_for(Some(&user))
    );
    assert!(out.contains(&sni), "{out}");
    let (_c, (acked, in_flight)) = pusher.join().expect("pusher");
    assert!(!acked.is_empty(), "some pushes before the export");
    // Nothing partial is left beside the export.
    assert!(!export.path().join("user.partial").exists());
    eventually_refused(&a, user, ErrorCode::WrongShard);
    // B does not know the user until the import (its tag is A's).
    assert_eq!(
        refusal(&b, HelloMode::Resume, user, 1).0,
        ErrorCode::WrongShard
    );
    let out = b.admin("import", &[dir.to_str().unwrap()]);
    assert!(out.contains(&format!("imported user {user}")), "{out}");
    // B serves the user, with every acknowledged change, by content.
    let mut on_b = eventually_resume(&b, user);
    let (head, _, entries) = on_b.pull(0);
    // The push in flight when the export began may have been applied
    // without its acknowledgement reaching the client (which pushes it
    // again later): one change more at most, and only that one.
    let extra = head as usize - acked.len();
    assert!(extra <= 1, "head {head}, {} acknowledged", acked.len());
    assert_eq!(entries.len(), head as usize);
    for (path, content) in &acked {
        let (_, bytes) = on_b.fetch(path).expect("fetch on B");
        assert_eq!(&bytes, content, "{path}");
    }
    let folder = tree(&b.data.join("AllClients").join(user.to_string()));
    assert_eq!(folder.len(), head as usize);
    if extra == 1 {
        assert_eq!(folder.get(&in_flight.0), Some(&Some(in_flight.1.clone())));
    }
    // A push on B is applied there.
    on_b.put("after.txt", b"on B", head).expect("push on B");
    // a second import over the served user is refused...
    let again = b.admin_output("import", &[dir.to_str().unwrap()]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("refusing to overwrite"));
    // ...and A cannot export what it no longer owns.
    let twice = a.admin_output("export", &[&user.to_string(), "--to", "/nonexistent/x"]);
    assert!(String::from_utf8_lossy(&twice.stderr).contains("already exported"));
    // Back to A: its old copy (marked moved) is replaced by B's.
    drop(on_b);
    let back = export.path().join("back");
    b.admin(
        "export",
        &[&user.to_string(), "--to", back.to_str().unwrap()],
    );
    a.admin("import", &[back.to_str().unwrap()]);
    let mut on_a = eventually_resume(&a, user);
    let (head_a, _, _) = on_a.pull(0);
    assert_eq!(head_a, head + 1);
    let (_, bytes) = on_a.fetch("after.txt").expect("the change made on B");
    assert_eq!(bytes, b"on B");
    eventually_refused(&b, user, ErrorCode::WrongShard);
}

/// Resumes device 1 of `user`, retrying while the server still refuses
/// (its moves watcher looks every 100 ms).
fn eventually_resume(server: &Server, user: UserId) -> WireClient {
    let mut found = None;
    assert!(eventually(Duration::from_secs(5), || {
        let mut c = WireClient::connect(server.addr);
        if c.hello(HelloMode::Resume, user, 1).is_ok() {
            found = Some(c);
            true
        } else {
            false
        }
    }));
    found.expect("resumed")
}

#[test]
///
fn r_16_2_3_the_client_waits_out_moving_and_wrong_shard() {
    let server = Server::start_with(&["--shard", "3"]);
    let a_dir = tempfile::tempdir().expect("temp");
    let b_dir = tempfile::tempdir().expect("temp");
    write(a_dir.path(), "one.txt", "first");
    let user = common::new_user(server.port, a_dir.path());
    let id: UserId = user.parse().expect("user id");
    assert_eq!(shard_tag(&id), 3);
    let logs = tempfile::tempdir().expect("temp");
    let log = logs.path().join("a.log");
    let mut a = Client::options(server.port, a_dir.path())
        .user(Some(&user))
        .log(&log)
        .start();
    assert!(a.wait_log("watching", Duration::from_secs(30)));
    // Moving while A runs: it stays up, changes nothing, and pushes what
    // was written meanwhile once served again.
    set_marker(&server.data, &id, "moving\n");
    std::thread::sleep(Duration::from_millis(600));
    write(a_dir.path(), "two.txt", "written while moving");
    // A device joining now (start-up) waits too, instead of failing.
    let mut b = Client::start(server.port, b_dir.path(), Some(&user));
    std::thread::sleep(Duration::from_secs(2));
    assert!(a.is_running(), "Moving is not fatal");
    assert!(b.is_running(), "Moving at start-up is not fatal");
    let served = server.data.join("AllClients").join(&user);
    assert!(
        !served.join("two.txt").exists(),
        "nothing applied while moving"
    );
    assert!(std::fs::read_dir(b_dir.path()).map_or(0, |d| d.count()) <= 1);
    // Moved away and back (WrongShard is passing too).
    set_marker(&server.data, &id, "moved\n");
    std::thread::sleep(Duration::from_millis(800));
    assert!(a.is_running() && b.is_running(), "WrongShard is not fatal");
    std::fs::remove_file(marker(&server.data, &id)).expect("unmark");
    let want = [("one.txt", "first"), ("two.txt", "written while moving")];
    assert!(
        eventually(Duration::from_secs(60), || {
            want.iter().all(|(p, c)| {
                [served.as_path(), b_dir.path()]
                    .iter()
                    .all(|d| std::fs::read_to_string(d.join(p)).is_ok_and(|t| t == *c))
            })
        }),
        "both devices and the server converge after the move"
    );
    assert_eq!(tree(a_dir.path()), tree(b_dir.path()));
    a.stop();
    b.stop();
}

/// A stand-in for HAProxy's runtime API (`stats socket … level admin`) that
/// keeps one map as HAProxy does and answers `set map`, `add map` and
/// `del map` with HAProxy 2.6's texts ("entry not found." for a `set` of a
/// new key, "Key not found." for a `del` of a missing one). Every command
/// line received is kept.
struct FakeRuntimeApi {
    entries: Arc<std::sync::Mutex<std::collections::BTreeMap<String, String>>>,
    commands: Arc<std::sync::Mutex<Vec<String>>>,
}

impl FakeRuntimeApi {
    fn start(socket: &Path, map: &Path) -> FakeRuntimeApi {
        use std::io::{BufRead, Write};
        let listener = std::os::unix::net::UnixListener::bind(socket).expect("bind socket");
        let entries = Arc::new(std::sync::Mutex::new(std::collections::BTreeMap::new()));
        let commands = Arc::new(std::sync::Mutex::new(Vec::new()));
        let name = map.display().to_string();
        let (e, c) = (Arc::clone(&entries), Arc::clone(&commands));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut line = String::new();
                let read = std::io::BufReader::new(&stream).read_line(&mut line);
                if read.is_err() {
                    continue;
                }
                let line = line.trim_end().to_owned();
                c.lock().expect("commands").push(line.clone());
                let words: Vec<&str> = line.split(' ').collect();
                let mut map = e.lock().expect("entries");
                let reply = match words.as_slice() {
                    [verb, "map", m, key, rest @ ..] if *m == name => match (*verb, rest) {
                        ("set", [value]) if map.contains_key(*key) => {
                            map.insert((*key).to_owned(), (*value).to_owned());
                            "\n"
                        }
                        ("set", [_]) => "entry not found.\n\n",
                        ("add", [value]) => {
                            map.insert((*key).to_owned(), (*value).to_owned());
                            "\n"
                        }
                        ("del", []) if map.remove(*key).is_some() => "\n",
                        ("del", []) => "Key not found.\n\n",
                        _ => "Unknown command.\n\n",
                    },
                    _ => "Unknown map identifier. Please use #<id> or <file>.\n\n",
                };
                let _ = stream.write_all(reply.as_bytes());
            }
        });
        FakeRuntimeApi { entries, commands }
    }
}

/// The non-comment lines of a map file, as key → backend.
fn map_lines(map: &Path) -> std::collections::BTreeMap<String, String> {
    std::fs::read_to_string(map)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let mut w = l.split_whitespace();
            let key = w.next().expect("key").to_owned();
            (key, w.next().expect("backend").to_owned())
        })
        .collect()
}

#[test]
///
fn r_16_3_3_a_user_routed_back_to_its_tag_shard_leaves_no_map_line() {
    use cloudservice::tls::routing::sni_for;
    let mut rng = Rng::new(common::seed("SHARDS_SEED"));
    let dir = tempfile::tempdir().expect("temp");
    let map = dir.path().join("cloudservice-users.map");
    let tags = dir.path().join("cloudservice-shards.map");
    let socket = dir.path().join("admin.sock");
    // The shipped files: the tag map names shards 0-2, the user map is
    // comments only.
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/haproxy");
    std::fs::copy(deploy.join("cloudservice-shards.map"), &tags).expect("tag map");
    std::fs::copy(deploy.join("cloudservice-users.map"), &map).expect("user map");
    let comments = std::fs::read_to_string(&map).expect("user map");
    let api = FakeRuntimeApi::start(&socket, &map);
    let route = |user: &UserId, backend: &str, with_socket: bool| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_cloud-server"));
        cmd.args(["route", &user.to_string(), backend, "--map"])
            .arg(&map);
        if with_socket {
            cmd.arg("--socket").arg(&socket);
        }
        let out = cmd.output().expect("cloud-server route");
        assert!(
            out.status.success(),
            "route {user} {backend}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // Users of tags 0-2 moved at random between the three shards (and
    // sometimes routed where they already are), some routes through the
    // runtime API, some to the file alone (as for a reload): after each,
    // the file holds exactly one line per user living off its tag's shard,
    // and HAProxy's live map (changed only through the socket) agrees for
    // the users routed through it.
    let users: Vec<UserId> = (0..8u8)
        .map(|i| id_with_tag(&mut rng, i % 3, false))
        .collect();
    let mut home: Vec<u8> = users.iter().map(shard_tag).collect();
    let mut live_only = std::collections::BTreeSet::new();
    for step in 0..40 {
        let i = rng.index(users.len());
        let to = rng.below(3) as u8;
        let with_socket = step % 5 != 4;
        let out = route(&users[i], &format!("shard{to}"), with_socket);
        home[i] = to;
        let sni = sni_for(Some(&users[i]));
        if to == shard_tag(&users[i]) {
            assert!(out.contains("no line"), "{out}");
        } else {
            assert!(out.contains(&format!("routed {sni} to shard{to}")), "{out}");
        }
        if !with_socket {
            live_only.insert(i);
        } else {
            live_only.remove(&i);
        }
        let want: std::collections::BTreeMap<String, String> = users
            .iter()
            .zip(&home)
            .filter(|(u, h)| shard_tag(u) != **h)
            .map(|(u, h)| (sni_for(Some(u)), format!("shard{h}")))
            .collect();
        assert_eq!(map_lines(&map), want, "the map file after step {step}");
        let live = api.entries.lock().expect("entries").clone();
        for (n, user) in users.iter().enumerate() {
            if live_only.contains(&n) {
                continue;
            }
            let key = sni_for(Some(user));
            assert_eq!(
                live.get(&key),
                want.get(&key),
                "HAProxy's entry for user {n}"
            );
        }
    }
    // The shipped comments stay.
    assert!(std::fs::read_to_string(&map)
        .expect("map")
        .starts_with(&comments));
    // Every user back home: the map is its comments alone, and HAProxy
    // was told `del map` for each.
    for user in &users {
        route(user, &format!("shard{}", shard_tag(user)), true);
    }
    assert_eq!(std::fs::read_to_string(&map).expect("map"), comments);
    assert!(api.entries.lock().expect("entries").is_empty());
    let commands = api.commands.lock().expect("commands").clone();
    for user in &users {
        let del = format!("del map {} {}", map.display(), sni_for(Some(user)));
        assert!(commands.contains(&del), "{del} in {commands:?}");
    }
    // No tag map beside the user map and none given: refused, the map
    // file untouched.
    let lone = dir.path().join("alone");
    std::fs::create_dir_all(&lone).expect("dir");
    let lone_map = lone.join("users.map");
    std::fs::write(&lone_map, "# keep\n").expect("map");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cloud-server"))
        .args(["route", &users[0].to_string(), "shard1", "--map"])
        .arg(&lone_map)
        .output()
        .expect("cloud-server route");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("tag map"));
    assert_eq!(std::fs::read_to_string(&lone_map).expect("map"), "# keep\n");
}
