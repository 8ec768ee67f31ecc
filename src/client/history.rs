//! `cloud-client versions` and `cloud-client restore` (PROTOCOL.md §14):
//! one short connection as the folder's own device, a listing read a page
//! at a time, and a Restore answered like a push. The running client (if
//! any) gets the restored entries by its ordinary pull, as every other
//! device does.

use super::address::ServerAddress;
use super::connection::Connection;
use super::error::ClientError;
use super::pace::Pace;
use super::secure::{Dial, LinkSecurity};
use super::state::{Identity, StateDir};
use crate::protocol::limits::STATE_DIR_NAME;
use crate::protocol::{
    Cause, ErrorCode, Hello, HelloMode, KeptKind, KeptVersion, KeyHello, ListVersions, Message,
    PushAck, Restore, RestoreAt, Secret, UserId, WirePath,
};
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::Duration;

/// How long a listing page or a restore may take before the command gives up.
const REPLY_TIMEOUT: Duration = Duration::from_secs(120);

/// A connection to the server as the folder's device.
pub struct Remote {
    conn: Connection,
}

impl Remote {
    /// Connects to `server` as the
    /// device `folder` belongs to, trusting what the folder's earlier runs
    /// trusted (`security`).
    ///
    /// # Errors
    /// The folder was never synced (no identity); the server is unreachable,
    /// untrusted, or refuses the device.
    ///
    /// Each connection attempt waits in the slices of `pace()` (a fresh
    /// [`Pace`] per attempt): it can say how long it has waited and end at
    /// a stop request, as the running client's attempts do (live20).
    pub fn connect(
        folder: &Path,
        server: &ServerAddress,
        security: &LinkSecurity,
        pace: &dyn Fn() -> Pace,
    ) -> Result<Remote, ClientError> {
        let Some(Identity { user, client, key }) = StateDir::existing(folder).load_identity()?
        else {
            return Err(ClientError::MissingFolder(folder.join(STATE_DIR_NAME)));
        };
        // A copy of a synced folder never acts as the device whose identity
        // it holds: a restore would be that device's change.
        let root = super::watcher::canonical_root(folder);
        if let Some(copy) = super::origin::check(&root.join(STATE_DIR_NAME), &root, client)? {
            return Err(ClientError::CopyNotJoined {
                folder: root,
                original: copy.original,
                device: copy.device,
            });
        }
        let dial = Dial {
            security,
            host: server.host(),
            state_dir: folder.join(STATE_DIR_NAME),
            user: Some(user),
        };
        // As for a run: a given pin or CA holds from now on.
        super::secure::record_given(&dial.state_dir, security)?;
        // A Visit: the device's running client keeps its one
        // live connection. A server older than Visit refuses the mode as a
        // bad frame; then the errand comes as the Resume it used to be.
        let mut paced = pace();
        let mut conn = Connection::connect(server, &dial, &mut paced)?;
        match Self::greet(&mut conn, HelloMode::Visit, user, client, key, &mut paced) {
            Err(ClientError::Refused {
                code: ErrorCode::BadFrame,
                ..
            }) => {
                let mut paced = pace();
                conn = Connection::connect(server, &dial, &mut paced)?;
                Self::greet(&mut conn, HelloMode::Resume, user, client, key, &mut paced)
            }
            other => other,
        }
        .map_err(|e| e.for_folder(folder, client))?;
        Ok(Remote { conn })
    }

    /// The handshake of `versions` and `restore`, in `mode`.
    fn greet(
        conn: &mut Connection,
        mode: HelloMode,
        user: UserId,
        client: u64,
        key: Option<Secret>,
        pace: &mut Pace,
    ) -> Result<(), ClientError> {
        match key {
            // The device's key (PROTOCOL.md §4.6); the answer gives no new
            // key to a device that has one.
            Some(secret) => conn
                .handshake_key(
                    KeyHello {
                        mode,
                        user_id: user,
                        client_id: client,
                        secret,
                        name: String::new(),
                    },
                    pace,
                )
                .map(drop),
            // A folder synced before device keys: the plain Hello, so no
            // key is handed to this short connection (the running client
            // asks for one and stores it).
            None => conn
                .handshake(
                    Hello {
                        mode,
                        user_id: user,
                        client_id: client,
                    },
                    pace,
                )
                .map(drop),
        }
    }

    /// Calls `each` with every kept version at or below `under` (`None`:
    /// the whole folder), oldest change first, asking page by page.
    ///
    /// # Errors
    /// The connection failed or the server answered with an error.
    pub fn list(
        &mut self,
        under: Option<&WirePath>,
        mut each: impl FnMut(&KeptVersion),
    ) -> Result<(), ClientError> {
        let mut request = ListVersions {
            after_seq: 0,
            after: None,
            under: under.cloned(),
        };
        loop {
            let id = self.conn.request(Message::ListVersions(request.clone()))?;
            let page = match self.conn.wait_for(id, REPLY_TIMEOUT)?.message {
                Message::VersionList(page) => page,
                Message::Error(report) => {
                    return Err(ClientError::RequestRefused {
                        code: report.code,
                        message: report.message,
                    })
                }
                other => {
                    return Err(ClientError::Protocol(format!(
                        "expected VersionList, got {:?}",
                        other.kind()
                    )))
                }
            };
            page.entries.iter().for_each(&mut each);
            match (page.more, page.entries.last()) {
                (true, Some(last)) => {
                    request.after_seq = last.seq;
                    request.after = Some(last.path.clone());
                }
                _ => return Ok(()),
            }
        }
    }

    /// Restores `path` as it was at `time_ms` (ms since the epoch, UTC):
    /// the server decides which version that was (PROTOCOL.md §14.3,
    /// RestoreAt).
    ///
    /// # Errors
    /// The connection failed, or the server refused (`NoSuchVersion`: the
    /// path did not exist then; `UnknownKind`: a server older than
    /// RestoreAt; a storage error).
    pub fn restore_at(&mut self, time_ms: u64, path: &WirePath) -> Result<PushAck, ClientError> {
        let id = self.conn.request(Message::RestoreAt(RestoreAt {
            time_ms,
            path: path.clone(),
        }))?;
        self.ack(id)
    }

    /// Restores the version of `path` displaced by change `seq`.
    ///
    /// # Errors
    /// The connection failed, or the server refused (`NoSuchVersion`, a
    /// storage error).
    pub fn restore(&mut self, seq: u64, path: &WirePath) -> Result<PushAck, ClientError> {
        let id = self.conn.request(Message::Restore(Restore {
            seq,
            path: path.clone(),
        }))?;
        self.ack(id)
    }

    /// The PushAck (or refusal) answering request `id`.
    fn ack(&mut self, id: u32) -> Result<PushAck, ClientError> {
        match self.conn.wait_for(id, REPLY_TIMEOUT)?.message {
            Message::PushAck(ack) => Ok(ack),
            Message::Error(report) => Err(ClientError::RequestRefused {
                code: report.code,
                message: report.message,
            }),
            other => Err(ClientError::Protocol(format!(
                "expected PushAck, got {:?}",
                other.kind()
            ))),
        }
    }
}

/// The server's reason for a `NoSuchVersion` when entries that were in
/// place then expired (PROTOCOL.md §14.4, R-14.3.2), e.g. `3 entries under
/// e6 just before change 543 expired (…): no longer kept`; `None` for any
/// other refusal.
pub fn expired_reason(message: &str) -> Option<&str> {
    let at = message.find(" expired (")?;
    let start = message[..at].rfind(": ").map_or(0, |i| i + 2);
    Some(&message[start..])
}

/// What restoring the directory `dir` by the number of its removal brings
/// back, and what it does not: the files deleted under it by earlier,
/// separate changes (PROTOCOL.md §14: a version is what one change
/// displaced, so a directory's removal holds only what was in it then).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirRestore {
    /// Files the removal held (they come back).
    pub files: usize,
    /// Entries deleted below `dir` after it was made and before its
    /// removal, not brought back: (path, the deleting change, a directory),
    /// the latest deletion of each path, by change then path; a
    /// directory's own content is not listed again.
    pub earlier: Vec<(WirePath, u64, bool)>,
}

/// [`DirRestore`] from the kept versions `listed` at or below `dir` (a
/// `versions` listing), for restoring `dir` by change `seq`; `None` when
/// `seq` did not remove `dir` as a directory.
pub fn dir_restore(listed: &[KeptVersion], dir: &WirePath, seq: u64) -> Option<DirRestore> {
    let removal = listed.iter().find(|e| {
        e.seq == seq && &e.path == dir && e.kind == KeptKind::Dir && e.cause == Cause::Deleted
    })?;
    let below = |e: &&KeptVersion| e.path.is_within(dir) && &e.path != dir;
    let held: HashSet<&WirePath> = listed
        .iter()
        .filter(below)
        .filter(|e| e.seq == seq)
        .map(|e| &e.path)
        .collect();
    let files = listed
        .iter()
        .filter(below)
        .filter(|e| e.seq == seq && matches!(e.kind, KeptKind::File { .. }))
        .count();
    let mut latest: BTreeMap<&WirePath, (u64, bool)> = BTreeMap::new();
    for e in listed.iter().filter(below) {
        let deleted_meanwhile = e.cause == Cause::Deleted && e.seq > removal.since && e.seq < seq;
        if deleted_meanwhile && !held.contains(&e.path) {
            let was = latest
                .entry(&e.path)
                .or_insert((e.seq, e.kind == KeptKind::Dir));
            if e.seq > was.0 {
                *was = (e.seq, e.kind == KeptKind::Dir);
            }
        }
    }
    let dirs: Vec<(&WirePath, u64)> = latest
        .iter()
        .filter(|(_, (_, is_dir))| *is_dir)
        .map(|(p, (s, _))| (*p, *s))
        .collect();
    let mut earlier: Vec<(WirePath, u64, bool)> = latest
        .into_iter()
        .filter(|(path, (n, _))| {
            !dirs
                .iter()
                .any(|(d, s)| s == n && path.is_within(d) && path != d)
        })
        .map(|(path, (n, is_dir))| (path.clone(), n, is_dir))
        .collect();
    earlier.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
    Some(DirRestore { files, earlier })
}

/// `restore`'s exit status when the connection was lost before the
/// server answered (README "Versions and restore"): the restore may be
/// partly done. Distinct from 1 (refused, nothing changed) and 2 (a wrong
/// command line).
pub const RESTORE_CUT: u8 = 3;

/// The one line `restore` prints (exit [`RESTORE_CUT`]) when the
/// connection was lost (`why`) after the restore of `path` was asked and
/// before its answer: the server may have placed part of it (PROTOCOL.md
/// a server that stopped mid-restore finishes it when it starts
/// again; a restore that ran on and failed is not finished). Running the
/// same command again is safe — it places only what is missing — so the
/// line says which command. `asked` is the command's `--version N` or
/// `--at TIME`; `by_time` adds that a server older than RestoreAt closes
/// the connection too.
pub fn cut_restore_line(
    folder: &Path,
    path: &WirePath,
    asked: &str,
    why: &str,
    by_time: bool,
) -> String {
    let older = if by_time {
        " (a server older than RestoreAt, PROTOCOL.md §14.3, closes the connection too: then use --version N)"
    } else {
        ""
    };
    format!(
        "the restore of {path} may be partly done: the connection was lost before the server answered ({why}); \
         a server that stopped mid-restore finishes it when it starts again, and running the same command again \
         places only what is missing: cloud-client restore {} {path} {asked}{older}",
        folder.display()
    )
}

/// Most earlier deletions [`render_dir_restore`] names one by one.
pub const MAX_EARLIER_SHOWN: usize = 10;

/// The lines `restore` adds after restoring a directory by number:
/// `(N files)`-style count is the caller's; this says what stays deleted
/// and how to bring each back, e.g. `1 file under d003 was deleted
/// earlier, by change 20307, not by change 20309: restore it with
/// cloud-client restore FOLDER d003/f076.txt --version 20307`.
pub fn render_dir_restore(folder: &Path, dir: &WirePath, seq: u64, what: &DirRestore) -> String {
    let n = what.earlier.len();
    if n == 0 {
        return String::new();
    }
    let (noun, verb) = if n == 1 {
        ("entry", "stays")
    } else {
        ("entries", "stay")
    };
    let mut out = format!(
        "{n} {noun} under {dir} had been deleted earlier, by other changes than {seq}, and {verb} deleted; to restore one:"
    );
    for (path, m, is_dir) in what.earlier.iter().take(MAX_EARLIER_SHOWN) {
        let slash = if *is_dir { "/" } else { "" };
        out.push_str(&format!(
            "\n  {path}{slash} (deleted by change {m}): cloud-client restore {} {path} --version {m}",
            folder.display()
        ));
    }
    if n > MAX_EARLIER_SHOWN {
        out.push_str(&format!(
            "\n  … {} more: `cloud-client versions {} {dir}` lists them",
            n - MAX_EARLIER_SHOWN,
            folder.display()
        ));
    }
    out
}

/// One listing line: `N  TIME  CAUSE  SIZE  PATH` (a directory shows `dir`
/// for its size and a trailing `/`).
pub fn render(entry: &KeptVersion) -> String {
    let when = chrono::DateTime::from_timestamp_millis(entry.time_ms as i64)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_else(|| entry.time_ms.to_string());
    let (size, slash) = match entry.kind {
        KeptKind::File { size, .. } => (size.to_string(), ""),
        KeptKind::Dir => ("dir".to_owned(), "/"),
    };
    format!(
        "{:>8}  {when}  {:<12}  {size:>12}  {}{slash}",
        entry.seq,
        entry.cause.word(),
        entry.path
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ContentHash;

    fn gone(seq: u64, since: u64, path: &str, dir: bool) -> KeptVersion {
        let mut e = kept(seq, path, 0);
        e.since = since;
        e.cause = Cause::Deleted;
        if dir {
            e.kind = KeptKind::Dir;
        }
        e
    }

    #[test]
    fn a_restore_cut_by_a_lost_connection_says_it_may_be_partly_done_and_what_to_run() {
        let folder = Path::new("/home/me/Sync");
        let line = cut_restore_line(
            folder,
            &WirePath::new("big").expect("path"),
            "--version 1501",
            "server closed the connection",
            false,
        );
        assert!(!line.contains('\n'), "one line: {line}");
        assert!(
            line.starts_with("the restore of big may be partly done: "),
            "{line}"
        );
        assert!(line.contains("(server closed the connection)"), "{line}");
        assert!(
            line.ends_with("cloud-client restore /home/me/Sync big --version 1501"),
            "{line}"
        );
        assert!(line.contains("finishes it when it starts again"), "{line}");
        let by_time = cut_restore_line(
            folder,
            &WirePath::new("d").expect("path"),
            "--at 2026-12-01T10:00:00Z",
            "x",
            true,
        );
        assert!(
            by_time.contains("cloud-client restore /home/me/Sync d --at 2026-12-01T10:00:00Z"),
            "{by_time}"
        );
        assert!(by_time.contains("older than RestoreAt"), "{by_time}");
        assert!(!by_time.contains('\n'));
        assert_ne!(RESTORE_CUT, 1);
        assert_ne!(RESTORE_CUT, 2);
    }

    #[test]
    fn a_directory_restored_by_number_names_what_earlier_changes_deleted() {
        let d = WirePath::new("d003").expect("path");
        let mut listed = vec![
            // Before the directory was made (change 5): not its business.
            gone(4, 1, "d003/ancient.txt", false),
            // Deleted on their own while it existed.
            gone(20307, 6, "d003/f076.txt", false),
            gone(20301, 6, "d003/old.txt", false),
            // Deleted, re-made and removed with the directory: comes back.
            gone(20302, 6, "d003/back.txt", false),
            // A subdirectory removed earlier: named once, not its files.
            gone(20303, 6, "d003/sub", true),
            gone(20303, 6, "d003/sub/a.txt", false),
            gone(20303, 6, "d003/sub/b.txt", false),
            // An overwrite is no deletion.
            kept(20304, "d003/f001.txt", 0),
            // The removal itself: the directory and what it held.
            gone(20309, 5, "d003", true),
            gone(20309, 20302, "d003/back.txt", false),
            // Deleted after the removal (a later incarnation).
            gone(20400, 20390, "d003/later.txt", false),
        ];
        listed.extend((0..3).map(|i| gone(20309, 6, &format!("d003/f{i:03}.txt"), false)));
        let what = dir_restore(&listed, &d, 20309).expect("a removal");
        assert_eq!(what.files, 4);
        let p = |s: &str| WirePath::new(s).expect("path");
        assert_eq!(
            what.earlier,
            vec![
                (p("d003/old.txt"), 20301, false),
                (p("d003/sub"), 20303, true),
                (p("d003/f076.txt"), 20307, false),
            ]
        );
        let text = render_dir_restore(Path::new("/home/me/Sync"), &d, 20309, &what);
        assert!(
            text.starts_with("3 entries under d003 had been deleted earlier"),
            "{text}"
        );
        assert!(
            text.contains("\n  d003/f076.txt (deleted by change 20307): cloud-client restore /home/me/Sync d003/f076.txt --version 20307"),
            "{text}"
        );
        assert!(
            text.contains("\n  d003/sub/ (deleted by change 20303)"),
            "{text}"
        );
        // Not a directory removal: nothing to say.
        assert_eq!(dir_restore(&listed, &d, 20307), None);
        assert_eq!(dir_restore(&listed, &p("d003/f076.txt"), 20307), None);
    }

    #[test]
    fn the_expired_count_is_taken_from_the_servers_refusal() {
        let why = " (older than --keep-versions, or dropped past --versions-space): no longer kept";
        let by_number = format!("e6 v543: 3 entries under e6 just before change 543 expired{why}");
        assert_eq!(
            expired_reason(&by_number),
            Some(format!("3 entries under e6 just before change 543 expired{why}").as_str())
        );
        let by_time = format!(
            "e6 at 1 ms: no version of e6 at 2026-12-02T07:00:00.000Z: 1 entry under it then expired{why}"
        );
        assert_eq!(
            expired_reason(&by_time),
            Some(format!("1 entry under it then expired{why}").as_str())
        );
        assert_eq!(
            expired_reason("f v9: no kept version of f displaced by change 9"),
            None
        );
    }

    #[test]
    fn many_earlier_deletions_are_cut_short() {
        let d = WirePath::new("d").expect("path");
        let mut listed: Vec<KeptVersion> = (0..25)
            .map(|i| gone(100 + i, 1, &format!("d/f{i:02}"), false))
            .collect();
        listed.push(gone(500, 1, "d", true));
        let what = dir_restore(&listed, &d, 500).expect("a removal");
        assert_eq!((what.files, what.earlier.len()), (0, 25));
        let text = render_dir_restore(Path::new("/f"), &d, 500, &what);
        assert_eq!(text.lines().count(), 1 + MAX_EARLIER_SHOWN + 1, "{text}");
        assert!(
            text.ends_with("… 15 more: `cloud-client versions /f d` lists them"),
            "{text}"
        );
    }

    fn kept(seq: u64, path: &str, time_ms: u64) -> KeptVersion {
        KeptVersion {
            seq,
            since: 0,
            time_ms,
            cause: Cause::Overwritten,
            kind: KeptKind::File {
                size: 1,
                hash: ContentHash::of(&seq.to_be_bytes()),
                mtime_ns: 0,
                executable: false,
            },
            path: WirePath::new(path).expect("test path"),
        }
    }

    #[test]
    fn a_listing_line_shows_number_time_cause_size_and_path() {
        let line = render(&kept(42, "docs/a.txt", 1_764_583_200_000));
        assert_eq!(
            line,
            "      42  2025-12-01T10:00:00.000Z  overwritten              1  docs/a.txt"
        );
    }
}
