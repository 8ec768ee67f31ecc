//! The one producer of pull replies: every `ChangeBatch` the server sends is
//! built by [`encode_batch`], whether the actor sends a listing batch by
//! batch or the reactor answers an up-to-date Pull of a connection whose
//! actor is idle or retired ([`encode_up_to_date`]); and every pull's
//! connection-log line is worded by [`log_detail`].

use crate::protocol::{ChangeBatch, ChangeEntry, Frame, History, Message};

/// The reply to a Pull: the head the client reaches and what to send.
#[derive(Debug, Clone, Copy)]
pub struct PullReply<'a> {
    /// The cursor the client reaches after applying everything.
    pub head: u64,
    /// The entries are the whole tree (§5.2).
    pub full: bool,
    /// Entries in sending order.
    pub entries: &'a [ChangeEntry],
    /// The reply to a PullModes: `ModeBatch` frames, whose entries carry
    /// their mode byte (§15.2), instead of `ChangeBatch` frames.
    pub modes: bool,
}

/// Encodes onto `out` the batch of `reply` that starts at entry `pos`: as
/// many entries as fit one frame (`ChangeBatch::has_room_for`), `last` set
/// on the final batch (an empty reply is one empty batch). Returns the
/// position of the next batch; the reply is complete once it reaches
/// `reply.entries.len()`.
pub fn encode_batch(out: &mut Vec<u8>, request_id: u32, reply: PullReply<'_>, pos: usize) -> usize {
    let mut batch = ChangeBatch {
        head: reply.head,
        full: reply.full,
        last: false,
        entries: Vec::new(),
    };
    let mut used = 0usize;
    let mut next = pos;
    while let Some(entry) = reply.entries.get(next) {
        let len = entry.encoded_len() + usize::from(reply.modes);
        if !batch.has_room_for(used, len) {
            break;
        }
        used += len;
        batch.entries.push(entry.clone());
        next += 1;
    }
    batch.last = next >= reply.entries.len();
    let message = if reply.modes {
        Message::ModeBatch(batch)
    } else {
        Message::ChangeBatch(batch)
    };
    Frame::new(request_id, message).encode(out);
    next
}

/// The reply to a Pull (`modes`: a PullModes) from a client already at the
/// head `cursor`: one empty, last batch (`full` when the user has no
/// history at all).
pub fn encode_up_to_date(out: &mut Vec<u8>, request_id: u32, cursor: u64, modes: bool) {
    let reply = PullReply {
        head: cursor,
        full: cursor == 0,
        entries: &[],
        modes,
    };
    encode_batch(out, request_id, reply, 0);
}

/// The reply to a PullChecked (§5.8) from a client at the head `cursor`
/// whose checked change is the head, with the head's tag `tag`: its
/// `History` frame (not diverged) and one empty, last `ModeBatch`.
pub fn encode_up_to_date_checked(out: &mut Vec<u8>, request_id: u32, cursor: u64, tag: u64) {
    let history = History {
        head: cursor,
        head_tag: tag,
        common: cursor,
        diverged: false,
    };
    Frame::new(request_id, Message::History(history)).encode(out);
    encode_up_to_date(out, request_id, cursor, true);
}

/// The connection-log detail of a pull from `cursor`.
pub fn log_detail(cursor: u64, reply: PullReply<'_>) -> String {
    format!(
        "cursor {cursor} -> {}, {} entries{}{}",
        reply.head,
        reply.entries.len(),
        if reply.full { ", full" } else { "" },
        if reply.modes { ", with modes" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::limits::MAX_BATCH_ENTRIES;
    use crate::protocol::{EntryState, FrameDecoder, Status, WirePath};

    fn decode_all(mut bytes: &[u8]) -> Vec<ChangeBatch> {
        let mut decoder = FrameDecoder::new();
        let mut batches = Vec::new();
        while let Ok(Status::Complete(frame)) = decoder.feed(&mut bytes) {
            match frame.message {
                Message::ChangeBatch(b) => batches.push(b),
                other => panic!("{other:?}"),
            }
        }
        batches
    }

    #[test]
    fn an_up_to_date_reply_is_one_empty_last_batch() {
        for cursor in [0, 5] {
            let mut out = Vec::new();
            encode_up_to_date(&mut out, 9, cursor, false);
            let batches = decode_all(&out);
            let want = ChangeBatch {
                head: cursor,
                full: cursor == 0,
                last: true,
                entries: Vec::new(),
            };
            assert_eq!(batches, vec![want]);
        }
    }

    #[test]
    fn a_long_listing_is_split_and_only_the_final_batch_is_last() {
        let entries: Vec<ChangeEntry> = (0..MAX_BATCH_ENTRIES + 10)
            .map(|i| ChangeEntry {
                path: WirePath::new(&format!("d/f{i}")).unwrap(),
                state: EntryState::Deleted,
                version: i as u64 + 1,
                executable: false,
            })
            .collect();
        let reply = PullReply {
            head: 77,
            full: false,
            entries: &entries,
            modes: false,
        };
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < entries.len() {
            pos = encode_batch(&mut out, 3, reply, pos);
        }
        let batches = decode_all(&out);
        assert!(batches.len() >= 2);
        let flat: Vec<ChangeEntry> = batches.iter().flat_map(|b| b.entries.clone()).collect();
        assert_eq!(flat, entries);
        let lasts: Vec<bool> = batches.iter().map(|b| b.last).collect();
        assert!(lasts[..lasts.len() - 1].iter().all(|l| !l) && lasts[lasts.len() - 1]);
        assert_eq!(
            log_detail(4, reply),
            format!("cursor 4 -> 77, {} entries", entries.len())
        );
    }
}
