//! File transfer in both directions: `FileBegin`, `FileChunk`s, `FileEnd`;
//! and version 6's upload with the hash after the data: `StreamBegin`,
//! `FileChunk`s, `StreamEnd` (PROTOCOL.md §13.8).

use super::error::FrameError;
use super::ids::ContentHash;
use super::path::WirePath;
use super::wire::{put_path, put_u64, FieldReader};

/// Opens a file transfer. Client → server it is a push of a whole file; server →
/// client it is the answer to a `Fetch`.
///
/// ```text
/// payload: version u64 | size u64 | hash [32] | path_len u16 | path
/// ```
/// In a push, `version` is the base version (the version the client's copy
/// came from, 0 for a new file); in a fetch reply, the version being sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileBegin {
    /// Base version (push) or sent version (fetch reply).
    pub version: u64,
    /// Total bytes the chunks will carry.
    pub size: u64,
    /// BLAKE3 of the whole content; checked before the file becomes visible.
    pub hash: ContentHash,
    /// Where the file goes.
    pub path: WirePath,
}

impl FileBegin {
    pub(crate) fn decode(r: &mut FieldReader<'_>) -> Result<Self, FrameError> {
        Ok(FileBegin {
            version: r.u64()?,
            size: r.u64()?,
            hash: ContentHash(r.array()?),
            path: r.path()?,
        })
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        put_u64(out, self.version);
        put_u64(out, self.size);
        out.extend_from_slice(&self.hash.0);
        put_path(out, &self.path);
    }
}

/// Opens an upload whose whole-file hash comes after its bytes (version 6,
/// PROTOCOL.md §13.8): the client sends the file while it reads and hashes
/// it, in one read.
///
/// ```text
/// payload: version u64 | size u64 | path_len u16 | path      (18 + L bytes)
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamBegin {
    /// Base version (0 for a new file), as in [`FileBegin`].
    pub version: u64,
    /// Total bytes the `FileChunk`s will carry.
    pub size: u64,
    /// Where the file goes.
    pub path: WirePath,
}

impl StreamBegin {
    pub(crate) fn decode(r: &mut FieldReader<'_>) -> Result<Self, FrameError> {
        Ok(StreamBegin {
            version: r.u64()?,
            size: r.u64()?,
            path: r.path()?,
        })
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        put_u64(out, self.version);
        put_u64(out, self.size);
        put_path(out, &self.path);
    }
}

/// Closes a [`StreamBegin`] upload (PROTOCOL.md §13.8).
///
/// ```text
/// payload: state u8 | hash [32]                               (33 bytes)
/// state 0: hash = BLAKE3 of the bytes sent; 1: abandoned, hash all zero
/// ```
/// Other states, and an abandoned end with a non-zero hash, are BadValue:
/// each end has exactly one encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamEnd {
    /// The bytes sent are the file; this is their BLAKE3.
    Sealed(ContentHash),
    /// The sender's file changed while it was read: store nothing
    /// (R-13.8.4).
    Abandoned,
}

impl StreamEnd {
    pub(crate) fn decode(r: &mut FieldReader<'_>) -> Result<Self, FrameError> {
        let state = r.u8()?;
        let hash: [u8; 32] = r.array()?;
        match state {
            0 => Ok(StreamEnd::Sealed(ContentHash(hash))),
            1 if hash == [0; 32] => Ok(StreamEnd::Abandoned),
            _ => Err(FrameError::BadValue),
        }
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        match self {
            StreamEnd::Sealed(hash) => {
                out.push(0);
                out.extend_from_slice(&hash.0);
            }
            StreamEnd::Abandoned => {
                out.push(1);
                out.extend_from_slice(&[0; 32]);
            }
        }
    }
}
