//! End-to-end: the server notices its own copy changed behind its back
//! (outside tester breaker22 F2, server side; PROTOCOL.md … ).
//! The operator's `AllClients/<ID>/` is a plain folder: what is rewritten,
//! appended to, added (files, directories) there while the server is
//! stopped cleanly reaches every device as a change made in the server's
//! folder, with a conflict copy where a device edited the same file
//! offline; a file removed by hand is kept listed and never deleted on the
//! devices (the last copies are there), and a device holding it puts it
//! back, so a new device gets it too; a byte changed while the server runs is found at the
//! next fetch and journaled, not served again. Planted symlinks stay
//! never followed. Main's server served the journal's version of each (a
//! truncated read of the appended file, `outcome=ok` fetches of the
//! removed one) and no device got the hand edits.

mod common;

use common::*;
use std::path::Path;
use std::time::Duration;

/// One byte of `path` changed in place, its size kept.
fn flip_byte(path: &Path, at: usize) {
    let mut bytes = std::fs::read(path).expect("read the server's copy");
    bytes[at] ^= 0xff;
    std::fs::write(path, &bytes).expect("change the server's copy");
}

/// How many times the server's connection log shows a fetch of `path`.
fn fetches(server: &Server, path: &str) -> usize {
    server
        .conn_log()
        .lines()
        .filter(|l| l.contains("request=fetch ") && l.contains(&format!("detail=\"{path}")))
        .count()
}

#[test]
fn hand_edits_while_the_server_is_stopped_reach_the_devices() {
    let logs = tempfile::tempdir().expect("temp dir");
    let mut server = Server::options()
        .log(&logs.path().join("server.err"))
        .start();
    let a = tempfile::tempdir().expect("temp dir");
    let b = tempfile::tempdir().expect("temp dir");
    let c = tempfile::tempdir().expect("temp dir");
    let outside = tempfile::tempdir().expect("temp dir");
    let (a, b, c) = (a.path(), b.path(), c.path());
    for i in 1..=4 {
        write(a, &format!("d/f{i}.txt"), format!("base {i}\n"));
    }
    let big = Rng::new(8).bytes(1 << 20);
    write(a, "big.bin", &big);
    settle();
    let user = new_user(server.port, a);
    let mut ca = Client::options(server.port, a)
        .log(&logs.path().join("a.err"))
        .start();
    let mut cb = Client::options(server.port, b)
        .user(Some(&user))
        .log(&logs.path().join("b.err"))
        .start();
    converge("B joined", &[a, b]);
    cb.stop();
    ca.stop();
    server.stop();

    // B edits f4 offline; the operator edits the server's folder by hand.
    write(b, "d/f4.txt", "B's offline edit\n");
    let s = server.user_dir(&user);
    write(&s, "d/f1.txt", "rewritten by hand, longer\n");
    append(&s.join("d/f2.txt"), "appended by hand\n");
    std::fs::remove_file(s.join("d/f3.txt")).expect("rm f3");
    write(&s, "d/f4.txt", "the operator's f4\n");
    write(&s, "d/hand.txt", "added by hand\n");
    write(&s, "handdir/sub/x.txt", "in a directory added by hand\n");
    flip_byte(&s.join("big.bin"), 512 << 10);
    write(outside.path(), "secret.txt", "SECRET outside\n");
    std::os::unix::fs::symlink(outside.path().join("secret.txt"), s.join("d/link.txt"))
        .expect("plant a symlink");
    std::os::unix::fs::symlink(outside.path(), s.join("linkdir")).expect("plant a symlink");
    let on_server = tree(&s);
    server.start_again();

    let _ca = Client::options(server.port, a)
        .log(&logs.path().join("a2.err"))
        .start();
    let _cb = Client::options(server.port, b)
        .log(&logs.path().join("b2.err"))
        .start();
    let cc = Client::options(server.port, c)
        .user(Some(&user))
        .log(&logs.path().join("c.err"))
        .start();

    // Every hand change reaches every device.
    let expect = |path: &str| on_server.get(path).cloned().flatten().expect("server file");
    for (n, folder) in [("A", a), ("B", b), ("C", c)] {
        let arrived = eventually(Duration::from_secs(40), || {
            [
                "d/f1.txt",
                "d/f2.txt",
                "d/hand.txt",
                "handdir/sub/x.txt",
                "big.bin",
            ]
            .iter()
            .all(|p| std::fs::read(folder.join(p)).is_ok_and(|got| got == expect(p)))
        });
        assert!(
            arrived,
            "{n} lacks a hand edit: {:?}\n{}",
            tree(folder).keys().collect::<Vec<_>>(),
            cc.log_tail(4000)
        );
    }
    // The appended file whole, not cut at its journaled size.
    assert_eq!(
        std::fs::read(c.join("d/f2.txt")).expect("f2"),
        b"base 2\nappended by hand\n"
    );
    // f4: the operator's edit at its path, B's offline edit in a conflict
    // copy, on the server and on B: nothing lost.
    let both = |folder: &Path| {
        let t = tree(folder);
        let ours = t.get("d/f4.txt") == Some(&Some(b"the operator's f4\n".to_vec()));
        let theirs = t.iter().any(|(p, v)| {
            p.starts_with("d/f4 (conflict") && v.as_deref() == Some(&b"B's offline edit\n"[..])
        });
        ours && theirs
    };
    let kept = eventually(Duration::from_secs(40), || both(b) && both(&s) && both(c));
    assert!(
        kept,
        "f4's two edits are not both kept: server {:?}\nB {:?}",
        tree(&s).keys().collect::<Vec<_>>(),
        tree(b).keys().collect::<Vec<_>>()
    );
    // f3, removed by hand: never deleted on the devices that hold it; A or
    // B, which hold its version, put it back, and the new device
    // gets it.
    for folder in [a, b, c] {
        let got = eventually(Duration::from_secs(30), || {
            std::fs::read(folder.join("d/f3.txt")).is_ok_and(|g| g == b"base 3\n")
        });
        assert!(
            got,
            "f3 is not on {}: {}",
            folder.display(),
            status_json(c).1
        );
    }
    assert_eq!(
        std::fs::read(s.join("d/f3.txt")).expect("f3 back on the server"),
        b"base 3\n"
    );
    // Planted symlinks: nothing outside reached a device.
    for folder in [a, b, c] {
        for (p, v) in tree(folder) {
            assert!(
                !v.is_some_and(|v| v.starts_with(b"SECRET")),
                "{p} holds the outside file"
            );
        }
    }
    // The server's log says what it did.
    let log = server.log_tail(64 << 10);
    for needle in [
        "d/f1.txt changed outside the server",
        "d/hand.txt added outside the server",
        "d/f3.txt (v",
        "not deleted on the devices",
        "d/f3.txt (v",
        "restored from device",
    ] {
        assert!(
            log.contains(needle),
            "no {needle:?} in the server's log:\n{log}"
        );
    }
    assert!(
        server
            .conn_log()
            .lines()
            .any(|l| l.contains("request=restore-lost") && l.contains("d/f3.txt")),
        "the restore is not in connectionLog.txt"
    );
}

#[test]
fn a_byte_changed_while_the_server_runs_is_found_at_the_fetch_and_journaled() {
    let logs = tempfile::tempdir().expect("temp dir");
    let server = Server::options()
        .log(&logs.path().join("server.err"))
        .start();
    let a = tempfile::tempdir().expect("temp dir");
    let c = tempfile::tempdir().expect("temp dir");
    let (a, c) = (a.path(), c.path());
    let big = Rng::new(9).bytes(4 << 20);
    write(a, "big.bin", &big);
    settle();
    let user = new_user(server.port, a);
    let _ca = Client::options(server.port, a)
        .log(&logs.path().join("a.err"))
        .start();
    // After the server's start and A's sync: one byte, by hand, mtime moved.
    let copy = server.user_dir(&user).join("big.bin");
    let pushed = eventually(CONVERGE, || server.copy_of(&user, "big.bin").0 == big);
    assert!(pushed, "big.bin never reached the server");
    std::thread::sleep(Duration::from_millis(50));
    flip_byte(&copy, 2 << 20);
    let changed = std::fs::read(&copy).expect("server copy");

    let cc = Client::options(server.port, c)
        .user(Some(&user))
        .log(&logs.path().join("c.err"))
        .start();
    // The new device and A both end with the server's bytes, as a change
    // made in the server's folder, after at most a few fetches.
    for (n, folder) in [("C", c), ("A", a)] {
        let got = eventually(Duration::from_secs(30), || {
            std::fs::read(folder.join("big.bin")).is_ok_and(|b| b == changed)
        });
        assert!(
            got,
            "{n} never got the changed copy:\n{}",
            cc.log_tail(4000)
        );
    }
    let in_sync = eventually(Duration::from_secs(10), || status_json(c).0 == 0);
    assert!(in_sync, "{}", status_json(c).1);
    let before = fetches(&server, "big.bin");
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(fetches(&server, "big.bin"), before, "fetched again");
    assert!(
        fetches(&server, "big.bin") <= 4,
        "big.bin fetched {} times",
        fetches(&server, "big.bin")
    );
    let log = server.log_tail(64 << 10);
    assert!(
        log.contains("big.bin changed outside the server while it runs"),
        "{log}"
    );
    assert!(
        server
            .conn_log()
            .lines()
            .any(|l| l.contains("request=fetch outcome=error")
                && l.contains("big.bin: the server's copy changed on its disk")),
        "{}",
        server.conn_log()
    );
}

/// breaker24 F6: after an unclean stop (`kill -9` here; a power loss is
/// when a disk most likely loses files) with no push in flight, a file and
/// a directory removed from the server's folder were journaled removed and
/// deleted on every device, with no version kept: the devices held the
/// last copies. Now only what the push the stop cut off named may be
/// removed; these are lost on the server and kept on the devices.
#[test]
fn files_removed_by_hand_after_a_crash_stay_on_the_devices() {
    let logs = tempfile::tempdir().expect("temp dir");
    let log = logs.path().join("server.err");
    let mut server = Server::options().log(&log).start();
    let a = tempfile::tempdir().expect("temp dir");
    let b = tempfile::tempdir().expect("temp dir");
    let (a, b) = (a.path(), b.path());
    write(a, "f.txt", "f's only copies are on the devices\n");
    write(a, "d/g.txt", "so are g's\n");
    write(a, "o.txt", "untouched\n");
    settle();
    let user = new_user(server.port, a);
    let _ca = Client::start(server.port, a, None);
    let _cb = Client::start(server.port, b, Some(&user));
    converge("B joined", &[a, b]);
    // Nothing in flight: everything acknowledged on both devices.
    assert!(
        eventually(CONVERGE, || status_json(a).0 == 0 && status_json(b).0 == 0),
        "both in sync first"
    );
    server.kill9();
    let s = server.user_dir(&user);
    std::fs::remove_file(s.join("f.txt")).expect("rm f.txt");
    std::fs::remove_dir_all(s.join("d")).expect("rm -r d");
    server.start_again();

    // A change made after the restart reaches B: B has pulled everything
    // the server journaled before it, deletions included.
    write(a, "after.txt", "after the crash\n");
    let seen = eventually(CONVERGE, || {
        std::fs::read_to_string(b.join("after.txt")).is_ok_and(|t| t == "after the crash\n")
    });
    assert!(seen, "B gets A's new file after the restart");
    for folder in [a, b] {
        assert_eq!(
            std::fs::read_to_string(folder.join("f.txt"))
                .ok()
                .as_deref(),
            Some("f's only copies are on the devices\n"),
            "f.txt kept on {}",
            folder.display()
        );
        assert_eq!(
            std::fs::read_to_string(folder.join("d/g.txt"))
                .ok()
                .as_deref(),
            Some("so are g's\n"),
            "d/g.txt kept on {}",
            folder.display()
        );
    }
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        text.contains("f.txt (v") && text.contains("is missing"),
        "the server names the missing file: {text}"
    );
    assert!(!text.contains("journaled as removed"), "{text}");
}

/// breaker24 F10 and F4: while the server runs, the operator
/// adds a file and replaces another in the server's folder; then a device
/// writes both paths. Main's server overwrote the hand's files with the
/// device's pushes, without trace (F10), and kept the replaced file's hand
/// bytes as a version under the old hash (F4). Now the push meets each
/// hand file as another device's change: the server and the device end
/// with both contents of each path, and the device's version of the
/// replaced file is listed under its own content.
#[test]
fn hand_edits_while_the_server_runs_meet_the_next_push_as_a_conflict() {
    let logs = tempfile::tempdir().expect("temp dir");
    let server = Server::options()
        .log(&logs.path().join("server.err"))
        .start();
    let a = tempfile::tempdir().expect("temp dir");
    let a = a.path();
    write(a, "kept.txt", "the device's first version\n");
    settle();
    let user = new_user(server.port, a);
    let ca = Client::options(server.port, a)
        .log(&logs.path().join("a.err"))
        .start();
    let s = server.user_dir(&user);
    let synced = eventually(CONVERGE, || s.join("kept.txt").is_file());
    assert!(synced, "kept.txt never reached the server");
    std::thread::sleep(Duration::from_millis(50));

    // By hand, in the running server's folder: a file replaced (a new
    // inode renamed over it) and a file added.
    let staged = logs.path().join("replacement");
    std::fs::write(&staged, "replaced by hand on the server\n").expect("stage");
    std::fs::rename(&staged, s.join("kept.txt")).expect("replace by hand");
    write(&s, "added.txt", "added by hand on the server\n");
    // Then the device writes both paths.
    std::thread::sleep(Duration::from_millis(50));
    write(a, "kept.txt", "the device's second version\n");
    write(a, "added.txt", "the device's own added.txt\n");

    let contents = [
        "replaced by hand on the server\n",
        "added by hand on the server\n",
        "the device's second version\n",
        "the device's own added.txt\n",
    ];
    let holds_all = |root: &Path| {
        let files: Vec<Vec<u8>> = tree(root).into_values().flatten().collect();
        contents
            .iter()
            .all(|c| files.iter().any(|f| f == c.as_bytes()))
    };
    let both = eventually(Duration::from_secs(30), || holds_all(&s) && holds_all(a));
    assert!(
        both,
        "a content was lost:\nserver: {:?}\ndevice: {:?}\n{}",
        tree(&s).keys().collect::<Vec<_>>(),
        tree(a).keys().collect::<Vec<_>>(),
        ca.log_tail(4000)
    );
    converge("after the conflicts", &[a, &s]);
    let log = server.log_tail(64 << 10);
    assert!(
        log.contains("added.txt added outside the server while it runs")
            && log.contains("kept.txt changed outside the server while it runs"),
        "{log}"
    );
}
