//! The connections attached to one user, stored inline for the common case
//! of a single device: a user with one connection costs no heap allocation
//! of its own, so thousands of one-device users leave no scattered small
//! blocks behind (which would keep freed memory from being returned).

use super::bus::ConnRef;
use crate::protocol::ClientId;
use smallvec::SmallVec;
use std::net::SocketAddr;
use std::time::SystemTime;

/// A connection attached to a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    /// Its peer address.
    pub peer: SocketAddr,
    /// Set once the actor accepted the handshake.
    pub client: Option<ClientId>,
    /// The handshake was a Visit: an actor that adopts the
    /// connection after a restart must not take it for the device's live
    /// connection.
    pub visit: bool,
    /// When the connection was accepted (for `DeviceInUse`, R-4.6.13).
    pub since: SystemTime,
}

impl Member {
    /// A connection whose handshake the actor has not answered yet.
    pub fn joining(peer: SocketAddr, visit: bool, since: SystemTime) -> Member {
        Member {
            peer,
            client: None,
            visit,
            since,
        }
    }
}

/// A small map from connection to [`Member`]: the first entry lives inline,
/// more spill to the heap, and the heap block is given back once a single
/// entry is left again.
#[derive(Debug, Default)]
pub struct Members {
    entries: SmallVec<[(ConnRef, Member); 1]>,
}

impl Members {
    /// Adds (or replaces) a connection.
    pub fn insert(&mut self, conn: ConnRef, member: Member) {
        if let Some(slot) = self.get_mut(conn) {
            *slot = member;
        } else {
            self.entries.push((conn, member));
        }
    }

    /// The member for `conn`.
    pub fn get_mut(&mut self, conn: ConnRef) -> Option<&mut Member> {
        self.entries
            .iter_mut()
            .find(|(c, _)| *c == conn)
            .map(|(_, m)| m)
    }

    /// Removes a connection.
    pub fn remove(&mut self, conn: ConnRef) {
        self.entries.retain(|(c, _)| *c != conn);
        if self.entries.spilled() && self.entries.len() <= 1 {
            self.entries.shrink_to_fit();
        }
    }

    /// Every connection.
    pub fn iter(&self) -> impl Iterator<Item = &(ConnRef, Member)> {
        self.entries.iter()
    }

    /// True when no connection is attached.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_remove_iterate() {
        let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let c = |key| ConnRef { key, generation: 1 };
        let m = Member::joining(peer, false, SystemTime::UNIX_EPOCH);
        let mut members = Members::default();
        assert!(members.is_empty());
        members.insert(c(0), m);
        assert!(!members.entries.spilled(), "one member: no heap block");
        for key in 0..4 {
            members.insert(c(key), m);
        }
        members.insert(
            c(2),
            Member {
                client: Some(7),
                ..Member::joining(peer, true, SystemTime::UNIX_EPOCH)
            },
        );
        assert_eq!(members.iter().count(), 4);
        members.remove(c(0));
        members.remove(c(2));
        let left: Vec<usize> = members.iter().map(|(c, _)| c.key).collect();
        assert_eq!(left.len(), 2);
        assert!(left.contains(&1) && left.contains(&3));
        members.remove(c(1));
        assert!(!members.entries.spilled(), "one member left: back inline");
        members.remove(c(3));
        assert!(members.is_empty());
        assert!(members.get_mut(c(3)).is_none());
    }

    proptest::proptest! {
        /// Any sequence of inserts and removes leaves the same map as a
        /// BTreeMap, and never keeps a heap block for one member or none.
        #[test]
        fn behaves_as_a_map(ops in proptest::collection::vec((0usize..4, proptest::option::of(0u32..3), proptest::bool::ANY), 0..40)) {
            let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
            let mut members = Members::default();
            let mut model = std::collections::BTreeMap::new();
            for (key, client, add) in ops {
                let conn = ConnRef { key, generation: 1 };
                if add {
                    let m = Member { client: client.map(u64::from), ..Member::joining(peer, add, SystemTime::UNIX_EPOCH) };
                    members.insert(conn, m);
                    model.insert(key, m);
                } else {
                    members.remove(conn);
                    model.remove(&key);
                    proptest::prop_assert!(!members.entries.spilled() || model.len() > 1);
                }
                let mut got: Vec<(usize, Member)> = members.iter().map(|(c, m)| (c.key, *m)).collect();
                got.sort_by_key(|(k, _)| *k);
                let want: Vec<(usize, Member)> = model.iter().map(|(k, m)| (*k, *m)).collect();
                proptest::prop_assert_eq!(got, want);
                proptest::prop_assert_eq!(members.is_empty(), model.is_empty());
            }
        }
    }
}
