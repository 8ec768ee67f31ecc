//! The store's side of a delta upload (PROTOCOL.md §13.3): the temp file a
//! new version is built in, chunk by chunk at its offsets, checked whole
//! before it becomes a [`StagedFile`]; reading chunks of the user's own
//! files (symlink-safe, only files the tree lists); and where the user's
//! chunk index is saved. Which bytes go where is decided elsewhere
//! ([`crate::chunk::AssemblyPlan`]); this file only reads and writes.

use super::tree::NodeKind;
use super::upload::StagedFile;
use super::{StoreError, UserStore};
use crate::fsafe;
use crate::protocol::{ContentHash, WirePath};
use std::fs::File;
use std::io::{BufReader, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::PathBuf;
use tempfile::NamedTempFile;

/// A new version being built from chunks, in the user's `tmp/` folder; the
/// temp file removes itself unless [`DeltaBuild::finish`] hands it over.
pub struct DeltaBuild {
    file: NamedTempFile,
    path: WirePath,
    size: u64,
    durable: bool,
}

impl UserStore {
    /// A temp file of `size` bytes (zeros until chunks are written) for the
    /// new version of `path`.
    ///
    /// # Errors
    /// [`StoreError::TempFile`] when it cannot be created or sized.
    pub fn begin_delta(&self, path: &WirePath, size: u64) -> Result<DeltaBuild, StoreError> {
        let file = tempfile::Builder::new()
            .prefix("delta-")
            // As for whole uploads: the permissions `File::create` gives.
            .permissions(std::fs::Permissions::from_mode(0o666))
            .tempfile_in(&self.tmp_dir)
            .and_then(|f| f.as_file().set_len(size).map(|()| f))
            .map_err(StoreError::TempFile)?;
        Ok(DeltaBuild {
            file,
            path: path.clone(),
            size,
            durable: self.durable,
        })
    }

    /// Opens the user's file at `path` to read chunks from, if the tree
    /// lists a file there and it is a regular file on disk.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] otherwise; I/O errors.
    pub fn open_chunk_source(&self, path: &WirePath) -> Result<File, StoreError> {
        let not_found = || StoreError::NotFound(path.clone());
        let node = self.tree.get(path).ok_or_else(not_found)?;
        if !matches!(node.kind, NodeKind::File { .. }) {
            return Err(not_found());
        }
        fsafe::open_file(&self.root, path)?.ok_or_else(not_found)
    }

    /// Every file of the user with its journaled hash (what the chunk index
    /// is brought up to).
    pub fn file_hashes(&self) -> impl Iterator<Item = (&WirePath, ContentHash)> {
        self.tree.iter().filter_map(|(path, node)| match node.kind {
            NodeKind::File { hash, .. } => Some((path, hash)),
            NodeKind::Dir => None,
        })
    }

    /// Where the user's chunk index is saved.
    pub fn chunk_index_file(&self) -> PathBuf {
        self.state_dir.join("chunks")
    }
}

impl DeltaBuild {
    /// Writes a chunk's bytes at `offset`.
    ///
    /// # Errors
    /// [`StoreError::Write`]: the build is broken and must be dropped.
    pub fn write_at(&self, data: &[u8], offset: u64) -> Result<(), StoreError> {
        self.file
            .as_file()
            .write_all_at(data, offset)
            .map_err(|source| StoreError::Write {
                path: self.path.clone(),
                source,
            })
    }

    /// Checks that the built file hashes to `hash` (re-read whole, so what
    /// is placed is exactly what was checked), syncs it with `--fsync`, and
    /// hands it over.
    ///
    /// # Errors
    /// [`StoreError::HashMismatch`], or the read/sync error; the temp file
    /// is removed.
    pub fn finish(mut self, hash: ContentHash) -> Result<StagedFile, StoreError> {
        let path = self.path.clone();
        let read = |source| StoreError::Read {
            path: path.clone(),
            source,
        };
        let mut hasher = blake3::Hasher::new();
        let file = self.file.as_file_mut();
        file.seek(SeekFrom::Start(0)).map_err(read)?;
        hasher
            .update_reader(BufReader::with_capacity(1 << 20, &*file))
            .map_err(read)?;
        if ContentHash(*hasher.finalize().as_bytes()) != hash {
            return Err(StoreError::HashMismatch(self.path.clone()));
        }
        if self.durable {
            // --fsync: the content is on disk before it becomes visible.
            self.file
                .as_file()
                .sync_data()
                .map_err(|source| StoreError::Write {
                    path: self.path.clone(),
                    source,
                })?;
        }
        Ok(StagedFile {
            temp: self.file.into_temp_path(),
            size: self.size,
            hash,
        })
    }
}
