//! A pull never puts the server's version at a name some program here holds
//! open for writing (outside tester breaker27 F3).
//!
//! A download is placed by exchanging it with the local file. A program that
//! holds that file open (a logger appending, an app keeping its SQLite
//! database open) goes on writing into the inode it holds, which the exchange
//! moved out of the name: its log stopped at its name on every device while
//! the program ran, and a WAL-mode database swapped in under the app that
//! holds it, next to the app's own `-wal`, was "malformed" everywhere. So a
//! change from another device to such a path is held back: listed as not
//! synced with the reason, the pull repeated, and applied once the program
//! closes the file. Meanwhile this device's own changes to the path wait too
//! (a push on the old base would be answered Conflict, and following the
//! server's conflict name moves the file out from under the program just
//! the same); once the program closes, they are pushed and the usual
//! conflict rule decides (PROTOCOL.md ).
//!
//! **A SQLite database and its companions are one unit.** A database `X`
//! lives in `X` plus `X-wal` and `X-shm` (WAL mode) or `X-journal`
//! (rollback mode); SQLite pairs them by name alone, with no check that they
//! belong together. A server's `X` next to this device's `X-wal`, or a
//! server's `X-journal` (a "hot journal", rolled back into the database at
//! the next open) next to an `X` in use, is the corruption of F3 again, even
//! when the one file changed is not itself open. So a change to any file of
//! the group waits while any of its files is open for writing ([`group`],
//! [`holds`]). The name is enough to decide: the check is a lease on files
//! that exist, so a plain `notes.txt` costs three failed opens.
//!
//! Deciding is pure ([`group`], [`holds`], [`blocks_push`]); the looking
//! ([`look`]) is the only I/O, a read lease ([`crate::client::lease`]) taken
//! and let go at once on each file of the group.

use crate::client::lease::{lease_on, Writers};
use crate::protocol::WirePath;
use std::collections::BTreeSet;
use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The names SQLite gives a database's companion files: `X-wal`, `X-shm`
/// (WAL mode) and `X-journal` (rollback mode).
pub const COMPANIONS: [&str; 3] = ["-wal", "-shm", "-journal"];

/// Pure: the files SQLite would use together with `path`: the database
/// `X` (`path` itself, or `path` without its companion suffix) and its
/// companions `X-wal`, `X-shm`, `X-journal`; `path` first. A name that
/// cannot be a wire path (too long) is left out: no such file is here.
pub fn group(path: &WirePath) -> Vec<WirePath> {
    let text = path.as_str();
    let base = COMPANIONS
        .iter()
        .find_map(|s| {
            text.strip_suffix(s)
                .filter(|b| !b.ends_with('/') && !b.is_empty())
        })
        .unwrap_or(text);
    let names =
        std::iter::once(base.to_owned()).chain(COMPANIONS.iter().map(|s| format!("{base}{s}")));
    let mut out = vec![path.clone()];
    for name in names {
        if let Ok(p) = WirePath::new(&name) {
            if !out.contains(&p) {
                out.push(p);
            }
        }
    }
    out
}

/// What a pull's change does to a local path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Puts the server's file there (over a local file, or where there is
    /// none), or leaves a local edit for a push that may be answered with a
    /// conflict copy (which moves the local file away).
    Replace,
    /// Deletes the local file.
    Delete,
}

/// Who holds `path`'s group ([`group`]) open for writing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Found {
    /// `path` itself.
    pub own: bool,
    /// Another file of its group (the first one found).
    pub companion: Option<WirePath>,
}

/// Pure: whether `change` waits, given who holds the group open.
/// - A replacement waits for any writer of the group: the name must stay
///   the program's file, and a database must not meet another device's
///   companion (or the reverse).
/// - A deletion waits only for a companion's writer. A file open for
///   writing whose companions are not (a logger, a database in rollback
///   mode between transactions) is kept like an edit, as before
///   never deleted, pushed back. With a companion in use the
///   group is one database in use: deleting or pushing back one of its
///   files alone would split it on some device.
pub fn holds(change: Change, found: &Found) -> bool {
    match change {
        Change::Replace => found.own || found.companion.is_some(),
        Change::Delete => found.companion.is_some(),
    }
}

/// Pure: whether a push that changes `path` waits: a file of its group
/// is held back by the pull for a program that writes there (`held`). The
/// push would meet the server's newer version with a conflict copy, and
/// following it moves the program's file away.
pub fn blocks_push(path: &WirePath, held: &BTreeSet<WirePath>) -> bool {
    !held.is_empty() && group(path).iter().any(|p| held.contains(p))
}

/// Pure: the status's and the log's reason for a path held back.
pub fn why(path: &WirePath, found: &Found) -> String {
    match (&found.companion, found.own) {
        (Some(other), false) => format!(
            "held back while a program has {other} open for writing (a SQLite database and its \
             -wal, -shm, -journal change together); applied once it closes"
        ),
        _ => format!(
            "held back while a program has {} open for writing; applied once it closes",
            path.file_name()
        ),
    }
}

/// I/O: whether the regular file at `local` is open for writing by some
/// program now. `false` when nothing is there, when it is not a regular
/// file, and when the lease cannot tell (another owner's file, a file
/// system without leases): then the content checks alone decide, as
/// before. A file open only for reading takes the lease: readers never
/// hold anything back.
pub fn written(local: &Path) -> bool {
    // No blocking on a FIFO, no symlink followed.
    let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
    let Ok(file) = OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits() as i32)
        .open(local)
    else {
        return false;
    };
    if !file.metadata().is_ok_and(|m| m.file_type().is_file()) {
        return false;
    }
    // The lease, when taken, is let go at once (dropped): a program that
    // opens the file now waits microseconds, not for this client's step.
    matches!(lease_on(file), Writers::Some)
}

/// I/O: who holds `path`'s group open for writing, each file looked at
/// through `at` (where the folder's `path` is on disk).
pub fn look<P: AsRef<Path>>(path: &WirePath, at: impl Fn(&WirePath) -> P) -> Found {
    let mut found = Found::default();
    for (i, p) in group(path).into_iter().enumerate() {
        if !written(at(&p).as_ref()) {
            continue;
        }
        match i {
            0 => found.own = true,
            _ => {
                found.companion = Some(p);
                break;
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::{self, File};

    fn p(s: &str) -> WirePath {
        WirePath::new(s).unwrap()
    }

    fn names(path: &str) -> Vec<String> {
        group(&p(path))
            .iter()
            .map(|p| p.as_str().to_owned())
            .collect()
    }

    #[test]
    fn a_database_and_each_companion_name_the_same_group() {
        let all = [
            "d/app.db",
            "d/app.db-wal",
            "d/app.db-shm",
            "d/app.db-journal",
        ];
        for member in all {
            let got = names(member);
            assert_eq!(got[0], member, "the path itself first");
            let mut sorted = got.clone();
            sorted.sort();
            let mut want: Vec<String> = all.iter().map(|s| s.to_string()).collect();
            want.sort();
            assert_eq!(sorted, want, "{member}");
        }
        // Any name has the group; the companions of a plain file are
        // names that are usually absent.
        assert_eq!(
            names("notes.txt")[1..],
            ["notes.txt-wal", "notes.txt-shm", "notes.txt-journal"]
        );
        // A bare suffix is a name of its own, not a companion of "".
        assert_eq!(names("-wal")[0..2], ["-wal", "-wal-wal"]);
        assert_eq!(names("d/-shm")[1], "d/-shm-wal");
        // One suffix is taken off, not two.
        assert_eq!(names("x-wal-wal")[1], "x-wal");
    }

    #[test]
    fn a_companion_too_long_for_a_name_is_left_out() {
        let long = "a".repeat(250);
        let got = names(&long);
        assert!(got.iter().all(|n| n.len() <= 255), "{got:?}");
        assert!(got.contains(&format!("{long}-wal")));
        assert!(!got.contains(&format!("{long}-journal")));
    }

    /// Every (change, own, companion) row.
    #[test]
    fn holds_table() {
        let other = Some(p("app.db-wal"));
        let rows = [
            (Change::Replace, false, None, false),
            (Change::Replace, true, None, true),
            (Change::Replace, false, other.clone(), true),
            (Change::Replace, true, other.clone(), true),
            (Change::Delete, false, None, false),
            (Change::Delete, true, None, false),
            (Change::Delete, false, other.clone(), true),
            (Change::Delete, true, other.clone(), true),
        ];
        for (change, own, companion, want) in rows {
            let found = Found { own, companion };
            assert_eq!(holds(change, &found), want, "{change:?} {found:?}");
        }
    }

    #[test]
    fn a_push_waits_while_any_file_of_its_group_is_held() {
        let held: BTreeSet<WirePath> = [p("d/app.db")].into();
        for path in [
            "d/app.db",
            "d/app.db-wal",
            "d/app.db-shm",
            "d/app.db-journal",
        ] {
            assert!(blocks_push(&p(path), &held), "{path}");
        }
        for path in ["app.db", "d/app.db2", "d/other-wal", "d/app.db-wal/x"] {
            assert!(!blocks_push(&p(path), &held), "{path}");
        }
        assert!(!blocks_push(&p("d/app.db"), &BTreeSet::new()));
    }

    #[test]
    fn the_reason_names_the_file_open_for_writing() {
        let own = Found {
            own: true,
            companion: None,
        };
        assert!(why(&p("d/app.log"), &own).contains("a program has app.log open for writing"));
        let other = Found {
            own: false,
            companion: Some(p("d/app.db-wal")),
        };
        let text = why(&p("d/app.db"), &other);
        assert!(
            text.contains("d/app.db-wal open for writing") && text.contains("SQLite"),
            "{text}"
        );
    }

    /// A writer in another process is seen, a reader in another process
    /// is not (F_SETLEASE F_RDLCK fails only for writers), and nothing,
    /// a directory or a FIFO is never "written".
    #[test]
    fn a_writer_is_seen_and_a_reader_or_no_file_is_not() {
        use std::process::{Command, Stdio};
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        fs::write(&f, "x").unwrap();
        let held_by = |redirect: &str| {
            let script = format!("exec 3{redirect}'{}'; echo ready; read _", f.display());
            let mut child = Command::new("sh")
                .args(["-c", &script])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let mut line = String::new();
            let out = child.stdout.as_mut().unwrap();
            std::io::BufRead::read_line(&mut std::io::BufReader::new(out), &mut line).unwrap();
            assert_eq!(line.trim(), "ready");
            let seen = written(&f);
            drop(child.stdin.take());
            child.wait().unwrap();
            seen
        };
        if !matches!(lease_on(File::open(&f).unwrap()), Writers::None(_)) {
            return; // no leases here: nothing to show
        }
        assert!(
            held_by(">>"),
            "a writer (O_WRONLY|O_APPEND) in another process"
        );
        assert!(held_by("<>"), "a reader-writer (O_RDWR) in another process");
        assert!(!held_by("<"), "a reader in another process");
        assert!(!written(&f), "nobody");
        assert!(!written(&dir.path().join("missing")));
        assert!(!written(dir.path()));
        let fifo = dir.path().join("fifo");
        assert!(Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        assert!(!written(&fifo));
        let found = look(&p("f"), |w| dir.path().join(w.as_str()));
        assert_eq!(found, Found::default());
    }
}
