//! The client's push decisions, without I/O ("sans-I/O"): what to push from
//! a snapshot of the disk and the index, in what order, and what each
//! `PushAck` means for the index and the cursor. The scanner, `push` and the
//! session do the walking, hashing, sending and moving; everything here is a
//! function of in-memory state, so `tests/planner_properties.rs` runs it by
//! the thousand against an in-memory server.
//!
//! - [`ops`]: the pushes and what the disk holds.
//! - [`resolve`]: disk + index → pushes (renames, removals, additions).
//! - [`order`]: pushes → a dependency order the server applies as meant.
//! - [`swaps`]: renames among paths still there (swaps, cycles, chains).
//! - [`stranded`]: files moved to a path the protocol cannot carry: no
//!   Delete while they are there.
//! - [`ack`]: a `PushAck` → index updates, local moves, what to look at again.

pub mod ack;
#[cfg(test)]
pub mod fixtures;
pub mod ops;
pub mod order;
pub mod resolve;
pub mod stranded;
pub mod swaps;

pub use ops::{DiskEntry, Op};
pub use order::order;
pub use resolve::{dir_changes, dir_renames, file_changes, wait_for_moves, Wait};
