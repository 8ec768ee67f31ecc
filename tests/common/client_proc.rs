//! Helpers for the client's end-to-end tests: the real `cloud-server` on a
//! fixed loopback port (so it can be restarted under running clients), real
//! `cloud-client` processes in temporary folders, trees compared by content,
//! and polling with deadlines instead of sleeps.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
// Each test crate uses a different subset of these.
#[allow(unused_imports)]
pub use crate::procs::{free_port, signal, tree, wait_timeout, write};

/// How long any convergence may take before a test fails.
pub const CONVERGE: Duration = Duration::from_secs(20);

/// The real server, restartable on the same port and data directory.
pub struct Server {
    child: Option<Child>,
    /// Its port.
    pub port: u16,
    /// Its data directory.
    pub data: tempfile::TempDir,
}

impl Server {
    /// Starts a server on a free port.
    pub fn start() -> Server {
        let data = tempfile::tempdir().expect("temp dir");
        let mut server = Server {
            child: None,
            port: free_port(),
            data,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let mut child = Command::new(env!("CARGO_BIN_EXE_cloud-server"))
                .arg(self.port.to_string())
                .args(["--bind", "127.0.0.1", "--data-dir"])
                .arg(self.data.path())
                .arg("-q")
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("start cloud-server");
            let stdout = child.stdout.take().expect("stdout");
            let mut first = String::new();
            let _ = BufReader::new(stdout).read_line(&mut first);
            if first.starts_with("cloud-server listening on") {
                self.child = Some(child);
                return;
            }
            // The port may still be held by the previous process: retry.
            let _ = child.kill();
            let _ = child.wait();
            assert!(Instant::now() < deadline, "server did not start: {first:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the server with SIGTERM.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), "TERM");
            if wait_timeout(&mut child, Duration::from_secs(10)).is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }

    /// Starts it again on the same port and data.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// The user's folder on the server.
    pub fn user_dir(&self, user: &str) -> PathBuf {
        self.data.path().join("AllClients").join(user)
    }

    /// The connection log.
    pub fn conn_log(&self) -> String {
        std::fs::read_to_string(self.data.path().join("connectionLog.txt")).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn client_command(port: u16, folder: &Path, rate: &str, user: Option<&str>) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cloud-client"));
    cmd.arg("127.0.0.1")
        .arg(port.to_string())
        .arg(folder)
        .arg(rate);
    if let Some(user) = user {
        cmd.arg(user);
    }
    // Quiet unless CLOUD_TEST_LOG=v asks for every change (debugging a failure).
    match std::env::var("CLOUD_TEST_LOG").as_deref() {
        Ok("v") => cmd.arg("-v"),
        Ok(_) => &mut cmd,
        Err(_) => cmd.arg("-q"),
    };
    cmd
}

/// Runs `cloud-client … --once` to completion.
pub fn run_once(port: u16, folder: &Path, user: Option<&str>) -> Output {
    let mut cmd = client_command(port, folder, "0.2", user);
    cmd.arg("--once");
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start cloud-client");
    let start = Instant::now();
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            return child.wait_with_output().expect("output");
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "cloud-client --once did not finish: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Creates a user from `folder` with `--once`; returns the printed user ID.
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

/// A `cloud-client` running in the background (watching).
pub struct Client {
    child: Option<Child>,
    /// The synced folder.
    pub folder: PathBuf,
    port: u16,
    user: Option<String>,
}

impl Client {
    /// Starts a watching client (pull every 0.5 s; Notify makes it faster).
    pub fn start(port: u16, folder: &Path, user: Option<&str>) -> Client {
        let mut client = Client {
            child: None,
            folder: folder.to_path_buf(),
            port,
            user: user.map(str::to_owned),
        };
        client.spawn();
        client
    }

    fn spawn(&mut self) {
        let child = client_command(self.port, &self.folder, "0.5", self.user.as_deref())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start cloud-client");
        self.child = Some(child);
    }

    /// Stops it with SIGTERM and checks it exits 0.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), "TERM");
            let status = wait_timeout(&mut child, Duration::from_secs(15));
            assert!(
                status.is_some_and(|s| s.success()),
                "client exits 0 on SIGTERM: {status:?}"
            );
        }
    }

    /// Starts it again on the same folder.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Polls `check` until it holds or the deadline passes.
pub fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + CONVERGE;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until every folder holds the same tree as the first; returns it.
pub fn converge(what: &str, folders: &[&Path]) -> BTreeMap<String, Option<Vec<u8>>> {
    let deadline = Instant::now() + CONVERGE;
    loop {
        let first = tree(folders[0]);
        let differing: Vec<&Path> = folders[1..]
            .iter()
            .copied()
            .filter(|f| tree(f) != first)
            .collect();
        if differing.is_empty() {
            return first;
        }
        if Instant::now() >= deadline {
            let describe = |t: &BTreeMap<String, Option<Vec<u8>>>| {
                t.iter()
                    .map(|(k, v)| {
                        format!(
                            "{k}{}",
                            v.as_ref()
                                .map_or("/".into(), |b| format!(" ({} B)", b.len()))
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n  ")
            };
            panic!(
                "{what}: trees did not converge.\n{}:\n  {}\n{}:\n  {}",
                folders[0].display(),
                describe(&first),
                differing[0].display(),
                describe(&tree(differing[0]))
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
