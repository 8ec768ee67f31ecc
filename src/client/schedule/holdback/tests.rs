//! The hold's rules as a table, and a property test against a simple model.

use super::*;
use proptest::prelude::*;

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
        FIRST_DELAY
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
        delay(2)
    );
    assert!(hold.blocks(&wp("d/big.bin"), at(15)));
    assert!(!hold.blocks(&wp("d/big.bin"), at(16)));
    // It goes through: nothing held, and a later failure starts at 5 s.
    assert!(hold.succeeded(&wp("d/big.bin")));
    assert!(hold.is_empty());
    assert_eq!(hold.failed(&wp("d/big.bin"), "again", at(100)), FIRST_DELAY);
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
                    let n = model.get(&i).map_or(0, |m| m.0) + 1;
                    let wait = hold.failed(&wp(names[i]), "full", now);
                    prop_assert_eq!(wait, delay(n));
                    prop_assert!(wait >= FIRST_DELAY && wait <= MAX_DELAY);
                    model.insert(i, (n, now + wait, false));
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
