//! Two real clients editing one big file at the same moment, several
//! rounds (PROTOCOL.md ): both delta uploads of the path are in
//! progress on the server at once. Both edits are kept (one at the path,
//! the other as its conflict copy), the connection log has no `Storage`
//! refusal, no client holds a push back as if the disk were full, and an
//! edit made afterwards reaches the other device within seconds.

mod common;

use common::{converge, new_user, settle, tree, Client, Rng, Server, Tree, Verbosity};
use std::path::Path;
use std::time::{Duration, Instant};

const BIG: &str = "big.bin";
const SIZE: usize = 24 << 20;

/// `base` with 3 MiB at `at` replaced by fresh bytes (more than one chunk
/// crosses the link, so the uploads last long enough to overlap).
fn edit(base: &[u8], rng: &mut Rng, at: usize) -> Vec<u8> {
    let mut out = base.to_vec();
    let len = 3 << 20;
    out[at..at + len].copy_from_slice(&rng.bytes(len));
    out
}

fn start_client(port: u16, folder: &Path, log: &Path, user: Option<&str>) -> Client {
    Client::options(port, folder)
        .user(user)
        .verbosity(Verbosity::for_log_file())
        .log(log)
        .start()
}

/// The contents of the files of `t` (directories left out).
fn contents(t: &Tree) -> Vec<&Vec<u8>> {
    t.values().flatten().collect()
}

#[test]
fn two_devices_editing_one_big_file_at_once_keep_both_edits_without_a_storage_error() {
    let seed = common::seed("RACE_SEED");
    eprintln!("RACE_SEED={seed}");
    let mut rng = Rng::new(seed);
    let server = Server::start();
    let logs = tempfile::tempdir().expect("temp dir");
    let a = tempfile::tempdir().expect("temp dir");
    let b = tempfile::tempdir().expect("temp dir");
    let mut current = rng.bytes(SIZE);
    common::write(a.path(), BIG, &current);
    settle();
    let user = new_user(server.port, a.path());
    let (log_a, log_b) = (logs.path().join("a.log"), logs.path().join("b.log"));
    let ca = start_client(server.port, a.path(), &log_a, None);
    let cb = start_client(server.port, b.path(), &log_b, Some(&user));
    converge("initial", &[a.path(), b.path()]);
    for round in 0..4 {
        // Different places in each round, the same moment on both devices.
        let a_new = edit(&current, &mut rng, (round * 5) << 20);
        let b_new = edit(&current, &mut rng, ((round * 5) + 2) << 20);
        std::thread::scope(|s| {
            s.spawn(|| common::write(a.path(), BIG, &a_new));
            s.spawn(|| common::write(b.path(), BIG, &b_new));
        });
        let t = converge(&format!("round {round}"), &[a.path(), b.path()]);
        let got = contents(&t);
        assert!(got.contains(&&a_new), "round {round}: A's edit is lost");
        assert!(got.contains(&&b_new), "round {round}: B's edit is lost");
        let at_path = t.get(BIG).cloned().flatten().expect("big.bin is a file");
        assert!(at_path == a_new || at_path == b_new, "round {round}");
        let copies = t.keys().filter(|k| k.contains("(conflict")).count();
        assert_eq!(
            copies,
            round + 1,
            "round {round}: one conflict copy per round"
        );
        current = at_path;
    }
    let log = server.conn_log();
    assert!(
        !log.contains("Storage") && !log.contains("No such file"),
        "the connection log has a Storage refusal:\n{log}"
    );
    for (name, client) in [("A", &ca), ("B", &cb)] {
        let text = client.log_tail(1 << 20);
        assert!(
            !text.contains("could not store") && !text.contains("holding it back"),
            "client {name} held a push back:\n{text}"
        );
    }
    // No back-off: one more edit on each side travels within seconds.
    for (from, to) in [(a.path(), b.path()), (b.path(), a.path())] {
        let next = edit(&current, &mut rng, 7 << 20);
        let started = Instant::now();
        common::write(from, BIG, &next);
        let arrived = common::eventually(Duration::from_secs(8), || {
            tree(to).get(BIG).cloned().flatten().as_ref() == Some(&next)
        });
        assert!(
            arrived,
            "an edit after the race did not arrive within 8 s (held back?)"
        );
        eprintln!("edit arrived in {:?}", started.elapsed());
        current = next;
    }
    drop((ca, cb));
}
