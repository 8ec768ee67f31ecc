//! Hash examples of PROTOCOL.md §5.5 that BLAKE3's multi-chunk tree decides:
//! contents longer than one 1,024-byte BLAKE3 chunk and longer than one
//! 256 KiB FileChunk. An implementation that hashes only short inputs right
//! passes every other example and fails these.

use cloudservice::protocol::{ContentHash, FileBegin, Frame, Message, WirePath};

/// The example content of `len` bytes: byte i is i mod 251 (§5.5).
pub fn content(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// Lengths of the examples: 2,500 bytes (three BLAKE3 chunks) and 300,000
/// bytes (two FileChunks of the recommended 262,144-byte size).
pub const SHORT: usize = 2500;
pub const LONG: usize = 300_000;

fn begin(request_id: u32, len: usize, at: &str) -> Frame {
    let data = content(len);
    Frame::new(
        request_id,
        Message::FileBegin(FileBegin {
            version: 0,
            size: len as u64,
            hash: ContentHash::of(&data),
            path: WirePath::new(at).expect("example path"),
        }),
    )
}

/// The builders, by example name.
pub fn examples() -> Vec<(&'static str, Frame)> {
    vec![
        ("filebegin-2500", begin(17, SHORT, "2500.bin")),
        ("filebegin-300000", begin(18, LONG, "300000.bin")),
    ]
}

/// The hash is the whole content's, not the concatenation or the last of
/// per-chunk hashes: these examples must differ from both.
pub fn check_whole_content_hash() {
    for len in [SHORT, LONG] {
        let data = content(len);
        let whole = *blake3::hash(&data).as_bytes();
        let first_chunk = *blake3::hash(&data[..1024]).as_bytes();
        let last_piece = *blake3::hash(&data[data.len() / 262_144 * 262_144..]).as_bytes();
        assert_ne!(whole, first_chunk);
        if len > 262_144 {
            assert_ne!(whole, last_piece);
        }
        let mut incremental = blake3::Hasher::new();
        for piece in data.chunks(262_144) {
            incremental.update(piece);
        }
        assert_eq!(
            *incremental.finalize().as_bytes(),
            whole,
            "hashing by FileChunk"
        );
    }
}
