//! Reads through the reactor's shared scratch (issue 12): records split
//! anywhere across socket reads, a caller's buffer filled, `WouldBlock`
//! part-way through a frame, close_notify right after data, and several
//! connections whose reads and writes all go through one scratch.

use super::*;

/// `len` bytes of a pattern that differs with `seed` (so that one
/// connection's bytes cannot pass for another's).
fn pattern(len: usize, seed: usize) -> Vec<u8> {
    (0..len).map(|i| ((i * seed + seed) % 251) as u8).collect()
}

/// A pair past its handshake, with room in the pipes for everything a
/// test sends at once.
fn ready_pair() -> Pair {
    let mut p = pair(1 << 20, TrustPolicy::Pinned);
    transfer(&mut p.client, &mut p.server, b"hello");
    p
}

/// The records the client sends for `data`, taken raw off the server's
/// socket before the server reads any of them.
fn records_for(p: &mut Pair, data: &[u8]) -> Vec<u8> {
    let mut sent = 0;
    for _ in 0..1000 {
        if sent == data.len() {
            break;
        }
        sent += p.client.write(&data[sent..]).unwrap();
        assert!(p.client.flush_tls().unwrap());
    }
    assert_eq!(sent, data.len());
    let mut raw = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match p.server.socket_mut().read(&mut buf) {
            Ok(n) if n > 0 => raw.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return raw,
            other => panic!("{other:?}"),
        }
    }
}

/// Puts raw bytes in the server's socket, as the network delivers them.
fn deliver(p: &mut Pair, raw: &[u8]) {
    p.client.socket_mut().write_all(raw).unwrap();
}

/// Reads with `buf` until the server's stream would block, as the reactor
/// does on a readable event; appends what it gave to `got`.
fn read_until_blocked(server: &mut ServerTlsStream<Pipe>, buf: &mut [u8], got: &mut Vec<u8>) {
    for _ in 0..100_000 {
        match End::read(server, buf) {
            Ok(0) => panic!("unexpected end after {} bytes", got.len()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) => panic!("{e} after {} bytes", got.len()),
        }
    }
    panic!("no WouldBlock");
}

/// What a connection may keep between readable events: its buffers' box
/// and a partial record, never the scratch it read through.
const KEPT_AT_MOST: usize = std::mem::size_of::<Buffers>() + RECORD;

#[test]
fn records_split_anywhere_across_socket_reads_arrive_whole_and_in_order() {
    let data = pattern(70_000, 7);
    for piece in [1, 5, 4096, 16 * 1024 + 3, RECORD + 1, 50_000] {
        let mut p = ready_pair();
        let raw = records_for(&mut p, &data);
        let mut got = Vec::new();
        let mut buf = vec![0u8; crate::protocol::limits::CHUNK_SIZE];
        for part in raw.chunks(piece) {
            deliver(&mut p, part);
            read_until_blocked(&mut p.server, &mut buf, &mut got);
            assert!(
                p.server.buffered_capacity() <= KEPT_AT_MOST,
                "pieces of {piece}: {} bytes kept",
                p.server.buffered_capacity()
            );
        }
        assert_eq!(got, data, "pieces of {piece}");
        assert_eq!(p.server.buffered_capacity(), 0, "pieces of {piece}");
    }
}

#[test]
fn a_read_fills_a_small_buffer_and_the_rest_follows_in_order() {
    let data = pattern(100_000, 13);
    for len in [1, 1000, 16 * 1024, 16 * 1024 + 1, 40_000] {
        let mut p = ready_pair();
        let raw = records_for(&mut p, &data);
        deliver(&mut p, &raw);
        let mut buf = vec![0u8; len];
        let first = End::read(&mut p.server, &mut buf).unwrap();
        if len <= 16 * 1024 {
            // One record holds more than the buffer: it is filled.
            assert_eq!(first, len);
        }
        assert_eq!(buf[..first], data[..first], "buffer of {len}");
        let mut got = buf[..first].to_vec();
        read_until_blocked(&mut p.server, &mut buf, &mut got);
        assert_eq!(got, data, "buffer of {len}");
        assert_eq!(p.server.buffered_capacity(), 0, "buffer of {len}");
    }
}

#[test]
fn would_block_mid_frame_gives_the_whole_records_and_keeps_the_partial_one() {
    let frame = pattern(crate::protocol::limits::CHUNK_SIZE + 12, 3);
    let mut p = ready_pair();
    let raw = records_for(&mut p, &frame);
    let half = raw.len() / 2 + 100;
    deliver(&mut p, &raw[..half]);
    let mut buf = vec![0u8; crate::protocol::limits::CHUNK_SIZE];
    let mut got = Vec::new();
    read_until_blocked(&mut p.server, &mut buf, &mut got);
    // Every whole record that came was decrypted and given, in order.
    assert!(got.len() + RECORD >= half, "{} of {half}", got.len());
    assert_eq!(got, frame[..got.len()]);
    let kept = p.server.buffered_capacity();
    assert!(kept > 0 && kept <= KEPT_AT_MOST, "{kept} bytes kept");
    deliver(&mut p, &raw[half..]);
    read_until_blocked(&mut p.server, &mut buf, &mut got);
    assert_eq!(got, frame);
    assert_eq!(p.server.buffered_capacity(), 0);
}

#[test]
fn close_notify_right_after_data_ends_the_stream_after_the_data() {
    let data = pattern(40_000, 11);
    for piece in [3, 100_000] {
        let mut p = ready_pair();
        let mut raw = records_for(&mut p, &data);
        p.client.close_notify();
        raw.extend(records_for(&mut p, &[]));
        let mut buf = vec![0u8; crate::protocol::limits::CHUNK_SIZE];
        let mut got = Vec::new();
        let mut ended = false;
        for part in raw.chunks(piece) {
            deliver(&mut p, part);
            for _ in 0..100 {
                match End::read(&mut p.server, &mut buf) {
                    Ok(0) => {
                        ended = true;
                        break;
                    }
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => panic!("{e}"),
                }
            }
        }
        assert!(ended, "pieces of {piece}: no end seen");
        assert_eq!(got, data, "pieces of {piece}");
        assert_eq!(
            End::read(&mut p.server, &mut buf).unwrap(),
            0,
            "stays ended"
        );
    }
}

#[test]
fn connections_sharing_the_scratch_keep_their_own_bytes() {
    // Three connections, each with a partial record pending between its
    // readable events, read in turn through the one scratch; a write on
    // another connection (sealed into the same scratch) comes between
    // every two reads.
    let mut pairs: Vec<Pair> = (0..3).map(|_| ready_pair()).collect();
    let ups: Vec<Vec<u8>> = (0..3).map(|i| pattern(90_000, 17 + i)).collect();
    let raws: Vec<Vec<u8>> = pairs
        .iter_mut()
        .zip(&ups)
        .map(|(p, up)| records_for(p, up))
        .collect();
    let pieces = [5000, 7001, 9999];
    let mut offsets = [0usize; 3];
    let mut got = vec![Vec::new(); 3];
    let mut downs = vec![Vec::new(); 3];
    let mut buf = vec![0u8; crate::protocol::limits::CHUNK_SIZE];
    for round in 0..1000 {
        if (0..3).all(|i| offsets[i] == raws[i].len()) {
            break;
        }
        for i in 0..3 {
            let end = (offsets[i] + pieces[i]).min(raws[i].len());
            deliver(&mut pairs[i], &raws[i][offsets[i]..end]);
            offsets[i] = end;
            read_until_blocked(&mut pairs[i].server, &mut buf, &mut got[i]);
            let other = &mut pairs[(i + 1) % 3];
            let reply = pattern(3000 + round, 29 + i);
            assert_eq!(End::write(&mut other.server, &reply).unwrap(), reply.len());
            downs[(i + 1) % 3].extend_from_slice(&reply);
        }
    }
    for (i, p) in pairs.iter_mut().enumerate() {
        assert_eq!(got[i], ups[i], "connection {i}'s upload");
        let mut down = Vec::new();
        let mut rbuf = vec![0u8; 64 * 1024];
        while down.len() < downs[i].len() {
            match p.client.read(&mut rbuf) {
                Ok(n) if n > 0 => down.extend_from_slice(&rbuf[..n]),
                other => panic!("{other:?} after {} bytes", down.len()),
            }
        }
        assert_eq!(down, downs[i], "connection {i}'s download");
        assert_eq!(p.server.buffered_capacity(), 0, "connection {i} idle");
    }
}

/// Reads through [`ServerTlsStream::read_frame`] until the stream would
/// block, as the reactor does for a connection past its Hello: one frame
/// per call at most; appends the frames decoded to `frames`.
fn read_frames_until_blocked(
    server: &mut ServerTlsStream<Pipe>,
    decoder: &mut crate::protocol::FrameDecoder,
    scratch: &mut Vec<u8>,
    frames: &mut Vec<crate::protocol::Frame>,
) {
    for _ in 0..100_000 {
        let mut fill =
            crate::protocol::FrameFill::new(decoder, crate::protocol::limits::CHUNK_SIZE);
        let read = server.read_frame(&mut fill, scratch);
        let done = fill.take();
        match read {
            Ok(0) if done.is_none() => panic!("unexpected end after {} frames", frames.len()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                assert!(done.is_none(), "a frame and WouldBlock at once");
                return;
            }
            Err(e) => panic!("{e} after {} frames", frames.len()),
        }
        match done {
            Some(Ok(frame)) => frames.push(frame),
            Some(Err(e)) => panic!("{e:?} after {} frames", frames.len()),
            None => {}
        }
    }
    panic!("no WouldBlock");
}

/// Encoded frames of a bulk upload as the client sends them: each
/// FileChunk's 12-byte header, then its data, with small frames between.
fn upload_frames() -> (Vec<crate::protocol::Frame>, Vec<u8>) {
    use crate::protocol::{Frame, Message};
    let mut frames = Vec::new();
    for (i, len) in [
        crate::protocol::limits::CHUNK_SIZE,
        1,
        40_000,
        0,
        16 * 1024 + 1,
    ]
    .into_iter()
    .enumerate()
    {
        frames.push(Frame::new(9, Message::FileChunk(pattern(len, 3 + i))));
        frames.push(Frame::new(10 + i as u32, Message::Ping));
    }
    let mut bytes = Vec::new();
    for frame in &frames {
        frame.encode(&mut bytes);
    }
    (frames, bytes)
}

#[test]
fn frames_read_straight_into_the_decoder_arrive_whole_in_order_with_records_split_anywhere() {
    let (frames, bytes) = upload_frames();
    for piece in [1, 7, 4096, RECORD + 1, 100_000, 1 << 20] {
        let mut p = ready_pair();
        let raw = records_for(&mut p, &bytes);
        let mut decoder = crate::protocol::FrameDecoder::new();
        let mut scratch = Vec::new();
        let mut got = Vec::new();
        for part in raw.chunks(piece) {
            deliver(&mut p, part);
            read_frames_until_blocked(&mut p.server, &mut decoder, &mut scratch, &mut got);
            assert!(
                p.server.buffered_capacity() <= KEPT_AT_MOST + RECORD,
                "piece {piece}: kept {} bytes",
                p.server.buffered_capacity()
            );
        }
        assert_eq!(got, frames, "piece {piece}");
        assert!(decoder.is_idle());
        assert_eq!(
            p.server.buffered_capacity(),
            0,
            "piece {piece}: idle at the end"
        );
    }
}

#[test]
fn a_payload_read_straight_in_grows_only_for_bytes_that_arrived() {
    use crate::protocol::{Frame, Message};
    // A header declaring 600,000 bytes and 20,000 of them: the payload
    // may hold what arrived, not the declared length.
    let mut bytes = Vec::new();
    Frame::new(9, Message::FileChunk(pattern(600_000, 5))).encode(&mut bytes);
    let mut p = ready_pair();
    let raw = records_for(&mut p, &bytes[..12 + 20_000]);
    deliver(&mut p, &raw);
    let mut decoder = crate::protocol::FrameDecoder::new();
    let mut scratch = Vec::new();
    let mut got = Vec::new();
    read_frames_until_blocked(&mut p.server, &mut decoder, &mut scratch, &mut got);
    assert!(got.is_empty());
    assert_eq!(decoder.buffered(), 12 + 20_000);
    assert!(
        decoder.payload_capacity() <= 2 * raw.len(),
        "reserved {} for 20,000 bytes arrived",
        decoder.payload_capacity()
    );
    // The rest arrives: the frame is whole and the same.
    let rest = records_for(&mut p, &bytes[12 + 20_000..]);
    deliver(&mut p, &rest);
    read_frames_until_blocked(&mut p.server, &mut decoder, &mut scratch, &mut got);
    let mut again = Vec::new();
    got[0].encode(&mut again);
    assert_eq!(again, bytes);
}
