//! The client's loop: one thread waiting (crossbeam `select!`) on the
//! server's frames, the watcher's events, its timers and the shutdown flag.
//!
//! Rhythm: on every (re)connection, pull first (so pushes are based on the
//! server's current versions), then push what the folder holds that the index
//! does not. Afterwards, watcher events are debounced into push rounds, the
//! server's `Notify` triggers an immediate pull, and a timer pulls every
//! PULLING_RATE. Pushes never start while a pull is being applied, and the
//! index changes only on acknowledgements, so a lost connection only means
//! "plan again after reconnecting".
//!
//! - this file: [`Session`], the event loop, `tick` (what the schedule says
//!   is due) and the dispatch of the server's frames;
//! - [`start`]: start-up (identity, handshake, watcher) and the emptied-folder stop;
//! - [`push`]: push rounds ([`push::PushState`]); [`acks`]: their answers;
//!   [`mounted`]: what file systems mounted inside the folder explain;
//! - [`pull`]: pulls ([`pull::PullState`]) and the cursor;
//! - [`link`]: losing, re-establishing and closing the connection;
//! - [`publish`]: `.cloudignore` changes, and the status file for `cloud-client status`;
//! - the timers and what is due when: [`crate::client::schedule`].

use super::connection::{Connection, Inbound};
use super::error::ClientError;
use super::ignore::source::RuleSource;
use super::index::Index;
use super::plan::Op;
use super::scanner::Scanner;
use super::schedule::liveness::{self, Liveness};
use super::schedule::{self, Status, Timers};
use super::state::{Identity, StateDir};
use super::watcher::{FolderWatcher, WatchEvent};
use super::Config;
use crate::protocol::{ErrorCode, Frame, Message, UserId, WirePath};
use crossbeam_channel::{never, select, Receiver};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

pub use start::run;

/// How a run ended, for `--once`'s exit status (README "Running a
/// client"): whether the folder agreed with the server at the end, as
/// `cloud-client status` would say "in sync".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything reconciled: nothing pending, held back or unsyncable.
    InSync,
    /// The run ended with something left: `left` entries held back (no
    /// space, an ignored directory or a symlink in the way) or not
    /// syncable (a path too long or too deep, an unreadable file, a server
    /// change that could not be applied), or work still pending (0 when
    /// only pending work, or a stop before connecting).
    NotInSync {
        /// Entries `status` lists as not synced or held back.
        left: usize,
    },
}

mod acks;
mod agreement;
mod echoes;
mod emptied;
mod link;
mod mounted;
mod publish;
mod pull;
mod push;
mod rules;
mod server_lists;
mod start;
mod status_notes;

/// What only the first run of a folder does.
struct FirstRun {
    /// This run created the user: print its ID once the folder is up.
    new_user: bool,
    /// First sync of this folder: show progress bars.
    first_sync: bool,
}

/// One folder's sync session: everything the session thread owns.
struct Session<'a> {
    config: &'a Config,
    root: PathBuf,
    /// The state folder's temporary area (downloads).
    tmp: PathBuf,
    state: StateDir,
    identity: Identity,
    index: Index,
    scanner: Scanner,
    /// `.cloudignore` as last read ([`publish`]).
    rules: RuleSource,
    /// The status file and what goes into it ([`publish`]).
    publisher: publish::Publisher,
    /// `None` while disconnected (see [`link`]). Its liveness watch
    /// ([`crate::client::link_watch`]) holds the pings in flight and the
    /// server's signs of life.
    conn: Option<Connection>,
    /// Handshakes refused `DeviceInUse` in a row ([`link`], R-4.6.16).
    in_use_refusals: u32,
    /// The refusal last logged as a warning while the connection is down
    /// ([`link`]): the same code again is logged at debug level only.
    refusal_said: Option<crate::protocol::ErrorCode>,
    /// Since when pushes or a pull have waited for the server without a
    /// frame from it ([`schedule::stall_watch`]).
    waiting_since: Option<Instant>,
    push: push::PushState,
    pull: pull::PullState,
    timers: Timers,
    watcher: Option<FolderWatcher>,
    shutdown: Arc<AtomicBool>,
    /// "stopping: …" was logged already (by [`Session::stop_asked`]).
    stop_said: bool,
    /// `--confirm-empty` met an empty folder at start: its removal may pass
    /// the empty-folder guard once ([`start::check_not_emptied`]).
    confirmed_empty: bool,
    first_run: FirstRun,
}

impl Session<'_> {
    fn run(&mut self, on_new_user: &mut dyn FnMut(UserId)) -> Result<Outcome, ClientError> {
        loop {
            // A turn of the loop is a sign of life (`status` says "not
            // responding" when they stop); long steps beat as they advance.
            self.publisher.beat();
            if self.shutdown.load(Ordering::SeqCst) {
                if !self.stop_said {
                    // Said with the wait it ends (breaker20 F5: a stalled
                    // download said only "asked to stop").
                    match self.waiting_on() {
                        Some(what) => log::info!("stopping: asked to stop while {what}"),
                        None => log::info!("stopping: asked to stop (SIGTERM or Ctrl-C)"),
                    }
                }
                return self.stop();
            }
            if let Err(e) = self.tick() {
                self.on_error(e)?;
            }
            if self.first_run.new_user && self.push.full_round_sent && self.push.inflight.is_empty()
            {
                self.first_run.new_user = false;
                on_new_user(self.identity.user);
            }
            if self.config.once && self.converged() {
                return self.stop();
            }
            // Replies a delta upload read while it waited come first (§13.3).
            if let Some(frame) = self.conn.as_mut().and_then(|c| c.take_early()) {
                if let Err(e) = self.on_frame(frame) {
                    self.on_error(e)?;
                }
                continue;
            }
            let now = Instant::now();
            let timeout = self.timers.next_wakeup(now, self.status());
            let timeout = self.publisher.wake_within(timeout, now);
            let server: Receiver<Inbound> = match &self.conn {
                Some(c) => c.inbound().clone(),
                None => never(),
            };
            let events: Receiver<WatchEvent> = match &self.watcher {
                Some(w) => w.events().clone(),
                None => never(),
            };
            let step = select! {
                recv(server) -> msg => match msg {
                    Ok(Inbound::Frame(frame)) => self.on_frame(frame),
                    Ok(Inbound::Closed(why)) => Err(ClientError::ConnectionLost(why)),
                    Ok(Inbound::TimedOut) => Err(ClientError::ConnectionLost(
                        self.conn.as_ref().map_or_else(String::new, Connection::kernel_gave_up),
                    )),
                    Err(_) => Err(ClientError::ConnectionLost("reader stopped".into())),
                },
                recv(events) -> ev => match ev {
                    Ok(ev) => self.on_watch(ev),
                    Err(_) => {
                        self.watcher = None;
                        Ok(())
                    }
                },
                default(timeout) => Ok(()),
            };
            if let Err(e) = step {
                self.on_error(e)?;
            }
            self.publish_status(false);
        }
    }

    /// Connection trouble is retried; a stop asked for inside a wait on the
    /// network drops the connection (the loop then stops); anything else
    /// ends the run.
    fn on_error(&mut self, e: ClientError) -> Result<(), ClientError> {
        if let ClientError::Stopping(what) = &e {
            self.stop_asked(what);
            return Ok(());
        }
        if e.is_fatal_while_running() {
            // A failure caused by the state folder's removal is reported as such.
            self.check_attached()?;
            let _ = self.index.save(&self.state.index_file());
            return Err(e);
        }
        self.lost(&e.to_string());
        Ok(())
    }

    fn converged(&self) -> bool {
        self.conn.is_some()
            && self.pull.pulled_once
            && self.push.full_round_sent
            && self.pull.job.is_none()
            && !self.pull.wanted
            && !self.pull.after_round
            && self.push.inflight.is_empty()
            && self.push.dirty.is_empty()
            && self.push.retry.is_empty()
            && self.push.held.is_none()
            && !self.push.server_lists.pending()
            && self.pull.lost_asked.is_none()
            && self.push.lost.is_empty()
    }

    /// What the schedule needs to know of the session now.
    fn status(&self) -> Status {
        Status {
            last_send: self.conn.as_ref().map(Connection::last_send),
            // A ListLost in flight ends the pull: the next
            // round waits for its answer, so an older server's refusal is
            // read before anything else is written to the closed socket.
            pulling: self.pull.job.is_some() || self.pull.lost_asked.is_some(),
            pull_awaited: self.pull.job.as_ref().is_some_and(|j| j.awaits_server())
                || self.pull.lost_asked.is_some(),
            pull_wanted: self.pull.wanted,
            pushing: !self.push.inflight.is_empty(),
            push_first: self.push.first,
            watching: self.watcher.is_some(),
            once: self.config.once,
        }
    }

    /// [`StateDir::check_attached`]: stop if `.cloudservice` was removed.
    fn check_attached(&self) -> Result<(), ClientError> {
        let reattach = (
            &self.config.server,
            self.config.pull_every,
            self.identity.user,
        );
        self.state.check_attached(&self.root, reattach)
    }

    /// Does what the timers say is due ([`Timers::tick`]): reconnect,
    /// keep-alive, pull, push round.
    fn tick(&mut self) -> Result<(), ClientError> {
        self.check_attached()?;
        let now = Instant::now();
        self.watch_stall(now)?;
        let due = self.timers.tick(now, self.status());
        if self.pull.job.is_none() {
            // Not while a pull is being applied: its reply was filtered by
            // the rules it started with, and its fetches are planned.
            self.refresh_rules(due.rescan);
        }
        if due.retry {
            let retry = std::mem::take(&mut self.push.retry);
            self.push.dirty.merge(retry);
            self.timers.retry_taken(now);
        }
        let space_due = self.push.space.take_due(now);
        if !space_due.is_empty() {
            // a held path's wait is over: try it (and what waited
            // with it) again.
            for path in space_due {
                self.push.dirty.add(path);
            }
            let waiting = std::mem::take(&mut self.push.waiting);
            self.push.dirty.merge(waiting);
            self.timers.round_now(now);
        }
        if due.rescan {
            self.timers.rescan_started(now);
            self.mark_all(now);
        }
        if self.watcher.is_some() {
            // Files with a name outside the folder: a write through it
            // makes no event here (breaker21 F2); without a watcher every
            // pull compares the whole folder anyway.
            let changed = self.scanner.linked_pass(now);
            if !changed.is_empty() {
                log::debug!("{} file(s) with another name changed", changed.len());
                self.on_watch(WatchEvent::Paths(changed))?;
            }
        }
        if due.reconnect {
            return self.reconnect();
        }
        if due.compare_all {
            self.mark_all(now);
        }
        let Some(conn) = self.conn.as_mut() else {
            return Ok(());
        };
        if due.ping {
            conn.ping()?;
        }
        if due.pull {
            self.start_pull(now)?;
        }
        if due.push {
            self.push_round()?;
        }
        Ok(())
    }

    fn on_watch(&mut self, event: WatchEvent) -> Result<(), ClientError> {
        match &event {
            WatchEvent::Rescan(why) => {
                log::warn!("file watcher: {why}; comparing the whole folder with the index");
                self.push.unknown = true;
            }
            WatchEvent::RootGone if !self.root.is_dir() => {
                return Err(ClientError::FolderVanished(self.root.clone()));
            }
            // Made while running: said at once, as a start-up scan says it
            // (once per entry), and listed as not synced until it is gone.
            WatchEvent::Unsyncable(entry, why) => {
                self.scanner.unsyncable_seen(entry);
                if entry.symlink_metadata().is_ok() {
                    // A synced file may be moving there.
                    self.scanner.note_unsyncable(entry, why);
                }
                // A file moved to an unsyncable name and now removed or
                // moved on: its old path is looked at again (a Delete, or
                // a Rename once the new name can be synced).
                let held = self.scanner.stranded_paths();
                if held.is_empty() {
                    return Ok(());
                }
                let timers = &mut self.timers;
                let (due, since) = (&mut timers.dirty_due, &mut timers.dirty_since);
                let event = WatchEvent::Paths(held);
                schedule::on_event(&mut self.push.dirty, due, since, event, Instant::now());
                return Ok(());
            }
            WatchEvent::Paths(paths) | WatchEvent::Settled(paths) => {
                self.follow(paths);
                self.note_echoes(paths);
            }
            WatchEvent::Metadata(paths) => self.note_echoes(paths),
            _ => {}
        }
        let timers = &mut self.timers;
        let (due, since) = (&mut timers.dirty_due, &mut timers.dirty_since);
        schedule::on_event(&mut self.push.dirty, due, since, event, Instant::now());
        Ok(())
    }

    /// Watches the directories among `paths` that just appeared (and what
    /// they hold), unless the rules leave them out. At the watch limit the
    /// session stops watching and compares the whole folder at every pull.
    fn follow(&mut self, paths: &[WirePath]) {
        let Some(watcher) = self.watcher.as_mut() else {
            return;
        };
        if let Err(e) = watcher.follow(paths) {
            log::warn!("{e}; falling back to a full rescan at every pull");
            self.watcher = None;
        }
    }

    /// Bytes of uploads sent and awaiting their answers (the server checks
    /// them before it answers: [`schedule::liveness::allowance`]).
    pub(super) fn checking(&self) -> u64 {
        self.push
            .inflight
            .values()
            .map(|op| match op {
                Op::Upload { stat, .. } | Op::Stream { stat, .. } => stat.size,
                _ => 0,
            })
            .sum()
    }

    /// Whether the session awaits a reply from the server: pushes in
    /// flight, or a pull whose reply or fetched chunks have not all come.
    fn awaiting(&self) -> bool {
        !self.push.inflight.is_empty() || self.pull.job.as_ref().is_some_and(|j| j.awaits_server())
    }

    /// Tells the connection's watch what the session awaits now, and looks
    /// at the socket ([`crate::client::link_watch::LinkWatch::look`]).
    pub(super) fn update_watch(&mut self, now: Instant) {
        let (awaiting, checking) = (self.awaiting(), self.checking());
        if let Some(conn) = self.conn.as_mut() {
            let watch = conn.watch_mut();
            watch.awaiting(awaiting, checking, now);
            watch.look(now);
        }
    }

    /// Says so (log and status) when pushes or a pull have waited
    /// [`schedule::STALL_WARN`] for a server that sends nothing, and gives
    /// the connection up when the liveness rule says so
    /// ([`schedule::liveness::judge`]: a ping, or bytes sent, unanswered
    /// for [`schedule::DEAD_AFTER`] with not one sign of the server).
    fn watch_stall(&mut self, now: Instant) -> Result<(), ClientError> {
        self.update_watch(now);
        let Some(conn) = &self.conn else {
            self.waiting_since = None;
            return Ok(());
        };
        if let Liveness::Dead(silent) = conn.watch().judge(now) {
            return Err(ClientError::ConnectionLost(liveness::dead_line(silent)));
        }
        let heard = conn.watch().heard(now);
        let busy = !self.push.inflight.is_empty() || self.pull.job.is_some();
        // Bytes heard while waiting start the wait again.
        let waiting = self.waiting_since.map(|t| t.max(heard));
        let (since, warn) = schedule::stall_watch(waiting, busy, now);
        self.waiting_since = since;
        if warn {
            let why = format!(
                "no answer from the server for {} s: {} push(es) in flight, {}, {} path(s) to compare",
                schedule::STALL_WARN.as_secs(),
                self.push.inflight.len(),
                if self.pull.job.is_some() { "a pull running" } else { "no pull running" },
                self.push.dirty.paths.len()
            );
            log::warn!("{why}");
            self.publisher.last_error = Some(why);
        }
        Ok(())
    }

    fn on_frame(&mut self, frame: Frame) -> Result<(), ClientError> {
        self.frame_taken();
        let handled = self.handle_frame(frame);
        // Handling may take long (a large batch applied): that time is
        // the session's, not the server's silence.
        self.frame_taken();
        handled
    }

    /// A frame was taken from the server now (a sign of life).
    fn frame_taken(&mut self) {
        if let Some(conn) = self.conn.as_mut() {
            conn.watch_mut().frame_taken(Instant::now());
        }
    }

    fn handle_frame(&mut self, frame: Frame) -> Result<(), ClientError> {
        self.check_no_push_skipped(&frame)?;
        self.check_no_pull_skipped(&frame)?;
        let id = frame.request_id;
        if self.push.server_lists.owns(id) {
            return self.on_server_list_frame(id, frame.message);
        }
        if self.pull.job.as_ref().is_some_and(|p| p.owns(id)) {
            return self.on_pull_frame(frame);
        }
        match frame.message {
            Message::Notify { head } => {
                if head > self.index.cursor() {
                    log::debug!("server has changes up to {head}");
                    self.pull.wanted = true;
                } else {
                    // no change beyond the cursor, so the server
                    // may have found a file lost while it runs: the next
                    // pull (at most PULLING_RATE away) asks which
                    // a stale Notify costs no pull of its own.
                    log::debug!(
                        "server notified at {head}: asking which files it lost after the next pull"
                    );
                }
                self.pull.lost_due = true;
            }
            Message::PushAck(ack) => self.on_push_ack(id, &ack)?,
            Message::LostList(list) if self.pull.lost_asked == Some(id) => {
                self.pull.lost_asked = None;
                self.pull.lost_unanswered = 0;
                // more than one answer holds; asked again after
                // the next pull, once what this one named is back.
                self.pull.lost_due |= list.more;
                self.on_lost_list(&list);
            }
            Message::Error(report) if self.push.inflight.contains_key(&id) => {
                self.on_push_error(id, &report)?
            }
            Message::Error(report) => {
                // A refusal that made this client step down a feature: the
                // connection ends by plan, not by a failing server, so the
                // next dial waits the shortest backoff (each step down is
                // made once; with eight of them the doubling made an old
                // server wait 15 s and more before syncing).
                let mut stepped = false;
                if report.code == ErrorCode::BadFrame
                    && report.message.contains("unsupported protocol version 3")
                    && self.pull.modes
                {
                    // An older server (§15.1): pull without modes from now on.
                    log::warn!(
                        "the server does not know the executable bit (protocol version 3): \
                         syncing contents only"
                    );
                    self.pull.modes = false;
                    stepped = true;
                }
                if report.code == ErrorCode::BadFrame
                    && report.message.contains("unsupported protocol version 9")
                    && self.pull.lost
                {
                    // A server of versions 1 to 8: it does not
                    // name its lost files; not asked again this run.
                    log::warn!(
                        "the server does not name files it lost (protocol version 9): \
                         a lost server copy is not put back from this device"
                    );
                    self.pull.lost = false;
                    stepped = true;
                }
                if report.code == ErrorCode::BadFrame
                    && report.message.contains("unsupported protocol version 8")
                    && self.pull.checked
                {
                    // A server of versions 1 to 7: pull with
                    // PullModes from now on (the connection closes; the
                    // pull is repeated). A restore of that server from a
                    // backup goes unnoticed, as before version 8.
                    log::warn!(
                        "the server does not check pulls against its history (protocol version 8): \
                         a restore of its data from a backup would go unnoticed here"
                    );
                    self.pull.checked = false;
                    stepped = true;
                }
                if report.code == ErrorCode::BadFrame
                    && report.message.contains("unsupported protocol version 7")
                    && self.pull.partial_acks
                {
                    // A server of versions 1 to 6: replies applied
                    // but for paths left to the push go unacknowledged from
                    // now on (the connection closes; the pull is repeated).
                    log::warn!(
                        "the server does not take partial acknowledgements (protocol version 7): \
                         an edit of a file pulled while another waited for its push may become a conflict copy"
                    );
                    self.pull.partial_acks = false;
                    stepped = true;
                }
                if report.code == ErrorCode::BadFrame
                    && report.message.contains("unsupported protocol version 6")
                    && !self.push.no_streams
                {
                    // A server of versions 1 to 5: new files are
                    // hashed before they are sent from now on (the
                    // connection closes, the uploads are planned again).
                    log::warn!(
                        "the server does not take uploads with the hash after the data \
                         (protocol version 6): hashing before sending"
                    );
                    self.push.no_streams = true;
                    stepped = true;
                }
                if report.code == ErrorCode::BadFrame
                    && report.message.contains("unsupported protocol version 5")
                    && self.pull.list_deltas
                {
                    // A version 4 server: it could not read a
                    // FetchManifestSince (or a ChunkListDelta); ask for whole
                    // lists from now on (the connection closes, the pull
                    // starts over).
                    log::debug!("the server does not take chunk list deltas (protocol version 5)");
                    self.pull.list_deltas = false;
                    stepped = true;
                }
                if report.code == ErrorCode::BadFrame
                    && report.message.contains("unsupported protocol version 4")
                    && self.pull.short_ids
                {
                    // A version 2 or 3 server: it could not read
                    // the FetchShortManifest, so the refusal carries request
                    // ID 0 and reaches no download; ask for 32-byte IDs from
                    // now on (the connection closes and the pull starts over).
                    log::warn!(
                        "the server does not serve 16-byte chunk IDs (protocol version 4): \
                         asking for 32-byte ones"
                    );
                    self.pull.short_ids = false;
                    stepped = true;
                }
                if report.code == ErrorCode::BadFrame
                    && report.message.contains("unsupported protocol version 2")
                    && self.pull.deltas
                {
                    // A version 1 server (§13.1): download whole files from now on.
                    log::warn!(
                        "the server does not serve delta downloads (protocol version 1): \
                         downloading whole files"
                    );
                    self.pull.deltas = false;
                    stepped = true;
                }
                // `UnknownUser` and `UnknownClient` are not here: a server
                // that forgets a user or a device it synced with is retried
                // through the reconnection's handshake.
                if matches!(report.code, ErrorCode::Revoked | ErrorCode::BadCredential) {
                    let refused = ClientError::Refused {
                        code: report.code,
                        message: report.message,
                    };
                    return Err(refused.for_folder(&self.config.folder, self.identity.client));
                }
                if stepped {
                    self.timers.stepped_down();
                }
                return Err(ClientError::ConnectionLost(format!(
                    "server error {:?}: {}",
                    report.code, report.message
                )));
            }
            Message::Ping => {
                if let Some(conn) = self.conn.as_mut() {
                    conn.send(id, &Message::Pong)?;
                }
            }
            Message::Pong => {
                if let Some(conn) = self.conn.as_mut() {
                    conn.watch_mut().pong(id);
                }
            }
            other => {
                log::debug!("ignoring unexpected {:?} (request {id})", other.kind());
            }
        }
        Ok(())
    }
}
