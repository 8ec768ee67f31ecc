//! A load connection's byte channel: TLS (the default, as real clients run)
//! or plaintext frames (`--insecure-plaintext`), both driven like a
//! non-blocking socket from the one mio thread.

use crate::protocol::UserId;
use crate::tls::config::client_config;
use crate::tls::routing::sni_for;
use crate::tls::stream::TlsStream;
use crate::tls::trust::{TrustPolicy, TrustVerifier};
use mio::net::TcpStream;
use rustls::pki_types::ServerName;
use std::io::{self, Read, Write};
use std::sync::Arc;

/// The TLS configuration of a load run: the real client's (TLS 1.3, ALPN),
/// trusting whatever certificate the server presents. A load tool measures
/// capacity and carries no user data worth protecting; a client never does this.
///
/// # Errors
/// rustls refused the configuration (a provider without TLS 1.3).
pub fn tls_config() -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
    let verifier = TrustVerifier::new(TrustPolicy::FirstUse { known: None });
    client_config(Arc::new(verifier))
}

/// One connection's transport.
pub enum Link {
    /// Frames on TCP.
    Plain(TcpStream),
    /// Frames inside TLS.
    Tls(Box<TlsStream<TcpStream>>),
}

impl Link {
    /// Wraps a connecting socket; TLS when `tls` is given, with the SNI of `user`.
    ///
    /// # Errors
    /// rustls could not start a client connection.
    pub fn new(
        stream: TcpStream,
        tls: Option<&Arc<rustls::ClientConfig>>,
        user: Option<&UserId>,
    ) -> Result<Link, rustls::Error> {
        let Some(config) = tls else {
            return Ok(Link::Plain(stream));
        };
        let name = ServerName::try_from(sni_for(user))
            .map_err(|e| rustls::Error::General(e.to_string()))?;
        let conn = rustls::ClientConnection::new(Arc::clone(config), name)?;
        Ok(Link::Tls(Box::new(TlsStream::new(conn, stream))))
    }

    /// The socket.
    pub fn socket(&self) -> &TcpStream {
        match self {
            Link::Plain(s) => s,
            Link::Tls(t) => t.socket(),
        }
    }

    /// The socket, mutably (to deregister it).
    pub fn socket_mut(&mut self) -> &mut TcpStream {
        match self {
            Link::Plain(s) => s,
            Link::Tls(t) => t.socket_mut(),
        }
    }

    /// Plaintext in, like a non-blocking socket.
    ///
    /// # Errors
    /// `WouldBlock` and the transport's errors.
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Link::Plain(s) => s.read(buf),
            Link::Tls(t) => t.read(buf),
        }
    }

    /// Plaintext out, like a non-blocking socket.
    ///
    /// # Errors
    /// `WouldBlock` and the transport's errors.
    pub fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Link::Plain(s) => s.write(buf),
            Link::Tls(t) => t.write(buf),
        }
    }

    /// Sends what TLS still holds (handshake messages, records).
    ///
    /// # Errors
    /// The socket failed.
    pub fn flush(&mut self) -> io::Result<()> {
        match self {
            Link::Plain(_) => Ok(()),
            Link::Tls(t) => t.flush_tls().map(|_| ()),
        }
    }
}
