//! `cloud-load`: many persistent protocol connections from one thread, pulling
//! on a schedule, with round-trip percentiles — a capacity test for a server.
//!
//! The run has three phases: **setup** (open the connections at a bounded
//! rate: one NewUser per user, NewClient for the rest, or NewClient for given
//! user IDs), **hold** (connected, silent, until a go-file appears: lets a
//! harness measure an idle server), and **measure** (every connection pulls
//! every `pull_every`, at a random offset, optionally pushing a small file
//! every `push_every`). Then it reports and closes every socket.

mod driver;
pub mod histogram;
pub mod link;
mod report;
pub mod socket;

pub use histogram::Histogram;
pub use report::Report;

use crate::protocol::UserId;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

/// What to run.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// The server.
    pub server: SocketAddr,
    /// Connections to open.
    pub connections: usize,
    /// Users they are spread over (connection `i` belongs to user `i % users`).
    pub users: usize,
    /// Existing users to join with NewClient instead of creating users.
    pub user_ids: Vec<UserId>,
    /// Local source addresses, used in turn (empty: the system's choice).
    pub sources: Vec<Ipv4Addr>,
    /// Interval between two pulls of one connection.
    pub pull_every: Duration,
    /// Interval between two small-file pushes of one connection (None: no pushes).
    pub push_every: Option<Duration>,
    /// Size of each pushed file.
    pub push_size: usize,
    /// Length of the measure phase.
    pub duration: Duration,
    /// New connections started per second during setup.
    pub connect_rate: u32,
    /// Handshakes in flight at once during setup.
    pub max_handshakes: usize,
    /// Longest setup, and longest hold.
    pub setup_timeout: Duration,
    /// Hold silently after setup until this file exists (bounded by `setup_timeout`).
    pub go_file: Option<PathBuf>,
    /// A pull or push without a reply for this long counts as an error.
    pub reply_timeout: Duration,
    /// TLS as real clients run it (`cloud-load`'s default, see
    /// [`link::tls_config`]); `None`: plaintext frames (`--insecure-plaintext`).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Set (e.g. by a SIGINT/SIGTERM handler) to end the run early; the
    /// report then covers what was measured so far.
    pub stop: Arc<AtomicBool>,
}

impl LoadConfig {
    /// Defaults: 100 connections over 10 users, pull every 10 s for 30 s.
    pub fn new(server: SocketAddr) -> LoadConfig {
        LoadConfig {
            server,
            connections: 100,
            users: 10,
            user_ids: Vec::new(),
            sources: Vec::new(),
            pull_every: Duration::from_secs(10),
            push_every: None,
            push_size: 1024,
            duration: Duration::from_secs(30),
            connect_rate: 2000,
            max_handshakes: 256,
            setup_timeout: Duration::from_secs(300),
            go_file: None,
            reply_timeout: Duration::from_secs(10),
            tls: None,
            stop: Arc::new(AtomicBool::new(false)),
        }
    }
}

/// Why a load run could not run at all (failures of single connections are
/// counted in the [`Report`] instead).
#[derive(Debug)]
pub enum LoadError {
    /// Connections, users or the pull interval is zero, or users exceed connections.
    BadConfig(&'static str),
    /// The poll instance could not be created or polled.
    Poll(std::io::Error),
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::BadConfig(why) => write!(f, "bad configuration: {why}"),
            LoadError::Poll(e) => write!(f, "event loop failed: {e}"),
        }
    }
}

impl std::error::Error for LoadError {}

/// Milestones reported while running, for harnesses that wait on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Milestone {
    /// Setup ended: `held` connections are ready, `failed` gave up.
    Connected {
        /// Ready connections.
        held: usize,
        /// Connections that failed during setup.
        failed: usize,
    },
    /// The measure phase began.
    Measuring,
}

/// Runs a load test to the end and returns its report.
///
/// # Errors
/// A bad configuration or a failing poll loop ([`LoadError`]).
pub fn run(
    config: &LoadConfig,
    on_milestone: &mut dyn FnMut(Milestone),
) -> Result<Report, LoadError> {
    let users = if config.user_ids.is_empty() {
        config.users
    } else {
        config.user_ids.len()
    };
    if config.connections == 0 || users == 0 {
        return Err(LoadError::BadConfig(
            "connections and users must be at least 1",
        ));
    }
    if users > config.connections {
        return Err(LoadError::BadConfig("more users than connections"));
    }
    if config.pull_every.is_zero() {
        return Err(LoadError::BadConfig("the pull interval must be positive"));
    }
    driver::Driver::new(config, users)?.run(on_milestone)
}
