//! A certificate's fingerprint: SHA-256 of its DER bytes, shown as 64 lowercase
//! hex digits. The server prints it at every start; a client records it on
//! first use or is given it with `--server-fingerprint`.

use std::fmt;
use std::str::FromStr;

/// SHA-256 of a DER-encoded certificate.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// The fingerprint of a DER certificate.
    pub fn of_der(der: &[u8]) -> Fingerprint {
        let digest = ring::digest::digest(&ring::digest::SHA256, der);
        let mut out = [0u8; 32];
        out.copy_from_slice(digest.as_ref());
        Fingerprint(out)
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// Why a text is not a fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FingerprintError {
    /// Not 64 hex digits once `:` separators and spaces are removed.
    Length(usize),
    /// A character that is not a hex digit.
    NotHex(char),
}

impl fmt::Display for FingerprintError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FingerprintError::Length(n) => {
                write!(f, "a fingerprint has 64 hex digits, this has {n}")
            }
            FingerprintError::NotHex(c) => write!(f, "{c:?} is not a hex digit"),
        }
    }
}

impl std::error::Error for FingerprintError {}

impl FromStr for Fingerprint {
    type Err = FingerprintError;

    /// Accepts upper or lower case, with or without `:` between bytes (as
    /// other tools print SHA-256 fingerprints), and an optional `SHA256:` prefix.
    fn from_str(text: &str) -> Result<Fingerprint, FingerprintError> {
        let text = text.trim();
        let text = text
            .strip_prefix("SHA256:")
            .or_else(|| text.strip_prefix("sha256:"))
            .unwrap_or(text);
        let mut digits = Vec::with_capacity(64);
        for c in text.chars().filter(|c| *c != ':' && !c.is_whitespace()) {
            let d = c.to_digit(16).ok_or(FingerprintError::NotHex(c))?;
            digits.push(d as u8);
        }
        if digits.len() != 64 {
            return Err(FingerprintError::Length(digits.len()));
        }
        let mut out = [0u8; 32];
        for (i, pair) in digits.chunks_exact(2).enumerate() {
            out[i] = pair[0] << 4 | pair[1];
        }
        Ok(Fingerprint(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sha256_of_known_input() {
        // SHA-256("abc") from FIPS 180-2.
        let fp = Fingerprint::of_der(b"abc");
        assert_eq!(
            fp.to_string(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn bad_texts_are_refused() {
        assert_eq!(
            "abc".parse::<Fingerprint>(),
            Err(FingerprintError::Length(3))
        );
        let mut long = "a".repeat(63);
        long.push('g');
        assert_eq!(
            long.parse::<Fingerprint>(),
            Err(FingerprintError::NotHex('g'))
        );
    }

    proptest! {
        #[test]
        fn text_round_trips_in_every_accepted_spelling(bytes in any::<[u8; 32]>(), upper in any::<bool>(), colons in any::<bool>()) {
            let fp = Fingerprint(bytes);
            let mut text = fp.to_string();
            if upper { text = text.to_uppercase(); }
            if colons {
                text = text.as_bytes().chunks(2).map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join(":");
            }
            prop_assert_eq!(text.parse::<Fingerprint>(), Ok(fp));
            prop_assert_eq!(format!("SHA256:{text}").parse::<Fingerprint>(), Ok(fp));
        }
    }
}
