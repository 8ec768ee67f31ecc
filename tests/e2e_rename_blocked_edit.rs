//! End-to-end: a directory rename that B cannot apply at once, with B's
//! edit of a file inside it meanwhile (outside tester breaker27 F5;
//! PROTOCOL.md ).
//!
//! B's user makes `proj/` read-only (`chmod 555`); A moves it into another
//! directory (`mv proj dst/project`: moving a directory to another parent
//! needs write permission on it, so B cannot rename it whole, nor move its
//! files out one by one). B edits one file of `proj/` in place, and its
//! push of the edit re-makes `proj/` on the server; then the user makes
//! `proj/` writable again. Main's client then skipped the deletion of
//! `proj` for good ("left alone: this device already has" the version of
//! its own push), kept every other file of `proj/` that the server and A no
//! longer have, and said "in sync". Now B ends as the server and A: the
//! moved directory, B's edit (at the old path, where it was pushed), and no
//! stale file.
//!
//! Seeded (`BLOCKED_SEED`, `BLOCKED_ROUNDS`, default 2, from round
//! `BLOCKED_FIRST_ROUND`, default 0): where the
//! directory is and where it goes (an existing directory or one A makes),
//! how many files (some in a subdirectory), which file B edits, and whether
//! B edits after the moved files arrived (B watching) or before B saw the
//! move at all (B stopped, edited and made read-only, then started). B runs
//! as `nobody` through `setpriv` (root writes anywhere); without root or
//! setpriv the test prints why it is skipped.

mod common;

use common::{
    as_nobody, cannot_run_as_nobody, chmod, converge_stable, eventually, give_to_nobody, new_user,
    seed, status_json, tree, write, Client, Proc, Rng, Server, Tree, Verbosity,
};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One drawn case.
#[derive(Debug)]
struct Case {
    /// The directory A moves (its parent is never the target's).
    from: &'static str,
    /// Where A moves it.
    to: &'static str,
    /// Whether `to`'s parent is synced before the move (else A makes it).
    parent_exists: bool,
    /// The files below `from`, relative to it.
    files: Vec<String>,
    /// Which of them B edits.
    edited: usize,
    /// B edits after the moved files arrived (watching), else before B
    /// pulled the move (stopped).
    after: bool,
}

impl Case {
    fn draw(rng: &mut Rng, round: u64) -> Case {
        let (from, to) = *rng.pick(&[
            ("proj", "dst/project"),
            ("top/proj", "dst/project"),
            ("proj", "new/deep/project"),
            ("top/proj", "new/deep/project"),
        ]);
        let count = 2 + rng.index(11);
        let files: Vec<String> = (0..count)
            .map(|i| match i > 0 && rng.chance(0.3) {
                true => format!("sub/p{i}.txt"),
                false => format!("p{i}.txt"),
            })
            .collect();
        Case {
            from,
            to,
            parent_exists: to.starts_with("dst/"),
            edited: rng.index(count),
            files,
            after: round.is_multiple_of(2),
        }
    }
}

/// B as `nobody`, watching, verbose, logging to `log`.
fn start_b(port: u16, b: &Path, user: &str, log: &Path) -> Proc {
    let plain = Client::options(port, b)
        .user(Some(user))
        .rate("0.5")
        .verbosity(Verbosity::Verbose)
        .command();
    Proc::spawn_to_files("client B as nobody", as_nobody(&plain), log)
}

/// The files of `t` whose content is `data`.
fn holding(t: &Tree, data: &[u8]) -> Vec<String> {
    t.iter()
        .filter(|(_, c)| c.as_deref() == Some(data))
        .map(|(p, _)| p.clone())
        .collect()
}

fn round(seed: u64, round: u64) {
    let mut rng = Rng::new(seed ^ round.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let case = Case::draw(&mut rng, round);
    println!("BLOCKED_SEED={seed} round {round}: {case:?}");
    let server = Server::start();
    let base = tempfile::tempdir().expect("tempdir");
    chmod(base.path(), 0o755);
    let a = base.path().join("A");
    let b = base.path().join("B");
    let original = |f: &str| format!("{} {f} original\n", case.from);
    for f in &case.files {
        write(&a, &format!("{}/{f}", case.from), original(f));
    }
    write(&a, "outside.txt", "outside\n");
    if case.from.starts_with("top/") {
        write(&a, "top/t.txt", "top\n");
    }
    if case.parent_exists {
        write(&a, "dst/keep.txt", "keep\n");
    }
    std::fs::create_dir_all(&b).expect("mkdir B");
    give_to_nobody(&b);
    let user = new_user(server.port, &a);
    let _ca = Client::options(server.port, &a)
        .rate("0.5")
        .log(&base.path().join("a.err"))
        .start();
    let log = base.path().join("b.log");
    let err_log: PathBuf = log.with_extension("err");
    let b_log = || std::fs::read_to_string(&err_log).unwrap_or_default();
    let mut cb = start_b(server.port, &b, &user, &log);
    let srv = server.user_dir(&user);
    let all = |what: &str| {
        converge_stable(&[&srv, &a, &b], Duration::from_secs(30), Duration::ZERO)
            .unwrap_or_else(|d| panic!("{what}: did not converge:\n{d}\nB's log:\n{}", b_log()))
    };
    all("B joined");
    // B's records of its files old enough to vouch for them.
    std::thread::sleep(Duration::from_secs(2));

    // The user protects the directory and every directory below it, so
    // that no file of it can be moved out (the one below `sub/` neither).
    let old = b.join(case.from);
    let protect = |mode: u32| {
        for dir in [old.join("sub"), old.clone()] {
            if dir.is_dir() {
                chmod(&dir, mode);
            }
        }
    };
    let edited = format!("{}/{}", case.from, case.files[case.edited]);
    let edit = format!("{edited} EDITED ON B\n").into_bytes();
    let mv = || {
        let target = a.join(case.to);
        std::fs::create_dir_all(target.parent().expect("parent")).expect("mkdir on A");
        std::fs::rename(a.join(case.from), &target).expect("mv on A");
    };
    if case.after {
        protect(0o555);
        mv();
        let arrived = eventually(Duration::from_secs(30), || {
            case.files.iter().all(|f| {
                std::fs::read(b.join(case.to).join(f)).is_ok_and(|d| d == original(f).as_bytes())
            })
        });
        assert!(arrived, "the moved files never reached B:\n{}", b_log());
        std::fs::write(b.join(&edited), &edit).expect("edit on B");
    } else {
        cb.terminate(Duration::from_secs(10));
        mv();
        let moved = eventually(Duration::from_secs(30), || {
            srv.join(case.to).join(&case.files[0]).exists()
        });
        assert!(moved, "A's move never reached the server");
        std::fs::write(b.join(&edited), &edit).expect("edit on B");
        protect(0o555);
        cb = start_b(server.port, &b, &user, &log);
    }
    // While proj/ is read-only B's edit still goes up, and B does not say
    // it is in sync: the move is not applied here.
    let pushed = eventually(Duration::from_secs(30), || {
        !holding(&tree(&srv), &edit).is_empty()
    });
    assert!(pushed, "B's edit never reached the server:\n{}", b_log());
    std::thread::sleep(Duration::from_secs(2));
    let (_, st) = status_json(&b);
    assert_eq!(st["in_sync"], false, "B is not in sync yet: {st:#}");

    protect(0o755);
    let end = all("after proj/ is writable again");
    let here = holding(&end, &edit);
    assert!(!here.is_empty(), "B's edit was lost: {end:#?}");
    for (path, content) in &end {
        let Some(content) = content else { continue };
        assert!(!content.is_empty(), "an empty file {path} appeared");
        assert!(
            !path.contains("(conflict"),
            "a conflict copy {path} appeared"
        );
        let stale = path.starts_with(&format!("{}/", case.from)) && *path != edited;
        assert!(!stale, "{path} stayed at the old path: {:#?}", end.keys());
    }
    for f in &case.files {
        let moved = format!("{}/{f}", case.to);
        assert!(
            end.contains_key(&moved),
            "{moved} is missing: {:#?}",
            end.keys()
        );
    }
    let in_sync = eventually(Duration::from_secs(20), || {
        status_json(&b).1["in_sync"] == true
    });
    assert!(in_sync, "B never said in sync: {:#}", status_json(&b).1);
    assert_eq!(
        tree(&b),
        tree(&srv),
        "B said in sync and differs from the server"
    );
    drop(cb);
}

#[test]
fn a_blocked_directory_move_with_an_edit_inside_ends_as_the_server() {
    if let Some(why) = cannot_run_as_nobody() {
        println!("SKIPPED: {why}");
        return;
    }
    let seed = seed("BLOCKED_SEED");
    let rounds: u64 = std::env::var("BLOCKED_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(2);
    // Even rounds edit after the move arrived, odd ones before it.
    let first: u64 = std::env::var("BLOCKED_FIRST_ROUND")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(0);
    for r in first..first + rounds {
        round(seed, r);
    }
}
