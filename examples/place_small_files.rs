//! What placing a download costs the client per file (BENCHMARKS.md
//! "Placing small downloads"): 10,000 small files, 100 in each of 100
//! directories `dNN/`, applied as one pull reply into an empty folder on
//! the local disk, each file then written to the temporary area and placed
//! by [`Applier::place`] (hash already known; no network, no fsync) — the
//! steps a download goes through after its bytes arrive. CPU time (user +
//! system, what the steps' system calls cost; wall time on a shared
//! machine says more about the neighbours) and wall time of the apply and
//! the placing, median of 5 runs, each in a fresh folder.
//!
//! Run: `cargo run --release --example place_small_files [FILES]`.

use cloudservice::client::applier::{Applied, Applier};
use cloudservice::client::index::Index;
use cloudservice::protocol::{ChangeEntry, ContentHash, EntryState, WirePath};
use std::fs;
use std::time::Instant;

fn entry(path: &str, version: u64, state: EntryState) -> ChangeEntry {
    ChangeEntry {
        path: WirePath::new(path).expect("a legal path"),
        version,
        state,
        executable: false,
    }
}

/// CPU seconds (user + system) of this process so far.
fn cpu() -> f64 {
    // SAFETY: an all-zero rusage is valid for the call to fill.
    let mut r: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `r` is a valid rusage for the call to fill.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut r) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(r.ru_utime) + secs(r.ru_stime)
}

/// One run: (CPU, wall) seconds to apply the reply and place every file.
fn run(files: usize) -> (f64, f64) {
    let top = tempfile::tempdir().expect("temp dir");
    let root = top.path().join("folder");
    let tmp = top.path().join("tmp");
    fs::create_dir_all(&root).expect("folder");
    fs::create_dir_all(&tmp).expect("tmp");
    let dirs = files.div_ceil(100).max(1);
    let mut entries = Vec::new();
    let mut version = 0;
    for d in 0..dirs {
        version += 1;
        entries.push(entry(&format!("d{d:02}"), version, EntryState::Dir));
    }
    let mut bodies = Vec::new();
    for i in 0..files {
        version += 1;
        let body = format!("file {i}\n");
        let hash = ContentHash::of(body.as_bytes());
        let state = EntryState::File {
            size: body.len() as u64,
            hash,
        };
        entries.push(entry(&format!("d{:02}/f{i}", i % dirs), version, state));
        bodies.push(body);
    }
    let mut index = Index::new();
    let started = Instant::now();
    let cpu_at = cpu();
    let mut applier = Applier::new(&root, &tmp, &mut index, 2);
    let applied = applier.apply(&entries, false).expect("apply");
    let mut out = Applied::default();
    for job in &applied.fetches {
        let at = applier.tmp_name("bench");
        let i: usize = job
            .path
            .as_str()
            .rsplit('f')
            .next()
            .and_then(|n| n.parse().ok())
            .expect("index");
        fs::write(&at, &bodies[i]).expect("write tmp");
        applier
            .place(job, &at, (job.hash, job.version), &mut out)
            .expect("place");
    }
    let took = (cpu() - cpu_at, started.elapsed().as_secs_f64());
    assert_eq!(out.changed, files, "every file placed");
    took
}

fn main() {
    let files: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000);
    let runs: Vec<(f64, f64)> = (0..5).map(|_| run(files)).collect();
    for (what, pick) in [("CPU", 0), ("wall", 1)] {
        let mut times: Vec<f64> = runs
            .iter()
            .map(|r| if pick == 0 { r.0 } else { r.1 })
            .collect();
        times.sort_by(f64::total_cmp);
        let median = times[2];
        println!(
            "{files} files, {what}: median {median:.3} s, {:.1} µs per file (runs: {})",
            median * 1e6 / files as f64,
            times
                .iter()
                .map(|t| format!("{t:.3}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
}
