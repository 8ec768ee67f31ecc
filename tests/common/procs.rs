//! Process primitives shared by every end-to-end test and by benches/e2e:
//! a child process that is always stopped by its PID ([`Proc`]), its stdout
//! read line by line without ever blocking it ([`Lines`]), signals, bounded
//! waits, free loopback ports and log tails.
//!
//! Never stop a process by name: other engineers and CI jobs run the same
//! binaries on the same machine.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1 (bound, then released for someone else).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// Waits until something accepts TCP connections on 127.0.0.1:`port`.
pub fn wait_port(port: u16, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Sends a signal (`"TERM"`, `"KILL"`, ...) by PID.
pub fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status();
}

/// Signals a child by its PID, unless it has already been reaped (its PID
/// could then belong to another process; an exited but unreaped child keeps it).
pub fn signal_unreaped(child: &mut Child, name: &str) {
    if matches!(child.try_wait(), Ok(None)) {
        signal(child.id(), name);
    }
}

/// Waits for a process with a deadline; `None` if it still runs.
pub fn wait_timeout(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A field of /proc/PID/status, in its unit (kB for memory).
fn status_field(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Resident set size in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    status_field(pid, "VmRSS:").unwrap_or(0)
}

/// Live threads.
pub fn threads(pid: u32) -> u64 {
    status_field(pid, "Threads:").unwrap_or(0)
}

/// Threads of a `cloud-server` process that are user actors (named
/// `user-…`): 0 once every actor retired (`--actor-idle`).
pub fn actor_threads(pid: u32) -> usize {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .filter_map(|t| t.ok())
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.starts_with("user-"))
        })
        .count()
}

/// Open file descriptors.
pub fn fds(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64)
}

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

/// A log file opened for appending (kept across restarts of a process).
pub fn append_log(path: &Path) -> File {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("log file")
}

/// Reads a pipe (a child's stdout or stderr) to its end on a thread, so a
/// chatty child never blocks on a full pipe; join for the bytes.
pub fn read_to_end(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = pipe.read_to_end(&mut out);
        out
    })
}

/// A child's stdout, drained by a thread into a channel of lines, so the
/// child never blocks on a full pipe and a test can wait for a line.
pub struct Lines(mpsc::Receiver<String>);

impl Lines {
    /// Starts draining `pipe` (a stdout or stderr).
    pub fn drain(pipe: impl Read + Send + 'static) -> Lines {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Lines(rx)
    }

    /// The next line within `timeout`; `None` on timeout or once the pipe
    /// is closed and every line has been read.
    pub fn next(&self, timeout: Duration) -> Option<String> {
        self.0.recv_timeout(timeout).ok()
    }

    /// Every line until the pipe closes (the process exited), or until
    /// `limit` passes.
    pub fn rest(&self, limit: Duration) -> Vec<String> {
        let deadline = Instant::now() + limit;
        let mut out = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.0.recv_timeout(left) {
                Ok(line) => out.push(line),
                Err(_) => break,
            }
        }
        out
    }

    /// The first line from now on that contains `needle`, within `limit`.
    pub fn find(&self, needle: &str, limit: Duration) -> Option<String> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let line = self.next(left)?;
            if line.contains(needle) {
                return Some(line);
            }
        }
    }
}

/// A child process that is always stopped: by [`Proc::terminate`] (SIGTERM
/// by PID, SIGKILL after a grace period), [`Proc::kill9`], or, failing that,
/// by `Drop` (SIGKILL).
pub struct Proc {
    pub child: Child,
    /// A name for messages.
    pub name: String,
    /// Where its stdout goes, if to a file ([`Proc::spawn_to_files`]).
    pub out: Option<PathBuf>,
}

impl Proc {
    /// Starts `cmd` with the stdio the caller set up.
    pub fn spawn(name: &str, mut cmd: Command) -> Proc {
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Proc {
            child,
            name: name.to_owned(),
            out: None,
        }
    }

    /// Starts `cmd` with stdout to `out` and stderr to `out` + `.err`.
    pub fn spawn_to_files(name: &str, mut cmd: Command, out: &Path) -> Proc {
        let stdout = File::create(out).expect("stdout file");
        let stderr = File::create(out.with_extension("err")).expect("stderr file");
        cmd.stdin(Stdio::null()).stdout(stdout).stderr(stderr);
        let mut proc = Proc::spawn(name, cmd);
        proc.out = Some(out.to_path_buf());
        proc
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What it printed on stdout so far (a [`Proc::spawn_to_files`] process).
    pub fn stdout(&self) -> String {
        self.out
            .as_ref()
            .and_then(|out| std::fs::read_to_string(out).ok())
            .unwrap_or_default()
    }

    /// `Some(status)` if it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Waits for it to exit by itself, up to `limit`; kills it after that
    /// (and returns `None`).
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let status = wait_timeout(&mut self.child, limit);
        if status.is_none() {
            eprintln!("{} (pid {}) overran; killing it", self.name, self.pid());
            self.kill9();
        }
        status
    }

    /// SIGTERM by PID, then SIGKILL after `grace`; the exit status if it
    /// exited by itself within `grace`.
    pub fn terminate(&mut self, grace: Duration) -> Option<ExitStatus> {
        signal_unreaped(&mut self.child, "TERM");
        self.wait_exit(grace)
    }

    /// SIGKILL (a crash), and reaps it.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill9();
        }
    }
}
