//! Harness plumbing beyond the test kit (tests/common/): timed runs,
//! /proc readings, data sets, medians.

use crate::bin;
use crate::common::{Client, Proc, Rng, Server, Verbosity};
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// `cloud-client` (the private copy) against `server` with PULLING_RATE 5
/// and the normal log; the caller adds `--once`.
pub fn once_command(server: &Server, folder: &Path, user: Option<&str>) -> Command {
    Client::options(server.port, folder)
        .bin(&bin("cloud-client"))
        .rate("5")
        .user(user)
        .verbosity(Verbosity::Normal)
        .command()
}

/// Runs a command to completion within `limit`; returns its wall time.
pub fn run_timed(
    name: &str,
    cmd: Command,
    out: &Path,
    limit: Duration,
) -> Result<Duration, String> {
    let start = Instant::now();
    let mut p = Proc::spawn_to_files(name, cmd, out);
    if p.wait_exit(limit).is_some_and(|s| s.success()) {
        Ok(start.elapsed())
    } else {
        let err = std::fs::read_to_string(out.with_extension("err")).unwrap_or_default();
        Err(format!(
            "{name} failed: {}",
            err.lines().last().unwrap_or("")
        ))
    }
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

/// Writes a file of `size` random bytes.
pub fn random_file(path: &Path, size: u64, seed: u64) {
    let mut f = File::create(path).expect("create data file");
    let mut rng = Rng::new(seed);
    let mut buf = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        rng.fill(&mut buf[..n]);
        f.write_all(&buf[..n]).expect("write data file");
        left -= n as u64;
    }
}

/// Writes `files` random files of `size` bytes spread over `dirs` directories.
pub fn many_files(root: &Path, files: usize, dirs: usize, size: usize, seed: u64) {
    let mut rng = Rng::new(seed);
    let mut buf = vec![0u8; size];
    for d in 0..dirs {
        std::fs::create_dir_all(root.join(format!("d{d:03}"))).expect("mkdir");
    }
    for i in 0..files {
        rng.fill(&mut buf);
        let path = root.join(format!("d{:03}/f{i:05}.bin", i % dirs));
        std::fs::write(path, &buf).expect("write small file");
    }
}
