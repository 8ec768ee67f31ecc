//! `cloud-client status FOLDER`: what the running client last reported
//! (`status.json`), whether it still runs (its lock), plus what the folder
//! holds now: conflict copies (listed) and ignored entries (counted). Reads
//! only; never connects and never touches the client's state.

use super::heartbeat::{judge, read_pulse, Liveness, Pulse};
use super::{is_conflict_name, is_running, read, Status, StatusError, RUNNING_FILE};
use crate::client::fsutil::{check_path, Local, Stat};
use crate::client::ignore::source::RuleSource;
use crate::client::index::{EntryKind, Index};
use crate::client::mounts::{dev_name, Judge, Parked, Why};
use crate::client::printable::{escape_controls, quote_path};
use crate::client::scanner::unsyncable;
use crate::client::state::StateDir;
use crate::protocol::limits::STATE_DIR_NAME;
use crate::protocol::WirePath;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Everything `status` shows; `--json` prints it as one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The folder asked about.
    pub folder: String,
    /// A client is running on the folder now.
    pub running: bool,
    /// The server (`IP:PORT`) of the last run, if a status was saved.
    pub server: Option<String>,
    /// The folder has an identity: a device of a user. False after a
    /// first run (join or new user) that failed: `last_error` says why,
    /// `device` is 0 and `user` the user it tried to join (empty for a new
    /// user).
    pub joined: bool,
    /// The user ID (32 hex characters).
    pub user: String,
    /// This device's client ID.
    pub device: u64,
    /// The running client is connected to the server.
    pub connected: bool,
    /// When the folder last agreed with the server, RFC 3339 UTC.
    pub last_sync: Option<String>,
    /// Local changes not yet acknowledged by the server.
    pub uploads_pending: u64,
    /// Files still to be downloaded by the current pull.
    pub downloads_pending: u64,
    /// Files whose executable bit differs from the one this device last
    /// agreed with the server on (its index): a chmod not yet sent, or a
    /// bit the client has yet to apply (PROTOCOL.md §15).
    pub modes_pending: u64,
    /// Conflict copies in the folder now (paths, sorted).
    pub conflicts: Vec<String>,
    /// Entries the rules leave out (an ignored directory counts once).
    pub ignored: u64,
    /// Entries in the folder now that cannot be synced, each as
    /// `PATH (why)`: names the protocol cannot carry (not UTF-8, shown
    /// with replacement characters; a backslash, a control character, too
    /// long: PROTOCOL.md §6), symlinks and special files. A directory
    /// counts once, its contents not at all. Then the server's files this
    /// device does not place because a directory it keeps out of sync (an
    /// ignored one) is in their way (PROTOCOL.md ): while there is
    /// one, the folder is not in sync. Then what the running client
    /// reported it cannot sync ([`Status::not_synced`]: files it may not
    /// read, paths too long here, server changes it could not apply): while
    /// there is one, the folder is not in sync either.
    pub not_synced: Vec<String>,
    /// The last error the client reported.
    pub last_error: Option<String>,
    /// Problems with `.cloudignore`.
    pub rule_errors: Vec<String>,
    /// The running client has not caught up since it started (its first
    /// pull and its first comparison of the folder are not done):
    /// [`Status::caught_up`], or it has not written its own status yet
    /// (the file is the previous run's: [`Status::pid`]). Not in sync
    /// meanwhile.
    pub starting: bool,
    /// Work the running client knows of and has not finished that the
    /// counts do not show ([`Status::pending`]): a removal held back until
    /// it stops growing, the server's changes being pulled or applied, a
    /// comparison of the whole folder after lost events. Not in sync
    /// meanwhile. `None` when there is none.
    pub pending: Option<String>,
    /// The running client's process ID, as it wrote it into its lock file
    /// (`None` when no client runs, or one older than the heartbeat does).
    pub pid: Option<u32>,
    /// A client holds the lock but has given no sign of life (its
    /// heartbeat, [`super::heartbeat`]) for this many seconds, more than
    /// [`super::heartbeat::SILENT_AFTER`]: frozen, hung or starved. Its
    /// status file is then not trusted: not connected, not in sync, exit
    /// status 3. `None` otherwise.
    pub not_responding_for: Option<u64>,
    /// Running, responding, connected, nothing pending, no error: the exit
    /// status is 0.
    pub in_sync: bool,
}

/// The exit status `cloud-client status` gives for `r`: 0 in sync, 3 a
/// client holds the lock but does not respond, 1 any other "not in sync".
/// (2, "cannot tell", is for a report that could not be made.)
pub fn exit_code(r: &Report) -> u8 {
    match (r.in_sync, r.not_responding_for) {
        (true, _) => 0,
        (false, Some(_)) => 3,
        (false, None) => 1,
    }
}

/// Why there is no report.
#[derive(Debug)]
pub enum ReportError {
    /// The folder does not exist (or is not a directory).
    MissingFolder(PathBuf),
    /// The folder was never synced (no identity in `.cloudservice/`, and
    /// no failed first run recorded there).
    NotSynced(PathBuf),
    /// The identity or the status file could not be read.
    State(String),
}

impl std::fmt::Display for ReportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReportError::MissingFolder(p) => write!(f, "no folder {}", p.display()),
            ReportError::NotSynced(p) => write!(
                f,
                "{} is not a synced folder (no {STATE_DIR_NAME}/identity)",
                p.display()
            ),
            ReportError::State(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for ReportError {}

impl From<StatusError> for ReportError {
    fn from(e: StatusError) -> Self {
        ReportError::State(e.to_string())
    }
}

/// True when the folder is in sync: a client runs, is connected, has agreed
/// with the server at least once, and has nothing pending, no error and
/// nothing it found it cannot sync (an unreadable file, a path too long
/// here, a server change it could not apply). Conflict copies do not count
/// against it: they are synced files.
pub fn in_sync(running: bool, status: Option<&Status>) -> bool {
    running && status.is_some_and(|s| s.last_sync.is_some() && super::agrees(s))
}

/// True when the status file `s` was not written by the running client
/// whose lock file holds `pulse`: it is the previous run's (a client
/// just started and has not written its own yet), so what it says is not
/// this run's. A lock file with no process ID (a client older than the
/// heartbeat), or a status file with none (written by a client older than
/// this check, which may be the one running), proves nothing either way.
pub fn written_before_start(pulse: Option<Pulse>, s: Option<&Status>) -> bool {
    match (pulse, s.and_then(|s| s.pid)) {
        (Some(pulse), Some(pid)) => pid != pulse.pid,
        _ => false,
    }
}

/// Checks that `folder` is a folder this device joined (it holds an
/// identity): what `versions` and `restore` need before they connect as
/// its device.
///
/// # Errors
/// [`ReportError::MissingFolder`], [`ReportError::NotSynced`] (naming the
/// folder), [`ReportError::State`] when the identity cannot be read.
pub fn joined(folder: &Path) -> Result<(), ReportError> {
    if !folder.is_dir() {
        return Err(ReportError::MissingFolder(folder.to_path_buf()));
    }
    match StateDir::existing(folder).load_identity() {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(ReportError::NotSynced(folder.to_path_buf())),
        Err(e) => Err(ReportError::State(e.to_string())),
    }
}

/// Builds the report for `folder`.
///
/// # Errors
/// [`ReportError`].
pub fn gather(folder: &Path) -> Result<Report, ReportError> {
    if !folder.is_dir() {
        return Err(ReportError::MissingFolder(folder.to_path_buf()));
    }
    let state = StateDir::existing(folder);
    let identity = state
        .load_identity()
        .map_err(|e| ReportError::State(e.to_string()))?;
    let running = is_running(state.path());
    let pulse = running
        .then(|| read_pulse(&state.path().join(RUNNING_FILE)))
        .flatten();
    let not_responding_for = match judge(pulse, SystemTime::now()) {
        Liveness::Silent { for_secs } if running => Some(for_secs),
        _ => None,
    };
    let status = read(state.path())?;
    let Some(identity) = identity else {
        return match status {
            Some(s) => Ok(not_joined(folder, running, (pulse, not_responding_for), s)),
            None => Err(ReportError::NotSynced(folder.to_path_buf())),
        };
    };
    let rules = RuleSource::load(folder);
    // A missing or unreadable index counts nothing: the client's own
    // status then says what is wrong.
    let index = Index::load(&state.index_file()).ok();
    let mut seen = look(folder, &rules, index.as_ref());
    let held_back = index.as_ref().map_or(0, |index| {
        let before = seen.not_synced.len();
        seen.not_synced.extend(
            index
                .held_back()
                .map(|(path, _)| format!("{path} ({})", held_back_why(folder, path))),
        );
        seen.not_synced.len() - before
    });
    // Files gone with the file system mounted above them: their
    // deletions wait until it is back.
    let gone_mounts = index.as_ref().map_or(0, |index| {
        let idents = crate::client::mounts::ident::load(StateDir::existing(folder).path());
        let gone = Judge::new(folder, index, &idents).gone_mounts();
        // One line per mount point and what happened there, however many
        // devices its files were recorded on.
        let mut lines: BTreeMap<(WirePath, Why), (Parked, usize)> = BTreeMap::new();
        for (parked, files) in &gone {
            lines
                .entry((parked.point.clone(), parked.why))
                .or_insert((parked.clone(), 0))
                .1 += files;
        }
        for (parked, files) in lines.values() {
            let point = &parked.point;
            let (now, was) = (dev_name(parked.now), dev_name(parked.was));
            seen.not_synced.push(match parked.why {
                Why::Other if parked.now == parked.was => format!(
                    "{point} (another file system is mounted here (device {now} again, another file system ID): {files} synced file(s) it lacks kept on the server, deletions not synced, to be downloaded onto it)"
                ),
                Why::Other => format!(
                    "{point} (another file system is mounted here (device {now}, was {was}): {files} synced file(s) it lacks kept on the server, deletions not synced, to be downloaded onto it)"
                ),
                Why::Older => format!(
                    "{point} (an older state than the synced files is here: {files} synced file(s) it lacks kept on the server, deletions not synced, to be downloaded onto it)"
                ),
                Why::Gone => format!(
                    "{point} (the file system mounted here is gone: {files} synced file(s) below it kept, deletions not synced until it is back)"
                ),
            });
        }
        lines.len()
    });
    let s = status.as_ref();
    let stale = running && written_before_start(pulse, s);
    // What the client found it cannot sync (only it can tell: what it may
    // not read, a path too long with the folder's in front, a server
    // change it could not apply), after what this walk sees.
    if let Some(s) = s {
        for entry in &s.not_synced {
            if !seen.not_synced.contains(entry) {
                seen.not_synced.push(entry.clone());
            }
        }
    }
    // what the client holds back for lack of space.
    let held_for_space = s.map_or(0, |s| s.held_back.len());
    seen.not_synced
        .extend(s.into_iter().flat_map(|s| s.held_back.iter().cloned()));
    let nothing_unsyncable = seen.not_synced.is_empty();
    Ok(Report {
        folder: folder.display().to_string(),
        running,
        joined: true,
        server: s.map(|s| s.server.clone()),
        user: identity.user.to_string(),
        device: identity.client,
        connected: running
            && !stale
            && not_responding_for.is_none()
            && s.is_some_and(|s| s.connected),
        last_sync: s.and_then(|s| s.last_sync.clone()),
        uploads_pending: s.map_or(0, |s| s.uploads_pending),
        downloads_pending: s.map_or(0, |s| s.downloads_pending),
        modes_pending: seen.modes_pending,
        conflicts: seen.conflicts,
        ignored: seen.ignored,
        not_synced: seen.not_synced,
        last_error: s.and_then(|s| s.last_error.clone()),
        rule_errors: rules.errors().iter().map(ToString::to_string).collect(),
        starting: running && (stale || s.is_some_and(|s| s.caught_up == Some(false))),
        pending: s
            .and_then(|s| s.pending.clone())
            .filter(|_| running && !stale),
        pid: pulse.map(|p| p.pid),
        not_responding_for,
        // Every entry listed under "not synced" keeps the folder out of
        // sync, what this walk found (a path too deep, a name the protocol
        // cannot carry, a symlink, a FIFO) as much as what the client
        // found: README "Status" ("the folder is then not in sync"), what `--once`
        // exits 3 for (breaker22 F4: a running client said "in sync" over
        // such a list while `--once` on the same folder said not).
        in_sync: in_sync(running, s)
            && !stale
            && not_responding_for.is_none()
            && seen.modes_pending == 0
            && held_back == 0
            && held_for_space == 0
            && gone_mounts == 0
            && nothing_unsyncable,
    })
}

/// The report for a folder whose first run (join or new user) failed:
/// what that run left in the status file `s`, never in sync.
fn not_joined(
    folder: &Path,
    running: bool,
    (pulse, not_responding_for): (Option<Pulse>, Option<u64>),
    s: Status,
) -> Report {
    Report {
        folder: folder.display().to_string(),
        running,
        joined: false,
        server: Some(s.server),
        user: s.user,
        device: 0,
        connected: false,
        last_sync: None,
        uploads_pending: 0,
        downloads_pending: 0,
        modes_pending: 0,
        conflicts: Vec::new(),
        ignored: 0,
        not_synced: Vec::new(),
        last_error: s.last_error,
        rule_errors: s.rule_errors,
        starting: false,
        pending: None,
        pid: pulse.map(|p| p.pid),
        not_responding_for,
        in_sync: false,
    }
}

/// How many entries `status` lists as not synced from a walk of the
/// folder alone: names the protocol cannot carry (a path too deep),
/// symlinks, special files ([`look`]), and mount points gone with synced
/// files below them. The running client's own findings (its
/// status file, the index's held-back files) are not counted here. Used by
/// a client as it stops, so that `--once` exits 0 and "last sync" moves
/// only when `status` would say "in sync" (breaker15 F10).
pub fn walk_not_synced(folder: &Path, rules: &RuleSource, index: &Index) -> usize {
    let seen = look(folder, rules, Some(index));
    let idents = crate::client::mounts::ident::load(StateDir::existing(folder).path());
    seen.not_synced.len() + Judge::new(folder, index, &idents).gone_mounts().len()
}

/// What [`look`] finds in the folder.
#[derive(Debug, Default)]
struct Seen {
    conflicts: Vec<String>,
    ignored: u64,
    modes_pending: u64,
    not_synced: Vec<String>,
}

/// Walks the folder: conflict copies (sorted paths), how many entries the
/// rules leave out (an ignored directory counts once, its contents not at
/// all), what cannot be synced (as the client's scanner skips it) and how
/// many indexed files have another executable bit than `index` records.
/// Unreadable entries are passed over, as the client does.
fn look(folder: &Path, rules: &RuleSource, index: Option<&Index>) -> Seen {
    let mut seen = Seen::default();
    let mut walk = walkdir::WalkDir::new(folder)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter();
    while let Some(item) = walk.next() {
        let Ok(item) = item else { continue };
        let Ok(rel) = item.path().strip_prefix(folder) else {
            continue;
        };
        let is_dir = item.file_type().is_dir();
        if rel.as_os_str().is_empty() {
            continue;
        }
        if rel.as_os_str() == STATE_DIR_NAME {
            walk.skip_current_dir();
            continue;
        }
        // In the client's order and words ([`unsyncable`]): a name the
        // protocol cannot carry, then the rules, then the kind of entry,
        // so that what the running client lists reads the same, once.
        if let Some(why) = unsyncable::name_why(rel) {
            seen.not_synced
                .push(format!("{} ({why})", unsyncable::shown(rel)));
            if is_dir {
                walk.skip_current_dir();
            }
            continue;
        }
        let Some(rel) = rel.to_str() else { continue };
        if rules.rules().ignores(rel, is_dir) {
            seen.ignored += 1;
            if is_dir {
                walk.skip_current_dir();
            }
            continue;
        }
        if let Some(why) = unsyncable::kind_why(item.file_type()) {
            seen.not_synced.push(format!("{rel} ({why})"));
            continue;
        }
        if !is_dir && bit_differs(index, rel, &item) {
            seen.modes_pending += 1;
        }
        let name = rel.rsplit('/').next().unwrap_or(rel);
        if is_conflict_name(name) {
            seen.conflicts.push(rel.to_owned());
        }
    }
    seen
}

/// True when the regular file `item` at `rel` is indexed with another
/// executable bit than it has now.
fn bit_differs(index: Option<&Index>, rel: &str, item: &walkdir::DirEntry) -> bool {
    let Some(entry) = WirePath::new(rel)
        .ok()
        .and_then(|p| index?.get(&p).copied())
    else {
        return false;
    };
    let (EntryKind::File { stat, .. }, Ok(meta)) = (entry.kind, item.metadata()) else {
        return false;
    };
    Stat::of(&meta).exec != stat.exec
}

/// The report for people, one fact per line.
pub fn render(r: &Report) -> String {
    let mut out = String::new();
    let silent;
    let pending;
    let state = match (r.in_sync, r.running, r.connected) {
        _ if r.not_responding_for.is_some() => {
            silent = not_responding(r);
            &silent
        }
        _ if !r.joined => {
            "not joined (the first run did not reach the server or was refused; see last error)"
        }
        (true, _, _) => "in sync",
        (false, false, _) => "not in sync (no client is running on this folder)",
        // A connection attempt under way says so, with how long it has
        // waited (breaker19 G3: [`crate::client::pace`]).
        (false, true, false)
            if r.pending
                .as_ref()
                .is_some_and(|p| p.starts_with(super::CONNECTING_TO_SERVER)) =>
        {
            pending = format!(
                "not in sync (not connected to the server; {})",
                escape_controls(r.pending.as_deref().unwrap_or_default())
            );
            &pending
        }
        (false, true, false) => "not in sync (not connected to the server)",
        (false, true, true)
            if r.starting
                && !r
                    .pending
                    .as_ref()
                    .is_some_and(|p| p.starts_with(super::WAITING_FOR_SERVER)) =>
        {
            "not in sync (starting: comparing the folder with the server)"
        }
        (false, true, true) => match &r.pending {
            Some(why) => {
                pending = format!("not in sync ({})", escape_controls(why));
                &pending
            }
            None if !r.not_synced.is_empty() => {
                pending = format!(
                    "not in sync ({} listed under not synced below)",
                    entries(r.not_synced.len())
                );
                &pending
            }
            None => "not in sync",
        },
    };
    let none = "-".to_owned();
    let _ = writeln!(out, "folder:        {}", quote_path(&r.folder));
    let _ = writeln!(out, "state:         {state}");
    if let Some(pid) = r.pid {
        let _ = writeln!(out, "process:       {pid}");
    }
    let _ = writeln!(out, "server:        {}", r.server.as_ref().unwrap_or(&none));
    let user = if r.user.is_empty() { "-" } else { &r.user };
    let _ = writeln!(out, "user:          {user}");
    let _ = writeln!(out, "device:        {}", r.device);
    let connected = if r.connected { "yes" } else { "no" };
    let _ = writeln!(out, "connected:     {connected}");
    let _ = writeln!(
        out,
        "last sync:     {}",
        r.last_sync.as_ref().unwrap_or(&none)
    );
    let _ = writeln!(out, "to upload:     {}", r.uploads_pending);
    let _ = writeln!(out, "to download:   {}", r.downloads_pending);
    if r.modes_pending > 0 {
        let _ = writeln!(out, "modes to sync: {}", r.modes_pending);
    }
    let _ = writeln!(out, "ignored:       {}", r.ignored);
    let _ = writeln!(out, "not synced:    {}", r.not_synced.len());
    for n in &r.not_synced {
        let _ = writeln!(out, "  {}", escape_controls(n));
    }
    let _ = writeln!(out, "conflicts:     {}", r.conflicts.len());
    for c in &r.conflicts {
        let _ = writeln!(out, "  {}", quote_path(c));
    }
    let _ = writeln!(
        out,
        "last error:    {}",
        escape_controls(r.last_error.as_ref().unwrap_or(&none))
    );
    for e in &r.rule_errors {
        let _ = writeln!(out, "rules:         {}", escape_controls(e));
    }
    out
}

/// `1 entry`, `3 entries`.
fn entries(n: usize) -> String {
    if n == 1 {
        "1 entry".to_owned()
    } else {
        format!("{n} entries")
    }
}

/// The state line of a client that holds the lock and does not respond.
fn not_responding(r: &Report) -> String {
    let secs = r.not_responding_for.unwrap_or_default();
    let pid = r
        .pid
        .map_or_else(|| "the client".to_owned(), |p| format!("process {p}"));
    format!(
        "not responding (no sign of life from {pid} for {secs} s: it holds the folder's lock \
         but does not advance — stopped, hung or starved; what it last reported is not trusted)"
    )
}

/// Why the server's entry at `path` is held back, from
/// what is in its way in `folder` now.
fn held_back_why(folder: &Path, path: &WirePath) -> &'static str {
    match check_path(folder, path) {
        Ok(Local::Foreign) => "the server's entry; a symlink or special file is in the way here",
        Ok(Local::Dir) => "the server's file; an ignored directory is in the way here",
        _ => "the server's entry; the way is free: it comes with the next pull",
    }
}
