//! Property test of the client's push planner against an in-memory server
//! (issue 9, "Test the planner without I/O").
//!
//! A random base tree is synced on 2–3 devices; each device's folder is then
//! changed by random user actions (writes, deletions, moves, renames over
//! files, type changes, a file moved into a directory of its own name), and
//! the devices' decisions (the real `plan::resolve`, `plan::order` and
//! `plan::ack`; a model of the applier for pulls) run until nothing is left
//! to do, pushes reaching the server and acknowledgements being digested in
//! a random interleaving. Checked: it ends; every device and the server hold
//! the same tree (and each index agrees with the server); every content a
//! device wrote and kept, and every base content nobody touched, still
//! exists; no conflict copy appears when the devices touched unrelated paths.
//!
//! `cargo test --release --test planner_properties` runs 3,000 cases;
//! `PLANNER_CASES=1000000 cargo test --release --test planner_properties`
//! is the long mode. A failure is shrunk by proptest and printed; keep it as
//! a named regression test below.

mod planner_model;

use cloudservice::protocol::WirePath;
use planner_model::device::Device;
use planner_model::server::{hash, Node, Server};
use planner_model::{
    base_tree, is_conflict_copy, perform, served, shown, template, Action, Case, Contents, Did,
};
use proptest::prelude::*;
use std::collections::BTreeSet;

/// Steps after which a case that still has work to do counts as not ending.
const STEP_LIMIT: usize = 3_000;

/// One step of the world.
#[derive(Debug, Clone, Copy)]
enum Step {
    Plan(usize),
    Serve(usize),
    Ack(usize),
    Pull(usize),
}

fn enabled(devices: &mut [Device], server: &Server) -> Vec<Step> {
    let mut steps = Vec::new();
    for (i, dev) in devices.iter_mut().enumerate() {
        let idle = dev.outbox.is_empty() && dev.acks.is_empty();
        if idle && !dev.pull_wanted && !dev.clone().plan().is_empty() {
            steps.push(Step::Plan(i));
        }
        if !dev.outbox.is_empty() {
            steps.push(Step::Serve(i));
        }
        if !dev.acks.is_empty() {
            steps.push(Step::Ack(i));
        }
        let behind = dev.pull_wanted || dev.index.cursor() != server.head;
        if idle && behind && !dev.pull_failed {
            steps.push(Step::Pull(i));
        }
    }
    steps
}

/// Runs a case; `Err` says which property failed.
fn run(case: &Case) -> Result<(), String> {
    let mut contents = Contents::default();
    let base = base_tree(case, &mut contents);
    let mut server = Server::with(&base);
    let stat = template();
    let mut devices: Vec<Device> = (0..case.devices)
        .map(|i| Device::synced(u32::from(i) + 1, &base, stat))
        .collect();
    let mut did: Vec<Did> = (0..case.devices).map(|_| Did::default()).collect();
    for (d, action) in &case.actions {
        let d = *d as usize % devices.len();
        perform(&mut devices[d], action, &mut contents, &mut did[d]);
    }
    for dev in &devices {
        for d in dev.disk.values() {
            if let planner_model::device::Disk::File(c, _) = d {
                server.contents.insert(hash(*c), *c);
            }
        }
    }
    // Contents that must survive: what each device wrote and still holds,
    // and base contents every device still holds.
    let mut must: BTreeSet<u32> = BTreeSet::new();
    let held: Vec<BTreeSet<u32>> = devices
        .iter()
        .map(|dev| {
            shown(dev)
                .values()
                .filter_map(|n| match n {
                    Node::File(c) => Some(*c),
                    Node::Dir => None,
                })
                .collect()
        })
        .collect();
    for (i, d) in did.iter().enumerate() {
        must.extend(d.wrote.intersection(&held[i]));
    }
    for n in base.values() {
        if let Node::File(c) = n {
            if held.iter().all(|h| h.contains(c)) {
                must.insert(*c);
            }
        }
    }
    let trace = std::env::var_os("PLANNER_TRACE").is_some();
    if trace {
        eprintln!("base {base:?}");
        for dev in &devices {
            eprintln!("device {} after its actions: {:?}", dev.id, shown(dev));
        }
    }
    let mut turn = 0usize;
    let mut steps = 0usize;
    loop {
        let choices = enabled(&mut devices, &server);
        if choices.is_empty() {
            break;
        }
        steps += 1;
        if steps > STEP_LIMIT {
            return Err(format!(
                "no quiescence after {STEP_LIMIT} steps: {choices:?}"
            ));
        }
        let pick = case
            .schedule
            .get(turn % case.schedule.len().max(1))
            .copied()
            .unwrap_or(0);
        turn += 1;
        let step = choices[pick as usize % choices.len()];
        if trace {
            match step {
                Step::Serve(i) => eprintln!("server applies {:?}", devices[i].outbox.front()),
                Step::Ack(i) => eprintln!("device {} digests {:?}", i + 1, devices[i].acks.front()),
                other => eprintln!("{other:?} (cursor {})", {
                    let (Step::Plan(i) | Step::Pull(i) | Step::Serve(i) | Step::Ack(i)) = other;
                    devices[i].index.cursor()
                }),
            }
        }
        match step {
            Step::Plan(i) => {
                let ops = devices[i].plan();
                let cursor = devices[i].index.cursor();
                devices[i]
                    .outbox
                    .extend(ops.into_iter().map(|op| (op, cursor)));
                devices[i].pull_failed = false;
            }
            Step::Serve(i) => {
                if let Some((op, cursor)) = devices[i].outbox.pop_front() {
                    let ack = server.push(devices[i].id, &op, cursor);
                    devices[i].acks.push_back((op, ack));
                }
            }
            Step::Ack(i) => {
                devices[i].digest_ack();
                devices[i].pull_failed = false;
            }
            Step::Pull(i) => devices[i].pull(&server),
        }
    }
    let truth = served(&server);
    for dev in &devices {
        let tree = shown(dev);
        if tree != truth {
            return Err(format!(
                "device {} differs from the server:\n device {tree:?}\n server {truth:?}",
                dev.id
            ));
        }
        for (path, (node, version)) in &server.tree {
            let entry = dev.index.get(path);
            let agrees = entry.is_some_and(|e| {
                e.version == *version
                    && match node {
                        Node::Dir => e.hash().is_none(),
                        Node::File(c) => e.hash() == Some(hash(*c)),
                    }
            });
            if !agrees {
                return Err(format!(
                    "device {}'s index has {entry:?} for {path} (server: {node:?} v{version})",
                    dev.id
                ));
            }
        }
        if dev.index.len() != server.tree.len() {
            return Err(format!("device {}'s index lists extra paths", dev.id));
        }
    }
    let stored: BTreeSet<u32> = truth
        .values()
        .filter_map(|n| match n {
            Node::File(c) => Some(*c),
            Node::Dir => None,
        })
        .collect();
    let lost: Vec<&u32> = must.difference(&stored).collect();
    if !lost.is_empty() {
        return Err(format!("contents lost: {lost:?}; final tree {truth:?}"));
    }
    // Two devices making the same move through temporary names at once may
    // leave one as a conflict copy (changes overlapped); never otherwise.
    let leftover = |p: &&WirePath| p.as_str().contains(".cs-move-") && !is_conflict_copy(p);
    if truth.keys().any(|p| leftover(&p)) {
        return Err(format!("a temporary name was left: {truth:?}"));
    }
    let overlap = did.iter().enumerate().any(|(i, a)| {
        did.iter().enumerate().any(|(j, b)| {
            i != j
                && a.touched
                    .iter()
                    .any(|p| b.touched.iter().any(|q| p.is_within(q) || q.is_within(p)))
        })
    });
    if !overlap {
        if let Some(copy) = truth.keys().find(|p| is_conflict_copy(p)) {
            return Err(format!("conflict copy {copy} though no change overlapped"));
        }
    }
    Ok(())
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        (any::<u16>(), any::<u8>()).prop_map(|(at, name)| Action::Write { at, name }),
        any::<u16>().prop_map(|at| Action::Remove { at }),
        (any::<u16>(), any::<u8>()).prop_map(|(at, name)| Action::MakeDir { at, name }),
        (any::<u16>(), any::<u16>(), any::<u8>()).prop_map(|(at, to, name)| Action::Move {
            at,
            to,
            name
        }),
        any::<u16>().prop_map(|at| Action::TypeChange { at }),
        any::<u16>().prop_map(|at| Action::IntoOwnDir { at }),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    (
        proptest::collection::vec((any::<u16>(), any::<u8>(), any::<bool>()), 0..12),
        proptest::collection::vec((any::<u8>(), action()), 0..8),
        proptest::collection::vec(any::<u16>(), 0..64),
        2u8..=3,
    )
        .prop_map(|(base, actions, schedule, devices)| Case {
            base,
            actions,
            schedule,
            devices,
        })
}

fn cases() -> u32 {
    std::env::var("PLANNER_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3_000)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        max_shrink_iters: 20_000,
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::Direct(
                "tests/planner_properties.proptest-regressions",
            ),
        )),
        ..ProptestConfig::default()
    })]

    #[test]
    fn devices_converge_without_losing_content(case in case()) {
        if let Err(why) = run(&case) {
            prop_assert!(false, "{}\nREPLAY {:?}", why, case);
        }
    }
}

/// Runs `case` and fails with its report (for the regression cases).
fn check(case: Case) {
    if let Err(why) = run(&case) {
        panic!("{why}\n{case:?}");
    }
}

/// A case from the `REPLAY` line a failure prints.
fn replay(base: &[(u16, u8, bool)], actions: &[(u8, Action)], schedule: &[u16], devices: u8) {
    check(Case {
        base: base.to_vec(),
        actions: actions.to_vec(),
        schedule: schedule.to_vec(),
        devices,
    });
}

#[test]
fn regression_1() {
    use Action::*;
    replay(
        &[
            (0, 44, true),
            (52932, 133, true),
            (850, 31, false),
            (52905, 115, true),
            (13323, 0, false),
            (26621, 125, true),
            (11453, 0, false),
        ],
        &[
            (47, TypeChange { at: 7009 }),
            (9, Remove { at: 20359 }),
            (11, Write { at: 6601, name: 0 }),
            (29, IntoOwnDir { at: 1099 }),
            (
                45,
                Move {
                    at: 59663,
                    to: 36718,
                    name: 0,
                },
            ),
        ],
        &[47663, 4537, 11806, 23874, 22020, 1691, 36752, 0, 0],
        3,
    );
}

#[test]
fn regression_2() {
    use Action::*;
    replay(
        &[
            (0, 107, true),
            (11137, 65, false),
            (45552, 0, true),
            (1981, 1, true),
            (51803, 0, true),
            (3116, 18, false),
        ],
        &[
            (162, TypeChange { at: 2156 }),
            (65, Write { at: 2284, name: 85 }),
        ],
        &[137],
        2,
    );
}

#[test]
fn regression_3() {
    use Action::*;
    replay(
        &[(0, 0, true), (10472, 0, false), (0, 17, false)],
        &[(85, IntoOwnDir { at: 0 }), (6, IntoOwnDir { at: 0 })],
        &[13483, 41237, 56511, 20082, 56971, 9269, 13268],
        2,
    );
}

#[test]
fn regression_4() {
    use Action::*;
    replay(
        &[(0, 151, false)],
        &[
            (0, MakeDir { at: 0, name: 0 }),
            (32, Write { at: 52178, name: 0 }),
            (15, IntoOwnDir { at: 0 }),
            (64, IntoOwnDir { at: 0 }),
        ],
        &[23703, 42195, 42822, 1006, 35631, 62727],
        3,
    );
}

#[test]
fn regression_5() {
    use Action::*;
    replay(
        &[
            (0, 20, true),
            (30158, 59, true),
            (8046, 38, false),
            (13798, 142, true),
            (6352, 129, false),
            (59254, 0, true),
            (19776, 125, false),
        ],
        &[
            (188, Write { at: 9956, name: 91 }),
            (136, IntoOwnDir { at: 52768 }),
            (7, Write { at: 6914, name: 0 }),
            (39, IntoOwnDir { at: 51222 }),
        ],
        &[5540, 9471],
        3,
    );
}

#[test]
fn regression_6() {
    use Action::*;
    replay(
        &[
            (0, 143, true),
            (2550, 28, true),
            (0, 101, false),
            (16069, 41, true),
            (55079, 44, false),
            (46742, 0, false),
            (43690, 43, true),
            (34969, 201, false),
        ],
        &[
            (20, IntoOwnDir { at: 1392 }),
            (216, TypeChange { at: 20031 }),
            (
                158,
                MakeDir {
                    at: 32289,
                    name: 154,
                },
            ),
            (74, TypeChange { at: 7939 }),
            (73, Write { at: 7891, name: 0 }),
            (
                126,
                Move {
                    at: 62285,
                    to: 45854,
                    name: 0,
                },
            ),
        ],
        &[7860, 4361, 9275],
        2,
    );
}

#[test]
fn regression_7() {
    use Action::*;
    replay(
        &[
            (0, 69, true),
            (36380, 4, false),
            (2864, 59, false),
            (12179, 108, false),
            (15199, 1, true),
        ],
        &[
            (1, IntoOwnDir { at: 1980 }),
            (21, TypeChange { at: 5889 }),
            (
                114,
                Move {
                    at: 47267,
                    to: 5216,
                    name: 22,
                },
            ),
        ],
        &[9209, 16832, 25685],
        3,
    );
}

#[test]
fn regression_8() {
    use Action::*;
    replay(
        &[
            (0, 111, true),
            (0, 4, true),
            (63676, 3, false),
            (20843, 12, true),
            (6276, 62, true),
            (23907, 1, false),
            (7471, 154, false),
        ],
        &[
            (28, Remove { at: 0 }),
            (
                92,
                Write {
                    at: 55972,
                    name: 38,
                },
            ),
            (39, MakeDir { at: 2979, name: 0 }),
            (169, Write { at: 0, name: 0 }),
            (
                96,
                Move {
                    at: 23053,
                    to: 14,
                    name: 10,
                },
            ),
        ],
        &[8516, 9853, 10013, 48992, 20644],
        3,
    );
}

#[test]
fn regression_9() {
    use Action::*;
    replay(
        &[
            (0, 128, true),
            (36995, 49, true),
            (6839, 69, false),
            (40176, 19, false),
            (59869, 115, true),
            (6843, 115, false),
        ],
        &[
            (
                188,
                Write {
                    at: 50966,
                    name: 11,
                },
            ),
            (
                115,
                Move {
                    at: 36021,
                    to: 1525,
                    name: 20,
                },
            ),
            (13, Remove { at: 33814 }),
        ],
        &[0, 0, 1464],
        2,
    );
}

#[test]
fn regression_10() {
    use Action::*;
    replay(
        &[
            (0, 4, true),
            (0, 3, true),
            (12536, 110, false),
            (57, 61, true),
            (8302, 59, false),
        ],
        &[
            (
                43,
                Move {
                    at: 35346,
                    to: 5855,
                    name: 0,
                },
            ),
            (151, TypeChange { at: 35088 }),
            (233, Write { at: 9352, name: 55 }),
        ],
        &[582, 61, 3907],
        3,
    );
}

#[test]
fn regression_11() {
    use Action::*;
    replay(
        &[
            (0, 59, true),
            (18823, 74, true),
            (53935, 15, true),
            (2551, 1, true),
            (42446, 44, true),
            (53685, 0, false),
            (47128, 2, false),
        ],
        &[
            (
                119,
                Move {
                    at: 3341,
                    to: 36256,
                    name: 35,
                },
            ),
            (
                29,
                Move {
                    at: 38019,
                    to: 4392,
                    name: 88,
                },
            ),
        ],
        &[],
        2,
    );
}

#[test]
fn regression_12() {
    use Action::*;
    replay(
        &[
            (0, 74, true),
            (21917, 10, true),
            (1340, 5, true),
            (20509, 35, false),
            (33432, 3, true),
            (14628, 38, false),
            (24261, 0, false),
        ],
        &[
            (20, TypeChange { at: 59105 }),
            (
                32,
                MakeDir {
                    at: 19699,
                    name: 185,
                },
            ),
            (181, Remove { at: 15641 }),
            (
                14,
                Move {
                    at: 22224,
                    to: 27955,
                    name: 152,
                },
            ),
        ],
        &[0, 31499, 4999],
        2,
    );
}

#[test]
fn regression_13() {
    use Action::*;
    replay(
        &[
            (0, 13, true),
            (3253, 20, true),
            (20672, 44, false),
            (18748, 83, false),
            (26640, 142, true),
            (2103, 0, false),
        ],
        &[
            (39, TypeChange { at: 15264 }),
            (
                178,
                Move {
                    at: 33199,
                    to: 23412,
                    name: 27,
                },
            ),
            (
                32,
                Write {
                    at: 22741,
                    name: 220,
                },
            ),
        ],
        &[1154, 21, 4502, 14383, 2643, 1060, 42985],
        3,
    );
}
