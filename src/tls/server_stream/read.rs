//! The read half of [`ServerTlsStream`]: the reactor's scratch lent to
//! the connection for one read, socket reads sized to the caller's room,
//! and decrypted records copied straight into the caller's buffer (see the
//! parent module's doc for what a connection keeps between reads).

use super::{PlainOut, ServerTlsStream, SliceOut, Step, MIN_READ, READ_ROOM, RECORD};
use crate::protocol::FrameFill;
use std::io::{self, Read, Write};

impl<S: Read + Write> ServerTlsStream<S> {
    /// Reads plaintext into `buf` (decrypted records are copied straight
    /// into it): `Ok(0)` at a clean end (close_notify),
    /// `WouldBlock` when the socket has nothing more now, `UnexpectedEof` when
    /// the peer closed without close_notify, `InvalidData` when its bytes are
    /// not TLS or the handshake failed (the alert is sent first, if it can be).
    ///
    /// # Errors
    /// As above, and the socket's own errors.
    ///
    /// `scratch` is room the socket's bytes are read and decrypted in: its
    /// contents on entry do not matter, and it keeps at least
    /// [`READ_ROOM`] bytes of length so that the next call, for any
    /// connection, neither allocates nor zeroes it again. Only a partial
    /// record left at the end is kept by the connection.
    pub fn read(&mut self, buf: &mut [u8], scratch: &mut Vec<u8>) -> io::Result<usize> {
        self.read_to(&mut SliceOut::new(buf), scratch)
    }

    /// As [`ServerTlsStream::read`], but the plaintext goes straight into
    /// the frame decoder, up to the end of one frame: each record is
    /// decrypted in the scratch and copied once, into the frame's payload
    /// (through the caller's buffer it was copied twice: into the buffer,
    /// then by the decoder into the payload; issue 12, BENCHMARKS.md "TLS
    /// upload: records straight into the frame"). Socket reads are sized to
    /// the frame's rest; the payload grows only for bytes read from the
    /// socket (PROTOCOL.md ). What a record holds past the frame is
    /// kept for the next call, as when a caller's buffer is full.
    ///
    /// # Errors
    /// As [`ServerTlsStream::read`].
    pub fn read_frame(
        &mut self,
        fill: &mut FrameFill<'_>,
        scratch: &mut Vec<u8>,
    ) -> io::Result<usize> {
        self.read_to(fill, scratch)
    }

    fn read_to(&mut self, out: &mut dyn PlainOut, scratch: &mut Vec<u8>) -> io::Result<usize> {
        if out.room() == 0 {
            return Ok(0);
        }
        if self.io.as_ref().is_some_and(|b| b.taken < b.plain.len()) {
            // Served from `plain` alone: no socket read, nothing to lend.
            let result = self.read_inner(out);
            self.release_if_idle();
            return result;
        }
        self.lend(scratch);
        let result = self.read_inner(out);
        self.give_back(scratch);
        self.release_if_idle();
        result
    }

    /// Makes `scratch` this connection's `incoming` for one read, with the
    /// partial record it held copied to its front.
    fn lend(&mut self, scratch: &mut Vec<u8>) {
        let b = self.bufs();
        let pending = b.pending();
        let room = READ_ROOM.max(pending + MIN_READ);
        if scratch.len() < room {
            scratch.resize(room, 0);
        }
        let own = std::mem::replace(&mut b.incoming, std::mem::take(scratch));
        b.incoming[..pending].copy_from_slice(&own[b.start..b.filled]);
        b.start = 0;
        b.filled = pending;
    }

    /// Takes the lent scratch back; the connection keeps a copy of the
    /// partial record at its front, exactly its size (nothing if none).
    fn give_back(&mut self, scratch: &mut Vec<u8>) {
        let Some(b) = self.io.as_mut() else {
            return;
        };
        let lent = std::mem::take(&mut b.incoming);
        b.incoming = lent[b.start..b.filled].to_vec();
        b.filled -= b.start;
        b.start = 0;
        *scratch = lent;
    }

    fn read_inner(&mut self, out: &mut dyn PlainOut) -> io::Result<usize> {
        // Plaintext bytes already given to `out` by this call.
        let mut given = 0;
        loop {
            let b = self.bufs();
            if b.taken < b.plain.len() {
                // Left over from a record `out` had no room for: it comes
                // before anything decrypted later.
                let n = out.put(&b.plain[b.taken..]);
                b.taken += n;
                if b.taken == b.plain.len() {
                    b.plain = Vec::new();
                    b.taken = 0;
                }
                return Ok(given + n);
            }
            if self.peer_closed || out.room() == 0 {
                return Ok(given);
            }
            let (step, n) = self.step(out)?;
            given += n;
            match step {
                Step::Again => continue,
                Step::PeerClosed => {
                    self.peer_closed = true;
                    continue;
                }
                Step::NeedInput => {}
            }
            self.flush_tls()?;
            if given > 0 && out.room() < RECORD {
                // Less room than a record: the caller's next call reads
                // with a whole buffer, not several small reads now.
                return Ok(given);
            }
            let pending = self.io.as_ref().map_or(0, |b| b.pending());
            let limit = out.room().saturating_sub(pending).max(MIN_READ);
            match self.read_socket(limit) {
                // The end is reported by the next call, after these bytes.
                Ok(0) if given > 0 => return Ok(given),
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(_) => out.arriving(self.io.as_ref().map_or(0, |b| b.pending())),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && given > 0 => return Ok(given),
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads what the socket has into `incoming`'s spare room, at most
    /// `limit` bytes (the room the caller's buffer has left, so that what
    /// is decrypted fits in it); grows `incoming` when it is full.
    fn read_socket(&mut self, limit: usize) -> io::Result<usize> {
        let Self {
            io, sock, received, ..
        } = self;
        let b = io.get_or_insert_with(Box::default);
        if b.incoming.len() - b.filled < limit {
            // Only what rustls has not consumed (a partial record while
            // data flows) moves: cheap, at most once per socket read.
            b.compact();
        }
        if b.incoming.len() - b.filled < MIN_READ {
            b.incoming.resize(b.filled + MIN_READ.max(limit), 0);
        }
        let end = b.incoming.len().min(b.filled + limit);
        let n = sock.read(&mut b.incoming[b.filled..end])?;
        b.filled += n;
        *received += n as u64;
        Ok(n)
    }
}
