//! Tests of the push order: a rename waits for what frees its destination,
//! and a cycle of renames is broken through a temporary name.

use super::*;

fn p(s: &str) -> WirePath {
    WirePath::new(s).unwrap()
}

fn rename(from: &str, to: &str) -> Op {
    Op::Rename {
        from: p(from),
        to: p(to),
        base: 1,
    }
}

/// The `n`th temporary name for `from`.
fn temp(from: &str, n: u32) -> WirePath {
    let mut namer = TempNames::new(&[], &nothing_taken);
    let mut name = namer.next(&p(from));
    for _ in 1..n {
        name = namer.next(&p(from));
    }
    name
}

fn nothing_taken(_: &WirePath) -> bool {
    false
}

#[test]
fn a_plan_without_dependencies_keeps_its_order() {
    let ops = vec![
        rename("a", "b"),
        Op::MakeDir { path: p("d") },
        upload("e"),
        Op::Delete {
            path: p("c"),
            base: 2,
        },
    ];
    assert_eq!(order(ops.clone(), &nothing_taken), ops);
}

fn upload(path: &str) -> Op {
    let mut stat = crate::client::fsutil::Stat::of(&std::fs::metadata(".").unwrap());
    stat.size = 100_000;
    Op::Upload {
        path: p(path),
        base: 0,
        stat,
        hash: crate::protocol::ContentHash::of(path.as_bytes()),
    }
}

fn delete(path: &str) -> Op {
    Op::Delete {
        path: p(path),
        base: 1,
    }
}

/// `cp X Y; edit Y; rm X` (and `mv X Y` while editing, seen as a delete
/// and an upload; a directory of such files): the removals go after the
/// uploads, so the server still has X's chunks to build Y from (§13.3).
#[test]
fn removals_go_after_the_uploads_that_may_use_their_chunks() {
    let ops = vec![delete("x.bin"), upload("y.bin")];
    assert_eq!(
        order(ops, &nothing_taken),
        vec![upload("y.bin"), delete("x.bin")]
    );
    let ops = vec![
        Op::RemoveDir { path: p("d") },
        Op::MakeDir { path: p("e") },
        upload("e/a.bin"),
        upload("e/b.bin"),
    ];
    assert_eq!(
        order(ops, &nothing_taken),
        vec![
            Op::MakeDir { path: p("e") },
            upload("e/a.bin"),
            upload("e/b.bin"),
            Op::RemoveDir { path: p("d") },
        ]
    );
}

/// A removal the path rules need first still goes first: a file replacing
/// a removed directory, a directory replacing a removed file, a rename
/// onto a removed path.
#[test]
fn a_removal_that_frees_a_path_still_goes_first() {
    let ops = vec![upload("other"), upload("d"), Op::RemoveDir { path: p("d") }];
    assert_eq!(
        order(ops, &nothing_taken),
        vec![upload("other"), Op::RemoveDir { path: p("d") }, upload("d")]
    );
    let ops = vec![upload("f/inner"), delete("f")];
    assert_eq!(
        order(ops, &nothing_taken),
        vec![delete("f"), upload("f/inner")]
    );
    let ops = vec![rename("a", "b"), upload("c"), delete("b")];
    assert_eq!(
        order(ops, &nothing_taken),
        vec![upload("c"), delete("b"), rename("a", "b")]
    );
}

proptest::proptest! {
    /// Random plans over a few names: every operation is sent once (renames
    /// may go in two halves), and a removal no other operation of the plan
    /// waits for (it frees neither the path another fills nor an ancestor
    /// or descendant of it, and holds no rename's source) comes after every
    /// operation that is not a removal.
    #[test]
    fn free_removals_come_after_everything_else(
        picks in proptest::collection::vec((0u8..4, 0usize..6), 1..10)
    ) {
        let names = ["a", "b", "a/x", "b/y", "c", "d/z"];
        let mut seen = std::collections::BTreeSet::new();
        let mut ops = Vec::new();
        for (kind, i) in picks {
            if !seen.insert(names[i]) {
                continue;
            }
            ops.push(match kind {
                0 => upload(names[i]),
                1 => delete(names[i]),
                2 => Op::RemoveDir { path: p(names[i]) },
                _ => Op::MakeDir { path: p(names[i]) },
            });
        }
        let out = order(ops.clone(), &nothing_taken);
        proptest::prop_assert_eq!(out.len(), ops.len());
        for op in &ops {
            proptest::prop_assert!(out.contains(op));
        }
        let related = |a: &WirePath, b: &WirePath| a.is_within(b) || b.is_within(a);
        let free = |r: &Op| {
            let freed = r.frees().expect("a removal frees its path");
            ops.iter()
                .filter(|o| *o != r)
                .all(|o| o.occupies().is_none_or(|f| !related(f, freed)))
        };
        let last_other = out.iter().rposition(|o| !o.removes());
        for (at, op) in out.iter().enumerate() {
            if op.removes() && free(op) {
                proptest::prop_assert!(
                    last_other.is_none_or(|l| l < at),
                    "{:?} sent before other operations: {:?}",
                    op,
                    out
                );
            }
        }
    }
}

#[test]
fn a_removed_destination_is_freed_first() {
    // rm -r conf; mv conf.new conf
    let ops = vec![
        rename("conf.new", "conf"),
        Op::RemoveDir { path: p("conf") },
    ];
    assert_eq!(
        order(ops, &nothing_taken),
        vec![
            Op::RemoveDir { path: p("conf") },
            rename("conf.new", "conf")
        ]
    );
}

#[test]
fn a_rename_below_its_own_source_goes_through_a_temporary_name() {
    // mv A1 A1_old; mkdir A1; mv A1_old A1/A1
    let ops = vec![rename("A1", "A1/A1"), Op::MakeDir { path: p("A1") }];
    let first = temp("A1", 1);
    let taken = |q: &WirePath| *q == first;
    let tmp = temp("A1", 2);
    assert_eq!(
        order(ops, &taken),
        vec![
            rename("A1", tmp.as_str()),
            Op::MakeDir { path: p("A1") },
            rename(tmp.as_str(), "A1/A1"),
        ]
    );
}

#[test]
fn a_swap_is_broken_through_a_temporary_name() {
    let ops = vec![rename("d/a", "d/b"), rename("d/b", "d/a")];
    assert_eq!(
        order(ops, &nothing_taken),
        vec![
            rename("d/a", temp("d/a", 1).as_str()),
            rename("d/b", "d/a"),
            rename(temp("d/a", 1).as_str(), "d/b"),
        ]
    );
}

#[test]
fn a_file_moved_up_over_its_removed_directory() {
    // mv conf/a.ini t; rm -r conf; mv t conf
    let ops = vec![
        rename("conf/a.ini", "conf"),
        Op::RemoveDir { path: p("conf") },
    ];
    assert_eq!(
        order(ops, &nothing_taken),
        vec![
            rename("conf/a.ini", temp("conf/a.ini", 1).as_str()),
            Op::RemoveDir { path: p("conf") },
            rename(temp("conf/a.ini", 1).as_str(), "conf"),
        ]
    );
}

#[test]
fn a_rename_leaves_before_its_source_directory_is_removed() {
    let ops = vec![Op::RemoveDir { path: p("old") }, rename("old/keep", "keep")];
    assert_eq!(
        order(ops, &nothing_taken),
        vec![rename("old/keep", "keep"), Op::RemoveDir { path: p("old") }]
    );
}
