//! `cp X Y; edit Y; rm X` and its family (rename then edit, a directory
//! of such files) seen by the real client in one look: the round sends the
//! removal after the upload (src/client/plan/order.rs), so the server still
//! has X's chunks to build Y from and only about the edit crosses up. The
//! bytes are counted by relays between each client and the server; the
//! second device's copy must equal the first's by content.

mod common;

use common::relay::Relay;
use common::{new_user, settle, tree, Client, Rng, Server};
use std::path::Path;
use std::process::Output;

const MIB: usize = 1 << 20;

/// `--once` through `relay` (PULLING_RATE 0.2).
fn once(relay: &Relay, folder: &Path, user: Option<&str>) -> Output {
    let out = Client::options(relay.port, folder)
        .rate("0.2")
        .user(user)
        .run_once();
    assert!(
        out.status.success(),
        "client --once failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `bytes` with `len` fresh bytes at `at`.
fn edited(bytes: &[u8], rng: &mut Rng, at: usize, len: usize) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[at..at + len].copy_from_slice(&rng.bytes(len));
    out
}

/// One case: `before` fills folder a, `change` is made in one look;
/// returns (bytes A sent, bytes B received) for the change.
fn measure(
    name: &str,
    before: impl FnOnce(&Path),
    change: impl FnOnce(&Path),
    edited_bytes: usize,
) -> (u64, u64) {
    let server = Server::start();
    let (a, b) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    before(a.path());
    settle();
    let user = new_user(server.port, a.path());
    let (ra, rb) = (Relay::start(server.port), Relay::start(server.port));
    once(&rb, b.path(), Some(&user));
    assert!(tree(a.path()) == tree(b.path()), "{name}: initial copy");
    change(a.path());
    settle();
    let up0 = ra.up();
    once(&ra, a.path(), Some(&user));
    let up = ra.up() - up0;
    let down0 = rb.down();
    once(&rb, b.path(), Some(&user));
    let down = rb.down() - down0;
    assert!(
        tree(a.path()) == tree(b.path()),
        "{name}: B's folder differs from A's"
    );
    eprintln!("{name}: {up} bytes up, {down} bytes down (edits: {edited_bytes} bytes)");
    (up, down)
}

/// Upload: about the edited bytes cross, not the files (before the
/// order fix each case sent every copied file whole). The download of the
/// second device is printed, not bounded: its applier still removes before
/// it fetches, so it receives the copies whole.
#[test]
fn a_copy_edited_then_its_source_removed_sends_about_the_edit() {
    let mut rng = Rng::new(common::seed("CED_SEED"));
    let x = rng.bytes(16 * MIB);
    let y = edited(&x, &mut rng, 5 * MIB, MIB);
    let (up, _) = measure(
        "cp X Y; edit Y; rm X",
        |a| common::write(a, "X.bin", &x),
        |a| {
            common::write(a, "Y.bin", &y);
            std::fs::remove_file(a.join("X.bin")).expect("rm X");
        },
        MIB,
    );
    let mut sent = vec![("cp X Y; edit Y; rm X", up, 3 * MIB)];

    let y2 = edited(&x, &mut rng, 9 * MIB, MIB);
    let (up, _) = measure(
        "mv X Y; edit Y",
        |a| common::write(a, "X.bin", &x),
        |a| {
            std::fs::rename(a.join("X.bin"), a.join("Y.bin")).expect("mv");
            common::write(a, "Y.bin", &y2);
        },
        MIB,
    );
    sent.push(("mv X Y; edit Y", up, 3 * MIB));

    let files: Vec<Vec<u8>> = (0..3).map(|_| rng.bytes(6 * MIB)).collect();
    let edits: Vec<Vec<u8>> = files
        .iter()
        .map(|f| edited(f, &mut rng, 2 * MIB, MIB / 2))
        .collect();
    let (up, _) = measure(
        "cp -r D E; edit E/*; rm -r D",
        |a| {
            for (i, f) in files.iter().enumerate() {
                common::write(a, &format!("D/f{i}.bin"), f);
            }
        },
        |a| {
            for (i, f) in edits.iter().enumerate() {
                common::write(a, &format!("E/f{i}.bin"), f);
            }
            std::fs::remove_dir_all(a.join("D")).expect("rm -r D");
        },
        3 * MIB / 2,
    );
    sent.push(("cp -r D E; edit E/*; rm -r D", up, 4 * MIB));
    for (case, up, limit) in sent {
        assert!(
            up < limit as u64,
            "{case} sent {up} bytes up (limit {limit})"
        );
    }
}
