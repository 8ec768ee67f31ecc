//! Streaming chunker: cuts a reader into content-defined chunks and hashes
//! them, holding one [`super::cutter::BUFFER`] of the source at a time (a 1 GiB file is
//! never in memory).

use super::cutter::Cutter;
use super::manifest::{ChunkEntry, Manifest};
use super::MAX_CHUNK;
use crate::protocol::ContentHash;
use std::io::{self, Read};

/// One chunk as cut from a source: where it is and what it hashes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkSpan {
    /// Byte offset of the chunk's first byte in the source.
    pub offset: u64,
    /// Length in bytes, 1..=[`MAX_CHUNK`].
    pub len: u32,
    /// BLAKE3 of the chunk's bytes: its ID.
    pub id: ContentHash,
}

/// The chunks of `source`, front to back, with their bytes (for a sender that
/// needs them). Each item is the span and the chunk's bytes.
///
/// # Errors
/// Each item is an [`io::Error`] if reading the source failed.
pub fn chunk_reader<R: Read>(source: R) -> impl Iterator<Item = io::Result<(ChunkSpan, Vec<u8>)>> {
    let mut cutter = Cutter::new(source);
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed {
            return None;
        }
        match cutter.next_chunk() {
            Ok(Some((offset, bytes))) => Some(Ok((span_of(offset, bytes), bytes.to_vec()))),
            Ok(None) => None,
            Err(e) => {
                failed = true;
                Some(Err(e))
            }
        }
    })
}

/// The span of `bytes` cut at `offset`, with its ID.
fn span_of(offset: u64, bytes: &[u8]) -> ChunkSpan {
    ChunkSpan {
        offset,
        len: chunk_len(bytes),
        id: ContentHash::of(bytes),
    }
}

/// A chunk's length as a `u32`: the cutter never lends more than
/// [`MAX_CHUNK`] bytes.
fn chunk_len(bytes: &[u8]) -> u32 {
    u32::try_from(bytes.len()).unwrap_or(MAX_CHUNK)
}

/// The manifest of everything `source` yields: its chunk list, total size and
/// whole-content BLAKE3, in one pass over the source on this thread; each
/// chunk is hashed in place in the cutter's buffer (no copy).
///
/// # Errors
/// An [`io::Error`] if reading the source failed.
pub fn manifest_of_reader<R: Read>(source: R) -> io::Result<Manifest> {
    let mut whole = blake3::Hasher::new();
    let mut chunks = Vec::new();
    let mut size = 0u64;
    let mut cutter = Cutter::new(source);
    while let Some((_, bytes)) = cutter.next_chunk()? {
        whole.update(bytes);
        size += bytes.len() as u64;
        chunks.push(ChunkEntry {
            len: chunk_len(bytes),
            id: ContentHash::of(bytes),
        });
    }
    Ok(Manifest {
        size,
        hash: ContentHash(*whole.finalize().as_bytes()),
        chunks,
        id_len: super::manifest::IdLen::Full,
    })
}

/// Sources at least this long are worth [`manifest_of_reader_pipelined`]'s
/// second thread (a thread costs tens of microseconds; a file this size
/// takes milliseconds to cut and hash).
pub const PIPELINE_FROM: u64 = 8 << 20;

/// Chunks in flight between the cutting and the hashing thread of
/// [`manifest_of_reader_pipelined`]: at most this many [`MAX_CHUNK`]
/// buffers (4 MiB) are held at once, besides the cutter's
/// [`super::cutter::BUFFER`].
const IN_FLIGHT: usize = 16;

/// [`manifest_of_reader`] on two threads: this one reads and cuts (the
/// content-defined cut points), a scoped worker hashes each chunk (its ID)
/// and the whole content (BLAKE3 both), so a large file's manifest takes
/// about the longer of the two instead of their sum (a 1 GiB file on this
/// project's 2-core machine: see BENCHMARKS.md). Same result, byte for
/// byte, as [`manifest_of_reader`]; memory bounded by [`IN_FLIGHT`] chunks.
///
/// # Errors
/// An [`io::Error`] if reading the source failed (the worker is joined
/// first), or if the worker panicked.
pub fn manifest_of_reader_pipelined<R: Read>(source: R) -> io::Result<Manifest> {
    let (to_hasher, chunks_in) = crossbeam_channel::bounded::<Vec<u8>>(IN_FLIGHT);
    std::thread::scope(|scope| {
        let hasher = scope.spawn(move || {
            let mut whole = blake3::Hasher::new();
            let mut chunks = Vec::new();
            let mut size = 0u64;
            for data in chunks_in {
                whole.update(&data);
                size += data.len() as u64;
                chunks.push(ChunkEntry {
                    len: chunk_len(&data),
                    id: ContentHash::of(&data),
                });
            }
            (size, ContentHash(*whole.finalize().as_bytes()), chunks)
        });
        let mut failed = None;
        let mut cutter = Cutter::new(source);
        loop {
            match cutter.next_chunk() {
                Ok(Some((_, bytes))) => {
                    if to_hasher.send(bytes.to_vec()).is_err() {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        drop(to_hasher);
        let joined = hasher.join();
        if let Some(e) = failed {
            return Err(e);
        }
        let (size, hash, chunks) =
            joined.map_err(|_| io::Error::other("the chunk hashing thread panicked"))?;
        Ok(Manifest {
            size,
            hash,
            chunks,
            id_len: super::manifest::IdLen::Full,
        })
    })
}

/// The manifest of a source about `size` bytes long: on two threads
/// ([`manifest_of_reader_pipelined`]) from [`PIPELINE_FROM`] on, else on
/// this one ([`manifest_of_reader`]). The size only picks the way; the
/// manifest is of what the source yields.
///
/// # Errors
/// As the function it picks.
pub fn manifest_of_reader_sized<R: Read>(source: R, size: u64) -> io::Result<Manifest> {
    if size >= PIPELINE_FROM {
        manifest_of_reader_pipelined(source)
    } else {
        manifest_of_reader(source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::cutter::BUFFER;
    use crate::chunk::{AVG_CHUNK, MIN_CHUNK};
    use fastcdc::v2020::StreamCDC;
    use proptest::prelude::*;

    /// The manifest as this module made it before the cutter (until
    /// 2026-12-02): `StreamCDC`'s chunks, a BLAKE3 of each, one over all.
    fn previous_manifest(data: &[u8]) -> Manifest {
        let mut whole = blake3::Hasher::new();
        let mut chunks = Vec::new();
        for chunk in StreamCDC::new(data, MIN_CHUNK, AVG_CHUNK, MAX_CHUNK) {
            let chunk = chunk.expect("in-memory read");
            whole.update(&chunk.data);
            chunks.push(ChunkEntry {
                len: chunk.length as u32,
                id: ContentHash::of(&chunk.data),
            });
        }
        Manifest {
            size: data.len() as u64,
            hash: ContentHash(*whole.finalize().as_bytes()),
            chunks,
            id_len: crate::chunk::IdLen::Full,
        }
    }

    fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
        crate::chunk::test_bytes(len, seed)
    }

    #[test]
    fn spans_cover_the_source_in_order_within_the_size_bounds() {
        let data = pseudo_random(3 << 20, 7);
        let spans: Vec<ChunkSpan> = chunk_reader(&data[..])
            .map(|c| c.expect("in-memory read").0)
            .collect();
        let mut at = 0u64;
        for (i, span) in spans.iter().enumerate() {
            assert_eq!(span.offset, at);
            assert!(span.len <= MAX_CHUNK);
            if i + 1 < spans.len() {
                assert!(span.len >= MIN_CHUNK);
            }
            let start = span.offset as usize;
            let bytes = &data[start..start + span.len as usize];
            assert_eq!(span.id, ContentHash::of(bytes));
            at += u64::from(span.len);
        }
        assert_eq!(at, data.len() as u64);
    }

    #[test]
    fn empty_source_has_an_empty_manifest() {
        let m = manifest_of_reader(&[][..]).expect("in-memory read");
        assert_eq!(m.size, 0);
        assert!(m.chunks.is_empty());
        assert_eq!(m.hash, ContentHash::of_empty());
        assert_eq!(m.validate(), Ok(()));
    }

    /// A reader that fails after `ok` bytes.
    struct FailsAfter<'a> {
        data: &'a [u8],
        ok: usize,
    }

    impl Read for FailsAfter<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.ok == 0 {
                return Err(io::Error::other("disk gone"));
            }
            let n = buf.len().min(self.ok).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            self.ok -= n;
            Ok(n)
        }
    }

    #[test]
    fn the_pipelined_manifest_passes_a_read_error_on() {
        let data = pseudo_random(3 << 20, 9);
        let failing = FailsAfter {
            data: &data,
            ok: 2 << 20,
        };
        let err = manifest_of_reader_pipelined(failing).expect_err("the read fails");
        assert_eq!(err.to_string(), "disk gone");
        let empty = manifest_of_reader_pipelined(&[][..]).expect("in-memory read");
        assert_eq!(empty, manifest_of_reader(&[][..]).expect("in-memory read"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// Two threads or one, the manifest is the same.
        #[test]
        fn the_pipelined_manifest_is_the_sequential_one(
            seed in any::<u64>(),
            len in 0usize..(3usize << 20),
        ) {
            let data = pseudo_random(len, seed);
            let one = manifest_of_reader(&data[..]).expect("read");
            let two = manifest_of_reader_pipelined(&data[..]).expect("read");
            prop_assert_eq!(two.hash, ContentHash::of(&data));
            prop_assert_eq!(one, two);
        }

        /// The cutter changed nothing anyone sees: the same chunk lengths,
        /// IDs and whole hash as the StreamCDC-based manifest, one thread
        /// or two, across several cutter buffers; and chunk_reader lends
        /// the same spans with their bytes.
        #[test]
        fn the_manifest_is_the_one_stream_cdc_gave(
            seed in any::<u64>(),
            len in 0usize..(2 * BUFFER + 300_000),
        ) {
            let data = pseudo_random(len, seed);
            let before = previous_manifest(&data);
            prop_assert_eq!(&manifest_of_reader(&data[..]).expect("read"), &before);
            prop_assert_eq!(&manifest_of_reader_pipelined(&data[..]).expect("read"), &before);
            let mut at = 0usize;
            for (item, entry) in chunk_reader(&data[..]).zip(&before.chunks) {
                let (span, bytes) = item.expect("read");
                prop_assert_eq!(span.offset, at as u64);
                prop_assert_eq!((span.len, span.id), (entry.len, entry.id));
                prop_assert_eq!(&bytes[..], &data[at..at + entry.len as usize]);
                at += entry.len as usize;
            }
            prop_assert_eq!(at, data.len());
        }

        /// An overwrite in the middle leaves every chunk away from the edit
        /// unchanged: the new chunks add up to the edit plus at most a few
        /// maximum chunks on either side.
        #[test]
        fn an_edit_changes_only_chunks_near_it(
            seed in any::<u64>(),
            len in (2usize << 20)..(4usize << 20),
            at_frac in 0.1f64..0.9,
            edit_len in 1usize..(64 * 1024),
        ) {
            let old = pseudo_random(len, seed);
            let mut new = old.clone();
            let at = (len as f64 * at_frac) as usize;
            let end = (at + edit_len).min(len);
            for b in &mut new[at..end] {
                *b = b.wrapping_add(1);
            }
            let a = manifest_of_reader(&old[..]).expect("read");
            let b = manifest_of_reader(&new[..]).expect("read");
            prop_assert_eq!(b.size, len as u64);
            prop_assert_eq!(b.hash, ContentHash::of(&new));
            prop_assert_eq!(b.validate(), Ok(()));
            let old_ids: std::collections::HashSet<_> = a.chunks.iter().map(|c| c.id).collect();
            let fresh: u64 = b.chunks.iter().filter(|c| !old_ids.contains(&c.id)).map(|c| u64::from(c.len)).sum();
            prop_assert!(fresh <= edit_len as u64 + 4 * u64::from(MAX_CHUNK), "fresh {}", fresh);
        }
    }
}
