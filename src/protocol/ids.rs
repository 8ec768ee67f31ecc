//! Identities carried on the wire: user IDs, client IDs and content hashes.

use std::fmt;
use std::str::FromStr;

/// A user's 128-bit identifier, shown as 32 lowercase hex characters. It is
/// also the user's secret: whoever knows it can join the user's folder.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(pub [u8; 16]);

/// A device's number within one user, given out by the server (1, 2, 3, …).
pub type ClientId = u64;

/// The BLAKE3 hash of a file's whole content.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ContentHash(pub [u8; 32]);

/// Why a text is not a user ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadUserId;

impl fmt::Display for BadUserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a user ID is 32 hexadecimal characters")
    }
}

impl std::error::Error for BadUserId {}

impl UserId {
    /// The all-zero ID, which no user has; a `Hello` for a new user carries it.
    pub const NONE: UserId = UserId([0; 16]);
}

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    for b in bytes {
        write!(f, "{b:02x}")?;
    }
    Ok(())
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UserId({self})")
    }
}

impl FromStr for UserId {
    type Err = BadUserId;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text.len() != 32 || !text.is_ascii() {
            return Err(BadUserId);
        }
        let mut out = [0u8; 16];
        for (i, slot) in out.iter_mut().enumerate() {
            *slot = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|_| BadUserId)?;
        }
        Ok(UserId(out))
    }
}

impl ContentHash {
    /// The hash of the empty file.
    pub fn of_empty() -> ContentHash {
        ContentHash(*blake3::hash(b"").as_bytes())
    }

    /// The hash of `data`.
    pub fn of(data: &[u8]) -> ContentHash {
        ContentHash(*blake3::hash(data).as_bytes())
    }

    /// First 4 bytes in hex, for log lines.
    pub fn short(&self) -> String {
        self.0[..4].iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentHash({})", self.short())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_id_hex_round_trip() {
        let id = UserId([0x9f, 0x1c, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0xff]);
        let text = id.to_string();
        assert_eq!(text, "9f1c000102030405060708090a0b0cff");
        assert_eq!(text.parse::<UserId>(), Ok(id));
        assert_eq!("xyz".parse::<UserId>(), Err(BadUserId));
        assert_eq!(
            "9f1c000102030405060708090a0b0cfg".parse::<UserId>(),
            Err(BadUserId)
        );
    }
}
