//! Getting a lost server copy back from a device (PROTOCOL.md §10.2,
//! ... ): which files the server names as lost, whether an
//! upload is such a file's journaled version coming back, and putting it
//! back in place without a new version.

use super::journal::Record;
use super::recover::Lost;
use super::tree::NodeKind;
use super::{StagedFile, StoreError, UserStore};
use crate::fsafe as storefs;
use crate::protocol::lost::MAX_LOST_ENTRIES;
use crate::protocol::{ClientId, ContentHash, LostEntry, LostList, WirePath};
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, SystemTime};

/// Bytes of files whose size and mtime are as journaled that each start
/// hashes: about 0.06 s from the page cache, a fraction of a
/// second from a disk; a folder smaller than this is verified whole at
/// every start.
pub(super) const START_VERIFY_BYTES: u64 = 128 << 20;

/// Files each start hashes at most (the same bound for many small files).
pub(super) const START_VERIFY_FILES: usize = 10_000;

/// Whether an upload to a path is that path's lost version coming back
/// the server's copy is known missing or damaged, and the bytes
/// uploaded (checked against their own announced size and hash already)
/// are the journal's size and hash for the path's current version. The
/// base the device names does not matter: the content does. Anything else
/// is an edit and goes through the ordinary rules of R-5.4.5 (a push of a
/// new version ends the lost state there, R-10.5).
pub(super) fn is_recovery(
    lost: Option<Lost>,
    journaled: (u64, ContentHash),
    uploaded: (u64, ContentHash),
) -> bool {
    lost.is_some() && journaled == uploaded
}

/// The modification time the journal recorded, as a `SystemTime`.
fn journaled_time(mtime_ns: i64) -> SystemTime {
    let since = Duration::from_nanos(mtime_ns.unsigned_abs());
    if mtime_ns >= 0 {
        SystemTime::UNIX_EPOCH + since
    } else {
        SystemTime::UNIX_EPOCH
            .checked_sub(since)
            .unwrap_or(SystemTime::UNIX_EPOCH)
    }
}

impl UserStore {
    /// The files whose server copy is lost, in path order, at most
    /// [`MAX_LOST_ENTRIES`] (`more` set when there are others), each with
    /// the version, size and hash the journal holds.
    pub fn lost_list(&self) -> LostList {
        let mut list = LostList::default();
        for path in self.lost.keys() {
            let Some(node) = self.tree.get(path) else {
                continue;
            };
            let NodeKind::File { size, hash, .. } = node.kind else {
                continue;
            };
            if list.entries.len() == MAX_LOST_ENTRIES {
                list.more = true;
                break;
            }
            list.entries.push(LostEntry {
                version: node.version,
                size,
                hash,
                path: path.clone(),
            });
        }
        list
    }

    /// Hashes files whose size and mtime are the journal's, in path order
    /// from where the previous call stopped (the last path verified is
    /// kept in the state directory's `verified`), until `bytes` or
    /// `files` are reached or every file was looked at once; a file whose
    /// bytes do not give the journaled hash is damaged: marked,
    /// journaled, logged. Nothing fails the start: an error ends the pass
    /// with a warning.
    pub(super) fn verify_some(&mut self, bytes: u64, files: usize) {
        let cursor_file = self.state_dir.join("verified");
        let after = std::fs::read_to_string(&cursor_file)
            .ok()
            .and_then(|t| WirePath::new(t.trim_end_matches('\n')).ok());
        let listed: Vec<(WirePath, u64, i64, ContentHash)> = self
            .tree
            .iter()
            .filter_map(|(p, n)| match n.kind {
                NodeKind::File {
                    size,
                    mtime_ns,
                    hash,
                    ..
                } => Some((p.clone(), size, mtime_ns, hash)),
                NodeKind::Dir => None,
            })
            .collect();
        let start = after.map_or(0, |a| listed.partition_point(|(p, ..)| *p <= a));
        let order = listed[start..].iter().chain(listed[..start].iter());
        let (mut read, mut last) = (0u64, None);
        for (n, (path, size, mtime_ns, hash)) in order.enumerate() {
            if n == files || read >= bytes {
                break;
            }
            last = Some(path.clone());
            if self.lost.contains_key(path) {
                continue;
            }
            match self.verify_one(path, (*size, *mtime_ns, *hash)) {
                Ok(n) => read += n,
                Err(e) => {
                    log::warn!("{}: cannot verify {path}: {e}", self.label());
                    break;
                }
            }
        }
        if let Some(last) = last {
            if let Err(e) = std::fs::write(&cursor_file, last.as_str()) {
                log::warn!("{}: cannot note the files verified: {e}", self.label());
            }
        }
    }

    /// One file of [`Self::verify_some`]: the bytes read.
    fn verify_one(
        &mut self,
        path: &WirePath,
        (size, mtime_ns, hash): (u64, i64, ContentHash),
    ) -> Result<u64, StoreError> {
        let Some(file) = storefs::open_file(&self.root, path)? else {
            return Ok(0);
        };
        let meta = file.metadata()?;
        if !super::fetch::as_journaled(&meta, size, mtime_ns) {
            // Changed by hand: R-10.4's comparison journaled it already.
            return Ok(0);
        }
        let (found, read) = crate::fsafe::hash::hash_reader(&file)?;
        if (found, read) != (hash, size) {
            let version = self.tree.get(path).map_or(0, |n| n.version);
            log::error!(
                "{}: {path} is damaged (v{version}, found at start): the journaled size and mtime but other \
                 bytes (a failing disk, or an edit that put the times back): not served, left \
                 as it is for inspection; a device holding this version puts it back",
                self.label()
            );
            self.lost.insert(path.clone(), Lost::Damaged);
            self.record(Record::Damaged {
                seq: version,
                path: path.clone(),
                damaged: true,
            })?;
        }
        Ok(read)
    }

    /// How many files are lost now (for the log).
    pub fn lost_count(&self) -> usize {
        self.lost.len()
    }

    /// The lost files put back since the last call (R-10.10, for the
    /// logs): path, version, and the device whose upload brought it.
    pub fn take_restored(&mut self) -> Vec<(WirePath, u64, ClientId)> {
        std::mem::take(&mut self.restored)
    }

    /// If `staged` is the lost version of `path` (R-10.10,
    /// [`is_recovery`]), puts it back: the file is placed with the
    /// journal's mtime and executable bit, so it is exactly as journaled,
    /// no change is made (the devices hold this version already: nothing
    /// to fetch, no Notify), the lost mark is cleared (a damaged mark in
    /// the journal too), and the version is returned. `None`: not a
    /// recovery; `staged` is given back for the ordinary rules.
    ///
    /// # Errors
    /// Disk or journal failures; a symlink in the way. The temp file is
    /// removed on every error.
    pub(super) fn restore_lost(
        &mut self,
        path: &WirePath,
        staged: StagedFile,
    ) -> Result<Result<u64, StagedFile>, StoreError> {
        let lost = self.lost.get(path).copied();
        let Some(node) = self.tree.get(path).copied() else {
            return Ok(Err(staged));
        };
        let NodeKind::File {
            size,
            hash,
            mtime_ns,
            executable,
        } = node.kind
        else {
            return Ok(Err(staged));
        };
        if !is_recovery(lost, (size, hash), (staged.size, staged.hash)) {
            return Ok(Err(staged));
        }
        let mode = std::fs::metadata(&staged.temp)?.permissions().mode();
        let mode = storefs::with_executable(mode, executable);
        std::fs::set_permissions(&staged.temp, std::fs::Permissions::from_mode(mode))?;
        let times = std::fs::FileTimes::new().set_modified(journaled_time(mtime_ns));
        std::fs::OpenOptions::new()
            .write(true)
            .open(&staged.temp)?
            .set_times(times)?;
        // A damaged copy is replaced by the rename; a missing one's
        // directories were made again at start.
        let placed = storefs::place_file(&self.root, &staged.temp, path)?;
        let _ = staged.temp.keep();
        self.touched_dir(path);
        if placed.mtime_ns != mtime_ns {
            // A file system with coarser times: the next start's
            // comparison finds the same content and journals the new mtime.
            log::warn!(
                "{}: {path} put back with mtime {} ns, not the journaled {mtime_ns} ns",
                self.label(),
                placed.mtime_ns
            );
        }
        self.lost.remove(path);
        if lost == Some(Lost::Damaged) {
            self.record(Record::Damaged {
                seq: node.version,
                path: path.clone(),
                damaged: false,
            })?;
        }
        // Only at the journaled mtime: otherwise the journal's look (size
        // and mtime) finds it changed and the next start journals it anew.
        if let Some(st) = placed.stat.filter(|_| placed.mtime_ns == mtime_ns) {
            let identity = super::known::Identity::of_stat(&st);
            self.known.note(path, identity, hash);
        }
        Ok(Ok(node.version))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn h(b: u8) -> ContentHash {
        ContentHash([b; 32])
    }

    #[test]
    fn only_the_journaled_content_of_a_lost_file_is_a_recovery() {
        let j = (5, h(1));
        assert!(is_recovery(Some(Lost::Missing), j, (5, h(1))));
        assert!(is_recovery(Some(Lost::Damaged), j, (5, h(1))));
        // Not lost: an ordinary upload (Unchanged by ).
        assert!(!is_recovery(None, j, (5, h(1))));
        // Another content, or another size: an edit, by the usual rules.
        assert!(!is_recovery(Some(Lost::Missing), j, (5, h(2))));
        assert!(!is_recovery(Some(Lost::Damaged), j, (6, h(1))));
    }

    proptest! {
        #[test]
        fn a_recovery_is_exactly_lost_and_equal(
            lost in prop::option::of(prop_oneof![Just(Lost::Missing), Just(Lost::Damaged)]),
            js in 0u64..4, jh in 0u8..3, us in 0u64..4, uh in 0u8..3,
        ) {
            let got = is_recovery(lost, (js, h(jh)), (us, h(uh)));
            prop_assert_eq!(got, lost.is_some() && js == us && jh == uh);
        }
    }

    #[test]
    fn journaled_times_before_and_after_the_epoch() {
        let t = journaled_time(1_500_000_000_123_456_789);
        let d = t.duration_since(SystemTime::UNIX_EPOCH).expect("after");
        assert_eq!(d.as_nanos(), 1_500_000_000_123_456_789);
        assert!(journaled_time(-5) < SystemTime::UNIX_EPOCH);
    }
}
