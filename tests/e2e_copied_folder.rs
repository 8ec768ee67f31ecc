//! End-to-end: a synced folder copied with its state (`cp -a`, rsync, a
//! backup restored next to the original) holds the same device key. It
//! must not run as that device (PROTOCOL.md, issue 12, outside
//! tester breaker10's finding 5): the copy joins as a new device, so edits
//! made at once in both folders are both kept (one as a conflict copy);
//! when the user has a join code the copy stops with one line saying what
//! it is and how to join it. A folder moved within its file system keeps
//! its device.

mod common;

use common::copies::{copy_folder, device_of, synced_folder};
use common::{cli, eventually, run_once, signal, tree, write, Client, Server, Verbosity};
use std::fs;
use std::path::Path;
use std::time::Duration;

/// The device number in `FOLDER/.cloudservice/identity`.
/// `cloud-client … --once` with the normal log (the copy notice is a warning).
fn once(port: u16, folder: &Path, user: Option<&str>) -> std::process::Output {
    Client::options(port, folder)
        .rate("0.2")
        .user(user)
        .verbosity(Verbosity::Normal)
        .run_once()
}

/// Every file's content under `root` (conflict copies included).
fn contents(root: &Path) -> Vec<String> {
    tree(root)
        .values()
        .flatten()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .collect()
}

#[test]
fn a_copy_runs_as_a_new_device_and_concurrent_edits_are_both_kept() {
    let server = Server::start();
    let top = tempfile::tempdir().unwrap();
    let files = [("a.txt", "base\n"), ("b.txt", "unchanged\n")];
    let (d, user) = synced_folder(top.path(), server.port, &files);
    let dc = d.with_file_name("Dc");
    copy_folder(&d, &dc);
    assert_eq!(device_of(&d), device_of(&dc), "cp -a copies the identity");

    let logs = tempfile::tempdir().unwrap();
    let start = |folder: &Path, log: &str| {
        Client::options(server.port, folder)
            .rate("1")
            .verbosity(Verbosity::for_log_file())
            .log(&logs.path().join(log))
            .start()
    };
    let mut cd = start(&d, "d.log");
    let mut cdc = start(&dc, "dc.log");
    for c in [&cd, &cdc] {
        assert!(
            c.wait_log("watching", Duration::from_secs(30)),
            "{}",
            c.log_tail(4000)
        );
    }

    // The tester's steps: the copy's client paused while each folder gets
    // its own edit of the same file.
    let pid = cdc.pid().expect("running");
    signal(pid, "STOP");
    write(&d, "a.txt", "from D\n");
    let on_server = server.user_dir(&user).join("a.txt");
    assert!(
        eventually(Duration::from_secs(20), || fs::read_to_string(&on_server)
            .is_ok_and(|t| t == "from D\n")),
        "D's edit reaches the server"
    );
    write(&dc, "a.txt", "from Dc\n");
    signal(pid, "CONT");

    let both = |root: &Path| {
        let all = contents(root);
        all.iter().any(|t| t == "from D\n") && all.iter().any(|t| t == "from Dc\n")
    };
    let kept = eventually(Duration::from_secs(30), || {
        both(&d) && both(&dc) && both(&server.user_dir(&user))
    });
    assert!(
        kept,
        "both edits kept everywhere: D {:?}, Dc {:?}, server {:?}\nDc's log: {}",
        tree(&d).keys().collect::<Vec<_>>(),
        tree(&dc).keys().collect::<Vec<_>>(),
        tree(&server.user_dir(&user)).keys().collect::<Vec<_>>(),
        cdc.log_tail(4000)
    );
    assert!(
        tree(&d).keys().any(|k| k.contains("conflict")),
        "one of them as a conflict copy: {:?}",
        tree(&d).keys().collect::<Vec<_>>()
    );
    assert!(
        eventually(Duration::from_secs(20), || tree(&d) == tree(&dc)),
        "the two folders converge"
    );
    let said = cdc.log_tail(1 << 16);
    assert!(
        said.contains("is a copy of the folder") && said.contains(&d.display().to_string()),
        "the copy says what it is and where the original is: {said}"
    );
    assert_ne!(device_of(&d), device_of(&dc), "the copy is another device");
    cd.stop();
    cdc.stop();

    // The copy is its own device from now on: no second join.
    let again = once(server.port, &dc, None);
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(again.status.success(), "{err}");
    assert!(!err.contains("is a copy"), "{err}");
}

#[test]
fn a_copy_of_a_user_with_a_join_code_stops_with_one_line_and_changes_nothing() {
    let server = Server::start();
    let top = tempfile::tempdir().unwrap();
    let (d, user) = synced_folder(top.path(), server.port, &[("a.txt", "base\n")]);
    let out = server.admin("rotate-join", &[&user]);
    let code = out
        .split_whitespace()
        .find(|w| w.starts_with(&format!("{user}:")))
        .expect("USER:CODE printed")
        .to_owned();
    let dc = d.with_file_name("Dc");
    copy_folder(&d, &dc);
    write(&dc, "only-in-copy.txt", "mine\n");
    let identity_before = fs::read(dc.join(".cloudservice/identity")).unwrap();
    let tree_before = tree(&dc);

    // versions/restore on the copy do not act as the original's device.
    let (status, _, err) = cli(
        server.port,
        &[
            "versions",
            &dc.display().to_string(),
            "--server",
            &format!("127.0.0.1:{}", server.port),
        ],
    );
    assert_ne!(status, 0);
    assert!(err.contains("is a copy of the folder"), "{err}");

    let refused = run_once(server.port, &dc, None);
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    let last = lines.last().copied().unwrap_or_default();
    assert!(
        last.contains("is a copy of the folder")
            && last.contains(&d.display().to_string())
            && last.contains("USER_ID:JOIN_CODE")
            && last.contains(&format!("cloud-client 127.0.0.1 {}", server.port)),
        "one line naming the original and the command: {err}"
    );
    assert_eq!(tree(&dc), tree_before, "nothing in the copy changed");
    assert_eq!(
        fs::read(dc.join(".cloudservice/identity")).unwrap(),
        identity_before
    );
    assert!(
        !server.user_dir(&user).join("only-in-copy.txt").exists(),
        "nothing pushed as the original's device"
    );

    // As the line says: with the code it joins as a new device, loses nothing.
    let joined = run_once(server.port, &dc, Some(&code));
    assert!(
        joined.status.success(),
        "{}",
        String::from_utf8_lossy(&joined.stderr)
    );
    assert_ne!(device_of(&dc), device_of(&d));
    assert_eq!(
        fs::read_to_string(server.user_dir(&user).join("only-in-copy.txt")).unwrap(),
        "mine\n"
    );
}

#[test]
fn a_folder_moved_within_its_file_system_keeps_its_device() {
    let server = Server::start();
    let top = tempfile::tempdir().unwrap();
    let (d, user) = synced_folder(top.path(), server.port, &[("a.txt", "base\n")]);
    let device = device_of(&d);
    let moved = d.with_file_name("Moved");
    fs::rename(&d, &moved).unwrap();
    write(&moved, "new.txt", "after the move\n");
    let out = once(server.port, &moved, None);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("is a copy"), "{err}");
    assert_eq!(device_of(&moved), device, "the same device");
    assert_eq!(
        fs::read_to_string(server.user_dir(&user).join("new.txt")).unwrap(),
        "after the move\n"
    );
    // And its record follows it: a copy made now names the new place.
    let copy = d.with_file_name("Copy");
    copy_folder(&moved, &copy);
    let out = once(server.port, &copy, None);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(&format!("copy of the folder {}", moved.display())),
        "{err}"
    );
    assert_ne!(device_of(&copy), device);
}
