//! `PartialAck` (protocol version 7, PROTOCOL.md §5.3): "I applied your pull
//! reply up to `cursor`, except the entries at these paths, which I left to
//! my push". Decode and encode side by side.

use super::error::FrameError;
use super::limits::MAX_HELD_PATHS;
use super::path::WirePath;
use super::wire::{put_path, put_u16, put_u64, FieldReader};

/// Client → server, no reply (§5.3, R-5.3.4).
///
/// ```text
/// 0      8        10
/// +------+--------+----------------------------------------+
/// |cursor| count n| n × (path_len u16, path UTF-8)          |
/// | u64  |  u16   | 1 ≤ n ≤ MAX_HELD_PATHS, no repeats      |
/// +------+--------+----------------------------------------+
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartialAck {
    /// The `head` of the pull reply the client applied, but for `held`.
    pub cursor: u64,
    /// The paths whose entries of that reply the client did not apply
    /// (left to its push, R-5.6.1): what is at or below them stays unseen.
    /// Never empty, at most [`MAX_HELD_PATHS`], each path once.
    pub held: Vec<WirePath>,
}

impl PartialAck {
    /// Reads the payload.
    ///
    /// # Errors
    /// [`FrameError::BadValue`] for a count of 0, above [`MAX_HELD_PATHS`],
    /// or a path listed twice; a truncated field or a bad path.
    pub fn decode(r: &mut FieldReader<'_>) -> Result<PartialAck, FrameError> {
        let cursor = r.u64()?;
        let count = usize::from(r.u16()?);
        if count == 0 || count > MAX_HELD_PATHS {
            return Err(FrameError::BadValue);
        }
        // Allocated as paths arrive: a path takes at least 3 bytes, so a
        // short payload fails before `count` paths are read.
        let mut held = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..count {
            let path = r.path()?;
            if !seen.insert(path.clone()) {
                return Err(FrameError::BadValue);
            }
            held.push(path);
        }
        Ok(PartialAck { cursor, held })
    }

    /// Appends the payload. `held` must obey the limits of [`Self::decode`]
    /// (the encoder writes what it is given).
    pub fn encode(&self, out: &mut Vec<u8>) {
        put_u64(out, self.cursor);
        put_u16(out, u16::try_from(self.held.len()).unwrap_or(u16::MAX));
        for path in &self.held {
            put_path(out, path);
        }
    }

    /// The payload's length in bytes, to check it against `MAX_PAYLOAD`
    /// before sending.
    pub fn encoded_len(&self) -> usize {
        10 + self
            .held
            .iter()
            .map(|p| 2 + p.as_str().len())
            .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> WirePath {
        WirePath::new(s).expect("path")
    }

    #[test]
    fn round_trip_and_exact_bytes() {
        let ack = PartialAck {
            cursor: 0x15,
            held: vec![p("g"), p("d/x")],
        };
        let mut out = Vec::new();
        ack.encode(&mut out);
        assert_eq!(
            out,
            [0, 0, 0, 0, 0, 0, 0, 0x15, 0, 2, 0, 1, b'g', 0, 3, b'd', b'/', b'x']
        );
        assert_eq!(ack.encoded_len(), out.len());
        let mut r = FieldReader::new(&out);
        assert_eq!(PartialAck::decode(&mut r), Ok(ack));
    }

    #[test]
    fn no_path_too_many_or_a_repeat_is_refused() {
        let refused = |bytes: &[u8]| PartialAck::decode(&mut FieldReader::new(bytes));
        let mut none = vec![0u8; 8];
        none.extend([0, 0]);
        assert_eq!(refused(&none), Err(FrameError::BadValue));
        let mut many = vec![0u8; 8];
        put_u16(&mut many, u16::try_from(MAX_HELD_PATHS + 1).expect("fits"));
        assert_eq!(refused(&many), Err(FrameError::BadValue));
        let mut twice = vec![0u8; 8];
        put_u16(&mut twice, 2);
        put_path(&mut twice, &p("g"));
        put_path(&mut twice, &p("g"));
        assert_eq!(refused(&twice), Err(FrameError::BadValue));
        let mut short = vec![0u8; 8];
        put_u16(&mut short, 2);
        put_path(&mut short, &p("g"));
        assert_eq!(refused(&short), Err(FrameError::Truncated));
    }
}
