//! Delta transfer (protocol version 2, PROTOCOL.md §13): a file described by
//! its chunk list, and only the chunks the receiver lacks sent.
//!
//! Upload: `FileManifest` + `ChunkList`s (client) → `ChunksNeeded` (server)
//! → `ChunkData`s + `FileEnd` (client) → `PushAck`. Download: `FetchManifest`
//! (client) → `FileManifest` + `ChunkList`s (server) → `FetchChunks` (client)
//! → `ChunkData`s + `FileEnd` (server). Every frame of one transfer carries
//! the request ID of its first frame.

use super::error::FrameError;
use super::ids::ContentHash;
use super::limits::MAX_PAYLOAD;
use super::path::WirePath;
use super::wire::{put_path, put_u32, put_u64, FieldReader};
use crate::chunk::manifest::{ENTRY_WIRE_LEN, SHORT_ID_BYTES};
use crate::chunk::{ChunkEntry, IdLen, MAX_CHUNK};

/// Most entries one `ChunkList` frame carries: 29,127 (a full 1 MiB payload).
pub const MAX_LIST_ENTRIES: usize = MAX_PAYLOAD as usize / ENTRY_WIRE_LEN;
/// Bytes of one `ShortChunkList` entry (§13.6): `len u24 | id [16]`.
pub const SHORT_ENTRY_WIRE_LEN: usize = 3 + SHORT_ID_BYTES;
/// Most entries one `ShortChunkList` frame carries: 55,188 (1 MiB / 19).
pub const MAX_SHORT_LIST_ENTRIES: usize = MAX_PAYLOAD as usize / SHORT_ENTRY_WIRE_LEN;
/// Largest length a `ShortChunkList` entry can carry (a `u24`); chunks are
/// at most 262,144 bytes.
pub const MAX_SHORT_ENTRY_LEN: u32 = (1 << 24) - 1;
/// Most ranges one `ChunksNeeded`/`FetchChunks` frame carries: 131,071.
pub const MAX_RANGES: usize = (MAX_PAYLOAD as usize - 1) / 8;

/// Opens a delta transfer: what the file is, and how many chunk entries the
/// `ChunkList` frames after it will carry.
///
/// ```text
/// payload: version u64 | size u64 | hash [32] | chunk_count u32 | path_len u16 | path
/// ```
/// `version` is the base version in an upload and the sent version in a
/// download, as in `FileBegin` (§5.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileManifest {
    /// Base version (upload) or sent version (download).
    pub version: u64,
    /// Total bytes of the file.
    pub size: u64,
    /// BLAKE3 of the whole content.
    pub hash: ContentHash,
    /// Entries the following `ChunkList` frames carry in all.
    pub chunk_count: u32,
    /// The file.
    pub path: WirePath,
}

impl FileManifest {
    pub(crate) fn decode(r: &mut FieldReader<'_>) -> Result<Self, FrameError> {
        Ok(FileManifest {
            version: r.u64()?,
            size: r.u64()?,
            hash: ContentHash(r.array()?),
            chunk_count: r.u32()?,
            path: r.path()?,
        })
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        put_u64(out, self.version);
        put_u64(out, self.size);
        out.extend_from_slice(&self.hash.0);
        put_u32(out, self.chunk_count);
        put_path(out, &self.path);
    }
}

/// A run of consecutive chunk indexes (0-based positions in the manifest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkRange {
    /// First index.
    pub first: u32,
    /// How many, at least 1.
    pub count: u32,
}

impl ChunkRange {
    /// One past the last index (never overflows for a decoded range).
    pub fn end(&self) -> u64 {
        u64::from(self.first) + u64::from(self.count)
    }
}

/// The chunk indexes a receiver asks for, in increasing order, without
/// overlap. An answer may span frames: all but the last have `last` = false.
///
/// ```text
/// payload: last u8 (0 or 1) | ranges: (first u32 | count u32) × n, n ≤ 131071
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkRanges {
    /// True on the answer's last frame.
    pub last: bool,
    /// Increasing, non-overlapping, non-empty runs.
    pub ranges: Vec<ChunkRange>,
}

impl ChunkRanges {
    pub(crate) fn decode(r: &mut FieldReader<'_>) -> Result<Self, FrameError> {
        let last = match r.u8()? {
            0 => false,
            1 => true,
            _ => return Err(FrameError::BadValue),
        };
        let body = r.rest();
        if !body.len().is_multiple_of(8) {
            return Err(FrameError::Truncated);
        }
        let mut ranges = Vec::with_capacity(body.len() / 8);
        let mut floor = 0u64;
        for raw in body.chunks_exact(8) {
            let range = ChunkRange {
                first: u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]),
                count: u32::from_be_bytes([raw[4], raw[5], raw[6], raw[7]]),
            };
            // Empty, overlapping or out-of-order runs: one honest encoding only.
            if range.count == 0 || u64::from(range.first) < floor || range.end() > 1 << 32 {
                return Err(FrameError::BadValue);
            }
            floor = range.end();
            ranges.push(range);
        }
        Ok(ChunkRanges { last, ranges })
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.push(u8::from(self.last));
        for range in &self.ranges {
            put_u32(out, range.first);
            put_u32(out, range.count);
        }
    }

    /// Cuts sorted, non-overlapping `ranges` into frames of at most
    /// [`MAX_RANGES`] each; always at least one frame (the last).
    pub fn split(ranges: &[ChunkRange]) -> Vec<ChunkRanges> {
        let mut frames: Vec<ChunkRanges> = ranges
            .chunks(MAX_RANGES)
            .map(|part| ChunkRanges {
                last: false,
                ranges: part.to_vec(),
            })
            .collect();
        match frames.last_mut() {
            Some(frame) => frame.last = true,
            None => frames.push(ChunkRanges {
                last: true,
                ranges: Vec::new(),
            }),
        }
        frames
    }
}

/// One chunk's bytes, by its index in the manifest.
///
/// ```text
/// payload: index u32 | data (1..=262144 bytes, the rest of the payload)
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkData {
    /// Position of the chunk in the manifest.
    pub index: u32,
    /// The chunk's bytes.
    pub data: Vec<u8>,
}

impl ChunkData {
    /// Decodes from the whole payload, moving the bytes without a copy of
    /// more than the 4-byte index.
    pub(crate) fn decode_owned(mut payload: Vec<u8>) -> Result<Self, FrameError> {
        if payload.len() < 5 {
            return Err(FrameError::Truncated);
        }
        if payload.len() - 4 > MAX_CHUNK as usize {
            return Err(FrameError::FieldTooLong);
        }
        let index = u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]);
        payload.drain(..4);
        Ok(ChunkData {
            index,
            data: payload,
        })
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        put_u32(out, self.index);
        out.extend_from_slice(&self.data);
    }
}

/// Asks for a file's manifest (a delta download). Same fields as `Fetch`.
///
/// ```text
/// payload: version u64 | path_len u16 | path
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchManifest {
    /// The version the client saw in a pull reply (informative).
    pub version: u64,
    /// The file wanted.
    pub path: WirePath,
}

impl FetchManifest {
    pub(crate) fn decode(r: &mut FieldReader<'_>) -> Result<Self, FrameError> {
        Ok(FetchManifest {
            version: r.u64()?,
            path: r.path()?,
        })
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        put_u64(out, self.version);
        put_path(out, &self.path);
    }
}

/// Decodes a `ChunkList` payload: 1..=[`MAX_LIST_ENTRIES`] entries of
/// `len u32 | id [32]`. Lengths are checked against the manifest rules
/// later, when the whole list is in ([`crate::chunk::Manifest::validate`]).
pub(crate) fn decode_chunk_list(r: &mut FieldReader<'_>) -> Result<Vec<ChunkEntry>, FrameError> {
    let body = r.rest();
    if body.is_empty() {
        return Err(FrameError::Truncated);
    }
    if !body.len().is_multiple_of(ENTRY_WIRE_LEN) {
        return Err(FrameError::Truncated);
    }
    Ok(body
        .chunks_exact(ENTRY_WIRE_LEN)
        .map(|raw| {
            let mut id = [0u8; 32];
            id.copy_from_slice(&raw[4..]);
            ChunkEntry {
                len: u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]),
                id: ContentHash(id),
            }
        })
        .collect())
}

pub(crate) fn encode_chunk_list(entries: &[ChunkEntry], out: &mut Vec<u8>) {
    for entry in entries {
        put_u32(out, entry.len);
        out.extend_from_slice(&entry.id.0);
    }
}

/// One entry of a `ShortChunkList` (protocol version 4, §13.6): a chunk's
/// length and the first 16 bytes of its BLAKE3.
///
/// ```text
/// entry: len u24 (1..=262144 once validated) | id [16]
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShortChunkEntry {
    /// Bytes of the chunk; at most [`MAX_SHORT_ENTRY_LEN`] on the wire.
    pub len: u32,
    /// The first 16 bytes of the chunk's BLAKE3.
    pub id: [u8; SHORT_ID_BYTES],
}

impl ShortChunkEntry {
    /// The short form of a list entry. A length above
    /// [`MAX_SHORT_ENTRY_LEN`] (never a chunk's) is carried as that maximum,
    /// which every receiver refuses.
    pub fn of(entry: &ChunkEntry) -> ShortChunkEntry {
        let mut id = [0u8; SHORT_ID_BYTES];
        id.copy_from_slice(&entry.id.0[..SHORT_ID_BYTES]);
        ShortChunkEntry {
            len: entry.len.min(MAX_SHORT_ENTRY_LEN),
            id,
        }
    }

    /// The entry as a chunk list holds it ([`IdLen::Short`]: the 16 bytes
    /// followed by zeros).
    pub fn to_entry(self) -> ChunkEntry {
        let mut id = [0u8; 32];
        id[..SHORT_ID_BYTES].copy_from_slice(&self.id);
        ChunkEntry {
            len: self.len,
            id: IdLen::Short.cut(ContentHash(id)),
        }
    }
}

/// Decodes a `ShortChunkList` payload: 1..=[`MAX_SHORT_LIST_ENTRIES`]
/// entries of `len u24 | id [16]` (else Truncated). Lengths are checked
/// when the whole list is in, as for `ChunkList`.
pub(crate) fn decode_short_chunk_list(
    r: &mut FieldReader<'_>,
) -> Result<Vec<ShortChunkEntry>, FrameError> {
    let body = r.rest();
    if body.is_empty() || !body.len().is_multiple_of(SHORT_ENTRY_WIRE_LEN) {
        return Err(FrameError::Truncated);
    }
    Ok(body
        .chunks_exact(SHORT_ENTRY_WIRE_LEN)
        .map(|raw| {
            let mut id = [0u8; SHORT_ID_BYTES];
            id.copy_from_slice(&raw[3..]);
            ShortChunkEntry {
                len: u32::from_be_bytes([0, raw[0], raw[1], raw[2]]),
                id,
            }
        })
        .collect())
}

pub(crate) fn encode_short_chunk_list(entries: &[ShortChunkEntry], out: &mut Vec<u8>) {
    for entry in entries {
        let len = entry.len.min(MAX_SHORT_ENTRY_LEN).to_be_bytes();
        out.extend_from_slice(&len[1..]);
        out.extend_from_slice(&entry.id);
    }
}
