//! CloudService: folder synchronisation over a small binary protocol.
//!
//! # Layout
//! - [`protocol`]: the wire format: frames, the incremental decoder, path rules.
pub mod protocol;
