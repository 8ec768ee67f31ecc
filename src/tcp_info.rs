//! What the kernel knows about a TCP socket that the socket API does not
//! say: used by both ends to tell a slow peer from a gone one.

use std::os::fd::AsRawFd;

/// Bytes written to `socket` that the peer has not acknowledged yet (the
/// kernel's send queue, `SIOCOUTQ`, tcp(7)); 0 when the kernel does not say
/// (not a TCP socket, closed). The number falls only when the peer's host
/// acknowledges bytes: a fall is a sign of life even while the peer sends
/// nothing back.
pub fn unsent_bytes(socket: &impl AsRawFd) -> u32 {
    let fd = socket.as_raw_fd();
    let mut queued: libc::c_int = 0;
    // SAFETY: `fd` is an open socket borrowed for the duration of the call,
    // and TIOCOUTQ (= SIOCOUTQ) writes one int through the valid pointer it
    // is given.
    let rc = unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut queued) };
    if rc == 0 {
        u32::try_from(queued).unwrap_or(0)
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::unsent_bytes;
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};

    /// Bytes the peer's kernel took are not unsent; a listener is not a
    /// connected stream and says 0.
    #[test]
    fn counts_only_what_the_peer_has_not_acknowledged() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        assert_eq!(unsent_bytes(&listener), 0);
        let mut out = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (_peer, _) = listener.accept().expect("accept");
        out.write_all(&[1u8; 1000]).expect("write");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while unsent_bytes(&out) != 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(unsent_bytes(&out), 0, "loopback acknowledges at once");
    }
}
