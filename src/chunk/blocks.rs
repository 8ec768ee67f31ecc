//! The manifest of a file handed over block by block on a channel: the
//! hashing half of a one-read upload (PROTOCOL.md §13.8), whose other half
//! reads the blocks and sends them.

use super::manifest::Manifest;
use super::stream::manifest_of_reader;
use crossbeam_channel::Receiver;
use std::io::{self, Read};

/// A [`Read`] over the blocks that arrive on a channel, in order; the end
/// of the source is the channel's close.
struct BlockReader {
    blocks: Receiver<Vec<u8>>,
    current: Vec<u8>,
    at: usize,
}

impl Read for BlockReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // Bounded: each turn either takes a non-empty block or ends.
        while self.at == self.current.len() {
            match self.blocks.recv() {
                Ok(block) => {
                    self.current = block;
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
pub fn manifest_of_blocks(blocks: Receiver<Vec<u8>>) -> Manifest {
    let reader = BlockReader {
        blocks,
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
            let got = manifest_of_blocks(rx);
            let want = manifest_of_reader(&data[..]).unwrap();
            assert_eq!(got, want, "len {len} block {block}");
        }
    }
}
