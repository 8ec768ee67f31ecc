//! End-to-end: a server that answers `UnknownUser` to a device that has
//! joined (PROTOCOL.md; outside tester breaker15 F7). The
//! operator restarts the server on a wrong, empty data directory for a few
//! seconds, then on the right one: the running clients keep running
//! (before: both exited 1 and never came back), `status` shows the
//! refusal, the log says it once however many attempts are refused, and
//! an edit made meanwhile reaches the other device once the right server
//! is back. A folder's first run with an ID no server knows still stops
//! at once with the error.
//!
//! `CLOUD_TEST_CLIENT_BIN` / `CLOUD_TEST_SERVER_BIN` run it against other
//! builds.

mod common;

use common::{converge, eventually, new_user, status_text, write, Client, Server, Verbosity};
use std::fs;
use std::time::Duration;

/// The server on its right data directory, after `data` was swapped for
/// an empty one and back.
fn swap_data_dir(server: &mut Server, aside: &std::path::Path) {
    server.stop();
    fs::rename(&server.data, aside).expect("move the data directory aside");
    fs::create_dir(&server.data).expect("an empty data directory");
    server.start_again();
}

fn restore_data_dir(server: &mut Server, aside: &std::path::Path) {
    server.stop();
    fs::remove_dir_all(&server.data).expect("remove the wrong data directory");
    fs::rename(aside, &server.data).expect("put the data directory back");
    server.start_again();
}

#[test]
fn joined_clients_outlive_a_server_on_a_wrong_data_dir() {
    // Plaintext: a wrong data directory also has another TLS certificate
    // (its own tls/), which a device refuses for its own reason (a changed
    // certificate needs a person); this test is about the user.
    let mut server = Server::options().plaintext().start();
    let top = tempfile::tempdir().unwrap();
    let (a, b) = (top.path().join("a"), top.path().join("b"));
    fs::create_dir(&a).unwrap();
    fs::create_dir(&b).unwrap();
    write(&a, "f1", "one\n");
    write(&a, "f2", "two\n");
    std::thread::sleep(Duration::from_millis(400));
    let user = new_user(server.port, &a);
    let logs = tempfile::tempdir().unwrap();
    let start = |folder: &std::path::Path, user: Option<&str>, log: &str| {
        Client::options(server.port, folder)
            .rate("0.5")
            .user(user)
            .verbosity(Verbosity::Normal)
            .log(&logs.path().join(log))
            .start()
    };
    let mut ca = start(&a, None, "a.log");
    let mut cb = start(&b, Some(&user), "b.log");
    converge("initial", &[&a, &b]);
    assert!(ca.wait_log("watching", Duration::from_secs(30)));

    let aside = top.path().join("data.real");
    swap_data_dir(&mut server, &aside);
    write(&a, "f1", "edited while the server did not know the user\n");
    let refused = |folder: &std::path::Path| {
        let (code, text) = status_text(folder, false);
        // breaker19 G4: a restore from an older backup is named, and what
        // to do if the older data stays.
        code == 1
            && text.contains("UnknownUser")
            && text.contains("right data directory")
            && text.contains("restored from a backup made before the user existed")
            && text.contains("make the user again from this folder")
    };
    assert!(
        eventually(Duration::from_secs(30), || refused(&a) && refused(&b)),
        "status shows the refusal:\n{}\n{}\n{}",
        status_text(&a, false).1,
        ca.log_tail(3000),
        cb.log_tail(3000)
    );
    // Attempts at 0.5, 1, 2, 4 s of backoff: several refusals, one line.
    std::thread::sleep(Duration::from_secs(5));
    assert!(ca.is_running(), "A keeps running:\n{}", ca.log_tail(3000));
    assert!(cb.is_running(), "B keeps running:\n{}", cb.log_tail(3000));
    let said = fs::read_to_string(logs.path().join("a.log")).unwrap();
    assert_eq!(
        said.lines().filter(|l| l.contains("UnknownUser")).count(),
        1,
        "said once while it lasts:\n{said}"
    );
    let wrong_log = fs::read_to_string(server.data.join("connectionLog.txt")).unwrap_or_default();
    assert!(
        wrong_log
            .lines()
            .filter(|l| l.contains("unknown user") || l.contains("UnknownUser"))
            .count()
            >= 4,
        "both devices tried again, more than once each:\n{wrong_log}"
    );

    restore_data_dir(&mut server, &aside);
    let synced = converge("the edit made meanwhile", &[&a, &b]);
    assert_eq!(
        synced.get("f1").cloned().flatten().as_deref(),
        Some(&b"edited while the server did not know the user\n"[..])
    );
    assert!(
        eventually(Duration::from_secs(30), || status_text(&a, false).0 == 0),
        "in sync again, the refusal gone:\n{}",
        status_text(&a, false).1
    );
    assert!(ca.is_running() && cb.is_running());
}

#[test]
fn a_first_run_with_an_id_no_server_knows_still_stops_at_once() {
    let server = Server::options().plaintext().start();
    let top = tempfile::tempdir().unwrap();
    let mut c = Client::options(server.port, top.path())
        .user(Some("9f1c2a7e4b6d8053c1e9f2a4b6c8d0e1"))
        .capture_stderr()
        .start();
    let status = c.wait_exit(Duration::from_secs(20));
    assert_eq!(status.and_then(|s| s.code()), Some(1), "exits 1 at once");
    let said = c.stderr_lines().join("\n");
    assert!(
        said.contains("UnknownUser") || said.contains("unknown user"),
        "{said}"
    );
}
