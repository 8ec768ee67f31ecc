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
    /// `path` failed at `now` for `reason`. A try (the path was not held,
    /// or its wait is over) holds it (again) for the next delay, which is
    /// returned: the caller announces it, once. A failure while the
    /// announced wait runs (a route the hold does not stop failed again:
    /// a download placed from a local copy, tried at every pull because it
    /// costs no transfer) keeps that wait and its count, so the delay grows
    /// once per try, not per pull (outside tester breaker26 F1): only the
    /// reason is updated, and `None` says there is nothing new to announce.
    pub fn failed(&mut self, path: &WirePath, reason: &str, now: Instant) -> Option<Duration> {
        if let Some(h) = self
            .held
            .get_mut(path)
            .filter(|h| !h.trying && now < h.next_try)
        {
            reason.clone_into(&mut h.reason);
            return None;
        }
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
        Some(wait)
    }

    /// `path` went through, by whatever route (or there is nothing left to
    /// try): no longer held.
    pub fn succeeded(&mut self, path: &WirePath) -> bool {
        self.held.remove(path).is_some()
    }

    /// A pull ended: which held paths are no longer held, released here.
    /// Not one that failed again in it (`failed`). Released: a path
    /// placed by it by whatever route (`placed`: a download whose wait
    /// was over, a copy of local content tried at every pull), one handed
    /// out for a try ([`Self::take_due`]) that did not fail, and, when
    /// the pull applied everything (`complete`: nothing failed, nothing
    /// left waiting), every other one too: the server's change to it is
    /// in place or gone (deleted or moved since), so it is in sync. A path
    /// kept held until its timer fired although it was in place, the
    /// status said "not in sync" for 5 minutes (outside tester breaker26
    /// F1).
    pub fn after_pull(
        &mut self,
        failed: &std::collections::HashSet<&WirePath>,
        placed: &[WirePath],
        complete: bool,
    ) -> Vec<WirePath> {
        let placed: std::collections::HashSet<&WirePath> = placed.iter().collect();
        let released: Vec<WirePath> = self
            .held
            .iter()
            .filter(|(p, _)| !failed.contains(p))
            .filter(|(p, h)| complete || h.trying || placed.contains(p))
            .map(|(p, _)| p.clone())
            .collect();
        for path in &released {
            self.held.remove(path);
        }
        released
    }

    /// Why `path` waits at `now`, if its wait (or a relative's) is not over:
    /// the held path and the reason its last failure gave.
    pub fn blocked_by(&self, path: &WirePath, now: Instant) -> Option<(&WirePath, &str)> {
        self.held
            .iter()
            .filter(|(_, h)| now < h.next_try)
            .find(|(held, _)| related(held, path))
            .map(|(held, h)| (held, h.reason.as_str()))
    }

    /// Whether a change of `path` must wait at `now`: it, or a path it
    /// contains or is contained in, is held and its wait is not over.
    pub fn blocks(&self, path: &WirePath, now: Instant) -> bool {
        self.blocked_by(path, now).is_some()
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

    /// Room came back on this device's disk (the client's index, which a
    /// full disk kept from being saved, is saved again): every wait not
    /// over ends at `now`, so what waited for room is tried at the next
    /// pull, not up to 5 minutes later (outside tester breaker27 F1: in
    /// sync 80 s after the user freed room). The failures counted stay: a
    /// path that fails again waits the next, longer delay. Returns how many
    /// waits it ended.
    pub fn wake(&mut self, now: Instant) -> usize {
        let mut woken = 0;
        for h in self
            .held
            .values_mut()
            .filter(|h| !h.trying && now < h.next_try)
        {
            h.next_try = now;
            woken += 1;
        }
        woken
    }

    /// Whether `path` itself is held (whether or not its wait is over).
    pub fn holds(&self, path: &WirePath) -> bool {
        self.held.contains_key(path)
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
