//! A rustls connection over a non-blocking socket, with the socket's own
//! calling convention: [`TlsStream::read`] gives plaintext or `WouldBlock`,
//! [`TlsStream::write`] takes plaintext or `WouldBlock`. The reactor drives it
//! exactly like a bare `TcpStream` and its frame decoder sees plaintext.
//!
//! Buffers are bounded: rustls holds at most [`SEND_LIMIT`] bytes of
//! encrypted output not yet taken by the socket (a write beyond that is
//! `WouldBlock`), and reads stop at one record beyond what was decrypted.

use std::io::{self, Read, Write};

/// Encrypted bytes rustls may hold for a slow socket before writes block.
pub const SEND_LIMIT: usize = 64 * 1024;

/// A TLS connection (client or server side) over the socket `S`.
pub struct TlsStream<S> {
    tls: rustls::Connection,
    sock: S,
}

impl<S: Read + Write> TlsStream<S> {
    /// Wraps a fresh rustls connection around `sock`.
    pub fn new(tls: impl Into<rustls::Connection>, sock: S) -> TlsStream<S> {
        let mut tls = tls.into();
        tls.set_buffer_limit(Some(SEND_LIMIT));
        TlsStream { tls, sock }
    }

    /// The socket (to register it with a poller).
    pub fn socket(&self) -> &S {
        &self.sock
    }

    /// The socket, mutably.
    pub fn socket_mut(&mut self) -> &mut S {
        &mut self.sock
    }

    /// Gives the socket back (rustls's state is dropped).
    pub fn into_socket(self) -> S {
        self.sock
    }

    /// The rustls connection (SNI, ALPN, handshake state).
    pub fn tls(&self) -> &rustls::Connection {
        &self.tls
    }

    /// Reads plaintext into `buf`: `Ok(0)` at a clean end (close_notify),
    /// `WouldBlock` when the socket has nothing more now, `UnexpectedEof` when
    /// the peer closed without close_notify, `InvalidData` when its bytes are
    /// not TLS or the handshake failed (the alert is sent first, if it can be).
    ///
    /// # Errors
    /// As above, and the socket's own errors.
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.tls.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            match self.tls.read_tls(&mut self.sock) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            if let Err(e) = self.tls.process_new_packets() {
                // rustls queued an alert describing the failure: try to send it.
                let _ = self.flush_tls();
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
            // Handshake messages (and key updates) to answer.
            self.flush_tls()?;
        }
    }

    /// Encrypts up to `buf.len()` plaintext bytes and writes what the socket
    /// takes; returns how many plaintext bytes were accepted.
    ///
    /// # Errors
    /// `WouldBlock` when rustls's bounded buffer is full and the socket takes
    /// nothing; the socket's own errors.
    pub fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        self.flush_tls()?;
        let n = self.tls.writer().write(buf)?;
        self.flush_tls()?;
        if n == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    }

    /// True while encrypted bytes wait for the socket.
    pub fn wants_write(&self) -> bool {
        self.tls.wants_write()
    }

    /// Writes pending encrypted bytes; `Ok(true)` when none are left,
    /// `Ok(false)` when the socket would block.
    ///
    /// # Errors
    /// The socket failed.
    pub fn flush_tls(&mut self) -> io::Result<bool> {
        while self.tls.wants_write() {
            match self.tls.write_tls(&mut self.sock) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Queues a close_notify alert and tries to send it.
    pub fn close_notify(&mut self) {
        self.tls.send_close_notify();
        let _ = self.flush_tls();
    }
}

#[cfg(test)]
pub(crate) mod tests;
