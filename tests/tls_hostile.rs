//! Hostile TLS input against the real server (issue 12): 15,000 connections
//! that send a ClientHello and go silent half-way through the handshake are
//! held cheaply, freed by the handshake timeout, and never stop a real client
//! from being served; a TLS 1.2-only ClientHello gets an alert, a handshake
//! stalled half-way is freed by the timeout and counted, a plaintext Hello (a
//! downgrade) is refused in one frame and creates nothing.

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
            // Long enough that the first connections are still open when
            // the last are sent on a loaded machine (sending took > 20 s).
            "--handshake-timeout",
            "60",
            // What 15,000 half-open handshakes cost and what the timeout
            // frees: without the per-address bound of, which would
            // evict all but the newest 256.
            "--max-handshakes-per-address",
            "100000",
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
    // Stopped however the test ends (a failed assertion left it running).
    let mut server = KillOnDrop(server);
    out.read_line(&mut first).unwrap();
    let port: u16 = first.trim().rsplit(':').next().unwrap().parse().unwrap();
    let pid = server.0.id();
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
        eventually(Duration::from_secs(90), || fd_count(pid) <= baseline + 8),
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
    let _ = server.0.kill();
    let _ = server.0.wait();
}

/// A child process killed when dropped, so a panicking test stops it.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// A `cloud-server` over TLS with its metrics endpoint; (process, port,
/// metrics address, data directory).
fn server_with_metrics(extra: &[&str]) -> (std::process::Child, u16, String, tempfile::TempDir) {
    let data = tempfile::tempdir().unwrap();
    let metrics = format!("127.0.0.1:{}", common::free_port());
    let mut server = Command::new(env!("CARGO_BIN_EXE_cloud-server"))
        .args(["0", "--bind", "127.0.0.1", "-q", "--metrics", &metrics])
        .args(extra)
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
    (server, port, metrics, data)
}

/// Open sockets of `pid` (files the server opens lazily, such as its
/// connection log, are not counted).
fn socket_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| {
        d.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .filter(|target| target.to_string_lossy().starts_with("socket:"))
            .count()
    })
}

/// The value of one series of the metrics endpoint (0 when absent).
fn metric(addr: &str, series: &str) -> f64 {
    let mut stream = TcpStream::connect(addr).expect("metrics endpoint");
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok();
    write!(stream, "GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n").expect("request");
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("response");
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

/// Everything the server sends until it closes (or `limit` passes).
fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (Vec<u8>, bool) {
    stream.set_read_timeout(Some(limit)).ok();
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => return (got, true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return (got, true),
            Err(_) => return (got, false),
        }
    }
    (got, false)
}

/// TLS failures before a Hello (a failed or timed-out handshake, a
/// transport mismatch) are `request=tls`, not refused connections.
const TLS_ERRORS: &str = "cloudservice_requests_total{request=\"tls\",outcome=\"error\"}";

#[test]
fn a_tls12_only_client_hello_gets_a_protocol_version_alert_not_a_hang() {
    let (mut server, port, metrics, _data) = server_with_metrics(&[]);
    let before = metric(&metrics, TLS_ERRORS);
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(&cloudservice::tls::server_stream::tls12_only_client_hello())
        .unwrap();
    let started = Instant::now();
    let (reply, closed) = read_until_closed(&mut s, Duration::from_secs(10));
    assert!(closed, "the server closed the connection");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "at once, not at a timeout"
    );
    // One alert record: type 21, length 2, fatal (2) protocol_version (70),
    // RFC 8446 §6.2 and §4.2.1.
    assert_eq!(reply.len(), 7, "{reply:02x?}");
    assert_eq!(
        (reply[0], &reply[3..5], reply[5], reply[6]),
        (0x15, &[0u8, 2][..], 2, 70),
        "{reply:02x?}"
    );
    assert!(
        eventually(Duration::from_secs(5), || metric(&metrics, TLS_ERRORS)
            >= before + 1.0),
        "the failed handshake is counted"
    );
    let _ = server.kill();
    let _ = server.wait();
}

/// a client whose ALPN list lacks `cloudservice/1` is refused
/// with the fatal alert `no_application_protocol` (RFC 7301 §3.2; in TLS
/// 1.3 it follows the ServerHello, so it is encrypted: a real rustls client
/// reads it) and the handshake never completes.
#[test]
fn a_client_hello_without_our_alpn_gets_no_application_protocol() {
    let (mut server, port, _metrics, _data) = server_with_metrics(&[]);
    let verifier = TrustVerifier::new(TrustPolicy::FirstUse { known: None });
    let mut config = client_config(Arc::new(verifier)).expect("config");
    Arc::make_mut(&mut config).alpn_protocols = vec![b"http/1.1".to_vec()];
    let name = ServerName::try_from("new.cloudservice").expect("name");
    let mut conn = rustls::ClientConnection::new(config, name).expect("client");
    let mut sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let error = loop {
        match conn.complete_io(&mut sock) {
            Ok(_) if !conn.is_handshaking() => panic!("the handshake completed"),
            Ok((0, 0)) => panic!("the server closed without an alert"),
            Ok(_) => {}
            Err(e) => break e,
        }
    };
    let tls_error = error
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>());
    assert_eq!(
        tls_error,
        Some(&rustls::Error::AlertReceived(
            rustls::AlertDescription::NoApplicationProtocol
        )),
        "{error}"
    );
    let _ = server.kill();
    let _ = server.wait();
}

#[test]
fn a_handshake_stalled_half_way_is_freed_by_the_timeout_and_counted() {
    let (mut server, port, metrics, _data) = server_with_metrics(&["--handshake-timeout", "1"]);
    let pid = server.id();
    let baseline = socket_count(pid);
    let before = metric(&metrics, TLS_ERRORS);
    // A real ClientHello; the server answers with its whole flight
    // (ServerHello ... Finished); the client never sends its Finished.
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(&client_hello()).unwrap();
    assert!(
        eventually(Duration::from_secs(5), || socket_count(pid) > baseline),
        "accepted"
    );
    let started = Instant::now();
    let (flight, closed) = read_until_closed(&mut s, Duration::from_secs(10));
    assert!(closed, "freed by the handshake timeout");
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "not before the timeout: {:?}",
        started.elapsed()
    );
    assert_eq!(flight.first(), Some(&0x16), "the ServerHello came first");
    assert!(
        eventually(Duration::from_secs(5), || socket_count(pid) <= baseline),
        "its socket is closed: {} open, baseline {baseline}",
        socket_count(pid)
    );
    assert!(
        eventually(Duration::from_secs(5), || metric(&metrics, TLS_ERRORS)
            >= before + 1.0),
        "the timeout is counted"
    );
    let _ = server.kill();
    let _ = server.wait();
}

#[test]
fn a_downgrade_to_plaintext_is_refused_in_one_frame_and_creates_nothing() {
    // What a man in the middle stripping TLS would send: a plaintext
    // NewUser Hello (PROTOCOL.md §4.1) straight to a TLS server.
    let (mut server, port, metrics, data) = server_with_metrics(&[]);
    let before = metric(&metrics, TLS_ERRORS);
    let mut hello = vec![0x43, 0x53, 0x01, 0x01, 0, 0, 0, 1, 0, 0, 0, 28, 1, 0, 0, 0];
    hello.extend_from_slice(&[0; 24]);
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(&hello).unwrap();
    let (reply, closed) = read_until_closed(&mut s, Duration::from_secs(10));
    assert!(closed, "closed after the answer");
    // One plaintext Error frame (§3.1, §4.5: kind 0x05, request 0, code 1
    // BadFrame) naming the mismatch (§12.4), and nothing else.
    assert!(reply.len() > 16, "{reply:02x?}");
    assert_eq!(
        &reply[..8],
        &[0x43, 0x53, 0x01, 0x05, 0, 0, 0, 0],
        "{reply:02x?}"
    );
    let len = u32::from_be_bytes(reply[8..12].try_into().unwrap()) as usize;
    assert_eq!(reply.len(), 12 + len, "exactly one frame");
    assert_eq!(&reply[12..14], &[0, 1], "BadFrame");
    let text = String::from_utf8_lossy(&reply[16..]);
    assert!(text.contains("requires TLS"), "{text}");
    let users = std::fs::read_dir(data.path().join("AllClients"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(users, 0, "no user was created from a plaintext Hello");
    assert!(
        eventually(Duration::from_secs(5), || metric(&metrics, TLS_ERRORS)
            >= before + 1.0),
        "the refusal is counted"
    );
    let _ = server.kill();
    let _ = server.wait();
}
