//! End-to-end: a local writer racing the client's own placement of
//! downloads (issue 9, item 5). Two real clients of one user on loopback;
//! B appends a line every 15 ms (open, append, close) while A rewrites the
//! same file every 0.4 s, for 4 s. Every line B wrote must be found
//! afterwards in some file of B's folder (conflict copies included). The
//! loss window is microseconds wide, so [`FILES`] files race at once to
//! give it more chances in the same 4 s.

mod common;

use common::{converge, new_user, tree, write, Client, Server};
use std::fs;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

/// How long both sides write.
const WRITING: Duration = Duration::from_secs(4);
/// B's append interval.
const APPEND_EVERY: Duration = Duration::from_millis(15);
/// Files raced in parallel, each with its own appender and rewriter.
const FILES: usize = 4;
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
    let name = file.file_name().map(|n| n.to_string_lossy().into_owned());
    while Instant::now() < until {
        let line = format!(
            "B {} line {}\n",
            name.as_deref().unwrap_or("?"),
            lines.len()
        );
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
    for i in 0..FILES {
        write(a.path(), &format!("f{i}.txt"), "start\n");
    }
    std::thread::sleep(Duration::from_millis(350));
    let user = new_user(server.port, a.path());
    let _ca = Client::start(server.port, a.path(), None);
    let _cb = Client::start(server.port, b.path(), Some(&user));
    converge("initial", &[a.path(), b.path()]);

    let until = Instant::now() + WRITING;
    let mut writers = Vec::new();
    for i in 0..FILES {
        let (fa, fb) = (
            a.path().join(format!("f{i}.txt")),
            b.path().join(format!("f{i}.txt")),
        );
        writers.push(std::thread::spawn(move || {
            rewriter(&fa, until);
            Vec::new()
        }));
        writers.push(std::thread::spawn(move || appender(&fb, until)));
    }
    let lines: Vec<String> = writers
        .into_iter()
        .flat_map(|w| w.join().expect("writer"))
        .collect();

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
