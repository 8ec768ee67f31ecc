//! Protocol version 9 (PROTOCOL.md §10.2): `ListLost`, a client's question
//! "which files has the server lost?", and `LostList`, the answer naming
//! each lost or damaged file with the version, size and hash the server's
//! journal holds, so a device holding that very version uploads it again.

use super::error::FrameError;
use super::ids::ContentHash;
use super::path::WirePath;
use super::wire::{put_path, put_u16, put_u64, FieldReader};

/// Most entries in one `LostList` (R-10.9): 200 entries of at most
/// 50 + 4096 bytes stay below the 1 MiB payload limit. More lost files
/// are named by later answers, once these are back.
pub const MAX_LOST_ENTRIES: usize = 200;

/// One file whose server copy is missing or damaged (R-10.5), as the
/// journal holds it.
///
/// ```text
/// version u64 | size u64 | hash [32] | path_len u16 | path   (50 + L bytes)
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LostEntry {
    /// The file's current version (the change that made it).
    pub version: u64,
    /// Its size in bytes.
    pub size: u64,
    /// BLAKE3 of the content the journal holds for that version.
    pub hash: ContentHash,
    /// The file.
    pub path: WirePath,
}

/// Server → client, the answer to `ListLost` (same request ID).
///
/// ```text
/// flags u8 (bit 0 more) | count u16 | count × LostEntry
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LostList {
    /// The server has more lost files than this answer names.
    pub more: bool,
    /// At most [`MAX_LOST_ENTRIES`], each path once.
    pub entries: Vec<LostEntry>,
}

/// Bit 0 of `LostList.flags`.
const MORE: u8 = 0x01;

impl LostList {
    /// Reads the payload.
    ///
    /// # Errors
    /// [`FrameError::BadValue`] for flag bits 1..7, a count above
    /// [`MAX_LOST_ENTRIES`] or a path listed twice; a truncated field or a
    /// bad path.
    pub fn decode(r: &mut FieldReader<'_>) -> Result<LostList, FrameError> {
        let flags = r.u8()?;
        if flags & !MORE != 0 {
            return Err(FrameError::BadValue);
        }
        let count = usize::from(r.u16()?);
        if count > MAX_LOST_ENTRIES {
            return Err(FrameError::BadValue);
        }
        // Allocated as entries arrive: a short payload fails first.
        let mut entries = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..count {
            let version = r.u64()?;
            let size = r.u64()?;
            let hash = ContentHash(r.array()?);
            let path = r.path()?;
            if !seen.insert(path.clone()) {
                return Err(FrameError::BadValue);
            }
            entries.push(LostEntry {
                version,
                size,
                hash,
                path,
            });
        }
        Ok(LostList {
            more: flags & MORE != 0,
            entries,
        })
    }

    /// Appends the payload. `entries` must obey the limits of
    /// [`Self::decode`] (the encoder writes what it is given).
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(if self.more { MORE } else { 0 });
        put_u16(out, u16::try_from(self.entries.len()).unwrap_or(u16::MAX));
        for e in &self.entries {
            put_u64(out, e.version);
            put_u64(out, e.size);
            out.extend_from_slice(&e.hash.0);
            put_path(out, &e.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refusals() {
        let list = LostList {
            more: true,
            entries: vec![LostEntry {
                version: 7,
                size: 5,
                hash: ContentHash([3; 32]),
                path: WirePath::new("a/b.txt").expect("path"),
            }],
        };
        let mut out = Vec::new();
        list.encode(&mut out);
        assert_eq!(out.len(), 3 + 50 + 7);
        assert_eq!(
            LostList::decode(&mut FieldReader::new(&out)),
            Ok(list.clone())
        );
        let mut bad = out.clone();
        bad[0] = 0x02;
        assert_eq!(
            LostList::decode(&mut FieldReader::new(&bad)),
            Err(FrameError::BadValue)
        );
        let twice = LostList {
            more: false,
            entries: vec![list.entries[0].clone(), list.entries[0].clone()],
        };
        let mut out = Vec::new();
        twice.encode(&mut out);
        assert_eq!(
            LostList::decode(&mut FieldReader::new(&out)),
            Err(FrameError::BadValue)
        );
        let mut over = vec![0u8];
        put_u16(&mut over, (MAX_LOST_ENTRIES + 1) as u16);
        assert_eq!(
            LostList::decode(&mut FieldReader::new(&over)),
            Err(FrameError::BadValue)
        );
    }
}
