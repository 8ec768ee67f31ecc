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
//! state at every close (an idle actor retires after 30 s: an in-memory
//! map alone would make the first displacement after each retirement read
//! the file). Each entry vouches for itself: it is used only while the
//! file's `fstat` equals it exactly and the journal names the same hash,
//! so a stale, missing or older file (a crash after the last close, a
//! backup put back: other inodes, other ctimes) only costs reads, never a
//! wrong "kept already".
//!
//! A ctime only tells edits apart when they fall in another clock tick than
//! the look, or when the file system gives a file whose ctime was looked at
//! a finer one at its next change (Linux 6.13's multigrain timestamps on
//! ext4, XFS, btrfs, tmpfs): [`probe_fine_ctime`] asks the file system at
//! open, and [`vouches_later`] refuses an identity taken in the tick of its
//! ctime on a coarse one.

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

/// The kernel's coarse real-time clock (ns), the one file times come from
/// on a file system without fine-grained ctimes. Read it BEFORE the `stat`
/// whose identity [`vouches_later`] judges.
pub fn coarse_now() -> i64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::RealtimeCoarse);
    ns(t.tv_sec, t.tv_nsec)
}

/// Whether an identity with ctime `ctime_ns`, taken by a `stat` made after
/// the coarse clock read `clock_before_ns`, tells every later change apart:
/// always with fine-grained ctimes; else only if its ctime is in an earlier
/// tick (a change in the same tick would get the same ctime). Pure.
pub fn vouches_later(ctime_ns: i64, clock_before_ns: i64, fine_ctime: bool) -> bool {
    fine_ctime || ctime_ns < clock_before_ns
}

/// How many change-then-look rounds [`probe_fine_ctime`] makes: each takes
/// microseconds, a clock tick 1 to 10 ms, so a coarse file system shows an
/// unchanged ctime in at least one of them.
const PROBES: usize = 8;

/// Whether the file system of `dir` gives a file whose ctime was looked at
/// a new ctime at its next change, however soon: a write after a `stat`
/// never keeps the ctime that `stat` saw. A failure answers no.
pub fn probe_fine_ctime(dir: &Path) -> bool {
    let Ok(mut file) = tempfile::tempfile_in(dir) else {
        return false;
    };
    let mut ctime = || -> io::Result<i64> {
        file.write_all(b"x")?;
        Ok(Identity::of_meta(&file.metadata()?).ctime_ns)
    };
    (0..PROBES).all(|_| matches!((ctime(), ctime()), (Ok(a), Ok(b)) if a != b))
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
                BTreeMap::new()
            }),
            Err(_) => BTreeMap::new(),
        };
        files.retain(|path, (identity, hash)| listed(path, *hash, identity.size));
        self.files = files;
    }

    /// Whether the folder's file system gives fine-grained ctimes.
    #[cfg(test)]
    pub fn fine_ctime(&self) -> bool {
        self.fine_ctime
    }

    /// Remembers that `path` holds `hash` as `identity`, taken by a `stat`
    /// made after the coarse clock read `clock_before_ns` and after the
    /// bytes were known (written or hashed): forgotten instead when the
    /// identity cannot tell a later change apart ([`vouches_later`]).
    pub fn note(
        &mut self,
        path: &WirePath,
        identity: Identity,
        hash: ContentHash,
        clock_before_ns: i64,
    ) {
        if vouches_later(identity.ctime_ns, clock_before_ns, self.fine_ctime) {
            self.files.insert(path.clone(), (identity, hash));
        } else {
            self.files.remove(path);
        }
    }

    /// Whether the file at `path`, found as `now`, still holds `hash`
    /// unread: it is exactly as remembered with that hash.
    pub fn vouches(&self, path: &WirePath, now: &Identity, hash: ContentHash) -> bool {
        self.files.get(path) == Some(&(*now, hash))
    }

    /// Forgets `path` and everything below it.
    pub fn forget(&mut self, path: &WirePath) {
        self.files.remove(path);
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
        for p in below {
            self.files.remove(&p);
        }
    }

    /// Saves the entries (at a close), replacing the saved file at once.
    ///
    /// # Errors
    /// The write or the rename failed (the old file stays).
    pub fn save(&self) -> io::Result<()> {
        let temp = self.saved.with_extension("tmp");
        std::fs::write(&temp, encode(&self.files))?;
        std::fs::rename(&temp, &self.saved)
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
    fn an_identity_in_its_ctimes_tick_vouches_only_with_fine_ctimes() {
        // (ctime, coarse clock before the look, fine) -> vouches
        let table = [
            (100, 101, false, true),
            (100, 100, false, false),
            (101, 100, false, false),
            (100, 100, true, true),
            (101, 100, true, true),
        ];
        for (ctime, clock, fine, want) in table {
            assert_eq!(
                vouches_later(ctime, clock, fine),
                want,
                "{ctime} {clock} {fine}"
            );
        }
    }

    #[test]
    fn entries_vouch_for_exactly_their_identity_and_hash() {
        let dir = tempfile::tempdir().unwrap();
        let mut known = KnownFiles::open(dir.path(), dir.path());
        known.fine_ctime = false;
        let h = ContentHash([7; 32]);
        known.note(&p("a"), id(1, 50), h, 60);
        known.note(&p("racy"), id(2, 60), h, 60);
        assert!(known.vouches(&p("a"), &id(1, 50), h));
        assert!(!known.vouches(&p("a"), &id(1, 51), h), "ctime moved");
        assert!(!known.vouches(&p("a"), &id(3, 50), h), "another inode");
        assert!(!known.vouches(&p("a"), &id(1, 50), ContentHash([8; 32])));
        assert!(
            !known.vouches(&p("racy"), &id(2, 60), h),
            "taken in its tick"
        );
    }

    #[test]
    fn saved_entries_come_back_and_damage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut known = KnownFiles::open(dir.path(), dir.path());
        known.fine_ctime = true;
        let h = ContentHash([7; 32]);
        for path in ["d/a", "d/b/c", "d0", "e", "d"] {
            known.note(&p(path), id(path.len() as u64, 9), h, 0);
        }
        known.forget(&p("d"));
        known.save().unwrap();
        let mut back = KnownFiles::open(dir.path(), dir.path());
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
    }
}
