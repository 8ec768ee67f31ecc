//! End-to-end: a file whose copy on the server changed behind the
//! server's back (outside tester breaker22 F2: one byte of a 64 MiB file
//! changed by hand while the server was stopped). A new device's download
//! fails verification every time; main's client fetched it again at every
//! pull, for ever (768 MiB in 30 s), and its status named no file. Now the
//! download is held back with R-5.6.8's growing wait (5 s, 10 s, 20 s …),
//! the path is listed under "not synced" with why, the other files arrive,
//! and a new version pushed by a device ends the hold.

mod common;

use common::*;
use std::time::Duration;

/// How many times the server's connection log shows a fetch of `path`.
fn fetches(server: &Server, path: &str) -> usize {
    server
        .conn_log()
        .lines()
        .filter(|l| l.contains("request=fetch") && l.contains(path))
        .count()
}

/// Within `within`, the device at `folder` (its client `client`) lists
/// big.bin under "not synced" with why (the server found the bytes it sent
/// do not give the journaled hash, R-10.6, and serves it no more, R-10.5;
/// or the client's own check says the server's copy may be damaged),
/// and then over 12 s (pulls every second) fetches it at most twice: at
/// R-5.6.8's growing wait (0, 5 s, 15 s), not at every pull.
fn assert_held_back_as_damaged(
    server: &Server,
    folder: &std::path::Path,
    client: &Client,
    within: Duration,
) {
    let named = eventually(within, || {
        let (code, st) = status_json(folder);
        code != 0
            && st["not_synced"].as_array().is_some_and(|a| {
                a.iter()
                    .filter_map(|e| e.as_str())
                    .any(|e| e.starts_with("big.bin") && e.contains("damaged"))
            })
    });
    assert!(
        named,
        "big.bin is not named under not synced: {}\n{}",
        status_json(folder).1,
        client.log_tail(4000)
    );
    let before = fetches(server, "big.bin");
    std::thread::sleep(Duration::from_secs(12));
    let during = fetches(server, "big.bin") - before;
    assert!(
        during <= 2,
        "big.bin fetched {during} more times in 12 s:\n{}",
        client.log_tail(4000)
    );
}

#[test]
fn a_damaged_server_copy_is_held_back_not_fetched_at_every_pull() {
    let logs = tempfile::tempdir().expect("temp dir");
    let mut server = Server::options()
        .log(&logs.path().join("server.err"))
        .start();
    let a = tempfile::tempdir().expect("temp dir");
    let c = tempfile::tempdir().expect("temp dir");
    let (a, c) = (a.path(), c.path());
    let big = Rng::new(22).bytes(4 << 20);
    write(a, "big.bin", &big);
    write(a, "small.txt", "fine\n");
    settle();
    let user = new_user(server.port, a);

    // One byte of the server's copy changes while it is stopped (the size
    // stays).
    server.stop();
    let copy = server.user_dir(&user).join("big.bin");
    let mut damaged = std::fs::read(&copy).expect("read the server's copy");
    assert_eq!(damaged, big, "the server's copy before the damage");
    damaged[1 << 20] ^= 0xff;
    damage_in_place(&copy, &damaged);
    server.start_again();

    let cc = Client::options(server.port, c)
        .user(Some(&user))
        .log(&logs.path().join("c.err"))
        .start();
    let small = eventually(CONVERGE, || {
        std::fs::read(c.join("small.txt")).is_ok_and(|b| b == b"fine\n")
    });
    assert!(small, "small.txt never arrived:\n{}", cc.log_tail(4000));
    assert_held_back_as_damaged(&server, c, &cc, Duration::from_secs(10));
    assert!(!c.join("big.bin").exists(), "a damaged copy was placed");
    let log = server.log_tail(64 << 10);
    assert!(log.contains("big.bin is damaged"), "{log}");

    // A device pushes a new version: the hold ends with it.
    let fixed = Rng::new(23).bytes(1 << 20);
    let _ca = Client::options(server.port, a).start();
    write(a, "big.bin", &fixed);
    let arrived = eventually(Duration::from_secs(60), || {
        std::fs::read(c.join("big.bin")).is_ok_and(|b| b == fixed)
    });
    assert!(
        arrived,
        "the new version never arrived:\n{}",
        cc.log_tail(8000)
    );
    let in_sync = eventually(Duration::from_secs(10), || status_json(c).0 == 0);
    assert!(in_sync, "{}", status_json(c).1);
}

/// The same when the device already has an older version, so the new one
/// comes as a delta (§13) built from the server's damaged copy.
#[test]
fn a_damaged_server_copy_sent_as_a_delta_is_held_back_too() {
    let mut server = Server::start();
    let a = tempfile::tempdir().expect("temp dir");
    let c = tempfile::tempdir().expect("temp dir");
    let logs = tempfile::tempdir().expect("temp dir");
    let (a, c) = (a.path(), c.path());
    let mut big = Rng::new(24).bytes(4 << 20);
    write(a, "big.bin", &big);
    settle();
    let user = new_user(server.port, a);
    let mut ca = Client::options(server.port, a).start();
    let mut cc = Client::options(server.port, c)
        .user(Some(&user))
        .log(&logs.path().join("c.err"))
        .start();
    converge("C joined", &[a, c]);
    cc.stop();
    // A changes 64 KiB in the middle: C would get it as a delta.
    for b in &mut big[2 << 20..(2 << 20) + (64 << 10)] {
        *b ^= 0x55;
    }
    write(a, "big.bin", &big);
    let pushed = eventually(CONVERGE, || server.copy_of(&user, "big.bin").0 == big);
    assert!(pushed, "A's edit never reached the server");
    ca.stop();
    server.stop();
    let copy = server.user_dir(&user).join("big.bin");
    let mut damaged = std::fs::read(&copy).expect("read the server's copy");
    damaged[(2 << 20) + 100] ^= 0xff;
    damage_in_place(&copy, &damaged);
    server.start_again();

    let cc = Client::options(server.port, c)
        .user(Some(&user))
        .log(&logs.path().join("c2.err"))
        .verbosity(Verbosity::Verbose)
        .start();
    assert_held_back_as_damaged(&server, c, &cc, Duration::from_secs(20));
    let kept = std::fs::read(c.join("big.bin")).expect("C's copy");
    assert_ne!(kept, damaged, "the damaged copy was placed");
}
