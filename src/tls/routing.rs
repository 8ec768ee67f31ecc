//! The routing key: what a client puts in the TLS SNI so that a TCP load
//! balancer can send the connection to the server owning its user without
//! decrypting anything (PROTOCOL.md §12.3). It is derived from the user ID by
//! a one-way hash, so the SNI (sent in clear) never reveals the ID itself,
//! which is the user's secret.

use crate::protocol::UserId;

/// The domain separation prefix hashed before the user ID.
const CONTEXT: &[u8] = b"cloudservice routing key v1\0";
/// The SNI a client sends before it has a user (`New User`).
pub const NEW_USER_SNI: &str = "new.cloudservice";
/// The suffix after the routing key in the SNI.
pub const SNI_SUFFIX: &str = ".route.cloudservice";

/// SHA-256(`CONTEXT` ‖ user ID): the routing key is its first 16 bytes.
fn digest(user: &UserId) -> ring::digest::Digest {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(CONTEXT);
    ctx.update(&user.0);
    ctx.finish()
}

/// The first 16 bytes of SHA-256(`CONTEXT` ‖ user ID), as 32 lowercase hex digits.
pub fn routing_key(user: &UserId) -> String {
    digest(user).as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The user's shard tag (PROTOCOL.md §16.1): the routing key's first byte,
/// i.e. the number its first two hex digits spell (0..=255).
pub fn shard_tag(user: &UserId) -> u8 {
    digest(user).as_ref()[0]
}

/// The SNI host name for a connection of `user` (or of a new user):
/// `<routing key>.route.cloudservice`, or `new.cloudservice`.
pub fn sni_for(user: Option<&UserId>) -> String {
    match user {
        Some(user) => format!("r{}{SNI_SUFFIX}", routing_key(user)),
        None => NEW_USER_SNI.to_owned(),
    }
}

/// The routing key in an SNI host name, if it has the shape [`sni_for`] makes.
pub fn key_of_sni(sni: &str) -> Option<&str> {
    let key = sni.strip_prefix('r')?.strip_suffix(SNI_SUFFIX)?;
    (key.len() == 32 && key.bytes().all(|b| b.is_ascii_hexdigit())).then_some(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_vector() {
        // Checked against PROTOCOL.md §12.3 (also by tests/spec_examples.rs).
        let user = UserId([0x11; 16]);
        let key = routing_key(&user);
        assert_eq!(key.len(), 32);
        assert_eq!(sni_for(Some(&user)), format!("r{key}.route.cloudservice"));
        assert_eq!(sni_for(None), "new.cloudservice");
    }

    #[test]
    fn the_spec_example_holds() {
        // PROTOCOL.md §12.3, for the user of §11.
        let user: UserId = "9f1c2a7e4b6d8053c1e9f2a4b6c8d0e1".parse().unwrap();
        let key = routing_key(&user);
        assert_eq!(key, "c99c117fa24baea129134c4bf65f1a8b");
        let spec = include_str!("../../protocol-spec/PROTOCOL.md");
        assert!(spec.contains(&format!("routing key: {key}")));
        assert!(spec.contains(&format!("SNI:         {}", sni_for(Some(&user)))));
    }

    proptest! {
        #[test]
        fn sni_is_a_dns_name_that_hides_the_id(bytes in any::<[u8; 16]>()) {
            let user = UserId(bytes);
            let sni = sni_for(Some(&user));
            prop_assert!(rustls::pki_types::ServerName::try_from(sni.clone()).is_ok());
            let key = routing_key(&user);
            prop_assert_eq!(key_of_sni(&sni), Some(key.as_str()));
            prop_assert!(!sni.contains(&user.to_string()));
            let tag = format!("{:02x}", shard_tag(&user));
            prop_assert!(key.starts_with(&tag));
        }
    }
}
