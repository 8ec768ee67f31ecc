//! End-to-end: a file system mounted inside the synced folder that goes
//! away (PROTOCOL.md R-5.6.9, README "Safety", outside tester breaker10's
//! finding 10) with the real binaries. The client runs in a private mount
//! namespace (`unshare -m --propagation private`) where a tmpfs (the disk,
//! the same one at every run) is bound on `Photos/` inside its folder; the test unmounts it there (`nsenter`)
//! or starts the client without it (boot order). The photos must stay on
//! the server and the other device; a deletion made while it is mounted
//! still goes, and an edit made on it is synced when it is back.
//!
//! Needs root (mount namespaces, tmpfs); elsewhere each test prints
//! `SKIPPED: why` and passes. `CLOUD_TEST_CLIENT_BIN=/path/to/older/cloud-client`
//! runs them against another build (both fail with the client before
//! R-5.6.9: the 22 photos are deleted everywhere).

mod common;

use common::{new_user, run_once, tree, write, Client, Server, Tmpfs, Tree, Verbosity};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The warning the client logs for a mount point whose file system is gone.
const GONE_LINE: &str = "the file system mounted here is gone";

/// Binds the disk `$2` (a tmpfs of the test's) on `$1`, then runs the rest
/// of the arguments (exec: the client keeps the shell's PID). The same
/// file system at every run, as a disk plugged in again is: a new tmpfs
/// with a copy of the files each time would be another disk, whose missing
/// files are not removals and whose different files are not edits
/// (breaker18 F6, F10; R-5.6.9).
const MOUNT_THEN_RUN: &str = r#"mount --bind "$2" "$1" && shift 2 && exec "$@""#;

/// Whether this machine lets us make a private mount namespace with a
/// tmpfs in it; prints why not.
fn namespaces_work() -> bool {
    let dir = tempfile::tempdir().expect("temp dir");
    let ok = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c"])
        .arg(r#"mount -t tmpfs -o size=1m tmpfs "$1" && umount "$1""#)
        .arg("sh")
        .arg(dir.path())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!(
            "SKIPPED: cannot mount a tmpfs in a private mount namespace here (needs root and unshare)"
        );
    }
    ok
}

/// `client`'s command run in a private mount namespace where the disk
/// `content` (a tmpfs) is bound on `mount_at`.
fn in_namespace(client: Command, mount_at: &Path, content: &Path) -> Command {
    let mut cmd = Command::new("unshare");
    cmd.args([
        "-m",
        "--propagation",
        "private",
        "sh",
        "-c",
        MOUNT_THEN_RUN,
        "sh",
    ])
    .arg(mount_at)
    .arg(content)
    .arg(client.get_program())
    .args(client.get_args())
    .stdin(Stdio::null());
    cmd
}

/// Runs `cmd` to completion (at most 90 s), stdout and stderr captured.
fn output(mut cmd: Command) -> Output {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(90)) {
        Ok(out) => out.expect("wait"),
        Err(_) => {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            panic!("the client did not finish in 90 s");
        }
    }
}

/// The photos: 20 files and a subdirectory of 2 (a `RemoveDir` when gone).
fn stage_photos(stage: &Path) {
    for i in 1..=20 {
        write(stage, &format!("p{i}.jpg"), format!("photo {i}\n"));
    }
    write(stage, "trip/t1.jpg", "trip 1\n");
    write(stage, "trip/t2.jpg", "trip 2\n");
}

/// What a fresh device sees of the user's folder (a `--once` run).
fn server_view(port: u16, user: &str, b: &Path) -> Tree {
    let out = run_once(port, b, Some(user));
    assert!(
        out.status.success(),
        "b's --once: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    tree(b)
}

fn photos_in(view: &Tree) -> usize {
    view.keys()
        .filter(|k| k.starts_with("Photos/") && k.ends_with(".jpg"))
        .count()
}

/// `cloud-client status FOLDER`.
fn status_command(folder: &Path) -> Command {
    let bin = std::env::var_os("CLOUD_TEST_CLIENT_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_cloud-client")),
        PathBuf::from,
    );
    let mut cmd = Command::new(bin);
    cmd.arg("status").arg(folder);
    cmd
}

/// `cloud-client status FOLDER`: exit code and stdout.
fn status(folder: &Path) -> (i32, String) {
    let out = output(status_command(folder));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// The disk not mounted at start (boot order), the mount point missing,
/// the disk back with an edit, then a deletion made while it is mounted.
#[test]
fn a_disk_not_mounted_at_start_deletes_nothing() {
    if !namespaces_work() {
        return;
    }
    let server = Server::start();
    let a = tempfile::tempdir().expect("temp dir");
    let b = tempfile::tempdir().expect("temp dir");
    let Some(stage) = Tmpfs::mount("8m") else {
        return;
    };
    write(a.path(), "notes.txt", "notes\n");
    fs::create_dir(a.path().join("Photos")).expect("mkdir");
    stage_photos(stage.path());
    let user = new_user(server.port, a.path());
    let once = || {
        let mut cmd = Client::options(server.port, a.path())
            .rate("0.2")
            .user(Some(&user))
            .verbosity(Verbosity::Normal)
            .command();
        cmd.arg("--once");
        cmd
    };
    let photos = a.path().join("Photos");

    // Mounted: the 22 photos are uploaded.
    let out = output(in_namespace(once(), &photos, stage.path()));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(photos_in(&server_view(server.port, &user, b.path())), 22);

    // Not mounted (Photos/ is an empty directory here): nothing deleted.
    // The deletions held back are listed (status: not in sync), so the
    // run exits 3, not 0 (README; breaker15 F10).
    let out = output(once());
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{log}");
    assert_eq!(
        photos_in(&server_view(server.port, &user, b.path())),
        22,
        "the photos were deleted: {log}"
    );
    assert!(
        log.contains(&format!("Photos: {GONE_LINE}")),
        "no warning: {log}"
    );
    let (code, text) = status(a.path());
    assert!(text.contains(GONE_LINE), "status: {text}");
    assert_eq!(code, 1, "not in sync: {text}");

    // The mount point itself missing: still nothing deleted (and listed:
    // exit 3).
    fs::remove_dir(&photos).expect("rmdir");
    let out = output(once());
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{log}");
    assert_eq!(
        photos_in(&server_view(server.port, &user, b.path())),
        22,
        "{log}"
    );
    fs::create_dir(&photos).expect("mkdir");

    // Back, with one photo edited: the edit is synced, nothing else.
    write(stage.path(), "p1.jpg", "photo 1, retouched\n");
    let out = output(in_namespace(once(), &photos, stage.path()));
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    let view = server_view(server.port, &user, b.path());
    assert_eq!(photos_in(&view), 22, "{log}");
    assert_eq!(
        view.get("Photos/p1.jpg").cloned().flatten().as_deref(),
        Some(&b"photo 1, retouched\n"[..])
    );
    // Where the disk is mounted, status no longer lists it.
    let out = output(in_namespace(
        status_command(a.path()),
        &photos,
        stage.path(),
    ));
    assert!(!String::from_utf8_lossy(&out.stdout).contains(GONE_LINE));

    // Removed on purpose while mounted: the deletions go.
    fs::remove_file(stage.path().join("p20.jpg")).expect("rm");
    fs::remove_dir_all(stage.path().join("trip")).expect("rm");
    let out = output(in_namespace(once(), &photos, stage.path()));
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    let view = server_view(server.port, &user, b.path());
    assert_eq!(photos_in(&view), 19, "{log}");
    assert!(!view.contains_key("Photos/p20.jpg"));
    assert!(!view.contains_key("Photos/trip"));
}

/// Kills the namespace's client when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The outside tester's steps: a watching client, the disk unmounted
/// under it. The safety-net rescan (60 s) finds the photos missing; they
/// must stay on the server, with one warning.
#[test]
fn a_disk_unmounted_while_the_client_runs_deletes_nothing() {
    if !namespaces_work() {
        return;
    }
    let server = Server::start();
    let a = tempfile::tempdir().expect("temp dir");
    let b = tempfile::tempdir().expect("temp dir");
    let Some(stage) = Tmpfs::mount("8m") else {
        return;
    };
    let logs = tempfile::tempdir().expect("temp dir");
    let log = logs.path().join("a.log");
    write(a.path(), "notes.txt", "notes\n");
    fs::create_dir(a.path().join("Photos")).expect("mkdir");
    stage_photos(stage.path());
    let user = new_user(server.port, a.path());
    let client = Client::options(server.port, a.path())
        .user(Some(&user))
        .verbosity(Verbosity::Normal)
        .command();
    let photos = a.path().join("Photos");
    let mut cmd = in_namespace(client, &photos, stage.path());
    cmd.stderr(fs::File::create(&log).expect("log"));
    let running = Running(cmd.spawn().expect("spawn"));
    let pid = running.0.id().to_string();
    let read_log = || fs::read_to_string(&log).unwrap_or_default();
    let t0 = Instant::now();
    while photos_in(&server_view(server.port, &user, b.path())) < 22 {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "not uploaded: {}",
            read_log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    let unmounted = Command::new("nsenter")
        .args(["-t", &pid, "-m", "umount"])
        .arg(&photos)
        .status()
        .is_ok_and(|s| s.success());
    assert!(unmounted, "umount in the client's namespace");
    // The safety-net rescan is due within 60 s; the removal hold ends 3 s
    // after it.
    let t1 = Instant::now();
    while !read_log().contains(GONE_LINE) {
        assert!(
            photos_in(&server_view(server.port, &user, b.path())) == 22,
            "photos deleted after the unmount: {}",
            read_log()
        );
        assert!(
            t1.elapsed() < Duration::from_secs(90),
            "no warning: {}",
            read_log()
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(
        photos_in(&server_view(server.port, &user, b.path())),
        22,
        "{}",
        read_log()
    );
    assert_eq!(read_log().matches(GONE_LINE).count(), 1, "{}", read_log());
}
