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
//!
//! The rule behind all of them (PROTOCOL.md §7): nothing this device holds
//! that the server does not is ever lost; what the server decided is
//! mirrored locally only when the disk still shows what the decision was
//! about, and anything else is pushed again for the server to decide.

use crate::client::fsutil::{Local, Stat};
use crate::client::plan::Op;
use crate::protocol::PushStatus;

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
        Op::Upload { stat, .. } => Some(Expect::File(*stat)),
        Op::MakeDir { .. } => Some(Expect::Dir),
        Op::Rename { .. } => Some(Expect::Free),
        Op::Delete { .. } | Op::RemoveDir { .. } => None,
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
    /// The source is no longer what was pushed (edited, replaced, gone):
    /// leave it; it is compared and pushed again.
    Leave,
}

/// Decides [`Mirror`] from `expect` and what the disk holds at the move's
/// source (`from`) and destination (`to`) now.
pub fn mirror(expect: Expect, from: Local, to: Local) -> Mirror {
    match expect {
        Expect::File(stat) if to == Local::File(stat) => Mirror::AlreadyThere,
        Expect::File(stat) if from == Local::File(stat) => Mirror::Move,
        Expect::Dir if from == Local::Dir => Mirror::Move,
        Expect::Free => Mirror::Move,
        Expect::File(_) | Expect::Dir => Mirror::Leave,
    }
}

#[cfg(test)]
mod tests;
