//! The reaper: one background thread (never the reactor, never an actor)
//! that, every `--reap-every`, drops each user's kept versions (§14.4)
//! older than `--keep-versions` days and, oldest first, those past
//! `--versions-space` bytes.

use super::store::versions::{now_ms, KeepPolicy, VersionDir};
use super::store::DataPaths;
use std::time::{Duration, Instant};

/// Starts the reaper thread.
///
/// # Errors
/// The thread could not be spawned.
pub fn spawn(paths: DataPaths, policy: KeepPolicy, every: Duration) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("reaper".into())
        .spawn(move || loop {
            std::thread::sleep(every);
            reap_all(&paths, policy);
        })?;
    Ok(())
}

/// Reaps every user's versions once; logs what went and what failed.
pub fn reap_all(paths: &DataPaths, policy: KeepPolicy) {
    let Ok(users) = std::fs::read_dir(paths.state_root()) else {
        return;
    };
    for user in users.flatten() {
        let Some(versions) = VersionDir::existing(&user.path()) else {
            continue;
        };
        let started = Instant::now();
        match versions.reap(policy, now_ms()) {
            Ok(report) if report.dropped > 0 || report.objects_removed > 0 => log::info!(
                "reaper: user {}: {} versions dropped, {} kept ({} bytes), {} objects removed in {:?}",
                user.file_name().to_string_lossy(),
                report.dropped,
                report.kept,
                report.bytes_kept,
                report.objects_removed,
                started.elapsed()
            ),
            Ok(_) => {}
            Err(e) => log::error!(
                "reaper: user {}: {e}",
                user.file_name().to_string_lossy()
            ),
        }
    }
}
