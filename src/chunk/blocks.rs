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
