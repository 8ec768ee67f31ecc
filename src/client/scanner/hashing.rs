//! Reading a file for its hash, and checking it did not change meanwhile:
//! a file that may go as a delta upload is cut into chunks in the same read
//! (issue 11), and its chunk list kept, within a bound, for the push that
//! follows.

use super::Scanner;
use crate::chunk::{manifest_of_reader_sized, Manifest, MIN_CHUNK};
use crate::client::fsutil::{check_path, open_in, os_reason, Local, Stat};
use crate::client::status::heartbeat::Beating;
use crate::fsafe::hash_reader;
use crate::protocol::{ContentHash, WirePath};
use std::fs::File;
use std::io::BufReader;

/// Most chunk entries the scanner keeps between a plan and its pushes
/// (36 bytes each on the wire, about 48 in memory: ≈ 48 MiB, the lists of
/// ≈ 80 GiB of files). Files hashed past it are chunked again when sent.
pub const MAX_KEPT_CHUNKS: usize = 1 << 20;

/// Whether the scan cuts a file of `size` bytes into chunks while hashing
/// it: a file that may go as a delta upload (above one minimum chunk,
/// as [`crate::client::delta_push::DeltaSupport::wants`]).
pub(super) fn keeps_manifest(size: u64) -> bool {
    size > u64::from(MIN_CHUNK)
}

/// What reading a file for its hash found.
pub(super) enum Hashed {
    /// Read whole, unchanged meanwhile.
    Done(ContentHash),
    /// Changed while read, or gone: still being written, look again later.
    Unstable,
    /// This user may not read it (`unreadable (Permission denied)`): not
    /// synced until that changes, and not a pending upload.
    Unreadable(String),
}

impl Scanner {
    /// Hashes a file and checks it did not change meanwhile
    /// ([`Hashed::Unstable`] when it did, or vanished: it is still being
    /// written; [`Hashed::Unreadable`] when this user may not open it). A
    /// file that may go as a delta upload is cut into chunks in the same
    /// read, and its chunk list kept for [`Scanner::take_manifest`]. A path
    /// too long for the system with the folder's in front is opened
    /// through directory handles ([`open_in`]).
    pub(super) fn stable_hash(&mut self, path: &WirePath, before: Stat) -> Hashed {
        let file: File = match open_in(&self.root, path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                return Hashed::Unreadable(format!("unreadable ({})", os_reason(&e)));
            }
            Err(_) => return Hashed::Unstable,
        };
        let file = Beating {
            inner: file,
            heart: self.heart.as_ref(),
        };
        let read = if keeps_manifest(before.size) && self.kept_chunks < MAX_KEPT_CHUNKS {
            manifest_of_reader_sized(BufReader::with_capacity(1 << 20, file), before.size)
                .map(|m| (m.hash, m.size, Some(m)))
                .ok()
        } else {
            hash_reader(file).map(|(hash, len)| (hash, len, None)).ok()
        };
        let Some((hash, len, manifest)) = read else {
            return Hashed::Unstable;
        };
        match check_path(&self.root, path) {
            Ok(Local::File(after)) if after == before && len == before.size => {
                if let Some(manifest) = manifest {
                    self.kept_chunks += manifest.chunks.len();
                    self.manifests.insert(path.clone(), (before, manifest));
                }
                Hashed::Done(hash)
            }
            _ => Hashed::Unstable,
        }
    }

    /// Whether this user may open the file at `path` (`Err`: why not, as
    /// [`Scanner::stable_hash`] says it); `Ok(false)` when it is gone. A
    /// file planned as [`Op::Stream`] is not read by the plan, so a file
    /// it may not read must still be found here, not at every send.
    pub(super) fn readable(&self, path: &WirePath) -> Result<bool, String> {
        match open_in(&self.root, path) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                Err(format!("unreadable ({})", os_reason(&e)))
            }
            Err(_) => Ok(false),
        }
    }

    /// The chunk list the last plan cut from `path` while hashing it, if
    /// it was read at `stat` and has `hash` (an `Op::Upload`'s fields);
    /// taken once.
    pub fn take_manifest(
        &mut self,
        path: &WirePath,
        stat: Stat,
        hash: ContentHash,
    ) -> Option<Manifest> {
        let (at, manifest) = self.manifests.get(path)?;
        if *at != stat || manifest.hash != hash {
            return None;
        }
        self.manifests.remove(path).map(|(_, manifest)| manifest)
    }
}
