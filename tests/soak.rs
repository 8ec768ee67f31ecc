//! The randomized soak, the convergence oracle: the real server and three real
//! clients of one user, each in its own folder; a seeded generator creates,
//! modifies, appends, deletes, makes and removes directories, renames and
//! moves, on all three folders, edits the same file on two clients at once,
//! stops clients (SIGTERM, sometimes SIGKILL) and the server, and restarts
//! them. A ledger records every content written and who destroyed what. At
//! the end, after quiescence, the three folders and the server's mirror must
//! be identical, and every content a client wrote and did not itself later
//! overwrite or delete must still exist (at its path or as a conflict copy).
//!
//! ```text
//! cargo test --release --test soak -- --nocapture                # 60 s, a time seed
//! SOAK_SECS=900 cargo test --release --test soak -- --nocapture  # 15 minutes
//! SOAK_SEED=1234 cargo test --release --test soak -- --nocapture # replay a seed
//! ```
//! A seed replays the same operations; the processes' timing differs from
//! run to run, so a failure may take a few replays to show again.
//! `SOAK_VERBOSE=1` runs the clients with `-v`; their logs are kept (with the
//! folders) when the test fails.
//!
//! The oracle is exact because every destructive act of the test identifies
//! the bytes it destroys: a delete renames the file (or directory) into a
//! trash folder outside the synced folder and reads what it moved; an
//! overwrite or append reads the old bytes through the same descriptor it
//! writes through, and checks afterwards that the inode is still linked (if
//! the client replaced the path meanwhile, the write landed on nothing: the
//! test counts it as not written, never as a loss). A move hard-links the new
//! name (which cannot replace anything) before taking the old name away.

#[path = "common/fleet.rs"]
mod fleet;
#[path = "common/procs.rs"]
mod procs;

use cloudservice::protocol::ContentHash;
use fleet::{converge_all, log_tail, new_user, tree, write, Cli, Rng, Srv};
use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const CLIENTS: usize = 3;
const PULLING_RATE: &str = "0.3";
/// Directory and file names overlap on purpose ("g1", "d2"): a file on one
/// client where another made a directory is a case the sync must handle.
const DIRS: [&str; 4] = ["d0", "d1", "d2", "g1"];
const NAMES: [&str; 7] = ["f0.txt", "f1.txt", "f2.txt", "f3.txt", "g0.bin", "g1", "d2"];
/// Never touched by the random operations: keeps every folder non-empty
/// (the client refuses to sync an emptied folder, by design).
const ANCHOR: &str = "anchor.txt";
/// Above this many files in a folder, removals are preferred.
const MANY_FILES: usize = 60;
/// How long the final convergence may take.
const CONVERGE_LIMIT: Duration = Duration::from_secs(240);
/// How long the trees must stay identical to count as converged.
const STABLE: Duration = Duration::from_secs(3);

/// What became of a written content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// Must exist at the end.
    Live,
    /// Overwritten, appended to or deleted by a client that had it.
    Destroyed,
    /// The write landed on a file the client had just replaced: it never
    /// existed in the folder.
    Orphaned,
}

#[derive(Debug, Clone)]
struct Written {
    by: usize,
    op: u64,
    path: String,
    fate: Fate,
}

/// Every content the test wrote, by hash (contents are unique by construction).
#[derive(Default)]
struct Ledger {
    contents: HashMap<ContentHash, Written>,
}

impl Ledger {
    fn wrote(&mut self, data: &[u8], by: usize, op: u64, path: &str) {
        self.contents.insert(
            ContentHash::of(data),
            Written {
                by,
                op,
                path: path.to_owned(),
                fate: Fate::Live,
            },
        );
    }

    fn destroyed(&mut self, data: &[u8]) {
        if let Some(w) = self.contents.get_mut(&ContentHash::of(data)) {
            w.fate = Fate::Destroyed;
        }
    }

    fn orphaned(&mut self, data: &[u8]) {
        if let Some(w) = self.contents.get_mut(&ContentHash::of(data)) {
            w.fate = Fate::Orphaned;
        }
    }
}

#[derive(Default, Debug)]
struct Counts {
    ops: u64,
    creates: u64,
    modifies: u64,
    appends: u64,
    deletes: u64,
    mkdirs: u64,
    rmdirs: u64,
    renames: u64,
    moves: u64,
    dir_moves: u64,
    concurrent: u64,
    orphaned_writes: u64,
    skipped: u64,
    client_terms: u64,
    client_kills: u64,
    server_terms: u64,
    server_kills: u64,
}

struct Soak {
    seed: u64,
    rng: Rng,
    base: PathBuf,
    folders: Vec<PathBuf>,
    trash: PathBuf,
    ledger: Ledger,
    counts: Counts,
    next_trash: u64,
    journal: Vec<String>,
}

impl Soak {
    fn note(&mut self, line: String) {
        self.journal.push(line);
    }

    /// Files and directories of folder `i` (relative), without the state
    /// folder and the anchor.
    fn listing(&self, i: usize) -> (Vec<String>, Vec<String>) {
        let (mut files, mut dirs) = (Vec::new(), Vec::new());
        let root = &self.folders[i];
        let walk = walkdir::WalkDir::new(root).min_depth(1).into_iter();
        for item in walk.filter_entry(|e| e.file_name() != ".cloudservice" || e.depth() != 1) {
            let Ok(item) = item else { continue };
            let rel = item
                .path()
                .strip_prefix(root)
                .expect("inside")
                .to_string_lossy()
                .into_owned();
            if item.file_type().is_dir() {
                dirs.push(rel);
            } else if item.file_type().is_file() && rel != ANCHOR {
                files.push(rel);
            }
        }
        (files, dirs)
    }

    fn content(&mut self, by: usize) -> Vec<u8> {
        let len = match self.rng.below(100) {
            0..=69 => 10 + self.rng.below(2_000),
            70..=94 => 2_000 + self.rng.below(100_000),
            _ => 100_000 + self.rng.below(600_000),
        } as usize;
        let mut data =
            format!("seed {} client {by} op {}\n", self.seed, self.counts.ops).into_bytes();
        data.extend(self.rng.bytes(len));
        data
    }

    fn random_dir(&mut self) -> String {
        let depth = self.rng.below(3);
        let parts: Vec<&str> = (0..depth).map(|_| *self.rng.pick(&DIRS)).collect();
        parts.join("/")
    }

    fn random_file_path(&mut self) -> String {
        let dir = self.random_dir();
        let name = *self.rng.pick(&NAMES);
        if dir.is_empty() {
            name.to_owned()
        } else {
            format!("{dir}/{name}")
        }
    }

    fn trash_slot(&mut self) -> PathBuf {
        self.next_trash += 1;
        self.trash.join(format!("t{}", self.next_trash))
    }

    /// Writes a new file; if the path is taken, overwrites it instead.
    fn create(&mut self, i: usize, rel: &str) -> bool {
        let full = self.folders[i].join(rel);
        if let Some(parent) = full.parent() {
            if fs::create_dir_all(parent).is_err() {
                return false;
            }
        }
        let data = self.content(i);
        match OpenOptions::new().write(true).create_new(true).open(&full) {
            Ok(mut f) => {
                if f.write_all(&data).is_err() {
                    return false;
                }
                self.ledger.wrote(&data, i, self.counts.ops, rel);
                if f.metadata().map(|m| m.nlink()).unwrap_or(0) == 0 {
                    self.ledger.orphaned(&data);
                    self.counts.orphaned_writes += 1;
                }
                self.counts.creates += 1;
                self.note(format!(
                    "{}: c{i} create {rel} ({} B)",
                    self.counts.ops,
                    data.len()
                ));
                true
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                self.overwrite(i, rel, false)
            }
            Err(_) => false,
        }
    }

    /// Replaces (or, with `append`, extends) a file's content, reading the
    /// old bytes through the same descriptor.
    fn overwrite(&mut self, i: usize, rel: &str, append: bool) -> bool {
        let full = self.folders[i].join(rel);
        let Ok(mut f) = OpenOptions::new().read(true).write(true).open(&full) else {
            return false;
        };
        let mut old = Vec::new();
        if f.read_to_end(&mut old).is_err() {
            return false;
        }
        let new = if append {
            let mut extra = format!("append client {i} op {}\n", self.counts.ops).into_bytes();
            let n = 1 + self.rng.below(5_000) as usize;
            extra.extend(self.rng.bytes(n));
            let mut whole = old.clone();
            whole.extend_from_slice(&extra);
            if f.write_all(&extra).is_err() {
                return false;
            }
            whole
        } else {
            let data = self.content(i);
            if f.seek(SeekFrom::Start(0)).is_err()
                || f.set_len(0).is_err()
                || f.write_all(&data).is_err()
            {
                return false;
            }
            data
        };
        self.ledger.wrote(&new, i, self.counts.ops, rel);
        if f.metadata().map(|m| m.nlink()).unwrap_or(0) == 0 {
            // The client replaced the path just before: this write went nowhere.
            self.ledger.orphaned(&new);
            self.counts.orphaned_writes += 1;
        } else {
            self.ledger.destroyed(&old);
        }
        if append {
            self.counts.appends += 1;
        } else {
            self.counts.modifies += 1;
        }
        let what = if append { "append" } else { "modify" };
        self.note(format!(
            "{}: c{i} {what} {rel} ({} B)",
            self.counts.ops,
            new.len()
        ));
        true
    }

    /// Moves a file or directory into the trash and forgets what it held.
    fn remove(&mut self, i: usize, rel: &str) -> bool {
        let slot = self.trash_slot();
        if fs::rename(self.folders[i].join(rel), &slot).is_err() {
            return false;
        }
        let gone = tree(&slot);
        let meta = fs::symlink_metadata(&slot).expect("trash entry");
        if meta.is_dir() {
            for data in gone.values().flatten() {
                self.ledger.destroyed(data);
            }
            fs::remove_dir_all(&slot).expect("empty trash");
            self.counts.rmdirs += 1;
            self.note(format!(
                "{}: c{i} rmdir {rel} ({} entries)",
                self.counts.ops,
                gone.len()
            ));
        } else {
            let data = fs::read(&slot).expect("read trash");
            self.ledger.destroyed(&data);
            fs::remove_file(&slot).expect("empty trash");
            self.counts.deletes += 1;
            self.note(format!("{}: c{i} delete {rel}", self.counts.ops));
        }
        true
    }

    /// Renames or moves a file without ever replacing the target.
    fn move_file(&mut self, i: usize, from: &str, to: &str) -> bool {
        let root = &self.folders[i];
        let (src, dst) = (root.join(from), root.join(to));
        if let Some(parent) = dst.parent() {
            if fs::create_dir_all(parent).is_err() {
                return false;
            }
        }
        if fs::hard_link(&src, &dst).is_err() {
            return false;
        }
        let slot = self.trash_slot();
        if fs::rename(&src, &slot).is_ok() {
            let moved = fs::symlink_metadata(&slot).map(|m| m.ino()).ok();
            let linked = fs::symlink_metadata(&dst).map(|m| m.ino()).ok();
            if moved != linked {
                // The client replaced the old name in between: what was taken
                // away is gone by this client's hand.
                if let Ok(data) = fs::read(&slot) {
                    self.ledger.destroyed(&data);
                }
            }
            let _ = fs::remove_file(&slot);
        }
        self.note(format!("{}: c{i} move {from} -> {to}", self.counts.ops));
        true
    }

    fn move_dir(&mut self, i: usize, from: &str, to: &str) -> bool {
        let root = &self.folders[i];
        let dst = root.join(to);
        if dst.exists() || to.starts_with(&format!("{from}/")) {
            return false;
        }
        if let Some(parent) = dst.parent() {
            if fs::create_dir_all(parent).is_err() {
                return false;
            }
        }
        // A rename onto an existing directory succeeds only if it is empty,
        // so no content can be replaced.
        if fs::rename(root.join(from), &dst).is_err() {
            return false;
        }
        self.counts.dir_moves += 1;
        self.note(format!("{}: c{i} move dir {from} -> {to}", self.counts.ops));
        true
    }

    /// One random operation on folder `i`.
    fn step(&mut self, i: usize) {
        self.counts.ops += 1;
        let (files, dirs) = self.listing(i);
        let crowded = files.len() > MANY_FILES;
        let roll = self.rng.below(100);
        let done = match roll {
            0..=19 if !crowded => {
                let rel = self.random_file_path();
                self.create(i, &rel)
            }
            20..=34 if !files.is_empty() => {
                let rel = self.rng.pick(&files).clone();
                self.overwrite(i, &rel, false)
            }
            35..=44 if !files.is_empty() => {
                let rel = self.rng.pick(&files).clone();
                self.overwrite(i, &rel, true)
            }
            45..=54 if !files.is_empty() => {
                let rel = self.rng.pick(&files).clone();
                self.remove(i, &rel)
            }
            55..=60 => {
                let rel = self.random_dir();
                let ok = !rel.is_empty() && fs::create_dir_all(self.folders[i].join(&rel)).is_ok();
                if ok {
                    self.counts.mkdirs += 1;
                    self.note(format!("{}: c{i} mkdir {rel}", self.counts.ops));
                }
                ok
            }
            61..=65 if !dirs.is_empty() => {
                let rel = self.rng.pick(&dirs).clone();
                self.remove(i, &rel)
            }
            66..=71 if !files.is_empty() => {
                // Rename within the same directory.
                let from = self.rng.pick(&files).clone();
                let name = *self.rng.pick(&NAMES);
                let to = match from.rsplit_once('/') {
                    Some((dir, _)) => format!("{dir}/{name}"),
                    None => name.to_owned(),
                };
                let ok = self.move_file(i, &from, &to);
                self.counts.renames += u64::from(ok);
                ok
            }
            72..=77 if !files.is_empty() => {
                let from = self.rng.pick(&files).clone();
                let to = self.random_file_path();
                let ok = self.move_file(i, &from, &to);
                self.counts.moves += u64::from(ok);
                ok
            }
            78..=81 if !dirs.is_empty() => {
                let from = self.rng.pick(&dirs).clone();
                let to = self.random_dir();
                !to.is_empty() && self.move_dir(i, &from, &to)
            }
            82..=91 if !files.is_empty() => {
                // The same file edited on two (sometimes three) clients at once.
                let rel = self.rng.pick(&files).clone();
                let others: Vec<usize> = (0..CLIENTS).filter(|j| *j != i).collect();
                let j = *self.rng.pick(&others);
                let append = self.rng.chance(0.3);
                let mut ok = self.overwrite(i, &rel, append);
                ok |= self.create(j, &rel);
                if self.rng.chance(0.25) {
                    let k = 3 - i - j;
                    ok |= self.create(k, &rel);
                }
                self.counts.concurrent += u64::from(ok);
                ok
            }
            92..=95 => {
                // Let the clients catch up now and then.
                std::thread::sleep(Duration::from_millis(200 + self.rng.below(1_300)));
                true
            }
            _ if crowded && !files.is_empty() => {
                let rel = self.rng.pick(&files).clone();
                self.remove(i, &rel)
            }
            _ => {
                let rel = self.random_file_path();
                self.create(i, &rel)
            }
        };
        if !done {
            self.counts.skipped += 1;
        }
    }
}

fn seed() -> u64 {
    match std::env::var("SOAK_SEED") {
        Ok(s) => s.trim().parse().expect("SOAK_SEED is a u64"),
        Err(_) => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1),
    }
}

fn secs() -> u64 {
    std::env::var("SOAK_SECS")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(60)
}

/// A running client or when to start it again.
struct Slot {
    cli: Cli,
    back_at: Option<Instant>,
    spawned_at: Instant,
}

fn last_line(text: &str) -> &str {
    text.trim_end().lines().last().unwrap_or("")
}

struct Fleet {
    srv: Srv,
    server_back_at: Option<Instant>,
    last_server_down: Option<Instant>,
    slots: Vec<Slot>,
}

/// Fails the test with the seed, the last operations and the logs; keeps
/// the folders for inspection.
fn fail(soak: &Soak, fleet: &Fleet, base: tempfile::TempDir, why: &str) -> ! {
    let kept = base.keep();
    let _ = fs::write(kept.join("ops.log"), soak.journal.join("\n"));
    let mut msg = format!(
        "SOAK FAILED (seed {}, replay with SOAK_SEED={} SOAK_SECS={}): {why}\n\
         folders, logs and every operation (ops.log) kept in {}\ncounts: {:?}\nlast operations:\n",
        soak.seed,
        soak.seed,
        secs(),
        kept.display(),
        soak.counts
    );
    for line in soak.journal.iter().rev().take(60).rev() {
        msg.push_str(&format!("  {line}\n"));
    }
    for (i, slot) in fleet.slots.iter().enumerate() {
        msg.push_str(&format!(
            "--- client {i} log tail ---\n{}\n",
            log_tail(&slot.cli.log, 3_000)
        ));
    }
    msg.push_str(&format!(
        "--- server log tail ---\n{}\n",
        log_tail(&fleet.srv.log, 3_000)
    ));
    panic!("{msg}");
}

#[test]
fn soak_three_clients_converge_without_losing_a_byte() {
    let seed = seed();
    let duration = Duration::from_secs(secs());
    println!(
        "soak: seed {seed}, {} s (replay: SOAK_SEED={seed})",
        duration.as_secs()
    );
    eprintln!(
        "soak: seed {seed}, {} s (replay: SOAK_SEED={seed})",
        duration.as_secs()
    );
    let base = tempfile::tempdir().expect("temp dir");
    let folders: Vec<PathBuf> = (0..CLIENTS)
        .map(|i| base.path().join(format!("client{i}")))
        .collect();
    let trash = base.path().join("trash");
    for f in folders.iter().chain([&trash]) {
        fs::create_dir_all(f).expect("mkdir");
    }
    let mut soak = Soak {
        seed,
        rng: Rng::new(seed),
        base: base.path().to_path_buf(),
        folders: folders.clone(),
        trash,
        ledger: Ledger::default(),
        counts: Counts::default(),
        next_trash: 0,
        journal: Vec::new(),
    };
    write(&folders[0], ANCHOR, "never touched by the soak\n");
    // Half the seeds run the server with user actors that retire after
    // 0.2 s idle, so retiring and adopting happen all the time.
    let server_args: &[&str] = if soak.rng.chance(0.5) {
        &["--actor-idle", "0.2"]
    } else {
        &[]
    };
    println!("soak: server arguments {server_args:?}");
    let srv = Srv::start(
        &base.path().join("server"),
        &base.path().join("server.log"),
        server_args,
    );
    let user = new_user(srv.port, &folders[0]);
    let slots: Vec<Slot> = (0..CLIENTS)
        .map(|i| Slot {
            cli: Cli::start(
                srv.port,
                &folders[i],
                Some(&user),
                PULLING_RATE,
                &soak.base.join(format!("client{i}.log")),
            ),
            back_at: None,
            spawned_at: Instant::now(),
        })
        .collect();
    let mut fleet = Fleet {
        srv,
        server_back_at: None,
        last_server_down: None,
        slots,
    };

    let start = Instant::now();
    let mut next_client_trouble = start + Duration::from_millis(2_000 + soak.rng.below(4_000));
    let mut next_server_trouble = start + Duration::from_millis(10_000 + soak.rng.below(20_000));
    while start.elapsed() < duration {
        let i = soak.rng.below(CLIENTS as u64) as usize;
        soak.step(i);
        std::thread::sleep(Duration::from_millis(soak.rng.below(40)));
        let now = Instant::now();
        // Unexpected exits are failures.
        for k in 0..CLIENTS {
            let Some(status) = fleet.slots[k].cli.exited() else {
                continue;
            };
            // A client started just before the server went down fails its
            // start-up (one line, exit 1, as documented; connection trouble
            // is retried only once running): start it again. Any other exit
            // is a failure.
            let slot = &mut fleet.slots[k];
            let tail = log_tail(&slot.cli.log, 300);
            let outage = fleet.last_server_down.is_some_and(|t| t >= slot.spawned_at);
            let line = last_line(&tail);
            let startup = [
                "cannot reach server",
                "connection lost",
                "no answer to the handshake",
            ]
            .iter()
            .any(|why| line.starts_with("cloud-client: ") && line.contains(why));
            if outage && startup {
                slot.cli.kill9();
                slot.back_at = Some(now);
                soak.note(format!(
                    "{}: client {k} start-up met the outage",
                    soak.counts.ops
                ));
                continue;
            }
            let why = format!("client {k} exited on its own: {status}");
            fail(&soak, &fleet, base, &why);
        }
        if let Some(at) = fleet.server_back_at {
            if now >= at {
                fleet.srv.start_again();
                fleet.server_back_at = None;
                soak.note(format!("{}: server started", soak.counts.ops));
            }
        } else if !fleet.srv.is_running() {
            fail(&soak, &fleet, base, "the server exited on its own");
        }
        let server_up = fleet.server_back_at.is_none();
        for slot in fleet.slots.iter_mut() {
            // A client cannot start while the server is down (start-up
            // errors are fatal by design); it waits.
            if server_up && slot.back_at.is_some_and(|at| now >= at) {
                slot.cli.spawn();
                slot.spawned_at = Instant::now();
                slot.back_at = None;
            }
        }
        if now >= next_client_trouble {
            next_client_trouble = now + Duration::from_millis(1_500 + soak.rng.below(6_000));
            let k = soak.rng.below(CLIENTS as u64) as usize;
            let slot = &mut fleet.slots[k];
            if slot.cli.started() {
                // A process signalled before it installed its handlers dies
                // of SIGTERM like any program: only a client that has been up
                // a moment gets the polite signal.
                let fresh = slot.spawned_at.elapsed() < Duration::from_millis(1_500);
                if soak.rng.chance(0.35) || fresh {
                    slot.cli.kill9();
                    soak.counts.client_kills += 1;
                    soak.note(format!("{}: client {k} kill -9", soak.counts.ops));
                } else {
                    let status = slot.cli.stop();
                    soak.counts.client_terms += 1;
                    soak.note(format!("{}: client {k} SIGTERM", soak.counts.ops));
                    if !status.is_some_and(|s| s.success()) {
                        let why = format!("client {k} did not exit 0 on SIGTERM: {status:?}");
                        fail(&soak, &fleet, base, &why);
                    }
                }
                slot.back_at = Some(now + Duration::from_millis(200 + soak.rng.below(3_000)));
            }
        }
        if now >= next_server_trouble && fleet.server_back_at.is_none() {
            next_server_trouble = now + Duration::from_millis(15_000 + soak.rng.below(30_000));
            if soak.rng.chance(0.5) {
                fleet.srv.kill9();
                soak.counts.server_kills += 1;
                soak.note(format!("{}: server kill -9", soak.counts.ops));
            } else {
                fleet.srv.stop();
                soak.counts.server_terms += 1;
                soak.note(format!("{}: server SIGTERM", soak.counts.ops));
            }
            fleet.server_back_at = Some(now + Duration::from_millis(200 + soak.rng.below(2_000)));
            fleet.last_server_down = Some(Instant::now());
        }
    }

    // Quiescence: everything running, nothing mutating.
    if fleet.server_back_at.take().is_some() {
        fleet.srv.start_again();
    }
    for slot in fleet.slots.iter_mut() {
        if slot.back_at.take().is_some() {
            slot.cli.spawn();
        }
    }
    eprintln!(
        "soak: {} operations in {:.0} s; waiting for convergence",
        soak.counts.ops,
        start.elapsed().as_secs_f64()
    );
    let server_dir = fleet.srv.user_dir(&user);
    let mut all: Vec<&Path> = folders.iter().map(PathBuf::as_path).collect();
    all.push(&server_dir);
    let settled = Instant::now();
    let final_tree = match converge_all(&all, CONVERGE_LIMIT, STABLE) {
        Ok(t) => t,
        Err(diff) => fail(&soak, &fleet, base, &format!("no convergence:\n{diff}")),
    };
    for (k, slot) in fleet.slots.iter_mut().enumerate() {
        if let Some(status) = slot.cli.exited() {
            let why = format!("client {k} exited on its own: {status}");
            fail(&soak, &fleet, base, &why);
        }
    }
    let present: std::collections::HashSet<ContentHash> = final_tree
        .values()
        .flatten()
        .map(|data| ContentHash::of(data))
        .collect();
    let mut lost: Vec<&Written> = soak
        .ledger
        .contents
        .iter()
        .filter(|(h, w)| w.fate == Fate::Live && !present.contains(h))
        .map(|(_, w)| w)
        .collect();
    lost.sort_by_key(|w| w.op);
    if !lost.is_empty() {
        let list: Vec<String> = lost
            .iter()
            .map(|w| format!("  op {} by client {} at {}", w.op, w.by, w.path))
            .collect();
        let why = format!(
            "{} written contents are lost:\n{}",
            lost.len(),
            list.join("\n")
        );
        fail(&soak, &fleet, base, &why);
    }
    let live = soak
        .ledger
        .contents
        .values()
        .filter(|w| w.fate == Fate::Live)
        .count();
    let conflicts = final_tree
        .keys()
        .filter(|k| k.contains("(conflict "))
        .count();
    for (k, slot) in fleet.slots.iter_mut().enumerate() {
        let status = slot.cli.stop();
        if !status.is_some_and(|s| s.success()) {
            let why = format!("client {k} did not exit 0 on SIGTERM: {status:?}");
            fail(&soak, &fleet, base, &why);
        }
    }
    fleet.srv.stop();
    let summary = format!(
        "soak: seed {seed}: {} operations, {} contents written, {live} live and all present, \
         {} entries in the final tree ({conflicts} conflict copies), converged in {:.1} s; {:?}",
        soak.counts.ops,
        soak.ledger.contents.len(),
        final_tree.len(),
        settled.elapsed().as_secs_f64(),
        soak.counts
    );
    println!("{summary}");
    eprintln!("{summary}");
}
