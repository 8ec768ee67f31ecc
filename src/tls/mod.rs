//! The TLS layer under the frame protocol (PROTOCOL.md §12): TLS 1.3 only,
//! rustls with the ring provider, ALPN `cloudservice/1`.
//!
//! - [`fingerprint`]: SHA-256 certificate fingerprints, as printed and pinned.
//! - [`identity`]: the server's key and certificate (made on first start, or loaded).
//! - [`config`]: the rustls server and client configurations.
//! - [`compact_keys`]: record keys an idle server connection keeps small.
//! - [`trust`]: how a client decides to trust a server (first use, pin, CA).
//! - [`stream`]: a non-blocking adapter of a rustls connection over a socket.
//! - [`server_stream`]: the server's adapter, on rustls's unbuffered API, that
//!   holds no buffer while its connection is idle.
//! - [`sniff`]: tells a TLS ClientHello from a plaintext frame by its first bytes.
//! - [`routing`]: the routing key a client puts in the SNI.

pub mod compact_keys;
pub mod config;
pub mod fingerprint;
pub mod identity;
pub mod routing;
pub mod server_stream;
pub mod sniff;
pub mod stream;
pub mod trust;

pub use fingerprint::Fingerprint;

/// The ALPN protocol name both ends offer (PROTOCOL.md §12.1).
pub const ALPN: &[u8] = b"cloudservice/1";
