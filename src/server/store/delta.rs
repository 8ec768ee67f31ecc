//! The store's side of a delta upload (PROTOCOL.md §13.3): the temp file a
//! new version is built in, chunk by chunk at its offsets, checked whole
//! before it becomes a [`StagedFile`]; reading chunks of the user's own
//! files (symlink-safe, only files the tree lists); and where the user's
//! chunk index is saved. Which bytes go where is decided elsewhere
//! ([`crate::chunk::AssemblyPlan`]); this file only reads and writes.

use super::tree::NodeKind;
use super::upload::StagedFile;
use super::{StoreError, UserStore};
use crate::chunk::index::{partial_name, partial_prefix};
use crate::chunk::tree_hash::{TreeHashError, TreeHasher};
use crate::fsafe;
use crate::protocol::{ContentHash, WirePath};
use std::cell::{Cell, RefCell};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use tempfile::{NamedTempFile, TempPath};

/// A new version being built from chunks, in the user's `partial/` folder
/// under a name given by the path and the content hash
/// ([`crate::chunk::index::partial_name`]); the file removes itself unless
/// [`DeltaBuild::finish`] hands it over or [`DeltaBuild::suspend`] keeps it
/// for a resume.
///
/// The whole-file BLAKE3 is computed from the bytes as they are written
/// ([`TreeHasher`]), so the check at the end does not read the file again
/// (only the blocks not written whole through [`DeltaBuild::write_at`]: a
/// resumed build's chunks already in place, or blocks past the hasher's
/// memory bound).
pub struct DeltaBuild {
    file: NamedTempFile,
    path: WirePath,
    size: u64,
    durable: bool,
    /// The hash of what was written, by block.
    hasher: RefCell<TreeHasher>,
    /// A write failed: what was hashed is not what is in the file, and the
    /// build can only be refused.
    broken: Cell<bool>,
    /// The file was there before: an interrupted upload of the same
    /// content left it (its chunks are checked before they count).
    resumed: bool,
}

impl UserStore {
    /// The file of `size` bytes (zeros until chunks are written) the
    /// content `hash` of `path` is built in: a partial build of that content
    /// an interrupted upload left, or a new one. `live` are the
    /// files the user's other uploads in progress are writing (their
    /// [`DeltaBuild::at`]): none of them is taken or removed (R-13.5.3: two
    /// uploads of one path at once, from two devices, each build their
    /// own), so a second upload of the same content builds under a numbered
    /// name next to the first. Partial builds of `path` no upload is
    /// writing, other than the one taken, are removed (the path moved on).
    ///
    /// # Errors
    /// [`StoreError::TempFile`] when it cannot be created or sized.
    pub fn begin_delta(
        &self,
        path: &WirePath,
        size: u64,
        hash: &ContentHash,
        live: &[&Path],
    ) -> Result<DeltaBuild, StoreError> {
        let at = self.free_build_file(path, hash, live);
        drop_unused_partials(&self.partial_dir, path, &at, live);
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
        let resumed = before == size && size > 0;
        if !resumed && before > 0 {
            // Not a leftover of this content after all (damaged): its bytes
            // go, so that every byte of a new build is zero until written.
            file.as_file().set_len(0).map_err(StoreError::TempFile)?;
        }
        file.as_file().set_len(size).map_err(StoreError::TempFile)?;
        Ok(DeltaBuild {
            file,
            path: path.clone(),
            size,
            durable: self.durable,
            hasher: RefCell::new(TreeHasher::new(size)),
            broken: Cell::new(false),
            resumed,
        })
    }

    /// Where a build of content `hash` of `path` goes: the content's
    /// partial name, or `NAME.N` (N = 1, 2, ...) while uploads in progress
    /// write those; among the names no upload writes, one that exists (an
    /// interrupted upload's chunks, R-13.5.1) first. At most `live.len()`
    /// names are busy, so one of the first `live.len() + 1` is free.
    fn free_build_file(&self, path: &WirePath, hash: &ContentHash, live: &[&Path]) -> PathBuf {
        let name = partial_name(path, hash);
        let free: Vec<PathBuf> = (0..=live.len())
            .map(|n| match n {
                0 => self.partial_dir.join(&name),
                n => self.partial_dir.join(format!("{name}.{n}")),
            })
            .filter(|at| !live.contains(&at.as_path()))
            .collect();
        free.iter()
            .find(|at| at.exists())
            .or(free.first())
            .cloned()
            .unwrap_or_else(|| self.partial_dir.join(name))
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

    /// Where the build is written (what [`UserStore::begin_delta`] is told
    /// of uploads in progress).
    pub fn at(&self) -> &Path {
        self.file.path()
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

    /// Writes a chunk's bytes at `offset`; the same bytes go into the
    /// whole-file hash.
    ///
    /// # Errors
    /// [`StoreError::Write`]: the build is broken and must be dropped
    /// ([`DeltaBuild::finish`] refuses it too).
    pub fn write_at(&self, data: &[u8], offset: u64) -> Result<(), StoreError> {
        // A new build is one hole of `size` bytes (set_len), all zeros: a
        // chunk of zeros is left unwritten there, so a sparse file stays
        // sparse on the server (a 1 GiB file holding 4 KiB of data takes
        // about that on disk, not 1 GiB). The hash still takes the zeros.
        // A resumed build's bytes are not known to be zero: written.
        let hole = !self.resumed && data.iter().all(|&b| b == 0);
        if hole {
            self.hasher.borrow_mut().write(offset, data);
            return Ok(());
        }
        if let Err(source) = self.file.as_file().write_all_at(data, offset) {
            self.broken.set(true);
            return Err(StoreError::Write {
                path: self.path.clone(),
                source,
            });
        }
        self.hasher.borrow_mut().write(offset, data);
        Ok(())
    }

    /// Bytes the whole-file check would read back now (blocks not written
    /// whole through [`DeltaBuild::write_at`]); 0 for a build written
    /// entirely through it.
    pub fn read_back_bytes(&self) -> u64 {
        self.hasher.borrow().read_back_bytes()
    }

    /// Checks that the built file hashes to `hash` (the hash of the bytes
    /// written, block by block as they were written; blocks not written
    /// whole are read back), syncs it with `--fsync`, and hands it over.
    ///
    /// # Errors
    /// [`StoreError::HashMismatch`]; [`StoreError::Write`] when a write
    /// failed or went over bytes already written; the read/sync error. The
    /// temp file is removed.
    pub fn finish(self, hash: ContentHash) -> Result<StagedFile, StoreError> {
        let broken = |what: String| StoreError::Write {
            path: self.path.clone(),
            source: std::io::Error::other(what),
        };
        if self.broken.get() {
            return Err(broken("an earlier write of this build failed".into()));
        }
        let file = self.file.as_file();
        let built = self
            .hasher
            .into_inner()
            .finish(|offset, buf| file.read_exact_at(buf, offset));
        let built = match built {
            Ok(built) => built,
            Err(TreeHashError::Read(source)) => {
                return Err(StoreError::Read {
                    path: self.path.clone(),
                    source,
                })
            }
            Err(e @ TreeHashError::BadWrite { .. }) => return Err(broken(e.to_string())),
        };
        if built != hash {
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

/// Removes from `dir` the partial builds for `path` other than `keep` and
/// the `live` ones (the path's content moved on: what interrupted uploads
/// left is no longer wanted; what uploads in progress write is theirs,
///
fn drop_unused_partials(dir: &Path, path: &WirePath, keep: &Path, live: &[&Path]) {
    let prefix = partial_prefix(path);
    // The kept bytes of cut-off one-read uploads stay: the build about to
    // start takes its chunks from them first.
    let streams = crate::chunk::index::stream_prefix(path);
    let Ok(listing) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in listing.flatten() {
        let at = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let ours = name.starts_with(&prefix) && !name.starts_with(&streams);
        if ours && at != keep && !live.contains(&at.as_path()) {
            let _ = std::fs::remove_file(at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{DataPaths, StoreError, UserStore};
    use crate::protocol::{ContentHash, ErrorCode, UserId, WirePath};

    fn store(dir: &std::path::Path) -> UserStore {
        let paths = DataPaths {
            base: dir.to_path_buf(),
        };
        UserStore::open(&paths, &UserId([5; 16]), true, true)
            .expect("store")
            .0
    }

    /// Chunks written in any order (holes filled last, as for an edit) are
    /// checked without reading the file back, and the staged file holds
    /// exactly the bytes written; a wrong announced hash, or a write over
    /// bytes already written, is refused and leaves no file.
    #[test]
    fn a_build_is_checked_from_the_bytes_written() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = store(dir.path());
        let path = WirePath::new("big.bin").expect("path");
        let content = crate::chunk::test_bytes(5 * (1 << 20) + 777, 11);
        let hash = ContentHash::of(&content);
        let cuts = [
            0usize,
            70_000,
            1_500_000,
            2_600_000,
            4_000_000,
            content.len(),
        ];
        // Middle piece last: the hole of an edit.
        for order in [[0usize, 1, 3, 4, 2], [4, 3, 2, 1, 0]] {
            let build = store
                .begin_delta(&path, content.len() as u64, &hash, &[])
                .expect("begin");
            for &i in &order {
                let (a, b) = (cuts[i], cuts[i + 1]);
                build.write_at(&content[a..b], a as u64).expect("write");
            }
            assert_eq!(build.read_back_bytes(), 0, "order {order:?}");
            let staged = build.finish(hash).expect("right bytes");
            assert_eq!(staged.hash, hash);
            assert_eq!(std::fs::read(&staged.temp).expect("read"), content);
        }
        let partials = || std::fs::read_dir(&store.partial_dir).expect("dir").count();
        assert_eq!(partials(), 0);

        let build = store
            .begin_delta(&path, content.len() as u64, &hash, &[])
            .expect("begin");
        let mut wrong = content.clone();
        wrong[3_000_000] ^= 1;
        build.write_at(&wrong, 0).expect("write");
        let refused = build.finish(hash).err().map(|e| e.code());
        assert_eq!(refused, Some(ErrorCode::HashMismatch));
        assert_eq!(partials(), 0);

        let build = store
            .begin_delta(&path, content.len() as u64, &hash, &[])
            .expect("begin");
        build.write_at(&content, 0).expect("write");
        build.write_at(&content[10..20], 10).expect("write");
        assert!(matches!(build.finish(hash), Err(StoreError::Write { .. })));
        assert_eq!(partials(), 0);
    }

    /// A resumed build's chunks already in place were never written through
    /// `write_at`: their blocks are read back for the check, and bytes
    /// there that do not match are refused.
    #[test]
    fn blocks_not_written_are_read_back() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = store(dir.path());
        let path = WirePath::new("r.bin").expect("path");
        let content = crate::chunk::test_bytes(3 * (1 << 20) + 5, 12);
        let hash = ContentHash::of(&content);
        let build = store
            .begin_delta(&path, content.len() as u64, &hash, &[])
            .expect("begin");
        build.write_at(&content[..1 << 20], 0).expect("write");
        build.suspend();
        let build = store
            .begin_delta(&path, content.len() as u64, &hash, &[])
            .expect("again");
        assert!(build.resumed());
        build
            .write_at(&content[(1 << 20)..], 1 << 20)
            .expect("write");
        assert_eq!(build.read_back_bytes(), 1 << 20);
        let staged = build.finish(hash).expect("the kept block is read back");
        assert_eq!(std::fs::read(&staged.temp).expect("read"), content);
    }

    /// builds of one path in progress at once, of two contents or
    /// of the same one, in every order of starting and finishing: each has
    /// its own file, none is removed by another's start, each is checked
    /// and staged whole; a later upload of a third content removes only
    /// what an interrupted upload left, and a resume takes that leftover
    /// only when no upload in progress writes it.
    #[test]
    fn builds_of_one_path_at_once_keep_their_own_files() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = store(dir.path());
        let path = WirePath::new("big.bin").expect("path");
        let a = crate::chunk::test_bytes(1 << 20, 21);
        let b = crate::chunk::test_bytes((1 << 20) + 9, 22);
        let (ha, hb) = (ContentHash::of(&a), ContentHash::of(&b));
        for (second, h2) in [(&b, hb), (&a, ha)] {
            for finish_first in [0, 1] {
                let one = store
                    .begin_delta(&path, a.len() as u64, &ha, &[])
                    .expect("first");
                one.write_at(&a[..1000], 0).expect("write");
                let two = store
                    .begin_delta(&path, second.len() as u64, &h2, &[one.at()])
                    .expect("second");
                assert_ne!(one.at(), two.at());
                assert!(
                    one.at().exists(),
                    "the second start removed the first build"
                );
                one.write_at(&a[1000..], 1000).expect("write");
                two.write_at(second, 0).expect("write");
                let (x, y) = if finish_first == 0 {
                    let x = one.finish(ha).expect("first whole");
                    (x, two.finish(h2).expect("second whole"))
                } else {
                    let y = two.finish(h2).expect("second whole");
                    (one.finish(ha).expect("first whole"), y)
                };
                assert_eq!(std::fs::read(&x.temp).expect("read"), a);
                assert_eq!(&std::fs::read(&y.temp).expect("read"), second);
            }
        }
        // Interrupted: A left half its chunks; a resume while another
        // upload of A's content is writing A's leftover starts a new file.
        let one = store
            .begin_delta(&path, a.len() as u64, &ha, &[])
            .expect("begin");
        one.write_at(&a[..1 << 19], 0).expect("write");
        one.suspend();
        let taker = store
            .begin_delta(&path, a.len() as u64, &ha, &[])
            .expect("takes the leftover");
        assert!(taker.resumed());
        let again = store
            .begin_delta(&path, a.len() as u64, &ha, &[taker.at()])
            .expect("beside it");
        assert!(!again.resumed());
        assert!(taker.at().exists() && again.at().exists());
        again.suspend();
        // Another content: the leftover `again` goes, `taker` stays.
        let left = std::fs::read_dir(&store.partial_dir).expect("dir").count();
        assert_eq!(left, 2);
        let other = store
            .begin_delta(&path, b.len() as u64, &hb, &[taker.at()])
            .expect("other content");
        let names: Vec<_> = std::fs::read_dir(&store.partial_dir)
            .expect("dir")
            .map(|e| e.expect("entry").path())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(names.iter().any(|n| n == taker.at()));
        assert!(names.iter().any(|n| n == other.at()));
        taker.write_at(&a[1 << 19..], 1 << 19).expect("write");
        let staged = taker.finish(ha).expect("resumed build whole");
        assert_eq!(std::fs::read(&staged.temp).expect("read"), a);
    }

    /// A sparse file (zeros but for a few KiB) built from chunks is stored
    /// sparse: the zero chunks are not written, the staged file holds the
    /// exact bytes, and takes far less disk than its length. A leftover of
    /// the wrong length under the content's name is emptied first, so its
    /// bytes never show through an unwritten zero chunk.
    #[test]
    fn zero_chunks_of_a_new_build_stay_holes() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let store = store(dir.path());
        let path = WirePath::new("sparse.img").expect("path");
        let size = 64usize << 20;
        let mut content = vec![0u8; size];
        content[(40 << 20)..(40 << 20) + 4096].fill(0xab);
        let hash = ContentHash::of(&content);
        let at = store
            .partial_dir
            .join(crate::chunk::index::partial_name(&path, &hash));
        std::fs::write(&at, vec![0xffu8; 3 << 20]).expect("a damaged leftover");
        let build = store
            .begin_delta(&path, size as u64, &hash, &[])
            .expect("begin");
        assert!(!build.resumed());
        for (i, piece) in content.chunks(256 << 10).enumerate() {
            build
                .write_at(piece, (i * (256 << 10)) as u64)
                .expect("write");
        }
        let staged = build.finish(hash).expect("right bytes");
        assert!(std::fs::read(&staged.temp).expect("read") == content);
        let on_disk = std::fs::metadata(&staged.temp).expect("stat").blocks() * 512;
        assert!(
            on_disk < 4 << 20,
            "{on_disk} bytes on disk for a sparse 64 MiB file"
        );
    }
}
