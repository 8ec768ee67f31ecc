//! `cp X Y; edit Y; rm X` and its family (rename then edit, a copy and
//! removal without an edit, a directory of such files) seen by the real
//! client in one look: the round sends the removal after the upload
//! (src/client/plan/order.rs, R-5.4.11), so the server still has X's chunks
//! to build Y from and only about the edit crosses up; the second device
//! keeps the content of the X its pull deletes as a chunk source until Y is
//! in, so only about the edit crosses down. The bytes are counted
//! by relays between each client and the server; the second device's copy
//! must equal the first's by content.

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

/// One case's bounds: bytes up and bytes down must each stay below their
/// limit (the copied or moved file's size is far above both).
struct Case {
    name: &'static str,
    up: u64,
    down: u64,
    up_limit: usize,
    down_limit: usize,
}

/// Upload and download: about the edited bytes cross, not the files.
/// Before the upload's order fix (02865e6) each case sent every copied file
/// whole; before the download's (the receiving applier keeps a deleted
/// file's content as a chunk source until the reply's downloads are in,
/// ) the second device received every copied or moved file whole:
/// 16.8 MB for the 16 MiB file, 18.9 MB for the directory. Measured on
/// 2026-12-02 with `cargo test --release --test e2e_copy_edit_delete -- --nocapture`.
#[test]
fn a_copy_edited_then_its_source_removed_sends_about_the_edit() {
    let mut rng = Rng::new(common::seed("CED_SEED"));
    let x = rng.bytes(16 * MIB);
    let mut cases = Vec::new();
    let mut case = |name, (up, down), up_limit, down_limit| {
        cases.push(Case {
            name,
            up,
            down,
            up_limit,
            down_limit,
        })
    };

    let at = rng.below(14) as usize * MIB;
    let y = edited(&x, &mut rng, at, MIB);
    let measured = measure(
        "cp X Y; edit Y; rm X",
        |a| common::write(a, "X.bin", &x),
        |a| {
            common::write(a, "Y.bin", &y);
            std::fs::remove_file(a.join("X.bin")).expect("rm X");
        },
        MIB,
    );
    case("cp X Y; edit Y; rm X", measured, 3 * MIB, 3 * MIB);

    let at = rng.below(14) as usize * MIB;
    let y2 = edited(&x, &mut rng, at, MIB);
    let measured = measure(
        "mv X Y; edit Y",
        |a| common::write(a, "X.bin", &x),
        |a| {
            std::fs::rename(a.join("X.bin"), a.join("Y.bin")).expect("mv");
            common::write(a, "Y.bin", &y2);
        },
        MIB,
    );
    case("mv X Y; edit Y", measured, 3 * MIB, 3 * MIB);

    let measured = measure(
        "cp X Y; rm X",
        |a| common::write(a, "X.bin", &x),
        |a| {
            common::write(a, "Y.bin", &x);
            std::fs::remove_file(a.join("X.bin")).expect("rm X");
        },
        0,
    );
    case("cp X Y; rm X", measured, MIB, MIB);

    let files: Vec<Vec<u8>> = (0..3).map(|_| rng.bytes(6 * MIB)).collect();
    let edits: Vec<Vec<u8>> = files
        .iter()
        .map(|f| {
            let at = rng.below(5) as usize * MIB;
            edited(f, &mut rng, at, MIB / 2)
        })
        .collect();
    let measured = measure(
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
    case("cp -r D E; edit E/*; rm -r D", measured, 4 * MIB, 4 * MIB);

    let failed: Vec<String> = cases
        .iter()
        .filter(|c| c.up >= c.up_limit as u64 || c.down >= c.down_limit as u64)
        .map(|c| {
            format!(
                "{}: {} bytes up (limit {}), {} bytes down (limit {})",
                c.name, c.up, c.up_limit, c.down, c.down_limit
            )
        })
        .collect();
    assert!(failed.is_empty(), "over the limits:\n{}", failed.join("\n"));
}
