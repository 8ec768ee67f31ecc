//! The one rule that decides whether a file may have changed since it was
//! indexed, used by the scanner (what to push), and by the applier (is the
//! local file still the one we synced, before replacing or deleting it).
//!
//! The index keeps what git's index keeps for the same purpose: size, mtime,
//! ctime, device and inode ([`Stat`]). Size and mtime alone prove nothing:
//! `cp -p`, `rsync -t`, `touch -r`, archive extraction and reproducible builds
//! put an old mtime back on new content, and two same-size writes within one
//! timestamp tick leave it unchanged. ctime cannot be set back by a program
//! and moves on every write, `touch` or new link; a rename over the path
//! brings a new inode. So:
//!
//! - a different size is a change ([`Verdict::Changed`]);
//! - any other difference (mtime, ctime, device, inode, birth time where
//!   the record has one), or a record with an unknown field, means "hash
//!   it and compare" ([`Verdict::MustHash`]);
//! - only an identical, trusted record is [`Verdict::Unchanged`].
//!
//! A record is trusted only when the file's mtime and ctime were both older
//! than the moment it was recorded by more than the timestamp granularity
//! ("racy git"): otherwise a write in the same tick right after the record
//! would leave every field as recorded. An untrusted record keeps a zero
//! mtime (see [`seal`]) and is hashed at every look until a look finds it
//! settled and records it again.
//!
//! Callers add one more rule of their own: a path the watcher reports as
//! written is hashed whatever its stat says.

use super::fsutil::{now_ns, Stat};
use std::time::Duration;

/// How far apart two writes must be for a nanosecond file system to give
/// them different timestamps. Linux stamps files from a clock that ticks
/// every 1-10 ms; the margin also covers a record taken a little after the
/// stat it is based on.
pub const RACY_WINDOW: Duration = Duration::from_millis(300);

/// The same for file systems that keep whole seconds (FAT keeps mtimes in
/// 2 s steps; ext3, HFS+ and many network mounts in 1 s steps).
pub const COARSE_RACY_WINDOW: Duration = Duration::from_secs(2);

/// What comparing a file's current stat with its index record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Same file, same content: nothing to read.
    Unchanged,
    /// The content differs (the size did): no need to hash to know.
    Changed,
    /// Something moved or the record is not to be trusted: hash the file and
    /// compare with the indexed hash.
    MustHash,
}

/// Compares the indexed record of a file with what `stat` says now.
pub fn judge(indexed: &Stat, now: &Stat) -> Verdict {
    if indexed.size != now.size {
        Verdict::Changed
    } else if !is_trusted(indexed) || !same_record(indexed, now) {
        Verdict::MustHash
    } else {
        Verdict::Unchanged
    }
}

/// True when every field of `indexed` is as in `now`, the birth time
/// only where the record knows it (an index written before it was kept:
/// the scanner then adds it to the record, `plan_files`).
fn same_record(indexed: &Stat, now: &Stat) -> bool {
    let born = Stat {
        btime_ns: match indexed.btime_ns {
            0 => now.btime_ns,
            known => known,
        },
        ..*indexed
    };
    born == *now
}

/// True when every field the rule compares is known.
pub fn is_trusted(stat: &Stat) -> bool {
    stat.mtime_ns != 0 && stat.ctime_ns != 0 && stat.ino != 0
}

/// The timestamp granularity to assume for this file: whole-second stamps
/// on both times mean a coarse file system.
fn window(stat: &Stat) -> Duration {
    const SECOND: i64 = 1_000_000_000;
    if stat.mtime_ns % SECOND == 0 && stat.ctime_ns % SECOND == 0 {
        COARSE_RACY_WINDOW
    } else {
        RACY_WINDOW
    }
}

/// True when a record of `stat` made at `at_ns` (nanoseconds since the
/// epoch) cannot be trusted: its mtime or ctime is not older than the record
/// by more than the granularity (a later write in the same tick would be
/// invisible), or lies in the future.
pub fn is_racy(stat: &Stat, at_ns: i64) -> bool {
    let limit = at_ns.saturating_sub(window(stat).as_nanos() as i64);
    stat.mtime_ns >= limit || stat.ctime_ns >= limit
}

/// The record to index for `stat` taken now: `stat` itself, or with the
/// mtime zeroed (untrusted: hash at the next look) when it is racy.
pub fn seal(stat: Stat) -> Stat {
    seal_at(stat, now_ns())
}

/// [`seal`] as of `at_ns`.
pub fn seal_at(mut stat: Stat, at_ns: i64) -> Stat {
    if is_racy(&stat, at_ns) {
        stat.mtime_ns = 0;
    }
    stat
}

/// True when a file now at `now` is still the one the index recorded as
/// `indexed`: same size, inode, device, ctime and bit, and the same mtime
/// unless the record left it unknown (a record sealed as racy keeps 0).
/// Any write, chmod or rename over the path since the record moves the
/// ctime or the inode. Used where the question is "did anything happen to
/// this file since this client recorded it" (a download it placed, content
/// it hashed): the watcher's echo of its own placement is not a local
/// change, and such a file is not one still being written. Whether its
/// content is the recorded one is still [`judge`]'s question: a write in
/// the same clock tick as the record leaves every field as it was.
pub fn as_recorded(indexed: &Stat, now: &Stat) -> bool {
    let mtime = indexed.mtime_ns == 0 || indexed.mtime_ns == now.mtime_ns;
    mtime
        && indexed.size == now.size
        && indexed.same_inode(now)
        && indexed.ctime_ns == now.ctime_ns
        && indexed.exec == now.exec
        && indexed.ctime_ns != 0
}

/// True when `now` is the stat of the same file as `then` with the same
/// bytes as far as a stat can tell across a rename by this client: same
/// device, inode, size and mtime (the rename moves the ctime, so it is not
/// compared). A write in between sets the mtime to the clock's present;
/// only a writer that also puts the old mtime back is not seen, which is
/// why [`crate::client::applier`] asks this only under a read lease held
/// across the rename ([`crate::client::lease::unbroken`]).
pub fn same_file(then: &Stat, now: &Stat) -> bool {
    then.dev == now.dev
        && then.ino == now.ino
        && (then.btime_ns == 0 || now.btime_ns == 0 || then.btime_ns == now.btime_ns)
        && then.size == now.size
        && then.mtime_ns == now.mtime_ns
}

/// The record to index for a file this client just moved into place
/// itself (a download renamed from its temporary file), when `staged` is
/// the temporary file's stat taken right before the rename and `stat` the
/// stat at the path right after it: trusted if the file is the one staged
/// (same device, inode, size and mtime) and its mtime is not racy, even
/// though its ctime is (the rename set it a moment ago).
///
/// Why the ctime may be racy here: a later write sets the mtime to the
/// clock's present, which differs from an mtime older than the window, so
/// it is seen; what stays unseen is only a rewrite of the same size that
/// also puts back this exact nanosecond mtime within one clock tick of the
/// rename. Hashing again instead would read every downloaded file twice (a
/// 1 GiB download: 1 GiB more to read, chunk and hash at the next look).
/// Anything else (another file renamed over the path, a write in between)
/// falls back to [`seal_at`].
pub fn seal_placed_at(stat: Stat, staged: Option<Stat>, at_ns: i64) -> Stat {
    let same_file = staged.is_some_and(|s| same_file(&s, &stat));
    let limit = at_ns.saturating_sub(window(&stat).as_nanos() as i64);
    if same_file && stat.mtime_ns != 0 && stat.mtime_ns < limit && stat.ctime_ns != 0 {
        stat
    } else {
        seal_at(stat, at_ns)
    }
}

#[cfg(test)]
mod tests;
