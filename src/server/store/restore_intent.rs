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

fn put_path(out: &mut Vec<u8>, path: &WirePath) {
    let bytes = path.as_str().as_bytes();
    // A wire path is at most 4096 bytes (§6): it fits a u16.
    let len = u16::try_from(bytes.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&bytes[..usize::from(len)]);
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
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.done.to_be_bytes());
        put_path(&mut out, &self.path);
        // At most one conflict directory per directory of the restore;
        // more than u16 would be cut, which only costs a replay a second
        // conflict directory.
        let count = u16::try_from(self.conflict_dirs.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&count.to_be_bytes());
        for (file, dir) in self.conflict_dirs.iter().take(usize::from(count)) {
            put_path(&mut out, file);
            put_path(&mut out, dir);
        }
        let sum = check(&out);
        out.extend_from_slice(&sum);
        out
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
/// The write, sync or rename failed.
fn write(state_dir: &Path, intent: &RestoreIntent, durable: bool) -> std::io::Result<()> {
    let temp = state_dir.join(format!("{RESTORE_INTENT}.tmp"));
    {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(&intent.encode())?;
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
                        return Err(e.into());
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
mod tests {
    use super::super::DataPaths;
    use super::*;
    use crate::protocol::UserId;

    fn p(s: &str) -> WirePath {
        WirePath::new(s).expect("path")
    }

    fn sample() -> RestoreIntent {
        RestoreIntent {
            seq: 20309,
            path: p("d003/ünï"),
            done: 7,
            conflict_dirs: vec![(p("d003"), p("d003 (conflict 1 2026-12-04 21-40-00)"))],
        }
    }

    /// Every intent reads back as written; every cut, every flipped byte
    /// and any trailing byte is refused, never taken as another intent.
    #[test]
    fn an_intent_reads_back_whole_or_not_at_all() {
        for intent in [RestoreIntent::new(1, p("a")), sample()] {
            let bytes = intent.encode();
            assert_eq!(RestoreIntent::decode(&bytes), Ok(intent.clone()));
            for cut in 0..bytes.len() {
                assert!(
                    RestoreIntent::decode(&bytes[..cut]).is_err(),
                    "cut at {cut}"
                );
            }
            for at in 0..bytes.len() {
                for bit in 0..8 {
                    let mut bad = bytes.clone();
                    bad[at] ^= 1 << bit;
                    assert!(RestoreIntent::decode(&bad).is_err(), "byte {at} bit {bit}");
                }
            }
            let mut long = bytes.clone();
            long.push(0);
            assert!(RestoreIntent::decode(&long).is_err());
        }
        assert_eq!(
            RestoreIntent::decode(b"CSRX\x01abcd"),
            Err(IntentError::BadMagic)
        );
        let mut other = sample().encode();
        other[4] = 2;
        assert_eq!(
            RestoreIntent::decode(&other),
            Err(IntentError::BadVersion(2))
        );
    }

    /// An entry placed at its own path, or at its place in a recorded
    /// conflict directory, is found again by a replay; a fresh conflict
    /// name is not.
    #[test]
    fn which_placings_a_replay_finds_again() {
        let intent = sample();
        let at = |status, path: &str| PushAck {
            status,
            version: 9,
            path: p(path),
        };
        let cases = [
            ("d003/f", at(PushStatus::Applied, "d003/f"), true),
            ("d003/f", at(PushStatus::Unchanged, "d003/f"), true),
            (
                "d003/f",
                at(
                    PushStatus::Conflict,
                    "d003 (conflict 1 2026-12-04 21-40-00)/f",
                ),
                true,
            ),
            (
                "d003/f",
                at(
                    PushStatus::Conflict,
                    "d003/f (conflict 1 2026-12-04 21-40-00)",
                ),
                false,
            ),
            (
                "d003/s/g",
                at(
                    PushStatus::Conflict,
                    "d003 (conflict 1 2026-12-04 21-40-00)/s/g (conflict 2)",
                ),
                false,
            ),
            ("e/f", at(PushStatus::Conflict, "e/f (conflict 2)"), false),
        ];
        for (entry, ack, want) in cases {
            assert_eq!(
                intent.replays_to(&p(entry), &ack),
                want,
                "{entry} -> {}",
                ack.path
            );
        }
    }

    fn open(dir: &Path) -> UserStore {
        let paths = DataPaths {
            base: dir.to_path_buf(),
        };
        UserStore::open(&paths, &UserId([6; 16]), true, false)
            .expect("open store")
            .0
    }

    fn put(store: &mut UserStore, path: &str, content: &[u8]) {
        let base = store.tree().get(&p(path)).map_or(0, |n| n.version);
        let staged = store.stage(&p(path), base, content);
        store
            .commit_file(base, &p(path), staged, 1)
            .expect("commit");
    }

    /// Every file below the user's folder, by path, with its content.
    fn files(store: &UserStore) -> Vec<(String, Vec<u8>)> {
        let root = store.root().to_path_buf();
        let mut out: Vec<(String, Vec<u8>)> = walkdir::WalkDir::new(&root)
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_file())
            .map(|e| {
                let rel = e.path().strip_prefix(&root).expect("below root");
                // Conflict names hold the time: one name for all.
                let rel = rel.display().to_string();
                let rel = match rel.split_once(" (conflict ") {
                    Some((head, tail)) => {
                        let rest = tail.split_once(')').map_or("", |(_, r)| r);
                        format!("{head} (conflict){rest}")
                    }
                    None => rel,
                };
                (rel, std::fs::read(e.path()).expect("read"))
            })
            .collect();
        out.sort();
        out
    }

    /// A restore that a crash stops after `k` of its entries (its intent
    /// left on disk) is finished by the next open, for every `k`: the
    /// folder and the journal end as after an uninterrupted restore, each
    /// entry placed once, and the intent is gone. With `file_now`, a file
    /// stands where the directory was: the restore goes to ONE conflict
    /// directory, not a second one for the entries placed after the crash.
    #[test]
    fn a_restore_cut_at_any_entry_is_finished_at_the_next_open() {
        for file_now in [false, true] {
            let n = 6;
            // The reference: the same restore, not cut.
            let reference = {
                let dir = tempfile::tempdir().expect("tempdir");
                let (mut store, seq) = removed(dir.path(), n, file_now);
                let ack = store.restore(seq, &p("d")).expect("restore");
                assert_eq!(ack.status == PushStatus::Conflict, file_now);
                (files(&store), store.head())
            };
            for k in 0..=n {
                let dir = tempfile::tempdir().expect("tempdir");
                let (mut store, seq) = removed(dir.path(), n, file_now);
                store.crash_after = Some(k);
                assert!(store.restore(seq, &p("d")).is_err(), "k {k}");
                assert!(store.state_dir.join(RESTORE_INTENT).exists(), "k {k}");
                // A crash: no close, no clean marker.
                drop(store);
                let store = open(dir.path());
                let what = format!("file_now {file_now}, cut after {k} entries");
                assert_eq!((files(&store), store.head()), reference, "{what}");
                assert!(!store.state_dir.join(RESTORE_INTENT).exists(), "{what}");
                let conflict_dirs = std::fs::read_dir(store.root())
                    .expect("list root")
                    .filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().contains("(conflict "))
                    .count();
                assert_eq!(conflict_dirs, usize::from(file_now), "{what}");
            }
        }
    }

    /// A store whose directory `d` of `n` files was removed (and, with
    /// `file_now`, replaced by a file): the store and the removal's change.
    fn removed(dir: &Path, n: usize, file_now: bool) -> (UserStore, u64) {
        let mut store = open(dir);
        for i in 0..n {
            put(
                &mut store,
                &format!("d/f{i}"),
                format!("file {i}").as_bytes(),
            );
        }
        put(&mut store, "other", b"stays");
        store
            .remove_dir(store.head(), &p("d"), 1)
            .expect("rm -rf d");
        let seq = store.head();
        if file_now {
            put(&mut store, "d", b"a file where d was");
        }
        (store, seq)
    }

    /// An intent file that is not one (damaged, cut) is removed at open
    /// and the store opens: nothing is placed from it.
    #[test]
    fn an_unreadable_intent_is_dropped_at_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, _) = removed(dir.path(), 2, false);
        let state = store.state_dir.clone();
        let head = store.head();
        drop(store);
        std::fs::write(state.join(RESTORE_INTENT), b"CSRI\x01garbage").expect("write");
        let store = open(dir.path());
        assert_eq!(store.head(), head);
        assert!(!state.join(RESTORE_INTENT).exists());
    }
}
