//! Start-up: the folder's identity and index, the handshake (resume, join
//! or create a user), the watcher; then the loop in [`Session::run`]. The
//! empty-folder guard it applies first is [`super::emptied`].

use super::emptied::check_not_emptied;
use super::pull::PullState;
use super::push::PushState;
use super::{FirstRun, Outcome, Session};
use crate::client::applier::{removal_log, Applied, Applier};
use crate::client::connection::Connection;
use crate::client::error::ClientError;
use crate::client::index::Index;
use crate::client::origin;
use crate::client::pace::Pace;
use crate::client::scanner::Scanner;
use crate::client::schedule::Timers;
use crate::client::state::{Identity, StateDir};
use crate::client::status::heartbeat::Heartbeat;
use crate::client::status::RUNNING_FILE;
use crate::client::watcher::{canonical_root, FolderWatcher};
use crate::client::Config;
use crate::protocol::{HelloMode, KeyHello, KeyWelcome, Secret, UserId};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

/// How long a `--once` run keeps retrying a Resume refused `DeviceInUse`
/// (PROTOCOL.md) before it exits with the error: well past the
/// server's probe (at most 3.5 s, R-4.6.14), so only a device really in
/// use elsewhere ends a run.
pub const ONCE_IN_USE_WAIT: std::time::Duration = std::time::Duration::from_secs(15);

/// Runs the client until `shutdown` is set (or, with `once`, until both sides
/// agree). `on_new_user` receives the ID of a user this run created, once its
/// folder is uploaded.
///
/// Returns whether the folder agreed with the server when the run ended
/// ([`Outcome`]: what `--once`'s exit status says).
///
/// # Errors
/// Start-up failures (missing folder, unreachable server, refused ID,
/// damaged state) and the folder's safety stops while running.
pub fn run(
    config: &Config,
    shutdown: Arc<AtomicBool>,
    on_new_user: &mut dyn FnMut(UserId),
) -> Result<Outcome, ClientError> {
    if !config.folder.is_dir() {
        return Err(ClientError::MissingFolder(config.folder.clone()));
    }
    let root = canonical_root(&config.folder);
    // A folder inside another synced folder of the same user would copy the
    // tree into itself (breaker15 F5): refused before anything is sent or
    // made here (no state folder is created).
    let user = StateDir::existing(&root)
        .load_identity()
        .ok()
        .flatten()
        .map(|id| id.user)
        .or(config.user);
    if let Some(outer) = user.and_then(|user| crate::client::nesting::synced_ancestor(&root, user))
    {
        return Err(ClientError::NestedFolder {
            inner: root,
            outer,
            started_on_inner: true,
        });
    }
    let state = StateDir::open(&root)?;
    // One client per folder: two would overwrite each other's index and
    // status. The lock is an flock, so it dies with the process (also on
    // SIGKILL) and a restart after a crash takes it again.
    let running = match crate::client::status::lock_running(state.path()) {
        // The lock file names this process and beats for it from now on
        // ([`crate::client::status::heartbeat`]).
        Ok(Some(fd)) => Heartbeat::start(fd).map_err(|e| {
            ClientError::io(
                format!("cannot write {}", state.path().join(RUNNING_FILE).display()),
                e,
            )
        })?,
        // The other client's status file is its own: nothing is recorded.
        Ok(None) => return Err(ClientError::FolderInUse(root)),
        Err(e) => {
            return Err(ClientError::io(
                format!("cannot lock {}", state.path().display()),
                e,
            ))
        }
    };
    let result = run_in(config, root.clone(), state, running, shutdown, on_new_user);
    if let Err(e) = &result {
        // `cloud-client status` shows why the client stopped, after it stopped.
        let state = StateDir::existing(&root);
        match state.load_identity() {
            Ok(Some(identity)) => {
                super::status_notes::record_failure(state.path(), config, identity, &e.to_string());
            }
            // A first run (join or new user) that failed: no identity, but
            // `status` says "not joined" and why.
            Ok(None) => {
                super::status_notes::record_not_joined(state.path(), config, &e.to_string())
            }
            Err(_) => {}
        }
    }
    result
}

/// The folder's index, or, when the file is damaged (it does not parse:
/// truncated, emptied, garbage, or written by a newer client), an empty
/// one after the damaged file is renamed aside (breaker22 F5). The index
/// is a record of what was synced, not data: started without one, the
/// client compares the folder with the server as a device joining with
/// files does (§5.8, R-4.6.12's join): a file that differs is kept as a
/// conflict copy, nothing here is deleted or overwritten. A file it cannot
/// read for another reason (permissions, an I/O error) still stops it: that
/// is not damage, and renaming it would hide the cause.
///
/// # Errors
/// Reading the index other than damage; renaming the damaged file.
fn load_index(state: &StateDir) -> Result<Index, ClientError> {
    let file = state.index_file();
    let err = match Index::load(&file) {
        Ok(index) => return Ok(index),
        Err(e) if index_is_damaged(&e) => e,
        Err(e) => return Err(e),
    };
    let aside = set_aside(&file)?;
    let detail = match &err {
        ClientError::CorruptState { detail, .. } => detail.clone(),
        _ => "not text".to_owned(),
    };
    log::warn!(
        "the index {} is damaged ({detail}); kept as {}. The index is only this device's record of what was synced: \
         rebuilding it by comparing the folder with the server, as a device joining with \
         files does (files that differ are kept as conflict copies; nothing here is deleted \
         or overwritten; a file deleted here while the client was stopped comes back)",
        file.display(),
        aside.display()
    );
    Ok(Index::new())
}

/// Whether `e`, from [`Index::load`], says the file's content is damaged
/// (as opposed to a file that could not be read).
fn index_is_damaged(e: &ClientError) -> bool {
    match e {
        ClientError::CorruptState { .. } => true,
        ClientError::Io { cause, .. } => cause.kind() == std::io::ErrorKind::InvalidData,
        _ => false,
    }
}

/// Renames `file` to `FILE.damaged-UNIXSECS` (or `…-UNIXSECS-N` when that
/// is taken, N < 100): kept for a look, never deleted.
fn set_aside(file: &std::path::Path) -> Result<std::path::PathBuf, ClientError> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let name = |n: u32| {
        let mut name = file.as_os_str().to_owned();
        name.push(format!(".damaged-{secs}"));
        if n > 0 {
            name.push(format!("-{n}"));
        }
        std::path::PathBuf::from(name)
    };
    let aside = (0..100)
        .map(name)
        .find(|p| !p.exists())
        .unwrap_or_else(|| name(100));
    std::fs::rename(file, &aside)
        .map_err(|e| ClientError::io(format!("rename {} aside", file.display()), e))?;
    Ok(aside)
}

/// [`run`] once the state folder is open.
fn run_in(
    config: &Config,
    root: std::path::PathBuf,
    state: StateDir,
    running: Heartbeat,
    shutdown: Arc<AtomicBool>,
    on_new_user: &mut dyn FnMut(UserId),
) -> Result<Outcome, ClientError> {
    // What the user said to trust holds from now on, even if this run
    // never completes a handshake.
    crate::client::secure::record_given(state.path(), &config.security)?;
    let loaded = state.load_identity()?;
    // A copy of a synced folder (its identity made in another folder,
    // ) must not run as that device: it joins as a new one.
    let copy = match loaded {
        Some(id) => origin::check(state.path(), &root, id.client)?,
        None => None,
    };
    let mut index = match loaded {
        Some(_) => load_index(&state)?,
        None => Index::new(),
    };
    let rules = super::rules::adopt_rules(&root, &state, &mut index);
    let confirmed_empty = match check_not_emptied(&root, &index, rules.rules()) {
        Ok(()) => false,
        Err(ClientError::FolderEmptied { indexed_files, .. }) if config.confirm_empty => {
            log::warn!(
                "{} was emptied and --confirm-empty was given: deleting the {indexed_files} synced \
                 files gone from it on the server and the other devices (the server keeps them \
                 in versions)",
                root.display()
            );
            true
        }
        Err(e) => return Err(e),
    };
    let idents = crate::client::mounts::ident::load(state.path());
    // Whether a drive is an older state of the one synced is looked at
    // before anything here touches the folder (R-5.6.9, breaker20 F1: the
    // tidying of a staging directory left on an image of a drive made the
    // image's top newer than the records, and a file missing from it a
    // removal).
    let mut older = crate::client::mounts::Judge::new(&root, &index, &idents).older_now();
    if let Some(id) = loaded {
        // Local files a crash left in the temporary area go back first; the
        // full comparison below (`mark_all`) then pushes them.
        let tmp = state.tmp_dir();
        Applier::new(&root, &tmp, &mut index, id.client)
            .recover_leftovers(&mut Applied::default())?;
        // Files a crashed pull removed are not deletions made here
        // (R-5.2.18; breaker21 F1: they followed the server's moves), and
        // files it placed are not additions made here (R-5.2.21; breaker27
        // F0: another device's later deletion of them was undone).
        let log = removal_log::log_path(&tmp);
        let settled = removal_log::settle(&log, &root, &mut index);
        if let Some(first) = settled.dropped.first() {
            log::info!(
                "{} file(s) an interrupted pull had removed (the server removed or moved them), \
                 {first} the first: no longer recorded, not taken for deletions made here",
                settled.dropped.len()
            );
        }
        if let Some(first) = settled.placed.first() {
            log::info!(
                "{} file(s) an interrupted pull had placed, {first} the first: recorded as \
                 received, not taken for files added here",
                settled.placed.len()
            );
        }
        if settled != removal_log::Settled::default() {
            index.save(&state.index_file())?;
        }
        removal_log::clear(&log);
    }
    crate::client::spare::make(state.path());
    let (stored, hello) = match (&copy, loaded) {
        (Some(copy), Some(id)) => {
            log::warn!(
                "{} is a copy of the folder {} (it holds the identity of device {} of its user; \
                 the folder is not the one that identity was made in): it will not run as that \
                 device; joining as a new device (its files are compared with the server's, \
                 differences are kept as conflict copies, nothing is deleted)",
                root.display(),
                copy.original.display(),
                copy.device
            );
            // Everything it knew was the other device's: start as a join.
            index = Index::new();
            older.clear();
            (None, rejoin_hello(&id, config)?)
        }
        _ => (loaded, hello_for(loaded, config)?),
    };
    let heart = running.clone();
    let publisher = super::publish::Publisher::start(running, state.path());
    // A folder that has an identity keeps trying a server it cannot reach
    // (or that refuses it for a while, or does not know its user or this
    // device for now) at start-up, with the same backoff
    // as a lost connection; a first run (join or new user) and `--once`
    // stop with the error, except that every run waits out a user between
    // shards (`greet_retrying`, §16.2).
    let (conn, identity, start_error) = match (
        greet_retrying(
            config,
            &hello,
            stored,
            (&shutdown, &heart),
            // `status` says "connecting" from the first attempt on (live20).
            &|| stored.map(|id| super::status_notes::starting_note(state.path(), config, id)),
        ),
        stored,
    ) {
        (Ok(Some((conn, identity))), _) => (Some(conn), identity, None),
        (Ok(None), _) => return Ok(Outcome::NotInSync { left: 0 }),
        (Err(e), Some(id)) if !config.once && e.is_retryable_resume() => {
            if let ClientError::DeviceInUse { .. } = e {
                // Said loudly only if it lasts (`Session::connect_failed`).
                log::info!("the server still has a live connection of this device; retrying");
            } else if let ClientError::Refused { .. } | ClientError::UnknownDevice { .. } = e {
                // `Session::connect_failed` below says it, once.
            } else {
                log::warn!("{e}; retrying in the background");
            }
            (None, id, Some(e))
        }
        (Err(e), _) => return Err(copy_refused(e, copy, config, &root)),
    };
    if stored.is_none() {
        state.save_identity(&identity)?;
        origin::save(state.path(), &origin::here(&root, identity.client)?)?;
        index.set_cursor(0);
        index.set_checked(0, 0);
        index.save(&state.index_file())?;
    } else if stored != Some(identity) {
        // A folder synced before device keys just got its key.
        state.save_identity(&identity)?;
    }
    let watcher = if config.once {
        None
    } else {
        match FolderWatcher::start(&root, rules.rules()) {
            Ok(w) => {
                // Tests wait for this line before editing the folder.
                log::info!("watching {} for changes", root.display());
                Some(w)
            }
            Err(e) => {
                log::warn!("{e}; falling back to a full rescan at every pull");
                None
            }
        }
    };
    let now = Instant::now();
    let push = PushState {
        idents,
        older: older.into_iter().collect(),
        ..PushState::default()
    };
    let mut scanner = Scanner::new(&root);
    scanner.set_rules(rules.rules().clone());
    scanner.set_heartbeat(heart);
    scanner.set_user(identity.user);
    let mut session = Session {
        config,
        root: root.clone(),
        tmp: state.tmp_dir(),
        state,
        identity,
        index,
        scanner,
        rules,
        publisher,
        conn,
        in_use_refusals: 0,
        refusal_said: None,
        waiting_since: None,
        push,
        pull: PullState::new(),
        timers: Timers::new(now, config.pull_every),
        watcher,
        shutdown,
        stop_said: false,
        confirmed_empty,
        first_run: FirstRun {
            new_user: hello.mode == HelloMode::NewUser,
            first_sync: hello.mode != HelloMode::Resume,
        },
    };
    session.attach_watch();
    session.mark_all(Instant::now());
    if let Some(e) = start_error {
        session.connect_failed(&e);
        session.publish_status(true);
    }
    session.run(on_new_user)
}

/// The handshake this folder calls for (PROTOCOL.md §4.6): resume with
/// the device key it remembers (none yet: ask for one), join the given user
/// with its join code (if the operator made one), or create a user.
///
/// # Errors
/// [`ClientError::UserMismatch`] when the folder belongs to another user.
fn hello_for(stored: Option<Identity>, config: &Config) -> Result<KeyHello, ClientError> {
    let name = config.device_name.clone();
    Ok(match (stored, config.user) {
        (Some(id), Some(given)) if id.user != given => {
            return Err(ClientError::UserMismatch {
                stored: id.user.to_string(),
                given: given.to_string(),
            })
        }
        (Some(id), _) => resume_hello(&id, name),
        (None, Some(user)) => KeyHello {
            mode: HelloMode::NewClient,
            user_id: user,
            client_id: 0,
            secret: config.join_code.unwrap_or(Secret::NONE),
            name,
        },
        (None, None) => KeyHello {
            mode: HelloMode::NewUser,
            user_id: UserId::NONE,
            client_id: 0,
            secret: Secret::NONE,
            name,
        },
    })
}

/// The `KeyHello` of a copied folder: a join of the user its
/// identity names, with the join code given on the command line, if any.
///
/// # Errors
/// [`ClientError::UserMismatch`] when the command line names another user.
fn rejoin_hello(id: &Identity, config: &Config) -> Result<KeyHello, ClientError> {
    if let Some(given) = config.user.filter(|&given| given != id.user) {
        return Err(ClientError::UserMismatch {
            stored: id.user.to_string(),
            given: given.to_string(),
        });
    }
    Ok(KeyHello {
        mode: HelloMode::NewClient,
        user_id: id.user,
        client_id: 0,
        secret: config.join_code.unwrap_or(Secret::NONE),
        name: config.device_name.clone(),
    })
}

/// A copied folder whose join was refused for its secret (the user has a
/// join code) stops with one line naming the original and the command
/// that joins it; other errors are unchanged.
fn copy_refused(
    e: ClientError,
    copy: Option<origin::CopyOf>,
    config: &Config,
    root: &Path,
) -> ClientError {
    match (e, copy) {
        (ClientError::BadCredential { message, .. }, Some(copy)) => ClientError::CopiedFolder {
            folder: root.to_path_buf(),
            original: copy.original,
            device: copy.device,
            message,
            join: format!(
                "cloud-client {} {} {} {} USER_ID:JOIN_CODE",
                config.server.host(),
                config.server.port(),
                root.display(),
                config.pull_every.as_secs_f64()
            ),
        },
        (e, _) => e,
    }
}

/// The `KeyHello` of a device that comes back.
pub(super) fn resume_hello(id: &Identity, name: String) -> KeyHello {
    KeyHello {
        mode: HelloMode::Resume,
        user_id: id.user,
        client_id: id.client,
        secret: id.key.unwrap_or(Secret::NONE),
        name,
    }
}

/// a Welcome must name the user the Hello named (NewClient,
/// Resume) and, on Resume, this folder's device too.: a joining
/// device must be given a key.
///
/// # Errors
/// [`ClientError::Protocol`] saying which differs.
pub(super) fn check_welcome(hello: &KeyHello, welcome: &KeyWelcome) -> Result<(), ClientError> {
    if hello.mode != HelloMode::NewUser && welcome.user_id != hello.user_id {
        return Err(ClientError::Protocol("welcome names another user".into()));
    }
    if hello.mode == HelloMode::Resume && welcome.client_id != hello.client_id {
        return Err(ClientError::Protocol(format!(
            "welcome names device {} where this folder is device {}",
            welcome.client_id, hello.client_id
        )));
    }
    if hello.mode != HelloMode::Resume && welcome.device_key.is_none() {
        return Err(ClientError::Protocol(
            "the server gave this new device no key".into(),
        ));
    }
    Ok(())
}

/// The identity after a `KeyWelcome`: a new key replaces the old one; a
/// zero key keeps `previous`'s.
pub(super) fn identity_after(welcome: &KeyWelcome, previous: Option<Secret>) -> Identity {
    Identity {
        user: welcome.user_id,
        client: welcome.client_id,
        key: if welcome.device_key.is_none() {
            previous
        } else {
            Some(welcome.device_key)
        },
    }
}

/// [`greet`], again with growing waits (the reconnection backoff,
/// 0.5 s doubling to 30 s) while the server answers `WrongShard` or
/// `Moving` (PROTOCOL.md §16.2, R-16.2.3): the user is between shards and
/// will be served again; nothing in the folder is touched meanwhile. A
/// `--once` run also waits out `DeviceInUse`, for at most
/// [`ONCE_IN_USE_WAIT`]: a restart usually races its own old connection,
/// which the server frees within seconds; past that it stops with the
/// error (a running client retries in the background instead).
/// `Ok(None)` when `shutdown` is set while waiting.
///
/// # Errors
/// As [`greet`], for any other failure.
fn greet_retrying(
    config: &Config,
    hello: &KeyHello,
    stored: Option<Identity>,
    (shutdown, heart): (&Arc<AtomicBool>, &Heartbeat),
    note: &dyn Fn() -> Option<crate::client::pace::Note>,
) -> Result<Option<(Connection, Identity)>, ClientError> {
    use crate::client::schedule::{BACKOFF_MAX, BACKOFF_MIN};
    use crate::protocol::ErrorCode;
    use std::sync::atomic::Ordering;
    let mut wait = BACKOFF_MIN;
    let started = Instant::now();
    loop {
        // The attempt's waits beat and honour the stop (breaker19 G3, G6).
        let mut pace = Pace::new(Some(heart.clone()), Some(Arc::clone(shutdown)), note());
        match greet(config, hello, stored, &mut pace) {
            Err(ClientError::Stopping(what)) => {
                log::info!("stopping: asked to stop while {what}");
                return Ok(None);
            }
            Err(ClientError::Refused {
                code: code @ (ErrorCode::WrongShard | ErrorCode::Moving),
                message,
            }) => {
                log::warn!(
                    "the server refused for now ({code:?}: {message}); retrying in {:.1} s",
                    wait.as_secs_f64()
                );
            }
            Err(e @ ClientError::DeviceInUse { .. })
                if config.once && started.elapsed() + wait < ONCE_IN_USE_WAIT =>
            {
                log::info!("{e}; retrying in {:.1} s", wait.as_secs_f64());
            }
            other => return other.map(Some),
        }
        let until = Instant::now() + wait;
        while Instant::now() < until {
            if shutdown.load(Ordering::Relaxed) {
                return Ok(None);
            }
            heart.beat_if_due();
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        wait = (wait * 2).min(BACKOFF_MAX);
    }
}

/// Connects and shakes hands; says who we are now.
///
/// # Errors
/// `Unreachable`, `Refused`, or a `Welcome` for another user.
fn greet(
    config: &Config,
    hello: &KeyHello,
    stored: Option<Identity>,
    pace: &mut Pace,
) -> Result<(Connection, Identity), ClientError> {
    let user = (hello.mode != HelloMode::NewUser).then_some(hello.user_id);
    let mut conn = Connection::connect(&config.server, &config.dial(user), pace)?;
    let welcome = conn.handshake_key(hello.clone(), pace).map_err(|e| {
        e.for_folder(&config.folder, hello.client_id)
            .with_rejoin(crate::client::rejoin::command(config))
    })?;
    check_welcome(hello, &welcome)?;
    let identity = identity_after(&welcome, stored.and_then(|s| s.key));
    match hello.mode {
        // The user ID is a secret: printed once on stdout for its
        // owner by the binary, never written to the log.
        HelloMode::NewUser => log::info!("created a new user; uploading the folder"),
        HelloMode::NewClient => {
            log::info!("joined the user as device {}; downloading", identity.client)
        }
        HelloMode::Resume | HelloMode::Visit => log::info!(
            "resumed as device {} (server at {})",
            identity.client,
            welcome.head
        ),
    }
    Ok((conn, identity))
}
