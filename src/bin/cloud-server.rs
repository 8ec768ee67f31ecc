//! `cloud-server`: the server, and the operator's commands against a data
//! directory ([`SYNOPSIS`], which README "Running a server" repeats word for
//! word: tests/cli_usage.rs compares them). Argument parsing and wiring only;
//! the server lives in `cloudservice::server`, the device files in
//! `cloudservice::server::devices`. A wrong command line is one line on
//! stderr and exit 2 (`cloudservice::cli`).

use clap::Parser;
use cloudservice::cli;
use cloudservice::protocol::UserId;
use cloudservice::server::store::DataPaths;
use cloudservice::server::{self, ServerConfig, ServerEvent, ServerSecurity};
use cloudservice::server::{devices, export, restore_backup, route_map};
use cloudservice::tls::routing::sni_for;
use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Every way to run `cloud-server`, as `--help` prints it under "Usage:"
/// and README "Running a server" shows it (the two are compared by
/// tests/cli_usage.rs, and this text with the parsers by the unit test
/// below).
const SYNOPSIS: &str = "\
cloud-server PORT [--data-dir DIR] [--bind ADDR] [--max-connections N] [--fsync]
             [--max-handshakes-per-address N]
             [--handshake-timeout SECS] [--idle-timeout SECS] [--actor-idle SECS]
             [--tls-cert FILE --tls-key FILE | --insecure-plaintext] [--metrics ADDR]
             [--keep-versions DAYS] [--versions-space BYTES] [--reap-every SECS]
             [--shard N] [--proxy-protocol CIDR,...] [-v | -q]
cloud-server devices|rotate-join|invite DATA_DIR USER_ID
cloud-server revoke|reinstate DATA_DIR USER_ID DEVICE
cloud-server export DATA_DIR USER_ID --to DIR [--wait SECS]
cloud-server import DATA_DIR DIR
cloud-server restore DATA_DIR --from BACKUP
cloud-server shard-map DATA_DIR --shard N [--backend NAME]
cloud-server route USER_ID BACKEND --map FILE [--tags FILE] [--socket SOCKET]
cloud-server --help | --version";

/// CloudService server: keeps every user's folder under DIR/AllClients/<USER_ID>/.
#[derive(Parser, Debug)]
#[command(
    name = "cloud-server",
    version,
    override_usage = SYNOPSIS,
    help_template = "{about-with-newline}\n{usage-heading}\n{usage}\n\n{all-args}{after-help}",
    after_help = "Device commands (against the data directory; a running server applies a \
revocation within a second):\n  \
cloud-server devices DATA_DIR USER_ID              list the user's devices (id, name, joined, last seen, state)\n  \
cloud-server revoke DATA_DIR USER_ID DEVICE        shut one device out (its connections close, its key is refused)\n  \
cloud-server reinstate DATA_DIR USER_ID DEVICE     lift a revocation\n  \
cloud-server rotate-join DATA_DIR USER_ID          make a new join code (new devices then join with USER_ID:JOIN_CODE)\n  \
cloud-server invite DATA_DIR USER_ID               make a one-time code: one device joins with USER_ID:CODE\n\n\
Backups (README \"Backups\"):\n  \
cloud-server restore DATA_DIR --from BACKUP        put a backup back (server stopped), keeping later revocations, join codes and the certificate\n\n\
Moving a user between shards (PROTOCOL.md §16.3; README \"Running several servers\"):\n  \
cloud-server export DATA_DIR USER_ID --to DIR      copy the user out; this server then refuses it (WrongShard)\n  \
cloud-server import DATA_DIR DIR                   copy it into this data directory and serve it\n  \
cloud-server route USER_ID BACKEND --map FILE [--tags FILE] [--socket SOCK]   send the user to BACKEND (map file + HAProxy runtime API; its line is removed when BACKEND is its tag's shard)\n  \
cloud-server shard-map DATA_DIR --shard N          user-map lines for users held here against their tag"
)]
struct Args {
    /// TCP port to listen on (0 picks a free one; the chosen port is printed).
    port: u16,
    /// Directory holding AllClients/, connectionLog.txt and the server state.
    #[arg(long, value_name = "DIR", default_value = ".")]
    data_dir: PathBuf,
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0")]
    bind: IpAddr,
    /// Refuse connections beyond this many (default: open-file limit minus 768: 3 per actor, at most 256 actors).
    #[arg(long, value_name = "N")]
    max_connections: Option<usize>,
    /// Connections of one address that may wait for their Hello at once; a
    /// newcomer beyond it evicts that address's oldest (at least 1;
    /// default 256).
    #[arg(long, value_name = "N")]
    max_handshakes_per_address: Option<usize>,
    /// fsync every stored file and the journal before acknowledging a push
    /// (survives power loss; default survives a crash of the server process).
    #[arg(long)]
    fsync: bool,
    /// Seconds a new connection may take to send its Hello (every duration
    /// option: fractions allowed, at least 0.001 s, at most 100 years).
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = cli::duration::secs)]
    handshake_timeout: Duration,
    /// Seconds a ready connection may stay silent before it is closed.
    #[arg(long, value_name = "SECS", default_value = "300", value_parser = cli::duration::secs)]
    idle_timeout: Duration,
    /// Seconds a user's worker thread stays without work before it retires
    /// (its state is on disk; connections stay open).
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = cli::duration::secs)]
    actor_idle: Duration,
    /// Speak plaintext, without TLS (for tests and benchmarks; clients must
    /// then be given --insecure-plaintext too).
    #[arg(long, conflicts_with_all = ["tls_cert", "tls_key"])]
    insecure_plaintext: bool,
    /// Serve this certificate (PEM chain, leaf first) instead of the one made
    /// under DATA_DIR/tls/; re-read on SIGHUP. Needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9100),
    /// from a thread of its own.
    #[arg(long, value_name = "ADDR")]
    metrics: Option<SocketAddr>,
    /// Keep what pushes overwrite, delete or move away (versions, trash) for
    /// DAYS (fractions allowed, at most 36525 = 100 years), outside
    /// AllClients/; `cloud-client versions` lists them and `cloud-client
    /// restore` brings one back.
    #[arg(long, value_name = "DAYS", default_value = "30", value_parser = cli::duration::days)]
    keep_versions: Duration,
    /// Per-user space for kept versions (identical contents count once); past
    /// it the oldest go first. A number of bytes with an optional K, M, G or
    /// T suffix (powers of 1024).
    #[arg(long, value_name = "BYTES", default_value = "10G", value_parser = parse_bytes)]
    versions_space: u64,
    /// Seconds between two runs of the background reaper of kept versions.
    #[arg(long, value_name = "SECS", default_value = "3600", value_parser = cli::duration::secs)]
    reap_every: Duration,
    /// Run as shard N (0-255) of several servers behind a load balancer
    /// (PROTOCOL.md §16, README "Running several servers"): new users get
    /// IDs whose routing key starts with N as two hex digits, and users of
    /// other shards that are not held here are refused with WrongShard.
    #[arg(long, value_name = "N")]
    shard: Option<u8>,
    /// Connections from these addresses or networks (a load balancer's,
    /// e.g. 10.0.0.5 or 10.0.0.0/24) must begin with a PROXY protocol
    /// header (v1 or v2: HAProxy's send-proxy / send-proxy-v2) naming the
    /// client, whose address the connection log and the per-address limits
    /// then see (PROTOCOL.md §17); one without it is closed. Connections
    /// from elsewhere are never read for one.
    #[arg(long, value_name = "CIDR,...", value_delimiter = ',', value_parser = parse_net)]
    proxy_protocol: Vec<ipnet::IpNet>,
    /// Show debug messages on stderr.
    #[arg(short, long, conflicts_with = "quiet")]
    verbose: bool,
    /// Show only errors on stderr.
    #[arg(short, long)]
    quiet: bool,
}

/// A network (`10.0.0.0/24`, `fd00::/64`) or one address (`10.0.0.5`,
/// taken as `/32` or `/128`).
fn parse_net(text: &str) -> Result<ipnet::IpNet, String> {
    text.parse::<ipnet::IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| "not an address or network (CIDR), e.g. 10.0.0.5 or 10.0.0.0/24".to_owned())
}

/// `1234`, `512K`, `10M`, `10G`, `1T` (powers of 1024) as bytes.
fn parse_bytes(text: &str) -> Result<u64, String> {
    let (digits, shift) = match text.char_indices().last() {
        Some((i, 'K' | 'k')) => (&text[..i], 10),
        Some((i, 'M' | 'm')) => (&text[..i], 20),
        Some((i, 'G' | 'g')) => (&text[..i], 30),
        Some((i, 'T' | 't')) => (&text[..i], 40),
        _ => (text, 0),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1u64 << shift))
        .ok_or_else(|| format!("{text:?} is not a number of bytes (e.g. 500M, 10G)"))
}

/// The operator's device commands (PROTOCOL.md §4.6).
#[derive(Parser, Debug)]
#[command(name = "cloud-server")]
enum Admin {
    /// List USER_ID's devices: id, name, joined, last seen, active or revoked.
    Devices {
        /// The server's data directory.
        data_dir: PathBuf,
        /// The user (32 hex characters).
        user_id: UserId,
    },
    /// Revoke one device: its key is refused and a running server closes
    /// its connections within a second. Nothing of the user's files changes.
    Revoke {
        /// The server's data directory.
        data_dir: PathBuf,
        /// The user (32 hex characters).
        user_id: UserId,
        /// The device's ID (as `devices` lists it).
        device: u64,
    },
    /// Lift a device's revocation (its key works again).
    Reinstate {
        /// The server's data directory.
        data_dir: PathBuf,
        /// The user (32 hex characters).
        user_id: UserId,
        /// The device's ID.
        device: u64,
    },
    /// Make a one-time invite and print USER_ID:CODE: exactly one device
    /// joins with it (until the next rotate-join).
    Invite {
        /// The server's data directory.
        data_dir: PathBuf,
        /// The user (32 hex characters).
        user_id: UserId,
    },
    /// Make a new join code and print USER_ID:JOIN_CODE for new devices;
    /// the previous code (or the bare user ID) stops letting devices join.
    /// Registered devices keep working with their keys.
    RotateJoin {
        /// The server's data directory.
        data_dir: PathBuf,
        /// The user (32 hex characters).
        user_id: UserId,
    },
    /// Move a user out of this data directory (PROTOCOL.md §16.3): a running
    /// server refuses the user (Moving) and lets go of its state, which is
    /// copied to the new directory DIR; from then on this server refuses the
    /// user with WrongShard. Then run `import` on the target shard.
    Export {
        /// The server's data directory.
        data_dir: PathBuf,
        /// The user (32 hex characters).
        user_id: UserId,
        /// Where to write the export (must not exist yet).
        #[arg(long, value_name = "DIR")]
        to: PathBuf,
        /// Seconds to wait for a running server to close the user's state.
        #[arg(long, value_name = "SECS", default_value = "30", value_parser = cli::duration::secs)]
        wait: Duration,
    },
    /// Print the user-map lines (deploy/haproxy/cloudservice-users.map) for
    /// the users this data directory holds whose tag is not its shard's:
    /// users made before sharding or moved in (PROTOCOL.md §16.1).
    ShardMap {
        /// The server's data directory.
        data_dir: PathBuf,
        /// The shard this data directory belongs to (`--shard` of its server).
        #[arg(long, value_name = "N")]
        shard: u8,
        /// The HAProxy backend of that shard (default: shardN).
        #[arg(long, value_name = "NAME")]
        backend: Option<String>,
    },
    /// Route one user to a backend: set its line in the user map FILE and,
    /// with --socket, in the running HAProxy (runtime API, no reload). When
    /// the tag map sends the user's tag to BACKEND (a user moved back to its
    /// tag's shard), its line is removed instead (PROTOCOL.md ).
    Route {
        /// The user ID, or the SNI `export`/`import` printed after "route:".
        #[arg(value_name = "USER_ID")]
        key: String,
        /// The HAProxy backend of the shard that holds the user now.
        backend: String,
        /// The user map file (as named in haproxy.cfg).
        #[arg(long, value_name = "FILE")]
        map: PathBuf,
        /// The tag map file (default: cloudservice-shards.map beside --map).
        #[arg(long, value_name = "FILE")]
        tags: Option<PathBuf>,
        /// HAProxy's stats socket (`stats socket … level admin`).
        #[arg(long, value_name = "SOCKET")]
        socket: Option<PathBuf>,
    },
    /// Put a backup of the data directory back in place (the server
    /// stopped), keeping what was closed after the backup was taken:
    /// revocations, join-code rotations, used or retired invites, the TLS
    /// certificate and the connection log (PROTOCOL.md ).
    Restore {
        /// The server's data directory (its contents are replaced).
        data_dir: PathBuf,
        /// The backup: a copy of the data directory made while the server was stopped.
        #[arg(long, value_name = "BACKUP")]
        from: PathBuf,
    },
    /// Bring a user exported by `export` into this data directory; a
    /// running server serves it from then on (route it here next).
    Import {
        /// The server's data directory.
        data_dir: PathBuf,
        /// The directory `export --to` wrote.
        #[arg(value_name = "DIR")]
        from: PathBuf,
    },
}

/// Runs an operator command; prints its result on stdout. The result is
/// written whole after the command ran: a closed stdout (`| head -1`) is one
/// line on stderr and exit 1, with the result repeated on stderr, never a
/// panic (a rotated join code must not be lost unseen).
fn admin(command: Admin) -> ExitCode {
    // Run by root against the server user's data directory: become that
    // user first, so what the command makes is the server's (README "Devices").
    if let Some(dir) = command.data_dir() {
        // A mistyped data directory is said as such, not as "no user …"
        // (outside tester breaker15, L6). `import` may fill a new one.
        if !dir.is_dir() && !matches!(command, Admin::Import { .. }) {
            return report(Err(format!(
                "no data directory {} (give the directory the server runs with: its --data-dir)",
                dir.display()
            )));
        }
        if let Err(e) = server::owner::become_owner_of(dir) {
            return report(Err(e.to_string()));
        }
    }
    let mut out = String::new();
    let result = run_admin(command, &mut out);
    if let Err(e) = io::stdout()
        .lock()
        .write_all(out.as_bytes())
        .and_then(|()| io::stdout().flush())
    {
        let mut err = io::stderr().lock();
        let _ = writeln!(
            err,
            "cloud-server: cannot write to stdout ({e}); the result was:"
        );
        let _ = err.write_all(out.as_bytes());
        return ExitCode::FAILURE;
    }
    report(result)
}

impl Admin {
    /// The data directory the command works on (`route` has none).
    fn data_dir(&self) -> Option<&std::path::Path> {
        match self {
            Admin::Devices { data_dir, .. }
            | Admin::Revoke { data_dir, .. }
            | Admin::Reinstate { data_dir, .. }
            | Admin::Invite { data_dir, .. }
            | Admin::RotateJoin { data_dir, .. }
            | Admin::Export { data_dir, .. }
            | Admin::ShardMap { data_dir, .. }
            | Admin::Restore { data_dir, .. }
            | Admin::Import { data_dir, .. } => Some(data_dir),
            Admin::Route { .. } => None,
        }
    }
}

/// Appends one line to an operator command's output.
macro_rules! say {
    ($out:expr, $($arg:tt)*) => {{
        use std::fmt::Write as _;
        let _ = writeln!($out, $($arg)*);
    }};
}

/// [`admin`]'s work: the command's effect, its output appended to `out`.
fn run_admin(command: Admin, out: &mut String) -> Result<(), String> {
    let result = match command {
        Admin::Devices { data_dir, user_id } => {
            let found = restore_backup::restore_found(&paths(data_dir.clone()), &user_id);
            devices::list(&paths(data_dir.clone()), &user_id).map(|list| {
                say!(
                    out,
                    "{:<6} {:<24} {:<20} {:<20} STATE",
                    "DEVICE", "NAME", "JOINED (UTC)", "LAST SEEN (UTC)"
                );
                for (d, revoked) in list {
                    let state = match (revoked, d.key_sha256.is_some()) {
                        (true, _) => "revoked",
                        (false, true) => "active",
                        (false, false) => "active (no key yet)",
                    };
                    // A name is the joining device's word: escaped, so it
                    // cannot forge a row or drive the operator's terminal.
                    let name = if d.name.is_empty() {
                        "-".into()
                    } else {
                        cloudservice::client::printable::escape_controls(&d.name)
                    };
                    say!(
                    out,
                        "{:<6} {:<24} {:<20} {:<20} {state}",
                        d.id,
                        name,
                        when(d.joined, "-"),
                        when(d.last_seen, "never")
                    );
                }
                if let Some(found) = found {
                    restore_warning(out, &found, &data_dir, &user_id);
                }
            })
        }
        Admin::Revoke {
            data_dir,
            user_id,
            device,
        } => devices::revoke(&paths(data_dir.clone()), &user_id, device).map(|()| {
            say!(out, "revoked device {device} of user {user_id}");
            // The device's identity file holds the user ID, which alone
            // lets a device join while the user has no join code.
            if matches!(
                devices::join_digest(&paths(data_dir.clone()), &user_id),
                Ok(None)
            ) {
                say!(
                    out,
                    "note: this user has no join code, so the user ID alone (in the revoked \
                     device's identity file) still lets a device join as a new one; to stop \
                     that run: cloud-server rotate-join {} {user_id}",
                    data_dir.display()
                );
            }
        }),
        Admin::Reinstate {
            data_dir,
            user_id,
            device,
        } => devices::reinstate(&paths(data_dir), &user_id, device).map(|was| {
            if was {
                say!(out, "reinstated device {device} of user {user_id}");
            } else {
                say!(out, "device {device} of user {user_id} was not revoked");
            }
        }),
        Admin::Invite { data_dir, user_id } => {
            devices::invite(&paths(data_dir), &user_id).map(|code| {
                say!(out, "one device joins with: {user_id}:{}", code.to_hex());
                say!(out, "(valid for one join, until used or until the next rotate-join)");
            })
        }
        Admin::RotateJoin { data_dir, user_id } => devices::rotate_join(&paths(data_dir.clone()), &user_id)
            .and_then(|code| {
                // The operator acted on a restore `devices` warned of.
                restore_backup::forget_restore_found(&paths(data_dir), &user_id).map(|()| code)
            })
            .map(|code| {
                say!(out, "new devices join with: {user_id}:{}", code.to_hex());
                say!(
                    out,
                    "(the previous join code no longer works; registered devices are not affected)"
                );
            }),
        Admin::Export {
            data_dir,
            user_id,
            to,
            wait,
        } => {
            return export::export(&paths(data_dir), &user_id, &to, wait)
                    .map_err(|e| e.to_string())
                    .map(|r| {
                        say!(
                    out,
                            "exported user {user_id} to {} ({} files, {} bytes); this server now refuses it (WrongShard)",
                            to.display(),
                            r.files,
                            r.bytes
                        );
                        say!(out, "route: {}", sni_for(Some(&user_id)));
                    })

        }
        Admin::ShardMap {
            data_dir,
            shard,
            backend,
        } => {
            let backend = backend.unwrap_or_else(|| format!("shard{shard}"));
            return route_map::exceptions(&paths(data_dir), shard, &backend)
                    .map_err(|e| format!("cannot list AllClients/: {e}"))
                    .map(|lines| lines.iter().for_each(|l| say!(out, "{l}")))
;
        }
        Admin::Route {
            key,
            backend,
            map,
            tags,
            socket,
        } => {
            let tags = tags.unwrap_or_else(|| map.with_file_name("cloudservice-shards.map"));
            let live = if socket.is_some() { " and in HAProxy" } else { "" };
            return route_map::route(&map, &tags, socket.as_deref(), &key, &backend)
                    .map_err(|e| e.to_string())
                    .map(|routed| match routed {
                        route_map::Routed::Set(key) => {
                            say!(out, "routed {key} to {backend} in {}{live}", map.display());
                        }
                        route_map::Routed::Removed(key) => say!(
                    out,
                            "routed {key} to {backend}, its tag's shard: no line in {}{live} (the tag map routes it)",
                            map.display()
                        ),
                    })
;
        }
        Admin::Restore { data_dir, from } => {
            return restore_backup::restore(&data_dir, &from)
                .map_err(|e| e.to_string())
                .map(|r| {
                    say!(
                        out,
                        "restored {} from {} ({} files, {} bytes)",
                        data_dir.display(),
                        from.display(),
                        r.copied.files,
                        r.copied.bytes
                    );
                    for note in &r.notes {
                        say!(out, "{note}");
                    }
                });
        }
        Admin::Import { data_dir, from } => {
            return export::import(&paths(data_dir), &from)
                    .map_err(|e| e.to_string())
                    .map(|(user, r)| {
                        say!(
                    out,
                            "imported user {user} ({} files, {} bytes); this server serves it now",
                            r.files, r.bytes
                        );
                        say!(out, "route: {}", sni_for(Some(&user)));
                    })

        }
    };
    result.map_err(|e| e.to_string())
}

/// The lines `devices` adds when the server found this user's data
/// restored from a backup (`found`: what it recorded, unix seconds first),
/// with advice that depends on whether `cloud-server restore` put it back.
fn restore_warning(out: &mut String, found: &str, data_dir: &std::path::Path, user: &UserId) {
    let (secs, what) = found.trim().split_once(' ').unwrap_or(("0", found));
    let found_at = secs.parse().unwrap_or(0);
    say!(
        out,
        "warning: this data directory was restored from a backup: at {} {what}",
        when(found_at, "-")
    );
    let by_command = restore_backup::restored_by_command(&paths(data_dir.to_path_buf()));
    let advice =
        restore_backup::restore_advice(found_at, by_command.as_ref(), data_dir, user, |s| {
            when(s, "-")
        });
    let level = if by_command.is_some_and(|b| b.at <= found_at) {
        "note"
    } else {
        "warning"
    };
    say!(out, "{level}: {advice}");
}

/// Exit status of an operator command; its error on stderr.
fn report(result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cloud-server: {e}");
            ExitCode::FAILURE
        }
    }
}

fn paths(base: PathBuf) -> DataPaths {
    DataPaths { base }
}

/// A Unix time (seconds) as `YYYY-MM-DDTHH:MM:SSZ`, UTC (README "Devices");
/// `zero` for 0 (nothing recorded), `-` for a time chrono cannot show.
fn when(secs: u64, zero: &str) -> String {
    if secs == 0 {
        return zero.to_owned();
    }
    i64::try_from(secs)
        .ok()
        .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
        .map_or_else(
            || "-".to_owned(),
            |t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        )
}

/// Words that start a device command instead of the server.
const ADMIN_WORDS: [&str; 10] = [
    "devices",
    "restore",
    "revoke",
    "reinstate",
    "rotate-join",
    "invite",
    "export",
    "import",
    "shard-map",
    "route",
];

fn main() -> ExitCode {
    let first = std::env::args().nth(1).unwrap_or_default();
    if ADMIN_WORDS.contains(&first.as_str()) {
        return admin(cli::parse_or_exit("cloud-server"));
    }
    let args: Args = cli::parse_or_exit("cloud-server");
    let level = if args.verbose {
        "debug"
    } else if args.quiet {
        "error"
    } else {
        "info"
    };
    // A log line that cannot be written (stderr, or connectionLog.txt, on a
    // full disk) is lost, never fatal: flexi_logger's default is to panic
    // when it cannot even report its own write error on stderr, which took
    // the reactor or a user's actor down (outside tester breaker22 F1).
    let logger = flexi_logger::Logger::try_with_str(level)
        .map(|l| {
            l.log_to_stderr()
                .format_for_stderr(flexi_logger::default_format)
                .panic_if_error_channel_is_broken(false)
        })
        .and_then(|l| l.start());
    let _logger = match logger {
        Ok(handle) => handle,
        Err(e) => {
            eprintln!("cloud-server: cannot start logging: {e}");
            return ExitCode::FAILURE;
        }
    };
    let config = match config_from(args) {
        Ok(config) => config,
        Err(why) => {
            eprintln!("cloud-server: {why}");
            return ExitCode::FAILURE;
        }
    };
    let result = server::run(config, print_event);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cloud-server: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The server's configuration from its command line.
///
/// # Errors
/// A timeout that is not a positive number of seconds.
fn config_from(args: Args) -> Result<ServerConfig, &'static str> {
    let mut config = ServerConfig::new(args.bind, args.port, args.data_dir);
    if let Some(max) = args.max_connections {
        config.max_connections = max.max(1);
    }
    if let Some(n) = args.max_handshakes_per_address {
        config.max_handshakes_per_address = n.max(1);
    }
    config.durable = args.fsync;
    config.security = if args.insecure_plaintext {
        ServerSecurity::Plaintext
    } else {
        ServerSecurity::Tls {
            files: args.tls_cert.zip(args.tls_key),
        }
    };
    config.metrics = args.metrics;
    config.shard = args.shard;
    config.proxy_protocol = args.proxy_protocol;
    config.keep = server::KeepPolicy {
        max_age: args.keep_versions,
        max_bytes: args.versions_space,
    };
    config.reap_every = args.reap_every;
    config.handshake_timeout = args.handshake_timeout;
    config.idle_timeout = args.idle_timeout;
    config.actor_idle = args.actor_idle;
    Ok(config)
}

/// Prints what the server reports on stdout (the lines tests and
/// operators read: where it listens, its certificate, each new user).
fn print_event(event: ServerEvent) {
    let mut out = std::io::stdout().lock();
    match event {
        ServerEvent::Listening {
            addr,
            max_connections,
            fingerprint,
        } => {
            let _ = writeln!(out, "cloud-server listening on {addr}");
            match fingerprint {
                Some(fp) => {
                    let _ = writeln!(out, "certificate fingerprint (SHA-256): {fp}");
                }
                None => {
                    let _ = writeln!(out, "plaintext: no TLS (--insecure-plaintext)");
                }
            }
            log::info!("accepting up to {max_connections} connections");
        }
        ServerEvent::NewUser(user) => {
            let _ = writeln!(out, "new user {user}");
        }
    }
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn device_times_are_utc_with_a_z_and_nothing_recorded_is_said() {
        assert_eq!(when(1_796_210_776, "never"), "2026-12-02T11:26:16Z");
        assert_eq!(when(1, "never"), "1970-01-01T00:00:01Z");
        assert_eq!(when(0, "never"), "never");
        assert_eq!(when(0, "-"), "-");
        assert_eq!(when(u64::MAX, "never"), "-");
    }

    #[test]
    fn the_synopsis_names_every_option_and_command_and_nothing_else() {
        let gaps = cli::synopsis_gaps(&Args::command(), &Admin::command(), SYNOPSIS);
        assert!(gaps.is_empty(), "{gaps:#?}");
        // Every command clap knows starts the operator's parser in main.
        let mut names: Vec<String> = Admin::command()
            .get_subcommands()
            .map(|c| c.get_name().to_owned())
            .filter(|n| n != "help")
            .collect();
        names.sort();
        let mut words: Vec<String> = ADMIN_WORDS.iter().map(|w| (*w).to_owned()).collect();
        words.sort();
        assert_eq!(names, words);
    }
}

#[cfg(test)]
mod proxy_protocol_option {
    use super::*;
    use clap::Parser;

    /// `--proxy-protocol` takes networks and bare addresses, comma-separated
    /// or repeated (PROTOCOL.md §17), and names a wrong one.
    #[test]
    fn networks_and_addresses_are_taken_and_a_wrong_one_named() {
        let args = Args::try_parse_from([
            "cloud-server",
            "7000",
            "--proxy-protocol",
            "10.0.0.0/24,127.0.0.1",
            "--proxy-protocol",
            "fd00::/64",
        ])
        .expect("parses");
        let config = config_from(args).expect("config");
        let nets: Vec<String> = config
            .proxy_protocol
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(nets, ["10.0.0.0/24", "127.0.0.1/32", "fd00::/64"]);
        let ip = |t: &str| t.parse::<IpAddr>().expect("ip");
        assert!(config.trusts_proxy(ip("10.0.0.200")));
        assert!(config.trusts_proxy(ip("::ffff:127.0.0.1")));
        assert!(config.trusts_proxy(ip("fd00::5")));
        assert!(!config.trusts_proxy(ip("127.0.0.2")));
        assert!(!config.trusts_proxy(ip("10.0.1.1")));
        let wrong = Args::try_parse_from(["cloud-server", "7000", "--proxy-protocol", "10.0.0/8"])
            .expect_err("refused")
            .to_string();
        assert!(
            wrong.contains("not an address or network (CIDR)"),
            "{wrong}"
        );
        let none = config_from(Args::try_parse_from(["cloud-server", "7000"]).expect("parses"))
            .expect("config");
        assert!(!none.trusts_proxy(ip("127.0.0.1")));
    }
}
