//! Delta download end to end (issue 11, PROTOCOL.md §13.4): the real
//! `cloud-client` and `cloud-server` on loopback, the downloading device
//! behind a relay that counts the bytes the server sends it. Edits made on
//! one device reach the other by their chunks, built from what it already
//! has (the old version, other files of the folder), and the two folders
//! end equal by content.

mod common;

use common::relay::{Refuse, Relay};
use common::{new_user, run_once, tree, Client, Server};

const MIB: usize = 1 << 20;

/// `len` pseudo-random bytes for `seed` (the kit's one PRNG).
fn data(len: usize, seed: u64) -> Vec<u8> {
    common::Rng::new(seed).bytes(len)
}

fn ok(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_1_mib_edit_in_a_32_mib_file_downloads_about_1_mib() {
    let server = Server::start();
    let relay = Relay::start(server.port);
    let a = tempfile::tempdir().expect("temp dir");
    let b = tempfile::tempdir().expect("temp dir");
    let original = data(32 * MIB, 31);
    std::fs::write(a.path().join("disk.img"), &original).expect("write");
    let user = new_user(server.port, a.path());
    ok(&run_once(relay.port, b.path(), Some(&user)));
    let first = relay.down();
    assert!(first >= original.len() as u64, "first download {first}");

    let mut edited = original.clone();
    let mid = 16 * MIB + 12_345;
    edited[mid..mid + MIB].copy_from_slice(&data(MIB, 32));
    std::fs::write(a.path().join("disk.img"), &edited).expect("write");
    ok(&run_once(server.port, a.path(), None));
    let before = relay.down();
    ok(&run_once(relay.port, b.path(), None));
    let delta = relay.down() - before;
    eprintln!("1 MiB edit of a 32 MiB file: {delta} bytes received by the downloading client");
    assert!(delta < 2 * MIB as u64, "the edit took {delta} bytes");
    assert!(delta >= MIB as u64, "the edit itself must cross: {delta}");
    assert!(
        std::fs::read(b.path().join("disk.img")).expect("downloaded") == edited,
        "the downloaded file differs"
    );
    // A copy of it under a new name needs no chunk at all.
    std::fs::write(a.path().join("copy.img"), &edited).expect("write");
    ok(&run_once(server.port, a.path(), None));
    let before = relay.down();
    ok(&run_once(relay.port, b.path(), None));
    let copy = relay.down() - before;
    eprintln!("a 32 MiB copy: {copy} bytes received");
    assert!(copy < 256 * 1024, "the copy took {copy} bytes");
    assert!(tree(a.path()) == tree(b.path()), "the two devices differ");
}

/// A first download into a folder with nothing to build from comes whole
/// (Fetch: FileBegin, FileChunks, FileEnd), not as a delta download: no
/// chunk list, no ChunkData headers, no FetchChunks round trip (R-13.4.5,
/// Plaintext through the relay, so the bytes counted are the
/// frames: the file, 12 B per FileChunk, and the session's few frames. A
/// delta download of these 24 MiB (about 380 chunks) adds a 19 B list
/// entry and a 16 B ChunkData header per chunk, over 13 KB. For each size
/// class around the 8 MiB from which a Fetch is written resumably.
#[test]
fn a_first_download_with_nothing_local_comes_whole_without_a_chunk_list() {
    let server = Server::options().plaintext().start();
    let relay = Relay::start(server.port);
    let a = tempfile::tempdir().expect("temp dir");
    let b = tempfile::tempdir().expect("temp dir");
    let sizes = [24 * MIB, 8 * MIB, 8 * MIB - 1, 3 * MIB + 7];
    for (i, size) in sizes.iter().enumerate() {
        std::fs::write(
            a.path().join(format!("f{i}.bin")),
            data(*size, 60 + i as u64),
        )
        .expect("write");
    }
    let out = Client::options(server.port, a.path())
        .plaintext()
        .run_once();
    ok(&out);
    let user = String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("user id: ").map(str::to_owned))
        .expect("user id line");
    let out = Client::options(relay.port, b.path())
        .plaintext()
        .user(Some(&user))
        .run_once();
    ok(&out);
    assert!(tree(a.path()) == tree(b.path()), "the devices differ");
    let total: usize = sizes.iter().sum();
    let frames: usize = sizes.iter().map(|s| s.div_ceil(256 * 1024)).sum();
    let bound = (total + 12 * frames + 4096) as u64;
    let down = relay.down();
    eprintln!("first download of {total} bytes: {down} received (bound {bound})");
    assert!(down <= bound, "{down} bytes received > {bound}");
    assert!(
        std::fs::read_dir(b.path().join(".cloudservice/partial"))
            .map(|d| d.count())
            .unwrap_or(0)
            == 0,
        "nothing is left in the partial area"
    );
}

/// Random edit scripts on device A (overwrite, insert, delete, append,
/// truncate at random offsets; copies between files; a new file made of
/// stretches of others), each synced to B through the relay: the folders
/// end equal by content, and B receives no more than the edits imply plus
/// a few maximum chunks around each and the chunk lists. `DELTA_SEED`
/// replays a run; `DELTA_ROUNDS` sets the rounds (default 5).
#[test]
fn random_edit_scripts_download_byte_identical_within_their_bound() {
    let seed = common::seed("DELTA_SEED");
    let rounds: usize = std::env::var("DELTA_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let mut rng = common::Rng::new(seed);
    let server = Server::start();
    let relay = Relay::start(server.port);
    let a = tempfile::tempdir().expect("temp dir");
    let b = tempfile::tempdir().expect("temp dir");
    let mut files: Vec<Vec<u8>> = (0..3)
        .map(|i| data(200_000 + rng.index(3 * MIB), seed ^ (i + 1)))
        .collect();
    for (i, f) in files.iter().enumerate() {
        std::fs::write(a.path().join(format!("f{i}.bin")), f).expect("write");
    }
    let user = new_user(server.port, a.path());
    ok(&run_once(relay.port, b.path(), Some(&user)));
    for round in 0..rounds {
        let mut bound = 0u64;
        for _ in 0..1 + rng.index(3) {
            let which = rng.index(files.len());
            let old = files[which].clone();
            let at = rng.index(old.len() + 1);
            let len = 1 + rng.index(200_000);
            let fresh = data(len, rng.index(1 << 30) as u64);
            let op = rng.index(7);
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
                4 => (old[..at.max(20_000).min(old.len())].to_vec(), 0),
                5 => {
                    // A stretch of another file appended: its chunks are here.
                    let other = &files[(which + 1) % files.len()];
                    let from = rng.index(other.len() / 2);
                    ([&old[..], &other[from..]].concat(), 0)
                }
                _ => {
                    // A new file: a copy of another, then overwritten here.
                    let mut v = files[(which + 2) % files.len()].clone();
                    let end = (at + len).min(v.len());
                    let start = at.min(end);
                    v[start..end].copy_from_slice(&fresh[..end - start]);
                    files.push(v.clone());
                    let name = format!("f{}.bin", files.len() - 1);
                    std::fs::write(a.path().join(name), &v).expect("write");
                    bound += (end - start) as u64 + 4 * 262_144 + v.len() as u64 / 1000;
                    continue;
                }
            };
            bound += edit as u64 + 4 * 262_144 + new.len() as u64 / 1000;
            std::fs::write(a.path().join(format!("f{which}.bin")), &new).expect("write");
            files[which] = new;
        }
        ok(&run_once(server.port, a.path(), None));
        let before = relay.down();
        ok(&run_once(relay.port, b.path(), None));
        let got = relay.down() - before;
        // Framing, the pull reply and TLS records: a few KiB a round.
        let bound = bound + 64 * 1024;
        assert!(
            tree(a.path()) == tree(b.path()),
            "seed {seed} round {round}: the devices differ"
        );
        assert!(
            got <= bound,
            "seed {seed} round {round}: received {got} > {bound}"
        );
    }
}

/// Against a server that does not serve delta downloads (played by a relay
/// that answers FetchManifest as an earlier version 2 server does: Error
/// WrongPhase and close), the client says so, reconnects, downloads whole
/// files, and both devices end equal.
#[test]
fn a_server_without_delta_downloads_gets_whole_fetches() {
    let server = Server::options().plaintext().start();
    let relay = Relay::refusing(
        server.port,
        Refuse {
            kind: 0x15,
            code: 3,
            text: "FetchManifest is not a request",
        },
    );
    let a = tempfile::tempdir().expect("temp dir");
    let b = tempfile::tempdir().expect("temp dir");
    let big = data(9 * MIB, 41);
    std::fs::write(a.path().join("big.bin"), &big).expect("write");
    std::fs::write(a.path().join("small.txt"), b"small").expect("write");
    std::fs::write(a.path().join("local.bin"), data(100_000, 42)).expect("write");
    let out = Client::options(server.port, a.path())
        .plaintext()
        .run_once();
    ok(&out);
    let user = String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("user id: ").map(str::to_owned))
        .expect("user id line");
    // A file above one minimum chunk on B (the same as A's): chunks may be
    // here, so the 9 MiB file is asked as a delta download (a folder with
    // nothing to reuse fetches whole at once, R-13.4.5).
    std::fs::write(b.path().join("local.bin"), data(100_000, 42)).expect("write");
    let logs = tempfile::tempdir().expect("temp dir");
    let log = logs.path().join("b.log");
    let cb = Client::options(relay.port, b.path())
        .plaintext()
        .user(Some(&user))
        .log(&log)
        .start();
    common::converge("whole fetches", &[a.path(), b.path()]);
    assert!(
        cb.wait_log(
            "does not serve delta downloads",
            std::time::Duration::from_secs(5)
        ),
        "the client said why:\n{}",
        cb.log_tail(3_000)
    );
}

/// Against a server of protocol version 2 or 3 (played by a relay that
/// refuses every frame under header byte 04 as such a server does: BadFrame
/// "unsupported protocol version 4" with request ID 0, then it closes;
/// ), an upload's ShortChunkList and a download's
/// FetchShortManifest are each refused once, the client goes on with
/// 32-byte lists in the same `--once` run (it used to reconnect without end
/// on the download side), edits still travel as deltas, and both devices
/// end equal. The same edit through the real server uses 16-byte lists.
///
///
#[test]
fn an_older_server_gets_32_byte_lists_and_the_client_goes_on() {
    let server = Server::options().plaintext().start();
    let old = Relay::refusing(
        server.port,
        Refuse {
            kind: 0xff,
            code: 1,
            text: "no frame has this kind",
        },
    );
    let a = tempfile::tempdir().expect("temp dir");
    let b = tempfile::tempdir().expect("temp dir");
    let original = data(9 * MIB, 51);
    std::fs::write(a.path().join("big.bin"), &original).expect("write");
    let out = Client::options(server.port, a.path())
        .plaintext()
        .run_once();
    ok(&out);
    let user = String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("user id: ").map(str::to_owned))
        .expect("user id line");
    let once = |port: u16, folder: &std::path::Path| {
        let out = Client::options(port, folder)
            .plaintext()
            .user(Some(&user))
            .verbosity(common::Verbosity::Normal)
            .run_once();
        ok(&out);
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    once(old.port, b.path());
    assert!(tree(a.path()) == tree(b.path()), "first download differs");

    // Upload side: A's edit goes through the older server.
    let mut edited = original.clone();
    edited[4 * MIB..5 * MIB].copy_from_slice(&data(MIB, 52));
    std::fs::write(a.path().join("big.bin"), &edited).expect("write");
    let up_before = old.up();
    let a_log = once(old.port, a.path());
    let up = old.up() - up_before;
    assert!(
        a_log.matches("does not take 16-byte chunk IDs").count() == 1,
        "the upload said why, once:\n{a_log}"
    );
    assert!(
        up < 3 * MIB as u64,
        "the edit went as a delta: {up} bytes up"
    );

    // Download side: B asks with FetchShortManifest, is refused with
    // request ID 0, and downloads the edit with a 32-byte list.
    let down_before = old.down();
    let b_log = once(old.port, b.path());
    let down = old.down() - down_before;
    assert!(
        b_log.matches("does not serve 16-byte chunk IDs").count() == 1,
        "the download said why, once:\n{b_log}"
    );
    assert!(
        down < 3 * MIB as u64,
        "the edit came as a delta: {down} bytes"
    );
    assert!(
        std::fs::read(b.path().join("big.bin")).expect("downloaded") == edited,
        "the downloaded file differs"
    );
    assert!(
        !server.conn_log().contains("(16-byte IDs"),
        "a short list was served through the older server"
    );

    // The real (version 5) server: the next edit downloads with 16-byte IDs,
    // its list relative to the content B holds (FetchManifestSince, §13.7).
    let relay = Relay::start(server.port);
    edited[7 * MIB..7 * MIB + 4096].copy_from_slice(&data(4096, 53));
    std::fs::write(a.path().join("big.bin"), &edited).expect("write");
    let a_log = once(relay.port, a.path());
    assert!(!a_log.contains("16-byte"), "{a_log}");
    let b_log = once(relay.port, b.path());
    assert!(!b_log.contains("16-byte"), "{b_log}");
    server.wait_log("(16-byte IDs, list relative to the held version");
    assert!(tree(a.path()) == tree(b.path()), "the two devices differ");
}

/// A chunk corrupted on the server's disk before the download (same size,
/// a few bytes flipped in place at a random offset, the file then left to
/// settle so that the server serves its chunks without re-hashing them,
/// ) is refused by the downloading client: nothing is
/// placed, no other file appears in its folder, and the file is not in the
/// folder under any content. Once the server's copy is repaired in place,
/// the same folder downloads it whole and byte-identical. Seed:
/// `CORRUPT_SEED`.
#[test]
fn a_chunk_corrupted_on_the_servers_disk_is_refused_and_nothing_is_placed() {
    let seed = common::rng::seed("CORRUPT_SEED");
    eprintln!("CORRUPT_SEED={seed}");
    let mut rng = common::Rng::new(seed);
    let server = Server::start();
    let a = tempfile::tempdir().expect("temp dir");
    let b = tempfile::tempdir().expect("temp dir");
    // At least 8 MiB: downloaded by chunks into an empty folder.
    let original = data(9 * MIB + rng.index(MIB), rng.next_u64());
    std::fs::write(a.path().join("big.img"), &original).expect("write");
    let user = new_user(server.port, a.path());
    let stored = server.user_dir(&user).join("big.img");
    // The damage and the repair keep the file's size and mtime, as a
    // damaged disk and a restore of the file with its times do: one that
    // moves the mtime is an edit, journaled as a change made in the
    // server's folder at the next fetch.
    let mtime = std::fs::metadata(&stored)
        .and_then(|m| m.modified())
        .expect("mtime");
    let at = rng.index(original.len() - 16);
    let mut bad = original[at..at + 16].to_vec();
    bad.iter_mut().for_each(|x| *x ^= 0x5a);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&stored)
        .expect("open the stored copy");
    std::os::unix::fs::FileExt::write_all_at(&file, &bad, at as u64).expect("corrupt in place");
    file.set_modified(mtime).expect("keep the mtime");
    drop(file);
    std::thread::sleep(std::time::Duration::from_millis(300));

    let out = run_once(server.port, b.path(), Some(&user));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let placed = tree(b.path());
    let visible: Vec<&String> = placed
        .keys()
        .filter(|k| !k.starts_with(".cloudservice"))
        .collect();
    assert!(
        visible.is_empty(),
        "corrupt chunk at {at}: B's folder shows {visible:?}; stderr: {stderr}"
    );

    // The server's copy repaired in place: the same folder gets it whole.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&stored)
        .expect("open the stored copy");
    std::os::unix::fs::FileExt::write_all_at(&file, &original[at..at + 16], at as u64)
        .expect("repair in place");
    file.set_modified(mtime).expect("keep the mtime");
    drop(file);
    ok(&run_once(server.port, b.path(), None));
    assert!(
        std::fs::read(b.path().join("big.img")).expect("downloaded") == original,
        "the repaired file differs"
    );
}
