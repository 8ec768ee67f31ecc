//! An edit or a deletion made on a device that has not yet seen a rename
//! made elsewhere follows the rename (issue 13, outside tester's finding 7;
//! PROTOCOL.md ): the renamed file gets the edit and the old name
//! does not come back; a file deleted inside a directory renamed elsewhere
//! is deleted at its new place. Real binaries on loopback.
//!
//! 1. Device B stopped: B appends to `g0.txt`, edits `W0/f1` and deletes
//!    `V0/del`; A renames `g0.txt` to `g1.txt` and the directories `W0` to
//!    `W1` and `V0` to `V1`; B starts again.
//! 2. The same with a rename chain on A (`R0` -> `R1` -> ... -> `R4`, each
//!    pushed before the next) while B is stopped with edits in `R0`.
//!
//! Each ends with all folders and the server's copy identical, the edits at
//! the new names, no old name, no conflict copy.

mod common;

use common::{append, converge, eventually, settle, tree, write, TwoDevices, CONVERGE};
use std::fs;
use std::path::Path;

fn read(root: &Path, rel: &str) -> Option<String> {
    fs::read_to_string(root.join(rel)).ok()
}

fn no_conflict_copies(what: &str, root: &Path) {
    let names: Vec<String> = tree(root).keys().cloned().collect();
    assert!(
        !names.iter().any(|n| n.contains("(conflict ")),
        "{what}: a conflict copy appeared: {names:?}"
    );
}

/// Waits until the server's copy shows `present` and not `absent`.
fn server_shows(d: &TwoDevices, present: &[&str], absent: &[&str]) {
    let server = d.server.user_dir(&d.user);
    let seen = eventually(CONVERGE, || {
        present.iter().all(|p| server.join(p).exists())
            && absent.iter().all(|p| !server.join(p).exists())
    });
    assert!(
        seen,
        "A's renames reached the server: {:?}",
        tree(&server).keys()
    );
}

#[test]
fn an_edit_and_a_deletion_made_while_stopped_follow_a_rename_elsewhere() {
    let mut d = TwoDevices::start(|a| {
        write(a, "g0.txt", "init\n");
        write(a, "W0/f1", "init\n");
        write(a, "W0/f2", "two\n");
        write(a, "V0/keep", "keep\n");
        write(a, "V0/del", "del\n");
    });
    let (a, b) = (d.a.path().to_owned(), d.b.path().to_owned());
    d.cb.stop();
    append(&b.join("g0.txt"), "B offline edit\n");
    append(&b.join("W0/f1"), "B offline edit\n");
    fs::remove_file(b.join("V0/del")).expect("rm");
    fs::rename(a.join("g0.txt"), a.join("g1.txt")).expect("mv");
    fs::rename(a.join("W0"), a.join("W1")).expect("mv dir");
    fs::rename(a.join("V0"), a.join("V1")).expect("mv dir");
    server_shows(&d, &["g1.txt", "W1/f1", "V1/del"], &["g0.txt", "W0", "V0"]);
    settle();
    d.cb.restart();
    let server = d.server.user_dir(&d.user);
    converge("B back", &[&a, &b, &server]);
    let edited = "init\nB offline edit\n";
    assert_eq!(
        read(&a, "g1.txt").as_deref(),
        Some(edited),
        "the edit follows g0.txt's rename"
    );
    assert_eq!(read(&a, "W1/f1").as_deref(), Some(edited), "and W0's");
    assert_eq!(read(&a, "W1/f2").as_deref(), Some("two\n"));
    assert_eq!(read(&a, "V1/keep").as_deref(), Some("keep\n"));
    for gone in ["g0.txt", "W0", "V0", "V1/del"] {
        assert!(
            !a.join(gone).exists(),
            "{gone} is there: {:?}",
            tree(&a).keys()
        );
    }
    no_conflict_copies("B back", &a);
}

#[test]
fn edits_made_while_stopped_follow_a_rename_chain() {
    let mut d = TwoDevices::start(|a| {
        for f in ["f1", "f2", "f3"] {
            write(a, &format!("R0/{f}"), format!("{f}\n"));
        }
    });
    let (a, b) = (d.a.path().to_owned(), d.b.path().to_owned());
    d.cb.stop();
    for f in ["f1", "f2"] {
        append(&b.join("R0").join(f), "B offline edit\n");
    }
    for i in 0..4 {
        let (from, to) = (format!("R{i}"), format!("R{}", i + 1));
        fs::rename(a.join(&from), a.join(&to)).expect("mv dir");
        server_shows(&d, &[&format!("{to}/f1")], &[&from]);
    }
    settle();
    d.cb.restart();
    let server = d.server.user_dir(&d.user);
    converge("B back", &[&a, &b, &server]);
    for f in ["f1", "f2"] {
        assert_eq!(
            read(&a, &format!("R4/{f}")),
            Some(format!("{f}\nB offline edit\n")),
            "{f}'s edit follows the chain: {:?}",
            tree(&a).keys()
        );
    }
    assert_eq!(read(&a, "R4/f3").as_deref(), Some("f3\n"));
    assert!(
        !a.join("R0").exists(),
        "R0 came back: {:?}",
        tree(&a).keys()
    );
    no_conflict_copies("B back", &a);
}
