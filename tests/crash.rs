//! Crashes at the worst moment, with the real binaries: the server killed
//! (SIGKILL) in the middle of a 10,000-file upload and of a large directory
//! rename, a client killed in the middle of a large download and of a large
//! upload. After each: nothing visible is ever a partial file (every file is
//! hash-checked against what was written), the server recovers its journal,
//! the clients reconnect and finish, and every tree converges.

mod common;

use common::{
    converge_stable, eventually, log_tail, new_user, tree, walk, write, Client, Rng, Server, Tree,
};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const RATE: &str = "0.3";
/// Generous: CI machines are shared and slow.
const CONVERGE: Duration = Duration::from_secs(180);
const STABLE: Duration = Duration::from_millis(1_000);

/// Content of file `i` of a test: unique, a few hundred bytes.
fn small(i: usize) -> Vec<u8> {
    let mut data = format!("file {i}\n").into_bytes();
    data.extend(Rng::new(i as u64).bytes(100 + i % 400));
    data
}

/// The user ID a client saved in its folder.
fn user_of(folder: &Path) -> String {
    let file = folder.join(".cloudservice/identity");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(text) = fs::read_to_string(&file) {
            if let Some(id) = text.lines().find_map(|l| l.strip_prefix("user ")) {
                return id.to_owned();
            }
        }
        assert!(
            Instant::now() < deadline,
            "the client never saved its identity"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Number of regular files below `dir`.
fn file_count(dir: &Path) -> usize {
    walk(dir).filter(|(_, e)| e.file_type().is_file()).count()
}

/// Asserts every file in `dir` (client state folder excluded) is exactly
/// what `expected` says for its path; returns how many files there are.
fn assert_complete(dir: &Path, expected: &BTreeMap<String, Vec<u8>>, when: &str) -> usize {
    let mut files = 0;
    for (path, content) in tree(dir) {
        let Some(bytes) = content else { continue };
        files += 1;
        let want = expected
            .get(&path)
            .unwrap_or_else(|| panic!("{when}: unexpected file {path} in {}", dir.display()));
        assert!(
            bytes == *want,
            "{when}: {path} in {} is not a complete version ({} of {} bytes)",
            dir.display(),
            bytes.len(),
            want.len()
        );
    }
    files
}

/// The files of a converged tree, which must be exactly `expected`.
fn assert_tree_is(t: &Tree, expected: &BTreeMap<String, Vec<u8>>) {
    let files: BTreeMap<&String, &Vec<u8>> = t
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| (k, v)))
        .collect();
    let missing: Vec<&String> = expected.keys().filter(|k| !files.contains_key(k)).collect();
    let extra: Vec<&&String> = files
        .keys()
        .filter(|k| !expected.contains_key(**k))
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {} files (e.g. {:?}), {} unexpected (e.g. {:?})",
        missing.len(),
        missing.first(),
        extra.len(),
        extra.first()
    );
    for (k, v) in files {
        assert!(expected[k] == *v, "{k} has the wrong content");
    }
}

/// Waits until the folders converge and stay so for [`STABLE`]; panics
/// with the differences and the tails of the logs of `s`.
fn converge(folders: &[&Path], s: &Setup) -> Tree {
    match converge_stable(folders, CONVERGE, STABLE) {
        Ok(t) => t,
        Err(diff) => {
            let tails: Vec<String> = ["a", "b", "server"]
                .iter()
                .map(|name| s.log(name))
                .map(|l| format!("--- {} ---\n{}", l.display(), log_tail(&l, 2_000)))
                .collect();
            panic!("no convergence:\n{diff}\n{}", tails.join("\n"))
        }
    }
}

/// The restarted server said it recovered the journal after the crash.
fn assert_recovered(srv: &Server) {
    let log = srv.log_tail(1 << 20);
    let line = log
        .lines()
        .find(|l| l.contains("recovered after an unclean stop"))
        .unwrap_or_else(|| panic!("no recovery in the server log:\n{log}"));
    eprintln!("{line}");
}

struct Setup {
    base: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        Setup {
            base: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn dir(&self, name: &str) -> PathBuf {
        let d = self.base.path().join(name);
        fs::create_dir_all(&d).expect("mkdir");
        d
    }

    fn log(&self, name: &str) -> PathBuf {
        self.base.path().join(format!("{name}.log"))
    }

    fn server(&self) -> Server {
        Server::options()
            .data(&self.dir("server"))
            .log(&self.log("server"))
            .start()
    }

    /// A watching client at [`RATE`] logging to `<name>.log`.
    fn client(&self, port: u16, folder: &Path, user: Option<&str>, name: &str) -> Client {
        Client::options(port, folder)
            .user(user)
            .rate(RATE)
            .log(&self.log(name))
            .start()
    }
}

#[test]
fn server_killed_during_a_10000_file_upload() {
    let s = Setup::new();
    let a = s.dir("a");
    let b = s.dir("b");
    let mut expected = BTreeMap::new();
    for i in 0..10_000 {
        let path = format!("many/d{:02}/f{i:05}.txt", i % 100);
        write(&a, &path, small(i));
        expected.insert(path, small(i));
    }
    let mut srv = s.server();
    let ca = s.client(srv.port, &a, None, "a");
    let user = user_of(&a);
    let on_server = srv.user_dir(&user);
    // Two crashes, at roughly 15% and 50% of the upload (if it is not over by then).
    for threshold in [1_500, 5_000] {
        assert!(
            eventually(CONVERGE, || { file_count(&on_server) >= threshold }),
            "timed out waiting for part of the upload"
        );
        srv.kill9();
        let there = assert_complete(&on_server, &expected, "after the server crash");
        eprintln!("server killed with {there} of 10000 files stored");
        srv.start_again();
    }
    let cb = s.client(srv.port, &b, Some(&user), "b");
    let t = converge(&[&a, &b, &on_server], &s);
    assert_tree_is(&t, &expected);
    assert_recovered(&srv);
    drop((ca, cb));
    srv.stop();
}

#[test]
fn server_killed_during_a_large_directory_rename() {
    let s = Setup::new();
    let a = s.dir("a");
    let b = s.dir("b");
    let mut expected = BTreeMap::new();
    for i in 0..3_000 {
        let rel = format!("s{:02}/f{i:04}.txt", i % 30);
        write(&a, &format!("big/{rel}"), small(i));
        expected.insert(rel, small(i));
    }
    write(&a, "other.txt", "untouched");
    let mut srv = s.server();
    let ca = s.client(srv.port, &a, None, "a");
    let user = user_of(&a);
    let on_server = srv.user_dir(&user);
    let cb = s.client(srv.port, &b, Some(&user), "b");
    converge(&[&a, &b, &on_server], &s);

    fs::rename(a.join("big"), a.join("moved")).expect("rename");
    assert!(
        eventually(CONVERGE, || {
            on_server.join("moved").exists() || !on_server.join("big").exists()
        }),
        "timed out waiting for the rename on the server"
    );
    srv.kill9();
    // Whatever the moment, every file is whole, under one name or the other.
    let mut either = BTreeMap::new();
    for (rel, data) in &expected {
        either.insert(format!("big/{rel}"), data.clone());
        either.insert(format!("moved/{rel}"), data.clone());
    }
    either.insert("other.txt".to_owned(), b"untouched".to_vec());
    let there = assert_complete(&on_server, &either, "after the server crash");
    assert_eq!(there, 3_001, "no file lost or doubled by the crash");
    srv.start_again();

    let t = converge(&[&a, &b, &on_server], &s);
    let mut after: BTreeMap<String, Vec<u8>> = expected
        .iter()
        .map(|(rel, data)| (format!("moved/{rel}"), data.clone()))
        .collect();
    after.insert("other.txt".to_owned(), b"untouched".to_vec());
    assert_tree_is(&t, &after);
    assert_recovered(&srv);
    drop((ca, cb));
    srv.stop();
}

/// A large file and a few medium ones.
fn large_set(big_mib: usize) -> BTreeMap<String, Vec<u8>> {
    let mut rng = Rng::new(42);
    let mut set = BTreeMap::new();
    set.insert("big.bin".to_owned(), rng.bytes(big_mib << 20));
    for i in 0..8 {
        set.insert(format!("medium/m{i}.bin"), rng.bytes(512 * 1024 + i));
    }
    set
}

/// Names of files in a temporary area: `tmp/` and, beside it, `partial/`,
/// where a delta transfer builds its file and a cut-off one keeps its
/// verified chunks for a resume (PROTOCOL.md §13.5).
fn temp_files(tmp: &Path) -> Vec<PathBuf> {
    let partial = tmp.with_file_name("partial");
    [tmp, partial.as_path()]
        .iter()
        .flat_map(|dir| {
            fs::read_dir(dir)
                .map(|rd| rd.filter_map(Result::ok).map(|e| e.path()).collect())
                .unwrap_or_else(|_| Vec::new())
        })
        .collect()
}

#[test]
fn client_killed_during_a_large_download() {
    let s = Setup::new();
    let a = s.dir("a");
    let b = s.dir("b");
    let expected = large_set(128);
    for (path, data) in &expected {
        write(&a, path, data);
    }
    let mut srv = s.server();
    let user = new_user(srv.port, &a);
    let mut cb = s.client(srv.port, &b, Some(&user), "b");
    let tmp = b.join(".cloudservice/tmp");
    // Watch B's folder while it downloads: nothing partial may ever show.
    let deadline = Instant::now() + CONVERGE;
    loop {
        for (path, content) in tree(&b) {
            if let Some(bytes) = content {
                assert_eq!(
                    bytes.len(),
                    expected[&path].len(),
                    "{path} visible while partial"
                );
            }
        }
        let downloading = temp_files(&tmp)
            .iter()
            .any(|f| fs::metadata(f).is_ok_and(|m| m.len() > 0));
        if downloading {
            break;
        }
        assert!(Instant::now() < deadline, "no download seen");
        std::thread::sleep(Duration::from_millis(2));
    }
    cb.kill9();
    let there = assert_complete(&b, &expected, "after the client crash");
    eprintln!(
        "client killed with {there} of {} files placed",
        expected.len()
    );
    cb.spawn();
    let ca = s.client(srv.port, &a, None, "a");
    let on_server = srv.user_dir(&user);
    let t = converge(&[&a, &b, &on_server], &s);
    assert_tree_is(&t, &expected);
    assert!(
        temp_files(&tmp).is_empty(),
        "the interrupted download's temporary files were cleaned up"
    );
    drop((ca, cb));
    srv.stop();
}

#[test]
fn client_killed_during_a_large_upload() {
    let s = Setup::new();
    let a = s.dir("a");
    let b = s.dir("b");
    write(&a, "seed.txt", "seed");
    let mut srv = s.server();
    let user = new_user(srv.port, &a);
    let on_server = srv.user_dir(&user);
    let server_tmp = srv
        .data
        .join(".cloudservice-server")
        .join(&user)
        .join("tmp");
    let mut ca = s.client(srv.port, &a, None, "a");
    let cb = s.client(srv.port, &b, Some(&user), "b");
    converge(&[&a, &b, &on_server], &s);

    let mut expected = large_set(128);
    // Written elsewhere and moved in, so the client sees it whole at once.
    let staging = s.dir("staging");
    for (path, data) in &expected {
        write(&staging, path, data);
    }
    fs::rename(staging.join("big.bin"), a.join("big.bin")).expect("move in");
    fs::rename(staging.join("medium"), a.join("medium")).expect("move in");
    expected.insert("seed.txt".to_owned(), b"seed".to_vec());
    assert!(
        eventually(CONVERGE, || {
            temp_files(&server_tmp)
                .iter()
                .any(|f| fs::metadata(f).is_ok_and(|m| m.len() > 1 << 20))
        }),
        "timed out waiting for the upload to start"
    );
    ca.kill9();
    assert_complete(
        &on_server,
        &expected,
        "on the server after the client crash",
    );
    assert_complete(&b, &expected, "on the other client after the crash");
    ca.spawn();
    let t = converge(&[&a, &b, &on_server], &s);
    assert_tree_is(&t, &expected);
    drop((ca, cb));
    srv.stop();
}
