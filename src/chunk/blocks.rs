//! The manifest of a file handed over block by block on a channel: the
//! hashing half of a one-read upload (PROTOCOL.md §13.8), whose other half
//! reads the blocks and sends them.

use super::manifest::Manifest;
use super::stream::manifest_of_reader;
use crossbeam_channel::{Receiver, Sender};
use std::io::{self, Read};

/// A [`Read`] over the blocks that arrive on a channel, in order; the end
/// of the source is the channel's close. Each block read through goes back
/// on `spent` (when given and not full), for the sender to fill again.
struct BlockReader {
    blocks: Receiver<Vec<u8>>,
    spent: Option<Sender<Vec<u8>>>,
    current: Vec<u8>,
    at: usize,
}

impl Read for BlockReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // Bounded: each turn either takes a non-empty block or ends.
        while self.at == self.current.len() {
            match self.blocks.recv() {
                Ok(block) => {
                    let done = std::mem::replace(&mut self.current, block);
                    if let (Some(spent), true) = (&self.spent, done.capacity() > 0) {
                        // A full or closed return channel drops the block.
                        let _ = spent.try_send(done);
                    }
                    self.at = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len() - self.at);
        buf[..n].copy_from_slice(&self.current[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// The manifest (chunk list, size, whole-content BLAKE3) of the bytes that
/// arrive on `blocks` until it closes: what [`manifest_of_reader`] gives for
/// the same bytes read from a file. Runs on the calling thread (the one-read
/// upload spawns one for it).
///
/// Each block, once cut, is handed back on `spent` (if given; dropped when
/// that channel is full or closed): the sender reuses it for the next read
/// instead of allocating and zeroing a fresh one (about 8 % of a client's
/// CPU in a 1 GiB upload went to that: `memset` and page faults).
pub fn manifest_of_blocks(blocks: Receiver<Vec<u8>>, spent: Option<Sender<Vec<u8>>>) -> Manifest {
    let reader = BlockReader {
        blocks,
        spent,
        current: Vec::new(),
        at: 0,
    };
    // A BlockReader never fails: the end of the channel is the end.
    match manifest_of_reader(reader) {
        Ok(manifest) => manifest,
        Err(_) => Manifest {
            size: 0,
            hash: crate::protocol::ContentHash::of(b""),
            chunks: Vec::new(),
            id_len: super::manifest::IdLen::Full,
        },
    }
}

/// Where the hashing half of a one-read upload measures how fast the
/// blocks come (from this many bytes of the file to [`RATE_TO`]): past
/// the start, whose bytes the socket buffers along the path take at once.
pub const RATE_FROM: u64 = 8 << 20;

/// See [`RATE_FROM`].
pub const RATE_TO: u64 = 24 << 20;

/// Blocks coming faster than this (bytes per second) between [`RATE_FROM`]
/// and [`RATE_TO`]: the upload is bound by the CPU, not by the link.
/// 32 MB/s is 2.5 times a 100 Mbit/s link (BENCHMARKS.md's WAN link moves
/// 11.95 MB/s), and a tenth of a 1 GiB loopback upload's rate.
pub const FAST: u64 = 32_000_000;

/// Whether a one-read upload whose blocks took `elapsed` from
/// [`RATE_FROM`] to [`RATE_TO`] leaves the chunk list to the server: when
/// they came faster than [`FAST`]. Over a slow link the client's cut
/// (FastCDC and a BLAKE3 per chunk, about 0.8 CPU-s per GiB) costs no time,
/// since it waits for the link anyway, while the server's list would cost
/// 36 bytes a chunk back down; on a fast one the cut is what holds the
/// upload back on a machine of few cores.
pub fn leaves_cut(elapsed: std::time::Duration) -> bool {
    let bytes = (RATE_TO - RATE_FROM) as u128;
    // Faster than FAST: bytes / elapsed > FAST.
    bytes * 1_000_000_000 > u128::from(FAST) * elapsed.as_nanos()
}

/// What the hashing half of a one-read upload made of its blocks.
#[derive(Debug, PartialEq, Eq)]
pub struct Hashed {
    /// Bytes in all.
    pub size: u64,
    /// BLAKE3 of all of them.
    pub hash: crate::protocol::ContentHash,
    /// Their chunk list, when cut here (`None` also past the longest list
    /// kept, [`super::feed::ChunkFeed::finish`]).
    pub list: Option<Manifest>,
    /// The cut was given up ([`leaves_cut`]): the list is the server's to
    /// ask for.
    pub left: bool,
}

/// The size, whole-content BLAKE3 and chunk list of the bytes that arrive
/// on `blocks` until it closes: the hashing half of a one-read upload
/// (PROTOCOL.md §13.8). Each block goes back on `spent` once used (as in
/// [`manifest_of_blocks`]). When `may_leave` and the blocks come fast
/// ([`leaves_cut`], measured between [`RATE_FROM`] and [`RATE_TO`]), the
/// cut stops there and only the whole file is hashed: the server cuts and
/// hashes the chunks of what it receives anyway, and the client
/// takes its list afterwards (`client::server_list`).
pub fn hash_blocks(
    blocks: Receiver<Vec<u8>>,
    spent: Option<Sender<Vec<u8>>>,
    may_leave: bool,
) -> Hashed {
    let mut whole = blake3::Hasher::new();
    let mut feed = Some(super::feed::ChunkFeed::new());
    let mut size = 0u64;
    let mut from: Option<std::time::Instant> = None;
    let mut decided = !may_leave;
    let mut left = false;
    // Bounded by the sender: the loop ends when the channel closes.
    for block in blocks {
        whole.update(&block);
        if let Some(feed) = feed.as_mut() {
            feed.feed(&block);
        }
        size += block.len() as u64;
        if !decided {
            if from.is_none() && size >= RATE_FROM {
                from = Some(std::time::Instant::now());
            }
            if let (Some(t), true) = (from, size >= RATE_TO) {
                decided = true;
                if leaves_cut(t.elapsed()) {
                    feed = None;
                    left = true;
                }
            }
        }
        if let (Some(spent), true) = (&spent, block.capacity() > 0) {
            // A full or closed return channel drops the block.
            let _ = spent.try_send(block);
        }
    }
    let hash = crate::protocol::ContentHash(*whole.finalize().as_bytes());
    Hashed {
        size,
        hash,
        list: feed.and_then(|f| f.finish(hash)),
        left,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::test_bytes;

    /// Any split into blocks gives the manifest of the whole bytes.
    #[test]
    fn blocks_of_any_size_give_the_files_manifest() {
        for (len, block) in [
            (0usize, 7usize),
            (1, 1),
            (70_000, 4096),
            (700_003, 262_144),
            (3_000, 1),
        ] {
            let data = test_bytes(len, len as u64 + 3);
            let (tx, rx) = crossbeam_channel::unbounded();
            for part in data.chunks(block.max(1)) {
                tx.send(part.to_vec()).unwrap();
            }
            drop(tx);
            let got = manifest_of_blocks(rx, None);
            let want = manifest_of_reader(&data[..]).unwrap();
            assert_eq!(got, want, "len {len} block {block}");
        }
    }

    /// Cut here, any split into blocks gives the manifest of the whole
    /// bytes, and every block but those a full return channel drops comes
    /// back as sent.
    #[test]
    fn hash_blocks_is_the_manifest_of_the_bytes() {
        for (len, block, room) in [
            (0usize, 7usize, 4usize),
            (1, 1, 0),
            (1_000_003, 65_536, 100),
            (700_003, 262_144, 2),
        ] {
            let data = test_bytes(len, len as u64 + 5);
            let parts: Vec<Vec<u8>> = data.chunks(block).map(<[u8]>::to_vec).collect();
            let (tx, rx) = crossbeam_channel::unbounded();
            for part in &parts {
                tx.send(part.clone()).unwrap();
            }
            drop(tx);
            let (spent_tx, spent_rx) = crossbeam_channel::bounded(room);
            let got = hash_blocks(rx, Some(spent_tx), true);
            let want = manifest_of_reader(&data[..]).unwrap();
            assert_eq!((got.size, got.hash), (want.size, want.hash), "len {len}");
            assert_eq!(got.list, Some(want), "len {len}: below RATE_TO, always cut");
            assert!(!got.left);
            let back: Vec<Vec<u8>> = spent_rx.try_iter().collect();
            assert_eq!(back.len(), room.min(parts.len()), "len {len}");
            assert!(back.iter().zip(&parts).all(|(b, p)| b == p));
        }
    }

    /// Blocks that come at memory speed past RATE_TO leave the cut (only
    /// the whole file is hashed); unless leaving is not allowed.
    #[test]
    fn fast_blocks_leave_the_cut_when_allowed() {
        let data = test_bytes((RATE_TO + (3 << 20)) as usize, 77);
        for may_leave in [true, false] {
            let (tx, rx) = crossbeam_channel::unbounded();
            for part in data.chunks(262_144) {
                tx.send(part.to_vec()).unwrap();
            }
            drop(tx);
            let got = hash_blocks(rx, None, may_leave);
            let want = manifest_of_reader(&data[..]).unwrap();
            assert_eq!((got.size, got.hash), (want.size, want.hash));
            assert_eq!(got.left, may_leave);
            assert_eq!(got.list, (!may_leave).then_some(want));
        }
    }

    #[test]
    fn the_cut_is_left_only_above_the_fast_rate() {
        use std::time::Duration;
        let bytes = RATE_TO - RATE_FROM;
        // 11.95 MB/s (the WAN link), 32 MB/s exactly, 300 MB/s (loopback).
        assert!(!leaves_cut(Duration::from_secs_f64(bytes as f64 / 11.95e6)));
        assert!(!leaves_cut(Duration::from_secs_f64(
            bytes as f64 / FAST as f64
        )));
        assert!(leaves_cut(Duration::from_secs_f64(bytes as f64 / 300e6)));
        assert!(leaves_cut(Duration::ZERO));
    }

    /// Blocks come back on `spent` once cut, each exactly as sent (the
    /// sender refills them), and a full return channel loses no byte of
    /// the manifest.
    #[test]
    fn cut_blocks_come_back_and_a_full_return_channel_changes_nothing() {
        let data = test_bytes(1_000_003, 11);
        let parts: Vec<Vec<u8>> = data.chunks(65_536).map(<[u8]>::to_vec).collect();
        for room in [0usize, 1, 100] {
            let (tx, rx) = crossbeam_channel::unbounded();
            let (spent_tx, spent_rx) = crossbeam_channel::bounded(room);
            for part in &parts {
                tx.send(part.clone()).unwrap();
            }
            drop(tx);
            let got = manifest_of_blocks(rx, Some(spent_tx));
            assert_eq!(got, manifest_of_reader(&data[..]).unwrap(), "room {room}");
            let back: Vec<Vec<u8>> = spent_rx.try_iter().collect();
            // The last block is still the reader's when the channel closes.
            assert_eq!(back.len(), room.min(parts.len() - 1), "room {room}");
            assert!(back.iter().zip(&parts).all(|(b, p)| b == p));
        }
    }
}
