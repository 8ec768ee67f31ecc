//! The incremental frame decoder: a small state machine fed whatever bytes arrived.

use super::error::FrameError;
use super::limits::{HEADER_LEN, MAGIC, MAX_PAYLOAD, V8_PROTOCOL_VERSION, V9_PROTOCOL_VERSION};
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

    /// Capacity of the payload being collected (for tests of ).
    #[cfg(test)]
    pub(crate) fn payload_capacity(&self) -> usize {
        match &self.state {
            State::Payload { payload, .. } => payload.capacity(),
            _ => 0,
        }
    }

    /// Bytes still to come before the current frame is whole: its
    /// payload's rest once the header is in, else the header's rest and
    /// `guess` for the payload (a reader sizes its socket reads by it, so
    /// that one read brings about one frame). 0 after an error.
    pub fn frame_room(&self, guess: usize) -> usize {
        match &self.state {
            State::Header { filled } => HEADER_LEN - usize::from(*filled) + guess,
            State::Payload { len, payload, .. } => (*len as usize).saturating_sub(payload.len()),
            State::Failed(..) => 0,
        }
    }

    /// Consumes bytes from the front of `input` until a frame completes or the
    /// input runs out. On `Complete`, `input` holds the bytes after the frame.
    ///
    /// # Errors
    /// The first [`FrameError`] in the stream; every later call returns it again.
    pub fn feed(&mut self, input: &mut &[u8]) -> Result<Status<Frame>, FrameError> {
        self.feed_ahead(input, 0)
    }

    /// As [`FrameDecoder::feed`], knowing that `ahead` more bytes have
    /// arrived behind `input` (read from the socket, not yet decrypted):
    /// a payload that grows makes room for them at once instead of
    /// doubling once per record (each doubling moved what it held).
    fn feed_ahead(&mut self, input: &mut &[u8], ahead: usize) -> Result<Status<Frame>, FrameError> {
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
                        grow(payload, payload.len() + take + ahead, *len as usize);
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

/// Makes room in `payload` for `needed` bytes in all, growing it
/// geometrically but never past the declared length `len`: it holds at most
/// twice what has arrived, never `len` on the strength of a header alone
/// (PROTOCOL.md ).
fn grow(payload: &mut Vec<u8>, needed: usize, len: usize) {
    let needed = needed.min(len);
    if payload.capacity() < needed {
        let target = (payload.capacity() * 2).max(needed).min(len);
        payload.reserve_exact(target - payload.len());
    }
}

/// A decoder fed in place, one frame at a time, by a reader that holds
/// the bytes where the decoder cannot see them yet: the server's TLS
/// layer, which copies each decrypted record straight into the frame's
/// payload through it, instead of into a read buffer that `feed` would
/// copy again (issue 12, BENCHMARKS.md "TLS upload: records straight into
/// the frame"). It takes bytes until a frame is whole (or bad), and no
/// more: the reader keeps the rest for the next call, after the frame was
/// acted on, so a pause after any frame holds as with `feed`.
#[derive(Debug)]
pub struct FrameFill<'a> {
    decoder: &'a mut FrameDecoder,
    /// Bytes known to have arrived and not yet appended (a hint).
    arriving: usize,
    /// Room a frame's payload is guessed at before its header is in.
    guess: usize,
    done: Option<Result<Frame, FrameError>>,
}

impl<'a> FrameFill<'a> {
    /// Feeds `decoder`; `guess` as in [`FrameDecoder::frame_room`].
    pub fn new(decoder: &'a mut FrameDecoder, guess: usize) -> FrameFill<'a> {
        FrameFill {
            decoder,
            arriving: 0,
            guess,
            done: None,
        }
    }

    /// Bytes it takes still: 0 once a frame is whole or an error was met.
    pub fn room(&self) -> usize {
        if self.done.is_some() {
            0
        } else {
            self.decoder.frame_room(self.guess)
        }
    }

    /// `arrived` bytes (read from the socket, not yet decrypted) will be
    /// appended next, as far as the frame goes: its payload grows for
    /// them at once, never for more than arrived (PROTOCOL.md ).
    pub fn arriving(&mut self, arrived: usize) {
        self.arriving = arrived;
    }

    /// Appends as much of `bytes` as the current frame takes; returns how
    /// much.
    pub fn append(&mut self, bytes: &[u8]) -> usize {
        if self.done.is_some() {
            return 0;
        }
        let mut input = bytes;
        let ahead = self.arriving.saturating_sub(bytes.len());
        match self.decoder.feed_ahead(&mut input, ahead) {
            Ok(Status::Complete(frame)) => self.done = Some(Ok(frame)),
            Ok(Status::Partial) => {}
            Err(e) => self.done = Some(Err(e)),
        }
        let taken = bytes.len() - input.len();
        self.arriving = self.arriving.saturating_sub(taken);
        taken
    }

    /// The frame made whole, or the error met; `None` while the frame is
    /// still partial.
    pub fn take(&mut self) -> Option<Result<Frame, FrameError>> {
        self.done.take()
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
        // kind under 1 to 6 (§5.3), a version 8 kind under 1 to 7 (§5.8),
        // a version 9 kind under 1 to 8 (§10.2).
        Ok(kind) if (1..=V8_PROTOCOL_VERSION).contains(&h[2]) && kind.version() > h[2] => {
            return Err(FrameError::UnknownKind(h[3]))
        }
        Err(e) if (1..=V9_PROTOCOL_VERSION).contains(&h[2]) => return Err(e),
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
    use proptest::prelude::*;

    /// Frames of several kinds and payload sizes, and their bytes.
    fn stream(sizes: &[usize]) -> (Vec<Frame>, Vec<u8>) {
        let mut frames = Vec::new();
        for (i, &len) in sizes.iter().enumerate() {
            let data = (0..len).map(|j| (j * 7 + i) as u8).collect();
            frames.push(Frame::new(i as u32, Message::FileChunk(data)));
            frames.push(Frame::new(i as u32, Message::Pull { cursor: len as u64 }));
        }
        let mut bytes = Vec::new();
        for frame in &frames {
            frame.encode(&mut bytes);
        }
        (frames, bytes)
    }

    /// Feeds `pieces` of input through [`FrameFill`]s, one per frame as the
    /// server's TLS reads do, with `ahead` announced before each piece;
    /// returns the frames and the most payload capacity seen against the
    /// bytes of the frame received and announced at that moment.
    fn fill_all(pieces: &[&[u8]], ahead: usize) -> (Vec<Frame>, Vec<(usize, usize)>) {
        let mut decoder = FrameDecoder::new();
        let mut frames = Vec::new();
        let mut seen = Vec::new();
        for piece in pieces {
            let mut rest: &[u8] = piece;
            // Bounded: every turn takes a byte or ends a frame.
            for _ in 0..=2 * piece.len() + 2 {
                let mut fill = FrameFill::new(&mut decoder, 1 << 18);
                fill.arriving(rest.len() + ahead);
                let taken = fill.append(rest);
                assert!(taken <= rest.len());
                rest = &rest[taken..];
                match fill.take() {
                    Some(Ok(frame)) => frames.push(frame),
                    Some(Err(e)) => panic!("{e:?}"),
                    None => assert!(rest.is_empty(), "a partial frame left input"),
                }
                seen.push((
                    decoder.payload_capacity(),
                    decoder.buffered() + rest.len() + ahead,
                ));
                if rest.is_empty() {
                    break;
                }
            }
            assert!(rest.is_empty());
        }
        (frames, seen)
    }

    proptest! {
        #[test]
        fn a_fill_gives_the_frames_feed_gives_in_any_split(
            sizes in proptest::collection::vec(0usize..70_000, 1..5),
            cuts in proptest::collection::vec(1usize..40_000, 1..20),
            ahead in 0usize..20_000,
        ) {
            let (frames, bytes) = stream(&sizes);
            let mut pieces = Vec::new();
            let mut at = 0;
            for cut in cuts.iter().cycle() {
                if at == bytes.len() {
                    break;
                }
                let end = (at + cut).min(bytes.len());
                pieces.push(&bytes[at..end]);
                at = end;
            }
            let (got, seen) = fill_all(&pieces, ahead);
            prop_assert_eq!(&got, &frames);
            prop_assert_eq!(&decode_all(&bytes).0, &frames);
            // never more room than twice what arrived (or was
            // announced as arrived).
            for (capacity, arrived) in seen {
                prop_assert!(capacity <= 2 * arrived, "capacity {} for {} arrived", capacity, arrived);
            }
        }
    }

    #[test]
    fn a_fill_takes_no_byte_past_its_frame_and_stops_at_an_error() {
        let (frames, mut bytes) = stream(&[5, 0]);
        let mut d = FrameDecoder::new();
        let mut fill = FrameFill::new(&mut d, 100);
        assert_eq!(fill.room(), 12 + 100);
        let taken = fill.append(&bytes);
        assert_eq!(taken, 12 + 5, "the first frame's bytes only");
        assert_eq!(fill.room(), 0);
        assert_eq!(
            fill.append(&bytes[taken..]),
            0,
            "nothing after a whole frame"
        );
        assert_eq!(fill.take(), Some(Ok(frames[0].clone())));
        // A bad magic: the error, once, and no more bytes taken.
        bytes[taken] = b'X';
        let mut fill = FrameFill::new(&mut d, 100);
        fill.append(&bytes[taken..]);
        assert_eq!(fill.take(), Some(Err(FrameError::BadMagic)));
        assert_eq!(fill.room(), 0);
        assert_eq!(
            FrameFill::new(&mut d, 100).room(),
            0,
            "a failed decoder takes nothing"
        );
    }

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
