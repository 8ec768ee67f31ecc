//! Edit patterns that users of other sync tools reported losing changes
//! with (issue 9), as soak operations. Like the basic operations, each one
//! records in the ledger exactly the bytes it writes and the bytes it
//! destroys: whatever a rename replaces is swapped out with
//! `renameat2(RENAME_EXCHANGE)` to a name the soak owns and read there, so
//! a file the client placed in between is never miscounted.

use crate::ops::{Soak, CLIENTS};
use rustix::fs::{renameat_with, RenameFlags, CWD};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// 2100-01-01T00:00:00Z, a date no "wait until it is old enough" rule reaches.
const YEAR_2100: Duration = Duration::from_secs(4_102_444_800);

/// Swaps two names atomically; both must exist.
fn exchange(a: &Path, b: &Path) -> bool {
    renameat_with(CWD, a, CWD, b, RenameFlags::EXCHANGE).is_ok()
}

impl Soak {
    /// Unique content of exactly `len` bytes (`None` if too short to be unique).
    fn content_of_len(&mut self, by: usize, len: usize) -> Option<Vec<u8>> {
        let mut data = format!("c{by} o{} s{}\n", self.counts.ops, self.seed % 1000).into_bytes();
        if len < data.len() + 16 {
            return None;
        }
        let fill = len - data.len();
        data.extend(self.rng.bytes(fill));
        Some(data)
    }

    /// Moves whatever is at `rel` out of the folder and marks its bytes
    /// destroyed (it is the soak's own hand that replaced them). That can be
    /// a directory: a client may have made one at the name between the
    /// soak's write and its exchange (a pull placing another device's files
    /// there), and the exchange then swapped the whole directory out; every
    /// file in it was destroyed by the soak's hand too. (Before, such a
    /// directory was left unread in the trash and its files were reported
    /// lost: seed 1796237945774194205.)
    fn discard(&mut self, i: usize, rel: &str) {
        let slot = self.trash_slot();
        if fs::rename(self.folders[i].join(rel), &slot).is_err() {
            return;
        }
        if fs::symlink_metadata(&slot).is_ok_and(|m| m.is_dir()) {
            for data in crate::common::tree(&slot).values().flatten() {
                self.ledger.destroyed(data);
            }
            let _ = fs::remove_dir_all(&slot);
        } else {
            if let Ok(data) = fs::read(&slot) {
                self.ledger.destroyed(&data);
            }
            let _ = fs::remove_file(&slot);
        }
    }

    /// Rewrites a file in place with new bytes of the same length and puts
    /// its old mtime back, as `cp -p`, `rsync -t`, `touch -r` and archive
    /// extraction do: size and mtime say nothing changed, the content did.
    pub fn rewrite_keeping_mtime(&mut self, i: usize, rel: &str) -> bool {
        let full = self.folders[i].join(rel);
        let Ok(mut f) = OpenOptions::new().read(true).write(true).open(&full) else {
            return false;
        };
        let Ok(meta) = f.metadata() else { return false };
        let Ok(mtime) = meta.modified() else {
            return false;
        };
        let mut old = Vec::new();
        if f.read_to_end(&mut old).is_err() {
            return false;
        }
        let Some(new) = self.content_of_len(i, old.len()) else {
            return false;
        };
        if f.seek(SeekFrom::Start(0)).is_err() || f.write_all(&new).is_err() {
            return false;
        }
        let _ = f.set_modified(mtime);
        self.record_rewrite(i, rel, &f, &old, &new);
        self.counts.mtime_rewrites += 1;
        self.note(format!(
            "{}: c{i} rewrite keeping size and mtime {rel} ({} B)",
            self.counts.ops,
            new.len()
        ));
        true
    }

    /// Ledger bookkeeping of a write through `f` that replaced `old` by `new`.
    fn record_rewrite(&mut self, i: usize, rel: &str, f: &File, old: &[u8], new: &[u8]) {
        self.ledger.wrote(new, i, self.counts.ops, rel);
        if f.metadata().map(|m| m.nlink()).unwrap_or(0) == 0 {
            self.ledger.orphaned(new);
            self.counts.orphaned_writes += 1;
        } else {
            self.ledger.destroyed(old);
        }
    }

    /// Creates a file whose mtime lies in the future (an hour ahead, or the
    /// year 2100): it must sync as soon as it stops changing.
    pub fn create_future(&mut self, i: usize, rel: &str) -> bool {
        let full = self.folders[i].join(rel);
        if let Some(parent) = full.parent() {
            if fs::create_dir_all(parent).is_err() {
                return false;
            }
        }
        let data = self.content(i);
        let Ok(mut f) = OpenOptions::new().write(true).create_new(true).open(&full) else {
            return false;
        };
        if f.write_all(&data).is_err() {
            return false;
        }
        let when = if self.rng.chance(0.5) {
            SystemTime::now() + Duration::from_secs(3_600)
        } else {
            UNIX_EPOCH + YEAR_2100
        };
        let _ = f.set_modified(when);
        self.ledger.wrote(&data, i, self.counts.ops, rel);
        if f.metadata().map(|m| m.nlink()).unwrap_or(0) == 0 {
            self.ledger.orphaned(&data);
            self.counts.orphaned_writes += 1;
        }
        self.counts.future_mtimes += 1;
        self.note(format!(
            "{}: c{i} create {rel} dated {when:?} ({} B)",
            self.counts.ops,
            data.len()
        ));
        true
    }

    /// Gives a file a second name (never replacing anything): later writes
    /// through either name change both.
    pub fn hard_link(&mut self, i: usize, from: &str, to: &str) -> bool {
        let root = &self.folders[i];
        let dst = root.join(to);
        if let Some(parent) = dst.parent() {
            if fs::create_dir_all(parent).is_err() {
                return false;
            }
        }
        if fs::hard_link(root.join(from), &dst).is_err() {
            return false;
        }
        self.counts.hard_links += 1;
        self.note(format!(
            "{}: c{i} hard link {from} -> {to}",
            self.counts.ops
        ));
        true
    }

    /// `mv from to` over an existing file of the same size: `from` is first
    /// rewritten to `to`'s length, then the two names are swapped and the
    /// swapped-out bytes discarded.
    pub fn rename_over_same_size(&mut self, i: usize, from: &str, to: &str) -> bool {
        let root = self.folders[i].clone();
        let Ok(target) = fs::symlink_metadata(root.join(to)) else {
            return false;
        };
        if !target.is_file() || from == to {
            return false;
        }
        let Ok(mut f) = OpenOptions::new()
            .read(true)
            .write(true)
            .open(root.join(from))
        else {
            return false;
        };
        let mut old = Vec::new();
        if f.read_to_end(&mut old).is_err() {
            return false;
        }
        let Some(new) = self.content_of_len(i, target.len() as usize) else {
            return false;
        };
        if f.seek(SeekFrom::Start(0)).is_err()
            || f.set_len(0).is_err()
            || f.write_all(&new).is_err()
        {
            return false;
        }
        self.record_rewrite(i, to, &f, &old, &new);
        drop(f);
        // Sometimes the rewrite syncs before the rename, sometimes not.
        std::thread::sleep(Duration::from_millis(self.rng.below(400)));
        if !exchange(&root.join(from), &root.join(to)) {
            return true;
        }
        self.discard(i, from);
        self.counts.renames_over += 1;
        self.note(format!(
            "{}: c{i} rename {from} over same-size {to}",
            self.counts.ops
        ));
        true
    }

    /// An editor's save: the new content goes to a temporary file beside
    /// the original, which then takes the original's name.
    pub fn editor_save(&mut self, i: usize, rel: &str) -> bool {
        let root = self.folders[i].clone();
        if !root.join(rel).is_file() {
            return false;
        }
        let tmp = match rel.rsplit_once('/') {
            Some((dir, _)) => format!("{dir}/.goutputstream-{}", self.counts.ops),
            None => format!(".goutputstream-{}", self.counts.ops),
        };
        let data = self.content(i);
        let Ok(mut f) = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(root.join(&tmp))
        else {
            return false;
        };
        if f.write_all(&data).is_err() {
            return false;
        }
        self.ledger.wrote(&data, i, self.counts.ops, rel);
        drop(f);
        std::thread::sleep(Duration::from_millis(self.rng.below(20)));
        if exchange(&root.join(&tmp), &root.join(rel)) {
            self.discard(i, &tmp);
        } else if renameat_with(
            CWD,
            root.join(&tmp),
            CWD,
            root.join(rel),
            RenameFlags::NOREPLACE,
        )
        .is_err()
        {
            // The original vanished and the name is taken again: the new
            // content stays under the temporary name (still live).
            if let Some(w) = self
                .ledger
                .contents
                .get_mut(&cloudservice::protocol::ContentHash::of(&data))
            {
                w.path = tmp.clone();
            }
        }
        self.counts.editor_saves += 1;
        self.note(format!(
            "{}: c{i} editor save {rel} via {tmp} ({} B)",
            self.counts.ops,
            data.len()
        ));
        true
    }

    /// A rename combined with a type change at one path, one of:
    /// `mv A A_old; mkdir A; mv A_old A/A` (a file becomes a directory that
    /// holds it), `rm -r D; mv F D` (a directory replaced by a renamed file)
    /// or `rm F; mv D F` (a file replaced by a renamed directory).
    pub fn type_change_with_rename(&mut self, i: usize, files: &[String], dirs: &[String]) -> bool {
        let done = match self.rng.below(3) {
            0 if !files.is_empty() => {
                let rel = self.rng.pick(files).clone();
                let aside = format!("{rel}_old");
                let name = rel.rsplit('/').next().unwrap_or(&rel).to_owned();
                self.move_file(i, &rel, &aside)
                    && fs::create_dir(self.folders[i].join(&rel)).is_ok()
                    && self.move_file(i, &aside, &format!("{rel}/{name}"))
            }
            1 if !files.is_empty() && !dirs.is_empty() => {
                let dir = self.rng.pick(dirs).clone();
                let file = self.rng.pick(files).clone();
                !file.starts_with(&format!("{dir}/"))
                    && self.remove(i, &dir)
                    && self.move_file(i, &file, &dir)
            }
            2 if !files.is_empty() && !dirs.is_empty() => {
                let dir = self.rng.pick(dirs).clone();
                let file = self.rng.pick(files).clone();
                !file.starts_with(&format!("{dir}/"))
                    && self.remove(i, &file)
                    && self.move_dir(i, &dir, &file)
            }
            _ => false,
        };
        if done {
            self.counts.type_changes += 1;
        }
        done
    }

    /// Appends on client `i` every 15 ms while client `j` rewrites the same
    /// file every 0.4 s: downloads land while the local file grows.
    pub fn appends_during_rewrites(&mut self, i: usize, rel: &str) -> bool {
        let others: Vec<usize> = (0..CLIENTS).filter(|j| *j != i).collect();
        let j = *self.rng.pick(&others);
        let rounds = 20 + self.rng.below(40);
        let mut any = false;
        for round in 0..rounds {
            if round % 27 == 0 {
                any |= self.create(j, rel);
            }
            any |= self.overwrite(i, rel, true);
            std::thread::sleep(Duration::from_millis(15));
        }
        self.counts.append_bursts += u64::from(any);
        any
    }
}
