//! End-to-end: a change made on device A to a file while A places B's new
//! version of it is never lost (PROTOCOL.md ). Found as
//! e2e_exec_diverge's `a_chmod_racing_a_content_edit_elsewhere_keeps_both`
//! failing once in a full run (`dir/r3.sh` ended executable everywhere: A's
//! `chmod 644`, made 10 ms after B's append, was lost). The cause: A's
//! client looks at the file it replaces, then exchanges the download with
//! it; a chmod landing between the two went with the replaced file, which
//! was judged by its content only, and the download appeared with the
//! server's bit. B's edit reaches A in about 10 ms (3 ms settle debounce),
//! so a 10 ms gap hits that window now and then.
//!
//! Here A's client runs with `CLOUD_TEST_PLACE_DELAY_MS` (it waits that
//! long right before each exchange), so that a change made on A shortly
//! after B's edit lands inside the window every time. The class: a chmod
//! (+x and -x) and a same-size rewrite that puts the mtime back (`touch
//! -d`, seen only by ctime and content), at several gaps, in both orders
//! (A's change first, or B's edit first), then a randomized mix
//! (`EXEC_RACE_SEED` replays it). Every outcome must keep both changes:
//! B's content at the path with A's bit, or A's and B's contents at the
//! path and in a conflict copy.

mod common;

use common::{
    append, chmod, converge, eventually, exec_bits, new_user, seed, settle, tree, write, Client,
    Rng, Server, CONVERGE,
};
use std::fs;
use std::path::Path;
use std::time::Duration;

/// How long A's client waits before each exchange (the race window).
const DELAY_MS: u64 = 400;

/// What device A does to the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    /// `chmod` to the other bit.
    Chmod,
    /// New content of the same size, then the old mtime put back.
    SameSizeSameMtime,
}

/// One race: file `name` (initially executable or not), A's change, the
/// gap in milliseconds, and whether A's change comes first.
#[derive(Debug, Clone)]
struct Race {
    name: String,
    exec: bool,
    change: Change,
    gap_ms: u64,
    a_first: bool,
}

impl Race {
    fn initial(&self) -> String {
        format!("{} v1\n", self.name)
    }

    /// B's edit: an append.
    fn edited_by_b(&self) -> String {
        format!("{}B was here\n", self.initial())
    }

    /// A's rewrite: the same size as the initial content.
    fn rewritten_by_a(&self) -> String {
        let initial = self.initial();
        let mut out = "A".repeat(initial.len() - 1);
        out.push('\n');
        out
    }
}

fn mode(exec: bool) -> u32 {
    if exec {
        0o755
    } else {
        0o644
    }
}

/// A's change to `path`.
fn change_on_a(race: &Race, path: &Path) {
    match race.change {
        Change::Chmod => chmod(path, mode(!race.exec)),
        Change::SameSizeSameMtime => {
            let was = fs::metadata(path).expect("stat").modified().expect("mtime");
            fs::write(path, race.rewritten_by_a()).expect("rewrite");
            let file = fs::OpenOptions::new().write(true).open(path).expect("open");
            file.set_times(fs::FileTimes::new().set_modified(was))
                .expect("touch -d");
        }
    }
}

/// A server, device A (its client slowed down before each exchange, the
/// user made from its folder) and device B, both holding `races`' files.
struct Fixture {
    // Dropped first: the clients stop before their folders go.
    _ca: Client,
    _cb: Client,
    server: Server,
    a: tempfile::TempDir,
    b: tempfile::TempDir,
    user: String,
}

impl Fixture {
    fn start(races: &[Race]) -> Fixture {
        let server = Server::start();
        let a = tempfile::tempdir().expect("temp dir");
        let b = tempfile::tempdir().expect("temp dir");
        for race in races {
            write(a.path(), &race.name, race.initial());
            chmod(&a.path().join(&race.name), mode(race.exec));
        }
        settle();
        let user = new_user(server.port, a.path());
        let ca = Client::options(server.port, a.path())
            .env("CLOUD_TEST_PLACE_DELAY_MS", &DELAY_MS.to_string())
            .start();
        let cb = Client::start(server.port, b.path(), Some(&user));
        converge("initial", &[a.path(), b.path()]);
        let same = eventually(CONVERGE, || exec_bits(a.path()) == exec_bits(b.path()));
        assert!(same, "initial bits");
        Fixture {
            server,
            a,
            b,
            user,
            _ca: ca,
            _cb: cb,
        }
    }

    /// Plays each race, one at a time (each gets A's window to itself).
    fn play(&self, races: &[Race]) {
        for race in races {
            let (on_a, on_b) = (
                self.a.path().join(&race.name),
                self.b.path().join(&race.name),
            );
            let gap = Duration::from_millis(race.gap_ms);
            if race.a_first {
                change_on_a(race, &on_a);
                std::thread::sleep(gap);
                append(&on_b, "B was here\n");
            } else {
                append(&on_b, "B was here\n");
                std::thread::sleep(gap);
                change_on_a(race, &on_a);
            }
            // B's version reaches A and is placed (after the delay).
            std::thread::sleep(Duration::from_millis(DELAY_MS + 200));
        }
    }

    /// Waits until A, B and the server hold the same files and bits, then
    /// checks that every race kept both changes.
    fn check(&self, races: &[Race]) {
        let (a, b) = (self.a.path(), self.b.path());
        let server = self.server.user_dir(&self.user);
        converge("after the races", &[a, b, &server]);
        let bits = eventually(CONVERGE, || {
            let want = exec_bits(&server);
            exec_bits(a) == want && exec_bits(b) == want
        });
        assert!(
            bits,
            "executable bits differ\n  server {:?}\n  a      {:?}\n  b      {:?}",
            exec_bits(&server),
            exec_bits(a),
            exec_bits(b)
        );
        converge("after the bits", &[a, b, &server]);
        let files = tree(&server);
        let bits = exec_bits(&server);
        for race in races {
            let stem = race.name.trim_end_matches(".sh");
            let copies = |content: &str| {
                files.iter().any(|(k, v)| {
                    (k == &race.name || k.starts_with(&format!("{stem} (conflict ")))
                        && v.as_deref() == Some(content.as_bytes())
                })
            };
            // A rewrite made first may reach B before B's append, which
            // then edits it: B's edit holds A's then.
            let b_on_a = format!("{}B was here\n", race.rewritten_by_a());
            let on_top =
                race.a_first && race.change == Change::SameSizeSameMtime && copies(&b_on_a);
            assert!(
                on_top || copies(&race.edited_by_b()),
                "{race:?}: B's edit lost: {:?}",
                files.keys()
            );
            match race.change {
                Change::Chmod => {
                    assert_eq!(
                        bits.get(&race.name),
                        Some(&!race.exec),
                        "{race:?}: A's chmod lost: {bits:?}"
                    );
                }
                Change::SameSizeSameMtime => assert!(
                    on_top || copies(&race.rewritten_by_a()),
                    "{race:?}: A's rewrite lost: {:?}",
                    files.keys()
                ),
            }
        }
    }
}

/// Every kind of change, both bits, both orders, gaps from 0 to 300 ms.
#[test]
fn a_change_here_racing_a_download_of_the_same_file_keeps_both() {
    let mut races = Vec::new();
    for gap_ms in [0u64, 10, 60, 300] {
        for change in [Change::Chmod, Change::SameSizeSameMtime] {
            for exec in [true, false] {
                for a_first in [false, true] {
                    races.push(Race {
                        name: format!("r{}.sh", races.len()),
                        exec,
                        change,
                        gap_ms,
                        a_first,
                    });
                }
            }
        }
    }
    let f = Fixture::start(&races);
    f.play(&races);
    f.check(&races);
}

/// A randomized mix of the same (`EXEC_RACE_SEED` replays a run).
#[test]
fn randomized_changes_racing_downloads_keep_both() {
    let seed = seed("EXEC_RACE_SEED");
    println!("EXEC_RACE_SEED={seed}");
    let mut rng = Rng::new(seed);
    let races: Vec<Race> = (0..8)
        .map(|i| Race {
            name: format!("x{i}.sh"),
            exec: rng.chance(0.5),
            change: *rng.pick(&[Change::Chmod, Change::SameSizeSameMtime]),
            gap_ms: rng.below(350),
            a_first: rng.chance(0.3),
        })
        .collect();
    let f = Fixture::start(&races);
    f.play(&races);
    f.check(&races);
}
