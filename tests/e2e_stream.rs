//! One-read first uploads end to end (PROTOCOL.md §13.8, protocol version
//! 6): the real `cloud-client` and `cloud-server` on loopback, a plaintext
//! relay counting the bytes each way (or playing a version 5 server).
//!
//! - Random new files of random sizes go up in one read (StreamBegin) when
//!   larger than one minimum chunk, land byte-identical on the server and
//!   on a second device, and an edit of one goes up afterwards as a delta
//!   of its changed chunks (the list the one read cut was recorded).
//! - A new file of at least 32 MiB going up fast is not cut by the
//!   client: it takes the server's chunk list after the upload, and the
//!   next edit and a copy still go as deltas; over a slow link the client
//!   cuts it and no list comes back.
//! - A version 5 server refuses the first StreamBegin; the client goes on
//!   hashing first, and everything lands.
//! - A file changed while it is being sent is never stored as a mix: an
//!   append, a truncation, or a rewrite of parts already sent and parts
//!   not yet sent at the same size with the old modification time put
//!   back, each made while the upload is under way (the relay has carried
//!   part of it): the client abandons that upload (its log says so) and
//!   the server ends with exactly the file's final content.

mod common;

use common::relay::Relay;
use common::{tree, Client, Server};
use std::path::Path;
use std::time::{Duration, Instant};

const MIB: usize = 1 << 20;

fn data(len: usize, seed: u64) -> Vec<u8> {
    common::Rng::new(seed).bytes(len)
}

/// `--once` against `port` with the debug log; its stdout and stderr.
fn once(port: u16, folder: &Path, user: Option<&str>) -> String {
    let out = Client::options(port, folder)
        .plaintext()
        .user(user)
        .verbosity(common::Verbosity::Verbose)
        .run_once();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    text
}

fn user_of(log: &str) -> String {
    log.lines()
        .find_map(|l| l.strip_prefix("user id: ").map(str::to_owned))
        .expect("user id line")
}

#[test]
fn random_new_files_go_up_in_one_read_and_land_identical() {
    let server = Server::options().plaintext().start();
    let relay = Relay::start(server.port);
    let a = tempfile::tempdir().expect("temp dir");
    let b = tempfile::tempdir().expect("temp dir");
    std::fs::write(a.path().join("seed.txt"), b"first").expect("write");
    let user = user_of(&once(server.port, a.path(), None));
    let mut rng = common::Rng::new(common::seed("e2e_stream"));
    let mut sizes = vec![0usize, 1, 16_384, 16_385, 70_000, 5 * MIB + 3];
    for _ in 0..8 {
        sizes.push(rng.index(3 * MIB));
    }
    let mut files = Vec::new();
    for (i, size) in sizes.iter().enumerate() {
        let name = format!("d{}/f{i}.bin", i % 3);
        let content = data(*size, 100 + i as u64);
        std::fs::create_dir_all(a.path().join(format!("d{}", i % 3))).expect("dir");
        std::fs::write(a.path().join(&name), &content).expect("write");
        files.push((name, *size));
    }
    let log = once(relay.port, a.path(), Some(&user));
    for (name, size) in &files {
        let streamed = log.contains(&format!("sent {name} ({size} bytes) in one read"));
        assert_eq!(
            streamed,
            *size > 16_384,
            "{name} ({size} bytes): one read {streamed}\n{log}"
        );
        let stored = std::fs::read(server.user_dir(&user).join(name)).expect("stored");
        assert!(
            stored == std::fs::read(a.path().join(name)).expect("read"),
            "{name}"
        );
    }
    once(server.port, b.path(), Some(&user));
    assert!(
        tree(a.path()) == tree(b.path()),
        "the second device differs"
    );

    // The list the one read cut was recorded: an edit goes as a delta of
    // its changed chunks, not the whole file.
    let big = a.path().join("d2/f5.bin");
    let mut edited = std::fs::read(&big).expect("read");
    edited[2 * MIB..2 * MIB + 100].copy_from_slice(&[0xab; 100]);
    std::fs::write(&big, &edited).expect("write");
    let before = relay.up();
    once(relay.port, a.path(), Some(&user));
    let up = relay.up() - before;
    assert!(up < MIB as u64, "an edit of 100 bytes sent {up} bytes up");
    let stored = std::fs::read(server.user_dir(&user).join("d2/f5.bin")).expect("stored");
    assert!(stored == edited, "the edit's stored copy differs");

    // A copy of a file this device uploaded starts with a chunk it knows:
    // hashed first and sent as a delta, so its chunks do not cross again.
    std::fs::copy(&big, a.path().join("copy.bin")).expect("cp");
    let before = relay.up();
    let log = once(relay.port, a.path(), Some(&user));
    let up = relay.up() - before;
    assert!(log.contains("sent copy.bin as a delta"), "{log}");
    assert!(up < MIB as u64, "a copy of 5 MiB sent {up} bytes up");
    let stored = std::fs::read(server.user_dir(&user).join("copy.bin")).expect("stored");
    assert!(stored == edited, "the copy's stored content differs");
}

/// A one-read upload of at least 32 MiB whose bytes go out fast (here:
/// loopback, hundreds of MB/s) is not cut into chunks by the client past
/// its first 24 MiB: it takes the server's list (FetchManifest right
/// behind the StreamEnd, closed by an empty FetchChunks) and records it,
/// so the file's next edit still sends its list as a delta of the base's
/// and its changed chunks only, and a copy of it still goes as a delta.
/// Several such uploads in one round share R-13.4.4's four open
/// downloads.
#[test]
fn a_large_one_read_upload_takes_the_servers_chunk_list() {
    let server = Server::options().plaintext().start();
    let relay = Relay::start(server.port);
    let a = tempfile::tempdir().expect("temp dir");
    std::fs::write(a.path().join("seed.txt"), b"first").expect("write");
    let user = user_of(&once(server.port, a.path(), None));
    // Three at once: more than the two list downloads open at a time.
    let sizes = [40 * MIB + 5, 32 * MIB, 33 * MIB + 1];
    for (i, size) in sizes.iter().enumerate() {
        std::fs::write(
            a.path().join(format!("big{i}.bin")),
            data(*size, 40 + i as u64),
        )
        .expect("write");
    }
    let down_before = relay.down();
    let log = once(relay.port, a.path(), Some(&user));
    let down = relay.down() - down_before;
    let mut entries = 0u64;
    for (i, size) in sizes.iter().enumerate() {
        let name = format!("big{i}.bin");
        assert!(
            log.contains(&format!("sent {name} ({size} bytes) in one read")),
            "{name} not in one read:\n{log}"
        );
        let content = std::fs::read(a.path().join(&name)).expect("read");
        let list = cloudservice::chunk::manifest_of_reader(&content[..]).expect("in memory");
        entries += list.chunks.len() as u64;
        assert!(
            log.contains(&format!(
                "recorded the server's chunk list of {name} ({} chunks)",
                list.chunks.len()
            )),
            "{name}'s list ({} chunks) not taken from the server:\n{log}",
            list.chunks.len()
        );
        let stored = std::fs::read(server.user_dir(&user).join(&name)).expect("stored");
        assert!(stored == content, "{name}: the stored copy differs");
    }
    // The lists came down: 36 bytes an entry.
    assert!(
        down >= 36 * entries,
        "{down} bytes down for {entries} entries"
    );

    // An edit of 100 bytes: its list as a delta of the recorded one, and
    // only the changed chunks up.
    let big = a.path().join("big0.bin");
    let mut edited = std::fs::read(&big).expect("read");
    edited[12 * MIB..12 * MIB + 100].copy_from_slice(&[0xab; 100]);
    std::fs::write(&big, &edited).expect("write");
    let before = relay.up();
    let log = once(relay.port, a.path(), Some(&user));
    let up = relay.up() - before;
    assert!(
        log.contains("big0.bin: its chunk list goes as a delta of the base's"),
        "{log}"
    );
    assert!(up < MIB as u64, "an edit of 100 bytes sent {up} bytes up");
    let stored = std::fs::read(server.user_dir(&user).join("big0.bin")).expect("stored");
    assert!(stored == edited, "the edit's stored copy differs");

    // A copy of one: its first chunk is known, so it goes as a delta.
    std::fs::copy(a.path().join("big2.bin"), a.path().join("copy.bin")).expect("cp");
    let before = relay.up();
    let log = once(relay.port, a.path(), Some(&user));
    let up = relay.up() - before;
    assert!(log.contains("sent copy.bin as a delta"), "{log}");
    assert!(up < MIB as u64, "a copy of 33 MiB sent {up} bytes up");

    let b = tempfile::tempdir().expect("temp dir");
    once(server.port, b.path(), Some(&user));
    assert!(
        tree(a.path()) == tree(b.path()),
        "the second device differs"
    );
}

/// The same upload over a slow link (12 MB/s, under the 32 MB/s past
/// which the cut is left): the client cuts the whole file itself, as the
/// link leaves it the time, and no list comes back down; its edit goes as
/// a delta of the list it cut.
#[test]
fn a_large_one_read_upload_over_a_slow_link_is_cut_by_the_client() {
    let server = Server::options().plaintext().start();
    let relay = Relay::slow(server.port, 12_000_000);
    let a = tempfile::tempdir().expect("temp dir");
    std::fs::write(a.path().join("seed.txt"), b"first").expect("write");
    let user = user_of(&once(server.port, a.path(), None));
    let size = 32 * MIB + 3;
    std::fs::write(a.path().join("big.bin"), data(size, 61)).expect("write");
    let down_before = relay.down();
    let log = once(relay.port, a.path(), Some(&user));
    let down = relay.down() - down_before;
    assert!(
        log.contains(&format!("sent big.bin ({size} bytes) in one read")),
        "{log}"
    );
    assert!(!log.contains("chunk list of big.bin"), "{log}");
    assert!(down < 16_384, "{down} bytes down: a list came back");
    let big = a.path().join("big.bin");
    let mut edited = std::fs::read(&big).expect("read");
    edited[20 * MIB..20 * MIB + 100].copy_from_slice(&[0xcd; 100]);
    std::fs::write(&big, &edited).expect("write");
    let log = once(server.port, a.path(), Some(&user));
    assert!(
        log.contains("big.bin: its chunk list goes as a delta of the base's"),
        "{log}"
    );
    let stored = std::fs::read(server.user_dir(&user).join("big.bin")).expect("stored");
    assert!(stored == edited, "the edit's stored copy differs");
}

#[test]
fn a_version_5_server_gets_the_file_hashed_first() {
    let server = Server::options().plaintext().start();
    let old = Relay::older(server.port, 5);
    let a = tempfile::tempdir().expect("temp dir");
    std::fs::write(a.path().join("seed.txt"), b"first").expect("write");
    let user = user_of(&once(server.port, a.path(), None));
    let content = data(3 * MIB, 7);
    std::fs::write(a.path().join("big.bin"), &content).expect("write");
    let log = once(old.port, a.path(), Some(&user));
    assert!(
        log.contains("protocol version 6"),
        "the refusal is not said:\n{log}"
    );
    assert!(!log.contains("in one read"), "{log}");
    let stored = std::fs::read(server.user_dir(&user).join("big.bin")).expect("stored");
    assert!(stored == content, "the stored copy differs");
}

/// What is done to the file while its upload is under way.
#[derive(Clone, Copy, Debug)]
enum Change {
    Append,
    Truncate,
    /// Parts already sent and parts not yet sent rewritten, same size,
    /// the old modification time put back.
    RewriteSameSizeOldMtime,
}

fn change_during_upload(change: Change) {
    const SIZE: usize = 192 * MIB;
    let server = Server::options().plaintext().start();
    let relay = Relay::start(server.port);
    let a = tempfile::tempdir().expect("temp dir");
    std::fs::write(a.path().join("seed.txt"), b"first").expect("write");
    let user = user_of(&once(server.port, a.path(), None));
    let file = a.path().join("big.bin");
    std::fs::write(&file, data(SIZE, 9)).expect("write");
    let logs = tempfile::tempdir().expect("temp dir");
    let log = logs.path().join("client.log");
    let log = log.as_path();
    let before = relay.up();
    let mut client = Client::options(relay.port, a.path())
        .plaintext()
        .user(Some(&user))
        .verbosity(common::Verbosity::Verbose)
        .log(log)
        .start();
    // Under way: the relay has carried 16 MiB of it.
    let deadline = Instant::now() + Duration::from_secs(120);
    while relay.up() - before < 16 * MIB as u64 {
        assert!(Instant::now() < deadline, "the upload did not start");
        std::thread::sleep(Duration::from_millis(1));
    }
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .append(matches!(change, Change::Append))
            .open(&file)
            .expect("open");
        let old_mtime = f.metadata().expect("meta").modified().expect("mtime");
        match change {
            Change::Append => f.write_all(b"appended").expect("append"),
            Change::Truncate => f.set_len((SIZE / 2) as u64).expect("truncate"),
            Change::RewriteSameSizeOldMtime => {
                for at in [0usize, SIZE - MIB] {
                    f.seek(SeekFrom::Start(at as u64)).expect("seek");
                    f.write_all(&data(MIB, 77 + at as u64)).expect("rewrite");
                }
                f.set_modified(old_mtime).expect("mtime back");
            }
        }
    }
    let expected = std::fs::read(&file).expect("read");
    let stored = server.user_dir(&user).join("big.bin");
    let deadline = Instant::now() + Duration::from_secs(180);
    while std::fs::read(&stored).ok().as_deref() != Some(&expected[..]) {
        assert!(
            Instant::now() < deadline,
            "{change:?}: the server never got the final content\n{}",
            client.log_tail(4000)
        );
        // Whatever is stored at any time is the final content or nothing.
        if let Ok(now) = std::fs::read(&stored) {
            assert!(now == expected, "{change:?}: a mix was stored");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let text = client.log_tail(1 << 20);
    client.stop();
    assert!(
        text.contains("changed while it was being sent; sending it again"),
        "{change:?}: the change did not land during the upload (no abandon)\n{text}"
    );
}

#[test]
fn an_append_during_the_upload_is_never_stored_as_a_mix() {
    change_during_upload(Change::Append);
}

#[test]
fn a_truncation_during_the_upload_is_never_stored_as_a_mix() {
    change_during_upload(Change::Truncate);
}

#[test]
fn a_same_size_rewrite_with_the_old_mtime_during_the_upload_is_never_stored_as_a_mix() {
    change_during_upload(Change::RewriteSameSizeOldMtime);
}
