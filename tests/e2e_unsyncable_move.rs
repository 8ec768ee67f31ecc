//! End-to-end: a synced file or directory moved to a path the protocol
//! cannot carry (PROTOCOL.md §6.1: a backslash, a control character, a
//! name that is not UTF-8, a tree deeper than 64)
//! is not deleted anywhere (R-6.2.3, breaker25 F4). While it is there, its
//! old path stays on the server and on the other device, and `status` here
//! lists the old path as "moved to a name that cannot be synced", naming
//! the new one. Moved on to a legal name, it goes as a Rename (the other
//! device's copy is moved, the same inode, not downloaded again); removed,
//! its old path goes as an ordinary deletion; an edit another device made
//! to the old path meanwhile is kept.
//!
//! Before, every one of these moves pushed a Delete or a RemoveDir: the
//! server and device B lost `report.txt`, `proj/`, … while A's status only
//! listed the new names.

mod common;

use common::{converge, eventually, settle, status_json, tree, write, Tree, TwoDevices};
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One move of the family: the synced path, and where it goes (relative
/// to the folder, raw bytes: a name may not be UTF-8).
struct Move {
    old: &'static str,
    new: Vec<u8>,
    /// A part of the new path as `status --json` shows it (not UTF-8:
    /// U+FFFD).
    shown: String,
}

/// 65 nested directories: a path below them breaks P8 (64 components).
fn too_deep() -> String {
    "l/".repeat(65)
}

/// Every reason a name cannot be synced that a Linux file system can hold,
/// for files and directories (a name over 255 bytes cannot be made; a
/// path over 4,096 bytes is past PATH_MAX with the folder's: not here).
fn family() -> Vec<Move> {
    let mk = |old: &'static str, new: &[u8], shown: &str| Move {
        old,
        new: new.to_vec(),
        shown: shown.to_owned(),
    };
    vec![
        mk("report.txt", b"report\\2026.txt", "report\\2026.txt"),
        mk("notes.txt", b"notes\n.txt", "notes\n.txt"),
        mk("del.txt", b"del\x7f.txt", "del\x7f.txt"),
        mk("latin.txt", b"latin\xe9.txt", "latin\u{fffd}.txt"),
        mk("proj", format!("{}proj", too_deep()).as_bytes(), "l/l/l/l/"),
        mk("docs", b"do\\cs", "do\\cs"),
        mk("sub/inner", b"sub/in\tner", "sub/in\tner"),
    ]
}

/// The folder both devices start with.
fn fill(root: &Path) {
    for (path, data) in [
        ("report.txt", "the report"),
        ("notes.txt", "some notes"),
        ("del.txt", "delete me later"),
        ("latin.txt", "latin-1 name"),
        ("proj/p.txt", "project"),
        ("proj/src/main.rs", "fn main() {}"),
        ("proj/src/deep/x.txt", "deep x"),
        ("docs/a.md", "doc a"),
        ("docs/b.md", "doc b"),
        ("sub/inner/i.txt", "inner"),
        ("sub/stays.txt", "stays"),
        ("keep.txt", "untouched"),
    ] {
        write(root, path, data);
    }
    fs::create_dir_all(root.join("proj/empty")).expect("mkdir");
}

fn local(root: &Path, rel: &[u8]) -> PathBuf {
    root.join(OsStr::from_bytes(rel))
}

/// Does every move of `moves` on `root`.
fn do_moves(root: &Path, moves: &[Move]) {
    fs::create_dir_all(root.join(too_deep())).expect("mkdir deep");
    for m in moves {
        fs::rename(root.join(m.old), local(root, &m.new)).expect("move");
    }
}

/// What `status` of `root` lists as not synced.
fn not_synced(root: &Path) -> Vec<String> {
    let (_, value) = status_json(root);
    value["not_synced"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether `status` lists `m.old` as moved to a name that cannot be
/// synced, naming the new one.
fn listed(lines: &[String], m: &Move) -> bool {
    lines.iter().any(|l| {
        l.starts_with(&format!(
            "{} (moved to a name that cannot be synced: ",
            m.old
        )) && l.contains(&m.shown)
    })
}

/// Waits until `status` of `a` lists every move (or 15 s), then a little
/// more: a Delete, if one went, has reached the server and `b` by then.
fn wait_listed(a: &Path, moves: &[Move]) -> Vec<String> {
    eventually(Duration::from_secs(15), || {
        let lines = not_synced(a);
        moves.iter().all(|m| listed(&lines, m))
    });
    std::thread::sleep(Duration::from_secs(2));
    not_synced(a)
}

/// `before` plus the legal part of the deep chain the moves made (64
/// levels of `l`; the 65th is not synced).
fn with_chain(before: &Tree) -> Tree {
    let mut want = before.clone();
    for depth in 1..=64 {
        want.insert(vec!["l"; depth].join("/"), None);
    }
    want
}

fn assert_kept(what: &str, want: &Tree, d: &TwoDevices) {
    let server = tree(&d.server.user_dir(&d.user));
    let b = tree(d.b.path());
    assert!(
        b == *want,
        "{what}: device B lost or changed entries:\n{}",
        common::tree::tree_diff(want, &b)
    );
    assert!(
        server == *want,
        "{what}: the server lost or changed entries:\n{}",
        common::tree::tree_diff(want, &server)
    );
}

fn inode(path: &Path) -> u64 {
    fs::metadata(path).expect("stat").ino()
}

#[test]
fn a_move_to_an_unsyncable_path_deletes_nothing_and_moves_on_as_a_rename() {
    let d = TwoDevices::start(fill);
    let (a, b) = (d.a.path(), d.b.path());
    let before = with_chain(&tree(b));
    let inodes_b: Vec<u64> = ["report.txt", "proj/p.txt", "docs/a.md"]
        .iter()
        .map(|p| inode(&b.join(p)))
        .collect();
    let moves = family();
    do_moves(a, &moves);
    let lines = wait_listed(a, &moves);
    assert_kept("moved to unsyncable paths", &before, &d);
    for m in &moves {
        assert!(
            listed(&lines, m),
            "status does not list {}: {lines:#?}",
            m.old
        );
    }
    let (code, _) = status_json(a);
    assert_eq!(code, 1, "A is not in sync while they are away");

    // Moved on to legal names: Renames, B's files moved (same inodes).
    let fixed = [
        (&moves[0], "report-2026.txt"),
        (&moves[4], "proj2"),
        (&moves[5], "docs2"),
    ];
    for (m, to) in fixed {
        fs::rename(local(a, &m.new), a.join(to)).expect("move back");
    }
    // Removed: an ordinary deletion.
    fs::remove_file(local(a, &moves[2].new)).expect("rm");
    let mut want = before.clone();
    for (old, new) in [
        ("report.txt", "report-2026.txt"),
        ("proj", "proj2"),
        ("docs", "docs2"),
    ] {
        let moved: Vec<(String, Option<Vec<u8>>)> = want
            .iter()
            .filter(|(p, _)| *p == old || p.starts_with(&format!("{old}/")))
            .map(|(p, v)| (format!("{new}{}", &p[old.len()..]), v.clone()))
            .collect();
        want.retain(|p, _| !(p == old || p.starts_with(&format!("{old}/"))));
        want.extend(moved);
    }
    want.remove("del.txt");
    let ok = eventually(Duration::from_secs(20), || tree(b) == want);
    assert!(ok, "B:\n{}", common::tree::tree_diff(&want, &tree(b)));
    let after: Vec<u64> = ["report-2026.txt", "proj2/p.txt", "docs2/a.md"]
        .iter()
        .map(|p| inode(&b.join(p)))
        .collect();
    assert_eq!(
        inodes_b, after,
        "B's files were moved, not downloaded again"
    );
    let server = tree(&d.server.user_dir(&d.user));
    assert!(
        server == want,
        "server:\n{}",
        common::tree::tree_diff(&want, &server)
    );
    let gone = [&moves[0], &moves[2], &moves[4], &moves[5]];
    eventually(Duration::from_secs(10), || {
        let lines = not_synced(a);
        !gone.iter().any(|m| listed(&lines, m))
    });
    let lines = not_synced(a);
    for m in gone {
        assert!(!listed(&lines, m), "{} still listed: {lines:#?}", m.old);
    }
    for m in [&moves[1], &moves[3], &moves[6]] {
        assert!(listed(&lines, m), "{} no longer listed: {lines:#?}", m.old);
    }
}

#[test]
fn moves_made_while_the_client_was_stopped_delete_nothing() {
    let mut d = TwoDevices::start(fill);
    let (a, b) = (d.a.path().to_path_buf(), d.b.path().to_path_buf());
    let before = with_chain(&tree(&b));
    d.ca.stop();
    let moves = family();
    do_moves(&a, &moves);
    settle();
    d.ca.restart();
    let lines = wait_listed(&a, &moves);
    assert_kept("moved while stopped", &before, &d);
    for m in &moves {
        assert!(
            listed(&lines, m),
            "status does not list {}: {lines:#?}",
            m.old
        );
    }
}

#[test]
fn an_edit_made_elsewhere_to_the_old_path_meanwhile_is_kept() {
    let d = TwoDevices::start(fill);
    let (a, b) = (d.a.path(), d.b.path());
    fs::rename(a.join("report.txt"), a.join("report\\x.txt")).expect("move");
    fs::rename(a.join("proj"), a.join("pro\\j")).expect("move dir");
    eventually(Duration::from_secs(10), || not_synced(a).len() >= 2);
    std::thread::sleep(Duration::from_secs(1));
    assert!(b.join("report.txt").is_file(), "B kept report.txt");
    // Both edit the report (A its moved copy); B edits a file of proj.
    write(b, "report.txt", "edited on B");
    write(a, "report\\x.txt", "edited on A");
    write(b, "proj/p.txt", "project edited on B");
    settle();
    let on_server = |path: &str, data: &str| {
        fs::read(d.server.user_dir(&d.user).join(path)).is_ok_and(|got| got == data.as_bytes())
    };
    let arrived = eventually(Duration::from_secs(20), || {
        on_server("report.txt", "edited on B") && on_server("proj/p.txt", "project edited on B")
    });
    assert!(arrived, "B's edits reach the server");
    std::thread::sleep(Duration::from_secs(2));
    fs::rename(a.join("report\\x.txt"), a.join("report-x.txt")).expect("move back");
    fs::rename(a.join("pro\\j"), a.join("proj-a")).expect("move dir back");
    settle();
    let synced = converge("after the moves back", &[a, b, &d.server.user_dir(&d.user)]);
    let contents: Vec<&[u8]> = synced.values().flatten().map(Vec::as_slice).collect();
    // The base contents may be superseded by the edits made to them; no
    // edit is lost, nor a file of the moved directory.
    for data in [
        "edited on B",
        "edited on A",
        "project edited on B",
        "fn main() {}",
        "deep x",
    ] {
        assert!(
            contents.contains(&data.as_bytes()),
            "{data:?} is lost: {synced:#?}"
        );
    }
}
