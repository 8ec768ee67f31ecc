//! `cloud-client`: keeps a folder in step with the user's other devices.
//! Argument parsing and wiring only; the work is in `cloudservice::client`.
//! [`SYNOPSIS`] is what `--help` prints under "Usage:" and README "Running a
//! client" shows (tests/cli_usage.rs compares them); a wrong command line is
//! one line on stderr and exit 2 (`cloudservice::cli`).

use clap::{ArgAction, Parser, Subcommand};
use cloudservice::cli;
use cloudservice::client::history::{self, Remote};
use cloudservice::client::pace::Pace;
use cloudservice::client::status::report;
use cloudservice::client::{
    logging, run, ClientError, Config, LinkSecurity, Outcome, ServerAddress, Verbosity,
};
use cloudservice::protocol::{ErrorCode, PushStatus, Secret, UserId, WirePath};
use cloudservice::tls::Fingerprint;
use log::LevelFilter;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Every way to run `cloud-client` (checked against the parser by the unit
/// test below, and against README by tests/cli_usage.rs).
const SYNOPSIS: &str = "\
cloud-client SERVER_IP SERVER_PORT FOLDER_PATH PULLING_RATE [USER_ID[:JOIN_CODE]] [--once] [-v | -q]
             [--device-name NAME] [--confirm-empty]
             [--server-fingerprint HEX | --ca FILE | --insecure-plaintext]
cloud-client status FOLDER [--json]
cloud-client versions FOLDER [PATH] [--server HOST:PORT]
             [--server-fingerprint HEX | --ca FILE | --insecure-plaintext]
cloud-client restore FOLDER PATH (--version N | --at TIME) [--server HOST:PORT]
             [--server-fingerprint HEX | --ca FILE | --insecure-plaintext]
cloud-client --help | --version";

/// Keep FOLDER_PATH in sync with a CloudService server.
///
/// Without USER_ID on a folder that was never synced, creates a new user,
/// uploads the folder and prints the new ID (`user id: …`); give that ID to
/// your other devices. With USER_ID, joins that user and downloads its files
/// (USER_ID:JOIN_CODE once the operator made a join code with
/// `cloud-server rotate-join`). Each device is given its own key on joining;
/// later runs remember the user, the device and its key (in
/// FOLDER_PATH/.cloudservice/identity, mode 0600) and authenticate with the
/// key. A device the operator revoked stops with a message and changes nothing.
/// A copy of a synced folder (cp -a, rsync, a restored backup: not the folder
/// the identity was made in) does not run as that device: it joins the user
/// as a new device (conflict copies where files differ; nothing deleted).
///
/// `cloud-client status FOLDER` shows how a folder stands instead;
/// `cloud-client versions FOLDER [PATH]` lists what the server kept of
/// overwritten, deleted and moved-away entries, and
/// `cloud-client restore FOLDER PATH (--version N | --at TIME)` brings one back.
#[derive(Debug, Parser)]
#[command(
    name = "cloud-client",
    version,
    override_usage = SYNOPSIS,
    help_template = "{about-with-newline}\n{usage-heading}\n{usage}\n\n{all-args}{after-help}",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Args {
    /// Other commands (the positional form above keeps a folder in sync).
    #[command(subcommand)]
    command: Option<Command>,
    /// Server address (IP or host name).
    #[arg(required = true)]
    server_ip: Option<String>,
    /// Server TCP port.
    #[arg(required = true)]
    server_port: Option<u16>,
    /// The folder to keep in sync.
    #[arg(required = true)]
    folder_path: Option<PathBuf>,
    /// Seconds between pulls (fractions allowed, e.g. 0.5; at least 0.1, at
    /// most 3155760000 = 100 years); the server's notifications also trigger
    /// a pull at once.
    #[arg(required = true, value_parser = cli::duration::pull_secs)]
    pulling_rate: Option<Duration>,
    /// The user to join (32 hex characters), on a device's first run; with
    /// the join code as USER_ID:JOIN_CODE (64 hex characters after the colon)
    /// once the operator made one.
    #[arg(value_name = "USER_ID")]
    user_id: Option<String>,
    /// This device's name in the operator's `cloud-server devices` list
    /// (at most 64 bytes; default: the host name).
    #[arg(long, value_name = "NAME")]
    device_name: Option<String>,
    /// Reconcile both ways, wait for the server's acknowledgements, exit.
    #[arg(long)]
    once: bool,
    /// The folder was emptied on purpose: delete its synced files on the
    /// server and the other devices too (they stay in `versions`), instead of
    /// stopping as for an unmounted drive. Acts only if the folder is empty
    /// at start.
    #[arg(long)]
    confirm_empty: bool,
    /// Show every change sent and received.
    #[arg(short, long, action = ArgAction::SetTrue, conflicts_with = "quiet")]
    verbose: bool,
    /// Show errors only.
    #[arg(short, long, action = ArgAction::SetTrue)]
    quiet: bool,
    #[command(flatten)]
    trust: TrustArgs,
}

/// How the client trusts the server (the same options for syncing, for
/// `versions` and for `restore`).
#[derive(Debug, clap::Args)]
struct TrustArgs {
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

impl TrustArgs {
    fn security(&self) -> LinkSecurity {
        if self.insecure_plaintext {
            LinkSecurity::Plaintext
        } else {
            LinkSecurity::Tls {
                pin: self.server_fingerprint,
                ca: self.ca.clone(),
            }
        }
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show how FOLDER stands: server, user and device, connected or not,
    /// last sync, pending uploads and downloads, conflict copies, ignored
    /// entries, last error. Reads what the running client saved; never
    /// connects. Exit status 0 when in sync, 1 when not, 2 when it cannot
    /// tell, 3 when a client holds the folder but gives no sign of life.
    Status {
        /// The synced folder.
        folder: PathBuf,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List the versions the server keeps of PATH and of everything below
    /// it (what pushes overwrote, deleted or moved away: the trash), oldest
    /// first: number N, when (UTC), why, size, path. Without PATH, the whole
    /// folder. Connects as FOLDER's device (the server of its last run).
    Versions {
        /// The synced folder.
        folder: PathBuf,
        /// A path inside the folder, `/`-separated (e.g. docs/report.txt).
        path: Option<String>,
        #[command(flatten)]
        link: LinkArgs,
    },
    /// Restore PATH (and everything below it) as it was: just before change N
    /// from `versions`, or at TIME. A directory comes back whole. The restore is a new change
    /// that reaches every device (this one too, through its running client).
    /// Exits 0 when restored (or nothing to restore), 1 when refused, 3 when
    /// the connection was lost before the server answered: the restore may
    /// be partly done, and running the same command again is safe.
    Restore {
        /// The synced folder.
        folder: PathBuf,
        /// A path inside the folder, `/`-separated.
        path: String,
        /// Restore PATH as it was just before change N (the first column of
        /// `versions`: for one kept version, its N; for a directory removed in
        /// several changes, the smallest).
        #[arg(
            long,
            value_name = "N",
            conflicts_with = "at",
            required_unless_present = "at"
        )]
        version: Option<u64>,
        /// The moment to go back to, RFC 3339 (e.g. 2026-12-01T10:00:00Z).
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
        #[command(flatten)]
        link: LinkArgs,
    },
}

/// How `versions` and `restore` reach the server.
#[derive(Debug, clap::Args)]
struct LinkArgs {
    /// The server as HOST:PORT (default: the one FOLDER's client last used).
    #[arg(long, value_name = "HOST:PORT")]
    server: Option<String>,
    #[command(flatten)]
    trust: TrustArgs,
}

fn main() -> ExitCode {
    let args: Args = cli::parse_or_exit("cloud-client");
    // Checked here, not by clap: clap would print the text, a secret.
    if let Some(Err(e)) = args.user_id.as_deref().map(parse_join) {
        cli::usage_exit(&format!("cloud-client: {e}; see cloud-client --help"));
    }
    match args.command {
        Some(Command::Status { folder, json }) => return status(&folder, json),
        Some(Command::Versions { folder, path, link }) => {
            return versions(&folder, path.as_deref(), &link)
        }
        Some(Command::Restore {
            folder,
            path,
            version,
            at,
            link,
        }) => return restore(&folder, &path, version, at.as_deref(), &link),
        None => {}
    }
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
    let once = args.once;
    let folder = args.folder_path.clone().unwrap_or_default();
    match start(args, verbosity) {
        Ok(Outcome::InSync) => ExitCode::SUCCESS,
        // Without --once the client stopped on a signal: a clean stop.
        Ok(Outcome::NotInSync { .. }) if !once => ExitCode::SUCCESS,
        Ok(Outcome::NotInSync { left }) => {
            // breaker15 F10: `--once && echo backed up` must not lie.
            let what = if left == 1 {
                "1 entry held back or not syncable".to_owned()
            } else if left > 0 {
                format!("{left} entries held back or not syncable")
            } else {
                "changes still pending".to_owned()
            };
            eprintln!(
                "cloud-client: the folder is not in sync with the server: {what} \
                 (`cloud-client status {}` lists them)",
                folder.display()
            );
            ExitCode::from(ONCE_NOT_IN_SYNC)
        }
        Err(e) => {
            eprintln!("cloud-client: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `cloud-client status FOLDER [--json]`: 0 in sync, 1 not in sync, 2 no
/// answer, 3 a client holds the folder but does not respond.
fn status(folder: &Path, json: bool) -> ExitCode {
    match report::gather(folder) {
        Ok(r) => {
            let text = if json {
                serde_json::to_string_pretty(&r).map(|t| t + "\n")
            } else {
                Ok(report::render(&r))
            };
            match text {
                Ok(text) => print!("{text}"),
                Err(e) => {
                    eprintln!("cloud-client: {e}");
                    return ExitCode::from(2);
                }
            }
            ExitCode::from(report::exit_code(&r))
        }
        Err(e) => {
            eprintln!("cloud-client: {e}");
            ExitCode::from(2)
        }
    }
}

/// `--once`'s exit status when the run ended with the folder not in sync
/// with the server (README "Running a client"): distinct from 1 (the run
/// failed) and 2 (a wrong command line).
const ONCE_NOT_IN_SYNC: u8 = 3;

fn start(args: Args, verbosity: Verbosity) -> Result<Outcome, Box<dyn std::error::Error>> {
    // clap enforces the positional arguments when no command is given.
    let (Some(server_ip), Some(server_port), Some(folder_path), Some(pulling_rate)) = (
        args.server_ip,
        args.server_port,
        args.folder_path,
        args.pulling_rate,
    ) else {
        return Err("SERVER_IP SERVER_PORT FOLDER_PATH PULLING_RATE are required".into());
    };
    let pull_every = pulling_rate;
    let (user, join_code) = match &args.user_id {
        Some(text) => {
            let (user, code) = parse_join(text)?;
            (Some(user), code)
        }
        None => (None, None),
    };
    let config = Config {
        server: ServerAddress::new(&server_ip, server_port),
        folder: folder_path,
        pull_every,
        user,
        join_code,
        device_name: args.device_name.unwrap_or_else(host_name),
        once: args.once,
        confirm_empty: args.confirm_empty,
        verbosity,
        security: args.trust.security(),
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
    Ok(run(&config, shutdown, &mut print_id)?)
}

/// `USER_ID` or `USER_ID:JOIN_CODE`. The texts are secrets: an error names
/// which part is wrong, never its value.
fn parse_join(text: &str) -> Result<(UserId, Option<Secret>), String> {
    let (user, code) = match text.split_once(':') {
        Some((user, code)) => (user, Some(code)),
        None => (text, None),
    };
    let user = user
        .parse::<UserId>()
        .map_err(|e| format!("USER_ID: {e}"))?;
    let code = match code {
        Some(code) => Some(
            code.parse::<Secret>()
                .map_err(|e| format!("JOIN_CODE: {e}"))?,
        ),
        None => None,
    };
    Ok((user, code))
}

/// The machine's host name (the default device name), or "device".
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "device".to_owned())
}

/// The connection `versions` and `restore` use: `--server` or the server
/// FOLDER's client last used, with FOLDER's trust.
/// A folder that never joined is said by its path (it said "FOLDER").
fn remote(folder: &Path, link: &LinkArgs) -> Result<Remote, Box<dyn std::error::Error>> {
    report::joined(folder)?;
    let address = match &link.server {
        Some(a) => a.clone(),
        None => cloudservice::client::status::read(&folder.join(".cloudservice"))?
            .map(|s| s.server)
            .ok_or_else(|| {
                format!(
                    "{} has no saved server address: give --server HOST:PORT",
                    folder.display()
                )
            })?,
    };
    let server = ServerAddress::parse(&address)?;
    // While connecting, SIGTERM or Ctrl-C ends the wait at once (said as
    // "asked to stop while …"), and a server that does not answer is said
    // every few seconds, as the running client says it in `status`
    // (live20); afterwards they end the command as they always did.
    let stop = Arc::new(AtomicBool::new(false));
    let connected = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_default(signal, Arc::clone(&connected))?;
        signal_hook::flag::register(signal, Arc::clone(&stop))?;
    }
    let pace = || {
        let mut said: Option<std::time::Instant> = None;
        let note: cloudservice::client::pace::Note = Box::new(move |line| {
            let now = std::time::Instant::now();
            if said.is_none_or(|t| now.duration_since(t) >= CONNECTING_SAID_EVERY) {
                said = Some(now);
                eprintln!("cloud-client: {line}");
            }
        });
        Pace::new(None, Some(Arc::clone(&stop)), Some(note))
    };
    let remote = Remote::connect(folder, &server, &link.trust.security(), &pace);
    connected.store(true, Ordering::SeqCst);
    Ok(remote?)
}

/// How often `versions` and `restore` say that the server has not answered
/// their connection attempt yet.
const CONNECTING_SAID_EVERY: Duration = Duration::from_secs(5);

/// A `/`-separated path inside the folder, as the wire spells it.
fn wire_path(text: &str) -> Result<WirePath, Box<dyn std::error::Error>> {
    let trimmed = text.trim_start_matches("./").trim_end_matches('/');
    Ok(WirePath::new(trimmed).map_err(|e| format!("PATH {text:?}: {e}"))?)
}

/// `cloud-client versions FOLDER [PATH]`: 0 listed (even nothing), 1 failed.
fn versions(folder: &Path, path: Option<&str>, link: &LinkArgs) -> ExitCode {
    let run = || -> Result<usize, Box<dyn std::error::Error>> {
        let under = path.map(wire_path).transpose()?;
        let mut remote = remote(folder, link)?;
        let mut out = std::io::stdout().lock();
        let mut count = 0;
        remote.list(under.as_ref(), |entry| {
            count += 1;
            let _ = writeln!(out, "{}", history::render(entry));
        })?;
        Ok(count)
    };
    match run() {
        Ok(0) => {
            eprintln!("cloud-client: no kept versions");
            ExitCode::SUCCESS
        }
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cloud-client: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `--at TIME` (RFC 3339, e.g. `2026-12-01T10:00:00Z`) as ms since the
/// epoch. A time after `now` is refused: nothing can be restored as it will
/// be (outside tester breaker15, L7: it answered "already is as it was").
///
/// # Errors
/// A text that is not RFC 3339 (Unix seconds get the command that converts
/// them), a time before 1970 or after `now`.
fn restore_time(text: &str, now: std::time::SystemTime) -> Result<u64, String> {
    let at = chrono::DateTime::parse_from_rfc3339(text).map_err(|e| {
        if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            format!(
                "--at {text:?}: not an RFC 3339 time; for Unix seconds give \
                 `$(date -u -d @{text} +%FT%TZ)`"
            )
        } else {
            format!("--at {text:?}: {e} (e.g. 2026-12-01T10:00:00Z)")
        }
    })?;
    let at_ms =
        u64::try_from(at.timestamp_millis()).map_err(|_| format!("--at {text:?}: before 1970"))?;
    let now_ms = now
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    if at_ms > now_ms {
        return Err(format!(
            "--at {text:?} is in the future (now is {}): nothing can be restored as it will be",
            cloudservice::client::status::rfc3339(now)
        ));
    }
    Ok(at_ms)
}

/// `cloud-client restore FOLDER PATH (--version N | --at TIME)`.
fn restore(
    folder: &Path,
    path: &str,
    version: Option<u64>,
    at: Option<&str>,
    link: &LinkArgs,
) -> ExitCode {
    // Ok(Err(line)): the restore was asked and its answer never came
    // (history::cut_restore_line, exit history::RESTORE_CUT).
    let run = || -> Result<Result<String, String>, Box<dyn std::error::Error>> {
        let path = wire_path(path)?;
        let lists = format!(
            "`cloud-client versions {} {path}` lists what is kept",
            folder.display()
        );
        // A time that cannot be meant is refused before connecting.
        let at_ms = at
            .map(|text| restore_time(text, std::time::SystemTime::now()))
            .transpose()?;
        let mut remote = remote(folder, link)?;
        // What is kept at or below PATH, before the restore: restoring a
        // directory by the number of its removal brings back what that
        // removal held, not files deleted under it by earlier changes;
        // the answer says which (history::dir_restore).
        let mut listed = Vec::new();
        if version.is_some() {
            remote.list(Some(&path), |entry| listed.push(entry.clone()))?;
        }
        let (asked, result) = match (version, at, at_ms) {
            (Some(n), _, _) => (format!("before change {n}"), remote.restore(n, &path)),
            (None, Some(text), Some(at_ms)) => {
                (format!("at {text}"), remote.restore_at(at_ms, &path))
            }
            _ => return Err("give --version N or --at TIME".into()),
        };
        let ack = match result {
            Ok(ack) => ack,
            Err(ClientError::RequestRefused {
                code: ErrorCode::NoSuchVersion,
                message,
            }) => {
                // The server counts what was in place then and expired
                // (PROTOCOL.md ): say so rather than "never there".
                let expired = history::expired_reason(&message);
                let why = match (version, at, expired) {
                    (Some(n), _, None) => format!("no version of {path} number {n}"),
                    (Some(n), _, Some(reason)) => {
                        format!("no version of {path} number {n}: {reason}")
                    }
                    (None, text, None) => format!(
                        "no version of {path} at {}: it did not exist then (or what it was is no longer kept)",
                        text.unwrap_or_default()
                    ),
                    (None, text, Some(reason)) => format!(
                        "no version of {path} at {}: {reason}",
                        text.unwrap_or_default()
                    ),
                };
                return Err(format!("{why}; {lists}").into());
            }
            // The server stopped (or the link broke) with the restore
            // asked: it may be partly done (PROTOCOL.md ). A
            // server older than RestoreAt refuses the kind (BadFrame,
            // request ID 0) and closes too (PROTOCOL.md §3.3): the line
            // says so for --at.
            Err(ClientError::ConnectionLost(why)) => {
                let again = match (version, at) {
                    (Some(n), _) => format!("--version {n}"),
                    (None, text) => format!("--at {}", text.unwrap_or_default()),
                };
                return Ok(Err(history::cut_restore_line(
                    folder,
                    &path,
                    &again,
                    &why,
                    at.is_some(),
                )));
            }
            Err(e) => return Err(e.into()),
        };
        if ack.status == PushStatus::Unchanged {
            return Ok(Ok(format!(
                "nothing to restore: {path} already is as it was {asked} (its change {} stays current)",
                ack.version
            )));
        }
        // A directory comes back with what was below it then; what was
        // made below it since is not removed (PROTOCOL.md,
        // say so rather than claim the whole tree is as it was.
        let kept_since = if path.to_local(folder).is_dir() {
            format!("; anything made below {path} since then stays")
        } else {
            String::new()
        };
        let dir = version.and_then(|n| Some((n, history::dir_restore(&listed, &path, n)?)));
        let count = match &dir {
            Some((_, what)) if what.files == 1 => " (1 file)".to_owned(),
            Some((_, what)) => format!(" ({} files)", what.files),
            None => String::new(),
        };
        let mut line = format!(
            "restored {path} as it was {asked}{count}: at {} as change {} ({:?}){kept_since}",
            ack.path, ack.version, ack.status
        );
        if let Some((n, what)) = dir.filter(|(_, what)| !what.earlier.is_empty()) {
            line.push('\n');
            line.push_str(&history::render_dir_restore(folder, &path, n, &what));
        }
        Ok(Ok(line))
    };
    match run() {
        Ok(Ok(line)) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Ok(Err(line)) => {
            eprintln!("cloud-client: {line}");
            ExitCode::from(history::RESTORE_CUT)
        }
        Err(e) => {
            eprintln!("cloud-client: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn restore_times_in_the_future_or_not_rfc_3339_are_refused() {
        let now = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_796_266_608);
        assert_eq!(
            restore_time("2026-12-01T10:00:00Z", now),
            Ok(1_796_119_200_000)
        );
        assert_eq!(
            restore_time("2026-12-01T11:00:00.5+01:00", now),
            Ok(1_796_119_200_500)
        );
        let future = restore_time("2030-01-01T00:00:00Z", now).expect_err("future");
        assert!(future.contains("in the future"), "{future}");
        let one_ms_late = restore_time("2026-12-03T02:56:48.001Z", now).expect_err("future");
        assert!(one_ms_late.contains("in the future"), "{one_ms_late}");
        assert_eq!(
            restore_time("2026-12-03T02:56:48Z", now),
            Ok(1_796_266_608_000),
            "now itself is fine"
        );
        let epoch = restore_time("1796266608", now).expect_err("seconds");
        assert!(epoch.contains("date -u -d @1796266608"), "{epoch}");
        let before = restore_time("1960-01-01T00:00:00Z", now).expect_err("before 1970");
        assert!(before.contains("before 1970"), "{before}");
        assert!(restore_time("yesterday", now).is_err());
    }

    #[test]
    fn the_synopsis_names_every_option_and_command_and_nothing_else() {
        let command = Args::command();
        let gaps = cli::synopsis_gaps(&command, &command, SYNOPSIS);
        assert!(gaps.is_empty(), "{gaps:#?}");
    }
}
