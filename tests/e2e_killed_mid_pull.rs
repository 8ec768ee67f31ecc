//! A device killed (SIGKILL: a crash, an OOM kill, a battery gone) while it
//! places the files of a pull must not, after its restart, take those
//! downloads for files the user added while it was stopped: another
//! device's later deletion, rename or edit of them must stand everywhere
//! (outside tester breaker27, finding F0: the deletion of 65 to 3,120 files
//! was undone on every device, a rename left duplicates at the old path,
//! edits became conflict copies). Real binaries on loopback.
//!
//! B is stopped; A adds `new/` (N files); B starts with a place delay
//! (`CLOUD_TEST_PLACE_DELAY_MS`) so the pull is slow, and is killed once it
//! placed some of them; A then deletes, renames or edits `new/`; B starts
//! again and every folder must end as A made it. The random test draws the
//! kill point, A's change, and whether B's user edits a placed file before
//! the restart (that edit must be kept, once, and nothing else come back):
//! `KILLED_SEED` replays a run, `KILLED_ROUNDS` sets how many (default 2).

mod common;

use common::rng::{seed, Rng};
use common::{converge_stable, eventually, tree, write, Client, Tree, TwoDevices};
use std::fs;
use std::path::Path;
use std::time::Duration;

const FILES: usize = 120;

/// What A does to `new/` while B is down.
#[derive(Debug, Clone, Copy)]
enum After {
    RemoveAll,
    Rename,
    EditEvery10th,
}

fn placed(dir: &Path) -> usize {
    fs::read_dir(dir).map_or(0, |d| d.count())
}

/// A's `after` in A's folder `a`; true once the server at `server` holds it.
fn a_acts(after: After, a: &Path, server: &Path) -> bool {
    match after {
        After::RemoveAll => fs::remove_dir_all(a.join("new")).expect("rm -rf new"),
        After::Rename => fs::rename(a.join("new"), a.join("renamed")).expect("mv new renamed"),
        After::EditEvery10th => {
            for i in (0..FILES).step_by(10) {
                common::append(&a.join(format!("new/n{i}.txt")), "A edit\n");
            }
        }
    }
    eventually(Duration::from_secs(60), || match after {
        After::RemoveAll => !server.join("new").exists(),
        After::Rename => !server.join("new").exists() && placed(&server.join("renamed")) == FILES,
        After::EditEvery10th => {
            fs::read_to_string(server.join("new/n0.txt")).is_ok_and(|t| t.ends_with("A edit\n"))
        }
    })
}

fn run(after: After) {
    let mut dev = TwoDevices::start(|a| write(a, "keep.txt", "k\n"));
    let (a, b) = (dev.a.path().to_owned(), dev.b.path().to_owned());
    let server = dev.server.user_dir(&dev.user);
    dev.cb.stop();
    for i in 0..FILES {
        write(&a, &format!("new/n{i}.txt"), format!("n{i}\n"));
    }
    assert!(
        eventually(Duration::from_secs(60), || placed(&server.join("new"))
            == FILES),
        "A's files reached the server"
    );
    let mut slow_b = Client::options(dev.server.port, &b)
        .env("CLOUD_TEST_PLACE_DELAY_MS", "40")
        .start();
    assert!(
        eventually(Duration::from_secs(60), || placed(&b.join("new")) >= 20),
        "B placed some of new/"
    );
    slow_b.kill9();
    let had = placed(&b.join("new"));
    assert!(
        had < FILES,
        "B was killed mid-pull ({had} of {FILES} placed)"
    );
    assert!(
        a_acts(after, &a, &server),
        "{after:?}: A's change reached the server"
    );
    let expected = tree(&a);
    let mut again = Client::options(dev.server.port, &b).start();
    let ended = converge_stable(
        &[&a, &b, &server],
        Duration::from_secs(60),
        Duration::from_secs(3),
    )
    .unwrap_or_else(|diff| panic!("{after:?} (B had placed {had}): no convergence:\n{diff}"));
    assert_eq!(
        ended.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "{after:?} (B had placed {had}): A's change was undone"
    );
    assert_eq!(ended, expected, "{after:?}: contents differ");
    again.stop();
}

#[test]
fn a_deletion_made_while_a_device_was_killed_mid_pull_stands() {
    run(After::RemoveAll);
}

#[test]
fn a_rename_made_while_a_device_was_killed_mid_pull_stands() {
    run(After::Rename);
}

#[test]
fn edits_made_while_a_device_was_killed_mid_pull_make_no_conflict_copies() {
    run(After::EditEvery10th);
}

/// B's user's line, appended to a placed file while B is down.
const MARK: &str = "B's user edit\n";

/// One random round: B killed once it placed `kill_after` files, A's
/// `after`, and (with `edit`) B's user appending [`MARK`] to a placed
/// file before B starts again. Every folder must end as A made it, but
/// for B's edit, kept in exactly one file (at its path, where A's rename
/// took it, or as a conflict copy beside A's edit).
fn random_round(after: After, kill_after: usize, edit: Option<usize>, what: &str) {
    let mut dev = TwoDevices::start(|a| write(a, "keep.txt", "k\n"));
    let (a, b) = (dev.a.path().to_owned(), dev.b.path().to_owned());
    let server = dev.server.user_dir(&dev.user);
    dev.cb.stop();
    for i in 0..FILES {
        write(&a, &format!("new/n{i}.txt"), format!("n{i}\n"));
    }
    assert!(
        eventually(Duration::from_secs(60), || placed(&server.join("new"))
            == FILES),
        "{what}: A's files reached the server"
    );
    // Each placement through its directory's handle waits: ~30 per second.
    let mut slow_b = Client::options(dev.server.port, &b)
        .env("CLOUD_TEST_HANDLE_DELAY_MS", "30")
        .start();
    assert!(
        eventually(Duration::from_secs(60), || placed(&b.join("new"))
            >= kill_after),
        "{what}: B placed {kill_after} of new/"
    );
    slow_b.kill9();
    let mut names: Vec<String> = fs::read_dir(b.join("new"))
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let edited = edit.and_then(|n| names.get(n % names.len().max(1)).cloned());
    if let Some(name) = &edited {
        common::append(&b.join("new").join(name), MARK);
    }
    let what = format!(
        "{what} (B placed {} of {FILES}, edited {edited:?})",
        names.len()
    );
    assert!(
        a_acts(after, &a, &server),
        "{what}: A's change reached the server"
    );
    let expected = tree(&a);
    let mut again = Client::options(dev.server.port, &b).start();
    let ended = converge_stable(
        &[&a, &b, &server],
        Duration::from_secs(60),
        Duration::from_secs(3),
    )
    .unwrap_or_else(|diff| panic!("{what}: no convergence:\n{diff}"));
    again.stop();
    if let Err(why) = as_a_made_it(&expected, &ended, edited.is_some()) {
        panic!("{what}: {why}");
    }
}

/// Whether `ended` is `expected` but for one file holding B's edit
/// ([`MARK`], `edited`): files without it are as in `expected`, or the
/// conflict copy of an `expected` file kept under another name with its
/// content; every `expected` file is there, or holds the edit; no other
/// directory; the edit in exactly one file.
fn as_a_made_it(expected: &Tree, ended: &Tree, edited: bool) -> Result<(), String> {
    let marked = |c: &Option<Vec<u8>>| {
        c.as_ref()
            .is_some_and(|c| String::from_utf8_lossy(c).contains(MARK))
    };
    let with_edit: Vec<&String> = ended
        .iter()
        .filter(|(_, c)| marked(c))
        .map(|(p, _)| p)
        .collect();
    if with_edit.len() != usize::from(edited) {
        return Err(format!("B's edit is in {with_edit:?}"));
    }
    let holds_edit = |dir: &str| with_edit.iter().any(|p| p.starts_with(&format!("{dir}/")));
    for (path, content) in ended {
        match (content, expected.get(path)) {
            (Some(_), _) if marked(content) => {}
            (_, Some(want)) if want == content => {}
            (None, None) if holds_edit(path) => {}
            (Some(c), None)
                if path.contains(" (conflict ")
                    && expected.values().any(|w| w.as_ref() == Some(c)) => {}
            _ => {
                return Err(format!(
                    "{path} is not as A made it: {:?}",
                    content
                        .as_ref()
                        .map(|c| String::from_utf8_lossy(c).into_owned())
                ))
            }
        }
    }
    for (path, want) in expected {
        let there = ended.get(path);
        if there != Some(want) && !there.is_some_and(marked) {
            return Err(format!("{path} is gone or changed"));
        }
    }
    Ok(())
}

#[test]
fn random_kills_mid_pull_undo_nothing_and_lose_no_edit() {
    let seed = seed("KILLED_SEED");
    let rounds: usize = std::env::var("KILLED_ROUNDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2);
    eprintln!("KILLED_SEED={seed} KILLED_ROUNDS={rounds}");
    let mut rng = Rng::new(seed);
    for round in 0..rounds {
        let after = *rng.pick(&[After::RemoveAll, After::Rename, After::EditEvery10th]);
        let kill_after = 1 + rng.index(FILES - 20);
        let edit = rng.chance(0.5).then(|| rng.index(FILES));
        let what =
            format!("KILLED_SEED={seed} round {round}: {after:?}, killed after {kill_after}");
        random_round(after, kill_after, edit, &what);
    }
}
