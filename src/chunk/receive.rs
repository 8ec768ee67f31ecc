//! Receiving a chunk list that spans frames (`FileManifest` + `ChunkList`s),
//! without I/O: the announced count is checked before any entry is stored,
//! entries beyond it are refused, and the finished list is validated.

use super::manifest::{check_count, ChunkEntry, IdLen, Manifest, ManifestError};
use crate::protocol::ContentHash;
use std::fmt;

/// Why a chunk list being received was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiveError {
    /// The list (or its announced count) breaks a manifest rule.
    Manifest(ManifestError),
    /// More entries arrived than the `FileManifest` announced.
    TooManyEntries {
        /// Announced count.
        announced: u32,
    },
    /// `ChunkList` and `ShortChunkList` frames in one list (§13.6: a list
    /// has one form).
    MixedIdLengths,
}

impl fmt::Display for ReceiveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReceiveError::Manifest(e) => write!(f, "bad chunk list: {e}"),
            ReceiveError::TooManyEntries { announced } => {
                write!(f, "more chunk entries than the {announced} announced")
            }
            ReceiveError::MixedIdLengths => {
                write!(f, "ChunkList and ShortChunkList frames in one chunk list")
            }
        }
    }
}

impl std::error::Error for ReceiveError {}

impl From<ManifestError> for ReceiveError {
    fn from(e: ManifestError) -> Self {
        ReceiveError::Manifest(e)
    }
}

/// A chunk list arriving frame by frame.
#[derive(Debug)]
pub struct ManifestReceiver {
    announced: u32,
    manifest: Manifest,
}

impl ManifestReceiver {
    /// Starts a list of `count` entries for a file of `size` bytes and hash
    /// `hash`. Reserves nothing: entries are stored as they arrive.
    ///
    /// # Errors
    /// [`ReceiveError::Manifest`] when `count` is over the limit or cannot
    /// make `size` bytes (a billion chunks is refused here, before any entry).
    pub fn new(size: u64, hash: ContentHash, count: u32) -> Result<Self, ReceiveError> {
        check_count(count as usize, size)?;
        Ok(ManifestReceiver {
            announced: count,
            manifest: Manifest {
                size,
                hash,
                chunks: Vec::new(),
                id_len: IdLen::Full,
            },
        })
    }

    /// Adds one `ChunkList` frame's entries (32-byte IDs).
    ///
    /// # Errors
    /// As [`ManifestReceiver::push_ids`].
    pub fn push(&mut self, entries: &[ChunkEntry]) -> Result<(), ReceiveError> {
        self.push_ids(entries, IdLen::Full)
    }

    /// Adds one frame's entries, whose IDs are `id_len` long (a
    /// `ShortChunkList`'s are [`IdLen::Short`], held as
    /// [`IdLen::cut`] makes them). The list's first frame sets its form.
    ///
    /// # Errors
    /// [`ReceiveError::TooManyEntries`] when they go past the announced
    /// count; [`ReceiveError::MixedIdLengths`] when an earlier frame of the
    /// list had the other form.
    pub fn push_ids(&mut self, entries: &[ChunkEntry], id_len: IdLen) -> Result<(), ReceiveError> {
        if self.manifest.chunks.is_empty() {
            self.manifest.id_len = id_len;
        } else if self.manifest.id_len != id_len {
            return Err(ReceiveError::MixedIdLengths);
        }
        let total = self.manifest.chunks.len() + entries.len();
        if total > self.announced as usize {
            return Err(ReceiveError::TooManyEntries {
                announced: self.announced,
            });
        }
        self.manifest.chunks.extend_from_slice(entries);
        Ok(())
    }

    /// Entries received so far.
    pub fn received(&self) -> usize {
        self.manifest.chunks.len()
    }

    /// True once every announced entry has arrived.
    pub fn is_complete(&self) -> bool {
        self.manifest.chunks.len() == self.announced as usize
    }

    /// The validated list, once complete.
    ///
    /// # Errors
    /// [`ReceiveError::Manifest`] when the entries break a rule (lengths out
    /// of range, not adding up to the size). Calling it before
    /// [`ManifestReceiver::is_complete`] validates what has arrived so far,
    /// which cannot add up unless the list is complete.
    pub fn finish(self) -> Result<Manifest, ReceiveError> {
        self.manifest.validate()?;
        Ok(self.manifest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::{MAX_CHUNK, MIN_CHUNK};

    fn entry(len: u32) -> ChunkEntry {
        ChunkEntry {
            len,
            id: ContentHash([7; 32]),
        }
    }

    #[test]
    fn a_list_across_frames_is_received_and_validated() {
        let size = u64::from(MIN_CHUNK) * 2 + 10;
        let mut r = ManifestReceiver::new(size, ContentHash([0; 32]), 3).expect("plausible");
        r.push(&[entry(MIN_CHUNK)]).expect("within count");
        assert!(!r.is_complete());
        r.push(&[entry(MIN_CHUNK), entry(10)])
            .expect("within count");
        assert!(r.is_complete());
        assert_eq!(r.finish().expect("valid").chunks.len(), 3);
    }

    #[test]
    fn hostile_counts_and_entries_are_refused() {
        assert!(matches!(
            ManifestReceiver::new(u64::MAX, ContentHash([0; 32]), 1_000_000_000),
            Err(ReceiveError::Manifest(ManifestError::TooManyChunks(_)))
        ));
        assert!(ManifestReceiver::new(10, ContentHash([0; 32]), 5).is_err());
        let mut r = ManifestReceiver::new(u64::from(MAX_CHUNK), ContentHash([0; 32]), 1)
            .expect("plausible");
        assert_eq!(
            r.push(&[entry(1), entry(1)]),
            Err(ReceiveError::TooManyEntries { announced: 1 })
        );
        r.push(&[entry(MAX_CHUNK - 1)]).expect("one entry");
        assert!(matches!(
            r.finish(),
            Err(ReceiveError::Manifest(ManifestError::SizeMismatch { .. }))
        ));
    }

    #[test]
    fn a_list_has_one_id_length() {
        let size = u64::from(MIN_CHUNK) * 2;
        let mut r = ManifestReceiver::new(size, ContentHash([0; 32]), 2).expect("plausible");
        r.push_ids(&[entry(MIN_CHUNK)], IdLen::Short)
            .expect("first");
        assert_eq!(
            r.push(&[entry(MIN_CHUNK)]),
            Err(ReceiveError::MixedIdLengths)
        );
        r.push_ids(&[entry(MIN_CHUNK)], IdLen::Short)
            .expect("same form");
        assert_eq!(r.finish().expect("valid").id_len, IdLen::Short);
        let mut r = ManifestReceiver::new(size, ContentHash([0; 32]), 2).expect("plausible");
        r.push(&[entry(MIN_CHUNK)]).expect("first");
        assert_eq!(
            r.push_ids(&[entry(MIN_CHUNK)], IdLen::Short),
            Err(ReceiveError::MixedIdLengths)
        );
    }
}
