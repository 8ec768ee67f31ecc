//! The removal hold (PROTOCOL.md ): a push round that would remove
//! many synced files waits until the removal stops growing, so that the
//! empty-folder guard judges the settled folder (an `rm -rf folder/*` or an
//! unmount is all or nothing, never an arbitrary remainder on the other
//! devices) and a directory removed whole is sent as one `RemoveDir`, not as
//! the `Delete`s of the files the watcher saw go first. Decisions only (no
//! I/O, the clock passed in), tested in [`tests`](self).
//!
//! - fewer than [`HOLD_MIN`] files removed: sent at once (no added delay);
//! - otherwise held; every later round plans the held paths again with its
//!   own, and each change of the count re-arms the wait: [`SETTLE_STEP`], or
//!   [`MASS_SETTLE_STEP`] when the round removes at least half of the synced
//!   files (an unmount or a folder being emptied, where a remainder costs
//!   most);
//! - a hold of fewer than half of the files ends after [`HOLD_MAX`] even if
//!   the count still grows (a process that deletes a file every second must
//!   not keep every push back); a mass hold has no such end: each re-arm
//!   needs another removed file, and the index holds finitely many.

use std::time::{Duration, Instant};

/// A round removing fewer files than this is sent at once (the empty-folder
/// guard's threshold, `EMPTIED_THRESHOLD`).
pub const HOLD_MIN: usize = 10;
/// Quiet time (no change of the removal count) before a held round is sent.
pub const SETTLE_STEP: Duration = Duration::from_secs(1);
/// The same for a round that removes at least half of the synced files.
pub const MASS_SETTLE_STEP: Duration = Duration::from_secs(3);
/// A hold of fewer than half of the synced files ends after this.
pub const HOLD_MAX: Duration = Duration::from_secs(30);

/// A round held back: what it removed when last planned, and since when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hold {
    /// Synced files the round removed when last planned.
    pub removed: usize,
    /// When the hold began.
    pub since: Instant,
    /// When the count last changed.
    pub changed_at: Instant,
}

/// What to do with a planned round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Send it now (the empty-folder guard looks at the folder first).
    Send,
    /// Keep it back and plan it again (with what arrived since) at `until`.
    Hold {
        /// The hold's state to keep.
        hold: Hold,
        /// When to plan it again.
        until: Instant,
    },
}

/// Decides about a round planned at `now` that removes `removed` of the
/// `synced` files of the index (a `Delete` counts one, a `RemoveDir` the
/// indexed files below it), `held` being the hold in force, if any.
pub fn decide(held: Option<Hold>, removed: usize, synced: usize, now: Instant) -> Decision {
    if removed < HOLD_MIN {
        return Decision::Send;
    }
    let mass = removed.saturating_mul(2) >= synced;
    let step = if mass { MASS_SETTLE_STEP } else { SETTLE_STEP };
    let hold = match held {
        None => Hold {
            removed,
            since: now,
            changed_at: now,
        },
        Some(h) if h.removed != removed => Hold {
            removed,
            changed_at: now,
            ..h
        },
        Some(h) => h,
    };
    let until = hold.changed_at + step;
    if now >= until || (!mass && now >= hold.since + HOLD_MAX) {
        return Decision::Send;
    }
    Decision::Hold { hold, until }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_few_removals_are_sent_at_once() {
        let now = Instant::now();
        for removed in 0..HOLD_MIN {
            assert_eq!(decide(None, removed, 5_000, now), Decision::Send);
            assert_eq!(decide(None, removed, removed, now), Decision::Send);
        }
    }

    #[test]
    fn a_growing_removal_is_held_until_it_stops() {
        let t0 = Instant::now();
        let Decision::Hold { hold, until } = decide(None, 100, 3_000, t0) else {
            panic!("held");
        };
        assert_eq!(until, t0 + SETTLE_STEP);
        // Grows 0.5 s later: re-armed from then.
        let t1 = t0 + Duration::from_millis(500);
        let Decision::Hold { hold, until } = decide(Some(hold), 400, 3_000, t1) else {
            panic!("held");
        };
        assert_eq!(until, t1 + SETTLE_STEP);
        // A round for other paths before the step: the same wait.
        let t2 = t1 + Duration::from_millis(200);
        assert_eq!(
            decide(Some(hold), 400, 3_000, t2),
            Decision::Hold { hold, until }
        );
        // Unchanged at the step: sent.
        assert_eq!(decide(Some(hold), 400, 3_000, until), Decision::Send);
    }

    #[test]
    fn a_mass_removal_waits_longer_and_has_no_end_while_it_grows() {
        let t0 = Instant::now();
        let mut held = None;
        let mut now = t0;
        // 1 file every 2.5 s for 10 minutes: longer than SETTLE_STEP, shorter
        // than MASS_SETTLE_STEP.
        for i in 0..240 {
            match decide(held, 2_000 + i, 3_000, now) {
                Decision::Hold { hold, until } => {
                    assert_eq!(until, now + MASS_SETTLE_STEP);
                    held = Some(hold);
                }
                Decision::Send => panic!("sent while still growing at {i}"),
            }
            now += Duration::from_millis(2_500);
        }
        assert!(now > t0 + HOLD_MAX);
    }

    #[test]
    fn a_partial_hold_ends_after_hold_max() {
        let t0 = Instant::now();
        let mut held = None;
        let mut now = t0;
        let mut sent_at = None;
        for i in 0..100 {
            match decide(held, 20 + i, 3_000, now) {
                Decision::Hold { hold, .. } => held = Some(hold),
                Decision::Send => {
                    sent_at = Some(now);
                    break;
                }
            }
            now += Duration::from_millis(500);
        }
        let sent_at = sent_at.expect("sent");
        assert!(sent_at >= t0 + HOLD_MAX && sent_at < t0 + HOLD_MAX + Duration::from_secs(1));
    }

    proptest! {
        /// Any sequence of rounds: a round is sent only if fewer than
        /// HOLD_MIN files are removed, or the count has not changed for the
        /// step that applies, or a partial hold reached HOLD_MAX; and a
        /// removal that is held is re-planned no later than one step after
        /// its last change.
        #[test]
        fn sent_only_when_settled(
            synced in 10usize..5_000,
            rounds in proptest::collection::vec((0usize..5_000, 0u64..4_000), 1..60),
        ) {
            let t0 = Instant::now();
            let mut now = t0;
            let mut held: Option<Hold> = None;
            for (removed, gap_ms) in rounds {
                let removed = removed.min(synced);
                now += Duration::from_millis(gap_ms);
                let before = held;
                match decide(held, removed, synced, now) {
                    Decision::Send => {
                        let mass = removed * 2 >= synced;
                        let step = if mass { MASS_SETTLE_STEP } else { SETTLE_STEP };
                        let settled = before.is_some_and(|h| {
                            (h.removed == removed && now >= h.changed_at + step)
                                || (!mass && now >= h.since + HOLD_MAX)
                        });
                        prop_assert!(removed < HOLD_MIN || settled,
                            "sent {removed}/{synced} after {before:?}");
                        held = None;
                    }
                    Decision::Hold { hold, until } => {
                        prop_assert!(removed >= HOLD_MIN);
                        prop_assert_eq!(hold.removed, removed);
                        prop_assert!(until > now);
                        prop_assert!(until <= hold.changed_at + MASS_SETTLE_STEP);
                        if before.is_none_or(|h| h.removed != removed) {
                            prop_assert_eq!(hold.changed_at, now);
                        }
                        held = Some(hold);
                    }
                }
            }
        }
    }
}
