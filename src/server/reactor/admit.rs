//! Admission of new connections (PROTOCOL.md ): a peer
//! that has not sent its Hello yet is unidentified and costs the server a
//! slot and a few KiB, so unidentified connections give way to newcomers.
//!
//! - At `--max-handshakes-per-address`, a newcomer from that address evicts
//!   the address's oldest connection still waiting for its Hello.
//! - At `--max-connections`, a newcomer evicts the oldest connection still
//!   waiting for its Hello, whatever its address; only when every slot holds
//!   a connection past its Hello is the newcomer refused `Busy`.
//!
//! A connection past its Hello is never evicted for an unidentified one.
//! An evicted connection gets Error `Busy` (request ID 0) when it can read
//! one (plaintext, or TLS past its handshake), and a `request=connect` line.

use super::Reactor;
use crate::protocol::{ErrorCode, ErrorReport, Frame, Message};
use crate::server::bus::ConnRef;
use crate::server::connection::{Connection, Phase};
use crate::server::metrics::metrics;
use slab::Slab;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

/// Whether `c` is still open and still counted as waiting for its Hello.
fn waiting(conns: &Slab<Connection>, c: ConnRef) -> bool {
    conns
        .get(c.key)
        .is_some_and(|x| x.generation == c.generation && x.counted)
}

/// The connections waiting for their Hello, oldest first, and how many
/// each address has. Entries of connections that moved on are dropped
/// lazily ([`Unidentified::oldest`]) and at every sweep.
#[derive(Debug, Default)]
pub(super) struct Unidentified {
    /// In accept order; may hold connections no longer waiting.
    order: VecDeque<(ConnRef, IpAddr)>,
    /// Connections waiting for their Hello, per address (no zero entries).
    per_address: HashMap<IpAddr, usize>,
}

impl Unidentified {
    /// Connections of `ip` waiting for their Hello.
    pub fn count(&self, ip: IpAddr) -> usize {
        self.per_address.get(&ip).copied().unwrap_or(0)
    }

    /// Counts a new connection of `ip`.
    pub fn add(&mut self, conn: ConnRef, ip: IpAddr) {
        self.order.push_back((conn, ip));
        *self.per_address.entry(ip).or_default() += 1;
    }

    /// Counts `conn`, counted under `from` at accept, under `to` instead:
    /// a trusted proxy's connection whose header named its client (§17).
    pub fn rekey(&mut self, conn: ConnRef, from: IpAddr, to: IpAddr) {
        if let Some(entry) = self.order.iter_mut().rev().find(|(c, _)| *c == conn) {
            entry.1 = to;
        }
        self.remove(from);
        *self.per_address.entry(to).or_default() += 1;
    }

    /// Uncounts a connection of `ip` that sent its Hello or closed.
    pub fn remove(&mut self, ip: IpAddr) {
        if let Some(n) = self.per_address.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.per_address.remove(&ip);
            }
        }
    }

    /// The oldest entry still waiting (of `ip` only, if given), by
    /// `waiting(conn)`; stale entries found at the front are dropped.
    pub fn oldest(
        &mut self,
        ip: Option<IpAddr>,
        waiting: impl Fn(ConnRef) -> bool,
    ) -> Option<ConnRef> {
        while let Some(&(front, _)) = self.order.front() {
            if waiting(front) {
                break;
            }
            self.order.pop_front();
        }
        self.order
            .iter()
            .find(|(c, a)| ip.is_none_or(|ip| *a == ip) && waiting(*c))
            .map(|(c, _)| *c)
    }

    /// Drops every entry that no longer waits; shrinks the queue's memory
    /// after a flood.
    pub fn compact(&mut self, waiting: impl Fn(ConnRef) -> bool) {
        self.order.retain(|(c, _)| waiting(*c));
        if self.order.capacity() > 64 && self.order.capacity() > 4 * self.order.len() {
            self.order.shrink_to_fit();
        }
        if self.per_address.capacity() > 64
            && self.per_address.capacity() > 4 * self.per_address.len()
        {
            self.per_address.shrink_to_fit();
        }
    }
}

impl Reactor {
    /// Makes room for a newcomer from `ip` by the rules of the module doc.
    /// Returns false when it must be refused (every slot holds a connection
    /// past its Hello). A trusted proxy's newcomer (`proxied`) is not
    /// limited per address here: [`Reactor::limit_address`] runs with its
    /// client's address once its header is taken (§17).
    pub(super) fn make_room(&mut self, ip: IpAddr, proxied: bool) -> bool {
        if !proxied {
            self.limit_address(ip);
        }
        if self.conns.len() < self.config.max_connections {
            return true;
        }
        let conns = &self.conns;
        match self.unidentified.oldest(None, |c| waiting(conns, c)) {
            Some(old) => {
                let text = format!(
                    "evicted before its Hello: the server is at its limit of {} connections (--max-connections) and a new one came",
                    self.config.max_connections
                );
                self.evict(old, &text);
                true
            }
            None => false,
        }
    }

    /// At `--max-handshakes-per-address` connections of `ip` waiting for
    /// their Hello, evicts the oldest for a newcomer of `ip`.
    pub(super) fn limit_address(&mut self, ip: IpAddr) {
        let per_address = self.config.max_handshakes_per_address;
        if self.unidentified.count(ip) >= per_address {
            let conns = &self.conns;
            if let Some(old) = self.unidentified.oldest(Some(ip), |c| waiting(conns, c)) {
                let text = format!(
                    "evicted before its Hello: {per_address} connections of this address were waiting for theirs (--max-handshakes-per-address)"
                );
                self.evict(old, &text);
            }
        }
    }

    /// Closes an unidentified connection at once to free its slot.
    fn evict(&mut self, conn: ConnRef, text: &str) {
        let Some(key) = self.live(conn) else {
            return;
        };
        self.record(key, "connect", Err(text));
        if let Some(c) = self.conns.get_mut(key) {
            if !c.transport.tls_handshaking() {
                let report = ErrorReport {
                    code: ErrorCode::Busy,
                    message: text.to_owned(),
                };
                c.queue_frame(&Frame::new(0, Message::Error(report)));
                metrics().error_sent(ErrorCode::Busy);
                let _ = c.flush(&mut self.seal_buf);
            }
        }
        self.close_now(key);
    }

    /// Uncounts `key` from the unidentified connections (it sent its Hello,
    /// or is closing): idempotent.
    pub(super) fn identified(&mut self, key: usize) {
        if let Some(c) = self.conns.get_mut(key) {
            if c.counted {
                c.counted = false;
                self.unidentified.remove(c.peer.ip());
            }
        }
    }

    /// At every sweep: uncounts connections that left `AwaitHello` by a way
    /// not seen above, and drops stale queue entries.
    pub(super) fn compact_unidentified(&mut self) {
        let moved: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| c.counted && !matches!(c.phase, Phase::AwaitHello { .. }))
            .map(|(k, _)| k)
            .collect();
        for key in moved {
            self.identified(key);
        }
        let conns = &self.conns;
        self.unidentified.compact(|c| waiting(conns, c));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(key: usize) -> ConnRef {
        ConnRef { key, generation: 1 }
    }

    #[test]
    fn the_oldest_still_waiting_is_found_per_address_and_stale_entries_go() {
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let mut u = Unidentified::default();
        for (key, ip) in [(0, a), (1, b), (2, a), (3, b)] {
            u.add(conn(key), ip);
        }
        assert_eq!((u.count(a), u.count(b)), (2, 2));
        let all = |_: ConnRef| true;
        assert_eq!(u.oldest(None, all), Some(conn(0)));
        assert_eq!(u.oldest(Some(b), all), Some(conn(1)));
        // 0 sent its Hello: uncounted, and skipped (and dropped from the
        // front) by the next look.
        u.remove(a);
        let gone = |c: ConnRef| c.key != 0;
        assert_eq!(u.oldest(None, gone), Some(conn(1)));
        assert_eq!(u.oldest(Some(a), gone), Some(conn(2)));
        assert_eq!(u.order.len(), 3);
        assert_eq!(u.count(a), 1);
        // Every one of b's moved on: no entry of b left after a compaction.
        u.remove(b);
        u.remove(b);
        let only_2 = |c: ConnRef| c.key == 2;
        u.compact(only_2);
        assert_eq!(u.order.len(), 1);
        assert_eq!(u.oldest(Some(b), only_2), None);
        assert_eq!(u.count(b), 0);
        assert!(!u.per_address.contains_key(&b), "no zero entries");
    }

    /// §17: a proxied connection counted under the proxy's address at
    /// accept moves, in place, to its client's; the proxy keeps no count
    /// of it and the client's oldest is found by the client's address.
    #[test]
    fn a_rekeyed_connection_counts_for_its_client_only() {
        let proxy: IpAddr = [10, 0, 0, 1].into();
        let client: IpAddr = [192, 0, 2, 7].into();
        let mut u = Unidentified::default();
        u.add(conn(0), proxy);
        u.add(conn(1), proxy);
        u.rekey(conn(0), proxy, client);
        assert_eq!((u.count(proxy), u.count(client)), (1, 1));
        let all = |_: ConnRef| true;
        assert_eq!(u.oldest(Some(client), all), Some(conn(0)));
        assert_eq!(u.oldest(Some(proxy), all), Some(conn(1)));
        assert_eq!(u.oldest(None, all), Some(conn(0)), "accept order kept");
        u.remove(client);
        assert!(!u.per_address.contains_key(&client), "no zero entries");
    }
}
