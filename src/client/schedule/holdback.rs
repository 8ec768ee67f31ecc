//! Paths held back after a failure that may pass (a full disk): an upload
//! the server refused with `Storage` (PROTOCOL.md §4.5, R-5.6.8), or a
//! download this device could not write (no space left, an I/O error) or
//! whose bytes did not match the hash the server announced.
//! Only that path waits, with a delay growing from [`FIRST_DELAY`],
//! doubled at each failure, to at most [`MAX_DELAY`]; everything else
//! goes on. A retry that succeeds ends the hold. Decisions only (no I/O,
//! the clock passed in), tested in [`tests`](self).
//!
//! The session keeps two: one for pushes (`PushState::space`), one for
//! downloads (`PullState::space`).

use crate::protocol::WirePath;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The wait after the first failure of a path.
pub const FIRST_DELAY: Duration = Duration::from_secs(5);
/// The longest wait between two tries of a path.
pub const MAX_DELAY: Duration = Duration::from_secs(300);

/// The wait after the `failures`-th failure in a row (1-based):
/// 5 s, 10 s, 20 s, … 300 s.
pub fn delay(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    FIRST_DELAY.saturating_mul(1 << doublings).min(MAX_DELAY)
}

/// One held path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// Failures in a row.
    pub failures: u32,
    /// Not tried again before this.
    pub next_try: Instant,
    /// What the last failure said (for the log and the status).
    pub reason: String,
    /// Its wait is over and it was handed out for a try ([`HoldBack::take_due`]).
    pub trying: bool,
}

/// The held paths.
#[derive(Debug, Default, Clone)]
pub struct HoldBack {
    held: BTreeMap<WirePath, Held>,
}

impl HoldBack {
    /// `path` failed at `now` for `reason`: held (again) for the next
    /// delay, which is returned.
    pub fn failed(&mut self, path: &WirePath, reason: &str, now: Instant) -> Duration {
        let failures = self.held.get(path).map_or(0, |h| h.failures) + 1;
        let wait = delay(failures);
        self.held.insert(
            path.clone(),
            Held {
                failures,
                next_try: now + wait,
                reason: reason.to_owned(),
                trying: false,
            },
        );
        wait
    }

    /// `path` went through (or there is nothing left to try): no longer held.
    pub fn succeeded(&mut self, path: &WirePath) -> bool {
        self.held.remove(path).is_some()
    }

    /// Whether a change of `path` must wait at `now`: it, or a path it
    /// contains or is contained in, is held and its wait is not over.
    pub fn blocks(&self, path: &WirePath, now: Instant) -> bool {
        self.held
            .iter()
            .filter(|(_, h)| now < h.next_try)
            .any(|(held, _)| related(held, path))
    }

    /// The held paths whose wait is over and that were not handed out yet;
    /// each is marked as being tried.
    pub fn take_due(&mut self, now: Instant) -> Vec<WirePath> {
        self.held
            .iter_mut()
            .filter(|(_, h)| !h.trying && now >= h.next_try)
            .map(|(path, h)| {
                h.trying = true;
                path.clone()
            })
            .collect()
    }

    /// The paths being tried (their wait was over when `take_due` handed
    /// them out, and they have not failed again since).
    pub fn trying(&self) -> impl Iterator<Item = &WirePath> {
        self.held
            .iter()
            .filter(|(_, h)| h.trying)
            .map(|(path, _)| path)
    }

    /// The soonest end of a wait not yet handed out.
    pub fn next_due(&self) -> Option<Instant> {
        self.held
            .values()
            .filter(|h| !h.trying)
            .map(|h| h.next_try)
            .min()
    }

    /// Every held path with its state.
    pub fn iter(&self) -> impl Iterator<Item = (&WirePath, &Held)> {
        self.held.iter()
    }

    /// Nothing is held.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }
}

/// `a` and `b` are the same path, or one is a directory holding the other.
fn related(a: &WirePath, b: &WirePath) -> bool {
    let (a, b) = (a.as_str(), b.as_str());
    let under = |inner: &str, outer: &str| {
        inner.len() > outer.len()
            && inner.starts_with(outer)
            && inner.as_bytes().get(outer.len()) == Some(&b'/')
    };
    a == b || under(a, b) || under(b, a)
}

#[cfg(test)]
mod tests;
