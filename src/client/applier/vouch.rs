//! The file a download replaces, vouched for without reading it again
//! (BENCHMARKS.md "WAN misses of 2026-12-02", plan item 3).
//!
//! A download is placed by `RENAME_EXCHANGE`, and what comes out is kept
//! unless it is the synced version. The exchange moves that file's ctime, so
//! the index's record no longer vouches for it, and it used to be hashed
//! whole (1.28 s for a 1 GiB file after a 1 MiB append came down). Here the
//! local file is opened, a read lease taken on it, and only then stat'ed,
//! right before the exchange; the stat must be what the index recorded
//! ([`judge`] says `Unchanged`: the index's rule that a record vouches for
//! its content). After the exchange the file is the synced content, with no
//! read, when:
//! - the lease is still whole: nobody opened the inode for writing or
//!   truncated it since before the stat (through any path or hard link);
//!   an opener waits for this client, so its write cannot land unseen;
//! - the file now out has the stat's device, inode, size and mtime, and the
//!   ctime read through the lease right after the exchange (the ctime moves
//!   with any write, chmod or `touch -d`).
//!
//! Anything else falls back to the content check (hash). An edit made
//! before the stat moves the ctime the record holds (not `Unchanged`); one
//! between the stat and the exchange, or after it, breaks the lease, and
//! the file counts as held open for writing (kept as a conflict copy; the
//! waiting writer's bytes land in it once this client lets go).

use super::Applier;
use crate::client::detect::{judge, same_file, Verdict};
use crate::client::fsutil::Stat;
use crate::client::index::EntryKind;
use crate::client::lease::{lease_on, unbroken, Writers};
use crate::protocol::WirePath;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The local file about to be exchanged: a read lease on it, and its stat
/// (what the index recorded) taken once the lease was held.
#[derive(Debug)]
pub(super) struct Vouched {
    lease: File,
    before: Stat,
}

/// A [`Vouched`] file after it was moved out of its path.
#[derive(Debug)]
pub(super) struct Moved {
    /// Held until the file is deleted, unless let go for a test's writer.
    lease: Option<File>,
    before: Stat,
    /// Its stat through the lease right after the move, when the lease was
    /// still whole then (`None`: nothing is vouched for).
    after: Option<Stat>,
    /// The lease was broken: someone opened the file for writing since the
    /// stat (and waits for this client to let go): an edit in progress.
    broken: bool,
}

impl Vouched {
    /// Looks at the vouched file right after the exchange (or move aside).
    pub(super) fn moved(self) -> Moved {
        let broken = !unbroken(&self.lease);
        let after = match broken {
            false => self.lease.metadata().ok().map(|m| Stat::of(&m)),
            true => None,
        };
        Moved {
            lease: Some(self.lease),
            before: self.before,
            after,
            broken,
        }
    }
}

impl Moved {
    /// Lets the lease go (a test's writer in this thread would wait on it);
    /// the ctime comparison still sees what that writer does.
    pub(super) fn let_go(&mut self) {
        self.lease = None;
    }

    /// True when someone opened the file for writing between the stat and
    /// the look after the move: it is held open for writing.
    pub(super) fn broken(&self) -> bool {
        self.broken
    }

    /// True when `now`, the stat of the moved-out file taken after
    /// [`Vouched::moved`], is still the synced content the index recorded.
    pub(super) fn synced(&self, now: &Stat) -> bool {
        self.after.is_some_and(|after| {
            same_file(&self.before, now) && same_file(&after, now) && after.ctime_ns == now.ctime_ns
        })
    }
}

impl Applier<'_> {
    /// Vouches for `local`, the file at `path` a download is about to
    /// replace: `None` when it cannot be (not what the index recorded as
    /// synced, no lease here, someone has it open for writing, not a
    /// regular file); the exchange then settles it by its content.
    pub(super) fn vouch(&self, path: &WirePath, local: &Path) -> Option<Vouched> {
        let EntryKind::File { stat: indexed, .. } = self.index.get(path)?.kind else {
            return None;
        };
        // No blocking on a FIFO that appeared at the path, no symlink.
        let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(flags.bits() as i32)
            .open(local)
            .ok()?;
        let Writers::None(lease) = lease_on(file) else {
            return None;
        };
        let meta = lease.metadata().ok()?;
        let before = Stat::of(&meta);
        let vouched = meta.file_type().is_file() && judge(&indexed, &before) == Verdict::Unchanged;
        vouched.then_some(Vouched { lease, before })
    }
}
