//! Field-level reading and writing shared by every message family.

use super::error::FrameError;
use super::limits::MAX_MESSAGE_BYTES;
use super::path::WirePath;
use byteorder::{BigEndian, ByteOrder, WriteBytesExt};

/// Reads fields from one frame payload, front to back, never past its end.
#[derive(Clone)]
pub struct FieldReader<'a> {
    rest: &'a [u8],
}

impl<'a> FieldReader<'a> {
    /// Starts reading at the first byte of `payload`.
    pub fn new(payload: &'a [u8]) -> Self {
        FieldReader { rest: payload }
    }

    /// Takes the next `n` bytes.
    ///
    /// # Errors
    /// [`FrameError::Truncated`] when fewer than `n` remain.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], FrameError> {
        if self.rest.len() < n {
            return Err(FrameError::Truncated);
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    /// A `u8`.
    pub fn u8(&mut self) -> Result<u8, FrameError> {
        Ok(self.bytes(1)?[0])
    }

    /// A big-endian `u16`.
    pub fn u16(&mut self) -> Result<u16, FrameError> {
        Ok(BigEndian::read_u16(self.bytes(2)?))
    }

    /// A big-endian `u32`.
    pub fn u32(&mut self) -> Result<u32, FrameError> {
        Ok(BigEndian::read_u32(self.bytes(4)?))
    }

    /// A big-endian `u64`.
    pub fn u64(&mut self) -> Result<u64, FrameError> {
        Ok(BigEndian::read_u64(self.bytes(8)?))
    }

    /// A fixed-size array.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], FrameError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N)?);
        Ok(out)
    }

    /// A path: `u16` length, then that many UTF-8 bytes that obey the path rules.
    pub fn path(&mut self) -> Result<WirePath, FrameError> {
        let len = usize::from(self.u16()?);
        Ok(WirePath::from_bytes(self.bytes(len)?)?)
    }

    /// A text: `u16` length (at most `MAX_MESSAGE_BYTES`), then UTF-8 bytes.
    pub fn text(&mut self) -> Result<String, FrameError> {
        let len = usize::from(self.u16()?);
        if len > MAX_MESSAGE_BYTES {
            return Err(FrameError::FieldTooLong);
        }
        let raw = self.bytes(len)?;
        std::str::from_utf8(raw)
            .map(str::to_owned)
            .map_err(|_| FrameError::BadUtf8)
    }

    /// Everything not yet read.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.rest)
    }

    /// Checks that the payload has been read to its last byte.
    ///
    /// # Errors
    /// [`FrameError::TrailingBytes`] when bytes are left.
    pub fn finish(self) -> Result<(), FrameError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(FrameError::TrailingBytes)
        }
    }
}

/// Writes a path field (`u16` length + bytes). Paths are at most 4096 bytes,
/// so the length always fits.
pub fn put_path(out: &mut Vec<u8>, path: &WirePath) {
    put_short_bytes(out, path.as_str().as_bytes());
}

/// Writes a text field, cut at a character boundary to `MAX_MESSAGE_BYTES`.
pub fn put_text(out: &mut Vec<u8>, text: &str) {
    let mut end = text.len().min(MAX_MESSAGE_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    put_short_bytes(out, &text.as_bytes()[..end]);
}

fn put_short_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = u16::try_from(bytes.len()).unwrap_or(u16::MAX);
    put_u16(out, len);
    out.extend_from_slice(&bytes[..usize::from(len)]);
}

/// Writes a big-endian `u16`.
pub fn put_u16(out: &mut Vec<u8>, value: u16) {
    // Writing into a Vec cannot fail.
    let _ = out.write_u16::<BigEndian>(value);
}

/// Writes a big-endian `u32`.
pub fn put_u32(out: &mut Vec<u8>, value: u32) {
    let _ = out.write_u32::<BigEndian>(value);
}

/// Writes a big-endian `u64`.
pub fn put_u64(out: &mut Vec<u8>, value: u64) {
    let _ = out.write_u64::<BigEndian>(value);
}
