//! Server behaviour that issue 10 found contradicting PROTOCOL.md, driven
//! with raw frames against the real server binary: reply order with Pong
//! (§3.4, §4.3), request IDs of closing Errors (§3.3, §4.5) and unknown
//! Error codes (§4.5).

mod common;

use cloudservice::protocol::{decode_all, ErrorCode, Fetch, Frame, Kind, Message, Status};
use common::*;
use std::time::Duration;

#[test]
fn pong_keeps_request_order_behind_a_pipelined_pull() {
    let server = ServerProc::start();
    let mut a = WireClient::new_user(server.addr);
    for i in 0..50 {
        a.put(&format!("dir/file {i}.txt"), b"x", 0).expect("push");
    }
    // One write: Pull (rid 4, cursor 0: a full listing the actor builds) and
    // Ping (rid 5). The Pong must come after the whole pull reply.
    let mut bytes = Frame::new(4, Message::Pull { cursor: 0 }).to_bytes();
    bytes.extend(Frame::new(5, Message::Ping).to_bytes());
    a.send_raw(&bytes);
    let mut seen = Vec::new();
    loop {
        let frame = a.next();
        let done = frame.message.kind() == Kind::Pong;
        seen.push((frame.message.kind(), frame.request_id));
        if done {
            break;
        }
    }
    let (last, batches) = seen.split_last().expect("frames");
    assert_eq!(*last, (Kind::Pong, 5), "{seen:?}");
    assert!(
        !batches.is_empty(),
        "the pull reply came after the Pong: {seen:?}"
    );
    assert!(
        batches.iter().all(|s| *s == (Kind::ChangeBatch, 4)),
        "{seen:?}"
    );
}

#[test]
fn pong_never_interleaves_a_slow_fetch_reply() {
    let server = ServerProc::start();
    let mut a = WireClient::new_user(server.addr);
    let big: Vec<u8> = (0..6 * 1024 * 1024u32).map(|i| (i % 253) as u8).collect();
    a.put("big.bin", &big, 0).expect("push");
    // A slow reader: ask for 6 MiB, read nothing while the server's window
    // and the socket buffers fill, then Ping.
    a.send_with(
        10,
        Message::Fetch(Fetch {
            version: 1,
            path: p("big.bin"),
        }),
    );
    std::thread::sleep(Duration::from_millis(300));
    a.send_with(11, Message::Ping);
    std::thread::sleep(Duration::from_millis(300));
    let mut kinds = Vec::new();
    let mut data = Vec::new();
    loop {
        let frame = a.next();
        kinds.push((frame.message.kind(), frame.request_id));
        if let Message::FileChunk(chunk) = &frame.message {
            data.extend_from_slice(chunk);
        }
        if frame.message.kind() == Kind::Pong {
            break;
        }
    }
    assert_eq!(kinds.first(), Some(&(Kind::FileBegin, 10)));
    assert_eq!(
        &kinds[kinds.len() - 2..],
        &[(Kind::FileEnd, 10), (Kind::Pong, 11)],
        "the Pong interleaved the fetch reply: {kinds:?}"
    );
    assert_eq!(data, big);
}

#[test]
fn ping_during_an_upload_is_answered_and_the_upload_goes_on() {
    let server = ServerProc::start();
    let mut a = WireClient::new_user(server.addr);
    let content = b"abcdef";
    a.send_with(
        20,
        Message::FileBegin(cloudservice::protocol::FileBegin {
            version: 0,
            size: 6,
            hash: cloudservice::protocol::ContentHash::of(content),
            path: p("u.txt"),
        }),
    );
    a.send_with(20, Message::FileChunk(b"abc".to_vec()));
    a.send_with(21, Message::Ping);
    assert_eq!(a.reply(21), Message::Pong);
    a.send_with(20, Message::FileChunk(b"def".to_vec()));
    a.send_with(20, Message::FileEnd);
    assert!(matches!(a.reply(20), Message::PushAck(_)));
}

/// Sends `bytes` after a handshake and returns the closing Error's frame.
fn closing_error(server: &ServerProc, bytes: &[u8]) -> Frame {
    let mut c = WireClient::new_user(server.addr);
    c.send_raw(bytes);
    let frames = c.until_closed();
    frames
        .into_iter()
        .find(|f| matches!(f.message, Message::Error(_)))
        .expect("a closing Error")
}

#[test]
fn closing_errors_carry_the_bad_frames_request_id() {
    let server = ServerProc::start();
    // BadPath: MakeDir rid 7 "../x".
    let e = closing_error(&server, &raw_frame(0x30, 7, &raw_path(b"../x")));
    assert_error(&e.message, ErrorCode::BadPath);
    assert_eq!(e.request_id, 7);
    // Every path rule gives BadPath with the frame's ID, in every push kind.
    let mut delete = 5u64.to_be_bytes().to_vec();
    delete.extend(raw_path(b"a//b"));
    let e = closing_error(&server, &raw_frame(0x31, 8, &delete));
    assert_error(&e.message, ErrorCode::BadPath);
    assert_eq!(e.request_id, 8);
    let mut fetch = 0u64.to_be_bytes().to_vec();
    fetch.extend(raw_path(b".cloudservice/x"));
    let e = closing_error(&server, &raw_frame(0x14, 0x0102_0304, &fetch));
    assert_error(&e.message, ErrorCode::BadPath);
    assert_eq!(e.request_id, 0x0102_0304);
    // Payload-level BadFrame: a Ping with a payload byte (TrailingBytes),
    // a Pull cut short (Truncated).
    let e = closing_error(&server, &raw_frame(0x03, 9, &[0]));
    assert_error(&e.message, ErrorCode::BadFrame);
    assert_eq!(e.request_id, 9);
    let e = closing_error(&server, &raw_frame(0x10, 10, &[0, 0, 0]));
    assert_error(&e.message, ErrorCode::BadFrame);
    assert_eq!(e.request_id, 10);
    // Out of phase: FileEnd with no upload, FileChunk with no upload.
    let e = closing_error(&server, &raw_frame(0x22, 12, &[]));
    assert_error(&e.message, ErrorCode::WrongPhase);
    assert_eq!(e.request_id, 12);
    let e = closing_error(&server, &raw_frame(0x21, 13, b"xy"));
    assert_error(&e.message, ErrorCode::WrongPhase);
    assert_eq!(e.request_id, 13);
    // A bad header has no trustworthy ID: 0.
    let mut bad_magic = raw_frame(0x10, 14, &[0; 8]);
    bad_magic[0] = b'X';
    let e = closing_error(&server, &bad_magic);
    assert_error(&e.message, ErrorCode::BadFrame);
    assert_eq!(e.request_id, 0);
}

#[test]
fn an_unknown_error_code_decodes_and_a_client_sent_error_is_wrong_phase() {
    // The codec: an Error frame with a code no version defines decodes.
    let mut payload = 999u16.to_be_bytes().to_vec();
    payload.extend([0, 2, b'h', b'i']);
    let frame = raw_frame(0x05, 3, &payload);
    let (frames, rest) = decode_all(&frame);
    assert_eq!(rest, Ok(Status::Complete(())));
    assert_eq!(frames.len(), 1);
    match &frames[0].message {
        Message::Error(e) => {
            assert_eq!(e.code, ErrorCode::Unknown(999));
            assert_eq!(e.message, "hi");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(frames[0].to_bytes(), frame, "re-encodes to the same bytes");
    // The server: Error is a server-only kind (§3.2), whatever its code.
    let server = ServerProc::start();
    let e = closing_error(&server, &frame);
    assert_error(&e.message, ErrorCode::WrongPhase);
    assert_eq!(e.request_id, 3);
}
