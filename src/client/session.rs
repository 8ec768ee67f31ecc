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

use super::connection::{Connection, Inbound};
use super::error::ClientError;
use super::ignore::source::RuleSource;
use super::ignore::IgnoreRules;
use super::index::Index;
use super::progress::Transfer;
use super::pull::{Ctx, PullJob};
use super::push::send_op;
use super::scanner::{Op, Scanner, Scope, SETTLE};
use super::schedule;
use super::state::{Identity, StateDir};
use super::watcher::{canonical_root, FolderWatcher, WatchEvent};
use super::Config;
use crate::protocol::limits::STATE_DIR_NAME;
use crate::protocol::{ErrorCode, Frame, Hello, HelloMode, Message, UserId};
use crossbeam_channel::{never, select, Receiver};
use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Keep-alive: a ping after this much silence (the server drops at 300 s).
const PING_AFTER: Duration = Duration::from_secs(60);
/// Reconnection backoff bounds.
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A full comparison of the folder this often, in case an event was missed
/// without the watcher noticing (stat only by the rule in `detect`; a file is
/// read only when its record says so). 10,000 files take 40-150 ms per
/// comparison: 0.14% of one core on average at this period, pulls included
/// (`benches/client_watch_cpu.sh`).
const SAFETY_RESCAN: Duration = Duration::from_secs(60);
/// With `--once`, files still being written after this long are left for
/// the next run.
const ONCE_UNSTABLE_LIMIT: Duration = Duration::from_secs(30);
/// At shutdown, how long to wait for outstanding acknowledgements.
const DRAIN: Duration = Duration::from_secs(5);
/// An index that lists at least this many files and meets an empty folder
/// stops the client instead of pushing deletions.
const EMPTIED_THRESHOLD: usize = 10;

/// Runs the client until `shutdown` is set (or, with `once`, until both sides
/// agree). `on_new_user` receives the ID of a user this run created, once its
/// folder is uploaded.
///
/// # Errors
/// Start-up failures (missing folder, unreachable server, refused ID,
/// damaged state) and the folder's safety stops while running.
pub fn run(
    config: &Config,
    shutdown: Arc<AtomicBool>,
    on_new_user: &mut dyn FnMut(UserId),
) -> Result<(), ClientError> {
    if !config.folder.is_dir() {
        return Err(ClientError::MissingFolder(config.folder.clone()));
    }
    let root = canonical_root(&config.folder);
    let state = StateDir::open(&root)?;
    let stored = state.load_identity()?;
    let mut index = match stored {
        Some(_) => Index::load(&state.index_file())?,
        None => Index::new(),
    };
    let rules = publish::adopt_rules(&root, &state, &mut index);
    check_not_emptied(&root, &index, rules.rules())?;
    let publisher = Publisher::start(state.path());
    let hello = hello_for(stored, config.user)?;
    let (conn, identity) = greet(config, &hello)?;
    if stored.is_none() {
        state.save_identity(&identity)?;
        index.set_cursor(0);
        index.save(&state.index_file())?;
    }
    let watcher = if config.once {
        None
    } else {
        match FolderWatcher::start(&root) {
            Ok(w) => Some(w),
            Err(e) => {
                log::warn!("{e}; falling back to a full rescan at every pull");
                None
            }
        }
    };
    let mut scanner = Scanner::new(&root);
    scanner.set_rules(rules.rules().clone());
    let mut session = Session {
        config,
        root: root.clone(),
        tmp: state.tmp_dir(),
        state,
        identity,
        index,
        scanner,
        rules,
        publisher,
        conn: Some(conn),
        inflight: HashMap::new(),
        pings: HashSet::new(),
        push_transfer: None,
        pull: None,
        pull_wanted: true,
        rewind: None,
        next_pull: Instant::now() + config.pull_every,
        pulled_once: false,
        last_acked: 0,
        dirty: Scope::default(),
        dirty_due: None,
        dirty_since: None,
        retry: Scope::default(),
        retry_due: None,
        unstable_since: None,
        reconnect_at: Instant::now(),
        backoff: BACKOFF_MIN,
        watcher,
        shutdown,
        new_user: hello.mode == HelloMode::NewUser,
        first_sync: hello.mode != HelloMode::Resume,
        full_round_sent: false,
        last_rescan: Instant::now(),
    };
    session.mark_all(Instant::now());
    session.run(on_new_user)
}

/// The handshake this folder calls for: resume what it remembers, join the
/// given user, or create a user.
///
/// # Errors
/// [`ClientError::UserMismatch`] when the folder belongs to another user.
fn hello_for(stored: Option<Identity>, user: Option<UserId>) -> Result<Hello, ClientError> {
    Ok(match (stored, user) {
        (Some(id), Some(given)) if id.user != given => {
            return Err(ClientError::UserMismatch {
                stored: id.user.to_string(),
                given: given.to_string(),
            })
        }
        (Some(id), _) => Hello {
            mode: HelloMode::Resume,
            user_id: id.user,
            client_id: id.client,
        },
        (None, Some(user)) => Hello {
            mode: HelloMode::NewClient,
            user_id: user,
            client_id: 0,
        },
        (None, None) => Hello {
            mode: HelloMode::NewUser,
            user_id: UserId::NONE,
            client_id: 0,
        },
    })
}

/// Connects and shakes hands; says who we are now.
///
/// # Errors
/// `Unreachable`, `Refused`, or a `Welcome` for another user.
fn greet(config: &Config, hello: &Hello) -> Result<(Connection, Identity), ClientError> {
    let mut conn =
        Connection::connect(config.server).map_err(|cause| ClientError::Unreachable {
            address: config.server.to_string(),
            cause,
        })?;
    let welcome = conn.handshake(hello.clone())?;
    if hello.mode != HelloMode::NewUser && welcome.user_id != hello.user_id {
        return Err(ClientError::Protocol("welcome names another user".into()));
    }
    let identity = Identity {
        user: welcome.user_id,
        client: welcome.client_id,
    };
    match hello.mode {
        // The user ID is a secret: printed once on stdout for its
        // owner by the binary, never written to the log.
        HelloMode::NewUser => log::info!("created a new user; uploading the folder"),
        HelloMode::NewClient => {
            log::info!("joined the user as device {}; downloading", identity.client)
        }
        HelloMode::Resume => log::info!(
            "resumed as device {} (server at {})",
            identity.client,
            welcome.head
        ),
    }
    Ok((conn, identity))
}

/// Refuses to start (or go on) when the folder is empty but the index knows
/// many files: an unmounted drive must not become a mass deletion.
/// Ignored entries do not count: a folder holding only those is empty.
fn check_not_emptied(root: &Path, index: &Index, rules: &IgnoreRules) -> Result<(), ClientError> {
    let files = index.file_count();
    if files < EMPTIED_THRESHOLD {
        return Ok(());
    }
    let mut entries = fs::read_dir(root).map_err(|_| ClientError::FolderVanished(root.into()))?;
    let empty = entries.all(|e| {
        e.map(|e| {
            let name = e.file_name();
            let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
            name == STATE_DIR_NAME || name.to_str().is_some_and(|n| rules.ignores(n, is_dir))
        })
        .unwrap_or(true)
    });
    if empty {
        return Err(ClientError::FolderEmptied {
            folder: root.to_path_buf(),
            indexed_files: files,
        });
    }
    Ok(())
}

mod acks;
mod publish;
use publish::Publisher;

struct Session<'a> {
    config: &'a Config,
    root: PathBuf,
    tmp: PathBuf,
    state: StateDir,
    identity: Identity,
    index: Index,
    scanner: Scanner,
    /// `.cloudignore` as last read.
    rules: RuleSource,
    /// The status file and what goes into it.
    publisher: Publisher,
    conn: Option<Connection>,
    /// Pushes sent and not yet acknowledged, by request ID.
    inflight: HashMap<u32, Op>,
    pings: HashSet<u32>,
    push_transfer: Option<Transfer>,
    pull: Option<PullJob>,
    pull_wanted: bool,
    /// The cursor must go back to at most this once no pull runs.
    rewind: Option<u64>,
    next_pull: Instant,
    pulled_once: bool,
    last_acked: u64,
    /// Paths to compare with the index, and when.
    dirty: Scope,
    dirty_due: Option<Instant>,
    dirty_since: Option<Instant>,
    /// Paths that were still being written; looked at again later.
    retry: Scope,
    retry_due: Option<Instant>,
    /// Since when some file has kept changing.
    unstable_since: Option<Instant>,
    reconnect_at: Instant,
    backoff: Duration,
    watcher: Option<FolderWatcher>,
    shutdown: Arc<AtomicBool>,
    /// This run created the user: print its ID once the folder is up.
    new_user: bool,
    /// First sync of this folder: show progress bars.
    first_sync: bool,
    full_round_sent: bool,
    last_rescan: Instant,
}

impl Session<'_> {
    fn run(&mut self, on_new_user: &mut dyn FnMut(UserId)) -> Result<(), ClientError> {
        loop {
            if self.shutdown.load(Ordering::SeqCst) {
                log::info!("stopping");
                return self.stop();
            }
            if let Err(e) = self.tick() {
                self.on_error(e)?;
            }
            if self.new_user && self.full_round_sent && self.inflight.is_empty() {
                self.new_user = false;
                on_new_user(self.identity.user);
            }
            if self.config.once && self.converged() {
                return self.stop();
            }
            let timeout = self.next_wakeup();
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

    /// Connection trouble is retried; anything else ends the run.
    fn on_error(&mut self, e: ClientError) -> Result<(), ClientError> {
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
            && self.pulled_once
            && self.full_round_sent
            && self.pull.is_none()
            && !self.pull_wanted
            && self.inflight.is_empty()
            && self.dirty.is_empty()
            && self.retry.is_empty()
    }

    fn next_wakeup(&self) -> Duration {
        let now = Instant::now();
        let mut next = now + Duration::from_millis(250);
        for t in [self.dirty_due, self.retry_due].into_iter().flatten() {
            next = next.min(t);
        }
        if self.conn.is_none() {
            next = next.min(self.reconnect_at);
        } else if self.pull.is_none() {
            next = next.min(self.next_pull);
        }
        next.saturating_duration_since(now)
    }

    fn mark_all(&mut self, now: Instant) {
        self.dirty.add_all();
        self.dirty_due = Some(now);
    }

    fn mark(&mut self, path: crate::protocol::WirePath, due: Instant) {
        self.dirty.add(path);
        self.dirty_due = Some(self.dirty_due.map_or(due, |d| d.min(due)));
    }

    /// [`StateDir::check_attached`]: stop if `.cloudservice` was removed.
    fn check_attached(&self) -> Result<(), ClientError> {
        let reattach = (
            self.config.server,
            self.config.pull_every,
            self.identity.user,
        );
        self.state.check_attached(&self.root, reattach)
    }

    /// Timers: reconnect, keep-alive, pull, push round.
    fn tick(&mut self) -> Result<(), ClientError> {
        self.check_attached()?;
        let now = Instant::now();
        let rescan = now.duration_since(self.last_rescan) >= SAFETY_RESCAN;
        self.refresh_rules(rescan);
        if self.retry_due.is_some_and(|t| now >= t) {
            let retry = std::mem::take(&mut self.retry);
            self.dirty.merge(retry);
            self.retry_due = None;
            self.dirty_due = Some(now);
        }
        if now.duration_since(self.last_rescan) >= SAFETY_RESCAN {
            self.last_rescan = now;
            self.mark_all(now);
        }
        if self.conn.is_none() {
            if now >= self.reconnect_at {
                self.reconnect()?;
            }
            return Ok(());
        }
        let pull_due = self.pull.is_none() && (self.pull_wanted || now >= self.next_pull);
        if pull_due && self.watcher.is_none() && !self.config.once && now >= self.next_pull {
            // No watcher: every pull tick compares the whole folder too.
            self.mark_all(now);
        }
        let Some(conn) = self.conn.as_mut() else {
            return Ok(());
        };
        if now.duration_since(conn.last_send()) >= PING_AFTER {
            let id = conn.request(Message::Ping)?;
            self.pings.insert(id);
        }
        if pull_due {
            self.pull_wanted = false;
            self.next_pull = now + self.config.pull_every;
            let first = self.first_sync && !self.pulled_once;
            self.pull = Some(PullJob::start(
                conn,
                self.index.cursor(),
                first,
                self.config.verbosity,
            )?);
        }
        if self.pull.is_none()
            && !self.pull_wanted
            && self.inflight.is_empty()
            && self.dirty_due.is_some_and(|t| now >= t)
        {
            self.push_round()?;
        }
        Ok(())
    }

    /// Compares the dirty paths with the index and sends the pushes.
    fn push_round(&mut self) -> Result<(), ClientError> {
        let scope = std::mem::take(&mut self.dirty);
        self.dirty_due = None;
        self.dirty_since = None;
        let plan = self.scanner.plan(&self.index, &scope)?;
        for (path, entry) in plan.refreshed {
            self.index.insert(path, entry);
        }
        if plan.unstable.is_empty() {
            self.unstable_since = None;
        } else {
            let since = *self.unstable_since.get_or_insert_with(Instant::now);
            if self.config.once && since.elapsed() > ONCE_UNSTABLE_LIMIT {
                // A file that never stops changing must not keep --once alive.
                for path in &plan.unstable {
                    log::warn!("{path} keeps changing; not pushed this time");
                }
            } else {
                for path in plan.unstable {
                    self.retry.add(path);
                }
                self.retry_due = Some(Instant::now() + SETTLE);
            }
        }
        if plan.ops.iter().any(Op::removes) {
            check_not_emptied(&self.root, &self.index, self.rules.rules())?;
        }
        if plan.renames_only {
            // Plan the rest once the renames are acknowledged.
            self.dirty.merge(scope.clone());
            self.dirty_due = Some(Instant::now());
        }
        let uploads: Vec<u64> = plan
            .ops
            .iter()
            .filter_map(|op| match op {
                Op::Upload { stat, .. } => Some(stat.size),
                _ => None,
            })
            .collect();
        if !uploads.is_empty() {
            let first = self.first_sync && scope.full;
            self.push_transfer = Some(Transfer::start(
                "upload",
                uploads.len() as u64,
                uploads.iter().sum(),
                first,
                self.config.verbosity,
            ));
        }
        let Some(conn) = self.conn.as_mut() else {
            self.dirty.merge(scope);
            return Ok(());
        };
        let mut sent = 0usize;
        for op in plan.ops {
            if self.shutdown.load(Ordering::SeqCst) {
                break;
            }
            let mut on_bytes = |n: u64| {
                if let Some(t) = self.push_transfer.as_mut() {
                    t.add_bytes(n);
                }
            };
            match send_op(conn, &self.root, &op, self.index.cursor(), &mut on_bytes)? {
                Some(id) => {
                    self.inflight.insert(id, op);
                    sent += 1;
                }
                None => self.dirty.add(op.path().clone()),
            }
        }
        if sent > 0 {
            log::info!("pushing {sent} change(s)");
        }
        if scope.full {
            self.full_round_sent = true;
        }
        if self.inflight.is_empty() {
            self.round_done();
        }
        Ok(())
    }

    fn round_done(&mut self) {
        if let Some(t) = self.push_transfer.take() {
            t.finish();
        }
        if let Err(e) = self.index.save(&self.state.index_file()) {
            log::error!("{e}");
        }
    }

    fn on_watch(&mut self, event: WatchEvent) -> Result<(), ClientError> {
        match &event {
            WatchEvent::Rescan(why) => {
                log::warn!("file watcher: {why}; comparing the whole folder with the index");
            }
            WatchEvent::RootGone if !self.root.is_dir() => {
                return Err(ClientError::FolderVanished(self.root.clone()));
            }
            _ => {}
        }
        let (dirty, due) = (&mut self.dirty, &mut self.dirty_due);
        schedule::on_event(dirty, due, &mut self.dirty_since, event, Instant::now());
        Ok(())
    }

    fn on_frame(&mut self, frame: Frame) -> Result<(), ClientError> {
        let id = frame.request_id;
        if self.pull.as_ref().is_some_and(|p| p.owns(id)) {
            return self.on_pull_frame(frame);
        }
        match frame.message {
            Message::Notify { head } => {
                if head > self.index.cursor() {
                    log::debug!("server has changes up to {head}");
                    self.pull_wanted = true;
                }
            }
            Message::PushAck(ack) => self.on_push_ack(id, &ack)?,
            Message::Error(report) if self.inflight.contains_key(&id) => {
                self.on_push_error(id, &report)?
            }
            Message::Error(report) => {
                if report.code == ErrorCode::UnknownClient || report.code == ErrorCode::UnknownUser
                {
                    return Err(ClientError::Refused {
                        code: report.code,
                        message: report.message,
                    });
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
                self.pings.remove(&id);
            }
            other => {
                log::debug!("ignoring unexpected {:?} (request {id})", other.kind());
            }
        }
        Ok(())
    }

    fn on_pull_frame(&mut self, frame: Frame) -> Result<(), ClientError> {
        let (Some(conn), Some(job)) = (self.conn.as_mut(), self.pull.as_mut()) else {
            return Ok(());
        };
        let mut ctx = Ctx {
            root: &self.root,
            tmp: &self.tmp,
            index: &mut self.index,
            me: self.identity.client,
            rules: self.rules.rules(),
        };
        job.on_frame(frame, conn, &mut ctx)?;
        if !job.is_done() {
            return Ok(());
        }
        let Some(job) = self.pull.take() else {
            return Ok(());
        };
        let done = job.finish();
        self.pulled_once = true;
        let now = Instant::now();
        for path in done.dirty {
            self.mark(path, now);
        }
        if done.changed > 0 {
            log::info!("applied {} change(s) from the server", done.changed);
        }
        self.publisher.pull_failed = done.failed;
        if done.failed {
            self.publisher.last_error =
                Some("some changes from the server could not be applied yet; retrying".into());
            // Repeat from the same cursor soon.
            self.next_pull = now + Duration::from_secs(2);
            self.apply_rewind();
            self.index.save(&self.state.index_file())?;
            return Ok(());
        }
        let cursor = if done.full {
            done.head
        } else {
            self.index.cursor().max(done.head)
        };
        self.index.set_cursor(cursor);
        self.apply_rewind();
        self.index.save(&self.state.index_file())?;
        if done.head > self.last_acked {
            if let Some(conn) = self.conn.as_mut() {
                conn.request(Message::Ack { cursor: done.head })?;
            }
            self.last_acked = done.head;
        }
        Ok(())
    }

    /// Forgets the connection and everything in flight on it.
    fn lost(&mut self, why: &str) {
        if self.conn.take().is_none() {
            return;
        }
        log::warn!("{why}; reconnecting in {:.1} s", self.backoff.as_secs_f64());
        self.publisher.last_error = Some(why.to_owned());
        for (_, op) in self.inflight.drain() {
            if let Op::Rename { from, .. } = &op {
                self.dirty.add(from.clone());
            }
            self.dirty.add(op.path().clone());
        }
        self.pings.clear();
        if let Some(job) = self.pull.take() {
            let _ = job.finish();
        }
        self.apply_rewind();
        if let Some(t) = self.push_transfer.take() {
            t.finish();
        }
        let _ = self.index.save(&self.state.index_file());
        self.reconnect_at = Instant::now() + self.backoff;
    }

    fn reconnect(&mut self) -> Result<(), ClientError> {
        let attempt = Connection::connect(self.config.server)
            .map_err(|e| ClientError::ConnectionLost(format!("connect: {e}")))
            .and_then(|mut conn| {
                conn.handshake(Hello {
                    mode: HelloMode::Resume,
                    user_id: self.identity.user,
                    client_id: self.identity.client,
                })
                .map(|_| conn)
            });
        match attempt {
            Ok(conn) => {
                log::info!("reconnected to {}", self.config.server);
                self.conn = Some(conn);
                self.backoff = BACKOFF_MIN;
                self.pull_wanted = true;
                self.last_acked = 0;
                self.mark_all(Instant::now());
                Ok(())
            }
            Err(ClientError::Refused { code, message })
                if code == ErrorCode::UnknownUser || code == ErrorCode::UnknownClient =>
            {
                Err(ClientError::Refused { code, message })
            }
            Err(e) => {
                self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
                log::debug!("reconnect failed: {e}");
                self.reconnect_at = Instant::now() + self.backoff;
                Ok(())
            }
        }
    }

    /// Finishes what is in flight (briefly), saves the index, closes.
    fn stop(&mut self) -> Result<(), ClientError> {
        let deadline = Instant::now() + DRAIN;
        while !self.inflight.is_empty() && Instant::now() < deadline {
            let Some(conn) = self.conn.as_ref() else {
                break;
            };
            let rx = conn.inbound().clone();
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(Inbound::Frame(frame)) => {
                    if self.on_frame(frame).is_err() {
                        break;
                    }
                }
                _ => break,
            }
        }
        if let Some(job) = self.pull.take() {
            let _ = job.finish();
        }
        if let Some(t) = self.push_transfer.take() {
            t.finish();
        }
        self.check_attached()?;
        self.index.save(&self.state.index_file())?;
        self.conn = None;
        self.publish_status(true);
        Ok(())
    }
}
