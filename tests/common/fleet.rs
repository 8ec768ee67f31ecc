//! A fleet for the soak and crash tests: the real `cloud-server` on a fixed
//! loopback port (so it can be killed and restarted under running clients)
//! and real `cloud-client` processes with a chosen PULLING_RATE, each logging
//! to its own file, each stoppable by SIGTERM or SIGKILL by its PID.
#![allow(dead_code)]

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
// Each test crate uses a different subset of these.
#[allow(unused_imports)]
pub use crate::procs::{free_port, signal, signal_unreaped, tree, wait_timeout, write, Tree};

/// The last `max` bytes of a log file, for failure messages.
pub fn log_tail(path: &Path, max: u64) -> String {
    let Ok(mut f) = File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(max)));
    let mut out = Vec::new();
    let _ = f.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn append_log(path: &Path) -> File {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("log file")
}

/// The real server on a fixed port and data directory.
pub struct Srv {
    child: Option<Child>,
    /// Its port.
    pub port: u16,
    /// Its data directory.
    pub data: PathBuf,
    /// Its stderr, appended across restarts.
    pub log: PathBuf,
    extra: Vec<String>,
}

impl Srv {
    /// Starts a server on a free port with `data` as data directory.
    pub fn start(data: &Path, log: &Path, extra: &[&str]) -> Srv {
        fs::create_dir_all(data).expect("data dir");
        let mut srv = Srv {
            child: None,
            port: free_port(),
            data: data.to_path_buf(),
            log: log.to_path_buf(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        srv.spawn();
        srv
    }

    fn spawn(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut child = Command::new(env!("CARGO_BIN_EXE_cloud-server"))
                .arg(self.port.to_string())
                .args(["--bind", "127.0.0.1", "--data-dir"])
                .arg(&self.data)
                .args(&self.extra)
                .stdout(Stdio::piped())
                .stderr(append_log(&self.log))
                .spawn()
                .expect("start cloud-server");
            let stdout = child.stdout.take().expect("stdout");
            let mut reader = BufReader::new(stdout);
            let mut first = String::new();
            let _ = reader.read_line(&mut first);
            if first.starts_with("cloud-server listening on") {
                // Keep draining stdout ("new user" lines) so the server never blocks.
                std::thread::spawn(move || {
                    let mut sink = String::new();
                    while reader.read_line(&mut sink).is_ok_and(|n| n > 0) {
                        sink.clear();
                    }
                });
                self.child = Some(child);
                return;
            }
            // The port may still be held by the previous process: retry.
            let _ = child.kill();
            let _ = child.wait();
            assert!(
                Instant::now() < deadline,
                "server did not start: {first:?}\n{}",
                log_tail(&self.log, 2000)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The server's PID, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGTERM, and asserts a clean exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal_unreaped(&mut child, "TERM");
            let status = wait_timeout(&mut child, Duration::from_secs(30));
            if status.is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
            assert!(
                status.is_some_and(|s| s.success()),
                "server exits 0 on SIGTERM: {status:?}\n{}",
                log_tail(&self.log, 3000)
            );
        }
    }

    /// SIGKILL (a crash).
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and data directory.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "server already running");
        self.spawn();
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The user's folder on the server.
    pub fn user_dir(&self, user: &str) -> PathBuf {
        self.data.join("AllClients").join(user)
    }

    /// The connection log.
    pub fn conn_log(&self) -> String {
        fs::read_to_string(self.data.join("connectionLog.txt")).unwrap_or_default()
    }
}

impl Drop for Srv {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn client_command(
    port: u16,
    folder: &Path,
    rate: &str,
    user: Option<&str>,
    verbose: bool,
) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cloud-client"));
    cmd.arg("127.0.0.1")
        .arg(port.to_string())
        .arg(folder)
        .arg(rate);
    if let Some(user) = user {
        cmd.arg(user);
    }
    if verbose {
        cmd.arg("-v");
    }
    cmd
}

/// Runs `cloud-client … --once` to completion (60 s at most).
pub fn run_once(port: u16, folder: &Path, user: Option<&str>) -> Output {
    let mut child = client_command(port, folder, "0.2", user, false)
        .arg("--once")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start cloud-client");
    if wait_timeout(&mut child, Duration::from_secs(60)).is_none() {
        let _ = child.kill();
    }
    child.wait_with_output().expect("output")
}

/// Creates a user from `folder` with `--once`; returns its ID.
pub fn new_user(port: u16, folder: &Path) -> String {
    let out = run_once(port, folder, None);
    assert!(
        out.status.success(),
        "new user failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let id = stdout
        .lines()
        .find_map(|l| l.strip_prefix("user id: "))
        .expect("user id line");
    id.to_owned()
}

/// A watching `cloud-client`, restartable, logging to a file.
pub struct Cli {
    child: Option<Child>,
    /// The synced folder.
    pub folder: PathBuf,
    /// Its log (stderr, appended across restarts).
    pub log: PathBuf,
    port: u16,
    user: Option<String>,
    rate: String,
    verbose: bool,
}

impl Cli {
    /// Starts a watching client.
    pub fn start(port: u16, folder: &Path, user: Option<&str>, rate: &str, log: &Path) -> Cli {
        let mut cli = Cli {
            child: None,
            folder: folder.to_path_buf(),
            log: log.to_path_buf(),
            port,
            user: user.map(str::to_owned),
            rate: rate.to_owned(),
            verbose: std::env::var("SOAK_VERBOSE").is_ok(),
        };
        cli.spawn();
        cli
    }

    /// Starts the process (after a stop or a kill).
    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "client already running");
        let child = client_command(
            self.port,
            &self.folder,
            &self.rate,
            self.user.as_deref(),
            self.verbose,
        )
        .stdout(Stdio::null())
        .stderr(append_log(&self.log))
        .spawn()
        .expect("start cloud-client");
        self.child = Some(child);
    }

    /// The client's PID, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGTERM; returns the exit status (killed after 20 s).
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        signal_unreaped(&mut child, "TERM");
        let status = wait_timeout(&mut child, Duration::from_secs(20));
        if status.is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
        status
    }

    /// SIGKILL.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// True while started and not yet stopped.
    pub fn started(&self) -> bool {
        self.child.is_some()
    }

    /// `Some(status)` if the process exited on its own.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }
}

impl Drop for Cli {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A one-line-per-entry description of how two trees differ.
pub fn tree_diff(a: &Tree, b: &Tree) -> String {
    let show = |v: &Option<Vec<u8>>| match v {
        None => "dir".to_owned(),
        Some(bytes) => format!(
            "file {} B {:?}",
            bytes.len(),
            String::from_utf8_lossy(&bytes[..bytes.len().min(24)])
        ),
    };
    let mut out = String::new();
    for (k, v) in a {
        match b.get(k) {
            None => out.push_str(&format!("  only in first:  {k} ({})\n", show(v))),
            Some(w) if w != v => {
                out.push_str(&format!("  differs: {k} ({} vs {})\n", show(v), show(w)))
            }
            _ => {}
        }
    }
    for (k, v) in b {
        if !a.contains_key(k) {
            out.push_str(&format!("  only in second: {k} ({})\n", show(v)));
        }
    }
    out
}

/// Waits until every folder holds the same tree and it stays the same for
/// `stable`; returns it, or `Err` with a description of the last difference.
pub fn converge_all(folders: &[&Path], limit: Duration, stable: Duration) -> Result<Tree, String> {
    let deadline = Instant::now() + limit;
    let mut agreed: Option<(Instant, Tree)> = None;
    loop {
        let trees: Vec<_> = folders.iter().map(|f| tree(f)).collect();
        let same = trees.iter().all(|t| *t == trees[0]);
        if same {
            match &agreed {
                Some((since, t)) if *t == trees[0] => {
                    if since.elapsed() >= stable {
                        return Ok(trees[0].clone());
                    }
                }
                _ => agreed = Some((Instant::now(), trees[0].clone())),
            }
        } else {
            agreed = None;
        }
        if Instant::now() >= deadline {
            let mut why = String::new();
            for (i, t) in trees.iter().enumerate().skip(1) {
                if *t != trees[0] {
                    why.push_str(&format!(
                        "{} vs {}:\n{}",
                        folders[0].display(),
                        folders[i].display(),
                        tree_diff(&trees[0], t)
                    ));
                }
            }
            return Err(why);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A small deterministic generator (SplitMix64), so a seed replays the same
/// sequence whatever crate versions are in use.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }

    /// One element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// `n` pseudo-random bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n + 8);
        while out.len() < n {
            out.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        out.truncate(n);
        out
    }
}
