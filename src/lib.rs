//! CloudService: folder synchronisation over a small binary protocol.
//!
//! # Layout
//! - [`chunk`]: content-defined chunks, manifests and the sans-I/O assembly plan of delta transfer.
//! - [`protocol`]: the wire format: frames, the incremental decoder, path rules, conflict names.
//! - [`server`]: the reactor (sockets), the per-user actors (folders, journals) and the connection log.
//! - [`fsafe`]: symlink-safe access to a synced folder (directory handles, no PATH_MAX limit), shared by server and client.
//! - [`client`]: the device side: index, scanner, watcher, sync session and the safe applier.
//! - [`tls`]: the TLS layer: server identity, client trust (first use, pin, CA), the non-blocking rustls adapter.
//! - [`tcp_info`]: the kernel's unsent count of a TCP socket (a peer's sign of life), shared by server and client.
//! - [`cli`]: what both binaries print for a wrong command line (one line, exit 2); the one parser of duration options.
//! - [`writeback`]: a file's write-out to disk started while it arrives, so the fsync that makes it durable finds little left (client downloads, server uploads with `--fsync`).
//! - [`load`]: `cloud-load`, the capacity tester: many connections from one thread, pull round-trip percentiles.

pub mod chunk;
pub mod cli;
pub mod client;
pub mod fsafe;
pub mod load;
pub mod private_dir;
pub mod protocol;
pub mod server;
pub mod tcp_info;
pub mod test_knob;
pub mod tls;
pub mod writeback;
