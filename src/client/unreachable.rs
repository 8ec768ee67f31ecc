//! Why a server could not be reached, in words a user can act on: what
//! happened and what to check, on one line (README "Running a client").
//!
//! The OS's own text ("Connection refused (os error 111)") says what the
//! kernel saw, not what it means for a sync folder: nothing listens on that
//! port, or no route leads to that machine. [`explain`] turns the error of
//! a connect (or of a name lookup, `address.rs`) into
//! `<what happened>; <what to check>`, shown after
//! `cannot reach server HOST:PORT: ` by [`super::error::ClientError`].

use std::io::{self, ErrorKind};

/// What happened and what to check, for the I/O error of a connect or a
/// lookup. Kinds without advice of their own keep the error's text, without
/// its `(os error N)` suffix, followed by the general advice.
pub fn explain(cause: &io::Error) -> String {
    let (what, check) = match cause.kind() {
        ErrorKind::ConnectionRefused => (
            "connection refused: nothing listens on that port",
            "check that cloud-server runs on that machine and that the port is the one it \
             listens on",
        ),
        ErrorKind::HostUnreachable => (
            "no route to that machine (host unreachable)",
            "check the address and that the machine is up and on the network",
        ),
        ErrorKind::NetworkUnreachable => (
            "no route from this machine to that network (network unreachable)",
            "check this machine's network connection and the address",
        ),
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted => (
            "the connection was cut as soon as it opened",
            "check that the port is a cloud-server's, and any firewall or proxy in between",
        ),
        ErrorKind::AddrNotAvailable => (
            "that address cannot be used from this machine",
            "check the address",
        ),
        ErrorKind::PermissionDenied => (
            "this machine refused to open the connection (a local firewall rule?)",
            "check this machine's firewall",
        ),
        _ => {
            return format!(
                "{}; check the server's address and port, and the network",
                without_os_code(cause)
            )
        }
    };
    format!("{what}; {check}")
}

/// The error's text without the `(os error N)` that `io::Error` appends.
fn without_os_code(cause: &io::Error) -> String {
    let text = cause.to_string();
    match text.rfind(" (os error ") {
        Some(at) if text.ends_with(')') => text[..at].to_owned(),
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every errno a connect or a lookup gives: one line, the OS's code
    /// never shown, and advice ("check …") after what happened.
    #[test]
    fn every_connect_failure_is_one_line_with_advice() {
        let cases = [
            (libc::ECONNREFUSED, "nothing listens on that port"),
            (libc::EHOSTUNREACH, "host unreachable"),
            (libc::ENETUNREACH, "network unreachable"),
            (libc::ECONNRESET, "cut as soon as it opened"),
            (libc::ECONNABORTED, "cut as soon as it opened"),
            (libc::EADDRNOTAVAIL, "cannot be used from this machine"),
            (libc::EACCES, "firewall"),
            (libc::EPERM, "firewall"),
            (libc::EIO, "Input/output error"),
            (libc::EMFILE, "Too many open files"),
        ];
        for (errno, needle) in cases {
            let text = explain(&io::Error::from_raw_os_error(errno));
            assert!(text.contains(needle), "errno {errno}: {text}");
            assert!(text.contains("; check "), "errno {errno}: {text}");
            assert!(!text.contains("os error"), "errno {errno}: {text}");
            assert!(!text.contains('\n'), "errno {errno}: {text}");
        }
        // A failed lookup (address.rs) keeps what it said.
        let lookup = io::Error::other(
            "cannot resolve sync.invalid: failed to lookup address information: Name or \
             service not known",
        );
        let text = explain(&lookup);
        assert!(text.starts_with("cannot resolve sync.invalid: "), "{text}");
        assert!(text.ends_with("check the server's address and port, and the network"));
    }
}
