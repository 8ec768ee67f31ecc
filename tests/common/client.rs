//! The one wrapper of the real `cloud-client` binary: a watching client
//! ([`Client`], restartable, stopped by PID) and a one-shot `--once` run
//! ([`run_once`], [`new_user`]), with the command line built in one place.
//!
//! ```ignore
//! let user = new_user(server.port, a.path());               // --once, prints the user ID
//! let b = Client::start(server.port, b.path(), Some(&user)); // watching, pull every 0.5 s
//! let c = Client::options(port, dir).rate("0.3").log(&path).start();
//! ```

use super::procs::{append_log, read_to_end, Lines, Proc};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::time::Duration;

/// How long a `--once` run or a clean stop may take.
const ONCE: Duration = Duration::from_secs(60);
const STOP: Duration = Duration::from_secs(20);

/// The client's log level flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verbosity {
    /// `-q`: errors only.
    Quiet,
    /// No flag: one line per session event.
    Normal,
    /// `-v`: every change.
    Verbose,
}

impl Verbosity {
    /// The tests' default: quiet, unless `CLOUD_TEST_LOG` is set (`v` asks
    /// for every change, any other value for the normal log) to debug a failure.
    pub fn from_env() -> Verbosity {
        match std::env::var("CLOUD_TEST_LOG").as_deref() {
            Ok("v") => Verbosity::Verbose,
            Ok(_) => Verbosity::Normal,
            Err(_) => Verbosity::Quiet,
        }
    }

    /// The command-line flag of both binaries (`-q`, none, `-v`).
    pub fn flag(self) -> Option<&'static str> {
        match self {
            Verbosity::Quiet => Some("-q"),
            Verbosity::Normal => None,
            Verbosity::Verbose => Some("-v"),
        }
    }

    /// For a client whose stderr goes to a log file (soak, crash tests):
    /// the normal log, or every change if `SOAK_VERBOSE` is set.
    pub fn for_log_file() -> Verbosity {
        if std::env::var("SOAK_VERBOSE").is_ok() {
            Verbosity::Verbose
        } else {
            Verbosity::Normal
        }
    }
}

/// Where the client's stderr goes.
#[derive(Clone, Debug)]
enum Stderr {
    Inherit,
    Null,
    /// Appended, kept across restarts.
    File(PathBuf),
    /// Read by the test ([`Client::stderr_lines`]).
    Capture,
}

/// How to run a `cloud-client`; built by [`Client::options`].
#[derive(Clone, Debug)]
pub struct ClientOptions {
    host: String,
    port: u16,
    folder: PathBuf,
    rate: String,
    user: Option<String>,
    verbosity: Verbosity,
    stderr: Stderr,
    bin: Option<PathBuf>,
    plaintext: bool,
    envs: Vec<(String, String)>,
    flags: Vec<String>,
    /// `RLIMIT_NOFILE` (soft and hard) set in the child before it runs.
    open_files: Option<u64>,
}

impl ClientOptions {
    /// Adds a flag to the command line (such as `--confirm-empty`).
    pub fn flag(mut self, flag: &str) -> Self {
        self.flags.push(flag.to_owned());
        self
    }

    /// Sets `key` to `value` in the client's environment (a test knob such
    /// as `CLOUD_TEST_PLACE_DELAY_MS`).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.envs.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Runs the client under an open-file limit of `n` (soft and hard
    /// `RLIMIT_NOFILE`, as `prlimit --nofile=n:n` would).
    pub fn open_files(mut self, n: u64) -> Self {
        self.open_files = Some(n);
        self
    }

    /// SERVER_IP as typed (default `127.0.0.1`): a name is looked up by
    /// the client at each connection attempt.
    pub fn host(mut self, host: &str) -> Self {
        self.host = host.to_owned();
        self
    }

    /// PULLING_RATE in seconds (default `0.5`; Notify makes it faster).
    pub fn rate(mut self, rate: &str) -> Self {
        self.rate = rate.to_owned();
        self
    }

    /// Joins `user` (a new device); `None` creates a new user.
    pub fn user(mut self, user: Option<&str>) -> Self {
        self.user = user.map(str::to_owned);
        self
    }

    /// The log level (default [`Verbosity::from_env`]).
    pub fn verbosity(mut self, verbosity: Verbosity) -> Self {
        self.verbosity = verbosity;
        self
    }

    /// Appends stderr to `path` (default: inherited), at
    /// [`Verbosity::for_log_file`] unless a verbosity is set after this.
    pub fn log(mut self, path: &Path) -> Self {
        self.stderr = Stderr::File(path.to_path_buf());
        self.verbosity = Verbosity::for_log_file();
        self
    }

    /// Discards stderr.
    pub fn stderr_null(mut self) -> Self {
        self.stderr = Stderr::Null;
        self
    }

    /// `--insecure-plaintext`, for a server this process did not start
    /// through the kit (a fake one); the kit's own servers are followed
    /// automatically ([`super::server::is_plaintext`]).
    pub fn plaintext(mut self) -> Self {
        self.plaintext = true;
        self
    }

    /// Captures stderr for [`Client::stderr_lines`].
    pub fn capture_stderr(mut self) -> Self {
        self.stderr = Stderr::Capture;
        self
    }

    /// Another copy of the binary (benches/e2e runs private copies).
    pub fn bin(mut self, path: &Path) -> Self {
        self.bin = Some(path.to_path_buf());
        self
    }

    /// `cloud-client HOST PORT FOLDER RATE [USER] [-q|-v]`, stderr set;
    /// the caller adds `--once` or other flags and stdout.
    pub fn command(&self) -> Command {
        // CLOUD_TEST_CLIENT_BIN: another build (to show that a test fails
        // with an older client).
        let bin = self
            .bin
            .clone()
            .or_else(|| std::env::var_os("CLOUD_TEST_CLIENT_BIN").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_cloud-client")));
        let mut cmd = Command::new(bin);
        cmd.arg(&self.host)
            .arg(self.port.to_string())
            .arg(&self.folder)
            .arg(&self.rate)
            .args(&self.user)
            .args(self.verbosity.flag())
            .args(&self.flags)
            .envs(self.envs.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        if self.plaintext || super::server::is_plaintext(self.port) {
            cmd.arg("--insecure-plaintext");
        }
        if let Some(n) = self.open_files {
            use std::os::unix::process::CommandExt;
            let limit = libc::rlimit {
                rlim_cur: n,
                rlim_max: n,
            };
            // SAFETY: runs in the child between fork and exec, where only
            // async-signal-safe calls are allowed: setrlimit(2) is one, and
            // the closure touches nothing else (`limit` is a copied value).
            unsafe {
                cmd.pre_exec(move || match libc::setrlimit(libc::RLIMIT_NOFILE, &limit) {
                    0 => Ok(()),
                    _ => Err(std::io::Error::last_os_error()),
                });
            }
        }
        match &self.stderr {
            Stderr::Inherit => cmd.stderr(Stdio::inherit()),
            Stderr::Null => cmd.stderr(Stdio::null()),
            Stderr::File(path) => cmd.stderr(append_log(path)),
            Stderr::Capture => cmd.stderr(Stdio::piped()),
        };
        cmd
    }

    /// Starts a watching client.
    pub fn start(self) -> Client {
        let mut client = Client {
            proc: None,
            stdout: None,
            stderr: None,
            folder: self.folder.clone(),
            log: match &self.stderr {
                Stderr::File(path) => Some(path.clone()),
                _ => None,
            },
            options: self,
        };
        client.spawn();
        client
    }

    /// Runs `cloud-client … --once` to completion with stdout and stderr
    /// captured; panics (after SIGKILL) if it takes over 60 s.
    pub fn run_once(&self) -> Output {
        let mut cmd = self.command();
        cmd.arg("--once")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut proc = Proc::spawn("cloud-client --once", cmd);
        // Read both pipes while it runs, so a chatty client never blocks on them.
        let stdout = read_to_end(proc.child.stdout.take().expect("stdout"));
        let stderr = read_to_end(proc.child.stderr.take().expect("stderr"));
        let status = super::procs::wait_timeout(&mut proc.child, ONCE);
        if status.is_none() {
            proc.kill9();
        }
        let stderr = stderr.join().unwrap_or_default();
        assert!(
            status.is_some(),
            "cloud-client --once did not finish: {}",
            String::from_utf8_lossy(&stderr)
        );
        Output {
            status: status.expect("exited"),
            stdout: stdout.join().unwrap_or_default(),
            stderr,
        }
    }
}

/// A `cloud-client` running in the background (watching), restartable.
pub struct Client {
    proc: Option<Proc>,
    stdout: Option<Lines>,
    stderr: Option<Lines>,
    /// The synced folder.
    pub folder: PathBuf,
    /// Its stderr log, if [`ClientOptions::log`] chose one.
    pub log: Option<PathBuf>,
    options: ClientOptions,
}

impl Client {
    /// The defaults (PULLING_RATE 0.5 s, a new user, [`Verbosity::from_env`],
    /// stderr inherited), to change before [`ClientOptions::start`].
    pub fn options(port: u16, folder: &Path) -> ClientOptions {
        ClientOptions {
            host: "127.0.0.1".to_owned(),
            port,
            folder: folder.to_path_buf(),
            rate: "0.5".to_owned(),
            user: None,
            verbosity: Verbosity::from_env(),
            stderr: Stderr::Inherit,
            bin: None,
            plaintext: false,
            envs: Vec::new(),
            flags: Vec::new(),
            open_files: None,
        }
    }

    /// Starts a watching client with the defaults.
    pub fn start(port: u16, folder: &Path, user: Option<&str>) -> Client {
        Self::options(port, folder).user(user).start()
    }

    /// Starts the process (first time, or after a stop or a kill).
    pub fn spawn(&mut self) {
        assert!(self.proc.is_none(), "client already running");
        let mut cmd = self.options.command();
        cmd.stdout(Stdio::piped());
        let mut proc = Proc::spawn("cloud-client", cmd);
        self.stdout = Some(Lines::drain(proc.child.stdout.take().expect("stdout")));
        self.stderr = proc.child.stderr.take().map(Lines::drain);
        self.proc = Some(proc);
    }

    /// Its PID, while started.
    pub fn pid(&self) -> Option<u32> {
        self.proc.as_ref().map(Proc::pid)
    }

    /// SIGTERM by PID; the exit status, or `None` if it had to be killed
    /// after 20 s (or was not started).
    pub fn terminate(&mut self) -> Option<ExitStatus> {
        self.proc.take()?.terminate(STOP)
    }

    /// SIGTERM, and asserts it exits 0 in time.
    pub fn stop(&mut self) {
        if self.proc.is_none() {
            return;
        }
        let status = self.terminate();
        assert!(
            status.is_some_and(|s| s.success()),
            "client exits 0 on SIGTERM: {status:?}"
        );
    }

    /// Waits up to `limit` for it to exit by itself (SIGKILL after that).
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        self.proc.take()?.wait_exit(limit)
    }

    /// Every line it printed on stderr, once it has exited (a
    /// [`ClientOptions::capture_stderr`] client; empty otherwise).
    pub fn stderr_lines(&self) -> Vec<String> {
        self.stderr
            .as_ref()
            .map_or_else(Vec::new, |lines| lines.rest(Duration::from_secs(10)))
    }

    /// SIGKILL (a crash).
    pub fn kill9(&mut self) {
        if let Some(mut proc) = self.proc.take() {
            proc.kill9();
        }
    }

    /// Stops it cleanly (asserting exit 0) and starts it again on the same folder.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        self.proc.as_mut().is_some_and(|p| p.exited().is_none())
    }

    /// True while started and not yet stopped (it may have exited by itself).
    pub fn started(&self) -> bool {
        self.proc.is_some()
    }

    /// `Some(status)` if the process exited on its own.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.proc.as_mut()?.exited()
    }

    /// The last `max` bytes of its stderr log (empty without a log file).
    pub fn log_tail(&self, max: u64) -> String {
        self.log
            .as_ref()
            .map_or_else(String::new, |log| super::procs::log_tail(log, max))
    }

    /// Waits until its stderr log contains `needle` (anywhere, including lines
    /// written before the call), polling every 20 ms; false after `limit`.
    pub fn wait_log(&self, needle: &str, limit: Duration) -> bool {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if self.log_tail(1 << 20).contains(needle) {
                return true;
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The first stdout line from now on that contains `needle`, within `limit`.
    pub fn wait_line(&self, needle: &str, limit: Duration) -> Option<String> {
        self.stdout.as_ref()?.find(needle, limit)
    }
}

/// Runs `cloud-client … --once` (PULLING_RATE 0.2) to completion.
pub fn run_once(port: u16, folder: &Path, user: Option<&str>) -> Output {
    Client::options(port, folder)
        .rate("0.2")
        .user(user)
        .run_once()
}

/// Watching clients of `user` on folders `a` (the one `new_user` made the
/// user from) and `b`, each logging to the file paired with its folder.
/// Bind both for the whole test: dropping a client kills it.
pub fn watching_pair(
    port: u16,
    (a, log_a): (&Path, &Path),
    (b, log_b): (&Path, &Path),
    user: &str,
) -> (Client, Client) {
    let ca = Client::options(port, a).log(log_a).start();
    let cb = Client::options(port, b).user(Some(user)).log(log_b).start();
    (ca, cb)
}

/// Creates a user from `folder` with `--once`; returns the user ID it
/// printed (asserted to be its only stdout line, 32 hex digits).
pub fn new_user(port: u16, folder: &Path) -> String {
    let out = run_once(port, folder, None);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "new user failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "exactly one line on stdout: {stdout:?}");
    let id = lines[0].strip_prefix("user id: ").expect("user id line");
    assert_eq!(id.len(), 32);
    id.to_owned()
}

/// Runs `cloud-client ARGS…` once (a subcommand such as `versions`,
/// `restore`, `status`) against the server on `port` (plaintext if that
/// server is): (exit code, stdout, stderr). The binary is another build's
/// when `CLOUD_TEST_CLIENT_BIN` names one.
pub fn cli(port: u16, args: &[&str]) -> (i32, String, String) {
    let bin = std::env::var_os("CLOUD_TEST_CLIENT_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_cloud-client")),
        PathBuf::from,
    );
    let mut cmd = std::process::Command::new(bin);
    cmd.args(args);
    if super::server::is_plaintext(port) {
        cmd.arg("--insecure-plaintext");
    }
    let out = cmd.output().expect("run cloud-client");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `cloud-client status FOLDER` (`--json` when `json`): the exit code (0 in
/// sync, 1 not, 2 nothing to report) and stdout. `status` reads the saved
/// state and needs no server. The binary is another build's when
/// `CLOUD_TEST_CLIENT_BIN` names one (as for the running clients).
pub fn status_text(folder: &Path, json: bool) -> (i32, String) {
    let bin = std::env::var_os("CLOUD_TEST_CLIENT_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_cloud-client")),
        PathBuf::from,
    );
    let mut cmd = Command::new(bin);
    cmd.arg("status").arg(folder);
    if json {
        cmd.arg("--json");
    }
    let out = cmd.output().expect("run status");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// `cloud-client status FOLDER --json`: the exit code and the object;
/// `Value::Null` when stdout is not JSON (exit 2 before the folder joined).
pub fn status_json(folder: &Path) -> (i32, serde_json::Value) {
    let (code, text) = status_text(folder, true);
    (code, serde_json::from_str(&text).unwrap_or_default())
}

/// Polls [`status_json`] until `check` holds; that reading, or a failure
/// naming `what` (with the last reading) after `limit`.
pub fn status_until(
    what: &str,
    folder: &Path,
    limit: std::time::Duration,
    check: impl Fn(i32, &serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = std::time::Instant::now() + limit;
    loop {
        let (code, value) = status_json(folder);
        if check(code, &value) {
            return value;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for status: {what}; last: exit {code} {value:#}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}
