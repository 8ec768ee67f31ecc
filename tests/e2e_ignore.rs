//! End-to-end: `.cloudignore` and the built-in rules (issue 13), with the
//! real server and real clients. Ignored paths are never pushed, never
//! created, overwritten or deleted by a pull, on either device; the rules file
//! itself syncs; a rule added or removed while the clients run takes effect
//! without a restart; a path that becomes ignored stays on the server and on
//! the other devices, and a device joining later does not download it.

mod common;

use common::{converge, eventually, new_user, tree, write, Client, Server, Tree, CONVERGE};
use std::fs;
use std::path::Path;
use std::time::Duration;

/// Polls `check` until it holds; fails the test with `what` after [`CONVERGE`].
fn wait_for(what: &str, check: impl FnMut() -> bool) {
    assert!(eventually(CONVERGE, check), "timed out waiting for: {what}");
}

fn files(pairs: &[(&str, &str)]) -> Tree {
    pairs
        .iter()
        .map(|(p, c)| (p.to_string(), Some(c.as_bytes().to_vec())))
        .collect()
}

fn read(root: &Path, path: &str) -> Option<String> {
    fs::read_to_string(root.join(path)).ok()
}

/// Files only (directories left out), for comparisons that do not care
/// whether an emptied directory lingers.
fn file_tree(root: &Path) -> Tree {
    tree(root)
        .into_iter()
        .filter(|(_, v)| v.is_some())
        .collect()
}

#[test]
fn ignored_paths_are_never_pushed_nor_touched_by_a_pull() {
    let server = Server::start();
    let a = tempfile::tempdir().expect("tempdir");
    let b = tempfile::tempdir().expect("tempdir");
    write(a.path(), ".cloudignore", "build/\n*.log\n!keep.tmp\n");
    write(a.path(), "doc.txt", "doc");
    write(a.path(), "build/out.o", "A obj");
    write(a.path(), "run.log", "A log");
    write(a.path(), ".doc.txt.swp", "A swap");
    write(a.path(), "~$doc.docx", "A office lock");
    write(a.path(), "keep.tmp", "kept tmp");
    write(a.path(), "junk.tmp", "A junk");
    std::thread::sleep(Duration::from_millis(350));
    let user = new_user(server.port, a.path());
    let synced = files(&[
        (".cloudignore", "build/\n*.log\n!keep.tmp\n"),
        ("doc.txt", "doc"),
        ("keep.tmp", "kept tmp"),
    ]);
    assert_eq!(tree(&server.user_dir(&user)), synced, "server after upload");

    // B already holds files of its own at ignored paths, some with A's names.
    write(b.path(), "run.log", "B log");
    write(b.path(), "build/local.o", "B obj");
    write(b.path(), "junk.tmp", "B junk");
    std::thread::sleep(Duration::from_millis(350));
    let _cb = Client::start(server.port, b.path(), Some(&user));
    let _ca = Client::start(server.port, a.path(), None);
    wait_for("B has the synced files", || {
        read(b.path(), "keep.tmp").as_deref() == Some("kept tmp")
            && read(b.path(), ".cloudignore").is_some()
    });

    // Live traffic: A changes ignored files and one synced file.
    write(a.path(), "run.log", "A log 2");
    write(a.path(), "build/more.o", "more");
    write(a.path(), "sub/deep/x.log", "deep log");
    write(a.path(), "new.txt", "new");
    wait_for("B has new.txt", || {
        read(b.path(), "new.txt").as_deref() == Some("new")
    });
    std::thread::sleep(Duration::from_millis(1500));
    let mut want = synced.clone();
    want.insert("new.txt".into(), Some(b"new".to_vec()));
    assert_eq!(
        file_tree(&server.user_dir(&user)),
        want,
        "server: only synced files"
    );
    let mut want_b = want.clone();
    for (p, c) in [
        ("run.log", "B log"),
        ("build/local.o", "B obj"),
        ("junk.tmp", "B junk"),
    ] {
        want_b.insert(p.into(), Some(c.as_bytes().to_vec()));
    }
    assert_eq!(
        file_tree(b.path()),
        want_b,
        "B: its ignored files untouched, none of A's"
    );
    assert_eq!(read(a.path(), "run.log").as_deref(), Some("A log 2"));
    assert_eq!(read(a.path(), "build/out.o").as_deref(), Some("A obj"));
}

#[test]
fn a_rule_change_while_running_deletes_nothing_and_undoing_it_loses_nothing() {
    let server = Server::start();
    let a = tempfile::tempdir().expect("tempdir");
    let b = tempfile::tempdir().expect("tempdir");
    let c = tempfile::tempdir().expect("tempdir");
    write(a.path(), "doc.txt", "doc");
    write(a.path(), "old.log", "old");
    std::thread::sleep(Duration::from_millis(350));
    let user = new_user(server.port, a.path());
    let _ca = Client::start(server.port, a.path(), None);
    let _cb = Client::start(server.port, b.path(), Some(&user));
    converge("initial", &[a.path(), b.path()]);

    // The rule arrives on B through the server; no restart.
    write(a.path(), ".cloudignore", "*.log\n");
    wait_for("B has the rules", || {
        read(b.path(), ".cloudignore").is_some()
    });
    std::thread::sleep(Duration::from_millis(1000));
    fs::remove_file(a.path().join("old.log")).expect("rm");
    write(b.path(), "old.log", "B edit");
    write(a.path(), "fresh.log", "fresh");
    write(a.path(), "after.txt", "after");
    wait_for("B has after.txt", || read(b.path(), "after.txt").is_some());
    std::thread::sleep(Duration::from_millis(1500));
    let server_dir = server.user_dir(&user);
    assert_eq!(
        read(&server_dir, "old.log").as_deref(),
        Some("old"),
        "an ignored path stays on the server"
    );
    assert_eq!(read(&server_dir, "fresh.log"), None, "not pushed");
    assert_eq!(read(b.path(), "old.log").as_deref(), Some("B edit"));
    assert_eq!(
        read(a.path(), "old.log"),
        None,
        "not brought back by a pull"
    );
    assert_eq!(read(b.path(), "fresh.log"), None);

    // A device joining now does not download the ignored path.
    let _cc = Client::start(server.port, c.path(), Some(&user));
    wait_for("C has after.txt", || read(c.path(), "after.txt").is_some());
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(read(c.path(), "old.log"), None, "C never gets old.log");

    // Undo the rule: everything ignored meanwhile becomes synced, and no
    // content is lost. What each device did to old.log while it was ignored
    // is an ordinary change on the base both had (e2e_unignore): A's delete
    // and B's edit of the same base, so the edit wins (a modified file
    // beats a concurrent delete, R-5.4.5) without a conflict copy.
    write(a.path(), ".cloudignore", "");
    let end = converge("after the rule is removed", &[a.path(), b.path(), c.path()]);
    assert_eq!(read(a.path(), "old.log").as_deref(), Some("B edit"));
    assert!(
        !end.keys().any(|p| p.contains("conflict")),
        "{:?}",
        end.keys().collect::<Vec<_>>()
    );
    let contents: Vec<&[u8]> = end.values().flatten().map(Vec::as_slice).collect();
    for kept in [&b"B edit"[..], b"fresh", b"doc", b"after"] {
        assert!(
            contents.contains(&kept),
            "{:?} survives: {:?}",
            String::from_utf8_lossy(kept),
            end.keys().collect::<Vec<_>>()
        );
    }
    wait_for("the server holds the same files", || {
        file_tree(&server_dir)
            == end
                .clone()
                .into_iter()
                .filter(|(_, v)| v.is_some())
                .collect()
    });
}

#[test]
fn a_directory_removed_elsewhere_is_not_brought_back_by_the_ignored_files_it_holds_here() {
    let server = Server::start();
    let a = tempfile::tempdir().expect("tempdir");
    let b = tempfile::tempdir().expect("tempdir");
    write(a.path(), "keep.txt", "keep");
    write(a.path(), "d/a.txt", "a");
    write(a.path(), "d/sub/b.txt", "b");
    std::thread::sleep(Duration::from_millis(350));
    let user = new_user(server.port, a.path());
    let _ca = Client::start(server.port, a.path(), None);
    let _cb = Client::start(server.port, b.path(), Some(&user));
    converge("initial", &[a.path(), b.path()]);
    // Only on A: editor leftovers inside the directory (ignored by default).
    write(a.path(), "d/.a.txt.swp", "swap");
    write(a.path(), "d/sub/x.tmp", "tmp");
    std::thread::sleep(Duration::from_millis(500));
    fs::remove_dir_all(b.path().join("d")).expect("rm -r");
    wait_for("A's synced files in d are deleted", || {
        !a.path().join("d/a.txt").exists() && !a.path().join("d/sub/b.txt").exists()
    });
    std::thread::sleep(Duration::from_millis(2500));
    let server_dir = server.user_dir(&user);
    assert!(
        !server_dir.join("d").exists(),
        "d stays deleted on the server"
    );
    assert!(!b.path().join("d").exists(), "d does not come back on B");
    assert_eq!(read(a.path(), "d/.a.txt.swp").as_deref(), Some("swap"));
    assert_eq!(read(a.path(), "d/sub/x.tmp").as_deref(), Some("tmp"));
}

#[test]
fn ignored_leftovers_do_not_make_an_emptied_folder_look_full() {
    let server = Server::start();
    let a = tempfile::tempdir().expect("tempdir");
    for i in 0..12 {
        write(a.path(), &format!("f{i}"), "data");
    }
    std::thread::sleep(Duration::from_millis(350));
    let user = new_user(server.port, a.path());
    for i in 0..12 {
        fs::remove_file(a.path().join(format!("f{i}"))).expect("rm");
    }
    // What an editor or office suite may leave in an unmounted drive's
    // mount point, or in a folder emptied by mistake.
    write(a.path(), ".f0.swp", "swap");
    write(a.path(), "~$f1.docx", "lock");
    write(a.path(), "cache.tmp/part", "x");
    let out = common::run_once(server.port, a.path(), None);
    assert!(!out.status.success(), "stops instead of deleting");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("refusing"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        file_tree(&server.user_dir(&user)).len(),
        12,
        "server untouched"
    );
}

/// A device joining a user (NewClient) with files already in its folder
/// pushes nothing the shared `.cloudignore` hides: its first push waits
/// until the rules have been pulled.
#[test]
fn a_joining_device_pushes_nothing_the_shared_rules_hide() {
    let server = Server::start();
    let a = tempfile::tempdir().expect("tempdir");
    let b = tempfile::tempdir().expect("tempdir");
    write(a.path(), ".cloudignore", "secret.txt\nprivate/\n");
    write(a.path(), "shared.txt", "from a");
    std::thread::sleep(Duration::from_millis(400));
    let user = new_user(server.port, a.path());
    // B's folder holds what the shared rules hide, and one file they do not.
    write(b.path(), "secret.txt", "b's secret");
    write(b.path(), "private/key", "b's key");
    write(b.path(), "mine.txt", "from b");
    std::thread::sleep(Duration::from_millis(400));
    let _ca = Client::start(server.port, a.path(), None);
    let _cb = Client::start(server.port, b.path(), Some(&user));
    let on_server = server.user_dir(&user);
    wait_for("mine.txt reaches A", || a.path().join("mine.txt").is_file());
    wait_for("B has the rules", || {
        b.path().join(".cloudignore").is_file()
    });
    // Give a late push every chance to show up.
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !on_server.join("secret.txt").exists(),
        "secret.txt uploaded"
    );
    assert!(!on_server.join("private").exists(), "private/ uploaded");
    assert!(!a.path().join("secret.txt").exists());
    assert!(!a.path().join("private").exists());
    // B keeps its own copies.
    assert_eq!(read(b.path(), "secret.txt").as_deref(), Some("b's secret"));
    assert_eq!(read(b.path(), "private/key").as_deref(), Some("b's key"));
}

/// `.cloudignore` as Windows editors save it (the outside tester's secret
/// upload: a UTF-8 byte-order mark hid the first rule): with a UTF-8 BOM,
/// as UTF-16 LE and BE with a BOM, and with one line that is not text, every
/// usable rule applies on the first upload; nothing they hide reaches the
/// server. Each encoding is its own new user.
#[test]
fn rules_saved_with_a_byte_order_mark_or_as_utf16_apply_from_the_first_line() {
    let server = Server::start();
    let rules = "*.log\r\n/secret/\r\n";
    let utf16 = |big: bool| -> Vec<u8> {
        let mut out = if big {
            vec![0xfe, 0xff]
        } else {
            vec![0xff, 0xfe]
        };
        for u in rules.encode_utf16() {
            out.extend(if big {
                u.to_be_bytes()
            } else {
                u.to_le_bytes()
            });
        }
        out
    };
    let encodings: [(&str, Vec<u8>); 4] = [
        (
            "utf-8 with BOM",
            [b"\xef\xbb\xbf".as_slice(), rules.as_bytes()].concat(),
        ),
        ("utf-16 le", utf16(false)),
        ("utf-16 be", utf16(true)),
        (
            "a bad line between",
            b"*.log\n\xff\xfe bad\n/secret/\n".to_vec(),
        ),
    ];
    for (name, bytes) in encodings {
        let a = tempfile::tempdir().expect("tempdir");
        fs::write(a.path().join(".cloudignore"), &bytes).expect("write rules");
        write(a.path(), "app.log", "password=hunter2");
        write(a.path(), "secret/key.pem", "private");
        write(a.path(), "doc.txt", "doc");
        std::thread::sleep(Duration::from_millis(350));
        let user = new_user(server.port, a.path());
        let on_server = server.user_dir(&user);
        assert_eq!(
            fs::read(on_server.join("doc.txt")).ok().as_deref(),
            Some(b"doc".as_slice()),
            "{name}"
        );
        assert!(
            !on_server.join("app.log").exists(),
            "{name}: app.log uploaded"
        );
        assert!(
            !on_server.join("secret").exists(),
            "{name}: secret/ uploaded"
        );
        assert_eq!(
            fs::read(on_server.join(".cloudignore")).expect("rules synced"),
            bytes,
            "{name}: the rule file itself travels byte for byte"
        );
    }
}

/// The outside tester's lost conflict copy: B holds `foo.tmp` (ignored by
/// the built-in `*.tmp`), A writes its own `foo.tmp` and re-includes the
/// name with `!foo.tmp`. Both contents must end on every device and on the
/// server, one at `foo.tmp` and one as its conflict copy (whose name also
/// ends in `.tmp`: it is decided as `foo.tmp`, so it is synced too).
#[test]
fn a_conflict_copy_of_a_reincluded_name_reaches_every_device() {
    let server = Server::start();
    let a = tempfile::tempdir().expect("tempdir");
    let b = tempfile::tempdir().expect("tempdir");
    write(a.path(), "keep.txt", "k");
    let user = new_user(server.port, a.path());
    write(b.path(), "foo.tmp", "B own");
    std::thread::sleep(Duration::from_millis(350));
    let _cb = Client::start(server.port, b.path(), Some(&user));
    let _ca = Client::start(server.port, a.path(), None);
    wait_for("B joined", || read(b.path(), "keep.txt").is_some());
    write(a.path(), "foo.tmp", "A foo");
    write(a.path(), ".cloudignore", "!foo.tmp\n");
    let contents = |root: &Path| {
        let mut found: Vec<String> = file_tree(root)
            .into_iter()
            .filter(|(path, _)| path.starts_with("foo"))
            .map(|(_, content)| String::from_utf8_lossy(&content.unwrap_or_default()).into_owned())
            .collect();
        found.sort();
        found
    };
    let both = vec!["A foo".to_owned(), "B own".to_owned()];
    wait_for("both contents on A, B and the server", || {
        contents(a.path()) == both
            && contents(b.path()) == both
            && contents(&server.user_dir(&user)) == both
    });
    converge(
        "A, B and the server",
        &[a.path(), b.path(), &server.user_dir(&user)],
    );
}

/// A synced folder nested in another: the inner one's `.cloudservice`
/// (its device key) is never uploaded by the outer one; its files are.
#[test]
fn a_nested_folders_state_is_never_uploaded() {
    let server = Server::start();
    let a = tempfile::tempdir().expect("tempdir");
    write(a.path(), "inner/notes.txt", "inner notes");
    write(a.path(), "inner/.cloudservice/identity", "a device key");
    write(a.path(), "deep/er/.cloudservice/index", "an index");
    std::thread::sleep(Duration::from_millis(350));
    let user = new_user(server.port, a.path());
    assert_eq!(
        file_tree(&server.user_dir(&user)),
        files(&[("inner/notes.txt", "inner notes")]),
    );
}

/// A regular file named `.cloudservice` below the top level is the user's
/// (breaker13's L2: it never synced and nothing listed it): uploaded,
/// downloaded by another device, and its edits travel; a nested folder's
/// `.cloudservice` directory beside it still never leaves the device.
#[test]
fn a_file_named_like_the_state_folder_below_the_top_is_synced() {
    let server = Server::start();
    let a = tempfile::tempdir().expect("tempdir");
    let b = tempfile::tempdir().expect("tempdir");
    write(
        a.path(),
        "notes/.cloudservice",
        "my notes about the service",
    );
    write(a.path(), "x/y/.cloudservice", "deeper");
    write(a.path(), "inner/.cloudservice/identity", "a device key");
    std::thread::sleep(Duration::from_millis(350));
    let user = new_user(server.port, a.path());
    let want = files(&[
        ("notes/.cloudservice", "my notes about the service"),
        ("x/y/.cloudservice", "deeper"),
    ]);
    assert_eq!(file_tree(&server.user_dir(&user)), want);
    let out = common::run_once(server.port, b.path(), Some(&user));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        read(b.path(), "notes/.cloudservice").as_deref(),
        Some("my notes about the service")
    );
    assert_eq!(
        read(b.path(), "x/y/.cloudservice").as_deref(),
        Some("deeper")
    );
    assert!(!b.path().join("inner/.cloudservice").exists());
    // An edit on B reaches A.
    write(b.path(), "notes/.cloudservice", "edited on B");
    std::thread::sleep(Duration::from_millis(350));
    let out = common::run_once(server.port, b.path(), None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = common::run_once(server.port, a.path(), None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        read(a.path(), "notes/.cloudservice").as_deref(),
        Some("edited on B")
    );
    assert_eq!(
        read(a.path(), "inner/.cloudservice/identity").as_deref(),
        Some("a device key")
    );
}
