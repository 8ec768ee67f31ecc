//! The server's side of short chunk IDs (PROTOCOL.md §13.6, protocol
//! version 4), driven with frames over a socket against the real
//! `cloud-server`: delta uploads whose list is `ShortChunkList` store the
//! same bytes as with `ChunkList`, `FetchShortManifest` serves the stored
//! content's list with 16-byte IDs, the version-4 kinds have one encoding,
//! and hostile short lists are refused without storing anything.

mod common;

use cloudservice::chunk::{chunk_reader, manifest_of_reader, IdLen, Manifest};
use cloudservice::protocol::{
    ChunkData, ChunkRange, ChunkRanges, ContentHash, ErrorCode, FetchManifest, FileManifest,
    Message, PushAck, PushStatus, ShortChunkEntry,
};
use common::{assert_error, p, Server, WireClient};

/// `len` pseudo-random bytes for `seed` (the kit's one PRNG).
fn data(len: usize, seed: u64) -> Vec<u8> {
    common::Rng::new(seed).bytes(len)
}

fn short(manifest: &Manifest) -> Vec<ShortChunkEntry> {
    manifest.chunks.iter().map(ShortChunkEntry::of).collect()
}

fn header(manifest: &Manifest, at: &str, base: u64) -> FileManifest {
    FileManifest {
        version: base,
        size: manifest.size,
        hash: manifest.hash,
        chunk_count: manifest.chunks.len() as u32,
        path: p(at),
    }
}

/// A delta upload of `content` with its list as ShortChunkList frames of
/// `per_frame` entries: sends what the server asks for, then FileEnd.
/// Returns the chunk bytes sent and the answer.
fn short_put(
    c: &mut WireClient,
    at: &str,
    content: &[u8],
    base: u64,
    per_frame: usize,
) -> (u64, Result<PushAck, Message>) {
    let manifest = manifest_of_reader(content).expect("in-memory read");
    let rid = c.send(Message::FileManifest(header(&manifest, at, base)));
    for part in short(&manifest).chunks(per_frame) {
        c.send_with(rid, Message::ShortChunkList(part.to_vec()));
    }
    let needed = match c.chunks_needed(rid) {
        Ok(needed) => needed,
        Err(other) => return (0, Err(other)),
    };
    match c.send_chunks_and_end(rid, content, &needed) {
        (sent, Message::PushAck(a)) => (sent, Ok(a)),
        (sent, other) => (sent, Err(other)),
    }
}

/// Asks for `at`'s list with FetchManifest or FetchShortManifest; returns
/// the request ID, the header and the entries (short ones as
/// [`IdLen::cut`] holds them).
fn list_of(
    c: &mut WireClient,
    at: &str,
    id_len: IdLen,
) -> (u32, FileManifest, Vec<cloudservice::chunk::ChunkEntry>) {
    let ask = FetchManifest {
        version: 0,
        path: p(at),
    };
    let rid = match id_len {
        IdLen::Full => c.send(Message::FetchManifest(ask)),
        IdLen::Short => c.send(Message::FetchShortManifest(ask)),
    };
    let header = match c.reply(rid) {
        Message::FileManifest(h) => h,
        other => panic!("expected FileManifest, got {other:?}"),
    };
    let mut entries = Vec::new();
    while entries.len() < header.chunk_count as usize {
        match (c.reply(rid), id_len) {
            (Message::ChunkList(more), IdLen::Full) => entries.extend(more),
            (Message::ShortChunkList(more), IdLen::Short) => {
                entries.extend(more.into_iter().map(ShortChunkEntry::to_entry))
            }
            (other, _) => panic!("expected a {id_len:?} list, got {other:?}"),
        }
    }
    (rid, header, entries)
}

fn stored(server: &Server, c: &WireClient, at: &str) -> Option<Vec<u8>> {
    std::fs::read(server.user_dir(&c.user).join(at)).ok()
}

/// Random files and random edits uploaded with short lists (frames of
/// random sizes): each stored file is byte-identical to what was sent,
/// only the chunks near an edit are asked for, and afterwards both a
/// FetchManifest (32-byte IDs, an older client) and a FetchShortManifest
/// give the reference chunker's list of the stored content: the index
/// recorded whole IDs for a list that arrived short. `DELTA_SEED` replays.
#[test]
///
fn r_13_6_2_short_list_uploads_store_the_bytes_and_old_lists_stay_true() {
    let seed = common::seed("DELTA_SEED");
    let mut rng = common::Rng::new(seed);
    let server = Server::start();
    let mut c = WireClient::new_user(server.addr);
    let mut files: Vec<(String, Vec<u8>, u64)> = Vec::new();
    for i in 0..2 {
        let content = data(300_000 + rng.index(1_500_000), seed + i);
        let at = format!("f{i}.bin");
        let per_frame = 1 + rng.index(40);
        let ack = short_put(&mut c, &at, &content, 0, per_frame)
            .1
            .unwrap_or_else(|e| panic!("seed {seed}: first upload {e:?}"));
        files.push((at, content, ack.version));
    }
    for case in 0..12 {
        let which = rng.index(files.len());
        let (name, old, base) = files[which].clone();
        let at = rng.index(old.len());
        let len = 1 + rng.index(100_000);
        let mut fresh = vec![0u8; len];
        rng.fill(&mut fresh);
        let new = match rng.index(3) {
            0 => {
                let mut v = old.clone();
                let end = (at + len).min(v.len());
                v[at..end].copy_from_slice(&fresh[..end - at]);
                v
            }
            1 => [&old[..at], &fresh[..], &old[at..]].concat(),
            _ => [&old[..], &fresh[..]].concat(),
        };
        let per_frame = 1 + rng.index(40);
        let (sent, ack) = short_put(&mut c, &name, &new, base, per_frame);
        let ack = ack.unwrap_or_else(|e| panic!("seed {seed} case {case}: {e:?}"));
        assert_eq!(ack.status, PushStatus::Applied, "seed {seed} case {case}");
        let bound = len as u64 + 4 * 262_144;
        assert!(sent <= bound, "seed {seed} case {case}: {sent} > {bound}");
        assert!(
            stored(&server, &c, &name).as_deref() == Some(&new[..]),
            "seed {seed} case {case}: stored file differs"
        );
        files[which] = (name, new, ack.version);
    }
    for (name, content, version) in &files {
        let want = manifest_of_reader(&content[..]).expect("read");
        let (_, h, full) = list_of(&mut c, name, IdLen::Full);
        assert_eq!(
            (h.version, h.hash, h.size),
            (*version, want.hash, want.size)
        );
        assert_eq!(
            full, want.chunks,
            "{name}: 32-byte list is not the content's"
        );
        let (_, _, cut) = list_of(&mut c, name, IdLen::Short);
        let want_cut: Vec<_> = short(&want).into_iter().map(|e| e.to_entry()).collect();
        assert_eq!(cut, want_cut, "{name}: 16-byte list is not the content's");
    }
}

/// FetchShortManifest: the FileManifest of the stored content, its list
/// with 16-byte IDs, and FetchChunks rebuilding the file byte for byte,
/// for sizes around the edges (empty, one chunk, several).
#[test]
///
fn r_13_6_3_a_short_manifest_lists_the_stored_content_and_its_chunks_rebuild_it() {
    let server = Server::start();
    let mut c = WireClient::new_user(server.addr);
    for (i, len) in [0usize, 1, 16_385, 70_000, 3 << 20].into_iter().enumerate() {
        let content = data(len, 40 + i as u64);
        let at = format!("g{i}.bin");
        let ack = c.put(&at, &content, 0).expect("upload applied");
        let (rid, h, list) = list_of(&mut c, &at, IdLen::Short);
        let want = manifest_of_reader(&content[..]).expect("read");
        assert_eq!(
            (h.version, h.size, h.hash, h.chunk_count as usize),
            (ack.version, want.size, want.hash, want.chunks.len())
        );
        let ranges = if list.is_empty() {
            vec![]
        } else {
            vec![ChunkRange {
                first: 0,
                count: list.len() as u32,
            }]
        };
        c.send_with(
            rid,
            Message::FetchChunks(ChunkRanges { last: true, ranges }),
        );
        let mut rebuilt = Vec::new();
        for entry in &list {
            match c.reply(rid) {
                Message::ChunkData(d) => {
                    assert_eq!(d.data.len(), entry.len as usize);
                    assert!(IdLen::Short.matches(&entry.id, &ContentHash::of(&d.data)));
                    rebuilt.extend(d.data);
                }
                other => panic!("expected ChunkData, got {other:?}"),
            }
        }
        assert!(matches!(c.reply(rid), Message::FileEnd));
        assert!(rebuilt == content, "{at}: rebuilt bytes differ");
    }
}

/// Each version-4 frame has one encoding: a version-4 kind under header
/// byte 01..03 and an older kind under 04 are refused (Error BadFrame,
/// close), and nothing is stored.
#[test]
///
fn r_13_6_1_version_4_kinds_travel_only_under_04() {
    let server = Server::start();
    let entry = ShortChunkEntry {
        len: 70_000,
        id: [7; 16],
    };
    let list = Message::ShortChunkList(vec![entry]);
    let fetch = Message::FetchShortManifest(FetchManifest {
        version: 0,
        path: p("x.bin"),
    });
    let pull = Message::Pull { cursor: 0 };
    for (message, version, text) in [
        (&list, 2u8, "unknown message kind"),
        (&fetch, 1, "unknown message kind"),
        (&fetch, 3, "unknown message kind"),
        (&pull, 4, "unsupported protocol version 4"),
    ] {
        let mut c = WireClient::new_user(server.addr);
        let mut bytes = cloudservice::protocol::Frame::new(9, message.clone()).to_bytes();
        bytes[2] = version;
        c.send_raw(&bytes);
        let frames = c.until_closed();
        let last = &frames.last().expect("an error").message;
        assert_error(last, ErrorCode::BadFrame);
        let Message::Error(report) = last else {
            unreachable!()
        };
        assert!(
            report.message.to_lowercase().contains(text),
            "{:?} under {version}: {}",
            message.kind(),
            report.message
        );
    }
}

/// Hostile short lists: a billion chunks, lengths that lie (not adding up,
/// a short chunk before the end, one over the maximum, one the u24 maximum),
/// a payload that is not whole entries, the two list forms mixed in one
/// upload: Error BadFrame and close, nothing stored. A chunk that does not
/// match its 16-byte ID: HashMismatch and close. A whole-file hash that
/// lies: HashMismatch at FileEnd, nothing stored, the connection open.
#[test]
///
fn r_13_6_4_hostile_short_lists_and_lying_ids_store_nothing() {
    let server = Server::start();
    let e = |len: u32| ShortChunkEntry { len, id: [3; 16] };
    let cases: Vec<(u64, u32, Vec<ShortChunkEntry>)> = vec![
        (u64::MAX, 1_000_000_000, vec![e(16_384)]),
        (40_000, 2, vec![e(20_000), e(20_001)]),
        (20_000, 2, vec![e(100), e(19_900)]),
        (300_000, 1, vec![e(300_000)]),
        (16_777_215, 1, vec![e(16_777_215)]),
    ];
    for (size, count, entries) in cases {
        let mut c = WireClient::new_user(server.addr);
        let rid = c.send(Message::FileManifest(FileManifest {
            version: 0,
            size,
            hash: ContentHash([0; 32]),
            chunk_count: count,
            path: p("hostile.bin"),
        }));
        let _ = c.try_send_frames(&[cloudservice::protocol::Frame::new(
            rid,
            Message::ShortChunkList(entries),
        )]);
        let frames = c.until_closed();
        assert_error(
            &frames.last().expect("an error").message,
            ErrorCode::BadFrame,
        );
        assert!(stored(&server, &c, "hostile.bin").is_none());
    }

    // Not whole entries: 20 bytes is one entry and a byte.
    let content = data(200_000, 9);
    let m = manifest_of_reader(&content[..]).expect("read");
    let mut c = WireClient::new_user(server.addr);
    let rid = c.send(Message::FileManifest(header(&m, "x.bin", 0)));
    let mut bytes =
        cloudservice::protocol::Frame::new(rid, Message::ShortChunkList(short(&m)[..1].to_vec()))
            .to_bytes();
    bytes.push(0);
    bytes[11] += 1;
    c.send_raw(&bytes);
    let frames = c.until_closed();
    assert_error(
        &frames.last().expect("an error").message,
        ErrorCode::BadFrame,
    );

    // Mixed forms in one list.
    let mut c = WireClient::new_user(server.addr);
    assert!(m.chunks.len() >= 2);
    let rid = c.send(Message::FileManifest(header(&m, "x.bin", 0)));
    c.send_with(rid, Message::ShortChunkList(short(&m)[..1].to_vec()));
    let _ = c.try_send_frames(&[cloudservice::protocol::Frame::new(
        rid,
        Message::ChunkList(m.chunks[1..].to_vec()),
    )]);
    let frames = c.until_closed();
    assert_error(
        &frames.last().expect("an error").message,
        ErrorCode::BadFrame,
    );
    assert!(stored(&server, &c, "x.bin").is_none());

    // A chunk whose bytes are not its 16-byte ID's (one ID lies).
    let mut c = WireClient::new_user(server.addr);
    let mut lying = short(&m);
    lying[0].id[15] ^= 1;
    let rid = c.send(Message::FileManifest(header(&m, "x.bin", 0)));
    c.send_with(rid, Message::ShortChunkList(lying));
    match c.reply(rid) {
        Message::ChunksNeeded(n) => assert!(n.last),
        other => panic!("expected ChunksNeeded, got {other:?}"),
    }
    let first = content[..m.chunks[0].len as usize].to_vec();
    c.send_with(
        rid,
        Message::ChunkData(ChunkData {
            index: 0,
            data: first,
        }),
    );
    let frames = c.until_closed();
    assert_error(
        &frames.last().expect("an error").message,
        ErrorCode::HashMismatch,
    );
    assert!(stored(&server, &c, "x.bin").is_none());

    // A whole-file hash that lies: every chunk passes, the file does not.
    let mut c = WireClient::new_user(server.addr);
    let mut liar = m.clone();
    liar.hash = ContentHash::of(b"another file");
    let rid = c.send(Message::FileManifest(header(&liar, "x.bin", 0)));
    c.send_with(rid, Message::ShortChunkList(short(&m)));
    let mut needed = Vec::new();
    loop {
        match c.reply(rid) {
            Message::ChunksNeeded(ChunkRanges { last, ranges }) => {
                needed.extend(ranges.iter().flat_map(|r| r.first..r.first + r.count));
                if last {
                    break;
                }
            }
            other => panic!("expected ChunksNeeded, got {other:?}"),
        }
    }
    let chunks: Vec<Vec<u8>> = chunk_reader(&content[..])
        .map(|x| x.expect("read").1)
        .collect();
    for index in needed {
        let data = chunks[index as usize].clone();
        c.send_with(rid, Message::ChunkData(ChunkData { index, data }));
    }
    c.send_with(rid, Message::FileEnd);
    assert_error(&c.reply(rid), ErrorCode::HashMismatch);
    assert!(stored(&server, &c, "x.bin").is_none());
    // The connection stays open, and the same file with its true hash
    // (and, as the reference client does next, a 32-byte list) is stored.
    let rid = c.send(Message::FileManifest(header(&m, "x.bin", 0)));
    c.send_with(rid, Message::ChunkList(m.chunks.clone()));
    let mut needed = Vec::new();
    loop {
        match c.reply(rid) {
            Message::ChunksNeeded(ChunkRanges { last, ranges }) => {
                needed.extend(ranges.iter().flat_map(|r| r.first..r.first + r.count));
                if last {
                    break;
                }
            }
            other => panic!("expected ChunksNeeded, got {other:?}"),
        }
    }
    for index in needed {
        let data = chunks[index as usize].clone();
        c.send_with(rid, Message::ChunkData(ChunkData { index, data }));
    }
    c.send_with(rid, Message::FileEnd);
    assert!(matches!(c.reply(rid), Message::PushAck(_)));
    assert!(stored(&server, &c, "x.bin").as_deref() == Some(&content[..]));
}
