//! Tells, from a connection's first bytes, whether the peer speaks TLS or the
//! plaintext frame protocol, so that a mismatch gets one clear error instead
//! of a hang or a cryptic decode failure.

use crate::protocol::limits::MAGIC;

/// What the first bytes of a stream are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniffed {
    /// A TLS handshake record: `0x16 0x03` (content type handshake, legacy
    /// version major 3), as every ClientHello and ServerHello starts.
    Tls,
    /// The frame magic `"CS"` of a plaintext frame (PROTOCOL.md §3.1).
    Plaintext,
    /// Neither.
    Other,
    /// Fewer than two bytes seen so far.
    TooShort,
}

/// Classifies the first bytes of a stream (`first` may hold more).
pub fn sniff(first: &[u8]) -> Sniffed {
    match first {
        [0x16, 0x03, ..] => Sniffed::Tls,
        [a, b, ..] if [*a, *b] == MAGIC => Sniffed::Plaintext,
        [_, _, ..] => Sniffed::Other,
        _ => Sniffed::TooShort,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Frame, Hello, HelloMode, Message, UserId};

    #[test]
    fn a_plaintext_hello_is_plaintext() {
        let hello = Frame::new(
            1,
            Message::Hello(Hello {
                mode: HelloMode::NewUser,
                user_id: UserId::NONE,
                client_id: 0,
            }),
        )
        .to_bytes();
        assert_eq!(sniff(&hello), Sniffed::Plaintext);
        assert_eq!(sniff(&hello[..1]), Sniffed::TooShort);
    }

    #[test]
    fn a_rustls_client_hello_is_tls() {
        let config = crate::tls::config::test_client_config();
        let name = rustls::pki_types::ServerName::try_from("new.cloudservice").unwrap();
        let mut client = rustls::ClientConnection::new(config, name).unwrap();
        let mut wire = Vec::new();
        client.write_tls(&mut wire).unwrap();
        assert_eq!(sniff(&wire), Sniffed::Tls);
    }

    #[test]
    fn anything_else_is_other() {
        assert_eq!(sniff(b"GET / HTTP/1.1\r\n"), Sniffed::Other);
        assert_eq!(sniff(&[0x16, 0x02]), Sniffed::Other);
        assert_eq!(sniff(&[]), Sniffed::TooShort);
    }
}
