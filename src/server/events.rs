//! What the server tells the person running it: events the library reports
//! through one callback, which the binary turns into lines on stdout. The
//! library never prints; a test or an embedding program can watch the same
//! events.

use crate::protocol::UserId;
use std::net::SocketAddr;
use std::sync::Arc;

/// Something the operator should see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerEvent {
    /// Connections can be accepted at `addr` (port 0 resolved).
    Listening {
        /// The bound address.
        addr: SocketAddr,
        /// New connections beyond this many are refused.
        max_connections: usize,
    },
    /// A `Hello` in mode NewUser created this user (its folder and journal
    /// exist; the Welcome is on its way).
    NewUser(UserId),
}

/// The callback events go to; shared by the reactor and every actor thread.
pub type EventSink = Arc<dyn Fn(ServerEvent) + Send + Sync>;
