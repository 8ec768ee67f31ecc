//! The server's side of chunk lists relative to a base version (PROTOCOL.md
//! §13.7, protocol version 5), driven with frames over a socket against
//! the real `cloud-server`: random files with random edits uploaded with a
//! `ChunkListDelta` against the stored version's list store exactly the
//! edited bytes; an unknown base is answered `ListBaseUnknown` and the
//! whole list then completes the upload; `FetchManifestSince` serves the
//! list as a delta against the version the client holds (current or the
//! one before); hostile deltas are refused with nothing stored; the new
//! kinds have one encoding.

mod common;

use cloudservice::chunk::{manifest_of_reader, ChunkEntry, IdLen, Manifest};
use cloudservice::protocol::list_delta::{diff, expand};
use cloudservice::protocol::{
    ChunkListDelta, ChunkRanges, ContentHash, ErrorCode, FetchManifest, FetchManifestSince,
    FileManifest, Frame, ListOp, Message, PushAck, PushStatus, ShortChunkEntry,
};
use common::{assert_error, p, Server, WireClient};

/// `len` pseudo-random bytes for `seed` (the kit's one PRNG).
fn data(len: usize, seed: u64) -> Vec<u8> {
    common::Rng::new(seed).bytes(len)
}

fn manifest(content: &[u8]) -> Manifest {
    manifest_of_reader(content).expect("in-memory read")
}

fn header(m: &Manifest, at: &str, base: u64) -> FileManifest {
    FileManifest {
        version: base,
        size: m.size,
        hash: m.hash,
        chunk_count: m.chunks.len() as u32,
        path: p(at),
    }
}

fn short(entries: &[ChunkEntry]) -> Vec<ChunkEntry> {
    entries
        .iter()
        .map(|e| ChunkEntry {
            len: e.len,
            id: IdLen::Short.cut(e.id),
        })
        .collect()
}

/// How an upload's list went.
enum Outcome {
    /// Stored: the chunk bytes sent and the answer.
    Done(u64, PushAck),
    /// Any other answer.
    Refused(Message),
}

/// A delta upload of `content` whose list is one ChunkListDelta against
/// `base_list` (of the content hashing `base_hash`); after a
/// ListBaseUnknown the whole list follows as ShortChunkList. Returns the
/// outcome and whether the base was unknown.
fn delta_put(
    c: &mut WireClient,
    at: &str,
    content: &[u8],
    (base, base_hash, base_list): (u64, ContentHash, &[ChunkEntry]),
) -> (Outcome, bool) {
    let m = manifest(content);
    let rid = c.send(Message::FileManifest(header(&m, at, base)));
    let delta = ChunkListDelta {
        base_hash,
        ops: diff(base_list, &m.chunks),
    };
    c.send_with(rid, Message::ChunkListDelta(delta));
    let mut unknown = false;
    let needed = match c.chunks_needed(rid) {
        Err(Message::ListBaseUnknown) => {
            unknown = true;
            let entries = m.chunks.iter().map(ShortChunkEntry::of).collect();
            c.send_with(rid, Message::ShortChunkList(entries));
            c.chunks_needed(rid)
        }
        other => other,
    };
    let needed = match needed {
        Ok(needed) => needed,
        Err(other) => return (Outcome::Refused(other), unknown),
    };
    match c.send_chunks_and_end(rid, content, &needed) {
        (sent, Message::PushAck(a)) => (Outcome::Done(sent, a), unknown),
        (_, other) => (Outcome::Refused(other), unknown),
    }
}

fn stored(server: &Server, c: &WireClient, at: &str) -> Option<Vec<u8>> {
    std::fs::read(server.user_dir(&c.user).join(at)).ok()
}

/// One random edit of `content` (overwrite, insert, delete, append,
/// truncate) of up to 400 KB; returns its name.
fn random_edit(rng: &mut common::Rng, content: &mut Vec<u8>, seed: u64) -> &'static str {
    let at = rng.index(content.len() + 1);
    let len = 1 + rng.index(400_000);
    let fresh = data(len, seed);
    match rng.index(5) {
        0 => {
            let end = (at + len).min(content.len());
            content[at..end].copy_from_slice(&fresh[..end - at]);
            "overwrite"
        }
        1 => {
            content.splice(at..at, fresh);
            "insert"
        }
        2 => {
            let end = (at + len).min(content.len());
            content.drain(at..end);
            "delete"
        }
        3 => {
            content.extend_from_slice(&fresh);
            "append"
        }
        _ => {
            content.truncate(at.max(20_000));
            "truncate"
        }
    }
}

/// Seeds that once failed, run before the random one: 1796353636260991070
/// truncated a 3,380-byte file "to" 20,000 bytes in case 11, an edit that
/// changed nothing, and the test wanted Applied where answers an
/// upload of the stored content Unchanged.
const SEEDS_THAT_FAILED: &[u64] = &[1_796_353_636_260_991_070];

/// Random files with random edits, each uploaded with its list as a
/// ChunkListDelta against the stored version's list: the stored file is
/// byte-identical to the edited one, the server never lacked the base, it
/// asked only for chunks the base did not have, and the list frame is
/// bounded by the edit (a few runs and the new entries), far below the
/// whole list. `DELTA_SEED` replays one seed; without it the seeds of
/// [`SEEDS_THAT_FAILED`] run, then a new one.
#[test]
///
fn r_13_7_2_delta_lists_store_the_edited_bytes() {
    let seeds: Vec<u64> = match std::env::var("DELTA_SEED") {
        Ok(_) => vec![common::seed("DELTA_SEED")],
        Err(_) => SEEDS_THAT_FAILED
            .iter()
            .copied()
            .chain([common::seed("DELTA_SEED")])
            .collect(),
    };
    for seed in seeds {
        eprintln!("DELTA_SEED={seed}");
        delta_lists_store_the_edited_bytes(seed);
    }
}

/// One run of [`r_13_7_2_delta_lists_store_the_edited_bytes`] for `seed`.
fn delta_lists_store_the_edited_bytes(seed: u64) {
    let mut rng = common::Rng::new(seed);
    let server = Server::start();
    let mut c = WireClient::new_user(server.addr);
    let mut content = data(2_000_000 + rng.index(2_000_000), seed);
    let ack = c.put("f.bin", &content, 0).expect("first upload");
    let mut version = ack.version;
    for case in 0..12 {
        let before = manifest(&content);
        let what = random_edit(&mut rng, &mut content, seed ^ (case + 1));
        let after = manifest(&content);
        let base = (version, before.hash, &before.chunks[..]);
        let (outcome, unknown) = delta_put(&mut c, "f.bin", &content, base);
        let (sent, ack) = match outcome {
            Outcome::Done(sent, ack) => (sent, ack),
            Outcome::Refused(m) => panic!("seed {seed} case {case} ({what}): {m:?}"),
        };
        assert!(
            !unknown,
            "seed {seed} case {case}: the base was the stored version"
        );
        // An edit may leave the bytes as they were (a truncation to more
        // than the file holds, a deletion at the end): an upload of the
        // stored content is Unchanged and keeps its version.
        if after.hash == before.hash {
            assert_eq!(
                (ack.status, ack.version),
                (PushStatus::Unchanged, version),
                "seed {seed} case {case} ({what}): the content did not change"
            );
        } else {
            assert_eq!(
                ack.status,
                PushStatus::Applied,
                "seed {seed} case {case} ({what})"
            );
        }
        version = ack.version;
        assert!(
            stored(&server, &c, "f.bin").as_deref() == Some(&content[..]),
            "seed {seed} case {case} ({what}): stored bytes differ"
        );
        let old: std::collections::HashSet<_> = short(&before.chunks).into_iter().collect();
        let new_bytes: u64 = short(&after.chunks)
            .iter()
            .filter(|e| !old.contains(e))
            .map(|e| u64::from(e.len))
            .sum();
        assert!(
            sent <= new_bytes,
            "seed {seed} case {case}: {sent} > {new_bytes}"
        );
        let ops = diff(&before.chunks, &after.chunks);
        let copies = ops
            .iter()
            .filter(|o| matches!(o, ListOp::Copy { .. }))
            .count();
        assert!(
            copies <= 2,
            "seed {seed} case {case} ({what}): {copies} runs"
        );
        let frame = ChunkListDelta {
            base_hash: before.hash,
            ops,
        };
        let fresh = short(&after.chunks)
            .iter()
            .filter(|e| !old.contains(e))
            .count();
        assert!(
            frame.wire_len() <= 32 + 2 * 9 + 20 * fresh,
            "seed {seed} case {case}: {} bytes for {fresh} new entries",
            frame.wire_len()
        );
    }
}

/// A base the server does not hold (never stored, or not this path's):
/// ListBaseUnknown once, then the whole list completes the upload with the
/// right bytes. A second ChunkListDelta in one upload, or one after a
/// ShortChunkList frame: BadFrame and close, nothing stored.
#[test]
///
fn r_13_7_3_an_unknown_base_costs_one_round_trip_then_the_whole_list() {
    let server = Server::start();
    let mut c = WireClient::new_user(server.addr);
    let v1 = data(900_000, 1);
    let ack = c.put("a.bin", &v1, 0).expect("first upload");
    let mut v2 = v1.clone();
    v2[300_000..310_000].copy_from_slice(&data(10_000, 2));
    // A base hash the server never had, with v1's list.
    let m1 = manifest(&v1);
    let (outcome, unknown) = delta_put(
        &mut c,
        "a.bin",
        &v2,
        (ack.version, ContentHash([0x5a; 32]), &m1.chunks),
    );
    assert!(unknown, "an unknown base must be answered ListBaseUnknown");
    let Outcome::Done(_, ack2) = outcome else {
        panic!("the whole list did not complete the upload")
    };
    assert_eq!(ack2.status, PushStatus::Applied);
    assert!(stored(&server, &c, "a.bin").as_deref() == Some(&v2[..]));
    // Another path's content is not this path's base.
    let other = data(600_000, 3);
    c.put("b.bin", &other, 0).expect("other file");
    let mo = manifest(&other);
    let mut b2 = other.clone();
    b2.extend_from_slice(&data(50_000, 4));
    let (_, unknown) = delta_put(&mut c, "a.bin", &b2, (ack2.version, mo.hash, &mo.chunks));
    assert!(unknown, "b.bin's list is not a.bin's base");
    assert!(stored(&server, &c, "a.bin").as_deref() == Some(&b2[..]));

    // Two deltas in one upload, and a delta after a ShortChunkList frame.
    let v3 = {
        let mut v = v2.clone();
        v.extend_from_slice(&data(40_000, 5));
        v
    };
    let m2 = manifest(&v2);
    let m3 = manifest(&v3);
    let delta = ChunkListDelta {
        base_hash: ContentHash([0x77; 32]),
        ops: diff(&m2.chunks, &m3.chunks),
    };
    let mut twice = WireClient::new_client(server.addr, c.user);
    let rid = twice.send(Message::FileManifest(header(&m3, "a.bin", 0)));
    twice.send_with(rid, Message::ChunkListDelta(delta.clone()));
    assert_eq!(twice.reply(rid), Message::ListBaseUnknown);
    twice.send_with(rid, Message::ChunkListDelta(delta.clone()));
    let last = twice.until_closed();
    assert_error(&last.last().expect("an error").message, ErrorCode::BadFrame);
    let mut after = WireClient::new_client(server.addr, c.user);
    let rid = after.send(Message::FileManifest(header(&m3, "a.bin", 0)));
    let first = m3.chunks.iter().take(1).map(ShortChunkEntry::of).collect();
    after.send_with(rid, Message::ShortChunkList(first));
    after.send_with(rid, Message::ChunkListDelta(delta));
    let last = after.until_closed();
    assert_error(&last.last().expect("an error").message, ErrorCode::BadFrame);
    assert!(
        stored(&server, &c, "a.bin").as_deref() == Some(&b2[..]),
        "a refused upload changed the stored file"
    );
}

/// Hostile deltas against a base the server holds: a run past the base's
/// end, a run of a billion entries, operations describing fewer or more
/// entries than announced: Error BadFrame and close, nothing stored.
#[test]
///
fn r_13_7_2_hostile_deltas_store_nothing() {
    let server = Server::start();
    let mut c = WireClient::new_user(server.addr);
    let v1 = data(1_500_000, 11);
    let ack = c.put("h.bin", &v1, 0).expect("first upload");
    let m1 = manifest(&v1);
    let n = m1.chunks.len() as u32;
    let new_entry = ListOp::New(ShortChunkEntry::of(&m1.chunks[0]));
    let cases: Vec<(u32, Vec<ListOp>)> = vec![
        (n, vec![ListOp::Copy { first: 1, count: n }]),
        (
            1_000_000_000,
            vec![ListOp::Copy {
                first: 0,
                count: 1_000_000_000,
            }],
        ),
        (n + 1, vec![ListOp::Copy { first: 0, count: n }]),
        (n, vec![ListOp::Copy { first: 0, count: n }, new_entry]),
    ];
    for (count, ops) in cases {
        let mut h = WireClient::new_client(server.addr, c.user);
        let rid = h.send(Message::FileManifest(FileManifest {
            version: ack.version,
            size: m1.size,
            hash: ContentHash([1; 32]),
            chunk_count: count.min(n + 1),
            path: p("h.bin"),
        }));
        let _ = h.try_send_frames(&[Frame::new(
            rid,
            Message::ChunkListDelta(ChunkListDelta {
                base_hash: m1.hash,
                ops: ops.clone(),
            }),
        )]);
        let frames = h.until_closed();
        let last = &frames.last().expect("an error").message;
        assert_error(last, ErrorCode::BadFrame);
        assert!(stored(&server, &c, "h.bin").as_deref() == Some(&v1[..]));
    }
    // An honest delta of the same content still goes through afterwards.
    let mut v2 = v1.clone();
    v2[700_000..700_100].copy_from_slice(&[9; 100]);
    let (outcome, unknown) = delta_put(&mut c, "h.bin", &v2, (ack.version, m1.hash, &m1.chunks));
    assert!(!unknown);
    assert!(matches!(outcome, Outcome::Done(..)));
    assert!(stored(&server, &c, "h.bin").as_deref() == Some(&v2[..]));
}

/// Asks `at`'s list with FetchManifestSince naming `base`; returns the
/// header and what came: the expanded delta (with the client's own
/// `base_list`) or the whole short list, and whether it was a delta.
fn fetch_since(
    c: &mut WireClient,
    at: &str,
    base: ContentHash,
    base_list: &[ChunkEntry],
) -> (FileManifest, Vec<ChunkEntry>, bool) {
    let rid = c.send(Message::FetchManifestSince(FetchManifestSince {
        version: 0,
        base_hash: base,
        path: p(at),
    }));
    let header = match c.reply(rid) {
        Message::FileManifest(h) => h,
        other => panic!("expected FileManifest, got {other:?}"),
    };
    let mut entries = Vec::new();
    let mut was_delta = false;
    while entries.len() < header.chunk_count as usize {
        match c.reply(rid) {
            Message::ChunkListDelta(d) if entries.is_empty() => {
                assert_eq!(d.base_hash, base);
                entries = expand(base_list, &d.ops, header.chunk_count).expect("expands");
                was_delta = true;
            }
            Message::ShortChunkList(more) => {
                entries.extend(more.into_iter().map(ShortChunkEntry::to_entry))
            }
            other => panic!("expected a list, got {other:?}"),
        }
    }
    // Close the download: no chunk needed.
    c.send_with(
        rid,
        Message::FetchChunks(ChunkRanges {
            last: true,
            ranges: Vec::new(),
        }),
    );
    assert!(matches!(c.reply(rid), Message::FileEnd));
    (header, entries, was_delta)
}

/// FetchManifestSince: naming the version before the current one (the one
/// a device that has not pulled yet holds), the list comes as one
/// ChunkListDelta that expands to the current list; naming an unknown
/// content, the whole list comes as ShortChunkList; an older client's
/// FetchShortManifest still gets the whole list.
#[test]
///
fn r_13_7_4_downloads_get_the_list_relative_to_the_held_version() {
    let server = Server::start();
    let mut c = WireClient::new_user(server.addr);
    let v1 = data(3_000_000, 21);
    let ack = c.put("d.bin", &v1, 0).expect("first upload");
    let m1 = manifest(&v1);
    let mut v2 = v1.clone();
    v2[1_000_000..1_200_000].copy_from_slice(&data(200_000, 22));
    let (outcome, _) = delta_put(&mut c, "d.bin", &v2, (ack.version, m1.hash, &m1.chunks));
    assert!(matches!(outcome, Outcome::Done(..)));
    let m2 = manifest(&v2);

    let (h, entries, was_delta) = fetch_since(&mut c, "d.bin", m1.hash, &m1.chunks);
    assert!(was_delta, "the previous version's list is held: a delta");
    assert_eq!(h.hash, m2.hash);
    assert_eq!(entries, short(&m2.chunks));
    let (_, entries, was_delta) = fetch_since(&mut c, "d.bin", ContentHash([3; 32]), &[]);
    assert!(!was_delta, "an unknown base gets the whole list");
    assert_eq!(entries, short(&m2.chunks));
    // The older form is unchanged.
    let rid = c.send(Message::FetchShortManifest(FetchManifest {
        version: 0,
        path: p("d.bin"),
    }));
    assert!(matches!(c.reply(rid), Message::FileManifest(_)));
    assert!(matches!(c.reply(rid), Message::ShortChunkList(_)));
    server.wait_log("list relative to the held version");
}

/// Each version-5 frame has one encoding: a version-5 kind under header
/// byte 01..04 is refused as an unknown kind, an older kind under 05 as an
/// unsupported version (Error BadFrame, close).
#[test]
///
fn r_13_7_1_version_5_kinds_travel_only_under_05() {
    let server = Server::start();
    let delta = Message::ChunkListDelta(ChunkListDelta {
        base_hash: ContentHash([1; 32]),
        ops: vec![ListOp::Copy { first: 0, count: 1 }],
    });
    let fetch = Message::FetchManifestSince(FetchManifestSince {
        version: 0,
        base_hash: ContentHash([2; 32]),
        path: p("x.bin"),
    });
    let pull = Message::Pull { cursor: 0 };
    for (message, version, text) in [
        (&delta, 2u8, "unknown message kind"),
        (&delta, 4, "unknown message kind"),
        (&fetch, 1, "unknown message kind"),
        (&fetch, 4, "unknown message kind"),
        (&pull, 5, "unsupported protocol version 5"),
    ] {
        let mut c = WireClient::new_user(server.addr);
        let mut bytes = Frame::new(9, message.clone()).to_bytes();
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
