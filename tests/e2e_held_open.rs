//! End-to-end: another device's change never takes the name of a file a
//! program here holds open for writing (outside tester breaker27 F3;
//! PROTOCOL.md R-5.7.4).
//!
//! - A logger on A keeps `app.log` open (`O_WRONLY|O_APPEND`, a shell's
//!   `exec 3>>`) and appends; B rewrites the log. Main's client exchanged
//!   B's version in under the logger: the logger went on writing into the
//!   conflict copy and the log at its name stopped on every device. Now A
//!   keeps the logger's file at the name with every line while it runs,
//!   `status` lists it as not synced with the reason, and once the logger
//!   closes the usual conflict rule decides (both versions kept, named).
//! - An app on A keeps a WAL-mode SQLite database open and writes; a read
//!   on B checkpoints B's copy (a write). Main's client swapped B's
//!   `app.db` in under A's open database next to A's `-wal`: "database
//!   disk image is malformed" on every device. Now every database on every
//!   device passes `pragma integrity_check` and every row is in one named
//!   database (skipped without python3's sqlite3 module).

mod common;

use common::{converge, eventually, status_json, tree, write, TwoDevices};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A child process driven line by line: each command written to its stdin
/// is answered by one line on its stdout. Killed (by PID) when dropped.
struct Driven {
    child: Child,
    stdin: Option<ChildStdin>,
    replies: mpsc::Receiver<String>,
}

impl Driven {
    fn spawn(mut cmd: Command) -> Driven {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn the program");
        let stdin = child.stdin.take();
        let out: ChildStdout = child.stdout.take().expect("stdout");
        let (tx, replies) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let driven = Driven {
            child,
            stdin,
            replies,
        };
        assert_eq!(driven.reply(), "ready");
        driven
    }

    fn reply(&self) -> String {
        self.replies
            .recv_timeout(Duration::from_secs(30))
            .expect("the program answers within 30 s")
    }

    /// Sends `command`, returns the program's answer.
    fn ask(&mut self, command: &str) -> String {
        let stdin = self.stdin.as_mut().expect("open stdin");
        writeln!(stdin, "{command}").expect("write to the program");
        stdin.flush().expect("flush");
        self.reply()
    }

    /// Closes its stdin (it then closes its file and exits) and waits.
    fn close(&mut self) {
        drop(self.stdin.take());
        let exited = eventually(Duration::from_secs(30), || {
            self.child.try_wait().ok().flatten().is_some()
        });
        assert!(exited, "the program did not exit");
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Driven {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The lines of A's `status --json` "not synced" list.
fn not_synced(folder: &Path) -> Vec<String> {
    let (_, v) = status_json(folder);
    v["not_synced"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether `folder`'s status lists `name` as held back for a program
/// writing there.
fn listed_held(folder: &Path, name: &str) -> bool {
    let listed = |l: &String| l.starts_with(name) && l.contains("open for writing");
    not_synced(folder).iter().any(listed)
}

/// Waits until `folder`'s status lists `name` as held back for a program
/// writing there, or the file at `name` is no longer the inode `ino` (the
/// fault: then the test goes on to show what became of it). Returns
/// whether it was listed.
fn wait_held_or_replaced(folder: &Path, name: &str, ino: u64) -> bool {
    let replaced = || std::fs::metadata(folder.join(name)).map_or(true, |m| m.ino() != ino);
    eventually(Duration::from_secs(30), || {
        listed_held(folder, name) || replaced()
    });
    listed_held(folder, name)
}

#[test]
fn a_log_a_program_appends_to_keeps_its_name_until_it_closes() {
    let d = TwoDevices::start(|a| write(a, "app.log", "log start\n"));
    let (a, b) = (d.a.path(), d.b.path());
    let log = a.join("app.log");
    let script = "exec 3>>\"$1\" || exit 1; echo ready; \
                  while IFS= read -r l; do printf '%s\\n' \"$l\" >&3; echo ok; done";
    let mut cmd = Command::new("sh");
    cmd.args(["-c", script, "logger"]).arg(&log);
    let mut logger = Driven::spawn(cmd);
    let pid = logger.pid();
    let writer_ino = || {
        std::fs::metadata(format!("/proc/{pid}/fd/3"))
            .expect("the logger's descriptor")
            .ino()
    };
    let mut lines = vec!["log start".to_owned()];
    lines.push("line 1".into());
    assert_eq!(logger.ask("line 1"), "ok");
    let reached = eventually(Duration::from_secs(30), || {
        std::fs::read_to_string(b.join("app.log")).is_ok_and(|t| t.contains("line 1"))
    });
    assert!(reached, "line 1 never reached B");
    converge("line 1 everywhere", &[a, b]);
    // A's record of the file it pushed is old enough to vouch for it.
    std::thread::sleep(Duration::from_secs(2));

    // B rewrites the log, as an editor saves.
    let note = format!(
        "{}NOTE FROM B\n",
        std::fs::read_to_string(b.join("app.log")).unwrap()
    );
    write(b, ".app.log.new", &note);
    std::fs::rename(b.join(".app.log.new"), b.join("app.log")).expect("B's save");

    let listed = wait_held_or_replaced(a, "app.log", writer_ino());
    // The logger goes on across several of A's pulls.
    for i in 2..=6 {
        let line = format!("line {i}");
        assert_eq!(logger.ask(&line), "ok");
        lines.push(line);
        std::thread::sleep(Duration::from_millis(700));
    }
    let want = lines.join("\n") + "\n";
    let writer = writer_ino();
    let here = std::fs::metadata(&log).expect("app.log on A");
    assert_eq!(
        here.ino(),
        writer,
        "A's app.log is not the logger's file any more"
    );
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        want,
        "A's log at its name"
    );
    let names: Vec<String> = tree(a).into_keys().collect();
    assert_eq!(
        names,
        ["app.log"],
        "nothing else appears on A while the logger runs"
    );
    assert!(
        listed && listed_held(a, "app.log"),
        "app.log not listed as held back for a writer; not synced: {:?}",
        not_synced(a)
    );

    logger.close();
    let end = converge("after the logger closed", &[a, b]);
    // Both versions are kept, each whole, under names: the usual rule.
    let files: Vec<&Vec<u8>> = end.values().flatten().collect();
    assert!(
        files.iter().any(|f| **f == want.as_bytes()),
        "the logger's whole log is in no file: {end:?}"
    );
    assert!(
        files.iter().any(|f| **f == note.as_bytes()),
        "B's version is in no file: {end:?}"
    );
    assert_eq!(end.len(), 2, "one conflict copy: {:?}", end.keys());
    let in_sync = eventually(Duration::from_secs(30), || not_synced(a).is_empty());
    assert!(in_sync, "A still lists: {:?}", not_synced(a));
}

/// The SQLite app: opens the database in WAL mode; `insert N` commits N
/// rows (one transaction each), `check` answers integrity_check and the
/// row count; end of input closes the connection (SQLite checkpoints and
/// removes `-wal` and `-shm`) and exits.
const APP: &str = r#"
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("pragma journal_mode=wal")
db.execute("pragma wal_autocheckpoint=20")
db.execute("create table if not exists t (id integer primary key, body blob)")
print("ready", flush=True)
for line in sys.stdin:
    cmd = line.split()
    if cmd[0] == "insert":
        for _ in range(int(cmd[1])):
            db.execute("insert into t (body) values (randomblob(4000))")
        print("ok", flush=True)
    elif cmd[0] == "check":
        ok = db.execute("pragma integrity_check").fetchone()[0]
        n = db.execute("select count(*) from t").fetchone()[0]
        print(ok, n, flush=True)
db.close()
"#;

/// Integrity and row ids of the database `db` (with its `-wal` if there
/// is one), read from a copy so the synced folder is not touched.
fn check_copy(db: &Path, scratch: &Path) -> (String, Vec<i64>) {
    let _ = std::fs::remove_dir_all(scratch);
    std::fs::create_dir_all(scratch).unwrap();
    let copy = scratch.join("c.db");
    std::fs::copy(db, &copy).unwrap();
    let wal = PathBuf::from(format!("{}-wal", db.display()));
    if wal.exists() {
        std::fs::copy(&wal, scratch.join("c.db-wal")).unwrap();
    }
    let script = "import sqlite3, sys\n\
        db = sqlite3.connect(sys.argv[1])\n\
        try:\n\
        \x20   print(db.execute('pragma integrity_check').fetchone()[0])\n\
        \x20   print(' '.join(str(r[0]) for r in db.execute('select id from t')))\n\
        except Exception as e:\n\
        \x20   print('error: %s' % e)\n\
        \x20   print('')\n";
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(&copy)
        .output()
        .expect("python3");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut it = text.lines();
    let ok = it.next().unwrap_or("no answer").to_owned();
    let ids = it
        .next()
        .unwrap_or("")
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect();
    (ok, ids)
}

fn has_sqlite() -> bool {
    Command::new("python3")
        .args(["-c", "import sqlite3"])
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn a_sqlite_database_in_use_is_never_split_from_its_wal() {
    if !has_sqlite() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI needs python3's sqlite3 module"
        );
        println!("SKIPPED: no python3 with the sqlite3 module");
        return;
    }
    let d = TwoDevices::start(|a| write(a, "readme.txt", "an app's data\n"));
    let (a, b) = (d.a.path(), d.b.path());
    let mut cmd = Command::new("python3");
    cmd.args(["-c", APP]).arg(a.join("app.db"));
    let mut app = Driven::spawn(cmd);
    let app_ino = std::fs::metadata(a.join("app.db")).unwrap().ino();
    assert_eq!(app.ask("insert 30"), "ok");
    let reached = eventually(Duration::from_secs(30), || b.join("app.db-wal").exists());
    assert!(reached, "the database never reached B");
    converge("the database everywhere", &[a, b]);
    std::thread::sleep(Duration::from_secs(2));

    // A glance on B: SQLite checkpoints B's -wal into B's app.db as the
    // last connection closes, and removes the -wal: a write on B.
    let out = Command::new("python3")
        .args([
            "-c",
            "import sqlite3, sys; db = sqlite3.connect(sys.argv[1]); \
             print(db.execute('select count(*) from t').fetchone()[0]); db.close()",
        ])
        .arg(b.join("app.db"))
        .output()
        .expect("python3 on B");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "30",
        "B's read"
    );
    assert!(!b.join("app.db-wal").exists(), "B's read kept its -wal");
    // B's checkpoint is the server's before A's app writes again.
    let server = d.server.user_dir(&d.user);
    let taken = eventually(Duration::from_secs(30), || {
        !server.join("app.db-wal").exists()
    });
    assert!(taken, "B's checkpoint never reached the server");
    let listed = wait_held_or_replaced(a, "app.db", app_ino);
    // A's app goes on across several of A's pulls.
    for _ in 0..6 {
        assert_eq!(app.ask("insert 5"), "ok");
        std::thread::sleep(Duration::from_millis(700));
    }
    let still = listed_held(a, "app.db");
    assert_eq!(app.ask("check"), "ok 60", "A's open database");
    app.close();

    converge("after the app closed", &[a, b]);
    let scratch = tempfile::tempdir().unwrap();
    for (name, folder) in [("A", a), ("B", b), ("server", server.as_path())] {
        let mut all: Vec<i64> = Vec::new();
        let dbs: Vec<String> = tree(folder)
            .into_keys()
            .filter(|k| k.ends_with(".db"))
            .collect();
        assert!(!dbs.is_empty(), "{name}: no database");
        for db in &dbs {
            let (ok, ids) = check_copy(&folder.join(db), &scratch.path().join("x"));
            assert_eq!(ok, "ok", "{name}: {db} is damaged");
            all.extend(ids);
        }
        all.sort_unstable();
        all.dedup();
        assert_eq!(
            all,
            (1..=60).collect::<Vec<i64>>(),
            "{name}: rows in {dbs:?}"
        );
    }
    assert!(
        listed && still,
        "app.db was not listed as held back for a writer while the app ran"
    );
}
