//! Swaps, cycles and chains planned as renames; what only looks like one
//! (an overwrite, an editor's save through a new file, a copy put back)
//! planned as before.

use super::super::{dir_changes, dir_renames, file_changes, order};
use super::*;
use crate::client::plan::fixtures::{folder_with, hash, index_with, p, stat};

fn index(files: &[(&str, u64)], dirs: &[&str]) -> BTreeMap<WirePath, Entry> {
    index_with(files, dirs, stat)
}

fn folder(files: &[(&str, u64)], dirs: &[&str]) -> BTreeMap<WirePath, DiskEntry> {
    folder_with(files, dirs, stat)
}

/// What the scanner hands the planner: an upload for every file whose
/// content is not the indexed one at its path (content follows the inode
/// here).
fn uploads(disk: &BTreeMap<WirePath, DiskEntry>, known: &BTreeMap<WirePath, Entry>) -> Vec<Op> {
    disk.iter()
        .filter_map(|(path, d)| {
            let DiskEntry::File(now) = d else { return None };
            let (base, old) = match known.get(path) {
                Some(e) => (e.version, e.hash()),
                None => (0, None),
            };
            (old != Some(hash(now.ino))).then(|| Op::Upload {
                path: path.clone(),
                base,
                stat: *now,
                hash: hash(now.ino),
            })
        })
        .collect()
}

/// The scanner's plan: directory renames alone when there are any, else
/// everything, in sending order.
fn plan(disk: &BTreeMap<WirePath, DiskEntry>, known: &BTreeMap<WirePath, Entry>) -> Vec<Op> {
    let (deleted, added) = dir_changes(disk, known);
    let mut ops = dir_renames(disk, known, &deleted, &added);
    if ops.is_empty() {
        ops = file_changes(disk, known, &deleted, added, uploads(disk, known));
    }
    let taken = |w: &WirePath| known.contains_key(w) || disk.contains_key(w);
    order(ops, &taken)
}

fn rename(from: &str, to: &str, base: u64) -> Op {
    Op::Rename {
        from: p(from),
        to: p(to),
        base,
    }
}

/// Renames with temporary names as `~`, so expectations read as the moves.
fn moves(ops: &[Op]) -> Vec<String> {
    let short = |w: &WirePath| match w.as_str().contains(".cs-move-") {
        true => "~".to_owned(),
        false => w.to_string(),
    };
    ops.iter()
        .map(|op| match op {
            Op::Rename { from, to, .. } => format!("{} -> {}", short(from), short(to)),
            other => format!("{other:?}"),
        })
        .collect()
}

#[test]
fn a_file_swap_and_a_cycle_go_as_renames_through_a_temporary_name() {
    let known = index(&[("a", 1), ("b", 2), ("c", 3), ("k", 4)], &[]);
    let swap = folder(&[("a", 2), ("b", 1), ("c", 3), ("k", 4)], &[]);
    assert_eq!(moves(&plan(&swap, &known)), ["a -> ~", "b -> a", "~ -> b"]);
    // a -> b -> c -> a.
    let cycle = folder(&[("b", 1), ("c", 2), ("a", 3), ("k", 4)], &[]);
    assert_eq!(
        moves(&plan(&cycle, &known)),
        ["a -> ~", "c -> a", "b -> c", "~ -> b"]
    );
    let ops = plan(&cycle, &known);
    assert!(ops.contains(&rename("b", "c", 12)), "{ops:?}");
}

#[test]
fn a_chain_goes_as_renames_and_an_edit_of_a_moved_file_follows_as_its_own() {
    // mv b c; mv a b.
    let known = index(&[("a", 1), ("b", 2)], &[]);
    let disk = folder(&[("b", 1), ("c", 2)], &[]);
    assert_eq!(
        plan(&disk, &known),
        [rename("b", "c", 12), rename("a", "b", 11)]
    );
    // mv a n; echo new > a (another file at the old path): the rename, then
    // the new file as new (base 0: the server moved the old one away).
    let disk = folder(&[("a", 9), ("b", 2), ("n", 1)], &[]);
    let ops = plan(&disk, &known);
    assert_eq!(ops[0], rename("a", "n", 11));
    assert!(
        matches!(&ops[1..], [Op::Upload { path, base: 0, .. }] if path == &p("a")),
        "{ops:?}"
    );
}

#[test]
fn what_only_looks_like_a_swap_is_planned_as_before() {
    let known = index(&[("a", 1), ("b", 2)], &[]);
    // mv a b over b: b's old file is gone, a rename onto b would be a
    // Conflict: an upload of b and a Delete of a, as before.
    let disk = folder(&[("b", 1)], &[]);
    let ops = plan(&disk, &known);
    assert!(
        matches!(&ops[..], [Op::Upload { path, base: 12, .. }, Op::Delete { path: d, base: 11 }]
            if path == &p("b") && d == &p("a")),
        "{ops:?}"
    );
    // An editor's save through a new file: an upload on the indexed version.
    let disk = folder(&[("a", 5), ("b", 2)], &[]);
    let ops = plan(&disk, &known);
    assert!(
        matches!(&ops[..], [Op::Upload { path, base: 11, .. }] if path == &p("a")),
        "{ops:?}"
    );
    // cp a t; mv a n; mv t a: the file at a is another with a's content (no
    // upload there): n is a copy, never a move that would empty a.
    let mut disk = folder(&[("b", 2), ("n", 1)], &[]);
    disk.insert(p("a"), DiskEntry::File(stat(6)));
    let ops = file_changes(
        &disk,
        &known,
        &[],
        Vec::new(),
        uploads(&disk, &known)[1..].to_vec(),
    );
    assert!(
        matches!(&ops[..], [Op::Upload { path, base: 0, .. }] if path == &p("n")),
        "{ops:?}"
    );
}

#[test]
fn a_directory_swap_and_cycle_go_as_directory_renames() {
    let files = [
        ("A/f", 1),
        ("A/g", 2),
        ("A/s/h", 3),
        ("B/f", 4),
        ("B/k", 6),
        ("C/x", 5),
        ("C/y", 7),
    ];
    let known = index(&files, &["A", "A/s", "B", "C"]);
    // mv A t; mv B A; mv t B.
    let swapped = [
        ("B/f", 1),
        ("B/g", 2),
        ("B/s/h", 3),
        ("A/f", 4),
        ("A/k", 6),
        ("C/x", 5),
        ("C/y", 7),
    ];
    let disk = folder(&swapped, &["A", "B", "B/s", "C"]);
    assert_eq!(moves(&plan(&disk, &known)), ["A -> ~", "B -> A", "~ -> B"]);
    // A -> B -> C -> A.
    let cycle = [
        ("B/f", 1),
        ("B/g", 2),
        ("B/s/h", 3),
        ("C/f", 4),
        ("C/k", 6),
        ("A/x", 5),
        ("A/y", 7),
    ];
    let disk = folder(&cycle, &["A", "B", "B/s", "C"]);
    assert_eq!(
        moves(&plan(&disk, &known)),
        ["A -> ~", "C -> A", "B -> C", "~ -> B"]
    );
}

#[test]
fn files_moved_into_a_directory_the_server_holds_are_not_a_directory_rename() {
    // mv A/* B/: B is still on the server, A stays: file renames.
    let known = index(&[("A/f", 1), ("A/g", 2), ("B/h", 3)], &["A", "B"]);
    let disk = folder(&[("B/f", 1), ("B/g", 2), ("B/h", 3)], &["A", "B"]);
    let (deleted, added) = dir_changes(&disk, &known);
    assert_eq!(dir_renames(&disk, &known, &deleted, &added), []);
    assert_eq!(
        plan(&disk, &known),
        [rename("A/f", "B/f", 11), rename("A/g", "B/g", 12)]
    );
    // Nothing moved: nothing counted.
    let disk = folder(&[("A/f", 1), ("A/g", 2), ("B/h", 3)], &["A", "B"]);
    assert_eq!(moved_out_dirs(&disk, &known), (vec![], vec![]));
}

#[test]
fn files_moved_into_a_new_directory_from_one_that_stays_are_file_renames() {
    // mkdir B; mv A/* B/ (A stays, empty or with a new file): a directory
    // rename A -> B would carry to B what another device added to A
    // meanwhile (CI of e31e897, planner_properties). File renames.
    let known = index(&[("A/f", 1), ("A/g", 2), ("k", 3)], &["A"]);
    for extra in [&[][..], &[("A/new", 9)][..]] {
        let mut files = vec![("B/f", 1), ("B/g", 2), ("k", 3)];
        files.extend_from_slice(extra);
        let disk = folder(&files, &["A", "B"]);
        let (deleted, added) = dir_changes(&disk, &known);
        assert_eq!(
            dir_renames(&disk, &known, &deleted, &added),
            [],
            "{extra:?}"
        );
        let ops = plan(&disk, &known);
        assert!(ops.contains(&rename("A/f", "B/f", 11)), "{ops:?}");
        assert!(ops.contains(&rename("A/g", "B/g", 12)), "{ops:?}");
        assert!(!ops
            .iter()
            .any(|op| matches!(op, Op::Rename { from, .. } if from == &p("A"))));
    }
    // mv A B (A gone): still one directory rename.
    let disk = folder(&[("B/f", 1), ("B/g", 2), ("k", 3)], &["B"]);
    assert_eq!(plan(&disk, &known), [rename("A", "B", 1)]);
}

#[test]
fn files_swapped_between_directories_that_keep_their_subdirectories_are_file_renames() {
    // mv b/x t; mv c/x b/x; mv t c/x, b also holding b/s/: the files
    // swapped, not the directories (planner_properties, s26).
    let known = index(&[("b/x", 1), ("c/x", 2)], &["b", "b/s", "c"]);
    let disk = folder(&[("b/x", 2), ("c/x", 1)], &["b", "b/s", "c"]);
    let ops = plan(&disk, &known);
    assert_eq!(
        moves(&ops),
        ["b/x -> ~", "c/x -> b/x", "~ -> c/x"],
        "{ops:?}"
    );
    // The directories swapped, subdirectory and all: two directory renames
    // (each held two files; one alone is a file swap, see below).
    let known = index(
        &[("b/x", 1), ("b/y", 3), ("c/x", 2), ("c/y", 4)],
        &["b", "b/s", "c"],
    );
    let disk = folder(
        &[("b/x", 2), ("b/y", 4), ("c/x", 1), ("c/y", 3)],
        &["b", "c", "c/s"],
    );
    assert_eq!(moves(&plan(&disk, &known)), ["b -> ~", "c -> b", "~ -> c"]);
    // Directories holding one file each, swapped whole or the files alone,
    // look the same: file renames (planner_properties, s26).
    let known = index(&[("b/x", 1), ("c/x", 2)], &["b", "c"]);
    let disk = folder(&[("b/x", 2), ("c/x", 1)], &["b", "c"]);
    assert_eq!(
        moves(&plan(&disk, &known)),
        ["b/x -> ~", "c/x -> b/x", "~ -> c/x"]
    );
}
