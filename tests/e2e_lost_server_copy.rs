//! End-to-end: the server's lost copy comes back from a device that still
//! has it (PROTOCOL.md §10.2, R-10.8 … ). A file removed by hand
//! from `AllClients/<ID>/` while the server was stopped, and another
//! damaged in place at its size and mtime (bit rot, `touch -r`), are lost
//! a device synced at that version uploads it again by itself
//! and the server puts it back, byte for byte, as the same version: no
//! user action, no new version. A device whose copy is an edit of that
//! file is never taken for the lost copy: its edit is a new version by the
//! ordinary rules. Main's server kept both files lost for ever (refused
//! every fetch of them).

mod common;

use common::*;
use std::path::Path;
use std::time::Duration;

/// The server's bytes at `path` (`None`: no file there).
fn server_bytes(server: &Server, user: &str, path: &str) -> Option<Vec<u8>> {
    std::fs::read(server.user_dir(user).join(path)).ok()
}

/// A user whose folder `a` holds `gone.txt`, `rot.bin` (1 MiB) and
/// `keep.txt`, synced to the server; the server then stopped, `gone.txt`
/// removed from its folder and one byte of `rot.bin` changed at the same
/// size and mtime, and started again. Returns the user and the two files'
/// original bytes.
fn lose_two_files(server: &mut Server, a: &Path) -> (String, Vec<u8>, Vec<u8>) {
    let gone = b"the server loses this file\n".to_vec();
    let rot = Rng::new(41).bytes(1 << 20);
    write(a, "gone.txt", &gone);
    write(a, "d/rot.bin", &rot);
    write(a, "keep.txt", "kept\n");
    settle();
    let user = new_user(server.port, a);
    server.stop();
    let s = server.user_dir(&user);
    std::fs::remove_file(s.join("gone.txt")).expect("remove by hand");
    let mut damaged = rot.clone();
    damaged[300_000] ^= 0x5a;
    damage_in_place(&s.join("d/rot.bin"), &damaged);
    server.start_again();
    (user, gone, rot)
}

/// The restore is in both logs, as the same version (`Unchanged`: no new
/// version for the devices to fetch). The file is in place before the
/// server writes its log lines: they are waited for (up to 10 s), not
/// read at once (a read right after the file arrived missed them in about
/// half the runs).
fn assert_logged_restored(server: &Server, path: &str) {
    let logged = |l: &str, what: &str| l.contains(what) && l.contains(path);
    eventually(Duration::from_secs(10), || {
        server
            .log_tail(64 << 10)
            .lines()
            .any(|l| logged(l, "restored from device"))
            && server
                .conn_log()
                .lines()
                .any(|l| logged(l, "request=restore-lost"))
            && server.conn_log().lines().any(|l| {
                l.contains("request=push-file")
                    && l.contains(&format!("{path} ("))
                    && l.contains("Unchanged")
            })
    });
    let log = server.log_tail(64 << 10);
    assert!(
        log.lines()
            .any(|l| l.contains(path) && l.contains("restored from device")),
        "no restore of {path} in the server's log:\n{log}"
    );
    let conn = server.conn_log();
    assert!(
        conn.lines()
            .any(|l| l.contains("request=restore-lost") && l.contains(path)),
        "no restore-lost line for {path} in connectionLog.txt:\n{conn}"
    );
    assert!(
        conn.lines().any(|l| l.contains("request=push-file")
            && l.contains(&format!("{path} ("))
            && l.contains("Unchanged")),
        "the re-upload of {path} was not answered Unchanged:\n{conn}"
    );
}

#[test]
fn a_running_device_puts_the_lost_and_the_damaged_copy_back() {
    let logs = tempfile::tempdir().expect("temp dir");
    let mut server = Server::options()
        .log(&logs.path().join("server.err"))
        .start();
    let a = tempfile::tempdir().expect("temp dir");
    let c = tempfile::tempdir().expect("temp dir");
    let (a, c) = (a.path(), c.path());
    let (user, gone, rot) = lose_two_files(&mut server, a);

    let ca = Client::options(server.port, a)
        .user(Some(&user))
        .log(&logs.path().join("a.err"))
        .start();
    let back = eventually(Duration::from_secs(30), || {
        server_bytes(&server, &user, "gone.txt").as_deref() == Some(&gone[..])
            && server_bytes(&server, &user, "d/rot.bin").as_deref() == Some(&rot[..])
    });
    assert!(
        back,
        "the server's copies are not back:\n{}\n{}",
        ca.log_tail(4000),
        server.log_tail(4000)
    );
    assert_logged_restored(&server, "gone.txt");
    assert_logged_restored(&server, "d/rot.bin");
    // A new device gets both, byte-equal, and ends in sync.
    let _cc = Client::options(server.port, c)
        .user(Some(&user))
        .log(&logs.path().join("c.err"))
        .start();
    converge("C joined", &[a, c]);
    assert_eq!(std::fs::read(c.join("gone.txt")).expect("gone.txt"), gone);
    assert_eq!(std::fs::read(c.join("d/rot.bin")).expect("rot.bin"), rot);
    let in_sync = eventually(Duration::from_secs(10), || status_json(c).0 == 0);
    assert!(in_sync, "{}", status_json(c).1);
    // The restore made no change: a restart of the server finds the folder
    // as journaled (nothing changed outside it, nothing lost, no damage).
    drop(_cc);
    drop(ca);
    server.stop();
    server.start_again();
    let cd = tempfile::tempdir().expect("temp dir");
    let out = Client::options(server.port, cd.path())
        .user(Some(&user))
        .run_once();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(tree(cd.path()), tree(a));
    let log = server.log_tail(16 << 10);
    let after = log.rsplit("accepting up to").next().unwrap_or_default();
    for needle in ["is missing", "is damaged", "changed outside the server"] {
        assert!(
            !after.contains(needle),
            "{needle:?} after the restart:\n{after}"
        );
    }
}

#[test]
fn a_once_run_puts_the_lost_copies_back() {
    let logs = tempfile::tempdir().expect("temp dir");
    let mut server = Server::options()
        .log(&logs.path().join("server.err"))
        .start();
    let a = tempfile::tempdir().expect("temp dir");
    let a = a.path();
    let (user, gone, rot) = lose_two_files(&mut server, a);

    let out = Client::options(server.port, a).user(Some(&user)).run_once();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        server_bytes(&server, &user, "gone.txt").as_deref(),
        Some(&gone[..]),
        "gone.txt is not back after one --once run:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        server_bytes(&server, &user, "d/rot.bin").as_deref(),
        Some(&rot[..]),
        "rot.bin is not back after one --once run"
    );
    assert_logged_restored(&server, "gone.txt");
    assert_logged_restored(&server, "d/rot.bin");
}

#[test]
fn a_device_with_an_edit_of_the_lost_file_is_not_taken_for_the_lost_copy() {
    let logs = tempfile::tempdir().expect("temp dir");
    let mut server = Server::options()
        .log(&logs.path().join("server.err"))
        .start();
    let a = tempfile::tempdir().expect("temp dir");
    let b = tempfile::tempdir().expect("temp dir");
    let (a, b) = (a.path(), b.path());
    let gone = b"the server loses this file, B edits it\n".to_vec();
    let other = b"lost too, unchanged on B\n".to_vec();
    write(a, "gone.txt", &gone);
    write(a, "other.txt", &other);
    write(a, "keep.txt", "kept\n");
    settle();
    let user = new_user(server.port, a);
    let out = Client::options(server.port, b).user(Some(&user)).run_once();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(b.join("gone.txt")).expect("B synced"), gone);
    server.stop();
    // While everything is stopped: B edits gone.txt at the same size and
    // mtime (as `touch -r` leaves it), and the server loses its copy.
    let mut edit = gone.clone();
    edit[4..10].copy_from_slice(b"DEVICE");
    damage_in_place(&b.join("gone.txt"), &edit);
    std::fs::remove_file(server.user_dir(&user).join("gone.txt")).expect("remove by hand");
    std::fs::remove_file(server.user_dir(&user).join("other.txt")).expect("remove by hand");
    server.start_again();

    // B first: its edit is not the lost copy, it is a new version;
    // the other file, which B holds as synced, is the lost copy.
    let out = Client::options(server.port, b).user(Some(&user)).run_once();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        server_bytes(&server, &user, "gone.txt").as_deref(),
        Some(&edit[..]),
        "B's edit is not the server's copy:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        server_bytes(&server, &user, "other.txt").as_deref(),
        Some(&other[..]),
        "other.txt is not back"
    );
    assert_logged_restored(&server, "other.txt");
    let conn = server.conn_log();
    assert!(
        !conn
            .lines()
            .any(|l| l.contains("request=restore-lost") && l.contains("gone.txt")),
        "an edit was taken for the lost copy:\n{conn}"
    );
    assert!(
        conn.lines().any(|l| l.contains("request=push-file")
            && l.contains("gone.txt (")
            && l.contains("Applied")),
        "B's edit was not applied as a new version:\n{conn}"
    );
    // A, synced at the lost version, gets B's edit and uploads nothing.
    let out = Client::options(server.port, a).user(Some(&user)).run_once();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(a.join("gone.txt")).expect("A's copy"), edit);
    assert_eq!(
        server_bytes(&server, &user, "gone.txt").as_deref(),
        Some(&edit[..])
    );
    let restores = server
        .conn_log()
        .lines()
        .filter(|l| l.contains("request=restore-lost"))
        .count();
    assert_eq!(restores, 1, "{}", server.conn_log());
}
