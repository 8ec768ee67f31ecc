//! The server's side of delta downloads (PROTOCOL.md §13.4), driven with
//! frames over a socket against the real `cloud-server`: the manifest is the
//! reference chunker's list of the stored content, chunks come back exactly
//! as asked and byte-identical, the content announced stays what is served
//! whatever pushes happen meanwhile, and hostile `FetchChunks` get an Error
//! and lose nothing.

mod common;

use cloudservice::chunk::{manifest_of_reader, ChunkEntry, Manifest};
use cloudservice::protocol::{
    ChunkRange, ChunkRanges, ContentHash, ErrorCode, FetchManifest, FileManifest, Message,
};
use common::{assert_error, p, Server, WireClient};
use std::time::Duration;

/// `len` pseudo-random bytes for `seed` (the kit's one PRNG).
fn data(len: usize, seed: u64) -> Vec<u8> {
    common::Rng::new(seed).bytes(len)
}

/// Sends FetchManifest and reads the FileManifest and its ChunkList frames.
fn manifest(c: &mut WireClient, at: &str) -> Result<(u32, FileManifest, Vec<ChunkEntry>), Message> {
    let rid = c.send(Message::FetchManifest(FetchManifest {
        version: 0,
        path: p(at),
    }));
    let header = match c.reply(rid) {
        Message::FileManifest(h) => h,
        other => return Err(other),
    };
    let mut chunks = Vec::new();
    while chunks.len() < header.chunk_count as usize {
        match c.reply(rid) {
            Message::ChunkList(more) => chunks.extend(more),
            other => panic!("expected ChunkList, got {other:?}"),
        }
    }
    Ok((rid, header, chunks))
}

/// Sends one FetchChunks (R) and reads its reply: `(index, bytes)` per
/// ChunkData, and whether a FileEnd closed it (only after `last`).
fn chunks(c: &mut WireClient, rid: u32, ranges: &[(u32, u32)], last: bool) -> Vec<(u32, Vec<u8>)> {
    let ranges: Vec<ChunkRange> = ranges
        .iter()
        .map(|&(first, count)| ChunkRange { first, count })
        .collect();
    let expected: u64 = ranges.iter().map(|r| u64::from(r.count)).sum();
    c.send_with(rid, Message::FetchChunks(ChunkRanges { last, ranges }));
    let mut got = Vec::new();
    while (got.len() as u64) < expected {
        match c.reply(rid) {
            Message::ChunkData(d) => got.push((d.index, d.data)),
            other => panic!("expected ChunkData, got {other:?}"),
        }
    }
    if last {
        assert!(matches!(c.reply(rid), Message::FileEnd), "FileEnd closes");
    }
    got
}

/// The whole file through a delta download that asks for every chunk.
fn download(c: &mut WireClient, at: &str) -> (FileManifest, Vec<u8>) {
    let (rid, header, list) = manifest(c, at).expect("a manifest");
    let all = if list.is_empty() {
        vec![]
    } else {
        vec![(0, list.len() as u32)]
    };
    let got = chunks(c, rid, &all, true);
    let mut bytes = Vec::new();
    for (i, (index, data)) in got.into_iter().enumerate() {
        assert_eq!(index as usize, i, "chunks in order");
        assert_eq!(data.len(), list[i].len as usize);
        assert_eq!(ContentHash::of(&data), list[i].id);
        bytes.extend(data);
    }
    (header, bytes)
}

fn reference(content: &[u8]) -> Manifest {
    manifest_of_reader(content).expect("in-memory read")
}

#[test]
///
fn r_13_4_1_the_manifest_is_the_stored_contents_list_and_chunks_rebuild_it() {
    let server = Server::start();
    let mut c = WireClient::new_user(server.addr);
    for (i, len) in [0usize, 1, 16_384, 16_385, 70_000, 3 << 20]
        .into_iter()
        .enumerate()
    {
        let content = data(len, 100 + i as u64);
        let at = format!("f{i}.bin");
        let ack = c.put(&at, &content, 0).expect("upload applied");
        let (header, bytes) = download(&mut c, &at);
        let want = reference(&content);
        assert_eq!(
            (header.version, header.size, header.hash, header.chunk_count),
            (ack.version, want.size, want.hash, want.chunks.len() as u32),
            "{at}"
        );
        assert!(bytes == content, "{at}: rebuilt bytes differ");
        // The second time the list comes from the index: the same.
        let (_, again) = download(&mut c, &at);
        assert!(again == content, "{at}: second download differs");
    }
}

#[test]
///
fn r_13_4_1_absent_paths_and_directories_are_not_found_and_the_connection_stays() {
    let server = Server::start();
    let mut c = WireClient::new_user(server.addr);
    c.push(Message::MakeDir { path: p("dir") }).expect("mkdir");
    for at in ["missing.bin", "dir"] {
        let err = manifest(&mut c, at).expect_err("an error");
        assert_error(&err, ErrorCode::NotFound);
    }
    let ack = c.put("after.txt", b"still open", 0).expect("applied");
    assert_eq!(ack.path, p("after.txt"));
}

/// Random subsets of chunks, asked over several FetchChunks frames, come
/// back as asked, in order, each its listed bytes. `DELTA_SEED` replays.
#[test]
///
fn r_13_4_3_random_runs_over_several_frames_return_exactly_those_chunks() {
    let seed = common::seed("DELTA_SEED");
    let mut rng = common::Rng::new(seed);
    let server = Server::start();
    let mut c = WireClient::new_user(server.addr);
    let content = data(2 << 20, seed);
    c.put("big.bin", &content, 0).expect("applied");
    let want = reference(&content);
    let offsets: Vec<u64> = want.offsets().map(|(o, _)| o).collect();
    for round in 0..6 {
        let (rid, _, list) = manifest(&mut c, "big.bin").expect("manifest");
        assert_eq!(list, want.chunks);
        let n = list.len() as u32;
        let mut at = 0u32;
        let mut frames: Vec<Vec<(u32, u32)>> = vec![Vec::new()];
        while at < n {
            let first = at + rng.index(3) as u32;
            if first >= n {
                break;
            }
            let count = 1 + rng.index((n - first) as usize).min(4) as u32;
            frames.last_mut().expect("a frame").push((first, count));
            if rng.index(3) == 0 {
                frames.push(Vec::new());
            }
            at = first + count;
        }
        let last_frame = frames.len() - 1;
        for (f, runs) in frames.iter().enumerate() {
            let got = chunks(&mut c, rid, runs, f == last_frame);
            let asked: Vec<u32> = runs.iter().flat_map(|&(a, k)| a..a + k).collect();
            assert_eq!(
                got.iter().map(|g| g.0).collect::<Vec<_>>(),
                asked,
                "seed {seed} round {round}"
            );
            for (index, bytes) in got {
                let i = index as usize;
                let from = offsets[i] as usize;
                assert!(bytes[..] == content[from..from + list[i].len as usize]);
            }
        }
    }
}

/// The content announced is what is served: an overwrite, a delete or a
/// rename of the path between the manifest and the chunks (from this
/// connection or another device) changes nothing in the download.
#[test]
///
fn r_13_4_2_pushes_after_the_manifest_do_not_change_the_bytes_served() {
    let server = Server::start();
    let mut c = WireClient::new_user(server.addr);
    let mut other = WireClient::new_client(server.addr, c.user);
    let old = data(1 << 20, 7);
    let ack = c.put("f.bin", &old, 0).expect("applied");
    let want = reference(&old);
    let (rid, header, list) = manifest(&mut c, "f.bin").expect("manifest");
    assert_eq!(header.hash, want.hash);
    let new = data(1 << 20, 8);
    let ack2 = other.put("f.bin", &new, ack.version).expect("overwrite");
    let half = list.len() as u32 / 2;
    let first = chunks(&mut c, rid, &[(0, half)], false);
    other
        .push(Message::Delete(cloudservice::protocol::Delete {
            base_version: ack2.version,
            path: p("f.bin"),
        }))
        .expect("delete");
    let rest = chunks(&mut c, rid, &[(half, list.len() as u32 - half)], true);
    let bytes: Vec<u8> = first.into_iter().chain(rest).flat_map(|g| g.1).collect();
    assert!(bytes == old, "the announced version is served whole");
    // And a push on the same connection between the two, too.
    let again = c.put("g.bin", &old, 0).expect("applied");
    let (rid, _, list) = manifest(&mut c, "g.bin").expect("manifest");
    c.put("g.bin", &new, again.version).expect("overwrite");
    let bytes: Vec<u8> = chunks(&mut c, rid, &[(0, list.len() as u32)], true)
        .into_iter()
        .flat_map(|g| g.1)
        .collect();
    assert!(bytes == old);
}

/// Bytes changed in place behind the server's back after the manifest are
/// never served: the first chunk that no longer hashes right is answered
/// Error `Storage` (R), and the connection stays open. Both ways the
/// server may serve: a file written just before the manifest
/// (every chunk re-hashed) and a settled one (chunks sent unhashed while
/// the descriptor's size and times are those of the manifest): a random
/// overwrite, truncation or append after the manifest is refused at the
/// first chunk it touches whichever it is, and an untouched settled file is
/// served whole. Seed: `BEHIND_SEED`.
#[test]
///
fn r_13_4_2_bytes_changed_behind_the_server_are_a_storage_error_not_mixed_bytes() {
    let seed = common::rng::seed("BEHIND_SEED");
    eprintln!("BEHIND_SEED={seed}");
    let mut rng = common::Rng::new(seed);
    let server = Server::start();
    let mut c = WireClient::new_user(server.addr);
    let edits = ["overwrite", "truncate", "append", "none"];
    for round in 0..8 {
        let settled = round % 2 == 1;
        let edit = *rng.pick(&edits);
        let name = format!("f{round}.bin");
        let old = data((1 << 20) + rng.index(1 << 19), rng.next_u64());
        c.put(&name, &old, 0).expect("applied");
        if settled {
            // Past the 100 ms after which the server trusts the times.
            std::thread::sleep(Duration::from_millis(300));
        }
        let (rid, _, list) = manifest(&mut c, &name).expect("manifest");
        // Same inode, changed from `at` on.
        let path = server.user_dir(&c.user).join(&name);
        let at = 1 + rng.index(old.len() - 2);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("open in place");
        match edit {
            "overwrite" => {
                let len = 1 + rng.index((old.len() - at).min(4096));
                let mut bytes = data(len, rng.next_u64());
                if bytes[0] == old[at] {
                    bytes[0] ^= 0xff;
                }
                std::os::unix::fs::FileExt::write_all_at(&file, &bytes, at as u64)
                    .expect("overwrite in place");
            }
            "truncate" => file.set_len(at as u64).expect("truncate in place"),
            "append" => std::os::unix::fs::FileExt::write_all_at(&file, b"more", old.len() as u64)
                .expect("append in place"),
            _ => {}
        }
        drop(file);
        c.send_with(
            rid,
            Message::FetchChunks(ChunkRanges {
                last: true,
                ranges: vec![ChunkRange {
                    first: 0,
                    count: list.len() as u32,
                }],
            }),
        );
        let mut served = Vec::new();
        let refused = loop {
            match c.reply(rid) {
                Message::ChunkData(d) => {
                    let entry = list[d.index as usize];
                    let what = format!(
                        "round {round} ({edit}, settled {settled}) chunk {}",
                        d.index
                    );
                    assert_eq!(d.index as usize, served.len(), "{what}: in order");
                    assert_eq!(
                        ContentHash::of(&d.data),
                        entry.id,
                        "{what}: mixed bytes sent"
                    );
                    served.push(d.data);
                }
                Message::FileEnd => break false,
                other => {
                    assert_error(&other, ErrorCode::Storage);
                    break true;
                }
            }
        };
        let bytes: Vec<u8> = served.concat();
        assert!(
            bytes[..] == old[..bytes.len()],
            "round {round}: served bytes are the content"
        );
        match edit {
            // An append leaves every listed byte in place: served whole
            // (checked or not, each chunk is the content) or refused once
            // the times moved; never anything else.
            "append" => assert!(refused || bytes == old, "round {round}: append"),
            "none" => assert!(
                !refused && bytes == old,
                "round {round}: untouched file served whole"
            ),
            _ => {
                assert!(
                    refused,
                    "round {round} ({edit}, settled {settled}): not refused"
                );
                assert!(
                    bytes.len() <= at,
                    "round {round}: served {} bytes past the change at {at}",
                    bytes.len()
                );
            }
        }
    }
    c.put("after.txt", b"open", 0)
        .expect("connection stays open");
}

/// Hostile FetchChunks close the connection with an Error and lose
/// nothing: the file is still whole for the next client.
#[test]
///
fn r_13_4_3_hostile_fetch_chunks_get_an_error_and_lose_nothing() {
    let server = Server::start();
    let mut owner = WireClient::new_user(server.addr);
    let content = data(1 << 20, 11);
    owner.put("f.bin", &content, 0).expect("applied");
    let n = reference(&content).chunks.len() as u32;
    let range = |first, count| ChunkRange { first, count };
    // (what, frames before the hostile one, the hostile one, code)
    type Case = (
        &'static str,
        Vec<Vec<ChunkRange>>,
        Vec<ChunkRange>,
        ErrorCode,
    );
    let cases: Vec<Case> = vec![
        (
            "past the end",
            vec![],
            vec![range(n - 1, 2)],
            ErrorCode::BadFrame,
        ),
        (
            "a huge run",
            vec![],
            vec![range(0, u32::MAX)],
            ErrorCode::BadFrame,
        ),
        (
            "far out",
            vec![],
            vec![range(u32::MAX - 1, 1)],
            ErrorCode::BadFrame,
        ),
        (
            "overlapping an earlier frame",
            vec![vec![range(0, 3)]],
            vec![range(2, 1)],
            ErrorCode::BadFrame,
        ),
        (
            "going back",
            vec![vec![range(5, 1)]],
            vec![range(1, 1)],
            ErrorCode::BadFrame,
        ),
    ];
    for (what, before, hostile, code) in cases {
        let mut c = WireClient::new_client(server.addr, owner.user);
        let (rid, _, _) = manifest(&mut c, "f.bin").expect("manifest");
        for runs in before {
            let runs: Vec<(u32, u32)> = runs.iter().map(|r| (r.first, r.count)).collect();
            chunks(&mut c, rid, &runs, false);
        }
        c.send_with(
            rid,
            Message::FetchChunks(ChunkRanges {
                last: true,
                ranges: hostile,
            }),
        );
        let frames = c.until_closed();
        let last = frames.last().expect("an error");
        assert_eq!(last.request_id, rid, "{what}");
        assert_error(&last.message, code);
        assert!(
            !frames
                .iter()
                .any(|f| matches!(f.message, Message::ChunkData(_))),
            "{what}: nothing of the hostile frame is served"
        );
    }
    // Before any manifest, and after the download's last FetchChunks.
    let mut c = WireClient::new_client(server.addr, owner.user);
    c.send_with(
        77,
        Message::FetchChunks(ChunkRanges {
            last: true,
            ranges: vec![range(0, 1)],
        }),
    );
    let frames = c.until_closed();
    assert_error(
        &frames.last().expect("an error").message,
        ErrorCode::WrongPhase,
    );
    let mut c = WireClient::new_client(server.addr, owner.user);
    let (rid, _, _) = manifest(&mut c, "f.bin").expect("manifest");
    chunks(&mut c, rid, &[(0, 1)], true);
    c.send_with(
        rid,
        Message::FetchChunks(ChunkRanges {
            last: true,
            ranges: vec![range(1, 1)],
        }),
    );
    let frames = c.until_closed();
    assert_error(
        &frames.last().expect("an error").message,
        ErrorCode::WrongPhase,
    );
    // Nothing lost.
    let (_, bytes) = download(&mut owner, "f.bin");
    assert!(bytes == content);
    assert!(std::fs::read(server.user_dir(&owner.user).join("f.bin")).expect("file") == content);
}

/// At most four downloads open per connection, and an open one's request
/// ID cannot open another.
#[test]
///
fn r_13_4_4_open_downloads_are_bounded_per_connection() {
    let server = Server::start();
    let mut c = WireClient::new_user(server.addr);
    c.put("f.bin", &data(100_000, 12), 0).expect("applied");
    for _ in 0..4 {
        manifest(&mut c, "f.bin").expect("manifest");
    }
    let rid = c.send(Message::FetchManifest(FetchManifest {
        version: 0,
        path: p("f.bin"),
    }));
    let frames = c.until_closed();
    let last = frames.last().expect("an error");
    assert_eq!(last.request_id, rid);
    assert_error(&last.message, ErrorCode::WrongPhase);
    let mut c = WireClient::new_client(server.addr, c.user);
    let (rid, _, _) = manifest(&mut c, "f.bin").expect("manifest");
    c.send_with(
        rid,
        Message::FetchManifest(FetchManifest {
            version: 0,
            path: p("f.bin"),
        }),
    );
    let frames = c.until_closed();
    assert_error(
        &frames.last().expect("an error").message,
        ErrorCode::WrongPhase,
    );
    // Finished downloads free their place.
    let mut c = WireClient::new_client(server.addr, c.user);
    for _ in 0..10 {
        download(&mut c, "f.bin");
    }
}

/// A client that asks for a large file's chunks and does not read them
/// holds the server to its credit window: its memory does not grow with
/// the bytes asked.
#[test]
///
fn r_13_4_3_a_slow_reader_does_not_grow_the_servers_memory() {
    let server = Server::start();
    let mut c = WireClient::new_user(server.addr);
    let content = data(64 << 20, 13);
    c.put("big.bin", &content, 0).expect("applied");
    let (rid, _, list) = manifest(&mut c, "big.bin").expect("manifest");
    std::thread::sleep(Duration::from_millis(300));
    let before = common::rss_kib(server.pid());
    c.send_with(
        rid,
        Message::FetchChunks(ChunkRanges {
            last: true,
            ranges: vec![ChunkRange {
                first: 0,
                count: list.len() as u32,
            }],
        }),
    );
    std::thread::sleep(Duration::from_millis(1500));
    let stalled = common::rss_kib(server.pid());
    assert!(
        stalled < before + 16 * 1024,
        "server RSS grew from {before} KiB to {stalled} KiB for a reader that does not read"
    );
    // Then it reads everything, intact.
    let mut bytes = Vec::new();
    for _ in 0..list.len() {
        match c.reply(rid) {
            Message::ChunkData(d) => bytes.extend(d.data),
            other => panic!("expected ChunkData, got {other:?}"),
        }
    }
    assert!(matches!(c.reply(rid), Message::FileEnd));
    assert!(bytes == content);
}

/// A delta upload cut off after some of its chunks (the connection lost)
/// resumes: the same content offered again for the same path is answered
/// with only the chunks the server did not receive; a crash of the server
/// meanwhile changes nothing of that.
#[test]
///
fn r_13_5_1_an_interrupted_delta_upload_needs_only_the_rest() {
    use cloudservice::chunk::chunk_reader;
    use cloudservice::protocol::{ChunkData, PushStatus};
    for crash in [false, true] {
        let mut server = Server::start();
        let mut c = WireClient::new_user(server.addr);
        let (user, client) = (c.user, c.client);
        let content = data(3 << 20, 14 + u64::from(crash));
        let m = reference(&content);
        let pieces: Vec<Vec<u8>> = chunk_reader(&content[..])
            .map(|x| x.expect("read").1)
            .collect();
        let offer = |c: &mut WireClient| -> (u32, Vec<u32>) {
            let rid = c.send(Message::FileManifest(FileManifest {
                version: 0,
                size: m.size,
                hash: m.hash,
                chunk_count: m.chunks.len() as u32,
                path: p("big.bin"),
            }));
            c.send_with(rid, Message::ChunkList(m.chunks.clone()));
            let mut needed = Vec::new();
            loop {
                match c.reply(rid) {
                    Message::ChunksNeeded(ChunkRanges { last, ranges }) => {
                        needed.extend(ranges.iter().flat_map(|r| r.first..r.first + r.count));
                        if last {
                            return (rid, needed);
                        }
                    }
                    other => panic!("expected ChunksNeeded, got {other:?}"),
                }
            }
        };
        let (rid, needed) = offer(&mut c);
        assert_eq!(needed.len(), m.chunks.len());
        let half = needed.len() / 2;
        for &index in &needed[..half] {
            let data = pieces[index as usize].clone();
            c.send_with(rid, Message::ChunkData(ChunkData { index, data }));
        }
        // Let the server take them, then cut the connection (or crash it).
        c.send(Message::Ping);
        let _ = c.next();
        drop(c);
        std::thread::sleep(Duration::from_millis(200));
        if crash {
            server.kill9();
            server.start_again();
        }
        let mut c = WireClient::resume(server.addr, user, client);
        let (rid, again) = offer(&mut c);
        assert_eq!(again, needed[half..].to_vec(), "crash {crash}");
        for &index in &again {
            let data = pieces[index as usize].clone();
            c.send_with(rid, Message::ChunkData(ChunkData { index, data }));
        }
        c.send_with(rid, Message::FileEnd);
        match c.reply(rid) {
            Message::PushAck(a) => assert_eq!(a.status, PushStatus::Applied),
            other => panic!("expected PushAck, got {other:?}"),
        }
        let stored = std::fs::read(server.user_dir(&user).join("big.bin")).expect("stored");
        assert!(stored == content, "crash {crash}");
    }
}
