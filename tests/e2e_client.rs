//! End-to-end tests of `cloud-client`: the real server and two or three real
//! clients on loopback, each in its own temporary folder; trees are compared
//! by content, and every wait polls against a deadline.

mod common;

use common::{
    converge, eventually, new_user, run_once, settle, tree, write, Client, Server, TwoDevices,
    CONVERGE,
};
use std::fs;
use std::path::Path;
use std::time::Duration;

/// A mixed tree: nested and empty directories, unicode and spaces, binary,
/// zero-byte, a multi-chunk file, and 1,000 small files.
fn mixed_tree(root: &Path) {
    write(root, "nested/a/b/c/deep.txt", "deep");
    fs::create_dir_all(root.join("empty")).unwrap();
    fs::create_dir_all(root.join("nested/empty too")).unwrap();
    write(root, "naïve café/ünï cödé 📁.txt", "unicode ✓");
    write(root, "with space/x y.txt", "spaces");
    let binary: Vec<u8> = (0..70_000u32).map(|i| (i * 7 % 256) as u8).collect();
    write(root, "bin/data.bin", &binary);
    write(root, "zero-byte", "");
    let big: Vec<u8> = (0..(3 * 1024 * 1024 + 123u32))
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    write(root, "bin/big.bin", &big);
    for i in 0..1000 {
        write(
            root,
            &format!("many/f{i:04}.txt"),
            format!("small file {i}\n"),
        );
    }
}

/// [`TwoDevices`] with `files` (path, content) written in `a` first.
fn two_devices(files: &[(&str, &str)]) -> TwoDevices {
    TwoDevices::start(|a| {
        for (path, content) in files {
            write(a, path, content);
        }
    })
}

#[test]
fn new_user_uploads_a_mixed_tree_and_a_new_client_downloads_it() {
    let server = Server::start();
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    mixed_tree(a.path());
    settle();
    let user = new_user(server.port, a.path());
    let original = tree(a.path());
    assert_eq!(original.len(), 1000 + 16, "the fixture is what it claims");
    assert_eq!(
        tree(&server.user_dir(&user)),
        original,
        "server holds the tree"
    );

    let out = run_once(server.port, b.path(), Some(&user));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stdout.is_empty(),
        "a new client prints nothing on stdout"
    );
    assert_eq!(tree(b.path()), original, "new client downloaded everything");

    // A second run of either side changes nothing.
    let again = run_once(server.port, a.path(), None);
    assert!(again.status.success());
    assert!(
        again.stdout.is_empty(),
        "the ID is printed only when created"
    );
    assert_eq!(tree(a.path()), original);
}

#[test]
fn every_kind_of_change_travels_both_ways() {
    let TwoDevices {
        server,
        a,
        b,
        user,
        ca: _ca,
        cb: _cb,
    } = two_devices(&[("seed.txt", "seed")]);
    let both = [a.path(), b.path()];

    let pushes_by = |client: u32| {
        let tag = format!("client={client} request=push-");
        server.conn_log().matches(&tag).count()
    };
    for (src, name, receiver) in [(a.path(), "from-a", 2), (b.path(), "from-b", 1)] {
        let receiver_pushes = pushes_by(receiver);
        let step = |what: &str, change: &dyn Fn(&Path)| {
            change(src);
            let t = converge(&format!("{name}: {what}"), &both);
            t
        };
        step("create", &|r| {
            write(r, &format!("{name}.txt"), "one");
            write(r, &format!("{name}-doomed.txt"), "doomed");
        });
        step("modify", &|r| {
            write(r, &format!("{name}.txt"), "two, longer")
        });
        step("append", &|r| {
            use std::io::Write;
            let mut f = fs::OpenOptions::new()
                .append(true)
                .open(r.join(format!("{name}.txt")))
                .unwrap();
            f.write_all(b" + appended").unwrap();
        });
        let t = step("mkdir", &|r| {
            fs::create_dir_all(r.join(format!("{name}-dir/sub/empty"))).unwrap()
        });
        assert_eq!(t.get(&format!("{name}-dir/sub/empty")), Some(&None));
        step("create in dir", &|r| {
            write(r, &format!("{name}-dir/sub/inner.txt"), "inner");
            write(r, &format!("{name}-dir/top.txt"), "top");
        });
        let t = step("rename file", &|r| {
            fs::rename(
                r.join(format!("{name}.txt")),
                r.join(format!("{name}-renamed.txt")),
            )
            .unwrap()
        });
        assert_eq!(
            t.get(&format!("{name}-renamed.txt")),
            Some(&Some(b"two, longer + appended".to_vec()))
        );
        step("move across dirs", &|r| {
            fs::rename(
                r.join(format!("{name}-renamed.txt")),
                r.join(format!("{name}-dir/sub/moved.txt")),
            )
            .unwrap()
        });
        let t = step("rename dir", &|r| {
            fs::rename(
                r.join(format!("{name}-dir")),
                r.join(format!("{name}-dir2")),
            )
            .unwrap()
        });
        assert_eq!(
            t.get(&format!("{name}-dir2/sub/moved.txt")),
            Some(&Some(b"two, longer + appended".to_vec()))
        );
        let t = step("rmdir non-empty", &|r| {
            fs::remove_dir_all(r.join(format!("{name}-dir2"))).unwrap()
        });
        assert!(!t.keys().any(|k| k.starts_with(&format!("{name}-dir"))));
        let t = step("delete file", &|r| {
            fs::remove_file(r.join(format!("{name}-doomed.txt"))).unwrap()
        });
        assert!(!t.contains_key(&format!("{name}-doomed.txt")));
        // Echo suppression: applying all that made the receiver push nothing.
        std::thread::sleep(Duration::from_millis(800));
        assert_eq!(
            pushes_by(receiver),
            receiver_pushes,
            "{name}: receiver echoed"
        );
    }
    let log = server.conn_log();
    assert!(
        log.contains("request=push-rename"),
        "renames travel as renames"
    );
    let final_tree = tree(&server.user_dir(&user));
    assert_eq!(final_tree, tree(a.path()), "the server agrees");
}

#[test]
fn new_client_with_existing_files_keeps_both_sides() {
    let server = Server::start();
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    write(a.path(), "shared.txt", "server side");
    write(a.path(), "same.txt", "identical");
    write(b.path(), "shared.txt", "device side");
    write(b.path(), "same.txt", "identical");
    write(b.path(), "only here/local.txt", "local only");
    settle();
    let user = new_user(server.port, a.path());
    let out = run_once(server.port, b.path(), Some(&user));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run_once(server.port, a.path(), None);
    assert!(out.status.success());
    let t = converge("new client merge", &[a.path(), b.path()]);
    assert_eq!(t.get("shared.txt"), Some(&Some(b"server side".to_vec())));
    assert_eq!(
        t.get("only here/local.txt"),
        Some(&Some(b"local only".to_vec()))
    );
    let copies: Vec<&String> = t
        .keys()
        .filter(|k| k.starts_with("shared (conflict 2 "))
        .collect();
    assert_eq!(copies.len(), 1, "{t:?}");
    assert_eq!(t[copies[0]], Some(b"device side".to_vec()));
    assert!(
        !t.keys().any(|k| k.starts_with("same (conflict")),
        "identical files adopted"
    );
}

#[test]
fn offline_additions_and_deletions_are_pushed_on_restart() {
    let files = ["keep.txt", "doomed.txt", "dir/doomed-too.txt"].map(|f| (f, f));
    let TwoDevices {
        server,
        a,
        b,
        user,
        ca: _ca,
        mut cb,
    } = two_devices(&files);

    cb.stop();
    write(b.path(), "added offline.txt", "offline");
    fs::remove_file(b.path().join("doomed.txt")).unwrap();
    fs::remove_dir_all(b.path().join("dir")).unwrap();
    write(a.path(), "added on a.txt", "while b was away");
    settle();
    cb.restart();
    let t = converge("after restart", &[a.path(), b.path()]);
    assert!(t.contains_key("added offline.txt"));
    assert!(t.contains_key("added on a.txt"));
    assert!(!t.contains_key("doomed.txt"), "deletion not resurrected");
    assert!(!t.contains_key("dir"));
    assert_eq!(tree(&server.user_dir(&user)), t);
}

#[test]
fn same_file_edited_on_two_clients_keeps_both_versions() {
    let TwoDevices {
        server,
        a,
        b,
        user,
        ca: _ca,
        mut cb,
    } = two_devices(&[("report.txt", "original")]);

    cb.stop();
    write(a.path(), "report.txt", "edited on A");
    let server_copy = server.user_dir(&user).join("report.txt");
    assert!(
        eventually(CONVERGE, || {
            fs::read(&server_copy).ok().as_deref() == Some(b"edited on A".as_slice())
        }),
        "timed out waiting for: A's edit reaches the server"
    );
    write(b.path(), "report.txt", "edited on B, offline");
    settle();
    cb.restart();
    let t = converge("after conflict", &[a.path(), b.path()]);
    let contents: Vec<&[u8]> = t.values().flatten().map(Vec::as_slice).collect();
    assert!(contents.contains(&b"edited on A".as_slice()), "{t:?}");
    assert!(
        contents.contains(&b"edited on B, offline".as_slice()),
        "{t:?}"
    );
    assert!(
        t.keys()
            .any(|k| k.starts_with("report (conflict ") && k.ends_with(").txt")),
        "conflict copy named by the spec: {:?}",
        t.keys().collect::<Vec<_>>()
    );
    assert_eq!(tree(&server.user_dir(&user)), t);
}

#[test]
fn converged_clients_push_nothing() {
    let server = Server::start();
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let c = tempfile::tempdir().unwrap();
    write(a.path(), "x.txt", "x");
    settle();
    let user = new_user(server.port, a.path());
    let _ca = Client::start(server.port, a.path(), None);
    let _cb = Client::start(server.port, b.path(), Some(&user));
    let _cc = Client::start(server.port, c.path(), Some(&user));
    converge("initial", &[a.path(), b.path(), c.path()]);
    write(b.path(), "from b.bin", vec![1u8; 100_000]);
    converge("one change", &[a.path(), b.path(), c.path()]);
    // Let every client finish hashing its own writes (echo suppression).
    std::thread::sleep(Duration::from_millis(1000));
    let busy = |log: &str| {
        log.lines()
            .filter(|l| l.contains("request=push-") || l.contains("request=fetch"))
            .count()
    };
    let before = busy(&server.conn_log());
    let pulls_before = server.conn_log().matches("request=pull").count();
    std::thread::sleep(Duration::from_secs(3));
    let log = server.conn_log();
    assert_eq!(
        busy(&log),
        before,
        "no pushes or fetches while nothing changes"
    );
    assert!(
        log.matches("request=pull").count() > pulls_before,
        "clients keep pulling"
    );
}

#[test]
fn clients_ride_out_a_server_restart() {
    let TwoDevices {
        mut server,
        a,
        b,
        user,
        mut ca,
        mut cb,
    } = two_devices(&[("before.txt", "before")]);

    server.stop();
    write(a.path(), "while down.txt", "queued locally");
    std::thread::sleep(Duration::from_millis(700));
    assert!(ca.is_running() && cb.is_running(), "clients keep running");
    server.restart();
    let t = converge("after server restart", &[a.path(), b.path()]);
    assert!(t.contains_key("while down.txt"));
    write(b.path(), "after.txt", "after");
    let t = converge("after restart, other way", &[a.path(), b.path()]);
    assert!(t.contains_key("after.txt"));
    assert_eq!(tree(&server.user_dir(&user)), t);
}

#[test]
fn start_up_errors_are_one_line_and_non_zero() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let out = run_once(server.port, &missing, None);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");

    let unknown = run_once(
        server.port,
        dir.path(),
        Some("0123456789abcdef0123456789abcdef"),
    );
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("refused"));

    let closed = common::free_port();
    let out = run_once(closed, dir.path(), None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach"));
}

#[test]
fn an_emptied_folder_is_not_a_mass_deletion() {
    let server = Server::start();
    let a = tempfile::tempdir().unwrap();
    for i in 0..12 {
        write(a.path(), &format!("f{i}"), "data");
    }
    settle();
    let user = new_user(server.port, a.path());
    for i in 0..12 {
        fs::remove_file(a.path().join(format!("f{i}"))).unwrap();
    }
    let out = run_once(server.port, a.path(), None);
    assert!(!out.status.success(), "stops instead of deleting");
    assert!(String::from_utf8_lossy(&out.stderr).contains("refusing"));
    assert_eq!(tree(&server.user_dir(&user)).len(), 12, "server untouched");
}

#[test]
fn symlinks_are_skipped_not_followed() {
    let server = Server::start();
    let a = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    write(outside.path(), "secret.txt", "secret");
    write(a.path(), "real.txt", "real");
    std::os::unix::fs::symlink(outside.path(), a.path().join("link")).unwrap();
    settle();
    // The run makes the user and uploads the rest; the symlink is listed
    // as not synced, so `--once` exits 3, not 0 (README; breaker15 F10).
    let out = run_once(server.port, a.path(), None);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let user = stdout
        .trim()
        .strip_prefix("user id: ")
        .expect("the user ID line")
        .to_owned();
    let on_server = tree(&server.user_dir(&user));
    assert!(on_server.contains_key("real.txt"));
    assert!(
        !on_server.keys().any(|k| k.starts_with("link")),
        "{on_server:?}"
    );
}

#[test]
fn a_file_being_written_is_pushed_once_complete() {
    let TwoDevices {
        server,
        a,
        b,
        user: _,
        ca: _ca,
        cb: _cb,
    } = two_devices(&[("seed", "s")]);
    let mut written = Vec::new();
    {
        use std::io::Write;
        let mut f = fs::File::create(a.path().join("slow.log")).unwrap();
        for i in 0..20 {
            let line = format!("line {i} {}\n", "x".repeat(1000));
            f.write_all(line.as_bytes()).unwrap();
            f.flush().unwrap();
            written.extend_from_slice(line.as_bytes());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let t = converge("slow writer", &[a.path(), b.path()]);
    assert_eq!(t["slow.log"], Some(written));
    let pushes = server
        .conn_log()
        .lines()
        .filter(|l| l.contains("request=push-file") && l.contains("slow.log"))
        .count();
    assert_eq!(pushes, 1, "pushed once, when complete");
}
