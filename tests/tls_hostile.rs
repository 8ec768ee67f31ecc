//! Hostile TLS input against the real server (issue 12): 15,000 connections
//! that send a ClientHello and go silent half-way through the handshake are
//! held cheaply, freed by the handshake timeout, and never stop a real client
//! from being served.

mod common;

use cloudservice::tls::config::client_config;
use cloudservice::tls::trust::{TrustPolicy, TrustVerifier};
use common::{wait_timeout, write};
use rustls::pki_types::ServerName;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

fn rss_kib(pid: u32) -> usize {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    check()
}

/// A real ClientHello, as rustls's client sends it.
fn client_hello() -> Vec<u8> {
    let verifier = TrustVerifier::new(TrustPolicy::FirstUse { known: None });
    let config = client_config(Arc::new(verifier)).expect("config");
    let name = ServerName::try_from("new.cloudservice").expect("name");
    let mut conn = rustls::ClientConnection::new(config, name).expect("client");
    let mut hello = Vec::new();
    conn.write_tls(&mut hello).expect("hello");
    hello
}

#[test]
fn fifteen_thousand_half_open_tls_handshakes_are_freed_and_others_served() {
    let data = tempfile::tempdir().unwrap();
    let mut server = Command::new(env!("CARGO_BIN_EXE_cloud-server"))
        .args([
            "0",
            "--bind",
            "127.0.0.1",
            "--handshake-timeout",
            "20",
            "-q",
        ])
        .arg("--data-dir")
        .arg(data.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start cloud-server");
    let mut first = String::new();
    let mut out = BufReader::new(server.stdout.take().expect("stdout"));
    out.read_line(&mut first).unwrap();
    let port: u16 = first.trim().rsplit(':').next().unwrap().parse().unwrap();
    let pid = server.id();
    let baseline = fd_count(pid);
    let rss_before = rss_kib(pid);
    let hello = client_hello();
    let started = Instant::now();
    let mut silent = Vec::with_capacity(15_000);
    for _ in 0..15_000 {
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.write_all(&hello).expect("client hello");
        silent.push(s);
    }
    eprintln!("15,000 ClientHellos sent in {:?}", started.elapsed());
    assert!(
        eventually(Duration::from_secs(15), || fd_count(pid)
            >= baseline + 14_000),
        "server accepted them: {} open, baseline {baseline}",
        fd_count(pid)
    );
    let rss = rss_kib(pid).saturating_sub(rss_before);
    eprintln!(
        "15,000 half-open TLS handshakes in {:?}; server RSS +{rss} KiB ({:.1} KiB each)",
        started.elapsed(),
        rss as f64 / 15_000.0
    );
    // A real client over TLS is served while they sit there.
    let folder = tempfile::tempdir().unwrap();
    write(folder.path(), "x.txt", b"x\n");
    let mut client = Command::new(env!("CARGO_BIN_EXE_cloud-client"))
        .arg("127.0.0.1")
        .arg(port.to_string())
        .arg(folder.path())
        .args(["0.5", "--once", "-q"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let status = wait_timeout(&mut client, Duration::from_secs(60));
    if status.is_none() {
        let _ = client.kill();
    }
    assert!(status.is_some_and(|s| s.success()), "client served");
    assert!(
        eventually(Duration::from_secs(45), || fd_count(pid) <= baseline + 8),
        "half-open handshakes freed: {} open, baseline {baseline}",
        fd_count(pid)
    );
    // Each got its ServerHello flight, then the end of the stream.
    for s in silent.iter_mut().step_by(500) {
        s.set_read_timeout(Some(Duration::from_secs(5))).ok();
        let mut buf = [0u8; 4096];
        let mut total = 0;
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => total += n,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
                Err(e) => panic!("connection not closed by the server: {e}"),
            }
        }
        assert!(total > 0, "a ServerHello came back");
    }
    let _ = server.kill();
    let _ = server.wait();
}
