//! Every conflict decision of the client, in one place and without I/O:
//! what to do when this device's version of a path and the server's both
//! moved on. Inputs are what the index says, what is on disk and what the
//! server says; outputs are decision enums that the I/O code (the applier
//! for pulls, `push::apply_ack` and `plan::ack` for push answers) carries
//! out. Table tests below pin every row.
//!
//! - [`on_push_answer`]: a `PushAck`'s status for a push → [`AckDecision`]
//!   (record it, follow the server's conflict name, or accept the refusal).
//! - [`mirror`]: may this device's entry be moved to the server's conflict
//!   name now ([`Mirror`])? Only when the disk still holds what was pushed.
//! - [`on_pull`]: one entry of a pull reply, given the index and the disk →
//!   [`PullDecision`] (record, apply, keep the local change, push first...).
//! - [`on_remove`], [`on_swapped_out`]: the re-check at the instant a file
//!   is set aside to be deleted or swapped out by a download ([`SetAside`]).
//!
//! The rule behind all of them (PROTOCOL.md §7): nothing this device holds
//! that the server does not is ever lost; what the server decided is
//! mirrored locally only when the disk still shows what the decision was
//! about, and anything else is pushed again for the server to decide.

use crate::client::fsutil::{Local, Stat};
use crate::client::index::{Entry, EntryKind};
use crate::client::plan::Op;
use crate::protocol::{ContentHash, PushStatus};

/// What must be at a move's source (and its destination) for the move to be
/// made: anything else there is the user's newer work and stays put.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// The source is the file that was uploaded (same size and mtime); if
    /// that file is already at the destination, the move counts as made.
    File(Stat),
    /// The source is a directory (the destination is made free: see
    /// `aside::move_to_server_name`).
    Dir,
    /// Whatever is at the source moves (the destination is made free).
    Free,
}

/// What the server's answer to one of this device's pushes means for the
/// pushed entry (protocol-spec §5.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckDecision {
    /// The server applied the change: the index records it.
    Applied,
    /// The server already held exactly this: the index records it.
    Unchanged,
    /// The server kept this device's change under a conflict name (`ack.path`):
    /// this device's entry follows it there when `Expect` holds on disk, and
    /// the path it left is pulled (the server's version is there).
    FollowConflictName(Expect),
    /// The server kept a newer version and did not apply the change: the
    /// index forgets what it assumed, the path is looked at again and the
    /// server's version is pulled.
    Refused,
}

/// Decides what `status`, the server's answer to `op`, asks of this device.
/// A `Delete` or `RemoveDir` is never renamed by the server, so anything but
/// applied or unchanged is a refusal; an `Upload`, `MakeDir` or `Rename`
/// answered `Conflict` landed under a conflict name.
pub fn on_push_answer(op: &Op, status: PushStatus) -> AckDecision {
    let follow = match op {
        Op::Upload { stat, .. } | Op::Stream { stat, .. } => Some(Expect::File(*stat)),
        Op::MakeDir { .. } => Some(Expect::Dir),
        Op::Rename { .. } => Some(Expect::Free),
        Op::Delete { .. } | Op::RemoveDir { .. } | Op::SetMode { .. } => None,
    };
    match (status, follow) {
        (PushStatus::Applied, _) => AckDecision::Applied,
        (PushStatus::Unchanged, _) => AckDecision::Unchanged,
        (PushStatus::Conflict, Some(expect)) => AckDecision::FollowConflictName(expect),
        (PushStatus::Conflict | PushStatus::Stale, _) => AckDecision::Refused,
    }
}

/// Whether to mirror the server's conflict name locally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mirror {
    /// The pushed file is already at the conflict name (an earlier answer,
    /// or a pull, put it there): index it there, move nothing.
    AlreadyThere,
    /// Move the source to the conflict name (whatever is there is set aside
    /// first), then index it there.
    Move,
    /// The source is no longer what was pushed (edited, replaced): leave
    /// it; it is compared and pushed again.
    Leave,
    /// The pushed file is gone from its path (deleted or moved here since
    /// the push) and nothing is at the conflict name: the conflict name is
    /// recorded as holding what was pushed, without making anything there,
    /// so the next look pushes the deletion (or the move) of the conflict
    /// copy, as it would have of the file. Left unrecorded, the
    /// pull brought the conflict copy back: a file deleted here reappeared
    /// under another name.
    Gone,
}

/// Decides [`Mirror`] from `expect` and what the disk holds at the move's
/// source (`from`) and destination (`to`) now.
pub fn mirror(expect: Expect, from: Local, to: Local) -> Mirror {
    match expect {
        Expect::File(stat) if to == Local::File(stat) => Mirror::AlreadyThere,
        Expect::File(stat) if from == Local::File(stat) => Mirror::Move,
        Expect::File(_) if (from, to) == (Local::Absent, Local::Absent) => Mirror::Gone,
        Expect::Dir if from == Local::Dir => Mirror::Move,
        Expect::Free => Mirror::Move,
        Expect::File(_) | Expect::Dir => Mirror::Leave,
    }
}

/// What the index says of a path: what this device last agreed with the
/// server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Indexed {
    /// Nothing: never synced here.
    Nothing,
    /// A directory.
    Dir,
    /// A file with this content.
    File(ContentHash),
}

impl Indexed {
    /// From the index's record (`None`: not indexed).
    pub fn of(entry: Option<Entry>) -> Indexed {
        match entry.map(|e| e.kind) {
            None => Indexed::Nothing,
            Some(EntryKind::Dir) => Indexed::Dir,
            Some(EntryKind::File { hash, .. }) => Indexed::File(hash),
        }
    }

    /// The content hash the index holds (`None` for a directory or nothing).
    fn hash(self) -> Option<ContentHash> {
        match self {
            Indexed::File(hash) => Some(hash),
            Indexed::Dir | Indexed::Nothing => None,
        }
    }
}

/// What a pull reply says the server holds at a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    /// Deleted (listed, or gone from a full listing).
    Deleted,
    /// A directory.
    Dir,
    /// A file with this content.
    File(ContentHash),
}

/// What a local regular file holds, compared with the server and the index
/// (in this order of precedence: a file that holds the server's content is
/// `Server` even if that is also the synced one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content {
    /// The server's content (only when the server holds a file).
    Server,
    /// What the index says was synced: no local edit.
    Synced,
    /// Anything else: a local edit, or a file the index does not know.
    Edited,
}

/// What is at a local path now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disk {
    /// Nothing.
    Absent,
    /// A directory.
    Dir,
    /// A symlink or special file, or a symlink or file on the way to it:
    /// never written through.
    Foreign,
    /// A regular file.
    File(Content),
    /// A directory this device keeps out of sync: the rules ignore it, or
    /// the index does not know it and everything below it is ignored (the
    /// scanner never pushes it). A pull never touches it (README "Ignoring
    /// files"), and no push of it will ever settle the path.
    IgnoredDir,
}

/// What applying one entry of a pull reply does to a local path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullDecision {
    /// The disk already holds what the server says (a directory, the same
    /// content): the index records the server's version.
    Record,
    /// Make the path what the server says: nothing local would be lost
    /// (absent, or the synced version): delete, create or download.
    Apply,
    /// A synced local directory is in the way of a server file: removed
    /// (keeping any edit inside), then the file is downloaded.
    ClearDirThenApply,
    /// The server still holds what was synced here, and the path changed
    /// locally: the local change waits for its push, based on the server's
    /// version, which the index takes.
    KeepLocalChange,
    /// The server deleted a file this device edited: the edit stays and is
    /// pushed as a new file.
    KeepEdit,
    /// This device changed the path (a new directory, an edited file, a
    /// deleted file) and the server holds a version it has not seen, which
    /// may be this device's own push, applied but never acknowledged (a
    /// crash, a lost connection). Nothing local is touched and the index
    /// entry stays: the path is pushed on its old base and the pull is
    /// repeated, since its cursor must not pass the entry. The server
    /// decides (PROTOCOL.md §7.2: Applied if the newer version was this
    /// device's own, else Conflict or Stale, whose handling brings the
    /// other version).
    PushFirst,
    /// A file edited here where the server now has a directory: the edit
    /// becomes a conflict copy (pushed) and the directory is made.
    ConflictCopyThenApply,
    /// A symlink or special file is in the way: never touched. When the
    /// obstacle is a regular file standing where the server has a parent
    /// directory, that file becomes a conflict copy and the entry is applied.
    Foreign,
    /// The server holds a file where this device keeps an ignored directory
    /// ([`Disk::IgnoredDir`]): nothing local is touched and nothing is
    /// pushed; the entry is recorded as held back (listed by `status`, the
    /// folder not in sync) and the cursor passes it. It is pulled again once
    /// the directory is gone or no longer ignored (PROTOCOL.md ).
    HeldBack,
}

/// Decides what a pull's entry `server` does to a path the index records as
/// `indexed` and the disk holds as `disk`. The I/O code re-checks every
/// decision at the instant it acts (a writer may act in between: see
/// `applier::place`). `Applier::apply_dir` and `Applier::apply_file` carry
/// out what this returns.
pub fn on_pull(indexed: Indexed, disk: Disk, server: Server) -> PullDecision {
    use PullDecision::*;
    // The server's entry is what this device last synced there.
    let agrees = match server {
        Server::Deleted => false,
        Server::Dir => indexed == Indexed::Dir,
        Server::File(hash) => indexed.hash() == Some(hash),
    };
    match (server, disk) {
        (Server::Deleted, Disk::Absent) => Apply,
        (Server::Deleted, Disk::Foreign) => Foreign,
        (Server::Deleted, Disk::Dir | Disk::IgnoredDir) => Apply,
        (Server::Deleted, Disk::File(Content::Edited)) => KeepEdit,
        (Server::Deleted, Disk::File(_)) => Apply,
        (Server::Dir, Disk::Dir | Disk::IgnoredDir) => Record,
        (Server::Dir, _) if agrees => KeepLocalChange,
        (Server::Dir, Disk::Foreign) => Foreign,
        (Server::Dir, Disk::Absent) => Apply,
        (Server::Dir, Disk::File(Content::Edited)) => ConflictCopyThenApply,
        (Server::Dir, Disk::File(_)) => Apply,
        (Server::File(_), Disk::File(Content::Server)) => Record,
        (Server::File(_), Disk::File(Content::Synced)) => Apply,
        (Server::File(_), _) if agrees => KeepLocalChange,
        (Server::File(_), Disk::Foreign) => Foreign,
        // Pushing first would wait forever: the directory is never pushed.
        (Server::File(_), Disk::IgnoredDir) => HeldBack,
        // Deleted here, changed on the server (perhaps by this device's own
        // unacknowledged push): the server decides (§7.2).
        (Server::File(_), Disk::Absent) if indexed.hash().is_some() => PushFirst,
        (Server::File(_), Disk::Absent) => Apply,
        (Server::File(_), Disk::Dir) if indexed == Indexed::Dir => ClearDirThenApply,
        (Server::File(_), Disk::Dir) => PushFirst,
        (Server::File(_), Disk::File(Content::Edited)) => PushFirst,
    }
}

/// What becomes of a file's executable bit when a pull lists the file with
/// its bit (a ModeBatch, PROTOCOL.md §15.2). The bit and the content are
/// independent facts: this is decided beside [`on_pull`], never
/// instead of it, so a content download never takes a local chmod away and
/// a content edit never keeps a bit the server changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModeDecision {
    /// The local file already has the server's bit: the index records it.
    Agree,
    /// Not changed here since the index: the local file takes the server's
    /// bit, and the index records it.
    Apply,
    /// Changed here since the index and not pushed yet: the local bit stays,
    /// the index records the server's, so the difference is pushed (SetMode,
    /// re-based on the server's version).
    KeepLocal,
    /// The server changed the bit of a file that is not here any more (moved
    /// or deleted here, not pushed yet): the bit cannot be given to it, so
    /// the local change is pushed first on its old base and the pull is
    /// repeated; the server decides (a Rename carries the new bit along, a
    /// Delete is Stale and the file comes back, as after an edit elsewhere).
    PushFirst,
}

/// Decides [`ModeDecision`] from the bit the index recorded (`indexed`,
/// `None` when the index holds no file there), the local file's bit now
/// (`local`, `None` when no regular file is there) and the server's bit.
pub fn on_pull_mode(indexed: Option<bool>, local: Option<bool>, server: bool) -> ModeDecision {
    match (indexed, local) {
        (Some(i), None) if i != server => ModeDecision::PushFirst,
        (_, None) => ModeDecision::Agree,
        (_, Some(l)) if l == server => ModeDecision::Agree,
        (Some(i), Some(l)) if l != i => ModeDecision::KeepLocal,
        (_, Some(_)) => ModeDecision::Apply,
    }
}

/// A local file moved out of the way at the instant of a step (set aside
/// before a deletion, or swapped out by a download's exchange), as judged
/// there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetAside {
    /// Not a regular file (a directory or symlink appeared meanwhile).
    NotAFile,
    /// A regular file that some program holds open for writing: its next
    /// write would go into a deleted file, so it counts as an edit; and a
    /// download never takes its name.
    HeldOpen,
    /// A regular file nobody writes, with this content.
    File(Content),
}

/// What becomes of a file set aside to be deleted (or stashed for reuse).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnRemove {
    /// The synced version: delete it (or stash it, if the reply wants its
    /// content elsewhere).
    Remove,
    /// Not the synced version: it goes back (or, if the path was taken
    /// meanwhile, becomes a conflict copy).
    PutBack,
}

/// Decides [`OnRemove`] for a file set aside before a deletion.
pub fn on_remove(set_aside: SetAside) -> OnRemove {
    match set_aside {
        SetAside::File(Content::Synced) => OnRemove::Remove,
        SetAside::NotAFile | SetAside::HeldOpen | SetAside::File(_) => OnRemove::PutBack,
    }
}

/// What becomes of what a download swapped out of its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnSwappedOut {
    /// The synced version, or already the new content: delete it.
    Discard,
    /// A local edit made since the download was planned: a conflict copy
    /// (pushed).
    ConflictCopy,
    /// Not a regular file, or a file some program holds open for writing
    /// the program's file keeps its name): swapped back, nothing
    /// is placed (the pull is repeated).
    SwapBack,
}

/// Decides [`OnSwappedOut`] for what a download's exchange moved out.
pub fn on_swapped_out(set_aside: SetAside) -> OnSwappedOut {
    match set_aside {
        SetAside::NotAFile | SetAside::HeldOpen => OnSwappedOut::SwapBack,
        SetAside::File(Content::Synced | Content::Server) => OnSwappedOut::Discard,
        SetAside::File(Content::Edited) => OnSwappedOut::ConflictCopy,
    }
}

#[cfg(test)]
mod tests;
