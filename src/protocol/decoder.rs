//! The incremental frame decoder: a small state machine fed whatever bytes arrived.

use super::error::FrameError;
use super::limits::{HEADER_LEN, MAGIC, MAX_PAYLOAD, V7_PROTOCOL_VERSION, V8_PROTOCOL_VERSION};
use super::message::{Frame, Kind, Message};

/// The decoder's answer to a `feed`.
#[derive(Debug, PartialEq, Eq)]
pub enum Status<T> {
    /// A whole frame was decoded; bytes after it are still in the input.
    Complete(T),
    /// All input was taken and the frame is not finished yet: feed more.
    Partial,
}

/// Where the decoder is inside the current frame.
#[derive(Debug)]
enum State {
    /// Collecting the 12 header bytes; `filled` of them have arrived.
    Header { filled: u8 },
    /// Header checked; collecting `len` payload bytes into `payload`.
    Payload {
        kind: Kind,
        request_id: u32,
        len: u32,
        payload: Vec<u8>,
    },
    /// A previous error: the stream position cannot be trusted any more. The
    /// request ID is the bad frame's when its header was valid (§3.3).
    Failed(FrameError, Option<u32>),
}

/// Turns a byte stream into frames, in any split of the input, without I/O.
///
/// Between frames it holds 12 header bytes and a tag — about 48 bytes — so an
/// idle connection costs almost nothing. It never reserves more than the bytes
/// that have arrived, whatever length a header declares, and refuses any
/// length above `MAX_PAYLOAD` before reading the payload.
#[derive(Debug)]
pub struct FrameDecoder {
    header: [u8; HEADER_LEN],
    state: State,
    /// Largest `payload_len` accepted (bytes): `MAX_PAYLOAD` unless
    /// lowered by [`FrameDecoder::with_limit`] (a server before the Hello,
    /// PROTOCOL.md ).
    limit: u32,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameDecoder {
    /// A decoder at the start of a stream.
    pub fn new() -> FrameDecoder {
        FrameDecoder::with_limit(MAX_PAYLOAD)
    }

    /// A decoder at the start of a stream that refuses (`FrameTooLong`) any
    /// header declaring more than `limit` payload bytes (at most
    /// `MAX_PAYLOAD` whatever `limit` says), before a payload byte is read.
    pub fn with_limit(limit: u32) -> FrameDecoder {
        FrameDecoder {
            header: [0; HEADER_LEN],
            state: State::Header { filled: 0 },
            limit: limit.min(MAX_PAYLOAD),
        }
    }

    /// Changes the largest payload accepted from the next header on (at
    /// most `MAX_PAYLOAD`); a frame whose header was already accepted keeps
    /// its length.
    pub fn set_limit(&mut self, limit: u32) {
        self.limit = limit.min(MAX_PAYLOAD);
    }

    /// True when no frame is partly received (nothing buffered).
    pub fn is_idle(&self) -> bool {
        matches!(self.state, State::Header { filled: 0 })
    }

    /// Bytes of the current frame received so far.
    pub fn buffered(&self) -> usize {
        match &self.state {
            State::Header { filled } => usize::from(*filled),
            State::Payload { payload, .. } => HEADER_LEN + payload.len(),
            State::Failed(..) => 0,
        }
    }

    /// Consumes bytes from the front of `input` until a frame completes or the
    /// input runs out. On `Complete`, `input` holds the bytes after the frame.
    ///
    /// # Errors
    /// The first [`FrameError`] in the stream; every later call returns it again.
    pub fn feed(&mut self, input: &mut &[u8]) -> Result<Status<Frame>, FrameError> {
        loop {
            match &mut self.state {
                State::Failed(e, _) => return Err(*e),
                State::Header { filled } => {
                    let have = usize::from(*filled);
                    let take = (HEADER_LEN - have).min(input.len());
                    self.header[have..have + take].copy_from_slice(&input[..take]);
                    *input = &input[take..];
                    let have = have + take;
                    *filled = have as u8;
                    if have < HEADER_LEN {
                        return Ok(Status::Partial);
                    }
                    match parse_header(&self.header, self.limit) {
                        Ok((kind, request_id, len)) => {
                            self.state = State::Payload {
                                kind,
                                request_id,
                                len,
                                payload: Vec::new(),
                            };
                        }
                        Err(e) => return Err(self.fail(e, None)),
                    }
                }
                State::Payload {
                    len,
                    payload,
                    kind,
                    request_id,
                } => {
                    let want = *len as usize - payload.len();
                    let take = want.min(input.len());
                    if payload.is_empty() && take == want {
                        // The whole payload is here: one exact allocation.
                        *payload = input[..take].to_vec();
                    } else {
                        // Grow geometrically, but never past the declared length.
                        let needed = payload.len() + take;
                        if payload.capacity() < needed {
                            let target = (payload.capacity() * 2).max(needed).min(*len as usize);
                            payload.reserve_exact(target - payload.len());
                        }
                        payload.extend_from_slice(&input[..take]);
                    }
                    *input = &input[take..];
                    if payload.len() < *len as usize {
                        return Ok(Status::Partial);
                    }
                    let (kind, request_id) = (*kind, *request_id);
                    let payload = std::mem::take(payload);
                    self.state = State::Header { filled: 0 };
                    return match Message::decode(kind, payload) {
                        Ok(message) => Ok(Status::Complete(Frame {
                            request_id,
                            message,
                        })),
                        Err(e) => Err(self.fail(e, Some(request_id))),
                    };
                }
            }
        }
    }

    /// After an error: the request ID of the frame that failed, when its
    /// header was valid and only its payload was bad (the closing Error then
    /// carries it, PROTOCOL.md §3.3); `None` for a bad header or no error.
    pub fn failed_request_id(&self) -> Option<u32> {
        match self.state {
            State::Failed(_, request_id) => request_id,
            _ => None,
        }
    }

    fn fail(&mut self, e: FrameError, request_id: Option<u32>) -> FrameError {
        self.state = State::Failed(e, request_id);
        e
    }
}

/// Checks a complete header: magic, version, kind, and the length limit
/// (`limit` bytes of payload at most).
fn parse_header(h: &[u8; HEADER_LEN], limit: u32) -> Result<(Kind, u32, u32), FrameError> {
    if h[0..2] != MAGIC {
        return Err(FrameError::BadMagic);
    }
    let kind = match Kind::from_byte(h[3]) {
        Ok(kind) if kind.allowed_under(h[2]) => kind,
        // A kind of a later version is unknown to an earlier one: a delta
        // kind under 1 (§13.1), a mode kind under 1 or 2 (§15.1), a
        // version 4 kind under 1 to 3 (§13.6), a version 5 kind under 1
        // to 4 (§13.7), a version 6 kind under 1 to 5 (§13.8), a version 7
        // kind under 1 to 6 (§5.3), a version 8 kind under 1 to 7 (§5.8).
        Ok(kind) if (1..=V7_PROTOCOL_VERSION).contains(&h[2]) && kind.version() > h[2] => {
            return Err(FrameError::UnknownKind(h[3]))
        }
        Err(e) if (1..=V8_PROTOCOL_VERSION).contains(&h[2]) => return Err(e),
        _ => return Err(FrameError::UnsupportedVersion(h[2])),
    };
    let request_id = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
    let len = u32::from_be_bytes([h[8], h[9], h[10], h[11]]);
    if len > limit {
        return Err(FrameError::FrameTooLong(len));
    }
    Ok((kind, request_id, len))
}

/// Decodes every frame in `bytes`, stopping at the first error; for tests,
/// fuzzing and tools. Returns the frames and what ended the input.
pub fn decode_all(bytes: &[u8]) -> (Vec<Frame>, Result<Status<()>, FrameError>) {
    let mut decoder = FrameDecoder::new();
    let mut input = bytes;
    let mut frames = Vec::new();
    loop {
        // Checked before feeding, so an empty input ends `Complete` like any
        // input that ends on a frame boundary.
        if input.is_empty() {
            let end = if decoder.is_idle() {
                Status::Complete(())
            } else {
                Status::Partial
            };
            return (frames, Ok(end));
        }
        match decoder.feed(&mut input) {
            Ok(Status::Complete(frame)) => frames.push(frame),
            Ok(Status::Partial) => return (frames, Ok(Status::Partial)),
            Err(e) => return (frames, Err(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(kind: u8, len: u32) -> Vec<u8> {
        let mut h = vec![b'C', b'S', 1, kind, 0, 0, 0, 7];
        h.extend_from_slice(&len.to_be_bytes());
        h
    }

    #[test]
    fn a_lowered_limit_refuses_a_longer_header_before_any_payload_and_can_be_raised() {
        for len in [126u32, 1 << 20, u32::MAX] {
            let mut d = FrameDecoder::with_limit(125);
            let bytes = header(0x01, len);
            let mut input = &bytes[..];
            assert_eq!(d.feed(&mut input), Err(FrameError::FrameTooLong(len)));
            assert_eq!(d.failed_request_id(), None, "a header failure: ID 0");
            assert_eq!(d.buffered(), 0);
        }
        // 125 passes the header; raising the limit lets a 1 MiB frame in.
        let mut d = FrameDecoder::with_limit(125);
        let bytes = header(0x03, 0);
        let mut input = &bytes[..];
        assert!(matches!(d.feed(&mut input), Ok(Status::Complete(_))));
        d.set_limit(u32::MAX);
        let bytes = header(0x21, MAX_PAYLOAD);
        let mut input = &bytes[..];
        assert_eq!(d.feed(&mut input), Ok(Status::Partial));
        let mut over = FrameDecoder::new();
        let bytes = header(0x21, MAX_PAYLOAD + 1);
        let mut input = &bytes[..];
        assert_eq!(
            over.feed(&mut input),
            Err(FrameError::FrameTooLong(MAX_PAYLOAD + 1))
        );
    }
}
