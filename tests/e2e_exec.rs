//! The executable bit travels (PROTOCOL.md §15, README "Permissions"): made
//! executable or not on one device, a file becomes so on the others and in
//! the server's copy, with or without a content change, through renames,
//! conflicts and a new device's full download; other mode bits stay each
//! device's own. Against a server without version 3, contents still sync
//! and no local bit is lost.

mod common;

use common::chmod;

use common::relay::Relay;
use common::{converge, eventually, settle, write, Client, Server, TwoDevices, CONVERGE};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn mode(path: &Path) -> u32 {
    fs::metadata(path).expect("file").permissions().mode() & 0o7777
}

fn is_exec(path: &Path) -> bool {
    mode(path) & 0o100 != 0
}

/// Waits until `path` under every folder exists with the executable bit `on`.
fn wait_exec(what: &str, folders: &[&Path], path: &str, on: bool) {
    let ok = eventually(CONVERGE, || {
        folders
            .iter()
            .all(|f| f.join(path).is_file() && is_exec(&f.join(path)) == on)
    });
    let seen: Vec<String> = folders
        .iter()
        .map(|f| {
            format!(
                "{:o}",
                fs::metadata(f.join(path)).map_or(0, |m| m.permissions().mode())
            )
        })
        .collect();
    assert!(
        ok,
        "{what}: {path} executable = {on} everywhere; modes {seen:?}"
    );
}

#[test]
fn the_executable_bit_travels_both_ways_with_and_without_content() {
    let d = TwoDevices::start(|a| {
        write(a, "tool.sh", "#!/bin/sh\necho one\n");
        chmod(&a.join("tool.sh"), 0o755);
        write(a, "plain.txt", "text");
    });
    let (a, b) = (d.a.path(), d.b.path());
    let server = d.server.user_dir(&d.user);
    // The first upload carries the bit to the server and to B.
    wait_exec("initial", &[a, b, &server], "tool.sh", true);
    assert!(!is_exec(&b.join("plain.txt")));
    let m = mode(&b.join("tool.sh"));
    assert_eq!((m & 0o444) >> 2, m & 0o111, "x wherever r: {m:o}");

    // chmod -x alone, on A.
    chmod(&a.join("tool.sh"), 0o644);
    wait_exec("-x on A", &[b, &server], "tool.sh", false);
    // chmod +x alone, on B.
    chmod(&b.join("plain.txt"), 0o755);
    wait_exec("+x on B", &[a, &server], "plain.txt", true);
    // Content and +x together, on A.
    write(a, "tool.sh", "#!/bin/sh\necho two\n");
    chmod(&a.join("tool.sh"), 0o755);
    converge("edit + x", &[a, b]);
    wait_exec("edit + x", &[b, &server], "tool.sh", true);
    // Content alone keeps the bit (B edits the executable file).
    write(b, "tool.sh", "#!/bin/sh\necho three\n");
    converge("edit on B", &[a, b]);
    wait_exec("edit keeps x", &[a, b, &server], "tool.sh", true);
    // Content and -x together, on B.
    write(b, "plain.txt", "more text");
    chmod(&b.join("plain.txt"), 0o600);
    converge("edit - x", &[a, b]);
    wait_exec("edit - x", &[a, &server], "plain.txt", false);
    // Only the bit travels: A's group/other read bits are its own.
    assert_eq!(mode(&b.join("plain.txt")) & 0o777, 0o600);
    // A rename keeps it.
    fs::create_dir(a.join("bin")).expect("mkdir");
    fs::rename(a.join("tool.sh"), a.join("bin/tool.sh")).expect("mv");
    converge("rename", &[a, b]);
    wait_exec("rename", &[b, &server], "bin/tool.sh", true);

    // A new device joining gets the bits with the full download.
    let c = tempfile::tempdir().expect("tempdir");
    let _cc = Client::start(d.server.port, c.path(), Some(&d.user));
    converge("new device", &[a, c.path()]);
    wait_exec("new device", &[c.path()], "bin/tool.sh", true);
    wait_exec("new device", &[c.path()], "plain.txt", false);
}

#[test]
fn a_conflict_copy_keeps_its_devices_bit() {
    let d = TwoDevices::start(|a| write(a, "run.sh", "base"));
    let (a, b) = (d.a.path(), d.b.path());
    let mut ca = d.ca;
    let cb = d.cb;
    // A is offline while both edit; B's version wins at the server, A's
    // becomes a conflict copy, executable as A made it.
    ca.stop();
    write(b, "run.sh", "b's version");
    settle();
    write(a, "run.sh", "a's version");
    chmod(&a.join("run.sh"), 0o755);
    std::thread::sleep(std::time::Duration::from_secs(2));
    ca.restart();
    let tree = converge("conflict", &[a, b]);
    let copy = tree
        .keys()
        .find(|k| k.starts_with("run (conflict "))
        .unwrap_or_else(|| panic!("a conflict copy: {tree:?}"))
        .clone();
    wait_exec("conflict copy", &[a, b], &copy, true);
    wait_exec("winner", &[a, b], "run.sh", false);
    drop(cb);
}

#[test]
fn against_a_server_without_version_3_contents_sync_and_no_bit_is_lost() {
    // Plaintext: the relay below rewrites frames on the wire.
    let server = Server::options().plaintext().start();
    // A server without version 3 (tests/common/relay.rs: the Error and the
    // server's replies share one writer, so the Error is never lost to a close).
    let relay = Relay::older(server.port, 2).port;
    let a = tempfile::tempdir().expect("tempdir");
    let b = tempfile::tempdir().expect("tempdir");
    write(a.path(), "tool.sh", "#!/bin/sh\n");
    chmod(&a.path().join("tool.sh"), 0o755);
    settle();
    let out = Client::options(relay, a.path()).plaintext().run_once();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let user = stdout
        .lines()
        .find_map(|l| l.strip_prefix("user id: "))
        .expect("user id line")
        .to_owned();
    let logs = tempfile::tempdir().expect("tempdir");
    let ca = Client::options(relay, a.path())
        .plaintext()
        .log(&logs.path().join("a.log"))
        .start();
    let _cb = Client::options(relay, b.path())
        .plaintext()
        .user(Some(&user))
        .start();
    converge("contents", &[a.path(), b.path()]);
    write(a.path(), "tool.sh", "#!/bin/sh\necho edited\n");
    write(b.path(), "new.txt", "from b");
    converge("more contents", &[a.path(), b.path()]);
    // A's bit stays A's (nothing could carry it; nothing took it away).
    assert!(is_exec(&a.path().join("tool.sh")));
    chmod(&a.path().join("tool.sh"), 0o644);
    chmod(&a.path().join("tool.sh"), 0o755);
    write(b.path(), "later.txt", "still syncing");
    converge("after a chmod", &[a.path(), b.path()]);
    assert!(is_exec(&a.path().join("tool.sh")));
    assert!(
        ca.wait_log(
            "does not know the executable bit",
            std::time::Duration::from_secs(5)
        ),
        "the client noticed the older server:\n{}",
        ca.log_tail(3_000)
    );
}

/// R-15.2.6 (breaker26 F0): new content from another device keeps the read
/// and write bits of the file it replaces here; a private file (0600,
/// 0400, 0640) does not become readable by every local account (0644)
/// when another device edits it. The executable bit still travels.
#[test]
fn an_edit_from_elsewhere_keeps_this_devices_read_and_write_bits() {
    let d = TwoDevices::start(|a| {
        for name in ["p.txt", "q.txt", "m.txt", "x.sh"] {
            write(a, name, "one\n");
        }
    });
    let (a, b) = (d.a.path(), d.b.path());
    converge("initial", &[a, b]);
    for (name, bits) in [
        ("p.txt", 0o600),
        ("q.txt", 0o400),
        ("m.txt", 0o640),
        ("x.sh", 0o600),
    ] {
        chmod(&b.join(name), bits);
    }
    settle();
    for name in ["p.txt", "q.txt", "m.txt", "x.sh"] {
        write(a, name, "two\n");
    }
    chmod(&a.join("x.sh"), 0o755);
    let placed = eventually(CONVERGE, || {
        ["p.txt", "q.txt", "m.txt", "x.sh"]
            .iter()
            .all(|n| fs::read_to_string(b.join(n)).is_ok_and(|t| t == "two\n"))
            && is_exec(&b.join("x.sh"))
    });
    assert!(placed, "A's edits and +x reach B");
    for (name, bits) in [
        ("p.txt", 0o600),
        ("q.txt", 0o400),
        ("m.txt", 0o640),
        ("x.sh", 0o700),
    ] {
        assert_eq!(mode(&b.join(name)), bits, "{name} on B");
    }
}
