//! The client: watches a local folder, pushes its changes, pulls the others'.
//!
//! # Layout
//! - [`session`]: the loop that ties everything together (connect, push, pull, retry).
//! - [`address`]: the server's address as typed, looked up at each connection attempt.
//! - [`connection`]: one TCP connection; a reader thread turns bytes into frames.
//! - [`unreachable`]: why a server could not be reached, in words with what to check.
//! - [`link_watch`]: one connection's signs of life and waits, watched even inside a blocked send.
//! - [`sliced`]: blocking writes in slices of bounded time (a beat and the liveness rule between them).
//! - [`pace`]: a connection attempt's waits (connect, TLS, Hello) in slices: a beat, the stop request, "connecting" in status.
//! - [`state`]: `FOLDER/.cloudservice/`: who this device is.
//! - [`rejoin`]: the command that joins a folder again when the server no longer knows the device.
//! - [`origin`]: where that identity was made: a copied folder does not run as the device.
//! - [`spare`]: room kept in reserve on the folder's disk for the removals that free it.
//! - [`status`]: the running client's status file, and the `status` command's report.
//! - [`index`]: what every synced path was when last agreed with the server.
//! - [`detect`]: the one rule for "may this file have changed since indexed".
//! - [`scanner`]: walks the folder, hashes what changed, asks [`plan`] for the pushes.
//! - [`plan`]: the push decisions without I/O: what to push, in what order, what an ack means.
//! - [`watcher`]: notify events → "look at these paths again" (or "this file is complete").
//! - [`schedule`]: the session's timers: what is due when (push rounds, pulls, pings, reconnection);
//!   its `liveness` holds the one rule for a silent server.
//! - [`push`]: sending pushes, digesting their acknowledgements.
//! - [`conflict`]: every conflict decision (pull and push answers), without I/O.
//! - [`aside`]: moving an entry to the server's conflict name without replacing anything.
//! - [`pull`] and [`applier`]: applying the server's changes without losing a local edit.
//! - [`delta_fetch`] and [`fetch_sparse`]: one delta download's build; its zero chunks stay holes.
//! - [`fetch_partial`]: a large whole-file Fetch written where a cut-off one resumes (as a delta download).
//! - [`crate::writeback`]: a build written out to disk while it arrives (the fsync before placing it finds little); shared with the server's uploads.
//! - [`ignore`]: `.cloudignore` and the built-in rules: which paths are not synced.
//! - [`fsutil`]: hashing, atomic writes, symlink-proof path checks.
//! - [`rename`]: atomic no-replace and exchange renames (placement races).
//! - [`lease`]: is a file open for writing somewhere (before deleting it)?
//! - [`held_open`]: a pull's change waits while a program holds the file (or its SQLite companions) open for writing.
//! - [`mounts`]: a missing file gone with the file system mounted above it is not deleted.
//! - [`progress`] and [`logging`]: feedback on a terminal or in logs.

pub mod address;
pub mod applier;
pub mod aside;
pub mod conflict;
pub mod connection;
pub mod delta_fetch;
pub mod delta_push;
pub mod detect;
pub mod error;
pub mod fetch_partial;
pub mod fetch_sparse;
pub mod fsutil;
pub mod hardlinks;
pub mod held_open;
pub mod history;
pub mod ignore;
pub mod index;
pub mod lease;
pub mod link_watch;
pub mod logging;
pub mod lost;
pub mod mounts;
pub mod nesting;
pub mod origin;
pub mod pace;
pub mod plan;
pub mod printable;
pub mod progress;
pub mod pull;
pub mod push;
pub mod rejoin;
pub mod rename;
pub mod scanner;
pub mod schedule;
pub mod secure;
pub mod server_list;
pub mod session;
pub mod sliced;
pub mod spare;
pub mod staging;
pub mod state;
pub mod status;
pub mod stream_push;
pub mod unreachable;
pub mod watcher;

pub use address::ServerAddress;
pub use error::ClientError;
pub use progress::Verbosity;
pub use secure::LinkSecurity;
pub use session::{run, Outcome};

use crate::protocol::{Secret, UserId};
use std::path::PathBuf;
use std::time::Duration;

/// Everything the command line decides.
#[derive(Debug, Clone)]
pub struct Config {
    /// The server, as typed (looked up at each connection attempt).
    pub server: ServerAddress,
    /// The folder to keep in sync.
    pub folder: PathBuf,
    /// How often to pull without being notified.
    pub pull_every: Duration,
    /// The user to join (first run on a new device); `None` creates a user
    /// unless the folder remembers one.
    pub user: Option<UserId>,
    /// The join code given with the user (`USER_ID:JOIN_CODE`), once the
    /// operator made one (PROTOCOL.md §4.6).
    pub join_code: Option<Secret>,
    /// This device's name, shown to the operator by `cloud-server devices`.
    pub device_name: String,
    /// Reconcile once and exit instead of watching.
    pub once: bool,
    /// `--confirm-empty`: the folder was emptied on purpose; if it is empty
    /// at start while the index lists synced files, push their deletions
    /// instead of stopping (README "Safety"). Has no effect on a folder that
    /// is not empty at start, and guards again once that removal is sent.
    pub confirm_empty: bool,
    /// How chatty to be.
    pub verbosity: Verbosity,
    /// TLS (how the server is trusted) or `--insecure-plaintext`.
    pub security: LinkSecurity,
}
