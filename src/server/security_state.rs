//! Who may get in, as a data directory records it (PROTOCOL.md ):
//! each user's revoked devices, join code and unused invites, and how two
//! such records merge when a backup is put back with `cloud-server restore`
//! ([`super::restore_backup`] reads and writes the files; this module only
//! decides).
//!
//! A backup holds the security state of the day it was taken. Put back as
//! it is, it would lift every revocation, bring back every join code and
//! invite retired since, and let a stolen device back in (outside tester
//! breaker18, F11). So the state of the directory being replaced is merged
//! with the backup's, and the merge only ever closes doors:
//! - a device revoked in either is revoked (a reinstatement made after the
//!   backup is undone too: the safe side; the command says so);
//! - the join code is the one of the later generation (each `rotate-join`
//!   counts one up), so a rotated code never comes back;
//! - an invite stays only if both hold it unused: one used or retired
//!   since the backup is gone, one made since is dropped too (the command
//!   says so; the operator makes a new one).
//!
//! The merge is commutative, associative and idempotent, so the order in
//! which states meet (and meeting one twice) does not matter.

use crate::protocol::ClientId;
use std::collections::BTreeSet;

/// A user's join code as the data directory records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct JoinCode {
    /// How many times the code was rotated when this one was made (1 for
    /// the first; a code made before generations were counted reads as 1).
    pub generation: u64,
    /// When it was made, seconds since the Unix epoch (the file's time for
    /// a code made before generations were counted): orders two codes of
    /// one generation, which only a restore of a restored copy can make.
    pub made: u64,
    /// SHA-256 of the code.
    pub digest: [u8; 32],
}

/// One user's security state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserSecurity {
    /// Devices whose key is refused.
    pub revoked: BTreeSet<ClientId>,
    /// The current join code; `None`: the bare user ID lets a device join.
    pub join: Option<JoinCode>,
    /// SHA-256 digests of the unused one-time invites.
    pub invites: BTreeSet<[u8; 32]>,
}

/// The state that keeps every door either of `a` and `b` closed: the
/// union of the revocations, the later join code, the invites both hold.
pub fn merge(a: &UserSecurity, b: &UserSecurity) -> UserSecurity {
    UserSecurity {
        revoked: a.revoked.union(&b.revoked).copied().collect(),
        // `None` (no code: the bare ID joins) orders below every code.
        join: a.join.max(b.join),
        invites: a.invites.intersection(&b.invites).copied().collect(),
    }
}

/// What a restore changed of the backup's state, for the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Carried {
    /// Revoked after the backup was taken: stays revoked.
    Revoked(ClientId),
    /// Revoked in the backup, reinstated since: revoked again (reinstate
    /// it once more if that was meant).
    StillRevoked(ClientId),
    /// The join code was rotated after the backup: the later code stays,
    /// the backup's (or the bare user ID) no longer lets a device join.
    JoinCode,
    /// Unused invites of the backup that were used or retired since.
    InvitesRetired(usize),
    /// Unused invites made after the backup: retired (make new ones).
    InvitesDropped(usize),
}

/// What `merged` (the merge of `backup` and `current`) changes of the
/// backup's state, in a fixed order.
pub fn carried(
    backup: &UserSecurity,
    current: &UserSecurity,
    merged: &UserSecurity,
) -> Vec<Carried> {
    let mut out = Vec::new();
    for id in merged.revoked.difference(&backup.revoked) {
        out.push(Carried::Revoked(*id));
    }
    for id in backup.revoked.difference(&current.revoked) {
        out.push(Carried::StillRevoked(*id));
    }
    if merged.join != backup.join {
        out.push(Carried::JoinCode);
    }
    let retired = backup.invites.difference(&merged.invites).count();
    if retired > 0 {
        out.push(Carried::InvitesRetired(retired));
    }
    let dropped = current.invites.difference(&merged.invites).count();
    if dropped > 0 {
        out.push(Carried::InvitesDropped(dropped));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn code(generation: u64, made: u64, byte: u8) -> JoinCode {
        JoinCode {
            generation,
            made,
            digest: [byte; 32],
        }
    }

    fn state(revoked: &[ClientId], join: Option<JoinCode>, invites: &[u8]) -> UserSecurity {
        UserSecurity {
            revoked: revoked.iter().copied().collect(),
            join,
            invites: invites.iter().map(|b| [*b; 32]).collect(),
        }
    }

    /// Small values, so that states share devices, codes and invites often.
    fn arb_state() -> impl Strategy<Value = UserSecurity> {
        (
            proptest::collection::btree_set(1u64..6, 0..4),
            proptest::option::of((0u64..3, 0u64..3, 0u8..3)),
            proptest::collection::btree_set(0u8..4, 0..4),
        )
            .prop_map(|(revoked, join, invites)| UserSecurity {
                revoked,
                join: join.map(|(g, m, d)| code(g, m, d)),
                invites: invites.into_iter().map(|b| [b; 32]).collect(),
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        /// The order in which states meet, and meeting one twice, change
        /// nothing; no revocation is ever dropped; no join code older than
        /// either side's comes back; no invite appears that one side lacks.
        #[test]
        fn merging_is_commutative_associative_idempotent_and_only_closes_doors(
            a in arb_state(), b in arb_state(), c in arb_state()
        ) {
            let ab = merge(&a, &b);
            prop_assert_eq!(&ab, &merge(&b, &a));
            prop_assert_eq!(merge(&ab, &c), merge(&a, &merge(&b, &c)));
            prop_assert_eq!(merge(&a, &a), a.clone());
            prop_assert_eq!(merge(&ab, &b), ab.clone());
            prop_assert!(a.revoked.is_subset(&ab.revoked) && b.revoked.is_subset(&ab.revoked));
            prop_assert!(ab.join >= a.join && ab.join >= b.join);
            prop_assert!(ab.join == a.join || ab.join == b.join);
            prop_assert!(ab.invites.is_subset(&a.invites) && ab.invites.is_subset(&b.invites));
            // Whatever the merge changed of a backup `a`, it names.
            let said = carried(&a, &b, &ab);
            for id in ab.revoked.difference(&a.revoked) {
                prop_assert!(said.contains(&Carried::Revoked(*id)));
            }
            prop_assert_eq!(said.contains(&Carried::JoinCode), ab.join != a.join);
        }
    }

    /// The finding's order and its neighbours: backup, then revoke and
    /// rotate (or reinstate, or invite) on the live directory, then the
    /// backup is put back.
    #[test]
    fn a_restore_keeps_what_was_done_after_the_backup() {
        let backup = state(&[3], Some(code(1, 10, 1)), &[7, 8]);
        // After the backup: device 2 revoked, device 3 reinstated, the code
        // rotated (which retired invites 7 and 8), invite 9 made.
        let current = state(&[2], Some(code(2, 20, 2)), &[9]);
        let merged = merge(&backup, &current);
        assert_eq!(merged, state(&[2, 3], Some(code(2, 20, 2)), &[]));
        assert_eq!(
            carried(&backup, &current, &merged),
            vec![
                Carried::Revoked(2),
                Carried::StillRevoked(3),
                Carried::JoinCode,
                Carried::InvitesRetired(2),
                Carried::InvitesDropped(1),
            ]
        );
        // Nothing done since the backup: nothing to say.
        assert_eq!(merge(&backup, &backup), backup);
        assert!(carried(&backup, &backup, &backup).is_empty());
        // A first join code made after a backup that had none.
        let none = state(&[], None, &[]);
        let first = state(&[], Some(code(1, 5, 4)), &[]);
        assert_eq!(merge(&none, &first).join, first.join);
        // Two codes of one generation: the later one.
        assert_eq!(
            merge(&state(&[], Some(code(1, 5, 9)), &[]), &first).join,
            Some(code(1, 5, 9))
        );
        assert_eq!(
            merge(&state(&[], Some(code(1, 6, 0)), &[]), &first).join,
            Some(code(1, 6, 0))
        );
    }
}
