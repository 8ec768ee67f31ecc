//! Content-defined chunks for delta transfer (issue 11): cut points, chunk IDs,
//! the manifest of a file, and the plan that builds a file from chunks.
//!
//! A file is cut with FastCDC (the 2020 algorithm of the `fastcdc` crate,
//! normalisation level 1, seed 0) into chunks of [`MIN_CHUNK`]..=[`MAX_CHUNK`]
//! bytes, [`AVG_CHUNK`] on average; a chunk's ID is the BLAKE3 of its bytes.
//! Cut points depend only on nearby content, so an edit moves at most the
//! boundaries next to it and every other chunk keeps its ID on both sides.
//!
//! # Why these sizes (measured)
//! `cargo run --release --example chunk_sizes` cuts a 128 MiB random file,
//! applies each edit and counts the bytes of the new chunks the old file did
//! not have ("re-sent"), plus the manifest bytes (36 per chunk) a 1 GiB file
//! would need. Figures on this machine (2026-12-01):
//!
//! | min / avg / max (KiB) | overwrite 1 MiB mid-file | append 1 MiB | insert 1 MiB mid-file | manifest of 1 GiB |
//! |---|---|---|---|---|
//! | 2 / 8 / 32 | 1.00 MiB | 1.00 MiB | 1.01 MiB | 3.83 MB |
//! | 4 / 16 / 64 | 1.02 MiB | 1.02 MiB | 1.02 MiB | 1.93 MB |
//! | **16 / 64 / 256** | 1.07 MiB | 1.03 MiB | 1.09 MiB | 0.47 MB |
//! | 32 / 128 / 512 | 1.08 MiB | 1.02 MiB | 1.53 MiB | 0.23 MB |
//! | 64 / 256 / 1024 | 1.35 MiB | 1.16 MiB | 1.62 MiB | 0.12 MB |
//!
//! Re-sent bytes plus the chunk list is what crosses the wire for an edit of
//! a 1 GiB file; it is smallest in the worst of the three edits at
//! 16 / 64 / 256 (1.09 MiB + 0.47 MB), where smaller chunks pay in list size
//! and larger ones in re-sent bytes around the edit.
//!
//! # Speed (measured)
//! `cargo bench --bench chunking` (256 MiB in memory, one thread, CPU
//! time): cut points alone about 1.9 GB per CPU-second (FastCDC's gear
//! loop, [`cutter`]), a BLAKE3 pass about 4.9, and what a file's manifest
//! costs ([`manifest_of_reader`]: cut points, chunk IDs and the whole-file
//! BLAKE3 in one pass) about 1.2 (issue 11 target 6: 1 GB/s on one core;
//! BENCHMARKS.md "Issue 11 targets 6 and 7").
//!
//! The largest chunk (256 KiB) fits one frame with room to spare.

pub mod blocks;
pub mod cutter;
pub mod feed;
pub mod feed_pipe;
pub mod index;
pub mod manifest;
pub mod plan;
pub mod receive;
pub mod stream;
pub mod tree_hash;

pub use cutter::Cutter;
pub use feed::ChunkFeed;
pub use manifest::{ChunkEntry, IdLen, Manifest, ManifestError};
pub use plan::{AssemblyError, AssemblyPlan};
pub use receive::{ManifestReceiver, ReceiveError};
pub use stream::{
    chunk_reader, manifest_of_reader, manifest_of_reader_pipelined, manifest_of_reader_sized,
    ChunkSpan, PIPELINE_FROM,
};

/// Smallest chunk FastCDC cuts (except a file's last chunk): 16 KiB. Files of at
/// most this size travel whole, in today's single FileBegin/FileEnd transfer.
pub const MIN_CHUNK: u32 = 16 * 1024;
/// Average chunk size FastCDC aims for: 64 KiB.
pub const AVG_CHUNK: u32 = 64 * 1024;
/// Largest chunk FastCDC cuts: 256 KiB (always fits one frame).
pub const MAX_CHUNK: u32 = 256 * 1024;

/// Test support (unit tests here and the `chunk_list` fuzz target): `len`
/// pseudo-random bytes (xorshift64) for `seed`, the same for the same seed;
/// incompressible, so chunk boundaries fall as on real data.
#[doc(hidden)]
pub fn test_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 32) as u8
        })
        .collect()
}
