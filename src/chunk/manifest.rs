//! A file's chunk list ([`Manifest`]) and the checks that make a peer's list
//! safe to act on.

use super::{MAX_CHUNK, MIN_CHUNK};
use crate::protocol::ContentHash;
use std::fmt;

/// Most chunks one manifest may list: 1,048,576 (16 GiB of minimum-size
/// chunks, 64 GiB at the average). A list this long costs its receiver
/// 36 MiB while it is checked; a larger file travels whole.
pub const MAX_MANIFEST_CHUNKS: usize = 1 << 20;

/// Bytes one chunk takes in a manifest on the wire: `len u32 | id [32]`.
pub const ENTRY_WIRE_LEN: usize = 36;

/// Bytes of a chunk ID in a version 4 chunk list (PROTOCOL.md §13.6): the
/// first 16 of the chunk's BLAKE3.
pub const SHORT_ID_BYTES: usize = 16;

/// How much of each chunk's BLAKE3 a chunk list carries (PROTOCOL.md §13.2,
/// §13.6). The whole-file BLAKE3 checks every assembled file either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum IdLen {
    /// All 32 bytes (`ChunkList`, `len u32 | id [32]`).
    #[default]
    Full,
    /// The first [`SHORT_ID_BYTES`] (`ShortChunkList`, `len u24 | id [16]`).
    /// A short ID is held as those 16 bytes followed by 16 zero bytes.
    Short,
}

impl IdLen {
    /// Bytes of the hash the list carries: 32 or 16.
    pub fn bytes(self) -> usize {
        match self {
            IdLen::Full => 32,
            IdLen::Short => SHORT_ID_BYTES,
        }
    }

    /// `hash` as a list of this kind carries it: whole, or its first 16
    /// bytes followed by zeros.
    pub fn cut(self, hash: ContentHash) -> ContentHash {
        match self {
            IdLen::Full => hash,
            IdLen::Short => {
                let mut id = [0u8; 32];
                id[..SHORT_ID_BYTES].copy_from_slice(&hash.0[..SHORT_ID_BYTES]);
                ContentHash(id)
            }
        }
    }

    /// Whether bytes whose BLAKE3 is `hash` are the chunk listed as `id`.
    pub fn matches(self, id: &ContentHash, hash: &ContentHash) -> bool {
        self.cut(*hash) == *id
    }
}

/// One chunk of a manifest: its length and ID, in file order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChunkEntry {
    /// Bytes, 1..=[`MAX_CHUNK`].
    pub len: u32,
    /// BLAKE3 of the chunk's bytes (in a list of [`IdLen::Short`] IDs,
    /// its first 16 bytes and 16 zeros).
    pub id: ContentHash,
}

/// What a file is made of: its chunks in order, its size and its whole hash.
///
/// Offsets are implicit (each chunk starts where the previous one ended), so
/// a list cannot describe overlapping or out-of-range chunks; what
/// [`Manifest::validate`] refuses is a list whose lengths lie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// Total bytes: the sum of the chunk lengths.
    pub size: u64,
    /// BLAKE3 of the whole content; checked before a built file is placed.
    pub hash: ContentHash,
    /// The chunks, front to back.
    pub chunks: Vec<ChunkEntry>,
    /// How much of each chunk's BLAKE3 the IDs hold.
    pub id_len: IdLen,
}

/// Why a chunk list was refused. Nothing is read, written or allocated for
/// its chunks once one of these is returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestError {
    /// More than [`MAX_MANIFEST_CHUNKS`] chunks.
    TooManyChunks(usize),
    /// More chunks than `size / MIN_CHUNK + 1`: lengths cannot all be honest.
    ChunkCountImplausible {
        /// Chunks listed.
        count: usize,
        /// Declared size.
        size: u64,
    },
    /// A chunk of length 0, or longer than [`MAX_CHUNK`].
    ChunkLenOutOfRange {
        /// Position in the list.
        index: usize,
        /// Its length.
        len: u32,
    },
    /// A chunk other than the last shorter than [`MIN_CHUNK`].
    ChunkTooShort {
        /// Position in the list.
        index: usize,
        /// Its length.
        len: u32,
    },
    /// The lengths do not add up to `size` (or overflow a `u64`).
    SizeMismatch {
        /// Declared size.
        size: u64,
        /// What the lengths add up to, saturated at `u64::MAX`.
        sum: u64,
    },
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ManifestError::TooManyChunks(n) => {
                write!(f, "{n} chunks, more than {MAX_MANIFEST_CHUNKS}")
            }
            ManifestError::ChunkCountImplausible { count, size } => {
                write!(f, "{count} chunks cannot make {size} bytes")
            }
            ManifestError::ChunkLenOutOfRange { index, len } => {
                write!(f, "chunk {index} has length {len}, outside 1..={MAX_CHUNK}")
            }
            ManifestError::ChunkTooShort { index, len } => {
                write!(f, "chunk {index} has length {len}, under {MIN_CHUNK}")
            }
            ManifestError::SizeMismatch { size, sum } => {
                write!(f, "chunks add up to {sum} bytes, not {size}")
            }
        }
    }
}

impl std::error::Error for ManifestError {}

impl Manifest {
    /// Checks that the list can be acted on: bounded, plausible, every length
    /// in range, and adding up to `size`. Cheap: no allocation, one pass.
    ///
    /// # Errors
    /// The first [`ManifestError`] found.
    pub fn validate(&self) -> Result<(), ManifestError> {
        check_count(self.chunks.len(), self.size)?;
        let last = self.chunks.len().saturating_sub(1);
        let mut sum = 0u64;
        for (index, chunk) in self.chunks.iter().enumerate() {
            if chunk.len == 0 || chunk.len > MAX_CHUNK {
                return Err(ManifestError::ChunkLenOutOfRange {
                    index,
                    len: chunk.len,
                });
            }
            if index < last && chunk.len < MIN_CHUNK {
                return Err(ManifestError::ChunkTooShort {
                    index,
                    len: chunk.len,
                });
            }
            sum = sum.saturating_add(u64::from(chunk.len));
        }
        if sum != self.size {
            return Err(ManifestError::SizeMismatch {
                size: self.size,
                sum,
            });
        }
        Ok(())
    }

    /// Byte offset of each chunk, in order. Only meaningful on a validated
    /// manifest (offsets then never overflow).
    pub fn offsets(&self) -> impl Iterator<Item = (u64, &ChunkEntry)> {
        self.chunks.iter().scan(0u64, |at, chunk| {
            let start = *at;
            *at = at.saturating_add(u64::from(chunk.len));
            Some((start, chunk))
        })
    }
}

/// Checks a chunk count against the limits before any entry is read or
/// stored, so a header announcing a billion chunks is refused at once.
///
/// # Errors
/// [`ManifestError::TooManyChunks`] or [`ManifestError::ChunkCountImplausible`].
pub fn check_count(count: usize, size: u64) -> Result<(), ManifestError> {
    if count > MAX_MANIFEST_CHUNKS {
        return Err(ManifestError::TooManyChunks(count));
    }
    let most = size / u64::from(MIN_CHUNK) + 1;
    let implausible = (size == 0 && count != 0) || (count as u64) > most;
    if implausible {
        return Err(ManifestError::ChunkCountImplausible { count, size });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry(len: u32, tag: u8) -> ChunkEntry {
        ChunkEntry {
            len,
            id: ContentHash([tag; 32]),
        }
    }

    fn manifest(lens: &[u32]) -> Manifest {
        Manifest {
            size: lens.iter().map(|&l| u64::from(l)).sum(),
            hash: ContentHash([0; 32]),
            chunks: lens.iter().map(|&l| entry(l, 1)).collect(),
            id_len: IdLen::Full,
        }
    }

    #[test]
    fn honest_lists_pass() {
        assert_eq!(manifest(&[]).validate(), Ok(()));
        assert_eq!(manifest(&[1]).validate(), Ok(()));
        assert_eq!(manifest(&[MIN_CHUNK, MAX_CHUNK, 5]).validate(), Ok(()));
    }

    #[test]
    fn lying_lists_are_refused_with_their_cause() {
        let mut m = manifest(&[MIN_CHUNK, MIN_CHUNK]);
        m.size += 1;
        assert!(matches!(
            m.validate(),
            Err(ManifestError::SizeMismatch { .. })
        ));
        assert!(matches!(
            manifest(&[MIN_CHUNK, 0, MIN_CHUNK]).validate(),
            Err(ManifestError::ChunkLenOutOfRange { index: 1, len: 0 })
        ));
        assert!(matches!(
            manifest(&[MAX_CHUNK + 1]).validate(),
            Err(ManifestError::ChunkLenOutOfRange { index: 0, .. })
        ));
        assert!(matches!(
            manifest(&[100, MIN_CHUNK]).validate(),
            Err(ManifestError::ChunkTooShort { index: 0, len: 100 })
        ));
        let empty_with_chunk = Manifest {
            size: 0,
            hash: ContentHash([0; 32]),
            chunks: vec![entry(1, 0)],
            id_len: IdLen::Full,
        };
        assert!(matches!(
            empty_with_chunk.validate(),
            Err(ManifestError::ChunkCountImplausible { .. })
        ));
    }

    #[test]
    fn a_billion_chunks_is_refused_from_the_count_alone() {
        assert_eq!(
            check_count(1_000_000_000, u64::MAX),
            Err(ManifestError::TooManyChunks(1_000_000_000))
        );
        assert!(check_count(MAX_MANIFEST_CHUNKS, u64::MAX).is_ok());
        assert!(matches!(
            check_count(3, u64::from(MIN_CHUNK)),
            Err(ManifestError::ChunkCountImplausible { .. })
        ));
    }

    #[test]
    fn lengths_that_overflow_u64_are_a_size_mismatch() {
        let m = Manifest {
            size: u64::MAX,
            hash: ContentHash([0; 32]),
            chunks: vec![entry(MAX_CHUNK, 0); 8],
            id_len: IdLen::Full,
        };
        assert!(matches!(
            m.validate(),
            Err(ManifestError::SizeMismatch { .. })
        ));
    }

    proptest! {
        /// Whatever a peer lists, validate never panics, and a list it accepts
        /// has offsets that tile exactly `0..size`.
        #[test]
        fn accepted_lists_tile_the_file(
            lens in proptest::collection::vec(prop_oneof![0u32..64, MIN_CHUNK - 2..MIN_CHUNK + 2, MAX_CHUNK - 2..MAX_CHUNK + 2, any::<u32>()], 0..12),
            size_delta in -3i64..3,
        ) {
            let mut m = manifest(&lens);
            m.size = m.size.saturating_add_signed(size_delta);
            if m.validate().is_ok() {
                let mut end = 0u64;
                for (offset, chunk) in m.offsets() {
                    prop_assert_eq!(offset, end);
                    end += u64::from(chunk.len);
                }
                prop_assert_eq!(end, m.size);
            }
        }
    }
}
