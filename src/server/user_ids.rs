//! New user IDs: 16 random bytes from the thread's CSPRNG, never the
//! all-zero ID, which the protocol reserves for "none" (§4.1).

use crate::protocol::UserId;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_never_none_and_do_not_repeat() {
        let ids: std::collections::HashSet<UserId> = (0..1000).map(|_| mint()).collect();
        assert_eq!(ids.len(), 1000);
        assert!(!ids.contains(&UserId::NONE));
    }
}
