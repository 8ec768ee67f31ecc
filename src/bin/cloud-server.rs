//! `cloud-server PORT [--data-dir DIR] [--bind ADDR] [--max-connections N] [--fsync]
//! [--insecure-plaintext | --tls-cert FILE --tls-key FILE] [--metrics ADDR]
//! [--keep-versions DAYS] [--versions-space BYTES] [--reap-every SECS] [-v|-q]`:
//! argument parsing and wiring only; the server lives in `cloudservice::server`.

use clap::Parser;
use cloudservice::server::{self, ServerConfig, ServerEvent, ServerSecurity};
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// CloudService server: keeps every user's folder under DIR/AllClients/<USER_ID>/.
#[derive(Parser, Debug)]
#[command(name = "cloud-server", version)]
struct Args {
    /// TCP port to listen on (0 picks a free one; the chosen port is printed).
    port: u16,
    /// Directory holding AllClients/, connectionLog.txt and the server state.
    #[arg(long, default_value = ".")]
    data_dir: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0")]
    bind: IpAddr,
    /// Refuse connections beyond this many (default: open-file limit minus 768: 3 per actor, at most 256 actors).
    #[arg(long)]
    max_connections: Option<usize>,
    /// fsync every stored file and the journal before acknowledging a push
    /// (survives power loss; default survives a crash of the server process).
    #[arg(long)]
    fsync: bool,
    /// Seconds a new connection may take to send its Hello.
    #[arg(long, default_value_t = 10.0)]
    handshake_timeout: f64,
    /// Seconds a ready connection may stay silent before it is closed.
    #[arg(long, default_value_t = 300.0)]
    idle_timeout: f64,
    /// Seconds a user's worker thread stays without work before it retires
    /// (its state is on disk; connections stay open).
    #[arg(long, default_value_t = 30.0)]
    actor_idle: f64,
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
    /// DAYS (fractions allowed), outside AllClients/; `cloud-client versions`
    /// lists them and `cloud-client restore` brings one back.
    #[arg(long, value_name = "DAYS", default_value_t = 30.0)]
    keep_versions: f64,
    /// Per-user space for kept versions (identical contents count once); past
    /// it the oldest go first. A number of bytes with an optional K, M, G or
    /// T suffix (powers of 1024).
    #[arg(long, value_name = "BYTES", default_value = "10G", value_parser = parse_bytes)]
    versions_space: u64,
    /// Seconds between two runs of the background reaper of kept versions.
    #[arg(long, value_name = "SECS", default_value_t = 3600.0)]
    reap_every: f64,
    /// Show debug messages on stderr.
    #[arg(short, long, conflicts_with = "quiet")]
    verbose: bool,
    /// Show only errors on stderr.
    #[arg(short, long)]
    quiet: bool,
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

/// A positive, finite number of seconds as a Duration.
fn seconds(value: f64) -> Option<Duration> {
    (value.is_finite() && value > 0.0).then(|| Duration::from_secs_f64(value))
}

fn main() -> ExitCode {
    let args = Args::parse();
    let level = if args.verbose {
        "debug"
    } else if args.quiet {
        "error"
    } else {
        "info"
    };
    let logger = flexi_logger::Logger::try_with_str(level)
        .map(|l| {
            l.log_to_stderr()
                .format_for_stderr(flexi_logger::default_format)
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
    config.durable = args.fsync;
    config.security = if args.insecure_plaintext {
        ServerSecurity::Plaintext
    } else {
        ServerSecurity::Tls {
            files: args.tls_cert.zip(args.tls_key),
        }
    };
    config.metrics = args.metrics;
    let timeouts = (
        seconds(args.handshake_timeout),
        seconds(args.idle_timeout),
        seconds(args.actor_idle),
    );
    let (Some(handshake), Some(idle), Some(actor_idle)) = timeouts else {
        return Err("timeouts must be positive numbers of seconds");
    };
    let (Some(max_age), Some(reap_every)) = (
        seconds(args.keep_versions * 86_400.0),
        seconds(args.reap_every),
    ) else {
        return Err("--keep-versions and --reap-every must be positive numbers");
    };
    config.keep = server::KeepPolicy {
        max_age,
        max_bytes: args.versions_space,
    };
    config.reap_every = reap_every;
    config.handshake_timeout = handshake;
    config.idle_timeout = idle;
    config.actor_idle = actor_idle;
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
