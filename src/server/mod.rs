//! The server: a mio reactor for sockets, one actor thread per user for disk state.
//!
//! Data flows one way: socket → [`reactor`] (bytes → frames) → channel →
//! [`actor`] (frames → disk) → channel + waker → reactor → socket.
//!
//! # Layout
//! - [`reactor`] (+ [`connection`], [`registry`], [`members`], [`limiter`],
//!   [`user_ids`], [`trim`], [`listen`]): the reactor thread: sockets,
//!   frames, phases, which actor runs.
//! - [`actor`] (+ [`store`]): one thread per user: its folder and journal.
//! - Shared by both sides of the channel: [`bus`] (the messages),
//!   [`flow`] (every window and limit), [`legality`] (which message is
//!   legal when), [`pull_reply`] (the one producer of `ChangeBatch`).
//! - [`data_dir`]: the data directory's private parts (0700, log 0600);
//!   [`hangup`]: SIGHUP re-reads the certificate and reopens the log.
//! - [`config`], [`events`] (what the operator is told), [`conn_log`],
//!   [`warnings`] (at most one stderr warning a minute per user for refusals).
//! - [`reaper`]: the background thread that drops expired kept versions.
//! - [`devices`] (device keys, join codes, revocations on disk; shared with
//!   `cloud-server devices|revoke|rotate-join`) and [`revocations`] (the
//!   thread that tells the reactor about new revocations).
//! - [`moves`]: users moving between shards (PROTOCOL.md §16): the markers
//!   `cloud-server export|import` write, the owner lock, and the thread
//!   that tells the reactor; [`export`]: `cloud-server export|import`;
//!   [`route_map`]: the load balancer's user map (`shard-map`, `route`);
//!   [`owner`]: an operator command run by root becomes the data
//!   directory's owner.
//! - [`restore_backup`] (+ [`security_state`], [`tree_copy`]): `cloud-server
//!   restore` puts a backup back without undoing revocations or join-code
//!   rotations; the data directory's lock the server holds.

pub mod actor;
pub mod bus;
/// The chunk index is shared with the client ([`crate::chunk::index`]).
pub use crate::chunk::index as chunk_index;
pub mod config;
pub mod conn_log;
pub mod connection;
pub mod data_dir;
pub mod devices;
pub mod dir_watch;
pub mod events;
pub mod export;
pub mod flow;
pub mod hangup;
pub mod legality;
pub mod limiter;
pub mod listen;
pub mod members;
pub mod metrics;
pub mod moves;
pub mod owner;
pub mod proxy_header;
pub mod pull_reply;
pub mod reactor;
pub mod reaper;
pub mod registry;
pub mod restore_backup;
pub mod revocations;
pub mod route_map;
pub mod security;
pub mod security_state;
pub mod store;
pub mod transport;
pub mod tree_copy;
pub mod trim;
pub mod user_ids;
pub mod warnings;

use actor::ActorContext;
use conn_log::ConnLog;
use crossbeam_channel::unbounded;
use mio::{Poll, Waker};
use reactor::{Reactor, ReactorParts, WAKER};
use registry::ActorRegistry;
pub use security::ServerSecurity;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use store::DataPaths;

pub use config::{default_max_connections, open_file_limit, ServerConfig, FD_HEADROOM};
pub use events::ServerEvent;
pub use store::versions::KeepPolicy;

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
    /// The TLS certificate or key cannot be read, made or used.
    Tls(crate::tls::identity::IdentityError),
    /// The `--metrics` address cannot be served.
    Metrics(SocketAddr, std::io::Error),
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerError::DataDir(e) => write!(f, "cannot use the data directory: {e}"),
            ServerError::Log(e) => write!(f, "cannot open connectionLog.txt: {e}"),
            ServerError::Bind(addr, e) => write!(f, "cannot listen on {addr}: {e}"),
            ServerError::Signals(e) => write!(f, "cannot install signal handlers: {e}"),
            ServerError::Poll(e) => write!(f, "event loop failed: {e}"),
            ServerError::Tls(e) => write!(f, "TLS: {e}"),
            ServerError::Metrics(addr, e) => write!(f, "cannot serve metrics on {addr}: {e}"),
        }
    }
}

impl std::error::Error for ServerError {}

/// Runs the server until SIGINT or SIGTERM. `on_event` is told what a
/// person running the server wants to know ([`ServerEvent`]: listening,
/// with the certificate's fingerprint, a new user); it is called from the
/// reactor and from actor threads, and the library itself never prints.
///
/// # Errors
/// Start-up failures ([`ServerError`]), or the poll loop failing.
pub fn run(
    config: ServerConfig,
    on_event: impl Fn(ServerEvent) + Send + Sync + 'static,
) -> Result<(), ServerError> {
    let events: events::EventSink = Arc::new(on_event);
    trim::tune_allocator();
    let paths = DataPaths {
        base: config.data_dir.clone(),
    };
    let exposed = data_dir::prepare(&config.data_dir, &paths.all_clients(), &paths.state_root())
        .map_err(ServerError::DataDir)?;
    if let Some(warning) = data_dir::warning(&exposed) {
        log::warn!("{warning}");
    }
    let log = ConnLog::open(&config.data_dir).map_err(|e| ServerError::Log(e.to_string()))?;
    let addr = SocketAddr::new(config.bind, config.port);
    let listener = listen::bind(addr).map_err(|e| ServerError::Bind(addr, e))?;
    let local = listener
        .local_addr()
        .map_err(|e| ServerError::Bind(addr, e))?;
    // After the bind (a port in use is reported first): one server per
    // data directory, and none while `cloud-server restore` replaces it.
    let _lock = restore_backup::try_lock(&paths)
        .map_err(ServerError::DataDir)?
        .ok_or_else(|| {
            ServerError::DataDir(std::io::Error::other(format!(
                "another cloud-server, or a cloud-server restore, is using it (it holds {})",
                paths.state_root().join(restore_backup::LOCK_FILE).display()
            )))
        })?;
    // After the bind: a port in use is reported before anything is made.
    let tls = security::prepare(&config.security, &config.data_dir).map_err(ServerError::Tls)?;
    if let Some(tls) = &tls {
        if tls.origin == crate::tls::identity::Origin::Created {
            log::info!("made a new TLS certificate in {}", tls.files.0.display());
        }
    }
    hangup::start(tls.as_ref(), log.downgrade()).map_err(ServerError::Signals)?;

    metrics::metrics().set_shard(config.shard);
    if let Some(addr) = config.metrics {
        let bound = metrics::http::serve(addr).map_err(|e| ServerError::Metrics(addr, e))?;
        log::info!("metrics at http://{bound}/metrics");
    }
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
    let reap =
        reaper::spawn(paths.clone(), config.keep, config.reap_every).map_err(ServerError::Poll)?;
    let (out, inbox) = unbounded();
    revocations::start(paths.clone(), out.clone(), Arc::clone(&waker))
        .map_err(ServerError::Poll)?;
    moves::start(paths.clone(), out.clone(), Arc::clone(&waker)).map_err(ServerError::Poll)?;
    // Kept past the reactor: the log is closed once the actors are done.
    let log_at_exit = log.clone();
    let ctx = Arc::new(ActorContext {
        paths,
        durable: config.durable,
        out,
        waker,
        log: log.clone(),
        events: Arc::clone(&events),
        idle: config.actor_idle,
        shard: config.shard,
        alive: AtomicUsize::new(0),
        waiting: AtomicUsize::new(0),
        reap,
        storage_warnings: warnings::WarnLimiter::default(),
    });
    let actors = Arc::clone(&ctx);
    let parts = ReactorParts {
        poll,
        listener,
        signals: signal_read,
        registry: ActorRegistry::new(ctx),
        inbox,
        log,
        config,
        tls: tls.as_ref().map(|t| Arc::clone(&t.config)),
    };
    let mut reactor = Reactor::new(parts).map_err(ServerError::Poll)?;
    events(ServerEvent::Listening {
        addr: local,
        max_connections: reactor.max_connections(),
        fingerprint: tls.map(|t| t.fingerprint),
    });
    let result = reactor.run().map_err(ServerError::Poll);
    // The reactor's end drops every actor's sender: each actor finishes
    // what it holds (and logs it) and exits. Then every line recorded is
    // written before the process ends, whichever thread held the log last.
    drop(reactor);
    wait_for_actors(&actors.alive, ACTORS_AT_EXIT);
    log_at_exit.close();
    result
}

/// How long the end of [`run`] waits for actors that outlived the
/// reactor's grace period before it closes the log anyway.
const ACTORS_AT_EXIT: Duration = Duration::from_secs(5);

/// Waits until `alive` actors are 0 or `limit` passed (polling every 10 ms).
fn wait_for_actors(alive: &AtomicUsize, limit: Duration) {
    let deadline = Instant::now() + limit;
    while alive.load(Ordering::Relaxed) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let left = alive.load(Ordering::Relaxed);
    if left > 0 {
        log::warn!("stopping with {left} user workers still busy; their last requests may be missing from connectionLog.txt");
    }
}
