//! End-to-end: a connection whose path goes silent — no reset, no FIN,
//! nothing either way (a server host lost, a dead link, a floating address
//! moved) — is given up and made again (outside tester breaker17 R3).
//! Before, the client kept it until the kernel gave up (about 15 min, and
//! for ever behind a relay that keeps acknowledging), its pulls unanswered,
//! while `status` said "in sync": the other devices' changes never came.
//!
//! The real binaries: device A reaches the server through a relay that can
//! go silent; device B reaches it directly. While the relay is silent A's
//! status stops saying in sync within `PROBE_AFTER` + `PROBE_AFTER`/2
//! (15 s) plus the pull period; after `DEAD_AFTER` (60 s) past its
//! unanswered ping A gives the connection up; once the path works again,
//! B's change made during the silence arrives. `CLOUD_TEST_CLIENT_BIN`
//! runs an older client (the test fails with one from before the fix).

mod common;

use common::relay::Relay;
use common::{eventually, status_until, write, Client, Server};
use std::time::{Duration, Instant};

/// A's status must say it waits for the server within this: a ping after
/// `PROBE_AFTER` (10 s) of waiting for a pull, `PROBE_AFTER`/2 without an
/// answer, with room for a loaded machine.
const NOT_IN_SYNC_WITHIN: Duration = Duration::from_secs(40);
/// `DEAD_AFTER` (60 s) after that ping, with room.
const GIVEN_UP_WITHIN: Duration = Duration::from_secs(120);
/// A reconnection attempt made during the silence hangs until the server's
/// handshake timeout (10 s); the backoff is at most 30 s.
const BACK_WITHIN: Duration = Duration::from_secs(90);

///
#[test]
fn a_connection_gone_silent_is_given_up_and_the_changes_come_after() {
    let server = Server::start();
    let relay = Relay::silenceable(server.port);
    let a = tempfile::tempdir().expect("tempdir");
    let b = tempfile::tempdir().expect("tempdir");
    let logs = tempfile::tempdir().expect("tempdir");
    write(a.path(), "base.txt", "base");
    let user = common::new_user(server.port, a.path());
    let log = logs.path().join("a.log");
    let ca = Client::options(relay.port, a.path())
        .user(Some(&user))
        .rate("1")
        .log(&log)
        .start();
    let _cb = Client::options(server.port, b.path())
        .user(Some(&user))
        .start();
    for (name, dir) in [("A", a.path()), ("B", b.path())] {
        status_until(
            &format!("{name} in sync"),
            dir,
            common::CONVERGE,
            |code, v| code == 0 && v["in_sync"] == true,
        );
    }

    relay.silence(true);
    let silenced = Instant::now();
    write(b.path(), "x.txt", "made on B while A's path was silent");
    let v = status_until(
        "A waiting for the server",
        a.path(),
        NOT_IN_SYNC_WITHIN,
        |code, v| {
            code == 1
                && v["pending"]
                    .as_str()
                    .is_some_and(|p| p.starts_with("waiting for the server"))
        },
    );
    assert_eq!(v["in_sync"], false, "{v:#}");
    eprintln!(
        "A said it waits for the server after {:?}",
        silenced.elapsed()
    );

    assert!(
        ca.wait_log("not even to a ping", GIVEN_UP_WITHIN),
        "A gives the silent connection up\n{}",
        ca.log_tail(4_000)
    );
    let given_up = silenced.elapsed();
    eprintln!("A gave the connection up after {given_up:?}");
    assert!(
        !a.path().join("x.txt").exists(),
        "nothing could have come through the silent relay"
    );

    relay.silence(false);
    assert!(
        eventually(BACK_WITHIN, || {
            std::fs::read(a.path().join("x.txt"))
                .is_ok_and(|c| c == b"made on B while A's path was silent")
        }),
        "B's change reaches A once the path works\n{}",
        ca.log_tail(4_000)
    );
    status_until("A in sync again", a.path(), common::CONVERGE, |code, v| {
        code == 0 && v["in_sync"] == true
    });
}
