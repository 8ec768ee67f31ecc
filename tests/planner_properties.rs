//! Property test of the client's push planner against an in-memory server
//! (issue 9, "Test the planner without I/O").
//!
//! A random base tree is synced on 2–3 devices; each device's folder is then
//! changed by random user actions (writes, deletions, moves, renames over
//! files, type changes, a file moved into a directory of its own name, an
//! entry renamed onto another's path after removing it, two entries
//! swapped through a temporary name), and
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
//! a named regression test below. `PLANNER_TRACE=1` prints each device's
//! plans, acknowledgements and pulls.

mod planner_model;

use cloudservice::client::plan::Op;
use cloudservice::protocol::{PushStatus, WirePath};
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

/// The devices after their users' actions, the server, what each did, and
/// the contents that must survive.
struct World {
    server: Server,
    devices: Vec<Device>,
    did: Vec<Did>,
    must: BTreeSet<u32>,
}

/// Runs a case; `Err` says which property failed.
fn run(case: &Case) -> Result<(), String> {
    let mut world = setup(case);
    drive(case, &mut world)?;
    check_end(&world)
}

fn setup(case: &Case) -> World {
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
    if std::env::var_os("PLANNER_TRACE").is_some() {
        eprintln!("base {base:?}");
        for dev in &devices {
            eprintln!("device {} after its actions: {:?}", dev.id, shown(dev));
        }
    }
    World {
        server,
        devices,
        did,
        must,
    }
}

/// Runs the decisions to quiescence in the case's interleaving.
fn drive(case: &Case, world: &mut World) -> Result<(), String> {
    let World {
        server, devices, ..
    } = world;
    let trace = std::env::var_os("PLANNER_TRACE").is_some();
    let mut turn = 0usize;
    let mut steps = 0usize;
    loop {
        let choices = enabled(devices, server);
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
                // The session sends what the device has seen.
                let cursor = devices[i].index.seen();
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
            Step::Pull(i) => devices[i].pull(server),
        }
    }
    Ok(())
}

/// The properties, once nothing is left to do.
fn check_end(world: &World) -> Result<(), String> {
    let World {
        server,
        devices,
        did,
        must,
    } = world;
    let truth = served(server);
    for dev in devices {
        let tree = shown(dev);
        if tree != truth {
            return Err(format!(
                "device {} differs from the server:\n device {tree:?}\n server {truth:?}",
                dev.id
            ));
        }
        for (path, (node, version)) in &server.tree {
            let entry = dev.index.get(path);
            // A directory the server already had when this device's push
            // placed something in it is indexed at that push's version (the
            // device cannot know the server did not make it, plan::ack), and
            // the older Dir entry a pull brings is then left alone
            // a later version for the same directory is not a
            // disagreement. Files must match exactly.
            let agrees = entry.is_some_and(|e| match node {
                Node::Dir => e.hash().is_none() && e.version >= *version,
                Node::File(c) => e.version == *version && e.hash() == Some(hash(*c)),
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
        (any::<u16>(), any::<u16>()).prop_map(|(at, to)| Action::Onto { at, to }),
        (any::<u16>(), any::<u16>()).prop_map(|(at, to)| Action::Swap { at, to }),
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

/// A cycle of `k` entries (`e0 -> e1 -> … -> e0`, each at the top or in
/// `p/` as `nested` says), files or directories holding files (and a
/// subdirectory), beside an untouched file; `k` = 2 is a swap.
fn rotated(k: usize, dirs: bool, nested: &[bool]) -> (Device, Server) {
    let at = |i: usize| {
        let name = format!("e{i}");
        WirePath::new(&if nested[i] { format!("p/{name}") } else { name }).expect("valid")
    };
    let mut contents = 0u32;
    let mut fresh = || {
        contents += 1;
        Node::File(contents)
    };
    let mut base = std::collections::BTreeMap::new();
    base.insert(WirePath::new("p").expect("valid"), Node::Dir);
    base.insert(WirePath::new("keep").expect("valid"), fresh());
    for i in 0..k {
        let path = at(i);
        if !dirs {
            base.insert(path, fresh());
            continue;
        }
        let below = |rest: &str| WirePath::new(&format!("{path}/{rest}")).expect("valid");
        base.insert(below("x"), fresh());
        base.insert(below("y"), fresh());
        if i % 2 == 0 {
            base.insert(below("s"), Node::Dir);
            base.insert(below("s/z"), fresh());
        }
        base.insert(path, Node::Dir);
    }
    let server = Server::with(&base);
    let mut dev = Device::synced(1, &base, template());
    // Through a temporary name, as `mv` does it: the last one out first.
    let tmp = WirePath::new("rotation.tmp").expect("valid");
    assert!(dev.move_local(&at(k - 1), &tmp));
    for i in (0..k - 1).rev() {
        assert!(dev.move_local(&at(i), &at(i + 1)));
    }
    assert!(dev.move_local(&tmp, &at(0)));
    (dev, server)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases() / 10,
        ..ProptestConfig::default()
    })]

    /// files or directories swapped or moved in a cycle of any
    /// length, seen in one look, are pushed as renames only (no upload, no
    /// Delete, no RemoveDir), each answered Applied; the server ends with
    /// the device's tree and no temporary name. Before, a swap of files
    /// went as two uploads, and of directories as an upload of every file.
    #[test]
    fn swaps_and_cycles_of_any_length_are_renames_only(
        k in 2usize..=6,
        dirs in any::<bool>(),
        nested in proptest::collection::vec(any::<bool>(), 6),
    ) {
        let (mut dev, mut server) = rotated(k, dirs, &nested);
        let mut sent = Vec::new();
        for _round in 0..4 {
            let ops = dev.plan();
            if ops.is_empty() {
                break;
            }
            for op in ops {
                let ack = server.push(dev.id, &op, dev.index.seen());
                prop_assert_eq!(ack.status, PushStatus::Applied, "{:?}", op);
                sent.push(op.clone());
                dev.acks.push_back((op, ack));
                dev.digest_ack();
            }
        }
        let others: Vec<&Op> = sent.iter().filter(|op| !matches!(op, Op::Rename { .. })).collect();
        prop_assert!(others.is_empty(), "not renames: {:?} (all: {:?})", others, sent);
        prop_assert!(dev.plan().is_empty(), "nothing left to push");
        prop_assert_eq!(served(&server), shown(&dev));
        prop_assert!(!served(&server).keys().any(|p| p.as_str().contains(".cs-move-")));
    }
}

/// Runs `case` and fails with its report (for the regression cases).
fn check(case: Case) {
    if let Err(why) = run(&case) {
        panic!("{why}\n{case:?}");
    }
}

/// A case from the `REPLAY` line a failure prints.
pub(crate) fn replay(
    base: &[(u16, u8, bool)],
    actions: &[(u8, Action)],
    schedule: &[u16],
    devices: u8,
) {
    check(Case {
        base: base.to_vec(),
        actions: actions.to_vec(),
        schedule: schedule.to_vec(),
        devices,
    });
}

#[path = "planner_model/regressions.rs"]
mod regressions;
