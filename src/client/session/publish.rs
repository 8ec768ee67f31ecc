//! The session's side of `cloud-client status`: writing the status file
//! when the session's state changes (throttled), with what only this
//! process can tell (what it cannot sync, what is pending), and moving
//! "last sync" only while the folder agrees with the server.

use super::Session;
use crate::client::applier::removal_log;
use crate::client::link_watch::WaitNote;
use crate::client::printable::escape_controls;
use crate::client::schedule::holdback::Held;
use crate::client::schedule::liveness::{self, Liveness};
use crate::client::status::heartbeat::Heartbeat;
use crate::client::status::{self, rfc3339, Status};
use crate::protocol::WirePath;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// At most one status write this often (a burst of acknowledgements
/// changes the counts thousands of times a second), except when the
/// connection comes or goes.
const STATUS_EVERY: Duration = Duration::from_millis(200);
/// While in sync, "last sync" is refreshed in the file this often.
const LAST_SYNC_EVERY: Duration = Duration::from_secs(30);

/// What the session last published, and what it remembers for it.
#[derive(Debug, Default)]
pub(super) struct Publisher {
    /// The lock that tells `status` a client runs here, and its beat
    /// that tells it the client still advances.
    pub(super) heart: Option<Heartbeat>,
    /// The last status written (its `updated` field aside).
    last: Option<Status>,
    last_write: Option<Instant>,
    /// A write was put off by the throttle ([`STATUS_EVERY`]): the loop
    /// must wake for it ([`Publisher::wake_within`]) even if nothing else
    /// happens, or the file would keep an old state.
    put_off: bool,
    last_sync: Option<SystemTime>,
    /// The last error met; cleared once the folder is in sync again.
    pub(super) last_error: Option<String>,
    /// The last pull could not apply everything.
    pub(super) pull_failed: bool,
    /// The server lost changes this device saw: not in sync
    /// until a pull after the reconciliation finds it in step.
    pub(super) reconciling: bool,
    /// The paths the last pull could not apply, with why (listed as not
    /// synced; each said once in the log per state).
    pub(super) apply_failures: BTreeMap<WirePath, String>,
    /// The folder agreed with the server at the last status update
    /// ([`Session::agrees`]): "last sync" is set when it starts to, then
    /// refreshed every [`LAST_SYNC_EVERY`].
    agreed: bool,
    /// Why the index could not be saved (a full disk here), until it is.
    index_error: Option<String>,
    /// The status last written, shared with the connection's [`WaitNote`]
    /// (which writes it again, saying the client waits for the server,
    /// from inside a blocked send), and whether it did since.
    shared: Arc<Mutex<Option<Status>>>,
    noted: Arc<AtomicBool>,
}

impl Publisher {
    /// Holds the running lock `running` (taken at start, before anything
    /// was read or written: [`crate::client::status::lock_running`], and
    /// beating since) for the session's life. "Last sync" starts as the one an earlier run
    /// left in the state folder `state`: a run that never agrees with the
    /// server (down, refused) does not erase it.
    pub(super) fn start(running: Heartbeat, state: &Path) -> Publisher {
        let last_sync = status::read(state)
            .ok()
            .flatten()
            .and_then(|s| s.last_sync)
            .and_then(|t| status::parse_rfc3339(&t));
        Publisher {
            heart: Some(running),
            last_sync,
            ..Publisher::default()
        }
    }

    /// How long the session loop may sleep: `timeout`, or less when a
    /// status write was put off and falls due sooner, or the next beat of
    /// the heartbeat does.
    pub(super) fn wake_within(&self, timeout: Duration, now: Instant) -> Duration {
        let timeout = match &self.heart {
            Some(heart) => timeout.min(heart.due_in(now)),
            None => timeout,
        };
        match (self.put_off, self.last_write) {
            (true, Some(at)) => timeout.min((at + STATUS_EVERY).saturating_duration_since(now)),
            _ => timeout,
        }
    }

    /// What a connection's watch calls, from inside a send or a wait that
    /// keeps the loop from turning, when the server has not answered for a
    /// while ([`crate::client::link_watch::LinkWatch::attach`]): the last
    /// status written again, "waiting for the server" as its pending
    /// work, into the state folder `dir`.
    pub(super) fn wait_note(&self, dir: PathBuf) -> WaitNote {
        let (shared, noted) = (Arc::clone(&self.shared), Arc::clone(&self.noted));
        Box::new(move |line| {
            let Ok(mut last) = shared.lock() else {
                return;
            };
            let Some(s) = last.as_mut() else {
                return;
            };
            // A connection attempt: not connected, whatever the status
            // last written said (it may have been put off since the loss).
            if line.starts_with(status::CONNECTING_TO_SERVER) {
                s.connected = false;
            }
            s.pending = Some(line);
            s.updated = rfc3339(SystemTime::now());
            if let Err(e) = status::write(&dir, s) {
                log::debug!("cannot write the status file: {e}");
            }
            noted.store(true, Ordering::SeqCst);
        })
    }

    /// Beats the heartbeat if due: the session loop turned.
    pub(super) fn beat(&self) {
        if let Some(heart) = &self.heart {
            heart.beat_if_due();
        }
    }

    /// Takes the paths the pull that just ended could not apply (its
    /// repetition lists them again, so what is missing now works): a new
    /// failure, or one whose reason changed, is logged once, not at every
    /// repeated pull; one that went away is said too.
    pub(super) fn note_apply_failures(&mut self, now: BTreeMap<WirePath, String>) {
        for (path, why) in &now {
            if self.apply_failures.get(path) != Some(why) {
                log::warn!(
                    "could not apply the server's change to {}: {why}; retrying at each pull (said once)",
                    escape_controls(path.as_str())
                );
            }
        }
        for path in self.apply_failures.keys() {
            if !now.contains_key(path) {
                log::info!(
                    "{}: the server's change is applied now",
                    escape_controls(path.as_str())
                );
            }
        }
        self.apply_failures = now;
    }

    /// The session agreed with the server just now (a `--once` run's
    /// reconcile finished, nothing pending): "last sync" is now.
    pub(super) fn synced_now(&mut self) {
        self.last_sync = Some(SystemTime::now());
    }
}

/// Whether "last sync" is set to now at a status write: only while the
/// folder agrees with the server (`agrees`: the session's own facts and
/// the status written, [`status::agrees`]), when it starts to (`was`: it
/// agreed at the previous write) or the time set is [`LAST_SYNC_EVERY`]
/// old (`age`; `None`: never set, or set in the future). Any other reason
/// for "not in sync" keeps the earlier time (README "Last sync").
fn moves_last_sync(agrees: bool, was: bool, age: Option<Duration>) -> bool {
    agrees && (!was || age.is_none_or(|age| age >= LAST_SYNC_EVERY))
}

/// True when the status `s` shows nothing to do (it may still say "not
/// in sync" for another reason: an error, not connected).
fn idle(s: &Status) -> bool {
    s.pending.is_none() && s.uploads_pending == 0 && s.downloads_pending == 0
}

/// The entries of `paths` (path as `status` shows it, why) with no other
/// entry's path above them (a directory that cannot be synced stands for
/// what is below it), one per path, in path order.
fn top_most<'a>(paths: impl Iterator<Item = (String, &'a String)>) -> Vec<(String, &'a String)> {
    let mut all: Vec<(String, &String)> = paths.collect();
    all.sort();
    all.dedup_by(|a, b| a.0 == b.0);
    let listed: std::collections::HashSet<String> = all.iter().map(|(p, _)| p.clone()).collect();
    let below_another = |path: &str| {
        let mut at = path;
        while let Some((dir, _)) = at.rsplit_once('/') {
            if listed.contains(dir) {
                return true;
            }
            at = dir;
        }
        false
    };
    all.retain(|(path, _)| !below_another(path));
    all
}

impl Session<'_> {
    /// Writes the status file if the state changed (throttled), or always
    /// when `now_or_never` (stopping).
    pub(super) fn publish_status(&mut self, now_or_never: bool) {
        let now = Instant::now();
        // An index that cannot be saved (a full disk here) is not settled
        // even when everything else is: its error stays the last error
        // until a save succeeds (CI of stop 36: a push acknowledged in
        // the meantime cleared it).
        let settled = self.converged()
            && self.publisher.index_error.is_none()
            && !self.publisher.pull_failed
            && !self.publisher.reconciling
            && !self.holding();
        if settled && self.conn.is_some() {
            // Disconnected, the reason stays for `status` (a refusal
            // such as DeviceInUse, R-4.6.16, leaves nothing to do here).
            // An entry that cannot be synced (a symlink, a path too deep)
            // is listed on its own, not as the last error.
            self.publisher.last_error = None;
        }
        let flip = self
            .publisher
            .last
            .as_ref()
            .is_none_or(|s| s.connected != self.conn.is_some());
        let due = self
            .publisher
            .last_write
            .is_none_or(|t| now.duration_since(t) >= STATUS_EVERY);
        // Leaving "nothing to do" is said at once: the step that follows
        // (a long plan, a reply of thousands of deletions applied) may keep
        // the loop from turning, and the file must not say "in sync"
        // meanwhile. (Coming back to it waits for the throttle.)
        let leaving = self.publisher.last.as_ref().is_some_and(idle) && self.busy();
        if !(now_or_never || due || flip || leaving) {
            // Not before STATUS_EVERY: the loop wakes for it then.
            self.publisher.put_off = true;
            return;
        }
        self.publisher.put_off = false;
        let mut next = self.snapshot();
        // "Last sync" moves only when what is written says "in sync"
        // (breaker20 F3): decided on the very status written, so no reason
        // `status` gives for "not in sync" can leave it moving.
        let agrees = settled && self.nothing_left() && status::agrees(&next);
        let was = std::mem::replace(&mut self.publisher.agreed, agrees);
        let age = self.publisher.last_sync.and_then(|t| t.elapsed().ok());
        // A `--once` run sets "last sync" only as it stops, after the walk
        // `status` also makes (`Session::stop`).
        if moves_last_sync(agrees && !self.config.once, was, age) {
            self.publisher.last_sync = Some(SystemTime::now());
        }
        next.last_sync = self.publisher.last_sync.map(rfc3339);
        // A wait note rewrote the file meanwhile: write it again.
        let noted = self.publisher.noted.swap(false, Ordering::SeqCst);
        let changed = self.publisher.last.as_ref() != Some(&next) || noted;
        if !(now_or_never || changed) {
            return;
        }
        let mut written = next.clone();
        written.updated = rfc3339(SystemTime::now());
        if let Err(e) = status::write(self.state.path(), &written) {
            log::debug!("cannot write the status file: {e}");
        }
        if let Ok(mut shared) = self.publisher.shared.lock() {
            *shared = Some(written);
        }
        self.publisher.last = Some(next);
        self.publisher.last_write = Some(now);
    }

    /// What cannot be synced now, as only this process can tell: the
    /// scanner's skipped paths and the pull's failed ones, `PATH (why)`,
    /// at most [`status::MAX_NOT_SYNCED`] then `… N more`.
    fn not_synced(&self) -> Vec<String> {
        let failures = (self.publisher.apply_failures.iter()).map(|(p, why)| (p.to_string(), why));
        let all = top_most(self.scanner.not_synced().chain(failures));
        let more = all.len().saturating_sub(status::MAX_NOT_SYNCED);
        let mut out: Vec<String> = all
            .into_iter()
            .take(status::MAX_NOT_SYNCED)
            .map(|(path, why)| format!("{path} ({why})"))
            .collect();
        if more > 0 {
            out.push(format!("… {more} more (the client's log names each)"));
        }
        out
    }

    /// Work under way that the counts do not show, as one line for the
    /// status ([`Status::pending`]); `None` when there is none.
    fn pending(&self) -> Option<String> {
        if let Some(why) = &self.publisher.index_error {
            return Some(format!("{why}; retrying"));
        }
        // breaker17 R3, breaker18 F3, F9: a request or a ping the server
        // does not answer may hide other devices' changes; not "in sync"
        // while it waits, whatever the phase, and said before the rest
        // (the wait is what holds it up).
        let now = Instant::now();
        let judged = self.conn.as_ref().map(|c| c.watch().judge(now));
        if let Some(Liveness::Waiting(waited) | Liveness::Dead(waited)) = judged {
            return Some(liveness::waiting_line(waited));
        }
        if let Some((_, hold)) = &self.push.held {
            return Some(format!(
                "a removal of {} synced file(s) is held back until it stops growing",
                hold.removed
            ));
        }
        if self.pull.wanted || (self.pull.job.is_some() && self.pull.owed) {
            return Some("pulling and applying the server's changes".to_owned());
        }
        if self.pull.rewind.is_some() {
            return Some("pulling the server's changes again".to_owned());
        }
        if self.push.unknown {
            return Some("comparing the whole folder with the index".to_owned());
        }
        None
    }

    /// Cheaply: the session has work it knows of (what would make
    /// [`Session::snapshot`] other than [`idle`]).
    fn busy(&self) -> bool {
        self.pending().is_some()
            || !self.push.inflight.is_empty()
            || !self.push.dirty.is_empty()
            || !self.push.retry.is_empty()
            || self
                .pull
                .job
                .as_ref()
                .is_some_and(|j| j.downloads_pending() > 0)
    }

    /// Saves the index; `false` when it cannot (a full disk here: outside
    /// tester breaker15 F4). The session then holds on to what it has in
    /// memory and keeps its connection (dropping it would only add a
    /// reconnection backoff to the wait for space): the error is in the
    /// status (`pending`, last error) and the log once, a pull is repeated
    /// after [`crate::client::schedule::PULL_RETRY`] (`now` + that), and
    /// its end saves again. What the index does not record is never
    /// acknowledged to the server meanwhile (the callers).
    pub(super) fn save_index(&mut self, now: Instant) -> bool {
        match self.index.save(&self.state.index_file()) {
            Ok(()) => {
                // The pull's removals are recorded now.
                removal_log::clear(&removal_log::log_path(&self.state.tmp_dir()));
                // Room kept for the next removals on a full disk,
                // made again here if a removal gave it up.
                crate::client::spare::make(self.state.path());
                if self.publisher.index_error.take().is_some() {
                    log::info!("the index is saved again");
                    // The disk has room again: downloads held back for want
                    // of it are tried now.
                    if self.pull.space.wake(now) > 0 {
                        self.pull.wanted = true;
                    }
                }
                self.record_new_idents();
                true
            }
            Err(e) => {
                let why = format!("cannot save the index: {e}");
                if self.publisher.index_error.as_ref() != Some(&why) {
                    log::error!("{why}; holding on and retrying");
                }
                self.publisher.last_error = Some(why.clone());
                self.publisher.index_error = Some(why);
                self.timers.pull_failed(now);
                false
            }
        }
    }

    /// The held paths for the status, one line each.
    fn held_back_lines(&self) -> Vec<String> {
        let line = |what: &str, path: &WirePath, h: &Held| {
            format!("{path} ({what} held back: {})", h.reason)
        };
        let uploads = self.push.space.iter().map(|(p, h)| line("upload", p, h));
        let downloads = self.pull.space.iter().map(|(p, h)| line("download", p, h));
        uploads.chain(downloads).collect()
    }

    /// Changes this device made and the server has not acknowledged: pushes
    /// in flight, and paths to compare that are not as this device placed
    /// them ([`Session::note_echoes`]).
    fn uploads_pending(&self) -> u64 {
        let push = &self.push;
        let waiting = |p: &&WirePath| !push.echoes.contains(*p);
        let dirty = push.dirty.paths.iter().filter(waiting).count();
        let retry = push.retry.paths.iter().filter(waiting);
        let retry = retry.filter(|p| !push.dirty.paths.contains(*p)).count();
        // A round held back while its removal grows: its paths,
        // and at least the synced files it removes.
        let held = push.held.as_ref().map_or(0, |(scope, hold)| {
            let paths = scope.paths.iter().filter(waiting);
            let paths = paths.filter(|p| !push.dirty.paths.contains(*p)).count();
            paths.max(hold.removed)
        });
        (push.inflight.len() + dirty + retry + held) as u64
    }

    /// The status as of now (`updated` left empty).
    fn snapshot(&self) -> Status {
        Status {
            format: status::FORMAT,
            server: self.config.server.to_string(),
            user: self.identity.user.to_string(),
            device: self.identity.client,
            connected: self.conn.is_some(),
            last_sync: self.publisher.last_sync.map(rfc3339),
            uploads_pending: self.uploads_pending(),
            downloads_pending: self.pull.job.as_ref().map_or(0, |p| p.downloads_pending()),
            last_error: self.publisher.last_error.clone(),
            rule_errors: self
                .rules
                .errors()
                .iter()
                .map(ToString::to_string)
                .collect(),
            not_synced: self.not_synced(),
            held_back: self.held_back_lines(),
            caught_up: Some(self.pull.pulled_once && self.push.full_round_sent),
            pending: self.pending(),
            pid: Some(std::process::id()),
            updated: String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> WirePath {
        WirePath::new(s).expect("path")
    }

    #[test]
    fn last_sync_moves_only_while_the_folder_agrees() {
        let fresh = Some(Duration::from_secs(1));
        let old = Some(LAST_SYNC_EVERY);
        // Starting to agree sets it; agreeing on refreshes it when old.
        assert!(moves_last_sync(true, false, fresh));
        assert!(moves_last_sync(true, true, old));
        assert!(moves_last_sync(true, true, None));
        assert!(!moves_last_sync(true, true, fresh));
        // Not agreeing (held back, not synced, a gone mount, a wait for
        // the server...) never moves it, however old (breaker20 F3).
        for was in [false, true] {
            for age in [None, fresh, old, Some(Duration::from_secs(86_400))] {
                assert!(!moves_last_sync(false, was, age), "{was} {age:?}");
            }
        }
    }

    #[test]
    fn a_directory_not_synced_stands_for_what_is_below_it() {
        let entries = [
            (p("a/b/c.txt"), "too long".to_owned()),
            (p("a-b"), "unreadable".to_owned()),
            (p("a/b"), "too long".to_owned()),
            (p("a/b"), "other".to_owned()),
            (p("a/bc"), "unreadable".to_owned()),
            (p("z"), "x".to_owned()),
        ];
        let kept: Vec<String> = top_most(entries.iter().map(|(p, w)| (p.to_string(), w)))
            .into_iter()
            .map(|(p, w)| format!("{p} ({w})"))
            .collect();
        assert_eq!(
            kept,
            [
                "a-b (unreadable)",
                "a/b (other)",
                "a/bc (unreadable)",
                "z (x)"
            ]
        );
    }
}
