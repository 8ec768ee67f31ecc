//! Resume of interrupted delta transfers (issue 11, PROTOCOL.md §13.5): the
//! real binaries on loopback, a relay counting the bytes each way, a large
//! transfer cut by SIGKILL of the client or of the server part-way; after
//! the restart only the chunks not yet received cross, and the copies end
//! identical. The downloading device starts empty, so its first download
//! is a whole-file Fetch written into the partial area; cut off, it resumes
//! as a delta download that re-hashes what it holds.

mod common;

use common::relay::Relay;
use common::{new_user, run_once, tree, Client, Server};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

const MIB: u64 = 1 << 20;
/// The file moved: large enough that the cut falls well inside it.
const SIZE: u64 = 96 * MIB;
/// Where the transfer is cut: after this many bytes crossed.
const CUT: u64 = 40 * MIB;

/// `len` pseudo-random bytes for `seed` (the kit's one PRNG).
fn data(len: u64, seed: u64) -> Vec<u8> {
    common::Rng::new(seed).bytes(len as usize)
}

fn ok(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Waits until `moved()` passes `CUT` (or two minutes pass).
fn wait_for_cut(moved: impl Fn() -> u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(120);
    while moved() < CUT {
        assert!(
            Instant::now() < deadline,
            "the transfer stalled at {}",
            moved()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    moved()
}

/// What may have crossed the relay before the kill without reaching the
/// killed side's disk: the socket buffers of both legs (loopback autotunes
/// each send and receive buffer up to 4–6 MiB), the relay's own, and the
/// window the receiver had read but not written. 8 MiB was exceeded by up
/// to 3 MB on a loaded machine (with the client of a370f57 as well); a
/// re-sent whole file still exceeds this bound by 20 MiB or more.
const IN_FLIGHT: u64 = 16 * MIB;

/// After the restart at most the rest of the file crosses, plus the chunk
/// list, what was in flight at the kill and a few chunks: never the whole.
fn assert_only_the_rest(after: u64, at_cut: u64, what: &str) {
    let bound = SIZE - at_cut + IN_FLIGHT;
    eprintln!("{what}: {at_cut} bytes before the kill, {after} after (bound {bound})");
    assert!(
        after <= bound,
        "{what}: {after} bytes after the restart > {bound}"
    );
}

/// Bytes of the download that reached `folder`'s disk: its
/// `.cloudservice/partial/` files, each counted by the blocks it holds
/// (what was written, dense or sparse) and at most its length.
fn held(folder: &Path) -> u64 {
    let Ok(listing) = std::fs::read_dir(folder.join(".cloudservice/partial")) else {
        return 0;
    };
    listing
        .filter_map(Result::ok)
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len().min(m.blocks() * 512))
        .sum()
}

/// What may cross again after the restart although the client held it:
/// the chunk list (36 bytes a chunk, ≈ 55 KB here), frame headers, and a
/// chunk written in part at the kill (at most 256 KiB), with room to spare.
const RESENT: u64 = 4 * MIB;

/// After the restart only what the client did not hold at the kill
/// (`kept` bytes, [`held`]) crosses, plus [`RESENT`]: never the whole.
/// Measured at the client's disk, not at the relay: what crossed the relay
/// but was still in socket buffers or the client's memory at the kill
/// grows with the machine's load (20 MB at load 6, over the 16 MiB
/// [`IN_FLIGHT`] the relay-based bound allowed), and is rightly sent again.
fn assert_only_what_was_missing(after: u64, kept: u64, what: &str) {
    let bound = SIZE - kept + RESENT;
    eprintln!(
        "{what}: the client held {kept} bytes at the kill, {after} crossed after (bound {bound})"
    );
    assert!(
        after <= bound,
        "{what}: {after} bytes after the restart > {bound}"
    );
}

#[test]
fn a_download_cut_by_killing_the_client_resumes_with_the_rest() {
    let server = Server::start();
    let relay = Relay::start(server.port);
    let a = tempfile::tempdir().expect("temp dir");
    let b = tempfile::tempdir().expect("temp dir");
    let content = data(SIZE, 51);
    std::fs::write(a.path().join("big.bin"), &content).expect("write");
    let user = new_user(server.port, a.path());
    let mut cb = Client::options(relay.port, b.path())
        .user(Some(&user))
        .start();
    // Killed once the client wrote CUT bytes (not once CUT bytes crossed
    // the relay: how far the client lags behind the relay is load).
    wait_for_cut(|| held(b.path()));
    cb.kill9();
    let kept = held(b.path());
    assert!(
        !b.path().join("big.bin").exists(),
        "no partial file is visible"
    );
    let before = relay.down();
    ok(&run_once(relay.port, b.path(), None));
    assert_only_what_was_missing(relay.down() - before, kept, "download, client killed");
    assert!(tree(a.path()) == tree(b.path()), "the devices differ");
}

#[test]
fn a_download_cut_by_killing_the_server_resumes_with_the_rest() {
    let mut server = Server::start();
    let relay = Relay::start(server.port);
    let a = tempfile::tempdir().expect("temp dir");
    let b = tempfile::tempdir().expect("temp dir");
    let content = data(SIZE, 52);
    std::fs::write(a.path().join("big.bin"), &content).expect("write");
    let user = new_user(server.port, a.path());
    let mut cb = Client::options(relay.port, b.path())
        .user(Some(&user))
        .start();
    wait_for_cut(|| held(b.path()));
    server.kill9();
    cb.kill9();
    let kept = held(b.path());
    server.start_again();
    let before = relay.down();
    ok(&run_once(relay.port, b.path(), None));
    assert_only_what_was_missing(relay.down() - before, kept, "download, server killed");
    assert!(tree(a.path()) == tree(b.path()), "the devices differ");
}

#[test]
fn an_upload_cut_by_killing_the_client_resumes_with_the_rest() {
    let server = Server::start();
    let relay = Relay::start(server.port);
    let a = tempfile::tempdir().expect("temp dir");
    std::fs::write(a.path().join("seed.txt"), b"a user first").expect("write");
    let user = new_user(server.port, a.path());
    let content = data(SIZE, 53);
    std::fs::write(a.path().join("big.bin"), &content).expect("write");
    let before = relay.up();
    let mut ca = Client::options(relay.port, a.path()).start();
    let at_cut = wait_for_cut(|| relay.up() - before);
    ca.kill9();
    let stored = server.user_dir(&user).join("big.bin");
    assert!(!stored.exists(), "no partial file is visible on the server");
    let before = relay.up();
    ok(&run_once(relay.port, a.path(), None));
    assert_only_the_rest(relay.up() - before, at_cut, "upload, client killed");
    assert!(std::fs::read(&stored).expect("stored") == content);
}

#[test]
fn an_upload_cut_by_killing_the_server_resumes_with_the_rest() {
    let mut server = Server::start();
    let relay = Relay::start(server.port);
    let a = tempfile::tempdir().expect("temp dir");
    std::fs::write(a.path().join("seed.txt"), b"a user first").expect("write");
    let user = new_user(server.port, a.path());
    let content = data(SIZE, 54);
    std::fs::write(a.path().join("big.bin"), &content).expect("write");
    let before = relay.up();
    let mut ca = Client::options(relay.port, a.path()).start();
    let at_cut = wait_for_cut(|| relay.up() - before);
    server.kill9();
    ca.kill9();
    server.start_again();
    let stored = server.user_dir(&user).join("big.bin");
    assert!(!stored.exists(), "no partial file is visible on the server");
    let before = relay.up();
    ok(&run_once(relay.port, a.path(), None));
    assert_only_the_rest(relay.up() - before, at_cut, "upload, server killed");
    assert!(std::fs::read(&stored).expect("stored") == content);
}
