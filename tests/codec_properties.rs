//! Properties of the frame codec (PROTOCOL.md §3–§4): every message survives
//! encode → decode, any split of a stream decodes to the same frames, and each
//! malformed input is refused with its exact error.

use cloudservice::protocol::limits::{MAX_BATCH_ENTRIES, MAX_MESSAGE_BYTES, MAX_PAYLOAD};
use cloudservice::protocol::{
    decode_all, ChangeBatch, ChangeEntry, ContentHash, Delete, EntryState, ErrorCode, ErrorReport,
    Fetch, FileBegin, Frame, FrameDecoder, FrameError, Hello, HelloMode, History, Kind, Message,
    PartialAck, PathError, PullChecked, PushAck, PushStatus, RemoveDir, Rename, Status, UserId,
    Welcome, WirePath,
};
use proptest::prelude::*;
use proptest::sample::Index;

// ---------------------------------------------------------------- strategies

fn component() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-zA-Z0-9 _.~()-]{1,12}",
        1 => "[éü名📁a.]{1,6}",
    ]
}

fn wire_path() -> impl Strategy<Value = WirePath> {
    prop::collection::vec(component(), 1..5).prop_filter_map("breaks a path rule", |parts| {
        WirePath::new(&parts.join("/")).ok()
    })
}

fn user_id() -> impl Strategy<Value = UserId> {
    any::<[u8; 16]>().prop_map(UserId)
}

fn hash() -> impl Strategy<Value = ContentHash> {
    any::<[u8; 32]>().prop_map(ContentHash)
}

fn hello() -> impl Strategy<Value = Message> {
    let mode = prop_oneof![
        Just(HelloMode::NewUser),
        Just(HelloMode::NewClient),
        Just(HelloMode::Resume)
    ];
    (mode, user_id(), any::<u64>()).prop_map(|(mode, user_id, client_id)| {
        Message::Hello(Hello {
            mode,
            user_id,
            client_id,
        })
    })
}

fn error_report() -> impl Strategy<Value = Message> {
    // At most 200 characters of at most 4 bytes: within MAX_MESSAGE_BYTES.
    // Every u16 is a code: undefined ones decode as Unknown (§4.5).
    (any::<u16>(), ".{0,200}").prop_map(|(code, message)| {
        Message::Error(ErrorReport {
            code: ErrorCode::from_wire(code),
            message,
        })
    })
}

fn change_entry() -> impl Strategy<Value = ChangeEntry> {
    let state = prop_oneof![
        (any::<u64>(), hash()).prop_map(|(size, hash)| EntryState::File { size, hash }),
        Just(EntryState::Dir),
        Just(EntryState::Deleted),
    ];
    (wire_path(), any::<u64>(), state).prop_map(|(path, version, state)| ChangeEntry {
        path,
        version,
        state,
        executable: false,
    })
}

fn change_batch() -> impl Strategy<Value = Message> {
    (
        any::<u64>(),
        any::<bool>(),
        any::<bool>(),
        prop::collection::vec(change_entry(), 0..20),
    )
        .prop_map(|(head, full, last, entries)| {
            Message::ChangeBatch(ChangeBatch {
                head,
                full,
                last,
                entries,
            })
        })
}

fn push_status() -> impl Strategy<Value = PushStatus> {
    prop_oneof![
        Just(PushStatus::Applied),
        Just(PushStatus::Conflict),
        Just(PushStatus::Stale),
        Just(PushStatus::Unchanged),
    ]
}

/// A message of any kind, every field valid.
fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        hello(),
        (user_id(), any::<u64>(), any::<u64>()).prop_map(|(user_id, client_id, head)| {
            Message::Welcome(Welcome {
                user_id,
                client_id,
                head,
            })
        }),
        Just(Message::Ping),
        Just(Message::Pong),
        error_report(),
        any::<u64>().prop_map(|cursor| Message::Pull { cursor }),
        change_batch(),
        any::<u64>().prop_map(|cursor| Message::Ack { cursor }),
        (
            any::<u64>(),
            proptest::collection::btree_set(wire_path(), 1..6)
        )
            .prop_map(|(cursor, held)| Message::PartialAck(PartialAck {
                cursor,
                held: held.into_iter().collect(),
            })),
        (any::<u64>(), any::<u64>(), any::<u64>()).prop_map(|(cursor, check_seq, check_tag)| {
            Message::PullChecked(PullChecked {
                cursor,
                check_seq,
                check_tag,
            })
        }),
        (any::<u64>(), any::<u64>(), any::<u64>(), any::<bool>()).prop_map(
            |(head, head_tag, common, diverged)| {
                Message::History(History {
                    head,
                    head_tag,
                    common: common.min(head),
                    diverged,
                })
            }
        ),
        any::<u64>().prop_map(|head| Message::Notify { head }),
        (any::<u64>(), wire_path())
            .prop_map(|(version, path)| Message::Fetch(Fetch { version, path })),
        (any::<u64>(), any::<u64>(), hash(), wire_path()).prop_map(
            |(version, size, hash, path)| {
                Message::FileBegin(FileBegin {
                    version,
                    size,
                    hash,
                    path,
                })
            }
        ),
        prop::collection::vec(any::<u8>(), 0..2048).prop_map(Message::FileChunk),
        Just(Message::FileEnd),
        wire_path().prop_map(|path| Message::MakeDir { path }),
        (any::<u64>(), wire_path())
            .prop_map(|(base_version, path)| { Message::Delete(Delete { base_version, path }) }),
        (any::<u64>(), wire_path())
            .prop_map(|(cursor, path)| Message::RemoveDir(RemoveDir { cursor, path })),
        (any::<u64>(), wire_path(), wire_path()).prop_map(|(base_version, from, to)| {
            Message::Rename(Rename {
                base_version,
                from,
                to,
            })
        }),
        (push_status(), any::<u64>(), wire_path()).prop_map(|(status, version, path)| {
            Message::PushAck(PushAck {
                status,
                version,
                path,
            })
        }),
    ]
}

fn frame() -> impl Strategy<Value = Frame> {
    (any::<u32>(), message()).prop_map(|(request_id, message)| Frame::new(request_id, message))
}

// ------------------------------------------------------------------- helpers

fn encode_all(frames: &[Frame]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in frames {
        f.encode(&mut out);
    }
    out
}

/// Feeds `reads` one after another to one decoder; returns the frames and how
/// the stream ended (error, partial frame, or clean).
fn feed_reads<'a>(
    reads: impl IntoIterator<Item = &'a [u8]>,
) -> (Vec<Frame>, Result<Status<()>, FrameError>) {
    let mut decoder = FrameDecoder::new();
    let mut frames = Vec::new();
    for mut read in reads {
        while !read.is_empty() {
            match decoder.feed(&mut read) {
                Ok(Status::Complete(f)) => frames.push(f),
                Ok(Status::Partial) => assert!(read.is_empty()),
                Err(e) => return (frames, Err(e)),
            }
        }
    }
    let end = if decoder.is_idle() {
        Status::Complete(())
    } else {
        Status::Partial
    };
    (frames, Ok(end))
}

// ---------------------------------------------------------------- properties

proptest! {
    #[test]
    fn every_message_round_trips(f in frame()) {
        let bytes = f.to_bytes();
        prop_assert!(bytes.len() - 12 <= MAX_PAYLOAD as usize);
        let (frames, end) = decode_all(&bytes);
        prop_assert_eq!(end, Ok(Status::Complete(())));
        prop_assert_eq!(frames, vec![f]);
    }

    #[test]
    fn any_split_gives_the_same_frames(
        frames in prop::collection::vec(frame(), 1..6),
        cuts in prop::collection::vec(any::<Index>(), 0..10),
    ) {
        let stream = encode_all(&frames);
        prop_assert_eq!(decode_all(&stream), (frames.clone(), Ok(Status::Complete(()))));

        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
        points.push(0);
        points.push(stream.len());
        points.sort_unstable();
        let reads = points.windows(2).map(|w| &stream[w[0]..w[1]]);
        prop_assert_eq!(feed_reads(reads), (frames.clone(), Ok(Status::Complete(()))));

        let bytes = stream.chunks(1);
        prop_assert_eq!(feed_reads(bytes), (frames, Ok(Status::Complete(()))));
    }

    #[test]
    fn a_cut_stream_ends_partial(
        frames in prop::collection::vec(frame(), 1..4),
        cut in any::<Index>(),
    ) {
        let stream = encode_all(&frames);
        let cut = cut.index(stream.len());
        let (whole, end) = decode_all(&stream[..cut]);
        let (fed, fed_end) = feed_reads(stream[..cut].chunks(1));
        prop_assert_eq!(&fed, &whole);
        prop_assert_eq!(&fed_end, &end);
        let consumed: usize = whole.iter().map(|f| f.to_bytes().len()).sum();
        let expected = if consumed == cut { Status::Complete(()) } else { Status::Partial };
        prop_assert_eq!(end, Ok(expected));
        prop_assert_eq!(&whole[..], &frames[..whole.len()]);
    }
}

// ---------------------------------------------------------------- error table

fn header(kind: u8, len: u32) -> Vec<u8> {
    let mut out = b"CS\x01".to_vec();
    out.push(kind);
    out.extend_from_slice(&7u32.to_be_bytes());
    out.extend_from_slice(&len.to_be_bytes());
    out
}

fn raw(kind: Kind, payload: &[u8]) -> Vec<u8> {
    let mut out = header(kind as u8, payload.len() as u32);
    out.extend_from_slice(payload);
    out
}

fn path_field(text: &[u8]) -> Vec<u8> {
    let mut out = (text.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(text);
    out
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

#[test]
fn malformed_frames_are_refused_with_their_exact_cause() {
    let hello_ok = cat(&[&[1, 0, 0, 0], &[0; 16], &[0; 8]]);
    let entry = |tag: u8, size: u64| {
        cat(&[
            &[tag],
            &1u64.to_be_bytes(),
            &size.to_be_bytes(),
            &[0; 32],
            &path_field(b"a"),
        ])
    };
    let batch = |flags: u8, count: u16, entries: &[u8]| {
        cat(&[&5u64.to_be_bytes(), &[flags], &count.to_be_bytes(), entries])
    };
    let long_text = vec![b'x'; MAX_MESSAGE_BYTES + 1];
    let cases: Vec<(&str, Vec<u8>, FrameError)> = vec![
        (
            "4 GiB length",
            header(Kind::FileChunk as u8, u32::MAX),
            FrameError::FrameTooLong(u32::MAX),
        ),
        (
            "one byte over the limit",
            header(Kind::FileChunk as u8, MAX_PAYLOAD + 1),
            FrameError::FrameTooLong(MAX_PAYLOAD + 1),
        ),
        ("kind 0x00", header(0x00, 0), FrameError::UnknownKind(0x00)),
        ("kind 0x15", header(0x15, 0), FrameError::UnknownKind(0x15)),
        ("kind 0xff", header(0xff, 0), FrameError::UnknownKind(0xff)),
        (
            "magic XS",
            b"XS\x01\x03\0\0\0\0\0\0\0\0".to_vec(),
            FrameError::BadMagic,
        ),
        (
            "magic cs",
            b"cs\x01\x03\0\0\0\0\0\0\0\0".to_vec(),
            FrameError::BadMagic,
        ),
        ("HTTP", b"GET / HTTP/1.1\r\n".to_vec(), FrameError::BadMagic),
        (
            "version 0",
            b"CS\x00\x03\0\0\0\0\0\0\0\0".to_vec(),
            FrameError::UnsupportedVersion(0),
        ),
        (
            "version 2",
            b"CS\x02\x03\0\0\0\0\0\0\0\0".to_vec(),
            FrameError::UnsupportedVersion(2),
        ),
        (
            "Pull with 4 bytes",
            raw(Kind::Pull, &[0; 4]),
            FrameError::Truncated,
        ),
        (
            "Hello with 27 bytes",
            raw(Kind::Hello, &hello_ok[..27]),
            FrameError::Truncated,
        ),
        (
            "path shorter than its length",
            raw(Kind::MakeDir, b"\0\x0aabc"),
            FrameError::Truncated,
        ),
        (
            "Rename without `to`",
            raw(Kind::Rename, &cat(&[&[0; 8], &path_field(b"a")])),
            FrameError::Truncated,
        ),
        (
            "batch missing an entry",
            raw(Kind::ChangeBatch, &batch(0, 2, &entry(1, 3))),
            FrameError::Truncated,
        ),
        (
            "Ping with a byte",
            raw(Kind::Ping, &[0]),
            FrameError::TrailingBytes,
        ),
        (
            "FileEnd with a byte",
            raw(Kind::FileEnd, &[0]),
            FrameError::TrailingBytes,
        ),
        (
            "Pull with 9 bytes",
            raw(Kind::Pull, &[0; 9]),
            FrameError::TrailingBytes,
        ),
        (
            "Hello with 29 bytes",
            raw(Kind::Hello, &cat(&[&hello_ok, &[0]])),
            FrameError::TrailingBytes,
        ),
        (
            "Error text not UTF-8",
            raw(Kind::Error, b"\0\x01\0\x02\xc3\x28"),
            FrameError::BadUtf8,
        ),
        (
            "Error text over 1024 bytes",
            raw(Kind::Error, &cat(&[b"\0\x01\x04\x01", &long_text])),
            FrameError::FieldTooLong,
        ),
        (
            "batch of 4097 entries",
            raw(
                Kind::ChangeBatch,
                &batch(0, MAX_BATCH_ENTRIES as u16 + 1, &[]),
            ),
            FrameError::FieldTooLong,
        ),
        (
            "path ../x",
            raw(Kind::MakeDir, &path_field(b"../x")),
            FrameError::BadPath(PathError::DotDotComponent),
        ),
        (
            "path /etc",
            raw(Kind::MakeDir, &path_field(b"/etc")),
            FrameError::BadPath(PathError::Absolute),
        ),
        (
            "empty path",
            raw(Kind::MakeDir, &path_field(b"")),
            FrameError::BadPath(PathError::Empty),
        ),
        (
            "path a//b",
            raw(Kind::MakeDir, &path_field(b"a//b")),
            FrameError::BadPath(PathError::EmptyComponent),
        ),
        (
            "path not UTF-8",
            raw(Kind::MakeDir, &path_field(b"a\xff")),
            FrameError::BadPath(PathError::BadUtf8),
        ),
        (
            "path with NUL",
            raw(Kind::MakeDir, &path_field(b"a\0b")),
            FrameError::BadPath(PathError::Nul),
        ),
        (
            "reserved path in Rename target",
            raw(
                Kind::Rename,
                &cat(&[&[0; 8], &path_field(b"a"), &path_field(b".cloudservice/x")]),
            ),
            FrameError::BadPath(PathError::Reserved),
        ),
        (
            "Hello mode 9",
            raw(Kind::Hello, &cat(&[&[9, 0, 0, 0], &[0; 24]])),
            FrameError::BadValue,
        ),
        (
            "Hello reserved byte set",
            raw(Kind::Hello, &cat(&[&[1, 0, 1, 0], &[0; 24]])),
            FrameError::BadValue,
        ),
        (
            "PushAck status 4",
            raw(Kind::PushAck, &cat(&[&[4], &[0; 8], &path_field(b"a")])),
            FrameError::BadValue,
        ),
        (
            "batch flag bit 2",
            raw(Kind::ChangeBatch, &batch(4, 0, &[])),
            FrameError::BadValue,
        ),
        (
            "entry state 4",
            raw(Kind::ChangeBatch, &batch(0, 1, &entry(4, 0))),
            FrameError::BadValue,
        ),
        (
            "Dir entry with a size",
            raw(Kind::ChangeBatch, &batch(0, 1, &entry(2, 1))),
            FrameError::BadValue,
        ),
    ];
    for (name, bytes, expected) in cases {
        assert_eq!(
            decode_all(&bytes),
            (vec![], Err(expected)),
            "{name}: whole buffer"
        );
        assert_eq!(
            feed_reads(bytes.chunks(1)),
            (vec![], Err(expected)),
            "{name}: byte by byte"
        );
    }
}

#[test]
fn an_error_sticks_and_ends_the_stream() {
    let good = Frame::new(1, Message::Ping).to_bytes();
    let stream = cat(&[&good, b"XS\x01\x03\0\0\0\0\0\0\0\0", &good]);
    assert_eq!(
        decode_all(&stream),
        (
            vec![Frame::new(1, Message::Ping)],
            Err(FrameError::BadMagic)
        )
    );
    let mut decoder = FrameDecoder::new();
    assert_eq!(decoder.feed(&mut &b"CS\x09"[..]), Ok(Status::Partial));
    assert_eq!(
        decoder.feed(&mut &good[3..]),
        Err(FrameError::UnsupportedVersion(9))
    );
    assert_eq!(
        decoder.feed(&mut &good[..]),
        Err(FrameError::UnsupportedVersion(9))
    );
    assert_eq!(decoder.buffered(), 0);
}

#[test]
fn a_too_long_header_is_refused_before_any_payload() {
    let mut decoder = FrameDecoder::new();
    let mut input = &header(Kind::FileChunk as u8, u32::MAX)[..];
    assert_eq!(
        decoder.feed(&mut input),
        Err(FrameError::FrameTooLong(u32::MAX))
    );
    assert_eq!(decoder.buffered(), 0);
}

#[test]
fn the_largest_payload_is_accepted() {
    let data: Vec<u8> = (0..MAX_PAYLOAD).map(|i| (i % 251) as u8).collect();
    let f = Frame::new(3, Message::FileChunk(data));
    let bytes = f.to_bytes();
    assert_eq!(bytes.len(), 12 + MAX_PAYLOAD as usize);
    assert_eq!(
        decode_all(&bytes),
        (vec![f.clone()], Ok(Status::Complete(())))
    );
    assert_eq!(
        feed_reads(bytes.chunks(64 * 1024)),
        (vec![f], Ok(Status::Complete(())))
    );
}

#[test]
fn an_empty_stream_is_complete() {
    assert_eq!(decode_all(&[]), (vec![], Ok(Status::Complete(()))));
    assert_eq!(feed_reads([]), (vec![], Ok(Status::Complete(()))));
}

#[test]
fn error_text_is_cut_at_a_character_boundary() {
    // 1023 ASCII bytes then a 2-byte character: the encoder keeps 1023 bytes.
    let text = format!("{}é tail", "x".repeat(MAX_MESSAGE_BYTES - 1));
    let f = Frame::new(
        1,
        Message::Error(ErrorReport {
            code: ErrorCode::Storage,
            message: text,
        }),
    );
    let (frames, end) = decode_all(&f.to_bytes());
    assert_eq!(end, Ok(Status::Complete(())));
    let Message::Error(report) = &frames[0].message else {
        panic!("not an error: {frames:?}");
    };
    assert_eq!(report.message, "x".repeat(MAX_MESSAGE_BYTES - 1));
}
