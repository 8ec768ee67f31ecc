//! Examples of PROTOCOL.md §13 (delta transfer): a delta upload of the
//! 70,000-byte example file `big.bin` (byte i is i mod 251, as in §5.5.1),
//! whose chunk list the real chunker computes, and a delta download of it.

use super::hash::content;
use cloudservice::chunk::manifest_of_reader;
use cloudservice::protocol::{
    ChunkData, ChunkListDelta, ChunkRange, ChunkRanges, FetchManifest, FetchManifestSince,
    FileManifest, Frame, ListOp, Message, ShortChunkEntry, StreamBegin, StreamEnd, WirePath,
};

/// Bytes of the example file.
pub const LEN: usize = 70_000;

fn big() -> WirePath {
    WirePath::new("big.bin").expect("example path")
}

/// The examples, by name.
pub fn examples() -> Vec<(&'static str, Frame)> {
    let data = content(LEN);
    let manifest = manifest_of_reader(&data[..]).expect("in-memory read");
    let count = manifest.chunks.len() as u32;
    let file_manifest = |request_id, version| {
        Frame::new(
            request_id,
            Message::FileManifest(FileManifest {
                version,
                size: manifest.size,
                hash: manifest.hash,
                chunk_count: count,
                path: big(),
            }),
        )
    };
    let short: Vec<ShortChunkEntry> = manifest.chunks.iter().map(ShortChunkEntry::of).collect();
    // §13.7: a 1 GiB file's list of 13,055 entries whose entries 6,500
    // and 6,501 became one new chunk (here big.bin's), relative to the
    // list of the content the receiver holds (big.bin's hash stands in).
    let delta = ChunkListDelta {
        base_hash: manifest.hash,
        ops: vec![
            ListOp::Copy {
                first: 0,
                count: 6500,
            },
            ListOp::New(short[0]),
            ListOp::Copy {
                first: 6502,
                count: 6553,
            },
        ],
    };
    vec![
        (
            "v5-chunklistdelta",
            Frame::new(22, Message::ChunkListDelta(delta.clone())),
        ),
        (
            "v5-listbaseunknown",
            Frame::new(22, Message::ListBaseUnknown),
        ),
        (
            "v5-fetchmanifestsince",
            Frame::new(
                23,
                Message::FetchManifestSince(FetchManifestSince {
                    version: 7,
                    base_hash: manifest.hash,
                    path: big(),
                }),
            ),
        ),
        (
            "v5-chunklistdelta-reply",
            Frame::new(23, Message::ChunkListDelta(delta)),
        ),
        (
            "v6-streambegin",
            Frame::new(
                24,
                Message::StreamBegin(StreamBegin {
                    version: 0,
                    size: manifest.size,
                    path: big(),
                }),
            ),
        ),
        (
            "v6-streamend",
            Frame::new(24, Message::StreamEnd(StreamEnd::Sealed(manifest.hash))),
        ),
        (
            "v6-streamend-abandoned",
            Frame::new(24, Message::StreamEnd(StreamEnd::Abandoned)),
        ),
        (
            "v4-shortchunklist",
            Frame::new(20, Message::ShortChunkList(short.clone())),
        ),
        (
            "v4-fetchshortmanifest",
            Frame::new(
                21,
                Message::FetchShortManifest(FetchManifest {
                    version: 6,
                    path: big(),
                }),
            ),
        ),
        (
            "v4-shortchunklist-reply",
            Frame::new(21, Message::ShortChunkList(short)),
        ),
        ("delta-filemanifest", file_manifest(20, 5)),
        (
            "delta-chunklist",
            Frame::new(20, Message::ChunkList(manifest.chunks.clone())),
        ),
        (
            "delta-chunksneeded",
            Frame::new(
                20,
                Message::ChunksNeeded(ChunkRanges {
                    last: true,
                    ranges: vec![ChunkRange {
                        first: count - 1,
                        count: 1,
                    }],
                }),
            ),
        ),
        (
            "delta-chunkdata",
            Frame::new(
                20,
                Message::ChunkData(ChunkData {
                    index: count - 1,
                    data: b"chunk...".to_vec(),
                }),
            ),
        ),
        (
            "delta-fetchmanifest",
            Frame::new(
                21,
                Message::FetchManifest(FetchManifest {
                    version: 6,
                    path: big(),
                }),
            ),
        ),
        ("delta-filemanifest-reply", file_manifest(21, 6)),
        (
            "delta-fetchchunks",
            Frame::new(
                21,
                Message::FetchChunks(ChunkRanges {
                    last: true,
                    ranges: vec![ChunkRange { first: 0, count: 1 }],
                }),
            ),
        ),
    ]
}
