//! The test kit: one home for what the end-to-end tests and benches/e2e
//! need around the real binaries. Every integration test includes it with
//! `mod common;` (benches/e2e with `#[path = "../../tests/common/mod.rs"]`)
//! and uses the subset it needs.
//!
//! | module     | holds |
//! |------------|-------|
//! | [`server`] | [`Server`]: the real `cloud-server` on loopback, temp data dir, stop by PID, its logs |
//! | [`client`] | [`Client`], [`run_once`], [`new_user`]: the real `cloud-client` |
//! | [`devices`] | [`TwoDevices`]: server, a user, clients on folders `a` and `b`, converged; [`settle`] |
//! | [`wait`]   | [`eventually`], [`converge`], [`converge_stable`]: polling with deadlines |
//! | [`tree`]   | [`walk`], [`tree()`], [`Tree`], [`tree::tree_diff`], [`write`], [`append`], [`chmod`], [`exec_bits`]: folders by content and mode bits |
//! | [`procs`]  | [`Proc`], signals by PID, bounded waits, [`free_port`], [`log_tail`], /proc readings ([`rss_kib`], [`fds`]) |
//! | [`rng`]    | [`Rng`], [`seed`]: the one seeded PRNG and where its seed comes from |
//! | [`wire`]   | [`WireClient`]: a protocol client through our codec |
//! | [`raw`]    | frames built and read byte by byte from the spec (conformance suite) |
//! | [`restore_rig`] | [`restore_rig::RestoreRig`]: a server and devices A, B whose data directory is backed up and put back (`cp -a`) |
//! | [`relay`]  | [`relay::Relay`]: a loopback relay counting the bytes each way; can refuse a frame kind like an older server, lose one either way, or slow the uplink |
//! | [`tmpfs`]  | [`Tmpfs`]: a small tmpfs for a test that fills a disk (root only, else skipped) |
//! | [`conn`]   | [`Conn`]: the byte channel of both protocol clients, TLS unless the server is plaintext |
#![allow(dead_code)]
// Each test crate uses a different subset of the re-exports.
#![allow(unused_imports)]

pub mod client;
pub mod conn;
pub mod copies;
pub mod devices;
pub mod nobody;
pub mod procs;
pub mod raw;
pub mod relay;
pub mod restore_rig;
pub mod rng;
pub mod server;
pub mod tmpfs;
pub mod tree;
pub mod wait;
pub mod wire;

pub use client::{
    cli, new_user, run_once, status_json, status_text, status_until, watching_pair, Client,
    ClientOptions, Verbosity,
};
pub use conn::Conn;
pub use devices::{settle, TwoDevices, SETTLE};
pub use nobody::{as_nobody, cannot_run_as_nobody, give_to_nobody};
pub use procs::{
    actor_threads, fds, free_port, log_tail, read_to_end, rss_kib, signal, threads, wait_port,
    wait_timeout, Proc,
};
pub use rng::{seed, Rng};
pub use server::{Server, ServerOptions};
pub use tmpfs::Tmpfs;
pub use tree::{append, chmod, damage_in_place, exec_bits, tree, tree_bytes, walk, write, Tree};
pub use wait::{converge, converge_stable, eventually, CONVERGE};
pub use wire::{assert_error, p, Read1, WireClient};
