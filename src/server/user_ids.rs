//! New user IDs: 16 random bytes from the thread's CSPRNG, never the
//! all-zero ID, which the protocol reserves for "none" (§4.1); on a shard
//! (`--shard N`), only IDs whose shard tag is N, so that the load balancer's
//! tag map sends the new user's later connections back here (§16.1).

use crate::protocol::UserId;
use crate::tls::routing::shard_tag;
use rand::RngCore;

/// A fresh user ID. Whether it is free is the actor's to check: it creates
/// the user's state only where none exists (`UserStore::open`).
pub fn mint() -> UserId {
    let mut bytes = [0u8; 16];
    while bytes == UserId::NONE.0 {
        rand::rng().fill_bytes(&mut bytes);
    }
    UserId(bytes)
}

/// A fresh user ID for shard `shard` (any ID when `None`): drawn again
/// until its tag ([`shard_tag`]) is the shard's. One draw in 256 fits, so
/// this costs 256 SHA-256 of 44 bytes on average (tens of microseconds on
/// the reactor thread, once per new user); the ID keeps 120 random bits
/// that the tag does not fix.
pub fn mint_for(shard: Option<u8>) -> UserId {
    loop {
        let user = mint();
        if shard.is_none_or(|n| shard_tag(&user) == n) {
            return user;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_never_none_and_do_not_repeat() {
        let ids: std::collections::HashSet<UserId> = (0..1000).map(|_| mint()).collect();
        assert_eq!(ids.len(), 1000);
        assert!(!ids.contains(&UserId::NONE));
    }

    #[test]
    fn a_shard_mints_only_its_own_tag() {
        for shard in [0u8, 1, 2, 127, 255] {
            let ids: std::collections::HashSet<UserId> =
                (0..50).map(|_| mint_for(Some(shard))).collect();
            assert_eq!(ids.len(), 50);
            assert!(ids.iter().all(|u| shard_tag(u) == shard));
        }
        // Without a shard, tags spread over the whole range.
        let tags: std::collections::HashSet<u8> =
            (0..2000).map(|_| shard_tag(&mint_for(None))).collect();
        assert!(tags.len() > 200, "only {} distinct tags", tags.len());
    }
}
