//! A [`ChunkFeed`] beside the thread that receives an upload: pieces of a
//! large upload go, moved (not copied), over a bounded channel to a worker
//! thread that cuts and hashes them, so the user's actor, which writes and
//! hashes the whole file as the pieces arrive, does not also do the cut
//! (about 0.75 CPU-seconds per GiB on this project's machine: on the actor
//! thread it made a loopback 1 GiB upload about 3 s longer at load 5-8,
//! BENCHMARKS.md "First download after a stream upload"). Small uploads are
//! cut on the caller's thread (a thread costs more than their cut).

use super::feed::ChunkFeed;
use super::manifest::Manifest;
use super::stream::PIPELINE_FROM;
use crate::protocol::ContentHash;
use crossbeam_channel::{bounded, Sender};
use std::thread::JoinHandle;

/// Pieces in flight to the worker: at most this many FileChunk payloads
/// (1 MiB each at most, `limits::MAX_PAYLOAD`: 8 MiB per upload) are held
/// at once; a caller that gets further ahead waits for the worker.
const IN_FLIGHT: usize = 8;

/// Where an upload's chunks are cut.
pub enum ChunkPipe {
    /// On the caller's thread.
    Here(ChunkFeed),
    /// On a worker thread, fed through `pieces`; `done` gives the feed back.
    Worker {
        /// The pieces, in order.
        pieces: Sender<Vec<u8>>,
        /// The worker, which returns its feed once `pieces` is closed.
        done: JoinHandle<ChunkFeed>,
    },
    /// The worker was lost (it panicked): no list.
    Lost,
}

impl ChunkPipe {
    /// A pipe for an upload announced as `size` bytes: a worker from
    /// [`PIPELINE_FROM`] on (or here, if the thread cannot be started).
    pub fn new(size: u64) -> ChunkPipe {
        if size < PIPELINE_FROM {
            return ChunkPipe::Here(ChunkFeed::new());
        }
        let (pieces, receive) = bounded::<Vec<u8>>(IN_FLIGHT);
        let started = std::thread::Builder::new()
            .name("chunk-feed".to_owned())
            .spawn(move || {
                let mut feed = ChunkFeed::new();
                for piece in receive {
                    feed.feed(&piece);
                }
                feed
            });
        match started {
            Ok(done) => ChunkPipe::Worker { pieces, done },
            Err(e) => {
                log::debug!("chunk-feed thread not started ({e}): cutting in place");
                ChunkPipe::Here(ChunkFeed::new())
            }
        }
    }

    /// The next piece, owned: moved to the worker, or cut here.
    pub fn feed(&mut self, piece: Vec<u8>) {
        match self {
            ChunkPipe::Here(feed) => feed.feed(&piece),
            ChunkPipe::Worker { pieces, .. } => {
                if pieces.send(piece).is_err() {
                    // The worker is gone: it panicked.
                    *self = ChunkPipe::Lost;
                }
            }
            ChunkPipe::Lost => {}
        }
    }

    /// The next piece, borrowed (copied for a worker).
    pub fn feed_slice(&mut self, piece: &[u8]) {
        match self {
            ChunkPipe::Here(feed) => feed.feed(piece),
            _ => self.feed(piece.to_vec()),
        }
    }

    /// The list of everything fed ([`ChunkFeed::finish`]), once the worker
    /// has cut what it was sent (at most [`IN_FLIGHT`] pieces behind);
    /// `None` when it was lost or the list passed the most chunks.
    pub fn finish(self, hash: ContentHash) -> Option<Manifest> {
        let feed = match self {
            ChunkPipe::Here(feed) => feed,
            ChunkPipe::Worker { pieces, done } => {
                drop(pieces);
                done.join().ok()?
            }
            ChunkPipe::Lost => return None,
        };
        feed.finish(hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::manifest_of_reader;

    /// Here or on a worker, owned or borrowed pieces: the list of the whole.
    #[test]
    fn both_ways_give_the_whole_contents_list() {
        for len in [0usize, 70_000, PIPELINE_FROM as usize + 300_001] {
            let data = crate::chunk::test_bytes(len, len as u64);
            let want = manifest_of_reader(&data[..]).expect("in memory");
            let mut pipe = ChunkPipe::new(len as u64);
            assert_eq!(
                matches!(pipe, ChunkPipe::Worker { .. }),
                len as u64 >= PIPELINE_FROM
            );
            for (i, piece) in data.chunks(200_000).enumerate() {
                if i % 2 == 0 {
                    pipe.feed(piece.to_vec());
                } else {
                    pipe.feed_slice(piece);
                }
            }
            assert_eq!(pipe.finish(want.hash), Some(want), "{len} bytes");
        }
    }
}
