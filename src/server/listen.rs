//! The listening socket, with a backlog deep enough for connection storms.

use mio::net::TcpListener;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

/// Connections the kernel may queue before `accept`. mio (like std) listens
/// with 128; a burst of thousands of clients then overflows the queue and each
/// dropped handshake waits for a one-second SYN retry. The kernel caps the
/// value at `net.core.somaxconn` (4096 here).
pub const BACKLOG: i32 = 4096;

extern "C" {
    // listen(2) from the C library std already links; there is no safe
    // wrapper in the crates we use. Calling it again on a listening socket
    // only changes the backlog.
    fn listen(fd: i32, backlog: i32) -> i32;
}

/// Binds `addr` and listens with [`BACKLOG`].
///
/// # Errors
/// The address is in use or not local, or listen(2) failed.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let listener = TcpListener::bind(addr)?;
    // SAFETY: the descriptor is a valid, bound TCP socket owned by `listener`
    // for the duration of the call; listen(2) does not retain pointers.
    let rc = unsafe { listen(listener.as_raw_fd(), BACKLOG) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(listener)
}
