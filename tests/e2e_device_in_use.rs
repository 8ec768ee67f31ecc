//! End-to-end: two folders holding one device's identity and both taking
//! themselves for that device (a cloned machine: same path, same inode
//! numbers, so R-4.6.12's origin check cannot tell) must not sync at once
//! (PROTOCOL.md; issue 12, outside tester finding 5,
//! server half). Here the clone is a `cp -a` whose origin record is
//! rewritten as the clone would hold it. The second client is refused
//! `DeviceInUse`, says the device is in use elsewhere (log and status),
//! changes nothing anywhere; the first keeps syncing and loses nothing; a
//! `--once` run of the clone exits non-zero after a bounded wait.

mod common;

use common::copies::{copy_folder, synced_folder};
use common::{cli, eventually, status_text, tree, write, Client, Server, Verbosity};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// `FOLDER/.cloudservice/origin` as the clone of a machine would hold it:
/// the folder's own device, inode and path, and the identity's device.
fn make_it_a_clone(folder: &Path) {
    let state = folder.join(".cloudservice");
    let origin = fs::read_to_string(state.join("origin")).expect("origin record");
    let meta = fs::metadata(folder).expect("stat");
    let path_hex: String = folder
        .as_os_str()
        .as_encoded_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let text: String = origin
        .lines()
        .map(|l| match l.split_once(' ') {
            Some(("dev", _)) => format!("dev {}\n", meta.dev()),
            Some(("ino", _)) => format!("ino {}\n", meta.ino()),
            Some(("path-hex", _)) => format!("path-hex {path_hex}\n"),
            _ => format!("{l}\n"),
        })
        .collect();
    fs::write(state.join("origin"), text).expect("write origin");
}

/// The folder's files by content, without the state folder.
fn files(root: &Path) -> std::collections::BTreeMap<String, Option<Vec<u8>>> {
    tree(root)
        .into_iter()
        .filter(|(k, _)| !k.starts_with(".cloudservice"))
        .collect()
}

#[test]
fn a_clone_running_as_the_same_device_is_refused_and_changes_nothing() {
    let server = Server::start();
    let top = tempfile::tempdir().unwrap();
    let start = [("a.txt", "base\n"), ("b.txt", "unchanged\n")];
    let (d, user) = synced_folder(top.path(), server.port, &start);
    let dc = d.with_file_name("Dc");
    copy_folder(&d, &dc);
    make_it_a_clone(&dc);
    // The clone has its own edits, which must go nowhere.
    write(&dc, "a.txt", "edited on the clone\n");
    write(&dc, "clone-only.txt", "clone\n");
    fs::remove_file(dc.join("b.txt")).unwrap();
    let clone_before = files(&dc);

    let logs = tempfile::tempdir().unwrap();
    let start = |folder: &Path, log: &str| {
        Client::options(server.port, folder)
            .rate("1")
            .verbosity(Verbosity::for_log_file())
            .log(&logs.path().join(log))
            .start()
    };
    let mut cd = start(&d, "d.log");
    assert!(
        cd.wait_log("watching", Duration::from_secs(30)),
        "{}",
        cd.log_tail(4000)
    );
    let mut cdc = start(&dc, "dc.log");
    // Refused at once and retried; after three refusals (0.5 + 1 + 2 s of
    // backoff) it says so.
    assert!(
        cdc.wait_log("in use elsewhere", Duration::from_secs(20)),
        "the clone says the device is in use: {}",
        cdc.log_tail(8000)
    );
    let said = cdc.log_tail(1 << 16);
    assert!(
        said.contains("another copy of this folder is running?"),
        "{said}"
    );
    // The status file follows within its throttle (200 ms).
    assert!(
        eventually(Duration::from_secs(5), || status_text(&dc, false)
            .1
            .contains("in use elsewhere")),
        "status of the clone: {}",
        status_text(&dc, false).1
    );

    // The original keeps syncing meanwhile.
    write(&d, "new.txt", "made on D\n");
    let on_server = server.user_dir(&user);
    assert!(
        eventually(Duration::from_secs(20), || fs::read_to_string(
            on_server.join("new.txt")
        )
        .is_ok_and(|t| t == "made on D\n")),
        "D's new file reaches the server: {}",
        cd.log_tail(4000)
    );
    // A second edit while the clone keeps retrying.
    write(&d, "a.txt", "edited on D\n");
    assert!(eventually(Duration::from_secs(20), || files(&on_server) == files(&d)));
    cdc.stop();
    assert_eq!(
        files(&dc),
        clone_before,
        "the clone changed nothing in its folder"
    );
    assert_eq!(
        files(&on_server),
        files(&d),
        "nothing of the clone reached the server"
    );

    // A one-shot run of the clone: a bounded wait, then exit non-zero.
    let started = Instant::now();
    let once = Client::options(server.port, &dc)
        .rate("1")
        .verbosity(Verbosity::Normal)
        .run_once();
    let took = started.elapsed();
    let err = String::from_utf8_lossy(&once.stderr);
    assert!(!once.status.success(), "{err}");
    assert!(err.contains("in use elsewhere"), "{err}");
    assert!(
        took < Duration::from_secs(30),
        "--once gave up after {took:?}"
    );
    assert_eq!(files(&dc), clone_before);

    // versions and restore of the original run next to its client (Visit).
    let (code, out, err) = cli(
        server.port,
        &[
            "versions",
            &d.display().to_string(),
            "--server",
            &format!("127.0.0.1:{}", server.port),
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("a.txt"), "{out}");

    // Nothing lost: D and the server agree, and D goes on after a restart
    // that races its own old connection (SIGKILL: no goodbye).
    cd.kill9();
    let mut cd = start(&d, "d2.log");
    assert!(
        cd.wait_log("watching", Duration::from_secs(30)),
        "{}",
        cd.log_tail(4000)
    );
    write(&d, "after.txt", "after the restart\n");
    assert!(
        eventually(Duration::from_secs(20), || files(&on_server) == files(&d)),
        "{}",
        cd.log_tail(4000)
    );
    let said = cd.log_tail(1 << 16);
    assert!(!said.contains("in use elsewhere"), "{said}");
    cd.stop();
}
