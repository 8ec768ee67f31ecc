//! Harness plumbing: processes started and stopped by PID, /proc readings,
//! bounded waits, data sets, medians.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A child process that is always stopped: by `stop()` (SIGTERM, then SIGKILL
/// after a grace period) or, failing that, by `Drop` (SIGKILL).
pub struct Proc {
    pub child: Child,
    pub name: String,
    /// Where its stdout goes.
    pub out: PathBuf,
}

impl Proc {
    /// Starts `cmd` with stdout to `out` and stderr to `out` + `.err`.
    pub fn spawn(name: &str, mut cmd: Command, out: &Path) -> Proc {
        let stdout = File::create(out).expect("stdout file");
        let stderr = File::create(out.with_extension("err")).expect("stderr file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Proc {
            child,
            name: name.to_owned(),
            out: out.to_path_buf(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What it printed on stdout so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// Waits until its stdout contains `needle` (or it exits, or `limit` passes).
    pub fn wait_for_line(&mut self, needle: &str, limit: Duration) -> Option<String> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            let text = self.stdout();
            if let Some(line) = text.lines().find(|l| l.contains(needle)) {
                return Some(line.to_owned());
            }
            if let Ok(Some(_)) = self.child.try_wait() {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Waits for it to exit by itself, up to `limit`; kills it after that.
    pub fn wait_exit(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!(
            "e2e: {} (pid {}) overran; killing it",
            self.name,
            self.pid()
        );
        let _ = self.child.kill();
        let _ = self.child.wait();
        false
    }

    /// SIGTERM by PID, then SIGKILL after `grace`.
    pub fn stop(&mut self, grace: Duration) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status();
        self.wait_exit(grace);
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs a command to completion within `limit`; returns its wall time.
pub fn run_timed(
    name: &str,
    cmd: Command,
    out: &Path,
    limit: Duration,
) -> Result<Duration, String> {
    let start = Instant::now();
    let mut p = Proc::spawn(name, cmd, out);
    if p.wait_exit(limit) {
        Ok(start.elapsed())
    } else {
        let err = std::fs::read_to_string(out.with_extension("err")).unwrap_or_default();
        Err(format!(
            "{name} failed: {}",
            err.lines().last().unwrap_or("")
        ))
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

/// Open file descriptors.
pub fn fds(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64)
}

/// User + system CPU time consumed so far, in clock ticks.
pub fn cpu_ticks(pid: u32) -> u64 {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    // Fields after the ")" closing the command name: state is field 3, utime 14, stime 15.
    let Some(rest) = text.rsplit_once(')').map(|(_, r)| r) else {
        return 0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let num = |i: usize| f.get(i).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
    num(11) + num(12)
}

/// Clock ticks per second (getconf CLK_TCK; 100 if unknown).
pub fn clk_tck() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// CPU percentage (of one core) used by `pid` over `window`.
pub fn cpu_percent(pid: u32, window: Duration) -> f64 {
    let t0 = cpu_ticks(pid);
    let start = Instant::now();
    std::thread::sleep(window);
    let t1 = cpu_ticks(pid);
    (t1.saturating_sub(t0)) as f64 / clk_tck() / start.elapsed().as_secs_f64() * 100.0
}

/// Median of durations in seconds.
pub fn median(mut xs: Vec<f64>) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    xs.sort_by(|a, b| a.total_cmp(b));
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

/// A fast deterministic byte generator (xorshift64*), for random file contents.
pub struct Noise(u64);

impl Noise {
    pub fn new(seed: u64) -> Noise {
        Noise(seed | 1)
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            let v = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// Writes a file of `size` random bytes.
pub fn random_file(path: &Path, size: u64, seed: u64) {
    let mut f = File::create(path).expect("create data file");
    let mut noise = Noise::new(seed);
    let mut buf = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        noise.fill(&mut buf[..n]);
        f.write_all(&buf[..n]).expect("write data file");
        left -= n as u64;
    }
}

/// Writes `files` random files of `size` bytes spread over `dirs` directories.
pub fn many_files(root: &Path, files: usize, dirs: usize, size: usize, seed: u64) {
    let mut noise = Noise::new(seed);
    let mut buf = vec![0u8; size];
    for d in 0..dirs {
        std::fs::create_dir_all(root.join(format!("d{d:03}"))).expect("mkdir");
    }
    for i in 0..files {
        noise.fill(&mut buf);
        let path = root.join(format!("d{:03}/f{i:05}.bin", i % dirs));
        std::fs::write(path, &buf).expect("write small file");
    }
}

/// A free TCP port on 127.0.0.1 (bound and released; fine on a quiet loopback).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
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

/// Total bytes of regular files under `root`, skipping `.cloudservice`.
pub fn tree_bytes(root: &Path) -> u64 {
    walkdir::WalkDir::new(root)
        .into_iter()
        .filter_entry(|e| e.file_name() != ".cloudservice")
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}
