//! Chunk lists relative to the base version end to end (PROTOCOL.md §13.7,
//! issue 11 target 1): the real `cloud-client` and `cloud-server` on
//! loopback, a plaintext relay counting the exact frame bytes each way.
//! After an edit of a large file, the uploading device sends its chunk list
//! as a delta against the version it uploaded before (its chunk index
//! recorded that list), so what goes up is the new chunks plus a few
//! hundred bytes; through a relay playing a version 4 server the upload is
//! refused once ("unsupported protocol version 5") and goes with the whole
//! list; every copy ends byte-identical. The other device downloads the
//! edit asking with FetchManifestSince: its list comes down as a
//! delta against the content it holds (its chunk index recorded that list
//! when it downloaded it), and from a version 4 server as the whole list.

mod common;

use cloudservice::chunk::{manifest_of_reader, ChunkEntry, IdLen};
use cloudservice::protocol::list_delta::diff;
use cloudservice::protocol::ChunkListDelta;
use common::relay::Relay;
use common::{tree, Client, Server};
use std::collections::HashSet;
use std::path::Path;

const MIB: usize = 1 << 20;

/// `len` pseudo-random bytes for `seed` (the kit's one PRNG).
fn data(len: usize, seed: u64) -> Vec<u8> {
    common::Rng::new(seed).bytes(len)
}

fn once(port: u16, folder: &Path, user: Option<&str>) -> String {
    let out = Client::options(port, folder)
        .plaintext()
        .user(user)
        .verbosity(common::Verbosity::Normal)
        .run_once();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    stdout + &String::from_utf8_lossy(&out.stderr)
}

fn short(e: &ChunkEntry) -> ChunkEntry {
    ChunkEntry {
        len: e.len,
        id: IdLen::Short.cut(e.id),
    }
}

/// What an upload of `new` over `old` (or the download of `new` by a device
/// holding `old`) must cost at most in the direction of the content: each
/// chunk the old content lacks in a ChunkData frame (12 + 4 bytes of
/// framing), the list as a delta, and `slack` for the session's other
/// frames (Hello or Welcome, Pull or ChangeBatch, FileManifest, FileEnd,
/// PushAck). Also returns the whole short list's bytes.
fn transfer_bound(old: &[u8], new: &[u8], slack: u64) -> (u64, u64) {
    let (old, new) = (
        manifest_of_reader(old).expect("read"),
        manifest_of_reader(new).expect("read"),
    );
    let held: HashSet<ChunkEntry> = old.chunks.iter().map(short).collect();
    let mut seen = HashSet::new();
    let chunks: u64 = new
        .chunks
        .iter()
        .map(short)
        .filter(|e| !held.contains(e) && seen.insert(*e))
        .map(|e| u64::from(e.len) + 16)
        .sum();
    let delta = ChunkListDelta {
        base_hash: old.hash,
        ops: diff(&old.chunks, &new.chunks),
    };
    let whole = 19 * new.chunks.len() as u64;
    (chunks + 12 + delta.wire_len() as u64 + slack, whole)
}

#[test]
fn an_edit_goes_up_with_its_list_as_a_delta_and_an_older_server_gets_the_whole_list() {
    let server = Server::options().plaintext().start();
    let relay = Relay::start(server.port);
    let a = tempfile::tempdir().expect("temp dir");
    let b = tempfile::tempdir().expect("temp dir");
    let original = data(48 * MIB, 61);
    std::fs::write(a.path().join("big.img"), &original).expect("write");
    let first = once(server.port, a.path(), None);
    let user = first
        .lines()
        .find_map(|l| l.strip_prefix("user id: ").map(str::to_owned))
        .expect("user id line");
    once(server.port, b.path(), Some(&user));
    assert!(tree(a.path()) == tree(b.path()), "first download differs");

    // 1 MiB overwritten in the middle: the list goes as a delta.
    let mut edited = original.clone();
    let mid = 24 * MIB + 12_345;
    edited[mid..mid + MIB].copy_from_slice(&data(MIB, 62));
    std::fs::write(a.path().join("big.img"), &edited).expect("write");
    let slack = 4096;
    let (bound, whole) = transfer_bound(&original, &edited, slack);
    assert!(
        whole > slack + 1024,
        "the file is too small to tell: {whole}"
    );
    let before = relay.up();
    once(relay.port, a.path(), Some(&user));
    let up = relay.up() - before;
    eprintln!("1 MiB edit of 48 MiB: {up} bytes up, bound {bound}, whole list {whole} bytes");
    assert!(
        up <= bound,
        "{up} bytes up, more than the new chunks and a delta list ({bound}): \
         the whole list ({whole} bytes) went?"
    );
    let stored = std::fs::read(server.user_dir(&user).join("big.img")).expect("stored");
    assert!(stored == edited, "the server's copy differs from the edit");
    // B holds the original: its download's list comes as a delta too.
    let before = relay.down();
    once(relay.port, b.path(), Some(&user));
    let down = relay.down() - before;
    eprintln!("its download: {down} bytes down, bound {bound}");
    assert!(
        tree(a.path()) == tree(b.path()),
        "the edit's download differs"
    );
    assert!(
        down <= bound,
        "{down} bytes down, more than the new chunks and a delta list ({bound}): \
         the whole list ({whole} bytes) came?"
    );

    // A version 4 server refuses the delta list once; the upload goes on
    // with the whole list, as a delta of chunks still.
    let old = Relay::older(server.port, 4);
    let mut again = edited.clone();
    again[5 * MIB..5 * MIB + 300_000].copy_from_slice(&data(300_000, 63));
    std::fs::write(a.path().join("big.img"), &again).expect("write");
    let before = old.up();
    let log = once(old.port, a.path(), Some(&user));
    let up = old.up() - before;
    assert_eq!(
        log.matches("does not take chunk list deltas").count(),
        1,
        "the upload said why, once:\n{log}"
    );
    assert!(
        up < 2 * MIB as u64,
        "the edit went as a delta: {up} bytes up"
    );
    let stored = std::fs::read(server.user_dir(&user).join("big.img")).expect("stored");
    assert!(
        stored == again,
        "the server's copy differs after the fallback"
    );
    once(old.port, b.path(), Some(&user));
    assert!(tree(a.path()) == tree(b.path()), "the download differs");

    // Back on the real server, the next run sends a delta list again.
    let mut third = again.clone();
    third[40 * MIB..40 * MIB + 100_000].copy_from_slice(&data(100_000, 64));
    std::fs::write(a.path().join("big.img"), &third).expect("write");
    let (bound, _) = transfer_bound(&again, &third, slack);
    let before = relay.up();
    let log = once(relay.port, a.path(), Some(&user));
    let up = relay.up() - before;
    assert!(!log.contains("chunk list deltas"), "{log}");
    assert!(up <= bound, "{up} bytes up, bound {bound}");
    let stored = std::fs::read(server.user_dir(&user).join("big.img")).expect("stored");
    assert!(
        stored == third,
        "the server's copy differs from the third edit"
    );
    // B, which fell back to whole lists with the older server in its last
    // run, asks for a delta list again.
    let before = relay.down();
    once(relay.port, b.path(), Some(&user));
    let down = relay.down() - before;
    assert!(
        tree(a.path()) == tree(b.path()),
        "the third download differs"
    );
    assert!(down <= bound, "{down} bytes down, bound {bound}");
}
