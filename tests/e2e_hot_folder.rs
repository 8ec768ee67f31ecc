//! End-to-end: a "hot folder" consumer on device B (a print or OCR worker
//! woken by inotify) that deletes, moves into `done/` or replaces each file
//! the moment B's client places it: every such change reaches the server
//! and device A, and B's `status` says "in sync" only once it has
//! (PROTOCOL.md ).
//!
//! Found by an outside tester (breaker25 F3): 1–4 of 40 deletions never
//! reached the server in 5 of 6 runs, also when the file arrived as
//! another device's rename, and a consumer moving files into `done/` left
//! the originals at the old path on every device; B's `status` said "in
//! sync" for good (after the 60 s comparison and a restart too). The
//! client placed the file, the consumer took it within microseconds, and
//! the client's look that indexes a placed file found nothing there and
//! recorded nothing, while the pull was acknowledged: the file was never
//! known on B, so its absence was no change to push.
//!
//! B's client runs with `CLOUD_TEST_PLACED_DELAY_MS` (it waits that long
//! between moving a download into place and looking at it), so the
//! consumer acts in that window every time. The class: A's new files at
//! the top and A's renames `inbox/` → `outbox/` (placed on B by renaming
//! the file the same pull deleted), each consumed on B by a deletion, a
//! move into `done/`, or a replacement by other content (written beside
//! the folder, renamed over the file). Then A, B and the server hold the
//! same tree, the one the consumer's actions make, compared by content,
//! and B's status is "in sync" (exit 0).

mod common;

use common::{converge, new_user, status_text, tree, write, Client, Server, Tree, CONVERGE};
use notify::{RecursiveMode, Watcher};
use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long B's client waits between placing a file and indexing it.
const DELAY_MS: u64 = 250;

/// Jobs per run: each of the three actions on a third of them.
const JOBS: usize = 9;

/// What B's consumer does to job `i`.
fn action(i: usize) -> &'static str {
    ["delete", "move", "replace"][i % 3]
}

fn job(i: usize) -> String {
    format!("job{i}.txt")
}

fn content(i: usize) -> String {
    format!("job {i}\n")
}

fn result(i: usize) -> String {
    format!("processed {i}\n")
}

/// A consumer of B's directory `watched`: on every inotify event there it
/// takes each `job*.txt` it finds (once each) and does [`action`] to it
/// (`done/` and the replacement's scratch file are outside `watched`).
/// Stops when dropped.
struct Consumer {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<usize>>,
}

impl Consumer {
    fn start(b: &Path, watched: &Path, scratch: &Path) -> Consumer {
        let (tx, rx) = std::sync::mpsc::channel();
        let mut watcher = notify::recommended_watcher(tx).expect("inotify");
        watcher
            .watch(watched, RecursiveMode::NonRecursive)
            .expect("watch");
        let stop = Arc::new(AtomicBool::new(false));
        let (b, watched, scratch) = (b.to_owned(), watched.to_owned(), scratch.to_owned());
        let stopping = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let _watcher = watcher;
            let mut taken = HashSet::new();
            while !stopping.load(Ordering::Relaxed) {
                if rx.recv_timeout(Duration::from_millis(50)).is_err() {
                    continue;
                }
                consume(&b, &watched, &scratch, &mut taken);
            }
            taken.len()
        });
        Consumer {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops the consumer; how many files it took.
    fn stop(&mut self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .map_or(0, |t| t.join().expect("consumer"))
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Takes every job file in `watched` not taken before (`taken`).
fn consume(b: &Path, watched: &Path, scratch: &Path, taken: &mut HashSet<usize>) {
    let Ok(names) = fs::read_dir(watched) else {
        return;
    };
    for name in names.filter_map(Result::ok).map(|e| e.file_name()) {
        let name = name.to_string_lossy().into_owned();
        let Some(i) = name
            .strip_prefix("job")
            .and_then(|n| n.strip_suffix(".txt"))
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|i| !taken.contains(i))
        else {
            continue;
        };
        let at = watched.join(&name);
        let done = match action(i) {
            "delete" => fs::remove_file(&at).is_ok(),
            "move" => fs::rename(&at, b.join("done").join(&name)).is_ok(),
            _ => {
                let new = scratch.join(&name);
                fs::write(&new, result(i)).is_ok() && fs::rename(&new, &at).is_ok()
            }
        };
        if done {
            taken.insert(i);
        }
    }
}

/// The tree the consumer's actions make: `keep`, `done/` and the jobs
/// as each action leaves them in `dir` (`""`: the top).
fn expected(dir: &str, other_dirs: &[&str]) -> Tree {
    let mut out: Tree = BTreeMap::new();
    out.insert("keep.txt".into(), Some(b"keep\n".to_vec()));
    out.insert("done".into(), None);
    for d in other_dirs {
        out.insert((*d).into(), None);
    }
    for i in 0..JOBS {
        let at = format!("{dir}{}", job(i));
        match action(i) {
            "delete" => {}
            "move" => {
                out.insert(format!("done/{}", job(i)), Some(content(i).into_bytes()));
            }
            _ => {
                out.insert(at, Some(result(i).into_bytes()));
            }
        }
    }
    out
}

/// A server, device A and device B (its client slowed down after each
/// placement) holding `keep.txt`, `done/` and what `prepare` wrote on A.
struct Fixture {
    // Dropped first: the clients stop before their folders go.
    ca: Client,
    cb: Client,
    server: Server,
    top: tempfile::TempDir,
    user: String,
}

impl Fixture {
    fn start(prepare: impl FnOnce(&Path)) -> Fixture {
        let server = Server::start();
        let top = tempfile::tempdir().expect("temp dir");
        let (a, b) = (top.path().join("a"), top.path().join("b"));
        for dir in [&a, &b, &top.path().join("scratch")] {
            fs::create_dir(dir).expect("mkdir");
        }
        write(&a, "keep.txt", "keep\n");
        fs::create_dir(a.join("done")).expect("mkdir done");
        prepare(&a);
        let user = new_user(server.port, &a);
        let ca = Client::start(server.port, &a, None);
        let cb = Client::options(server.port, &b)
            .user(Some(&user))
            .env("CLOUD_TEST_PLACED_DELAY_MS", &DELAY_MS.to_string())
            .start();
        converge("initial", &[&a, &b]);
        Fixture {
            ca,
            cb,
            server,
            top,
            user,
        }
    }

    fn a(&self) -> PathBuf {
        self.top.path().join("a")
    }

    fn b(&self) -> PathBuf {
        self.top.path().join("b")
    }

    fn scratch(&self) -> PathBuf {
        self.top.path().join("scratch")
    }

    /// A, B and the server converge on `want` (by content), and B's
    /// status then says "in sync".
    fn assert_consumed(&mut self, want: &Tree, taken: usize) {
        assert_eq!(taken, JOBS, "the consumer took every job");
        let (a, b) = (self.a(), self.b());
        let server = self.server.user_dir(&self.user);
        let deadline = Instant::now() + CONVERGE;
        let trees = loop {
            let trees = [tree(&a), tree(&b), tree(&server)];
            if trees.iter().all(|t| t == want) || Instant::now() > deadline {
                break trees;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        for (name, got) in ["A", "B", "server"].iter().zip(&trees) {
            assert_eq!(got, want, "{name}: {}", common::tree::tree_diff(got, want));
        }
        let (code, text) = status_text(&b, false);
        assert_eq!(code, 0, "B's status: {text}");
        assert!(text.contains("in sync"), "B's status: {text}");
        let _ = (&self.ca, &self.cb);
    }
}

/// A's new files, each consumed on B right after B placed it.
#[test]
fn new_files_consumed_as_they_arrive_reach_every_device() {
    let mut f = Fixture::start(|_| {});
    let mut consumer = Consumer::start(&f.b(), &f.b(), &f.scratch());
    for i in 0..JOBS {
        write(&f.a(), &job(i), content(i));
        std::thread::sleep(Duration::from_millis(150));
    }
    let taken = wait_taken(&mut consumer);
    f.assert_consumed(&expected("", &[]), taken);
}

/// A's renames `inbox/` → `outbox/`, each consumed in B's `outbox/` right
/// after B placed it (by renaming the file the same pull deleted).
#[test]
fn renamed_files_consumed_as_they_arrive_reach_every_device() {
    let mut f = Fixture::start(|a| {
        fs::create_dir(a.join("outbox")).expect("mkdir outbox");
        for i in 0..JOBS {
            write(a, &format!("inbox/{}", job(i)), content(i));
        }
    });
    let outbox = f.b().join("outbox");
    let mut consumer = Consumer::start(&f.b(), &outbox, &f.scratch());
    for i in 0..JOBS {
        let (from, to) = (
            f.a().join("inbox").join(job(i)),
            f.a().join("outbox").join(job(i)),
        );
        fs::rename(from, to).expect("mv");
        std::thread::sleep(Duration::from_millis(150));
    }
    let taken = wait_taken(&mut consumer);
    f.assert_consumed(&expected("outbox/", &["inbox", "outbox"]), taken);
}

/// Lets the consumer run until B's client has placed every job (each
/// placement waits [`DELAY_MS`]), then stops it: how many it took.
fn wait_taken(consumer: &mut Consumer) -> usize {
    std::thread::sleep(Duration::from_millis(JOBS as u64 * DELAY_MS + 3_000));
    consumer.stop()
}
