//! What a device has seen beyond its acknowledged cursor: the last
//! `PartialAck` of each device (PROTOCOL.md §5.3, R-5.3.4), a pull reply it
//! applied but for the paths it left to its push. The store asks
//! it when a base or a moved entry must have been seen.
//!
//! Kept in memory only: after a restart a device's knowledge is its
//! acknowledged cursor again, which only makes more versions unseen (an
//! extra conflict copy until its next Ack, never an overwrite).

use crate::protocol::{ClientId, WirePath};
use std::collections::{BTreeSet, HashMap};

/// One device's last partial acknowledgement.
#[derive(Debug, Clone)]
struct Partial {
    /// The head of the reply it applied (at most the server's head then).
    cursor: u64,
    /// Paths whose entries it did not apply: they and what is below them
    /// stay unseen (at most `MAX_HELD_PATHS`, R-5.3.4).
    held: BTreeSet<WirePath>,
}

impl Partial {
    /// Whether `path` is a held path or lies below one: each ancestor is
    /// looked up (a path has at most 64 components), so a Rename's walk
    /// over a large directory costs O(depth · log held) per entry.
    fn holds_back(&self, path: &WirePath) -> bool {
        let mut at = Some(path.clone());
        while let Some(p) = at {
            if self.held.contains(&p) {
                return true;
            }
            at = p.parent();
        }
        false
    }
}

/// Every device's last partial acknowledgement.
#[derive(Debug, Default)]
pub(super) struct Partials(HashMap<ClientId, Partial>);

impl Partials {
    /// A `PartialAck` of `client`: the last one counts (as the last Ack
    /// does, R-5.3.2), replacing any earlier one.
    pub(super) fn record(&mut self, client: ClientId, cursor: u64, held: Vec<WirePath>) {
        let held = held.into_iter().collect();
        self.0.insert(client, Partial { cursor, held });
    }

    /// A full Ack of `client`: it speaks for every path, so the partial
    /// one before it is forgotten.
    pub(super) fn acknowledged(&mut self, client: ClientId) {
        self.0.remove(&client);
    }

    /// Whether `client`'s last partial acknowledgement says it applied the
    /// entry of `version` at `path`: `version` is at most its cursor and
    /// `path` is neither a held path nor below one.
    pub(super) fn covers(&self, client: ClientId, path: &WirePath, version: u64) -> bool {
        self.0
            .get(&client)
            .is_some_and(|p| version <= p.cursor && !p.holds_back(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> WirePath {
        WirePath::new(s).expect("path")
    }

    #[test]
    fn held_paths_and_what_is_below_them_stay_unseen() {
        let mut partials = Partials::default();
        assert!(!partials.covers(1, &p("g"), 1), "nothing recorded");
        partials.record(1, 10, vec![p("d/x"), p("k")]);
        let table = [
            ("g", 10, true),
            ("g", 11, false),
            ("d", 10, true),
            ("d/x", 3, false),
            ("d/x/y", 3, false),
            ("d/xy", 3, true),
            ("k/a/b", 1, false),
            ("kk", 1, true),
        ];
        for (path, version, want) in table {
            assert_eq!(
                partials.covers(1, &p(path), version),
                want,
                "{path} v{version}"
            );
        }
        assert!(!partials.covers(2, &p("g"), 1), "another device");
        partials.record(1, 12, vec![p("k")]);
        assert!(partials.covers(1, &p("d/x"), 12), "the last one counts");
        partials.acknowledged(1);
        assert!(!partials.covers(1, &p("g"), 1), "a full Ack replaces it");
    }
}
