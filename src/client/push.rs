//! Sending planned pushes and digesting the server's `PushAck`s.
//!
//! Pushes are pipelined: every operation of a plan is written at once (file
//! contents streamed from disk in 256 KiB chunks, never held whole in memory)
//! and the acknowledgements are matched by request ID as they come back. The
//! index changes only on an acknowledgement, so a lost connection simply
//! leaves the change to be planned again.

use super::aside::move_to_server_name;
use super::connection::Connection;
use super::error::ClientError;
use super::fsutil::{check_path, Local};
use super::index::{Entry, EntryKind, Index};
use super::scanner::Op;
use crate::protocol::limits::CHUNK_SIZE;
use crate::protocol::{
    ClientId, Delete, FileBegin, Message, PushAck, PushStatus, RemoveDir, Rename, WirePath,
};
use std::fs::File;
use std::io::Read;
use std::path::Path;

/// What an acknowledgement asks of the session.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct AckEffect {
    /// Paths to compare with the index again.
    pub dirty: Vec<WirePath>,
    /// The server moved on: pull soon.
    pub pull: bool,
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
    cursor: u64,
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
        Op::Upload {
            path,
            base,
            stat,
            hash,
        } => {
            let Ok(file) = File::open(path.to_local(root)) else {
                return Ok(None);
            };
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

/// Updates the index (and, for conflicts, the folder) after the server
/// answered `op` with `ack`. `me` is this device (for the name of a local
/// entry that must make room for the server's conflict copy).
pub fn apply_ack(
    root: &Path,
    index: &mut Index,
    op: &Op,
    ack: &PushAck,
    me: ClientId,
) -> AckEffect {
    let mut effect = AckEffect::default();
    let ok = matches!(ack.status, PushStatus::Applied | PushStatus::Unchanged);
    match op {
        Op::Upload {
            path, stat, hash, ..
        } => {
            // A file hashed moments after its last write may be written
            // again within the same timestamp tick, leaving its stat as
            // recorded: a racy record stays untrusted (hashed at the next look).
            let entry = Entry::synced_file(*stat, *hash, ack.version);
            match ack.status {
                PushStatus::Applied | PushStatus::Unchanged => index.insert(path.clone(), entry),
                PushStatus::Conflict => {
                    log::warn!(
                        "conflict: {path} was changed elsewhere; this device's version is now {}",
                        ack.path
                    );
                    index.remove(path);
                    let here = check_path(root, &ack.path).ok();
                    let moved = here == Some(Local::File(*stat))
                        || (check_path(root, path).ok() == Some(Local::File(*stat))
                            && to_server_name(root, index, path, &ack.path, me, &mut effect));
                    if moved {
                        index.insert(ack.path.clone(), entry);
                    }
                    effect.dirty.extend([path.clone(), ack.path.clone()]);
                    effect.pull = true;
                }
                PushStatus::Stale => {
                    effect.dirty.push(path.clone());
                    effect.pull = true;
                }
            }
        }
        Op::MakeDir { path } => {
            let dir = Entry {
                kind: EntryKind::Dir,
                version: ack.version,
            };
            match ack.status {
                _ if ok => index.insert(path.clone(), dir),
                PushStatus::Conflict => {
                    log::warn!(
                        "conflict: {path} is a file elsewhere; this directory is now {}",
                        ack.path
                    );
                    if check_path(root, path).ok() == Some(Local::Dir) {
                        to_server_name(root, index, path, &ack.path, me, &mut effect);
                    }
                    index.insert(ack.path.clone(), dir);
                    effect.dirty.extend([path.clone(), ack.path.clone()]);
                    effect.pull = true;
                }
                _ => {
                    effect.dirty.push(path.clone());
                    effect.pull = true;
                }
            }
        }
        Op::Delete { path, .. } => {
            index.remove(path);
            if !ok {
                // Changed elsewhere meanwhile: the newer version comes back by pull.
                log::info!("{path} was changed elsewhere; the server kept it");
                effect.pull = true;
            }
        }
        Op::RemoveDir { path } => {
            index.remove_subtree(path);
            if !ok {
                log::info!("part of {path} was changed elsewhere; the server kept it");
                effect.pull = true;
            }
        }
        Op::Rename { from, to, .. } => match ack.status {
            PushStatus::Applied => index.rebase(from, to, Some(ack.version)),
            PushStatus::Unchanged => index.rebase(from, to, None),
            PushStatus::Conflict => {
                log::warn!(
                    "conflict: {to} exists elsewhere; moved entry is now {}",
                    ack.path
                );
                to_server_name(root, index, to, &ack.path, me, &mut effect);
                index.rebase(from, &ack.path, Some(ack.version));
                effect.dirty.extend([to.clone(), ack.path.clone()]);
                effect.pull = true;
            }
            PushStatus::Stale => {
                index.remove_subtree(from);
                effect.dirty.push(to.clone());
                effect.pull = true;
            }
        },
    }
    effect
}

/// Moves `from` to the server's conflict name `to` without replacing
/// anything (see [`move_to_server_name`]); true when moved. A local entry
/// that had to make room is marked for pushing.
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
    use crate::protocol::ContentHash;
    use std::fs;

    fn p(s: &str) -> WirePath {
        WirePath::new(s).unwrap()
    }

    #[test]
    fn conflict_ack_mirrors_the_server_locally() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir(root.join("d")).unwrap();
        fs::write(root.join("d/r.txt"), "mine").unwrap();
        let stat = match check_path(root, &p("d/r.txt")).unwrap() {
            Local::File(s) => s,
            other => panic!("{other:?}"),
        };
        let op = Op::Upload {
            path: p("d/r.txt"),
            base: 3,
            stat,
            hash: ContentHash::of(b"mine"),
        };
        let mut index = Index::new();
        let ack = PushAck {
            status: PushStatus::Conflict,
            version: 9,
            path: p("d/r (conflict 2 2026-01-01 000000).txt"),
        };
        let effect = apply_ack(root, &mut index, &op, &ack, 2);
        assert!(effect.pull);
        assert_eq!(
            fs::read_to_string(root.join("d/r (conflict 2 2026-01-01 000000).txt")).unwrap(),
            "mine"
        );
        assert!(!root.join("d/r.txt").exists());
        assert_eq!(index.get(&ack.path).map(|e| e.version), Some(9));
        assert!(index.get(&p("d/r.txt")).is_none());
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
            2,
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
            2,
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
            2,
        );
        assert!(effect.pull);
        assert!(index.get(&p("b/f")).is_none());
    }
}
