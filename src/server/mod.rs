//! The server: a mio reactor for sockets, one actor thread per user for disk state.
//!
//! Data flows one way: socket → [`reactor`] (bytes → frames) → channel →
//! [`actor`] (frames → disk) → channel + waker → reactor → socket.

pub mod actor;
pub mod bus;
pub mod chunk_index;
pub mod conn_log;
pub mod connection;
pub mod limiter;
pub mod listen;
pub mod members;
pub mod reactor;
pub mod registry;
pub mod store;
pub mod trim;

use crate::protocol::limits::{HANDSHAKE_TIMEOUT_SECS, IDLE_TIMEOUT_SECS};
use actor::ActorContext;
use conn_log::ConnLog;
use crossbeam_channel::unbounded;
use mio::{Poll, Waker};
use reactor::{Reactor, ReactorParts, WAKER};
use registry::ActorRegistry;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;
use store::DataPaths;

/// How the server runs; filled from the command line.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on.
    pub bind: IpAddr,
    /// Port (0: any free port).
    pub port: u16,
    /// Holds `AllClients/`, `connectionLog.txt` and the server state.
    pub data_dir: PathBuf,
    /// New connections beyond this are refused.
    pub max_connections: usize,
    /// fsync files and journal before acknowledging (`--fsync`).
    pub durable: bool,
    /// Time allowed for the `Hello`.
    pub handshake_timeout: Duration,
    /// Silence allowed on a ready connection.
    pub idle_timeout: Duration,
    /// How long an actor waits without messages before retiring (its
    /// connections stay open; a new actor adopts them when needed).
    pub actor_idle: Duration,
}

impl ServerConfig {
    /// Defaults from the protocol's timeouts, listening on `bind:port`.
    pub fn new(bind: IpAddr, port: u16, data_dir: PathBuf) -> ServerConfig {
        ServerConfig {
            bind,
            port,
            data_dir,
            max_connections: default_max_connections(),
            durable: false,
            handshake_timeout: Duration::from_secs(HANDSHAKE_TIMEOUT_SECS),
            idle_timeout: Duration::from_secs(IDLE_TIMEOUT_SECS),
            actor_idle: Duration::from_secs(30),
        }
    }
}

/// Descriptors kept free beyond connections: up to three per running actor
/// (journal, an upload, a fetch) plus logs, the listener and the poller.
pub const FD_HEADROOM: usize = 3 * registry::MAX_ACTORS;

/// The open-file limit minus [`FD_HEADROOM`] (read from /proc; 1024 if unknown).
pub fn default_max_connections() -> usize {
    open_file_limit()
        .unwrap_or(1024)
        .saturating_sub(FD_HEADROOM)
        .max(16)
}

/// The soft `RLIMIT_NOFILE` of this process, from `/proc/self/limits`.
pub fn open_file_limit() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Why the server could not start or stopped with an error.
#[derive(Debug)]
pub enum ServerError {
    /// The data directory cannot be created or used.
    DataDir(std::io::Error),
    /// The connection log cannot be opened.
    Log(String),
    /// The port is in use or the address is not local.
    Bind(SocketAddr, std::io::Error),
    /// Signal handlers could not be installed.
    Signals(std::io::Error),
    /// The poll loop failed.
    Poll(std::io::Error),
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerError::DataDir(e) => write!(f, "cannot use the data directory: {e}"),
            ServerError::Log(e) => write!(f, "cannot open connectionLog.txt: {e}"),
            ServerError::Bind(addr, e) => write!(f, "cannot listen on {addr}: {e}"),
            ServerError::Signals(e) => write!(f, "cannot install signal handlers: {e}"),
            ServerError::Poll(e) => write!(f, "event loop failed: {e}"),
        }
    }
}

impl std::error::Error for ServerError {}

/// Runs the server until SIGINT or SIGTERM. `on_listening` is called with the
/// bound address once connections can be accepted.
///
/// # Errors
/// Start-up failures ([`ServerError`]), or the poll loop failing.
pub fn run(config: ServerConfig, on_listening: impl FnOnce(SocketAddr)) -> Result<(), ServerError> {
    trim::tune_allocator();
    let paths = DataPaths {
        base: config.data_dir.clone(),
    };
    std::fs::create_dir_all(paths.all_clients()).map_err(ServerError::DataDir)?;
    std::fs::create_dir_all(paths.state_root()).map_err(ServerError::DataDir)?;
    let log = ConnLog::open(&config.data_dir).map_err(|e| ServerError::Log(e.to_string()))?;

    let addr = SocketAddr::new(config.bind, config.port);
    let listener = listen::bind(addr).map_err(|e| ServerError::Bind(addr, e))?;
    let local = listener
        .local_addr()
        .map_err(|e| ServerError::Bind(addr, e))?;

    let poll = Poll::new().map_err(ServerError::Poll)?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKER).map_err(ServerError::Poll)?);
    let (signal_read, signal_write) =
        std::os::unix::net::UnixStream::pair().map_err(ServerError::Signals)?;
    signal_read
        .set_nonblocking(true)
        .map_err(ServerError::Signals)?;
    signal_write
        .set_nonblocking(true)
        .map_err(ServerError::Signals)?;
    let signal_read = mio::net::UnixStream::from_std(signal_read);
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let writer = signal_write.try_clone().map_err(ServerError::Signals)?;
        signal_hook::low_level::pipe::register(signal, writer).map_err(ServerError::Signals)?;
    }
    let (out, inbox) = unbounded();
    let ctx = Arc::new(ActorContext {
        paths,
        durable: config.durable,
        out,
        waker,
        log: log.clone(),
        idle: config.actor_idle,
        alive: AtomicUsize::new(0),
        waiting: AtomicUsize::new(0),
    });
    let parts = ReactorParts {
        poll,
        listener,
        signals: signal_read,
        registry: ActorRegistry::new(ctx),
        inbox,
        log,
        config,
    };
    let mut reactor = Reactor::new(parts).map_err(ServerError::Poll)?;
    on_listening(local);
    reactor.run().map_err(ServerError::Poll)
}
