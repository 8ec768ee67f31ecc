//! The hold's rules as a table, and a property test against a simple model.

use super::*;
use proptest::prelude::*;
use std::collections::HashSet;

fn wp(s: &str) -> WirePath {
    WirePath::new(s).expect("test path")
}

#[test]
fn the_delay_doubles_from_5_s_to_5_min() {
    let secs: Vec<u64> = (1..=9).map(|n| delay(n).as_secs()).collect();
    assert_eq!(secs, [5, 10, 20, 40, 80, 160, 300, 300, 300]);
    assert_eq!(delay(0), FIRST_DELAY);
    assert_eq!(delay(u32::MAX), MAX_DELAY);
}

#[test]
fn only_the_held_path_and_its_relatives_wait() {
    let t0 = Instant::now();
    let mut hold = HoldBack::default();
    assert_eq!(
        hold.failed(&wp("d/big.bin"), "No space left", t0),
        Some(FIRST_DELAY)
    );
    let at = |s| t0 + Duration::from_secs(s);
    // (path, seconds after the failure, blocked)
    let table = [
        ("d/big.bin", 0, true),
        ("d/big.bin", 4, true),
        ("d", 1, true),            // its directory (a RemoveDir, a rename of it)
        ("d/big.bin/x", 1, true),  // below it (a directory made in its place)
        ("d/big.bin2", 1, false),  // a name that only starts the same
        ("d/small.txt", 1, false), // a neighbour
        ("small.txt", 1, false),
        ("d/big.bin", 5, false), // the wait is over
    ];
    for (path, s, blocked) in table {
        assert_eq!(hold.blocks(&wp(path), at(s)), blocked, "{path} at {s} s");
    }
    assert!(hold.take_due(at(4)).is_empty());
    assert_eq!(hold.next_due(), Some(at(5)));
    assert_eq!(hold.take_due(at(5)), vec![wp("d/big.bin")]);
    assert!(hold.take_due(at(6)).is_empty(), "handed out once");
    assert_eq!(hold.next_due(), None);
    assert_eq!(hold.trying().count(), 1);
    // The try fails again: twice the wait.
    assert_eq!(
        hold.failed(&wp("d/big.bin"), "No space left", at(6)),
        Some(delay(2))
    );
    assert!(hold.blocks(&wp("d/big.bin"), at(15)));
    assert!(!hold.blocks(&wp("d/big.bin"), at(16)));
    // It goes through: nothing held, and a later failure starts at 5 s.
    assert!(hold.succeeded(&wp("d/big.bin")));
    assert!(hold.is_empty());
    assert_eq!(
        hold.failed(&wp("d/big.bin"), "again", at(100)),
        Some(FIRST_DELAY)
    );
}

/// breaker27 F1: room came back (the index is saved again): the waits
/// not over end now; a path being tried is left alone; the count stays,
/// so a new failure waits the next, longer delay.
#[test]
fn room_back_ends_the_waits_but_keeps_the_count() {
    let t0 = Instant::now();
    let at = |s| t0 + Duration::from_secs(s);
    let mut hold = HoldBack::default();
    for _ in 0..4 {
        let now = hold.next_due().unwrap_or(t0);
        hold.take_due(now);
        hold.failed(&wp("t/t2"), "No space left", now);
    }
    hold.failed(&wp("t/t3"), "No space left", t0);
    hold.take_due(at(5));
    assert_eq!(hold.trying().count(), 1, "t/t3 is being tried");
    assert!(hold.blocks(&wp("t/t2"), at(40)));
    assert_eq!(hold.wake(at(40)), 1, "only t/t2's wait ran");
    assert!(!hold.blocks(&wp("t/t2"), at(40)));
    assert_eq!(hold.take_due(at(40)), vec![wp("t/t2")]);
    assert_eq!(
        hold.failed(&wp("t/t2"), "No space left", at(40)),
        Some(delay(5))
    );
    assert_eq!(hold.wake(at(41)), 1);
    assert_eq!(hold.wake(at(41)), 0, "nothing left waiting");
}

/// breaker26 F1: a file placed from local content (not stopped by the
/// hold) failed at every pull, each failure doubled the wait (5 s, 10 s
/// 19 ms later, … 300 s after 8 s) and said so again. A failure while the
/// announced wait runs keeps that wait and its count and announces
/// nothing; the reason is the newest; the next failure after the wait
/// doubles it once.
#[test]
fn failures_within_the_announced_wait_neither_grow_it_nor_announce() {
    let t0 = Instant::now();
    let at = |ms| t0 + Duration::from_millis(ms);
    let mut hold = HoldBack::default();
    let f = wp("w/h3b.txt");
    assert_eq!(hold.failed(&f, "Permission denied", t0), Some(FIRST_DELAY));
    for ms in [19, 1_000, 2_000, 4_999] {
        assert_eq!(
            hold.failed(&f, "Permission denied (again)", at(ms)),
            None,
            "{ms} ms"
        );
    }
    let h = hold.iter().next().expect("held").1.clone();
    assert_eq!((h.failures, h.next_try), (1, at(5_000)));
    assert_eq!(h.reason, "Permission denied (again)");
    assert!(hold.blocks(&f, at(4_999)) && !hold.blocks(&f, at(5_000)));
    // The wait is over: this failure is the next try, 10 s; once.
    assert_eq!(
        hold.failed(&f, "Permission denied", at(5_000)),
        Some(delay(2))
    );
    assert_eq!(hold.failed(&f, "Permission denied", at(5_001)), None);
    // Handed out for a try, failed: the next wait too.
    assert_eq!(hold.take_due(at(15_000)), vec![f.clone()]);
    assert_eq!(
        hold.failed(&f, "Permission denied", at(15_100)),
        Some(delay(3))
    );
    // The reason of a blocked path names its cause, for the log.
    assert_eq!(
        hold.blocked_by(&f, at(15_200)),
        Some((&f, "Permission denied"))
    );
    assert_eq!(hold.blocked_by(&wp("w"), at(15_200)).map(|b| b.0), Some(&f));
    assert_eq!(hold.blocked_by(&wp("x"), at(15_200)), None);
}

/// What a pull's end releases, as a table: (held, trying, failed again,
/// placed, the pull complete) → released.
#[test]
fn a_pull_releases_what_it_placed_by_any_route_and_everything_once_complete() {
    let t0 = Instant::now();
    // (trying, failed, placed, complete, released)
    let table = [
        (false, false, false, false, false), // waits, not tried: stays
        (false, false, true, false, true),   // placed from local content
        (true, false, false, false, true),   // tried and not failed
        (true, true, false, false, false),   // tried, failed again
        (false, true, true, false, false),   // failed again wins
        (false, false, false, true, true),   // the pull applied everything
        (true, true, false, true, false),    // ... but this one failed
    ];
    for (n, (trying, failed, placed, complete, released)) in table.into_iter().enumerate() {
        let mut hold = HoldBack::default();
        let (p, other) = (wp("d/p.txt"), wp("d/q.txt"));
        hold.failed(&p, "full", t0);
        hold.failed(&other, "full", t0 + Duration::from_secs(100));
        if trying {
            assert_eq!(hold.take_due(t0 + FIRST_DELAY), vec![p.clone()], "row {n}");
        }
        let failed_set: HashSet<&WirePath> = if failed { [&p].into() } else { HashSet::new() };
        let placed_list = if placed { vec![p.clone()] } else { Vec::new() };
        let out = hold.after_pull(&failed_set, &placed_list, complete);
        assert_eq!(out.contains(&p), released, "row {n}: {out:?}");
        assert_eq!(hold.holds(&p), !released, "row {n}");
        assert_eq!(hold.holds(&other), !complete, "row {n}: a bystander");
    }
}

#[derive(Debug, Clone)]
enum Step {
    Fail(u8),
    Succeed(u8),
    Wait(u16),
    Take,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0u8..4).prop_map(Step::Fail),
        (0u8..4).prop_map(Step::Succeed),
        (0u16..400).prop_map(Step::Wait),
        Just(Step::Take),
    ]
}

proptest! {
    /// Against a model (per path: failures in a row, next try, handed
    /// out): the delay after n failures is delay(n), a path is blocked
    /// exactly while its wait runs, paths never held are never blocked,
    /// and take_due hands each wait out once.
    #[test]
    fn the_hold_follows_its_model(steps in proptest::collection::vec(step(), 1..80)) {
        let t0 = Instant::now();
        let names = ["a", "b/c", "d/e", "f"];
        let mut now = t0;
        let mut hold = HoldBack::default();
        let mut model: BTreeMap<usize, (u32, Instant, bool)> = BTreeMap::new();
        for s in steps {
            match s {
                Step::Fail(i) => {
                    let i = usize::from(i);
                    let within = model.get(&i).is_some_and(|m| !m.2 && now < m.1);
                    let got = hold.failed(&wp(names[i]), "full", now);
                    if within {
                        // The announced wait stands (breaker26 F1).
                        prop_assert_eq!(got, None);
                    } else {
                        let n = model.get(&i).map_or(0, |m| m.0) + 1;
                        prop_assert_eq!(got, Some(delay(n)));
                        let wait = delay(n);
                        prop_assert!(wait >= FIRST_DELAY && wait <= MAX_DELAY);
                        model.insert(i, (n, now + wait, false));
                    }
                }
                Step::Succeed(i) => {
                    let i = usize::from(i);
                    prop_assert_eq!(hold.succeeded(&wp(names[i])), model.remove(&i).is_some());
                }
                Step::Wait(secs) => now += Duration::from_secs(u64::from(secs)),
                Step::Take => {
                    let mut expected: Vec<WirePath> = model
                        .iter_mut()
                        .filter(|(_, m)| !m.2 && now >= m.1)
                        .map(|(i, m)| {
                            m.2 = true;
                            wp(names[*i])
                        })
                        .collect();
                    expected.sort();
                    prop_assert_eq!(hold.take_due(now), expected);
                }
            }
            for (i, name) in names.iter().enumerate() {
                let waiting = model.get(&i).is_some_and(|m| now < m.1);
                prop_assert_eq!(hold.blocks(&wp(name), now), waiting, "{}", name);
            }
            prop_assert!(!hold.blocks(&wp("never/held"), now));
            prop_assert_eq!(hold.is_empty(), model.is_empty());
        }
    }
}
