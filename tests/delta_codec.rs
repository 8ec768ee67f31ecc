//! The delta-transfer frames (PROTOCOL.md §13): every one survives encode →
//! decode in any split, travels under header version 2, and each malformed
//! payload is refused with its exact error.

use cloudservice::chunk::{ChunkEntry, MAX_CHUNK};
use cloudservice::protocol::delta::{MAX_LIST_ENTRIES, MAX_RANGES};
use cloudservice::protocol::limits::{DELTA_PROTOCOL_VERSION, PROTOCOL_VERSION};
use cloudservice::protocol::message::put_header;
use cloudservice::protocol::{
    decode_all, ChunkData, ChunkRange, ChunkRanges, ContentHash, FetchManifest, FileManifest,
    Frame, FrameDecoder, FrameError, Kind, Message, Status, WirePath,
};
use proptest::prelude::*;

fn wire_path() -> impl Strategy<Value = WirePath> {
    "[a-z0-9 ._-]{1,12}(/[a-z0-9 ._-]{1,12}){0,3}"
        .prop_filter_map("breaks a path rule", |p| WirePath::new(&p).ok())
}

fn ranges() -> impl Strategy<Value = ChunkRanges> {
    (
        any::<bool>(),
        prop::collection::vec((0u32..1000, 1u32..1000), 0..20),
    )
        .prop_map(|(last, raw)| {
            let mut floor = 0u32;
            let ranges = raw
                .into_iter()
                .map(|(gap, count)| {
                    let range = ChunkRange {
                        first: floor + gap,
                        count,
                    };
                    floor = floor + gap + count;
                    range
                })
                .collect();
            ChunkRanges { last, ranges }
        })
}

fn delta_message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (any::<u64>(), wire_path())
            .prop_map(|(version, path)| Message::FetchManifest(FetchManifest { version, path })),
        ranges().prop_map(Message::FetchChunks),
        ranges().prop_map(Message::ChunksNeeded),
        (
            any::<u64>(),
            any::<u64>(),
            any::<[u8; 32]>(),
            any::<u32>(),
            wire_path()
        )
            .prop_map(
                |(version, size, hash, chunk_count, path)| Message::FileManifest(FileManifest {
                    version,
                    size,
                    hash: ContentHash(hash),
                    chunk_count,
                    path,
                })
            ),
        prop::collection::vec((any::<u32>(), any::<[u8; 32]>()), 1..50).prop_map(|raw| {
            Message::ChunkList(
                raw.into_iter()
                    .map(|(len, id)| ChunkEntry {
                        len,
                        id: ContentHash(id),
                    })
                    .collect(),
            )
        }),
        (any::<u32>(), prop::collection::vec(any::<u8>(), 1..3000))
            .prop_map(|(index, data)| Message::ChunkData(ChunkData { index, data })),
    ]
}

fn frames_of(bytes: &[u8]) -> (Vec<Frame>, Result<Status<()>, FrameError>) {
    decode_all(bytes)
}

proptest! {
    #[test]
    fn delta_frames_round_trip_in_any_split(
        messages in prop::collection::vec((any::<u32>(), delta_message()), 1..6),
        split in 1usize..64,
    ) {
        let frames: Vec<Frame> = messages.into_iter().map(|(id, m)| Frame::new(id, m)).collect();
        let mut bytes = Vec::new();
        for f in &frames {
            let start = bytes.len();
            f.encode(&mut bytes);
            prop_assert_eq!(bytes[start + 2], DELTA_PROTOCOL_VERSION);
        }
        prop_assert_eq!(frames_of(&bytes), (frames.clone(), Ok(Status::Complete(()))));
        let mut decoder = FrameDecoder::new();
        let mut got = Vec::new();
        for mut piece in bytes.chunks(split) {
            while !piece.is_empty() {
                match decoder.feed(&mut piece) {
                    Ok(Status::Complete(f)) => got.push(f),
                    Ok(Status::Partial) => break,
                    Err(e) => return Err(TestCaseError::fail(format!("{e}"))),
                }
            }
        }
        prop_assert_eq!(got, frames);
    }
}

fn raw(version: u8, kind: Kind, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    put_header(&mut out, kind, 7, payload.len() as u32);
    out[2] = version;
    out.extend_from_slice(payload);
    out
}

fn first_error(bytes: &[u8]) -> FrameError {
    match decode_all(bytes).1 {
        Err(e) => e,
        other => panic!("decoded without error: {other:?}"),
    }
}

#[test]
fn versions_select_the_kinds() {
    // A delta kind under version 1 is a kind version 1 does not have.
    assert_eq!(
        first_error(&raw(PROTOCOL_VERSION, Kind::ChunkData, &[0, 0, 0, 0, 1])),
        FrameError::UnknownKind(Kind::ChunkData as u8)
    );
    // A version 1 kind other than Hello/Welcome under version 2 has one encoding only.
    assert_eq!(
        first_error(&raw(DELTA_PROTOCOL_VERSION, Kind::Ping, &[])),
        FrameError::UnsupportedVersion(DELTA_PROTOCOL_VERSION)
    );
    assert_eq!(
        first_error(&raw(3, Kind::ChunkData, &[0, 0, 0, 0, 1])),
        FrameError::UnsupportedVersion(3)
    );
}

#[test]
fn malformed_delta_payloads_are_refused_exactly() {
    let entry = [0u8; 36];
    let cases: Vec<(&str, Vec<u8>, FrameError)> = vec![
        (
            "empty chunk list",
            raw(2, Kind::ChunkList, &[]),
            FrameError::Truncated,
        ),
        (
            "chunk list of 35 bytes",
            raw(2, Kind::ChunkList, &entry[..35]),
            FrameError::Truncated,
        ),
        (
            "chunk data without bytes",
            raw(2, Kind::ChunkData, &[0, 0, 0, 1]),
            FrameError::Truncated,
        ),
        (
            "chunk data over MAX_CHUNK",
            raw(2, Kind::ChunkData, &vec![0; 4 + MAX_CHUNK as usize + 1]),
            FrameError::FieldTooLong,
        ),
        (
            "ranges: last flag 2",
            raw(2, Kind::ChunksNeeded, &[2]),
            FrameError::BadValue,
        ),
        (
            "ranges: 7 bytes",
            raw(2, Kind::FetchChunks, &[1, 0, 0, 0, 0, 0, 0, 1]),
            FrameError::Truncated,
        ),
        (
            "ranges: empty run",
            raw(2, Kind::FetchChunks, &[1, 0, 0, 0, 5, 0, 0, 0, 0]),
            FrameError::BadValue,
        ),
        (
            "ranges: overlapping",
            raw(
                2,
                Kind::ChunksNeeded,
                &[1, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 3, 0, 0, 0, 1],
            ),
            FrameError::BadValue,
        ),
        (
            "ranges: past u32",
            raw(
                2,
                Kind::ChunksNeeded,
                &[1, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 2],
            ),
            FrameError::BadValue,
        ),
        (
            "file manifest truncated",
            raw(2, Kind::FileManifest, &[0; 51]),
            FrameError::Truncated,
        ),
    ];
    for (name, bytes, want) in cases {
        assert_eq!(first_error(&bytes), want, "{name}");
    }
}

#[test]
fn limits_fill_one_frame() {
    assert_eq!(MAX_LIST_ENTRIES, 29_127);
    assert_eq!(MAX_RANGES, 131_071);
    let full = Frame::new(
        1,
        Message::ChunkList(vec![
            ChunkEntry {
                len: 1,
                id: ContentHash([1; 32]),
            };
            MAX_LIST_ENTRIES
        ]),
    )
    .to_bytes();
    assert_eq!(frames_of(&full).0.len(), 1);
    let frames = ChunkRanges::split(
        &(0..MAX_RANGES as u32 + 1)
            .map(|i| ChunkRange {
                first: 2 * i,
                count: 1,
            })
            .collect::<Vec<_>>(),
    );
    assert_eq!(frames.len(), 2);
    assert!(!frames[0].last && frames[1].last);
    let bytes = Frame::new(1, Message::ChunksNeeded(frames[0].clone())).to_bytes();
    assert_eq!(
        frames_of(&bytes).0.len(),
        1,
        "a full ranges frame fits MAX_PAYLOAD"
    );
    assert_eq!(ChunkRanges::split(&[]).len(), 1);
}
