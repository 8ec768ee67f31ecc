//! A delta download's chunk written so that a chunk of zeros stays a hole:
//! a sparse file (a disk image of 256 MiB holding 8 KiB of data) takes
//! about its data's size on the receiving device, as on the server (whose
//! new builds leave zero chunks unwritten), not its length.
//!
//! The build file already has its final length (`set_len`, a hole of that
//! size), but a resumed build may hold bytes of an earlier attempt where a
//! zero chunk belongs (a write cut short by a crash), so a zero chunk is
//! not merely skipped: its range is punched out (`fallocate`
//! `PUNCH_HOLE | KEEP_SIZE`), after which it reads as zeros whatever it
//! held, and its blocks are freed. A file system that cannot punch gets the
//! zeros written, as before.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// Writes `bytes` (one chunk) at `offset` of `file`: punched out when they
/// are all zeros, else written.
///
/// # Errors
/// The write's error (a failed punch falls back to the write).
pub fn write_chunk(file: &File, bytes: &[u8], offset: u64) -> io::Result<()> {
    if is_zero(bytes) && punch(file, offset, bytes.len() as u64).is_ok() {
        return Ok(());
    }
    file.write_all_at(bytes, offset)
}

/// True when every byte is 0 (false for an empty slice: nothing to punch).
fn is_zero(bytes: &[u8]) -> bool {
    !bytes.is_empty() && bytes.iter().all(|&b| b == 0)
}

/// Deallocates `len` bytes at `offset`, the file's length unchanged: they
/// read as zeros afterwards.
fn punch(file: &File, offset: u64, len: u64) -> io::Result<()> {
    use rustix::fs::{fallocate, FallocateFlags};
    let flags = FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE;
    fallocate(file, flags, offset, len).map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    /// Zero chunks written over bytes of an earlier attempt read back as
    /// zeros; the other chunks as written; the file keeps its length and
    /// the zero chunks take no disk.
    #[test]
    fn zero_chunks_become_holes_and_read_as_zeros() {
        let dir = tempfile::tempdir().expect("temp dir");
        let at = dir.path().join("build");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&at)
            .expect("create");
        let len = 64usize << 20;
        // An earlier attempt's bytes everywhere: a resumed build.
        let junk = vec![0xffu8; 1 << 20];
        for i in 0..64 {
            file.write_all_at(&junk, (i << 20) as u64).expect("junk");
        }
        let mut want = vec![0u8; len];
        let chunk = 256 * 1024;
        for (i, part) in want.chunks_mut(chunk).enumerate() {
            if i % 97 == 5 {
                part[..1000].fill(0x5a);
            }
        }
        for (i, part) in want.chunks(chunk).enumerate() {
            write_chunk(&file, part, (i * chunk) as u64).expect("write");
        }
        file.sync_all().expect("sync");
        assert_eq!(std::fs::read(&at).expect("read"), want);
        let meta = std::fs::metadata(&at).expect("stat");
        assert_eq!(meta.len(), len as u64);
        let on_disk = meta.blocks() * 512;
        eprintln!("64 MiB, 3 data chunks: {on_disk} bytes on disk");
        assert!(on_disk <= 4 << 20, "{on_disk} bytes on disk");
    }

    #[test]
    fn only_all_zero_slices_are_zero() {
        assert!(!is_zero(&[]));
        assert!(is_zero(&[0; 5]));
        assert!(!is_zero(&[0, 0, 1]));
    }
}
