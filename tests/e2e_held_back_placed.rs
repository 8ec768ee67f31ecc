//! End-to-end: a download held back by a directory this device may not
//! write (outside tester breaker26 F1; PROTOCOL.md ). B's `w/` is
//! made read-only while A renames a file in it and adds one; B holds both
//! back. Main's client doubled the wait at every pull for the renamed file
//! (placed from B's own copy, a route the hold does not stop): "next try in
//! 5 s", "10 s" 19 ms later, … "300 s" after 8 s, with a warning every
//! pull; and once `w/` was writable again and the file placed, `status`
//! kept "download held back … Permission denied" for up to 300 s, until
//! the maxed wait fired. Now the wait grows once per try, with one warning
//! per try, and a held path placed by any route is released at once.
//!
//! B runs as `nobody` through `setpriv` (root writes anywhere); without
//! root or setpriv the test prints why it is skipped.

mod common;

use common::{
    as_nobody, cannot_run_as_nobody, chmod, converge, eventually, give_to_nobody, new_user,
    status_json, write, Client, Proc, Server, Verbosity,
};
use std::time::{Duration, Instant};

/// The lines of `log` announcing a hold of `path`.
fn holds_of(log: &str, path: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains("holding it back") && l.contains(path))
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_held_download_placed_by_any_route_is_released_and_its_wait_grows_per_try() {
    if let Some(why) = cannot_run_as_nobody() {
        println!("SKIPPED: {why}");
        return;
    }
    let server = Server::start();
    // Folders nobody can reach into: the temporary directory is root's 0700.
    let base = tempfile::tempdir().expect("tempdir");
    chmod(base.path(), 0o755);
    let a = base.path().join("A");
    let b = base.path().join("B");
    for i in 1..=5 {
        write(&a, &format!("w/h{i}.txt"), format!("w{i}\n"));
    }
    std::fs::create_dir_all(&b).expect("mkdir B");
    give_to_nobody(&b);
    std::thread::sleep(Duration::from_millis(400));
    let user = new_user(server.port, &a);
    let _ca = Client::options(server.port, &a)
        .log(&base.path().join("a.err"))
        .start();
    // B as nobody, pulling every 0.5 s.
    let log = base.path().join("b.log");
    let plain = Client::options(server.port, &b)
        .user(Some(&user))
        .verbosity(Verbosity::Verbose)
        .command();
    let cmd = as_nobody(&plain);
    let _cb = Proc::spawn_to_files("client B as nobody", cmd, &log);
    let err_log = log.with_extension("err");
    let b_log = || std::fs::read_to_string(&err_log).unwrap_or_default();
    converge("B joined", &[&a, &b]);
    // B's records of its files are old enough to vouch for them (not
    // racy), so B builds w/h3b.txt from its own w/h3.txt: the route the
    // hold did not stop.
    std::thread::sleep(Duration::from_secs(3));

    chmod(&b.join("w"), 0o555);
    std::fs::rename(a.join("w/h3.txt"), a.join("w/h3b.txt")).expect("rename on A");
    write(&a, "w/new.txt", "new\n");
    assert!(
        eventually(Duration::from_secs(20), || !holds_of(&b_log(), "w/h3b.txt")
            .is_empty()),
        "B never held w/h3b.txt back:\n{}",
        b_log()
    );
    // About 8 more pulls within the first announced wait (5 s).
    std::thread::sleep(Duration::from_secs(4));
    let holds = holds_of(&b_log(), "w/h3b.txt");
    assert_eq!(
        holds.len(),
        1,
        "one warning per try, not per pull: {holds:#?}"
    );
    assert!(holds[0].contains("next try in 5 s"), "{holds:#?}");
    let (_, st) = status_json(&b);
    assert_eq!(st["in_sync"], false, "{st:#}");

    // Writable again: both files arrive, and the status follows them.
    chmod(&b.join("w"), 0o755);
    let t0 = Instant::now();
    let placed = eventually(Duration::from_secs(30), || {
        std::fs::read_to_string(b.join("w/h3b.txt")).is_ok_and(|t| t == "w3\n")
            && std::fs::read_to_string(b.join("w/new.txt")).is_ok_and(|t| t == "new\n")
            && !b.join("w/h3.txt").exists()
    });
    assert!(placed, "B never placed both:\n{}", b_log());
    let in_sync = eventually(Duration::from_secs(20), || {
        status_json(&b).1["in_sync"] == true
    });
    assert!(
        in_sync,
        "B placed both {:.1} s after the chmod, but status says: {:#}\n{}",
        t0.elapsed().as_secs_f64(),
        status_json(&b).1,
        b_log()
    );
    converge("after the chmod", &[&a, &b]);
    if std::env::var_os("HELD_SHOW_LOG").is_some() {
        println!("{}", b_log());
    }
}
