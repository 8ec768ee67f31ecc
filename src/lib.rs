//! CloudService: folder synchronisation over a small binary protocol.
//!
//! # Layout
//! - [`protocol`]: the wire format: frames, the incremental decoder, path rules, conflict names.
//! - [`server`]: the reactor (sockets), the per-user actors (folders, journals) and the connection log.
//! - [`client`]: the device side: index, scanner, watcher, sync session and the safe applier.

pub mod client;
pub mod protocol;
pub mod server;
