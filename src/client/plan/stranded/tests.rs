//! Files moved to a path the protocol cannot carry hold their old paths
//! no Delete or RemoveDir is planned for them, each is listed
//! once (a directory for what is below it), and a path that holds another
//! file, or whose file is nowhere, is planned as before.

use super::super::{dir_changes, file_changes};
use super::*;
use crate::client::plan::fixtures::{self, folder_with, index_with, p};
use crate::client::plan::Op;

/// A file's stat with a known birth time (the stranded search matches by it).
fn stat(ino: u64) -> Stat {
    let btime_ns = 100 + i64::try_from(ino).expect("a small inode");
    Stat {
        btime_ns,
        ..fixtures::stat(ino)
    }
}

fn index(files: &[(&str, u64)], dirs: &[&str]) -> BTreeMap<WirePath, Entry> {
    index_with(files, dirs, stat)
}

fn folder(files: &[(&str, u64)], dirs: &[&str]) -> BTreeMap<WirePath, DiskEntry> {
    folder_with(files, dirs, stat)
}

fn stranded(at: &str, ino: u64) -> Stranded {
    Stranded {
        at: at.to_owned(),
        why: "name not syncable (backslash in path)".to_owned(),
        stat: stat(ino),
    }
}

/// What the scanner plans once `held` is left out: the removals only.
fn removals(
    disk: &BTreeMap<WirePath, DiskEntry>,
    known: &BTreeMap<WirePath, Entry>,
    held: &Held,
) -> Vec<Op> {
    let mut known = known.clone();
    known.retain(|p, _| !held.holds(p));
    let (deleted, _) = dir_changes(disk, &known);
    file_changes(disk, &known, &deleted, Vec::new(), Vec::new())
        .into_iter()
        .filter(|op| matches!(op, Op::Delete { .. } | Op::RemoveDir { .. }))
        .collect()
}

#[test]
fn a_file_renamed_to_an_unsyncable_name_is_held_not_deleted() {
    let known = index(&[("report.txt", 1), ("other.txt", 2)], &[]);
    let disk = folder(&[("other.txt", 2)], &[]);
    let held = held_by_stranded(&disk, &known, &[stranded("report\\2026.txt", 1)]);
    assert_eq!(held.paths, [p("report.txt")].into_iter().collect());
    let said = &held.listed[&p("report.txt")];
    assert!(
        said.starts_with(
            "moved to a name that cannot be synced: report\\2026.txt: name not syncable"
        ),
        "{said}"
    );
    assert_eq!(removals(&disk, &known, &held), vec![]);
}

#[test]
fn a_directory_moved_too_deep_holds_everything_below_it() {
    let known = index(
        &[
            ("proj/a", 1),
            ("proj/sub/b", 2),
            ("proj/gone", 3),
            ("keep", 4),
        ],
        &["proj", "proj/sub", "proj/empty"],
    );
    let disk = folder(&[("keep", 4)], &[]);
    let deep = "l/".repeat(64);
    let found = [
        stranded(&format!("{deep}proj/a"), 1),
        stranded(&format!("{deep}proj/sub/b"), 2),
    ];
    let held = held_by_stranded(&disk, &known, &found);
    // proj/gone is not found (removed, or past the scanner's bound): held
    // with its directory, never deleted while the directory is away.
    let all = [
        "proj",
        "proj/a",
        "proj/empty",
        "proj/gone",
        "proj/sub",
        "proj/sub/b",
    ];
    assert_eq!(held.paths, all.into_iter().map(p).collect());
    assert_eq!(held.listed.keys().collect::<Vec<_>>(), vec![&p("proj")]);
    let said = &held.listed[&p("proj")];
    assert!(said.contains(&format!(": {deep}proj: ")), "{said}");
    assert_eq!(removals(&disk, &known, &held), vec![]);
}

#[test]
fn only_the_gone_part_of_a_tree_is_held() {
    // `mv d/sub 'd/s\ub'`: d stays, d/sub goes with its file; d/x was
    // removed by hand and goes as a Delete.
    let known = index(&[("d/sub/f", 1), ("d/x", 2), ("d/y", 3)], &["d", "d/sub"]);
    let disk = folder(&[("d/y", 3)], &["d"]);
    let held = held_by_stranded(&disk, &known, &[stranded("d/s\\ub/f", 1)]);
    assert_eq!(
        held.paths,
        ["d/sub", "d/sub/f"].into_iter().map(p).collect()
    );
    assert!(
        held.listed[&p("d/sub")].contains(": d/s\\ub: "),
        "{:?}",
        held.listed
    );
    let removals = removals(&disk, &known, &held);
    assert_eq!(
        removals,
        vec![Op::Delete {
            path: p("d/x"),
            base: 12
        }]
    );
}

#[test]
fn a_file_nowhere_or_another_file_is_planned_as_before() {
    let known = index(&[("a", 1), ("b", 2), ("c", 3)], &[]);
    // a: its file is gone (the stranded file is another one: another
    // inode, or the same number born again); b: holds another file now (an
    // edit); c: a directory now (a kind change).
    let mut reborn = stranded("a\\x", 1);
    reborn.stat.btime_ns += 1;
    let found = [
        reborn,
        stranded("new\\line", 9),
        stranded("b\\old", 2),
        stranded("c\\old", 3),
    ];
    let disk = folder(&[("b", 5)], &["c"]);
    let held = held_by_stranded(&disk, &known, &found);
    assert_eq!(held, Held::default());
    let removals = removals(&disk, &known, &held);
    assert!(
        removals.contains(&Op::Delete {
            path: p("a"),
            base: 11
        }),
        "{removals:?}"
    );
}

#[test]
fn nothing_stranded_holds_nothing() {
    let known = index(&[("a", 1)], &["d"]);
    let held = held_by_stranded(&BTreeMap::new(), &known, &[]);
    assert_eq!(held, Held::default());
}
