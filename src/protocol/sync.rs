//! Pulling: `Pull`, its streamed `ChangeBatch` reply, `Ack`, `Notify` and `Fetch`.

use super::error::FrameError;
use super::ids::ContentHash;
use super::limits::{MAX_BATCH_ENTRIES, MAX_PAYLOAD};
use super::path::WirePath;
use super::push::{decode_mode, encode_mode};
use super::wire::{put_path, put_u16, put_u64, FieldReader};

/// What a path is on the server now (PROTOCOL.md §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryState {
    /// A regular file with this size and hash.
    File {
        /// Bytes in the file.
        size: u64,
        /// BLAKE3 of the content.
        hash: ContentHash,
    },
    /// A directory.
    Dir,
    /// Nothing: whatever was there (file or whole directory) is gone.
    Deleted,
}

/// One path's current state in a pull reply.
///
/// ```text
/// ChangeBatch: state u8 (1 file, 2 dir, 3 deleted) | version u64 | size u64 | hash [32] | path_len u16 | path
/// ModeBatch:   state u8 | mode u8 (bit 0 executable) | version u64 | size u64 | hash [32] | path_len u16 | path
/// ```
/// Size and hash are zero unless the state is "file"; so is the mode
/// (PROTOCOL.md §5.2, §15.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeEntry {
    /// The path.
    pub path: WirePath,
    /// The journal sequence number that produced this state.
    pub version: u64,
    /// File, directory or deleted.
    pub state: EntryState,
    /// The file is executable (a `ModeBatch` entry's mode bit 0; always
    /// false in a `ChangeBatch`, which carries no mode).
    pub executable: bool,
}

/// Fixed bytes of an encoded entry before its path bytes.
const ENTRY_FIXED: usize = 1 + 8 + 8 + 32 + 2;

impl ChangeEntry {
    fn decode(r: &mut FieldReader<'_>, modes: bool) -> Result<Self, FrameError> {
        let tag = r.u8()?;
        let executable = if modes { decode_mode(r.u8()?)? } else { false };
        if executable && tag != 1 {
            return Err(FrameError::BadValue);
        }
        let version = r.u64()?;
        let size = r.u64()?;
        let hash = ContentHash(r.array()?);
        let path = r.path()?;
        let state = match tag {
            1 => EntryState::File { size, hash },
            2 | 3 if size != 0 || hash.0 != [0; 32] => return Err(FrameError::BadValue),
            2 => EntryState::Dir,
            3 => EntryState::Deleted,
            _ => return Err(FrameError::BadValue),
        };
        Ok(ChangeEntry {
            path,
            version,
            state,
            executable,
        })
    }

    fn encode(&self, out: &mut Vec<u8>, modes: bool) {
        let (tag, size, hash) = match self.state {
            EntryState::File { size, hash } => (1u8, size, hash.0),
            EntryState::Dir => (2, 0, [0; 32]),
            EntryState::Deleted => (3, 0, [0; 32]),
        };
        out.push(tag);
        if modes {
            out.push(encode_mode(tag == 1 && self.executable));
        }
        put_u64(out, self.version);
        put_u64(out, size);
        out.extend_from_slice(&hash);
        put_path(out, &self.path);
    }

    /// Bytes this entry takes in a `ChangeBatch` (one more in a `ModeBatch`).
    pub fn encoded_len(&self) -> usize {
        ENTRY_FIXED + self.path.as_str().len()
    }
}

/// One frame of a pull reply. A reply is one or more batches with the pull's
/// request ID; the last has `last` set. After applying all of them the client
/// acknowledges `head`.
///
/// ```text
/// payload: head u64 | flags u8 (bit 0 full, bit 1 last) | count u16 | entries
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeBatch {
    /// The cursor the client reaches once it has applied the whole reply.
    pub head: u64,
    /// The reply lists the user's whole tree: paths it does not name are gone.
    pub full: bool,
    /// This is the reply's final batch.
    pub last: bool,
    /// Path states, parents before children, deletions first.
    pub entries: Vec<ChangeEntry>,
}

/// Bytes of a batch payload before its entries.
pub const BATCH_FIXED: usize = 8 + 1 + 2;

impl ChangeBatch {
    /// Decodes a `ChangeBatch` payload, or with `modes` a `ModeBatch` one.
    pub(crate) fn decode(r: &mut FieldReader<'_>, modes: bool) -> Result<Self, FrameError> {
        let head = r.u64()?;
        let flags = r.u8()?;
        if flags & !0b11 != 0 {
            return Err(FrameError::BadValue);
        }
        let count = usize::from(r.u16()?);
        if count > MAX_BATCH_ENTRIES {
            return Err(FrameError::FieldTooLong);
        }
        // Each entry is at least ENTRY_FIXED + 1 bytes, so `count` is bounded
        // by what actually arrived before anything is reserved.
        let mut entries = Vec::new();
        for _ in 0..count {
            entries.push(ChangeEntry::decode(r, modes)?);
        }
        Ok(ChangeBatch {
            head,
            full: flags & 1 != 0,
            last: flags & 2 != 0,
            entries,
        })
    }

    /// Encodes as a `ChangeBatch` payload, or with `modes` a `ModeBatch` one.
    pub(crate) fn encode(&self, out: &mut Vec<u8>, modes: bool) {
        put_u64(out, self.head);
        out.push(u8::from(self.full) | (u8::from(self.last) << 1));
        let count = self.entries.len().min(MAX_BATCH_ENTRIES);
        put_u16(out, count as u16);
        for entry in &self.entries[..count] {
            entry.encode(out, modes);
        }
    }

    /// Whether one more entry of `entry_len` bytes still fits this batch.
    pub fn has_room_for(&self, used_bytes: usize, entry_len: usize) -> bool {
        self.entries.len() < MAX_BATCH_ENTRIES
            && used_bytes + entry_len <= MAX_PAYLOAD as usize - BATCH_FIXED
    }
}

/// Asks for a file's current content. The reply is `FileBegin`, `FileChunk`s
/// and `FileEnd` with the same request ID, or an `Error` (`NotFound`).
///
/// ```text
/// payload: version u64 | path_len u16 | path
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetch {
    /// The version the client saw in a pull reply (informative; the server
    /// sends what it has now and says which version that is).
    pub version: u64,
    /// The file wanted.
    pub path: WirePath,
}

impl Fetch {
    pub(crate) fn decode(r: &mut FieldReader<'_>) -> Result<Self, FrameError> {
        Ok(Fetch {
            version: r.u64()?,
            path: r.path()?,
        })
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        put_u64(out, self.version);
        put_path(out, &self.path);
    }
}
