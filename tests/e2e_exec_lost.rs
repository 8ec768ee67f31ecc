//! A chmod is never silently lost to a rename or a deletion made elsewhere
//! (issue 13, outside tester's findings 9 and 4; PROTOCOL.md,
//! Each test runs the real binaries and waits until every device's
//! folder and the server's copy hold the same contents AND the same bits.
//!
//! 1. A chmod made on a stopped device, while the other device renamed the
//!    file, moved its directory or deleted it: the bit follows the moved
//!    file; a deleted file stays deleted (a mode change alone does not
//!    bring it back).
//! 2. A rename + edit, and a deletion, on a stopped device while the other
//!    device's chmods reached the server: the moved, edited file takes the
//!    bit; neither the old name nor the deleted file comes back.
//! 3. Both running, `chmod` on A and a rename (of the file or its
//!    directory) on B 0-150 ms apart in a random order (seed in
//!    `EXEC_LOST_SEED`): the bit is at the new name everywhere.

mod common;

use common::{append, chmod, exec_bits};

use common::{converge, eventually, seed, settle, write, Rng, TwoDevices, CONVERGE};
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

/// Waits until both folders and the server's copy hold the same contents
/// and the same bits; returns the bits.
fn converge_bits(what: &str, d: &TwoDevices) -> BTreeMap<String, bool> {
    let (a, b) = (d.a.path(), d.b.path());
    let server = d.server.user_dir(&d.user);
    converge(what, &[a, b, &server]);
    let same = eventually(CONVERGE, || {
        let want = exec_bits(&server);
        exec_bits(a) == want && exec_bits(b) == want
    });
    assert!(
        same,
        "{what}: executable bits differ\n  server {:?}\n  a      {:?}\n  b      {:?}",
        exec_bits(&server),
        exec_bits(a),
        exec_bits(b)
    );
    converge(what, &[a, b, &server]);
    exec_bits(&server)
}

#[test]
fn a_chmod_made_while_stopped_follows_a_rename_elsewhere_and_yields_to_a_delete() {
    let mut d = TwoDevices::start(|a| {
        write(a, "t.sh", "t\n");
        write(a, "d.sh", "d\n");
        write(a, "dir/s.sh", "s\n");
        write(a, "x.sh", "x\n");
        chmod(&a.join("x.sh"), 0o755);
    });
    let (a, b) = (d.a.path().to_owned(), d.b.path().to_owned());
    converge_bits("initial", &d);
    d.ca.stop();
    // A (stopped) changes four bits; B renames, moves the directory,
    // deletes, renames — all pushed before A is back.
    chmod(&a.join("t.sh"), 0o755);
    chmod(&a.join("d.sh"), 0o755);
    chmod(&a.join("dir/s.sh"), 0o755);
    chmod(&a.join("x.sh"), 0o644);
    fs::rename(b.join("t.sh"), b.join("u.sh")).expect("mv");
    fs::rename(b.join("dir"), b.join("dir2")).expect("mv dir");
    fs::rename(b.join("x.sh"), b.join("y.sh")).expect("mv");
    fs::remove_file(b.join("d.sh")).expect("rm");
    let server = d.server.user_dir(&d.user);
    let seen = eventually(CONVERGE, || {
        let s = exec_bits(&server);
        s.contains_key("u.sh") && s.contains_key("dir2/s.sh") && !s.contains_key("d.sh")
    });
    assert!(
        seen,
        "B's changes reached the server: {:?}",
        exec_bits(&server)
    );
    settle();
    d.ca.restart();
    let end = converge_bits("A back", &d);
    assert_eq!(
        end.get("u.sh"),
        Some(&true),
        "A's +x follows the rename: {end:?}"
    );
    assert_eq!(
        end.get("dir2/s.sh"),
        Some(&true),
        "through a dir rename: {end:?}"
    );
    assert_eq!(end.get("y.sh"), Some(&false), "A's -x follows: {end:?}");
    for gone in ["t.sh", "d.sh", "dir/s.sh", "x.sh"] {
        assert!(!end.contains_key(gone), "{gone} came back: {end:?}");
    }
}

#[test]
fn a_rename_and_edit_made_while_stopped_takes_the_chmod_made_elsewhere() {
    let mut d = TwoDevices::start(|a| {
        write(a, "t.sh", "t\n");
        chmod(&a.join("t.sh"), 0o755);
        write(a, "p/q.sh", "q\n");
        chmod(&a.join("p/q.sh"), 0o755);
        write(a, "z.sh", "z\n");
    });
    let (a, b) = (d.a.path().to_owned(), d.b.path().to_owned());
    converge_bits("initial", &d);
    d.cb.stop();
    // The desktop (B, off): rename, then edit in place; the laptop: -x.
    fs::rename(b.join("t.sh"), b.join("u.sh")).expect("mv");
    append(&b.join("u.sh"), "more\n");
    fs::rename(b.join("p/q.sh"), b.join("p/r.sh")).expect("mv");
    append(&b.join("p/r.sh"), "more\n");
    fs::remove_file(b.join("z.sh")).expect("rm");
    chmod(&a.join("t.sh"), 0o644);
    chmod(&a.join("p/q.sh"), 0o644);
    chmod(&a.join("z.sh"), 0o755);
    let server = d.server.user_dir(&d.user);
    let seen = eventually(CONVERGE, || {
        let s = exec_bits(&server);
        s.get("t.sh") == Some(&false)
            && s.get("p/q.sh") == Some(&false)
            && s.get("z.sh") == Some(&true)
    });
    assert!(
        seen,
        "A's chmods reached the server: {:?}",
        exec_bits(&server)
    );
    settle();
    d.cb.restart();
    let end = converge_bits("B back", &d);
    let want: BTreeMap<String, bool> = [("u.sh".to_owned(), false), ("p/r.sh".to_owned(), false)]
        .into_iter()
        .collect();
    assert_eq!(
        end, want,
        "the desktop's names, no x, z.sh stays deleted (R-15.3.5)"
    );
    assert_eq!(
        fs::read_to_string(a.join("u.sh")).expect("u.sh"),
        "t\nmore\n"
    );
    assert_eq!(
        fs::read_to_string(a.join("p/r.sh")).expect("r.sh"),
        "q\nmore\n"
    );
}

#[test]
fn a_chmod_racing_a_rename_elsewhere_reaches_the_new_name() {
    const ROUNDS: usize = 6;
    let seed = seed("EXEC_LOST_SEED");
    eprintln!("EXEC_LOST_SEED={seed}");
    let mut rng = Rng::new(seed);
    let d = TwoDevices::start(|a| {
        for i in 0..ROUNDS {
            write(a, &format!("f{i}.sh"), format!("f{i}\n"));
            write(a, &format!("d{i}/g.sh"), format!("g{i}\n"));
        }
    });
    let (a, b) = (d.a.path(), d.b.path());
    converge_bits("initial", &d);
    let mut want = BTreeMap::new();
    for i in 0..ROUNDS {
        // The file itself, or the directory above it.
        let (old, new, from, to, other) = if rng.below(2) == 0 {
            let (o, n) = (format!("f{i}.sh"), format!("f{i}-moved.sh"));
            (o.clone(), n.clone(), o, n, format!("d{i}/g.sh"))
        } else {
            let n = format!("d{i}-moved/g.sh");
            let (o, f, t) = (format!("d{i}/g.sh"), format!("d{i}"), format!("d{i}-moved"));
            (o, n, f, t, format!("f{i}.sh"))
        };
        want.insert(other, false);
        let gap = Duration::from_millis(rng.below(150));
        let chmod_first = rng.below(2) == 0;
        eprintln!(
            "round {i}: chmod {old} / mv {from} {to}, gap {gap:?}, chmod first {chmod_first}"
        );
        if chmod_first {
            chmod(&a.join(&old), 0o755);
            std::thread::sleep(gap);
            fs::rename(b.join(&from), b.join(&to)).expect("mv");
        } else {
            fs::rename(b.join(&from), b.join(&to)).expect("mv");
            std::thread::sleep(gap);
            // A may have pulled the rename already: then A's chmod is of
            // the new name (a plain chmod; the expectation is the same).
            let done = eventually(Duration::from_secs(5), || {
                [&old, &new].iter().any(|path| {
                    fs::set_permissions(a.join(path), fs::Permissions::from_mode(0o755)).is_ok()
                })
            });
            assert!(done, "round {i}: neither {old} nor {new} on A");
        }
        want.insert(new, true);
        std::thread::sleep(Duration::from_millis(300));
    }
    let end = converge_bits("chmod vs rename", &d);
    assert_eq!(
        end, want,
        "A's +x at every new name, no old name back (seed {seed})"
    );
}
