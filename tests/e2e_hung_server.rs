//! End-to-end: a client reconnecting to a server that accepts connections
//! and never answers (a hung server process, a port taken by something
//! else) is waiting on the network, not hung (outside tester breaker19
//! G3). Each attempt waits up to 15 s (the TLS handshake's limit, or the
//! Hello's answer's in plaintext); before, the client did not beat its
//! heartbeat meanwhile and `cloud-client status` said "not responding"
//! (the client process itself hung) from about 10 s into each wait. Now
//! status says it is connecting, with how long it has waited, and never
//! "not responding".
//!
//! The real binaries: A syncs with a real server (TLS, or plaintext), the
//! server is killed, and a listener that accepts and never answers takes
//! its port. `CLOUD_TEST_CLIENT_BIN` runs another build's client (and
//! `status`): both tests fail with a client from before the fix.
//!
//! Then (outside tester live20) the first attempt of a client started
//! against such a server says "connecting" too (before, nothing until that
//! attempt gave up 15 s in), and `versions`, a one-off command, says it is
//! connecting while it waits and stops at once on SIGTERM saying what it
//! waited for (before: silent for 15 s, and killed by the signal). Both
//! fail with 28a351d's client.

mod common;

use common::{status_json, status_until, write, Client, Server, ServerOptions, CONVERGE};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long the status is watched: two attempts' waits and more.
const WATCH: Duration = Duration::from_secs(35);

/// A listener on `port` that accepts every connection and never reads
/// or writes; ends (closing what it accepted) when dropped, or after
/// two minutes at the most.
struct Hung {
    stop: Arc<AtomicBool>,
}

impl Hung {
    fn on(port: u16) -> Hung {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind the server's port");
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::clone(&stop);
        std::thread::spawn(move || {
            let started = Instant::now();
            let mut held: Vec<TcpStream> = Vec::new();
            while !done.load(Ordering::SeqCst) && started.elapsed() < Duration::from_secs(120) {
                if let Ok((sock, _)) = listener.accept() {
                    if held.len() < 64 {
                        held.push(sock);
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Hung { stop }
    }
}

impl Drop for Hung {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// A in sync with `server`, then the server killed and a hung listener on
/// its port: for [`WATCH`] every status reading must not be "not
/// responding", and some must say A is connecting, with the time.
fn connecting_to_a_hung_server_is_not_hanging(mut server: Server) {
    let a = tempfile::tempdir().expect("tempdir");
    let logs = tempfile::tempdir().expect("tempdir");
    write(a.path(), "base.txt", "base");
    let user = common::new_user(server.port, a.path());
    let ca = Client::options(server.port, a.path())
        .user(Some(&user))
        .log(&logs.path().join("a.log"))
        .start();
    status_until("A in sync", a.path(), CONVERGE, |code, v| {
        code == 0 && v["in_sync"] == true
    });
    server.kill9();
    let _hung = Hung::on(server.port);
    let started = Instant::now();
    let mut connecting = Vec::new();
    while started.elapsed() < WATCH {
        let (code, v) = status_json(a.path());
        assert!(
            code != 3 && v["not_responding_for"].is_null(),
            "A waits for the server, it is not hung ({:?} in): exit {code} {v:#}\n{}",
            started.elapsed(),
            ca.log_tail(3000)
        );
        if let Some(p) = v["pending"].as_str() {
            if p.starts_with("connecting to the server: no answer for") {
                assert_eq!(v["connected"], false, "{v:#}");
                assert_eq!(v["in_sync"], false, "{v:#}");
                connecting.push(p.to_owned());
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    eprintln!(
        "{} readings said connecting, e.g. {:?}",
        connecting.len(),
        connecting.last()
    );
    assert!(
        connecting
            .iter()
            .any(|p| !p.ends_with(" 0 s") && !p.ends_with(" 1 s")),
        "status said A is connecting, with how long: {connecting:?}\n{}",
        ca.log_tail(3000)
    );
    assert_text_says_connecting(a.path());
}

/// The text report says it too, at some point of a wait.
fn assert_text_says_connecting(folder: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, text) = common::status_text(folder, false);
        if text.contains(
            "not in sync (not connected to the server; connecting to the server: no answer for",
        ) {
            return;
        }
        assert!(Instant::now() < deadline, "status text:\n{text}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// TLS: the wait is the handshake's.
#[test]
fn a_tls_server_that_never_answers_is_waited_on_not_hung() {
    connecting_to_a_hung_server_is_not_hanging(Server::start());
}

/// Plaintext: the wait is the Hello's answer's.
#[test]
fn a_plaintext_server_that_never_answers_is_waited_on_not_hung() {
    connecting_to_a_hung_server_is_not_hanging(ServerOptions::default().plaintext().start());
}

/// A in sync, stopped; the server killed and a hung listener on its port;
/// A started again: from its first attempt `status` says it is connecting
/// (this run's status: its own process ID), within 8 s of the start,
/// well inside the attempt's 15 s wait.
#[test]
fn the_first_attempt_at_start_up_says_connecting() {
    let mut server = Server::start();
    let a = tempfile::tempdir().expect("tempdir");
    write(a.path(), "base.txt", "base");
    let user = common::new_user(server.port, a.path());
    let mut ca = Client::options(server.port, a.path())
        .user(Some(&user))
        .start();
    status_until("A in sync", a.path(), CONVERGE, |code, v| {
        code == 0 && v["in_sync"] == true
    });
    ca.stop();
    server.kill9();
    let _hung = Hung::on(server.port);
    ca.restart();
    let started = Instant::now();
    let v = status_until(
        "A says it is connecting",
        a.path(),
        Duration::from_secs(8),
        |code, v| {
            code == 1
                && v["pid"].as_u64() == ca.pid().map(u64::from)
                && v["connected"] == false
                && v["pending"]
                    .as_str()
                    .is_some_and(|p| p.starts_with("connecting to the server: no answer for"))
        },
    );
    eprintln!(
        "A said {} {:?} after its start",
        v["pending"],
        started.elapsed()
    );
    assert!(
        v["last_sync"].is_string(),
        "the earlier run's last sync stays: {v:#}"
    );
    assert_text_says_connecting(a.path());
}

/// `cloud-client versions` against a server that accepts and never
/// answers: it says on stderr that it is connecting, with how long, and a
/// SIGTERM ends it at once (exit 1) with "asked to stop while connecting
/// to the server" or the handshake's step.
#[test]
fn versions_says_it_is_connecting_and_stops_on_sigterm() {
    let mut server = Server::start();
    let a = tempfile::tempdir().expect("tempdir");
    write(a.path(), "base.txt", "base");
    common::new_user(server.port, a.path());
    server.kill9();
    let _hung = Hung::on(server.port);
    let bin = std::env::var_os("CLOUD_TEST_CLIENT_BIN").map_or_else(
        || std::path::PathBuf::from(env!("CARGO_BIN_EXE_cloud-client")),
        std::path::PathBuf::from,
    );
    let mut cmd = std::process::Command::new(bin);
    cmd.arg("versions").arg(a.path());
    cmd.stdout(std::process::Stdio::null());
    cmd.stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("run versions");
    let lines = common::procs::Lines::drain(child.stderr.take().expect("stderr"));
    let said = lines.find(
        "connecting to the server: no answer for",
        Duration::from_secs(8),
    );
    assert!(
        said.is_some(),
        "versions says it is connecting: {:?}",
        lines.rest(Duration::from_millis(200))
    );
    let asked = Instant::now();
    common::procs::signal_unreaped(&mut child, "TERM");
    let exit = common::procs::wait_timeout(&mut child, Duration::from_secs(5));
    let took = asked.elapsed();
    if exit.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let rest = lines.rest(Duration::from_millis(500)).join("\n");
    eprintln!("versions exited {exit:?} {took:?} after SIGTERM: {said:?} then {rest}");
    assert!(
        exit.is_some_and(|e| e.code() == Some(1)) && took < Duration::from_secs(3),
        "versions exits 1 at once: {exit:?} after {took:?}; {rest}"
    );
    assert!(
        rest.contains("asked to stop while"),
        "the stop says what it ended: {rest}"
    );
}
