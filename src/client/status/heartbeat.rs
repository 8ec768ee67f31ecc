//! The running client's heartbeat: proof for `cloud-client status` that the
//! process holding the lock on `.cloudservice/running` still makes progress.
//!
//! The lock says a process exists; it says nothing about whether it works. A
//! client frozen (SIGSTOP, a deadlock, a read stuck on a dead network file
//! system, swapped to death) keeps the lock and its last `status.json`, which
//! may say "in sync" while changes pile up on both sides. So the client sets
//! the modification time of the lock file to now every [`BEAT_EVERY`], and
//! `status` calls a client whose beat is older than [`SILENT_AFTER`] "not
//! responding".
//!
//! Where the beat comes from, and why: **from the work itself, never from a
//! thread of its own.** The session loop beats at each turn (it wakes at
//! least every [`BEAT_EVERY`] for it), and the long steps that keep the loop
//! from turning beat as they advance: each entry a scan walks, each
//! megabyte a scan hashes, each wait between connection attempts at start.
//! Sends and waits for a reply are cut into slices of half a second
//! ([`crate::client::sliced`]) with a beat after each, blocked or not: a
//! client waiting on the network watches it (its liveness rule runs between
//! the slices and gives a silent connection up, and `status` says "waiting
//! for the server"), so it is not hung (outside tester breaker18 F1, F2: a
//! send blocked on a silent or 160 kbit/s link was "not responding"). A
//! client whose one read of a file (a dead network file system) has not
//! returned for [`SILENT_AFTER`] stops beating and is reported — which is
//! true: nothing moves. A "busy" state would not tell a slow step from a
//! stuck one; a beat per unit of progress, or per slice of a watched wait,
//! does. Not beating yet (a known gap): building
//! a delta download from local chunks and re-chunking a file for a delta
//! upload past the scanner's kept lists; at disk speed these outlast
//! [`SILENT_AFTER`] only for files of several GiB.
//!
//! Cost, measured on an idle client (`strace -c` over 60 s, README
//! "Status"): one `utimensat` every [`BEAT_EVERY`] on a file already open
//! (29 calls in 60 s, about 9 µs each; CPU 0.03 s, as without it) — no data
//! written, no file created or renamed (rewriting `status.json` each time
//! would create, write and rename a file).
//!
//! The lock file holds the client's process ID, as decimal digits and a
//! newline, written when it takes the lock. A lock file without one was
//! taken by a client older than the heartbeat: its age says nothing
//! ([`Liveness::Unknown`]).

use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// How often the running client beats (at most; a step that advances beats
/// no more often than this either).
pub const BEAT_EVERY: Duration = Duration::from_secs(2);
/// A beat older than this (five periods: room for a loaded machine to
/// schedule the client late) makes the client "not responding".
pub const SILENT_AFTER: Duration = Duration::from_secs(10);

/// The lock file's clock hand; cheap to clone (one shared file). Beating is
/// best effort: a failure to set the time is logged once at debug level
/// and costs nothing else (`status` will then call the client silent, which
/// is the cautious answer).
#[derive(Debug, Clone)]
pub struct Heartbeat {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// The lock file, open for writing (its lock held by this descriptor).
    file: File,
    /// When the last beat was given.
    last: Mutex<Instant>,
}

impl Heartbeat {
    /// Starts beating on the lock file `lock` (held, [`super::lock_running`]):
    /// writes this process's ID into it, which is the first beat.
    ///
    /// # Errors
    /// Writing the process ID.
    pub fn start(lock: OwnedFd) -> io::Result<Heartbeat> {
        let mut file = File::from(lock);
        file.set_len(0)?;
        file.rewind()?;
        file.write_all(format!("{}\n", std::process::id()).as_bytes())?;
        file.set_modified(SystemTime::now())?;
        Ok(Heartbeat {
            inner: Arc::new(Inner {
                file,
                last: Mutex::new(Instant::now()),
            }),
        })
    }

    /// Beats if the last beat is [`BEAT_EVERY`] old: a clock read and a
    /// comparison otherwise, so it may be called at every step of a loop.
    pub fn beat_if_due(&self) {
        let now = Instant::now();
        let Ok(mut last) = self.inner.last.lock() else {
            return;
        };
        if now.saturating_duration_since(*last) < BEAT_EVERY {
            return;
        }
        *last = now;
        if let Err(e) = self.inner.file.set_modified(SystemTime::now()) {
            log::debug!("cannot beat the heartbeat: {e}");
        }
    }

    /// How long until the next beat is due, from `now` (zero when it is).
    pub fn due_in(&self, now: Instant) -> Duration {
        let Ok(last) = self.inner.last.lock() else {
            return Duration::ZERO;
        };
        (*last + BEAT_EVERY).saturating_duration_since(now)
    }
}

/// A reader that beats `heart` as it reads (a long hash advances).
pub struct Beating<'a, R> {
    /// What is read.
    pub inner: R,
    /// Beaten at each read.
    pub heart: Option<&'a Heartbeat>,
}

impl<R: Read> Read for Beating<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(heart) = self.heart {
            heart.beat_if_due();
        }
        self.inner.read(buf)
    }
}

/// What the lock file tells of the client holding it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pulse {
    /// The process ID written into it.
    pub pid: u32,
    /// Its modification time: the last beat.
    pub last_beat: SystemTime,
}

/// Reads the pulse from the lock file at `path`; `None` when it cannot be
/// read or holds no process ID (no client with a heartbeat took it).
pub fn read_pulse(path: &std::path::Path) -> Option<Pulse> {
    let mut file = File::open(path).ok()?;
    let mut text = String::new();
    Read::by_ref(&mut file)
        .take(32)
        .read_to_string(&mut text)
        .ok()?;
    let pid = text.trim().parse().ok()?;
    let last_beat = file.metadata().ok()?.modified().ok()?;
    Some(Pulse { pid, last_beat })
}

/// Whether a running client shows signs of life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// It beat less than [`SILENT_AFTER`] ago (or the clock went back
    /// since its last beat: a time in the future is taken as now).
    Responding,
    /// Its last beat is `for_secs` seconds old, more than [`SILENT_AFTER`].
    Silent {
        /// Whole seconds since the last beat.
        for_secs: u64,
    },
    /// No beat to judge by: a client older than the heartbeat holds the
    /// lock (its lock file names no process).
    Unknown,
}

/// Judges a running client's `pulse` at the time `now` (no I/O).
pub fn judge(pulse: Option<Pulse>, now: SystemTime) -> Liveness {
    let Some(pulse) = pulse else {
        return Liveness::Unknown;
    };
    match now.duration_since(pulse.last_beat) {
        Ok(age) if age > SILENT_AFTER => Liveness::Silent {
            for_secs: age.as_secs(),
        },
        _ => Liveness::Responding,
    }
}
