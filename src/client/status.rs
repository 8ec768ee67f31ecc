//! The running client's status, as a small file in the state folder
//! (`.cloudservice/status.json`) that `cloud-client status` reads: no second
//! connection to the server is needed. The client rewrites it (a temporary
//! file persisted over the old one, so a reader never sees half of it) when
//! its state changes, and holds a lock on `.cloudservice/running` while it
//! runs, so a reader can tell a live status from one a stopped client left.
//! The lock file holds the client's process ID and its modification time is
//! the client's heartbeat ([`heartbeat`]), so a reader can also tell a
//! working client from a frozen one.
//!
//! Shape of the file (JSON, one object; times are RFC 3339 UTC strings):
//! ```text
//! {"format":1,"server":"127.0.0.1:9000","user":"<32 hex>","device":2,
//!  "connected":true,"last_sync":"2026-12-01T03:30:00Z","uploads_pending":0,
//!  "downloads_pending":0,"last_error":null,"rule_errors":[],
//!  "not_synced":["secret.txt (unreadable (Permission denied))"],
//!  "pending":null,"pid":4242,"updated":"2026-12-01T03:30:00Z"}
//! ```

use serde::{Deserialize, Serialize};
use std::fs;
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::SystemTime;

pub mod heartbeat;
pub mod report;

/// The status file's name in the state folder.
pub const STATUS_FILE: &str = "status.json";
/// The lock file's name in the state folder: locked while a client runs.
pub const RUNNING_FILE: &str = "running";
/// The file format this client writes.
pub const FORMAT: u32 = 1;
/// Most entries of [`Status::not_synced`] written out (the file is rewritten
/// at every change of state; the client's log names every one).
pub const MAX_NOT_SYNCED: usize = 1000;
/// How [`Status::pending`] starts while the client waits for a server that
/// answers nothing ([`crate::client::schedule::liveness`]): `status` shows
/// it before anything else it could say of a running client, a first
/// sync's start included (the wait is what holds everything else up).
pub const WAITING_FOR_SERVER: &str = "waiting for the server: no answer for";
/// How [`Status::pending`] starts while a connection attempt waits for the
/// server (the connect, the TLS handshake, the Hello's answer:
/// [`crate::client::pace`]); `status` shows it while not connected.
pub const CONNECTING_TO_SERVER: &str = "connecting to the server: no answer for";

/// What the running client reports about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// [`FORMAT`].
    pub format: u32,
    /// The server's address, `IP:PORT`.
    pub server: String,
    /// The user ID (32 hex characters; a secret: the file is owner-only).
    pub user: String,
    /// This device's client ID.
    pub device: u64,
    /// A connection to the server is up.
    pub connected: bool,
    /// When the folder was last known to agree with the server (a pull
    /// applied in full with nothing left to push), RFC 3339 UTC.
    pub last_sync: Option<String>,
    /// Local changes not yet acknowledged by the server: pushes in flight
    /// plus paths changed and not yet pushed.
    pub uploads_pending: u64,
    /// Files the current pull still has to download.
    pub downloads_pending: u64,
    /// The last error the client met (cleared when it next agrees with the server).
    pub last_error: Option<String>,
    /// What is wrong with `.cloudignore`, one line each.
    pub rule_errors: Vec<String>,
    /// What the client itself found it cannot sync now, each as
    /// `PATH (why)`: names the protocol cannot carry, paths too deep,
    /// symlinks and special files (worded as `status`'s own walk words
    /// them, [`crate::client::scanner::unsyncable`], so each is listed
    /// once), files it may not read (`unreadable (Permission denied)`),
    /// paths too long for this system with the folder's own path in front,
    /// and the server's changes it could not apply here. At most
    /// [`MAX_NOT_SYNCED`] entries, then one `… N more` line. Absent in a
    /// file an older client wrote (read as none).
    #[serde(default)]
    pub not_synced: Vec<String>,
    /// Paths held back after a failure that may pass (a full disk here or
    /// on the server, R-5.6.8), one line each: `PATH (upload held back: why)`.
    #[serde(default)]
    pub held_back: Vec<String>,
    /// Whether the process that wrote this file has caught up since it
    /// started: it has pulled once and sent what its first comparison of the
    /// whole folder with the index found. Until then a change made while no
    /// client ran is not known yet (it shows in no other field), so the
    /// folder is not in sync. Absent (`None`) in a file an older client wrote.
    #[serde(default)]
    pub caught_up: Option<bool>,
    /// Work the client knows of and has not finished, when the counts
    /// above do not show it (or show only part of it), as one line naming
    /// it: a removal held back until it stops growing (R-5.6.6), the
    /// server's changes announced or being applied, a comparison of the
    /// whole folder under way. `None`: nothing pending. The folder is not
    /// in sync while it is set. Absent in a file an older client wrote
    /// (read as none: such a client's counts were all there was).
    #[serde(default)]
    pub pending: Option<String>,
    /// The process ID of the client that wrote this file. A running
    /// client whose ID is another (its lock file says which) has not
    /// written its own status yet: what the file says is the previous
    /// run's. Absent in a file an older client wrote.
    #[serde(default)]
    pub pid: Option<u32>,
    /// When this file was written, RFC 3339 UTC.
    pub updated: String,
}

impl Status {
    /// The status of a client that is not connected and has not caught up,
    /// written by this process now, with nothing counted, pending or
    /// wrong: what the notes written outside a session
    /// (`session/status_notes.rs`) start from before they say their part.
    pub fn offline(server: String, user: String, device: u64) -> Status {
        Status {
            format: FORMAT,
            server,
            user,
            device,
            connected: false,
            last_sync: None,
            uploads_pending: 0,
            downloads_pending: 0,
            last_error: None,
            rule_errors: Vec::new(),
            not_synced: Vec::new(),
            held_back: Vec::new(),
            caught_up: Some(false),
            pending: None,
            pid: Some(std::process::id()),
            updated: rfc3339(SystemTime::now()),
        }
    }
}

/// True when the status `s` a running client writes says the folder
/// agrees with the server, apart from "last sync" itself: connected,
/// caught up, nothing to upload, download or finish, no error, nothing
/// it cannot sync or holds back. `cloud-client status` says "in sync" only
/// for such a status ([`report::in_sync`]), and the client moves "last
/// sync" only when the status it writes is one (README "Last sync is when
/// the folder last agreed with the server", PROTOCOL.md R-4.3.6: a wait
/// for the server is not agreement either; outside tester breaker20 F3:
/// it moved at every write while `status` said "not in sync").
pub fn agrees(s: &Status) -> bool {
    s.connected
        && s.caught_up != Some(false)
        && s.uploads_pending == 0
        && s.downloads_pending == 0
        && s.last_error.is_none()
        && s.not_synced.is_empty()
        && s.held_back.is_empty()
        && s.pending.is_none()
}

/// Why the status file could not be read.
#[derive(Debug)]
pub enum StatusError {
    /// Reading failed (other than "absent").
    Io(io::Error),
    /// The file is not a status this client understands.
    Malformed(String),
}

impl std::fmt::Display for StatusError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StatusError::Io(e) => write!(f, "cannot read {STATUS_FILE}: {e}"),
            StatusError::Malformed(why) => write!(f, "{STATUS_FILE} is damaged: {why}"),
        }
    }
}

impl std::error::Error for StatusError {}

/// Space reserved past the end of each status file written (bytes), so
/// that a full disk can still take the next status in place.
pub const RESERVE: u64 = 256 * 1024;

/// One status write at a time in this process: the session and the
/// thread that notes a wait for the server both write, and two writes in
/// place at once would mix their bytes.
static WRITING: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Writes `status` into the state folder `state` atomically: a temporary
/// file in the same folder, with [`RESERVE`] bytes reserved past its end,
/// persisted (renamed) over the old one. Owner-only (0600; it holds the
/// user ID). Not fsynced: losing the latest status in a power cut is
/// harmless, the next change rewrites it.
///
/// When that fails (the disk is full: no room for a new file), the status
/// is written over the old file in place, into the space it holds and
/// reserved: a full disk is then shown by `status` instead of a frozen,
/// error-free state (outside tester breaker15 F4). Only what fits in that
/// space is written ([`fitted`]: the longest lists are shortened), so the
/// write never stops half way for want of a block (breaker27 F2: a status
/// cut at the file's last block read as "status.json is damaged" for as
/// long as the disk stayed full). A reader may still meet the write in
/// place half done, for the microseconds it takes; [`read`] reads again.
///
/// # Errors
/// The atomic write's error, when the write in place fails too.
pub fn write(state: &Path, status: &Status) -> io::Result<()> {
    let _one = WRITING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let bytes = encode(status)?;
    let replaced = (|| {
        let mut tmp = tempfile::Builder::new()
            .prefix(".status-")
            .tempfile_in(state)?;
        // Without its reserve the new file would free the old one's.
        reserve(tmp.as_file(), RESERVE.max(bytes.len() as u64 * 2))?;
        tmp.write_all(&bytes)?;
        tmp.persist(state.join(STATUS_FILE)).map_err(|e| e.error)?;
        Ok(())
    })();
    match replaced {
        Ok(()) => Ok(()),
        Err(e) => write_in_place(&state.join(STATUS_FILE), status).map_err(|_| e),
    }
}

/// The file's text for `status`: its JSON and a newline.
fn encode(status: &Status) -> io::Result<Vec<u8>> {
    let mut bytes = serde_json::to_vec(status).map_err(io::Error::other)?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// Reserves `len` bytes of disk for `file` past its end (its size stays).
/// A file system without `fallocate` does not reserve (not an error).
///
/// # Errors
/// The disk has not that much space (or another failure).
fn reserve(file: &fs::File, len: u64) -> io::Result<()> {
    let keep = rustix::fs::FallocateFlags::KEEP_SIZE;
    match rustix::fs::fallocate(file, keep, 0, len) {
        Ok(()) | Err(rustix::io::Errno::OPNOTSUPP) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The text of `status` in at most `room` bytes: whole when it fits,
/// else with its lists ("not synced", "held back", the rule errors) cut
/// to their first entries and one `… N more` line each, halved until it
/// fits. `None` when even the lists cut to nothing do not fit. Pure.
pub fn fitted(status: &Status, room: u64) -> Option<Vec<u8>> {
    let mut keep = [
        status.not_synced.len(),
        status.held_back.len(),
        status.rule_errors.len(),
    ]
    .into_iter()
    .max()
    .unwrap_or(0);
    loop {
        let mut cut = status.clone();
        for list in [
            &mut cut.not_synced,
            &mut cut.held_back,
            &mut cut.rule_errors,
        ] {
            if list.len() > keep {
                let more = list.len() - keep;
                list.truncate(keep);
                list.push(format!(
                    "… {more} more (the disk is full; the client's log names each)"
                ));
            }
        }
        let bytes = encode(&cut).ok()?;
        if bytes.len() as u64 <= room {
            return Some(bytes);
        }
        if keep == 0 {
            return None;
        }
        keep /= 2;
    }
}

/// Overwrites the existing file `path` with [`fitted`] `status`, in the
/// blocks it has (its length and the reserve past its end): padded with
/// spaces (JSON whitespace) to its old length when shorter, so a reader
/// never sees a tail of the old text. The file is never cut: cutting it,
/// even to its own length, frees the blocks reserved past its end (ext4
/// and tmpfs both do), and the next write in place then met the disk full
/// at the file's last block (breaker27 F2).
///
/// # Errors
/// Opening (it must exist) or writing it; `StorageFull` when not even the
/// shortened status fits (nothing is written then).
fn write_in_place(path: &Path, status: &Status) -> io::Result<()> {
    use std::os::unix::fs::{FileExt, MetadataExt};
    let file = fs::OpenOptions::new().write(true).open(path)?;
    let meta = file.metadata()?;
    let old = meta.len();
    let room = old.max(meta.blocks() * 512);
    let Some(mut padded) = fitted(status, room) else {
        return Err(io::Error::new(
            io::ErrorKind::StorageFull,
            "the status does not fit in the space its file holds",
        ));
    };
    if (padded.len() as u64) < old {
        // Spaces before the final newline, so the file still ends in one.
        padded.pop();
        padded.resize(old as usize - 1, b' ');
        padded.push(b'\n');
    }
    file.write_all_at(&padded, 0)
}

/// The status in the state folder `state`; `Ok(None)` when there is none
/// (no client ever ran here with this version). A file that does not parse
/// is read again a few times (10 ms apart) first: on a full disk the client
/// rewrites it in place, and a read may meet that write half done.
///
/// # Errors
/// [`StatusError`].
pub fn read(state: &Path) -> Result<Option<Status>, StatusError> {
    let mut tries = 0;
    loop {
        match read_once(state) {
            Err(StatusError::Malformed(_)) if tries < 5 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

/// One read of [`read`].
fn read_once(state: &Path) -> Result<Option<Status>, StatusError> {
    let bytes = match fs::read(state.join(STATUS_FILE)) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StatusError::Io(e)),
    };
    let status: Status =
        serde_json::from_slice(&bytes).map_err(|e| StatusError::Malformed(e.to_string()))?;
    if status.format != FORMAT {
        return Err(StatusError::Malformed(format!(
            "format {} (this client reads {FORMAT})",
            status.format
        )));
    }
    Ok(Some(status))
}

/// How long [`lock_running`] keeps trying while the lock is taken. A
/// `cloud-client status` ([`is_running`]) holds it shared for the few
/// microseconds of its probe; a running client holds it for its life.
const LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_millis(300);

/// Takes the "a client runs here" lock (held until the returned descriptor
/// is dropped, i.e. the process ends). `Ok(None)` when another process holds
/// it for longer than [`LOCK_PATIENCE`]: a status probe taken at the same
/// moment is waited out (CI of stop 38: a client started while a test
/// polled `status` as fast as it ran found the probe's shared lock and
/// exited "another cloud-client is already syncing").
///
/// # Errors
/// Creating or opening the lock file.
pub fn lock_running(state: &Path) -> io::Result<Option<OwnedFd>> {
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(state.join(RUNNING_FILE))?;
    let fd = OwnedFd::from(file);
    let deadline = std::time::Instant::now() + LOCK_PATIENCE;
    // Bounded: one try every 5 ms until the deadline.
    loop {
        match rustix::fs::flock(&fd, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok(Some(fd)),
            Err(rustix::io::Errno::WOULDBLOCK) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err(rustix::io::Errno::WOULDBLOCK) => return Ok(None),
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// True when a client holds the lock in the state folder `state` (it runs).
pub fn is_running(state: &Path) -> bool {
    let Ok(file) = fs::File::open(state.join(RUNNING_FILE)) else {
        return false;
    };
    let fd = OwnedFd::from(file);
    matches!(
        rustix::fs::flock(&fd, rustix::fs::FlockOperation::NonBlockingLockShared),
        Err(rustix::io::Errno::WOULDBLOCK)
    )
}

/// `when` as RFC 3339 UTC with seconds, e.g. `2026-12-01T03:30:00Z`.
pub fn rfc3339(when: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(when)
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// The time [`rfc3339`] wrote (any RFC 3339 form is read); `None` when
/// `text` is not one or is before the epoch.
pub fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    let at = chrono::DateTime::parse_from_rfc3339(text).ok()?;
    let secs = u64::try_from(at.timestamp()).ok()?;
    Some(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs))
}

/// True when `name` (one path component) is a conflict copy's name as
/// [`crate::protocol::conflict::conflict_path`] makes them:
/// `stem (conflict CLIENT YYYY-MM-DD HHMMSS[ N]).ext`, or the top-level
/// fallback `conflict CLIENT YYYY-MM-DD HHMMSS[ N][.ext]`.
pub fn is_conflict_name(name: &str) -> bool {
    if name.contains(" (conflict ") {
        return original_name(name).is_some();
    }
    if name.starts_with("conflict ") {
        // Fallback form: the tag runs to the extension (or the end).
        let tag = name.rfind('.').map_or(name, |dot| &name[..dot]);
        return is_conflict_tag(tag);
    }
    false
}

/// The name a conflict copy was made from (PROTOCOL.md §7.4):
/// `stem (conflict CLIENT YYYY-MM-DD HHMMSS[ N]).ext` → `stem.ext`; `None`
/// for any other name (the top-level fallback form included: it does not
/// keep the original). A stem the server shortened to fit 255 bytes gives
/// the shortened name.
pub fn original_name(name: &str) -> Option<String> {
    let start = name.find(" (conflict ")?;
    let rest = &name[start + 2..];
    let end = rest.find(')')?;
    is_conflict_tag(&rest[..end]).then(|| format!("{}{}", &name[..start], &rest[end + 1..]))
}

/// `conflict CLIENT YYYY-MM-DD HHMMSS[ N]`.
fn is_conflict_tag(tag: &str) -> bool {
    let parts: Vec<&str> = tag.split(' ').collect();
    let digits = |s: &str, n: Option<usize>| {
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && n.is_none_or(|n| s.len() == n)
    };
    let date = |s: &str| {
        let d: Vec<&str> = s.split('-').collect();
        d.len() == 3 && digits(d[0], Some(4)) && digits(d[1], Some(2)) && digits(d[2], Some(2))
    };
    matches!(parts.len(), 4 | 5)
        && parts[0] == "conflict"
        && digits(parts[1], None)
        && date(parts[2])
        && digits(parts[3], Some(6))
        && parts.get(4).is_none_or(|n| digits(n, None))
}

#[cfg(test)]
mod tests;
