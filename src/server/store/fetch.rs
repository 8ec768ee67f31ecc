//! Reading a file for a Fetch: the store opens it (symlink-safe, a regular
//! file that the tree lists) and the actor pulls it chunk by chunk, straight
//! into its outgoing buffer, as credit allows.

use super::tree::NodeKind;
use super::{StoreError, UserStore};
use crate::fsafe;
use crate::protocol::{ContentHash, WirePath};
use std::fs::File;
use std::io::Read;

/// An open file being sent, with the version, size and hash its
/// `FileBegin` announces.
#[derive(Debug)]
pub struct FileReader {
    file: File,
    path: WirePath,
    version: u64,
    size: u64,
    hash: ContentHash,
    /// Bytes not yet read.
    remaining: u64,
    /// The BLAKE3 of the bytes read so far, checked against `hash` when
    /// the last is read: one pass over bytes already in memory.
    read_hash: Box<blake3::Hasher>,
}

impl UserStore {
    /// Opens the file at `path` for a fetch, as the tree lists it, if the
    /// file on disk still has the size and mtime the journal recorded
    /// one `fstat`).
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when the path is not a file in the tree;
    /// [`StoreError::Lost`] when its server copy is known missing
    /// [`StoreError::ChangedOnDisk`] when no regular file
    /// is there (a symlink planted there included: never followed) or its
    /// size or mtime differ from the journal's; [`StoreError::Symlink`]
    /// when an ancestor on disk is a symlink; I/O.
    pub fn open_file(&self, path: &WirePath) -> Result<FileReader, StoreError> {
        let not_found = || StoreError::NotFound(path.clone());
        let changed = || StoreError::ChangedOnDisk(path.clone());
        let node = self.tree.get(path).ok_or_else(not_found)?;
        let NodeKind::File {
            size,
            hash,
            mtime_ns,
            ..
        } = node.kind
        else {
            return Err(not_found());
        };
        // A missing file is refused as lost; a damaged one is read again
        // under the end-of-stream check, so a repair in place
        // (the file put back with its times) is served at once.
        if self.lost_kind(path) == Some(false) {
            return Err(StoreError::Lost {
                path: path.clone(),
                damaged: false,
            });
        }
        let file = fsafe::open_file(&self.root, path)?.ok_or_else(changed)?;
        let meta = file.metadata()?;
        if !as_journaled(&meta, size, mtime_ns) {
            return Err(changed());
        }
        Ok(FileReader {
            file,
            path: path.clone(),
            version: node.version,
            size,
            hash,
            remaining: size,
            read_hash: Box::new(blake3::Hasher::new()),
        })
    }
}

/// Whether a file's size and mtime are the journaled ones.
pub(super) fn as_journaled(meta: &std::fs::Metadata, size: u64, mtime_ns: i64) -> bool {
    use std::os::unix::fs::MetadataExt;
    let mtime = meta
        .mtime()
        .saturating_mul(1_000_000_000)
        .saturating_add(meta.mtime_nsec());
    meta.len() == size && mtime == mtime_ns
}

impl FileReader {
    /// The version the tree gives the file.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Its size in bytes, as journaled.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Its BLAKE3 hash, as journaled.
    pub fn hash(&self) -> ContentHash {
        self.hash
    }

    /// The open file itself, for a delta download (PROTOCOL.md §13.4) that
    /// reads its chunks at their offsets. The store never writes a user's
    /// file in place (a new version is renamed over it), so this descriptor
    /// keeps giving the bytes of [`FileReader::version`] whatever pushes
    /// happen later.
    pub fn into_file(self) -> File {
        self.file
    }

    /// The length of the next chunk, at most `max` bytes; 0 when all was read.
    pub fn next_len(&self, max: usize) -> usize {
        self.remaining.min(max as u64) as usize
    }

    /// Fills `buf` (at most [`FileReader::next_len`] bytes) with the next bytes.
    ///
    /// # Errors
    /// [`StoreError::Read`]: the read failed or the file is shorter than
    /// journaled (changed on disk behind the store's back).
    pub fn read_chunk(&mut self, buf: &mut [u8]) -> Result<(), StoreError> {
        let read = if buf.len() as u64 > self.remaining {
            Err(std::io::Error::other("read past the announced size"))
        } else {
            self.file.read_exact(buf)
        };
        match read {
            Ok(()) => {
                self.remaining -= buf.len() as u64;
                self.read_hash.update(buf);
                Ok(())
            }
            // Shorter than journaled: changed on disk.
            Err(source) if source.kind() == std::io::ErrorKind::UnexpectedEof => {
                Err(StoreError::ChangedOnDisk(self.path.clone()))
            }
            Err(source) => Err(StoreError::Read {
                path: self.path.clone(),
                source,
            }),
        }
    }

    /// After the last chunk: whether the bytes read give the hash the
    /// `FileBegin` announced. A file the store never rewrites in
    /// place can differ only if it was changed behind the server's back
    /// or damaged on disk.
    ///
    /// # Errors
    /// [`StoreError::ChangedOnDisk`] when they do not.
    pub fn verify(&self) -> Result<(), StoreError> {
        if ContentHash(*self.read_hash.finalize().as_bytes()) == self.hash {
            Ok(())
        } else {
            Err(StoreError::ChangedOnDisk(self.path.clone()))
        }
    }
}
