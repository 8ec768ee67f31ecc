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
        Op::Delete {
            path: p("c"),
            base: 2,
        },
        Op::MakeDir { path: p("d") },
    ];
    assert_eq!(order(ops.clone(), &nothing_taken), ops);
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
