//! Device credentials (PROTOCOL.md §4.6): `KeyHello`, the handshake that
//! carries a secret (a device key or a join code), and `KeyWelcome`, its
//! answer, which hands a joining device its own key.

use super::error::FrameError;
use super::ids::{ClientId, UserId};
use super::limits::{MAX_DEVICE_NAME_BYTES, SECRET_BYTES};
use super::session::{Hello, HelloMode, Welcome};
use super::wire::FieldReader;
use std::fmt;
use std::str::FromStr;

/// A 256-bit secret: a device key (given by `KeyWelcome`) or a join code
/// (made by `cloud-server rotate-join`). All zero means "none". Its
/// `Debug` never shows the bytes; compare two secrets only through their
/// digests in constant time (the server's `devices` module does).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Secret(pub [u8; SECRET_BYTES]);

impl Secret {
    /// The all-zero secret: no key, no join code.
    pub const NONE: Secret = Secret([0; SECRET_BYTES]);

    /// A fresh secret from the operating system's CSPRNG.
    pub fn random() -> Secret {
        let mut bytes = [0u8; SECRET_BYTES];
        while bytes == [0; SECRET_BYTES] {
            rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
        }
        Secret(bytes)
    }

    /// True for [`Secret::NONE`].
    pub fn is_none(&self) -> bool {
        self.0 == [0; SECRET_BYTES]
    }

    /// 64 lowercase hex digits (for files with mode 0600 and for the
    /// operator's terminal; never for logs).
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_none() {
            f.write_str("Secret(none)")
        } else {
            f.write_str("Secret(…)")
        }
    }
}

/// Why a text is not a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadSecret;

impl fmt::Display for BadSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a device key or join code is 64 hexadecimal characters")
    }
}

impl std::error::Error for BadSecret {}

impl FromStr for Secret {
    type Err = BadSecret;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text.len() != 2 * SECRET_BYTES || !text.is_ascii() {
            return Err(BadSecret);
        }
        let mut out = [0u8; SECRET_BYTES];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|_| BadSecret)?;
        }
        Ok(Secret(out))
    }
}

/// The handshake with a credential (PROTOCOL.md §4.6), in place of `Hello`.
///
/// ```text
/// payload (61 + L bytes): mode u8 | reserved [3] = 0 | user_id [16] |
///                         client_id u64 | secret [32] | name_len u8 | name [L]
/// ```
/// The user ID sits at byte 16 of the connection, as in `Hello` (§2.3).
/// `secret` is the device key for Resume, the join code (or zero) for
/// NewClient, zero for NewUser. `name` (UTF-8, at most 64 bytes) names the
/// device in `cloud-server devices`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyHello {
    /// New user, new client or resume.
    pub mode: HelloMode,
    /// Zero for a new user.
    pub user_id: UserId,
    /// Zero unless resuming.
    pub client_id: ClientId,
    /// Device key (Resume), join code (NewClient) or none.
    pub secret: Secret,
    /// The device's name, for the operator (may be empty).
    pub name: String,
}

impl KeyHello {
    /// Hello's fields (§4.1), then the secret and the name (§4.6).
    pub(crate) fn decode(r: &mut FieldReader<'_>) -> Result<Self, FrameError> {
        let Hello {
            mode,
            user_id,
            client_id,
        } = Hello::decode(r)?;
        let secret = Secret(r.array()?);
        let len = usize::from(r.u8()?);
        if len > MAX_DEVICE_NAME_BYTES {
            return Err(FrameError::FieldTooLong);
        }
        let name = std::str::from_utf8(r.bytes(len)?)
            .map_err(|_| FrameError::BadUtf8)?
            .to_owned();
        Ok(KeyHello {
            mode,
            user_id,
            client_id,
            secret,
            name,
        })
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        Hello {
            mode: self.mode,
            user_id: self.user_id,
            client_id: self.client_id,
        }
        .encode(out);
        out.extend_from_slice(&self.secret.0);
        let name = device_name(&self.name);
        out.push(name.len() as u8);
        out.extend_from_slice(name.as_bytes());
    }
}

/// `name` cut at a character boundary to [`MAX_DEVICE_NAME_BYTES`].
pub fn device_name(name: &str) -> &str {
    let mut end = name.len().min(MAX_DEVICE_NAME_BYTES);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

/// The answer to a good `KeyHello` (PROTOCOL.md §4.6).
///
/// ```text
/// payload (64 bytes): user_id [16] | client_id u64 | head u64 | device_key [32]
/// ```
/// `device_key` is this device's new key (NewUser, NewClient, or a Resume
/// of a device that had none), or zero: keep the key you have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyWelcome {
    /// The user this connection now belongs to.
    pub user_id: UserId,
    /// This device's number within the user.
    pub client_id: ClientId,
    /// The newest journal sequence number the server holds for the user.
    pub head: u64,
    /// The key to store (mode 0600) and send on every later connection;
    /// [`Secret::NONE`]: unchanged.
    pub device_key: Secret,
}

impl KeyWelcome {
    /// Welcome's fields (§4.2), then the device key (§4.6).
    pub(crate) fn decode(r: &mut FieldReader<'_>) -> Result<Self, FrameError> {
        let Welcome {
            user_id,
            client_id,
            head,
        } = Welcome::decode(r)?;
        Ok(KeyWelcome {
            user_id,
            client_id,
            head,
            device_key: Secret(r.array()?),
        })
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        Welcome {
            user_id: self.user_id,
            client_id: self.client_id,
            head: self.head,
        }
        .encode(out);
        out.extend_from_slice(&self.device_key.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_parse_and_hide() {
        let s = Secret::random();
        assert!(!s.is_none());
        assert_eq!(s.to_hex().parse::<Secret>(), Ok(s));
        assert_eq!(format!("{s:?}"), "Secret(…)");
        assert!("zz".repeat(32).parse::<Secret>().is_err());
        assert!("ab".parse::<Secret>().is_err());
        assert_eq!(device_name(&"é".repeat(40)).len(), 64);
    }
}
