//! `cloud-client`: keeps a folder in step with the user's other devices.
//! Argument parsing and wiring only; the work is in `cloudservice::client`.

use clap::{ArgAction, Parser};
use cloudservice::client::{logging, run, Config, LinkSecurity, Verbosity};
use cloudservice::protocol::UserId;
use cloudservice::tls::Fingerprint;
use log::LevelFilter;
use std::io::Write;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

/// Keep FOLDER_PATH in sync with a CloudService server.
///
/// Without USER_ID on a folder that was never synced, creates a new user,
/// uploads the folder and prints the new ID (`user id: …`); give that ID to
/// your other devices. With USER_ID, joins that user and downloads its files.
/// Later runs remember both (in FOLDER_PATH/.cloudservice/).
#[derive(Debug, Parser)]
#[command(name = "cloud-client", version)]
struct Args {
    /// Server address (IP or host name).
    server_ip: String,
    /// Server TCP port.
    server_port: u16,
    /// The folder to keep in sync.
    folder_path: PathBuf,
    /// Seconds between pulls (fractions allowed, e.g. 0.5); the server's
    /// notifications also trigger a pull at once.
    pulling_rate: f64,
    /// The user to join (32 hex characters), on a device's first run.
    user_id: Option<String>,
    /// Reconcile both ways, wait for the server's acknowledgements, exit.
    #[arg(long)]
    once: bool,
    /// Show every change sent and received.
    #[arg(short, long, action = ArgAction::SetTrue, conflicts_with = "quiet")]
    verbose: bool,
    /// Show errors only.
    #[arg(short, long, action = ArgAction::SetTrue)]
    quiet: bool,
    /// Speak plaintext, without TLS (only against a server started with
    /// --insecure-plaintext; for tests and benchmarks).
    #[arg(long, conflicts_with_all = ["server_fingerprint", "ca"])]
    insecure_plaintext: bool,
    /// Trust only the server certificate with this SHA-256 fingerprint (64
    /// hex digits, as cloud-server prints at start), from the first connection.
    #[arg(long, value_name = "HEX", conflicts_with = "ca")]
    server_fingerprint: Option<Fingerprint>,
    /// Trust a server certificate signed by this CA (PEM) for SERVER_IP's
    /// name, instead of trust on first use.
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let verbosity = if args.quiet {
        Verbosity::Quiet
    } else if args.verbose {
        Verbosity::Verbose
    } else {
        Verbosity::Normal
    };
    let level = match verbosity {
        Verbosity::Quiet => LevelFilter::Error,
        Verbosity::Normal => LevelFilter::Info,
        Verbosity::Verbose => LevelFilter::Debug,
    };
    if logging::init(level).is_err() {
        eprintln!("cloud-client: could not start logging");
    }
    match start(args, verbosity) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cloud-client: {e}");
            ExitCode::FAILURE
        }
    }
}

fn start(args: Args, verbosity: Verbosity) -> Result<(), Box<dyn std::error::Error>> {
    if !(args.pulling_rate.is_finite() && args.pulling_rate > 0.0) {
        return Err("PULLING_RATE must be a positive number of seconds".into());
    }
    let pull_every = Duration::from_secs_f64(args.pulling_rate.max(0.01));
    let user = match &args.user_id {
        Some(text) => Some(
            text.parse::<UserId>()
                .map_err(|e| format!("USER_ID {text:?}: {e}"))?,
        ),
        None => None,
    };
    let server = resolve(&args.server_ip, args.server_port)?;
    let config = Config {
        server,
        folder: args.folder_path,
        pull_every,
        user,
        once: args.once,
        verbosity,
        security: if args.insecure_plaintext {
            LinkSecurity::Plaintext
        } else {
            LinkSecurity::Tls {
                pin: args.server_fingerprint,
                ca: args.ca,
            }
        },
        server_name: args.server_ip.clone(),
    };
    let shutdown = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // A second signal while stopping exits at once.
        signal_hook::flag::register_conditional_shutdown(signal, 1, Arc::clone(&shutdown))?;
        signal_hook::flag::register(signal, Arc::clone(&shutdown))?;
    }
    let mut print_id = |id: UserId| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "user id: {id}");
        let _ = out.flush();
    };
    run(&config, shutdown, &mut print_id)?;
    Ok(())
}

fn resolve(host: &str, port: u16) -> Result<SocketAddr, Box<dyn std::error::Error>> {
    (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("no address for {host}").into())
}
