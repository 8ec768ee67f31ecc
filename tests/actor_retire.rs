//! A request that reaches a user's actor while it retires is answered
//! (regression: stall14). The soak of session 13 (seed 1796230967405806039,
//! `--actor-idle 0.2`) lost one push this way: the device waited for its
//! PushAck for ever and pushed nothing more.

mod common;

use cloudservice::protocol::{ErrorCode, Frame, Message};
use common::*;
use std::time::{Duration, Instant};

/// Pushes one at a time, each after a pause around the actor's idle period
/// (`--actor-idle 0.005`), so that many of them arrive while the actor is
/// retiring or has just retired: every one must be answered.
#[test]
fn every_push_that_meets_a_retiring_actor_is_answered() {
    let seed = seed("RETIRE_SEED");
    println!("seed {seed} (replay: RETIRE_SEED={seed})");
    let mut rng = Rng::new(seed);
    let server = Server::start_with(&["--actor-idle", "0.005"]);
    let mut a = WireClient::new_user(server.addr);
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut pushes = 0u32;
    while Instant::now() < deadline && pushes < 3_000 {
        std::thread::sleep(Duration::from_micros(2_000 + rng.below(8_000)));
        let rid = a.send(Message::MakeDir {
            path: p(&format!("d{pushes}")),
        });
        match a.read(Duration::from_secs(5)) {
            Read1::Frame(Frame {
                request_id,
                message: Message::PushAck(_),
            }) if request_id == rid => {}
            other => panic!("push {pushes} (request {rid}) answered {other:?}"),
        }
        pushes += 1;
    }
    println!("{pushes} pushes answered");
}

/// A connection whose actor retired is handed to the next actor started
/// for its user; when that one cannot open the user's state (here the
/// journal is a directory), the connection's requests were dropped without
/// a word: no answer, no log line, the client waiting for ever. Now it gets
/// an Error answering no request (ID 0, `Storage`) and is closed, so the
/// client reconnects; connectionLog.txt and the server log say so.
#[test]
fn a_connection_the_next_actor_cannot_adopt_is_told_and_closed() {
    let logs = tempfile::tempdir().expect("temp dir");
    let stderr = logs.path().join("server.err");
    let server = Server::options()
        .args(&["--actor-idle", "0.05"])
        .log(&stderr)
        .start();
    let mut a = WireClient::new_user(server.addr);
    a.put("f.txt", b"kept", 0).expect("push");
    let state = server
        .data
        .join(".cloudservice-server")
        .join(a.user.to_string());
    let journal = state.join("journal");
    assert!(journal.is_file(), "{}", journal.display());
    let retired = eventually(Duration::from_secs(10), || actor_threads(server.pid()) == 0);
    assert!(retired, "the actor retires after 0.05 s idle");
    std::fs::rename(&journal, state.join("journal.aside")).expect("journal aside");
    std::fs::create_dir(&journal).expect("a directory where the journal was");
    let rid = a.send(Message::MakeDir { path: p("d") });
    match a.read(Duration::from_secs(10)) {
        Read1::Frame(Frame {
            request_id: 0,
            message: Message::Error(e),
        }) => {
            assert_eq!(e.code, ErrorCode::Storage, "{}", e.message);
            assert!(!e.message.contains(".cloudservice-server"), "{}", e.message);
        }
        other => panic!("request {rid} after the actor retired: {other:?}"),
    }
    assert!(
        matches!(a.read(Duration::from_secs(10)), Read1::Closed),
        "closed"
    );
    let log = server.wait_log("request=adopt outcome=error");
    assert!(log.contains("cannot open the user's state"), "{log}");
    let said = eventually(Duration::from_secs(10), || {
        server.log_tail(1 << 20).contains("handed to a new worker")
    });
    assert!(said, "server log: {}", server.log_tail(1 << 20));
}
