//! Protocol version 8 (PROTOCOL.md §5.8): a pull that names the change the
//! client last saw, `PullChecked`, and the `History` frame that opens its
//! reply, saying whether the server still holds that change.

use super::error::FrameError;
use super::wire::{put_u64, FieldReader};

/// A pull (as `PullModes`, §15.2) that also names the last change this
/// client saw in a pull reply, `check_seq`, by its tag (R-5.8.1). The
/// cursor may be above it (the client's own pushes since, R-5.8.2) or
/// below it (the client pulls again from an older cursor).
///
/// ```text
/// payload: cursor u64 | check_seq u64 | check_tag u64
/// ```
/// `check_tag` 0: the client knows no tag (nothing is checked but
/// `cursor` and `check_seq` against the head).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PullChecked {
    /// The cursor to pull from, as in `Pull`.
    pub cursor: u64,
    /// The head of the last pull reply this client applied (0: none).
    pub check_seq: u64,
    /// The tag the server gave the change `check_seq` (0: unknown).
    pub check_tag: u64,
}

impl PullChecked {
    /// Bytes of the payload.
    pub const LEN: usize = 24;

    /// # Errors
    /// `Truncated`.
    pub fn decode(r: &mut FieldReader<'_>) -> Result<Self, FrameError> {
        let cursor = r.u64()?;
        let check_seq = r.u64()?;
        let check_tag = r.u64()?;
        Ok(PullChecked {
            cursor,
            check_seq,
            check_tag,
        })
    }

    /// Appends the payload.
    pub fn encode(&self, out: &mut Vec<u8>) {
        put_u64(out, self.cursor);
        put_u64(out, self.check_seq);
        put_u64(out, self.check_tag);
    }
}

/// The first frame of the reply to a `PullChecked` (R-5.8.2); `ModeBatch`
/// frames with the same request ID follow.
///
/// ```text
/// payload: head u64 | head_tag u64 | common u64 | flags u8 (bit 0 diverged)
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct History {
    /// The reply's head (the same as its batches').
    pub head: u64,
    /// The tag of change `head` (0: unknown, R-5.8.3).
    pub head_tag: u64,
    /// Diverged: every change up to `common` is one the client saw
    /// (the cursor it last acknowledged); otherwise the request's cursor.
    pub common: u64,
    /// The server does not hold the history the client saw (R-5.8.2): the
    /// reply is a full listing, to be reconciled (R-5.8.4).
    pub diverged: bool,
}

/// Bit 0 of `History.flags`.
const DIVERGED: u8 = 0x01;

impl History {
    /// Bytes of the payload.
    pub const LEN: usize = 25;

    /// # Errors
    /// `Truncated`; `BadValue` for flag bits 1..7, or `common` above `head`.
    pub fn decode(r: &mut FieldReader<'_>) -> Result<Self, FrameError> {
        let head = r.u64()?;
        let head_tag = r.u64()?;
        let common = r.u64()?;
        let flags = r.u8()?;
        if flags & !DIVERGED != 0 || common > head {
            return Err(FrameError::BadValue);
        }
        Ok(History {
            head,
            head_tag,
            common,
            diverged: flags & DIVERGED != 0,
        })
    }

    /// Appends the payload.
    pub fn encode(&self, out: &mut Vec<u8>) {
        put_u64(out, self.head);
        put_u64(out, self.head_tag);
        put_u64(out, self.common);
        out.push(if self.diverged { DIVERGED } else { 0 });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refusals() {
        let p = PullChecked {
            cursor: 9,
            check_seq: 9,
            check_tag: 0xdead_beef,
        };
        let mut out = Vec::new();
        p.encode(&mut out);
        assert_eq!(out.len(), PullChecked::LEN);
        assert_eq!(PullChecked::decode(&mut FieldReader::new(&out)), Ok(p));
        let h = History {
            head: 12,
            head_tag: 7,
            common: 3,
            diverged: true,
        };
        let mut out = Vec::new();
        h.encode(&mut out);
        assert_eq!(out.len(), History::LEN);
        assert_eq!(History::decode(&mut FieldReader::new(&out)), Ok(h));
        out[24] = 0x02;
        assert_eq!(
            History::decode(&mut FieldReader::new(&out)),
            Err(FrameError::BadValue)
        );
        let bad = History { common: 13, ..h };
        let mut out = Vec::new();
        bad.encode(&mut out);
        assert_eq!(
            History::decode(&mut FieldReader::new(&out)),
            Err(FrameError::BadValue)
        );
    }
}
