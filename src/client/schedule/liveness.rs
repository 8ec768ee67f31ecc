//! The one liveness rule of a connection, the same in every
//! phase: idle, pulling, uploading, downloading, first sync. Decisions
//! only: the connection keeps the instants ([`crate::client::link_watch`]),
//! this says what they mean.
//!
//! The session waits for the server when it sent something that calls for
//! an answer: a ping (answered by a Pong), a request (a pull's reply, a
//! fetch's chunks, a push's acknowledgement), or bytes that sit in the
//! kernel's send queue unacknowledged (a send that cannot go on: the
//! server's host takes nothing). Anything from the server — a byte of a
//! frame, or its host acknowledging a backlog of this side's bytes — is an
//! answer and starts the wait again. So:
//!
//! - after [`ANSWER_WAIT`] of waiting with nothing heard, `status` says
//!   "waiting for the server: no answer for N s" (not in sync: the server's
//!   changes may wait behind it), whatever the phase;
//! - after [`DEAD_AFTER`] (plus [`CHECK_BYTES_PER_S`] for uploads the
//!   server checks before it answers) of a probe — a ping, or a backlog —
//!   waiting with nothing heard, the connection is given up and made again.
//!   A send blocked on a silent link is such a probe, so an upload is given
//!   up on the same clock as an idle connection, not after a per-send
//!   timeout that starts again (outside tester breaker18 F1).

use super::{CHECK_BYTES_PER_S, DEAD_AFTER};
use std::time::{Duration, Instant};

/// `status` says the session waits for the server once an answer has been
/// awaited this long with nothing heard (breaker18 F3, F9: a pull or a
/// download unanswered was "in sync" or "pulling" for a minute).
pub const ANSWER_WAIT: Duration = Duration::from_secs(5);

/// What the connection waits for, and when it last heard the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Waits {
    /// The last sign of the server: a byte read, a frame taken, or its
    /// host acknowledging a backlog of this side's bytes.
    pub heard: Instant,
    /// When the oldest unanswered ping went.
    pub ping: Option<Instant>,
    /// Since when bytes sent sit unacknowledged in the send queue.
    pub backlog: Option<Instant>,
    /// Since when a reply (a pull's, a fetch's, a push's answer) is awaited.
    pub request: Option<Instant>,
    /// Bytes of uploads sent and awaiting their answers (the server checks
    /// them first, R-3.4.8).
    pub checking: u64,
}

/// What [`judge`] says of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// Nothing awaited, or not for [`ANSWER_WAIT`] yet.
    Alive,
    /// An answer has been awaited this long, nothing heard meanwhile.
    Waiting(Duration),
    /// A probe waited past [`allowance`] with nothing heard: give the
    /// connection up. Holds the silence since the server was last heard.
    Dead(Duration),
}

/// How long a probe may wait unanswered before the connection is given
/// up: [`DEAD_AFTER`], plus 1 s per [`CHECK_BYTES_PER_S`] of uploads the
/// server checks before it answers (their answers, and the Pong behind
/// them, come only after that).
pub fn allowance(checking: u64) -> Duration {
    DEAD_AFTER + Duration::from_secs(checking / CHECK_BYTES_PER_S)
}

/// Judges `w` at `now`. A wait counts from the later of its start and the
/// last sign of the server; the status wait from the oldest of the three
/// waits, the give-up from the oldest probe (a ping or a backlog: a request
/// alone does not end a connection, its ping does, [`super::PROBE_AFTER`]).
pub fn judge(w: &Waits, now: Instant) -> Liveness {
    let probe = earliest(w.ping, w.backlog);
    if let Some(p) = probe {
        if now.saturating_duration_since(p.max(w.heard)) >= allowance(w.checking) {
            return Liveness::Dead(now.saturating_duration_since(w.heard));
        }
    }
    match earliest(probe, w.request) {
        Some(since) => {
            let waited = now.saturating_duration_since(since.max(w.heard));
            if waited >= ANSWER_WAIT {
                Liveness::Waiting(waited)
            } else {
                Liveness::Alive
            }
        }
        None => Liveness::Alive,
    }
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The log line (and `status` last error) of a connection given up by
/// [`judge`] after `silent` without a sign of the server. The session adds
/// when it dials again ("; reconnecting in 0.5 s"): said once, not twice.
pub fn dead_line(silent: Duration) -> String {
    format!(
        "no answer from the server for {} s, not even to a ping or to the data sent: connection given up",
        silent.as_secs()
    )
}

/// What `status` says while [`judge`] says [`Liveness::Waiting`].
pub fn waiting_line(waited: Duration) -> String {
    format!(
        "{} {} s",
        crate::client::status::WAITING_FOR_SERVER,
        waited.as_secs()
    )
}
