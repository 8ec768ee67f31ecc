//! An inode number reused is not a move (PROTOCOL.md ). ext4 gives
//! a new file the inode number a deletion just freed, so `rm a; echo new >
//! b` while the client is stopped left `b` on `a`'s number, and the client
//! pushed it as `a` moved and edited: a Rename then an upload. When another
//! device had edited `a` meanwhile, that edit went to `b`'s name (and the
//! upload beside it as a conflict copy) instead of staying `a`. The client
//! now tells the two apart by the birth time it records beside the inode
//! number. Real binaries on loopback; trees compared by content.
//!
//! 1. `rm a.txt; create b.txt` on `a.txt`'s inode while A is stopped, B
//!    edits `a.txt`: B's edit stays `a.txt`, `b.txt` is A's new file, no
//!    Rename is pushed, no conflict copy.
//! 2. A real move while A is stopped still goes as a Rename: `mv m n` (no
//!    upload of `n`) and `mv e f; append f` (a Rename, then the edit).
//! 3. A random mix of moves, moves with an edit and deletions with a new
//!    file, offline on A, with B editing some of the files A deleted or
//!    left: every folder and the server end with the expected contents.

mod common;

use common::{append, converge, eventually, seed, settle, tree, write, Rng, TwoDevices, CONVERGE};
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

fn ino(path: &Path) -> u64 {
    fs::metadata(path).expect("stat").ino()
}

/// True when, in a new directory under `base`, a file made right after
/// another was removed gets its inode number in one of 20 tries (ext4 does;
/// tmpfs and some overlay set-ups never hand a number out again).
fn reuses_inode_numbers(base: &Path) -> bool {
    let Ok(probe) = tempfile::tempdir_in(base) else {
        return false;
    };
    let (x, y) = (probe.path().join("x"), probe.path().join("y"));
    (0..20).any(|_| {
        let made = fs::write(&x, b"x").is_ok();
        let was = fs::metadata(&x).map(|m| m.ino()).ok();
        let reused = made
            && fs::remove_file(&x).is_ok()
            && fs::write(&y, b"y").is_ok()
            && fs::metadata(&y).map(|m| m.ino()).ok() == was;
        let _ = fs::remove_file(&y);
        reused
    })
}

/// Where the tests make their folders: the temporary directory if its file
/// system hands a freed inode number out again, else the build's own
/// temporary directory (on the disk of the checkout), else `None`: the
/// machine has no such file system and the reuse cannot be made here.
fn reusing_base() -> Option<PathBuf> {
    let target_tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let found = [std::env::temp_dir(), target_tmp]
        .into_iter()
        .find(|base| reuses_inode_numbers(base));
    if found.is_none() {
        eprintln!(
            "SKIPPED: neither {} nor {} reuses a freed inode number",
            std::env::temp_dir().display(),
            env!("CARGO_TARGET_TMPDIR")
        );
    }
    found
}

/// Removes `gone` and writes `data` to the new file `new`: true when `new`
/// got `gone`'s inode number. ext4 gives a new file the lowest free number
/// of its directory's block group, so first the holes below `gone`'s number
/// (earlier tests' deleted files) are filled: files made beside `new` are
/// moved to `park` (same file system, out of the folder) until one gets a
/// number above `gone`'s. A process beside the test may still allocate
/// first; a `new` that missed is moved to `park` too and is not in the
/// folder.
fn remove_and_reuse(gone: &Path, new: &Path, data: &str, park: &Path) -> bool {
    let was = ino(gone);
    let filler = new.with_file_name(".filler");
    for n in 0..FILL_LIMIT {
        fs::write(&filler, b"").expect("filler");
        let at = ino(&filler);
        fs::rename(&filler, park.join(format!("filler-{was}-{n}"))).expect("park filler");
        if at > was {
            break;
        }
    }
    fs::remove_file(gone).expect("rm");
    fs::write(new, data).expect("write");
    if ino(new) == was {
        return true;
    }
    let parked = park.join(format!("{was}"));
    fs::rename(new, parked).expect("park");
    false
}

/// At most this many files fill the holes below one number.
const FILL_LIMIT: usize = 100_000;

/// Waits until the server's copy of `path` holds `want`.
fn server_has(d: &TwoDevices, path: &str, want: &str) {
    let at = d.server.user_dir(&d.user).join(path);
    assert!(
        eventually(CONVERGE, || fs::read_to_string(&at).ok().as_deref()
            == Some(want)),
        "{path} did not reach the server as {want:?}"
    );
}

fn no_conflict_copies(root: &Path) {
    let names: Vec<String> = tree(root).keys().cloned().collect();
    assert!(
        !names.iter().any(|n| n.contains("(conflict ")),
        "a conflict copy appeared: {names:?}"
    );
}

/// The contents of every file under `root`, by path (directories left out).
fn files(root: &Path) -> BTreeMap<String, String> {
    tree(root)
        .into_iter()
        .filter_map(|(path, bytes)| Some((path, String::from_utf8(bytes?).expect("utf-8"))))
        .collect()
}

#[test]
fn a_new_file_on_a_deleted_files_inode_is_a_delete_and_a_new_file() {
    const TRIES: usize = 20;
    let Some(base) = reusing_base() else {
        return;
    };
    let mut d = TwoDevices::start_in(&base, |a| {
        for k in 0..TRIES {
            write(a, &format!("a{k}.txt"), format!("a{k} as synced\n"));
        }
    });
    let (a, b) = (d.a.path().to_owned(), d.b.path().to_owned());
    let park = tempfile::tempdir_in(&base).expect("temp dir");
    d.ca.stop();
    // Removed one after another until b.txt gets the number of one.
    let k = (0..TRIES)
        .find(|k| {
            let gone = a.join(format!("a{k}.txt"));
            remove_and_reuse(&gone, &a.join("b.txt"), "b made on A\n", park.path())
        })
        .expect("b.txt got the inode number of a file just removed in one of 20 tries");
    let edited = format!("a{k} edited on B\n");
    write(&b, &format!("a{k}.txt"), &edited);
    server_has(&d, &format!("a{k}.txt"), &edited);
    settle();
    d.ca.restart();
    let server = d.server.user_dir(&d.user);
    converge("A back", &[&a, &b, &server]);
    let mut want: BTreeMap<String, String> = (k + 1..TRIES)
        .map(|j| (format!("a{j}.txt"), format!("a{j} as synced\n")))
        .collect();
    want.insert(format!("a{k}.txt"), edited);
    want.insert("b.txt".to_owned(), "b made on A\n".to_owned());
    assert_eq!(files(&a), want, "B's edit stays a{k}.txt, b.txt is new");
    let log = d.server.conn_log();
    assert!(!log.contains("request=push-rename"), "no Rename: {log}");
}

#[test]
fn a_real_move_while_stopped_is_still_a_rename() {
    let mut d = TwoDevices::start(|a| {
        write(a, "m.txt", "moved as it is\n");
        write(a, "e.txt", "moved, then edited\n");
    });
    let (a, b) = (d.a.path().to_owned(), d.b.path().to_owned());
    d.ca.stop();
    fs::rename(a.join("m.txt"), a.join("n.txt")).expect("mv");
    fs::rename(a.join("e.txt"), a.join("f.txt")).expect("mv");
    append(&a.join("f.txt"), "more\n");
    settle();
    d.ca.restart();
    let server = d.server.user_dir(&d.user);
    converge("A back", &[&a, &b, &server]);
    let want: BTreeMap<String, String> = [
        ("f.txt", "moved, then edited\nmore\n"),
        ("n.txt", "moved as it is\n"),
    ]
    .into_iter()
    .map(|(p, c)| (p.to_owned(), c.to_owned()))
    .collect();
    assert_eq!(files(&b), want);
    let log = d.server.conn_log();
    for rename in ["m.txt -> n.txt", "e.txt -> f.txt"] {
        assert!(
            log.lines()
                .any(|l| l.contains("request=push-rename outcome=ok") && l.contains(rename)),
            "{rename} went as a Rename: {log}"
        );
    }
    assert!(
        !log.lines()
            .any(|l| l.contains("request=push-file") && l.contains("detail=\"n.txt")),
        "n.txt's bytes were not sent again: {log}"
    );
}

/// What A does to one file while stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Leave,
    Move,
    MoveEdit,
    DeleteCreate,
}

#[test]
fn a_random_mix_of_moves_and_deletions_with_new_files_ends_by_content() {
    let seed = seed("INODE_REUSE_SEED");
    eprintln!("INODE_REUSE_SEED={seed}");
    let mut rng = Rng::new(seed);
    const N: usize = 12;
    let original = |i: usize| format!("f{i} as synced {seed}\n");
    // Without a file system that reuses numbers this is moves and plain
    // deletions with new files, which must sync as well.
    let base = reusing_base().unwrap_or_else(std::env::temp_dir);
    let mut d = TwoDevices::start_in(&base, |a| {
        for i in 0..N {
            write(a, &format!("f{i}.txt"), original(i));
        }
    });
    let (a, b) = (d.a.path().to_owned(), d.b.path().to_owned());
    let park = tempfile::tempdir_in(&base).expect("temp dir");
    let steps: Vec<Step> = (0..N)
        .map(|i| match rng.below(4) {
            // At least one deletion with a new file.
            _ if i == 0 => Step::DeleteCreate,
            0 => Step::Leave,
            1 => Step::Move,
            2 => Step::MoveEdit,
            _ => Step::DeleteCreate,
        })
        .collect();
    eprintln!("steps {steps:?}");
    d.ca.stop();
    let mut want = BTreeMap::new();
    let mut reused = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        let (from, to) = (a.join(format!("f{i}.txt")), a.join(format!("g{i}.txt")));
        let (f, g) = (format!("f{i}.txt"), format!("g{i}.txt"));
        match step {
            Step::Leave => {
                want.insert(f, original(i));
            }
            Step::Move => {
                fs::rename(&from, &to).expect("mv");
                want.insert(g, original(i));
            }
            Step::MoveEdit => {
                fs::rename(&from, &to).expect("mv");
                append(&to, "edited after the move\n");
                want.insert(g, format!("{}edited after the move\n", original(i)));
            }
            Step::DeleteCreate => {
                let new = format!("g{i} made on A {seed}\n");
                if remove_and_reuse(&from, &to, &new, park.path()) {
                    reused.push(i);
                } else {
                    fs::write(&to, &new).expect("write");
                }
                want.insert(g, new);
            }
        }
    }
    // B edits every deleted file whose number a new file took, and at
    // random some of the others it deleted or left.
    let b_edits: Vec<usize> = (0..N)
        .filter(|&i| {
            let editable = matches!(steps[i], Step::Leave | Step::DeleteCreate);
            editable && (reused.contains(&i) || rng.below(2) == 0)
        })
        .collect();
    eprintln!("reused {reused:?}, B edits {b_edits:?}");
    for &i in &b_edits {
        let edit = format!("f{i} edited on B {seed}\n");
        write(&b, &format!("f{i}.txt"), &edit);
        server_has(&d, &format!("f{i}.txt"), &edit);
        // A deleted file another device edited comes back with the edit
        // (a Delete never wins over a change, §7.3).
        want.insert(format!("f{i}.txt"), edit);
    }
    settle();
    d.ca.restart();
    let server = d.server.user_dir(&d.user);
    converge("A back", &[&a, &b, &server]);
    no_conflict_copies(&a);
    assert_eq!(files(&a), want, "seed {seed}, steps {steps:?}");
}
