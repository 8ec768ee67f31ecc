//! End-to-end: the removal hold (PROTOCOL.md R-5.6.6, outside tester's
//! findings 8 and 9) with the real binaries. A push round that removes 10 or
//! more synced files waits until the removal stops growing: a folder emptied
//! over several seconds (`rm -rf` of a big tree, a slow unmount) is judged
//! whole by the empty-folder guard, so nothing is deleted anywhere and the
//! client stops; a removal made on purpose reaches the other device whole,
//! each directory as one removal (one version number that restores it
//! whole); a few removed files are pushed with no wait.
//!
//! `CLOUD_TEST_CLIENT_BIN=/path/to/older/cloud-client` runs these against
//! another build (the slow emptying, the directory numbers and the restore
//! fail with the client before R-5.6.6).

mod common;

use common::cli;

use common::{converge, eventually, new_user, settle, tree, write, Client, Server, Verbosity};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The line the client logs when it holds a round back.
const HOLD_LINE: &str = "waiting until the removal stops growing";

/// A server, a user made from `a` (after `prepare`), a watching client on
/// `a` logging to a file (normal verbosity) and one on `b`, converged.
struct Fixture {
    server: Server,
    a: tempfile::TempDir,
    b: tempfile::TempDir,
    user: String,
    log: PathBuf,
    _logs: tempfile::TempDir,
    ca: Client,
    _cb: Client,
}

fn fixture(prepare: impl FnOnce(&Path)) -> Fixture {
    let server = Server::start();
    let a = tempfile::tempdir().expect("temp dir");
    let b = tempfile::tempdir().expect("temp dir");
    let logs = tempfile::tempdir().expect("temp dir");
    let log = logs.path().join("a.log");
    prepare(a.path());
    settle();
    let user = new_user(server.port, a.path());
    let ca = Client::options(server.port, a.path())
        .verbosity(Verbosity::Normal)
        .log(&log)
        .start();
    let cb = Client::start(server.port, b.path(), Some(&user));
    converge_long("initial", &[a.path(), b.path()]);
    Fixture {
        server,
        a,
        b,
        user,
        log,
        _logs: logs,
        ca,
        _cb: cb,
    }
}

/// [`converge`] with time for thousands of files on a loaded machine.
fn converge_long(what: &str, folders: &[&Path]) {
    if let Err(diff) = common::converge_stable(folders, Duration::from_secs(120), Duration::ZERO) {
        panic!("{what}: trees did not converge.\n{diff}");
    }
}

/// `top` directories `d{i}`, each with `sub` directories of `files` files.
fn nested(root: &Path, top: usize, sub: usize, files: usize) {
    for i in 0..top {
        for j in 0..sub {
            for k in 0..files {
                write(
                    root,
                    &format!("d{i}/s{j}/f{k}.txt"),
                    format!("{i} {j} {k}\n"),
                );
            }
        }
    }
}

fn files_in(root: &Path) -> usize {
    tree(root).values().filter(|v| v.is_some()).count()
}

fn log_of(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

/// `versions FOLDER PATH`: (N, cause, path) per line.
fn versions(port: u16, folder: &Path, path: &str) -> Vec<(u64, String, String)> {
    let folder = folder.to_string_lossy().into_owned();
    let (code, out, err) = cli(port, &["versions", &folder, path]);
    assert_eq!(code, 0, "versions failed: {err}");
    out.lines()
        .map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let n = f[0].parse().unwrap_or_else(|_| panic!("N in {line:?}"));
            (
                n,
                f[2].to_owned(),
                f.last().copied().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

/// Removes every entry of `root` but the state folder, one top-level entry
/// every `gap` (a removal slower than the watcher's debounce).
fn empty_slowly(root: &Path, gap: Duration) {
    let mut entries: Vec<PathBuf> = fs::read_dir(root)
        .expect("read folder")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.file_name().is_some_and(|n| n != ".cloudservice"))
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            fs::remove_dir_all(&path).expect("rm -r");
        } else {
            fs::remove_file(&path).expect("rm");
        }
        std::thread::sleep(gap);
    }
}

/// `rm -rf ROOT/*` through a shell, as a user types it: the glob skips
/// top-level names beginning with `.` (and so the state folder).
fn rm_rf_star(root: &Path) {
    let status = Command::new("sh")
        .arg("-c")
        .arg("rm -rf -- \"$1\"/*")
        .arg("sh")
        .arg(root)
        .status()
        .expect("rm");
    assert!(status.success());
}

/// After the emptying: A stops with the guard's message, the server and B
/// keep every file.
fn assert_nothing_deleted(f: &mut Fixture, before: usize) {
    let status = f.ca.wait_exit(Duration::from_secs(60));
    assert!(
        status.is_some_and(|s| !s.success()),
        "A stops with an error: {status:?}"
    );
    let log = log_of(&f.log);
    assert!(log.contains("refusing"), "the guard's message: {log}");
    std::thread::sleep(Duration::from_secs(2));
    let user_dir = f.server.user_dir(&f.user);
    assert_eq!(files_in(&user_dir), before, "the server deleted nothing");
    assert_eq!(files_in(f.b.path()), before, "B deleted nothing");
}

/// Finding 8 with a removal that takes ~3 s (longer than the 2 s most a
/// round waits for quiet): 3,000 files in directories made while the client
/// ran. With the client before R-5.6.6, the deletions seen in the first 2 s
/// were pushed before the guard stopped it.
#[test]
fn a_folder_emptied_slowly_deletes_nothing() {
    let mut f = fixture(|a| write(a, "seed.txt", "s\n"));
    nested(f.a.path(), 30, 10, 10);
    converge_long("3,000 new files", &[f.a.path(), f.b.path()]);
    let before = files_in(f.a.path());
    assert_eq!(before, 3_001);
    empty_slowly(f.a.path(), Duration::from_millis(100));
    assert_nothing_deleted(&mut f, before);
    assert!(log_of(&f.log).contains(HOLD_LINE));
}

/// Finding 8 as the tester did it: `rm -rf A/*` of a fresh nested tree.
#[test]
fn rm_rf_of_everything_deletes_nothing() {
    let mut f = fixture(|a| write(a, "seed.txt", "s\n"));
    nested(f.a.path(), 30, 10, 10);
    // 40 levels deep as well.
    let deep: String = (0..40).map(|i| format!("l{i}/")).collect();
    write(f.a.path(), &format!("{deep}bottom.txt"), "deep\n");
    converge_long("3,002 new files", &[f.a.path(), f.b.path()]);
    let before = files_in(f.a.path());
    rm_rf_star(f.a.path());
    assert_nothing_deleted(&mut f, before);
}

/// breaker25 F1: `rm -rf A/*` where the folder also holds dot-files at its
/// top (the synced `.cloudignore`, a `.envrc`, a `.git`-like directory): the
/// glob leaves them, and the guard took the folder for not empty, so 40 of
/// 41 files were deleted on the server and every device. Now A stops with
/// the guard's message naming what was left; `--confirm-empty` then pushes
/// the removal and keeps the dot-entries.
#[test]
fn rm_rf_star_leaving_dot_names_deletes_nothing() {
    let mut f = fixture(|a| {
        write(a, ".cloudignore", "*.tmp\n");
        write(a, ".envrc", "export X=1\n");
        write(a, ".meta/config", "c\n");
        nested(a, 4, 2, 5);
    });
    let before = files_in(f.a.path());
    assert_eq!(before, 43);
    rm_rf_star(f.a.path());
    assert_eq!(files_in(f.a.path()), 3, "the glob left the dot-entries");
    assert_nothing_deleted(&mut f, before);
    let log = log_of(&f.log);
    assert!(
        log.contains("holds only .cloudignore, .envrc, .meta") && log.contains("40 files"),
        "the message names what is left and what is gone: {log}"
    );
    let confirmed = Client::options(f.server.port, f.a.path())
        .flag("--confirm-empty")
        .run_once();
    assert!(
        confirmed.status.success(),
        "confirmed: {}",
        String::from_utf8_lossy(&confirmed.stderr)
    );
    let user_dir = f.server.user_dir(&f.user);
    assert!(
        eventually(Duration::from_secs(60), || files_in(f.b.path()) == 3),
        "the removal reaches B"
    );
    assert_eq!(
        files_in(&user_dir),
        3,
        "the server kept the dot-entries only"
    );
    assert_eq!(tree(f.b.path()), tree(f.a.path()));
}

/// The other side of the same rule: a folder whose synced files all live
/// under dot-names (dotfiles synced between machines) removes a directory
/// of 20 of them as an ordinary removal, with no stop.
#[test]
fn removing_most_of_a_dotfiles_folder_is_an_ordinary_removal() {
    let f = fixture(|a| {
        write(a, ".bashrc", "b\n");
        for i in 0..20 {
            write(a, &format!(".config/app/f{i}.conf"), "c\n");
        }
    });
    fs::remove_dir_all(f.a.path().join(".config")).expect("rm -r");
    converge_long("the removal reaches B", &[f.a.path(), f.b.path()]);
    assert_eq!(files_in(f.b.path()), 1);
    assert!(!log_of(&f.log).contains("refusing"));
}

/// A few removed files in a big synced tree: no hold, pushed as soon as the
/// debounce allows. Then 60 % of the folder removed on purpose, slowly (six
/// directories of 100 files, 100 ms apart): every removal reaches B, each
/// directory as ONE removal whose number restores all its files (finding 9:
/// the client before R-5.6.6 pushed most of them as single deletions).
#[test]
fn removals_on_purpose_arrive_whole_and_a_few_are_not_held() {
    let f = fixture(|a| nested(a, 10, 10, 10));
    let (a, b, port) = (f.a.path(), f.b.path(), f.server.port);

    // A few files: no hold.
    let start = Instant::now();
    for k in 0..3 {
        fs::remove_file(a.join(format!("d9/s9/f{k}.txt"))).expect("rm");
    }
    assert!(
        eventually(Duration::from_secs(20), || !b.join("d9/s9/f2.txt").exists()
            && !b.join("d9/s9/f0.txt").exists()),
        "3 deletions reach B"
    );
    let took = start.elapsed();
    assert!(
        !log_of(&f.log).contains(HOLD_LINE),
        "3 removals were held ({took:?}): {}",
        log_of(&f.log)
    );
    eprintln!("3 deletions reached B in {took:?}");

    // 60 %, slowly.
    let kept = tree(a);
    for i in 0..6 {
        fs::remove_dir_all(a.join(format!("d{i}"))).expect("rm -r");
        std::thread::sleep(Duration::from_millis(100));
    }
    let t = converge("60 % removed", &[a, b]);
    assert_eq!(files_in(a), 1_000 - 3 - 600);
    for path in kept.keys() {
        let removed =
            (0..6).any(|i| path.starts_with(&format!("d{i}/")) || path == &format!("d{i}"));
        assert_eq!(t.contains_key(path), !removed, "{path}");
    }
    assert!(f.ca.started());

    // Each directory went as one removal: one number for all its entries.
    for i in 0..6 {
        let dir = format!("d{i}");
        let listed = versions(port, a, &dir);
        assert_eq!(listed.len(), 111, "{dir}/, 10 subdirectories, 100 files");
        let numbers: std::collections::BTreeSet<u64> = listed.iter().map(|l| l.0).collect();
        assert_eq!(
            numbers.len(),
            1,
            "{dir} removed in {} changes",
            numbers.len()
        );
    }
    assert!(log_of(&f.log).contains(HOLD_LINE), "the removal was held");
    // And that number restores it whole (finding 9).
    let n = versions(port, a, "d0")[0].0.to_string();
    let folder = a.to_string_lossy().into_owned();
    let (code, out, err) = cli(port, &["restore", &folder, "d0", "--version", &n]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("restored "), "{out}");
    for folder in [a, b] {
        assert!(
            eventually(Duration::from_secs(30), || {
                let t = tree(&folder.join("d0"));
                t.values().filter(|v| v.is_some()).count() == 100
            }),
            "d0's 100 files are back"
        );
    }
}

/// Outside tester breaker15, F2: the guard's advice ("remove .cloudservice
/// and start again") made the folder a NEW user and deleted nothing. Now
/// the advice is `--confirm-empty`, which pushes the deletions to the
/// server and the other device; and the flag given to a folder that is not
/// empty at start leaves the guard on (a service that always passes it
/// still stops for an unmounted drive).
#[test]
fn confirm_empty_deletes_everywhere_and_only_an_empty_start() {
    let mut f = fixture(|a| {
        for i in 0..12 {
            write(a, &format!("f{i}.txt"), format!("{i}\n"));
        }
    });
    let (port, a) = (f.server.port, f.a.path().to_path_buf());
    f.ca.stop();
    empty_slowly(&a, Duration::ZERO);

    // Without the flag: stopped, with advice that names it; nothing deleted,
    // no new user.
    let refused = Client::options(port, &a).run_once();
    let said = String::from_utf8_lossy(&refused.stderr).into_owned();
    assert!(!refused.status.success(), "refused: {said}");
    assert!(said.contains("--confirm-empty"), "the advice: {said}");
    assert!(
        !said.contains("remove"),
        "no advice to remove the state: {said}"
    );
    assert!(
        !String::from_utf8_lossy(&refused.stdout).contains("user id"),
        "no new user"
    );
    let user_dir = f.server.user_dir(&f.user);
    assert_eq!(files_in(&user_dir), 12, "the server deleted nothing");

    // With it: the deletions reach the server and B.
    let confirmed = Client::options(port, &a).flag("--confirm-empty").run_once();
    assert!(
        confirmed.status.success(),
        "confirmed: {}",
        String::from_utf8_lossy(&confirmed.stderr)
    );
    assert!(
        eventually(Duration::from_secs(30), || files_in(&user_dir) == 0
            && files_in(f.b.path()) == 0),
        "every deletion reached the server ({}) and B ({})",
        files_in(&user_dir),
        files_in(f.b.path())
    );

    // The flag on a folder that is not empty at start: the guard stays.
    for i in 0..12 {
        write(&a, &format!("g{i}.txt"), format!("{i}\n"));
    }
    settle();
    let mut watching = Client::options(port, &a)
        .flag("--confirm-empty")
        .log(&f.log)
        .start();
    converge_long("12 new files", &[&a, f.b.path()]);
    empty_slowly(&a, Duration::ZERO);
    let status = watching.wait_exit(Duration::from_secs(60));
    assert!(
        status.is_some_and(|s| !s.success()),
        "the guard stops it: {status:?}"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(files_in(&user_dir), 12, "the server deleted nothing");
    assert_eq!(files_in(f.b.path()), 12, "B deleted nothing");
}
