//! End-to-end: files the client may not read (outside tester's finding 8).
//! Run as an unprivileged user (root reads everything), the client skipped
//! a `chmod 000` file with no warning, did not list it under "not synced",
//! counted it "to upload", and logged `could not apply … Permission denied`
//! every 2 s while another device's newer version waited. Now: one
//! `skipping PATH: unreadable (Permission denied)`, listed under "not
//! synced" (the folder is not in sync), not counted to upload, a waiting
//! server change said once; once readable, everything syncs.
//!
//! The client runs as `nobody` through `setpriv`; without root or setpriv
//! the test prints why it is skipped.

mod common;

use common::{
    as_nobody, cannot_run_as_nobody, chmod, eventually, give_to_nobody, status_json, write, Client,
    Proc, Server, Verbosity, CONVERGE,
};
use serde_json::Value;
use std::time::Duration;

fn not_synced(v: &Value) -> Vec<String> {
    v["not_synced"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn count(log: &str, needle: &str) -> usize {
    log.lines().filter(|l| l.contains(needle)).count()
}

#[test]
fn unreadable_files_are_said_once_listed_and_not_counted_to_upload() {
    if let Some(why) = cannot_run_as_nobody() {
        println!("SKIPPED: {why}");
        return;
    }
    let server = Server::start();
    // A folder nobody can reach: the temporary directory is root's 0700.
    let base = tempfile::tempdir().expect("tempdir");
    chmod(base.path(), 0o755);
    let a = base.path().join("A");
    write(&a, "a.txt", "a");
    write(&a, "b.txt", "b");
    write(&a, "secret.txt", "sec");
    give_to_nobody(&a);
    chmod(&a.join("secret.txt"), 0o000);
    std::thread::sleep(Duration::from_millis(400));

    // Device A, as nobody (its first run makes the user).
    let log = base.path().join("a.log");
    let options = Client::options(server.port, &a).verbosity(Verbosity::Normal);
    let plain = options.command();
    let cmd = as_nobody(&plain);
    let _ca = Proc::spawn_to_files("client A as nobody", cmd, &log);
    let err_log = log.with_extension("err");
    let user_line = eventually(CONVERGE, || {
        std::fs::read_to_string(&log).is_ok_and(|o| o.contains("user id: "))
    });
    assert!(
        user_line,
        "A made no user: {}",
        common::log_tail(&err_log, 3000)
    );
    let out = std::fs::read_to_string(&log).expect("stdout");
    let user = out
        .split("user id: ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .expect("user id")
        .to_owned();
    let on_server = server.user_dir(&user);
    let listed_as = |name: &str| format!("{name} (unreadable (Permission denied))");

    // secret.txt: one warning, listed, not to upload; the others synced.
    assert!(
        eventually(CONVERGE, || {
            let v = status_json(&a).1;
            on_server.join("b.txt").is_file()
                && not_synced(&v).contains(&listed_as("secret.txt"))
                && v["uploads_pending"] == 0
        }),
        "A does not list secret.txt: {:#}\n{}",
        status_json(&a).1,
        common::log_tail(&err_log, 3000)
    );
    let v = status_json(&a).1;
    assert_eq!(v["in_sync"], false, "{v:#}");
    assert!(!on_server.join("secret.txt").exists());

    // A synced file becomes unreadable while the client runs, and another
    // device changes it meanwhile.
    let b = tempfile::tempdir().expect("tempdir");
    let _cb = Client::start(server.port, b.path(), Some(&user));
    assert!(
        eventually(CONVERGE, || b.path().join("a.txt").is_file()),
        "B joins"
    );
    chmod(&a.join("a.txt"), 0o000);
    assert!(
        eventually(CONVERGE, || not_synced(&status_json(&a).1)
            .contains(&listed_as("a.txt"))),
        "a.txt unreadable is not listed: {:#}",
        status_json(&a).1
    );
    write(b.path(), "a.txt", "B's edit");
    assert!(
        eventually(CONVERGE, || std::fs::read_to_string(
            on_server.join("a.txt")
        )
        .is_ok_and(|t| t == "B's edit")),
        "B's edit reaches the server"
    );
    // Several repeated pulls (every 2 s) and safety looks.
    std::thread::sleep(Duration::from_secs(7));
    let v = status_json(&a).1;
    assert_eq!(v["uploads_pending"], 0, "{v:#}");
    assert_eq!(v["in_sync"], false, "{v:#}");
    let text = std::fs::read_to_string(&err_log).unwrap_or_default();
    assert_eq!(
        count(&text, "secret.txt: unreadable (Permission denied)"),
        1,
        "{text}"
    );
    assert_eq!(
        count(&text, "a.txt: unreadable (Permission denied)"),
        1,
        "{text}"
    );
    assert!(
        count(&text, "could not apply the server's change to a.txt") <= 1,
        "said at every pull:\n{text}"
    );

    // Readable again: B's version arrives, secret.txt goes up, in sync.
    chmod(&a.join("a.txt"), 0o644);
    chmod(&a.join("secret.txt"), 0o644);
    assert!(
        eventually(CONVERGE, || {
            std::fs::read_to_string(a.join("a.txt")).is_ok_and(|t| t == "B's edit")
                && std::fs::read_to_string(on_server.join("secret.txt")).is_ok_and(|t| t == "sec")
        }),
        "not synced once readable: {}",
        common::log_tail(&err_log, 3000)
    );
    assert!(
        eventually(CONVERGE, || status_json(&a).1["in_sync"] == true),
        "A not in sync: {:#}",
        status_json(&a).1
    );
}
