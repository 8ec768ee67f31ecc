//! Slows down user-ID guessing: an address that names unknown users too often
//! is refused without a lookup for a while.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Failed handshakes allowed per address within one window.
pub const MAX_FAILURES: u32 = 10;
/// The window, and how long an address stays refused after reaching the limit.
pub const WINDOW: Duration = Duration::from_secs(60);

/// Counts failed handshakes per peer address.
#[derive(Default)]
pub struct GuessLimiter {
    failures: HashMap<IpAddr, (u32, Instant)>,
}

impl GuessLimiter {
    /// Records a failed handshake from `ip`.
    pub fn record_failure(&mut self, ip: IpAddr, now: Instant) {
        let entry = self.failures.entry(ip).or_insert((0, now));
        if now.duration_since(entry.1) > WINDOW {
            *entry = (0, now);
        }
        entry.0 += 1;
        entry.1 = now;
    }

    /// Whether `ip` is refused now.
    pub fn is_blocked(&self, ip: IpAddr, now: Instant) -> bool {
        matches!(self.failures.get(&ip),
            Some((count, last)) if *count >= MAX_FAILURES && now.duration_since(*last) <= WINDOW)
    }

    /// Forgets addresses whose window has passed.
    pub fn expire(&mut self, now: Instant) {
        self.failures
            .retain(|_, (_, last)| now.duration_since(*last) <= WINDOW);
    }
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
        assert!(!limiter.is_blocked(ip, t0 + WINDOW + Duration::from_secs(1)));
    }
}
