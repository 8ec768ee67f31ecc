//! End-to-end: the server's files where this device has a symlink or a
//! special file in the way (outside tester breaker13, findings 1 and 2;
//! PROTOCOL.md ).
//!
//! The client never writes through or over a symlink, FIFO or socket
//! (README "Symlinks"). It used to skip such a server entry silently: the
//! cursor passed it, so it never arrived once the obstacle was gone,
//! `status` said "in sync" throughout, and a RemoveDir of a directory above
//! it, carrying that cursor, deleted on the server (and on every device) a
//! file this device never had. Now the entry is held back as for an ignored
//! directory: listed by `status` (not in sync), kept on the server by a
//! RemoveDir above it, and pulled once the way is free.
//!
//! Every kind of obstacle is tried at once, each on its own path: a symlink
//! to a directory outside the folder, a symlink to a file, a dangling
//! symlink, a FIFO, a Unix socket, and a symlink inside a real directory.

mod common;

use common::{eventually, new_user, status_json, tree, write, Client, Server, Tree, CONVERGE};
use std::fs;
use std::os::unix::fs::symlink;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn wait_for(what: &str, check: impl FnMut() -> bool) {
    assert!(eventually(CONVERGE, check), "timed out waiting for: {what}");
}

fn read(root: &Path, path: &str) -> Option<String> {
    fs::read_to_string(root.join(path)).ok()
}

/// Regular files of a folder with their contents, without its state folder.
fn files(root: &Path) -> Tree {
    tree(root)
        .into_iter()
        .filter(|(p, v)| v.is_some() && !p.starts_with(".cloudservice"))
        .collect()
}

/// The `not_synced` lines of `status --json`.
fn not_synced(folder: &Path) -> Vec<String> {
    let (_, value) = status_json(folder);
    value["not_synced"]
        .as_array()
        .map(|lines| {
            lines
                .iter()
                .filter_map(|l| l.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether `status` lists the server's `path` as held back by a symlink or
/// special file.
fn listed_blocked(folder: &Path, path: &str) -> bool {
    let prefix = format!("{path} (the server's entry; a symlink or special file");
    not_synced(folder).iter().any(|l| l.starts_with(&prefix))
}

/// Whether `status` lists `path` itself (a symlink or special file here).
fn listed(folder: &Path, path: &str) -> bool {
    let prefix = format!("{path} (");
    not_synced(folder).iter().any(|l| l.starts_with(&prefix))
}

fn mkfifo(path: &Path) {
    let ok = Command::new("mkfifo")
        .arg(path)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "mkfifo {}", path.display());
}

/// A and B joined and converged on `k` and `p/f.txt`, `p/o.txt`, `d/k.txt`.
fn setup(server: &Server, a: &Path, b: &Path) -> (String, Client, Client) {
    write(a, "k", "k");
    write(a, "p/f.txt", "orig");
    write(a, "p/o.txt", "other");
    write(a, "d/k.txt", "keep");
    std::thread::sleep(Duration::from_millis(350));
    let user = new_user(server.port, a);
    let ca = Client::start(server.port, a, None);
    let cb = Client::start(server.port, b, Some(&user));
    wait_for("B has A's files", || files(b) == files(a));
    (user, ca, cb)
}

#[test]
fn server_files_behind_a_symlink_or_special_file_are_held_back_listed_and_arrive_later() {
    let server = Server::start();
    let (a, b, outside) = (
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    );
    let (a, b, outside) = (a.path(), b.path(), outside.path());
    let (user, _ca, _cb) = setup(&server, a, b);

    // A's obstacles, one kind per path.
    symlink(outside, a.join("sl")).expect("symlink to a directory");
    symlink("/etc/hostname", a.join("f.txt")).expect("symlink to a file");
    symlink(a.join("nowhere"), a.join("dangling")).expect("dangling symlink");
    mkfifo(&a.join("ff"));
    let socket = UnixListener::bind(a.join("so")).expect("socket");
    // A has seen its obstacles (so B's files meet them, not a race).
    wait_for("A's status lists its obstacles", || {
        ["sl", "f.txt", "dangling", "ff", "so"]
            .iter()
            .all(|p| listed(a, p))
    });
    // B's files at those paths (and below them).
    write(b, "sl/x.txt", "B sl");
    write(b, "f.txt", "B f");
    write(b, "dangling", "B dangling");
    write(b, "ff/y.txt", "B ff");
    write(b, "so", "B so");
    let srv = server.user_dir(&user);
    wait_for("the server holds B's files", || {
        ["sl/x.txt", "f.txt", "dangling", "ff/y.txt", "so"]
            .iter()
            .all(|p| srv.join(p).is_file())
    });
    let blocked = ["sl/x.txt", "f.txt", "dangling", "ff/y.txt", "so"];
    wait_for("A's status lists every blocked file", || {
        blocked.iter().all(|p| listed_blocked(a, p))
    });
    let (code, value) = status_json(a);
    assert_eq!(code, 1, "not in sync while files are held back: {value:#}");
    assert_eq!(value["in_sync"], false, "{value:#}");
    assert!(
        fs::read_dir(outside).expect("outside").next().is_none(),
        "nothing written through the symlink"
    );

    // Later changes still arrive: the cursor is not stuck.
    write(b, "later.txt", "later");
    wait_for("later.txt reaches A", || {
        read(a, "later.txt").as_deref() == Some("later")
    });

    // The obstacles go: every held-back file arrives, and A is in sync.
    drop(socket);
    for p in ["sl", "f.txt", "dangling", "ff", "so"] {
        fs::remove_file(a.join(p)).expect("remove the obstacle");
    }
    wait_for("A receives every file", || files(a) == files(b));
    wait_for("A's status is in sync", || {
        let (code, value) = status_json(a);
        code == 0 && value["in_sync"] == true
    });
    assert_eq!(read(a, "sl/x.txt").as_deref(), Some("B sl"));
    assert_eq!(read(a, "ff/y.txt").as_deref(), Some("B ff"));
}

#[test]
fn removing_a_directory_keeps_the_other_devices_files_a_symlink_hid() {
    let server = Server::start();
    let (a, b, outside) = (
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    );
    let (a, b, outside) = (a.path(), b.path(), outside.path());
    let (user, _ca, _cb) = setup(&server, a, b);

    // Variant B of finding 1: a file replaced by a symlink inside a real
    // directory. Variant A: a whole directory replaced by a symlink.
    fs::remove_file(a.join("p/f.txt")).expect("rm p/f.txt");
    symlink("/etc/hostname", a.join("p/f.txt")).expect("symlink");
    fs::remove_dir_all(a.join("d")).expect("rm d");
    symlink(outside, a.join("d")).expect("symlink d");
    wait_for("A's status lists both symlinks", || {
        listed(a, "p/f.txt") && listed(a, "d")
    });
    write(b, "p/f.txt", "B's important edit");
    write(b, "d/new.txt", "precious, written on B");
    let srv = server.user_dir(&user);
    wait_for("the server holds B's files", || {
        read(&srv, "p/f.txt").as_deref() == Some("B's important edit")
            && srv.join("d/new.txt").is_file()
    });
    write(b, "marker", "after B's files");
    // A pulls in order: with the marker it has pulled past B's files.
    wait_for("A has pulled past B's files", || {
        read(a, "marker").is_some()
    });
    let listed = listed_blocked(a, "p/f.txt") && listed_blocked(a, "d/new.txt");

    // A removes the directory and the symlink: RemoveDirs with a cursor
    // past B's files used to delete them everywhere.
    fs::remove_dir_all(a.join("p")).expect("rm -rf p");
    fs::remove_file(a.join("d")).expect("rm d (the symlink)");
    wait_for("A's folder and B's converge", || {
        files(a) == files(b) && files(b) == files(&srv)
    });
    for root in [a, b, srv.as_path()] {
        assert_eq!(
            read(root, "p/f.txt").as_deref(),
            Some("B's important edit"),
            "B's edit kept in {}",
            root.display()
        );
        assert_eq!(
            read(root, "d/new.txt").as_deref(),
            Some("precious, written on B"),
            "B's new file kept in {}",
            root.display()
        );
    }
    assert!(
        fs::read_dir(outside).expect("outside").next().is_none(),
        "nothing written through the symlink"
    );
    assert!(listed, "A's status listed both files as held back");
}
