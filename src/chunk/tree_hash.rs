//! The whole-file BLAKE3 of a file written out of order, computed from the
//! bytes as they are written, without I/O: no second read of the built file
//! for the whole-file check of a delta transfer (PROTOCOL.md §13.3, §13.4).
//!
//! BLAKE3 is a tree over 1 KiB chunks in which every power-of-two-aligned
//! subtree has its own chaining value. The file is cut into blocks of
//! [`BLOCK_LEN`] bytes (a power of two, so every block is such a subtree);
//! a block's bytes are kept in memory while its parts arrive in any order,
//! its chaining value is computed once it is whole, and the buffer is freed.
//! At the end the chaining values are merged along the tree BLAKE3 defines
//! ([`blake3::hazmat`], the crate's own subtree API), which gives the same
//! hash as [`blake3::hash`] of the whole file.
//!
//! Memory is bounded: at most [`MAX_BUFFERED_BLOCKS`] blocks are buffered at
//! once. A block first written while that many are open is not buffered;
//! [`TreeHasher::finish`] reads it back (through the caller's read function)
//! with every block not written whole, e.g. chunks a resumed build already
//! held in place. A file written front to back, or with a few holes filled
//! later (an edit), is never read back.

use crate::protocol::ContentHash;
use blake3::hazmat::{
    left_subtree_len, merge_subtrees_non_root, merge_subtrees_root, ChainingValue, HasherExt, Mode,
};
use std::fmt;
use std::io;

/// Bytes per block: 1 MiB (a power of two, at least BLAKE3's 1 KiB chunk).
pub const BLOCK_LEN: u64 = 1 << 20;

/// At most this many blocks are buffered at once (16 MiB with [`BLOCK_LEN`]).
pub const MAX_BUFFERED_BLOCKS: usize = 16;

/// Why a [`TreeHasher`] could not give the file's hash.
#[derive(Debug)]
pub enum TreeHashError {
    /// A write went past the file's size, or into bytes already hashed (the
    /// hash could not be the hash of what is in the file).
    BadWrite {
        /// Where the write started.
        offset: u64,
        /// Its length in bytes.
        len: usize,
    },
    /// Reading back a block that was not written whole failed.
    Read(io::Error),
}

impl fmt::Display for TreeHashError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TreeHashError::BadWrite { offset, len } => write!(
                f,
                "{len} bytes at offset {offset} overlap hashed bytes or pass the end"
            ),
            TreeHashError::Read(e) => write!(f, "reading back a block to hash: {e}"),
        }
    }
}

impl std::error::Error for TreeHashError {}

enum Block {
    /// Nothing written yet.
    Empty,
    /// Parts written: the block's bytes (zeros where nothing was written
    /// yet), how many bytes were written, and where (start, end within the
    /// block: a write over written bytes is refused, so `have` is exact).
    Filling {
        bytes: Vec<u8>,
        have: u64,
        parts: Vec<(usize, usize)>,
    },
    /// Written whole and hashed: its chaining value (the root hash when the
    /// file is one block).
    Done([u8; 32]),
    /// Not buffered (too many blocks open): read back at the end.
    ReadBack,
}

/// The whole-file BLAKE3 of a file of known size whose bytes are written in
/// any order, each byte once (see the module documentation).
pub struct TreeHasher {
    size: u64,
    block_len: u64,
    max_buffered: usize,
    blocks: Vec<Block>,
    buffered: usize,
    spare: Vec<Vec<u8>>,
    bad_write: Option<(u64, usize)>,
}

impl fmt::Debug for TreeHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TreeHasher")
            .field("size", &self.size)
            .field("buffered", &self.buffered)
            .field("read_back_bytes", &self.read_back_bytes())
            .finish_non_exhaustive()
    }
}

impl TreeHasher {
    /// A hasher for a file of `size` bytes.
    pub fn new(size: u64) -> TreeHasher {
        TreeHasher::with_blocks(size, BLOCK_LEN, MAX_BUFFERED_BLOCKS)
    }

    /// With another block length (a power of two, at least 1 KiB: smaller
    /// or odd lengths are raised to the next valid one) and buffer bound.
    pub fn with_blocks(size: u64, block_len: u64, max_buffered: usize) -> TreeHasher {
        let block_len = block_len.max(blake3::CHUNK_LEN as u64).next_power_of_two();
        let count = size.div_ceil(block_len);
        TreeHasher {
            size,
            block_len,
            max_buffered,
            blocks: (0..count).map(|_| Block::Empty).collect(),
            buffered: 0,
            spare: Vec::new(),
            bad_write: None,
        }
    }

    /// The file's size.
    pub fn size(&self) -> u64 {
        self.size
    }

    fn block_span(&self, index: usize) -> (u64, u64) {
        let start = index as u64 * self.block_len;
        (start, self.block_len.min(self.size - start))
    }

    /// Takes the `bytes` written at `offset`. A write past the end or over
    /// bytes already hashed is remembered and makes [`TreeHasher::finish`]
    /// fail.
    pub fn write(&mut self, offset: u64, bytes: &[u8]) {
        let end = offset.checked_add(bytes.len() as u64);
        if end.is_none_or(|end| end > self.size) {
            self.bad_write.get_or_insert((offset, bytes.len()));
            return;
        }
        let mut at = offset;
        let mut rest = bytes;
        while !rest.is_empty() {
            let index = (at / self.block_len) as usize;
            let (start, len) = self.block_span(index);
            let within = (at - start) as usize;
            let take = rest.len().min(len as usize - within);
            self.write_block(index, within, &rest[..take], at);
            at += take as u64;
            rest = &rest[take..];
        }
    }

    fn write_block(&mut self, index: usize, within: usize, part: &[u8], at: u64) {
        let (start, len) = self.block_span(index);
        if matches!(self.blocks[index], Block::Empty) {
            self.blocks[index] = if self.buffered < self.max_buffered {
                self.buffered += 1;
                let mut bytes = self.spare.pop().unwrap_or_default();
                bytes.clear();
                bytes.resize(len as usize, 0);
                Block::Filling {
                    bytes,
                    have: 0,
                    parts: Vec::new(),
                }
            } else {
                Block::ReadBack
            };
        }
        let whole = match &mut self.blocks[index] {
            Block::Filling { bytes, have, parts } => {
                let end = within + part.len();
                if parts.iter().any(|&(a, b)| within < b && a < end) {
                    self.bad_write.get_or_insert((at, part.len()));
                    return;
                }
                parts.push((within, end));
                bytes[within..end].copy_from_slice(part);
                *have += part.len() as u64;
                *have >= len
            }
            Block::Done(_) => {
                self.bad_write.get_or_insert((at, part.len()));
                false
            }
            Block::ReadBack | Block::Empty => false,
        };
        if whole {
            if let Block::Filling { bytes, .. } =
                std::mem::replace(&mut self.blocks[index], Block::Empty)
            {
                self.blocks[index] = Block::Done(self.block_value(start, &bytes));
                self.buffered -= 1;
                self.spare.push(bytes);
            }
        }
    }

    /// A block's chaining value, or the root hash when it is the whole file.
    fn block_value(&self, start: u64, bytes: &[u8]) -> [u8; 32] {
        if self.blocks.len() == 1 {
            *blake3::hash(bytes).as_bytes()
        } else {
            let mut hasher = blake3::Hasher::new();
            hasher.set_input_offset(start);
            hasher.update(bytes);
            hasher.finalize_non_root()
        }
    }

    /// Bytes [`TreeHasher::finish`] would read back now: blocks not written
    /// whole (or not buffered).
    pub fn read_back_bytes(&self) -> u64 {
        (0..self.blocks.len())
            .filter(|&i| !matches!(self.blocks[i], Block::Done(_)))
            .map(|i| self.block_span(i).1)
            .sum()
    }

    /// The file's BLAKE3. Blocks not written whole are read back with
    /// `read(offset, buffer)`, which must fill `buffer` with the file's bytes
    /// at `offset`.
    ///
    /// # Errors
    /// [`TreeHashError::BadWrite`] for a write past the end or over hashed
    /// bytes; [`TreeHashError::Read`] from `read`.
    pub fn finish(
        mut self,
        mut read: impl FnMut(u64, &mut [u8]) -> io::Result<()>,
    ) -> Result<ContentHash, TreeHashError> {
        if let Some((offset, len)) = self.bad_write {
            return Err(TreeHashError::BadWrite { offset, len });
        }
        if self.blocks.is_empty() {
            return Ok(ContentHash(*blake3::hash(&[]).as_bytes()));
        }
        let mut values = Vec::with_capacity(self.blocks.len());
        let mut buf = Vec::new();
        for index in 0..self.blocks.len() {
            if let Block::Done(value) = self.blocks[index] {
                values.push(value);
                continue;
            }
            let (start, len) = self.block_span(index);
            buf.resize(len as usize, 0);
            read(start, &mut buf).map_err(TreeHashError::Read)?;
            values.push(self.block_value(start, &buf));
            self.blocks[index] = Block::Empty;
        }
        if values.len() == 1 {
            return Ok(ContentHash(values[0]));
        }
        let left = left_subtree_len(self.size);
        let root = merge_subtrees_root(
            &self.subtree(&values, 0, left),
            &self.subtree(&values, left, self.size - left),
            Mode::Hash,
        );
        Ok(ContentHash(*root.as_bytes()))
    }

    /// The chaining value of the subtree of `len` bytes at `start` (a
    /// multiple of the block length: subtrees of more than one block are
    /// powers of two of blocks on the left).
    fn subtree(&self, values: &[[u8; 32]], start: u64, len: u64) -> ChainingValue {
        if len <= self.block_len {
            return values[(start / self.block_len) as usize];
        }
        let left = left_subtree_len(len);
        merge_subtrees_non_root(
            &self.subtree(values, start, left),
            &self.subtree(values, start + left, len - left),
            Mode::Hash,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn data(len: usize, seed: u64) -> Vec<u8> {
        crate::chunk::test_bytes(len, seed)
    }

    /// Writes `file` cut at `cuts` in the order `order` picks, then finishes
    /// reading back from `file` itself; returns the hash and bytes read back.
    fn hash_scattered(
        file: &[u8],
        cuts: &[usize],
        order: &[usize],
        block: u64,
        max: usize,
    ) -> (ContentHash, u64) {
        let mut bounds: Vec<usize> = cuts.iter().map(|c| c % (file.len() + 1)).collect();
        bounds.extend([0, file.len()]);
        bounds.sort_unstable();
        bounds.dedup();
        let mut pieces: Vec<(usize, usize)> = bounds.windows(2).map(|w| (w[0], w[1])).collect();
        for (i, &o) in order.iter().enumerate() {
            if !pieces.is_empty() {
                let n = pieces.len();
                pieces.swap(i % n, o % n);
            }
        }
        let mut hasher = TreeHasher::with_blocks(file.len() as u64, block, max);
        for (a, b) in pieces {
            hasher.write(a as u64, &file[a..b]);
        }
        let mut read_back = 0u64;
        let hash = hasher
            .finish(|offset, buf| {
                read_back += buf.len() as u64;
                let at = offset as usize;
                buf.copy_from_slice(&file[at..at + buf.len()]);
                Ok(())
            })
            .expect("honest writes");
        (hash, read_back)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Any size, any cut into parts, any order, any buffer bound: the
        /// hash is BLAKE3's of the whole file.
        #[test]
        fn scattered_writes_hash_like_blake3(
            len in 0usize..300_000,
            seed in any::<u64>(),
            cuts in proptest::collection::vec(any::<usize>(), 0..40),
            order in proptest::collection::vec(any::<usize>(), 0..40),
            block_pow in 10u32..16,
            max in 0usize..6,
        ) {
            let file = data(len, seed);
            let (hash, _) = hash_scattered(&file, &cuts, &order, 1 << block_pow, max);
            prop_assert_eq!(hash, ContentHash::of(&file));
        }
    }

    #[test]
    fn sizes_around_block_and_tree_boundaries() {
        let block = 4096u64;
        for blocks in [1u64, 2, 3, 4, 5, 7, 8, 9, 16, 17] {
            for delta in [-1i64, 0, 1] {
                let len = (blocks * block) as i64 + delta;
                let file = data(len as usize, blocks);
                let (hash, read_back) = hash_scattered(&file, &[], &[], block, 4);
                assert_eq!(hash, ContentHash::of(&file), "len {len}");
                assert_eq!(read_back, 0, "written front to back: nothing read back");
            }
        }
    }

    #[test]
    fn an_edit_filled_last_is_not_read_back() {
        // Like a delta upload of an edit: everything but a hole first, then
        // the hole.
        let file = data(10 * 65_536 + 123, 7);
        let hole = (300_000, 420_000);
        let mut hasher = TreeHasher::with_blocks(file.len() as u64, 65_536, 4);
        hasher.write(0, &file[..hole.0]);
        hasher.write(hole.1 as u64, &file[hole.1..]);
        assert!(hasher.read_back_bytes() > 0);
        hasher.write(hole.0 as u64, &file[hole.0..hole.1]);
        assert_eq!(hasher.read_back_bytes(), 0);
        let hash = hasher
            .finish(|_, _| Err(io::Error::other("nothing is read back")))
            .expect("all hashed while written");
        assert_eq!(hash, ContentHash::of(&file));
    }

    #[test]
    fn writes_past_the_end_or_over_hashed_bytes_fail() {
        let file = data(5000, 1);
        let read = |_: u64, _: &mut [u8]| Ok(());
        let mut past = TreeHasher::with_blocks(5000, 1024, 8);
        past.write(4990, &[0; 11]);
        assert!(matches!(
            past.finish(read),
            Err(TreeHashError::BadWrite { offset: 4990, .. })
        ));
        let mut twice = TreeHasher::with_blocks(5000, 1024, 8);
        twice.write(0, &file);
        twice.write(100, &file[100..200]);
        assert!(matches!(
            twice.finish(read),
            Err(TreeHashError::BadWrite { offset: 100, .. })
        ));
        let mut overlap = TreeHasher::with_blocks(5000, 1024, 8);
        overlap.write(0, &file[..600]);
        overlap.write(500, &file[500..700]);
        assert!(matches!(
            overlap.finish(read),
            Err(TreeHashError::BadWrite { offset: 500, .. })
        ));
        let mut overflow = TreeHasher::with_blocks(5000, 1024, 8);
        overflow.write(u64::MAX, &[1]);
        assert!(overflow.finish(read).is_err());
    }

    #[test]
    fn a_failing_read_back_is_an_error() {
        let mut hasher = TreeHasher::with_blocks(5000, 1024, 0);
        hasher.write(0, &data(5000, 2));
        assert_eq!(hasher.read_back_bytes(), 5000, "nothing could be buffered");
        assert!(matches!(
            hasher.finish(|_, _| Err(io::Error::other("gone"))),
            Err(TreeHashError::Read(_))
        ));
    }
}
