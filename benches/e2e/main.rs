//! End-to-end benchmark harness (issue 5): starts the real `cloud-server`,
//! `cloud-load` and `cloud-client` binaries and an rsync daemon on loopback,
//! in fresh temp directories, runs every scenario, and writes its table into
//! BENCHMARKS.md under its own heading (other sections are kept).
//!
//! ```text
//! cargo bench --bench e2e              # full run, about 20-30 minutes
//! cargo bench --bench e2e -- --quick   # smoke run with small sizes, a few minutes
//! cargo bench --bench e2e -- --only connections,transfer   # a subset
//! ```
//! Every process it starts is stopped by PID; every wait has a deadline.

// The test kit (tests/common/): the same server and client wrappers,
// processes stopped by PID, PRNG and tree walk as the integration tests.
#[path = "../../tests/common/mod.rs"]
mod common;
mod connections;
mod report;
mod scenarios;
mod transfer;
mod util;

pub use common::{Server, Verbosity};
use report::Row;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Sizes and counts of one run.
pub struct Plan {
    pub quick: bool,
    pub runs: usize,
    pub conns: usize,
    pub pull_secs: u64,
    pub measure_secs: u64,
    pub big_file: u64,
    pub small_files: usize,
    pub small_dirs: usize,
    pub propagation_samples: usize,
    pub backpressure_file: u64,
    pub backpressure_secs: u64,
    pub client_idle_secs: u64,
}

impl Plan {
    fn new(quick: bool) -> Plan {
        if quick {
            Plan {
                quick,
                runs: 1,
                conns: 2_000,
                pull_secs: 10,
                measure_secs: 15,
                big_file: 64 << 20,
                small_files: 1_000,
                small_dirs: 10,
                propagation_samples: 5,
                backpressure_file: 256 << 20,
                backpressure_secs: 10,
                client_idle_secs: 10,
            }
        } else {
            Plan {
                quick,
                runs: 3,
                conns: 19_000,
                pull_secs: 10,
                measure_secs: 60,
                big_file: 1 << 30,
                small_files: 10_000,
                small_dirs: 100,
                propagation_samples: 20,
                backpressure_file: 2 << 30,
                backpressure_secs: 60,
                client_idle_secs: 30,
            }
        }
    }
}

/// Shared state of the run: binaries, scratch space, results.
pub struct Ctx {
    pub plan: Plan,
    pub scratch: tempfile::TempDir,
    pub rows: Vec<Row>,
    pub notes: Vec<String>,
    counter: usize,
}

impl Ctx {
    /// A fresh directory under the run's scratch space.
    pub fn fresh_dir(&mut self, label: &str) -> PathBuf {
        self.counter += 1;
        let dir = self
            .scratch
            .path()
            .join(format!("{:03}-{label}", self.counter));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        dir
    }

    /// A path for a process's stdout.
    pub fn log_path(&mut self, label: &str) -> PathBuf {
        self.counter += 1;
        self.scratch
            .path()
            .join(format!("{:03}-{label}.out", self.counter))
    }

    pub fn row(&mut self, row: Row) {
        println!("  {}", row.one_line());
        self.rows.push(row);
    }

    pub fn note(&mut self, text: String) {
        println!("  note: {text}");
        self.notes.push(text);
    }
}

/// Starts `cloud-server -q` (TLS) on 127.0.0.1 (the private copy of the binary)
/// with a fresh data directory and its stderr log in the run's scratch space.
pub fn start_server(ctx: &mut Ctx, extra: &[&str]) -> Server {
    start_server_in(ctx, extra, false)
}

/// [`start_server`], or with `--insecure-plaintext` when `plaintext` (the
/// kit's clients started for its port follow), to compare the two.
pub fn start_server_in(ctx: &mut Ctx, extra: &[&str], plaintext: bool) -> Server {
    let data = ctx.fresh_dir("server");
    let log = ctx.log_path("server").with_extension("err");
    // TLS, as in production: clients follow (the kit), cloud-load speaks it.
    let options = Server::options()
        .bin(&bin("cloud-server"))
        .data(&data)
        .log(&log)
        .verbosity(Verbosity::Quiet)
        .args(extra);
    if plaintext {
        options.plaintext().start()
    } else {
        options.start()
    }
}

/// Stops a scenario's server: SIGTERM by PID, SIGKILL after 30 s.
pub fn stop_server(server: &mut Server) {
    server.terminate(Duration::from_secs(30));
}

/// Where the private copies of the binaries are (set once at start).
static BIN_DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// The binaries cargo built for this bench, copied under names that contain
/// neither `cloud` nor the original names (`e2e-srv`, `e2e-cli`, `e2e-ld`), so
/// that a `pkill cloud-load` by someone else on a shared machine does not end
/// this run's processes (that happened twice while this harness was written).
fn copy_bins(dir: &Path) {
    for (name, path) in [
        ("cloud-server", env!("CARGO_BIN_EXE_cloud-server")),
        ("cloud-client", env!("CARGO_BIN_EXE_cloud-client")),
        ("cloud-load", env!("CARGO_BIN_EXE_cloud-load")),
    ] {
        std::fs::copy(path, dir.join(private_name(name))).expect("copy binary");
    }
    let _ = BIN_DIR.set(dir.to_path_buf());
}

fn private_name(name: &str) -> &'static str {
    match name {
        "cloud-server" => "e2e-srv",
        "cloud-client" => "e2e-cli",
        _ => "e2e-ld",
    }
}

/// The path of one of our binaries.
pub fn bin(name: &str) -> PathBuf {
    BIN_DIR
        .get()
        .expect("binaries copied")
        .join(private_name(name))
}

fn ensure_rsync() -> bool {
    let have = || {
        Command::new("rsync")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if have() {
        return true;
    }
    println!("e2e: rsync missing; installing it (apt-get update && apt-get install -y rsync)");
    let _ = Command::new("apt-get").arg("update").arg("-qq").status();
    let _ = Command::new("apt-get")
        .args(["install", "-y", "-qq", "rsync"])
        .status();
    have()
}

fn first_line(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_owned()
        })
        .unwrap_or_default()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let only: Option<Vec<String>> = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .map(|s| s.split(',').map(str::to_owned).collect());
    let wants = |name: &str| only.as_ref().is_none_or(|o| o.iter().any(|x| x == name));
    let started = Instant::now();
    // Read before the run: other commits may land while it runs.
    let dirty = Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no", "src"])
        .output()
        .is_ok_and(|o| !o.stdout.is_empty());
    let versions = vec![
        format!(
            "cloudservice {} (commit {}{})",
            env!("CARGO_PKG_VERSION"),
            first_line("git", &["rev-parse", "--short", "HEAD"]),
            if dirty {
                " plus uncommitted changes in src/"
            } else {
                ""
            }
        ),
        first_line("rustc", &["-V"]),
        first_line("rsync", &["--version"]),
        format!("Linux {}", first_line("uname", &["-r"])),
    ];
    let rsync_ok = ensure_rsync();
    let mut ctx = Ctx {
        plan: Plan::new(quick),
        scratch: tempfile::Builder::new()
            .prefix("cs-e2e-")
            .tempdir()
            .expect("scratch dir"),
        rows: Vec::new(),
        notes: Vec::new(),
        counter: 0,
    };
    let bins = ctx.fresh_dir("bin");
    copy_bins(&bins);
    println!(
        "e2e: {} run in {}",
        if quick { "quick" } else { "full" },
        ctx.scratch.path().display()
    );
    if !rsync_ok {
        ctx.note("rsync could not be installed: rsync columns are empty".to_owned());
    }
    if wants("connections") {
        connections::run_all(&mut ctx);
    }
    if wants("transfer") {
        transfer::run_all(&mut ctx, rsync_ok);
    }
    if wants("propagation") {
        scenarios::propagation(&mut ctx);
    }
    if wants("backpressure") {
        scenarios::backpressure(&mut ctx);
    }
    if wants("client-idle") {
        scenarios::client_idle(&mut ctx);
    }
    let section = report::section(&ctx, &versions, started.elapsed());
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("BENCHMARKS.md");
    report::merge_into(&path, &section);
    println!(
        "\n{section}\ne2e: wrote {} in {:.0} s",
        path.display(),
        started.elapsed().as_secs_f64()
    );
}
