//! The store's side of a delta upload (PROTOCOL.md §13.3): the temp file a
//! new version is built in, chunk by chunk at its offsets, checked whole
//! before it becomes a [`StagedFile`]; reading chunks of the user's own
//! files (symlink-safe, only files the tree lists); and where the user's
//! chunk index is saved. Which bytes go where is decided elsewhere
//! ([`crate::chunk::AssemblyPlan`]); this file only reads and writes.

use super::tree::NodeKind;
use super::upload::StagedFile;
use super::{StoreError, UserStore};
use crate::chunk::index::{drop_other_partials, partial_name};
use crate::fsafe;
use crate::protocol::{ContentHash, WirePath};
use std::fs::File;
use std::io::{BufReader, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use tempfile::{NamedTempFile, TempPath};

/// A new version being built from chunks, in the user's `partial/` folder
/// under a name given by the path and the content hash
/// ([`crate::chunk::index::partial_name`]); the file removes itself unless
/// [`DeltaBuild::finish`] hands it over or [`DeltaBuild::suspend`] keeps it
/// for a resume.
pub struct DeltaBuild {
    file: NamedTempFile,
    path: WirePath,
    size: u64,
    durable: bool,
    /// The file was there before: an interrupted upload of the same
    /// content left it (its chunks are checked before they count).
    resumed: bool,
}

impl UserStore {
    /// The file of `size` bytes (zeros until chunks are written) the
    /// content `hash` of `path` is built in: the partial build an
    /// interrupted upload of that content left, or a new one. Partial builds
    /// of other contents of `path` are removed (the path moved on).
    ///
    /// # Errors
    /// [`StoreError::TempFile`] when it cannot be created or sized.
    pub fn begin_delta(
        &self,
        path: &WirePath,
        size: u64,
        hash: &ContentHash,
    ) -> Result<DeltaBuild, StoreError> {
        let name = partial_name(path, hash);
        drop_other_partials(&self.partial_dir, path, &name);
        let at = self.partial_dir.join(&name);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            // As for whole uploads: the permissions `File::create` gives.
            .mode(0o666)
            .open(&at)
            .map_err(StoreError::TempFile)?;
        let temp = TempPath::try_from_path(at).map_err(StoreError::TempFile)?;
        let file = NamedTempFile::from_parts(file, temp);
        let before = file.as_file().metadata().map(|m| m.len()).unwrap_or(0);
        file.as_file().set_len(size).map_err(StoreError::TempFile)?;
        Ok(DeltaBuild {
            file,
            path: path.clone(),
            size,
            durable: self.durable,
            resumed: before == size && size > 0,
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
    /// Whether an interrupted upload of the same content left this file.
    pub fn resumed(&self) -> bool {
        self.resumed
    }

    /// The file, to read the chunks a resumed build already holds.
    pub fn file(&self) -> &File {
        self.file.as_file()
    }

    /// Keeps the file for a later upload of the same content (the
    /// connection was lost mid-upload): its verified chunks then need not
    /// cross again.
    pub fn suspend(self) {
        let _ = self.file.keep();
    }

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
