//! connectionLog.txt and the metrics as an operator reads them (issue 12,
//! outside tester breaker10's finding 9), with the real server:
//! - a TLS failure (bytes that are not a ClientHello, a plaintext client on
//!   a TLS server, a handshake that stops, a client that refuses the
//!   certificate) is a `request=tls` line with an exact detail and counts
//!   in `cloudservice_tls_failures_total`; `request=connect` and
//!   `cloudservice_refused_connections_total` are left to connections
//!   refused at `--max-connections`;
//! - every line recorded reaches the file when the server stops: N
//!   uploads, then SIGTERM at once, give N lines.
//!
//! `CLOUD_TEST_SERVER_BIN` runs them against another build.

mod common;

use common::{free_port, signal, Server, WireClient};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// The `request=` and `detail=` of each line.
fn requests(log: &str) -> Vec<(String, String)> {
    log.lines()
        .filter_map(|l| {
            let request = l.split(" request=").nth(1)?.split(' ').next()?.to_owned();
            let detail = l
                .split(" detail=\"")
                .nth(1)?
                .trim_end_matches('"')
                .to_owned();
            Some((request, detail))
        })
        .collect()
}

/// `GET /metrics`: the value of `name` (a line `name value`).
fn metric(addr: &str, name: &str) -> u64 {
    let mut s = TcpStream::connect(addr).expect("metrics");
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        .expect("ask");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read");
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} not in\n{text}"))
}

/// Waits until the log has `count` lines.
fn wait_lines(server: &Server, count: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let log = server.conn_log();
        if requests(&log).len() >= count || Instant::now() > deadline {
            return log;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn tls_failures_are_request_tls_not_refused_connections() {
    let metrics = format!("127.0.0.1:{}", free_port());
    let mut server = Server::options()
        .args(&[
            "--handshake-timeout",
            "1",
            "--max-connections",
            "1",
            "--metrics",
            &metrics,
        ])
        .start();
    let addr = server.addr;
    // 1. Bytes that are not a ClientHello.
    let mut s = TcpStream::connect(addr).expect("connect");
    s.write_all(b"GET / HTTP/1.1\r\n\r\n").expect("garbage");
    let mut sink = Vec::new();
    let _ = s.read_to_end(&mut sink);
    // Each failure is logged before its connection closes: waiting for its
    // line keeps the next probe under --max-connections 1.
    wait_lines(&server, 1);
    // 2. A plaintext frame on the TLS server: answered in plaintext.
    let mut s = TcpStream::connect(addr).expect("connect");
    s.write_all(b"CS\x01\x01\x00\x00\x00\x01\x00\x00\x00\x00")
        .expect("frame header");
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    assert!(
        answer.starts_with(b"CS"),
        "answered with a plaintext frame: {answer:?}"
    );
    wait_lines(&server, 2);
    // 3. A client that starts a handshake and stops: half a ClientHello.
    let mut s = TcpStream::connect(addr).expect("connect");
    s.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .expect("part");
    let _ = s.read_to_end(&mut sink);
    wait_lines(&server, 3);
    // 4. A client that refuses the certificate (a pin of another one).
    let folder = tempfile::tempdir().expect("folder");
    let port = addr.port().to_string();
    let folder_arg = folder.path().to_str().expect("utf-8").to_owned();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cloud-client"))
        .args([
            "127.0.0.1",
            &port,
            &folder_arg,
            "1",
            "--once",
            "--server-fingerprint",
        ])
        .arg("00".repeat(32))
        .output()
        .expect("client");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let log = wait_lines(&server, 4);
    let lines = requests(&log);
    let tls: Vec<&String> = lines
        .iter()
        .filter(|(r, _)| r == "tls")
        .map(|(_, d)| d)
        .collect();
    assert_eq!(tls.len(), 4, "four request=tls lines:\n{log}");
    assert_eq!(
        tls[0], "TLS handshake failed: received corrupt message of type InvalidContentType",
        "{log}"
    );
    assert_eq!(
        tls[1],
        "this server requires TLS; the client was started with --insecure-plaintext"
    );
    assert_eq!(
        tls[2],
        "TLS handshake not finished within 1 s (--handshake-timeout)"
    );
    // rustls's client sends no alert the server can read here: it closes.
    assert!(
        tls[3].starts_with("TLS handshake failed: received fatal alert: ")
            || tls[3].starts_with("TLS handshake abandoned: the client closed the connection"),
        "{log}"
    );
    assert!(
        !lines.iter().any(|(r, _)| r == "connect"),
        "no refusal yet:\n{log}"
    );
    assert_eq!(metric(&metrics, "cloudservice_tls_failures_total"), 4);
    assert_eq!(
        metric(&metrics, "cloudservice_refused_connections_total"),
        0
    );
    // A real refusal at --max-connections 1: one identified connection
    // held (a silent one would be evicted for the newcomer, R-3.5.3), a
    // second.
    let held = WireClient::new_user(addr);
    let mut refused = TcpStream::connect(addr).expect("refused");
    let _ = refused.read_to_end(&mut sink);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut log = server.conn_log();
    while !log.contains("request=connect") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        log = server.conn_log();
    }
    let lines = requests(&log);
    let connect: Vec<&String> = lines
        .iter()
        .filter(|(r, _)| r == "connect")
        .map(|(_, d)| d)
        .collect();
    assert_eq!(connect, ["connection limit reached"], "{log}");
    assert_eq!(
        metric(&metrics, "cloudservice_refused_connections_total"),
        1
    );
    assert_eq!(metric(&metrics, "cloudservice_tls_failures_total"), 4);
    drop(held);
    server.stop();
}

/// N acknowledged uploads, SIGTERM at once: N push-file lines in the file.
fn uploads_then_sigterm(plaintext: bool, uploads: usize) {
    let options = if plaintext {
        Server::options().plaintext()
    } else {
        Server::options()
    };
    let mut server = options.start();
    let mut client = WireClient::new_user(server.addr);
    for i in 0..uploads {
        client
            .put(&format!("f{i:04}.txt"), b"x", 0)
            .expect("push acknowledged");
    }
    signal(server.pid(), "TERM");
    let status = server.wait_exit(Duration::from_secs(30));
    assert!(status.is_some_and(|s| s.success()), "exit 0: {status:?}");
    drop(client);
    let log = std::fs::read_to_string(server.data.join("connectionLog.txt")).expect("log");
    let pushes = requests(&log)
        .iter()
        .filter(|(r, d)| r == "push-file" && d.contains("Applied"))
        .count();
    assert_eq!(pushes, uploads, "every acknowledged upload is in the file");
}

#[test]
fn every_logged_upload_reaches_the_file_at_sigterm() {
    for round in 0..3 {
        uploads_then_sigterm(round % 2 == 0, 300);
    }
}
