//! End-to-end: a directory restore cut off by a crash of the server is
//! finished when the server starts again (PROTOCOL.md ), and the
//! restore command says it may be partly done (exit 3) instead of only
//! "connection lost". Outside tester breaker26 F3: after `kill -9` of the
//! server 0.2 s into the restore of a 1,500-file directory, the server and
//! both devices ended with 17 to 512 of the files, both devices said "in
//! sync", and the server's restart journaled the file it was writing as
//! "added outside the server".
//!
//! Each round removes `big/` (1,200 files) on A, restores it by the number
//! of its removal, and kills the server with SIGKILL once its copy of
//! `big/` holds K entries (K drawn from `RESTORE_CRASH_SEED`, one point per
//! round, `RESTORE_CRASH_ROUNDS` rounds, 3 by default): the server, A and B
//! must then end with the whole directory, compared by content.

mod common;

use common::restore_rig::{conflict_copies, RestoreRig};
use common::{cli, eventually, Rng, Tree};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Files in the restored directory.
const FILES: usize = 1_200;
/// How long one restore may take before the test gives up on it.
const RESTORE_LIMIT: Duration = Duration::from_secs(120);

/// How many rounds (`RESTORE_CRASH_ROUNDS`, default 3, at most 20).
fn rounds() -> usize {
    std::env::var("RESTORE_CRASH_ROUNDS")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(3)
        .clamp(1, 20)
}

/// The cloud-client binary (another build's with `CLOUD_TEST_CLIENT_BIN`).
fn client_bin() -> PathBuf {
    std::env::var_os("CLOUD_TEST_CLIENT_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_cloud-client")),
        PathBuf::from,
    )
}

/// The newest change that removed `big/`, as `versions` lists it.
fn removal_number(port: u16, folder: &Path) -> u64 {
    let dir = folder.to_str().expect("utf-8");
    let (code, out, err) = cli(port, &["versions", dir, "big"]);
    assert_eq!(code, 0, "versions: {err}");
    out.lines()
        .filter_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            match words.as_slice() {
                [n, _, "deleted", "dir", "big/"] => n.parse().ok(),
                _ => None,
            }
        })
        .max()
        .unwrap_or_else(|| panic!("no removal of big/ listed:\n{out}"))
}

/// Entries in the server's copy of `big/` (0 when it is not there).
fn entries(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| d.count())
}

/// The tree with `big/` and everything below it left out.
fn without_big(t: &Tree) -> Tree {
    t.iter()
        .filter(|(p, _)| p.as_str() != "big" && !p.starts_with("big/"))
        .map(|(p, c)| (p.clone(), c.clone()))
        .collect()
}

#[test]
fn a_directory_restore_cut_by_a_server_crash_is_finished_at_restart() {
    let seed = common::seed("RESTORE_CRASH_SEED");
    eprintln!("RESTORE_CRASH_SEED={seed}");
    let mut rng = Rng::new(seed);
    let mut files: Vec<(String, String)> = (0..FILES)
        .map(|i| {
            (
                format!("big/f{i:04}.txt"),
                format!("f{i} of big, seed {seed}\n"),
            )
        })
        .collect();
    files.push(("keep.txt".into(), "keep\n".into()));
    let borrowed: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, t)| (p.as_str(), t.as_str()))
        .collect();
    let mut rig = RestoreRig::start(&borrowed, Some("0.5"));
    let whole = rig.converged_ab("A, B and the server with big/");
    assert_eq!(
        whole.keys().filter(|p| p.starts_with("big/")).count(),
        FILES
    );
    let folder = rig.a.folder.clone();
    let big_on_server = rig.server_dir().join("big");
    let log = rig.path("server.log");
    let mut cut = 0;
    for round in 0..rounds() {
        std::fs::remove_dir_all(folder.join("big")).expect("rm -rf big");
        let removed = rig.converged_ab(&format!("round {round}: big/ removed everywhere"));
        assert_eq!(removed, without_big(&whole), "round {round}");
        let n = removal_number(rig.srv.port, &folder);
        // A point of the restore: after its first entry at the earliest,
        // so the restore surely reached the server before the kill.
        let k = 1 + rng.index(FILES);
        eprintln!("round {round}: restore before change {n}, server killed at {k} entries");
        let mut restore = Command::new(client_bin())
            .args(["restore", folder.to_str().expect("utf-8"), "big"])
            .args(["--version", &n.to_string(), "--insecure-plaintext"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run cloud-client restore");
        let started = Instant::now();
        let reached = eventually(RESTORE_LIMIT, || {
            entries(&big_on_server) >= k || matches!(restore.try_wait(), Ok(Some(_)))
        });
        assert!(reached, "round {round}: the restore never got going");
        rig.srv.kill9();
        let out = loop {
            if let Ok(Some(_)) = restore.try_wait() {
                break restore.wait_with_output().expect("restore output");
            }
            assert!(
                started.elapsed() < RESTORE_LIMIT,
                "round {round}: the restore never ended"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let code = out.status.code().unwrap_or(-1);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let there = entries(&big_on_server);
        eprintln!("round {round}: exit {code}, {there} entries on the server at the kill");
        match code {
            // Answered before the kill.
            0 => assert!(
                stdout.starts_with("restored big"),
                "round {round}: {stdout}"
            ),
            3 => {
                cut += 1;
                let again = format!(
                    "cloud-client restore {} big --version {n}",
                    folder.display()
                );
                assert!(
                    stderr.starts_with("cloud-client: the restore of big may be partly done: ")
                        && stderr.trim_end().ends_with(&again)
                        && stderr.trim_end().lines().count() == 1,
                    "round {round}: the restore's message:\n{stderr}"
                );
            }
            _ => panic!(
                "round {round}: restore exit {code} (want 0, or 3 when cut):\n{stdout}{stderr}"
            ),
        }
        std::thread::sleep(Duration::from_millis(300));
        rig.srv.start_again();
        let after = rig.converged_ab(&format!("round {round}: after the restart"));
        let missing: Vec<&String> = whole.keys().filter(|p| !after.contains_key(*p)).collect();
        assert!(
            after == whole,
            "round {round} (seed {seed}, killed at {k} entries, exit {code}): the server and \
             both devices hold {} of {FILES} files of big/; missing e.g. {:?}; conflict \
             copies {:?}",
            after.keys().filter(|p| p.starts_with("big/")).count(),
            missing.iter().take(5).collect::<Vec<_>>(),
            conflict_copies(&after)
        );
        rig.both_in_sync();
    }
    // The file the server was writing at the kill is the restore's, never
    // a change "added outside the server" (a hand's).
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let blamed: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("big/") && l.contains("added outside the server"))
        .collect();
    assert!(
        blamed.is_empty(),
        "the restore's files were journaled as a hand's: {blamed:?}"
    );
    eprintln!("{cut} of {} restores were cut by the kill", rounds());
}
