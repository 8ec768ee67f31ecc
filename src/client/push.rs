//! Sending planned pushes and digesting the server's `PushAck`s.
//!
//! Pushes are pipelined: every operation of a plan is written at once (file
//! contents streamed from disk in 256 KiB chunks, never held whole in memory)
//! and the acknowledgements are matched by request ID as they come back. The
//! index changes only on an acknowledgement, so a lost connection simply
//! leaves the change to be planned again.

use super::aside::move_to_server_name;
use super::conflict::{mirror, Expect, Mirror};
use super::connection::Connection;
use super::delta_push::{send_delta, DeltaFile, DeltaSent, DeltaSupport};
use super::error::ClientError;
use super::fsutil::{check_path, open_in, reach, Local};
use super::held_open;
use super::index::Index;
use super::plan::ack::{self, AckEffect};
use super::scanner::Op;
use super::server_list::takes_server_list;
use super::stream_push::{send_stream, Streamed};
use crate::chunk::manifest::MAX_MANIFEST_CHUNKS;
use crate::chunk::Manifest;
use crate::protocol::limits::CHUNK_SIZE;
use crate::protocol::{
    ClientId, ContentHash, Delete, FileBegin, Message, PushAck, RemoveDir, Rename, SetMode,
    WirePath,
};
use std::fs::File;
use std::io::{Read, Seek};
use std::path::Path;

/// What [`send_op`] may use for an upload: the scan's chunk list of the
/// file and the chunk list of its base version's content (§13.7).
#[derive(Default)]
pub struct Lists {
    /// The scan's list ([`DeltaFile::manifest`]).
    pub manifest: Option<Manifest>,
    /// The base version's list ([`DeltaFile::base_list`]).
    pub base_list: Option<Manifest>,
    /// Set to the list a delta upload sent, or a one-read upload cut from
    /// the bytes it sent.
    pub sent: Option<Manifest>,
    /// Set to the hash a one-read upload ([`Op::Stream`]) sealed: the
    /// operation is then recorded in flight as the `Upload` of that hash.
    pub sealed: Option<ContentHash>,
    /// Set when the server refused a one-read upload's version:
    /// the session plans no more of them.
    pub v6_refused: bool,
    /// The session may take a one-read upload's chunk list from the
    /// server ([`super::server_list`]): it serves delta downloads.
    pub servers_lists: bool,
    /// Set when a one-read upload was sealed without a list of its own
    /// (the cut was left, [`crate::chunk::blocks::leaves_cut`]): the
    /// session asks the server for it.
    pub server_list: bool,
}

/// Sends one operation. Returns its request ID, or `None` when the local file
/// vanished before it could be read (the watcher will report what happened).
///
/// # Errors
/// [`ClientError::ConnectionLost`] when writing fails.
pub fn send_op(
    conn: &mut Connection,
    root: &Path,
    op: &Op,
    (cursor, lists): (u64, &mut Lists),
    delta: &mut DeltaSupport,
    on_bytes: &mut dyn FnMut(u64),
) -> Result<Option<u32>, ClientError> {
    let message = match op {
        Op::Rename { from, to, base } => Message::Rename(Rename {
            base_version: *base,
            from: from.clone(),
            to: to.clone(),
        }),
        Op::Delete { path, base } => Message::Delete(Delete {
            base_version: *base,
            path: path.clone(),
        }),
        Op::RemoveDir { path } => Message::RemoveDir(RemoveDir {
            cursor,
            path: path.clone(),
        }),
        Op::MakeDir { path } => Message::MakeDir { path: path.clone() },
        Op::SetMode {
            path, base, stat, ..
        } => Message::SetMode(SetMode {
            base_version: *base,
            executable: stat.exec,
            path: path.clone(),
        }),
        Op::Stream { path, stat } => {
            let Ok(file) = open_in(root, path) else {
                return Ok(None);
            };
            let may_leave = lists.servers_lists && takes_server_list(stat.size);
            return match send_stream(conn, root, (path, file), (*stat, may_leave), on_bytes)? {
                Streamed::Sealed(id, hashed) => {
                    lists.sealed = Some(hashed.hash);
                    lists.server_list = hashed.left;
                    if let Some(list) = hashed.list {
                        if list.chunks.len() <= MAX_MANIFEST_CHUNKS {
                            lists.sent = Some(list);
                        }
                    }
                    Ok(Some(id))
                }
                // Answered HashMismatch: the path is looked at again.
                Streamed::Abandoned(id) => Ok(Some(id)),
                Streamed::Refused => {
                    lists.v6_refused = true;
                    Err(ClientError::ConnectionLost(
                        "the server refused protocol version 6".into(),
                    ))
                }
            };
        }
        Op::Upload {
            path,
            base,
            stat,
            hash,
        } => {
            let Ok(mut file) = open_in(root, path) else {
                return Ok(None);
            };
            if delta.wants(stat.size) {
                let what = DeltaFile {
                    path,
                    base: *base,
                    hash: *hash,
                    stat: *stat,
                    manifest: lists.manifest.take(),
                    base_list: lists.base_list.take(),
                };
                match send_delta(conn, &file, what, delta, on_bytes, &mut lists.sent)? {
                    DeltaSent::Sent(id) => {
                        if *base == 0 && id.is_some() {
                            // A one-read upload cut off before made this one
                            // go hashed first: its marker served.
                            let _ = std::fs::remove_file(super::stream_push::marker(root, path));
                        }
                        return Ok(id);
                    }
                    // Over the chunk-list limit: whole, from the start.
                    DeltaSent::TooManyChunks => {
                        if file.seek(std::io::SeekFrom::Start(0)).is_err() {
                            return Ok(None);
                        }
                    }
                }
            }
            let id = conn.next_request_id();
            let begin = FileBegin {
                version: *base,
                size: stat.size,
                hash: *hash,
                path: path.clone(),
            };
            conn.send(id, &Message::FileBegin(begin))?;
            stream_file(conn, id, file, stat.size, on_bytes)?;
            conn.send(id, &Message::FileEnd)?;
            log::debug!("sent {path} ({} bytes)", stat.size);
            if *base == 0 {
                // A one-read upload cut off before was the reason this one
                // went hashed first: its marker has served.
                let _ = std::fs::remove_file(super::stream_push::marker(root, path));
            }
            return Ok(Some(id));
        }
    };
    log::debug!("sent {op:?}");
    conn.request(message).map(Some)
}

/// Streams exactly `size` bytes of `file`. If the file shrank meanwhile the
/// rest is zero-filled: the server then refuses the content (hash mismatch)
/// and nothing half-written is ever stored.
fn stream_file(
    conn: &mut Connection,
    id: u32,
    mut file: File,
    size: u64,
    on_bytes: &mut dyn FnMut(u64),
) -> Result<(), ClientError> {
    let mut buf = vec![0u8; CHUNK_SIZE];
    let mut left = size;
    while left > 0 {
        let want = left.min(CHUNK_SIZE as u64) as usize;
        let mut filled = 0;
        while filled < want {
            match file.read(&mut buf[filled..want]) {
                Ok(0) | Err(_) => {
                    buf[filled..want].fill(0);
                    filled = want;
                }
                Ok(n) => filled += n,
            }
        }
        conn.send_chunk(id, &buf[..want])?;
        on_bytes(want as u64);
        left -= want as u64;
    }
    Ok(())
}

/// Updates the index (through [`plan::ack::on_ack`]) and, for conflicts,
/// the folder after the server answered `op` with `ack` (whether the local
/// entry follows the server's conflict name: [`mirror`]). `cursor` is the
/// device's pull cursor now; `me` is this device (for the name of a local
/// entry that must make room for the server's conflict copy).
pub fn apply_ack(
    root: &Path,
    index: &mut Index,
    op: &Op,
    ack: &PushAck,
    (cursor, me): (u64, ClientId),
) -> AckEffect {
    let mut effect = ack::on_ack(index, op, ack, cursor);
    if let Some(mv) = effect.local_move.take() {
        let at = |path: &WirePath| check_path(root, path).unwrap_or(Local::Foreign);
        let made = match mirror(mv.expect, at(&mv.from), at(&mv.to)) {
            // Gone: recorded without a move, so its deletion is pushed.
            Mirror::AlreadyThere | Mirror::Gone => true,
            // a file a program writes (or whose SQLite
            // companions it writes) keeps its name; the server's version
            // there waits for it to close, and so do its pushes.
            Mirror::Move if in_use(root, &mv.from, mv.expect) => {
                log::warn!(
                    "{}: a program has it open for writing; not moved to the server's conflict name {}",
                    mv.from,
                    mv.to
                );
                false
            }
            Mirror::Move => to_server_name(root, index, &mv.from, &mv.to, me, &mut effect),
            Mirror::Leave => false,
        };
        if let (true, Some(entry)) = (made, mv.record) {
            ack::record_unless_newer(index, &mv.to, entry, &mut effect);
        }
    }
    effect
}

/// Whether the file at `path`, about to follow the server's conflict name,
/// is held open for writing here, or a file of its SQLite group is
/// ([`held_open::look`]).
fn in_use(root: &Path, path: &WirePath, expect: Expect) -> bool {
    if !matches!(expect, Expect::File(_)) {
        return false;
    }
    let found = held_open::look(path, |p| reach(root, p));
    held_open::holds(held_open::Change::Replace, &found)
}

/// Moves `from` to the server's conflict name `to` without replacing
/// anything (see [`move_to_server_name`]: whatever is already at `to` is set
/// aside to a free name of its own and pushed); true when moved.
fn to_server_name(
    root: &Path,
    index: &Index,
    from: &WirePath,
    to: &WirePath,
    me: ClientId,
    effect: &mut AckEffect,
) -> bool {
    match move_to_server_name(root, index, from, to, me) {
        Ok(aside) => {
            effect.dirty.extend(aside);
            true
        }
        Err(e) => {
            log::warn!("could not move {from} to {to}: {e}");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::fsutil::Stat;
    use crate::client::index::{Entry, EntryKind};
    use crate::protocol::{ContentHash, PushStatus};
    use std::fs;

    fn p(s: &str) -> WirePath {
        WirePath::new(s).unwrap()
    }

    /// `d/r.txt` ("mine") written under `root`, and its upload on base 3.
    fn pushed_upload(root: &Path) -> Op {
        fs::create_dir(root.join("d")).unwrap();
        fs::write(root.join("d/r.txt"), "mine").unwrap();
        let stat = match check_path(root, &p("d/r.txt")).unwrap() {
            Local::File(s) => s,
            other => panic!("{other:?}"),
        };
        Op::Upload {
            path: p("d/r.txt"),
            base: 3,
            stat,
            hash: ContentHash::of(b"mine"),
        }
    }

    #[test]
    fn conflict_ack_mirrors_the_server_locally() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let op = pushed_upload(root);
        let mut index = Index::new();
        let ack = PushAck {
            status: PushStatus::Conflict,
            version: 9,
            path: p("d/r (conflict 2 2026-01-01 000000).txt"),
        };
        let effect = apply_ack(root, &mut index, &op, &ack, (0, 2));
        assert!(effect.pull);
        assert_eq!(
            fs::read_to_string(root.join("d/r (conflict 2 2026-01-01 000000).txt")).unwrap(),
            "mine"
        );
        assert!(!root.join("d/r.txt").exists());
        assert_eq!(index.get(&ack.path).map(|e| e.version), Some(9));
        assert!(index.get(&p("d/r.txt")).is_none());
    }

    /// A Conflict answer for a file deleted (or moved) here since it was
    /// pushed: nothing is made at the conflict name, which is recorded as
    /// holding what was pushed, so the next look pushes the deletion of the
    /// conflict copy (or its move). Before, nothing was recorded
    /// and the pull brought the conflict copy back: a file deleted here
    /// reappeared under another name.
    #[test]
    fn a_conflict_answer_for_a_file_gone_here_pushes_its_deletion_or_move() {
        use crate::client::scanner::{Scanner, Scope};
        for moved in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path();
            let op = pushed_upload(root);
            if moved {
                fs::rename(root.join("d/r.txt"), root.join("d/kept.txt")).unwrap();
            } else {
                fs::remove_file(root.join("d/r.txt")).unwrap();
            }
            let mut index = Index::new();
            let dir_entry = Entry {
                kind: EntryKind::Dir,
                version: 1,
            };
            index.insert(p("d"), dir_entry);
            let ack = PushAck {
                status: PushStatus::Conflict,
                version: 9,
                path: p("d/r (conflict 2 2026-01-01 000000).txt"),
            };
            let effect = apply_ack(root, &mut index, &op, &ack, (8, 2));
            assert!(!ack.path.to_local(root).exists(), "nothing made there");
            assert_eq!(index.get(&ack.path).map(|e| e.version), Some(9));
            assert!(effect.dirty.contains(&ack.path));
            // The moved file is complete (its writer closed it): hashed
            // at once, not waited for.
            let scope = Scope {
                full: true,
                paths: effect.dirty.iter().cloned().collect(),
                settled: [p("d/kept.txt")].into(),
            };
            let plan = Scanner::new(root).plan(&index, &scope).unwrap();
            let want = match moved {
                true => Op::Rename {
                    from: ack.path.clone(),
                    to: p("d/kept.txt"),
                    base: 9,
                },
                false => Op::Delete {
                    path: ack.path.clone(),
                    base: 9,
                },
            };
            assert_eq!(plan.ops, [want], "moved: {moved}");
        }
    }

    #[test]
    fn acks_update_the_index() {
        let dir = tempfile::tempdir().unwrap();
        let mut index = Index::new();
        let stat = Stat {
            size: 1,
            mtime_ns: 5,
            ..Stat::default()
        };
        let up = Op::Upload {
            path: p("a/f"),
            base: 0,
            stat,
            hash: ContentHash::of(b"x"),
        };
        let ack = |status, version, path: &str| PushAck {
            status,
            version,
            path: p(path),
        };
        apply_ack(
            dir.path(),
            &mut index,
            &up,
            &ack(PushStatus::Applied, 4, "a/f"),
            (0, 2),
        );
        assert_eq!(index.get(&p("a/f")).map(|e| e.version), Some(4));
        let mv = Op::Rename {
            from: p("a"),
            to: p("b"),
            base: 1,
        };
        index.insert(
            p("a"),
            Entry {
                kind: EntryKind::Dir,
                version: 1,
            },
        );
        apply_ack(
            dir.path(),
            &mut index,
            &mv,
            &ack(PushStatus::Applied, 5, "b"),
            (4, 2),
        );
        assert_eq!(index.get(&p("b/f")).map(|e| e.version), Some(5));
        let del = Op::Delete {
            path: p("b/f"),
            base: 5,
        };
        let effect = apply_ack(
            dir.path(),
            &mut index,
            &del,
            &ack(PushStatus::Stale, 6, "b/f"),
            (0, 2),
        );
        assert!(effect.pull);
        assert!(index.get(&p("b/f")).is_none());
    }
}
