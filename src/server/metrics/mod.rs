//! What an operator can see inside a running server: every metric, in one
//! list ([`Metrics::new`]), exported in the Prometheus/OpenMetrics text
//! format by [`http`] when `cloud-server --metrics ADDR` is given.
//!
//! The reactor, the actors and the store update the handles through
//! [`metrics()`]: each update is one atomic add on a handle resolved at
//! start-up (no label lookup, no lock), so the reactor's hot path does not
//! wait. The two journal latency histograms take the crate's uncontended
//! lock once per journal flush, on an actor thread, next to a write(2).
//! Gauges (connections by phase, live actors) are sampled by the reactor's
//! sweep, every 0.5 s.
//!
//! The handles are process-wide (one server per process): threading a
//! handle through every constructor would touch every module for no gain.

pub mod http;

use crate::protocol::ErrorCode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};
use std::sync::LazyLock;
use std::time::Duration;

/// Request kinds as `connectionLog.txt` names them (`request=`), in the
/// order README "connectionLog.txt" lists them (a unit test compares);
/// anything else is counted as `other`.
pub const REQUESTS: [&str; 27] = [
    "new-user",
    "new-client",
    "resume",
    "visit",
    "hello",
    "pull",
    "ack",
    "fetch",
    "fetch-manifest",
    "fetch-chunks",
    "push-file",
    "push-mkdir",
    "push-delete",
    "push-rmdir",
    "push-rename",
    "push-mode",
    "versions",
    "restore",
    "lost",
    "restore-lost",
    "frame",
    "tls",
    "connect",
    "timeout",
    "revoke",
    "move",
    "proxy",
];

/// Label values of `cloudservice_connections{phase}` (PROTOCOL.md §9).
pub const PHASES: [&str; 4] = ["await_hello", "joining", "ready", "closing"];

/// Label values of `cloudservice_errors_sent_total{code}`, in
/// [`code_index`] order.
pub const ERROR_CODES: [&str; 22] = [
    "BadFrame",
    "BadPath",
    "WrongPhase",
    "UnknownUser",
    "UnknownClient",
    "HashMismatch",
    "SizeMismatch",
    "Busy",
    "Storage",
    "Timeout",
    "NotFound",
    "ShuttingDown",
    "Unstorable",
    "NoSuchVersion",
    "Revoked",
    "BadCredential",
    "WrongShard",
    "Moving",
    "TooManyAttempts",
    "DeviceInUse",
    "NoSpace",
    "Unknown",
];

type Labels = [(&'static str, &'static str); 1];
type RequestLabels = [(&'static str, &'static str); 2];

/// Every metric handle, resolved once. Names below are without the
/// `cloudservice_` prefix and the `_total`/unit suffixes the exporter adds.
pub struct Metrics {
    registry: Registry,
    /// `requests_total{request, outcome}`: [`REQUESTS`] plus `other`, × ok/error.
    requests: Vec<[Counter; 2]>,
    /// `handshake_failures_total`: a Hello refused (unknown user or client,
    /// storage failure, rate-limited guess).
    pub handshake_failures: Counter,
    /// `refused_connections_total`: accepted and closed at `--max-connections`,
    /// or evicted before their Hello to make room (`reactor/admit.rs`).
    pub refused_connections: Counter,
    /// `tls_failures_total`: connections ended by TLS before their Hello (a
    /// failed or timed-out handshake, a plaintext client on a TLS server or
    /// the reverse): `request=tls` lines.
    pub tls_failures: Counter,
    /// `received_bytes_total`: bytes read from client sockets.
    pub received_bytes: Counter,
    /// `sent_bytes_total`: bytes written to client sockets.
    pub sent_bytes: Counter,
    /// `pushes_applied_total`: pushes answered `Applied`.
    pub pushes_applied: Counter,
    /// `conflicts_total`: pushes stored under a conflict-copy name.
    pub conflicts: Counter,
    /// `errors_sent_total{code}`: Error frames sent, in [`ERROR_CODES`] order.
    errors: Vec<Counter>,
    /// `connections{phase}`: open connections, in [`PHASES`] order.
    connections: Vec<Gauge>,
    /// `actors`: users with a live worker thread.
    pub actors: Gauge,
    /// `journal_write_seconds`: handing buffered journal records to the kernel.
    pub journal_write: Histogram,
    /// `journal_fsync_seconds`: fsync of the journal (`--fsync` only).
    pub journal_fsync: Histogram,
    /// `shard_info{shard}`: 1 for this server's shard number (`--shard`,
    /// PROTOCOL.md §16), or `shard="none"`.
    shard_info: Family<ShardLabels, Gauge>,
}

type ShardLabels = [(&'static str, String); 1];

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

/// Latency buckets: 10 µs to ~5 s, doubling (seconds).
fn latency_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.000_01, 2.0, 20)
}

impl Metrics {
    /// The one list of every metric the server exports.
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("cloudservice");
        let requests_family = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests handled, by kind (as in connectionLog.txt) and outcome",
            requests_family.clone(),
        );
        let requests = REQUESTS
            .iter()
            .chain(std::iter::once(&"other"))
            .map(|&kind| {
                ["ok", "error"].map(|outcome| {
                    requests_family
                        .get_or_create(&[("request", kind), ("outcome", outcome)])
                        .clone()
                })
            })
            .collect();
        let errors_family = Family::<Labels, Counter>::default();
        registry.register(
            "errors_sent",
            "Error frames sent to clients, by protocol error code",
            errors_family.clone(),
        );
        let errors = ERROR_CODES
            .iter()
            .map(|&code| errors_family.get_or_create(&[("code", code)]).clone())
            .collect();
        let connections_family = Family::<Labels, Gauge>::default();
        registry.register(
            "connections",
            "Open client connections by session phase (sampled every 0.5 s)",
            connections_family.clone(),
        );
        let connections = PHASES
            .iter()
            .map(|&phase| {
                connections_family
                    .get_or_create(&[("phase", phase)])
                    .clone()
            })
            .collect();
        let m = Metrics {
            registry,
            requests,
            handshake_failures: Counter::default(),
            refused_connections: Counter::default(),
            tls_failures: Counter::default(),
            received_bytes: Counter::default(),
            sent_bytes: Counter::default(),
            pushes_applied: Counter::default(),
            conflicts: Counter::default(),
            errors,
            connections,
            actors: Gauge::default(),
            journal_write: Histogram::new(latency_buckets()),
            journal_fsync: Histogram::new(latency_buckets()),
            shard_info: Family::default(),
        };
        m.register_rest()
    }

    /// Registers the metrics without labels.
    fn register_rest(mut self) -> Metrics {
        let r = &mut self.registry;
        r.register(
            "handshake_failures",
            "Hellos refused (unknown user or device, storage failure, rate limit)",
            self.handshake_failures.clone(),
        );
        r.register(
            "refused_connections",
            "Connections refused at the connection limit or evicted before their Hello",
            self.refused_connections.clone(),
        );
        r.register(
            "tls_failures",
            "Connections ended by TLS before a Hello (failed or timed-out handshake, transport mismatch)",
            self.tls_failures.clone(),
        );
        r.register_with_unit(
            "received",
            "Bytes read from client sockets",
            Unit::Bytes,
            self.received_bytes.clone(),
        );
        r.register_with_unit(
            "sent",
            "Bytes written to client sockets",
            Unit::Bytes,
            self.sent_bytes.clone(),
        );
        r.register(
            "pushes_applied",
            "Pushes applied as asked (PushAck Applied)",
            self.pushes_applied.clone(),
        );
        r.register(
            "conflicts",
            "Pushes stored as a conflict copy (PushAck Conflict)",
            self.conflicts.clone(),
        );
        r.register(
            "actors",
            "Users with a live worker thread (sampled every 0.5 s)",
            self.actors.clone(),
        );
        r.register_with_unit(
            "journal_write",
            "Time to hand buffered journal records to the kernel",
            Unit::Seconds,
            self.journal_write.clone(),
        );
        r.register_with_unit(
            "journal_fsync",
            "Time to fsync the journal (--fsync)",
            Unit::Seconds,
            self.journal_fsync.clone(),
        );
        r.register(
            "shard_info",
            "This server's shard number (--shard; \"none\" when not sharded), always 1",
            self.shard_info.clone(),
        );
        self
    }

    /// Records the server's shard (`--shard N`) as `shard_info{shard="N"} 1`.
    pub fn set_shard(&self, shard: Option<u8>) {
        let label = shard.map_or_else(|| "none".to_owned(), |n| n.to_string());
        self.shard_info.get_or_create(&[("shard", label)]).set(1);
    }

    /// Counts one request as `connectionLog.txt` records it; a refused
    /// handshake, a refused connection and a TLS failure are also counted
    /// on their own.
    pub fn request(&self, request: &str, ok: bool) {
        let index = REQUESTS
            .iter()
            .position(|&k| k == request)
            .unwrap_or(REQUESTS.len());
        if let Some(pair) = self.requests.get(index) {
            pair[usize::from(!ok)].inc();
        }
        if !ok
            && matches!(
                request,
                "hello" | "new-user" | "new-client" | "resume" | "visit"
            )
        {
            self.handshake_failures.inc();
        }
        if request == "connect" {
            self.refused_connections.inc();
        } else if request == "tls" {
            self.tls_failures.inc();
        }
    }

    /// Counts one Error frame sent.
    pub fn error_sent(&self, code: ErrorCode) {
        if let Some(counter) = self.errors.get(code_index(code)) {
            counter.inc();
        }
    }

    /// Sets the connections-by-phase gauges, counts in [`PHASES`] order.
    pub fn set_connections(&self, counts: [usize; 4]) {
        for (gauge, count) in self.connections.iter().zip(counts) {
            gauge.set(i64::try_from(count).unwrap_or(i64::MAX));
        }
    }

    /// Records one journal flush: the write, and the fsync if there was one.
    pub fn journal_flushed(&self, write: Duration, fsync: Option<Duration>) {
        self.journal_write.observe(write.as_secs_f64());
        if let Some(fsync) = fsync {
            self.journal_fsync.observe(fsync.as_secs_f64());
        }
    }

    /// The exposition text (OpenMetrics 1.0, which Prometheus reads).
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// Index of `code` in [`ERROR_CODES`].
fn code_index(code: ErrorCode) -> usize {
    match code {
        ErrorCode::BadFrame => 0,
        ErrorCode::BadPath => 1,
        ErrorCode::WrongPhase => 2,
        ErrorCode::UnknownUser => 3,
        ErrorCode::UnknownClient => 4,
        ErrorCode::HashMismatch => 5,
        ErrorCode::SizeMismatch => 6,
        ErrorCode::Busy => 7,
        ErrorCode::Storage => 8,
        ErrorCode::Timeout => 9,
        ErrorCode::NotFound => 10,
        ErrorCode::ShuttingDown => 11,
        ErrorCode::Unstorable => 12,
        ErrorCode::NoSuchVersion => 13,
        ErrorCode::Revoked => 14,
        ErrorCode::BadCredential => 15,
        ErrorCode::WrongShard => 16,
        ErrorCode::Moving => 17,
        ErrorCode::TooManyAttempts => 18,
        ErrorCode::DeviceInUse => 19,
        ErrorCode::NoSpace => 20,
        ErrorCode::Unknown(_) => 21,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_prometheus_conventions() {
        let m = Metrics::new();
        m.request("push-file", true);
        m.request("hello", false);
        m.error_sent(ErrorCode::Busy);
        m.error_sent(ErrorCode::WrongShard);
        m.set_shard(Some(7));
        let text = m.encode();
        for line in [
            "cloudservice_requests_total{request=\"push-file\",outcome=\"ok\"} 1",
            "cloudservice_requests_total{request=\"hello\",outcome=\"error\"} 1",
            "cloudservice_handshake_failures_total 1",
            "cloudservice_errors_sent_total{code=\"Busy\"} 1",
            "cloudservice_errors_sent_total{code=\"WrongShard\"} 1",
            "cloudservice_errors_sent_total{code=\"Moving\"} 0",
            "cloudservice_shard_info{shard=\"7\"} 1",
            "cloudservice_received_bytes_total 0",
            "cloudservice_journal_fsync_seconds_count 0",
            "cloudservice_connections{phase=\"ready\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn a_tls_failure_is_not_a_refused_connection() {
        let m = Metrics::new();
        m.request("tls", false);
        m.request("tls", false);
        m.request("connect", false);
        let text = m.encode();
        for line in [
            "cloudservice_requests_total{request=\"tls\",outcome=\"error\"} 2",
            "cloudservice_requests_total{request=\"connect\",outcome=\"error\"} 1",
            "cloudservice_tls_failures_total 2",
            "cloudservice_refused_connections_total 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
    }

    /// README "connectionLog.txt" lists every request name, in this order,
    /// and README "Metrics" names every metric exported.
    #[test]
    fn readme_lists_every_request_name_and_metric() {
        let readme = include_str!("../../../README.md");
        let start = readme
            .find("`request=` one of")
            .expect("README request list");
        let end = start
            + readme[start..]
                .find("`outcome=ok`")
                .expect("end of the list");
        let listed: Vec<&str> = readme[start..end].split('`').skip(3).step_by(2).collect();
        assert_eq!(listed, REQUESTS, "README's request names, in order");
        let metrics = &readme[readme.find("### Metrics").expect("Metrics section")..];
        let text = Metrics::new().encode();
        for name in text.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
            let name = name.split(' ').next().unwrap_or(name);
            let shown = [
                name.to_owned(),
                format!("{name}_total"),
                format!("{name}{{"),
            ];
            assert!(
                shown.iter().any(|n| metrics.contains(&format!("`{n}"))),
                "metric {name} is not in README Metrics"
            );
        }
    }
}
