//! A restore's intent record (PROTOCOL.md R-14.3.7): written before a
//! restore places its first entry and removed once it placed the last, so
//! a restore cut off by a crash of the server is finished at the next start
//! instead of being left half-done while every device says "in sync".
//!
//! Why an intent and not one rename of a directory built under `tmp/`: a
//! restore puts each entry back as its own change, in a directory that may
//! be there (what was made below it since stays), partly there, or in the
//! way of a file (a conflict directory, §7.4), and each placed file keeps
//! what it displaces (R-14.3.6). One rename covers only the first case, and
//! its hundreds of journal records could not follow it atomically either.
//! Placing what is missing is idempotent (a file already there with the
//! kept content is `Unchanged`), so a replay from the start of the plan
//! finishes the restore; what is not idempotent (a conflict copy with a
//! fresh name, the conflict directory a file in the way sent the restore
//! to) is recorded in the intent as it happens, so a replay neither makes
//! a second copy nor a second conflict directory.
//!
//! ```text
//! file: magic "CSRI" | version u8 = 1 | seq u64 | done u64 | path
//!       | count u16 | count x (file path, conflict dir path)
//!       | check [4] (first 4 bytes of BLAKE3 of everything before it)
//! path: len u16 | UTF-8 bytes (a wire path, §6)
//! ```
//! All integers big-endian, as on the wire.

use super::{StoreError, UserStore, RESTORE_INTENT};
use crate::protocol::{KeptVersion, PushAck, PushStatus, WirePath};
use std::io::Write;
use std::path::Path;

const MAGIC: &[u8; 4] = b"CSRI";
const VERSION: u8 = 1;

/// What a restore set out to do and how far its non-idempotent part got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct RestoreIntent {
    /// Restore `path` as it was just before this change (a RestoreAt is
    /// recorded as the change its moment stands for).
    pub seq: u64,
    /// What is restored.
    pub path: WirePath,
    /// Entries of the plan (path order) that need no second placing: up to
    /// the last one that went to a fresh conflict name.
    pub done: u64,
    /// The conflict directories the restore's entries went to instead of a
    /// file in the way (§7.4): file path, directory path.
    pub conflict_dirs: Vec<(WirePath, WirePath)>,
}

/// Why an intent file cannot be read back. The restore it stood for is not
/// finished then (logged: the user can run it again).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum IntentError {
    /// Cut short.
    Short,
    /// Not an intent file.
    BadMagic,
    /// A layout this version does not know.
    BadVersion(u8),
    /// The check does not match (a damaged file).
    BadCheck,
    /// A path that is not a wire path.
    BadPath,
    /// Bytes after the check.
    Trailing,
}

impl std::fmt::Display for IntentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IntentError::Short => write!(f, "cut short"),
            IntentError::BadMagic => write!(f, "not a restore intent"),
            IntentError::BadVersion(v) => write!(f, "unknown layout {v}"),
            IntentError::BadCheck => write!(f, "its check does not match"),
            IntentError::BadPath => write!(f, "a path that is not a wire path"),
            IntentError::Trailing => write!(f, "bytes after its check"),
        }
    }
}

fn check(body: &[u8]) -> [u8; 4] {
    let hash = blake3::hash(body);
    let mut out = [0u8; 4];
    out.copy_from_slice(&hash.as_bytes()[..4]);
    out
}

/// Why an intent cannot be written: a field its layout cannot hold. Never
/// cut to fit: a cut path would name another entry, and a cut list would
/// let a replay make a second conflict directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntentTooBig {
    /// A path of this many bytes: more than a `u16` length says (a wire
    /// path is at most 4096 bytes, §6, so only a bug gets here).
    Path(usize),
    /// This many conflict directories: more than a `u16` count says (one
    /// per directory of the restore that a file stood in the way of).
    ConflictDirs(usize),
}

impl std::fmt::Display for IntentTooBig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IntentTooBig::Path(n) => write!(f, "a path of {n} bytes (at most 65535)"),
            IntentTooBig::ConflictDirs(n) => {
                write!(f, "{n} conflict directories (at most 65535)")
            }
        }
    }
}

/// Writes `path` (a wire path's text) with its `u16` length.
fn put_path(out: &mut Vec<u8>, path: &str) -> Result<(), IntentTooBig> {
    let bytes = path.as_bytes();
    let len = u16::try_from(bytes.len()).map_err(|_| IntentTooBig::Path(bytes.len()))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
    Ok(())
}

impl RestoreIntent {
    /// A restore about to place its first entry.
    pub fn new(seq: u64, path: WirePath) -> RestoreIntent {
        RestoreIntent {
            seq,
            path,
            done: 0,
            conflict_dirs: Vec::new(),
        }
    }

    /// The file's bytes (layout in the module doc).
    ///
    /// # Errors
    /// [`IntentTooBig`]: a field the layout cannot hold; nothing is cut.
    pub fn encode(&self) -> Result<Vec<u8>, IntentTooBig> {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.done.to_be_bytes());
        put_path(&mut out, self.path.as_str())?;
        let dirs = self.conflict_dirs.len();
        let count = u16::try_from(dirs).map_err(|_| IntentTooBig::ConflictDirs(dirs))?;
        out.extend_from_slice(&count.to_be_bytes());
        for (file, dir) in &self.conflict_dirs {
            put_path(&mut out, file.as_str())?;
            put_path(&mut out, dir.as_str())?;
        }
        let sum = check(&out);
        out.extend_from_slice(&sum);
        Ok(out)
    }

    /// Reads an intent file's bytes back.
    ///
    /// # Errors
    /// [`IntentError`] naming what is wrong; nothing is trusted before the
    /// check matched.
    pub fn decode(bytes: &[u8]) -> Result<RestoreIntent, IntentError> {
        if bytes.len() < MAGIC.len() + 1 + 4 {
            return Err(IntentError::Short);
        }
        let (body, sum) = bytes.split_at(bytes.len() - 4);
        if &body[..4] != MAGIC {
            return Err(IntentError::BadMagic);
        }
        if body[4] != VERSION {
            return Err(IntentError::BadVersion(body[4]));
        }
        if check(body) != sum {
            return Err(IntentError::BadCheck);
        }
        let mut r = Reader { rest: &body[5..] };
        let seq = r.u64()?;
        let done = r.u64()?;
        let path = r.path()?;
        let count = r.u16()?;
        let mut conflict_dirs = Vec::with_capacity(usize::from(count).min(1024));
        for _ in 0..count {
            conflict_dirs.push((r.path()?, r.path()?));
        }
        if !r.rest.is_empty() {
            return Err(IntentError::Trailing);
        }
        Ok(RestoreIntent {
            seq,
            path,
            done,
            conflict_dirs,
        })
    }

    /// Whether the entry `entry`, answered `ack`, was placed where a
    /// replay would find it again: at its own path, or at its place in a
    /// conflict directory this intent records. Anything else (a fresh
    /// conflict name) must not be placed twice.
    pub fn replays_to(&self, entry: &WirePath, ack: &PushAck) -> bool {
        if ack.status != PushStatus::Conflict {
            return true;
        }
        self.conflict_dirs.iter().any(|(file, dir)| {
            entry
                .rebase(file, dir)
                .is_some_and(|expected| expected == ack.path)
        })
    }
}

/// Reads the fields of an intent body in order.
struct Reader<'a> {
    rest: &'a [u8],
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], IntentError> {
        if self.rest.len() < n {
            return Err(IntentError::Short);
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn u16(&mut self) -> Result<u16, IntentError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u64(&mut self) -> Result<u64, IntentError> {
        let mut out = [0u8; 8];
        out.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(out))
    }

    fn path(&mut self) -> Result<WirePath, IntentError> {
        let len = usize::from(self.u16()?);
        let bytes = self.take(len)?;
        let text = std::str::from_utf8(bytes).map_err(|_| IntentError::BadPath)?;
        WirePath::new(text).map_err(|_| IntentError::BadPath)
    }
}

/// Writes `intent` as `state_dir`'s intent file: whole or not at all (a
/// temporary name renamed over it), synced like the journal (`durable`:
/// data and directory fsynced; otherwise handed to the kernel, which a
/// crash of the process does not lose).
///
/// # Errors
/// The intent does not fit its layout ([`StoreError::RestoreTooBig`],
/// nothing written), or the write, sync or rename failed.
fn write(state_dir: &Path, intent: &RestoreIntent, durable: bool) -> Result<(), StoreError> {
    let bytes = intent.encode().map_err(StoreError::RestoreTooBig)?;
    let temp = state_dir.join(format!("{RESTORE_INTENT}.tmp"));
    {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(&bytes)?;
        if durable {
            file.sync_all()?;
        }
    }
    std::fs::rename(&temp, state_dir.join(RESTORE_INTENT))?;
    if durable {
        std::fs::File::open(state_dir)?.sync_all()?;
    }
    Ok(())
}

/// The intent file of `state_dir`: `Ok(None)` when there is none.
///
/// # Errors
/// `Err(Ok(e))`: it cannot be read; `Err(Err(e))`: it is not an intent.
pub(super) fn read(
    state_dir: &Path,
) -> Result<Option<RestoreIntent>, Result<std::io::Error, IntentError>> {
    match std::fs::read(state_dir.join(RESTORE_INTENT)) {
        Ok(bytes) => RestoreIntent::decode(&bytes).map(Some).map_err(Err),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Ok(e)),
    }
}

impl UserStore {
    /// Places the entries `found` of the restore of `path` as it was just
    /// before `seq`, in order, with an intent record on disk from before
    /// the first until after the last (R-14.3.7). A restore cut off at
    /// start-up (`self.resume` set by [`Self::finish_cut_restore`]) goes
    /// on from where its intent says. Returns the first placed entry's
    /// answer (`None`: nothing left to place).
    ///
    /// # Errors
    /// The intent cannot be written (nothing was placed), or placing an
    /// entry failed: the error is the restore's answer, and the intent is
    /// removed (a restart would only fail the same way).
    pub(super) fn place_restore(
        &mut self,
        seq: u64,
        path: &WirePath,
        found: &[KeptVersion],
    ) -> Result<Option<PushAck>, StoreError> {
        let mut intent = match self.resume.take() {
            Some(resumed) if resumed.seq == seq && resumed.path == *path => resumed,
            _ => RestoreIntent::new(seq, path.clone()),
        };
        for (file, dir) in &intent.conflict_dirs {
            self.conflict_dirs
                .insert((super::RESTORE_AUTHOR, file.clone()), dir.clone());
        }
        write(&self.state_dir, &intent, self.durable)?;
        let start = usize::try_from(intent.done).unwrap_or(usize::MAX);
        let mut top = None;
        for (i, entry) in found.iter().enumerate().skip(start) {
            #[cfg(test)]
            if self.crash_after.is_some_and(|n| i >= n) {
                return Err(StoreError::Io(std::io::Error::other("test crash")));
            }
            let ack = match self.restore_one(entry, super::RESTORE_AUTHOR) {
                Ok(ack) => ack,
                Err(e) => {
                    self.drop_restore_intent();
                    return Err(e);
                }
            };
            if ack.status == PushStatus::Conflict {
                let dirs = self.restore_conflict_dirs();
                if dirs != intent.conflict_dirs || !intent.replays_to(&entry.path, &ack) {
                    intent.conflict_dirs = dirs;
                    if !intent.replays_to(&entry.path, &ack) {
                        intent.done = u64::try_from(i + 1).unwrap_or(u64::MAX);
                    }
                    if let Err(e) = write(&self.state_dir, &intent, self.durable) {
                        self.drop_restore_intent();
                        return Err(e);
                    }
                }
            }
            top.get_or_insert(ack);
        }
        self.drop_restore_intent();
        Ok(top)
    }

    /// The conflict directories restores went to while the state is open,
    /// in path order.
    fn restore_conflict_dirs(&self) -> Vec<(WirePath, WirePath)> {
        let mut dirs: Vec<(WirePath, WirePath)> = self
            .conflict_dirs
            .iter()
            .filter(|((client, _), _)| *client == super::RESTORE_AUTHOR)
            .map(|((_, file), dir)| (file.clone(), dir.clone()))
            .collect();
        dirs.sort();
        dirs
    }

    /// Removes the intent file: the restore is finished (or refused). A
    /// failure is logged: the next start replays a finished restore, which
    /// places nothing.
    fn drop_restore_intent(&self) {
        let file = self.state_dir.join(RESTORE_INTENT);
        match std::fs::remove_file(&file) {
            Ok(()) => {
                if self.durable {
                    if let Err(e) = std::fs::File::open(&self.state_dir).and_then(|d| d.sync_all())
                    {
                        log::warn!("{}: syncing after the restore's intent: {e}", self.label());
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => log::warn!(
                "{}: cannot remove the restore's intent {}: {e}",
                self.label(),
                file.display()
            ),
        }
    }

    /// At start, after the comparison with the folder: finishes the
    /// restore a crash cut off (its intent file is there), as the
    /// restore would have gone on, and logs what it did. The entries the
    /// cut restore placed are there already and count as such.
    pub(super) fn finish_cut_restore(&mut self) {
        let Some(intent) = self.resume.clone() else {
            return;
        };
        let label = self.label();
        let head_before = self.head();
        match self.restore(intent.seq, &intent.path) {
            Ok(_) => log::warn!(
                "{label}: the restore of {} as it was before change {} was cut off by the \
                 stop: finished now ({} more changes, head {})",
                intent.path,
                intent.seq,
                self.head() - head_before,
                self.head()
            ),
            Err(e) => log::warn!(
                "{label}: the restore of {} as it was before change {} was cut off by the \
                 stop and cannot be finished: {e}; what it placed stays, run it again \
                 (`cloud-client restore FOLDER {} --version {}`) once that is mended",
                intent.path,
                intent.seq,
                intent.path,
                intent.seq
            ),
        }
        self.resume = None;
        self.drop_restore_intent();
    }

    /// Reads the intent a crash left (before the comparison, which then
    /// knows whose the file being written was). An unreadable one is
    /// logged and removed: the restore is not finished, and the log says
    /// so.
    pub(super) fn load_cut_restore(&mut self) {
        match read(&self.state_dir) {
            Ok(found) => self.resume = found,
            Err(why) => {
                let why = match why {
                    Ok(e) => e.to_string(),
                    Err(e) => e.to_string(),
                };
                log::warn!(
                    "{}: a restore was cut off by the stop, but its intent cannot be read \
                     ({why}): it is not finished; what it placed stays, and running the same \
                     restore again finishes it",
                    self.label()
                );
                self.drop_restore_intent();
            }
        }
    }
}

#[cfg(test)]
mod tests;
