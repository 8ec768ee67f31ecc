//! Two delta uploads of one path at once (PROTOCOL.md ), from two
//! devices over two raw connections against the real `cloud-server`: each
//! builds its own file, so neither start destroys the other's build; each
//! is decided by §5.4 at its FileEnd (the first Applied, the second a
//! Conflict, or Unchanged when both carried the same content), and no
//! Error `Storage` is sent for it. Also a resumed upload whose
//! partial build another upload took over or removed meanwhile.

mod common;

use cloudservice::chunk::{chunk_reader, manifest_of_reader, Manifest};
use cloudservice::protocol::{ChunkData, FileManifest, Message, PushAck, PushStatus};
use common::{p, Rng, Server, WireClient};
use std::time::Duration;

const PATH: &str = "big.bin";

/// An upload of `content` that got its ChunksNeeded.
struct Open {
    rid: u32,
    pieces: Vec<Vec<u8>>,
    needed: Vec<u32>,
    sent: usize,
}

/// Offers `content` for [`PATH`] on `base` (FileManifest + ChunkList) and
/// reads ChunksNeeded to its last frame.
fn offer(c: &mut WireClient, content: &[u8], base: u64) -> Open {
    let m: Manifest = manifest_of_reader(content).expect("in-memory read");
    let rid = c.send(Message::FileManifest(FileManifest {
        version: base,
        size: m.size,
        hash: m.hash,
        chunk_count: m.chunks.len() as u32,
        path: p(PATH),
    }));
    for part in m.chunks.chunks(1000) {
        c.send_with(rid, Message::ChunkList(part.to_vec()));
    }
    let needed = match c.chunks_needed(rid) {
        Ok(needed) => needed,
        Err(other) => panic!("expected ChunksNeeded, got {other:?}"),
    };
    let pieces = chunk_reader(content).map(|x| x.expect("read").1).collect();
    Open {
        rid,
        pieces,
        needed,
        sent: 0,
    }
}

/// Sends the next `n` chunks asked for, then a Ping, and waits for its Pong
/// (the server has taken them).
fn send_some(c: &mut WireClient, open: &mut Open, n: usize) {
    let end = (open.sent + n).min(open.needed.len());
    for &index in &open.needed[open.sent..end] {
        let data = open.pieces[index as usize].clone();
        c.send_with(open.rid, Message::ChunkData(ChunkData { index, data }));
    }
    open.sent = end;
    let ping = c.send(Message::Ping);
    assert!(matches!(c.reply(ping), Message::Pong));
}

/// Sends the rest and FileEnd; the answer must be a PushAck.
fn finish(c: &mut WireClient, mut open: Open) -> PushAck {
    let rest = open.needed.len() - open.sent;
    send_some(c, &mut open, rest);
    c.send_with(open.rid, Message::FileEnd);
    match c.reply(open.rid) {
        Message::PushAck(ack) => ack,
        other => panic!("expected a PushAck, got {other:?} (the other upload broke this one)"),
    }
}

/// `base` with `len` bytes at `at` replaced by fresh ones.
fn edit(base: &[u8], rng: &mut Rng, len: usize) -> Vec<u8> {
    let mut out = base.to_vec();
    let at = rng.index(base.len() - len);
    out[at..at + len].copy_from_slice(&rng.bytes(len));
    out
}

fn stored(server: &Server, c: &WireClient, at: &str) -> Vec<u8> {
    std::fs::read(server.user_dir(&c.user).join(at)).expect("stored file")
}

/// No upload was refused with `Storage` (the false "disk full").
fn no_refusal(server: &Server) {
    std::thread::sleep(Duration::from_millis(300));
    let log = server.conn_log();
    assert!(
        !log.contains("Storage") && !log.contains("No such file"),
        "connection log has a Storage refusal:\n{log}"
    );
}

/// Both devices start an upload of the same path on the same base, in
/// every interleaving of starting, sending and finishing, with other or
/// the same content: both get a PushAck, the first to end is Applied, the
/// second a Conflict whose copy holds its bytes (Unchanged when they
/// carried the same bytes), and the connection log has no Storage error.
#[test]
///
fn r_13_5_3_two_devices_uploading_one_path_at_once_each_keep_their_build() {
    let seed = common::seed("RACE_SEED");
    eprintln!("RACE_SEED={seed}");
    let mut rng = Rng::new(seed);
    let server = Server::start();
    let mut a = WireClient::new_user(server.addr);
    let mut b = WireClient::new_client(server.addr, a.user);
    let mut current = rng.bytes(3 << 20);
    let first = offer(&mut a, &current, 0);
    let mut version = finish(&mut a, first).version;
    let mut conflicts = 0;
    for round in 0..8 {
        let same = round % 4 == 3;
        let a_new = edit(&current, &mut rng, 200_000);
        let b_new = if same {
            a_new.clone()
        } else {
            edit(&current, &mut rng, 200_000)
        };
        let mut oa = offer(&mut a, &a_new, version);
        if round % 2 == 0 {
            send_some(&mut a, &mut oa, 1);
        }
        let mut ob = offer(&mut b, &b_new, version);
        send_some(&mut b, &mut ob, 1);
        send_some(&mut a, &mut oa, 1);
        // Who ends first: A in rounds 0, 1, 4, 5; B in the others.
        let a_first = round % 4 < 2;
        let (ack1, ack2, won, lost) = if a_first {
            let x = finish(&mut a, oa);
            (x, finish(&mut b, ob), &a_new, &b_new)
        } else {
            let x = finish(&mut b, ob);
            (x, finish(&mut a, oa), &b_new, &a_new)
        };
        assert_eq!(ack1.status, PushStatus::Applied, "round {round}");
        assert_eq!(ack1.path.as_str(), PATH);
        assert!(stored(&server, &a, PATH) == *won, "round {round}");
        if same {
            assert_eq!(ack2.status, PushStatus::Unchanged, "round {round}");
            assert_eq!(ack2.version, ack1.version);
        } else {
            assert_eq!(ack2.status, PushStatus::Conflict, "round {round}");
            assert!(ack2.path.as_str().contains("(conflict"), "{}", ack2.path);
            assert!(
                stored(&server, &a, ack2.path.as_str()) == *lost,
                "round {round}"
            );
            conflicts += 1;
        }
        version = ack1.version;
        current = won.clone();
    }
    assert_eq!(conflicts, 6);
    no_refusal(&server);
}

/// A delta upload cut off mid-way (its chunks kept, R-13.5.1) and resumed
/// while the other device uploads the path: with other content, whose
/// start removed the leftover, the resume is asked for what a fresh upload
/// needs; with the same content, whose start took the leftover over, the
/// resume builds beside it. Both uploads end with a PushAck (Applied, then
/// Conflict or Unchanged) and the folder holds both contents.
#[test]
///
fn r_13_5_3_a_resumed_upload_whose_build_was_taken_over_still_lands() {
    let mut rng = Rng::new(common::seed("RACE_SEED"));
    for same in [false, true] {
        let server = Server::start();
        let mut a = WireClient::new_user(server.addr);
        let (user, client) = (a.user, a.client);
        let mut b = WireClient::new_client(server.addr, user);
        let base = rng.bytes(3 << 20);
        let first = offer(&mut a, &base, 0);
        let version = finish(&mut a, first).version;
        let a_new = edit(&base, &mut rng, 1 << 20);
        let b_new = if same {
            a_new.clone()
        } else {
            edit(&base, &mut rng, 1 << 20)
        };
        let mut cut = offer(&mut a, &a_new, version);
        let all = cut.needed.clone();
        assert!(all.len() >= 2, "the edit spans several chunks");
        let half = all.len() / 2;
        send_some(&mut a, &mut cut, half);
        drop(a);
        std::thread::sleep(Duration::from_millis(300));
        let mut ob = offer(&mut b, &b_new, version);
        if same {
            assert_eq!(ob.needed, all[half..].to_vec(), "B took A's leftover");
        }
        send_some(&mut b, &mut ob, 1);
        let mut a = WireClient::resume(server.addr, user, client);
        let mut oa = offer(&mut a, &a_new, version);
        assert_eq!(oa.needed, all, "same {same}: a fresh build beside B's");
        send_some(&mut a, &mut oa, 1);
        let won = finish(&mut b, ob);
        let lost = finish(&mut a, oa);
        assert_eq!(won.status, PushStatus::Applied);
        assert!(stored(&server, &b, PATH) == b_new);
        if same {
            assert_eq!(lost.status, PushStatus::Unchanged);
        } else {
            assert_eq!(lost.status, PushStatus::Conflict);
            assert!(stored(&server, &a, lost.path.as_str()) == a_new);
        }
        no_refusal(&server);
    }
}
