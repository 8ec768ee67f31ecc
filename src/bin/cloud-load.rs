//! `cloud-load SERVER_IP SERVER_PORT [options]`: argument parsing and wiring
//! only; the load generator lives in `cloudservice::load`.

use clap::Parser;
use cloudservice::cli;
use cloudservice::load::{self, LoadConfig, Milestone};
use cloudservice::protocol::UserId;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// Capacity test for a CloudService server: holds N persistent connections
/// over U users, each pulling every R seconds, and reports connections held,
/// pulls/s, pull round-trip percentiles and errors.
#[derive(Parser, Debug)]
#[command(name = "cloud-load", version)]
struct Args {
    /// Server IP address.
    server_ip: IpAddr,
    /// Server TCP port.
    server_port: u16,
    /// Connections to open.
    #[arg(short = 'n', long, default_value_t = 100)]
    connections: usize,
    /// Users to spread them over (one NewUser each, then NewClient).
    #[arg(short = 'u', long, default_value_t = 10)]
    users: usize,
    /// File of existing user IDs (one per line): join them with NewClient instead of creating users.
    #[arg(long)]
    user_ids: Option<PathBuf>,
    /// Write the user IDs used to this file (to reuse them with --user-ids).
    #[arg(long)]
    save_user_ids: Option<PathBuf>,
    /// Seconds between two pulls of one connection.
    #[arg(short = 'r', long, value_name = "SECS", default_value = "10", value_parser = cli::duration::secs)]
    pull_every: Duration,
    /// Seconds between two small-file pushes of one connection (default: no pushes).
    #[arg(long, value_name = "SECS", value_parser = cli::duration::secs)]
    push_every: Option<Duration>,
    /// Bytes per pushed file.
    #[arg(long, default_value_t = 1024)]
    push_size: usize,
    /// Seconds of the measure phase (pulling); the tool then stops by itself.
    #[arg(short = 'd', long, value_name = "SECS", default_value = "30", value_parser = cli::duration::secs)]
    duration: Duration,
    /// Local source address (repeatable; used in turn), e.g. --source 127.0.0.2.
    #[arg(long = "source")]
    sources: Vec<Ipv4Addr>,
    /// New connections started per second during setup.
    #[arg(long, default_value_t = 2000)]
    connect_rate: u32,
    /// Handshakes in flight at once during setup.
    #[arg(long, default_value_t = 256)]
    max_handshakes: usize,
    /// Seconds allowed for setup (and for the hold before the go-file appears).
    #[arg(long, value_name = "SECS", default_value = "300", value_parser = cli::duration::secs)]
    setup_timeout: Duration,
    /// After setup, stay connected and silent until this file exists, then measure.
    #[arg(long)]
    go_file: Option<PathBuf>,
    /// Seconds without a reply before a pull or push counts as an error.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = cli::duration::secs)]
    reply_timeout: Duration,
    /// Also write the figures as key=value lines (mergeable histograms) to this file.
    #[arg(long)]
    summary: Option<PathBuf>,
    /// Plaintext frames, without TLS (against a server started with
    /// --insecure-plaintext). By default every connection is TLS 1.3, as
    /// real clients run, trusting any server certificate.
    #[arg(long)]
    insecure_plaintext: bool,
}

fn config(args: &Args) -> Result<LoadConfig, Box<dyn std::error::Error>> {
    let mut c = LoadConfig::new(SocketAddr::new(args.server_ip, args.server_port));
    c.connections = args.connections;
    c.users = args.users;
    if let Some(path) = &args.user_ids {
        let shown = path.display();
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read --user-ids {shown}: {e}"))?;
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let id = line
                .trim()
                .parse::<UserId>()
                .map_err(|e| format!("--user-ids {shown} line {}: {e}", n + 1))?;
            c.user_ids.push(id);
        }
    }
    c.sources = args.sources.clone();
    c.pull_every = args.pull_every;
    c.push_every = args.push_every;
    c.push_size = args.push_size;
    c.duration = args.duration;
    c.connect_rate = args.connect_rate;
    c.max_handshakes = args.max_handshakes.max(1);
    c.setup_timeout = args.setup_timeout;
    c.go_file = args.go_file.clone();
    if !args.insecure_plaintext {
        c.tls = Some(cloudservice::load::link::tls_config().map_err(|e| format!("TLS: {e}"))?);
    }
    c.reply_timeout = args.reply_timeout;
    Ok(c)
}

fn main() -> ExitCode {
    // A wrong command line is one line and exit 2, as for the other two
    // binaries (`cli.rs`).
    let args: Args = cli::parse_or_exit("cloud-load");
    let cfg = match config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cloud-load: {e}");
            return ExitCode::FAILURE;
        }
    };
    // SIGINT/SIGTERM end the run early with a report of what was measured.
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(signal, Arc::clone(&cfg.stop)) {
            eprintln!("cloud-load: cannot install a signal handler: {e}");
            return ExitCode::FAILURE;
        }
    }
    let mut on_milestone = |m: Milestone| {
        let mut out = std::io::stdout().lock();
        let _ = match m {
            Milestone::Connected { held, failed } => {
                writeln!(out, "connected held={held} failed={failed}")
            }
            Milestone::Measuring => writeln!(out, "measuring"),
        };
        let _ = out.flush();
    };
    let report = match load::run(&cfg, &mut on_milestone) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cloud-load: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "\ncloud-load: {} connections over {} users to {}, pull every {:?}, measured {:.1} s\n",
        cfg.connections,
        if cfg.user_ids.is_empty() {
            cfg.users
        } else {
            cfg.user_ids.len()
        },
        cfg.server,
        cfg.pull_every,
        report.measured.as_secs_f64()
    );
    print!("{}", report.table());
    if let Some(path) = &args.summary {
        if let Err(e) = std::fs::write(path, report.to_kv()) {
            eprintln!("cloud-load: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    if let Some(path) = &args.save_user_ids {
        let ids: String = report.user_ids.iter().map(|u| format!("{u}\n")).collect();
        if let Err(e) = std::fs::write(path, ids) {
            eprintln!("cloud-load: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
