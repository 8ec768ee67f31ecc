//! End-to-end: an idle user costs no worker thread, and a file the server
//! finds lost while it runs still comes back at once (outside tester
//! breaker26 F2; PROTOCOL.md ). The real binaries on
//! loopback.
//!
//! Main's client asked `ListLost` after every pull, also a periodic one
//! that found nothing new: the question is not one the reactor answers,
//! so it started the user's worker again at every pull (`--actor-idle`
//! never left a connected user without a thread; 256 idle users filled
//! the actor cap), and the connection log got a `request=lost` line for
//! every `request=pull` line. Now a client asks only when the server may
//! know lost files it has not named (start, reconnection, a `Notify`, a
//! reply with news, `more`), and the server sends `Notify` when it finds
//! a file lost while it runs.

mod common;

use common::*;
use std::time::{Duration, Instant};

/// The `request=` values of the connection log's lines after the first
/// `skip` lines.
fn requests_after(log: &str, skip: usize) -> Vec<String> {
    log.lines()
        .skip(skip)
        .filter_map(|l| {
            let at = l.find("request=")? + "request=".len();
            let rest = &l[at..];
            let end = rest.find(' ').unwrap_or(rest.len());
            Some(rest[..end].to_owned())
        })
        .collect()
}

/// Two devices of one user, synced and left alone, pulling every 0.5 s
/// against a server with `--actor-idle 1`: over 6 s every line of the
/// connection log is a pull, and the user's worker thread, once retired,
/// stays retired. Main's client asked `ListLost` after each pull (a
/// `request=lost` line for every `request=pull` line, and the worker
/// started again about every second).
#[test]
fn an_idle_pair_only_pulls_and_its_worker_stays_retired() {
    let logs = tempfile::tempdir().expect("temp dir");
    let server = Server::options().args(&["--actor-idle", "1"]).start();
    let a = tempfile::tempdir().expect("temp dir");
    let b = tempfile::tempdir().expect("temp dir");
    let (a, b) = (a.path(), b.path());
    write(a, "notes.txt", "idle\n");
    write(a, "d/more.txt", "still idle\n");
    settle();
    let user = new_user(server.port, a);
    let (ca, cb) = watching_pair(
        server.port,
        (a, &logs.path().join("a.err")),
        (b, &logs.path().join("b.err")),
        &user,
    );
    converge("B joined", &[a, b]);
    // The joins' and first pulls' own questions are answered; the worker
    // then retires after its second of idleness.
    let retired = eventually(Duration::from_secs(15), || actor_threads(server.pid()) == 0);
    assert!(
        retired,
        "the idle user's worker never retired:\n{}",
        server.conn_log()
    );
    let skip = server.conn_log().lines().count();
    let (mut samples, mut awake) = (0u32, 0u32);
    let until = Instant::now() + Duration::from_secs(6);
    while Instant::now() < until {
        samples += 1;
        if actor_threads(server.pid()) > 0 {
            awake += 1;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = server.conn_log();
    let requests = requests_after(&log, skip);
    let pulls = requests.iter().filter(|r| *r == "pull").count();
    let others: Vec<&String> = requests.iter().filter(|r| *r != "pull").collect();
    assert!(
        others.is_empty(),
        "an idle pair logged more than pulls: {others:?} ({pulls} pulls)\n{}",
        log.lines()
            .skip(skip)
            .take(12)
            .collect::<Vec<_>>()
            .join("\n")
    );
    // Two devices at 0.5 s for 6 s: about 24 pulls; at least some.
    assert!(pulls >= 8, "{pulls} pulls in 6 s:\n{log}");
    assert_eq!(
        awake,
        0,
        "the idle user's worker ran in {awake} of {samples} samples\nA:\n{}\nB:\n{}",
        ca.log_tail(3000),
        cb.log_tail(3000)
    );
    assert_eq!(tree(a), tree(b));
}

/// A file removed from the server's folder by hand while the server runs
/// is found lost by a new device's fetch; the server tells the
/// running devices (`Notify`, R-4.4.4), the one that holds it puts it back
/// and the new device gets it. The devices ask no `ListLost`
/// meanwhile at their periodic pulls, so this is the `Notify` working.
#[test]
fn a_file_found_lost_while_the_server_runs_comes_back_from_a_running_device() {
    let logs = tempfile::tempdir().expect("temp dir");
    let server = Server::options().args(&["--actor-idle", "1"]).start();
    let a = tempfile::tempdir().expect("temp dir");
    let c = tempfile::tempdir().expect("temp dir");
    let (a, c) = (a.path(), c.path());
    let gone = Rng::new(27).bytes(40_000);
    write(a, "gone.bin", &gone);
    write(a, "keep.txt", "kept\n");
    settle();
    let user = new_user(server.port, a);
    let ca = Client::options(server.port, a)
        .log(&logs.path().join("a.err"))
        .start();
    let on_server = server.user_dir(&user).join("gone.bin");
    let synced = eventually(Duration::from_secs(15), || {
        std::fs::read(&on_server).is_ok_and(|b| b == gone)
    });
    assert!(synced, "gone.bin never reached the server");
    // A idle: its worker retires, and A asks nothing more.
    assert!(
        eventually(Duration::from_secs(15), || actor_threads(server.pid()) == 0),
        "the worker never retired"
    );
    std::fs::remove_file(&on_server).expect("remove by hand");
    let cc = Client::options(server.port, c)
        .user(Some(&user))
        .log(&logs.path().join("c.err"))
        .start();
    let back = eventually(Duration::from_secs(20), || {
        std::fs::read(&on_server).is_ok_and(|b| b == gone)
    });
    assert!(
        back,
        "the server's copy never came back\nserver log:\n{}\nA:\n{}",
        server.conn_log(),
        ca.log_tail(4000)
    );
    // The server places the copy before it logs it (see
    // e2e_lost_server_copy): waited for, up to 10 s.
    server.wait_log("request=restore-lost");
    // C's held-back download gets it at its next try (R-5.6.8: 5 s).
    let arrived = eventually(Duration::from_secs(20), || {
        std::fs::read(c.join("gone.bin")).is_ok_and(|b| b == gone)
    });
    assert!(arrived, "C never got gone.bin:\n{}", cc.log_tail(4000));
    converge("after the restore", &[a, c]);
}
