//! Conformance of the real server with PROTOCOL.md §1 (encoding) and §3
//! (framing, bad frames, request IDs; order and flow control are in
//! conformance_ordering.rs): raw frames over loopback, exact reply bytes.
//! The requirement table is protocol-spec/REQUIREMENTS.md.

mod common;

use common::raw::*;
use common::{rss_kib, Server};
use std::net::SocketAddr;

/// A Ready connection of a fresh user.
fn ready(addr: SocketAddr) -> Raw {
    Raw::new_user(addr).0
}

/// Sends `bytes` on a Ready connection and expects Error `code` and close.
fn refused(addr: SocketAddr, bytes: &[u8], code: u16) -> RawFrame {
    let mut c = ready(addr);
    c.send(bytes);
    let f = c.next_reply();
    assert_eq!(
        f.kind, ERROR,
        "expected Error {code} for {bytes:02x?}, got {f:?}"
    );
    assert_eq!(f.error_code(), Some(code), "for {bytes:02x?}: {f:?}");
    c.expect_closed();
    f
}

/// A 12-byte header with the given bytes 0..4 and payload_len.
fn header(first4: [u8; 4], len: u32) -> Vec<u8> {
    let mut h = first4.to_vec();
    h.extend_from_slice(&9u32.to_be_bytes());
    h.extend_from_slice(&len.to_be_bytes());
    h
}

/// Each header failure is answered as soon as the 12 header bytes are in,
/// without waiting for the (huge or absent) payload, with BadFrame and
/// request ID 0 (the header is not valid, so its ID is not trusted).
#[test]
///
fn r_3_3_1_header_is_checked_before_the_payload() {
    let server = Server::start();
    for first4 in [
        [0x43, 0x54, 0x01, 0x10], // magic
        [0x00, 0x00, 0x01, 0x10], // magic
        [0x43, 0x53, 0x02, 0x10], // version
        [0x43, 0x53, 0x00, 0x10], // version
        [0x43, 0x53, 0x01, 0x7f], // kind
        [0x43, 0x53, 0x01, 0x00], // kind
        [0x43, 0x53, 0x01, 0x15], // kind
    ] {
        let f = refused(server.addr, &header(first4, 1_000_000), BAD_FRAME);
        assert_eq!(f.rid, 0, "header {first4:02x?}");
    }
    // payload_len 1048577: FrameTooLong, decided on the header alone.
    refused(
        server.addr,
        &header([0x43, 0x53, 0x01, 0x21], 1_048_577),
        BAD_FRAME,
    );
    refused(
        server.addr,
        &header([0x43, 0x53, 0x01, 0x21], u32::MAX),
        BAD_FRAME,
    );
}

/// 200 connections each announce a 1 MiB FileChunk and send 1 byte of it:
/// a server that allocated what headers claim would grow by 200 MiB.
#[test]
fn r_3_3_2_a_claimed_length_is_not_allocated() {
    let server = Server::start();
    let (mut first, user, _) = Raw::new_user(server.addr);
    first.ping_pong(1);
    let before = rss_kib(server.pid());
    let mut held = Vec::new();
    for _ in 0..200 {
        let (mut c, _) = Raw::join(server.addr, user);
        let mut bytes = file_begin(2, 0, &[7u8; 1_048_576], "big.bin");
        let mut chunk = frame(FILE_CHUNK, 2, &[7]);
        chunk[8..12].copy_from_slice(&1_048_576u32.to_be_bytes());
        bytes.extend_from_slice(&chunk);
        c.send(&bytes);
        held.push(c);
    }
    // The server still serves (the held connections wait for their bytes).
    first.ping_pong(2);
    let grown = rss_kib(server.pid()).saturating_sub(before);
    assert!(
        grown < 64 * 1024,
        "server grew by {grown} KiB for 200 claimed MiB"
    );
}

/// Payload-level failures: Truncated, TrailingBytes, BadValue give BadFrame;
/// a bad path gives BadPath; the connection is closed after the Error.
#[test]
/// Covers, R-1.4.1.2
fn r_3_3_3_bad_payloads_are_refused_with_their_code() {
    let server = Server::start();
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        (
            "Pull of 7 bytes (Truncated)",
            frame(PULL, 3, &[0; 7]),
            BAD_FRAME,
        ),
        (
            "Pull of 9 bytes (TrailingBytes)",
            frame(PULL, 3, &[0; 9]),
            BAD_FRAME,
        ),
        ("Ack of 0 bytes", frame(ACK, 3, &[]), BAD_FRAME),
        ("Ping with a payload byte", frame(PING, 3, &[0]), BAD_FRAME),
        (
            "FileEnd with a payload byte",
            frame(FILE_END, 3, &[0]),
            BAD_FRAME,
        ),
        (
            "MakeDir whose path_len runs past the end",
            frame(MAKE_DIR, 3, &[0, 9, b'a']),
            BAD_FRAME,
        ),
        (
            "MakeDir with a byte after its path",
            frame(MAKE_DIR, 3, &[0, 1, b'a', b'b']),
            BAD_FRAME,
        ),
        ("Delete of 9 bytes", frame(DELETE, 3, &[0; 9]), BAD_FRAME),
        (
            "Rename without its `to`",
            frame(RENAME, 3, &[0, 0, 0, 0, 0, 0, 0, 0, 0, 1, b'a']),
            BAD_FRAME,
        ),
        ("MakeDir `../x` (BadPath)", make_dir(3, "../x"), BAD_PATH),
        (
            "Fetch of `/etc/passwd` (BadPath)",
            u64_path(FETCH, 3, 0, "/etc/passwd"),
            BAD_PATH,
        ),
    ];
    for (what, bytes, code) in cases {
        let f = refused(server.addr, &bytes, code);
        let len = u16::from_be_bytes([f.payload[2], f.payload[3]]) as usize;
        assert_eq!(f.payload.len(), 4 + len, "{what}: Error layout");
    }
    // Hello mode and reserved bytes: BadFrame as the first frame (modes
    // 1 to 4 are defined since Visit, R-4.6.15; 5 and 255 are not).
    for (mode, reserved) in [
        (0u8, [0u8; 3]),
        (5, [0; 3]),
        (255, [0; 3]),
        (1, [0, 1, 0]),
        (3, [0, 0, 0x80]),
    ] {
        let mut c = Raw::connect(server.addr);
        let mut bytes = hello(1, mode, [0; 16], 0);
        bytes[13..16].copy_from_slice(&reserved);
        c.send(&bytes);
        assert_eq!(c.next_reply().error_code(), Some(BAD_FRAME), "mode {mode}");
        c.expect_closed();
    }
}

/// Nothing after a bad frame is acted on, even bytes that arrived with it,
/// and an open upload is discarded.
#[test]
///
fn r_3_3_4_nothing_after_a_bad_frame_is_acted_on() {
    let server = Server::start();
    let (mut a, user, _) = Raw::new_user(server.addr);
    let mut bytes = frame(PULL, 2, &[0; 7]);
    bytes.extend_from_slice(&make_dir(3, "after-bad-frame"));
    a.send(&bytes);
    let f = a.next_reply();
    assert_eq!(f.error_code(), Some(BAD_FRAME), "{f:?}");
    a.expect_closed();

    let (mut b, _) = Raw::join(server.addr, user);
    let mut bytes = file_begin(2, 0, b"0123456789", "up.txt");
    bytes.extend_from_slice(&frame(FILE_CHUNK, 2, b"0123456789"));
    bytes.extend_from_slice(&frame(FILE_END, 2, &[1])); // bad: FileEnd has no payload
    bytes.extend_from_slice(&make_dir(3, "after-bad-upload"));
    b.send(&bytes);
    let f = b.next_reply();
    assert_eq!(f.error_code(), Some(BAD_FRAME), "{f:?}");
    b.expect_closed();

    let (mut c, _) = Raw::join(server.addr, user);
    let listed = entries(&c.pull(2, 0));
    assert!(listed.is_empty(), "nothing was applied: {listed:?}");
    let dir = server.data.join("AllClients").join(hex(&user));
    assert_eq!(std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0), 0);
}

/// A closing Error carries the bad frame's request ID when its header was
/// valid: payload-level BadFrame, BadPath, and out-of-phase frames.
#[test]
///
fn r_3_3_5_closing_errors_carry_the_bad_frames_request_id() {
    let server = Server::start();
    for (bytes, code, rid) in [
        (make_dir(7, "../x"), BAD_PATH, 7),
        (frame(PULL, 9, &[0; 7]), BAD_FRAME, 9),
        (frame(FILE_END, 5, &[]), WRONG_PHASE, 5),
        (frame(FILE_CHUNK, 6, b"x"), WRONG_PHASE, 6),
        (u64_path(FETCH, 11, 0, "a//b"), BAD_PATH, 11),
    ] {
        let mut c = ready(server.addr);
        c.send(&bytes);
        c.expect_error(code, rid);
        c.expect_closed();
    }
}

/// No frame the server sends has a payload above 1 MiB, and a fetch reply
/// is cut into 256 KiB chunks; the server accepts 1 MiB and 1-byte chunks.
#[test]
///
fn r_3_1_1_no_frame_is_longer_than_one_mib() {
    let server = Server::start();
    let mut a = ready(server.addr);
    let content: Vec<u8> = (0..3 * 1_048_576 + 5)
        .map(|i| (i * 31 % 251) as u8)
        .collect();
    let mut bytes = file_begin(2, 0, &content, "big.bin");
    for piece in [
        &content[..1_048_576],
        &content[1_048_576..1_048_577],
        &[][..],
    ] {
        bytes.extend_from_slice(&frame(FILE_CHUNK, 2, piece));
    }
    for piece in content[1_048_577..].chunks(1_048_576) {
        bytes.extend_from_slice(&frame(FILE_CHUNK, 2, piece));
    }
    bytes.extend_from_slice(&frame(FILE_END, 2, &[]));
    a.send(&bytes);
    assert_eq!(a.expect_ack(2), (0, 1, "big.bin".to_string()));

    a.send(&u64_path(FETCH, 3, 1, "big.bin"));
    let begin = a.expect(FILE_BEGIN, 3);
    assert_eq!(begin.u64_at(8), content.len() as u64);
    let mut got = Vec::new();
    let mut sizes = Vec::new();
    loop {
        let f = a.next_reply();
        assert_eq!(f.rid, 3);
        match f.kind {
            FILE_CHUNK => {
                sizes.push(f.payload.len());
                got.extend_from_slice(&f.payload);
            }
            FILE_END => break,
            other => panic!("kind {other:#x} inside a fetch reply"),
        }
    }
    assert_eq!(got, content);
    let (last, whole) = sizes.split_last().expect("chunks");
    assert!(whole.iter().all(|&n| n == 262_144), "{sizes:?}");
    assert!(*last > 0 && *last <= 262_144, "{sizes:?}");
}

/// A client-only server kind sent by a client: WrongPhase and close.
#[test]
///
fn r_3_2_1_server_only_kinds_are_refused() {
    let server = Server::start();
    // Kinds of later versions travel under their own header byte (§3.2).
    let under = |version: u8, mut bytes: Vec<u8>| {
        bytes[2] = version;
        bytes
    };
    let cases = [
        frame(WELCOME, 4, &[0; 32]),
        frame(KEY_WELCOME, 4, &[0; 64]),
        frame(ERROR, 4, &[0, 1, 0, 0]),
        frame(CHANGE_BATCH, 4, &[0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0]),
        under(3, frame(MODE_BATCH, 4, &[0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0])),
        under(8, frame(HISTORY, 4, &[0; 25])),
        frame(NOTIFY, 4, &[0; 8]),
        frame(PUSH_ACK, 4, &push_ack_payload(0, 1, "a")),
        frame(0x41, 4, &[0, 0, 0]),     // VersionList, empty
        under(2, frame(0x25, 4, &[1])), // ChunksNeeded, none
        under(5, frame(0x29, 4, &[])),  // ListBaseUnknown
    ];
    for bytes in cases {
        let f = refused(server.addr, &bytes, WRONG_PHASE);
        assert!(f.rid == 4 || f.rid == 0, "{f:?}");
    }
}

/// Every reply carries its request's ID, whatever `u32` the client chose,
/// and IDs need not be unique.
#[test]
///
fn r_3_4_1_replies_carry_the_request_id() {
    let server = Server::start();
    let mut a = ready(server.addr);
    a.send(&frame(PING, 0xdead_beef, &[]));
    assert_eq!(
        a.expect(PONG, 0xdead_beef).bytes(),
        frame(PONG, 0xdead_beef, &[])
    );
    a.send(&make_dir(u32::MAX, "d"));
    assert_eq!(a.expect_ack(u32::MAX), (0, 1, "d".to_string()));
    a.send(&make_dir(5, "e"));
    a.send(&make_dir(5, "f"));
    assert_eq!(a.expect_ack(5), (0, 2, "e".to_string()));
    assert_eq!(a.expect_ack(5), (0, 3, "f".to_string()));
    a.send(&upload(0x0102_0304, 0, b"x", "x.txt", 1));
    assert_eq!(a.expect_ack(0x0102_0304).0, 0);
    assert!(a.pull(42, 0).iter().all(|b| b.rid == 42));
    a.send(&u64_path(FETCH, 4242, 0, "x.txt"));
    for kind in [FILE_BEGIN, FILE_CHUNK, FILE_END] {
        a.expect(kind, 4242);
    }
    a.send(&u64_path(FETCH, 77, 0, "missing"));
    a.expect_error(NOT_FOUND, 77);
    a.ping_pong(78);
}

/// Every frame of an upload carries the FileBegin's ID: a chunk or end with
/// another ID is WrongPhase, and the upload is discarded.
#[test]
///
fn r_3_4_2_upload_frames_share_the_request_id() {
    let server = Server::start();
    let (_, user, _) = Raw::new_user(server.addr);
    for wrong in [frame(FILE_CHUNK, 4, b"ab"), frame(FILE_END, 4, &[])] {
        let (mut c, _) = Raw::join(server.addr, user);
        let mut bytes = file_begin(3, 0, b"ab", "f.txt");
        bytes.extend_from_slice(&wrong);
        c.send(&bytes);
        assert_eq!(c.next_reply().error_code(), Some(WRONG_PHASE));
        c.expect_closed();
    }
    let (mut c, _) = Raw::join(server.addr, user);
    assert!(entries(&c.pull(1, 0)).is_empty());
}

/// A client may close at any time; an upload it did not finish leaves no
/// trace.
#[test]
///
fn r_1_3_2_a_client_may_close_mid_upload() {
    let server = Server::start();
    let (mut a, user, _) = Raw::new_user(server.addr);
    let content = vec![5u8; 100_000];
    let mut bytes = file_begin(2, 0, &content, "half.bin");
    bytes.extend_from_slice(&frame(FILE_CHUNK, 2, &content[..50_000]));
    a.send(&bytes);
    a.ping_pong(3);
    drop(a);
    let (mut b, _) = Raw::join(server.addr, user);
    b.ping_pong(1);
    b.send(&u64_path(FETCH, 2, 0, "half.bin"));
    b.expect_error(NOT_FOUND, 2);
    assert!(entries(&b.pull(3, 0)).is_empty());
}

/// Error texts are at most 1024 bytes of UTF-8 (cut by the server), even
/// about a 4,000-byte path.
#[test]
///
fn r_1_4_2_error_text_is_at_most_1024_bytes() {
    let server = Server::start();
    let mut a = ready(server.addr);
    let long = vec!["é".repeat(120); 16].join("/") + "/end";
    assert!(long.len() > 3800 && long.len() <= 4096);
    a.send(&u64_path(FETCH, 2, 0, &long));
    let f = a.expect_error(NOT_FOUND, 2);
    let len = u16::from_be_bytes([f.payload[2], f.payload[3]]) as usize;
    assert!(len <= 1024, "message of {len} bytes");
    assert_eq!(f.payload.len(), 4 + len);
    assert!(std::str::from_utf8(&f.payload[4..]).is_ok());
    let bad = vec!["é".repeat(120); 16].join("/") + "/../x";
    let f = refused(server.addr, &make_dir(3, &bad), BAD_PATH);
    let len = u16::from_be_bytes([f.payload[2], f.payload[3]]) as usize;
    assert!(len <= 1024 && f.payload.len() == 4 + len);
    assert!(std::str::from_utf8(&f.payload[4..]).is_ok());
}

/// A `path` field is a u16 length and that many bytes of UTF-8 obeying §6:
/// the server takes it byte for byte (no normalisation, no case folding).
#[test]
fn r_1_4_1_paths_are_taken_byte_for_byte() {
    let server = Server::start();
    let mut a = ready(server.addr);
    let nfc = "Caf\u{e9}";
    let nfd = "Cafe\u{301}";
    for (rid, p) in [(1, nfc), (2, nfd), (3, "a.txt"), (4, "A.txt")] {
        a.send(&make_dir(rid, p));
        assert_eq!(a.expect_ack(rid), (0, rid as u64, p.to_string()));
    }
    let mut listed: Vec<String> = entries(&a.pull(5, 0)).into_iter().map(|e| e.path).collect();
    listed.sort();
    let mut want = vec![
        nfc.to_string(),
        nfd.to_string(),
        "a.txt".into(),
        "A.txt".into(),
    ];
    want.sort();
    assert_eq!(listed, want);
    refused(
        server.addr,
        &frame(MAKE_DIR, 6, &path_field(b"bad\xff")),
        BAD_PATH,
    );
}
