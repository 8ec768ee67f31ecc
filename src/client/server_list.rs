//! The server's chunk list of a large one-read upload, asked for after it
//! (PROTOCOL.md §13.8, R-13.8.8; §13.4 for the frames), instead of the
//! client cutting and hashing the same bytes itself.
//!
//! Why: both ends used to cut a stream upload with FastCDC and hash every
//! chunk (the server for its chunk index, R-13.8.8; the client for its own,
//! the base of the path's next delta list, §13.7): about 0.8 CPU-s per GiB
//! on each side, on a 2-core machine where the upload is CPU-bound. The
//! server's list is made from the bytes it received and checked; the
//! client's chunk index is a hint that everyone re-hashes before using a
//! chunk (`chunk::index`), so taking the server's list costs the client no
//! safety: a wrong list can only make a later transfer larger. Only when
//! the upload is bound by the CPU (its blocks go out faster than 32 MB/s,
//! [`crate::chunk::blocks::leaves_cut`]): over a slow link the client's cut
//! costs no time, and the list's 36 bytes a chunk back down would.
//!
//! How: right behind the upload's `StreamEnd` the client sends
//! `FetchManifest` for the path (the server answers in order, R-3.4.5, so
//! after the `PushAck`, with the content the push left there). When the
//! `FileManifest` arrives it closes the download at once with an empty
//! `FetchChunks` (`last` = 1, no run: no chunk is sent), and records the
//! list once every entry is in, if the `FileManifest`'s hash is the one it
//! sent (a conflict or a later change leaves other content there: that
//! list is dropped). The download counts as one of the connection's open
//! delta downloads from `FetchManifest` to `FileEnd`.
//!
//! This module holds the state and decides, without I/O; the session sends
//! and records.

use crate::chunk::{IdLen, Manifest, ManifestReceiver};
use crate::protocol::limits::MAX_OPEN_DELTA_DOWNLOADS;
use crate::protocol::{ChunkRanges, ContentHash, Message, WirePath};
use std::collections::{HashMap, VecDeque};

/// Uploads from this size on may take the server's list: the client
/// decides between [`crate::chunk::blocks::RATE_FROM`] and `RATE_TO` (24
/// MiB) whether to go on cutting ([`crate::chunk::blocks::leaves_cut`]);
/// below it the client's own cut costs little (under 30 ms of CPU) and a
/// list download per file would cost more than it saves when many such
/// files go up at once.
pub const SERVER_LIST_FROM: u64 = 32 << 20;

/// Most list downloads open at once on a connection: the pull keeps the
/// rest of R-13.4.4's four ([`ServerLists::reserved`]).
pub const MAX_OPEN_LISTS: usize = 2;

/// Most lists waiting to be asked; beyond it the oldest is forgotten (its
/// file is then cut when a delta download next refreshes the chunk index,
/// or its next edit sends a whole list: slower, never wrong).
pub const MAX_WANTED: usize = 4096;

/// Whether a one-read upload of `size` bytes may leave its chunk list to
/// the server ([`SERVER_LIST_FROM`] up to the largest file the client asks
/// a list for, `MAX_DELTA_FETCH`).
pub fn takes_server_list(size: u64) -> bool {
    (SERVER_LIST_FROM..=super::delta_fetch::MAX_DELTA_FETCH).contains(&size)
}

#[derive(Debug)]
enum State {
    /// `FetchManifest` sent, its answer not in yet.
    Asked,
    /// The `FileManifest` was this content's; entries coming.
    Receiving(ManifestReceiver),
    /// Nothing more to take (recorded, or dropped); `FileEnd` awaited.
    Closing,
}

#[derive(Debug)]
struct Open {
    path: WirePath,
    hash: ContentHash,
    state: State,
}

/// What the session does after a frame of a list download.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Nothing.
    Nothing,
    /// Send this under the download's request ID (the empty last
    /// `FetchChunks` that closes it).
    Send(Message),
    /// Record this list for this path in the chunk index.
    Record(WirePath, Manifest),
}

/// A frame that breaks §13.4 for a list download.
#[derive(Debug, PartialEq, Eq)]
pub struct Violation(pub String);

/// The list downloads of one session.
#[derive(Debug, Default)]
pub struct ServerLists {
    wanted: VecDeque<(WirePath, ContentHash)>,
    open: HashMap<u32, Open>,
}

impl ServerLists {
    /// The list of `path` holding `hash` (a sealed one-read upload) is
    /// wanted.
    pub fn want(&mut self, path: WirePath, hash: ContentHash) {
        if self.wanted.len() >= MAX_WANTED {
            self.wanted.pop_front();
        }
        self.wanted.push_back((path, hash));
    }

    /// The next list to ask for now, if one waits and a download may open
    /// beside the pull's `pull_open` ones; the caller sends
    /// `FetchManifest` and calls [`ServerLists::opened`].
    pub fn next(&mut self, pull_open: usize) -> Option<(WirePath, ContentHash)> {
        let open = self.open.len();
        if open >= MAX_OPEN_LISTS || pull_open + open >= MAX_OPEN_DELTA_DOWNLOADS {
            return None;
        }
        self.wanted.pop_front()
    }

    /// `FetchManifest` (`id`) was sent for `path`'s content `hash`.
    pub fn opened(&mut self, id: u32, path: WirePath, hash: ContentHash) {
        self.open.insert(
            id,
            Open {
                path,
                hash,
                state: State::Asked,
            },
        );
    }

    /// Delta downloads the pull must leave to these.
    pub fn reserved(&self) -> usize {
        self.open.len()
    }

    /// True when `id` is a list download's.
    pub fn owns(&self, id: u32) -> bool {
        self.open.contains_key(&id)
    }

    /// True while a wanted list is not recorded or given up: `--once`
    /// waits for it (the path's next edit needs it, §13.7). A download
    /// whose list is in but whose `FileEnd` is not holds nothing up.
    pub fn pending(&self) -> bool {
        !self.wanted.is_empty()
            || self
                .open
                .values()
                .any(|o| !matches!(o.state, State::Closing))
    }

    /// The connection ended: downloads not done are wanted again on the
    /// next one (their request IDs were that connection's).
    pub fn disconnected(&mut self) {
        let mut again: Vec<(u32, Open)> = self.open.drain().collect();
        again.sort_by_key(|(id, _)| *id);
        for (_, o) in again.into_iter().rev() {
            if !matches!(o.state, State::Closing) {
                self.wanted.push_front((o.path, o.hash));
            }
        }
        self.wanted.truncate(MAX_WANTED);
    }

    /// A frame answering list download `id` ([`ServerLists::owns`]).
    /// `closing` says whether an `Error` frame closes the connection (the
    /// session's rule), which ends every download anyway.
    ///
    /// # Errors
    /// [`Violation`] for a frame §13.4 does not allow here.
    pub fn on_frame(&mut self, id: u32, message: Message) -> Result<Step, Violation> {
        let Some(open) = self.open.get_mut(&id) else {
            return Ok(Step::Nothing);
        };
        let state = std::mem::replace(&mut open.state, State::Closing);
        let close = || {
            Step::Send(Message::FetchChunks(ChunkRanges {
                last: true,
                ranges: Vec::new(),
            }))
        };
        match (state, message) {
            (State::Asked, Message::FileManifest(header)) => {
                // The download is open: it is closed at once, whatever
                // the list (R-13.4.3: no chunk asked).
                if header.hash == open.hash && header.path == open.path {
                    if let Ok(receiver) =
                        ManifestReceiver::new(header.size, header.hash, header.chunk_count)
                    {
                        open.state = State::Receiving(receiver);
                    }
                }
                Ok(close())
            }
            (State::Receiving(mut receiver), Message::ChunkList(entries)) => {
                if receiver.push_ids(&entries, IdLen::Full).is_err() {
                    return Ok(Step::Nothing);
                }
                if !receiver.is_complete() {
                    open.state = State::Receiving(receiver);
                    return Ok(Step::Nothing);
                }
                match receiver.finish() {
                    Ok(list) => Ok(Step::Record(open.path.clone(), list)),
                    Err(_) => Ok(Step::Nothing),
                }
            }
            // Entries of a list this client does not take (other content).
            (State::Closing, Message::ChunkList(_)) => Ok(Step::Nothing),
            (_, Message::FileEnd) => {
                self.open.remove(&id);
                Ok(Step::Nothing)
            }
            // NotFound, Storage: no download was opened; an
            // Error that closes the connection ends it too.
            (_, Message::Error(_)) => {
                self.open.remove(&id);
                Ok(Step::Nothing)
            }
            (state, message) => {
                open.state = state;
                Err(Violation(format!(
                    "{:?} in the download of {}'s chunk list (request {id})",
                    message.kind(),
                    open.path
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::manifest_of_reader;
    use crate::protocol::{ErrorCode, ErrorReport, FileManifest};

    fn path(s: &str) -> WirePath {
        WirePath::new(s).expect("valid path")
    }

    fn header(m: &Manifest, p: &WirePath) -> Message {
        Message::FileManifest(FileManifest {
            version: 3,
            size: m.size,
            hash: m.hash,
            chunk_count: m.chunks.len() as u32,
            path: p.clone(),
        })
    }

    fn list(len: usize) -> Manifest {
        manifest_of_reader(&crate::chunk::test_bytes(len, 5)[..]).expect("in memory")
    }

    fn close() -> Step {
        Step::Send(Message::FetchChunks(ChunkRanges {
            last: true,
            ranges: Vec::new(),
        }))
    }

    #[test]
    fn a_list_in_two_frames_is_recorded_and_the_download_closed() {
        let m = list(3 << 20);
        assert!(m.chunks.len() > 2);
        let p = path("big.bin");
        let mut lists = ServerLists::default();
        lists.want(p.clone(), m.hash);
        assert!(lists.pending());
        let (wp, wh) = lists.next(0).expect("room");
        lists.opened(7, wp, wh);
        assert_eq!(lists.reserved(), 1);
        assert_eq!(lists.on_frame(7, header(&m, &p)), Ok(close()));
        let (a, b) = m.chunks.split_at(2);
        assert_eq!(
            lists.on_frame(7, Message::ChunkList(a.to_vec())),
            Ok(Step::Nothing)
        );
        assert!(lists.pending());
        assert_eq!(
            lists.on_frame(7, Message::ChunkList(b.to_vec())),
            Ok(Step::Record(p.clone(), m.clone()))
        );
        // The list is in: nothing holds --once up; the slot until FileEnd.
        assert!(!lists.pending());
        assert_eq!(lists.reserved(), 1);
        assert_eq!(lists.on_frame(7, Message::FileEnd), Ok(Step::Nothing));
        assert_eq!(lists.reserved(), 0);
        assert!(!lists.owns(7));
    }

    #[test]
    fn another_contents_list_is_closed_and_dropped() {
        let m = list(1 << 20);
        let p = path("big.bin");
        let mut lists = ServerLists::default();
        lists.opened(4, p.clone(), ContentHash([9; 32]));
        assert_eq!(lists.on_frame(4, header(&m, &p)), Ok(close()));
        assert!(!lists.pending());
        assert_eq!(
            lists.on_frame(4, Message::ChunkList(m.chunks.clone())),
            Ok(Step::Nothing)
        );
        assert_eq!(lists.on_frame(4, Message::FileEnd), Ok(Step::Nothing));
        assert_eq!(lists.reserved(), 0);
    }

    #[test]
    fn a_list_breaking_the_rules_is_dropped_not_recorded() {
        let m = list(1 << 20);
        let p = path("big.bin");
        let mut lists = ServerLists::default();
        lists.opened(4, p.clone(), m.hash);
        assert_eq!(lists.on_frame(4, header(&m, &p)), Ok(close()));
        let mut wrong = m.chunks.clone();
        wrong[0].len += 1;
        assert_eq!(
            lists.on_frame(4, Message::ChunkList(wrong)),
            Ok(Step::Nothing)
        );
        assert!(!lists.pending());
        // More entries than announced: dropped too.
        lists.opened(5, p.clone(), m.hash);
        lists.on_frame(5, header(&m, &p)).expect("header");
        let mut more = m.chunks.clone();
        more.extend_from_slice(&m.chunks);
        assert_eq!(
            lists.on_frame(5, Message::ChunkList(more)),
            Ok(Step::Nothing)
        );
        assert!(!lists.pending());
    }

    #[test]
    fn an_error_instead_of_the_list_ends_it() {
        let mut lists = ServerLists::default();
        lists.opened(4, path("gone"), ContentHash([1; 32]));
        let error = Message::Error(ErrorReport {
            code: ErrorCode::NotFound,
            message: "gone".into(),
        });
        assert_eq!(lists.on_frame(4, error), Ok(Step::Nothing));
        assert!(!lists.owns(4) && !lists.pending());
    }

    #[test]
    fn a_chunk_before_the_header_is_a_violation() {
        let mut lists = ServerLists::default();
        lists.opened(4, path("a"), ContentHash([1; 32]));
        assert!(lists.on_frame(4, Message::ChunkList(Vec::new())).is_err());
    }

    #[test]
    fn the_pulls_downloads_and_the_lists_stay_within_four() {
        let mut lists = ServerLists::default();
        for i in 0..5u8 {
            lists.want(path("f"), ContentHash([i; 32]));
        }
        assert!(lists.next(4).is_none(), "the pull holds all four");
        let (p, h) = lists.next(3).expect("the pull holds 3: one left");
        lists.opened(1, p, h);
        assert!(lists.next(3).is_none(), "3 + 1 open");
        let (p, h) = lists.next(2).expect("2 + 1 < 4");
        lists.opened(2, p, h);
        assert!(lists.next(0).is_none(), "at most MAX_OPEN_LISTS");
        assert!(lists.reserved() + 2 <= MAX_OPEN_DELTA_DOWNLOADS);
        // A lost connection asks the unfinished ones again, first.
        lists.disconnected();
        assert_eq!(lists.reserved(), 0);
        let (_, first) = lists.next(0).expect("again");
        assert_eq!(first, ContentHash([0; 32]));
    }

    #[test]
    fn only_large_uploads_take_the_servers_list() {
        assert!(!takes_server_list(SERVER_LIST_FROM - 1));
        assert!(takes_server_list(SERVER_LIST_FROM));
        assert!(takes_server_list(1 << 30));
        assert!(!takes_server_list(
            super::super::delta_fetch::MAX_DELTA_FETCH + 1
        ));
    }
}
