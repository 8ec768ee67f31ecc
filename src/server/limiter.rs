//! Slows down guessing of user IDs, join codes and invites (PROTOCOL.md
//! §2.2, R-2.2.4): an address that fails too many handshakes is refused
//! with the retryable Error `TooManyAttempts` for a while, without a lookup.
//!
//! Refused attempts do not count as failures, so the refusal ends
//! [`WINDOW`] after the last real failure even while clients behind the
//! address keep retrying (a legitimate client retrying every 30 s would
//! otherwise keep its own address refused forever). A device presenting a
//! non-zero 256-bit device key is not refused by the reactor: its actor
//! admits it only if the key matches (see `on_hello`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Failed handshakes allowed per address within one window.
pub const MAX_FAILURES: u32 = 10;
/// The window, and how long an address stays refused after its last failure.
pub const WINDOW: Duration = Duration::from_secs(60);

/// Counts failed handshakes per peer address.
#[derive(Default)]
pub struct GuessLimiter {
    failures: HashMap<IpAddr, (u32, Instant)>,
}

impl GuessLimiter {
    /// Records a failed handshake from `ip`. A failure while `ip` is
    /// refused is not counted (it was refused without a lookup).
    pub fn record_failure(&mut self, ip: IpAddr, now: Instant) {
        if self.is_blocked(ip, now) {
            return;
        }
        let entry = self.failures.entry(ip).or_insert((0, now));
        if now.duration_since(entry.1) > WINDOW {
            *entry = (0, now);
        }
        entry.0 += 1;
        entry.1 = now;
    }

    /// Whether `ip` is refused now.
    pub fn is_blocked(&self, ip: IpAddr, now: Instant) -> bool {
        self.retry_after(ip, now).is_some()
    }

    /// How long `ip` stays refused (`None`: it is not refused), at most
    /// [`WINDOW`].
    pub fn retry_after(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        match self.failures.get(&ip) {
            Some((count, last)) if *count >= MAX_FAILURES => {
                let since = now.duration_since(*last);
                (since <= WINDOW).then(|| WINDOW - since)
            }
            _ => None,
        }
    }

    /// Forgets addresses whose window has passed.
    pub fn expire(&mut self, now: Instant) {
        self.failures
            .retain(|_, (_, last)| now.duration_since(*last) <= WINDOW);
    }
}

/// The text of a `TooManyAttempts` refusal: the wait in whole seconds
/// (rounded up), for people; clients do not parse it.
pub fn refusal_text(wait: Duration) -> String {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    format!("too many failed attempts from this address; retry in {secs} s")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_the_limit_and_forgives_later() {
        let mut limiter = GuessLimiter::default();
        let ip: IpAddr = "127.0.0.9".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..MAX_FAILURES - 1 {
            limiter.record_failure(ip, t0);
        }
        assert!(!limiter.is_blocked(ip, t0));
        limiter.record_failure(ip, t0);
        assert!(limiter.is_blocked(ip, t0));
        assert_eq!(limiter.retry_after(ip, t0), Some(WINDOW));
        assert!(!limiter.is_blocked(ip, t0 + WINDOW + Duration::from_secs(1)));
    }

    #[test]
    fn attempts_while_refused_do_not_extend_the_refusal() {
        let mut limiter = GuessLimiter::default();
        let ip: IpAddr = "127.0.0.9".parse().unwrap();
        let other: IpAddr = "127.0.0.10".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..MAX_FAILURES {
            limiter.record_failure(ip, t0);
        }
        // A client retrying every 5 s through the whole window.
        let mut t = t0;
        while t < t0 + WINDOW {
            t += Duration::from_secs(5);
            limiter.record_failure(ip, t);
        }
        let after = t0 + WINDOW + Duration::from_millis(1);
        assert!(!limiter.is_blocked(ip, after));
        assert_eq!(
            limiter.retry_after(ip, t0 + Duration::from_secs(45)),
            Some(Duration::from_secs(15))
        );
        assert!(!limiter.is_blocked(other, t0));
        assert_eq!(
            refusal_text(Duration::from_millis(14_200)),
            "too many failed attempts from this address; retry in 15 s"
        );
    }
}
