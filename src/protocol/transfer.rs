//! File transfer in both directions: `FileBegin`, `FileChunk`s, `FileEnd`.

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
