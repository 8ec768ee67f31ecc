//! End-to-end (root: bind mounts of a tmpfs): a drive plugged back in over
//! the mount point into which this device downloaded other devices' new
//! files while it was away (outside tester breaker16, F1). The files are
//! hidden by the mount, not deleted: before, the next full comparison
//! pushed their deletion and they vanished from every device and the
//! server. Now their deletion is not pushed (PROTOCOL.md,
//! `src/client/mounts.rs` `hidden_by_mount`), and they are downloaded onto
//! the drive (R-5.6.12: before, B stayed without them).
//!
//! `CLOUD_TEST_CLIENT_BIN=/path/to/older/cloud-client` runs it against
//! another build (aaa0ecf's client deletes the new files everywhere;
//! aeaefc9's keeps them but never downloads them onto the drive).

mod common;

use common::tmpfs::{bind, Bound};
use common::{converge, eventually, new_user, status_text, write, Client, Server, Tmpfs};
use std::path::Path;
use std::time::Duration;

#[test]
fn files_hidden_by_a_drive_plugged_back_in_are_not_deleted_anywhere_and_land_on_it() {
    // The "drive": a tmpfs (its own device number), bound onto B/Photos.
    let Some(drive) = Tmpfs::mount("16m") else {
        return;
    };
    write(drive.path(), "old1.jpg", "old photo 1\n");
    write(drive.path(), "old2.jpg", "old photo 2\n");
    let server = Server::start();
    let a = tempfile::tempdir().expect("temp dir");
    let b = tempfile::tempdir().expect("temp dir");
    let photos = b.path().join("Photos");
    std::fs::create_dir(&photos).expect("mkdir");
    write(b.path(), "top.txt", "top\n");
    if !bind(drive.path(), &photos) {
        eprintln!("SKIPPED: cannot bind-mount here (needs root)");
        return;
    }
    let plugged = Bound(photos.clone());
    std::thread::sleep(Duration::from_millis(350));
    let user = new_user(server.port, b.path());
    let mut cb = Client::start(server.port, b.path(), None);
    let _ca = Client::start(server.port, a.path(), Some(&user));
    converge("initial", &[a.path(), b.path()]);

    // Unplugged: A adds photos, B downloads them into the empty mount point.
    plugged.unplug();
    for i in 1..=3 {
        write(
            a.path(),
            &format!("Photos/new{i}.jpg"),
            format!("new photo {i}\n"),
        );
    }
    assert!(
        eventually(Duration::from_secs(30), || photos
            .join("new3.jpg")
            .is_file()),
        "B downloaded the new photos onto its own disk"
    );
    // Plugged back in (the client restarted with it, so the folder is
    // compared at once rather than by the 60 s safety net).
    cb.stop();
    assert!(bind(drive.path(), &photos), "plug the drive back in");
    let _replugged = Bound(photos.clone());
    cb.spawn();
    std::thread::sleep(Duration::from_secs(8));
    let on_server = server.user_dir(&user).join("Photos");
    for i in 1..=3 {
        let name = format!("new{i}.jpg");
        assert!(
            on_server.join(&name).is_file(),
            "{name} stays on the server"
        );
        assert!(
            a.path().join("Photos").join(&name).is_file(),
            "{name} stays on A"
        );
    }
    // They are the server's: downloaded onto the drive (R-5.6.12; before,
    // B stayed without them, "not in sync" for ever).
    for i in 1..=3 {
        let name = format!("new{i}.jpg");
        assert!(
            eventually(Duration::from_secs(30), || std::fs::read(
                drive.path().join(&name)
            )
            .is_ok_and(|b| b == format!("new photo {i}\n").as_bytes())),
            "{name} downloaded onto the drive"
        );
    }
    converge("the drive holds the server's files", &[a.path(), b.path()]);
    assert!(
        eventually(Duration::from_secs(20), || in_sync(b.path())),
        "B's status: {}",
        status_text(b.path(), false).1
    );
}

/// `status` says "state: in sync" for `folder`.
fn in_sync(folder: &Path) -> bool {
    status_text(folder, false).1.lines().any(|l| {
        l.split_once(':')
            .is_some_and(|(k, v)| k.trim() == "state" && v.trim() == "in sync")
    })
}
