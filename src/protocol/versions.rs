//! Version history (PROTOCOL.md §14): `ListVersions` (0x40), `VersionList`
//! (0x41) and `Restore` (0x42), and the kept-version entry they carry.

use super::error::FrameError;
use super::ids::ContentHash;
use super::path::WirePath;
use super::wire::{put_path, put_u16, put_u64, FieldReader};

/// Most entries in one `VersionList` frame: 128 entries of at most
/// 76 + 4096 bytes stay below the 1 MiB payload limit (§14.2).
pub const MAX_VERSION_ENTRIES: usize = 128;

/// Why a version was kept (§14.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Cause {
    /// A push put new content at the path (`1`).
    Overwritten = 1,
    /// A Delete or RemoveDir removed it (`2`).
    Deleted = 2,
    /// A Rename moved it away from the path (`3`).
    RenamedAway = 3,
}

impl Cause {
    fn from_byte(byte: u8) -> Result<Cause, FrameError> {
        match byte {
            1 => Ok(Cause::Overwritten),
            2 => Ok(Cause::Deleted),
            3 => Ok(Cause::RenamedAway),
            _ => Err(FrameError::BadValue),
        }
    }

    /// The word the client prints.
    pub fn word(self) -> &'static str {
        match self {
            Cause::Overwritten => "overwritten",
            Cause::Deleted => "deleted",
            Cause::RenamedAway => "renamed-away",
        }
    }
}

/// What a kept version is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeptKind {
    /// A file (kind byte `0`, or `2` when executable).
    File {
        /// Bytes.
        size: u64,
        /// BLAKE3 of the content.
        hash: ContentHash,
        /// Its modification time on the server, nanoseconds since the epoch.
        mtime_ns: i64,
        /// The executable bit (PROTOCOL.md §15).
        executable: bool,
    },
    /// A directory (kind byte `1`; size, hash and mtime are zero).
    Dir,
}

/// One kept version: the content `path` had from change `since` until
/// change `seq` displaced it.
///
/// ```text
/// seq u64 | since u64 | time_ms u64 | cause u8 | kind u8 | size u64
///   | hash [32] | mtime_ns i64 | path_len u16 | path       (76 + L bytes)
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptVersion {
    /// The change that displaced it; with `path`, names the version
    /// (`--version N` is this number).
    pub seq: u64,
    /// The change that put this version in place (it was live from `since`
    /// until `seq`).
    pub since: u64,
    /// When it was displaced, milliseconds since the Unix epoch (UTC).
    pub time_ms: u64,
    /// How it was displaced.
    pub cause: Cause,
    /// File or directory.
    pub kind: KeptKind,
    /// Where it was.
    pub path: WirePath,
}

impl KeptVersion {
    pub(crate) fn decode(r: &mut FieldReader<'_>) -> Result<Self, FrameError> {
        let seq = r.u64()?;
        let since = r.u64()?;
        let time_ms = r.u64()?;
        let cause = Cause::from_byte(r.u8()?)?;
        let kind_byte = r.u8()?;
        let size = r.u64()?;
        let hash = ContentHash(r.array()?);
        let mtime_ns = r.u64()? as i64;
        let kind = match kind_byte {
            0 | 2 => KeptKind::File {
                size,
                hash,
                mtime_ns,
                executable: kind_byte == 2,
            },
            1 if size == 0 && hash.0 == [0; 32] && mtime_ns == 0 => KeptKind::Dir,
            _ => return Err(FrameError::BadValue),
        };
        Ok(KeptVersion {
            seq,
            since,
            time_ms,
            cause,
            kind,
            path: r.path()?,
        })
    }

    /// Appends the entry's bytes.
    pub fn encode(&self, out: &mut Vec<u8>) {
        put_u64(out, self.seq);
        put_u64(out, self.since);
        put_u64(out, self.time_ms);
        out.push(self.cause as u8);
        let (kind, size, hash, mtime) = match self.kind {
            KeptKind::File {
                size,
                hash,
                mtime_ns,
                executable,
            } => (if executable { 2u8 } else { 0 }, size, hash.0, mtime_ns),
            KeptKind::Dir => (1u8, 0, [0; 32], 0),
        };
        out.push(kind);
        put_u64(out, size);
        out.extend_from_slice(&hash);
        put_u64(out, mtime as u64);
        put_path(out, &self.path);
    }

    /// Whether this version was the one at its path just before change
    /// `seq` (live from `since` until it was displaced at or after `seq`).
    pub fn live_before(&self, seq: u64) -> bool {
        self.since < seq && seq <= self.seq
    }

    /// Whether the entry is at `under` or below it (`None`: anywhere).
    pub fn is_under(&self, under: Option<&WirePath>) -> bool {
        under.is_none_or(|u| self.path == *u || self.path.is_within(u))
    }

    /// Whether the entry comes after the listing position `(seq, path)`
    /// (`path` `None`: before every path of that change).
    pub fn is_after(&self, seq: u64, path: Option<&WirePath>) -> bool {
        match self.seq.cmp(&seq) {
            std::cmp::Ordering::Greater => true,
            std::cmp::Ordering::Less => false,
            std::cmp::Ordering::Equal => path.is_none_or(|p| self.path > *p),
        }
    }
}

/// Reads a `path_len u16 | path` field where length 0 means "none".
fn optional_path(r: &mut FieldReader<'_>) -> Result<Option<WirePath>, FrameError> {
    let mut peek = r.clone();
    if peek.u16()? == 0 {
        *r = peek;
        return Ok(None);
    }
    r.path().map(Some)
}

fn put_optional_path(out: &mut Vec<u8>, path: Option<&WirePath>) {
    match path {
        Some(p) => put_path(out, p),
        None => put_u16(out, 0),
    }
}

/// Asks for the kept versions at or below a path, a page at a time.
///
/// ```text
/// payload: after_seq u64 | after_len u16 | after | under_len u16 | under
/// ```
/// `under` of length 0 lists the whole folder. The reply lists the entries
/// after position `(after_seq, after)` in the server's order (change, then
/// path); a first request sends `0` and an empty `after`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListVersions {
    /// The change of the last entry already received (0 at first).
    pub after_seq: u64,
    /// The path of the last entry already received (`None` at first).
    pub after: Option<WirePath>,
    /// Where to list (`None`: the whole folder).
    pub under: Option<WirePath>,
}

impl ListVersions {
    pub(crate) fn decode(r: &mut FieldReader<'_>) -> Result<Self, FrameError> {
        Ok(ListVersions {
            after_seq: r.u64()?,
            after: optional_path(r)?,
            under: optional_path(r)?,
        })
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        put_u64(out, self.after_seq);
        put_optional_path(out, self.after.as_ref());
        put_optional_path(out, self.under.as_ref());
    }
}

/// One page of kept versions, oldest change first.
///
/// ```text
/// payload: more u8 | count u16 | entry × count       (count ≤ 128)
/// ```
/// `more` is 1 when entries follow: ask again from the last entry's
/// `(seq, path)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionList {
    /// Whether another page follows.
    pub more: bool,
    /// The entries.
    pub entries: Vec<KeptVersion>,
}

impl VersionList {
    pub(crate) fn decode(r: &mut FieldReader<'_>) -> Result<Self, FrameError> {
        let more = match r.u8()? {
            0 => false,
            1 => true,
            _ => return Err(FrameError::BadValue),
        };
        let count = r.u16()? as usize;
        if count > MAX_VERSION_ENTRIES {
            return Err(FrameError::FieldTooLong);
        }
        let mut entries = Vec::with_capacity(count);
        for _ in 0..count {
            entries.push(KeptVersion::decode(r)?);
        }
        Ok(VersionList { more, entries })
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.push(u8::from(self.more));
        put_u16(out, self.entries.len() as u16);
        for entry in &self.entries {
            entry.encode(out);
        }
    }
}

/// Restores `path` as it was just before change `seq` (a directory with
/// everything below it), as new changes.
///
/// ```text
/// payload: seq u64 | path_len u16 | path
/// ```
/// Answered by a PushAck (the new change) or Error `NoSuchVersion`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restore {
    /// The change that displaced the version.
    pub seq: u64,
    /// Where the version was.
    pub path: WirePath,
}

impl Restore {
    pub(crate) fn decode(r: &mut FieldReader<'_>) -> Result<Self, FrameError> {
        Ok(Restore {
            seq: r.u64()?,
            path: r.path()?,
        })
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        put_u64(out, self.seq);
        put_path(out, &self.path);
    }
}

/// Restores `path` as it was at the moment `time_ms` (a directory with
/// everything below it), as new changes (PROTOCOL.md §14.3, R-14.3.5).
///
/// ```text
/// payload: time_ms u64 | path_len u16 | path
/// ```
/// Answered by a PushAck (the new change, or Unchanged when the path is as
/// it was then) or Error `NoSuchVersion` (the path did not exist then, or
/// its version was reaped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreAt {
    /// The moment, in milliseconds since 1970-01-01 UTC.
    pub time_ms: u64,
    /// What to restore.
    pub path: WirePath,
}

impl RestoreAt {
    pub(crate) fn decode(r: &mut FieldReader<'_>) -> Result<Self, FrameError> {
        Ok(RestoreAt {
            time_ms: r.u64()?,
            path: r.path()?,
        })
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        put_u64(out, self.time_ms);
        put_path(out, &self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: u64, path: &str, dir: bool) -> KeptVersion {
        KeptVersion {
            seq,
            since: seq / 2,
            time_ms: 1_700_000_000_000 + seq,
            cause: Cause::Deleted,
            kind: if dir {
                KeptKind::Dir
            } else {
                KeptKind::File {
                    size: seq * 7,
                    hash: ContentHash::of(path.as_bytes()),
                    mtime_ns: -5,
                    executable: seq % 2 == 1,
                }
            },
            path: WirePath::new(path).expect("test path"),
        }
    }

    #[test]
    fn an_entry_is_76_bytes_plus_its_path_and_round_trips() {
        for e in [entry(3, "a/b.txt", false), entry(9, "dir", true)] {
            let mut out = Vec::new();
            e.encode(&mut out);
            assert_eq!(out.len(), 76 + e.path.as_str().len());
            let mut r = FieldReader::new(&out);
            assert_eq!(KeptVersion::decode(&mut r), Ok(e));
            assert_eq!(r.finish(), Ok(()));
        }
    }

    #[test]
    fn a_directory_entry_with_content_fields_is_refused() {
        let mut out = Vec::new();
        entry(4, "d", true).encode(&mut out);
        out[26] = 1; // first size byte
        assert_eq!(
            KeptVersion::decode(&mut FieldReader::new(&out)),
            Err(FrameError::BadValue)
        );
        let mut out = Vec::new();
        entry(4, "d", false).encode(&mut out);
        out[24] = 4; // cause
        assert_eq!(
            KeptVersion::decode(&mut FieldReader::new(&out)),
            Err(FrameError::BadValue)
        );
    }

    #[test]
    fn list_and_restore_round_trip_with_and_without_paths() {
        let p = |s: &str| Some(WirePath::new(s).expect("test path"));
        for list in [
            ListVersions {
                after_seq: 0,
                after: None,
                under: None,
            },
            ListVersions {
                after_seq: 77,
                after: p("x/y"),
                under: p("x"),
            },
        ] {
            let mut out = Vec::new();
            list.encode(&mut out);
            let mut r = FieldReader::new(&out);
            assert_eq!(ListVersions::decode(&mut r), Ok(list));
            assert_eq!(r.finish(), Ok(()));
        }
        let reply = VersionList {
            more: true,
            entries: vec![entry(1, "a", false), entry(2, "b", true)],
        };
        let mut out = Vec::new();
        reply.encode(&mut out);
        assert_eq!(VersionList::decode(&mut FieldReader::new(&out)), Ok(reply));
        let mut too_many = vec![0u8, 0, 129];
        too_many.extend(std::iter::repeat_n(0u8, 10));
        assert_eq!(
            VersionList::decode(&mut FieldReader::new(&too_many)),
            Err(FrameError::FieldTooLong)
        );
    }

    #[test]
    fn positions_order_by_change_then_path() {
        let e = entry(5, "m", false);
        let p = |s: &str| WirePath::new(s).expect("test path");
        assert!(e.is_after(4, Some(&p("z"))));
        assert!(e.is_after(5, None));
        assert!(e.is_after(5, Some(&p("a"))));
        assert!(!e.is_after(5, Some(&p("m"))));
        assert!(!e.is_after(6, None));
        assert!(e.is_under(None));
        assert!(e.is_under(Some(&p("m"))));
        assert!(!entry(5, "mm", false).is_under(Some(&p("m"))));
        assert!(entry(5, "m/n", false).is_under(Some(&p("m"))));
    }
}
