//! Connections from a trusted load balancer (`--proxy-protocol`,
//! PROTOCOL.md §17): before anything else, the PROXY protocol header that
//! names the client.
//!
//! The header is gathered in the socket itself: each readable event peeks
//! at what has arrived (at most [`MAX_HEADER`] bytes, into the reactor's
//! shared read buffer) and asks [`proxy_header::parse`]; nothing is read
//! until the whole header is there, then exactly its bytes are, so the TLS
//! ClientHello behind it (which the proxy routed by its SNI, §16) reaches
//! TLS untouched. A header still incomplete at `--handshake-timeout` ends
//! the connection like a stalled TLS handshake (`reactor.rs` sweep); one
//! whose sender has ended its side (a FIN after part of a header, which a
//! peek cannot see behind the bytes) is refused at once.
//!
//! The address the header gives replaces the proxy's as the connection's
//! peer: connectionLog.txt, the failed-guess limiter and the
//! per-address admission see the client. The admission counted
//! the connection under the proxy's address at accept without limiting it
//! there; it is re-keyed to the client's address, whose limit applies then.
//! LOCAL (a health check) and UNKNOWN keep the proxy's address.
//!
//! A trusted proxy's connection without a valid header is closed without a
//! frame: what follows would be the client's TLS, which no Error frame can
//! enter, and the proxy relays whatever it gets. One `request=proxy` line
//! and one warning on stderr say why.

use super::Reactor;
use crate::server::bus::ConnRef;
use crate::server::metrics::metrics;
use crate::server::proxy_header::{self, Gathered, Source, MAX_HEADER};
use std::io::{self, Read};
use std::net::SocketAddr;

/// What taking the header did.
pub(super) enum Step {
    /// Taken: read on (the client's bytes).
    Took,
    /// Not whole yet: wait for the next readable event.
    Wait,
    /// The connection was closed.
    Closed,
}

impl Reactor {
    /// Peeks at `key`'s socket for its PROXY protocol header and takes it
    /// when whole (module doc). `buf` is the reactor's read buffer;
    /// `read_closed`: the proxy has ended its side, so a header still
    /// incomplete never will be: refused at once, not at the
    /// handshake timeout.
    pub(super) fn take_proxy_header(
        &mut self,
        key: usize,
        buf: &mut [u8],
        read_closed: bool,
    ) -> Step {
        let room = buf.len().min(MAX_HEADER);
        let Some(socket) = self.conns.get(key).and_then(|c| c.transport.socket()) else {
            return Step::Closed;
        };
        let peeked = match socket.peek(&mut buf[..room]) {
            // Closed before a byte: a bare connect-and-close, not logged
            // (as without --proxy-protocol).
            Ok(0) => {
                self.close_now(key);
                return Step::Closed;
            }
            Ok(n) => n,
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock
                    || e.kind() == io::ErrorKind::Interrupted =>
            {
                return Step::Wait;
            }
            Err(_) => {
                self.close_now(key);
                return Step::Closed;
            }
        };
        let (len, source, version) = match proxy_header::parse(&buf[..peeked]) {
            Ok(Gathered::Incomplete) if peeked < room && !read_closed => return Step::Wait,
            Ok(Gathered::Incomplete) if peeked < room => {
                let text = format!(
                    "the connection ended after {peeked} bytes of a PROXY protocol header, before its end"
                );
                self.refuse_proxied(key, &text);
                return Step::Closed;
            }
            Ok(Gathered::Incomplete) => {
                // Cannot happen (parse refuses what passes MAX_HEADER);
                // closed rather than waited on.
                let text = format!("PROXY protocol header longer than {MAX_HEADER} bytes");
                self.refuse_proxied(key, &text);
                return Step::Closed;
            }
            Ok(Gathered::Complete {
                len,
                source,
                version,
            }) => (len, source, version),
            Err(e) => {
                let text = format!("{e}; a trusted proxy (--proxy-protocol) must send one first");
                self.refuse_proxied(key, &text);
                return Step::Closed;
            }
        };
        // The header's bytes are in the socket's buffer (peeked): one read
        // of exactly that many takes them and nothing after.
        let taken = match self.conns.get(key).and_then(|c| c.transport.socket()) {
            Some(mut socket) => socket.read(&mut buf[..len]),
            None => return Step::Closed,
        };
        if !matches!(taken, Ok(n) if n == len) {
            self.close_now(key);
            return Step::Closed;
        }
        metrics().received_bytes.inc_by(len as u64);
        self.proxied(key, source, version);
        Step::Took
    }

    /// The header of `key` named `source`: the client's address becomes
    /// the connection's peer, and its admission is re-keyed (module doc).
    fn proxied(&mut self, key: usize, source: Source, version: u8) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        conn.proxy_header = false;
        let proxy = conn.peer;
        let Source::Client(client) = source else {
            log::debug!(
                "{proxy}: PROXY v{version} header, {source:?}: the proxy's own address kept"
            );
            return;
        };
        let client = SocketAddr::new(client.ip().to_canonical(), client.port());
        let this = ConnRef {
            key,
            generation: conn.generation,
        };
        let counted = conn.counted;
        if counted {
            // The client's own bound on connections waiting for their Hello.
            self.limit_address(client.ip());
        }
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        conn.peer = client;
        if counted && conn.counted {
            self.unidentified.rekey(this, proxy.ip(), client.ip());
        }
        log::debug!("{proxy}: PROXY v{version} header for {client}");
    }

    /// Closes a trusted proxy's connection whose header is missing, wrong
    /// or late, with a `request=proxy` line and a warning (no frame: see
    /// the module doc).
    pub(super) fn refuse_proxied(&mut self, key: usize, text: &str) {
        if let Some(c) = self.conns.get(key) {
            log::warn!("closed {}: {text}", c.peer);
        }
        self.record(key, "proxy", Err(text));
        self.close_now(key);
    }
}
