//! The server's side of delta transfer (PROTOCOL.md §13.3), driven with
//! frames over a socket against the real `cloud-server`: only the chunks no
//! file of the user holds are asked for, copies are re-checked, and bad
//! lists and chunks are refused without storing anything.

mod common;

use cloudservice::chunk::{chunk_reader, manifest_of_reader, ChunkEntry, Manifest};
use cloudservice::protocol::{ChunkData, ErrorCode, FileManifest, Message, PushAck, PushStatus};
use common::{assert_error, p, Server, WireClient};

/// `len` pseudo-random bytes for `seed` (the kit's one PRNG).
fn data(len: usize, seed: u64) -> Vec<u8> {
    common::Rng::new(seed).bytes(len)
}

/// Sends the manifest and chunk list of `content`, reads ChunksNeeded to
/// its last frame, and returns the list and the indexes asked for.
fn offer(c: &mut WireClient, at: &str, content: &[u8], base: u64) -> (u32, Manifest, Vec<u32>) {
    let manifest = manifest_of_reader(content).expect("in-memory read");
    let rid = c.send(Message::FileManifest(FileManifest {
        version: base,
        size: manifest.size,
        hash: manifest.hash,
        chunk_count: manifest.chunks.len() as u32,
        path: p(at),
    }));
    for part in manifest.chunks.chunks(1000) {
        c.send_with(rid, Message::ChunkList(part.to_vec()));
    }
    match c.chunks_needed(rid) {
        Ok(needed) => (rid, manifest, needed),
        Err(other) => panic!("expected ChunksNeeded, got {other:?}"),
    }
}

/// A whole delta upload: offer, send what is asked, end. Returns the bytes
/// of chunk data sent and the answer.
fn delta_put(
    c: &mut WireClient,
    at: &str,
    content: &[u8],
    base: u64,
) -> (u64, Result<PushAck, Message>) {
    let (rid, _, needed) = offer(c, at, content, base);
    match c.send_chunks_and_end(rid, content, &needed) {
        (sent, Message::PushAck(a)) => (sent, Ok(a)),
        (sent, other) => (sent, Err(other)),
    }
}

fn folder_file(server: &Server, c: &WireClient, at: &str) -> Vec<u8> {
    std::fs::read(server.user_dir(&c.user).join(at)).expect("stored file")
}

#[test]
///
fn r_13_3_2_an_edited_file_needs_only_the_chunks_near_the_edit() {
    let server = Server::start();
    let mut c = WireClient::new_user(server.addr);
    let old = data(4 << 20, 1);
    let (sent, ack) = delta_put(&mut c, "disk.img", &old, 0);
    let ack = ack.expect("first upload applied");
    assert_eq!(sent, old.len() as u64, "a first upload sends everything");
    let mut new = old.clone();
    new[2_000_000..2_000_000 + 100_000].copy_from_slice(&data(100_000, 2));
    let (sent, second) = delta_put(&mut c, "disk.img", &new, ack.version);
    assert_eq!(second.expect("edit applied").status, PushStatus::Applied);
    assert!(
        sent < 100_000 + 4 * 262_144,
        "edit of 100 kB sent {sent} bytes"
    );
    assert_eq!(folder_file(&server, &c, "disk.img"), new);
    // A copy under another name needs no chunk at all.
    let (sent, copy) = delta_put(&mut c, "copy/disk.img", &new, 0);
    assert_eq!(copy.expect("copy applied").status, PushStatus::Applied);
    assert_eq!(sent, 0);
    assert_eq!(folder_file(&server, &c, "copy/disk.img"), new);
}

#[test]
///
fn r_13_3_2_a_copy_changed_behind_the_index_is_asked_for_again() {
    let server = Server::start();
    let mut c = WireClient::new_user(server.addr);
    let content = data(1 << 20, 3);
    delta_put(&mut c, "a.bin", &content, 0).1.expect("applied");
    // Same length, other bytes, behind the server's back: every indexed
    // chunk of a.bin is now wrong.
    let path = server.user_dir(&c.user).join("a.bin");
    std::fs::write(&path, data(1 << 20, 4)).expect("overwrite");
    let (sent, ack) = delta_put(&mut c, "b.bin", &content, 0);
    assert_eq!(ack.expect("applied").status, PushStatus::Applied);
    assert_eq!(sent, content.len() as u64, "stale copies count as missing");
    assert_eq!(folder_file(&server, &c, "b.bin"), content);
}

#[test]
///
fn r_13_3_3_wrong_chunk_bytes_close_and_store_nothing() {
    let server = Server::start();
    let mut c = WireClient::new_user(server.addr);
    let content = data(300_000, 5);
    let (rid, manifest, needed) = offer(&mut c, "x.bin", &content, 0);
    assert_eq!(needed.len(), manifest.chunks.len());
    let mut wrong = content[..manifest.chunks[0].len as usize].to_vec();
    wrong[10] ^= 1;
    c.send_with(
        rid,
        Message::ChunkData(ChunkData {
            index: 0,
            data: wrong,
        }),
    );
    let frames = c.until_closed();
    assert_error(
        &frames.last().expect("an error").message,
        ErrorCode::HashMismatch,
    );
    assert!(!server.user_dir(&c.user).join("x.bin").exists());
}

#[test]
///
fn r_13_3_3_missing_chunks_at_file_end_are_a_size_mismatch() {
    let server = Server::start();
    let mut c = WireClient::new_user(server.addr);
    let content = data(300_000, 6);
    let (rid, _, needed) = offer(&mut c, "x.bin", &content, 0);
    assert!(needed.len() > 1);
    c.send_with(rid, Message::FileEnd);
    assert_error(&c.reply(rid), ErrorCode::SizeMismatch);
    // The connection stays open and usable.
    let ack = c.put("small.txt", b"still here", 0).expect("applied");
    assert_eq!(ack.status, PushStatus::Applied);
    assert!(!server.user_dir(&c.user).join("x.bin").exists());
}

#[test]
///
fn r_13_2_1_hostile_lists_are_refused_before_anything_is_stored() {
    let server = Server::start();
    let cases: Vec<(u64, u32, Vec<ChunkEntry>)> = vec![
        // A billion chunks, refused from the count alone.
        (u64::MAX, 1_000_000_000, vec![]),
        // Lengths that do not add up to the size.
        (40_000, 2, vec![entry(20_000), entry(20_001)]),
        // A chunk under the minimum that is not the last.
        (20_000, 2, vec![entry(100), entry(19_900)]),
        // A chunk over the maximum.
        (300_000, 1, vec![entry(300_000)]),
    ];
    for (size, count, entries) in cases {
        let mut c = WireClient::new_user(server.addr);
        let rid = c.send(Message::FileManifest(FileManifest {
            version: 0,
            size,
            hash: cloudservice::protocol::ContentHash([0; 32]),
            chunk_count: count,
            path: p("hostile.bin"),
        }));
        if !entries.is_empty() {
            c.send_with(rid, Message::ChunkList(entries));
        }
        let frames = c.until_closed();
        assert_error(
            &frames.last().expect("an error").message,
            ErrorCode::BadFrame,
        );
        assert!(!server.user_dir(&c.user).join("hostile.bin").exists());
    }
}

fn entry(len: u32) -> ChunkEntry {
    ChunkEntry {
        len,
        id: cloudservice::protocol::ContentHash([len as u8; 32]),
    }
}

#[test]
///
fn r_13_3_1_a_delta_upload_is_phase_upload() {
    let server = Server::start();
    let mut c = WireClient::new_user(server.addr);
    let content = data(200_000, 7);
    let (_, _, _) = offer(&mut c, "x.bin", &content, 0);
    c.send(Message::MakeDir {
        path: p("elsewhere"),
    });
    let frames = c.until_closed();
    assert_error(
        &frames.last().expect("an error").message,
        ErrorCode::WrongPhase,
    );
}

/// Random files with random edits (overwrite, insert, delete, append,
/// truncate, copy from another file of the user) uploaded as deltas: the
/// stored file is byte-identical to the edited one, and the chunk bytes sent
/// stay within the edit plus a few maximum chunks around each end of it.
/// `DELTA_SEED` replays a run; `DELTA_CASES` sets how many edits (default 24).
#[test]
///
fn r_13_3_2_random_edits_upload_byte_identical_within_their_bound() {
    let seed = common::seed("DELTA_SEED");
    let cases: usize = std::env::var("DELTA_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24);
    let mut rng = common::Rng::new(seed);
    let server = Server::start();
    let mut c = WireClient::new_user(server.addr);
    let mut files: Vec<(String, Vec<u8>, u64)> = Vec::new();
    for i in 0..3 {
        let mut content = vec![0u8; 200_000 + rng.index(1_500_000)];
        rng.fill(&mut content);
        let at = format!("f{i}.bin");
        let ack = delta_put(&mut c, &at, &content, 0).1.expect("first upload");
        files.push((at, content, ack.version));
    }
    for case in 0..cases {
        let which = rng.index(files.len());
        let old = files[which].1.clone();
        let at = rng.index(old.len() + 1);
        let len = 1 + rng.index(150_000);
        let mut fresh = vec![0u8; len];
        rng.fill(&mut fresh);
        let op = rng.index(6);
        let (new, edit) = match op {
            0 => {
                let mut v = old.clone();
                let end = (at + len).min(v.len());
                v[at..end].copy_from_slice(&fresh[..end - at]);
                (v, end - at)
            }
            1 => ([&old[..at], &fresh[..], &old[at..]].concat(), len),
            2 => ([&old[..at], &old[(at + len).min(old.len())..]].concat(), 0),
            3 => ([&old[..], &fresh[..]].concat(), len),
            4 => (old[..at.max(1)].to_vec(), 0),
            _ => {
                // Append a stretch of another file: its chunks are already there.
                let other = &files[(which + 1) % files.len()].1;
                let from = rng.index(other.len() / 2);
                ([&old[..], &other[from..]].concat(), 0)
            }
        };
        let (name, _, base) = files[which].clone();
        let (sent, ack) = delta_put(&mut c, &name, &new, base);
        let ack = ack.unwrap_or_else(|e| panic!("seed {seed} case {case} op {op}: {e:?}"));
        assert_eq!(ack.status, PushStatus::Applied, "seed {seed} case {case}");
        let bound = edit as u64 + 4 * 262_144;
        assert!(
            sent <= bound,
            "seed {seed} case {case} op {op}: sent {sent} > {bound}"
        );
        assert!(
            folder_file(&server, &c, &name) == new,
            "seed {seed} case {case} op {op}: stored file differs"
        );
        files[which] = (name, new, ack.version);
    }
}

/// A server killed (SIGKILL) in the middle of a delta upload keeps the old
/// version whole and shows no part of the new one; after the restart the
/// same upload goes through, and the chunk index (saved before the crash)
/// still spares the unchanged chunks.
#[test]
///
fn r_13_3_2_a_server_killed_mid_delta_keeps_the_old_version() {
    let mut server = Server::start();
    let mut c = WireClient::new_user(server.addr);
    let (user, client) = (c.user, c.client);
    let old = data(8 << 20, 21);
    let ack = delta_put(&mut c, "vm.img", &old, 0).1.expect("applied");
    let mut new = old.clone();
    new[3_000_000..3_000_000 + 2_000_000].copy_from_slice(&data(2_000_000, 22));
    let (rid, _, needed) = offer(&mut c, "vm.img", &new, ack.version);
    let chunks: Vec<Vec<u8>> = chunk_reader(&new[..]).map(|x| x.expect("read").1).collect();
    for &index in needed.iter().take(needed.len() / 2) {
        let bytes = chunks[index as usize].clone();
        c.send_with(rid, Message::ChunkData(ChunkData { index, data: bytes }));
    }
    // Let the server take what was sent, then crash it.
    c.send(Message::Ping);
    std::thread::sleep(std::time::Duration::from_millis(200));
    server.kill9();
    server.start_again();
    let folder = server.user_dir(&user);
    assert!(std::fs::read(folder.join("vm.img")).expect("old file") == old);
    assert_eq!(
        common::tree(&folder).len(),
        1,
        "no part of the new version is visible"
    );
    let mut c = WireClient::resume(server.addr, user, client);
    let (sent, again) = delta_put(&mut c, "vm.img", &new, ack.version);
    assert_eq!(again.expect("applied").status, PushStatus::Applied);
    assert!(
        sent < 2_000_000 + 4 * 262_144,
        "after the restart sent {sent}"
    );
    assert!(std::fs::read(folder.join("vm.img")).expect("new file") == new);
}
