//! End-to-end (root: tmpfs and bind mounts): a drive mounted inside a
//! device's folder receives every server change like the rest of the
//! folder (outside tester breaker16, F2; PROTOCOL.md ).
//!
//! Before, the client staged downloads in `FOLDER/.cloudservice/tmp` and
//! renamed them into place, and moved removed files into that area: across
//! mounts both are `EXDEV`, so nothing from the server ever reached the
//! drive (each pull fetched it again), removals and renames there were not
//! applied, a conflict left only the conflict copy, and a file moved into
//! the drive vanished from the device. The drive is both a tmpfs (its own
//! device) and a bind mount of a directory of the same disk (same `st_dev`,
//! another mount: the same `EXDEV`). Trees are compared by content on A, B
//! and the server, and the drive itself is read (the files are on it, and
//! its staging directory is gone: the trees would show it).
//!
//! `CLOUD_TEST_CLIENT_BIN=/path/to/older/cloud-client` runs it against
//! another build (aeaefc9's client fails all three: B's drive stays empty
//! at the first convergence, and the read-only drive's file is fetched 6
//! times in 12 s).

mod common;

use common::tmpfs::{bind, Bound};
use common::{
    chmod, converge, eventually, exec_bits, new_user, status_text, write, Client, Server, Tmpfs,
};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Pseudo-random bytes (a photo's worth of incompressible content).
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Waits until A, B and the server hold the same tree; returns it.
fn all_agree(what: &str, a: &Path, b: &Path, server: &Path) -> common::Tree {
    converge(what, &[a, b, server]);
    // A chmod right after a write may follow its content as a SetMode.
    let bits = eventually(Duration::from_secs(20), || exec_bits(a) == exec_bits(b));
    assert_eq!(
        exec_bits(a),
        exec_bits(b),
        "{what}: executable bits ({bits})"
    );
    converge(what, &[a, b, server])
}

/// The drive's staging directory at its top.
fn staging_of(drive: &Path) -> PathBuf {
    drive.join(".cloudservice").join("staging")
}

/// The whole family of server changes onto a drive mounted at B/Photos
/// (`drive` is what is mounted there), then a kill -9 while a download
/// waits in the drive's staging directory.
fn every_change_reaches_the_drive(drive: &Path) {
    let server = Server::start();
    let a = tempfile::tempdir().expect("temp dir");
    let b = tempfile::tempdir().expect("temp dir");
    let big = noise(2 << 20, 7);
    write(a.path(), "top.txt", "top\n");
    for i in 1..=4 {
        write(a.path(), &format!("Photos/p{i}.jpg"), noise(50_000, i));
    }
    write(
        a.path(),
        "Photos/sub/s.txt",
        "in a directory on the drive\n",
    );
    write(a.path(), "Photos/big.raw", &big);
    let user = new_user(server.port, a.path());
    let _ca = Client::start(server.port, a.path(), None);
    let on_server = server.user_dir(&user);
    converge("A uploads", &[a.path(), &on_server]);

    let photos = b.path().join("Photos");
    std::fs::create_dir(&photos).expect("mkdir");
    assert!(bind(drive, &photos), "mount the drive at B/Photos");
    let _mounted = Bound(photos.clone());
    let mut cb = Client::start(server.port, b.path(), Some(&user));
    all_agree(
        "B joins: the drive gets its files",
        a.path(),
        b.path(),
        &on_server,
    );
    assert_eq!(
        std::fs::read(drive.join("big.raw")).expect("on the drive"),
        big,
        "the file is on the drive itself"
    );

    // Every kind of change, on A.
    let pa = a.path().join("Photos");
    write(&pa, "p1.jpg", noise(50_000, 11)); // edit
    std::fs::remove_file(pa.join("p2.jpg")).expect("rm"); // delete
    std::fs::rename(pa.join("p3.jpg"), pa.join("p3-renamed.jpg")).expect("mv"); // rename within
    std::fs::rename(pa.join("p4.jpg"), a.path().join("p4-out.jpg")).expect("mv"); // move out
    std::fs::rename(a.path().join("top.txt"), pa.join("top.txt")).expect("mv"); // move in
    std::fs::rename(pa.join("sub"), pa.join("sub2")).expect("mv"); // directory rename
    write(&pa, "run.sh", "#!/bin/sh\necho hi\n"); // new file, executable
    chmod(&pa.join("run.sh"), 0o755);
    let mut edited = big.clone();
    edited[1 << 20..(1 << 20) + 100].copy_from_slice(&[b'x'; 100]); // delta path
    write(&pa, "big.raw", &edited);
    let after = all_agree(
        "A's changes reach the drive",
        a.path(),
        b.path(),
        &on_server,
    );
    for gone in [
        "Photos/p2.jpg",
        "Photos/p3.jpg",
        "Photos/p4.jpg",
        "top.txt",
        "Photos/sub",
    ] {
        assert!(!after.contains_key(gone), "{gone} is gone everywhere");
    }
    assert!(
        drive.join("sub2/s.txt").is_file(),
        "renamed directory on the drive"
    );
    assert_eq!(std::fs::read(drive.join("big.raw")).expect("big"), edited);
    assert!(
        !staging_of(drive).exists(),
        "nothing left in the staging area"
    );

    // A conflict on the drive: both edit Photos/p1.jpg; B is stopped while
    // A's edit reaches the server.
    cb.stop();
    write(&photos, "p1.jpg", "B's edit\n");
    write(&pa, "p1.jpg", "A's edit\n");
    assert!(
        eventually(Duration::from_secs(20), || {
            std::fs::read(on_server.join("Photos/p1.jpg")).is_ok_and(|b| b == b"A's edit\n")
        }),
        "A's edit on the server"
    );
    cb.spawn();
    let after = all_agree("the conflict is settled", a.path(), b.path(), &on_server);
    assert_eq!(
        after.get("Photos/p1.jpg"),
        Some(&Some(b"A's edit\n".to_vec())),
        "the server's version at its name, on the drive too"
    );
    assert!(
        after
            .iter()
            .any(|(k, v)| k.starts_with("Photos/p1 (conflict")
                && v.as_deref() == Some(&b"B's edit\n"[..])),
        "B's edit kept as a conflict copy: {:?}",
        after.keys().collect::<Vec<_>>()
    );

    // kill -9 while a download waits in the drive's staging directory
    // (CLOUD_TEST_PLACE_DELAY_MS holds it right before the exchange).
    cb.stop();
    let mut slow = Client::options(server.port, b.path())
        .user(Some(&user))
        .env("CLOUD_TEST_PLACE_DELAY_MS", "5000")
        .start();
    write(&pa, "p1.jpg", noise(300_000, 12));
    let staged = |d: &Path| {
        std::fs::read_dir(staging_of(d))
            .is_ok_and(|mut entries| entries.any(|e| e.is_ok_and(|e| !is_note(&e.path()))))
    };
    assert!(
        eventually(Duration::from_secs(30), || staged(drive)),
        "the download is staged on the drive"
    );
    slow.kill9();
    assert_eq!(
        std::fs::read(photos.join("p1.jpg")).expect("p1"),
        b"A's edit\n",
        "the old file stays whole at its name; nothing partial is visible"
    );
    let mut cb = Client::start(server.port, b.path(), Some(&user));
    let last = all_agree("after the crash", a.path(), b.path(), &on_server);
    assert_eq!(
        last.get("Photos/p1.jpg"),
        Some(&Some(noise(300_000, 12))),
        "the new version placed after the restart"
    );
    assert!(
        !drive.join(".cloudservice").exists(),
        "the staging area was cleaned at the start"
    );
    assert!(
        eventually(Duration::from_secs(20), || in_sync(b.path())),
        "B's status: {}",
        status_text(b.path(), false).1
    );
    cb.stop();
}

/// A drive that cannot take the server's files (mounted read-only): the
/// download is held back with a growing wait and said as what it is, not
/// fetched again at every pull (before: 18 fetches of a 2 MB file in
/// 25 s), and `--once` does not say "in sync" (exit 3).
#[test]
fn a_read_only_drive_is_not_fetched_for_at_every_pull_and_once_exits_3() {
    let Some(drive) = Tmpfs::mount("16m") else {
        return;
    };
    let server = Server::start();
    let a = tempfile::tempdir().expect("temp dir");
    let b = tempfile::tempdir().expect("temp dir");
    write(a.path(), "Photos/big.raw", noise(2 << 20, 3));
    write(a.path(), "top.txt", "top\n");
    let user = new_user(server.port, a.path());
    let _ca = Client::start(server.port, a.path(), None);
    let on_server = server.user_dir(&user);
    converge("A uploads", &[a.path(), &on_server]);
    let photos = b.path().join("Photos");
    std::fs::create_dir(&photos).expect("mkdir");
    assert!(bind(drive.path(), &photos), "mount the drive");
    let _mounted = Bound(photos.clone());
    let ro = Command::new("mount")
        .args(["-o", "remount,bind,ro"])
        .arg(&photos)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ro, "remount the drive read-only");

    let once = common::run_once(server.port, b.path(), Some(&user));
    assert_eq!(
        once.status.code(),
        Some(3),
        "--once: not in sync: {}",
        String::from_utf8_lossy(&once.stderr)
    );
    assert_eq!(
        std::fs::read(b.path().join("top.txt")).expect("top.txt placed"),
        b"top\n"
    );
    let fetches = |log: &str| {
        log.lines()
            .filter(|l| l.contains("client=2") && l.contains("request=fetch"))
            .filter(|l| l.contains("Photos/big.raw"))
            .count()
    };
    let before = fetches(&server.conn_log());
    let mut cb = Client::options(server.port, b.path())
        .rate("0.2")
        .user(Some(&user))
        .start();
    std::thread::sleep(Duration::from_secs(12));
    let during = fetches(&server.conn_log()) - before;
    println!("Photos/big.raw fetched {during} time(s) in 12 s while it cannot be placed");
    // Before (aeaefc9): the failed pull was repeated every 2 s, a fetch
    // each time (6 in 12 s). Held back 5 s, then 10 s: at most 3.
    assert!(
        during <= 3,
        "{during} fetches of Photos/big.raw in 12 s while it cannot be placed"
    );
    let (_, said) = status_text(b.path(), false);
    assert!(
        said.contains("Photos/big.raw (download held back:") && said.contains("Read-only"),
        "status says why: {said}"
    );
    cb.stop();
}

fn is_note(path: &Path) -> bool {
    path.to_string_lossy().ends_with(".origin")
}

#[test]
fn every_server_change_reaches_a_tmpfs_mounted_inside_the_folder() {
    let Some(drive) = Tmpfs::mount("64m") else {
        return;
    };
    every_change_reaches_the_drive(drive.path());
}

#[test]
fn every_server_change_reaches_a_bind_mount_of_the_same_disk() {
    // Same device number as the folder, another mount: rename(2) between
    // them is EXDEV all the same.
    let dir = tempfile::tempdir().expect("temp dir");
    let probe = tempfile::tempdir().expect("temp dir");
    let target = probe.path().join("t");
    std::fs::create_dir(&target).expect("mkdir");
    if !bind(dir.path(), &target) {
        eprintln!("SKIPPED: cannot bind-mount here (needs root)");
        return;
    }
    drop(Bound(target));
    every_change_reaches_the_drive(dir.path());
}

/// `status` says "state: in sync" for `folder`.
fn in_sync(folder: &Path) -> bool {
    status_text(folder, false).1.lines().any(|l| {
        l.split_once(':')
            .is_some_and(|(k, v)| k.trim() == "state" && v.trim() == "in sync")
    })
}

/// breaker20 F3: "last sync" is when the folder last agreed with the
/// server (README). A drive inside the folder unmounted while A runs keeps
/// A "not in sync" (its files' deletions are held back, R-5.6.9): every
/// reading from then on shows the time from before the unmount. Before,
/// the client moved it at every status write while `status` said "not in
/// sync" (the session's agreement did not count the gone mount); with the
/// older client this test fails (seen: a new time every few seconds).
#[test]
fn last_sync_stays_put_while_a_drive_inside_the_folder_is_gone() {
    let server = Server::start();
    let a = tempfile::tempdir().expect("temp dir");
    let photos = a.path().join("Photos");
    std::fs::create_dir_all(&photos).expect("mkdir");
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
        .arg(&photos)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("SKIPPED: cannot mount a tmpfs here (needs root)");
        return;
    }
    let drive = Bound(photos.clone());
    write(a.path(), "top.txt", "top\n");
    for i in 1..=3 {
        write(a.path(), &format!("Photos/p{i}.jpg"), noise(10_000, i));
    }
    let user = new_user(server.port, a.path());
    let _ca = Client::options(server.port, a.path())
        .user(Some(&user))
        .rate("0.5")
        .start();
    common::status_until("A in sync", a.path(), common::CONVERGE, |code, v| {
        code == 0 && v["in_sync"] == true
    });
    drive.unplug();
    // Unmounted: nothing left for its cleanup to do.
    std::mem::forget(drive);
    let unplugged = std::time::SystemTime::now();
    let gone = common::status_until(
        "A lists the gone drive",
        a.path(),
        Duration::from_secs(20),
        |code, v| {
            code == 1
                && v["not_synced"].as_array().is_some_and(|l| {
                    l.iter().any(|e| {
                        e.as_str()
                            .is_some_and(|e| e.contains("the file system mounted here is gone"))
                    })
                })
        },
    );
    let before = gone["last_sync"].as_str().expect("a last sync").to_owned();
    let at = chrono::DateTime::parse_from_rfc3339(&before)
        .expect("RFC 3339")
        .timestamp();
    let at = u64::try_from(at).expect("after 1970");
    let unplugged_secs = unplugged
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    assert!(
        at <= unplugged_secs,
        "last sync {before} is after the unmount ({unplugged_secs})"
    );
    let started = std::time::Instant::now();
    let mut readings = 0;
    while started.elapsed() < Duration::from_secs(10) {
        let (code, v) = common::status_json(a.path());
        readings += 1;
        assert_eq!(code, 1, "the drive is still gone: {v:#}");
        assert_eq!(
            v["last_sync"].as_str(),
            Some(before.as_str()),
            "last sync moved while not in sync ({:?} in): {v:#}",
            started.elapsed()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    eprintln!("{readings} readings over 10 s, last sync {before} throughout");
}
