//! How the server runs: [`ServerConfig`] (filled from the command line by
//! `cloud-server`) and the defaults derived from the process's limits.

use super::flow::MAX_ACTORS;
use super::security::ServerSecurity;
use super::store::versions::KeepPolicy;
use crate::protocol::limits::{HANDSHAKE_TIMEOUT_SECS, IDLE_TIMEOUT_SECS};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// How the server runs; filled from the command line.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on.
    pub bind: IpAddr,
    /// Port (0: any free port).
    pub port: u16,
    /// Holds `AllClients/`, `connectionLog.txt` and the server state.
    pub data_dir: PathBuf,
    /// New connections beyond this are refused (after the oldest one that
    /// has not sent its Hello was evicted for them, if any).
    pub max_connections: usize,
    /// Connections of one address that may wait for their Hello at once;
    /// a newcomer beyond it evicts the address's oldest
    /// (`--max-handshakes-per-address`, PROTOCOL.md ).
    pub max_handshakes_per_address: usize,
    /// fsync files and journal before acknowledging (`--fsync`).
    pub durable: bool,
    /// Time allowed for the `Hello`.
    pub handshake_timeout: Duration,
    /// Silence allowed on a ready connection.
    pub idle_timeout: Duration,
    /// How long an actor waits without messages before retiring (its
    /// connections stay open; a new actor adopts them when needed).
    pub actor_idle: Duration,
    /// TLS (the default) or `--insecure-plaintext`.
    pub security: ServerSecurity,
    /// Where to serve Prometheus metrics (`--metrics ADDR`); `None`: nowhere.
    pub metrics: Option<SocketAddr>,
    /// How long and within how much space kept versions stay (§14.4).
    pub keep: KeepPolicy,
    /// How often the reaper runs (`--reap-every SECS`).
    pub reap_every: Duration,
    /// This server's shard number (`--shard N`, PROTOCOL.md §16): it mints
    /// only user IDs of tag N and refuses users of other tags it does not
    /// hold with `WrongShard`. `None`: one server for every user.
    pub shard: Option<u8>,
    /// Load balancers whose connections begin with a PROXY protocol header
    /// (`--proxy-protocol CIDR,...`, PROTOCOL.md §17); empty: none, every
    /// connection is its own client.
    pub proxy_protocol: Vec<ipnet::IpNet>,
}

/// `--max-handshakes-per-address` default: connections of one address
/// waiting for their Hello at once. A Hello takes a few round trips, so
/// devices behind one NAT address reconnecting together get in (256 at
/// 300 ms each: 850 a second), and so does `cloud-load` from one source
/// address (at most 256 handshakes in flight by default); a silent peer
/// holds no more than this many of the server's slots.
pub const DEFAULT_HANDSHAKES_PER_ADDRESS: usize = 256;
/// `--keep-versions` default: 30 days.
pub const DEFAULT_KEEP_DAYS: f64 = 30.0;
/// `--versions-space` default: 10 GiB per user.
pub const DEFAULT_VERSIONS_SPACE: u64 = 10 << 30;
/// `--reap-every` default: one hour.
pub const DEFAULT_REAP_EVERY: Duration = Duration::from_secs(3600);

impl ServerConfig {
    /// Defaults from the protocol's timeouts, listening on `bind:port`.
    pub fn new(bind: IpAddr, port: u16, data_dir: PathBuf) -> ServerConfig {
        ServerConfig {
            bind,
            port,
            data_dir,
            max_connections: default_max_connections(),
            max_handshakes_per_address: DEFAULT_HANDSHAKES_PER_ADDRESS,
            durable: false,
            handshake_timeout: Duration::from_secs(HANDSHAKE_TIMEOUT_SECS),
            idle_timeout: Duration::from_secs(IDLE_TIMEOUT_SECS),
            actor_idle: Duration::from_secs(30),
            security: ServerSecurity::Tls { files: None },
            metrics: None,
            keep: KeepPolicy {
                max_age: Duration::from_secs_f64(DEFAULT_KEEP_DAYS * 86_400.0),
                max_bytes: DEFAULT_VERSIONS_SPACE,
            },
            reap_every: DEFAULT_REAP_EVERY,
            shard: None,
            proxy_protocol: Vec::new(),
        }
    }

    /// Whether a connection from `ip` comes through a trusted proxy and must
    /// begin with a PROXY protocol header (§17). An IPv4 peer seen on an
    /// IPv6 listener (`::ffff:a.b.c.d`) matches the IPv4 networks given.
    pub fn trusts_proxy(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.proxy_protocol.iter().any(|net| net.contains(&ip))
    }
}

/// Descriptors kept free beyond connections: up to three per running actor
/// (journal, an upload, a fetch) plus logs, the listener and the poller.
pub const FD_HEADROOM: usize = 3 * MAX_ACTORS;

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
