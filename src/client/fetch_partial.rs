//! A large whole-file `Fetch` (PROTOCOL.md §5.5) written where a cut-off
//! one can be resumed: into the state folder's `partial/` area,
//! under the name a delta build of the same path and content would have
//! ([`partial_name`]), at the file's full length from the start. If the
//! connection is lost or either side is killed, the bytes received so far
//! stay there, at their offsets; the next download of that content is a
//! delta download (§13.4) that finds the file of the right length, re-hashes
//! every chunk of the server's list in place and asks only for the others
//! ([`crate::chunk::index::fill_in_place`]). Nothing here is trusted before
//! the whole-file check of the caller: the resume checks every chunk, the
//! Fetch the whole file.
//!
//! A first download with nothing local to build from so needs no chunk list
//! and no FetchChunks round trip (0.47 MB and one round trip per GiB over the
//! delta download: BENCHMARKS.md, "Issue 12's last target").
//!
//! Its bytes are written at their offsets as they come, a chunk of zeros
//! punched out instead ([`write_chunk`]: a sparse file stays sparse), and
//! written out to disk every [`crate::writeback::KICK_EVERY`] bytes so the
//! fsync before placing finds little left. They are also cut into the file's
//! chunk list as they come ([`ChunkPipe`]: on a worker thread, as the server
//! cuts a one-read upload, R-13.8.8), which the caller records in the chunk
//! index with the placed file, as a delta download records the list it was
//! sent: the next edit of the file then comes with its list as a delta
//! (§13.7) and nothing here is read again to cut it.

use super::fetch_sparse::write_chunk;
use crate::chunk::feed_pipe::ChunkPipe;
use crate::chunk::index::{drop_other_partials, partial_name};
use crate::chunk::Manifest;
use crate::protocol::{ContentHash, WirePath};
use crate::writeback::{start_writeback, Writeback};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// True when `dir` (the partial area) keeps a partial file of `size` bytes
/// for `path` and `hash`: a download of that content resumes from it (as a
/// delta download).
pub fn kept(dir: &Path, path: &WirePath, hash: &ContentHash, size: u64) -> bool {
    fs::metadata(dir.join(partial_name(path, hash))).is_ok_and(|m| m.is_file() && m.len() == size)
}

/// One resumable Fetch being written.
#[derive(Debug)]
pub struct PartialFetch {
    file: File,
    /// Where it is (in the partial area).
    at: PathBuf,
    /// Bytes received, and the offset of the next.
    written: u64,
    writeback: Writeback,
    /// When the download began: the verified file's modification time.
    began: SystemTime,
    /// The chunk list, cut from the bytes as they come.
    chunks: ChunkPipe,
}

impl std::fmt::Debug for ChunkPipe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChunkPipe")
    }
}

impl PartialFetch {
    /// Starts the Fetch of `path`'s content `hash`, `size` bytes (the
    /// FileBegin's), in `dir`: the path's other partial files go (its
    /// content moved on), a file left there for this content is started
    /// again (its bytes are written over from offset 0), and the file is
    /// made `size` bytes long (a hole until written), so a cut-off one is
    /// found by [`kept`] and resumed.
    ///
    /// # Errors
    /// Creating or sizing the file (nothing is left behind).
    pub fn create(
        dir: &Path,
        path: &WirePath,
        hash: &ContentHash,
        size: u64,
    ) -> io::Result<PartialFetch> {
        let name = partial_name(path, hash);
        drop_other_partials(dir, path, &name);
        let at = dir.join(name);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&at)?;
        if let Err(e) = file.set_len(size) {
            let _ = fs::remove_file(&at);
            return Err(e);
        }
        Ok(PartialFetch {
            file,
            at,
            written: 0,
            writeback: Writeback::default(),
            began: SystemTime::now(),
            chunks: ChunkPipe::new(size),
        })
    }

    /// Writes the next `data` of the file (a FileChunk's bytes) at their
    /// offset, and hands them to the chunk cut. The caller checks the total
    /// against the announced size.
    ///
    /// # Errors
    /// The write's error: the caller [`Self::discard`]s the file (R-5.6.8:
    /// kept, it would hold the full disk).
    pub fn write(&mut self, data: Vec<u8>) -> io::Result<()> {
        write_chunk(&self.file, &data, self.written)?;
        self.written += data.len() as u64;
        if self.writeback.wrote(data.len() as u64) {
            // Only starts writes the fsync before placing would do.
            if let Err(e) = start_writeback(&self.file) {
                log::debug!("{}: starting the write-out: {e}", self.at.display());
            }
        }
        self.chunks.feed(data);
        Ok(())
    }

    /// The file was received whole and its hash checked by the caller:
    /// given the download's start as its modification time (as a delta
    /// build, so the placement's record is trusted at once and the file is
    /// not read again, `DeltaDownload::finish`) and moved to `tmp`, where it
    /// waits for its fsync and placement. Returns the open file and its
    /// chunk list with `hash` (`None` if the cut was lost).
    ///
    /// # Errors
    /// The rename's error (the partial file is removed).
    pub fn finish(self, tmp: &Path, hash: ContentHash) -> io::Result<(File, Option<Manifest>)> {
        if let Err(e) = self.file.set_modified(self.began) {
            log::debug!(
                "{}: could not set the modification time: {e}",
                self.at.display()
            );
        }
        if let Err(e) = fs::rename(&self.at, tmp) {
            let _ = fs::remove_file(&self.at);
            return Err(e);
        }
        Ok((self.file, self.chunks.finish(hash)))
    }

    /// Removes the file: what it holds is not wanted (it failed the whole
    /// file check, or could not be written).
    pub fn discard(self) {
        let _ = fs::remove_file(&self.at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::index::fill_in_place;
    use crate::chunk::{manifest_of_reader, AssemblyPlan};
    use rand::{rngs::StdRng, Rng, RngCore, SeedableRng};

    fn wire(p: &str) -> WirePath {
        WirePath::new(p).expect("path")
    }

    /// A Fetch cut after any number of FileChunks leaves a file of the
    /// full length in the partial area whose chunks wholly received are
    /// taken by a resume (re-hashed in place) and the others are not;
    /// a finished one is moved out with the bytes sent.
    #[test]
    fn a_cut_fetch_leaves_what_a_resume_takes_and_nothing_else() {
        let mut rng = StdRng::seed_from_u64(12);
        for round in 0..6 {
            let dir = tempfile::tempdir().expect("temp dir");
            let size = rng.random_range(300_000..2_000_000usize);
            let mut content = vec![0u8; size];
            rng.fill_bytes(&mut content);
            if round % 2 == 0 {
                // A run of zeros, punched out.
                let at = rng.random_range(0..size / 2);
                content[at..at + 200_000.min(size - at)].fill(0);
            }
            let hash = ContentHash(*blake3::hash(&content).as_bytes());
            let path = wire("big.bin");
            let mut fetch =
                PartialFetch::create(dir.path(), &path, &hash, size as u64).expect("create");
            assert!(kept(dir.path(), &path, &hash, size as u64));
            let cut = rng.random_range(0..size);
            let mut sent = 0;
            while sent < cut {
                let n = rng.random_range(1..100_000).min(cut - sent);
                fetch
                    .write(content[sent..sent + n].to_vec())
                    .expect("write");
                sent += n;
            }
            drop(fetch);
            let at = dir.path().join(partial_name(&path, &hash));
            let manifest = manifest_of_reader(&content[..]).expect("list");
            let mut plan = AssemblyPlan::new(&manifest).expect("plan");
            let file = File::open(&at).expect("kept");
            let mut write = |_: &[u8], _: &[u64]| Ok(());
            let taken = fill_in_place(&file, &manifest, &mut plan, &mut write).expect("fill");
            let whole: u64 = manifest
                .offsets()
                .filter(|(o, e)| o + u64::from(e.len) <= sent as u64)
                .map(|(_, e)| u64::from(e.len))
                .sum();
            // Every chunk received whole is taken; a chunk past the cut is
            // taken only if its bytes are zeros (the hole reads as them).
            assert!(taken >= whole, "round {round}: {taken} < {whole}");
            for (o, e) in manifest.offsets() {
                let end = (o + u64::from(e.len)) as usize;
                if end > sent && !plan.wants(&e.id) {
                    assert!(content[o as usize..end].iter().all(|&b| b == 0));
                }
            }
            // Another content of the path drops it.
            let other = ContentHash([7; 32]);
            let again = PartialFetch::create(dir.path(), &path, &other, 10).expect("create");
            assert!(!at.exists());
            again.discard();
            assert_eq!(fs::read_dir(dir.path()).expect("dir").count(), 0);
        }
    }

    /// A whole Fetch is moved to `tmp` holding exactly the bytes sent, with
    /// the list a reader of the whole cuts.
    #[test]
    fn a_whole_fetch_is_moved_out_with_its_bytes() {
        let dir = tempfile::tempdir().expect("temp dir");
        let tmp = tempfile::tempdir().expect("temp dir");
        let mut content = vec![0u8; 1_000_000];
        StdRng::seed_from_u64(5).fill_bytes(&mut content[300_000..]);
        let hash = ContentHash(*blake3::hash(&content).as_bytes());
        let path = wire("a/b.bin");
        let mut fetch = PartialFetch::create(dir.path(), &path, &hash, 1_000_000).expect("create");
        for piece in content.chunks(262_144) {
            fetch.write(piece.to_vec()).expect("write");
        }
        let to = tmp.path().join("t");
        let (_, list) = fetch.finish(&to, hash).expect("finish");
        assert_eq!(fs::read(&to).expect("read"), content);
        let whole = manifest_of_reader(&content[..]).expect("list");
        assert_eq!(list.map(|l| l.chunks), Some(whole.chunks));
        assert_eq!(fs::read_dir(dir.path()).expect("dir").count(), 0);
    }
}
