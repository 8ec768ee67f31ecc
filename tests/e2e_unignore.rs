//! End-to-end: un-ignoring a path (issue 13, outside tester L1). Ignoring a
//! path must not forget its synced base: what was done to it while it was
//! ignored (edit, delete, chmod, rename away) is an ordinary local change
//! once the rule is gone — pushed on that base, no conflict copy — whether
//! the rule is removed while the client runs or while it is stopped, here or
//! on the other device, by a file pattern or a directory pattern.

mod common;

use common::cli;

use common::{converge_stable, eventually, new_user, tree, write, Client, Server, Tree, CONVERGE};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

fn wait_for(what: &str, check: impl FnMut() -> bool) {
    assert!(eventually(CONVERGE, check), "timed out waiting for: {what}");
}

fn read(root: &Path, path: &str) -> Option<String> {
    fs::read_to_string(root.join(path)).ok()
}

fn files(t: &Tree) -> Tree {
    t.iter()
        .filter(|(_, v)| v.is_some())
        .map(|(p, v)| (p.clone(), v.clone()))
        .collect()
}

fn exec(root: &Path, path: &str) -> bool {
    fs::metadata(root.join(path)).is_ok_and(|m| m.permissions().mode() & 0o100 != 0)
}

/// What is done to the ignored path on A while the rule hides it.
#[derive(Debug, Clone, Copy)]
enum Action {
    Edit,
    Delete,
    Chmod,
    RenameAway,
}

/// Where and when the rule goes away.
#[derive(Debug, Clone, Copy)]
enum Removal {
    /// On A, both clients running.
    HereRunning,
    /// On A's disk while A is stopped (noticed at A's start).
    HereStopped,
    /// On B while A is stopped (A pulls it at its start).
    ElsewhereWhileStopped,
}

/// Two devices hold `target` synced; `rule` hides it; A does `action`; the
/// rule is removed as `removal` says. Both devices and the server must end
/// with the same files, no conflict copy, and A's change applied.
fn scenario(rule: &str, target: &str, action: Action, removal: Removal) {
    let what = format!("{rule:?} {target} {action:?} {removal:?}");
    let server = Server::start();
    let a = tempfile::tempdir().expect("tempdir");
    let b = tempfile::tempdir().expect("tempdir");
    write(a.path(), target, "base");
    write(a.path(), "other.txt", "other");
    std::thread::sleep(Duration::from_millis(350));
    let user = new_user(server.port, a.path());
    let mut ca = Client::start(server.port, a.path(), None);
    let _cb = Client::start(server.port, b.path(), Some(&user));
    wait_for("B has the target", || {
        read(b.path(), target).as_deref() == Some("base")
    });

    write(a.path(), ".cloudignore", rule);
    wait_for("B has the rule", || {
        read(b.path(), ".cloudignore").as_deref() == Some(rule)
    });
    // B applies the rule (its next look); A already did.
    std::thread::sleep(Duration::from_millis(1200));

    let renamed = format!("{target}.moved-out");
    match action {
        Action::Edit => write(a.path(), target, "edited while ignored"),
        Action::Delete => fs::remove_file(a.path().join(target)).expect("rm"),
        Action::Chmod => {
            fs::set_permissions(a.path().join(target), fs::Permissions::from_mode(0o755))
                .expect("chmod")
        }
        Action::RenameAway => {
            fs::rename(a.path().join(target), a.path().join(&renamed)).expect("rename")
        }
    }
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(
        read(b.path(), target).as_deref(),
        Some("base"),
        "{what}: B untouched while ignored"
    );

    match removal {
        Removal::HereRunning => write(a.path(), ".cloudignore", ""),
        Removal::HereStopped => {
            ca.stop();
            write(a.path(), ".cloudignore", "");
            ca.spawn();
        }
        Removal::ElsewhereWhileStopped => {
            ca.stop();
            write(b.path(), ".cloudignore", "");
            wait_for("the server has the emptied rules", || {
                read(&server.user_dir(&user), ".cloudignore").as_deref() == Some("")
            });
            ca.spawn();
        }
    }
    let end = converge_stable(&[a.path(), b.path()], CONVERGE, Duration::from_millis(2500))
        .unwrap_or_else(|diff| panic!("{what}: no convergence\n{diff}"));
    let names: Vec<&String> = end.keys().collect();
    assert!(
        !names.iter().any(|p| p.contains("conflict")),
        "{what}: no conflict copy: {names:?}"
    );
    match action {
        Action::Edit => assert_eq!(
            read(b.path(), target).as_deref(),
            Some("edited while ignored"),
            "{what}"
        ),
        Action::Delete => assert_eq!(read(b.path(), target), None, "{what}: deleted"),
        Action::Chmod => {
            assert_eq!(read(b.path(), target).as_deref(), Some("base"), "{what}");
            wait_for("B has the bit", || exec(b.path(), target));
        }
        Action::RenameAway => {
            assert_eq!(read(b.path(), target), None, "{what}: moved away");
            assert_eq!(read(b.path(), &renamed).as_deref(), Some("base"), "{what}");
        }
    }
    wait_for("the server holds the same files", || {
        files(&tree(&server.user_dir(&user))) == files(&end)
    });
}

#[test]
fn an_edit_made_while_ignored_is_pushed_without_a_conflict_once_unignored() {
    scenario("f.txt\n", "f.txt", Action::Edit, Removal::HereRunning);
    scenario("f.txt\n", "f.txt", Action::Edit, Removal::HereStopped);
    scenario(
        "f.txt\n",
        "f.txt",
        Action::Edit,
        Removal::ElsewhereWhileStopped,
    );
}

#[test]
fn an_edit_below_an_ignored_directory_is_pushed_without_a_conflict_once_unignored() {
    scenario("d/\n", "d/f.txt", Action::Edit, Removal::HereRunning);
    scenario("d/\n", "d/f.txt", Action::Edit, Removal::HereStopped);
}

#[test]
fn a_delete_made_while_ignored_is_pushed_once_unignored() {
    scenario("f.txt\n", "f.txt", Action::Delete, Removal::HereRunning);
    scenario(
        "d/\n",
        "d/f.txt",
        Action::Delete,
        Removal::ElsewhereWhileStopped,
    );
}

#[test]
fn a_chmod_made_while_ignored_is_pushed_once_unignored() {
    scenario("f.txt\n", "f.txt", Action::Chmod, Removal::HereRunning);
    scenario("f.txt\n", "f.txt", Action::Chmod, Removal::HereStopped);
}

#[test]
fn a_rename_away_made_while_ignored_is_pushed_once_unignored() {
    scenario("f.txt\n", "f.txt", Action::RenameAway, Removal::HereRunning);
    scenario(
        "f.txt\n",
        "f.txt",
        Action::RenameAway,
        Removal::ElsewhereWhileStopped,
    );
}

/// The server's copy also changed since the base (B restores an older
/// version while A's edit is ignored): the normal conflict rule, both
/// contents kept.
#[test]
fn an_edit_while_ignored_against_a_server_change_is_a_conflict_keeping_both() {
    let server = Server::start();
    let a = tempfile::tempdir().expect("tempdir");
    let b = tempfile::tempdir().expect("tempdir");
    write(a.path(), "f.txt", "first");
    std::thread::sleep(Duration::from_millis(350));
    let user = new_user(server.port, a.path());
    let mut ca = Client::start(server.port, a.path(), None);
    let _cb = Client::start(server.port, b.path(), Some(&user));
    wait_for("B has f", || {
        read(b.path(), "f.txt").as_deref() == Some("first")
    });
    write(a.path(), "f.txt", "base");
    wait_for("B has the base", || {
        read(b.path(), "f.txt").as_deref() == Some("base")
    });
    write(a.path(), ".cloudignore", "f.txt\n");
    wait_for("B has the rule", || {
        read(b.path(), ".cloudignore").is_some()
    });
    std::thread::sleep(Duration::from_millis(1200));
    write(a.path(), "f.txt", "A while ignored");
    let folder = b.path().to_string_lossy().into_owned();
    let (code, out, err) = cli(server.port, &["versions", &folder, "f.txt"]);
    assert_eq!(code, 0, "versions: {err}");
    let n = out
        .split_whitespace()
        .next()
        .unwrap_or_else(|| panic!("a version of f.txt: {out:?}"))
        .to_owned();
    let (code, out, err) = cli(server.port, &["restore", &folder, "f.txt", "--version", &n]);
    assert_eq!(code, 0, "restore: {out} {err}");
    wait_for("the server has the restored content", || {
        read(&server.user_dir(&user), "f.txt").as_deref() == Some("first")
    });
    ca.stop();
    write(a.path(), ".cloudignore", "");
    ca.spawn();
    let end = converge_stable(&[a.path(), b.path()], CONVERGE, Duration::from_millis(2500))
        .unwrap_or_else(|diff| panic!("no convergence\n{diff}"));
    let contents: Vec<&[u8]> = end.values().flatten().map(Vec::as_slice).collect();
    for kept in [&b"A while ignored"[..], b"first"] {
        assert!(
            contents.contains(&kept),
            "{:?} kept: {:?}",
            String::from_utf8_lossy(kept),
            end.keys().collect::<Vec<_>>()
        );
    }
}
