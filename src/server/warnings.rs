//! How often the operator's terminal hears about one user's storage
//! refusals: at most once per [`STORAGE_WARN_EVERY`] per user, whatever the
//! number of refused requests (a device retrying a push that does not fit
//! must not flood stderr). Every refusal still gets its own
//! `connectionLog.txt` line (`outcome=error`). Shared by the actor threads
//! (a user's actor may retire and a new one start within the minute), so
//! the last warning time lives here, behind a lock taken only on a refusal.

use crate::protocol::UserId;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// At most one stderr warning per user this often.
pub const STORAGE_WARN_EVERY: Duration = Duration::from_secs(60);

/// The last storage warning per user (only users warned within the last
/// [`STORAGE_WARN_EVERY`] are kept).
#[derive(Debug, Default)]
pub struct WarnLimiter {
    last: Mutex<HashMap<UserId, Instant>>,
}

/// Whether a warning at `now` may be written when the last one was at `last`.
pub fn due(last: Option<Instant>, now: Instant) -> bool {
    last.is_none_or(|t| now.saturating_duration_since(t) >= STORAGE_WARN_EVERY)
}

impl WarnLimiter {
    /// Whether `user` may be warned about at `now`; if so, `now` is recorded.
    /// Entries older than [`STORAGE_WARN_EVERY`] are dropped on the way, so
    /// the map holds only users refused in the last minute.
    pub fn allow(&self, user: UserId, now: Instant) -> bool {
        // A poisoned lock only means another actor panicked mid-insert:
        // the map is still a valid map.
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if !due(last.get(&user).copied(), now) {
            return false;
        }
        last.retain(|_, t| !due(Some(*t), now));
        last.insert(user, now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_warning_per_user_per_minute() {
        let limiter = WarnLimiter::default();
        let (a, b) = (UserId([1; 16]), UserId([2; 16]));
        let t0 = Instant::now();
        assert!(limiter.allow(a, t0));
        assert!(!limiter.allow(a, t0 + Duration::from_secs(1)));
        assert!(limiter.allow(b, t0 + Duration::from_secs(1)), "per user");
        assert!(!limiter.allow(a, t0 + Duration::from_secs(59)));
        assert!(limiter.allow(a, t0 + STORAGE_WARN_EVERY));
        assert!(!limiter.allow(a, t0 + STORAGE_WARN_EVERY + Duration::from_secs(30)));
        // Stale entries are dropped: only the users of the last minute stay.
        assert!(limiter.allow(b, t0 + Duration::from_secs(200)));
        assert_eq!(limiter.last.lock().unwrap().len(), 1);
    }

    #[test]
    fn due_table() {
        let t = Instant::now();
        assert!(due(None, t));
        assert!(!due(Some(t), t));
        assert!(!due(
            Some(t),
            t + STORAGE_WARN_EVERY - Duration::from_millis(1)
        ));
        assert!(due(Some(t), t + STORAGE_WARN_EVERY));
        // A clock that went back (never for Instant, but harmless): no warning.
        assert!(!due(Some(t + Duration::from_secs(5)), t));
    }
}
