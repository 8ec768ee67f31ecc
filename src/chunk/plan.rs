//! Building a file from chunks, without I/O: which chunk goes at which
//! offsets, which are still missing, and whether offered bytes are the chunk
//! they claim to be.
//!
//! The I/O side (server actor, client download) offers bytes from wherever it
//! thinks a chunk lives — its own copy found through an index, or a chunk the
//! peer sent — and writes them at the offsets [`AssemblyPlan::fill`] returns.
//! Every offer is re-hashed here, so a stale index entry or a lying peer can
//! only leave a chunk missing, never put wrong bytes in the file.

use super::manifest::{ChunkEntry, IdLen, Manifest, ManifestError};
use crate::protocol::delta::ChunkRange;
use crate::protocol::ContentHash;
use std::collections::HashMap;
use std::fmt;

/// Why offered chunk bytes were refused. The plan is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssemblyError {
    /// The manifest lists no chunk with this ID.
    UnexpectedChunk(ContentHash),
    /// The bytes are not as long as the manifest says this chunk is.
    LengthMismatch {
        /// The chunk.
        id: ContentHash,
        /// Length in the manifest.
        expected: u32,
        /// Bytes offered.
        got: usize,
    },
    /// The bytes do not hash to the chunk's ID.
    HashMismatch(ContentHash),
}

impl fmt::Display for AssemblyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AssemblyError::UnexpectedChunk(id) => write!(f, "chunk {id} is not in the manifest"),
            AssemblyError::LengthMismatch { id, expected, got } => {
                write!(f, "chunk {id}: {got} bytes, manifest says {expected}")
            }
            AssemblyError::HashMismatch(id) => {
                write!(f, "chunk {id}: the bytes do not hash to this ID")
            }
        }
    }
}

impl std::error::Error for AssemblyError {}

#[derive(Debug)]
struct Slot {
    /// Index of the chunk's first occurrence in the manifest.
    first_index: u32,
    len: u32,
    offsets: Vec<u64>,
    /// The whole BLAKE3 of the bytes written, once filled (with short IDs
    /// the list holds only its first 16 bytes).
    filled: Option<ContentHash>,
}

/// The state of one file being built: per distinct chunk ID, its length, the
/// offsets it occupies, and whether its bytes have been written.
///
/// Memory: about 100 bytes per distinct chunk (1.6 MB for a 1 GiB file of
/// 64 KiB chunks), bounded by the manifest limit.
#[derive(Debug)]
pub struct AssemblyPlan {
    size: u64,
    hash: ContentHash,
    id_len: IdLen,
    order: Vec<ContentHash>,
    slots: HashMap<ContentHash, Slot>,
    missing: usize,
}

impl AssemblyPlan {
    /// A plan for `manifest`, every chunk missing.
    ///
    /// # Errors
    /// The manifest's [`ManifestError`]: a hostile list is refused before
    /// anything is planned.
    pub fn new(manifest: &Manifest) -> Result<AssemblyPlan, ManifestError> {
        manifest.validate()?;
        let mut order = Vec::new();
        let mut slots: HashMap<ContentHash, Slot> = HashMap::new();
        for (index, (offset, chunk)) in manifest.offsets().enumerate() {
            let slot = slots.entry(chunk.id).or_insert_with(|| {
                order.push(chunk.id);
                Slot {
                    // A validated manifest has at most MAX_MANIFEST_CHUNKS (2^20) entries.
                    first_index: index as u32,
                    len: chunk.len,
                    offsets: Vec::new(),
                    filled: None,
                }
            });
            if slot.len != chunk.len {
                // Same ID, two lengths: one of them lies. Treat the ID as
                // unfillable by giving it a length no bytes can match twice;
                // the whole-file hash check refuses the result anyway.
                slot.len = slot.len.min(chunk.len);
            }
            slot.offsets.push(offset);
        }
        let missing = order.len();
        Ok(AssemblyPlan {
            size: manifest.size,
            hash: manifest.hash,
            id_len: manifest.id_len,
            order,
            slots,
            missing,
        })
    }

    /// Total size of the file being built.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The whole-file hash the built file must have.
    pub fn hash(&self) -> ContentHash {
        self.hash
    }

    /// Distinct chunk IDs with their lengths, in first-occurrence order.
    pub fn distinct(&self) -> impl Iterator<Item = (ContentHash, u32)> + '_ {
        self.order
            .iter()
            .filter_map(|id| self.slots.get(id).map(|s| (*id, s.len)))
    }

    /// IDs still missing, in first-occurrence order.
    pub fn missing(&self) -> Vec<ContentHash> {
        self.order
            .iter()
            .filter(|id| self.slots.get(id).is_some_and(|s| s.filled.is_none()))
            .copied()
            .collect()
    }

    /// The first-occurrence indexes of the missing chunks as increasing runs:
    /// what a receiver asks its peer for (`ChunksNeeded`, `FetchChunks`).
    pub fn missing_ranges(&self) -> Vec<ChunkRange> {
        let mut ranges: Vec<ChunkRange> = Vec::new();
        for id in &self.order {
            let Some(slot) = self.slots.get(id).filter(|s| s.filled.is_none()) else {
                continue;
            };
            match ranges.last_mut() {
                Some(run) if run.end() == u64::from(slot.first_index) => run.count += 1,
                _ => ranges.push(ChunkRange {
                    first: slot.first_index,
                    count: 1,
                }),
            }
        }
        ranges
    }

    /// Bytes of the file not yet written (counting every occurrence).
    pub fn missing_bytes(&self) -> u64 {
        self.slots
            .values()
            .filter(|s| s.filled.is_none())
            .map(|s| u64::from(s.len) * s.offsets.len() as u64)
            .sum()
    }

    /// Whether `id` is listed and still missing.
    pub fn wants(&self, id: &ContentHash) -> bool {
        self.slots.get(id).is_some_and(|s| s.filled.is_none())
    }

    /// True once every chunk has been filled.
    pub fn is_complete(&self) -> bool {
        self.missing == 0
    }

    /// Accepts `bytes` as chunk `id` if they are exactly it, and returns the
    /// offsets to write them at (empty if the chunk was already filled: a
    /// repeat is harmless).
    ///
    /// # Errors
    /// [`AssemblyError`] when the ID is not listed, or the bytes' length or
    /// BLAKE3 differ from it; the plan is unchanged.
    pub fn fill(&mut self, id: &ContentHash, bytes: &[u8]) -> Result<&[u64], AssemblyError> {
        let slot = self
            .slots
            .get_mut(id)
            .ok_or(AssemblyError::UnexpectedChunk(*id))?;
        if bytes.len() != slot.len as usize {
            return Err(AssemblyError::LengthMismatch {
                id: *id,
                expected: slot.len,
                got: bytes.len(),
            });
        }
        let hash = ContentHash::of(bytes);
        if !self.id_len.matches(id, &hash) {
            return Err(AssemblyError::HashMismatch(*id));
        }
        if slot.filled.is_some() {
            return Ok(&[]);
        }
        slot.filled = Some(hash);
        self.missing -= 1;
        Ok(&slot.offsets)
    }

    /// `manifest` (the list this plan was made from) with every chunk's
    /// whole BLAKE3, learnt from the bytes written; `None` until the plan
    /// is complete. With a list of short IDs (§13.6) this is what a chunk
    /// index records, so that 36-byte lists served later carry true IDs.
    pub fn full_manifest(&self, manifest: &Manifest) -> Option<Manifest> {
        if !self.is_complete() {
            return None;
        }
        let chunks = manifest
            .chunks
            .iter()
            .map(|c| {
                let slot = self.slots.get(&c.id)?;
                Some(ChunkEntry {
                    len: c.len,
                    id: slot.filled?,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Manifest {
            size: manifest.size,
            hash: manifest.hash,
            chunks,
            id_len: IdLen::Full,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::manifest_of_reader;
    use proptest::prelude::*;

    fn data(len: usize, seed: u8) -> Vec<u8> {
        crate::chunk::test_bytes(len, u64::from(seed))
    }

    /// Builds `target` from the chunks of `have` plus what the peer sends,
    /// like the I/O side does, and returns the built bytes and bytes fetched.
    fn build(have: &[u8], target: &[u8]) -> (Vec<u8>, u64) {
        let manifest = manifest_of_reader(target).expect("read");
        let mut plan = AssemblyPlan::new(&manifest).expect("honest manifest");
        let mut out = vec![0u8; target.len()];
        let mut write = |offsets: &[u64], bytes: &[u8]| {
            for &o in offsets {
                out[o as usize..o as usize + bytes.len()].copy_from_slice(bytes);
            }
        };
        for item in crate::chunk::chunk_reader(have) {
            let (span, bytes) = item.expect("read");
            if plan.wants(&span.id) {
                let offsets = plan.fill(&span.id, &bytes).expect("local bytes hash right");
                write(offsets, &bytes);
            }
        }
        let mut fetched = 0;
        let sent: HashMap<ContentHash, Vec<u8>> = crate::chunk::chunk_reader(target)
            .map(|c| c.expect("read"))
            .map(|(s, b)| (s.id, b))
            .collect();
        for id in plan.missing() {
            let bytes = &sent[&id];
            fetched += bytes.len() as u64;
            let offsets = plan.fill(&id, bytes).expect("peer bytes").to_vec();
            write(&offsets, bytes);
        }
        assert!(plan.is_complete());
        assert_eq!(plan.missing_bytes(), 0);
        (out, fetched)
    }

    #[test]
    fn wrong_bytes_are_refused_and_leave_the_chunk_missing() {
        let target = data(200_000, 3);
        let manifest = manifest_of_reader(&target[..]).expect("read");
        let mut plan = AssemblyPlan::new(&manifest).expect("valid");
        let first = manifest.chunks[0];
        let mut bytes = target[..first.len as usize].to_vec();
        bytes[0] ^= 1;
        assert_eq!(
            plan.fill(&first.id, &bytes),
            Err(AssemblyError::HashMismatch(first.id))
        );
        assert!(matches!(
            plan.fill(&first.id, &bytes[1..]),
            Err(AssemblyError::LengthMismatch { .. })
        ));
        let stranger = ContentHash::of(b"stranger");
        assert_eq!(
            plan.fill(&stranger, b"stranger"),
            Err(AssemblyError::UnexpectedChunk(stranger))
        );
        assert!(plan.wants(&first.id));
        assert_eq!(plan.missing().first(), Some(&first.id));
        bytes[0] ^= 1;
        assert_eq!(plan.fill(&first.id, &bytes), Ok(&[0u64][..]));
        assert_eq!(
            plan.fill(&first.id, &bytes),
            Ok(&[][..]),
            "a repeat writes nothing"
        );
    }

    /// A list of short IDs (§13.6) builds the same file: its chunks are
    /// taken by their 16-byte prefix, bytes that differ are refused, and the
    /// completed plan gives back the full list.
    #[test]
    fn short_ids_build_the_file_and_give_back_full_ids() {
        let block = data(300_000, 21);
        let target: Vec<u8> = [&block[..], &data(150_000, 22)[..], &block[..]].concat();
        let full = manifest_of_reader(&target[..]).expect("read");
        let short = Manifest {
            chunks: full
                .chunks
                .iter()
                .map(|c| ChunkEntry {
                    len: c.len,
                    id: IdLen::Short.cut(c.id),
                })
                .collect(),
            id_len: IdLen::Short,
            ..full.clone()
        };
        let mut plan = AssemblyPlan::new(&short).expect("valid");
        let first = short.chunks[0];
        let mut bytes = target[..first.len as usize].to_vec();
        bytes[7] ^= 0x40;
        assert_eq!(
            plan.fill(&first.id, &bytes),
            Err(AssemblyError::HashMismatch(first.id))
        );
        assert_eq!(
            plan.fill(&full.chunks[0].id, &target[..first.len as usize]),
            Err(AssemblyError::UnexpectedChunk(full.chunks[0].id)),
            "a full ID is not a key of a short list"
        );
        assert!(plan.full_manifest(&short).is_none(), "not complete yet");
        for (offset, chunk) in short.offsets() {
            let at = offset as usize;
            plan.fill(&chunk.id, &target[at..at + chunk.len as usize])
                .expect("right bytes");
        }
        assert!(plan.is_complete());
        assert_eq!(plan.full_manifest(&short), Some(full));
    }

    #[test]
    fn missing_ranges_are_runs_of_first_occurrences() {
        let block = data(300_000, 5);
        let target: Vec<u8> = [&block[..], &data(200_000, 6)[..], &block[..]].concat();
        let manifest = manifest_of_reader(&target[..]).expect("read");
        let mut plan = AssemblyPlan::new(&manifest).expect("valid");
        let all = plan.missing_ranges();
        let asked: u64 = all.iter().map(|r| u64::from(r.count)).sum();
        assert_eq!(asked as usize, plan.missing().len());
        assert!(
            asked < manifest.chunks.len() as u64,
            "repeats are asked once"
        );
        let second = manifest.chunks[1];
        let at = manifest
            .offsets()
            .nth(1)
            .map(|(o, _)| o as usize)
            .expect("two chunks");
        plan.fill(&second.id, &target[at..at + second.len as usize])
            .expect("right bytes");
        let ranges = plan.missing_ranges();
        assert_eq!(ranges[0], ChunkRange { first: 0, count: 1 });
        assert_eq!(ranges[1].first, 2);
    }

    #[test]
    fn repeated_content_is_fetched_once_and_written_everywhere() {
        let block = data(300_000, 9);
        let target: Vec<u8> = [&block[..], &block[..], &block[..]].concat();
        let (built, fetched) = build(&[], &target);
        assert_eq!(built, target);
        assert!(fetched < 2 * block.len() as u64, "fetched {fetched}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        /// Random edits (overwrite, insert, delete, append, truncate): the
        /// built file equals the target, and what is fetched is bounded by
        /// the edit plus a few maximum chunks around each end.
        #[test]
        fn edits_build_byte_identical_files(
            seed in any::<u8>(),
            len in 0usize..(1 << 20),
            op in 0u8..5,
            at_frac in 0.0f64..1.0,
            edit_len in 0usize..100_000,
        ) {
            let old = data(len, seed);
            let at = (len as f64 * at_frac) as usize;
            let fresh = data(edit_len, seed.wrapping_add(1));
            let new: Vec<u8> = match op {
                0 => { let mut v = old.clone(); let end = (at + edit_len).min(len); v[at..end].copy_from_slice(&fresh[..end - at]); v }
                1 => [&old[..at], &fresh[..], &old[at..]].concat(),
                2 => [&old[..at], &old[(at + edit_len).min(len)..]].concat(),
                3 => [&old[..], &fresh[..]].concat(),
                _ => old[..at].to_vec(),
            };
            let (built, fetched) = build(&old, &new);
            prop_assert_eq!(&built, &new);
            let bound = edit_len as u64 + 4 * u64::from(crate::chunk::MAX_CHUNK);
            prop_assert!(fetched <= bound, "fetched {} > {}", fetched, bound);
        }
    }
}
