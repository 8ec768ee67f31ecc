//! The one wrapper of the real `cloud-server` binary: on loopback, on a port
//! the OS chose at the first start and kept across restarts (clients keep
//! their address), with its data directory in a temporary folder unless the
//! caller owns one, stopped by PID, its stdout lines, stderr log and
//! connection log readable.
//!
//! ```ignore
//! let mut server = Server::start();                       // TLS, fresh data dir, stderr inherited
//! let server = Server::options().args(&["--fsync"]).log(&path).start();
//! server.stop();                                          // SIGTERM, asserts exit 0
//! server.restart();                                       // same port, same data
//! ```

use super::client::Verbosity;
use super::procs::{append_log, log_tail, Lines, Proc};
use std::collections::BTreeSet;
use std::fmt::Display;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a start (including retries on a busy port) or a clean stop may take.
const START: Duration = Duration::from_secs(30);
const STOP: Duration = Duration::from_secs(30);

/// How to start a [`Server`]; every field has a default.
#[derive(Clone, Default)]
pub struct ServerOptions {
    data: Option<PathBuf>,
    log: Option<PathBuf>,
    args: Vec<String>,
    bin: Option<PathBuf>,
    verbosity: Option<Verbosity>,
    plaintext: bool,
}

/// Ports of the servers this test process started with `--insecure-plaintext`:
/// a [`super::Client`] for such a port gets the same option.
static PLAINTEXT_PORTS: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// Whether the server this process started on `port` speaks plaintext.
pub fn is_plaintext(port: u16) -> bool {
    PLAINTEXT_PORTS.lock().is_ok_and(|p| p.contains(&port))
}

impl ServerOptions {
    /// A data directory the caller owns (created if missing); by default a
    /// fresh temporary one that lives as long as the [`Server`].
    pub fn data(mut self, dir: &Path) -> Self {
        self.data = Some(dir.to_path_buf());
        self
    }

    /// Appends the server's stderr to `path` (kept across restarts); by
    /// default stderr is inherited.
    pub fn log(mut self, path: &Path) -> Self {
        self.log = Some(path.to_path_buf());
        self
    }

    /// The log level; by default [`Verbosity::from_env`] (quiet) when
    /// stderr is inherited and [`Verbosity::Normal`] with a log file.
    pub fn verbosity(mut self, verbosity: Verbosity) -> Self {
        self.verbosity = Some(verbosity);
        self
    }

    /// `--insecure-plaintext`: frames on TCP. By default the kit's servers
    /// run TLS, as in production, and every client of the kit (the real
    /// client, [`super::WireClient`], the raw conformance client) follows
    /// either way (see [`is_plaintext`]). For the few tests that need a
    /// plaintext socket (a second handle written from another thread).
    pub fn plaintext(mut self) -> Self {
        self.plaintext = true;
        self
    }

    /// Extra command-line arguments (`-q`, `--fsync`, ...).
    pub fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|s| s.to_string()));
        self
    }

    /// Another copy of the binary (benches/e2e runs private copies).
    pub fn bin(mut self, path: &Path) -> Self {
        self.bin = Some(path.to_path_buf());
        self
    }

    /// Starts the server; panics if it prints no listening line in time.
    pub fn start(self) -> Server {
        let (data, dir) = match &self.data {
            Some(data) => {
                std::fs::create_dir_all(data).expect("data dir");
                (data.clone(), None)
            }
            None => {
                let dir = tempfile::tempdir().expect("temp dir");
                (dir.path().to_path_buf(), Some(dir))
            }
        };
        let mut server = Server {
            proc: None,
            stdout: None,
            port: 0,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            data,
            log: self.log.clone(),
            fingerprint: None,
            options: self,
            _dir: dir,
        };
        server.spawn();
        server
    }
}

/// A running (or stopped, restartable) `cloud-server`.
pub struct Server {
    proc: Option<Proc>,
    stdout: Option<Lines>,
    /// Its port on 127.0.0.1 (the same after a restart).
    pub port: u16,
    /// `127.0.0.1:port`.
    pub addr: SocketAddr,
    /// Its data directory.
    pub data: PathBuf,
    /// Its stderr log, if [`ServerOptions::log`] chose one.
    pub log: Option<PathBuf>,
    /// The certificate fingerprint it printed (none in plaintext).
    pub fingerprint: Option<String>,
    options: ServerOptions,
    _dir: Option<tempfile::TempDir>,
}

impl Server {
    /// The defaults, to change before [`ServerOptions::start`].
    pub fn options() -> ServerOptions {
        ServerOptions::default()
    }

    /// A TLS server with a fresh temporary data directory.
    pub fn start() -> Server {
        Self::options().start()
    }

    /// A server with extra command-line arguments.
    pub fn start_with(args: &[&str]) -> Server {
        Self::options().args(args).start()
    }

    /// A server on a data directory the caller owns.
    pub fn start_in(data: &Path, args: &[&str]) -> Server {
        Self::options().data(data).args(args).start()
    }

    /// Starts the process: on a port the OS picks the first time, on the
    /// same port afterwards (retrying while the previous process still holds it).
    fn spawn(&mut self) {
        let deadline = Instant::now() + START;
        let bin = self
            .options
            .bin
            .clone()
            .or_else(|| std::env::var_os("CLOUD_TEST_SERVER_BIN").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_cloud-server")));
        loop {
            let mut cmd = Command::new(&bin);
            cmd.arg(self.port.to_string())
                .args(["--bind", "127.0.0.1", "--data-dir"])
                .arg(&self.data)
                .args(&self.options.args)
                .args(self.options.plaintext.then_some("--insecure-plaintext"))
                .args(self.verbosity().flag())
                .stdin(Stdio::null())
                .stdout(Stdio::piped());
            match &self.log {
                Some(log) => cmd.stderr(append_log(log)),
                None => cmd.stderr(Stdio::inherit()),
            };
            let mut proc = Proc::spawn("cloud-server", cmd);
            let lines = Lines::drain(proc.child.stdout.take().expect("stdout"));
            let left = deadline.saturating_duration_since(Instant::now());
            let first = lines.next(left).unwrap_or_default();
            if let Some(addr) = first.strip_prefix("cloud-server listening on ") {
                self.addr = addr.parse().expect("address in the listening line");
                self.port = self.addr.port();
                // The line after it: the certificate's fingerprint, or plaintext.
                let second = lines.next(left).unwrap_or_default();
                self.fingerprint = second
                    .strip_prefix("certificate fingerprint (SHA-256): ")
                    .map(str::to_owned);
                if let Ok(mut ports) = PLAINTEXT_PORTS.lock() {
                    if self.options.plaintext {
                        ports.insert(self.port);
                    } else {
                        ports.remove(&self.port);
                    }
                }
                self.proc = Some(proc);
                self.stdout = Some(lines);
                return;
            }
            // The port may still be held by the previous process: retry.
            proc.kill9();
            assert!(
                Instant::now() < deadline,
                "server did not start: {first:?}\n{}",
                self.log_tail(2_000)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The chosen log level, or the default for where stderr goes.
    fn verbosity(&self) -> Verbosity {
        match (self.options.verbosity, &self.log) {
            (Some(v), _) => v,
            (None, Some(_)) => Verbosity::Normal,
            (None, None) => Verbosity::from_env(),
        }
    }

    /// The running process (panics if it was stopped).
    fn running(&mut self) -> &mut Proc {
        self.proc.as_mut().expect("the server is running")
    }

    /// Its PID (panics if it was stopped).
    pub fn pid(&self) -> u32 {
        self.proc.as_ref().expect("the server is running").pid()
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        self.proc.as_mut().is_some_and(|p| p.exited().is_none())
    }

    /// SIGTERM by PID, SIGKILL after `grace`; the exit status if it exited
    /// within `grace`. Does nothing (`None`) if it is not running.
    pub fn terminate(&mut self, grace: Duration) -> Option<ExitStatus> {
        self.proc.take()?.terminate(grace)
    }

    /// SIGTERM, and asserts a clean exit (status 0) in time.
    pub fn stop(&mut self) {
        if self.proc.is_none() {
            return;
        }
        let status = self.terminate(STOP);
        assert!(
            status.is_some_and(|s| s.success()),
            "server exits 0 on SIGTERM: {status:?}\n{}",
            self.log_tail(3_000)
        );
    }

    /// Waits up to `limit` for an exit the test caused (a signal it sent);
    /// SIGKILL after that.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let status = self.running().wait_exit(limit);
        self.proc = None;
        status
    }

    /// SIGKILL (a crash).
    pub fn kill9(&mut self) {
        if let Some(mut proc) = self.proc.take() {
            proc.kill9();
        }
    }

    /// Starts it again after a stop or a crash: same port, same data.
    pub fn start_again(&mut self) {
        assert!(self.proc.is_none(), "server already running");
        self.spawn();
    }

    /// Stops it cleanly if it runs (asserting exit 0), then starts it again.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// The next line it printed on stdout after the listening line and
    /// the fingerprint line.
    pub fn next_line(&self, timeout: Duration) -> Option<String> {
        self.stdout.as_ref()?.next(timeout)
    }

    /// A user's visible folder on the server.
    pub fn user_dir<U: Display + ?Sized>(&self, user: &U) -> PathBuf {
        self.data.join("AllClients").join(user.to_string())
    }

    /// The content and executable bit of the server's copy of `path` in
    /// `user`'s folder.
    pub fn copy_of<U: Display + ?Sized>(&self, user: &U, path: &str) -> (Vec<u8>, bool) {
        use std::os::unix::fs::PermissionsExt;
        let file = self.user_dir(user).join(path);
        let bytes = std::fs::read(&file).expect("server copy");
        let mode = std::fs::metadata(&file).expect("meta").permissions().mode();
        (bytes, mode & 0o100 != 0)
    }

    /// Runs a device command (`cloud-server devices|revoke|reinstate|
    /// rotate-join DATA_DIR …`) against this server's data directory;
    /// asserts it succeeds and returns its stdout.
    pub fn admin(&self, command: &str, args: &[&str]) -> String {
        let out = self.admin_output(command, args);
        assert!(
            out.status.success(),
            "cloud-server {command} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// As [`Server::admin`], without the assertion. The binary is the
    /// server's: another build's when `CLOUD_TEST_SERVER_BIN` names one.
    pub fn admin_output(&self, command: &str, args: &[&str]) -> std::process::Output {
        let bin = self
            .options
            .bin
            .clone()
            .or_else(|| std::env::var_os("CLOUD_TEST_SERVER_BIN").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_cloud-server")));
        Command::new(bin)
            .arg(command)
            .arg(&self.data)
            .args(args)
            .output()
            .expect("run cloud-server")
    }

    /// The connection log's text.
    pub fn conn_log(&self) -> String {
        std::fs::read_to_string(self.data.join("connectionLog.txt")).unwrap_or_default()
    }

    /// Waits until the connection log contains `needle`; returns the log.
    pub fn wait_log(&self, needle: &str) -> String {
        let mut log = String::new();
        let found = super::eventually(Duration::from_secs(10), || {
            log = self.conn_log();
            log.contains(needle)
        });
        assert!(found, "log never contained {needle:?}:\n{log}");
        log
    }

    /// The last `max` bytes of its stderr log (empty if stderr is inherited).
    pub fn log_tail(&self, max: u64) -> String {
        self.log
            .as_ref()
            .map_or_else(String::new, |log| log_tail(log, max))
    }
}
