//! End-to-end: `status` "last sync" after `--once` runs (issue 13, outside
//! tester's finding 5). A `--once` run that reconciles (uploading nothing,
//! or joining) was in sync when it ended: "last sync" is that time. A run
//! that never reaches the server keeps the time an earlier run recorded.

mod common;

use common::{new_user, run_once, status_json, write, Client, Server};
use std::path::Path;
use std::time::Duration;

/// `last_sync` of `cloud-client status FOLDER --json`.
fn last_sync(folder: &Path) -> Option<String> {
    status_json(folder).1["last_sync"]
        .as_str()
        .map(str::to_owned)
}

#[test]
fn once_runs_set_last_sync_and_a_run_that_never_connects_keeps_it() {
    let mut server = Server::start();
    let a = tempfile::tempdir().expect("tempdir");
    let b = tempfile::tempdir().expect("tempdir");
    let (a, b) = (a.path(), b.path());
    write(a, "k", "k");
    let user = new_user(server.port, a);
    let first = last_sync(a).expect("a new user's --once run sets last sync");

    // Nothing to upload: still a reconcile, so a newer time (never "-").
    std::thread::sleep(Duration::from_millis(1100));
    let out = run_once(server.port, a, None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let second = last_sync(a).expect("a --once run with nothing to do sets last sync");
    assert!(second > first, "{second} after {first}");

    // A --once join.
    let out = run_once(server.port, b, Some(&user));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(last_sync(b).is_some(), "a --once join sets last sync");

    // A watching run while the server is down, stopped before it ever
    // connects: the earlier time stays.
    server.stop();
    let mut client = Client::start(server.port, a, None);
    std::thread::sleep(Duration::from_millis(1500));
    client.stop();
    assert_eq!(
        last_sync(a),
        Some(second),
        "a run that never synced keeps the last sync"
    );
}
