//! The connections attached to one user, stored inline for the common case
//! of a single device: a user with one connection costs no heap allocation
//! of its own, so thousands of one-device users leave no scattered small
//! blocks behind (which would keep freed memory from being returned).

use super::bus::ConnRef;
use crate::protocol::ClientId;
use std::net::SocketAddr;

/// A connection attached to a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    /// Its peer address.
    pub peer: SocketAddr,
    /// Set once the actor accepted the handshake.
    pub client: Option<ClientId>,
}

/// A small map from connection to [`Member`].
#[derive(Debug, Default)]
pub struct Members {
    first: Option<(ConnRef, Member)>,
    rest: Vec<(ConnRef, Member)>,
}

impl Members {
    /// Adds (or replaces) a connection.
    pub fn insert(&mut self, conn: ConnRef, member: Member) {
        if let Some(slot) = self.get_mut(conn) {
            *slot = member;
        } else if self.first.is_none() {
            self.first = Some((conn, member));
        } else {
            self.rest.push((conn, member));
        }
    }

    /// The member for `conn`.
    pub fn get_mut(&mut self, conn: ConnRef) -> Option<&mut Member> {
        if let Some((c, m)) = self.first.as_mut() {
            if *c == conn {
                return Some(m);
            }
        }
        self.rest
            .iter_mut()
            .find(|(c, _)| *c == conn)
            .map(|(_, m)| m)
    }

    /// Removes a connection.
    pub fn remove(&mut self, conn: ConnRef) {
        if self.first.is_some_and(|(c, _)| c == conn) {
            self.first = self.rest.pop();
        } else {
            self.rest.retain(|(c, _)| *c != conn);
        }
        if self.rest.is_empty() {
            self.rest = Vec::new();
        }
    }

    /// Every connection.
    pub fn iter(&self) -> impl Iterator<Item = &(ConnRef, Member)> {
        self.first.iter().chain(self.rest.iter())
    }

    /// True when no connection is attached.
    pub fn is_empty(&self) -> bool {
        self.first.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_remove_iterate() {
        let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let c = |key| ConnRef { key, generation: 1 };
        let m = Member { peer, client: None };
        let mut members = Members::default();
        assert!(members.is_empty());
        for key in 0..4 {
            members.insert(c(key), m);
        }
        members.insert(
            c(2),
            Member {
                peer,
                client: Some(7),
            },
        );
        assert_eq!(members.iter().count(), 4);
        members.remove(c(0));
        members.remove(c(2));
        let left: Vec<usize> = members.iter().map(|(c, _)| c.key).collect();
        assert_eq!(left.len(), 2);
        assert!(left.contains(&1) && left.contains(&3));
        members.remove(c(1));
        members.remove(c(3));
        assert!(members.is_empty());
        assert!(members.get_mut(c(3)).is_none());
    }
}
