//! The soak's random file operations on one folder, each recording in the
//! ledger exactly the bytes it writes and destroys.

use crate::common::{tree, walk, Rng};
use crate::ledger::{Counts, Ledger};
use std::fs::{self, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::Duration;

/// How many clients (folders) the soak runs.
pub const CLIENTS: usize = 3;
/// Directory and file names overlap on purpose ("g1", "d2"): a file on one
/// client where another made a directory is a case the sync must handle.
const DIRS: [&str; 4] = ["d0", "d1", "d2", "g1"];
const NAMES: [&str; 7] = ["f0.txt", "f1.txt", "f2.txt", "f3.txt", "g0.bin", "g1", "d2"];
/// Never touched by the random operations: keeps every folder non-empty
/// (the client refuses to sync an emptied folder, by design).
pub const ANCHOR: &str = "anchor.txt";
/// Above this many files in a folder, removals are preferred.
const MANY_FILES: usize = 60;

pub struct Soak {
    pub seed: u64,
    pub rng: Rng,
    pub base: PathBuf,
    pub folders: Vec<PathBuf>,
    pub trash: PathBuf,
    pub ledger: Ledger,
    pub counts: Counts,
    pub next_trash: u64,
    pub journal: Vec<String>,
}

impl Soak {
    pub fn note(&mut self, line: String) {
        self.journal.push(line);
    }

    /// Files and directories of folder `i` (relative), without the state
    /// folder and the anchor.
    pub(crate) fn listing(&self, i: usize) -> (Vec<String>, Vec<String>) {
        let (mut files, mut dirs) = (Vec::new(), Vec::new());
        let root = &self.folders[i];
        for (rel, item) in walk(root) {
            if item.file_type().is_dir() {
                dirs.push(rel);
            } else if item.file_type().is_file() && rel != ANCHOR {
                files.push(rel);
            }
        }
        (files, dirs)
    }

    pub(crate) fn content(&mut self, by: usize) -> Vec<u8> {
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

    pub(crate) fn random_dir(&mut self) -> String {
        let depth = self.rng.below(3);
        let parts: Vec<&str> = (0..depth).map(|_| *self.rng.pick(&DIRS)).collect();
        parts.join("/")
    }

    pub(crate) fn random_file_path(&mut self) -> String {
        let dir = self.random_dir();
        let name = *self.rng.pick(&NAMES);
        if dir.is_empty() {
            name.to_owned()
        } else {
            format!("{dir}/{name}")
        }
    }

    pub(crate) fn trash_slot(&mut self) -> PathBuf {
        self.next_trash += 1;
        self.trash.join(format!("t{}", self.next_trash))
    }

    /// Writes a new file; if the path is taken, overwrites it instead.
    pub(crate) fn create(&mut self, i: usize, rel: &str) -> bool {
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
    pub(crate) fn overwrite(&mut self, i: usize, rel: &str, append: bool) -> bool {
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
    pub(crate) fn remove(&mut self, i: usize, rel: &str) -> bool {
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
            // A client makes each entry in a directory through a handle on
            // it and takes the entry back when the directory has left the
            // folder meanwhile (PROTOCOL.md ): for the few system
            // calls in between, removing the directory can meet it
            // (ENOTEMPTY; soak seed 1796385349871990865 once, before the
            // fix). A moment later it must be gone again: anything still
            // there that this move did not take along is a client's write
            // outside its folder.
            let mut tries = 0;
            while let Err(e) = fs::remove_dir_all(&slot) {
                tries += 1;
                assert!(tries < 20, "cannot empty the trash {}: {e}", slot.display());
                self.note(format!("trash {}: {e}; again", slot.display()));
                std::thread::sleep(std::time::Duration::from_millis(50));
                let stayed: Vec<String> = tree(&slot)
                    .into_iter()
                    .filter(|(path, data)| gone.get(path) != Some(data))
                    .map(|(path, _)| path)
                    .collect();
                assert!(
                    stayed.is_empty(),
                    "a client wrote into {rel} after it was moved out of c{i}'s folder: {stayed:?}"
                );
            }
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
    pub(crate) fn move_file(&mut self, i: usize, from: &str, to: &str) -> bool {
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

    pub(crate) fn move_dir(&mut self, i: usize, from: &str, to: &str) -> bool {
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
    pub fn step(&mut self, i: usize) {
        self.counts.ops += 1;
        let (files, dirs) = self.listing(i);
        let crowded = files.len() > MANY_FILES;
        let roll = self.rng.below(114);
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
            // The patterns of issue 9, 14 in 114.
            100..=101 if !files.is_empty() => {
                let rel = self.rng.pick(&files).clone();
                self.rewrite_keeping_mtime(i, &rel)
            }
            102..=103 if files.len() >= 2 => {
                let from = self.rng.pick(&files).clone();
                let to = self.rng.pick(&files).clone();
                self.rename_over_same_size(i, &from, &to)
            }
            104 if !files.is_empty() && !crowded => {
                let from = self.rng.pick(&files).clone();
                let to = self.random_file_path();
                self.hard_link(i, &from, &to)
            }
            105..=106 if !crowded => {
                let rel = self.random_file_path();
                self.create_future(i, &rel)
            }
            107..=108 => self.type_change_with_rename(i, &files, &dirs),
            109..=111 if !files.is_empty() => {
                let rel = self.rng.pick(&files).clone();
                self.editor_save(i, &rel)
            }
            112..=113 if !files.is_empty() => {
                let rel = self.rng.pick(&files).clone();
                self.appends_during_rewrites(i, &rel)
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
