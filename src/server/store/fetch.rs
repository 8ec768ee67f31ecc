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
}

impl UserStore {
    /// Opens the file at `path` for a fetch, as the tree lists it.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when the path is not a file in the tree or
    /// not a regular file on disk (a symlink there included);
    /// [`StoreError::Symlink`] when an ancestor on disk is a symlink; I/O.
    pub fn open_file(&self, path: &WirePath) -> Result<FileReader, StoreError> {
        let not_found = || StoreError::NotFound(path.clone());
        let node = self.tree.get(path).ok_or_else(not_found)?;
        let NodeKind::File { size, hash, .. } = node.kind else {
            return Err(not_found());
        };
        let file = fsafe::open_file(&self.root, path)?.ok_or_else(not_found)?;
        Ok(FileReader {
            file,
            path: path.clone(),
            version: node.version,
            size,
            hash,
            remaining: size,
        })
    }
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
                Ok(())
            }
            Err(source) => Err(StoreError::Read {
                path: self.path.clone(),
                source,
            }),
        }
    }
}
