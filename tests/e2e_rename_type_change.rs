//! End-to-end: a rename combined with a type change at one path (issue 9,
//! item 4). Two real clients and the real server on loopback; the push plan
//! must free a destination before using it and never rename a path below
//! itself, or the server takes the user's own move for a concurrent edit.

mod common;

use common::{converge, settle, write, TwoDevices};
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::time::Duration;

/// Starts a server, a user made from `files`, clients on folders A and B,
/// converged; runs `change` on A and returns the tree everyone converged to
/// (A, B and the server's copy), after restarting A once to show it is stable.
fn after_change(
    files: &[(&str, &str)],
    dirs: &[&str],
    change: impl FnOnce(&Path),
) -> BTreeMap<String, Option<Vec<u8>>> {
    let TwoDevices {
        server,
        a,
        b,
        user,
        mut ca,
        mut cb,
    } = TwoDevices::start(|a| {
        for (path, content) in files {
            write(a, path, content);
        }
        for dir in dirs {
            fs::create_dir_all(a.join(dir)).unwrap();
        }
    });
    let server_copy = server.user_dir(&user);
    converge("initial", &[a.path(), b.path(), &server_copy]);
    change(a.path());
    settle();
    let first = converge("after the change", &[a.path(), b.path(), &server_copy]);
    // Still the same after A restarts (its index agrees with its folder).
    ca.restart();
    std::thread::sleep(Duration::from_secs(2));
    let second = converge("after restarting A", &[a.path(), b.path(), &server_copy]);
    assert_eq!(first, second, "a restart changes nothing");
    ca.stop();
    cb.stop();
    second
}

fn file(content: &str) -> Option<Vec<u8>> {
    Some(content.as_bytes().to_vec())
}

#[test]
fn a_file_moved_into_a_new_directory_of_its_own_name() {
    // mv A1 A1_old; mkdir A1; mv A1_old A1/A1
    let tree = after_change(&[("A1", "one"), ("other", "x")], &[], |a| {
        fs::rename(a.join("A1"), a.join("A1_old")).unwrap();
        fs::create_dir(a.join("A1")).unwrap();
        fs::rename(a.join("A1_old"), a.join("A1/A1")).unwrap();
    });
    let want: BTreeMap<String, Option<Vec<u8>>> = [
        ("A1".to_owned(), None),
        ("A1/A1".to_owned(), file("one")),
        ("other".to_owned(), file("x")),
    ]
    .into_iter()
    .collect();
    assert_eq!(tree, want);
}

#[test]
fn a_directory_replaced_by_a_renamed_file() {
    // rm -r conf; mv conf.new conf
    let tree = after_change(
        &[
            ("conf/a.ini", "old"),
            ("conf/b.ini", "b"),
            ("conf.new", "new"),
        ],
        &[],
        |a| {
            fs::remove_dir_all(a.join("conf")).unwrap();
            fs::rename(a.join("conf.new"), a.join("conf")).unwrap();
        },
    );
    let want: BTreeMap<String, Option<Vec<u8>>> =
        [("conf".to_owned(), file("new"))].into_iter().collect();
    assert_eq!(tree, want);
}

#[test]
fn a_file_replaced_by_a_renamed_directory() {
    // rm conf; mv conf.d conf
    let tree = after_change(
        &[
            ("conf", "flat"),
            ("conf.d/a.ini", "a"),
            ("conf.d/b.ini", "b"),
        ],
        &["conf.d/empty"],
        |a| {
            fs::remove_file(a.join("conf")).unwrap();
            fs::rename(a.join("conf.d"), a.join("conf")).unwrap();
        },
    );
    let want: BTreeMap<String, Option<Vec<u8>>> = [
        ("conf".to_owned(), None),
        ("conf/a.ini".to_owned(), file("a")),
        ("conf/b.ini".to_owned(), file("b")),
        ("conf/empty".to_owned(), None),
    ]
    .into_iter()
    .collect();
    assert_eq!(tree, want);
}

#[test]
fn two_files_swapped() {
    // mv a t; mv b a; mv t b
    let tree = after_change(&[("d/a", "AAA"), ("d/b", "BBB")], &[], |a| {
        fs::rename(a.join("d/a"), a.join("d/t")).unwrap();
        fs::rename(a.join("d/b"), a.join("d/a")).unwrap();
        fs::rename(a.join("d/t"), a.join("d/b")).unwrap();
    });
    let want: BTreeMap<String, Option<Vec<u8>>> = [
        ("d".to_owned(), None),
        ("d/a".to_owned(), file("BBB")),
        ("d/b".to_owned(), file("AAA")),
    ]
    .into_iter()
    .collect();
    assert_eq!(tree, want);
}
