//! Bad input: each offending connection gets an Error frame and a log line and
//! is closed; nothing is written outside the user's folder; others carry on.

mod common;

use cloudservice::protocol::{
    ContentHash, ErrorCode, FileBegin, HelloMode, Message, PushStatus, UserId,
};
use common::*;
use std::time::Duration;

/// Sends raw bytes on a fresh ready connection and expects one Error with
/// `code` followed by the close.
fn expect_rejected(server: &Server, user: UserId, bytes: &[u8], code: ErrorCode) {
    let mut c = WireClient::new_client(server.addr, user);
    c.send_raw(bytes);
    let frames = c.until_closed();
    assert_eq!(frames.len(), 1, "one error frame, then close: {frames:?}");
    assert_error(&frames[0].message, code);
}

#[test]
fn traversal_and_malformed_paths_are_refused() {
    let server = Server::start();
    let a = WireClient::new_user(server.addr);
    let mut bystander = WireClient::new_client(server.addr, a.user);
    let bad_paths: Vec<&[u8]> = vec![
        b"../x",
        b"a/../../x",
        b"/etc/passwd",
        b"..\\x",
        b"a\0b",
        b".cloudservice/index",
        b"a//b",
        b"\xff\xfe",
    ];
    for bad in bad_paths {
        let frame = raw::frame(0x30, 5, &raw::path_field(bad));
        expect_rejected(&server, a.user, &frame, ErrorCode::BadPath);
    }
    let deep = vec!["d"; 65].join("/");
    expect_rejected(
        &server,
        a.user,
        &raw::frame(0x30, 5, &raw::path_field(deep.as_bytes())),
        ErrorCode::BadPath,
    );
    let long = "n".repeat(256);
    expect_rejected(
        &server,
        a.user,
        &raw::frame(0x30, 5, &raw::path_field(long.as_bytes())),
        ErrorCode::BadPath,
    );
    // A rename whose target climbs out.
    let mut payload = 0u64.to_be_bytes().to_vec();
    payload.extend(raw::path_field(b"a"));
    payload.extend(raw::path_field(b"../../escaped"));
    expect_rejected(
        &server,
        a.user,
        &raw::frame(0x33, 6, &payload),
        ErrorCode::BadPath,
    );

    let parent = server.data.parent().unwrap();
    assert!(!parent.join("x").exists() && !parent.join("escaped").exists());
    assert!(tree(&server.user_dir(&a.user)).is_empty());
    // Every refused frame is logged (the log is written asynchronously).
    assert!(
        eventually(Duration::from_secs(10), || server
            .conn_log()
            .matches("request=frame outcome=error")
            .count()
            >= 10),
        "{}",
        server.conn_log()
    );
    // The other connection of the same user was not disturbed.
    let ack = bystander.put("still-fine.txt", b"ok", 0).expect("push");
    assert_eq!(ack.status, PushStatus::Applied);
}

#[test]
fn malformed_frames_close_only_that_connection() {
    let server = Server::start();
    let a = WireClient::new_user(server.addr);
    let mut other = WireClient::new_client(server.addr, a.user);

    let mut huge = b"CS\x01\x10\0\0\0\x01".to_vec();
    huge.extend_from_slice(&u32::MAX.to_be_bytes());
    expect_rejected(&server, a.user, &huge, ErrorCode::BadFrame);
    expect_rejected(
        &server,
        a.user,
        b"XX\x01\x10\0\0\0\x01\0\0\0\x08",
        ErrorCode::BadFrame,
    );
    expect_rejected(
        &server,
        a.user,
        &raw::frame(0x7e, 1, b""),
        ErrorCode::BadFrame,
    );
    expect_rejected(
        &server,
        a.user,
        &raw::frame(0x10, 1, b"\0\0"),
        ErrorCode::BadFrame,
    );
    expect_rejected(
        &server,
        a.user,
        &raw::frame(0x10, 1, &[0u8; 9]),
        ErrorCode::BadFrame,
    );
    // Server-only messages from a client.
    expect_rejected(
        &server,
        a.user,
        &raw::frame(0x13, 1, &[0u8; 8]),
        ErrorCode::WrongPhase,
    );
    // A chunk with no open upload.
    expect_rejected(
        &server,
        a.user,
        &raw::frame(0x21, 1, b"data"),
        ErrorCode::WrongPhase,
    );

    // Push before the handshake.
    let mut early = WireClient::connect(server.addr);
    early.send_raw(&raw::frame(0x30, 1, &raw::path_field(b"x")));
    let frames = early.until_closed();
    assert_error(&frames[0].message, ErrorCode::WrongPhase);

    // Half a frame, then silence, does not block anyone.
    let mut stall = WireClient::new_client(server.addr, a.user);
    stall.send_raw(b"CS\x01\x10\0\0");
    let ack = other.put("ok.txt", b"fine", 0).expect("push");
    assert_eq!(ack.status, PushStatus::Applied);
    server.wait_log("frame payload of 4294967295 bytes is too long");
}

#[test]
fn uploads_with_wrong_size_or_hash_are_never_visible() {
    let server = Server::start();
    let mut a = WireClient::new_user(server.addr);
    a.put("keep.txt", b"good version", 0).expect("v1");

    // Hash mismatch: error, connection stays, old version intact.
    let rid = a.send(Message::FileBegin(FileBegin {
        version: 1,
        size: 4,
        hash: ContentHash::of(b"abcd"),
        path: p("keep.txt"),
    }));
    a.send_with(rid, Message::FileChunk(b"abce".to_vec()));
    a.send_with(rid, Message::FileEnd);
    assert_error(&a.reply(rid), ErrorCode::HashMismatch);
    // Too few bytes.
    let rid = a.send(Message::FileBegin(FileBegin {
        version: 1,
        size: 10,
        hash: ContentHash::of(b"0123456789"),
        path: p("keep.txt"),
    }));
    a.send_with(rid, Message::FileChunk(b"01234".to_vec()));
    a.send_with(rid, Message::FileEnd);
    assert_error(&a.reply(rid), ErrorCode::SizeMismatch);
    assert_eq!(
        std::fs::read(server.user_dir(&a.user).join("keep.txt")).unwrap(),
        b"good version"
    );

    // Too many bytes: error and close.
    let rid = a.send(Message::FileBegin(FileBegin {
        version: 1,
        size: 2,
        hash: ContentHash::of(b"ab"),
        path: p("keep.txt"),
    }));
    a.send_with(rid, Message::FileChunk(b"abc".to_vec()));
    let frames = a.until_closed();
    assert_error(&frames[0].message, ErrorCode::SizeMismatch);
    assert_eq!(
        std::fs::read(server.user_dir(&a.user).join("keep.txt")).unwrap(),
        b"good version"
    );
    // No temp file leaks into the visible folder.
    assert_eq!(tree(&server.user_dir(&a.user)).len(), 1);
}

#[test]
fn a_symlink_planted_on_the_server_is_never_followed() {
    let server = Server::start();
    let mut a = WireClient::new_user(server.addr);
    a.push(Message::MakeDir { path: p("real") }).expect("mkdir");
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), b"secret").unwrap();
    std::os::unix::fs::symlink(outside.path(), server.user_dir(&a.user).join("link")).unwrap();

    let err = a.put("link/evil.txt", b"evil", 0).expect_err("refused");
    assert_eq!(err.code, ErrorCode::Storage);
    assert!(!outside.path().join("evil.txt").exists());
    let err = a
        .push(Message::MakeDir {
            path: p("link/sub"),
        })
        .expect_err("refused");
    assert_eq!(err.code, ErrorCode::Storage);
    assert!(!outside.path().join("sub").exists());
    let err = a.fetch("link/secret").expect_err("not served");
    assert_eq!(err.code, ErrorCode::NotFound);
    assert_eq!(
        std::fs::read(outside.path().join("secret")).unwrap(),
        b"secret"
    );
}

#[test]
fn repeated_guesses_are_rate_limited() {
    let server = Server::start();
    let real = WireClient::new_user(server.addr);
    // Ten failed guesses (the limit, PROTOCOL.md) …
    for i in 0..10u8 {
        let mut c = WireClient::connect(server.addr);
        let guess = UserId([i + 1; 16]);
        let err = c
            .hello(HelloMode::NewClient, guess, 0)
            .expect_err("refused");
        assert_eq!(err.code, ErrorCode::UnknownUser);
    }
    // … then even the right ID is refused from this address for a while,
    // with the retryable TooManyAttempts.
    let mut c = WireClient::connect(server.addr);
    let err = c
        .hello(HelloMode::NewClient, real.user, 0)
        .expect_err("limited");
    assert_eq!(err.code, ErrorCode::TooManyAttempts);
    assert!(err.code.is_retryable());
    server.wait_log("too many failed attempts");
}

#[test]
fn a_client_that_never_reads_cannot_make_the_server_buffer_without_bound() {
    let server = Server::start();
    let mut a = WireClient::new_user(server.addr);
    // A tree whose full listing is large (~1,000 entries, ~60 KiB a listing).
    for i in 0..1000 {
        a.push(Message::MakeDir {
            path: p(&format!("dir-{i:04}-with-a-longer-name")),
        })
        .expect("mkdir");
    }
    let before = rss_kib(server.pid());
    let mut flood = WireClient::new_client(server.addr, a.user);
    flood
        .stream
        .set_write_timeout(Some(std::time::Duration::from_secs(2)))
        .unwrap();
    let pull = cloudservice::protocol::Frame::new(9, Message::Pull { cursor: 0 }).to_bytes();
    let batch: Vec<u8> = pull.repeat(1000);
    let mut sent = 0usize;
    // Stops once the server stops reading (the write times out) or after
    // 2,000,000 requests (40 MB, far beyond socket buffers), whichever first.
    while sent < 2_000_000 && std::io::Write::write_all(&mut flood.stream, &batch).is_ok() {
        sent += 1000;
    }
    assert!(
        sent < 2_000_000,
        "the server kept reading a client that never reads"
    );
    let grown = rss_kib(server.pid()).saturating_sub(before);
    eprintln!(
        "server RSS grew by {grown} KiB; {sent} requests written before the server stopped reading"
    );
    assert!(
        grown < 64 * 1024,
        "server grew by {grown} KiB for one non-reading client"
    );
    // Everyone else is still served.
    let ack = a.put("still.txt", b"served", 0).expect("push");
    assert_eq!(ack.status, PushStatus::Applied);
}

/// A blocking connection to `server` from 127.0.0.2, .3 or .4 (by `i`):
/// three source addresses give three times loopback's ephemeral ports, so
/// 15,000 connections fit even while other tests' sockets sit in TIME_WAIT
/// (from 127.0.0.1 alone, connect failed with EADDRNOTAVAIL on a busy
/// machine).
fn silent_connection(server: std::net::SocketAddr, i: u32) -> std::net::TcpStream {
    use std::os::fd::OwnedFd;
    let source = std::net::Ipv4Addr::new(127, 0, 0, 2 + (i % 3) as u8);
    let stream = cloudservice::load::socket::connect_from(server, Some(source))
        .unwrap_or_else(|e| panic!("connect {i} from {source}: {e}"));
    let stream = std::net::TcpStream::from(OwnedFd::from(stream));
    stream.set_nonblocking(false).expect("blocking");
    stream
}

#[test]
fn fifteen_thousand_silent_connections_are_freed_by_the_handshake_timeout() {
    // What the handshake timeout frees: without the per-address bound of
    // which would evict all but the newest of each address.
    let server = Server::start_with(&[
        "--handshake-timeout",
        "5",
        "--max-handshakes-per-address",
        "100000",
    ]);
    let pid = server.pid();
    let baseline = fds(pid);
    let started = std::time::Instant::now();
    let mut silent = Vec::with_capacity(15_000);
    for i in 0..15_000 {
        silent.push(silent_connection(server.addr, i));
    }
    assert!(
        eventually(std::time::Duration::from_secs(20), || fds(pid)
            >= baseline + 14_000),
        "server accepted them"
    );
    eprintln!("15,000 connected and accepted in {:?}", started.elapsed());
    // A real client is served while they sit there.
    let mut a = WireClient::new_user(server.addr);
    assert_eq!(
        a.put("x.txt", b"x", 0).expect("push").status,
        PushStatus::Applied
    );
    // All of them get closed; the server's descriptors return to the baseline
    // plus the real client and its user's open journal.
    assert!(
        eventually(std::time::Duration::from_secs(30), || fds(pid)
            <= baseline + 8),
        "silent connections freed: {} open, baseline {baseline}",
        fds(pid)
    );
    eprintln!("all freed after {:?}", started.elapsed());
    for s in &mut silent {
        s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .ok();
        let mut buf = [0u8; 64];
        // An Error Timeout frame (or nothing), then end of stream.
        let mut total = 0;
        loop {
            match std::io::Read::read(s, &mut buf) {
                Ok(0) => break,
                Ok(n) => total += n,
                Err(e) => panic!("connection not closed by the server: {e}"),
            }
        }
        assert!(total <= 64);
    }
    let ack = a.put("y.txt", b"y", 0).expect("still served");
    assert_eq!(ack.status, PushStatus::Applied);
}
