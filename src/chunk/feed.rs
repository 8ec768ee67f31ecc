//! Content-defined chunks of bytes handed over piece by piece, as an
//! upload's FileChunk frames arrive (PROTOCOL.md §13.8, R-13.8.5): the same
//! cut points and chunk IDs as [`super::manifest_of_reader`] over the whole
//! content, whatever the pieces' sizes. The server's one pass over a
//! streamed upload (its whole-file BLAKE3 as the bytes arrive) thereby also
//! gives the file's chunk list, so its first delta download does not read
//! and cut the stored file (BENCHMARKS.md "First download after a stream
//! upload").
//!
//! A cut needs the next `min(MAX_CHUNK, bytes left)` bytes in one slice.
//! While nothing is held back, chunks are cut in the piece itself (no
//! copy); the piece's last bytes short of a window are held (fewer than
//! [`MAX_CHUNK`]) and topped up from the next piece. A chunk that reaches
//! past the held bytes into the next piece puts the feed back in that
//! piece, so each byte is copied at most about once.

use super::cutter::Masks;
use super::manifest::{ChunkEntry, IdLen, Manifest, MAX_MANIFEST_CHUNKS};
use super::MAX_CHUNK;
use crate::protocol::ContentHash;

/// Bytes already cut that `held` may keep in front of the bytes not yet
/// cut before they are dropped (a `memmove` of the rest to the front): with
/// 256 KiB pieces that move happens about once per three pieces instead of
/// after every piece (issue 12, BENCHMARKS.md "TLS upload: one send per
/// frame"; the client's download cuts through the same feed).
const SLACK: usize = 3 * MAX_CHUNK as usize;

/// The chunk list of bytes fed in order; see the module doc. Memory: at
/// most two [`MAX_CHUNK`]s held back (in a buffer of at most [`SLACK`]
/// more, plus the piece being fed), and 36 bytes per chunk cut (at most
/// [`MAX_MANIFEST_CHUNKS`] of them: past that the list is given up, as no
/// download could be served from it, R-13.4.1).
pub struct ChunkFeed {
    /// `held[start..]`: bytes fed and not yet in a chunk, fewer than
    /// [`MAX_CHUNK`] between calls.
    held: Vec<u8>,
    start: usize,
    masks: Masks,
    chunks: Vec<ChunkEntry>,
    /// Bytes fed in all.
    fed: u64,
    /// More than [`MAX_MANIFEST_CHUNKS`] chunks: no list.
    too_many: bool,
}

impl Default for ChunkFeed {
    fn default() -> Self {
        ChunkFeed::new()
    }
}

impl ChunkFeed {
    /// A feed that has seen no byte.
    pub fn new() -> ChunkFeed {
        ChunkFeed {
            held: Vec::new(),
            start: 0,
            masks: Masks::new(),
            chunks: Vec::new(),
            fed: 0,
            too_many: false,
        }
    }

    /// Takes the next bytes of the content; cuts and hashes every chunk
    /// whose cut point they settle.
    pub fn feed(&mut self, data: &[u8]) {
        self.fed += data.len() as u64;
        if self.too_many {
            return;
        }
        let max = MAX_CHUNK as usize;
        let mut at = 0;
        // Bytes held back from earlier pieces: top them up to one window.
        while self.held.len() > self.start {
            let held = self.held.len() - self.start;
            let take = (max - held).min(data.len() - at);
            self.held.extend_from_slice(&data[at..at + take]);
            at += take;
            if self.held.len() - self.start < max {
                // `data` is used up and the window is still short. The
                // bytes already cut are dropped only once there are
                // [`SLACK`] of them: moving the held rest to the front
                // after every piece was a second copy of most bytes.
                if self.start >= SLACK {
                    self.held.drain(..self.start);
                    self.start = 0;
                }
                return;
            }
            let window = &self.held[self.start..self.start + max];
            let len = self.masks.cut(window);
            let entry = entry_of(&window[..len]);
            self.add(entry);
            if len >= held {
                // The chunk took every held byte: the window's rest is the
                // last `max - len` bytes taken from `data`; go on there.
                at -= max - len;
                self.held.clear();
                self.start = 0;
            } else {
                self.start += len;
            }
        }
        // Nothing held: cut in `data` itself while a whole window is there.
        while data.len() - at >= max && !self.too_many {
            let window = &data[at..at + max];
            let len = self.masks.cut(window);
            self.add(entry_of(&window[..len]));
            at += len;
        }
        self.held.clear();
        self.start = 0;
        if !self.too_many {
            self.held.extend_from_slice(&data[at..]);
        }
    }

    /// Bytes fed so far.
    pub fn fed(&self) -> u64 {
        self.fed
    }

    /// The manifest of everything fed, with `hash` as its whole-content
    /// hash (the caller's BLAKE3 of the same bytes: the feed does not hash
    /// the whole); `None` past [`MAX_MANIFEST_CHUNKS`] chunks.
    pub fn finish(mut self, hash: ContentHash) -> Option<Manifest> {
        while self.start < self.held.len() && !self.too_many {
            let rest = &self.held[self.start..];
            let len = self.masks.cut(&rest[..rest.len().min(MAX_CHUNK as usize)]);
            let entry = entry_of(&rest[..len]);
            self.add(entry);
            self.start += len;
        }
        if self.too_many {
            return None;
        }
        Some(Manifest {
            size: self.fed,
            hash,
            chunks: self.chunks,
            id_len: IdLen::Full,
        })
    }

    fn add(&mut self, entry: ChunkEntry) {
        if self.chunks.len() >= MAX_MANIFEST_CHUNKS {
            self.too_many = true;
            self.chunks = Vec::new();
            self.held = Vec::new();
            self.start = 0;
        } else {
            self.chunks.push(entry);
        }
    }
}

/// The list entry of one chunk's bytes (1..=[`MAX_CHUNK`] of them).
fn entry_of(bytes: &[u8]) -> ChunkEntry {
    ChunkEntry {
        len: u32::try_from(bytes.len()).unwrap_or(MAX_CHUNK),
        id: ContentHash::of(bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::manifest_of_reader;
    use proptest::prelude::*;

    /// `data` fed in pieces of the sizes `sizes` gives in turn (cycled; 0
    /// allowed).
    fn fed(data: &[u8], sizes: &[usize]) -> Manifest {
        let mut feed = ChunkFeed::new();
        let mut at = 0;
        let mut i = 0;
        while at < data.len() {
            let n = sizes[i % sizes.len()].min(data.len() - at);
            feed.feed(&data[at..at + n]);
            at += n;
            i += 1;
        }
        assert_eq!(feed.fed(), data.len() as u64);
        feed.finish(ContentHash::of(data)).expect("a short list")
    }

    /// Content with long runs of zeros (every chunk there is cut at
    /// MAX_CHUNK) among random bytes.
    fn with_runs(len: usize, seed: u64) -> Vec<u8> {
        let mut data = crate::chunk::test_bytes(len, seed);
        let mut at = (seed as usize) % len.max(1);
        while at < len {
            let run = (at / 5 + 200_000).min(len - at);
            data[at..at + run].fill(0);
            at += run * 3;
        }
        data
    }

    #[test]
    fn empty_tiny_and_boundary_sizes() {
        let max = MAX_CHUNK as usize;
        for len in [
            0,
            1,
            16 * 1024,
            16 * 1024 + 1,
            max - 1,
            max,
            max + 1,
            2 * max,
        ] {
            let data = crate::chunk::test_bytes(len, 4);
            let want = manifest_of_reader(&data[..]).expect("in memory");
            for sizes in [&[1usize << 30][..], &[1], &[max], &[max - 1, 1], &[0, 7000]] {
                assert_eq!(fed(&data, sizes), want, "len {len}, pieces {sizes:?}");
            }
        }
    }

    /// 256 KiB pieces (what uploads and downloads feed): the same list as
    /// the whole, and the bytes already cut are dropped before `held`
    /// passes [`SLACK`] plus two windows, so the memory stays bounded.
    #[test]
    fn the_held_buffer_stays_bounded_over_many_pieces() {
        let data = with_runs(24 << 20, 7);
        let piece = MAX_CHUNK as usize;
        let mut feed = ChunkFeed::new();
        let mut dropped = 0;
        for part in data.chunks(piece) {
            let before = feed.start;
            feed.feed(part);
            assert!(feed.held.len() <= SLACK + 2 * piece, "{}", feed.held.len());
            if feed.start < before {
                dropped += 1;
            }
        }
        assert!(dropped > 0 && dropped < data.len() / piece / 2, "{dropped}");
        let want = manifest_of_reader(&data[..]).expect("in memory");
        assert_eq!(feed.finish(ContentHash::of(&data)), Some(want));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(40))]
        /// Whatever the content (random, or with runs that force MAX_CHUNK
        /// cuts) and however it is split (empty pieces, single bytes,
        /// pieces around MAX_CHUNK, several MiB at once), the list is the
        /// one the reader-based cutter makes of the whole.
        #[test]
        fn pieces_give_the_whole_contents_list(
            seed in any::<u64>(),
            len in 0usize..(3usize << 20),
            runs in any::<bool>(),
            sizes in proptest::collection::vec(
                prop_oneof![
                    Just(0usize),
                    1usize..300,
                    200_000usize..300_000,
                    Just(MAX_CHUNK as usize),
                    1usize..(4usize << 20),
                ],
                1..8,
            ),
        ) {
            prop_assume!(sizes.iter().any(|&s| s > 0));
            let data = if runs { with_runs(len, seed) } else { crate::chunk::test_bytes(len, seed) };
            let want = manifest_of_reader(&data[..]).expect("in memory");
            prop_assert_eq!(fed(&data, &sizes), want);
        }
    }
}
