//! CloudService: folder synchronisation over a small binary protocol.
//!
//! # Layout
//! - [`protocol`]: the wire format: frames, the incremental decoder, path rules, conflict names.
//! - [`server`]: the reactor (sockets), the per-user actors (folders, journals) and the connection log.
//! - [`fsafe`]: symlink-safe access to a synced folder (directory handles, no PATH_MAX limit), shared by server and client.
//! - [`client`]: the device side: index, scanner, watcher, sync session and the safe applier.
//! - [`load`]: `cloud-load`, the capacity tester: many connections from one thread, pull round-trip percentiles.

pub mod client;
pub mod fsafe;
pub mod load;
pub mod protocol;
pub mod server;
