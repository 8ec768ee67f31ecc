//! The listening socket, with a backlog deep enough for connection storms.

use mio::net::TcpListener;
use std::net::SocketAddr;

/// Connections the kernel may queue before `accept`. mio (like std) listens
/// with 128; a burst of thousands of clients then overflows the queue and each
/// dropped handshake waits for a one-second SYN retry. The kernel caps the
/// value at `net.core.somaxconn` (4096 here).
pub const BACKLOG: i32 = 4096;

/// Binds `addr` and listens with [`BACKLOG`].
///
/// # Errors
/// The address is in use or not local, or listen(2) failed.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let listener = TcpListener::bind(addr)?;
    // mio has already listened (with 128); calling listen(2) again on a
    // listening socket only changes the backlog.
    rustix::net::listen(&listener, BACKLOG)?;
    Ok(listener)
}
