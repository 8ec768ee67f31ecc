//! End-to-end: a synced file or directory that this device replaces by
//! something the client does not sync (a symlink, a FIFO, a Unix socket)
//! is gone from this device, and its deletion reaches the server and the
//! other devices, whatever took its place (outside tester breaker13, L3 and
//! "a directory replaced by a symlink"; README "Symlinks are not synced").
//!
//! Before, a file replaced by a FIFO stayed everywhere while one replaced
//! by a socket could be deleted everywhere (whether the scan ran between
//! the `rm` and the new thing decided it), and a directory replaced by a
//! symlink kept its files on every other device. Now every kind is a
//! deletion, both while the client watches and when it was not running.
//! The new thing stays untouched here, and nothing is written through a
//! symlink (the directory it points to keeps its files).

mod common;

use common::{eventually, new_user, run_once, write, Client, Server, CONVERGE};
use std::fs;
use std::os::unix::fs::{symlink, FileTypeExt};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// What replaces a synced file or directory.
#[derive(Clone, Copy, Debug)]
enum Odd {
    /// A symlink to a directory outside the folder.
    Link,
    Fifo,
    Socket,
}

const ODDS: [Odd; 3] = [Odd::Link, Odd::Fifo, Odd::Socket];

/// Replaces `path` (a file or a directory tree) under `root` by `odd`.
fn replace(root: &Path, path: &str, odd: Odd, outside: &Path) {
    let at = root.join(path);
    if at.is_dir() {
        fs::remove_dir_all(&at).expect("remove dir");
    } else {
        fs::remove_file(&at).expect("remove file");
    }
    match odd {
        Odd::Link => symlink(outside, &at).expect("symlink"),
        Odd::Fifo => {
            let made = Command::new("mkfifo").arg(&at).status().expect("mkfifo");
            assert!(made.success());
        }
        Odd::Socket => drop(UnixListener::bind(&at).expect("socket")),
    }
}

/// Whether `path` under `root` is (still) the `odd` the test made.
fn is_odd(root: &Path, path: &str, odd: Odd) -> bool {
    let Ok(meta) = fs::symlink_metadata(root.join(path)) else {
        return false;
    };
    let ft = meta.file_type();
    match odd {
        Odd::Link => ft.is_symlink(),
        Odd::Fifo => ft.is_fifo(),
        Odd::Socket => ft.is_socket(),
    }
}

/// The synced paths of one phase: for each kind, a file and a directory
/// with two files below it.
fn paths(phase: &str, odd: Odd) -> (String, String) {
    (
        format!("{phase}/{odd:?}.txt"),
        format!("{phase}/{odd:?}-dir"),
    )
}

fn seed(root: &Path, phase: &str) {
    for odd in ODDS {
        let (file, dir) = paths(phase, odd);
        write(root, &file, format!("{file} content"));
        write(root, &format!("{dir}/a.txt"), "a");
        write(root, &format!("{dir}/sub/b.txt"), "b");
    }
    write(root, &format!("{phase}/keep.txt"), "kept");
}

/// True once nothing of `phase`'s replaced paths is left in `root` as a
/// regular file or a directory, and `keep.txt` is still there.
fn gone_from(root: &Path, phase: &str) -> bool {
    ODDS.iter().all(|&odd| {
        let (file, dir) = paths(phase, odd);
        let real = |p: &str| {
            fs::symlink_metadata(root.join(p))
                .is_ok_and(|m| m.file_type().is_file() || m.file_type().is_dir())
        };
        !real(&file) && !real(&dir)
    }) && root.join(phase).join("keep.txt").is_file()
}

fn check_a_untouched(a: &Path, phase: &str, outside: &Path) {
    for odd in ODDS {
        let (file, dir) = paths(phase, odd);
        assert!(is_odd(a, &file, odd), "{file} is still the {odd:?}");
        assert!(is_odd(a, &dir, odd), "{dir} is still the {odd:?}");
    }
    assert_eq!(
        fs::read_to_string(outside.join("secret.txt"))
            .ok()
            .as_deref(),
        Some("outside"),
        "nothing written through a symlink"
    );
    assert_eq!(fs::read_dir(outside).expect("outside").count(), 1);
}

#[test]
fn a_file_or_directory_replaced_by_a_symlink_fifo_or_socket_is_deleted_everywhere() {
    let server = Server::start();
    let a = tempfile::tempdir().expect("a");
    let b = tempfile::tempdir().expect("b");
    let outside = tempfile::tempdir().expect("outside");
    write(outside.path(), "secret.txt", "outside");
    seed(a.path(), "live");
    seed(a.path(), "offline");
    std::thread::sleep(Duration::from_millis(350));
    let user = new_user(server.port, a.path());
    let joined = run_once(server.port, b.path(), Some(&user));
    assert!(joined.status.success());
    assert!(b.path().join("live/Fifo-dir/sub/b.txt").is_file());
    let srv = server.user_dir(&user);

    // While the client watches.
    let mut client = Client::start(server.port, a.path(), None);
    for odd in ODDS {
        let (file, dir) = paths("live", odd);
        replace(a.path(), &file, odd, outside.path());
        replace(a.path(), &dir, odd, outside.path());
    }
    assert!(
        eventually(CONVERGE, || gone_from(&srv, "live")),
        "the server still holds what A replaced: {:?}",
        common::tree(&srv.join("live")).keys().collect::<Vec<_>>()
    );
    client.stop();
    check_a_untouched(a.path(), "live", outside.path());

    // While no client ran.
    for odd in ODDS {
        let (file, dir) = paths("offline", odd);
        replace(a.path(), &file, odd, outside.path());
        replace(a.path(), &dir, odd, outside.path());
    }
    // The run reconciles everything it can; the symlinks, fifos and
    // sockets themselves are listed as not synced, so it exits 3 (README:
    // the folder does not agree with the server; breaker15 F10), not 1.
    let out = run_once(server.port, a.path(), None);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        gone_from(&srv, "offline"),
        "the server still holds what A replaced offline: {:?}",
        common::tree(&srv.join("offline"))
            .keys()
            .collect::<Vec<_>>()
    );
    check_a_untouched(a.path(), "offline", outside.path());

    // The other device sees them gone, and keeps the rest.
    let out = run_once(server.port, b.path(), None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for phase in ["live", "offline"] {
        assert!(gone_from(b.path(), phase), "{phase} on B");
        assert_eq!(
            fs::read_to_string(b.path().join(phase).join("keep.txt"))
                .ok()
                .as_deref(),
            Some("kept")
        );
    }
}
