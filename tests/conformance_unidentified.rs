//! What a peer costs the server before and after it identifies itself, and
//! the idle timer on slow peers (outside tester breaker16 F3, F5):
//!
//! - bytes still arriving keep a connection alive, whole frame or not, TLS
//!   record or not: an upload slower than `--idle-timeout` per
//!   chunk finishes, and a silent connection is still cut;
//! - before its Hello a connection may not declare a frame larger than a
//!   KeyHello: refused at the header, so a silent peer holds
//!   almost nothing (RSS measured);
//! - connections that never send a Hello cannot lock identified devices
//!   out: at `--max-connections` the oldest unidentified one is evicted for
//!   a newcomer, at `--max-handshakes-per-address` the oldest of that
//!   address; an identified connection is never evicted.
//!
//! Run against another binary with `CLOUD_TEST_SERVER_BIN` (main's before
//! this change fails every test here).

mod common;

use common::procs::rss_kib;
use common::raw::{self, Got, Raw, BAD_FRAME, BUSY, FILE_CHUNK, FILE_END, TIMEOUT, WELCOME};
use common::{Conn, Server};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::time::{Duration, Instant};

/// Writes `bytes` to `c` spread evenly over `over`, in `pieces` writes.
/// Under TLS the bytes are sealed into records first (up to 16 KiB each)
/// and the *records* are trickled, so the server sees partial records for
/// seconds, as on a slow uplink.
fn trickle(c: &mut Raw, bytes: &[u8], pieces: usize, over: Duration) {
    let wire: Vec<u8> = match &mut c.stream {
        Conn::Plain(_) => bytes.to_vec(),
        Conn::Tls(t) => {
            let mut sealed = Vec::new();
            for part in bytes.chunks(16 * 1024) {
                t.conn.writer().write_all(part).expect("seal");
                while t.conn.wants_write() {
                    t.conn.write_tls(&mut sealed).expect("records");
                }
            }
            sealed
        }
    };
    let step = wire.len().div_ceil(pieces);
    let pause = over / pieces as u32;
    for piece in wire.chunks(step) {
        let tcp = match &mut c.stream {
            Conn::Plain(s) => s,
            Conn::Tls(t) => &mut t.sock,
        };
        tcp.write_all(piece)
            .expect("the server keeps reading a slow upload");
        std::thread::sleep(pause);
    }
}

/// A 64 KiB FileChunk taking 4 s to arrive, under `--idle-timeout 1.5`:
/// the upload completes; then, silent, the connection is cut.
fn slow_upload_survives(server: &Server) {
    let (mut c, _user, _client) = Raw::new_user(server.addr);
    let content: Vec<u8> = (0..64 * 1024u32).map(|i| (i * 7 % 251) as u8).collect();
    c.send(&raw::file_begin(2, 0, &content, "slow.bin"));
    let mut rest = raw::frame(FILE_CHUNK, 2, &content);
    rest.extend_from_slice(&raw::frame(FILE_END, 2, &[]));
    let started = Instant::now();
    trickle(&mut c, &rest, 80, Duration::from_secs(4));
    let (status, version, path) = c.expect_ack(2);
    assert_eq!(
        (status, version, path.as_str()),
        (0, 1, "slow.bin"),
        "applied after {:?}",
        started.elapsed()
    );
    // Nothing moving now: the idle timer runs out as before.
    c.expect_error(TIMEOUT, 0);
    c.expect_closed();
}

///
#[test]
fn an_upload_slower_than_the_idle_timeout_finishes_plaintext() {
    let server = Server::options()
        .plaintext()
        .args(&["--idle-timeout", "1.5"])
        .start();
    slow_upload_survives(&server);
    assert!(server.conn_log().contains("request=push-file"));
}

///
#[test]
fn an_upload_slower_than_the_idle_timeout_finishes_tls() {
    let server = Server::options().args(&["--idle-timeout", "1.5"]).start();
    slow_upload_survives(&server);
}

/// Reads until the server closes or `limit` passes; the frames' bytes.
fn read_all(stream: &mut TcpStream, limit: Duration) -> (Vec<u8>, bool) {
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        stream
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .expect("timeout");
        match stream.read(&mut buf) {
            Ok(0) => return (got, true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return (got, true),
            Err(_) => break,
        }
    }
    (got, false)
}

/// The Error code of the first frame in `bytes`, if it is an Error.
fn error_code(bytes: &[u8]) -> Option<u16> {
    (bytes.len() >= 14 && bytes[3] == raw::ERROR)
        .then(|| u16::from_be_bytes([bytes[12], bytes[13]]))
}

///
#[test]
fn a_first_frame_larger_than_a_key_hello_is_refused_at_its_header() {
    let server = Server::options().plaintext().start();
    // 126 bytes is one more than the largest KeyHello; 1 MiB is what
    // breaker16's slowloris announced. No payload byte is sent.
    for len in [126u32, 1 << 20] {
        for kind in [raw::HELLO, raw::KEY_HELLO, raw::PING] {
            let mut s = TcpStream::connect(server.addr).expect("connect");
            let mut header = vec![b'C', b'S', 1, kind, 0, 0, 0, 1];
            header.extend_from_slice(&len.to_be_bytes());
            s.write_all(&header).expect("header");
            let (got, closed) = read_all(&mut s, Duration::from_secs(3));
            assert_eq!(
                (error_code(&got), closed),
                (Some(BAD_FRAME), true),
                "kind {kind:#x} len {len}: {:?}",
                String::from_utf8_lossy(&got)
            );
            // Request ID 0: a header failure.
            assert_eq!(&got[4..8], &[0, 0, 0, 0]);
            let text = String::from_utf8_lossy(&got);
            assert!(text.contains("has not sent its Hello"), "{text}");
        }
    }
    assert!(common::eventually(Duration::from_secs(5), || server
        .conn_log()
        .matches("request=frame outcome=error")
        .count()
        >= 6));
    // A real KeyHello of the largest size still gets in.
    let mut c = Raw::connect(server.addr);
    c.send(&raw::key_hello(1, 1, [0; 16], 0, [0; 32], &[b'n'; 64]));
    c.expect(raw::KEY_WELCOME, 1);
}

///
#[test]
fn the_same_over_tls() {
    let server = Server::start();
    let mut c = Raw::connect(server.addr);
    let mut header = vec![b'C', b'S', 1, raw::HELLO, 0, 0, 0, 1];
    header.extend_from_slice(&(1u32 << 20).to_be_bytes());
    c.send(&header);
    c.expect_error(BAD_FRAME, 0);
    c.expect_closed();
}

///
#[test]
fn silent_peers_announcing_a_mebibyte_cost_the_server_little() {
    let server = Server::options().plaintext().start();
    let pid = server.pid();
    // Let the server settle before the baseline.
    let warm = Raw::new_user(server.addr);
    drop(warm);
    std::thread::sleep(Duration::from_millis(300));
    let before = rss_kib(pid);
    let mut held = Vec::new();
    let mut header = vec![b'C', b'S', 1, raw::HELLO, 0, 0, 0, 1];
    header.extend_from_slice(&(1u32 << 20).to_be_bytes());
    let payload = vec![0u8; (1 << 20) - 1];
    for _ in 0..150 {
        let mut s = TcpStream::connect(server.addr).expect("connect");
        s.set_write_timeout(Some(Duration::from_secs(5))).ok();
        // A refused header closes the connection: later writes may fail.
        let _ = s.write_all(&header);
        let _ = s.write_all(&payload);
        held.push(s);
    }
    std::thread::sleep(Duration::from_millis(500));
    let during = rss_kib(pid);
    eprintln!(
        "server RSS: {before} KiB before, {during} KiB with 150 peers that announced 1 MiB each"
    );
    // Main's server before this change buffered each announced MiB:
    // +150 MiB. Now each is refused at its header.
    assert!(
        during < before + 30 * 1024,
        "RSS grew from {before} KiB to {during} KiB"
    );
    drop(held);
    // A device still gets in.
    let _ = Raw::new_user(server.addr);
}

/// A TCP connection to `server` from `source` (any 127.x.y.z is this host).
fn connect_from(source: Ipv4Addr, server: SocketAddr) -> TcpStream {
    use rustix::net::{bind, connect, socket, AddressFamily, SocketType};
    let SocketAddr::V4(v4) = server else {
        panic!("IPv4 server address expected: {server}");
    };
    let fd = socket(AddressFamily::INET, SocketType::STREAM, None).expect("socket");
    bind(&fd, &SocketAddrV4::new(source, 0)).expect("bind source");
    connect(&fd, &v4).expect("connect");
    TcpStream::from(fd)
}

/// Whether the server closed `s` with Error `Busy` (evicted) within
/// `limit`, or left it open and silent.
fn evicted(s: &mut TcpStream, limit: Duration) -> bool {
    let (got, closed) = read_all(s, limit);
    match (closed, error_code(&got)) {
        (true, Some(BUSY)) => true,
        (false, None) => false,
        other => panic!("expected Busy and a close, or silence: {other:?}"),
    }
}

///
#[test]
fn a_flood_of_silent_connections_does_not_lock_devices_out() {
    let server = Server::options()
        .plaintext()
        .args(&["--max-connections", "20", "--handshake-timeout", "30"])
        .start();
    let (first, user, client) = Raw::new_user(server.addr);
    drop(first);
    // Ten identified connections (other users), then 40 silent ones from
    // this address: the limit is reached and passed twice over.
    let mut ready: Vec<Raw> = (0..10).map(|_| Raw::new_user(server.addr).0).collect();
    let mut silent: Vec<TcpStream> = (0..40)
        .map(|_| TcpStream::connect(server.addr).expect("connect"))
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    // The device comes back and syncs (main's server: Busy, every time).
    let mut device = Raw::connect(server.addr);
    device.send(&raw::hello(1, 3, user, client));
    device.expect(WELCOME, 1);
    device.send(&raw::upload(2, 0, b"through the flood", "f.txt", 1024));
    assert_eq!(device.expect_ack(2).0, 0, "applied");
    assert_eq!(
        server.copy_of(&raw::hex(&user), "f.txt").0,
        b"through the flood"
    );
    // No identified connection was evicted: each still answers a Ping.
    for (i, c) in ready.iter_mut().enumerate() {
        c.send(&raw::frame(raw::PING, 7, &[]));
        match c.read(Duration::from_secs(5)) {
            Got::Frame(f) if f.kind == raw::PONG => {}
            other => panic!("identified connection {i}: {other:?}"),
        }
    }
    // The oldest silent ones made room: they were told Busy and closed;
    // the newest still wait for their Hello.
    assert!(evicted(&mut silent[0], Duration::from_secs(2)));
    assert!(!evicted(&mut silent[39], Duration::from_millis(300)));
    drop(silent);
    std::thread::sleep(Duration::from_millis(500));
    // Every slot identified: a newcomer is refused Busy, as before.
    let mut more: Vec<Raw> = Vec::new();
    while ready.len() + more.len() + 1 < 20 {
        more.push(Raw::new_user(server.addr).0);
    }
    let mut late = TcpStream::connect(server.addr).expect("connect");
    late.write_all(&raw::hello(1, 1, [0; 16], 0)).ok();
    let (got, _) = read_all(&mut late, Duration::from_secs(3));
    assert_eq!(
        error_code(&got),
        Some(BUSY),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
    let log = server.conn_log();
    assert!(log.contains("evicted before its Hello"), "{log}");
}

///
#[test]
fn silent_connections_of_one_address_evict_only_that_address() {
    let server = Server::options()
        .plaintext()
        .args(&[
            "--max-handshakes-per-address",
            "4",
            "--handshake-timeout",
            "30",
        ])
        .start();
    let other = Ipv4Addr::new(127, 0, 0, 2);
    let here = Ipv4Addr::new(127, 0, 0, 1);
    let mut theirs: Vec<TcpStream> = (0..3).map(|_| connect_from(other, server.addr)).collect();
    let mut ours: Vec<TcpStream> = (0..10).map(|_| connect_from(here, server.addr)).collect();
    std::thread::sleep(Duration::from_millis(300));
    // The six oldest of this address made room for its newcomers.
    for (i, s) in ours.iter_mut().enumerate() {
        assert_eq!(evicted(s, Duration::from_millis(500)), i < 6, "ours[{i}]");
    }
    // The other address's three were not touched.
    for (i, s) in theirs.iter_mut().enumerate() {
        assert!(!evicted(s, Duration::from_millis(200)), "theirs[{i}]");
    }
    // A device behind the flooded address still gets in.
    let (_c, _user, _client) = Raw::new_user(server.addr);
}
