//! A server whose data directory is restored from an older backup (the
//! outside tester breaker15's F1): the devices that saw the lost changes
//! find out at their next pull (PROTOCOL.md §5.7) and put back what they
//! hold: edits, new files and directories, and their deletions; what other
//! devices did after the restore stays. Real binaries on loopback; the data
//! directory is copied and swapped while the server is stopped; trees are
//! compared by content on A, B, the server and a device C that joins after.

mod common;

use common::restore_rig::{conflict_copies, RestoreRig as Rig};
use common::tree::tree_diff;
use common::{tree, Client, Rng};
use std::fs;
use std::path::Path;
use std::time::Duration;

/// The breaker's script: backup with f1 f2 f3; then A edits f1, makes n1 and
/// dnew/x, deletes f2, B edits f3; the backup is restored. Before the fix
/// A and B downloaded f2 again and said "in sync" while the server held
/// the old f1 and f3 and lacked n1 and dnew/x, and a new device got that.
#[test]
///
fn a_restored_server_gets_back_what_the_devices_hold() {
    let mut rig = Rig::start(
        &[("f1", "old 1\n"), ("f2", "old 2\n"), ("f3", "old 3\n")],
        None,
    );
    rig.backup();
    let (a, b) = (rig.a.folder.clone(), rig.b.folder.clone());
    fs::write(a.join("f1"), "new 1 from A\n").expect("f1");
    fs::write(a.join("n1"), "new file A\n").expect("n1");
    fs::remove_file(a.join("f2")).expect("rm f2");
    fs::create_dir(a.join("dnew")).expect("dnew");
    fs::write(a.join("dnew/x"), "x\n").expect("x");
    rig.converged_ab("A's changes");
    fs::write(b.join("f3"), "new 3 from B\n").expect("f3");
    let expected = rig.converged_ab("B's change");
    assert!(!expected.contains_key("f2"));
    rig.restore();
    assert_ne!(
        tree(&rig.server_dir()),
        expected,
        "the restore took the server back"
    );
    let after = rig.converged_ab("after the restore");
    assert_eq!(
        after,
        expected,
        "after the restore:\n{}",
        tree_diff(&expected, &after)
    );
    rig.both_in_sync();
    assert!(
        rig.a
            .wait_log("the server lost changes", Duration::from_secs(5)),
        "A's log says nothing of the lost changes:\n{}",
        rig.a.log_tail(4_000)
    );
    let c = rig.new_device("C");
    assert_eq!(c, expected, "C:\n{}", tree_diff(&expected, &c));
    // A restart changes nothing.
    rig.a.stop();
    rig.a.spawn();
    let again = rig.converged_ab("after A's restart");
    assert_eq!(again, expected);
}

/// After the restore another device pushes first, so the server's head
/// passes A's and B's cursors with other changes under the same numbers:
/// the tag of the change at their cursor tells them (a plain "cursor >
/// head" would not). What C did stays; B's edit of f3, changed by C too,
/// is kept as a conflict copy (by each device that held it); what A
/// deleted stays deleted.
#[test]
///
fn a_head_that_passed_the_cursor_again_is_found_out() {
    let mut rig = Rig::start(
        &[("f1", "old 1\n"), ("f2", "old 2\n"), ("f3", "old 3\n")],
        None,
    );
    rig.backup();
    let (a, b) = (rig.a.folder.clone(), rig.b.folder.clone());
    fs::write(a.join("f1"), "new 1 from A\n").expect("f1");
    fs::write(a.join("n1"), "new file A\n").expect("n1");
    fs::remove_file(a.join("f2")).expect("rm f2");
    rig.converged_ab("A's changes");
    fs::write(b.join("f3"), "new 3 from B\n").expect("f3");
    let lost = rig.converged_ab("B's change");
    rig.a.stop();
    rig.b.stop();
    rig.restore();
    // C joins the restored server and makes more changes than were lost.
    let c_dir = rig.path("C");
    fs::create_dir_all(&c_dir).expect("C");
    let out = Client::options(rig.srv.port, &c_dir)
        .plaintext()
        .rate("0.2")
        .user(Some(&rig.user))
        .run_once();
    assert!(out.status.success());
    fs::write(c_dir.join("f3"), "C's f3\n").expect("f3");
    for i in 0..8 {
        fs::write(c_dir.join(format!("c{i}")), format!("c {i}\n")).expect("c");
    }
    let out = Client::options(rig.srv.port, &c_dir)
        .plaintext()
        .rate("0.2")
        .user(Some(&rig.user))
        .run_once();
    assert!(out.status.success());
    let c_made = tree(&c_dir);
    assert_eq!(tree(&rig.server_dir()), c_made);
    rig.a.spawn();
    rig.b.spawn();
    let after = rig.converged_ab("after the restore");
    rig.both_in_sync();
    // Everything A and B held, but f3, which C changed too.
    for (path, content) in &lost {
        if path == "f3" {
            continue;
        }
        assert_eq!(
            after.get(path),
            Some(content),
            "{path} lost\n{}",
            tree_diff(&lost, &after)
        );
    }
    assert!(!after.contains_key("f2"), "A's deletion undone");
    for i in 0..8 {
        let name = format!("c{i}");
        assert_eq!(after.get(&name), c_made.get(&name), "C's {name}");
    }
    // f3: C's at the path; B's lost edit kept as a conflict copy by each
    // device that held it (A and B both saw it: one copy each at most).
    assert_eq!(after.get("f3"), c_made.get("f3"));
    let copies = conflict_copies(&after);
    assert!(
        (1..=2).contains(&copies.len()),
        "B's edit of f3 is kept: {:?}",
        after.keys()
    );
    for copy in copies {
        assert_eq!(
            after.get(copy),
            Some(&Some(b"new 3 from B\n".to_vec())),
            "{copy}"
        );
    }
    let d = rig.new_device("D");
    assert_eq!(d, after, "D:\n{}", tree_diff(&after, &d));
}

/// Random edits, creations, deletions and directories before and after the
/// backup point, by A and by B: after the restore the server holds what
/// they held (`RESTORE_SEED` repeats a run).
#[test]
///
fn random_changes_around_the_backup_come_back() {
    let seed = common::seed("RESTORE_SEED");
    eprintln!("RESTORE_SEED={seed}");
    let mut rng = Rng::new(seed);
    let start: Vec<(String, String)> = (0..6)
        .map(|i| (format!("d{}/f{i}", i % 2), format!("start {i}\n")))
        .collect();
    let start_refs: Vec<(&str, &str)> = start
        .iter()
        .map(|(p, t)| (p.as_str(), t.as_str()))
        .collect();
    let mut rig = Rig::start(&start_refs, None);
    let (a, b) = (rig.a.folder.clone(), rig.b.folder.clone());
    random_round(&mut rng, &a, "pre");
    rig.converged_ab("before the backup");
    rig.backup();
    random_round(&mut rng, &a, "A");
    rig.converged_ab("A's changes");
    random_round(&mut rng, &b, "B");
    let expected = rig.converged_ab("B's changes");
    rig.restore();
    let after = rig.converged_ab(&format!("after the restore (RESTORE_SEED={seed})"));
    assert_eq!(
        after,
        expected,
        "RESTORE_SEED={seed}:\n{}",
        tree_diff(&expected, &after)
    );
    rig.both_in_sync();
    let c = rig.new_device("C");
    assert_eq!(
        c,
        expected,
        "C, RESTORE_SEED={seed}:\n{}",
        tree_diff(&expected, &c)
    );
}

/// A few random changes in `folder`: edit, delete, new file, new directory
/// with a file, removal of a directory.
fn random_round(rng: &mut Rng, folder: &Path, tag: &str) {
    let t = tree(folder);
    let files: Vec<&String> = t
        .iter()
        .filter(|(_, c)| c.is_some())
        .map(|(p, _)| p)
        .collect();
    let dirs: Vec<&String> = t
        .iter()
        .filter(|(_, c)| c.is_none())
        .map(|(p, _)| p)
        .collect();
    for step in 0..4 {
        match rng.below(5) {
            0 | 1 if !files.is_empty() => {
                let f = files[rng.below(files.len() as u64) as usize];
                if folder.join(f).is_file() {
                    fs::write(folder.join(f), format!("{tag} edit {step}\n")).expect("edit");
                }
            }
            2 if !files.is_empty() => {
                let f = files[rng.below(files.len() as u64) as usize];
                let _ = fs::remove_file(folder.join(f));
            }
            3 => {
                let d = format!("{tag}dir{step}");
                fs::create_dir_all(folder.join(&d)).expect("dir");
                fs::write(folder.join(&d).join("in"), format!("{tag} {step}\n")).expect("in");
            }
            4 if !dirs.is_empty() && rng.below(3) == 0 => {
                let d = dirs[rng.below(dirs.len() as u64) as usize];
                let _ = fs::remove_dir_all(folder.join(d));
            }
            _ => {
                fs::write(
                    folder.join(format!("{tag}new{step}")),
                    format!("{tag} new {step}\n"),
                )
                .expect("new");
            }
        }
    }
}
