//! End-to-end: a local writer racing the client's own placement of
//! downloads (issue 9, item 5). Two real clients of one user on loopback;
//! B appends a line every 15 ms (open, append, close) while A rewrites the
//! same file every 0.4 s, for 4 s. Every line B wrote must be found
//! afterwards in some file of B's folder (conflict copies included).

#[path = "common/client_proc.rs"]
mod client_proc;
#[path = "common/procs.rs"]
mod procs;

use client_proc::{converge, new_user, tree, write, Client, Server};
use std::fs;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

/// How long both sides write.
const WRITING: Duration = Duration::from_secs(4);
/// B's append interval.
const APPEND_EVERY: Duration = Duration::from_millis(15);
/// A's rewrite interval.
const REWRITE_EVERY: Duration = Duration::from_millis(400);

/// Appends `line` to `file` in one open-append-close, as a logger would.
fn append(file: &Path, line: &str) {
    let mut f = fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(file)
        .expect("open for append");
    f.write_all(line.as_bytes()).expect("append");
}

/// B's lines: one every [`APPEND_EVERY`] until the deadline. Returns them.
fn appender(file: &Path, until: Instant) -> Vec<String> {
    let mut lines = Vec::new();
    while Instant::now() < until {
        let line = format!("B line {}\n", lines.len());
        append(file, &line);
        lines.push(line);
        std::thread::sleep(APPEND_EVERY);
    }
    lines
}

/// A's rewrites: the whole file written again with one more line (read,
/// then truncate and write), so whatever of B's lines already reached A is
/// carried along rather than overwritten by A's user.
fn rewriter(file: &Path, until: Instant) {
    let mut n = 0;
    while Instant::now() < until {
        std::thread::sleep(REWRITE_EVERY);
        let mut text = fs::read_to_string(file).unwrap_or_default();
        text.push_str(&format!("A rewrite {n}\n"));
        fs::write(file, text).expect("rewrite");
        n += 1;
    }
}

#[test]
fn lines_appended_while_downloads_land_are_never_lost() {
    let server = Server::start();
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    write(a.path(), "f.txt", "start\n");
    std::thread::sleep(Duration::from_millis(350));
    let user = new_user(server.port, a.path());
    let _ca = Client::start(server.port, a.path(), None);
    let _cb = Client::start(server.port, b.path(), Some(&user));
    converge("initial", &[a.path(), b.path()]);

    let until = Instant::now() + WRITING;
    let (fa, fb) = (a.path().join("f.txt"), b.path().join("f.txt"));
    let rewrites = std::thread::spawn(move || rewriter(&fa, until));
    let lines = appender(&fb, until);
    rewrites.join().expect("rewriter");

    let end = converge("after the race", &[a.path(), b.path()]);
    let texts: Vec<String> = tree(b.path())
        .into_values()
        .flatten()
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .collect();
    let lost: Vec<&String> = lines
        .iter()
        .filter(|line| !texts.iter().any(|t| t.contains(line.as_str())))
        .collect();
    eprintln!(
        "B wrote {} lines; B's folder ends with {} files; lost {}",
        lines.len(),
        texts.len(),
        lost.len()
    );
    assert!(
        lost.is_empty(),
        "{} of {} lines B wrote are nowhere in its folder: {lost:?}\nfiles: {:?}",
        lost.len(),
        lines.len(),
        end.keys().collect::<Vec<_>>()
    );
}
