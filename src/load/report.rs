//! What a load run measured: a table for people, `key=value` lines for harnesses.

use super::histogram::Histogram;
use crate::protocol::UserId;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

/// The figures of one load run.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Connections asked for.
    pub target: usize,
    /// Connections ready at the end of setup.
    pub connected: usize,
    /// Connections still ready at the end of the measure phase.
    pub held: usize,
    /// Setup time (first connect to last Welcome or give-up).
    pub setup: Duration,
    /// Hello → Welcome round trips.
    pub handshake: Histogram,
    /// Length of the measure phase actually run.
    pub measured: Duration,
    /// Pull → last ChangeBatch round trips during the measure phase.
    pub pull: Histogram,
    /// FileBegin → PushAck round trips during the measure phase.
    pub push: Histogram,
    /// Pulls that were due while the previous one was still unanswered.
    pub late_pulls: u64,
    /// Errors by cause (connect, closed, `Error` codes, timeouts, bad frames).
    pub errors: BTreeMap<String, u64>,
    /// The users the connections belonged to (created or given).
    pub user_ids: Vec<UserId>,
    /// The same figures per shard, keyed by the shard tag of the user
    /// (PROTOCOL.md §16.1: the shard that made the user; behind HAProxy,
    /// the shard that serves it unless it was moved).
    pub shards: BTreeMap<u8, ShardFigures>,
}

/// What one shard's connections measured.
#[derive(Debug, Clone, Default)]
pub struct ShardFigures {
    /// Users of this shard among the run's users.
    pub users: usize,
    /// Connections that completed their handshake.
    pub connected: usize,
    /// Pull round trips during the measure phase.
    pub pull: Histogram,
    /// Push round trips during the measure phase.
    pub push: Histogram,
    /// Error frames received on its connections.
    pub errors: u64,
}

fn ms(micros: u64) -> String {
    format!("{:.2}", micros as f64 / 1000.0)
}

impl Report {
    /// All errors added up.
    pub fn error_total(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Completed pulls per second over the measure phase.
    pub fn pulls_per_sec(&self) -> f64 {
        let secs = self.measured.as_secs_f64();
        if secs > 0.0 {
            self.pull.count() as f64 / secs
        } else {
            0.0
        }
    }

    /// A Markdown table of every figure.
    pub fn table(&self) -> String {
        let mut t = String::from("| figure | value |\n|---|---|\n");
        let errors = if self.errors.is_empty() {
            "0".to_owned()
        } else {
            let parts: Vec<String> = self
                .errors
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            format!("{} ({})", self.error_total(), parts.join(", "))
        };
        let rows: [(&str, String); 12] = [
            (
                "connections held (end / after setup / asked)",
                format!("{} / {} / {}", self.held, self.connected, self.target),
            ),
            ("setup time (s)", format!("{:.1}", self.setup.as_secs_f64())),
            (
                "handshake p50 / p99 / max (ms)",
                format!(
                    "{} / {} / {}",
                    ms(self.handshake.quantile(0.5)),
                    ms(self.handshake.quantile(0.99)),
                    ms(self.handshake.max())
                ),
            ),
            (
                "measure phase (s)",
                format!("{:.1}", self.measured.as_secs_f64()),
            ),
            ("pulls completed", self.pull.count().to_string()),
            ("pulls/s", format!("{:.0}", self.pulls_per_sec())),
            ("pull round trip p50 (ms)", ms(self.pull.quantile(0.5))),
            ("pull round trip p99 (ms)", ms(self.pull.quantile(0.99))),
            ("pull round trip max (ms)", ms(self.pull.max())),
            (
                "pushes completed, p50 / p99 (ms)",
                format!(
                    "{}, {} / {}",
                    self.push.count(),
                    ms(self.push.quantile(0.5)),
                    ms(self.push.quantile(0.99))
                ),
            ),
            (
                "late pulls (previous one unanswered)",
                self.late_pulls.to_string(),
            ),
            ("errors", errors),
        ];
        for (k, v) in rows {
            let _ = writeln!(t, "| {k} | {v} |");
        }
        if self.shards.len() > 1 {
            t.push_str(&self.shard_table());
        }
        t
    }

    /// Per shard (by user tag, PROTOCOL.md §16.1): users, connections,
    /// pulls/s and pull round trips, pushes, errors.
    pub fn shard_table(&self) -> String {
        let secs = self.measured.as_secs_f64();
        let mut t = String::from(
            "\n| shard (user tag) | users | connections | pulls/s | pull p50 / p99 (ms) | pushes, p50 (ms) | errors |\n|---|---|---|---|---|---|---|\n",
        );
        for (tag, f) in &self.shards {
            let rate = if secs > 0.0 {
                f.pull.count() as f64 / secs
            } else {
                0.0
            };
            let _ = writeln!(
                t,
                "| {tag:02x} | {} | {} | {rate:.0} | {} / {} | {}, {} | {} |",
                f.users,
                f.connected,
                ms(f.pull.quantile(0.5)),
                ms(f.pull.quantile(0.99)),
                f.push.count(),
                ms(f.push.quantile(0.5)),
                f.errors
            );
        }
        t
    }

    /// `key=value` lines; histograms in [`Histogram::to_text`] form so a
    /// harness can merge the reports of several load processes.
    pub fn to_kv(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "target={}", self.target);
        let _ = writeln!(s, "connected={}", self.connected);
        let _ = writeln!(s, "held={}", self.held);
        let _ = writeln!(s, "setup_ms={}", self.setup.as_millis());
        let _ = writeln!(s, "measured_ms={}", self.measured.as_millis());
        let _ = writeln!(s, "late_pulls={}", self.late_pulls);
        let _ = writeln!(s, "errors={}", self.error_total());
        for (k, v) in &self.errors {
            let _ = writeln!(s, "error.{k}={v}");
        }
        let _ = writeln!(s, "handshake_hist={}", self.handshake.to_text());
        let _ = writeln!(s, "pull_hist={}", self.pull.to_text());
        let _ = writeln!(s, "push_hist={}", self.push.to_text());
        s
    }

    /// Reads [`Report::to_kv`]'s output back (unknown keys are ignored).
    pub fn from_kv(text: &str) -> Report {
        let mut r = Report::default();
        for line in text.lines() {
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            let n = || v.trim().parse::<u64>().unwrap_or(0);
            match k {
                "target" => r.target = n() as usize,
                "connected" => r.connected = n() as usize,
                "held" => r.held = n() as usize,
                "setup_ms" => r.setup = Duration::from_millis(n()),
                "measured_ms" => r.measured = Duration::from_millis(n()),
                "late_pulls" => r.late_pulls = n(),
                "handshake_hist" => r.handshake = Histogram::from_text(v).unwrap_or_default(),
                "pull_hist" => r.pull = Histogram::from_text(v).unwrap_or_default(),
                "push_hist" => r.push = Histogram::from_text(v).unwrap_or_default(),
                _ => {
                    if let Some(cause) = k.strip_prefix("error.") {
                        r.errors.insert(cause.to_owned(), n());
                    }
                }
            }
        }
        r
    }

    /// Combines the reports of load processes that ran side by side.
    pub fn merge(&mut self, other: &Report) {
        self.target += other.target;
        self.connected += other.connected;
        self.held += other.held;
        self.setup = self.setup.max(other.setup);
        self.measured = self.measured.max(other.measured);
        self.late_pulls += other.late_pulls;
        self.handshake.merge(&other.handshake);
        self.pull.merge(&other.pull);
        self.push.merge(&other.push);
        for (k, v) in &other.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
        for (tag, f) in &other.shards {
            let mine = self.shards.entry(*tag).or_default();
            mine.users += f.users;
            mine.connected += f.connected;
            mine.pull.merge(&f.pull);
            mine.push.merge(&f.push);
            mine.errors += f.errors;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_get_a_row_each_and_merge() {
        let mut a = Report {
            measured: Duration::from_secs(2),
            ..Report::default()
        };
        for (tag, pulls) in [(0u8, 4u64), (2, 6)] {
            let f = a.shards.entry(tag).or_default();
            f.users = 1;
            f.connected = 2;
            for i in 0..pulls {
                f.pull.record(1000 * (i + 1));
            }
        }
        let table = a.table();
        assert!(table.contains("| 00 | 1 | 2 | 2 |"), "{table}");
        assert!(table.contains("| 02 | 1 | 2 | 3 |"), "{table}");
        let b = a.clone();
        a.merge(&b);
        assert_eq!(a.shards[&2].connected, 4);
        assert_eq!(a.shards[&2].pull.count(), 12);
        // One shard: no per-shard table.
        a.shards.remove(&0);
        assert!(!a.table().contains("user tag"));
    }
}
