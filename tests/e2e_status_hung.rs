//! End-to-end: `cloud-client status` does not trust a client that holds the
//! folder's lock but has stopped advancing (outside tester's finding, s15):
//! the real binaries, a client frozen with SIGSTOP (a stand-in for a
//! deadlock, a read stuck on a dead network file system, a machine swapped
//! to death) is reported "not responding" with its PID and exit status 3
//! within `SILENT_AFTER` (10 s) plus a beat period (2 s) — before, it stayed
//! "in sync", exit 0, with changes waiting on both sides. After SIGCONT it is
//! in sync again with both changes through. And a client busy for longer than
//! that on one upload over a slow link (its loop does not turn while the
//! send blocks) is never called hung: the upload's progress beats.
//!
//! `CLOUD_TEST_CLIENT_BIN` runs both the client and `status` from another
//! build (to show the frozen-client test fails with an older client).

mod common;

use common::procs::signal;
use common::relay::Relay;
use common::{eventually, status_until, write, Client, Server, Verbosity, CONVERGE};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// What the client promises (`heartbeat::SILENT_AFTER` + `BEAT_EVERY`),
/// plus room for a loaded machine to run `status` late.
const DETECTED_WITHIN: Duration = Duration::from_secs(20);

/// The client binary under test.
fn client_bin() -> PathBuf {
    std::env::var_os("CLOUD_TEST_CLIENT_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_cloud-client")))
}

/// `cloud-client status FOLDER [--json]` of [`client_bin`]: exit code, stdout.
fn status(folder: &Path, json: bool) -> (i32, String) {
    let mut cmd = Command::new(client_bin());
    cmd.arg("status").arg(folder);
    if json {
        cmd.arg("--json");
    }
    let out = cmd.output().expect("run status");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn status_json(folder: &Path) -> (i32, Value) {
    let (code, text) = status(folder, true);
    (code, serde_json::from_str(&text).unwrap_or_default())
}

/// Sends SIGCONT to `pid` when dropped, so a failed assertion never leaves
/// a stopped client behind (a stopped process does not act on SIGTERM).
struct Resume(u32);

impl Drop for Resume {
    fn drop(&mut self) {
        signal(self.0, "CONT");
    }
}

#[test]
fn a_frozen_client_is_not_responding_and_in_sync_again_when_resumed() {
    let server = Server::start();
    let a = tempfile::tempdir().expect("tempdir");
    let b = tempfile::tempdir().expect("tempdir");
    write(a.path(), "base.txt", "base");
    let user = common::new_user(server.port, a.path());
    let opts = |dir: &Path| {
        Client::options(server.port, dir)
            .bin(&client_bin())
            .user(Some(&user))
    };
    let ca = opts(a.path()).start();
    let _cb = opts(b.path()).start();
    status_until("A in sync", a.path(), CONVERGE, |code, v| {
        code == 0 && v["in_sync"] == true
    });
    status_until("B in sync", b.path(), CONVERGE, |code, v| {
        code == 0 && v["in_sync"] == true
    });
    let pid = ca.pid().expect("A runs");

    signal(pid, "STOP");
    let resume = Resume(pid);
    let stopped = Instant::now();
    write(a.path(), "local-new.txt", "made on A while it was frozen");
    write(b.path(), "remote-new.txt", "made on B while A was frozen");
    let v = status_until("A not responding", a.path(), DETECTED_WITHIN, |code, v| {
        code == 3 && v["not_responding_for"].is_u64()
    });
    let took = stopped.elapsed();
    assert_eq!(v["pid"], pid, "{v:#}");
    assert_eq!(v["running"], true, "{v:#}");
    assert_eq!(v["in_sync"], false, "{v:#}");
    assert_eq!(v["connected"], false, "not vouched for: {v:#}");
    let silent = v["not_responding_for"].as_u64().unwrap_or_default();
    assert!(silent >= 10, "silent {silent} s: {v:#}");
    let (code, text) = status(a.path(), false);
    assert_eq!(code, 3, "{text}");
    assert!(
        text.contains(&format!(
            "state:         not responding (no sign of life from process {pid} for "
        )),
        "{text}"
    );
    assert!(text.contains(&format!("process:       {pid}")), "{text}");
    eprintln!("frozen client reported not responding after {took:?} (silent {silent} s)");

    // Still frozen: still reported so (not a one-off reading).
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(status(a.path(), false).0, 3);

    drop(resume);
    status_until("A in sync again", a.path(), CONVERGE, |code, v| {
        code == 0 && v["in_sync"] == true && v["not_responding_for"].is_null()
    });
    assert!(
        eventually(CONVERGE, || {
            a.path().join("remote-new.txt").is_file() && b.path().join("local-new.txt").is_file()
        }),
        "both changes made while A was frozen go through once it runs"
    );
}

/// Makes a user from `folder` with `--once` on a plaintext server; its ID.
fn new_user_plaintext(port: u16, folder: &Path) -> String {
    let out = Client::options(port, folder)
        .bin(&client_bin())
        .plaintext()
        .verbosity(Verbosity::Verbose)
        .run_once();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    text.lines()
        .find_map(|l| l.strip_prefix("user id: ").map(str::to_owned))
        .unwrap_or_else(|| panic!("no user id line\n{text}"))
}

/// The slow uplink's rate: the upload below takes about 24 s, far more
/// than the socket buffers hold, so the client's sends block for longer
/// than `SILENT_AFTER`.
const UPLINK: u64 = 1024 * 1024;
const BIG: usize = 24 * 1024 * 1024;

#[test]
fn a_client_busy_on_a_long_upload_is_not_called_hung() {
    let server = Server::options().plaintext().start();
    let relay = Relay::slow(server.port, UPLINK);
    let a = tempfile::tempdir().expect("tempdir");
    write(a.path(), "seed.txt", "seed");
    let user = new_user_plaintext(server.port, a.path());
    let logs = tempfile::tempdir().expect("tempdir");
    let log = logs.path().join("client.log");
    let client = Client::options(relay.port, a.path())
        .bin(&client_bin())
        .plaintext()
        .user(Some(&user))
        .verbosity(Verbosity::Normal)
        .log(&log)
        .start();
    assert!(
        client.wait_log("watching", Duration::from_secs(20)),
        "{}",
        client.log_tail(4000)
    );
    status_until("A in sync", a.path(), CONVERGE, |code, v| {
        code == 0 && v["in_sync"] == true
    });
    // Content that does not repeat (no delta or chunk reuse shortens it).
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let big: Vec<u8> = (0..BIG)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let up_before = relay.up();
    std::fs::write(a.path().join("big.bin"), &big).expect("write");
    let on_server = server.user_dir(&user).join("big.bin");
    let started = Instant::now();
    let mut readings = 0u32;
    let mut busy_seen = false;
    loop {
        let (code, v) = status_json(a.path());
        readings += 1;
        assert!(
            code != 3 && v["not_responding_for"].is_null(),
            "a client advancing on an upload is called hung after {:?} ({} of {BIG} bytes up): exit {code} {v:#}\n{}",
            started.elapsed(),
            relay.up() - up_before,
            client.log_tail(4000)
        );
        busy_seen |= v["uploads_pending"].as_u64().is_some_and(|n| n > 0);
        let done = std::fs::metadata(&on_server).is_ok_and(|m| m.len() == BIG as u64);
        if done && code == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "upload not done in 120 s ({} bytes up)\n{}",
            relay.up() - up_before,
            client.log_tail(4000)
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let took = started.elapsed();
    eprintln!("24 MiB over a 1 MiB/s uplink: {took:?}, {readings} status readings, none hung");
    assert!(busy_seen, "status showed the upload pending");
    assert!(
        took > Duration::from_secs(15),
        "the upload took {took:?}: not long enough to prove anything"
    );
    assert_eq!(std::fs::read(&on_server).expect("read"), big);
}
