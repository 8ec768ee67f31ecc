//! What a connection's bytes travel through: TLS by default, or the bare
//! socket under `--insecure-plaintext`. The reactor reads and writes a
//! [`Transport`] like a non-blocking socket and its frame decoder sees
//! plaintext either way.
//!
//! The first two bytes a client sends decide a mismatch before anything is
//! decoded (PROTOCOL.md §12.4): a plaintext `Hello` (`"CS"`) on a TLS server,
//! or a TLS ClientHello (`0x16 0x03`) on a plaintext server, is answered with
//! one plaintext `Error` frame naming the mismatch, then closed.

use crate::protocol::FrameFill;
use crate::tls::server_stream::ServerTlsStream;
use crate::tls::sniff::{sniff, Sniffed};
use mio::net::TcpStream;
use std::fmt;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::sync::Arc;

/// A connection's byte channel.
pub enum Transport {
    /// Frames straight on the socket (`--insecure-plaintext`).
    Plain {
        /// The socket.
        stream: TcpStream,
        /// The first bytes have been checked.
        sniffed: bool,
        /// Bytes read from the socket so far.
        received: u64,
    },
    /// TLS: the socket under a rustls server connection (unbuffered API:
    /// an idle connection holds no buffer, see [`ServerTlsStream`]).
    Tls {
        /// The TLS adapter around the socket.
        tls: Box<ServerTlsStream<TcpStream>>,
        /// The first bytes have been checked.
        sniffed: bool,
    },
    /// Only while switching variants.
    Gone,
}

/// A client speaking the other transport than the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mismatch {
    /// A plaintext frame on a TLS server.
    PlaintextClient,
    /// A TLS ClientHello on a plaintext server.
    TlsClient,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mismatch::PlaintextClient => {
                "this server requires TLS; the client was started with --insecure-plaintext"
            }
            Mismatch::TlsClient => {
                "this server runs with --insecure-plaintext and does not speak TLS"
            }
        })
    }
}

impl std::error::Error for Mismatch {}

impl Mismatch {
    /// The mismatch an error from [`Transport::read`] reports, if it is one.
    pub fn of(error: &io::Error) -> Option<Mismatch> {
        error.get_ref()?.downcast_ref::<Mismatch>().copied()
    }
}

impl Transport {
    /// A new connection's transport: TLS with `config`, or plaintext without.
    ///
    /// # Errors
    /// rustls could not start a server connection.
    pub fn new(
        stream: TcpStream,
        config: Option<&Arc<rustls::ServerConfig>>,
    ) -> Result<Transport, rustls::Error> {
        Ok(match config {
            Some(config) => Transport::Tls {
                tls: Box::new(ServerTlsStream::new(Arc::clone(config), stream)?),
                sniffed: false,
            },
            None => Transport::Plain {
                stream,
                sniffed: false,
                received: 0,
            },
        })
    }

    /// The socket, to register or deregister it.
    pub fn socket_mut(&mut self) -> Option<&mut TcpStream> {
        match self {
            Transport::Plain { stream, .. } => Some(stream),
            Transport::Tls { tls, .. } => Some(tls.socket_mut()),
            Transport::Gone => None,
        }
    }

    /// The socket, to peek at and read a PROXY protocol header before any
    /// TLS (`reactor/proxied.rs`).
    pub fn socket(&self) -> Option<&TcpStream> {
        match self {
            Transport::Plain { stream, .. } => Some(stream),
            Transport::Tls { tls, .. } => Some(tls.socket()),
            Transport::Gone => None,
        }
    }

    /// Bytes written to the socket that the peer has not acknowledged yet
    /// (the kernel's send queue, `SIOCOUTQ`, tcp(7)); 0 for a closed
    /// transport or when the kernel does not say. A change of this number
    /// between two looks means the peer is reading.
    pub fn unsent_bytes(&self) -> u32 {
        let fd = match self {
            Transport::Plain { stream, .. } => stream.as_raw_fd(),
            Transport::Tls { tls, .. } => tls.socket().as_raw_fd(),
            Transport::Gone => return 0,
        };
        crate::tcp_info::unsent_bytes(&fd)
    }

    /// Bytes read from the socket so far (TLS records counted as they
    /// arrive, a partial record too): the idle timer's sign that the peer
    /// is sending, however slowly a frame comes.
    pub fn received(&self) -> u64 {
        match self {
            Transport::Plain { received, .. } => *received,
            Transport::Tls { tls, .. } => tls.received(),
            Transport::Gone => 0,
        }
    }

    /// Whether a TLS handshake is still going (never for plaintext).
    pub fn tls_handshaking(&self) -> bool {
        matches!(self, Transport::Tls { tls, .. } if tls.is_handshaking())
    }

    /// Whether a TLS handshake started (the client's first bytes came)
    /// and has not finished: a peer that ends the connection now gave up
    /// on TLS (a client refusing the certificate closes so), unlike a bare
    /// connect-and-close (a load balancer's health check).
    pub fn tls_handshake_started(&self) -> bool {
        matches!(self, Transport::Tls { tls, sniffed: true } if tls.is_handshaking())
    }

    /// Reads plaintext, like `Read::read` on a non-blocking socket.
    /// `scratch` is the reactor's scratch room TLS records are read and
    /// decrypted in, shared by all connections (see
    /// [`ServerTlsStream::read`]); plaintext ignores it.
    ///
    /// # Errors
    /// `WouldBlock`; a [`Mismatch`] (see [`Mismatch::of`]), after which the
    /// transport is plaintext so the reactor's `Error` frame can be read;
    /// `InvalidData` for a failed TLS handshake; the socket's errors.
    pub fn read(&mut self, buf: &mut [u8], scratch: &mut Vec<u8>) -> io::Result<usize> {
        if let Some(mismatch) = self.check_first_bytes()? {
            if mismatch == Mismatch::PlaintextClient {
                self.downgrade();
            }
            return Err(io::Error::new(io::ErrorKind::InvalidData, mismatch));
        }
        match self {
            Transport::Plain {
                stream, received, ..
            } => {
                let n = stream.read(buf)?;
                *received += n as u64;
                Ok(n)
            }
            Transport::Tls { tls, .. } => tls.read(buf, scratch),
            Transport::Gone => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    /// Whether [`Transport::read_frame`] reads straight into the frame
    /// decoder: TLS once its first bytes were checked. Plaintext is read
    /// into the reactor's buffer as before (a socket read into a frame's
    /// payload would have to reserve its room before the bytes arrive,
    /// which forbids).
    pub fn reads_frames(&self) -> bool {
        matches!(self, Transport::Tls { sniffed: true, .. })
    }

    /// Reads plaintext straight into the frame decoder, up to the end of
    /// one frame (see [`ServerTlsStream::read_frame`]); only where
    /// [`Transport::reads_frames`] says so, else `Unsupported`.
    ///
    /// # Errors
    /// As [`Transport::read`].
    pub fn read_frame(
        &mut self,
        fill: &mut FrameFill<'_>,
        scratch: &mut Vec<u8>,
    ) -> io::Result<usize> {
        match self {
            Transport::Tls { tls, sniffed: true } => tls.read_frame(fill, scratch),
            _ => Err(io::ErrorKind::Unsupported.into()),
        }
    }

    /// Peeks at the first two bytes once; `WouldBlock` until both are there.
    fn check_first_bytes(&mut self) -> io::Result<Option<Mismatch>> {
        let (stream, sniffed, tls) = match self {
            Transport::Plain {
                stream, sniffed, ..
            } => (&*stream, sniffed, false),
            Transport::Tls { tls, sniffed } => (tls.socket(), sniffed, true),
            Transport::Gone => return Ok(None),
        };
        if *sniffed {
            return Ok(None);
        }
        let mut first = [0u8; 2];
        let n = stream.peek(&mut first)?;
        if n == 0 {
            // The peer closed before sending a byte (a load balancer's
            // health check, also after its PROXY header, §17): nothing was
            // started, so nothing is said about TLS.
            return Ok(None);
        }
        let seen = sniff(&first[..n]);
        if seen == Sniffed::TooShort {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        *sniffed = true;
        Ok(match (seen, tls) {
            (Sniffed::Plaintext, true) => Some(Mismatch::PlaintextClient),
            (Sniffed::Tls, false) => Some(Mismatch::TlsClient),
            _ => None,
        })
    }

    /// Turns a TLS transport into a plaintext one over the same socket.
    fn downgrade(&mut self) {
        if let Transport::Tls { tls, .. } = std::mem::replace(self, Transport::Gone) {
            let received = tls.received();
            *self = Transport::Plain {
                stream: tls.into_socket(),
                sniffed: true,
                received,
            };
        }
    }

    /// Writes plaintext, like `Write::write` on a non-blocking socket.
    /// `seal` is the reactor's scratch room for TLS records, shared by all
    /// connections (see [`ServerTlsStream::write`]); plaintext ignores it.
    ///
    /// # Errors
    /// `WouldBlock`; the socket's errors.
    pub fn write(&mut self, buf: &[u8], seal: &mut Vec<u8>) -> io::Result<usize> {
        match self {
            Transport::Plain { stream, .. } => stream.write(buf),
            Transport::Tls { tls, .. } => tls.write(buf, seal),
            Transport::Gone => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    /// Sends encrypted bytes rustls still holds; `Ok(true)` when none are left.
    ///
    /// # Errors
    /// The socket failed.
    pub fn flush(&mut self) -> io::Result<bool> {
        match self {
            Transport::Tls { tls, .. } => tls.flush_tls(),
            Transport::Plain { .. } | Transport::Gone => Ok(true),
        }
    }

    /// True while encrypted bytes wait for the socket.
    pub fn wants_write(&self) -> bool {
        matches!(self, Transport::Tls { tls, .. } if tls.wants_write())
    }

    /// Sends a TLS close_notify, if TLS and the socket takes it now.
    pub fn close_notify(&mut self) {
        if let Transport::Tls { tls, .. } = self {
            tls.close_notify();
        }
    }
}
