//! A pull the server never answers does not stop a client for good (s15,
//! PROTOCOL.md ): the real `cloud-client` and `cloud-server` on
//! loopback, a plaintext relay between them that loses the server's first
//! `ModeBatch` (the reply to the client's first `PullModes`). The server
//! answers requests in order, so the Pong of the ping the client
//! sends after `PROBE_AFTER` (10 s) of silence with the pull's reply not
//! in proves that reply will never come: the client says so, reconnects and
//! pulls again. Before, it waited for that reply for ever (no other pull
//! starts while one runs) and only warned after 60 s.

mod common;

use common::relay::Relay;
use common::{Client, Server, Verbosity};
use std::path::Path;
use std::time::{Duration, Instant};

/// `ModeBatch`'s kind byte (PROTOCOL.md §15).
const MODE_BATCH: u8 = 0x19;

/// Makes a user from `folder` with `--once`; returns its ID.
fn new_user(port: u16, folder: &Path) -> String {
    let out = Client::options(port, folder)
        .plaintext()
        .verbosity(Verbosity::Verbose)
        .run_once();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    text.lines()
        .find_map(|l| l.strip_prefix("user id: ").map(str::to_owned))
        .unwrap_or_else(|| panic!("no user id line\n{text}"))
}

#[test]
fn a_pull_the_server_never_answers_is_pulled_again_after_the_probe() {
    let server = Server::options().plaintext().start();
    let relay = Relay::losing_reply(server.port, MODE_BATCH);
    let a = tempfile::tempdir().expect("temp dir");
    std::fs::write(a.path().join("seed.txt"), b"first").expect("write");
    let user = new_user(server.port, a.path());
    // B joins through the relay: the reply to its first pull is lost.
    let b = tempfile::tempdir().expect("temp dir");
    let logs = tempfile::tempdir().expect("temp dir");
    let log = logs.path().join("client.log");
    let started = Instant::now();
    let client = Client::options(relay.port, b.path())
        .plaintext()
        .user(Some(&user))
        .verbosity(Verbosity::Verbose)
        .log(&log)
        .start();
    let seed = b.path().join("seed.txt");
    while !seed.is_file() {
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "the server's file never reached B: its pull waits for ever\n{}",
            client.log_tail(6000)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let took = started.elapsed();
    eprintln!("the lost pull was found out and pulled again; seed.txt on B after {took:?}");
    assert_eq!(std::fs::read(&seed).expect("read"), b"first");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        text.contains("never the pull"),
        "the log says which pull went unanswered\n{text}"
    );
    assert!(
        took >= Duration::from_secs(10),
        "found out by the probe after 10 s of silence, not at once: {took:?}"
    );
}
