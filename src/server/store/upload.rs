//! An upload being received: its bytes go to a temp file in the user's
//! `tmp/` folder (outside the visible folder), are counted and hashed as
//! they arrive, and become a [`StagedFile`] only when size and hash match
//! what `FileBegin` announced. The temp file removes itself when the upload
//! is dropped, fails, or its staged file is dropped unplaced. A FileChunk of
//! zeros is skipped over in the new temp file, not written, so a sparse file
//! stays sparse.

use super::{StoreError, UserStore};
use crate::chunk::feed_pipe::ChunkPipe;
use crate::chunk::index::stream_prefix;
use crate::chunk::Manifest;
use crate::protocol::{ContentHash, FileBegin, StreamBegin, WirePath};
use crate::writeback::{start_writeback, Writeback};
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use tempfile::{NamedTempFile, TempPath};

/// An upload whose bytes are complete and verified, waiting in the temp
/// folder for [`UserStore::commit_file`]; dropped unplaced, it is removed.
#[derive(Debug)]
pub struct StagedFile {
    /// The temp file.
    pub temp: TempPath,
    /// Its size in bytes.
    pub size: u64,
    /// Its BLAKE3 hash (checked against the announced one).
    pub hash: ContentHash,
}

/// An open upload (`FileBegin` received, `FileEnd` not yet).
pub struct Upload {
    /// What was announced.
    begin: FileBegin,
    /// The temp file; `None` once creating or writing it failed (the rest
    /// of the bytes are still counted and hashed, then discarded).
    file: Option<NamedTempFile>,
    /// Bytes received so far.
    written: u64,
    /// Hash of the bytes received so far.
    hasher: blake3::Hasher,
    /// The first create or write error, reported at `finish`.
    error: Option<StoreError>,
    /// `--fsync`: sync the data before it can become visible.
    durable: bool,
    /// With `durable`: when to start writing the temp file out to disk
    /// while the bytes still arrive, so the sync in [`Upload::finish`]
    /// (before the PushAck, R-10.1) waits only for the tail (0.43 s for
    /// 1 GiB on loopback before; `crate::writeback`).
    writeback: Writeback,
    /// Opened by `StreamBegin` (PROTOCOL.md §13.8): the hash comes with
    /// `StreamEnd` ([`Upload::seal`]); `begin.hash` is a placeholder that
    /// [`Upload::finish`] never checks against.
    late: bool,
    /// A `StreamBegin` upload's chunk list, cut and hashed from the bytes
    /// as they arrive, on a worker for a large one; `None` for
    /// the other uploads.
    chunks: Option<ChunkPipe>,
    /// Pieces of zeros were skipped, not written (the temp file is new:
    /// a hole reads as zeros), so the file's length is set at the end.
    holes: bool,
}

/// A sealed stream upload: the verified file, and the chunk list of exactly
/// its bytes (`None` past the most chunks a list may have).
pub type Sealed = (StagedFile, Option<Manifest>);

impl UserStore {
    /// Starts receiving the file `begin` announces. A temp file that cannot
    /// be created is reported by [`Upload::finish`], after the bytes.
    pub fn begin_upload(&self, begin: FileBegin) -> Upload {
        self.begin_in(begin, &self.tmp_dir, "upload-")
    }

    /// An upload whose bytes go to a temp file in `dir`, named `prefix`
    /// and a random part.
    fn begin_in(&self, begin: FileBegin, dir: &std::path::Path, prefix: &str) -> Upload {
        let created = tempfile::Builder::new()
            .prefix(prefix)
            // What `File::create` gives (0666 less the umask): the file
            // keeps these permissions once it is placed in the folder.
            .permissions(std::fs::Permissions::from_mode(0o666))
            .tempfile_in(dir);
        let (file, error) = match created {
            Ok(f) => (Some(f), None),
            Err(e) => (None, Some(StoreError::TempFile(e))),
        };
        Upload {
            begin,
            file,
            written: 0,
            hasher: blake3::Hasher::new(),
            error,
            durable: self.durable,
            writeback: Writeback::default(),
            late: false,
            chunks: None,
            holes: false,
        }
    }

    /// Starts receiving a file whose hash comes after its bytes
    /// (`StreamBegin`, PROTOCOL.md §13.8); closed by [`Upload::seal`]. The
    /// bytes are hashed once, as they arrive, exactly as for `FileBegin`
    /// and in the same pass cut into chunks whose IDs are
    /// hashed from the same bytes ([`ChunkPipe`]): the list
    /// [`Upload::seal`] gives is that of exactly the checked bytes. No list
    /// is taken from the client.
    ///
    /// Its temp file is in the partial area (kept across restarts, unlike
    /// the temp area): if the connection ends before `StreamEnd`, what was
    /// received stays there ([`Upload::suspend`]) for a delta upload of the
    /// path to take its chunks from.
    pub fn begin_stream(&self, begin: StreamBegin) -> Upload {
        let prefix = stream_prefix(&begin.path);
        let begin = FileBegin {
            version: begin.version,
            size: begin.size,
            hash: ContentHash([0; 32]),
            path: begin.path,
        };
        let mut upload = self.begin_in(begin, &self.partial_dir, &prefix);
        upload.late = true;
        upload.chunks = Some(ChunkPipe::new(upload.begin.size));
        upload
    }

    /// The kept bytes of interrupted one-read uploads of `path`
    /// ([`Upload::suspend`]), open, with where they are.
    pub fn stream_leftovers(&self, path: &WirePath) -> Vec<(std::path::PathBuf, std::fs::File)> {
        let prefix = stream_prefix(path);
        let Ok(listing) = std::fs::read_dir(&self.partial_dir) else {
            return Vec::new();
        };
        listing
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
            .filter_map(|e| Some((e.path(), std::fs::File::open(e.path()).ok()?)))
            .collect()
    }

    /// Test helper (store unit tests): `content` staged for `path` on
    /// `base` through the real upload path, ready for `commit_file`.
    #[cfg(test)]
    pub(crate) fn stage(&self, path: &WirePath, base: u64, content: &[u8]) -> StagedFile {
        let mut upload = self.begin_upload(FileBegin {
            version: base,
            size: content.len() as u64,
            hash: ContentHash::of(content),
            path: path.clone(),
        });
        upload.write(content).expect("test upload write");
        upload.finish().expect("test upload finish")
    }
}

impl Upload {
    /// The announced path.
    pub fn path(&self) -> &WirePath {
        &self.begin.path
    }

    /// The announced base version.
    pub fn base(&self) -> u64 {
        self.begin.version
    }

    /// The connection ended before the upload did: a one-read upload keeps
    /// the bytes it received; any other upload's temp file goes.
    pub fn suspend(self) {
        // Writes go straight to the file (no buffer): what was written is
        // there. A file a write failed on is not kept (it may lack bytes).
        if let (true, None, Some(file)) = (self.late, &self.error, self.file) {
            if self.holes && file.as_file().set_len(self.written).is_err() {
                return;
            }
            if self.written > 0 {
                let _ = file.keep();
            }
        }
    }

    /// Where its bytes are being written (`None` once that failed).
    pub fn temp_path(&self) -> Option<&std::path::Path> {
        self.file.as_ref().map(|f| f.path())
    }

    /// Whether the upload was opened by `StreamBegin` and must be closed
    /// by `StreamEnd` (and not by `FileEnd`), R-13.8.2.
    pub fn is_stream(&self) -> bool {
        self.late
    }

    /// Closes a `StreamBegin` upload with the hash its `StreamEnd` carries:
    /// checked as [`Upload::finish`] checks `FileBegin`'s, with
    /// the chunk list cut as the bytes arrived.
    ///
    /// # Errors
    /// As [`Upload::finish`].
    pub fn seal(mut self, hash: ContentHash) -> Result<Sealed, StoreError> {
        self.begin.hash = hash;
        self.late = false;
        let feed = self.chunks.take();
        let staged = self.finish()?;
        let list = feed
            .and_then(|f| f.finish(staged.hash))
            .filter(|m| m.size == staged.size);
        Ok((staged, list))
    }

    /// Bytes received so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Takes the next chunk. A write failure is kept for [`Upload::finish`]
    /// (the client is told once, at `FileEnd`).
    ///
    /// # Errors
    /// [`StoreError::TooManyBytes`] when the chunk goes past the announced
    /// size: the upload is broken and must be dropped.
    pub fn write(&mut self, data: &[u8]) -> Result<(), StoreError> {
        self.take(data)?;
        if let Some(pipe) = self.chunks.as_mut() {
            pipe.feed_slice(data);
        }
        Ok(())
    }

    /// [`Upload::write`] of a piece it may keep: a large stream upload's
    /// chunk cutter gets it moved, not copied ([`ChunkPipe`]).
    ///
    /// # Errors
    /// As [`Upload::write`].
    pub fn write_owned(&mut self, data: Vec<u8>) -> Result<(), StoreError> {
        self.take(&data)?;
        if let Some(pipe) = self.chunks.as_mut() {
            pipe.feed(data);
        }
        Ok(())
    }

    /// Counts, hashes and writes the next piece (not the chunk list).
    fn take(&mut self, data: &[u8]) -> Result<(), StoreError> {
        let written = self.written.checked_add(data.len() as u64);
        let Some(written) = written.filter(|w| *w <= self.begin.size) else {
            return Err(StoreError::TooManyBytes {
                path: self.begin.path.clone(),
                announced: self.begin.size,
            });
        };
        self.written = written;
        self.hasher.update(data);
        if let Some(file) = self.file.as_mut() {
            // A piece of zeros is skipped over, not written: a sparse file
            // (a disk image) stays sparse, as a delta build keeps it.
            let zeros = !data.is_empty() && data.iter().all(|&b| b == 0);
            let wrote = match i64::try_from(data.len()) {
                Ok(len) if zeros => file.seek(SeekFrom::Current(len)).map(|_| ()),
                _ => file.write_all(data),
            };
            self.holes |= zeros;
            // Only a durable upload: without --fsync nothing waits for the
            // disk, and the kernel's flusher writes it when it will.
            if wrote.is_ok() && self.durable && self.writeback.wrote(data.len() as u64) {
                if let Err(e) = start_writeback(file.as_file()) {
                    // Only a head start lost: the sync in `finish` still
                    // writes everything, and reports what fails then.
                    log::debug!("{}: starting the write-out: {e}", self.begin.path);
                }
            }
            if let Err(source) = wrote {
                self.error = Some(StoreError::Write {
                    path: self.begin.path.clone(),
                    source,
                });
                // Dropping the temp file removes it.
                self.file = None;
            }
        }
        Ok(())
    }

    /// Checks size and hash, flushes (and with `--fsync` syncs the data),
    /// and hands over the complete file.
    ///
    /// # Errors
    /// [`StoreError::SizeMismatch`], [`StoreError::HashMismatch`], the
    /// first create or write error, or the flush/sync error. The temp file
    /// is removed on every error.
    pub fn finish(mut self) -> Result<StagedFile, StoreError> {
        let path = &self.begin.path;
        let hash = ContentHash(*self.hasher.finalize().as_bytes());
        if self.written != self.begin.size {
            return Err(StoreError::SizeMismatch {
                path: path.clone(),
                received: self.written,
                announced: self.begin.size,
            });
        }
        if self.late || hash != self.begin.hash {
            // A stream upload is checked only against its StreamEnd's hash.
            return Err(StoreError::HashMismatch(path.clone()));
        }
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        let Some(mut file) = self.file.take() else {
            return Err(StoreError::Io(std::io::Error::other("no temp file")));
        };
        let synced = file.flush().and_then(|()| {
            if self.holes {
                // Zeros skipped at the end left the file short of them.
                file.as_file().set_len(self.written)?;
            }
            if self.durable {
                // --fsync: the content is on disk before it becomes visible.
                file.as_file().sync_data()
            } else {
                Ok(())
            }
        });
        if let Err(source) = synced {
            return Err(StoreError::Write {
                path: path.clone(),
                source,
            });
        }
        Ok(StagedFile {
            temp: file.into_temp_path(),
            size: self.written,
            hash,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::{DataPaths, StoreError, UserStore};
    use crate::protocol::{ContentHash, ErrorCode, FileBegin, UserId, WirePath};
    use std::os::unix::fs::PermissionsExt;

    fn begin(content: &[u8], size: u64) -> FileBegin {
        FileBegin {
            version: 0,
            size,
            hash: ContentHash::of(content),
            path: WirePath::new("d/f.txt").unwrap(),
        }
    }

    fn temp_files(dir: &std::path::Path) -> usize {
        let tmp = dir
            .join(".cloudservice-server")
            .join(UserId([3; 16]).to_string());
        std::fs::read_dir(tmp.join("tmp")).unwrap().count()
    }

    /// Every way an upload can end without being placed leaves `tmp/`
    /// empty, with the error code the client is answered with.
    #[test]
    fn a_failed_or_abandoned_upload_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let paths = DataPaths {
            base: dir.path().to_path_buf(),
        };
        let (store, _) = UserStore::open(&paths, &UserId([3; 16]), true, true).unwrap();
        // (announced content, bytes sent, announced size, expected answer)
        type Case = (&'static [u8], &'static [u8], u64, Option<ErrorCode>);
        let cases: [Case; 4] = [
            (b"abc", b"abcd", 3, Some(ErrorCode::SizeMismatch)), // too many, at write
            (b"abc", b"ab", 3, Some(ErrorCode::SizeMismatch)),   // too few, at finish
            (b"abc", b"abd", 3, Some(ErrorCode::HashMismatch)),
            (b"abc", b"ab", 3, None), // dropped mid-way (connection lost)
        ];
        for (announced, sent, size, code) in cases {
            let mut upload = store.begin_upload(begin(announced, size));
            assert_eq!(temp_files(dir.path()), 1);
            let result = upload.write(sent).and_then(|()| match code {
                Some(_) => upload.finish().map(drop),
                None => {
                    drop(upload);
                    Ok(())
                }
            });
            assert_eq!(result.err().map(|e| e.code()), code);
            assert_eq!(temp_files(dir.path()), 0, "{sent:?}");
        }
        // A staged file that is never placed goes too.
        let mut upload = store.begin_upload(begin(b"abc", 3));
        upload.write(b"abc").unwrap();
        let staged = upload.finish().unwrap();
        assert_eq!(temp_files(dir.path()), 1);
        drop(staged);
        assert_eq!(temp_files(dir.path()), 0);
    }

    /// A placed upload has the permissions `File::create` gives (0666 less
    /// the umask), not the 0600 of a usual temp file, and leaves no temp file.
    #[test]
    fn a_placed_upload_has_ordinary_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let paths = DataPaths {
            base: dir.path().to_path_buf(),
        };
        let (mut store, _) = UserStore::open(&paths, &UserId([3; 16]), true, false).unwrap();
        let mut upload = store.begin_upload(begin(b"abc", 3));
        upload.write(b"abc").unwrap();
        let staged = upload.finish().unwrap();
        let path = WirePath::new("d/f.txt").unwrap();
        store.commit_file(0, &path, staged, 1).unwrap();
        let placed = path.to_local(store.root());
        assert_eq!(std::fs::read(&placed).unwrap(), b"abc");
        let reference = dir.path().join("reference");
        std::fs::File::create(&reference).unwrap();
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode();
        assert_eq!(mode(&placed) & 0o777, mode(&reference) & 0o777);
        assert_eq!(temp_files(dir.path()), 0);
        assert!(matches!(
            store.open_file(&WirePath::new("d").unwrap()),
            Err(StoreError::NotFound(_))
        ));
    }

    /// An upload with `--fsync` whose write-out is started while it
    /// arrives (every KICK_EVERY bytes, `crate::writeback`) stages exactly
    /// the bytes sent, holes of zeros included, as one without it does:
    /// the early write-out changes when the disk is written, not what.
    #[test]
    fn a_durable_upload_written_out_while_it_arrives_keeps_its_bytes() {
        use crate::writeback::KICK_EVERY;
        let piece = 256 * 1024;
        // 3 KICK_EVERY and a bit, a piece of zeros in the middle and at the end.
        let mut content: Vec<u8> = (0..3 * KICK_EVERY as usize + 12_345)
            .map(|i| (i % 253) as u8)
            .collect();
        content[piece * 5..piece * 6].fill(0);
        let tail = content.len() - (content.len() % piece);
        content[tail..].fill(0);
        for durable in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let paths = DataPaths {
                base: dir.path().to_path_buf(),
            };
            let (store, _) = UserStore::open(&paths, &UserId([3; 16]), true, durable).unwrap();
            let size = content.len() as u64;
            let mut upload = store.begin_upload(begin(&content, size));
            for data in content.chunks(piece) {
                upload.write(data).unwrap();
            }
            let staged = upload.finish().unwrap();
            assert_eq!(staged.size, size);
            assert_eq!(std::fs::read(&staged.temp).unwrap(), content, "{durable}");
        }
    }
}
