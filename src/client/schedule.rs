//! The session's timers in one place, and the decisions about them: when
//! the next push round runs (watcher events gathered into the paths to
//! compare and a due time), when to reconnect, ping, pull and compare the
//! whole folder, and how long the loop may sleep. Decisions only (no I/O),
//! so they are tested without a socket, a watcher or a clock.
//!
//! - [`on_event`]: a watcher event → the pending round's due time.
//! - [`Timers`]: every instant the session waits for, plus the reconnection
//!   backoff; [`Timers::tick`] says what is due now ([`Tick`]) given the
//!   session's [`Status`], [`Timers::next_wakeup`] how long to sleep.
//!
//! A file whose writer closed it (or that was moved in whole) is complete:
//! its round is due after [`SETTLED_DEBOUNCE`], which only gathers the other
//! events of the same save. Any other event waits for [`DEBOUNCE`] of quiet
//! (at most [`MAX_DEBOUNCE`] in all), and never postpones a round already due
//! sooner for a completed file.

use super::scanner::Scope;
use super::watcher::WatchEvent;

pub mod holdback;
pub mod liveness;
pub mod removal;
use std::time::{Duration, Instant};

/// Quiet time after the last watcher event before changes are planned.
pub const DEBOUNCE: Duration = Duration::from_millis(150);
/// The wait after a file was closed for writing or moved in whole. An
/// editor's save (write a temporary file, close it, rename it over the
/// original) takes microseconds, so its events arrive within this window and
/// are planned as one change.
pub const SETTLED_DEBOUNCE: Duration = Duration::from_millis(3);
/// A steady stream of events still gets planned at least this often.
pub const MAX_DEBOUNCE: Duration = Duration::from_secs(2);

/// Adds a watcher event received at `now` to the pending round: `dirty` (what
/// to compare), `due` (when to plan it) and `since` (the batch's first
/// event). `Rescan` and `RootGone` widen to the whole folder (the session
/// checks first whether the folder itself is gone).
pub fn on_event(
    dirty: &mut Scope,
    due: &mut Option<Instant>,
    since: &mut Option<Instant>,
    event: WatchEvent,
    now: Instant,
) {
    if matches!(event, WatchEvent::Unsyncable(..)) {
        // Nothing to push: the session reports it (the scanner would skip it).
        return;
    }
    let first = *since.get_or_insert(now);
    match event {
        WatchEvent::Settled(paths) => {
            for path in paths {
                dirty.add_settled(path);
            }
            let soon = now + SETTLED_DEBOUNCE;
            *due = Some(due.map_or(soon, |d| d.min(soon)));
            return;
        }
        WatchEvent::Paths(paths) => {
            for path in paths {
                dirty.add(path);
            }
        }
        WatchEvent::Metadata(paths) => {
            for path in paths {
                dirty.add_metadata(path);
            }
        }
        WatchEvent::Rescan(_) | WatchEvent::RootGone => dirty.add_all(),
        WatchEvent::Unsyncable(..) => return,
    }
    let quiet = (now + DEBOUNCE).min(first + MAX_DEBOUNCE);
    *due = match *due {
        // A completed file is waiting: do not postpone its round.
        Some(planned) if !dirty.settled.is_empty() => Some(planned.min(quiet)),
        _ => Some(quiet),
    };
}

/// An idle connection's ping: after this long with nothing sent (the server
/// drops an idle connection at 300 s, R-4.3.3). It is also how an idle
/// client notices a dead link: an idle client sends nothing else until its
/// next pull, so before this ping came every 60 s, a link gone dead (packets
/// dropped, no reset) was "in sync" for up to PULLING_RATE + 5 s, 65 s at
/// rates of a minute or more, while other devices' changes were not
/// notified to it (outside tester breaker19 G5). With it, `status` stops
/// saying "in sync" at most [`IDLE_BOUND`] after the link went dead,
/// whatever PULLING_RATE. Cost: one Ping and one Pong (12 bytes each, 50 to
/// 80 bytes with TCP/IP and TLS) every 15 s.
pub const PING_AFTER: Duration = Duration::from_secs(15);
/// The longest an idle client says "in sync" over a link that went dead:
/// its next ping ([`PING_AFTER`]), then [`liveness::ANSWER_WAIT`] for the
/// Pong.
pub const IDLE_BOUND: Duration = Duration::from_secs(20);
/// Reconnection backoff bounds: doubled after each failed attempt.
pub const BACKOFF_MIN: Duration = Duration::from_millis(500);
/// The longest wait between two reconnection attempts.
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A connection lost sooner than this after it was made counts as a failed
/// attempt: the next wait doubles instead of starting again from
/// [`BACKOFF_MIN`], so a server that accepts and then drops every connection
/// (for the same reason each time) is not redialled every 0.5 s for ever.
pub const STABLE_CONNECTION: Duration = Duration::from_secs(5);

/// The wait before reconnecting after a loss, given the last wait used and
/// how long the lost connection lived (`None`: not known to have been made
/// by a reconnection): doubled (at most [`BACKOFF_MAX`]) after a connection
/// shorter than [`STABLE_CONNECTION`], else [`BACKOFF_MIN`].
pub fn after_loss(backoff: Duration, lived: Option<Duration>) -> Duration {
    match lived {
        Some(lived) if lived < STABLE_CONNECTION => (backoff * 2).min(BACKOFF_MAX),
        _ => BACKOFF_MIN,
    }
}
/// A full comparison of the folder this often, in case an event was missed
/// without the watcher noticing (stat only by the rule in `detect`; a file is
/// read only when its record says so). 10,000 files take 40-150 ms per
/// comparison: 0.14% of one core on average at this period, pulls included
/// (`benches/client_watch_cpu.sh`).
pub const SAFETY_RESCAN: Duration = Duration::from_secs(60);
/// The loop wakes at least this often (to check the shutdown flag and the
/// state folder).
pub const IDLE_WAKE: Duration = Duration::from_millis(250);
/// A pull that failed part-way is repeated from the same cursor after this.
pub const PULL_RETRY: Duration = Duration::from_secs(2);
/// A push the server refused for its content is tried again after this.
pub const PUSH_RETRY: Duration = Duration::from_secs(1);
/// While pushes wait for their acknowledgements, a ping after this much
/// silence from this side. The server answers a connection's requests in
/// order, so its Pong comes after the answers of every push sent
/// before it: a Pong (or any later reply) that finds one of them still in
/// flight proves that answer will never come ([`Status::pushing`] would stay
/// set for ever: no round, no periodic pull). The session then reconnects
/// and plans those pushes again (stall14: a server actor that retired
/// dropped one push, and the device stopped syncing with 108 changes
/// pending). A slow answer (a large upload being checked) only delays the
/// Pong behind it: one ping per this period; only a ping that
/// waits [`DEAD_AFTER`] with not one byte from the server ends the
/// connection ([`liveness::judge`]). The
/// same while a pull's reply has not come in full: no other pull
/// starts while one runs, so a reply the server lost stopped every pull.
pub const PROBE_AFTER: Duration = Duration::from_secs(10);
/// While pushes or a pull wait for the server, a warning (log and status)
/// after this long without a frame from it, repeated every as long: the
/// server answers nothing, not even the pings of [`PROBE_AFTER`], and the
/// changes of this device wait. A pull's data and a push's answer keep
/// coming in a working session (a 1 GiB upload is checked in about 1 s).
pub const STALL_WARN: Duration = Duration::from_secs(60);

/// A connection is given up (closed, and made again with the usual
/// backoff) once a ping has waited this long for its Pong with not one
/// byte from the server meanwhile. The server answers a Ping at once when
/// nothing is ahead of it, and the answers ahead of it are
/// bytes that keep coming; without this, a connection whose path went
/// silent (a server host lost, a dead link without a reset, a floating
/// address moved) was kept until the kernel gave up, ~15 min, while
/// `status` said connected (outside tester breaker17 R3). A send that
/// cannot go on (its bytes unacknowledged) is such a probe too
/// ([`liveness`]).
pub const DEAD_AFTER: Duration = Duration::from_secs(60);
/// How fast the server is assumed, at the least, to check an upload's
/// bytes at its end before it answers (a 1 GiB upload takes about 1 s):
/// while uploads wait for their answers, [`DEAD_AFTER`] grows by their
/// bytes at this rate, so a slow disk's check of a large file is not
/// taken for a dead connection and cut at every attempt.
pub const CHECK_BYTES_PER_S: u64 = 32 << 20;

/// The wait for the server that [`STALL_WARN`] watches, at `now`: `since`
/// (when the session started waiting, or last heard from the server while
/// waiting) kept while `busy` (pushes in flight or a pull running), started
/// when it becomes so, gone when not. Returns the new `since` and whether
/// the warning is due (then `since` starts again at `now`).
pub fn stall_watch(since: Option<Instant>, busy: bool, now: Instant) -> (Option<Instant>, bool) {
    match (busy, since) {
        (false, _) => (None, false),
        (true, None) => (Some(now), false),
        (true, Some(t)) if now.duration_since(t) >= STALL_WARN => (Some(now), true),
        (true, Some(t)) => (Some(t), false),
    }
}

/// Every instant the session waits for. Only the session thread holds one.
#[derive(Debug, Clone)]
pub struct Timers {
    /// When the pending push round (the dirty paths) is to be planned.
    pub dirty_due: Option<Instant>,
    /// The first watcher event of the pending round (for [`MAX_DEBOUNCE`]).
    pub dirty_since: Option<Instant>,
    /// When the paths still being written are looked at again.
    pub retry_due: Option<Instant>,
    /// When a round held back by the removal hold ([`removal`]) is planned
    /// again.
    pub hold_due: Option<Instant>,
    /// Since when some file has kept changing (for `--once`'s limit).
    pub unstable_since: Option<Instant>,
    /// When the next periodic pull is due (every `PULLING_RATE`).
    pub next_pull: Instant,
    /// When to try connecting again while disconnected.
    pub reconnect_at: Instant,
    /// The current reconnection backoff, [`BACKOFF_MIN`]..=[`BACKOFF_MAX`].
    pub backoff: Duration,
    /// When the current connection was made by a reconnection ([`after_loss`]).
    pub connected_at: Option<Instant>,
    /// The last full comparison of the folder (see [`SAFETY_RESCAN`]).
    pub last_rescan: Instant,
}

/// What the schedule needs to know of the session at a tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    /// The last frame written, or `None` while disconnected.
    pub last_send: Option<Instant>,
    /// A pull is being applied.
    pub pulling: bool,
    /// The running pull's reply has not come in full, or its fetched
    /// chunks have not all arrived: a ping probes it after [`PROBE_AFTER`]
    /// of silence.
    pub pull_awaited: bool,
    /// The server said it has changes (or a push asked for a pull).
    pub pull_wanted: bool,
    /// Pushes are waiting for their acknowledgements.
    pub pushing: bool,
    /// The last pull left changes of this device to push before it could
    /// apply the server's versions of the same paths ("pushing it before
    /// pulling it"): the next round goes before the next pull, even one the
    /// server asked for. Otherwise, while other devices keep pushing, every
    /// `Notify` wants a pull again before the round may run, every such
    /// pull defers the same paths again from the same cursor, and neither
    /// ever completes (stall14, reading (a)).
    pub push_first: bool,
    /// A watcher reports changes (without one, every pull compares the folder).
    pub watching: bool,
    /// `--once`: no periodic whole-folder comparison at pulls.
    pub once: bool,
}

impl Status {
    /// Whether a push round may be planned now: connected, no pull wanted
    /// (its changes come first, unless the last pull waits for this round:
    /// [`Status::push_first`]) or being applied, and the previous round's
    /// pushes all acknowledged.
    pub fn round_may_run(&self) -> bool {
        self.last_send.is_some()
            && !self.pulling
            && (!self.pull_wanted || self.push_first)
            && !self.pushing
    }

    /// Whether the periodic pull (a poll: the server's `Notify` asks for a
    /// pull at once whenever another device changes something) may start:
    /// none is being applied and no push awaits its acknowledgement. A
    /// periodic pull sent behind a round's pushes started from the cursor
    /// those pushes had not moved yet, so its reply listed this device's own
    /// changes back to it: 10,100 entries (about 0.6 MB) and 0.25 s after the
    /// last acknowledgement of a 10,000-file --once upload over a 20 ms link
    /// (benches/wan.sh, 2026-12-02). Held until the acknowledgements are in,
    /// it lists only what others changed. A pull the server asked for
    /// (`pull_wanted`) still goes at once.
    pub fn periodic_pull_may_run(&self) -> bool {
        self.last_send.is_some() && !self.pulling && !self.pushing
    }
}

/// What is due at a tick, in the order the session does it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tick {
    /// The paths that were still being written join the pending round.
    pub retry: bool,
    /// Compare the whole folder (the periodic safety comparison).
    pub rescan: bool,
    /// Disconnected, and the backoff has passed: connect again.
    pub reconnect: bool,
    /// Send a keep-alive ping.
    pub ping: bool,
    /// Start a pull.
    pub pull: bool,
    /// Compare the whole folder too (no watcher: done at every periodic pull).
    pub compare_all: bool,
    /// Plan and send a push round.
    pub push: bool,
}

impl Timers {
    /// Timers at start-up (`now`): connected, nothing pending, the first
    /// periodic pull `pull_every` away.
    pub fn new(now: Instant, pull_every: Duration) -> Timers {
        Timers {
            dirty_due: None,
            dirty_since: None,
            retry_due: None,
            hold_due: None,
            unstable_since: None,
            next_pull: now + pull_every,
            reconnect_at: now,
            backoff: BACKOFF_MIN,
            connected_at: None,
            last_rescan: now,
        }
    }

    /// What is due at `now`. Pure: the session then does it and moves the
    /// timers through the methods below. No pull or push is due while
    /// disconnected; a push round waits for the pull wanted (unless that
    /// pull waits for the round: [`Status::push_first`]) or running and for
    /// the acknowledgements of the previous round, which a ping probes
    /// after [`PROBE_AFTER`] of silence.
    pub fn tick(&self, now: Instant, status: Status) -> Tick {
        let retry = self.retry_due.is_some_and(|t| now >= t);
        let rescan = now.duration_since(self.last_rescan) >= SAFETY_RESCAN;
        let Some(last_send) = status.last_send else {
            let reconnect = now >= self.reconnect_at;
            return Tick {
                retry,
                rescan,
                reconnect,
                ..Tick::default()
            };
        };
        let periodic = now >= self.next_pull;
        let round_due = retry
            || rescan
            || self.dirty_due.is_some_and(|t| now >= t)
            || self.hold_due.is_some_and(|t| now >= t);
        // The round the last pull waits for goes first (Status::push_first).
        let round_first = status.push_first && round_due && status.round_may_run();
        let pull = !status.pulling
            && !round_first
            && (status.pull_wanted || (periodic && status.periodic_pull_may_run()));
        let silent = now.duration_since(last_send);
        Tick {
            retry,
            rescan,
            reconnect: false,
            ping: silent >= PING_AFTER
                || ((status.pushing || status.pull_awaited) && silent >= PROBE_AFTER),
            pull,
            compare_all: pull && periodic && !status.watching && !status.once,
            push: !pull && status.round_may_run() && round_due,
        }
    }

    /// How long the loop may sleep from `now`: until the next thing that is
    /// due, and at most [`IDLE_WAKE`].
    ///
    /// A push round's due time counts only while a round may run
    /// ([`Status::round_may_run`]), as in [`Timers::tick`]: while a pull is
    /// wanted or being applied, pushes wait for their acknowledgements or
    /// the session is disconnected, a round that is due cannot be taken,
    /// and what unblocks it is a frame from the server (the loop wakes for
    /// it) or the reconnection time (counted below). Counting it anyway made
    /// the loop spin with a zero timeout for as long as the block lasted: a
    /// 1 GiB download over a 100 Mbit/s link cost the client 62 s of CPU in
    /// 97 s (benches/wan.sh, 2026-12-02), and so did every local edit made
    /// while offline, until the reconnection.
    pub fn next_wakeup(&self, now: Instant, status: Status) -> Duration {
        let mut next = now + IDLE_WAKE;
        let round = if status.round_may_run() {
            [self.dirty_due, self.hold_due]
        } else {
            [None, None]
        };
        for t in round.into_iter().chain([self.retry_due]).flatten() {
            next = next.min(t);
        }
        if status.last_send.is_none() {
            next = next.min(self.reconnect_at);
        } else if status.periodic_pull_may_run() {
            // Likewise the periodic pull: not while pushes await their
            // acknowledgements (their frames wake the loop).
            next = next.min(self.next_pull);
        }
        next.saturating_duration_since(now)
    }

    /// The pending round is due no later than `due`.
    pub fn round_due_by(&mut self, due: Instant) {
        self.dirty_due = Some(self.dirty_due.map_or(due, |d| d.min(due)));
    }

    /// The pending round is due at `now`, whatever was planned before
    /// (the whole folder, or paths that must not wait for quiet).
    pub fn round_now(&mut self, now: Instant) {
        self.dirty_due = Some(now);
    }

    /// The paths still being written joined the pending round at `now`.
    pub fn retry_taken(&mut self, now: Instant) {
        self.retry_due = None;
        self.dirty_due = Some(now);
    }

    /// The pending round was taken for planning.
    pub fn round_taken(&mut self) {
        self.dirty_due = None;
        self.dirty_since = None;
        self.hold_due = None;
    }

    /// A round was held back ([`removal`]): planned again at `until`.
    pub fn hold_until(&mut self, until: Instant) {
        self.hold_due = Some(until);
    }

    /// The periodic comparison of the whole folder starts at `now`.
    pub fn rescan_started(&mut self, now: Instant) {
        self.last_rescan = now;
    }

    /// A pull starts at `now`; the next periodic one is `pull_every` later.
    pub fn pull_started(&mut self, now: Instant, pull_every: Duration) {
        self.next_pull = now + pull_every;
    }

    /// A pull failed part-way at `now`: repeat it soon.
    pub fn pull_failed(&mut self, now: Instant) {
        self.next_pull = now + PULL_RETRY;
    }

    /// Paths that were still being written are looked at again at `due`.
    pub fn retry_at(&mut self, due: Instant) {
        self.retry_due = Some(due);
    }

    /// The connection was lost at `now`: try again after the backoff,
    /// doubled if the connection was short-lived ([`after_loss`]).
    pub fn disconnected(&mut self, now: Instant) {
        let lived = self
            .connected_at
            .take()
            .map(|t| now.saturating_duration_since(t));
        self.backoff = after_loss(self.backoff, lived);
        self.reconnect_at = now + self.backoff;
    }

    /// The connection is about to end because this client stepped down a
    /// protocol feature the server refused ("unsupported protocol version
    /// N", made once per feature): not a failed connection, so the loss
    /// that follows waits [`BACKOFF_MIN`].
    pub fn stepped_down(&mut self) {
        self.connected_at = None;
        self.backoff = BACKOFF_MIN;
    }

    /// A reconnection attempt failed at `now`: back off further.
    pub fn reconnect_failed(&mut self, now: Instant) {
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
        self.reconnect_at = now + self.backoff;
    }

    /// Connected again at `now`: the next loss waits the shortest backoff
    /// unless it comes within [`STABLE_CONNECTION`].
    pub fn connected(&mut self, now: Instant) {
        self.connected_at = Some(now);
    }
}

#[cfg(test)]
mod tests;
