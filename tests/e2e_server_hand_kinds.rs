//! End-to-end: hand changes to the stopped server's folder that are not
//! plain edits (outside tester breaker24 F1, F2, F13; PROTOCOL.md,
//! A directory replaced by a file and a file replaced by a
//! directory keep the journal's entry (lost, put back by the devices) and
//! the hand-made one under a conflict name; an older backup copied back with
//! its times does not roll the devices back. Main's server journaled `d` as
//! a file over the directory (every device deleted `d/*`) and the backup's
//! older bytes as edits (every device rolled back).

mod common;

use common::*;
use std::path::Path;
use std::time::Duration;

/// The one entry of `t` whose path starts with `prefix` and holds `content`
/// (`None`: a directory).
fn one_starting(t: &Tree, prefix: &str, content: Option<&[u8]>) -> bool {
    t.iter()
        .filter(|(p, v)| p.starts_with(prefix) && v.as_deref() == content)
        .count()
        == 1
}

#[test]
fn kind_changes_and_an_older_backup_by_hand_lose_nothing() {
    let logs = tempfile::tempdir().expect("temp dir");
    let mut server = Server::options()
        .log(&logs.path().join("server.err"))
        .start();
    let a = tempfile::tempdir().expect("temp dir");
    let b = tempfile::tempdir().expect("temp dir");
    let backup = tempfile::tempdir().expect("temp dir");
    let (a, b) = (a.path(), b.path());
    write(a, "d/a.txt", "A in d\n");
    write(a, "d/sub/b.txt", "B in d/sub\n");
    write(a, "f.txt", "the file f\n");
    write(a, "k.txt", "k, first\n");
    write(a, "keep.txt", "untouched\n");
    settle();
    let user = new_user(server.port, a);
    let mut ca = Client::options(server.port, a)
        .log(&logs.path().join("a.err"))
        .start();
    let mut cb = Client::options(server.port, b)
        .user(Some(&user))
        .log(&logs.path().join("b.err"))
        .start();
    converge("B joined", &[a, b]);
    let s = server.user_dir(&user);
    // The operator's backup of k.txt, with its times (`cp -a`).
    let copied = std::process::Command::new("cp")
        .arg("-a")
        .arg(s.join("k.txt"))
        .arg(backup.path().join("k.txt"))
        .status()
        .expect("cp");
    assert!(copied.success());
    std::thread::sleep(Duration::from_millis(20));
    write(a, "k.txt", "k, second and newest\n");
    let ok = eventually(Duration::from_secs(20), || {
        std::fs::read(b.join("k.txt")).is_ok_and(|g| g == b"k, second and newest\n")
    });
    assert!(ok, "B lacks k's second version");
    converge("k.txt's second version", &[a, b, &s]);
    cb.stop();
    ca.stop();
    server.stop();

    // While stopped: `rm -r d; echo > d`, `rm f.txt; mkdir f.txt; …`, and
    // the backup copied back with its times.
    std::fs::remove_dir_all(s.join("d")).expect("rm -r d");
    write(&s, "d", "d is a file now\n");
    std::fs::remove_file(s.join("f.txt")).expect("rm f.txt");
    write(&s, "f.txt/inside.txt", "a directory where f was\n");
    let copied = std::process::Command::new("cp")
        .arg("-a")
        .arg(backup.path().join("k.txt"))
        .arg(s.join("k.txt"))
        .status()
        .expect("cp");
    assert!(copied.success());
    server.start_again();
    let _ca = Client::options(server.port, a)
        .log(&logs.path().join("a2.err"))
        .start();
    let _cb = Client::options(server.port, b)
        .log(&logs.path().join("b2.err"))
        .start();

    // Every device and the server end with the devices' newest content at
    // its path, and the operator's entries under conflict names.
    let done = |t: &Tree| {
        t.get("d/a.txt") == Some(&Some(b"A in d\n".to_vec()))
            && t.get("d/sub/b.txt") == Some(&Some(b"B in d/sub\n".to_vec()))
            && t.get("f.txt") == Some(&Some(b"the file f\n".to_vec()))
            && t.get("k.txt") == Some(&Some(b"k, second and newest\n".to_vec()))
            && t.get("keep.txt") == Some(&Some(b"untouched\n".to_vec()))
            && one_starting(t, "d (conflict 0 ", Some(b"d is a file now\n"))
            && one_starting(t, "f (conflict 0 ", None)
            && t.iter().any(|(p, v)| {
                p.starts_with("f (conflict 0 ")
                    && p.ends_with(").txt/inside.txt")
                    && v.as_deref() == Some(&b"a directory where f was\n"[..])
            })
    };
    let folders: [&Path; 3] = [a, b, &s];
    let all = eventually(Duration::from_secs(60), || {
        folders.iter().all(|f| done(&tree(f)))
    });
    assert!(
        all,
        "not every side holds everything:\nA {:?}\nB {:?}\nserver {:?}\n{}",
        tree(a).keys().collect::<Vec<_>>(),
        tree(b),
        tree(&s).keys().collect::<Vec<_>>(),
        server.log_tail(8000)
    );
    // No conflict copy of anything nobody changed kind of, nor of k.txt
    // (its older content is a kept version on the server).
    let t = converge("after the start", &folders);
    let copies: Vec<&String> = t.keys().filter(|p| p.contains("(conflict")).collect();
    assert_eq!(copies.len(), 3, "{copies:?}");
    let log = server.log_tail(64 << 10);
    for needle in [
        "the journal's directory d was replaced outside the server",
        "the journal's file f.txt was replaced outside the server",
        "k.txt holds an older copy",
        "restored from device",
    ] {
        assert!(log.contains(needle), "no {needle:?} in the log:\n{log}");
    }
}
