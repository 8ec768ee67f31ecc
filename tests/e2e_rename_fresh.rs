//! Files moved and edited right before the client starts are still the same
//! files (outside tester breaker23's F4; README "Permissions" and
//! "Watching", PROTOCOL.md ). Real binaries on loopback.
//!
//! A is stopped; B makes each file executable (one it edits instead); then,
//! as a script does, A moves and changes them and starts `--once` at once:
//! `mv chm.bin chm2.bin; echo more >> chm2.bin; cloud-client … --once`.
//! A file changed a moment ago counts as possibly still being written and
//! waits for the next look; before, its old path did not wait with it: A
//! pushed a Delete of the old name and later the moved file as a new one
//! (uploaded whole), so B's chmod was lost and B's edit brought the old name
//! back beside the new one. Now each is a Rename plus a delta upload.
//!
//! Variants: content appended, size cut (`truncate`), content unchanged but
//! the mtime fresh (`touch`), a chain `chn.bin -> chn1.bin -> chn2.bin`, a
//! directory moved with a fresh file in it, and the file edited on B (both
//! edits kept: one at the new name, the other in a conflict copy named
//! after it; the old name does not come back).

mod common;

use common::{append, chmod, converge, eventually, exec_bits, run_once, seed, write};
use common::{Rng, TwoDevices, CONVERGE};
use std::fs;
use std::path::Path;

const SIZE: usize = 1 << 20;

/// The files B chmods +x (the last one is below `d/`, which A moves).
const CHMODDED: [&str; 5] = ["chm.bin", "cut.bin", "chn.bin", "tch.bin", "d/f.bin"];

/// The new name each file has on A at the end.
const MOVED: [(&str, &str); 6] = [
    ("chm.bin", "chm2.bin"),
    ("cut.bin", "cut2.bin"),
    ("chn.bin", "chn2.bin"),
    ("tch.bin", "tch2.bin"),
    ("d/f.bin", "e/f.bin"),
    ("edt.bin", "edt2.bin"),
];

/// The reused byte count of `path`'s upload in the server's log, if any
/// (`detail="PATH (N bytes, R reused, delta …"`).
fn reused(log: &str, path: &str) -> Option<(u64, u64)> {
    let needle = format!("detail=\"{path} (");
    let line = log
        .lines()
        .find(|l| l.contains("request=push-file") && l.contains(&needle))?;
    let rest = &line[line.find(&needle)? + needle.len()..];
    let mut words = rest.split([' ', ',']).filter(|w| !w.is_empty());
    let size = words.next()?.parse().ok()?;
    let _bytes = words.next()?;
    let reused = words.next()?.parse().ok()?;
    Some((size, reused))
}

fn server_has(server: &Path, path: &str, exec: bool, tail: &[u8]) -> bool {
    exec_bits(server).get(path) == Some(&exec)
        && fs::read(server.join(path)).is_ok_and(|b| b.ends_with(tail))
}

#[test]
fn files_moved_and_changed_right_before_a_start_are_renames_keeping_others_changes() {
    let mut rng = Rng::new(seed("RENAME_FRESH_SEED"));
    let names: Vec<&str> = MOVED.iter().map(|(from, _)| *from).collect();
    let contents: Vec<Vec<u8>> = names.iter().map(|_| rng.bytes(SIZE)).collect();
    let mut d = TwoDevices::start(|a| {
        for (name, content) in names.iter().zip(&contents) {
            write(a, name, content);
        }
    });
    let (a, b) = (d.a.path().to_owned(), d.b.path().to_owned());
    let server = d.server.user_dir(&d.user);
    d.ca.stop();
    for name in CHMODDED {
        chmod(&b.join(name), 0o755);
    }
    append(&b.join("edt.bin"), "edited on B\n");
    let on_server = eventually(CONVERGE, || {
        CHMODDED
            .iter()
            .all(|n| exec_bits(&server).get(*n) == Some(&true))
            && server_has(&server, "edt.bin", false, b"edited on B\n")
    });
    assert!(on_server, "B's changes reached the server");
    let log_from = d.server.conn_log().len();

    // A, stopped: move and change, then start at once (no delay).
    let mv = |from: &str, to: &str| fs::rename(a.join(from), a.join(to)).expect("mv");
    mv("chm.bin", "chm2.bin");
    append(&a.join("chm2.bin"), "more\n");
    mv("cut.bin", "cut2.bin");
    fs::OpenOptions::new()
        .write(true)
        .open(a.join("cut2.bin"))
        .and_then(|f| f.set_len(SIZE as u64 - 1000))
        .expect("truncate");
    mv("chn.bin", "chn1.bin");
    mv("chn1.bin", "chn2.bin");
    append(&a.join("chn2.bin"), "more\n");
    mv("tch.bin", "tch2.bin");
    fs::File::options()
        .write(true)
        .open(a.join("tch2.bin"))
        .and_then(|f| f.set_modified(std::time::SystemTime::now()))
        .expect("touch");
    mv("d", "e");
    append(&a.join("e/f.bin"), "more\n");
    mv("edt.bin", "edt2.bin");
    append(&a.join("edt2.bin"), "edited on A\n");
    let once = run_once(d.server.port, &a, None);
    let stderr = String::from_utf8_lossy(&once.stderr).into_owned();

    d.ca.restart();
    let end = converge("after A's start", &[&a, &b, &server]);
    let log = d.server.conn_log()[log_from..].to_owned();
    let pushes: Vec<&str> = log.lines().filter(|l| l.contains("request=push")).collect();
    let shown = pushes.join("\n");
    assert!(
        !log.contains("request=push-delete"),
        "nothing deleted (--once: {:?}):\n{shown}\n{stderr}",
        once.status
    );
    for (from, to) in MOVED {
        let rename = if from == "d/f.bin" {
            ("d", "e")
        } else {
            (from, to)
        };
        let said = format!("{} -> {}: Applied", rename.0, rename.1);
        assert!(
            pushes
                .iter()
                .any(|l| l.contains("request=push-rename") && l.contains(&said)),
            "{from} -> {to} sent as a rename:\n{shown}"
        );
        assert!(!end.contains_key(from), "{from} is back: {:?}", end.keys());
    }
    let bits = exec_bits(&server);
    for (from, to) in &MOVED[..5] {
        assert_eq!(
            bits.get(*to),
            Some(&true),
            "{from}'s chmod on B kept at {to}"
        );
        assert_eq!(exec_bits(&a).get(*to), Some(&true), "{to} on A");
    }
    // Both edits of edt.bin are kept, one at the new name, one in a copy.
    let with = |tail: &[u8]| {
        end.iter()
            .filter(|(_, c)| c.as_ref().is_some_and(|c| c.ends_with(tail)))
            .map(|(p, _)| p.clone())
            .collect::<Vec<_>>()
    };
    let (by_a, by_b) = (with(b"edited on A\n"), with(b"edited on B\n"));
    let kept = [by_a.as_slice(), by_b.as_slice()].concat();
    assert!(
        by_a.len() == 1 && by_b.len() == 1 && kept.contains(&"edt2.bin".to_owned()),
        "each edit once, one at edt2.bin: {:?}",
        end.keys()
    );
    assert!(kept.iter().all(|p| p.starts_with("edt2")), "{kept:?}");
    // The edits went as deltas on the moved files: all but the chunk with
    // the changed end was on the server already (before: 0 bytes reused).
    for path in ["chm2.bin", "chn2.bin", "e/f.bin"] {
        let (size, reused) = reused(&log, path).unwrap_or_else(|| panic!("{path}:\n{shown}"));
        assert!(
            reused * 2 >= size,
            "{path}: {reused} of {size} bytes reused:\n{shown}"
        );
    }
    assert!(
        once.status.success(),
        "--once exit {:?}:\n{stderr}",
        once.status
    );
}
