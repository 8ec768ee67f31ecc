//! End-to-end: the state folder `.cloudservice` removed while the client
//! runs (issue 9, item 6) means the user detached the folder. The client
//! stops at once with one line saying so and how to re-attach, exits
//! non-zero, and sends nothing more: a deletion made afterwards reaches
//! neither the server nor the other device, and re-attaching loses nothing.

mod common;

use common::{converge, new_user, run_once, tree, write, Client, Server, Verbosity};
use std::fs;
use std::time::Duration;

#[test]
fn removing_the_state_folder_detaches_without_losing_anything() {
    let server = Server::start();
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    for name in ["keep.txt", "gone.txt", "edit.txt"] {
        write(a.path(), name, format!("original {name}\n"));
    }
    std::thread::sleep(Duration::from_millis(350));
    let user = new_user(server.port, a.path());
    let mut ca = Client::options(server.port, a.path())
        .verbosity(Verbosity::Quiet)
        .capture_stderr()
        .start();
    let _cb = Client::start(server.port, b.path(), Some(&user));
    converge("initial", &[a.path(), b.path()]);

    fs::remove_dir_all(a.path().join(".cloudservice")).unwrap();
    fs::remove_file(a.path().join("gone.txt")).unwrap();
    write(a.path(), "edit.txt", "edited on A while detached\n");

    let status = ca.wait_exit(Duration::from_secs(10));
    let stderr = ca.stderr_lines().join("\n");
    let status = status.expect("the client stops by itself");
    assert!(!status.success(), "exits non-zero: {status:?}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    eprintln!("the client said: {stderr}");
    assert_eq!(lines.len(), 1, "one line: {stderr:?}");
    let reattach = format!("cloud-client 127.0.0.1 {} ", server.port);
    assert!(
        lines[0].contains("was detached")
            && lines[0].contains(&reattach)
            && lines[0].ends_with(&user),
        "says detached and how to re-attach: {stderr:?}"
    );
    assert!(
        !a.path().join(".cloudservice").exists(),
        "state not recreated"
    );

    // Nothing was deleted on the server or on B, however long B pulls.
    std::thread::sleep(Duration::from_secs(2));
    let on_b = tree(b.path());
    assert_eq!(
        on_b.get("gone.txt"),
        Some(&Some(b"original gone.txt\n".to_vec())),
        "B keeps gone.txt: {:?}",
        on_b.keys().collect::<Vec<_>>()
    );
    assert!(server.user_dir(&user).join("gone.txt").is_file());
    assert_eq!(
        fs::read_to_string(a.path().join("edit.txt")).unwrap(),
        "edited on A while detached\n",
        "A's edit is still there"
    );

    // Re-attaching as the message says loses nothing on either side.
    let out = run_once(server.port, a.path(), Some(&user));
    assert!(
        out.status.success(),
        "re-attach: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let on_a = tree(a.path());
    let texts: Vec<&Vec<u8>> = on_a.values().flatten().collect();
    for want in [
        &b"edited on A while detached\n"[..],
        b"original keep.txt\n",
        b"original gone.txt\n",
    ] {
        assert!(
            texts.iter().any(|t| t.as_slice() == want),
            "{:?} missing after re-attaching: {:?}",
            String::from_utf8_lossy(want),
            on_a.keys().collect::<Vec<_>>()
        );
    }
    converge("after re-attaching", &[a.path(), b.path()]);
}

/// Outside tester breaker15, L2: `mv Sync Sync.old; mkdir Sync` while the
/// client runs was called "detached" with a command that would have joined
/// the new, empty folder as a new device. Now it is called a replaced
/// folder; nothing is sent, and the moved folder runs on as the same device.
#[test]
fn a_folder_moved_away_and_replaced_stops_and_runs_on_at_its_new_place() {
    let server = Server::start();
    let parent = tempfile::tempdir().unwrap();
    let sync = parent.path().join("Sync");
    let b = tempfile::tempdir().unwrap();
    for name in ["keep.txt", "other.txt"] {
        write(&sync, name, format!("original {name}\n"));
    }
    std::thread::sleep(Duration::from_millis(350));
    let user = new_user(server.port, &sync);
    let mut ca = Client::options(server.port, &sync)
        .verbosity(Verbosity::Quiet)
        .capture_stderr()
        .start();
    let _cb = Client::start(server.port, b.path(), Some(&user));
    converge("initial", &[&sync, b.path()]);

    // The new folder takes the old one's name in one step (as `mv` then
    // `mkdir` would, without the instant where nothing is there, which
    // is the "vanished" stop).
    let moved = parent.path().join("Sync.old");
    fs::create_dir(&moved).unwrap();
    assert!(
        cloudservice::client::rename::exchange(&sync, &moved).unwrap(),
        "this file system exchanges names"
    );

    let status = ca.wait_exit(Duration::from_secs(70));
    let stderr = ca.stderr_lines().join("\n");
    let status = status.expect("the client stops by itself");
    assert!(!status.success(), "exits non-zero: {status:?}");
    assert!(
        stderr.contains("was replaced") && !stderr.contains("detached"),
        "says replaced: {stderr:?}"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(server.user_dir(&user).join("keep.txt").is_file());
    assert!(b.path().join("other.txt").is_file(), "B deleted nothing");

    // At its new place the folder is the same device: an edit made there
    // reaches B, and no conflict copy or new device appears.
    write(&moved, "keep.txt", "edited at the new place\n");
    let out = run_once(server.port, &moved, None);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "run at the new place: {said}");
    assert!(!said.contains("new device"), "not a new device: {said}");
    converge("moved", &[&moved, b.path()]);
    assert_eq!(
        fs::read_to_string(b.path().join("keep.txt")).unwrap(),
        "edited at the new place\n"
    );
}
