//! Delta download of one file (PROTOCOL.md §13.4): the server's chunk list
//! first; the new version is built in the temporary area from the chunks
//! this device already has (the old version of the path, any other indexed
//! file, a partial download of the same content) and only the missing ones
//! are fetched; every chunk is re-hashed against the list, the whole file
//! against its hash, before the applier places it (a partial file is never
//! visible). The whole-file hash is computed from the bytes as they are
//! written ([`TreeHasher`]), so the built file is not read again: an edit
//! download reads the local copy once (each reused chunk, re-hashed as it
//! is copied) and writes the new file once. A download cut off (connection lost, either side killed) keeps
//! its verified chunks in the state folder's `partial/` area under a name
//! given by the path and the content hash; the next download of the same
//! content takes them from there and fetches only the rest. A chunk of
//! zeros is punched out of the build, not written
//! ([`super::fetch_sparse`]): a sparse file stays sparse here as on the
//! server.
//!
//! [`DeltaDownload`] is driven by [`super::pull::PullJob`], which keeps the
//! replies in request order; this file decides what each frame means and
//! does the file I/O of one download.

use super::applier::FetchJob;
use super::error::ClientError;
use super::fetch_sparse::write_chunk;
use crate::chunk::index::{
    drop_other_partials, fill_from_index, fill_in_place, partial_name, ChunkIndex,
};
use crate::chunk::tree_hash::{TreeHashError, TreeHasher, BLOCK_LEN};
use crate::chunk::{
    AssemblyError, AssemblyPlan, ChunkEntry, IdLen, Manifest, ManifestReceiver, MIN_CHUNK,
};
use crate::protocol::list_delta::expand;
use crate::protocol::{
    ChunkData, ChunkListDelta, ChunkRange, ChunkRanges, ContentHash, FileManifest, WirePath,
};
use crate::writeback::{start_writeback, Writeback};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Largest file fetched as chunks: 16 GiB. Above it a list of minimum-size
/// chunks could pass the protocol's 1,048,576 (§13.4), so it goes whole.
pub const MAX_DELTA_FETCH: u64 = 16 << 30;

/// Whether a file of `size` bytes is downloaded as a delta: larger than one
/// minimum chunk (smaller files gain nothing and would cost a round trip)
/// and at most [`MAX_DELTA_FETCH`].
pub fn wants_delta(size: u64) -> bool {
    size > u64::from(MIN_CHUNK) && size <= MAX_DELTA_FETCH
}

/// Files from this size on that come whole (a Fetch: the folder has
/// nothing to reuse) are written into the partial area, so that a cut-off
/// download resumes where it stopped, as a delta download (R-13.5.4,
/// [`super::fetch_partial`]). Until 2026-12-03 they were delta downloads
/// from the start, which cost a 1 GiB first download 0.47 MB of chunk list
/// and ChunkData headers and one round trip more than a Fetch.
pub const RESUMABLE: u64 = 8 << 20;

/// Blocks of the whole-file hash buffered at once per download (8 MiB with
/// 1 MiB blocks; at most four downloads are open, R-13.4.4). A download
/// filled front to back (the usual case: local chunks in list order, then
/// the fetched ones in order) keeps one or two open; past this bound blocks
/// are read back at the end instead ([`TreeHasher`]).
const HASH_BLOCKS: usize = 8;

/// The runs of `manifest`'s chunks that `plan` still misses and `index`
/// does not locate (with the chunk's length) in this device's files: what
/// a download asks the server for before it copies anything local.
fn not_located(manifest: &Manifest, plan: &AssemblyPlan, index: &ChunkIndex) -> Vec<ChunkRange> {
    let mut runs: Vec<ChunkRange> = Vec::new();
    for (i, c) in manifest.chunks.iter().enumerate() {
        let here = index.locate(&c.id).is_some_and(|at| at.len == c.len);
        if here || !plan.wants(&c.id) {
            continue;
        }
        let i = i as u32;
        match runs.last_mut() {
            Some(r) if r.first + r.count == i => r.count += 1,
            _ => runs.push(ChunkRange { first: i, count: 1 }),
        }
    }
    runs
}

/// A protocol violation by the server in a delta download.
fn violation(what: impl Into<String>) -> ClientError {
    ClientError::Protocol(what.into())
}

/// One delta download, from the `FileManifest` to the `FileEnd`.
#[derive(Debug)]
pub struct DeltaDownload {
    /// The file asked for.
    pub job: FetchJob,
    /// The list form asked for: `ChunkList` or `ShortChunkList` (§13.6).
    id_len: IdLen,
    /// The list of the content this device holds at the path, named in a
    /// `FetchManifestSince` (§13.7): what a `ChunkListDelta` answer refers to.
    base: Option<Manifest>,
    stage: Stage,
}

#[derive(Debug)]
enum Stage {
    /// `FetchManifest` sent; nothing received.
    Asked,
    /// `FileManifest` in, `ChunkList` frames arriving.
    Listing {
        header: FileManifest,
        receiver: ManifestReceiver,
    },
    /// The list is in: the file is being built.
    Building(Box<Building>),
}

#[derive(Debug)]
struct Building {
    header: FileManifest,
    manifest: Manifest,
    plan: AssemblyPlan,
    /// The file being built, `size` bytes long.
    file: File,
    /// Where it is (in the partial area).
    at: PathBuf,
    /// Where it goes once verified (in the temporary area).
    tmp: PathBuf,
    /// The runs asked for, and the position of the next `ChunkData`.
    asked: Vec<ChunkRange>,
    run: usize,
    within: u32,
    /// Bytes taken from this device's files (and a partial build).
    reused: u64,
    /// The chunks the folder's chunk index locates are still to be copied
    /// ([`DeltaDownload::fill`]): asked first, filled while the rest travel.
    local_pending: bool,
    /// The whole-file hash of what was written ([`TreeHasher`]).
    hasher: TreeHasher,
    /// When this build began: the modification time the verified file is
    /// given ([`DeltaDownload::finish`]).
    began: SystemTime,
    /// When to start writing the fetched chunks out to disk, so the fsync
    /// in [`DeltaDownload::finish`] finds little left ([`crate::writeback`]).
    writeback: Writeback,
}

/// What a finished download leaves: the verified file to place.
#[derive(Debug)]
pub struct Built {
    /// The verified file in the temporary area.
    pub tmp: PathBuf,
    /// Its content hash.
    pub hash: ContentHash,
    /// The version the server sent.
    pub version: u64,
    /// Bytes taken from this device's files rather than the wire.
    pub reused: u64,
    /// The chunk list it was built from (verified with the whole file):
    /// what the folder's chunk index records for the placed file.
    pub manifest: Manifest,
    /// Bytes read back from the built file for the whole-file check (blocks
    /// not written whole here: a resumed build's chunks in place).
    pub read_back: u64,
}

/// Where a download finds chunks it already has.
pub struct Sources<'a> {
    /// The synced folder.
    pub root: &'a Path,
    /// The folder's chunk index (brought up to date by the caller).
    pub index: &'a ChunkIndex,
    /// The temporary area, where the verified file waits to be placed.
    pub tmp: &'a Path,
    /// The partial area, where the file is built (kept across runs).
    pub partial: &'a Path,
    /// Files the same pull deleted, kept in the temporary area as chunk
    /// sources: the chunk index names each by its old folder
    /// path, opened here at its place in the temporary area instead.
    pub donors: &'a [(WirePath, PathBuf)],
}

impl Sources<'_> {
    /// Opens the file the chunk index names `path`: a donor, or the
    /// folder's file. `None` when it cannot be opened (its chunks are then
    /// asked for).
    fn open(&self, path: &WirePath) -> Option<File> {
        let at = self
            .donors
            .iter()
            .find(|(p, _)| p == path)
            .map_or_else(|| self.root.join(path.as_str()), |(_, at)| at.clone());
        File::open(at).ok()
    }
}

impl DeltaDownload {
    /// A download of `job` whose `FetchManifest` ([`IdLen::Full`]) or
    /// `FetchShortManifest` ([`IdLen::Short`]) was just sent.
    pub fn new(job: FetchJob, id_len: IdLen) -> DeltaDownload {
        DeltaDownload {
            job,
            id_len,
            base: None,
            stage: Stage::Asked,
        }
    }

    /// A download of `job` whose `FetchManifestSince` named
    /// `base`, the list of the content this device holds at the path: the
    /// answer is a `ChunkListDelta` against it or a `ShortChunkList`.
    pub fn since(job: FetchJob, base: Manifest) -> DeltaDownload {
        DeltaDownload {
            job,
            id_len: IdLen::Short,
            base: Some(base),
            stage: Stage::Asked,
        }
    }

    /// The list form asked for.
    pub fn id_len(&self) -> IdLen {
        self.id_len
    }

    /// The `FileManifest` (R).
    ///
    /// # Errors
    /// `Protocol` when it names another path, comes twice, or announces a
    /// list no honest file has (R-13.2.1: checked before any entry).
    pub fn on_header(&mut self, header: FileManifest) -> Result<(), ClientError> {
        if !matches!(self.stage, Stage::Asked) || header.path != self.job.path {
            return Err(violation(format!(
                "FileManifest for {} while {} was asked",
                header.path, self.job.path
            )));
        }
        let receiver = ManifestReceiver::new(header.size, header.hash, header.chunk_count)
            .map_err(|e| violation(format!("{}: {e}", header.path)))?;
        self.stage = Stage::Listing { header, receiver };
        Ok(())
    }

    /// One `ChunkList` (R) frame ([`IdLen::Full`]) or `ShortChunkList` (R)
    /// frame ([`IdLen::Short`], its entries as [`IdLen::cut`] holds them).
    ///
    /// # Errors
    /// `Protocol` outside a list, past the announced count, or in the form
    /// not asked for.
    pub fn on_list(&mut self, entries: &[ChunkEntry], id_len: IdLen) -> Result<(), ClientError> {
        if id_len != self.id_len {
            return Err(violation(format!(
                "{}: a {id_len:?} chunk list when {:?} was asked",
                self.job.path, self.id_len
            )));
        }
        match &mut self.stage {
            Stage::Listing { receiver, .. } => receiver
                .push_ids(entries, id_len)
                .map_err(|e| violation(format!("{}: {e}", self.job.path))),
            _ => Err(violation("ChunkList outside a chunk list")),
        }
    }

    /// A `ChunkListDelta` (R) answering a `FetchManifestSince`:
    /// the whole list, as runs of the base list named in the request and
    /// new entries (16-byte IDs), expanded against that base.
    ///
    /// # Errors
    /// `Protocol` when no base was named, the delta is against another
    /// content, it is not the first and only list frame, or it leaves the
    /// base list or describes another count than the FileManifest's
    /// (nothing is built, the download is discarded).
    pub fn on_list_delta(&mut self, delta: &ChunkListDelta) -> Result<(), ClientError> {
        let path = &self.job.path;
        let Some(base) = self.base.as_ref() else {
            return Err(violation(format!(
                "{path}: a ChunkListDelta answering a download that named no base"
            )));
        };
        if delta.base_hash != base.hash {
            return Err(violation(format!(
                "{path}: a ChunkListDelta against another content than the one named"
            )));
        }
        match &mut self.stage {
            Stage::Listing { header, receiver } if receiver.received() == 0 => {
                let entries = expand(&base.chunks, &delta.ops, header.chunk_count)
                    .map_err(|e| violation(format!("{path}: {e}")))?;
                receiver
                    .push_ids(&entries, IdLen::Short)
                    .map_err(|e| violation(format!("{path}: {e}")))
            }
            _ => Err(violation(format!(
                "{path}: a ChunkListDelta that is not the whole chunk list"
            ))),
        }
    }

    /// True once the whole list has arrived (and building has not begun).
    pub fn listed(&self) -> bool {
        matches!(&self.stage, Stage::Listing { receiver, .. } if receiver.is_complete())
    }

    /// [`Self::ask`] then [`Self::fill`]: the frames to send, once the
    /// local chunks are in.
    ///
    /// # Errors
    /// As [`Self::ask`] and [`Self::fill`].
    pub fn build(
        &mut self,
        sources: &Sources<'_>,
        name: &str,
    ) -> Result<Vec<ChunkRanges>, ClientError> {
        let frames = self.ask(sources, name)?;
        self.fill(sources)?;
        Ok(frames)
    }

    /// The list is complete: validates it, creates the file in the
    /// temporary area, and returns the `FetchChunks` frames to send (the
    /// last with `last` = 1): every chunk the folder's chunk index does not
    /// locate. Nothing is read here (BENCHMARKS.md "WAN misses", plan item
    /// 2: a 256 MiB build was filled for 0.71 s before its request left),
    /// so the caller sends them and then calls [`Self::fill`] while they
    /// travel. A located chunk that fails its re-hash in the fill cannot be
    /// asked in this download (R-13.4.3: runs increase, and the `last`
    /// frame is sent); [`Self::local_chunks_failed`] tells, and the caller
    /// downloads the file again, which resumes this build. A resumed build
    /// (its partial file already of the size) is filled here first, as its
    /// chunks in place are known only by reading them.
    ///
    /// # Errors
    /// `Protocol` for a list that breaks; I/O errors of the
    /// temporary file.
    pub fn ask(
        &mut self,
        sources: &Sources<'_>,
        name: &str,
    ) -> Result<Vec<ChunkRanges>, ClientError> {
        let Stage::Listing { header, receiver } = std::mem::replace(&mut self.stage, Stage::Asked)
        else {
            return Err(violation("chunk list not complete"));
        };
        let manifest = receiver
            .finish()
            .map_err(|e| violation(format!("{}: {e}", header.path)))?;
        let plan =
            AssemblyPlan::new(&manifest).map_err(|e| violation(format!("{}: {e}", header.path)))?;
        let tmp = sources.tmp.join(name);
        let partial = partial_name(&header.path, &header.hash);
        drop_other_partials(sources.partial, &header.path, &partial);
        let at = sources.partial.join(partial);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&at)
            .map_err(|e| ClientError::io("create download file", e))?;
        let before = file.metadata().map(|m| m.len()).unwrap_or(0);
        if let Err(e) = file.set_len(manifest.size) {
            // A build that cannot be written goes, resumable chunks with it:
            // kept, it would hold the full disk.
            let _ = fs::remove_file(&at);
            return Err(ClientError::io("size download file", e));
        }
        let began = SystemTime::now();
        let hasher = TreeHasher::with_blocks(manifest.size, BLOCK_LEN, HASH_BLOCKS);
        let mut building = Box::new(Building {
            header,
            manifest,
            plan,
            file,
            at,
            tmp,
            asked: Vec::new(),
            run: 0,
            within: 0,
            reused: 0,
            local_pending: false,
            hasher,
            began,
            writeback: Writeback::default(),
        });
        let open = |p: &WirePath| sources.open(p);
        let Building {
            file,
            hasher,
            manifest,
            plan,
            header,
            ..
        } = &mut *building;
        let target = &*file;
        let mut write = |bytes: &[u8], offsets: &[u64]| -> io::Result<()> {
            offsets.iter().try_for_each(|&o| {
                write_chunk(target, bytes, o)?;
                hasher.write(o, bytes);
                Ok(())
            })
        };
        let resuming = before == manifest.size && before > 0;
        let resumed = if resuming {
            fill_in_place(target, manifest, plan, &mut write)
        } else {
            Ok(0)
        };
        let filled = resumed.and_then(|resumed| match resuming {
            true => fill_from_index(sources.index, plan, open, &mut write).map(|r| (resumed, r)),
            false => Ok((resumed, 0)),
        });
        let (resumed, reused) = match filled {
            Ok(both) => both,
            Err(e) => {
                let _ = fs::remove_file(&building.at);
                return Err(ClientError::io("write download file", e));
            }
        };
        if resumed > 0 {
            log::info!(
                "resuming the download of {}: {resumed} bytes already here",
                header.path
            );
        }
        building.reused = resumed + reused;
        building.asked = match resuming {
            true => building.plan.missing_ranges(),
            false => not_located(&building.manifest, &building.plan, sources.index),
        };
        building.local_pending = !resuming;
        let frames = ChunkRanges::split(&building.asked);
        self.stage = Stage::Building(building);
        Ok(frames)
    }

    /// Copies into the build every chunk [`Self::ask`] left to this
    /// device's files, each re-hashed as it is copied ([`fill_from_index`]:
    /// one that no longer matches is not taken). Does nothing the second
    /// time, or for a resumed build (filled by [`Self::ask`]).
    ///
    /// # Errors
    /// I/O errors writing the build: the build is removed.
    pub fn fill(&mut self, sources: &Sources<'_>) -> Result<(), ClientError> {
        let Stage::Building(b) = &mut self.stage else {
            return Ok(());
        };
        if !std::mem::take(&mut b.local_pending) {
            return Ok(());
        }
        let open = |p: &WirePath| sources.open(p);
        let Building {
            file, hasher, plan, ..
        } = &mut **b;
        let target = &*file;
        let mut write = |bytes: &[u8], offsets: &[u64]| -> io::Result<()> {
            offsets.iter().try_for_each(|&o| {
                write_chunk(target, bytes, o)?;
                hasher.write(o, bytes);
                Ok(())
            })
        };
        match fill_from_index(sources.index, plan, open, &mut write) {
            Ok(reused) => {
                b.reused += reused;
                Ok(())
            }
            Err(e) => {
                let _ = fs::remove_file(&b.at);
                Err(ClientError::io("write download file", e))
            }
        }
    }

    /// True when every chunk asked has arrived and the build still misses
    /// chunks: ones the chunk index located here that failed their re-hash
    /// in [`Self::fill`] (the local file changed since it was indexed).
    /// The caller then [`Self::suspend`]s this download and asks for the
    /// file again: the next build resumes from this one's verified chunks
    /// and fetches the rest.
    pub fn local_chunks_failed(&self) -> bool {
        match &self.stage {
            Stage::Building(b) => b.run >= b.asked.len() && !b.plan.is_complete(),
            _ => false,
        }
    }

    /// Bytes still to come over the wire (what was asked for).
    pub fn missing_bytes(&self) -> u64 {
        match &self.stage {
            Stage::Building(b) => b.plan.missing_bytes(),
            _ => self.job.size,
        }
    }

    /// One `ChunkData` (R): it must be the next index asked, with that
    /// entry's length and BLAKE3. Returns its length.
    ///
    /// # Errors
    /// `Protocol` for an index not asked or not next, or bytes of another
    /// length; `DamagedChunk` for bytes of the chunk's length but not its
    /// BLAKE3 (the server's copy is damaged, R-13.4.2): nothing is written
    /// and the caller drops the download, keeping the chunks verified so
    /// far; I/O errors.
    pub fn on_chunk(&mut self, chunk: &ChunkData) -> Result<u64, ClientError> {
        let Stage::Building(b) = &mut self.stage else {
            return Err(violation("ChunkData before the chunk list"));
        };
        let expected = b.asked.get(b.run).map(|r| r.first + b.within);
        if expected != Some(chunk.index) {
            return Err(violation(format!(
                "{}: ChunkData {} when {expected:?} was next",
                b.header.path, chunk.index
            )));
        }
        let Some(entry) = b.manifest.chunks.get(chunk.index as usize).copied() else {
            return Err(violation("ChunkData index outside the list"));
        };
        let offsets = b.plan.fill(&entry.id, &chunk.data).map_err(|e| {
            let what = format!("{}: {e}", b.header.path);
            match e {
                AssemblyError::HashMismatch(_) => ClientError::DamagedChunk(what),
                _ => violation(what),
            }
        })?;
        for &o in offsets {
            // On an error the caller discards the build.
            write_chunk(&b.file, &chunk.data, o)
                .map_err(|e| ClientError::io("write download file", e))?;
            b.hasher.write(o, &chunk.data);
        }
        let written = chunk.data.len() as u64 * offsets.len() as u64;
        if b.writeback.wrote(written) {
            // Only starts writes the fsync of `finish` would do; if it
            // fails, that fsync still does them (and reports their error).
            if let Err(e) = start_writeback(&b.file) {
                log::debug!("{}: starting the write-out: {e}", b.header.path);
            }
        }
        b.within += 1;
        if b.asked.get(b.run).is_some_and(|r| b.within >= r.count) {
            b.run += 1;
            b.within = 0;
        }
        Ok(chunk.data.len() as u64)
    }

    /// `FileEnd` (R): every chunk in place and the whole file hashing to the
    /// announced hash: the hash of the bytes as they were written
    /// ([`TreeHasher`]; only blocks not written whole here, a resumed
    /// build's chunks in place, are read back), so what is placed is what
    /// was checked.
    ///
    /// # Errors
    /// `Protocol` when chunks are missing (the server ended early); a
    /// whole-file mismatch is `Ok(None)`: the file is discarded and fetched
    /// again later.
    pub fn finish(self) -> Result<Option<Built>, ClientError> {
        let Stage::Building(b) = self.stage else {
            return Err(violation("FileEnd before the chunk list"));
        };
        let b = *b;
        if !b.plan.is_complete() {
            let _ = fs::remove_file(&b.at);
            return Err(violation(format!(
                "{}: FileEnd with {} bytes of chunks missing",
                b.header.path,
                b.plan.missing_bytes()
            )));
        }
        // Checked where it was built, and moved to `tmp` only once it
        // matches: a file that fails the check never leaves `partial/`
        // (where it is removed below), so nothing unverified is placed.
        let read_back = b.hasher.read_back_bytes();
        let file = &b.file;
        // The file's mtime becomes the moment the build began, set after
        // the last write and before the sync. A write after this (by
        // anyone, before or after the placement) sets the mtime to the
        // clock's present, which differs, so the placement's record is
        // trusted at once when the build began more than the racy window
        // ago (`detect::seal_placed_at`). With the mtime of the last write
        // the file was always placed racy, and the next look read, chunked
        // and hashed it whole again: 4.2 s after a 1 GiB download over a
        // 100 Mbit/s link, on a --once run's critical path (benches/wan.sh,
        // 2026-12-02). Not setting it loses only that: it is not fatal.
        if let Err(e) = file.set_modified(b.began) {
            log::debug!(
                "{}: could not set the modification time: {e}",
                b.header.path
            );
        }
        let whole = file
            .sync_all()
            .map_err(|e| ClientError::io("sync download file", e))
            .and_then(|()| {
                let size = file
                    .metadata()
                    .map_err(|e| ClientError::io("read download file", e))?
                    .len();
                let hash = b.hasher.finish(|at, buf| file.read_exact_at(buf, at));
                match hash {
                    Ok(hash) => Ok(Some((hash, size))),
                    // A write past the end or twice at the same bytes: what
                    // was hashed is not the file; fetched again.
                    Err(TreeHashError::BadWrite { .. }) => Ok(None),
                    Err(TreeHashError::Read(e)) => Err(ClientError::io("read download file", e)),
                }
            });
        match whole {
            Ok(Some((hash, size))) if hash == b.header.hash && size == b.header.size => {
                if let Err(e) = fs::rename(&b.at, &b.tmp) {
                    let _ = fs::remove_file(&b.at);
                    return Err(ClientError::io("place download file", e));
                }
                // A list of short IDs (§13.6) is recorded with the whole
                // IDs learnt from the checked bytes (the index keeps whole
                // IDs; a list it cannot complete is not recorded).
                let manifest = match b.manifest.id_len {
                    IdLen::Full => b.manifest,
                    IdLen::Short => b.plan.full_manifest(&b.manifest).unwrap_or(b.manifest),
                };
                Ok(Some(Built {
                    tmp: b.tmp,
                    hash,
                    version: b.header.version,
                    reused: b.reused,
                    manifest,
                    read_back,
                }))
            }
            Ok(_) => {
                log::warn!("delta download of {} failed verification", b.header.path);
                let _ = fs::remove_file(&b.at);
                Ok(None)
            }
            Err(e) => {
                let _ = fs::remove_file(&b.at);
                Err(e)
            }
        }
    }

    /// Drops the download and its file (what it holds cannot be trusted).
    pub fn discard(self) {
        if let Stage::Building(b) = self.stage {
            let _ = fs::remove_file(&b.at);
        }
    }

    /// Drops the download but keeps its file, whose chunks were each
    /// verified, for the next download of the same content (a resume).
    pub fn suspend(self) {}
}

#[cfg(test)]
mod tests {
    //! The download against a hostile server, frame by frame: every lie
    //! is a protocol error or a discarded file, and nothing appears in the
    //! folder; an honest exchange builds the file from local chunks plus
    //! exactly the missing ones.

    use super::*;
    use crate::chunk::{chunk_reader, manifest_of_reader, test_bytes};
    use crate::client::fsutil::Local;

    struct Rig {
        _dir: tempfile::TempDir,
        root: PathBuf,
        tmp: PathBuf,
        partial: PathBuf,
        index: ChunkIndex,
    }

    impl Rig {
        /// A folder holding `local` as `old.bin`, indexed.
        fn new(local: &[u8]) -> Rig {
            let dir = tempfile::tempdir().expect("temp dir");
            std::fs::create_dir_all(dir.path().join("root")).expect("root");
            std::fs::create_dir_all(dir.path().join("tmp")).expect("tmp");
            std::fs::create_dir_all(dir.path().join("partial")).expect("partial");
            std::fs::write(dir.path().join("root/old.bin"), local).expect("write");
            let mut index = ChunkIndex::default();
            let old = WirePath::new("old.bin").expect("path");
            index.record(&old, &manifest_of_reader(local).expect("read"));
            Rig {
                root: dir.path().join("root"),
                tmp: dir.path().join("tmp"),
                partial: dir.path().join("partial"),
                _dir: dir,
                index,
            }
        }

        fn sources(&self) -> Sources<'_> {
            Sources {
                root: self.root(),
                index: &self.index,
                tmp: self.tmp(),
                partial: &self.partial,
                donors: &[],
            }
        }

        fn root(&self) -> &Path {
            &self.root
        }

        fn tmp(&self) -> &Path {
            &self.tmp
        }

        /// Nothing left in the temporary area, the folder only `old.bin`.
        fn clean(&self) -> bool {
            let tmp = std::fs::read_dir(self.tmp()).expect("tmp").count();
            let partial = std::fs::read_dir(&self.partial).expect("partial").count();
            let root = std::fs::read_dir(self.root()).expect("root").count();
            tmp == 0 && partial == 0 && root == 1
        }
    }

    fn job(content: &[u8]) -> FetchJob {
        FetchJob {
            carried: None,
            path: WirePath::new("new.bin").expect("path"),
            version: 3,
            size: content.len() as u64,
            hash: ContentHash::of(content),
            expect: Local::Absent,
            exec: None,
        }
    }

    fn header(m: &Manifest, path: &str) -> FileManifest {
        FileManifest {
            version: 3,
            size: m.size,
            hash: m.hash,
            chunk_count: m.chunks.len() as u32,
            path: WirePath::new(path).expect("path"),
        }
    }

    /// Runs an honest download of `target` with `local` on disk, with a
    /// list of 32-byte IDs and again of 16-byte IDs (§13.6), which must
    /// come out the same: returns the built bytes and the chunk bytes that
    /// had to be fetched.
    fn honest(local: &[u8], target: &[u8]) -> (Vec<u8>, u64) {
        let full = honest_with(local, target, IdLen::Full);
        let short = honest_with(local, target, IdLen::Short);
        assert!(full == short, "short IDs build otherwise");
        full
    }

    fn honest_with(local: &[u8], target: &[u8], id_len: IdLen) -> (Vec<u8>, u64) {
        let rig = Rig::new(local);
        let (bytes, fetched, _) = honest_in(&rig, target, id_len);
        (bytes, fetched)
    }

    /// Builds the listed download `d` from `rig`'s folder and answers its
    /// FetchChunks honestly with `target`'s chunks; the chunk bytes fed.
    fn build_and_feed(d: &mut DeltaDownload, rig: &Rig, target: &[u8]) -> u64 {
        // In the client's order: asked, then filled while chunks travel.
        let frames = d.ask(&rig.sources(), "x").expect("ask");
        d.fill(&rig.sources()).expect("fill");
        let chunks: Vec<Vec<u8>> = chunk_reader(target).map(|c| c.expect("read").1).collect();
        let mut fetched = 0;
        for f in frames {
            for r in f.ranges {
                for index in r.first..r.first + r.count {
                    let data = chunks[index as usize].clone();
                    fetched += data.len() as u64;
                    d.on_chunk(&ChunkData { index, data })
                        .expect("honest chunk");
                }
            }
        }
        fetched
    }

    /// [`honest`] in a given folder, with what `finish` returned. As the
    /// pull job does, a download whose local chunks failed their re-hash
    /// while copied is asked again once (it resumes the build).
    fn honest_in(rig: &Rig, target: &[u8], id_len: IdLen) -> (Vec<u8>, u64, Built) {
        let m = manifest_of_reader(target).expect("read");
        let listed = || {
            let mut d = DeltaDownload::new(job(target), id_len);
            d.on_header(header(&m, "new.bin")).expect("header");
            for part in m.chunks.chunks(7) {
                let part: Vec<ChunkEntry> = part
                    .iter()
                    .map(|c| ChunkEntry {
                        len: c.len,
                        id: id_len.cut(c.id),
                    })
                    .collect();
                d.on_list(&part, id_len).expect("list");
            }
            assert!(d.listed() || m.chunks.is_empty());
            d
        };
        let mut d = listed();
        let mut fetched = build_and_feed(&mut d, rig, target);
        if d.local_chunks_failed() {
            d.suspend();
            d = listed();
            fetched += build_and_feed(&mut d, rig, target);
        }
        let built = d.finish().expect("finish").expect("verified");
        let bytes = std::fs::read(&built.tmp).expect("built");
        std::fs::remove_file(&built.tmp).expect("placed elsewhere");
        (bytes, fetched, built)
    }

    /// A verified download's mtime is the moment its build began, so a
    /// download that took longer than the racy window is placed with a
    /// record the next look trusts (no second read of the whole file), and
    /// a later write is still seen. Before: the mtime of the last chunk
    /// written, always racy at placement (a 1 GiB download was read, chunked
    /// and hashed again after --once had it placed: 4.2 s over a 100 Mbit/s
    /// link, benches/wan.sh 2026-12-02).
    #[test]
    fn a_download_longer_than_the_racy_window_is_placed_trusted() {
        use crate::client::detect::{is_trusted, judge, seal_placed_at, Verdict, RACY_WINDOW};
        use crate::client::fsutil::{now_ns, Stat};
        let target = test_bytes(2 << 20, 611);
        let stat_of = |path: &Path| Stat::of(&fs::metadata(path).expect("stat"));
        for slow in [true, false] {
            let rig = Rig::new(&test_bytes(1 << 20, 612));
            let m = manifest_of_reader(&target[..]).expect("read");
            let mut d = DeltaDownload::new(job(&target), IdLen::Full);
            d.on_header(header(&m, "new.bin")).expect("header");
            let list: Vec<ChunkEntry> = m
                .chunks
                .iter()
                .map(|c| ChunkEntry {
                    len: c.len,
                    id: c.id,
                })
                .collect();
            d.on_list(&list, IdLen::Full).expect("list");
            let before = SystemTime::now();
            let frames = d.build(&rig.sources(), "x").expect("build");
            if slow {
                // The chunks arrive over a slow link.
                std::thread::sleep(RACY_WINDOW + std::time::Duration::from_millis(100));
            }
            let chunks: Vec<Vec<u8>> = chunk_reader(&target[..])
                .map(|c| c.expect("read").1)
                .collect();
            for f in frames {
                for r in f.ranges {
                    for index in r.first..r.first + r.count {
                        let data = chunks[index as usize].clone();
                        d.on_chunk(&ChunkData { index, data })
                            .expect("honest chunk");
                    }
                }
            }
            let built = d.finish().expect("finish").expect("verified");
            assert_eq!(fs::read(&built.tmp).expect("built"), target);
            let mtime = fs::metadata(&built.tmp)
                .and_then(|m| m.modified())
                .expect("mtime");
            assert!(
                mtime >= before,
                "slow {slow}: the build's own start, not older"
            );
            let placed = rig.root.join("new.bin");
            let staged = stat_of(&built.tmp);
            fs::rename(&built.tmp, &placed).expect("place");
            let record = seal_placed_at(stat_of(&placed), Some(staged), now_ns());
            // Slow: trusted at once. Fast: the build began within the
            // window, so the record is racy and hashed at the next look.
            assert_eq!(is_trusted(&record), slow, "slow {slow}: {record:?}");
            // A write after the placement, even of the same size, is seen.
            fs::write(&placed, test_bytes(2 << 20, 613)).expect("rewrite");
            assert_ne!(
                judge(&record, &stat_of(&placed)),
                Verdict::Unchanged,
                "slow {slow}"
            );
        }
    }

    /// A download asked with FetchManifestSince: an honest
    /// ChunkListDelta against the named base builds the new content from
    /// local chunks plus the missing ones; a delta against another content,
    /// one with a run past the base, one describing another count, one
    /// after part of the list, or one answering a download that named no
    /// base is a protocol error, and nothing is built.
    #[test]
    fn a_list_delta_against_the_held_content_builds_and_lies_are_errors() {
        use crate::protocol::list_delta::diff;
        use crate::protocol::ListOp;
        let old = test_bytes(3 << 20, 501);
        let mut new = old.clone();
        new[1 << 20..(1 << 20) + 200_000].copy_from_slice(&test_bytes(200_000, 502));
        let (om, nm) = (
            manifest_of_reader(&old[..]).expect("read"),
            manifest_of_reader(&new[..]).expect("read"),
        );
        let honest = ChunkListDelta {
            base_hash: om.hash,
            ops: diff(&om.chunks, &nm.chunks),
        };
        assert!(honest.ops.len() < nm.chunks.len(), "a delta, not the list");
        let rig = Rig::new(&old);
        let mut d = DeltaDownload::since(job(&new), om.clone());
        d.on_header(header(&nm, "new.bin")).expect("header");
        d.on_list_delta(&honest).expect("honest delta");
        assert!(d.listed());
        let fetched = build_and_feed(&mut d, &rig, &new);
        let built = d.finish().expect("finish").expect("verified");
        assert!(std::fs::read(&built.tmp).expect("built") == new);
        std::fs::remove_file(&built.tmp).expect("placed elsewhere");
        assert!(
            fetched < 600_000,
            "{fetched} bytes fetched for a 200 KB edit"
        );

        let other = ChunkListDelta {
            base_hash: ContentHash::of(b"another content"),
            ..honest.clone()
        };
        let past = ChunkListDelta {
            base_hash: om.hash,
            ops: vec![ListOp::Copy {
                first: 0,
                count: om.chunks.len() as u32 + 1,
            }],
        };
        let short_count = ChunkListDelta {
            base_hash: om.hash,
            ops: vec![ListOp::Copy { first: 0, count: 1 }],
        };
        for lie in [&other, &past, &short_count] {
            let mut d = DeltaDownload::since(job(&new), om.clone());
            d.on_header(header(&nm, "new.bin")).expect("header");
            assert!(
                matches!(d.on_list_delta(lie), Err(ClientError::Protocol(_))),
                "{lie:?}"
            );
            assert!(!d.listed());
        }
        // After part of the list, and for a download that named no base.
        let mut d = DeltaDownload::since(job(&new), om.clone());
        d.on_header(header(&nm, "new.bin")).expect("header");
        let first: Vec<ChunkEntry> = nm.chunks[..1]
            .iter()
            .map(|c| ChunkEntry {
                len: c.len,
                id: IdLen::Short.cut(c.id),
            })
            .collect();
        d.on_list(&first, IdLen::Short).expect("part of the list");
        assert!(d.on_list_delta(&honest).is_err());
        let mut d = DeltaDownload::new(job(&new), IdLen::Short);
        d.on_header(header(&nm, "new.bin")).expect("header");
        assert!(d.on_list_delta(&honest).is_err());
    }

    /// Ask first, fill while the chunks travel (WAN misses plan item 2):
    /// the FetchChunks are ready before a byte of the local file is read,
    /// and name exactly the chunks the index cannot locate; a local file
    /// edited between the ask and the fill gives no wrong byte: its changed
    /// chunks are not taken, the download says so once the asked chunks are
    /// in, and the next download of the content resumes this build and
    /// fetches exactly those chunks.
    #[test]
    fn asked_before_the_fill_and_a_local_edit_during_the_fill_is_fetched_not_taken() {
        let old = test_bytes(3 << 20, 31);
        let mut new = old.clone();
        new[1_500_000..1_560_000].copy_from_slice(&test_bytes(60_000, 32));
        let m = manifest_of_reader(&new[..]).expect("read");
        let chunks: Vec<Vec<u8>> = chunk_reader(&new[..]).map(|c| c.expect("read").1).collect();
        let asked_of = |frames: &[ChunkRanges]| -> Vec<u32> {
            frames
                .iter()
                .flat_map(|f| f.ranges.iter().flat_map(|r| r.first..r.first + r.count))
                .collect()
        };
        let rig = Rig::new(&old);
        let mut d = DeltaDownload::new(job(&new), IdLen::Full);
        d.on_header(header(&m, "new.bin")).expect("header");
        d.on_list(&m.chunks, IdLen::Full).expect("list");
        let frames = d.ask(&rig.sources(), "x").expect("ask");
        let asked = asked_of(&frames);
        let built_so_far = fs::read(
            rig.partial
                .read_dir()
                .expect("partial")
                .next()
                .expect("build")
                .expect("entry")
                .path(),
        )
        .expect("read build");
        assert!(
            built_so_far.iter().all(|&b| b == 0),
            "nothing copied before the ask"
        );
        let edited: Vec<u32> = (0..m.chunks.len() as u32)
            .filter(|i| rig.index.locate(&m.chunks[*i as usize].id).is_none())
            .collect();
        assert_eq!(asked, edited, "exactly the chunks not found here");
        assert!(asked.len() < m.chunks.len() / 2, "{asked:?}");
        // The user edits the local file now, inside two chunks that the
        // index locates there (one before the edit, one after it).
        let mut changed = old.clone();
        for at in [200_000, 2_800_000] {
            changed[at] ^= 0x5a;
        }
        fs::write(rig.root().join("old.bin"), &changed).expect("edit");
        d.fill(&rig.sources()).expect("fill");
        for &index in &asked {
            let data = chunks[index as usize].clone();
            d.on_chunk(&ChunkData { index, data }).expect("chunk");
        }
        assert!(d.local_chunks_failed(), "the changed chunks were not taken");
        d.suspend();
        // Asked again: the build resumes and fetches only the two chunks.
        let mut d = DeltaDownload::new(job(&new), IdLen::Full);
        d.on_header(header(&m, "new.bin")).expect("header");
        d.on_list(&m.chunks, IdLen::Full).expect("list");
        let frames = d.build(&rig.sources(), "x").expect("resume");
        let again = asked_of(&frames);
        let spans: Vec<(u64, u64)> = m
            .offsets()
            .map(|(o, c)| (o, o + u64::from(c.len)))
            .collect();
        let damaged = |i: &u32| {
            let (from, to) = spans[*i as usize];
            [200_000u64, 2_800_000]
                .iter()
                .any(|&at| from <= at && at < to)
        };
        assert_eq!(again.len(), 2, "{again:?}");
        assert!(again.iter().all(damaged), "{again:?}");
        for &index in &again {
            let data = chunks[index as usize].clone();
            d.on_chunk(&ChunkData { index, data }).expect("chunk");
        }
        assert!(!d.local_chunks_failed());
        let built = d.finish().expect("finish").expect("verified");
        assert!(fs::read(&built.tmp).expect("built") == new, "wrong bytes");
        fs::remove_file(&built.tmp).expect("placed elsewhere");
    }

    /// Random edits (overwrites, inserts, cuts, appends; files from empty
    /// to a few MiB): every build is the new content, hashed while written
    /// (nothing read back), and hands over the list it was built from.
    #[test]
    fn random_edits_build_exactly_and_read_nothing_back() {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = |below: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % below.max(1) as u64) as usize
        };
        for case in 0..12u64 {
            let old = test_bytes(next(4 << 20), 100 + case);
            let mut new = old.clone();
            for edit in 0..1 + next(3) {
                let at = next(new.len() + 1);
                let len = 1 + next(300_000);
                let fresh = test_bytes(len, 1_000 + case * 10 + edit as u64);
                match next(4) {
                    0 => {
                        let end = (at + len).min(new.len());
                        new.splice(at..end, fresh[..end - at].iter().copied());
                    }
                    1 => {
                        new.splice(at..at, fresh);
                    }
                    2 => {
                        new.drain(at..(at + len).min(new.len()));
                    }
                    _ => new.extend_from_slice(&fresh),
                }
            }
            // Both list forms: a list of short IDs (§13.6) hands over the
            // whole IDs learnt from the checked bytes, as the index keeps.
            for id_len in [IdLen::Full, IdLen::Short] {
                let rig = Rig::new(&old);
                let (bytes, _, built) = honest_in(&rig, &new, id_len);
                assert!(bytes == new, "case {case} {id_len:?}: built bytes differ");
                assert_eq!(built.read_back, 0, "case {case} {id_len:?}: read back");
                assert_eq!(built.hash, ContentHash::of(&new), "case {case}");
                let m = manifest_of_reader(&new[..]).expect("read");
                assert_eq!(
                    built.manifest, m,
                    "case {case} {id_len:?}: list handed over"
                );
                assert!(rig.clean(), "case {case} {id_len:?}");
            }
        }
    }

    /// A local file changed after it was indexed: its chunks no longer
    /// match their IDs as they are copied, so they are fetched instead (by
    /// a second download that resumes the build: the first asked before
    /// the copy found out); the build is still exactly the new content.
    #[test]
    fn a_local_file_changed_since_indexed_gives_no_wrong_bytes() {
        let old = test_bytes(3 << 20, 21);
        let rig = Rig::new(&old);
        let mut changed = old.clone();
        for at in [10_000, 1 << 20, (2 << 20) + 5] {
            changed[at] ^= 0x55;
        }
        std::fs::write(rig.root().join("old.bin"), &changed).expect("rewrite");
        let mut new = old.clone();
        new[2_500_000..2_600_000].copy_from_slice(&test_bytes(100_000, 22));
        let (bytes, fetched, _) = honest_in(&rig, &new, IdLen::Full);
        assert!(bytes == new, "wrong bytes placed");
        // The three damaged chunks came over the wire as well as the edit.
        let (_, edit_only) = honest(&old, &new);
        assert!(fetched > edit_only, "{fetched} <= {edit_only}");
    }

    #[test]
    fn an_edited_file_is_built_from_local_chunks_plus_the_missing_ones() {
        let old = test_bytes(2 << 20, 1);
        let mut new = old.clone();
        new[1_000_000..1_100_000].copy_from_slice(&test_bytes(100_000, 2));
        let (bytes, fetched) = honest(&old, &new);
        assert!(bytes == new);
        assert!(fetched < 100_000 + 4 * 262_144, "fetched {fetched}");
        // Nothing in common: everything fetched.
        let other = test_bytes(300_000, 3);
        let (bytes, fetched) = honest(&old, &other);
        assert!(bytes == other);
        assert_eq!(fetched, other.len() as u64);
    }

    /// Each lie of a hostile server, at the step it is told.
    #[test]
    fn hostile_lists_and_chunks_are_errors_and_leave_nothing_visible() {
        // Seeds 4 and 6: test_bytes uses `seed | 1`, so 4 and 5 are one stream.
        let old = test_bytes(400_000, 4);
        let target = test_bytes(600_000, 6);
        let m = manifest_of_reader(&target[..]).expect("read");
        let chunks: Vec<Vec<u8>> = chunk_reader(&target[..])
            .map(|c| c.expect("read").1)
            .collect();
        assert!(m.chunks.len() >= 3);
        let listed = |rig: &Rig, m: &Manifest| {
            let mut d = DeltaDownload::new(job(&target), IdLen::Full);
            d.on_header(header(m, "new.bin")).expect("header");
            d.on_list(&m.chunks, IdLen::Full).expect("list");
            let frames = d.build(&rig.sources(), "x").expect("build");
            (d, frames)
        };
        // Another path, a billion chunks, more entries than announced.
        let rig = Rig::new(&old);
        let mut d = DeltaDownload::new(job(&target), IdLen::Full);
        assert!(d.on_header(header(&m, "other.bin")).is_err());
        let mut lie = header(&m, "new.bin");
        lie.chunk_count = 1_000_000_000;
        assert!(DeltaDownload::new(job(&target), IdLen::Full)
            .on_header(lie)
            .is_err());
        let mut d2 = DeltaDownload::new(job(&target), IdLen::Full);
        d2.on_header(header(&m, "new.bin")).expect("header");
        d2.on_list(&m.chunks, IdLen::Full).expect("list");
        assert!(d2.on_list(&m.chunks[..1], IdLen::Full).is_err());
        // A list in the form not asked for (§13.6): a violation.
        let mut d3 = DeltaDownload::new(job(&target), IdLen::Full);
        d3.on_header(header(&m, "new.bin")).expect("header");
        assert!(d3.on_list(&m.chunks[..1], IdLen::Short).is_err());
        let mut d4 = DeltaDownload::new(job(&target), IdLen::Short);
        d4.on_header(header(&m, "new.bin")).expect("header");
        assert!(d4.on_list(&m.chunks[..1], IdLen::Full).is_err());
        d.discard();
        // Lengths that do not add up to the size: refused at build.
        let mut short = m.clone();
        short.chunks[0].len -= 1;
        let mut d = DeltaDownload::new(job(&target), IdLen::Full);
        d.on_header(header(&m, "new.bin")).expect("header");
        d.on_list(&short.chunks, IdLen::Full)
            .expect("entries arrive");
        assert!(d.build(&rig.sources(), "x").is_err());
        assert!(rig.clean());
        // A chunk not asked, out of order, or with wrong bytes.
        for case in 0..3 {
            let (mut d, frames) = listed(&rig, &m);
            assert_eq!(frames.len(), 1);
            let (index, data) = match case {
                0 => (m.chunks.len() as u32, chunks[0].clone()),
                1 => (1, chunks[1].clone()),
                _ => {
                    let mut wrong = chunks[0].clone();
                    wrong[5] ^= 1;
                    (0, wrong)
                }
            };
            // Wrong bytes of the right length: a damaged chunk (the
            // download is dropped, R-13.4.5); the rest: violations.
            match (case, d.on_chunk(&ChunkData { index, data })) {
                (2, Err(ClientError::DamagedChunk(_))) | (0 | 1, Err(ClientError::Protocol(_))) => {
                }
                (_, other) => panic!("case {case}: {other:?}"),
            }
            d.discard();
            assert!(rig.clean(), "case {case}");
        }
        // FileEnd with chunks missing.
        let (mut d, _) = listed(&rig, &m);
        d.on_chunk(&ChunkData {
            index: 0,
            data: chunks[0].clone(),
        })
        .expect("chunk 0");
        assert!(d.finish().is_err());
        assert!(rig.clean());
        // Honest chunks under a whole-file hash that lies: discarded.
        let mut liar = m.clone();
        liar.hash = ContentHash([7; 32]);
        let mut d = DeltaDownload::new(job(&target), IdLen::Full);
        d.on_header(header(&liar, "new.bin")).expect("header");
        d.on_list(&liar.chunks, IdLen::Full).expect("list");
        d.build(&rig.sources(), "x").expect("build");
        for (i, data) in chunks.iter().enumerate() {
            d.on_chunk(&ChunkData {
                index: i as u32,
                data: data.clone(),
            })
            .expect("honest chunk");
        }
        assert!(d.finish().expect("no protocol error").is_none());
        assert!(rig.clean());
    }

    /// A download cut off after some chunks keeps them: the next download
    /// of the same content asks only for the rest; a download of another
    /// content of the path drops them.
    #[test]
    fn an_interrupted_download_resumes_with_the_chunks_it_had() {
        let rig = Rig::new(&test_bytes(20_000, 10));
        let target = test_bytes(1 << 20, 13);
        let m = manifest_of_reader(&target[..]).expect("read");
        let chunks: Vec<Vec<u8>> = chunk_reader(&target[..])
            .map(|c| c.expect("read").1)
            .collect();
        let start = |rig: &Rig, m: &Manifest| {
            let mut d = DeltaDownload::new(job(&target), IdLen::Full);
            d.on_header(header(m, "new.bin")).expect("header");
            d.on_list(&m.chunks, IdLen::Full).expect("list");
            let frames = d.build(&rig.sources(), "x").expect("build");
            let asked: Vec<u32> = frames
                .iter()
                .flat_map(|f| f.ranges.iter().flat_map(|r| r.first..r.first + r.count))
                .collect();
            (d, asked)
        };
        let (mut d, asked) = start(&rig, &m);
        assert_eq!(asked.len(), m.chunks.len());
        let half = asked.len() / 2;
        for &index in &asked[..half] {
            let data = chunks[index as usize].clone();
            d.on_chunk(&ChunkData { index, data }).expect("chunk");
        }
        d.suspend();
        let (mut d, asked) = start(&rig, &m);
        assert_eq!(
            asked,
            (half as u32..m.chunks.len() as u32).collect::<Vec<_>>()
        );
        for &index in &asked {
            let data = chunks[index as usize].clone();
            d.on_chunk(&ChunkData { index, data }).expect("chunk");
        }
        let built = d.finish().expect("finish").expect("verified");
        assert!(std::fs::read(&built.tmp).expect("built") == target);
        // The chunks the cut-off download left in place were not written
        // again: their blocks are read back for the whole-file hash.
        assert!(built.read_back > 0);
        std::fs::remove_file(&built.tmp).expect("placed elsewhere");
        // Another content of the path drops a partial build.
        let (d, _) = start(&rig, &m);
        d.suspend();
        let other = manifest_of_reader(&test_bytes(300_000, 8)[..]).expect("read");
        let mut d = DeltaDownload::new(job(&target), IdLen::Full);
        d.on_header(header(&other, "new.bin")).expect("header");
        d.on_list(&other.chunks, IdLen::Full).expect("list");
        let frames = d.build(&rig.sources(), "y").expect("build");
        assert_eq!(
            frames[0].ranges.iter().map(|r| r.count).sum::<u32>(),
            other.chunks.len() as u32
        );
        d.discard();
        assert!(rig.clean());
    }
}
