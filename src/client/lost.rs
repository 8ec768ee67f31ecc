//! Whether this device holds a file the server lost (PROTOCOL.md §10.2,
//! the decision, apart from the I/O that asks and uploads.
//!
//! The server names each file whose copy it lost with the version, size
//! and hash its journal holds (`LostList`). This device uploads it again
//! only when its index says it is synced at exactly that version with
//! that hash and the file is still that content: a stat as recorded, or,
//! when the record cannot vouch for it (racy, or moved by a `touch`), a
//! hash of the file now. A file edited here is never sent as the lost
//! copy: its edit goes through the ordinary push and conflict rules.

use super::detect::{judge, Verdict};
use super::fsutil::Stat;
use super::index::{Entry, EntryKind};
use crate::protocol::LostEntry;

/// What this device can do for one lost file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holds {
    /// It holds that version, as recorded: upload it (with this stat).
    Yes(Stat),
    /// Its record is of that version but cannot vouch for the bytes:
    /// upload it only if the file hashes to the entry's hash now.
    IfHashIs(Stat),
    /// Not that version here (another version, an edit of it, no file).
    No,
}

/// Decides for `lost`, given what the index records at its path and the
/// file's stat now (`None`: no regular file there).
pub fn holds(lost: &LostEntry, indexed: Option<&Entry>, now: Option<&Stat>) -> Holds {
    let (Some(entry), Some(now)) = (indexed, now) else {
        return Holds::No;
    };
    let EntryKind::File { stat, hash } = entry.kind else {
        return Holds::No;
    };
    if entry.version != lost.version || hash != lost.hash || now.size != lost.size {
        return Holds::No;
    }
    match judge(&stat, now) {
        Verdict::Unchanged => Holds::Yes(*now),
        Verdict::MustHash => Holds::IfHashIs(*now),
        Verdict::Changed => Holds::No,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{ContentHash, WirePath};
    use proptest::prelude::*;

    fn stat(size: u64, mtime_ns: i64) -> Stat {
        Stat {
            size,
            mtime_ns,
            ctime_ns: 1_000_000_000,
            dev: 1,
            ino: 7,
            exec: false,
            btime_ns: 0,
        }
    }

    fn lost(version: u64, size: u64, h: u8) -> LostEntry {
        LostEntry {
            version,
            size,
            hash: ContentHash([h; 32]),
            path: WirePath::new("f.txt").expect("path"),
        }
    }

    fn file(version: u64, st: Stat, h: u8) -> Entry {
        Entry {
            kind: EntryKind::File {
                stat: st,
                hash: ContentHash([h; 32]),
            },
            version,
        }
    }

    #[test]
    fn only_the_synced_version_as_recorded_goes_back() {
        let st = stat(5, 2_000_000_000);
        let entry = file(4, st, 9);
        assert_eq!(
            holds(&lost(4, 5, 9), Some(&entry), Some(&st)),
            Holds::Yes(st)
        );
        // Another version or content recorded here.
        assert_eq!(holds(&lost(5, 5, 9), Some(&entry), Some(&st)), Holds::No);
        assert_eq!(holds(&lost(4, 5, 8), Some(&entry), Some(&st)), Holds::No);
        // Edited here: a new size is an edit; a new mtime asks for a hash.
        let grown = stat(6, 3_000_000_000);
        assert_eq!(holds(&lost(4, 5, 9), Some(&entry), Some(&grown)), Holds::No);
        let touched = stat(5, 3_000_000_000);
        assert_eq!(
            holds(&lost(4, 5, 9), Some(&entry), Some(&touched)),
            Holds::IfHashIs(touched)
        );
        // Nothing here, or not indexed.
        assert_eq!(holds(&lost(4, 5, 9), Some(&entry), None), Holds::No);
        assert_eq!(holds(&lost(4, 5, 9), None, Some(&st)), Holds::No);
        let dir = Entry {
            kind: EntryKind::Dir,
            version: 4,
        };
        assert_eq!(holds(&lost(4, 5, 9), Some(&dir), Some(&st)), Holds::No);
    }

    proptest! {
        #[test]
        fn never_a_yes_for_another_version_hash_or_size(
            lv in 1u64..4, ls in 1u64..4, lh in 0u8..3,
            iv in 1u64..4, is in 1u64..4, ih in 0u8..3,
            ns in 1u64..4, nm in 1i64..3,
        ) {
            let indexed = file(iv, stat(is, 1_000_000_000), ih);
            let now = stat(ns, nm * 1_000_000_000);
            let got = holds(&lost(lv, ls, lh), Some(&indexed), Some(&now));
            let same = lv == iv && lh == ih && ls == ns;
            if !same || is != ns {
                prop_assert_eq!(got, Holds::No);
            } else {
                prop_assert_ne!(got, Holds::No);
            }
        }
    }
}
