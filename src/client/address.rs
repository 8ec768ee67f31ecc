//! The server's address as the user typed it (`SERVER_IP SERVER_PORT`, or
//! `HOST:PORT` for `versions` and `restore`), looked up again at every
//! connection attempt.
//!
//! Why not resolve once at start: a joined client keeps running while the
//! server is unreachable and retries (PROTOCOL.md ), and a name that
//! does not resolve yet (the network comes up after the client, a resolver
//! outage) or that moves to another address (a server re-deployed behind a
//! new IP) is the same situation. Resolving on each attempt makes a lookup
//! failure an ordinary [`ClientError::Unreachable`], retried like a refused
//! connection.

use super::ClientError;
use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};

/// A host name or IP literal and a TCP port.
///
/// Displayed as `host:port`, with an IPv6 literal in brackets
/// (`[::1]:8000`), the form [`ServerAddress::parse`] reads back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerAddress {
    host: String,
    port: u16,
}

impl ServerAddress {
    /// `host` as typed: a name (`sync.example.org`) or an IP literal
    /// (`127.0.0.1`, `::1`, or `[::1]`: brackets are dropped).
    pub fn new(host: &str, port: u16) -> ServerAddress {
        ServerAddress {
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port,
        }
    }

    /// Reads `HOST:PORT` (`[V6]:PORT` for an IPv6 literal), as
    /// [`fmt::Display`] writes it.
    ///
    /// # Errors
    /// No `:PORT`, a port that is not a number in 0–65535, or an empty host;
    /// the message quotes the text.
    pub fn parse(text: &str) -> Result<ServerAddress, String> {
        let bad = || format!("{text:?} is not HOST:PORT");
        let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
        let port = port.parse::<u16>().map_err(|_| bad())?;
        let address = ServerAddress::new(host, port);
        if address.host.is_empty() {
            return Err(bad());
        }
        Ok(address)
    }

    /// The host as typed, without brackets: what a CA-signed certificate
    /// must name (PROTOCOL.md §12).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Looks the host up now (the system resolver; an IP literal needs no
    /// lookup). Every address it gives, in its order.
    ///
    /// # Errors
    /// [`ClientError::Unreachable`] when the lookup fails or gives no
    /// address; retryable like a refused connection
    /// ([`ClientError::is_retryable_connect`]).
    pub fn resolve(&self) -> Result<Vec<SocketAddr>, ClientError> {
        let unreachable = |cause: io::Error| ClientError::Unreachable {
            address: self.to_string(),
            cause,
        };
        let found: Vec<SocketAddr> = (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(|e| {
                unreachable(io::Error::new(
                    e.kind(),
                    format!("cannot resolve {}: {e}", self.host),
                ))
            })?
            .collect();
        if found.is_empty() {
            return Err(unreachable(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no address for {}", self.host),
            )));
        }
        Ok(found)
    }
}

impl fmt::Display for ServerAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_parse_round_trip() {
        for (host, port, shown) in [
            ("127.0.0.1", 8000, "127.0.0.1:8000"),
            ("::1", 1, "[::1]:1"),
            ("[::1]", 65535, "[::1]:65535"),
            ("sync.example.org", 443, "sync.example.org:443"),
        ] {
            let a = ServerAddress::new(host, port);
            assert_eq!(a.to_string(), shown);
            assert_eq!(ServerAddress::parse(shown), Ok(a));
        }
    }

    #[test]
    fn parse_refuses_what_is_not_host_port() {
        for text in [
            "",
            "host",
            "host:",
            ":80",
            "host:port",
            "host:65536",
            "[]:80",
        ] {
            assert!(ServerAddress::parse(text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn a_literal_resolves_to_itself() {
        let found = ServerAddress::new("127.0.0.1", 9).resolve().unwrap();
        assert_eq!(found, vec![SocketAddr::from(([127, 0, 0, 1], 9))]);
        let found = ServerAddress::new("[::1]", 9).resolve().unwrap();
        assert_eq!(found, vec!["[::1]:9".parse::<SocketAddr>().unwrap()]);
    }

    #[test]
    fn a_name_that_does_not_resolve_is_retryable_unreachable() {
        // `.invalid` never resolves (RFC 2606 §2).
        let e = ServerAddress::new("cloudservice-test.invalid", 9)
            .resolve()
            .unwrap_err();
        assert!(
            matches!(&e, ClientError::Unreachable { address, .. } if address == "cloudservice-test.invalid:9"),
            "{e:?}"
        );
        assert!(e.is_retryable_connect());
        assert!(
            e.to_string()
                .contains("cannot resolve cloudservice-test.invalid"),
            "{e}"
        );
    }
}
