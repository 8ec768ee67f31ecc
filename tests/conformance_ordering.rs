//! Conformance of the real server with PROTOCOL.md §3.4 and §3.5: request
//! order, pipelining and flow control, with raw frames over loopback.

mod common;

use common::raw::*;
use common::Server;
use std::net::SocketAddr;
use std::time::Duration;

/// A Ready connection of a fresh user.
fn ready(addr: SocketAddr) -> Raw {
    Raw::new_user(addr).0
}

/// Pipelined requests of every kind get their replies in request order,
/// each reply's frames together.
#[test]
///
fn r_3_4_5_replies_keep_request_order() {
    let server = Server::start();
    let mut a = ready(server.addr);
    let content = vec![9u8; 700_000];
    let mut bytes = make_dir(1, "d");
    bytes.extend_from_slice(&upload(2, 0, &content, "d/big", 262_144));
    bytes.extend_from_slice(&frame(PULL, 3, &0u64.to_be_bytes()));
    bytes.extend_from_slice(&u64_path(FETCH, 4, 0, "d/big"));
    bytes.extend_from_slice(&u64_path(FETCH, 5, 0, "nope"));
    bytes.extend_from_slice(&make_dir(6, "e"));
    bytes.extend_from_slice(&frame(PULL, 7, &2u64.to_be_bytes()));
    a.send(&bytes);
    assert_eq!(a.expect_ack(1), (0, 1, "d".to_string()));
    assert_eq!(a.expect_ack(2), (0, 2, "d/big".to_string()));
    assert!(a.expect(CHANGE_BATCH, 3).payload[8] & 2 != 0);
    a.expect(FILE_BEGIN, 4);
    for _ in 0..3 {
        a.expect(FILE_CHUNK, 4);
    }
    a.expect(FILE_END, 4);
    a.expect_error(NOT_FOUND, 5);
    assert_eq!(a.expect_ack(6), (0, 3, "e".to_string()));
    let batch = a.expect(CHANGE_BATCH, 7);
    assert_eq!(batch.u64_at(0), 3);
    a.expect_silence(Duration::from_millis(300));
}

/// Frames are processed in arrival order: a Fetch pipelined before a
/// Delete (or a new upload) of the same file is answered from the state
/// before that push, not after it.
#[test]
fn r_3_4_5_a_fetch_sees_the_state_of_its_turn() {
    let server = Server::start();
    let mut a = ready(server.addr);
    a.send(&upload(1, 0, &[1u8; 2_000_000], "big", 262_144));
    a.expect_ack(1);
    a.send(&upload(2, 0, b"old", "small", 262_144));
    a.expect_ack(2);
    let mut bytes = u64_path(FETCH, 3, 0, "big");
    bytes.extend_from_slice(&u64_path(FETCH, 4, 0, "small"));
    bytes.extend_from_slice(&u64_path(DELETE, 5, 2, "small"));
    a.send(&bytes);
    a.expect(FILE_BEGIN, 3);
    loop {
        if a.next_reply().kind == FILE_END {
            break;
        }
    }
    let begin = a.expect(FILE_BEGIN, 4);
    assert_eq!(begin.u64_at(0), 2, "the version of its turn");
    assert_eq!(a.expect(FILE_CHUNK, 4).payload, b"old");
    a.expect(FILE_END, 4);
    assert_eq!(a.expect_ack(5), (0, 3, "small".to_string()));
    // A Fetch of an absent file, pipelined before its upload: NotFound.
    let mut bytes = u64_path(FETCH, 6, 0, "big");
    bytes.extend_from_slice(&u64_path(FETCH, 7, 0, "later"));
    bytes.extend_from_slice(&upload(8, 0, b"now here", "later", 16));
    a.send(&bytes);
    a.expect(FILE_BEGIN, 6);
    while a.next_reply().kind != FILE_END {}
    a.expect_error(NOT_FOUND, 7);
    assert_eq!(a.expect_ack(8), (0, 4, "later".to_string()));
}

/// A Pong keeps request order too: it follows the replies of earlier
/// requests and never splits a fetch reply.
#[test]
///
fn r_3_4_5_pong_keeps_request_order() {
    let server = Server::start();
    let mut a = ready(server.addr);
    a.send(&make_dir(1, "d"));
    a.expect_ack(1);
    let mut bytes = frame(PULL, 4, &0u64.to_be_bytes());
    bytes.extend_from_slice(&frame(PING, 5, &[]));
    a.send(&bytes);
    a.expect(CHANGE_BATCH, 4);
    a.expect(PONG, 5);

    let content = vec![1u8; 6 * 1_048_576];
    a.send(&upload(6, 0, &content, "six.bin", 1_048_576));
    a.expect_ack(6);
    a.stream.set_read_timeout(Some(Duration::from_secs(1))).ok();
    let mut bytes = u64_path(FETCH, 7, 0, "six.bin");
    bytes.extend_from_slice(&frame(PING, 8, &[]));
    a.send(&bytes);
    let mut kinds = Vec::new();
    loop {
        let f = a.next_reply();
        kinds.push((f.kind, f.rid));
        if f.kind == PONG {
            break;
        }
        std::thread::sleep(Duration::from_millis(20)); // a slow reader
    }
    assert_eq!(kinds.first(), Some(&(FILE_BEGIN, 7)));
    assert_eq!(kinds[kinds.len() - 2], (FILE_END, 7), "{kinds:?}");
}

/// Frames the server sends on its own (Notify) carry request ID 0.
#[test]
fn r_3_4_3_server_initiated_frames_carry_id_zero() {
    let server = Server::start();
    let (mut a, user, _) = Raw::new_user(server.addr);
    let (mut b, _) = Raw::join(server.addr, user);
    a.send(&make_dir(9, "n"));
    a.expect_ack(9);
    let f = b.next();
    assert_eq!(f.bytes(), frame(NOTIFY, 0, &1u64.to_be_bytes()));
}

/// A client may pipeline 64 fetches of a 1 MiB file without reading; the
/// server stops reading rather than dropping anything, and every reply
/// arrives whole and in order once the client reads.
#[test]
fn r_3_4_7_pipelined_requests_are_all_answered() {
    // Plaintext: a second handle on the socket writes from another thread.
    let server = Server::options().plaintext().start();
    let mut a = ready(server.addr);
    let content: Vec<u8> = (0..1_048_576u32).map(|i| (i % 253) as u8).collect();
    a.send(&upload(1, 0, &content, "m.bin", 262_144));
    a.expect_ack(1);
    let mut writer = a.stream.try_clone().expect("clone");
    let sender = std::thread::spawn(move || {
        let mut all = Vec::new();
        for rid in 100..164u32 {
            all.extend_from_slice(&u64_path(FETCH, rid, 0, "m.bin"));
        }
        std::io::Write::write_all(&mut writer, &all).is_ok()
    });
    std::thread::sleep(Duration::from_millis(500));
    for rid in 100..164u32 {
        a.expect(FILE_BEGIN, rid);
        let mut got = 0usize;
        loop {
            let f = a.next_reply();
            assert_eq!(f.rid, rid);
            if f.kind == FILE_END {
                break;
            }
            got += f.payload.len();
        }
        assert_eq!(got, content.len());
    }
    assert!(sender.join().expect("writer"), "all requests were written");
}

/// A closing Error ends the connection: replies of earlier requests not yet
/// sent may be dropped, and nothing follows the Error.
#[test]
fn r_3_4_9_a_closing_error_is_the_last_frame() {
    let server = Server::start();
    let mut a = ready(server.addr);
    a.send(&upload(1, 0, &vec![4u8; 3_000_000], "big", 1_048_576));
    a.expect_ack(1);
    let mut bytes = u64_path(FETCH, 2, 0, "big");
    bytes.extend_from_slice(&frame(PULL, 3, &[0; 7]));
    a.send(&bytes);
    let mut last = None;
    loop {
        match a.read(Duration::from_secs(10)) {
            Got::Frame(f) => {
                assert!(
                    last.as_ref().is_none_or(|l: &RawFrame| l.kind != ERROR),
                    "a frame after the Error"
                );
                assert!(f.rid == 2 || f.kind == ERROR, "{f:?}");
                last = Some(f);
            }
            Got::Closed => break,
            Got::Timeout => panic!("no close"),
        }
    }
    assert_eq!(last.and_then(|f| f.error_code()), Some(BAD_FRAME));
}

/// Far more pipelined requests than the server keeps pending (64 pull or
/// fetch replies, 4 MiB): nothing is refused or dropped, every reply
/// arrives in order once the client reads.
#[test]
///
fn r_3_5_1_any_number_of_pipelined_requests_is_answered() {
    // Plaintext: a second handle on the socket writes from another thread.
    let server = Server::options().plaintext().start();
    let mut a = ready(server.addr);
    let content = vec![6u8; 100_000];
    a.send(&upload(1, 0, &content, "f", 262_144));
    a.expect_ack(1);
    let mut writer = a.stream.try_clone().expect("clone");
    let sender = std::thread::spawn(move || {
        let mut all = Vec::new();
        for rid in 0..300u32 {
            all.extend_from_slice(&match rid % 3 {
                0 => u64_path(FETCH, 1000 + rid, 0, "f"),
                1 => frame(PULL, 1000 + rid, &0u64.to_be_bytes()),
                _ => make_dir(1000 + rid, &format!("d{rid}")),
            });
        }
        std::io::Write::write_all(&mut writer, &all).is_ok()
    });
    std::thread::sleep(Duration::from_millis(500));
    let mut head = 1;
    for rid in 0..300u32 {
        match rid % 3 {
            0 => {
                a.expect(FILE_BEGIN, 1000 + rid);
                a.expect(FILE_CHUNK, 1000 + rid);
                a.expect(FILE_END, 1000 + rid);
            }
            1 => loop {
                let b = a.expect(CHANGE_BATCH, 1000 + rid);
                assert_eq!(b.u64_at(0), head);
                if b.payload[8] & 2 != 0 {
                    break;
                }
            },
            _ => {
                head += 1;
                assert_eq!(a.expect_ack(1000 + rid).1, head);
            }
        }
    }
    assert!(sender.join().expect("writer"));
}
