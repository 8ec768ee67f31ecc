//! End-to-end: one liveness rule in every phase (R-4.3.6, outside tester
//! breaker18 F1, F2, F3, F8, F9). Device A reaches the server through a
//! shaped relay ([`Relay::shaped`]) that can slow both ways and stall
//! (carry nothing, read nothing: TCP backs up to the sender, whose sends
//! block; no reset, no FIN, no byte lost); device B, where there is one,
//! reaches the server directly.
//!
//! - A stall in the middle of an upload (A blocked in a send): A is never
//!   "not responding" (it waits on the network, and beats), `status` says
//!   "waiting for the server", and A gives the connection up with the
//!   rule's line within [`DEAD_AFTER`] and slack; the file arrives after.
//!   Before: no beat for the whole blocked send (exit 3 "not responding"),
//!   never "waiting", given up by a 60 s per-send timeout that restarts.
//! - An uplink of 16 KiB/s: the upload advances slower than one 256 KiB
//!   block per 10 s; A is never "not responding".
//! - A stall in the middle of a download: "waiting for the server" within
//!   seconds (before: "pulling and applying" until a keep-alive ping 60 s
//!   later), given up with the rule's line, never the OS's text.
//! - A 20 s stall of an idle connection: not "in sync" from 5 s after its
//!   pull went unanswered (before: "in sync" until 5 s after a ping sent
//!   10 s after that pull), and the connection is kept: B's change made
//!   during the stall arrives over it, no reconnection.
//!
//! `CLOUD_TEST_CLIENT_BIN` runs another build's client (and `status`):
//! the first three tests, and the status part of the fourth, fail with a
//! client from before the rule. The last test (SIGTERM during a stalled
//! download names the wait, breaker20 F5) fails with 28a351d's client.

mod common;

use common::relay::Relay;
use common::{eventually, status_json, status_until, write, Client, Server, Verbosity, CONVERGE};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The client's `DEAD_AFTER`, plus its first look at a blocked send or its
/// probe ping (`PROBE_AFTER`, 10 s), plus room for a loaded machine.
const GIVEN_UP_WITHIN: Duration = Duration::from_secs(100);
/// "Waiting for the server" is due 5 s after an answer went missing, plus
/// `PROBE_AFTER`-free room for a loaded machine (a client before the rule
/// said it only 5 s after a keep-alive ping, 60 s into a download).
const WAITING_WITHIN: Duration = Duration::from_secs(40);
/// After a stall ends: a reconnection attempt made during it waits for
/// the TLS handshake's limit (15 s), then the backoff (at most 30 s).
const BACK_WITHIN: Duration = Duration::from_secs(90);
/// The rule's log line (and the older client's: both start so).
const GIVEN_UP: &str = "not even to a ping";

/// Content that does not repeat (no delta or chunk reuse shortens a
/// transfer), `len` bytes.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    common::Rng::new(seed).bytes(len)
}

/// A's log so far.
fn log_text(log: &Path) -> String {
    std::fs::read_to_string(log).unwrap_or_default()
}

/// Whether `v` (a `status --json` reading) says A waits for the server.
fn says_waiting(v: &Value) -> bool {
    v["pending"]
        .as_str()
        .is_some_and(|p| p.starts_with("waiting for the server: no answer for"))
}

/// One device A behind a shaped relay, in sync with the server, its log
/// in a file; B on the same user, directly, when `with_b`.
struct Setup {
    server: Server,
    relay: Relay,
    user: String,
    a: tempfile::TempDir,
    b: tempfile::TempDir,
    _logs: tempfile::TempDir,
    log: PathBuf,
    ca: Client,
    _cb: Option<Client>,
}

fn setup(rate: &str, with_b: bool) -> Setup {
    setup_with(rate, with_b, Verbosity::from_env())
}

/// [`setup`], A's log at `verbosity`.
fn setup_with(rate: &str, with_b: bool, verbosity: Verbosity) -> Setup {
    let server = Server::start();
    let relay = Relay::shaped(server.port);
    let a = tempfile::tempdir().expect("tempdir");
    let b = tempfile::tempdir().expect("tempdir");
    let logs = tempfile::tempdir().expect("tempdir");
    write(a.path(), "base.txt", "base");
    let user = common::new_user(server.port, a.path());
    let log = logs.path().join("a.log");
    let ca = Client::options(relay.port, a.path())
        .user(Some(&user))
        .rate(rate)
        .verbosity(verbosity)
        .log(&log)
        .start();
    let cb = with_b.then(|| {
        Client::options(server.port, b.path())
            .user(Some(&user))
            .start()
    });
    let mut dirs = vec![("A", a.path())];
    if with_b {
        dirs.push(("B", b.path()));
    }
    for (name, dir) in dirs {
        status_until(&format!("{name} in sync"), dir, CONVERGE, |code, v| {
            code == 0 && v["in_sync"] == true
        });
    }
    Setup {
        server,
        relay,
        user,
        a,
        b,
        _logs: logs,
        log,
        ca,
        _cb: cb,
    }
}

/// Polls A's status every 0.5 s until `done` (checked on A's log) or
/// `limit`: every reading must not be "not responding"; returns whether
/// one said "waiting for the server", and when the first did.
fn watch_until_given_up(s: &Setup, since: Instant, limit: Duration) -> Option<Duration> {
    let mut waiting_at = None;
    loop {
        let (code, v) = status_json(s.a.path());
        assert!(
            code != 3 && v["not_responding_for"].is_null(),
            "A waits on the network, it is not hung ({:?} into the stall): exit {code} {v:#}\n{}",
            since.elapsed(),
            s.ca.log_tail(4000)
        );
        if waiting_at.is_none() && says_waiting(&v) {
            waiting_at = Some(since.elapsed());
            eprintln!("A said {} after {:?}", v["pending"], since.elapsed());
        }
        if log_text(&s.log).contains(GIVEN_UP) {
            return waiting_at;
        }
        assert!(
            since.elapsed() < limit,
            "A did not give the stalled connection up within {limit:?}\n{}",
            s.ca.log_tail(4000)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// breaker18 F1: a link that goes silent while A is blocked sending an
/// upload.
#[test]
fn a_link_silent_during_an_upload_is_waited_on_then_given_up_on_time() {
    let s = setup("0.5", false);
    s.relay.rate(1 << 20);
    let big = noise(48 << 20, 0xF1);
    let up = s.relay.up();
    std::fs::write(s.a.path().join("big.bin"), &big).expect("write");
    assert!(
        eventually(Duration::from_secs(30), || s.relay.up() > up + (2 << 20)),
        "the upload did not start\n{}",
        s.ca.log_tail(4000)
    );
    s.relay.stall(true);
    let stalled = Instant::now();
    let waiting = watch_until_given_up(&s, stalled, GIVEN_UP_WITHIN);
    eprintln!("A gave the connection up after {:?}", stalled.elapsed());
    let waiting = waiting.expect("status said A waits for the server");
    assert!(
        waiting < WAITING_WITHIN,
        "said waiting only after {waiting:?}"
    );
    let text = log_text(&s.log);
    assert!(!text.contains("os error"), "the OS's text:\n{text}");

    s.relay.stall(false);
    s.relay.rate(0);
    let on_server = s.server.user_dir(&s.user).join("big.bin");
    assert!(
        eventually(BACK_WITHIN + CONVERGE, || {
            std::fs::metadata(&on_server).is_ok_and(|m| m.len() == big.len() as u64)
        }),
        "the upload completes once the link works\n{}",
        s.ca.log_tail(4000)
    );
    assert_eq!(std::fs::read(&on_server).expect("read"), big);
}

/// breaker18 F2: an uplink of 16 KiB/s, slower than one 256 KiB block per
/// heartbeat limit (10 s): A advances, so it is never "not responding";
/// the file arrives once the link is fast.
#[test]
fn a_slow_uplink_is_never_called_hung_nor_silent() {
    let s = setup("0.5", false);
    s.relay.rate(16 << 10);
    let big = noise(8 << 20, 0xF2);
    let up = s.relay.up();
    std::fs::write(s.a.path().join("slow.bin"), &big).expect("write");
    let started = Instant::now();
    let (mut readings, mut waiting) = (0, 0usize);
    while started.elapsed() < Duration::from_secs(40) {
        let (code, v) = status_json(s.a.path());
        readings += 1;
        assert!(
            code != 3 && v["not_responding_for"].is_null(),
            "an uploading client called hung after {:?} ({} bytes up): exit {code} {v:#}\n{}",
            started.elapsed(),
            s.relay.up() - up,
            s.ca.log_tail(4000)
        );
        // Not asserted (yet): on this loopback relay the kernel takes
        // the bytes in steps seconds apart, and "waiting for the server"
        // can show between two (seen once at 6 s: no byte acknowledged
        // for 5 s). Counted, for the record.
        waiting += usize::from(says_waiting(&v));
        std::thread::sleep(Duration::from_millis(500));
    }
    let moved = s.relay.up() - up;
    eprintln!("{readings} readings in 40 s ({waiting} said waiting), {moved} bytes up, none hung");
    assert!(moved > 256 << 10, "the upload advanced ({moved} bytes)");
    s.relay.rate(0);
    let on_server = s.server.user_dir(&s.user).join("slow.bin");
    assert!(
        eventually(CONVERGE * 3, || {
            std::fs::metadata(&on_server).is_ok_and(|m| m.len() == big.len() as u64)
        }),
        "the upload completes\n{}",
        s.ca.log_tail(4000)
    );
    assert_eq!(std::fs::read(&on_server).expect("read"), big);
}

/// breaker18 F3: a link that goes silent in the middle of a download.
#[test]
fn a_link_silent_during_a_download_is_waited_on_then_given_up_on_time() {
    let s = setup("0.5", true);
    s.relay.rate(1 << 20);
    let big = noise(48 << 20, 0xF3);
    let down = s.relay.down();
    std::fs::write(s.b.path().join("big.bin"), &big).expect("write");
    assert!(
        eventually(Duration::from_secs(60), || s.relay.down()
            > down + (2 << 20)),
        "the download did not start\n{}",
        s.ca.log_tail(4000)
    );
    s.relay.stall(true);
    let stalled = Instant::now();
    let waiting = watch_until_given_up(&s, stalled, GIVEN_UP_WITHIN);
    eprintln!("A gave the connection up after {:?}", stalled.elapsed());
    let waiting = waiting.expect("status said A waits for the server");
    assert!(
        waiting < WAITING_WITHIN,
        "said waiting only after {waiting:?}"
    );
    let text = log_text(&s.log);
    assert!(!text.contains("os error"), "the OS's text:\n{text}");

    s.relay.stall(false);
    s.relay.rate(0);
    assert!(
        eventually(BACK_WITHIN + CONVERGE, || {
            std::fs::read(s.a.path().join("big.bin")).is_ok_and(|c| c == big)
        }),
        "the download completes once the link works\n{}",
        s.ca.log_tail(4000)
    );
}

/// breaker18 F8, F9: an idle connection (a pull every second) stalled for
/// 20 s. From 5 s after its pull went unanswered, A is not "in sync" (B's
/// change made meanwhile waits on the server); the connection is kept, and
/// B's change arrives over it once the stall ends.
#[test]
fn an_idle_link_silent_for_20_s_is_not_in_sync_and_is_kept() {
    let s = setup("1", true);
    let before = log_text(&s.log).len();
    s.relay.stall(true);
    let stalled = Instant::now();
    write(
        s.b.path(),
        "during.txt",
        "made on B while A's link was silent",
    );
    let mut waiting_seen = false;
    while stalled.elapsed() < Duration::from_secs(20) {
        let (code, v) = status_json(s.a.path());
        // A pull goes within 1 s, unanswered; "waiting" is due 5 s later:
        // 9 s leaves room for a loaded machine (a client before the rule
        // waited for a ping 10 s after the pull, and said it 5 s later).
        if stalled.elapsed() > Duration::from_secs(9) {
            assert!(
                code != 0 && v["in_sync"] == false && says_waiting(&v),
                "A's pull is unanswered for seconds, yet {:?} into the stall: exit {code} {v:#}",
                stalled.elapsed()
            );
            waiting_seen = true;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(waiting_seen);
    s.relay.stall(false);
    assert!(
        eventually(CONVERGE, || {
            std::fs::read(s.a.path().join("during.txt"))
                .is_ok_and(|c| c == b"made on B while A's link was silent")
        }),
        "B's change arrives once the link works\n{}",
        s.ca.log_tail(4000)
    );
    status_until("A in sync again", s.a.path(), CONVERGE, |code, v| {
        code == 0 && v["in_sync"] == true
    });
    let text = log_text(&s.log).split_off(before);
    for cut in ["reconnect", "connection lost", "no answer from the server"] {
        assert!(
            !text.contains(cut),
            "a 20 s silence cost the connection ({cut:?}):\n{text}"
        );
    }
}

/// breaker19 G5: an idle device whose link goes dead is told apart within
/// a bound that does not depend on PULLING_RATE: its ping every 15 s when
/// idle goes unanswered, and 5 s later `status` says it waits for the
/// server (not "in sync"): 20 s at most, checked with room. Here
/// PULLING_RATE is 60, so no pull falls in the window; before, an idle
/// client sent nothing until its ping at 60 s and said "in sync" for
/// about 65 s.
#[test]
fn an_idle_link_gone_dead_is_not_in_sync_within_the_bound_whatever_the_rate() {
    let s = setup("60", false);
    s.relay.stall(true);
    let stalled = Instant::now();
    status_until(
        "A not in sync, waiting for the server",
        s.a.path(),
        Duration::from_secs(30),
        |code, v| code == 1 && v["in_sync"] == false && says_waiting(v),
    );
    eprintln!(
        "A stopped saying in sync {:?} into the silence",
        stalled.elapsed()
    );
    s.relay.stall(false);
    status_until("A in sync again", s.a.path(), CONVERGE, |code, v| {
        code == 0 && v["in_sync"] == true
    });
}

/// breaker19 G6: SIGTERM while an upload is blocked on a silent link: the
/// client logs "stopping: …" and exits (0) within 3 s, instead of about a
/// minute later when the liveness rule gave the link up; nothing is lost:
/// the next run, over a working link, uploads the file in full.
#[test]
fn sigterm_during_a_blocked_upload_stops_at_once_and_the_next_run_sends_it() {
    let mut s = setup_with("0.5", false, Verbosity::Normal);
    s.relay.rate(1 << 20);
    let big = noise(32 << 20, 0x66);
    let up = s.relay.up();
    std::fs::write(s.a.path().join("big.bin"), &big).expect("write");
    assert!(
        eventually(Duration::from_secs(30), || s.relay.up() > up + (2 << 20)),
        "the upload did not start\n{}",
        s.ca.log_tail(4000)
    );
    s.relay.stall(true);
    // The send blocks: the relay takes nothing more.
    std::thread::sleep(Duration::from_secs(3));
    let before = log_text(&s.log).len();
    let asked = Instant::now();
    let epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() % 86_400_000);
    eprintln!(
        "SIGTERM at {}.{:03} s of the day",
        epoch / 1000,
        epoch % 1000
    );
    let exit = s.ca.terminate();
    let took = asked.elapsed();
    let said = log_text(&s.log).split_off(before);
    eprintln!("A exited {exit:?} {took:?} after SIGTERM, saying:\n{said}");
    assert!(
        took < Duration::from_secs(3) && exit.is_some_and(|e| e.success()),
        "A exits 0 within 3 s of SIGTERM: {exit:?} after {took:?}\n{said}"
    );
    assert!(said.contains("stopping: "), "the stop is said:\n{said}");

    s.relay.stall(false);
    s.relay.rate(0);
    let _again = Client::options(s.relay.port, s.a.path())
        .user(Some(&s.user))
        .rate("0.5")
        .log(&s.log)
        .start();
    let on_server = s.server.user_dir(&s.user).join("big.bin");
    assert!(
        eventually(CONVERGE * 2, || {
            std::fs::read(&on_server).is_ok_and(|c| c == big)
        }),
        "the next run uploads the file\n{}",
        log_text(&s.log)
    );
    status_until("A in sync", s.a.path(), CONVERGE, |code, v| {
        code == 0 && v["in_sync"] == true
    });
}

/// breaker20 F5: SIGTERM while a download is stalled on a silent link:
/// the client exits 0 at once and its "stopping" line names the wait it
/// ended, a download (README: "`stopping: asked to stop while …`"; before,
/// only "asked to stop (SIGTERM or Ctrl-C)").
#[test]
fn sigterm_during_a_stalled_download_names_the_download() {
    let mut s = setup_with("0.5", true, Verbosity::Normal);
    s.relay.rate(1 << 20);
    let big = noise(32 << 20, 0xF5);
    let down = s.relay.down();
    std::fs::write(s.b.path().join("big.bin"), &big).expect("write");
    assert!(
        eventually(Duration::from_secs(60), || s.relay.down()
            > down + (2 << 20)),
        "the download did not start\n{}",
        s.ca.log_tail(4000)
    );
    s.relay.stall(true);
    std::thread::sleep(Duration::from_secs(3));
    let before = log_text(&s.log).len();
    let asked = Instant::now();
    let exit = s.ca.terminate();
    let took = asked.elapsed();
    let said = log_text(&s.log).split_off(before);
    eprintln!("A exited {exit:?} {took:?} after SIGTERM, saying:\n{said}");
    assert!(
        took < Duration::from_secs(3) && exit.is_some_and(|e| e.success()),
        "A exits 0 within 3 s of SIGTERM: {exit:?} after {took:?}\n{said}"
    );
    assert!(
        said.contains("stopping: asked to stop while waiting for the server (a download, "),
        "the stop names the download it ended:\n{said}"
    );
}
