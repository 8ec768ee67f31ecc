//! Pulls: when one starts, its frames handed to the [`PullJob`], and what
//! its end does to the cursor (advanced to the reply's head and acknowledged
//! to the server, kept on a failure, sent back by a refused push's rewind).

use super::Session;
use crate::chunk::index::ChunkIndex;
use crate::client::error::ClientError;
use crate::client::fsutil::{check_path, too_long_top, too_long_why, Local};
use crate::client::ignore::kept::kept_out;
use crate::client::pull::{Ctx, Finished, PullJob, SyncPool};
use crate::client::schedule::holdback::HoldBack;
use crate::protocol::limits::{MAX_HELD_PATHS, MAX_PAYLOAD};
use crate::protocol::{Frame, Message, PartialAck, WirePath};
use std::collections::{BTreeMap, HashSet};
use std::time::Instant;

/// Whether a finished pull must be repeated from the same cursor: something
/// failed, or a path waits for a push that can still succeed. A path whose
/// push the server answered `Unstorable` (§4.5: it fails the same way every
/// time) does not hold the cursor back: its change stays on this device
/// (the user was told to rename or move it), and the server's version of it
/// is not downloaded over it.
pub(super) fn must_repeat(done: &Finished, unstorable: &HashSet<WirePath>) -> bool {
    done.failed || done.deferred.iter().any(|p| !unstorable.contains(p))
}

/// What the session knows of its pulls.
pub(super) struct PullState {
    /// The pull being applied.
    pub(super) job: Option<PullJob>,
    /// Pull as soon as none runs (a `Notify`, a reconnection, an ack).
    pub(super) wanted: bool,
    /// The cursor must go back to at most this once no pull runs.
    pub(super) rewind: Option<u64>,
    /// A pull has completed in this run.
    pub(super) pulled_once: bool,
    /// The last cursor acknowledged to the server on this connection.
    pub(super) last_acked: u64,
    /// The cursor from which a reply was cut to its `.cloudignore` entry
    /// (at most once per cursor; see [`Ctx::may_defer_rules`]).
    pub(super) rules_deferred_at: Option<u64>,
    /// The server takes PullModes and SetMode (§15); false once it refused
    /// them as an unsupported version (then for the rest of this run).
    pub(super) modes: bool,
    /// Pull with PullChecked (protocol version 8, §5.8); false once the
    /// server refused it as an unsupported version (then for the rest of
    /// this run: PullModes, and a restored server goes unnoticed, as
    /// before version 8).
    pub(super) checked: bool,
    /// Acknowledge a reply applied but for paths left to the push with a
    /// PartialAck (protocol version 7, R-5.3.4); false once the server
    /// refused one as an unsupported version (then for the rest of this
    /// run: such replies go unacknowledged, as before version 7).
    pub(super) partial_acks: bool,
    /// Ask the server which files it lost after each pull (protocol
    /// version 9, R-10.11); false once it refused `ListLost` as an
    /// unsupported version (then for the rest of this run: a lost server
    /// copy is not put back from here, as before version 9).
    pub(super) lost: bool,
    /// The request ID of the `ListLost` in flight.
    pub(super) lost_asked: Option<u32>,
    /// The server may know lost files it has not named to this device:
    /// ask `ListLost` after the next pull that applies its reply
    /// (R-10.11). Set at start, by a pull that was owed (a `Notify`, which
    /// a server also sends when it finds a file lost while it runs,
    /// R-4.4.4; a reconnection, after which a restarted server may know
    /// files lost at its start; an acknowledgement; a reply listing news),
    /// by a `LostList` with `more`, and by a question a lost connection
    /// left unanswered. Not by a periodic pull that found nothing new: that
    /// question would wake an idle user's worker on the server at every
    /// pull and double its connection log (breaker26 F2).
    pub(super) lost_due: bool,
    /// Connections lost in a row while a `ListLost` was unanswered.
    pub(super) lost_unanswered: u8,
    /// Download files above one minimum chunk as deltas (§13.4); false once
    /// the server refused a FetchManifest (then for the rest of this run).
    pub(super) deltas: bool,
    /// Ask delta downloads' lists with 16-byte IDs (§13.6); false once the
    /// server refused FetchShortManifest or a short-list download failed
    /// its whole-file check (then for the rest of this run, R-13.6.4-5).
    pub(super) short_ids: bool,
    /// Ask with FetchManifestSince for files whose held content's list the
    /// chunk index has (§13.7); false once a server refused a version 5
    /// kind (R-13.7.5, then for the rest of this run).
    pub(super) list_deltas: bool,
    /// The folder's chunk index, loaded at the first delta download.
    pub(super) chunks: Option<ChunkIndex>,
    /// The fsync threads every pull of this run uses (started with the
    /// first pull; they end with the session).
    pub(super) pool: Option<SyncPool>,
    /// Downloads that could not be written here (a full disk, R-5.6.8):
    /// each waits a growing delay; the other downloads go on.
    pub(super) space: HoldBack,
    /// The running pull is known work for the status: it was wanted (a
    /// `Notify`, a reconnection, an acknowledgement, new rules) or its
    /// reply lists changes this device does not have. A periodic pull
    /// that finds nothing new is not. Cleared when the pull ends.
    pub(super) owed: bool,
    /// The last pull left paths to a push first ("pushing it before
    /// pulling it") and is owed again from the same cursor once that
    /// round's pushes are answered: their last answer makes it `wanted`
    /// ([`Session::round_answered`]), and until a pull starts the session has
    /// not converged. Without it `--once` stopped after the acknowledgement
    /// with the pull's failure flag still set and exited 3 "changes still
    /// pending" while the folder agreed with the server (outside tester
    /// breaker23 F5; README "Running a client", PROTOCOL.md §7.2).
    pub(super) after_round: bool,
}

impl PullState {
    /// At start-up: a pull is wanted first.
    pub(super) fn new() -> PullState {
        PullState {
            job: None,
            wanted: true,
            rewind: None,
            pulled_once: false,
            last_acked: 0,
            rules_deferred_at: None,
            modes: true,
            checked: true,
            partial_acks: true,
            lost: true,
            lost_asked: None,
            lost_due: true,
            lost_unanswered: 0,
            deltas: true,
            short_ids: true,
            list_deltas: true,
            chunks: None,
            pool: None,
            space: HoldBack::default(),
            owed: false,
            after_round: false,
        }
    }
}

impl Session<'_> {
    /// Sends a `Pull` from the cursor at `now`.
    pub(super) fn start_pull(&mut self, now: Instant) -> Result<(), ClientError> {
        if self.conn.is_none() {
            return Ok(());
        }
        self.retry_held_back();
        // Downloads whose wait is over are tried by this pull; those not
        // written again by its end are no longer held (`pull_done`).
        self.pull.space.take_due(now);
        let Some(conn) = self.conn.as_mut() else {
            return Ok(());
        };
        self.pull.owed = std::mem::take(&mut self.pull.wanted);
        self.pull.after_round = false;
        self.timers.pull_started(now, self.config.pull_every);
        let first = self.first_run.first_sync && !self.pull.pulled_once;
        let cursor = self.index.cursor();
        let pool = self.pull.pool.get_or_insert_with(SyncPool::start).clone();
        let job = if self.pull.checked && self.pull.modes {
            PullJob::start_checked(
                conn,
                (self.index.pull_point(), self.pull.deltas),
                (first, self.config.verbosity),
                pool,
            )?
        } else {
            PullJob::start(
                conn,
                (cursor, self.pull.modes, self.pull.deltas),
                (first, self.config.verbosity),
                pool,
            )?
        }
        .with_short_ids(self.pull.short_ids)
        .with_list_deltas(self.pull.list_deltas);
        self.pull.job = Some(job);
        // The pull leaves the list downloads' places (R-13.4.4).
        self.ask_server_lists()?;
        Ok(())
    }

    /// Server entries held back by a directory kept out of sync (R-5.6.5)
    /// or a symlink or special file (R-5.6.10) whose way is free now (the
    /// directory or the symlink was moved away, or the directory holds
    /// something to push): the cursor goes back before the oldest, so this
    /// pull lists them again and decides them afresh.
    fn retry_held_back(&mut self) {
        let rules = self.rules.rules();
        let free: Vec<(WirePath, u64)> = self
            .index
            .held_back()
            .filter(|(path, _)| match check_path(&self.root, path) {
                Ok(Local::Dir) => !kept_out(&self.root, path, rules, &self.index),
                Ok(Local::Foreign) => false,
                Ok(Local::Absent | Local::File(_)) | Err(_) => true,
            })
            .map(|(path, version)| (path.clone(), version))
            .collect();
        for (path, version) in free {
            log::info!("{path}: the way is free; pulling the server's file again");
            self.index.unhold_back(&path);
            let back = version.saturating_sub(1);
            if back < self.index.cursor() {
                self.index.set_cursor(back);
            }
        }
    }

    /// A frame answering the pull or one of its fetches.
    pub(super) fn on_pull_frame(&mut self, frame: Frame) -> Result<(), ClientError> {
        if !self.pull.owed && lists_news(&frame.message, &self.index) {
            // Applying a reply can take long (thousands of deletions) and
            // the loop does not turn meanwhile: the status says so first.
            self.pull.owed = true;
            self.publish_status(true);
        }
        let (Some(conn), Some(job)) = (self.conn.as_mut(), self.pull.job.as_mut()) else {
            return Ok(());
        };
        job.set_reserved(self.push.server_lists.reserved());
        let may_defer_rules = self.pull.rules_deferred_at != Some(self.index.cursor());
        let chunks_file = self.state.chunk_index_file();
        let partial = self.state.partial_dir();
        let mut refused = false;
        let mut short_refused = false;
        let mut ctx = Ctx {
            root: &self.root,
            tmp: &self.tmp,
            index: &mut self.index,
            me: self.identity.client,
            rules: self.rules.rules(),
            source: &self.rules,
            may_defer_rules,
            chunks: &mut self.pull.chunks,
            chunks_file: &chunks_file,
            partial: &partial,
            deltas_refused: &mut refused,
            short_ids_refused: &mut short_refused,
            held: &self.pull.space,
        };
        let handled = job.on_frame(frame, conn, &mut ctx);
        if refused {
            self.pull.deltas = false;
        }
        if short_refused {
            self.pull.short_ids = false;
        }
        handled?;
        if !job.is_done() {
            return Ok(());
        }
        self.pull.lost_due |= self.pull.owed;
        self.pull.owed = false;
        match self.pull.job.take() {
            Some(job) => self.pull_done(job.finish()),
            None => Ok(()),
        }
    }

    /// The pull ended: marks what it left to push, then moves the cursor
    /// (or, when something failed, repeats the pull soon from the same one).
    fn pull_done(&mut self, done: Finished) -> Result<(), ClientError> {
        self.pull.pulled_once = true;
        let now = Instant::now();
        let repeat = must_repeat(&done, &self.push.unstorable);
        let diverged = done.history.is_some_and(|h| h.diverged) && !done.rules_first;
        if diverged {
            self.server_lost_changes();
        }
        // Paths this pull left for a push first: that round goes before the
        // next pull (Status::push_first).
        let defers = done
            .deferred
            .iter()
            .any(|p| !self.push.unstorable.contains(p));
        self.push.first |= defers;
        self.pull.after_round |= defers;
        for path in done.dirty {
            if done.deferred.contains(&path) && self.push.unstorable.contains(&path) {
                log::warn!("{path} stays on this device only; the server's newer version of it is not downloaded");
                continue;
            }
            self.mark(path, now);
        }
        if done.changed > 0 {
            log::info!("applied {} change(s) from the server", done.changed);
        }
        self.hold_pushes_for_writers(done.held_open, now);
        let failures = under_too_long_dirs(&self.root, done.failures);
        self.publisher.note_apply_failures(failures);
        self.publisher.pull_failed = repeat;
        let complete = !done.failed && done.held_back == 0;
        let space_wait = self.hold_unwritable(
            (&done.unwritable, &done.placed_held),
            (complete, done.held_back),
            now,
        );
        if done.rules_first && !repeat {
            // The new rules are in place: pull again under them (the
            // session reads them before the next pull starts).
            self.pull.rules_deferred_at = Some(self.index.cursor());
            self.pull.wanted = true;
            self.save_index(now);
            return Ok(());
        }
        if repeat {
            if done.failed && space_wait.is_none() {
                self.publisher.last_error =
                    Some("some changes from the server could not be applied yet; retrying".into());
            }
            // Repeat from the same cursor soon; when downloads wait for
            // space, when the first wait is over (or at the periodic pull).
            match space_wait {
                Some(at) => self.timers.next_pull = self.timers.next_pull.min(at),
                None => self.timers.pull_failed(now),
            }
            if let Some(h) = done.history.filter(|_| diverged) {
                // The index now follows the server's history (R-5.8.4):
                // the repeated pull is a full listing of it, checked at
                // its head, not another reconciliation.
                self.index.set_checked(h.head, h.head_tag);
                self.index.set_cursor(0);
                self.index.forget_seen(h.common);
            }
            self.apply_rewind();
            if self.save_index(now) && !done.failed && self.pull.partial_acks {
                self.ack_all_but(done.head, &done.deferred)?;
            }
            return Ok(());
        }
        let cursor = if done.full {
            done.head
        } else {
            self.index.cursor().max(done.head)
        };
        self.index.set_cursor(cursor);
        if diverged {
            // The listing up to the head is applied: that is what it saw.
            self.index.forget_seen(done.head);
        }
        match done.history {
            Some(h) => self.index.set_checked(h.head, h.head_tag),
            None => self.index.set_checked(0, 0),
        }
        if diverged {
            // What the reconciliation left to push goes first; the pull
            // after it finds the server in step and ends "reconciling".
            self.pull.wanted = true;
        } else {
            self.publisher.reconciling = false;
        }
        self.apply_rewind();
        // What is not recorded here is not acknowledged (the server would
        // count it as seen by this device): the repeated pull acknowledges
        // it once the index is saved.
        if self.save_index(now) && (done.head > self.pull.last_acked || diverged) {
            if let Some(conn) = self.conn.as_mut() {
                conn.request(Message::Ack { cursor: done.head })?;
            }
            self.pull.last_acked = done.head;
        }
        self.ask_lost()?;
        Ok(())
    }

    /// After a pull that applied its reply: asks the server which files
    /// it lost (R-10.11), one question at a time, when it may know some it
    /// has not named ([`PullState::lost_due`]).
    fn ask_lost(&mut self) -> Result<(), ClientError> {
        if !self.pull.lost || self.pull.lost_asked.is_some() || !self.pull.lost_due {
            return Ok(());
        }
        if let Some(conn) = self.conn.as_mut() {
            self.pull.lost_asked = Some(conn.request(Message::ListLost)?);
            self.pull.lost_due = false;
        }
        Ok(())
    }

    /// R-5.8.4: the server does not hold the history this device saw (its
    /// data directory was restored from an older backup): said once in the
    /// log and in the status, which is not "in sync" until what this device
    /// holds is back on the server.
    fn server_lost_changes(&mut self) {
        if !self.publisher.reconciling {
            log::warn!(
                "the server lost changes this device had synced (was it restored from a backup?); \
                 reconciling: pushing this device's changes again, downloading the server's"
            );
        }
        self.publisher.reconciling = true;
        self.publisher.last_error =
            Some("the server lost changes this device had synced; reconciling".into());
    }

    /// R-5.3.4: the reply up to `head` was applied but for `held` (local
    /// edits left to the push, R-5.6.1): say so with a PartialAck, so the
    /// server counts what was applied as seen (a move of it stays this
    /// device's own, an edit on it overwrites: no needless conflict copy).
    /// The cursor stays, and the pull is repeated after the push as
    /// before. More paths than one frame may name: no Ack at all, which
    /// only costs those conflict copies.
    ///
    /// # Errors
    /// The connection failed.
    fn ack_all_but(
        &mut self,
        head: u64,
        held: &std::collections::BTreeSet<WirePath>,
    ) -> Result<(), ClientError> {
        if held.is_empty() || held.len() > MAX_HELD_PATHS {
            return Ok(());
        }
        let ack = PartialAck {
            cursor: head,
            held: held.iter().cloned().collect(),
        };
        if ack.encoded_len() > MAX_PAYLOAD as usize {
            return Ok(());
        }
        if let Some(conn) = self.conn.as_mut() {
            log::debug!(
                "applied up to {head} but {} path(s) left to the push",
                held.len()
            );
            conn.request(Message::PartialAck(ack))?;
        }
        Ok(())
    }

    /// R-5.6.8: the downloads this pull could not write wait (again) a
    /// growing delay, announced with one log line and the last error at
    /// each try ([`HoldBack::failed`]); those placed by any route, and all
    /// once a pull applied everything, are no longer held
    /// ([`HoldBack::after_pull`]). Returns when the next wait ends, if a
    /// download waits.
    fn hold_unwritable(
        &mut self,
        (unwritable, placed): (&[(WirePath, String)], &[WirePath]),
        (complete, held_back): (bool, usize),
        now: Instant,
    ) -> Option<Instant> {
        let failed: HashSet<&WirePath> = unwritable.iter().map(|(p, _)| p).collect();
        for path in self.pull.space.after_pull(&failed, placed, complete) {
            log::info!("{path}: in place; no longer held back");
        }
        for (path, why) in unwritable {
            match self.pull.space.failed(path, why, now) {
                Some(wait) => {
                    log::warn!(
                        "could not place the download of {path} ({why}); holding it back, next try in {} s",
                        wait.as_secs()
                    );
                    self.publisher.last_error = Some(format!(
                        "{why}: the download of {path} is held back; next try in {} s",
                        wait.as_secs()
                    ));
                }
                // A copy of local content failed again within the wait
                // announced: said at the next try.
                None => {
                    log::debug!("{path} still cannot be placed ({why}); held back as announced")
                }
            }
        }
        if held_back > 0 || !unwritable.is_empty() {
            return self.pull.space.next_due();
        }
        None
    }

    /// Keeps the cursor at most `back`, now or, while a pull is running
    /// (its reply may not list the path this device forgot), when it ends.
    pub(super) fn rewind_cursor(&mut self, back: u64) {
        log::debug!("cursor back to {back} to pull a refused path again");
        self.pull.rewind = Some(self.pull.rewind.map_or(back, |r| r.min(back)));
        if self.pull.job.is_none() {
            self.apply_rewind();
        }
    }

    /// Applies a pending rewind, and pulls again.
    pub(super) fn apply_rewind(&mut self) {
        if let Some(back) = self.pull.rewind.take() {
            if back < self.index.cursor() {
                self.index.set_cursor(back);
            }
            self.pull.wanted = true;
        }
    }
}

/// True when `message` is a pull reply's batch naming an entry `index`
/// does not hold at that version (a change to apply here), or the
/// deletion of an entry it holds.
fn lists_news(message: &Message, index: &crate::client::index::Index) -> bool {
    let (Message::ChangeBatch(batch) | Message::ModeBatch(batch)) = message else {
        return false;
    };
    batch.entries.iter().any(|e| {
        let held = index.get(&e.path);
        match e.state {
            crate::protocol::EntryState::Deleted => held.is_some(),
            _ => held.is_none_or(|h| h.version != e.version),
        }
    })
}

/// The pull's failures keyed as "not synced" lists them: a failure at or
/// below a directory whose path is too long here (the folder's path in
/// front) becomes that directory, once, with why (README: "a directory
/// once, with why"). The scan lists the same directory when it cannot walk
/// into it, so the status says one thing whichever of the two saw it first.
fn under_too_long_dirs(
    root: &std::path::Path,
    failures: BTreeMap<WirePath, String>,
) -> BTreeMap<WirePath, String> {
    let mut out = BTreeMap::new();
    for (path, why) in failures {
        match too_long_top(root, &path) {
            Some(top) if top != path => {
                let why = too_long_why(root, &top);
                out.insert(top, why);
            }
            _ => {
                out.insert(path, why);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finished(failed: bool, deferred: &[&str]) -> Finished {
        Finished {
            head: 7,
            full: false,
            failed,
            dirty: Default::default(),
            deferred: deferred.iter().map(|p| WirePath::new(p).unwrap()).collect(),
            changed: 0,
            failures: Default::default(),
            held_open: Default::default(),
            rules_first: false,
            unwritable: Vec::new(),
            held_back: 0,
            placed_held: Vec::new(),
            history: None,
        }
    }

    #[test]
    fn only_a_push_that_can_still_succeed_holds_the_cursor_back() {
        let unstorable: HashSet<WirePath> = [WirePath::new("long").unwrap()].into();
        let none = HashSet::new();
        assert!(!must_repeat(&finished(false, &[]), &unstorable));
        assert!(must_repeat(&finished(true, &[]), &unstorable));
        assert!(must_repeat(&finished(false, &["long"]), &none));
        assert!(!must_repeat(&finished(false, &["long"]), &unstorable));
        assert!(must_repeat(
            &finished(false, &["long", "other"]),
            &unstorable
        ));
        assert!(must_repeat(&finished(true, &["long"]), &unstorable));
    }

    #[test]
    fn failures_below_a_directory_too_long_here_are_that_directory_once() {
        let root = std::path::PathBuf::from(format!("/{}", "r".repeat(100)));
        let root = root.as_path();
        let d = "d".repeat(250);
        // The folder's path and its '/' are 102 bytes: 15 directories
        // (3,866 bytes) can be reached, the 16th (4,117) cannot.
        let deep = vec![d.as_str(); 16].join("/");
        let up = vec![d.as_str(); 15].join("/");
        let wire = |s: &str| WirePath::new(s).expect("path");
        let failures: BTreeMap<WirePath, String> = [
            (format!("{deep}/a"), "x".to_owned()),
            (format!("{deep}/b"), "y".to_owned()),
            (
                format!("{up}/{}", "f".repeat(240)),
                "too long itself".to_owned(),
            ),
            ("short.txt".to_owned(), "Permission denied".to_owned()),
        ]
        .into_iter()
        .map(|(p, w)| (wire(&p), w))
        .collect();
        let got = under_too_long_dirs(root, failures);
        let want: BTreeMap<WirePath, String> = [
            (wire(&deep), too_long_why(root, &wire(&deep))),
            (
                wire(&format!("{up}/{}", "f".repeat(240))),
                "too long itself".to_owned(),
            ),
            (wire("short.txt"), "Permission denied".to_owned()),
        ]
        .into_iter()
        .collect();
        assert_eq!(got, want);
    }
}
