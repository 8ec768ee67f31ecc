//! The PROXY protocol header a trusted load balancer sends before the TLS
//! ClientHello (`--proxy-protocol`, PROTOCOL.md §17; HAProxy's
//! proxy-protocol.txt, v1 text and v2 binary): which client the proxied
//! connection is really from.
//!
//! [`parse`] is a pure function of the bytes gathered so far: the reactor
//! peeks at the socket (nothing consumed, no buffer per connection), asks
//! `parse`, and reads exactly the header's bytes once it is whole, so the
//! TLS ClientHello after it stays in the socket for TLS. A header arriving
//! in pieces is [`Gathered::Incomplete`] until its last byte; one that never
//! ends runs into the handshake timeout like a silent TLS handshake. The
//! wire formats are parsed by the `ppp` crate; this module adds what a
//! stream needs around it: which version the first bytes announce, a v1
//! line judged only once its CRLF is there (ppp takes some prefixes of a
//! valid line, e.g. one ending in a space, for a wrong line), and the cap
//! [`MAX_HEADER`].

use ppp::{v1, v2, PartialResult};
use std::fmt;
use std::net::SocketAddr;

/// The largest header taken (bytes). v1 is at most 107 bytes by its spec;
/// a v2 header is 16 bytes, the addresses (12 for IPv4, 36 for IPv6, 216
/// for AF_UNIX) and TLVs, which HAProxy sends only when configured to
/// (`proxy-v2-options`: authority, unique ID, TLS facts, CRC32C: a few
/// hundred bytes). A longer one is refused as soon as its length field says
/// so: a trusted proxy never needs more, and the reactor peeks at most this.
pub const MAX_HEADER: usize = 1024;

/// The longest v1 header (proxy-protocol.txt §2.1).
pub const MAX_V1: usize = 107;

/// A v2 header's fixed part: signature, version and command, family and
/// protocol, length (proxy-protocol.txt §2.2).
const V2_FIXED: usize = 16;

/// The first bytes of a v1 header.
const V1_SIGNATURE: &[u8] = b"PROXY ";

/// Who the connection is from, by the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A proxied client (v1 TCP4/TCP6, v2 PROXY over IPv4/IPv6): its
    /// address and port replace the proxy's.
    Client(SocketAddr),
    /// v2 LOCAL: the proxy's own connection (a health check); the
    /// connection stays the proxy's.
    Local,
    /// v1 UNKNOWN, or v2 PROXY with an unspecified or AF_UNIX family: the
    /// proxy does not know the client's address; the connection stays the
    /// proxy's.
    Unknown,
}

/// What the bytes gathered so far are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gathered {
    /// A prefix of a header: wait for more bytes.
    Incomplete,
    /// A whole header of `len` bytes (what follows is the client's).
    Complete {
        /// The header's length: exactly these bytes are consumed.
        len: usize,
        /// Whom it names.
        source: Source,
        /// 1 or 2.
        version: u8,
    },
}

/// A trusted proxy's connection that does not start with a valid header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderError {
    /// The first bytes are neither `PROXY ` (v1) nor v2's 12-byte signature.
    NoSignature,
    /// The header is longer than [`MAX_HEADER`] (v2's length field) or its
    /// v1 line than 107 bytes.
    TooLong {
        /// The limit passed.
        limit: usize,
    },
    /// The signature is there, the rest is not a header (ppp's reason).
    Invalid {
        /// 1 or 2.
        version: u8,
        /// What is wrong.
        why: String,
    },
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderError::NoSignature => f.write_str(
                "no PROXY protocol header: the first bytes are neither \"PROXY \" (v1) nor the v2 signature",
            ),
            HeaderError::TooLong { limit } => {
                write!(f, "PROXY protocol header longer than {limit} bytes")
            }
            HeaderError::Invalid { version, why } => {
                write!(f, "invalid PROXY protocol v{version} header: {why}")
            }
        }
    }
}

impl std::error::Error for HeaderError {}

/// Judges the bytes a trusted proxy's connection sent so far (see the
/// module doc). Any prefix of a valid header is `Incomplete`; the whole
/// header, with or without bytes after it, is `Complete` with its length.
///
/// # Errors
/// The bytes cannot begin a header, or no longer can.
pub fn parse(bytes: &[u8]) -> Result<Gathered, HeaderError> {
    let starts = |signature: &[u8]| {
        let n = bytes.len().min(signature.len());
        bytes[..n] == signature[..n]
    };
    if bytes.is_empty() {
        Ok(Gathered::Incomplete)
    } else if starts(v2::PROTOCOL_PREFIX) {
        parse_v2(bytes)
    } else if starts(V1_SIGNATURE) {
        parse_v1(bytes)
    } else {
        Err(HeaderError::NoSignature)
    }
}

fn parse_v2(bytes: &[u8]) -> Result<Gathered, HeaderError> {
    if bytes.len() >= V2_FIXED {
        let declared = usize::from(u16::from_be_bytes([bytes[14], bytes[15]]));
        if V2_FIXED + declared > MAX_HEADER {
            return Err(HeaderError::TooLong { limit: MAX_HEADER });
        }
    }
    match v2::Header::try_from(bytes) {
        Ok(header) => {
            let source = match (header.command, header.addresses) {
                (v2::Command::Local, _) => Source::Local,
                (v2::Command::Proxy, v2::Addresses::IPv4(a)) => {
                    Source::Client(SocketAddr::new(a.source_address.into(), a.source_port))
                }
                (v2::Command::Proxy, v2::Addresses::IPv6(a)) => {
                    Source::Client(SocketAddr::new(a.source_address.into(), a.source_port))
                }
                (v2::Command::Proxy, v2::Addresses::Unspecified | v2::Addresses::Unix(_)) => {
                    Source::Unknown
                }
            };
            Ok(Gathered::Complete {
                len: header.len(),
                source,
                version: 2,
            })
        }
        Err(e) if e.is_incomplete() => Ok(Gathered::Incomplete),
        Err(e) => Err(HeaderError::Invalid {
            version: 2,
            why: e.to_string(),
        }),
    }
}

fn parse_v1(bytes: &[u8]) -> Result<Gathered, HeaderError> {
    // The line is judged whole (ppp reads "… 1 " as a wrong port, not as a
    // line still arriving): wait for its CR and the byte after it.
    let window = &bytes[..bytes.len().min(MAX_V1)];
    let line_end = match window.iter().position(|&b| b == b'\r') {
        Some(cr) if cr + 1 < bytes.len() => cr + 2,
        Some(_) => return Ok(Gathered::Incomplete),
        None if bytes.len() >= MAX_V1 => return Err(HeaderError::TooLong { limit: MAX_V1 }),
        None => return Ok(Gathered::Incomplete),
    };
    if line_end > MAX_V1 {
        return Err(HeaderError::TooLong { limit: MAX_V1 });
    }
    match v1::Header::try_from(&bytes[..line_end]) {
        Ok(header) => {
            let source = match header.addresses {
                v1::Addresses::Tcp4(a) => {
                    Source::Client(SocketAddr::new(a.source_address.into(), a.source_port))
                }
                v1::Addresses::Tcp6(a) => {
                    Source::Client(SocketAddr::new(a.source_address.into(), a.source_port))
                }
                v1::Addresses::Unknown => Source::Unknown,
            };
            Ok(Gathered::Complete {
                len: header.header.len(),
                source,
                version: 1,
            })
        }
        // A whole line ppp still calls incomplete (fields missing) is wrong.
        Err(e) => Err(HeaderError::Invalid {
            version: 1,
            why: e.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests;
