//! A push the server never answers does not stop a client for good
//! (stall14): the real `cloud-client` and `cloud-server` on loopback, a
//! plaintext relay between them that loses the client's first `MakeDir`
//! frame, as a server actor that retired lost one push in session 13's
//! soak. The server answers requests in order, so the Pong of the
//! ping the client sends after `PROBE_AFTER` (10 s) of silence with the
//! push in flight proves its answer will never come: the client says so,
//! reconnects and pushes it again. Before, it waited for that answer for
//! ever, with no round and no periodic pull.

mod common;

use common::relay::Relay;
use common::{Client, Server};
use std::path::Path;
use std::time::{Duration, Instant};

/// `MakeDir`'s kind byte (PROTOCOL.md §3.2).
const MAKE_DIR: u8 = 0x30;

/// Makes a user from `folder` with `--once`; returns its ID.
fn new_user(port: u16, folder: &Path) -> String {
    let out = Client::options(port, folder)
        .plaintext()
        .verbosity(common::Verbosity::Verbose)
        .run_once();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    text.lines()
        .find_map(|l| l.strip_prefix("user id: ").map(str::to_owned))
        .unwrap_or_else(|| panic!("no user id line\n{text}"))
}

#[test]
fn a_push_the_server_never_answers_is_sent_again_after_the_probe() {
    let server = Server::options().plaintext().start();
    let relay = Relay::losing(server.port, MAKE_DIR);
    let a = tempfile::tempdir().expect("temp dir");
    std::fs::write(a.path().join("seed.txt"), b"first").expect("write");
    let user = new_user(server.port, a.path());
    let logs = tempfile::tempdir().expect("temp dir");
    let log = logs.path().join("client.log");
    let mut client = Client::options(relay.port, a.path())
        .plaintext()
        .user(Some(&user))
        .verbosity(common::Verbosity::Verbose)
        .log(&log)
        .start();
    assert!(
        client.wait_log("watching", Duration::from_secs(20)),
        "{}",
        client.log_tail(4000)
    );
    std::fs::create_dir(a.path().join("made")).expect("mkdir");
    let made = Instant::now();
    let on_server = server.user_dir(&user).join("made");
    while !on_server.is_dir() {
        assert!(
            made.elapsed() < Duration::from_secs(40),
            "the directory never reached the server\n{}",
            client.log_tail(8000)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let took = made.elapsed();
    let text = client.log_tail(1 << 20);
    client.stop();
    assert!(
        text.contains("but never the push of made"),
        "the skipped answer was not named\n{text}"
    );
    // Found by the probe after 10 s of silence, not the 60 s keep-alive.
    assert!(took < Duration::from_secs(30), "took {took:?}");
    println!("the lost push was sent again after {took:?}");
}
