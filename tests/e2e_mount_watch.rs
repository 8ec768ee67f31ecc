//! End-to-end (root: tmpfs and bind mounts): a drive mounted inside the
//! folder while the client runs is watched at once (outside tester
//! breaker15, F3; README "What the client detects").
//!
//! A mount makes no inotify event, and the watch the client had on the
//! mount point stays on the directory the drive now covers: before, what
//! was on a drive mounted while the client ran, and every edit made on it,
//! were noticed only by the periodic comparison of the whole folder (60 s).
//! Now the client watches the mount table: the drive's files and its edits
//! reach the other device within the normal watch latency. Each wait here
//! is 10 s (the safety net is 60 s); the times are printed.
//!
//! `CLOUD_TEST_CLIENT_BIN=/path/to/older/cloud-client` runs it against
//! another build (212d2a8's client fails both: `drive/new.txt` does not
//! reach B within 10 s).

mod common;

use common::tmpfs::{bind, Bound};
use common::{converge, converge_stable, seed, write, Rng, Tmpfs, TwoDevices};
use std::path::Path;

/// 1 to `max` random bytes.
fn noise(rng: &mut Rng, max: usize) -> Vec<u8> {
    let n = 1 + rng.index(max);
    rng.bytes(n)
}
use std::process::Command;
use std::time::{Duration, Instant};

/// Well under the 60 s safety net, well over the watch latency.
const NOTICED_WITHIN: Duration = Duration::from_secs(10);

/// Waits for A, B and the server to agree within [`NOTICED_WITHIN`] and
/// to hold `want` at `path` on B; prints how long it took.
fn reaches_b(what: &str, folders: &[&Path], b: &Path, path: &str, want: &[u8]) {
    let t0 = Instant::now();
    let agreed = converge_stable(folders, NOTICED_WITHIN, Duration::ZERO);
    let got = std::fs::read(b.join(path)).ok();
    assert!(
        agreed.is_ok() && got.as_deref() == Some(want),
        "{what}: not on B within {NOTICED_WITHIN:?} (B has {} bytes at {path}); {}",
        got.map_or(0, |g| g.len()),
        agreed.err().unwrap_or_default()
    );
    eprintln!("{what}: on B after {:?}", t0.elapsed());
}

/// `mount -t tmpfs` at `at`; false when it cannot (not root).
fn mount_tmpfs(at: &Path) -> bool {
    Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=8m", "tmpfs"])
        .arg(at)
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn a_drive_mounted_while_running_is_watched_at_once() {
    let mut rng = Rng::new(seed("MOUNT_WATCH_SEED"));
    let two = TwoDevices::start(|a| {
        write(a, "top.txt", "top\n");
        std::fs::create_dir(a.join("drive")).expect("mkdir");
    });
    let (a, b) = (two.a.path(), two.b.path());
    let server = two.server.user_dir(&two.user);
    converge("initial", &[a, b, &server]);
    let point = a.join("drive");
    if !mount_tmpfs(&point) {
        eprintln!("SKIPPED: cannot mount a tmpfs here (needs root)");
        return;
    }
    let _mounted = Bound(point.clone());
    // Let the client see the mount (it reports a mount point, not files).
    std::thread::sleep(Duration::from_secs(1));
    let first = noise(&mut rng, 100_000);
    write(&point, "new.txt", &first);
    reaches_b(
        "a file written on the new drive",
        &[a, b, &server],
        b,
        "drive/new.txt",
        &first,
    );
    let second = noise(&mut rng, 100_000);
    write(&point, "sub/deeper.txt", &second);
    reaches_b(
        "a file in a new directory on the drive",
        &[a, b, &server],
        b,
        "drive/sub/deeper.txt",
        &second,
    );
}

#[test]
fn a_drive_with_files_mounted_while_running_is_synced_and_watched() {
    let mut rng = Rng::new(seed("MOUNT_WATCH_SEED"));
    let Some(disk) = Tmpfs::mount("8m") else {
        return;
    };
    let photos: Vec<(String, Vec<u8>)> = (0..3)
        .map(|i| (format!("p{i}.jpg"), noise(&mut rng, 200_000)))
        .collect();
    for (name, bytes) in &photos {
        write(disk.path(), name, bytes);
    }
    let two = TwoDevices::start(|a| {
        write(a, "top.txt", "top\n");
        std::fs::create_dir(a.join("Photos")).expect("mkdir");
    });
    let (a, b) = (two.a.path(), two.b.path());
    let server = two.server.user_dir(&two.user);
    converge("initial", &[a, b, &server]);
    let point = a.join("Photos");
    assert!(bind(disk.path(), &point), "bind the drive at A/Photos");
    let _mounted = Bound(point.clone());
    let (name, bytes) = &photos[rng.index(photos.len())];
    reaches_b(
        "the files of a drive mounted while running",
        &[a, b, &server],
        b,
        &format!("Photos/{name}"),
        bytes,
    );
    let edited = noise(&mut rng, 200_000);
    write(&point, name, &edited);
    reaches_b(
        "an edit on the mounted drive",
        &[a, b, &server],
        b,
        &format!("Photos/{name}"),
        &edited,
    );
}
