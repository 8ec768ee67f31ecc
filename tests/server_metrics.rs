//! `cloud-server --metrics ADDR`: the real binary is scraped over HTTP
//! before and after a known sequence of requests, and every counter must
//! have moved by exactly what that sequence implies.

mod common;

use cloudservice::protocol::{ErrorCode, HelloMode, PushStatus, UserId};
use common::*;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

/// One scrape: `series{labels}` → value, from the text format.
type Scrape = HashMap<String, f64>;

/// GETs `path` from `addr`: (status line, Content-Type, body).
fn get(addr: SocketAddr, path: &str) -> (String, String, String) {
    let mut stream = TcpStream::connect(addr).expect("connect to the metrics endpoint");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").expect("send request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read response");
    let (head, body) = response.split_once("\r\n\r\n").expect("a head and a body");
    let status = head.lines().next().unwrap_or("").to_owned();
    let content_type = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Type: "))
        .unwrap_or("")
        .to_owned();
    (status, content_type, body.to_owned())
}

/// Parses the exposition text; panics on a line that is neither a comment
/// nor `series value`.
fn parse(text: &str) -> Scrape {
    let mut out = Scrape::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line.rsplit_once(' ').expect("series and value");
        let value: f64 = value.parse().expect("a number");
        out.insert(series.to_owned(), value);
    }
    out
}

fn scrape(addr: SocketAddr) -> Scrape {
    let (status, content_type, body) = get(addr, "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(content_type.starts_with("application/openmetrics-text"));
    assert!(body.ends_with("# EOF\n"), "not OpenMetrics text:\n{body}");
    parse(&body)
}

/// How much `series` grew between two scrapes (a missing series is 0).
fn delta(before: &Scrape, after: &Scrape, series: &str) -> f64 {
    let value = |s: &Scrape| s.get(series).copied().unwrap_or(0.0);
    value(after) - value(before)
}

fn requests(kind: &str, outcome: &str) -> String {
    format!("cloudservice_requests_total{{request=\"{kind}\",outcome=\"{outcome}\"}}")
}

#[test]
fn counters_move_by_the_activity() {
    let metrics_port = free_port();
    let metrics_arg = format!("127.0.0.1:{metrics_port}");
    let server = Server::start_with(&[
        "--metrics",
        &metrics_arg,
        "--max-connections",
        "3",
        "--fsync",
    ]);
    let metrics: SocketAddr = metrics_arg.parse().expect("address");
    assert!(wait_port(metrics_port, Duration::from_secs(5)));
    let before = scrape(metrics);

    // Two devices of one user; three uploads, one a conflict; two fetches,
    // one of a missing file; one pull.
    let mut a = WireClient::new_user(server.addr);
    let mut b = WireClient::new_client(server.addr, a.user);
    let big: Vec<u8> = (0..300_000u32).map(|i| (i * 31 % 251) as u8).collect();
    let ack = a.put("x.txt", b"hello", 0).expect("push");
    assert_eq!(ack.status, PushStatus::Applied);
    assert_eq!(
        a.put("big.bin", &big, 0).expect("push").status,
        PushStatus::Applied
    );
    let ack = b.put("x.txt", b"other", 0).expect("push");
    assert_eq!(ack.status, PushStatus::Conflict);
    let (_, fetched) = b.fetch("big.bin").expect("fetch");
    assert_eq!(fetched, big);
    assert_eq!(
        b.fetch("missing").expect_err("no such file").code,
        ErrorCode::NotFound
    );
    a.pull(0);

    // A Resume of a user that does not exist: a handshake failure.
    let mut stranger = WireClient::connect(server.addr);
    let refused = stranger
        .hello(HelloMode::Resume, UserId([7; 16]), 1)
        .expect_err("unknown user");
    assert_eq!(refused.code, ErrorCode::UnknownUser);
    stranger.until_closed();

    // a, b and a silent third connection fill --max-connections 3: a
    // fourth evicts the silent one (it had not sent its Hello, R-3.5.3),
    // which the server closes: a `connect` refusal, without an Error frame
    // (its TLS handshake had not started, R-3.5.5). (The refusal of a
    // newcomer when every slot is identified: server_requests.)
    let mut silent = eventually_connected(server.addr);
    let _fourth = eventually_connected(server.addr);
    let frames = silent.until_closed();
    assert!(frames.is_empty(), "{frames:?}");

    // Gauges are sampled every 0.5 s: wait for the sample that sees all three.
    let ready = "cloudservice_connections{phase=\"ready\"}";
    let waiting = "cloudservice_connections{phase=\"await_hello\"}";
    let mut after = Scrape::new();
    let seen = eventually(Duration::from_secs(5), || {
        std::thread::sleep(Duration::from_millis(50));
        after = scrape(metrics);
        after.get(ready) == Some(&2.0) && after.get(waiting) == Some(&1.0)
    });
    assert!(
        seen,
        "gauges never showed 2 ready, 1 awaiting hello: {after:?}"
    );

    let exact = [
        (requests("new-user", "ok"), 1.0),
        (requests("new-client", "ok"), 1.0),
        (requests("push-file", "ok"), 3.0),
        (requests("push-file", "error"), 0.0),
        (requests("pull", "ok"), 1.0),
        (requests("resume", "error"), 1.0),
        (requests("connect", "error"), 1.0),
        ("cloudservice_pushes_applied_total".to_owned(), 2.0),
        ("cloudservice_conflicts_total".to_owned(), 1.0),
        ("cloudservice_handshake_failures_total".to_owned(), 1.0),
        ("cloudservice_refused_connections_total".to_owned(), 1.0),
        (
            "cloudservice_errors_sent_total{code=\"NotFound\"}".to_owned(),
            1.0,
        ),
        (
            "cloudservice_errors_sent_total{code=\"UnknownUser\"}".to_owned(),
            1.0,
        ),
        (
            "cloudservice_errors_sent_total{code=\"Busy\"}".to_owned(),
            0.0,
        ),
        (
            "cloudservice_errors_sent_total{code=\"Storage\"}".to_owned(),
            0.0,
        ),
    ];
    for (series, expected) in &exact {
        assert_eq!(delta(&before, &after, series), *expected, "{series}");
    }
    // A Fetch is logged (and counted) when it is accepted, before the file
    // is opened: the missing file shows as a NotFound Error frame above.
    let fetches = delta(&before, &after, &requests("fetch", "ok"))
        + delta(&before, &after, &requests("fetch", "error"));
    assert_eq!(fetches, 2.0);
    // The big file crossed the wire once each way, plus small frames.
    let received = delta(&before, &after, "cloudservice_received_bytes_total");
    let sent = delta(&before, &after, "cloudservice_sent_bytes_total");
    assert!(
        (300_000.0..310_000.0).contains(&received),
        "received {received}"
    );
    assert!((300_000.0..310_000.0).contains(&sent), "sent {sent}");
    // Every push journals (and, with --fsync, fsyncs) at least once.
    for histogram in ["journal_write", "journal_fsync"] {
        let count = format!("cloudservice_{histogram}_seconds_count");
        assert!(delta(&before, &after, &count) >= 3.0, "{count}");
        let inf = format!("cloudservice_{histogram}_seconds_bucket{{le=\"+Inf\"}}");
        assert_eq!(after.get(&inf), after.get(&count), "{inf}");
    }
    assert!(after.get("cloudservice_actors").copied().unwrap_or(0.0) >= 1.0);
    drop((a, b));
}

/// Random amounts of each kind of activity (seed printed; replay with
/// METRICS_SEED=N): every counter moves by exactly the amount done.
#[test]
fn random_activity_is_counted_exactly() {
    let seed = seed("METRICS_SEED");
    eprintln!("METRICS_SEED={seed}");
    let mut rng = Rng::new(seed);
    let metrics_port = free_port();
    let metrics_arg = format!("127.0.0.1:{metrics_port}");
    let server = Server::start_with(&["--metrics", &metrics_arg]);
    let metrics: SocketAddr = metrics_arg.parse().expect("address");
    assert!(wait_port(metrics_port, Duration::from_secs(5)));
    let before = scrape(metrics);

    let mut a = WireClient::new_user(server.addr);
    let mut b = WireClient::new_client(server.addr, a.user);
    let files = 1 + rng.index(6);
    let conflicts = rng.index(files + 1);
    let (fetches, missing, strangers, pulls) =
        (rng.index(4), rng.index(4), rng.index(4), rng.index(4));
    eprintln!("files {files}, conflicts {conflicts}, fetches {fetches}, missing {missing}, strangers {strangers}, pulls {pulls}");
    let mut uploaded = 0usize;
    let mut sizes = Vec::new();
    for i in 0..files {
        let size = rng.index(20_000);
        let content = rng.bytes(size);
        uploaded += content.len();
        sizes.push(content.len());
        let ack = a.put(&format!("f{i}"), &content, 0).expect("push");
        assert_eq!(ack.status, PushStatus::Applied);
    }
    for i in 0..conflicts {
        let size = rng.index(20_000);
        let content = rng.bytes(size);
        uploaded += content.len();
        let ack = b.put(&format!("f{i}"), &content, 0).expect("push");
        assert_eq!(ack.status, PushStatus::Conflict);
    }
    let mut fetched = 0usize;
    for i in 0..fetches {
        let (_, data) = b.fetch(&format!("f{}", i % files)).expect("fetch");
        assert_eq!(data.len(), sizes[i % files]);
        fetched += data.len();
    }
    for i in 0..missing {
        let refused = b.fetch(&format!("missing{i}")).expect_err("missing");
        assert_eq!(refused.code, ErrorCode::NotFound);
    }
    for _ in 0..strangers {
        let mut stranger = WireClient::connect(server.addr);
        let mut id = [0u8; 16];
        rng.fill(&mut id);
        id[0] |= 1;
        let refused = stranger
            .hello(HelloMode::Resume, UserId(id), 1)
            .expect_err("unknown user");
        assert_eq!(refused.code, ErrorCode::UnknownUser);
        stranger.until_closed();
    }
    for _ in 0..pulls {
        a.pull(0);
    }
    let after = scrape(metrics);
    let counts = [
        ("cloudservice_pushes_applied_total".to_owned(), files),
        ("cloudservice_conflicts_total".to_owned(), conflicts),
        (requests("push-file", "ok"), files + conflicts),
        (requests("pull", "ok"), pulls),
        (
            "cloudservice_handshake_failures_total".to_owned(),
            strangers,
        ),
        (
            "cloudservice_errors_sent_total{code=\"UnknownUser\"}".to_owned(),
            strangers,
        ),
        (
            "cloudservice_errors_sent_total{code=\"NotFound\"}".to_owned(),
            missing,
        ),
    ];
    for (series, expected) in &counts {
        assert_eq!(
            delta(&before, &after, series),
            *expected as f64,
            "{series} (seed {seed})"
        );
    }
    let fetch_total = delta(&before, &after, &requests("fetch", "ok"))
        + delta(&before, &after, &requests("fetch", "error"));
    assert_eq!(fetch_total, (fetches + missing) as f64, "seed {seed}");
    // A refused guess may be refused by the reactor's rate limit (`hello`)
    // or by the actor (`resume`): together they are every stranger.
    let refused_hellos = delta(&before, &after, &requests("resume", "error"))
        + delta(&before, &after, &requests("hello", "error"));
    assert_eq!(refused_hellos, strangers as f64, "seed {seed}");
    // Bytes: the contents plus at most 256 bytes of framing per request.
    let requests_made = 2 + files + conflicts + fetches + missing + strangers + pulls;
    let slack = (256 * requests_made) as f64;
    let received = delta(&before, &after, "cloudservice_received_bytes_total");
    let sent = delta(&before, &after, "cloudservice_sent_bytes_total");
    assert!(
        (uploaded as f64..=uploaded as f64 + slack).contains(&received),
        "received {received}, uploaded {uploaded} (seed {seed})"
    );
    assert!(
        (fetched as f64..=fetched as f64 + slack).contains(&sent),
        "sent {sent}, fetched {fetched} (seed {seed})"
    );
    drop((a, b));
}

/// Connects once the refused stranger's slot is free (its close is async).
fn eventually_connected(addr: SocketAddr) -> WireClient {
    std::thread::sleep(Duration::from_millis(100));
    WireClient::connect(addr)
}

#[test]
fn other_paths_and_methods_are_refused() {
    let metrics_port = free_port();
    let metrics_arg = format!("127.0.0.1:{metrics_port}");
    let _server = Server::start_with(&["--metrics", &metrics_arg]);
    let metrics: SocketAddr = metrics_arg.parse().expect("address");
    assert!(wait_port(metrics_port, Duration::from_secs(5)));
    assert_eq!(get(metrics, "/").0, "HTTP/1.1 404 Not Found");
    let mut stream = TcpStream::connect(metrics).expect("connect");
    stream
        .write_all(b"POST /metrics HTTP/1.1\r\n\r\n")
        .expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    assert!(response.starts_with("HTTP/1.1 405"), "{response}");
    // An endless request head is cut off, and the endpoint still answers.
    let mut stream = TcpStream::connect(metrics).expect("connect");
    let _ = stream.write_all(&[b'a'; 16 * 1024]);
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    assert!(
        response.starts_with(b"HTTP/1.1 431"),
        "{:?}",
        String::from_utf8_lossy(&response)
    );
    assert!(get(metrics, "/metrics").2.ends_with("# EOF\n"));
}

#[test]
fn a_metrics_address_in_use_is_a_clear_start_up_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr");
    let data = tempfile::tempdir().expect("temp dir");
    let output = Command::new(env!("CARGO_BIN_EXE_cloud-server"))
        .args([
            "0",
            "--bind",
            "127.0.0.1",
            "--metrics",
            &addr.to_string(),
            "--data-dir",
        ])
        .arg(data.path())
        .stdin(Stdio::null())
        .output()
        .expect("run cloud-server");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("cannot serve metrics on {addr}")),
        "{stderr}"
    );
}

/// A shard (`--shard N`, PROTOCOL.md §16) says which one it is, and counts
/// its refusals: each WrongShard and Moving Error frame (a refused Hello
/// and an open connection closed by a move alike), each refused Hello as a
/// handshake failure, and the connection a move closed as `move`.
#[test]
fn a_shard_is_labelled_and_its_refusals_counted() {
    use cloudservice::tls::routing::shard_tag;
    let mut rng = Rng::new(seed("METRICS_SEED"));
    let metrics_port = free_port();
    let metrics_arg = format!("127.0.0.1:{metrics_port}");
    let server = Server::start_with(&["--metrics", &metrics_arg, "--shard", "5"]);
    let metrics: SocketAddr = metrics_arg.parse().expect("address");
    assert!(wait_port(metrics_port, Duration::from_secs(5)));
    let before = scrape(metrics);
    assert_eq!(
        before.get("cloudservice_shard_info{shard=\"5\"}"),
        Some(&1.0)
    );
    assert_eq!(
        before
            .keys()
            .filter(|k| k.starts_with("cloudservice_shard_info"))
            .count(),
        1,
        "one shard label"
    );

    // A user of this shard, with one open connection.
    let mut a = WireClient::new_user(server.addr);
    assert_eq!(shard_tag(&a.user), 5);
    // Users of other tags: WrongShard, whatever the mode.
    let foreign = 1 + rng.index(4);
    for i in 0..foreign {
        let user = loop {
            let mut bytes = [0u8; 16];
            bytes.iter_mut().for_each(|b| *b = rng.below(256) as u8);
            let user = UserId(bytes);
            if shard_tag(&user) != 5 {
                break user;
            }
        };
        let mode = if i % 2 == 0 {
            HelloMode::Resume
        } else {
            HelloMode::NewClient
        };
        let mut c = WireClient::connect(server.addr);
        let refused = c.hello(mode, user, 1).expect_err("another shard's user");
        assert_eq!(refused.code, ErrorCode::WrongShard);
        c.until_closed();
    }
    // The user starts moving: its open connection gets Moving and closes,
    // and a Resume is refused with Moving.
    let moves = server.data.join(".cloudservice-server/moves");
    std::fs::create_dir_all(&moves).expect("moves dir");
    std::fs::write(moves.join(a.user.to_string()), "moving\n").expect("marker");
    let frames = a.until_closed();
    assert!(
        frames.iter().any(|f| matches!(&f.message,
            cloudservice::protocol::Message::Error(e) if e.code == ErrorCode::Moving)),
        "{frames:?}"
    );
    let mut c = WireClient::connect(server.addr);
    let refused = c
        .hello(HelloMode::Resume, a.user, 1)
        .expect_err("a user on the move");
    assert_eq!(refused.code, ErrorCode::Moving);
    c.until_closed();

    let after = scrape(metrics);
    let new_client_refusals = (foreign / 2) as f64;
    let resume_refusals = (foreign - foreign / 2) as f64;
    let exact = [
        (
            "cloudservice_errors_sent_total{code=\"WrongShard\"}".to_owned(),
            foreign as f64,
        ),
        (
            "cloudservice_errors_sent_total{code=\"Moving\"}".to_owned(),
            2.0,
        ),
        (requests("new-user", "ok"), 1.0),
        (requests("resume", "error"), resume_refusals),
        (requests("new-client", "error"), new_client_refusals),
        // The reactor refuses a Hello of a user on the move before any
        // actor sees it, and closes the user's open connection.
        (requests("hello", "error"), 1.0),
        (requests("move", "error"), 1.0),
        (requests("other", "error"), 0.0),
        (
            "cloudservice_handshake_failures_total".to_owned(),
            foreign as f64 + 1.0,
        ),
        (
            "cloudservice_errors_sent_total{code=\"UnknownUser\"}".to_owned(),
            0.0,
        ),
    ];
    for (series, expected) in &exact {
        assert_eq!(delta(&before, &after, series), *expected, "{series}");
    }
}
