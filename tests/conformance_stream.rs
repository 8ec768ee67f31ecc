//! The server's side of uploads whose whole-file hash follows their bytes
//! (PROTOCOL.md §13.8, protocol version 6), against the real `cloud-server`
//! over a socket: the frames' bytes as the spec's tables give them (built
//! here by hand, not by the codec), random files of random sizes cut into
//! random FileChunks stored byte for byte, every way an end can be wrong
//! (hash, size, the other end kind, abandoned, bad state bytes) storing
//! nothing with the error and the connection the spec names, and the
//! server's own chunk list of such a file, cut as its bytes arrive, ready
//! at its PushAck and serving the next delta upload and download.

mod common;

use cloudservice::chunk::index::ChunkIndex;
use cloudservice::chunk::{manifest_of_reader, Manifest};
use cloudservice::protocol::{
    ChunkRanges, ContentHash, ErrorCode, FetchManifest, FileManifest, Frame, Message, PushStatus,
    ShortChunkEntry,
};
use common::{assert_error, p, Server, WireClient};
use std::time::{Duration, Instant};

const STREAM_BEGIN: u8 = 0x2A;
const STREAM_END: u8 = 0x2B;
const FILE_CHUNK: u8 = 0x21;
const FILE_END: u8 = 0x22;

/// A frame with header version byte `version` (§3.1).
fn frame_v(version: u8, kind: u8, rid: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0x43, 0x53, version, kind];
    out.extend_from_slice(&rid.to_be_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// StreamBegin (§13.8): `version u64 | size u64 | path_len u16 | path`.
fn stream_begin(rid: u32, base: u64, size: u64, path: &str) -> Vec<u8> {
    let mut payload = base.to_be_bytes().to_vec();
    payload.extend_from_slice(&size.to_be_bytes());
    payload.extend_from_slice(&(path.len() as u16).to_be_bytes());
    payload.extend_from_slice(path.as_bytes());
    frame_v(6, STREAM_BEGIN, rid, &payload)
}

/// StreamEnd (§13.8): `state u8 | hash [32]`.
fn stream_end(rid: u32, state: u8, hash: [u8; 32]) -> Vec<u8> {
    let mut payload = vec![state];
    payload.extend_from_slice(&hash);
    frame_v(6, STREAM_END, rid, &payload)
}

/// FileChunk frames (version 1 kind) of `content`, cut at the lengths
/// `cuts` yields in turn (0 allowed: an empty chunk, R-5.5.2).
fn chunks(rid: u32, content: &[u8], cuts: &mut impl FnMut() -> usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < content.len() {
        let n = cuts().min(content.len() - at);
        out.extend_from_slice(&frame_v(1, FILE_CHUNK, rid, &content[at..at + n]));
        at += n;
    }
    out
}

fn data(len: usize, seed: u64) -> Vec<u8> {
    common::Rng::new(seed).bytes(len)
}

fn stored(server: &Server, c: &WireClient, at: &str) -> Option<Vec<u8>> {
    std::fs::read(server.user_dir(&c.user).join(at)).ok()
}

/// The connection is still usable: a Ping is answered with its Pong.
fn still_open(c: &mut WireClient) {
    let rid = c.send(Message::Ping);
    assert_eq!(c.reply(rid), Message::Pong, "the connection stays open");
}

/// the bytes of the two kinds as the tables give them are what
/// the reference codec reads and writes; they travel only under `06`, and
/// a kind of versions 1 to 5 under `06` is refused.
#[test]
fn r_13_8_1_the_kinds_have_one_encoding_under_06() {
    let begin = stream_begin(24, 0, 70_000, "big.bin");
    let hash = *blake3::hash(b"x").as_bytes();
    let end = stream_end(24, 0, hash);
    for (bytes, want) in [
        (
            &begin,
            Message::StreamBegin(cloudservice::protocol::StreamBegin {
                version: 0,
                size: 70_000,
                path: p("big.bin"),
            }),
        ),
        (
            &end,
            Message::StreamEnd(cloudservice::protocol::StreamEnd::Sealed(ContentHash(hash))),
        ),
    ] {
        let (frames, _) = cloudservice::protocol::decode_all(bytes);
        assert_eq!(frames, vec![Frame::new(24, want.clone())]);
        assert_eq!(&Frame::new(24, want).to_bytes(), bytes);
    }
    let server = Server::start();
    let pull = frame_v(6, 0x10, 9, &0u64.to_be_bytes());
    for (bytes, text) in [
        (
            frame_v(1, STREAM_BEGIN, 9, &begin[12..]),
            "unknown message kind",
        ),
        (
            frame_v(5, STREAM_BEGIN, 9, &begin[12..]),
            "unknown message kind",
        ),
        (
            frame_v(2, STREAM_END, 9, &end[12..]),
            "unknown message kind",
        ),
        (pull, "unsupported protocol version 6"),
    ] {
        let mut c = WireClient::new_user(server.addr);
        c.send_raw(&bytes);
        let frames = c.until_closed();
        let last = &frames.last().expect("an error").message;
        assert_error(last, ErrorCode::BadFrame);
        let Message::Error(report) = last else {
            unreachable!()
        };
        assert!(
            report.message.to_lowercase().contains(text),
            "{}",
            report.message
        );
    }
}

/// random files (empty, one byte, around the BLAKE3
/// chunk and the minimum chunk, several MiB) in random FileChunk cuts
/// (empty chunks among them) are stored byte for byte and answered
/// PushAck Applied; a new version on top of one is Applied too.
#[test]
fn r_13_8_2_random_files_in_random_chunks_are_stored_exactly() {
    let server = Server::start();
    let mut c = WireClient::new_user(server.addr);
    let mut rng = common::Rng::new(0x5eed_0006);
    let mut sizes = vec![0usize, 1, 1023, 1025, 16_384, 70_000, 262_145, 3 << 20];
    for _ in 0..6 {
        sizes.push(rng.index(2_000_000));
    }
    for (i, size) in sizes.into_iter().enumerate() {
        let content = data(size, i as u64 + 11);
        let at = format!("s/{i}.bin");
        let rid = c.next_request_id();
        let mut bytes = stream_begin(rid, 0, size as u64, &at);
        let mut cut_rng = common::Rng::new(i as u64);
        bytes.extend(chunks(rid, &content, &mut || match cut_rng.index(8) {
            0 => 0,
            1 => 1 + cut_rng.index(100),
            _ => 1 + cut_rng.index(1 << 20),
        }));
        bytes.extend(stream_end(rid, 0, *blake3::hash(&content).as_bytes()));
        c.send_raw(&bytes);
        let ack = match c.reply(rid) {
            Message::PushAck(ack) => ack,
            other => panic!("{at} ({size} bytes): {other:?}"),
        };
        assert_eq!(
            (ack.status, ack.path.as_str()),
            (PushStatus::Applied, at.as_str())
        );
        assert_eq!(
            stored(&server, &c, &at).as_deref(),
            Some(&content[..]),
            "{at}"
        );
        // A second version on top of the first, its base named.
        let edited = data(size / 2 + 1, i as u64 + 99);
        let rid = c.next_request_id();
        let mut bytes = stream_begin(rid, ack.version, edited.len() as u64, &at);
        bytes.extend(chunks(rid, &edited, &mut || 262_144));
        bytes.extend(stream_end(rid, 0, *blake3::hash(&edited).as_bytes()));
        c.send_raw(&bytes);
        match c.reply(rid) {
            Message::PushAck(a) => assert_eq!(a.status, PushStatus::Applied, "{at}"),
            other => panic!("{at} second version: {other:?}"),
        }
        assert_eq!(stored(&server, &c, &at).as_deref(), Some(&edited[..]));
    }
}

/// inside a stream upload only its FileChunks, its StreamEnd and
/// Ping are allowed: a FileEnd closing it, a StreamEnd closing a FileBegin
/// upload, another request, or more bytes than `size` are refused with the
/// spec's error and close; nothing is stored.
#[test]
fn r_13_8_2_a_stream_upload_is_closed_only_by_its_stream_end() {
    let server = Server::start();
    let content = data(40_000, 3);
    let hash = *blake3::hash(&content).as_bytes();
    let cases: Vec<(&str, Vec<u8>, ErrorCode)> = vec![
        (
            "FileEnd closing a stream",
            [
                stream_begin(5, 0, 40_000, "a.bin"),
                frame_v(1, FILE_CHUNK, 5, &content),
                frame_v(1, FILE_END, 5, &[]),
            ]
            .concat(),
            ErrorCode::WrongPhase,
        ),
        (
            "StreamEnd closing a FileBegin upload",
            [
                common::raw::file_begin(5, 0, &content, "a.bin"),
                frame_v(1, FILE_CHUNK, 5, &content),
                stream_end(5, 0, hash),
            ]
            .concat(),
            ErrorCode::WrongPhase,
        ),
        (
            "a Pull inside the upload",
            [
                stream_begin(5, 0, 40_000, "a.bin"),
                frame_v(1, 0x10, 6, &0u64.to_be_bytes()),
            ]
            .concat(),
            ErrorCode::WrongPhase,
        ),
        (
            "StreamEnd of another request",
            [
                stream_begin(5, 0, 40_000, "a.bin"),
                frame_v(1, FILE_CHUNK, 5, &content),
                stream_end(6, 0, hash),
            ]
            .concat(),
            ErrorCode::WrongPhase,
        ),
        (
            "more bytes than size",
            [
                stream_begin(5, 0, 39_999, "a.bin"),
                frame_v(1, FILE_CHUNK, 5, &content),
            ]
            .concat(),
            ErrorCode::SizeMismatch,
        ),
        (
            "StreamEnd without StreamBegin",
            stream_end(5, 0, hash),
            ErrorCode::WrongPhase,
        ),
    ];
    for (what, bytes, code) in cases {
        let mut c = WireClient::new_user(server.addr);
        c.send_raw(&bytes);
        let frames = c.until_closed();
        let last = &frames.last().unwrap_or_else(|| panic!("{what}: no error"));
        assert_error(&last.message, code);
        assert!(stored(&server, &c, "a.bin").is_none(), "{what}: stored");
    }
}

/// at StreamEnd a hash that is not the bytes' BLAKE3 is
/// HashMismatch and fewer bytes than `size` is SizeMismatch: nothing
/// stored, the connection open (a Ping answered, a good upload after
/// it stored); a Ping inside the upload is answered.
#[test]
fn r_13_8_3_a_wrong_end_stores_nothing_and_keeps_the_connection() {
    let server = Server::start();
    let mut c = WireClient::new_user(server.addr);
    let content = data(300_000, 4);
    let mut wrong = *blake3::hash(&content).as_bytes();
    wrong[31] ^= 1;
    for (what, bytes, code) in [
        (
            "hash of other bytes",
            [
                stream_begin(7, 0, 300_000, "b.bin"),
                frame_v(1, FILE_CHUNK, 7, &content),
                stream_end(7, 0, wrong),
            ]
            .concat(),
            ErrorCode::HashMismatch,
        ),
        (
            "fewer bytes than size",
            [
                stream_begin(7, 0, 300_001, "b.bin"),
                frame_v(1, FILE_CHUNK, 7, &content),
                stream_end(7, 0, *blake3::hash(&content).as_bytes()),
            ]
            .concat(),
            ErrorCode::SizeMismatch,
        ),
    ] {
        c.send_raw(&bytes);
        assert_error(&c.reply(7), code);
        assert!(stored(&server, &c, "b.bin").is_none(), "{what}: stored");
        still_open(&mut c);
    }
    // A Ping inside an open stream upload is answered; the upload goes on.
    c.send_raw(&stream_begin(8, 0, 300_000, "b.bin"));
    c.send_raw(&frame_v(1, FILE_CHUNK, 8, &content[..1000]));
    still_open(&mut c);
    c.send_raw(&frame_v(1, FILE_CHUNK, 8, &content[1000..]));
    c.send_raw(&stream_end(8, 0, *blake3::hash(&content).as_bytes()));
    match c.reply(8) {
        Message::PushAck(a) => assert_eq!(a.status, PushStatus::Applied),
        other => panic!("{other:?}"),
    }
    assert_eq!(stored(&server, &c, "b.bin").as_deref(), Some(&content[..]));
}

/// an abandoned upload (state 1, zero hash), whatever it sent
/// (nothing, part, all of `size`), stores nothing and is answered
/// HashMismatch saying so; the connection stays open and an earlier
/// version of the path is untouched. A state other than 0 and 1, or an
/// abandoned end with a hash, is BadValue: Error BadFrame and close.
#[test]
fn r_13_8_4_an_abandoned_upload_stores_nothing() {
    let server = Server::start();
    let mut c = WireClient::new_user(server.addr);
    let old = data(20_000, 5);
    c.put("c.bin", &old, 0).expect("first version");
    let base = 1;
    let content = data(100_000, 6);
    for sent in [0usize, 50_000, 100_000] {
        let mut bytes = stream_begin(9, base, 100_000, "c.bin");
        if sent > 0 {
            bytes.extend(frame_v(1, FILE_CHUNK, 9, &content[..sent]));
        }
        bytes.extend(stream_end(9, 1, [0; 32]));
        c.send_raw(&bytes);
        let answer = c.reply(9);
        assert_error(&answer, ErrorCode::HashMismatch);
        let Message::Error(report) = answer else {
            unreachable!()
        };
        assert!(report.message.contains("abandoned"), "{}", report.message);
        assert_eq!(stored(&server, &c, "c.bin").as_deref(), Some(&old[..]));
        still_open(&mut c);
    }
    for (state, hash) in [(2u8, [0u8; 32]), (255, [0; 32]), (1, [1; 32])] {
        let mut h = WireClient::new_client(server.addr, c.user);
        h.send_raw(
            &[
                stream_begin(3, 0, 1, "d.bin"),
                frame_v(1, FILE_CHUNK, 3, b"x"),
            ]
            .concat(),
        );
        h.send_raw(&stream_end(3, state, hash));
        let frames = h.until_closed();
        assert_error(
            &frames.last().expect("an error").message,
            ErrorCode::BadFrame,
        );
        assert!(stored(&server, &c, "d.bin").is_none());
    }
}

/// the server keeps no list from a stream upload but cuts its
/// own from the stored file: a delta upload of an edit of a streamed file
/// is asked only for the chunks the edit changed.
#[test]
fn r_13_8_5_the_next_delta_upload_reuses_the_streamed_files_chunks() {
    let server = Server::start();
    let mut c = WireClient::new_user(server.addr);
    let content = data(4 << 20, 7);
    let mut bytes = stream_begin(2, 0, content.len() as u64, "e.bin");
    bytes.extend(chunks(2, &content, &mut || 262_144));
    bytes.extend(stream_end(2, 0, *blake3::hash(&content).as_bytes()));
    c.send_raw(&bytes);
    let version = match c.reply(2) {
        Message::PushAck(a) => a.version,
        other => panic!("{other:?}"),
    };
    let mut edited = content.clone();
    edited[2_000_000..2_000_100].copy_from_slice(&[0xee; 100]);
    let m = manifest_of_reader(&edited[..]).expect("in memory");
    let rid = c.send(Message::FileManifest(FileManifest {
        version,
        size: m.size,
        hash: m.hash,
        chunk_count: m.chunks.len() as u32,
        path: p("e.bin"),
    }));
    let entries = m.chunks.iter().map(ShortChunkEntry::of).collect();
    c.send_with(rid, Message::ShortChunkList(entries));
    let needed = c.chunks_needed(rid).expect("ChunksNeeded");
    assert!(
        !needed.is_empty() && needed.len() <= 3,
        "asked for {} of {} chunks",
        needed.len(),
        m.chunks.len()
    );
    match c.send_chunks_and_end(rid, &edited, &needed) {
        (_, Message::PushAck(a)) => assert_eq!(a.status, PushStatus::Applied),
        (_, other) => panic!("{other:?}"),
    }
    assert_eq!(stored(&server, &c, "e.bin").as_deref(), Some(&edited[..]));
}

/// The server's saved chunk index of `c`'s user (written when the user's
/// actor is idle: `--actor-idle 1`): the list it holds for `at` with the
/// whole-file hash `hash`, waited for (10 s at most).
fn indexed_list(server: &Server, c: &WireClient, at: &str, hash: ContentHash) -> Option<Manifest> {
    let file = server
        .data
        .join(".cloudservice-server")
        .join(c.user.to_string())
        .join("chunks");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found = ChunkIndex::load(&file).manifest_of(&p(at), hash);
        if found.is_some() || Instant::now() > deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// the chunk list of a streamed file is the server's from its
/// PushAck on, before any download asks (nothing but stream uploads
/// happens on this server, so nothing else could have cut it): for random
/// contents (one chunk, around MAX_CHUNK, long zero runs, several MiB) in
/// random FileChunk cuts it is exactly the list of the bytes sent, a new
/// version's list replaces the old one's, and FetchManifest serves it.
#[test]
fn r_13_8_8_the_list_is_cut_as_the_bytes_arrive() {
    let server = Server::start_with(&["--actor-idle", "1"]);
    let mut c = WireClient::new_user(server.addr);
    let mut rng = common::Rng::new(0x5eed_0008);
    let mut zeros = data(3_000_000, 5);
    zeros[200_000..2_500_000].fill(0);
    let mut contents = vec![data(20_000, 1), data(262_144, 2), data(262_145, 3), zeros];
    for i in 0..4 {
        contents.push(data(rng.index(5_000_000) + 16_385, 10 + i));
    }
    for (i, content) in contents.iter().enumerate() {
        let at = format!("l/{i}.bin");
        let mut version = 0;
        // The file, then a second version on top of it.
        for (round, content) in [
            content.clone(),
            data(content.len() / 3 + 20_000, 50 + i as u64),
        ]
        .iter()
        .enumerate()
        {
            let rid = c.next_request_id();
            let mut bytes = stream_begin(rid, version, content.len() as u64, &at);
            let mut cut_rng = common::Rng::new(i as u64 * 7 + round as u64);
            bytes.extend(chunks(rid, content, &mut || match cut_rng.index(6) {
                0 => 0,
                1 => 1 + cut_rng.index(3000),
                2 => 262_144,
                _ => 1 + cut_rng.index(1 << 20),
            }));
            let hash = *blake3::hash(content).as_bytes();
            bytes.extend(stream_end(rid, 0, hash));
            c.send_raw(&bytes);
            version = match c.reply(rid) {
                Message::PushAck(a) if a.status == PushStatus::Applied => a.version,
                other => panic!("{at} round {round}: {other:?}"),
            };
            let want = manifest_of_reader(&content[..]).expect("in memory");
            let listed = indexed_list(&server, &c, &at, ContentHash(hash));
            assert_eq!(listed.as_ref(), Some(&want), "{at} round {round}");
            let rid = c.send(Message::FetchManifest(FetchManifest {
                version: 0,
                path: p(&at),
            }));
            let header = match c.reply(rid) {
                Message::FileManifest(h) => h,
                other => panic!("{at}: {other:?}"),
            };
            assert_eq!((header.hash, header.size), (want.hash, want.size));
            let mut served = Vec::new();
            while served.len() < header.chunk_count as usize {
                match c.reply(rid) {
                    Message::ChunkList(more) => served.extend(more),
                    other => panic!("{at}: expected ChunkList, got {other:?}"),
                }
            }
            assert_eq!(served, want.chunks, "{at} round {round}");
            c.send_with(
                rid,
                Message::FetchChunks(ChunkRanges {
                    last: true,
                    ranges: Vec::new(),
                }),
            );
            assert_eq!(c.reply(rid), Message::FileEnd);
        }
    }
}

/// a stream upload cut off by its connection's end keeps what
/// the server received: a delta upload of the same content on a new
/// connection is asked only for the chunks past what was received (and
/// in flight), and the file is stored whole.
#[test]
fn r_13_8_7_a_cut_off_stream_upload_keeps_its_bytes_for_a_delta() {
    let server = Server::start();
    let mut c = WireClient::new_user(server.addr);
    let content = data(8 << 20, 8);
    let half = 4 << 20;
    let mut bytes = stream_begin(2, 0, content.len() as u64, "f.bin");
    bytes.extend(chunks(2, &content[..half], &mut || 262_144));
    c.send_raw(&bytes);
    still_open(&mut c);
    let user = c.user;
    drop(c);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let m = manifest_of_reader(&content[..]).expect("in memory");
    let mut c2 = WireClient::new_client(server.addr, user);
    assert!(stored(&server, &c2, "f.bin").is_none(), "nothing visible");
    let rid = c2.send(Message::FileManifest(FileManifest {
        version: 0,
        size: m.size,
        hash: m.hash,
        chunk_count: m.chunks.len() as u32,
        path: p("f.bin"),
    }));
    let entries = m.chunks.iter().map(ShortChunkEntry::of).collect();
    c2.send_with(rid, Message::ShortChunkList(entries));
    let needed = c2.chunks_needed(rid).expect("ChunksNeeded");
    let asked: u64 = m
        .offsets()
        .enumerate()
        .filter(|(i, _)| needed.contains(&(*i as u32)))
        .map(|(_, (_, e))| u64::from(e.len))
        .sum();
    assert!(
        asked <= (content.len() - half) as u64 + 262_144,
        "asked for {asked} bytes of {} after {half} were received",
        content.len()
    );
    match c2.send_chunks_and_end(rid, &content, &needed) {
        (_, Message::PushAck(a)) => assert_eq!(a.status, PushStatus::Applied),
        (_, other) => panic!("{other:?}"),
    }
    let stored_now = std::fs::read(server.user_dir(&c2.user).join("f.bin")).expect("stored");
    assert!(stored_now == content);
}
