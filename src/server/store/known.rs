//! What the server knows each file of the folder holds without reading it
//! (PROTOCOL.md ): for a file it placed itself, its identity as a
//! `stat` gave it then (device, inode, size, mtime, ctime) and the content
//! hash it wrote. A push that takes the file out of the folder keeps it as
//! a version; it reads and hashes the file first only when the identity
//! changed. Any write, truncation, `touch`, `chmod` or link by hand changes
//! the ctime, which nobody can set back (only the clock sets it), so an
//! edit in place that put size and mtime back is still seen.
//!
//! Kept in memory by the user's actor and saved in `known` in the user's
//! state at a close that changed it (an idle actor retires after 30 s: an
//! in-memory map alone would make the first displacement after each
//! retirement read the file). Each entry vouches for itself: it is used
//! only while the file's `fstat` equals it exactly and the journal names
//! the same hash, so a stale, missing or older file (a crash after the last
//! close, a backup put back: other inodes, other ctimes) only costs reads,
//! never a wrong "kept already".
//!
//! A ctime only tells every later change apart when the file system gives
//! a file whose ctime was looked at a new one at its next change, however
//! soon (Linux 6.13's multigrain timestamps on ext4, XFS, btrfs, tmpfs):
//! [`probe_fine_ctime`] asks the file system at each open, with every kind
//! of hand change. Elsewhere nothing is remembered and every displaced
//! file is read: with a coarse clock a change in the same tick keeps the
//! ctime, with a 1-second granularity (ext4 with 128-byte inodes) one in
//! the same second does, and some file systems never move it (FAT's
//! "ctime" is the creation time); no rule on the clock covers them all.

use crate::protocol::{ContentHash, WirePath};
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::ops::Bound;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A file's identity: what any change to its bytes or times changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    /// Device.
    pub dev: u64,
    /// Inode.
    pub ino: u64,
    /// Bytes.
    pub size: u64,
    /// Modification time, ns since the epoch.
    pub mtime_ns: i64,
    /// Status change time, ns since the epoch (set by the kernel only).
    pub ctime_ns: i64,
}

fn ns(sec: i64, nsec: i64) -> i64 {
    sec.saturating_mul(1_000_000_000).saturating_add(nsec)
}

impl Identity {
    /// From an open file's metadata.
    pub fn of_meta(meta: &std::fs::Metadata) -> Identity {
        Identity {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: ns(meta.mtime(), meta.mtime_nsec()),
            ctime_ns: ns(meta.ctime(), meta.ctime_nsec()),
        }
    }

    /// From a `stat`.
    #[allow(clippy::unnecessary_cast)]
    pub fn of_stat(st: &rustix::fs::Stat) -> Identity {
        Identity {
            dev: st.st_dev as u64,
            ino: st.st_ino as u64,
            size: st.st_size as u64,
            mtime_ns: ns(st.st_mtime as i64, st.st_mtime_nsec as i64),
            ctime_ns: ns(st.st_ctime as i64, st.st_ctime_nsec as i64),
        }
    }
}

/// How many rounds of [`CHANGES`] [`probe_fine_ctime`] makes: each change
/// takes microseconds, a clock tick 1 to 10 ms, so a coarse file system
/// shows an unchanged ctime in at least one of them.
const PROBES: usize = 4;

/// The hand changes that keep size and mtime, as the probe makes them to
/// a file it just looked at: `dd conv=notrunc`, `truncate` to its size,
/// `touch -r` of itself, a `chmod` to its mode, `ln` then `rm`.
const CHANGES: usize = 5;

/// One of [`CHANGES`] to `file` (named `name`, with `twin` free beside it).
fn change(n: usize, file: &std::fs::File, name: &Path, twin: &Path) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    let meta = file.metadata()?;
    match n {
        0 => file.write_all_at(b"x", 0),
        1 => file.set_len(meta.len()),
        2 => file.set_modified(meta.modified()?),
        3 => file.set_permissions(meta.permissions()),
        _ => {
            std::fs::hard_link(name, twin)?;
            std::fs::remove_file(twin)
        }
    }
}

/// Whether the file system of `dir` gives a file whose ctime was looked at
/// a later ctime at its next change of any kind, however soon. A failure
/// answers no (every displaced file is then read).
pub fn probe_fine_ctime(dir: &Path) -> bool {
    let Ok(scratch) = tempfile::tempdir_in(dir) else {
        return false;
    };
    let name = scratch.path().join("probe");
    let twin = scratch.path().join("twin");
    probe_looks(&name, &twin).is_ok_and(|looks| every_change_moved_the_ctime(&looks))
}

/// The ctimes (at a look, after the next change) of [`PROBES`] rounds of
/// [`CHANGES`] to a new file `name`.
fn probe_looks(name: &Path, twin: &Path) -> io::Result<Vec<(i64, i64)>> {
    let mut file = std::fs::File::create(name)?;
    file.write_all(b"probe")?;
    let ctime =
        |f: &std::fs::File| -> io::Result<i64> { Ok(Identity::of_meta(&f.metadata()?).ctime_ns) };
    let mut looks = Vec::with_capacity(PROBES * CHANGES);
    for _ in 0..PROBES {
        for n in 0..CHANGES {
            let before = ctime(&file)?;
            change(n, &file, name, twin)?;
            looks.push((before, ctime(&file)?));
        }
    }
    Ok(looks)
}

/// Whether each (ctime at a look, ctime after the change that followed)
/// went forward, and there is at least one. Pure.
pub fn every_change_moved_the_ctime(looks: &[(i64, i64)]) -> bool {
    !looks.is_empty() && looks.iter().all(|(before, after)| after > before)
}

/// The first bytes of the saved file (its format's name and version).
const MAGIC: &[u8; 16] = b"cloudsvc-known1\n";
/// Bytes of one saved entry after its path: dev, ino, size, mtime, ctime, hash.
const FIXED: usize = 5 * 8 + 32;

/// The remembered identities, by path (ordered so a directory's
/// descendants are one range, as in the tree).
#[derive(Debug)]
pub struct KnownFiles {
    files: BTreeMap<WirePath, (Identity, ContentHash)>,
    /// The folder's file system gives fine-grained ctimes ([`probe_fine_ctime`]).
    fine_ctime: bool,
    /// Where they are saved.
    saved: PathBuf,
    /// Changed since loaded (or the save is not as loaded): saved at close.
    changed: bool,
    /// Displaced files read and hashed, and displaced files vouched for
    /// unread, since the store opened (for tests and the debug log).
    pub hashed: u64,
    /// See `hashed`.
    pub vouched: u64,
}

impl KnownFiles {
    /// No identities yet, for a folder whose file system holds `tmp_dir`,
    /// saved in `state_dir` ([`Self::load`] reads what the last close saved).
    pub fn open(state_dir: &Path, tmp_dir: &Path) -> KnownFiles {
        KnownFiles {
            files: BTreeMap::new(),
            fine_ctime: probe_fine_ctime(tmp_dir),
            saved: state_dir.join("known"),
            changed: false,
            hashed: 0,
            vouched: 0,
        }
    }

    /// Reads the identities the last close saved (none when missing or
    /// damaged: every first displacement then reads), keeping only those
    /// whose path the journal lists as a file with the entry's hash and
    /// size (`listed` answers that). Called after the journal's replay,
    /// which forgets every path it applies a change to.
    pub fn load(&mut self, listed: impl Fn(&WirePath, ContentHash, u64) -> bool) {
        let mut files = match std::fs::read(&self.saved) {
            Ok(bytes) => decode(&bytes).unwrap_or_else(|| {
                log::warn!(
                    "{}: damaged, ignored (displaced files are read)",
                    self.saved.display()
                );
                self.changed = true;
                BTreeMap::new()
            }),
            Err(_) => BTreeMap::new(),
        };
        let saved = files.len();
        // Where no ctime vouches, nothing is trusted (a save from a kernel
        // or file system that gave fine ctimes included).
        files
            .retain(|path, (identity, hash)| self.fine_ctime && listed(path, *hash, identity.size));
        self.changed |= files.len() != saved;
        self.files = files;
    }

    /// Whether the folder's file system gives fine-grained ctimes.
    #[cfg(test)]
    pub fn fine_ctime(&self) -> bool {
        self.fine_ctime
    }

    /// Remembers that `path` holds `hash` as `identity`, taken by a `stat`
    /// made after the bytes were known (written or hashed); nothing where
    /// the ctime cannot tell a later change apart ([`probe_fine_ctime`]).
    pub fn note(&mut self, path: &WirePath, identity: Identity, hash: ContentHash) {
        if self.fine_ctime {
            self.files.insert(path.clone(), (identity, hash));
            self.changed = true;
        }
    }

    /// Whether the file at `path`, found as `now`, still holds `hash`
    /// unread: it is exactly as remembered with that hash.
    pub fn vouches(&self, path: &WirePath, now: &Identity, hash: ContentHash) -> bool {
        self.files.get(path) == Some(&(*now, hash))
    }

    /// Forgets `path` and everything below it.
    pub fn forget(&mut self, path: &WirePath) {
        self.changed |= self.files.remove(path).is_some();
        let low = format!("{path}/");
        let high = format!("{path}0");
        let below: Vec<WirePath> = self
            .files
            .range::<str, _>((
                Bound::Included(low.as_str()),
                Bound::Excluded(high.as_str()),
            ))
            .map(|(p, _)| p.clone())
            .collect();
        self.changed |= !below.is_empty();
        for p in below {
            self.files.remove(&p);
        }
    }

    /// Saves the entries (at a close) when they changed since loaded,
    /// replacing the saved file at once.
    ///
    /// # Errors
    /// The write or the rename failed (the old file stays).
    pub fn save(&mut self) -> io::Result<()> {
        if !self.changed {
            return Ok(());
        }
        let temp = self.saved.with_extension("tmp");
        std::fs::write(&temp, encode(&self.files))?;
        std::fs::rename(&temp, &self.saved)?;
        self.changed = false;
        Ok(())
    }
}

/// The saved form: [`MAGIC`], per entry the path's length (u16 LE), the
/// path and [`FIXED`] bytes, then the BLAKE3 of all that.
fn encode(files: &BTreeMap<WirePath, (Identity, ContentHash)>) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    for (path, (id, hash)) in files {
        let Ok(len) = u16::try_from(path.as_str().len()) else {
            continue;
        };
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(path.as_str().as_bytes());
        for n in [id.dev, id.ino, id.size] {
            out.extend_from_slice(&n.to_le_bytes());
        }
        for n in [id.mtime_ns, id.ctime_ns] {
            out.extend_from_slice(&n.to_le_bytes());
        }
        out.extend_from_slice(&hash.0);
    }
    let sum = blake3::hash(&out);
    out.extend_from_slice(sum.as_bytes());
    out
}

/// [`encode`]'s inverse; `None` for anything else (torn, changed, older).
fn decode(bytes: &[u8]) -> Option<BTreeMap<WirePath, (Identity, ContentHash)>> {
    let body_len = bytes.len().checked_sub(32)?;
    let (body, sum) = bytes.split_at(body_len);
    if blake3::hash(body).as_bytes() != sum || !body.starts_with(MAGIC) {
        return None;
    }
    let mut rest = &body[MAGIC.len()..];
    let mut take = |n: usize| -> Option<&[u8]> {
        if rest.len() < n {
            return None;
        }
        let (head, tail) = rest.split_at(n);
        rest = tail;
        Some(head)
    };
    let mut files = BTreeMap::new();
    while let Some(len) = take(2) {
        let len = usize::from(u16::from_le_bytes([len[0], len[1]]));
        let path = WirePath::new(std::str::from_utf8(take(len)?).ok()?).ok()?;
        let fixed = take(FIXED)?;
        let word = |i: usize| -> [u8; 8] {
            let mut w = [0; 8];
            w.copy_from_slice(&fixed[i * 8..i * 8 + 8]);
            w
        };
        let identity = Identity {
            dev: u64::from_le_bytes(word(0)),
            ino: u64::from_le_bytes(word(1)),
            size: u64::from_le_bytes(word(2)),
            mtime_ns: i64::from_le_bytes(word(3)),
            ctime_ns: i64::from_le_bytes(word(4)),
        };
        let mut hash = [0; 32];
        hash.copy_from_slice(&fixed[40..]);
        files.insert(path, (identity, ContentHash(hash)));
    }
    Some(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> WirePath {
        WirePath::new(s).unwrap()
    }

    fn id(ino: u64, ctime_ns: i64) -> Identity {
        Identity {
            dev: 1,
            ino,
            size: 10,
            mtime_ns: 5,
            ctime_ns,
        }
    }

    #[test]
    fn only_a_ctime_moved_forward_by_every_change_is_fine() {
        // ctimes (before, after) of each change -> fine
        let table: [(&[(i64, i64)], bool); 5] = [
            (&[(1, 2), (2, 9)], true),
            (&[], false),
            (&[(1, 2), (2, 2)], false),
            (&[(5, 4)], false),
            (&[(1_000_000_000, 1_000_000_000)], false),
        ];
        for (looks, want) in table {
            assert_eq!(every_change_moved_the_ctime(looks), want, "{looks:?}");
        }
    }

    #[test]
    fn entries_vouch_for_exactly_their_identity_and_hash() {
        let dir = tempfile::tempdir().unwrap();
        let mut known = KnownFiles::open(dir.path(), dir.path());
        known.fine_ctime = true;
        let h = ContentHash([7; 32]);
        known.note(&p("a"), id(1, 50), h);
        assert!(known.vouches(&p("a"), &id(1, 50), h));
        assert!(!known.vouches(&p("a"), &id(1, 51), h), "ctime moved");
        assert!(!known.vouches(&p("a"), &id(3, 50), h), "another inode");
        assert!(!known.vouches(&p("a"), &id(1, 50), ContentHash([8; 32])));
        assert!(!known.vouches(&p("b"), &id(1, 50), h), "another path");
        // Where ctimes are not fine, nothing is remembered, and what a
        // save from a fine run holds is not trusted.
        known.save().unwrap();
        let mut coarse = KnownFiles::open(dir.path(), dir.path());
        coarse.fine_ctime = false;
        coarse.load(|_, _, _| true);
        coarse.note(&p("c"), id(2, 50), h);
        assert!(
            !coarse.vouches(&p("a"), &id(1, 50), h),
            "saved by a fine run"
        );
        assert!(
            !coarse.vouches(&p("c"), &id(2, 50), h),
            "noted on a coarse one"
        );
    }

    #[test]
    fn a_close_that_changed_nothing_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let saved = dir.path().join("known");
        let mut known = KnownFiles::open(dir.path(), dir.path());
        known.fine_ctime = true;
        known.load(|_, _, _| true);
        known.save().unwrap();
        assert!(!saved.exists(), "nothing to save");
        known.note(&p("a"), id(1, 50), ContentHash([7; 32]));
        known.save().unwrap();
        let first = std::fs::read(&saved).unwrap();
        std::fs::write(&saved, b"marker").unwrap();
        known.save().unwrap();
        assert_eq!(
            std::fs::read(&saved).unwrap(),
            b"marker",
            "rewritten unchanged"
        );
        known.forget(&p("nothing"));
        known.save().unwrap();
        assert_eq!(std::fs::read(&saved).unwrap(), b"marker");
        known.forget(&p("a"));
        known.save().unwrap();
        assert_ne!(std::fs::read(&saved).unwrap(), first);
        assert_ne!(std::fs::read(&saved).unwrap(), b"marker");
    }

    #[test]
    fn saved_entries_come_back_and_damage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut known = KnownFiles::open(dir.path(), dir.path());
        known.fine_ctime = true;
        let h = ContentHash([7; 32]);
        for path in ["d/a", "d/b/c", "d0", "e", "d"] {
            known.note(&p(path), id(path.len() as u64, 9), h);
        }
        known.forget(&p("d"));
        known.save().unwrap();
        let mut back = KnownFiles::open(dir.path(), dir.path());
        back.fine_ctime = true;
        back.load(|path, _, _| path.as_str() != "d0");
        let paths: Vec<&str> = back.files.keys().map(|k| k.as_str()).collect();
        assert_eq!(paths, ["e"], "d/... forgotten, d0 not listed");
        assert!(back.vouches(&p("e"), &id(1, 9), h));
        // Every cut and every flipped byte is refused as a whole.
        let bytes = std::fs::read(dir.path().join("known")).unwrap();
        for n in 0..bytes.len() {
            assert!(decode(&bytes[..n]).is_none(), "cut at {n}");
            let mut flipped = bytes.clone();
            flipped[n] ^= 0x20;
            assert!(decode(&flipped).is_none(), "flip at {n}");
        }
    }

    #[test]
    fn this_file_system_answers_the_probe() {
        // No assertion on the answer (it depends on the kernel), only that
        // it is given and stable.
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(probe_fine_ctime(dir.path()), probe_fine_ctime(dir.path()));
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(left.is_empty(), "the probe left {left:?}");
    }
}
