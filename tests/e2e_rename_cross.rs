//! End-to-end: two devices rename across each other's paths at once, a
//! directory onto a file's path on one and that file onto the directory's
//! path on the other (outside tester breaker18, F7; PROTOCOL.md ).
//!
//! A runs `rm x; mv d x` while B runs `rm -r d; mv x d` (at the top and in
//! a subdirectory). Before, the server moved whatever it held at a
//! Rename's `from`: B's Rename of the *file* `x` took A's directory `x`
//! (made there by A's Rename) to `d`, and the content of `x` that B had
//! moved was gone from every device (about 1 round in 4 on main 212d2a8).
//! Now a directory another device made at `from` that the mover has not
//! pulled is Stale for it, and the mover pushes what it holds as new.
//! Left open (seen in about 1 round in 8 with this change, `NOTE` lines):
//! the other way round, A's Rename of the directory `d` can take B's new
//! file `d` back to `x` (B's move undone); files of `d` that B's removal
//! deleted on the server before A's move are gone (a removal that arrives
//! first wins); and when A's changes are pulled into B's folder while B's
//! user is still moving things, the content of `x` can end up deleted.
//!
//! Checked per round: A, B and the server converge, and none of A's files
//! is under `d`. Printed, not checked: a round where the content of `x`
//! is gone anyway (left open, below). `CROSS_SEED`
//! replays a run, `CROSS_ROUNDS` sets the rounds (4). Against another
//! build: `CLOUD_TEST_SERVER_BIN=/path/to/older/cloud-server`.

mod common;

use common::{converge, converge_stable, seed, settle, write, Rng, Tree, TwoDevices};
use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::time::Duration;

/// 1 to `max` random bytes.
fn noise(rng: &mut Rng, max: usize) -> Vec<u8> {
    let n = 1 + rng.index(max);
    rng.bytes(n)
}

/// The file contents of a tree.
fn contents(tree: &Tree) -> BTreeSet<Vec<u8>> {
    tree.values().flatten().cloned().collect()
}

/// One round in directory `at` ("" for the top): returns why it failed.
fn round(rng: &mut Rng, at: &str) -> Result<(), String> {
    let p = |name: &str| {
        if at.is_empty() {
            name.to_owned()
        } else {
            format!("{at}/{name}")
        }
    };
    let files: Vec<(String, Vec<u8>)> = ["x", "d/f1", "d/f2", "d/sub/f3", "other"]
        .iter()
        .map(|f| (p(f), noise(rng, 3000)))
        .collect();
    let two = TwoDevices::start(|a| {
        for (path, bytes) in &files {
            write(a, path, bytes);
        }
    });
    let (a, b) = (two.a.path(), two.b.path());
    let server = two.server.user_dir(&two.user);
    let before = converge("initial", &[a, b, &server]);
    let (x, d) = (p("x"), p("d"));
    // Each device's two steps; false when its folder changed under it
    // first (the other device's change pulled in between): no race then.
    let on_a = |a: &Path| {
        fs::remove_file(a.join(&x)).is_ok() && fs::rename(a.join(&d), a.join(&x)).is_ok()
    };
    let on_b = |b: &Path| {
        fs::remove_dir_all(b.join(&d)).is_ok() && fs::rename(b.join(&x), b.join(&d)).is_ok()
    };
    // B first or A first, then the other at once.
    let (did_a, did_b) = if rng.chance(0.5) {
        let did_a = on_a(a);
        (did_a, on_b(b))
    } else {
        let did_b = on_b(b);
        (on_a(a), did_b)
    };
    let raced = did_a && did_b;
    settle();
    let after = converge_stable(
        &[a, b, &server],
        Duration::from_secs(20),
        Duration::from_secs(2),
    )
    .map_err(|diff| format!("no convergence in {at:?}:\n{diff}"))?;
    // B moved the file `x`: A's directory (its files) must never be
    // carried to `d` by that move. Other outcomes of this race are left
    // open and only printed (see the top).
    let paths: Vec<&String> = after.keys().collect();
    let under_d = format!("{d}/");
    let carried: Vec<&String> = after
        .iter()
        .filter(|(path, bytes)| {
            path.starts_with(&under_d) && files[1..4].iter().any(|(_, f)| bytes.as_ref() == Some(f))
        })
        .map(|(path, _)| path)
        .collect();
    if !carried.is_empty() {
        return Err(format!(
            "in {at:?}: A's files {carried:?} were carried to d by B's move of the file x; the folder holds {paths:?}"
        ));
    }
    if !contents(&after).contains(&files[0].1) {
        eprintln!(
            "NOTE (left open): in {at:?} the content of x is gone; the folder holds {paths:?}"
        );
    }
    let _ = before;
    eprintln!(
        "round in {at:?} (raced: {raced}): {:?}",
        after.keys().collect::<Vec<_>>()
    );
    Ok(())
}

#[test]
fn a_file_move_never_carries_another_devices_directory() {
    let seed = seed("CROSS_SEED");
    eprintln!("CROSS_SEED={seed}");
    let mut rng = Rng::new(seed);
    let rounds: usize = std::env::var("CROSS_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(4);
    let mut failed = Vec::new();
    for i in 0..rounds {
        let at = if i % 2 == 0 { "" } else { "p/q" };
        if let Err(why) = round(&mut rng, at) {
            eprintln!("FAILED: {why}");
            failed.push(why);
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {rounds} rounds failed (CROSS_SEED={seed}):\n{}",
        failed.len(),
        failed.join("\n")
    );
}
