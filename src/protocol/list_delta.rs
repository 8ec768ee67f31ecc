//! Chunk lists relative to a base version's list (protocol version 5,
//! PROTOCOL.md §13.7): a changed file's list as runs of the list its
//! receiver already holds plus the entries that are new, so an edit of a
//! large file costs a few hundred list bytes instead of 19 a chunk.
//!
//! The frame is decoded without knowing the base; [`expand`] then checks
//! the runs against the base list and the announced count (before any
//! entry is stored) and builds the whole list with 16-byte IDs, which goes
//! on exactly as a `ShortChunkList` (§13.6). [`diff`] is the sender's side.

use super::delta::{ShortChunkEntry, MAX_SHORT_ENTRY_LEN, SHORT_ENTRY_WIRE_LEN};
use super::error::FrameError;
use super::ids::ContentHash;
use super::limits::MAX_PAYLOAD;
use super::path::WirePath;
use super::wire::{put_path, put_u32, put_u64, FieldReader};
use crate::chunk::manifest::SHORT_ID_BYTES;
use crate::chunk::{ChunkEntry, IdLen};
use std::collections::HashMap;
use std::fmt;

/// Tag byte of a [`ListOp::Copy`].
const OP_COPY: u8 = 0x00;
/// Tag byte of a [`ListOp::New`].
const OP_NEW: u8 = 0x01;
/// Bytes of a `Copy` operation on the wire: `tag | first u32 | count u32`.
pub const COPY_WIRE_LEN: usize = 9;
/// Bytes of a `New` operation on the wire: `tag | len u24 | id [16]`.
pub const NEW_WIRE_LEN: usize = 1 + SHORT_ENTRY_WIRE_LEN;
/// Bytes before the operations: the base's whole-file BLAKE3.
pub const DELTA_HEADER_LEN: usize = 32;

/// One operation of a [`ChunkListDelta`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListOp {
    /// The base list's entries `first .. first + count`, in order.
    Copy {
        /// First index in the base list (0-based).
        first: u32,
        /// Entries, at least 1.
        count: u32,
    },
    /// One entry the base list does not supply (16-byte ID, as §13.6).
    New(ShortChunkEntry),
}

/// A whole chunk list described against the list of the content whose
/// whole-file BLAKE3 is `base_hash` (one frame, §13.7).
///
/// ```text
/// payload: base_hash [32] | op × n, n ≥ 1
/// op:      0x00 | first u32 | count u32        (copy base entries)
///        | 0x01 | len u24 | id [16]            (one new entry)
/// ```
/// Copy runs increase and do not overlap (`first` ≥ the previous run's
/// end), each has `count` ≥ 1 and ends at most at 2^32; else BadValue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkListDelta {
    /// BLAKE3 of the base content whose list the runs refer to.
    pub base_hash: ContentHash,
    /// The list, front to back.
    pub ops: Vec<ListOp>,
}

impl ChunkListDelta {
    pub(crate) fn decode(r: &mut FieldReader<'_>) -> Result<Self, FrameError> {
        let base_hash = ContentHash(r.array()?);
        let body = r.rest();
        if body.is_empty() {
            return Err(FrameError::Truncated);
        }
        let mut ops = Vec::new();
        let mut floor = 0u64;
        let mut at = 0usize;
        while at < body.len() {
            let tag = body[at];
            let len = match tag {
                OP_COPY => COPY_WIRE_LEN,
                OP_NEW => NEW_WIRE_LEN,
                _ => return Err(FrameError::BadValue),
            };
            let raw = body.get(at..at + len).ok_or(FrameError::Truncated)?;
            if tag == OP_COPY {
                let first = u32::from_be_bytes([raw[1], raw[2], raw[3], raw[4]]);
                let count = u32::from_be_bytes([raw[5], raw[6], raw[7], raw[8]]);
                let end = u64::from(first) + u64::from(count);
                // Empty, overlapping or out-of-order runs: one honest encoding.
                if count == 0 || u64::from(first) < floor || end > 1 << 32 {
                    return Err(FrameError::BadValue);
                }
                floor = end;
                ops.push(ListOp::Copy { first, count });
            } else {
                let mut id = [0u8; SHORT_ID_BYTES];
                id.copy_from_slice(&raw[4..]);
                ops.push(ListOp::New(ShortChunkEntry {
                    len: u32::from_be_bytes([0, raw[1], raw[2], raw[3]]),
                    id,
                }));
            }
            at += len;
        }
        Ok(ChunkListDelta { base_hash, ops })
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.base_hash.0);
        for op in &self.ops {
            match op {
                ListOp::Copy { first, count } => {
                    out.push(OP_COPY);
                    put_u32(out, *first);
                    put_u32(out, *count);
                }
                ListOp::New(entry) => {
                    out.push(OP_NEW);
                    let len = entry.len.min(MAX_SHORT_ENTRY_LEN).to_be_bytes();
                    out.extend_from_slice(&len[1..]);
                    out.extend_from_slice(&entry.id);
                }
            }
        }
    }

    /// Payload bytes of this frame.
    pub fn wire_len(&self) -> usize {
        DELTA_HEADER_LEN + ops_wire_len(&self.ops)
    }

    /// Whether the frame fits one payload (§3.1): a sender whose delta does
    /// not sends the whole list instead.
    pub fn fits(&self) -> bool {
        self.wire_len() <= MAX_PAYLOAD as usize
    }
}

/// Bytes `ops` take on the wire.
pub fn ops_wire_len(ops: &[ListOp]) -> usize {
    ops.iter()
        .map(|op| match op {
            ListOp::Copy { .. } => COPY_WIRE_LEN,
            ListOp::New(_) => NEW_WIRE_LEN,
        })
        .sum()
}

/// Asks for a file's chunk list relative to the list of the content the
/// client holds (a delta download, §13.7): the fields of `FetchManifest`
/// plus that content's BLAKE3.
///
/// ```text
/// payload: version u64 | base_hash [32] | path_len u16 | path
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchManifestSince {
    /// The version the client saw in a pull reply (informative).
    pub version: u64,
    /// BLAKE3 of the content of `path` the client holds.
    pub base_hash: ContentHash,
    /// The file wanted.
    pub path: WirePath,
}

impl FetchManifestSince {
    pub(crate) fn decode(r: &mut FieldReader<'_>) -> Result<Self, FrameError> {
        Ok(FetchManifestSince {
            version: r.u64()?,
            base_hash: ContentHash(r.array()?),
            path: r.path()?,
        })
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        put_u64(out, self.version);
        out.extend_from_slice(&self.base_hash.0);
        put_path(out, &self.path);
    }
}

/// Why a [`ChunkListDelta`] cannot be expanded against a base list. Nothing
/// is allocated for the list once one of these is returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListDeltaError {
    /// A copy run passes the end of the base list.
    RunPastBase {
        /// The run's first index.
        first: u32,
        /// Its count.
        count: u32,
        /// Entries in the base list.
        base_len: usize,
    },
    /// The operations describe another number of entries than announced.
    CountMismatch {
        /// Entries the `FileManifest` announced.
        announced: u32,
        /// Entries the operations describe (saturated).
        described: u64,
    },
}

impl fmt::Display for ListDeltaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListDeltaError::RunPastBase {
                first,
                count,
                base_len,
            } => write!(
                f,
                "chunk list delta copies base entries {first}..{} of a base list of {base_len}",
                u64::from(*first) + u64::from(*count)
            ),
            ListDeltaError::CountMismatch {
                announced,
                described,
            } => write!(
                f,
                "chunk list delta describes {described} entries, not the {announced} announced"
            ),
        }
    }
}

impl std::error::Error for ListDeltaError {}

/// The whole list `ops` describe against `base` (a list with whole or
/// short IDs), with 16-byte IDs ([`IdLen::Short`] form), checked to have
/// exactly `announced` entries before any is stored.
///
/// # Errors
/// [`ListDeltaError::RunPastBase`] when a run leaves the base list;
/// [`ListDeltaError::CountMismatch`] when the entries described are not
/// `announced` (a run of a billion entries is refused here, for nothing).
pub fn expand(
    base: &[ChunkEntry],
    ops: &[ListOp],
    announced: u32,
) -> Result<Vec<ChunkEntry>, ListDeltaError> {
    let mut described = 0u64;
    for op in ops {
        described += match *op {
            ListOp::Copy { first, count } => {
                if u64::from(first) + u64::from(count) > base.len() as u64 {
                    return Err(ListDeltaError::RunPastBase {
                        first,
                        count,
                        base_len: base.len(),
                    });
                }
                u64::from(count)
            }
            ListOp::New(_) => 1,
        };
    }
    if described != u64::from(announced) {
        return Err(ListDeltaError::CountMismatch {
            announced,
            described,
        });
    }
    let mut list = Vec::with_capacity(announced as usize);
    for op in ops {
        match *op {
            ListOp::Copy { first, count } => {
                let run = &base[first as usize..first as usize + count as usize];
                list.extend(run.iter().map(|e| ChunkEntry {
                    len: e.len,
                    id: IdLen::Short.cut(e.id),
                }));
            }
            ListOp::New(entry) => list.push(entry.to_entry()),
        }
    }
    Ok(list)
}

/// The operations that make `new` from `base` (both in file order, whole or
/// short IDs; entries compared by length and 16-byte ID): each entry of
/// `new` found in `base` at or after the end of the previous run joins or
/// starts a copy run, the others are `New`. `expand(base, &diff(base,
/// new), new.len())` gives `new` in the short form, whatever the lists.
pub fn diff(base: &[ChunkEntry], new: &[ChunkEntry]) -> Vec<ListOp> {
    let key = |e: &ChunkEntry| (e.len, IdLen::Short.cut(e.id));
    let mut at: HashMap<(u32, ContentHash), Vec<u32>> = HashMap::new();
    for (i, e) in base.iter().enumerate() {
        at.entry(key(e)).or_default().push(i as u32);
    }
    let mut ops: Vec<ListOp> = Vec::new();
    // One past the last base index copied: runs only move forward.
    let mut floor = 0u32;
    for entry in new {
        let k = key(entry);
        // Extend the current run when the next base entry is this one.
        if let Some(ListOp::Copy { first, count }) = ops.last_mut() {
            let next = *first + *count;
            if base.get(next as usize).map(key) == Some(k) {
                *count += 1;
                floor = next + 1;
                continue;
            }
        }
        let found = at.get(&k).and_then(|positions| {
            let i = positions.partition_point(|&p| p < floor);
            positions.get(i).copied()
        });
        match found {
            Some(first) => {
                ops.push(ListOp::Copy { first, count: 1 });
                floor = first + 1;
            }
            None => ops.push(ListOp::New(ShortChunkEntry::of(entry))),
        }
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::{manifest_of_reader, test_bytes};
    use proptest::prelude::*;

    fn list(data: &[u8]) -> Vec<ChunkEntry> {
        manifest_of_reader(data).expect("chunk").chunks
    }

    fn short(l: &[ChunkEntry]) -> Vec<ChunkEntry> {
        l.iter()
            .map(|e| ChunkEntry {
                len: e.len,
                id: IdLen::Short.cut(e.id),
            })
            .collect()
    }

    fn roundtrip(d: &ChunkListDelta) -> Result<ChunkListDelta, FrameError> {
        let mut out = Vec::new();
        d.encode(&mut out);
        assert_eq!(out.len(), d.wire_len());
        let mut r = FieldReader::new(&out);
        let back = ChunkListDelta::decode(&mut r)?;
        r.finish()?;
        Ok(back)
    }

    /// An overwrite in the middle of a 32 MiB file: two runs and a few new
    /// entries, a few hundred bytes against ~9,700 as a short list.
    #[test]
    fn an_overwrite_is_two_runs_and_the_changed_chunks() {
        let mut data = test_bytes(32 << 20, 7);
        let old = list(&data);
        data[(16 << 20)..(17 << 20)].copy_from_slice(&test_bytes(1 << 20, 8));
        let new = list(&data);
        let ops = diff(&old, &new);
        let copies = ops
            .iter()
            .filter(|o| matches!(o, ListOp::Copy { .. }))
            .count();
        assert_eq!(copies, 2, "{ops:?}");
        let d = ChunkListDelta {
            base_hash: ContentHash([1; 32]),
            ops,
        };
        assert!(d.wire_len() < 32 + 2 * COPY_WIRE_LEN + 24 * NEW_WIRE_LEN);
        let back = roundtrip(&d).expect("decodes");
        assert_eq!(
            expand(&old, &back.ops, new.len() as u32).expect("expands"),
            short(&new)
        );
    }

    #[test]
    fn hostile_deltas_are_refused_before_anything_is_stored() {
        let base = list(&test_bytes(1 << 20, 3));
        let n = base.len() as u32;
        // A run past the base's end.
        let past = [ListOp::Copy { first: 1, count: n }];
        assert!(matches!(
            expand(&base, &past, n),
            Err(ListDeltaError::RunPastBase { .. })
        ));
        // A billion entries: refused by the base length, nothing allocated.
        let billion = [ListOp::Copy {
            first: 0,
            count: 1_000_000_000,
        }];
        assert!(expand(&base, &billion, 1_000_000_000).is_err());
        // Not the announced count, either way.
        let all = [ListOp::Copy { first: 0, count: n }];
        assert!(matches!(
            expand(&base, &all, n + 1),
            Err(ListDeltaError::CountMismatch { .. })
        ));
        assert!(expand(&base, &all, n - 1).is_err());
        assert_eq!(expand(&base, &all, n).expect("honest"), short(&base));
        // Overlapping, out-of-order and empty runs, an unknown tag, a
        // partial operation and an empty list: the decoder refuses them.
        let bad = |ops: &[u8]| {
            let mut p = vec![0u8; 32];
            p.extend_from_slice(ops);
            let mut r = FieldReader::new(&p);
            ChunkListDelta::decode(&mut r).map(|_| ())
        };
        let copy = |first: u32, count: u32| {
            let mut v = vec![OP_COPY];
            v.extend_from_slice(&first.to_be_bytes());
            v.extend_from_slice(&count.to_be_bytes());
            v
        };
        assert_eq!(
            bad(&[copy(0, 5), copy(4, 1)].concat()),
            Err(FrameError::BadValue)
        );
        assert_eq!(
            bad(&[copy(5, 1), copy(0, 1)].concat()),
            Err(FrameError::BadValue)
        );
        assert_eq!(bad(&copy(3, 0)), Err(FrameError::BadValue));
        assert_eq!(bad(&copy(u32::MAX, 2)), Err(FrameError::BadValue));
        assert_eq!(bad(&[0x02]), Err(FrameError::BadValue));
        assert_eq!(bad(&copy(0, 1)[..5]), Err(FrameError::Truncated));
        assert_eq!(bad(&[OP_NEW, 0, 0]), Err(FrameError::Truncated));
        assert_eq!(bad(&[]), Err(FrameError::Truncated));
        assert_eq!(bad(&[copy(0, 5), copy(5, 1)].concat()), Ok(()));
    }

    #[derive(Debug, Clone)]
    enum Edit {
        Overwrite(usize, usize),
        Insert(usize, usize),
        Delete(usize, usize),
        Append(usize),
        Truncate(usize),
    }

    fn edit() -> impl Strategy<Value = Edit> {
        let at = 0usize..(4 << 20);
        let len = 1usize..(300 << 10);
        prop_oneof![
            (at.clone(), len.clone()).prop_map(|(a, l)| Edit::Overwrite(a, l)),
            (at.clone(), len.clone()).prop_map(|(a, l)| Edit::Insert(a, l)),
            (at.clone(), len.clone()).prop_map(|(a, l)| Edit::Delete(a, l)),
            len.prop_map(Edit::Append),
            at.prop_map(Edit::Truncate),
        ]
    }

    fn apply(data: &mut Vec<u8>, e: &Edit, seed: u64) {
        let fresh = |n: usize| test_bytes(n, seed);
        match *e {
            Edit::Overwrite(a, l) => {
                let a = a.min(data.len());
                let end = (a + l).min(data.len());
                data[a..end].copy_from_slice(&fresh(end - a));
            }
            Edit::Insert(a, l) => {
                let a = a.min(data.len());
                data.splice(a..a, fresh(l));
            }
            Edit::Delete(a, l) => {
                let a = a.min(data.len());
                let end = (a + l).min(data.len());
                data.drain(a..end);
            }
            Edit::Append(l) => data.extend_from_slice(&fresh(l)),
            Edit::Truncate(a) => data.truncate(a.min(data.len())),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Random files with random edits: the delta expands to the new
        /// list exactly, survives the wire, and its bytes are bounded by
        /// the changed runs: at most 2 copy runs per edit plus the new
        /// chunks (those not in the base) and the ones around each edit.
        #[test]
        fn random_edits_expand_to_the_new_list(
            size in (1usize << 20)..(4 << 20),
            seed in any::<u64>(),
            edits in proptest::collection::vec(edit(), 1..4),
        ) {
            let mut data = test_bytes(size, seed);
            let old = list(&data);
            for (i, e) in edits.iter().enumerate() {
                apply(&mut data, e, seed ^ ((i as u64 + 1) * 0x9e37));
            }
            let new = list(&data);
            let ops = diff(&old, &new);
            let d = ChunkListDelta { base_hash: ContentHash([9; 32]), ops };
            if !new.is_empty() {
                let back = roundtrip(&d).expect("decodes");
                prop_assert_eq!(&back, &d);
            }
            prop_assert_eq!(expand(&old, &d.ops, new.len() as u32).expect("expands"), short(&new));
            let olds: std::collections::HashSet<_> = short(&old).into_iter().collect();
            let fresh = short(&new).iter().filter(|e| !olds.contains(e)).count();
            let copies = d.ops.iter().filter(|o| matches!(o, ListOp::Copy { .. })).count();
            let news = d.ops.len() - copies;
            // Each edit cuts at most one run in two; a chunk of the base
            // may be taken as new only when it repeats behind a later run.
            prop_assert!(copies <= 2 * edits.len() + 1, "{} runs for {:?}", copies, edits);
            prop_assert!(news <= fresh + 2 * edits.len(), "{} new for {} fresh", news, fresh);
        }
    }
}
