//! A server restored from a backup while a device is offline, that device
//! coming back late (outside tester breaker18 F5 and F4; PROTOCOL.md
//! Real binaries on loopback; the data directory is
//! copied and put back with the server stopped, as README's restore
//! procedure says; trees are compared by content.
//!
//! F5: what the device that stayed online did after the restore (deleting,
//! renaming, editing files it had pushed again) must stay when the late
//! device comes back: before, the late device pushed its older copies
//! again (deleted files and renamed-away directories back on every device)
//! and made a conflict copy of an edit that nobody made concurrently.
//! F4: a device that joined after the backup is unknown to the restored
//! server; it must say so plainly, with the command that joins it again.
//!
//! `CLOUD_TEST_CLIENT_BIN` / `CLOUD_TEST_SERVER_BIN` run it against other
//! builds.

mod common;

use common::restore_rig::{conflict_copies, RestoreRig as Rig, CONVERGE};
use common::tree::tree_diff;
use common::{eventually, status_text, Client, Tree, Verbosity};
use std::fs;
use std::time::Duration;

fn text<'t>(t: &'t Tree, path: &str) -> Option<&'t [u8]> {
    t.get(path).and_then(|c| c.as_deref())
}

/// breaker18 F5 (repro/restore_late.sh): after the backup A makes g1 and
/// pad1..4, edits f2, deletes f1; B gets all that and stops. The server is
/// restored; A pushes it all again. Then A deletes g1, pad1 and f3 (f3 was
/// in the backup), edits f2 and pad2, and B, offline, edits pad2 and pad3.
/// B comes back: A's deletions and its edit of f2 stay (no conflict copy
/// of f2: B never changed it); pad2, changed on both, keeps both copies;
/// pad3, edited by B and untouched by A, gets B's edit. Before: g1 and
/// pad1 came back on every device and f2 got a conflict copy holding A's
/// own superseded edit.
#[test]
fn a_late_device_does_not_undo_what_was_done_after_the_restore() {
    let files: Vec<(String, String)> = (1..=6)
        .map(|i| (format!("f{i}.txt"), format!("orig {i}\n")))
        .collect();
    let files: Vec<(&str, &str)> = files.iter().map(|(p, t)| (&p[..], &t[..])).collect();
    let mut rig = Rig::start(&files, Some("0.5"));
    rig.backup();
    let (a, b) = (rig.a.folder.clone(), rig.b.folder.clone());
    fs::remove_file(a.join("f1.txt")).expect("rm f1");
    fs::write(a.join("f2.txt"), "A edit1 after backup\n").expect("f2");
    fs::write(a.join("g1.txt"), "A new\n").expect("g1");
    for i in 1..=4 {
        fs::write(a.join(format!("pad{i}.txt")), format!("A pad {i}\n")).expect("pad");
    }
    rig.converged("the changes after the backup", &[&a, &b]);
    rig.b.stop();
    rig.restore();
    rig.a_reconciled();
    fs::remove_file(a.join("g1.txt")).expect("rm g1");
    fs::remove_file(a.join("pad1.txt")).expect("rm pad1");
    fs::remove_file(a.join("f3.txt")).expect("rm f3");
    fs::write(a.join("f2.txt"), "A edit after restore\n").expect("f2");
    fs::write(a.join("f4.txt"), "A edit2 after restore\n").expect("f4");
    fs::write(a.join("pad2.txt"), "A pad 2 after restore\n").expect("pad2");
    let a_now = rig.converged("A's changes after the restore", &[&a]);
    fs::write(b.join("pad2.txt"), "B pad 2 offline\n").expect("pad2");
    fs::write(b.join("pad3.txt"), "B pad 3 offline\n").expect("pad3");
    rig.b.spawn();
    let after = rig.converged("B back", &[&a, &b]);
    for gone in ["g1.txt", "pad1.txt", "f3.txt", "f1.txt"] {
        assert!(
            !after.contains_key(gone),
            "{gone} deleted after the restore is back:\n{}\nB's log: {}",
            tree_diff(&a_now, &after),
            rig.b.log_tail(6_000)
        );
    }
    assert_eq!(text(&after, "f2.txt"), Some(&b"A edit after restore\n"[..]));
    assert_eq!(
        text(&after, "f4.txt"),
        Some(&b"A edit2 after restore\n"[..])
    );
    assert_eq!(text(&after, "pad3.txt"), Some(&b"B pad 3 offline\n"[..]));
    assert_eq!(text(&after, "pad4.txt"), Some(&b"A pad 4\n"[..]));
    // Both changed pad2: both copies are kept, and no other conflict copy.
    let copies = conflict_copies(&after);
    assert_eq!(
        copies.len(),
        1,
        "one conflict copy (pad2):\n{}",
        tree_diff(&a_now, &after)
    );
    assert!(copies[0].starts_with("pad2 (conflict "), "{copies:?}");
    let mut pad2: Vec<&[u8]> = vec![
        text(&after, "pad2.txt").expect("pad2"),
        text(&after, copies[0]).expect("copy"),
    ];
    pad2.sort();
    assert_eq!(
        pad2,
        vec![&b"A pad 2 after restore\n"[..], &b"B pad 2 offline\n"[..]]
    );
    assert!(
        eventually(CONVERGE, || status_text(&b, false).0 == 0),
        "B in sync: {}",
        status_text(&b, false).1
    );
}

/// breaker18 F5, renames (repro/restore_rename.sh late): after the backup
/// A renames d1 → d2 (editing d2/a.txt), r1 → r2 and big1 → big2; B gets
/// that and stops. The server is restored; A pushes it all again, then
/// renames d2 → d3 and deletes r2. B comes back: its d2 and r2 go (the
/// rename and the deletion are followed), nothing is duplicated. Before:
/// d2 came back beside d3, and r2 came back.
#[test]
fn a_late_device_follows_renames_made_after_the_restore() {
    let mut rig = Rig::start(
        &[
            ("d1/a.txt", "a\n"),
            ("d1/sub/b.txt", "b\n"),
            ("r1.txt", "r\n"),
            ("keep.txt", "keep\n"),
        ],
        Some("0.5"),
    );
    let big: Vec<u8> = (0..100 * 1024u32).map(|i| (i * 7 % 251) as u8).collect();
    fs::write(rig.a.folder.join("big1.bin"), &big).expect("big1");
    let (a, b) = (rig.a.folder.clone(), rig.b.folder.clone());
    rig.converged("big1", &[&a, &b]);
    rig.backup();
    fs::rename(a.join("d1"), a.join("d2")).expect("mv d1 d2");
    fs::rename(a.join("r1.txt"), a.join("r2.txt")).expect("mv r1 r2");
    fs::rename(a.join("big1.bin"), a.join("big2.bin")).expect("mv big1 big2");
    fs::write(a.join("d2/a.txt"), "a edited\n").expect("a");
    rig.converged("the renames after the backup", &[&a, &b]);
    rig.b.stop();
    rig.restore();
    rig.a_reconciled();
    fs::rename(a.join("d2"), a.join("d3")).expect("mv d2 d3");
    fs::remove_file(a.join("r2.txt")).expect("rm r2");
    let a_now = rig.converged("A's changes after the restore", &[&a]);
    rig.b.spawn();
    let after = rig.converged("B back", &[&a, &b]);
    assert_eq!(
        after,
        a_now,
        "B undid A's changes:\n{}\nB's log: {}",
        tree_diff(&a_now, &after),
        rig.b.log_tail(6_000)
    );
    let files: Vec<&String> = after
        .iter()
        .filter(|(_, c)| c.is_some())
        .map(|(p, _)| p)
        .collect();
    assert_eq!(
        files,
        vec!["big2.bin", "d3/a.txt", "d3/sub/b.txt", "keep.txt"],
        "{after:?}"
    );
}

/// breaker18 F4 (repro/restore.sh): device C joins after the backup; the
/// restored server does not know it. C keeps running and retrying (the
/// newer data may come back), logs it once, and its status says what
/// happened and the command that joins it again; following it syncs C.
/// Before: C exited with a bare "unknown client".
#[test]
fn a_device_that_joined_after_the_backup_is_told_how_to_join_again() {
    let mut rig = Rig::start(&[("f1.txt", "one\n")], Some("0.5"));
    rig.backup();
    let c_dir = rig.path("C");
    fs::create_dir_all(&c_dir).expect("C");
    let c_log = rig.path("C.log");
    let port = rig.srv.port;
    // Normal verbosity: the repeated refusals are debug lines.
    let c_client = |user: Option<&str>| {
        Client::options(port, &c_dir)
            .plaintext()
            .rate("0.5")
            .user(user)
            .verbosity(Verbosity::Normal)
            .log(&c_log)
    };
    let mut c = c_client(Some(&rig.user)).start();
    rig.converged("C joined", &[&rig.a.folder, &c_dir]);
    rig.restore();
    let told = |t: &str| {
        t.contains("does not know this device")
            && t.contains("restored from a backup")
            && t.contains(&format!("{}/.cloudservice", c_dir.display()))
            && t.contains(&format!(
                "cloud-client 127.0.0.1 {} {} 0.5 USER_ID --insecure-plaintext",
                rig.srv.port,
                c_dir.display()
            ))
    };
    assert!(
        eventually(CONVERGE, || {
            let (code, t) = status_text(&c_dir, false);
            code == 1 && told(&t)
        }),
        "C's status: {}\nC's log: {}",
        status_text(&c_dir, false).1,
        fs::read_to_string(&c_log).unwrap_or_default()
    );
    // Backoff 0.5, 1, 2, 4 s: several refusals, one line, still running.
    std::thread::sleep(Duration::from_secs(6));
    assert!(c.is_running(), "C keeps running");
    let log = fs::read_to_string(&c_log).unwrap_or_default();
    let said: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("does not know this device"))
        .collect();
    assert_eq!(said.len(), 1, "said once:\n{log}");
    assert!(told(said[0]), "{}", said[0]);
    assert!(!log.contains(&rig.user), "the user ID is never logged");
    // What the message says to do.
    c.stop();
    fs::remove_dir_all(c_dir.join(".cloudservice")).expect("rm .cloudservice");
    let mut c = c_client(Some(&rig.user)).start();
    fs::write(rig.a.folder.join("f2.txt"), "after\n").expect("f2");
    let t = rig.converged("C joined again", &[&rig.a.folder, &c_dir]);
    assert_eq!(text(&t, "f2.txt"), Some(&b"after\n"[..]));
    c.stop();
}
