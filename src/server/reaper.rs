//! The reaper: one background thread (never the reactor, never an actor)
//! that, every `--reap-every`, drops each user's kept versions (§14.4)
//! older than `--keep-versions` days and, oldest first, those past
//! `--versions-space` bytes — and that reaps one user at once when its
//! actor finds the user's kept versions past `--versions-space`
//! ([`ReapTrigger`]), so the space limit holds within one reap of being
//! exceeded, not only at the next periodic pass.

use super::store::versions::{now_ms, KeepPolicy, VersionDir};
use super::store::DataPaths;
use crate::protocol::UserId;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

/// How an actor asks for one user's versions to be reaped now (§14.4).
/// Cheap to clone; a request for a user already waiting is merged with it.
#[derive(Debug, Clone)]
pub struct ReapTrigger {
    requests: Sender<UserId>,
    /// `--versions-space`: past this many bytes of kept content an actor
    /// asks for a reap.
    pub max_bytes: u64,
}

impl ReapTrigger {
    /// Asks for `user`'s versions to be reaped soon (never blocks; a
    /// reaper that is gone is ignored: the periodic pass is gone with it).
    pub fn request(&self, user: UserId) {
        let _ = self.requests.send(user);
    }
}

/// Starts the reaper thread and returns the trigger actors use.
///
/// # Errors
/// The thread could not be spawned.
pub fn spawn(
    paths: DataPaths,
    policy: KeepPolicy,
    every: Duration,
) -> std::io::Result<ReapTrigger> {
    let (requests, inbox) = crossbeam_channel::unbounded();
    std::thread::Builder::new()
        .name("reaper".into())
        .spawn(move || run(&paths, policy, every, &inbox))?;
    Ok(ReapTrigger {
        requests,
        max_bytes: policy.max_bytes,
    })
}

/// The reaper's loop: the periodic pass every `every`, and in between the
/// users actors asked for (each once however often it was asked).
fn run(paths: &DataPaths, policy: KeepPolicy, every: Duration, inbox: &Receiver<UserId>) {
    let mut next = Instant::now() + every;
    loop {
        let wait = next.saturating_duration_since(Instant::now());
        match inbox.recv_timeout(wait) {
            Ok(user) => {
                let mut users = BTreeSet::from([user]);
                users.extend(inbox.try_iter());
                for user in users {
                    reap_one(&paths.user_state(&user), &user.to_string(), policy);
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                reap_all(paths, policy);
                next = Instant::now() + every;
            }
            Err(RecvTimeoutError::Disconnected) => {
                std::thread::sleep(wait);
                reap_all(paths, policy);
                next = Instant::now() + every;
            }
        }
    }
}

/// Reaps every user's versions once; logs what went and what failed.
pub fn reap_all(paths: &DataPaths, policy: KeepPolicy) {
    let Ok(users) = std::fs::read_dir(paths.state_root()) else {
        return;
    };
    for user in users.flatten() {
        reap_one(&user.path(), &user.file_name().to_string_lossy(), policy);
    }
}

/// Reaps the versions kept in one user's state folder, if it has any.
fn reap_one(state_dir: &Path, user: &str, policy: KeepPolicy) {
    let Some(versions) = VersionDir::existing(state_dir) else {
        return;
    };
    let started = Instant::now();
    match versions.reap(policy, now_ms()) {
        Ok(report) if report.dropped > 0 || report.objects_removed > 0 => log::info!(
            "reaper: user {user}: {} versions dropped, {} kept ({} bytes), {} objects removed in {:?}",
            report.dropped,
            report.kept,
            report.bytes_kept,
            report.objects_removed,
            started.elapsed()
        ),
        Ok(_) => {}
        Err(e) => log::error!("reaper: user {user}: {e}"),
    }
}
