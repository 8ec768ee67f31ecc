//! Why the client stopped or refused to start: one enum with exact causes.

use crate::protocol::{ErrorCode, FrameError, PathError};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// The step of a connection at which [`ClientError::TimedOut`] waited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waited {
    /// The TCP connect (`CONNECT_TIMEOUT`).
    Connect,
    /// The TLS handshake: the connection was accepted but the server sent
    /// nothing back, or stopped part-way (`HANDSHAKE_TIMEOUT`).
    TlsHandshake,
    /// The server's answer to the Hello (`HANDSHAKE_TIMEOUT`).
    HelloAnswer,
}

/// Whether an I/O error is a socket timeout: `WouldBlock` (EAGAIN, what a
/// blocking socket's SO_RCVTIMEO/SO_SNDTIMEO gives on Linux) or `TimedOut`.
pub fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Every way a client run can fail. Start-up variants end the process with a
/// one-line message; once running, only the safety variants do (a lost server
/// is retried instead).
#[derive(Debug)]
pub enum ClientError {
    /// The synced folder does not exist or is not a directory.
    MissingFolder(PathBuf),
    /// The folder vanished while the client was running (unmounted, deleted).
    FolderVanished(PathBuf),
    /// The folder is empty, or holds only top-level dot-names (what
    /// `rm -rf folder/*` leaves), but the index lists many files gone from
    /// it: refusing to push a mass deletion (it is far more likely an
    /// unmounted drive or a glob than a wish). PROTOCOL.md.
    FolderEmptied {
        /// The folder.
        folder: PathBuf,
        /// Synced files gone from it (all of them for an empty folder).
        indexed_files: usize,
        /// The top-level dot-names still there; empty for an empty folder.
        left: Vec<String>,
    },
    /// Another folder stands at the folder's path than the one the client
    /// started on (moved or renamed away, a new one made at its name): the
    /// client stops, sending nothing more.
    FolderReplaced(PathBuf),
    /// Two folders one inside the other synced as devices of one user
    /// ([`crate::client::nesting`]): refused before anything is sent.
    NestedFolder {
        /// The folder inside.
        inner: PathBuf,
        /// The folder around it.
        outer: PathBuf,
        /// Whether `inner` is the folder this client was started on (else
        /// `outer` is, and a client runs on `inner`).
        started_on_inner: bool,
    },
    /// The state folder (`.cloudservice`) was removed while the client ran:
    /// taken as the user detaching the folder on purpose. The client stops at
    /// once, sending nothing more (in particular no deletion).
    Detached {
        /// The folder.
        folder: PathBuf,
        /// The command line that attaches it again (as another device of
        /// the same user; nothing on either side is lost).
        reattach: String,
    },
    /// The server could not be reached at start-up.
    Unreachable {
        /// `ip:port`.
        address: String,
        /// What the connect said.
        cause: io::Error,
    },
    /// The server was silent past a limit at one step of a connection
    /// (retried like a lost connection once running): said in words with
    /// the address and the limit, never as the OS's "Resource temporarily
    /// unavailable" (EAGAIN) a socket timeout gives.
    TimedOut {
        /// The step that waited.
        during: Waited,
        /// `host:port`.
        address: String,
        /// The limit that passed.
        after: std::time::Duration,
    },
    /// The server refused the handshake (unknown user or client, busy, …).
    Refused {
        /// The server's error code.
        code: ErrorCode,
        /// The server's message.
        message: String,
    },
    /// The server refused one request on an open connection (a `versions`
    /// listing or a restore), not the connection itself.
    RequestRefused {
        /// The server's error code.
        code: ErrorCode,
        /// The server's message.
        message: String,
    },
    /// Another cloud-client holds this folder's lock
    /// (`FOLDER/.cloudservice/running`): two clients on one folder would
    /// overwrite each other's index, so the second refuses to start.
    FolderInUse(PathBuf),
    /// The operator revoked this device (PROTOCOL.md §4.6): the client
    /// stops and changes nothing in the folder.
    Revoked {
        /// The folder.
        folder: PathBuf,
        /// This device's ID.
        device: u64,
    },
    /// The server does not know this device (Error `UnknownClient` to a
    /// Resume of a folder that joined): most likely its data directory was
    /// restored from a backup made before this device joined. Retried like
    /// `UnknownUser`: the newer data may come back; nothing in
    /// the folder changes for it.
    UnknownDevice {
        /// The folder.
        folder: PathBuf,
        /// This device's ID.
        device: u64,
        /// The command that joins the folder again (user ID left out: it
        /// is a secret, R-2.2.3), when the caller knows the server.
        rejoin: Option<String>,
    },
    /// The server refused this device's Resume because the device already
    /// has a live connection (Error `DeviceInUse`, PROTOCOL.md ):
    /// usually a restart racing its own old connection, otherwise another
    /// copy of the folder (a cloned machine) running as this device.
    /// Retried with growing waits; nothing in the folder changes for it.
    DeviceInUse {
        /// The folder.
        folder: PathBuf,
        /// This device's ID.
        device: u64,
        /// The server's message (where the other connection comes from).
        message: String,
    },
    /// The server refused this device's key or the join code (§4.6).
    BadCredential {
        /// The folder.
        folder: PathBuf,
        /// The server's message.
        message: String,
    },
    /// The folder is a copy of a synced folder (PROTOCOL.md) and
    /// joining it as a new device was refused (the user has a join code):
    /// it does not run as the device whose identity it holds.
    CopiedFolder {
        /// The copy.
        folder: PathBuf,
        /// The folder the identity was made in.
        original: PathBuf,
        /// The device whose identity the copy holds.
        device: u64,
        /// The server's message.
        message: String,
        /// The command line that joins it as a new device.
        join: String,
    },
    /// `versions` or `restore` on a copy of a synced folder that has not
    /// joined as its own device yet.
    CopyNotJoined {
        /// The copy.
        folder: PathBuf,
        /// The folder the identity was made in.
        original: PathBuf,
        /// The device whose identity the copy holds.
        device: u64,
    },
    /// The folder already belongs to another user than the one asked for.
    UserMismatch {
        /// The user remembered in the folder's state.
        stored: String,
        /// The user given on the command line.
        given: String,
    },
    /// The identity file does not read as one (breaker22 F5). It holds
    /// the user ID, this device's number and its device key, which neither
    /// the folder nor the server can give back, so the client stops and
    /// names the file and the way out (README "Damaged state files").
    DamagedIdentity {
        /// `FOLDER/.cloudservice/identity`.
        file: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// The state folder holds something this version cannot read.
    CorruptState {
        /// Which file.
        file: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// The server broke the protocol (bad frame, unexpected reply).
    Protocol(String),
    /// A `ChunkData` of a delta download has the listed length but not the
    /// listed BLAKE3 (PROTOCOL.md ): the server's copy is damaged
    /// (the server need not re-hash a settled file, R-13.4.2) or it lies.
    /// The chunk is not used and the download fails as one answered Error
    /// `Storage`; the connection stays.
    DamagedChunk(String),
    /// The connection failed or closed.
    ConnectionLost(String),
    /// A frame could not be decoded.
    Frame(FrameError),
    /// A path is not acceptable (from the server, or a local name).
    BadPath(PathError),
    /// A local path would be reached through a symlink or a non-directory.
    UnsafePath(String),
    /// A local file operation failed.
    Io {
        /// What the client was doing.
        context: String,
        /// The cause.
        cause: io::Error,
    },
    /// The file system watcher could not be started.
    Watch(String),
    /// The server's certificate failed the folder's trust (changed since
    /// first use, not the pinned one, not signed by `--ca`): never retried.
    Untrusted(crate::tls::trust::TrustFailure),
    /// One end speaks TLS and the other plaintext (`--insecure-plaintext`
    /// on one side only).
    TransportMismatch(String),
    /// TLS settings that cannot be used (a `--ca` file, a server name).
    Tls(String),
    /// A stop was asked for (SIGTERM, Ctrl-C) during a wait on the network
    /// that keeps the session loop from turning (a blocked send, a connect,
    /// a handshake): the wait ends at once and the run stops; what was in
    /// flight is planned again at the next run. Holds what was interrupted.
    Stopping(String),
}

impl ClientError {
    /// Wraps an I/O error with what the client was doing.
    pub fn io(context: impl Into<String>, cause: io::Error) -> ClientError {
        ClientError::Io {
            context: context.into(),
            cause,
        }
    }

    /// A refusal as the user should read it: `Revoked` and `BadCredential`
    /// name the folder and what to do; others are unchanged.
    pub fn for_folder(self, folder: &std::path::Path, device: u64) -> ClientError {
        match self {
            ClientError::Refused {
                code: ErrorCode::Revoked,
                ..
            } => ClientError::Revoked {
                folder: folder.to_path_buf(),
                device,
            },
            ClientError::Refused {
                code: ErrorCode::BadCredential,
                message,
            } => ClientError::BadCredential {
                folder: folder.to_path_buf(),
                message,
            },
            ClientError::Refused {
                code: ErrorCode::UnknownClient,
                ..
            } => ClientError::UnknownDevice {
                folder: folder.to_path_buf(),
                device,
                rejoin: None,
            },
            ClientError::Refused {
                code: ErrorCode::DeviceInUse,
                message,
            } => ClientError::DeviceInUse {
                folder: folder.to_path_buf(),
                device,
                message,
            },
            other => other,
        }
    }

    /// Whether a failed attempt to connect and shake hands is worth
    /// retrying with the reconnection backoff (PROTOCOL.md ): the
    /// server unreachable, the connection lost, a garbled reply, or a
    /// refusal whose code is retryable (`Busy`, `ShuttingDown`,
    /// `TooManyAttempts`, a code this client does not know…). Not a refusal
    /// that needs a person (unknown user, revoked, bad credential), nor a
    /// certificate or transport mismatch, nor unusable TLS settings.
    /// Used both at start-up of a folder that has an identity and on every
    /// reconnection.
    pub fn is_retryable_connect(&self) -> bool {
        match self {
            ClientError::Refused { code, .. } => code.is_retryable(),
            ClientError::DeviceInUse { .. }
            | ClientError::Unreachable { .. }
            | ClientError::TimedOut { .. }
            | ClientError::ConnectionLost(_)
            | ClientError::Protocol(_)
            | ClientError::DamagedChunk(_)
            | ClientError::Frame(_) => true,
            _ => false,
        }
    }

    /// Whether a failed attempt to resume a device that has joined (its
    /// folder holds its identity: the user ID and its device key) is worth
    /// retrying (PROTOCOL.md ): as [`ClientError::is_retryable_connect`],
    /// and also `UnknownUser`. A server that does not know a user one of
    /// its devices has synced with is most likely the wrong one for now (started on a
    /// wrong or empty data directory, a wrong shard behind a load balancer,
    /// a backup being restored), not a wrong ID: the ID was right when it
    /// joined. So is `UnknownClient` ([`ClientError::is_unknown_device`]).
    /// `Revoked` and `BadCredential` still stop.
    pub fn is_retryable_resume(&self) -> bool {
        self.is_retryable_connect() || self.is_unknown_user() || self.is_unknown_device()
    }

    /// The server does not know this joined device (`UnknownClient`,
    /// retried like `UnknownUser`, because the likely cause is
    /// the same, a server whose data is older than this device (a backup
    /// restored, a wrong data directory), which its operator may put right.
    pub fn is_unknown_device(&self) -> bool {
        matches!(
            self,
            ClientError::UnknownDevice { .. }
                | ClientError::Refused {
                    code: ErrorCode::UnknownClient,
                    ..
                }
        )
    }

    /// Names the command that joins the folder again (`rejoin`, see
    /// [`super::rejoin::command`]) in an [`ClientError::UnknownDevice`].
    pub fn with_rejoin(self, rejoin: String) -> ClientError {
        match self {
            ClientError::UnknownDevice { folder, device, .. } => ClientError::UnknownDevice {
                folder,
                device,
                rejoin: Some(rejoin),
            },
            other => other,
        }
    }

    /// The server answered `UnknownUser`.
    pub fn is_unknown_user(&self) -> bool {
        matches!(
            self,
            ClientError::Refused {
                code: ErrorCode::UnknownUser,
                ..
            }
        )
    }

    /// True for errors that end the run even after start-up: the folder's
    /// safety checks and broken local state. Connection trouble is retried,
    /// and so is a full disk ([`ClientError::is_no_space`]): the user frees
    /// space, and the client must still be running then.
    pub fn is_fatal_while_running(&self) -> bool {
        !(self.is_no_space()
            || matches!(
                self,
                ClientError::ConnectionLost(_)
                    | ClientError::Protocol(_)
                    | ClientError::DamagedChunk(_)
                    | ClientError::Frame(_)
                    | ClientError::Unreachable { .. }
                    | ClientError::TimedOut { .. }
            ))
    }

    /// A local write failed because the file system is full (`ENOSPC`) or
    /// the user's quota is used up (`EDQUOT`): a condition that passes.
    pub fn is_no_space(&self) -> bool {
        match self {
            ClientError::Io { cause, .. } => is_no_space(cause),
            _ => false,
        }
    }
}

/// A push the server refused for a reason that may pass (PROTOCOL.md
/// §4.5, R-5.6.8): held back with growing waits either way, but told as
/// what it is. Before code 30 the client said "disk full" for every
/// `Storage`, which sent a user to free space on a server whose failure
/// was a permission or a directory in the way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreRefusal {
    /// `NoSpace` (30): the server's disk, or its user's quota, is full.
    DiskFull,
    /// `Storage` (9): another failure that may pass (an I/O error, a
    /// permission refused, a directory in the way on the server's disk).
    Failed,
}

impl StoreRefusal {
    /// The refusal `code` stands for; `None` for every other code.
    pub fn of(code: ErrorCode) -> Option<StoreRefusal> {
        match code {
            ErrorCode::NoSpace => Some(StoreRefusal::DiskFull),
            ErrorCode::Storage => Some(StoreRefusal::Failed),
            _ => None,
        }
    }

    /// Why `path` is held back, for the log and the status: a full disk
    /// said as such, any other failure with the path and the server's text
    /// (`message`, shown, never parsed: ).
    pub fn why(self, path: &crate::protocol::WirePath, message: &str) -> String {
        match self {
            StoreRefusal::DiskFull => format!("the server's disk is full ({message})"),
            StoreRefusal::Failed => format!("the server could not store {path}: {message}"),
        }
    }
}

/// `ENOSPC` or `EDQUOT`.
pub fn is_no_space(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    )
}

impl ClientError {
    /// The download of a file could not be written here (any local I/O
    /// error of the temporary or partial file): `Some(reason)` for the
    /// status and the log; `None` for anything else (a protocol breach).
    pub fn write_failure(&self) -> Option<String> {
        match self {
            ClientError::Io { context, cause } => Some(format!("{context}: {cause}")),
            _ => None,
        }
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::MissingFolder(p) => {
                write!(
                    f,
                    "folder {} does not exist or is not a directory",
                    p.display()
                )
            }
            ClientError::FolderVanished(p) => write!(
                f,
                "folder {} vanished (moved, renamed, deleted or unmounted); stopping without \
                 pushing any deletion. If you moved it, run the client on its new place, \
                 which is still this device",
                p.display()
            ),
            ClientError::FolderEmptied {
                folder,
                indexed_files,
                left,
            } => write!(
                f,
                "folder {} {} but {indexed_files} files were synced from it{}; \
                 refusing to delete them everywhere (unmounted drive?). \
                 If you emptied it on purpose, run the same command once with \
                 --confirm-empty: the deletions then reach the server and your other \
                 devices (the server keeps the files in `cloud-client versions`)",
                folder.display(),
                emptied_state(left),
                if left.is_empty() { "" } else { " outside them" },
            ),
            ClientError::FolderReplaced(p) => write!(
                f,
                "folder {} was replaced while the client ran (moved or renamed away, and \
                 another folder made at its name); stopped without sending anything more \
                 (nothing was deleted here or on the server). If you moved it, run the \
                 client on its new place, which is still this device; the folder now at \
                 {} is not synced",
                p.display(),
                p.display()
            ),
            ClientError::NestedFolder {
                inner,
                outer,
                started_on_inner: true,
            } => write!(
                f,
                "folder {} lies inside {}, which is already synced as a device of the same \
                 user: syncing both would copy the folder into itself, level after level; \
                 not starting (nothing was changed). Its files already reach this user's \
                 devices through {}; to sync it on its own, move it out of that folder first",
                inner.display(),
                outer.display(),
                outer.display()
            ),
            ClientError::NestedFolder {
                inner,
                outer,
                started_on_inner: false,
            } => write!(
                f,
                "a client syncs {} as a device of this same user, inside this folder {}: \
                 syncing both would copy the folder into itself, level after level; stopping \
                 (nothing was deleted). Stop the client of {} (its files reach this user's \
                 devices through this folder), then start this one again",
                inner.display(),
                outer.display(),
                inner.display()
            ),
            ClientError::Detached { folder, reattach } => write!(
                f,
                "folder {} was detached: its .cloudservice state folder was removed while the \
                 client ran; stopped without sending anything more (nothing was deleted here or \
                 on the server). To attach it again: {reattach}",
                folder.display()
            ),
            ClientError::Unreachable { address, cause } => write!(
                f,
                "cannot reach server {address}: {}",
                super::unreachable::explain(cause)
            ),
            ClientError::TimedOut {
                during,
                address,
                after,
            } => {
                let secs = after.as_secs_f64();
                match during {
                    Waited::Connect => write!(
                        f,
                        "cannot reach server {address}: timed out connecting after {secs} s \
                         (nothing answered the connection attempt)"
                    ),
                    Waited::TlsHandshake => write!(
                        f,
                        "timed out during the TLS handshake with {address} after {secs} s \
                         (it accepted the connection but did not answer: not a CloudService \
                         server, or one that is stuck)"
                    ),
                    Waited::HelloAnswer => write!(
                        f,
                        "timed out waiting for {address} to answer the Hello after {secs} s"
                    ),
                }
            }
            ClientError::Refused { code, message } => {
                write!(f, "server refused the connection ({code:?}): {message}")
            }
            ClientError::Stopping(what) => write!(f, "asked to stop while {what}"),
            ClientError::RequestRefused { code, message } => {
                write!(f, "the server refused the request ({code:?}): {message}")
            }
            ClientError::DeviceInUse {
                folder,
                device,
                message,
            } => write!(
                f,
                "device {device} is in use elsewhere: another copy of this folder is running? \
                 ({} holds the identity of device {device}, and the server has a live connection \
                 of that device: {message}); nothing in the folder is changed for it; stop the \
                 other copy, or join this folder as a new device (move .cloudservice away and \
                 start with USER_ID)",
                folder.display()
            ),
            ClientError::FolderInUse(folder) => write!(
                f,
                "another cloud-client is already syncing {} (it holds {}/.cloudservice/running); \
                 stop it first (`cloud-client status {}` shows how the folder stands)",
                folder.display(),
                folder.display(),
                folder.display()
            ),
            ClientError::Revoked { folder, device } => write!(
                f,
                "this device (device {device} of its user) was revoked by the server's operator; \
                 stopped without changing anything in {}. To sync this folder again, ask the \
                 operator for the user's join code, remove {}/.cloudservice and run cloud-client \
                 with USER_ID:JOIN_CODE (the files stay; they are compared, not deleted)",
                folder.display(),
                folder.display()
            ),
            ClientError::UnknownDevice {
                folder,
                device,
                rejoin,
            } => {
                let folder = folder.display();
                write!(
                    f,
                    "the server does not know this device (device {device} of its user; Error \
                     UnknownClient): its data was most likely restored from a backup made before \
                     this device joined. Nothing in {folder} was changed. To sync with the server \
                     as it is now, note this folder's user ID (`cloud-client status {folder}` \
                     shows it), stop cloud-client, remove {folder}/.cloudservice and join again: "
                )?;
                match rejoin {
                    Some(command) => write!(f, "{command}")?,
                    None => write!(
                        f,
                        "cloud-client SERVER_IP SERVER_PORT {folder} PULLING_RATE USER_ID"
                    )?,
                }
                write!(
                    f,
                    " (USER_ID:JOIN_CODE if the operator made a join code; the files stay: they \
                     are compared with the server's, not deleted)"
                )
            }
            ClientError::BadCredential { folder, message } => write!(
                f,
                "the server refused this device's credential ({message}); nothing in {} was \
                 changed. If the operator rotated the join code, run cloud-client with \
                 USER_ID:JOIN_CODE",
                folder.display()
            ),
            ClientError::CopiedFolder {
                folder,
                original,
                device,
                message,
                join,
            } => write!(
                f,
                "{} is a copy of the folder {} (it holds the identity of device {device} of its \
                 user) and must not run as that device; joining it as a new device was refused \
                 ({message}); nothing in {} was changed. To sync it as a new device, ask the \
                 operator for a join code or an invite and run: {join}",
                folder.display(),
                original.display(),
                folder.display()
            ),
            ClientError::CopyNotJoined {
                folder,
                original,
                device,
            } => write!(
                f,
                "{} is a copy of the folder {} (it holds the identity of device {device} of its \
                 user) and does not act as that device; run cloud-client on it once (it joins as \
                 a new device), then ask again",
                folder.display(),
                original.display()
            ),
            ClientError::UserMismatch { stored, given } => write!(
                f,
                "this folder is synced as user {stored}, not {given}; \
                 use another folder or remove its .cloudservice state"
            ),
            ClientError::DamagedIdentity { file, detail } => {
                let folder = file
                    .parent()
                    .and_then(Path::parent)
                    .unwrap_or_else(|| Path::new("FOLDER"));
                let mut aside = file.as_os_str().to_owned();
                aside.push(".damaged");
                write!(
                    f,
                    "state file {} is damaged ({detail}): it holds this device's user ID, \
                     device number and device key, which cannot be rebuilt from the folder \
                     or the server; nothing in the folder was changed. The way out: keep it \
                     aside with `mv {} {}`, then join this folder to the user again as a new \
                     device: `cloud-client SERVER_IP SERVER_PORT {} PULLING_RATE \
                     USER_ID[:JOIN_CODE]` (the user ID is on the `user:` line of \
                     `cloud-client status` on another device of the user); its files are \
                     compared with the server's, differences kept as conflict copies, \
                     nothing deleted. The old device can then be revoked on the server \
                     (`cloud-server revoke DATA_DIR USER_ID DEVICE`)",
                    file.display(),
                    file.display(),
                    Path::new(&aside).display(),
                    folder.display()
                )
            }
            ClientError::CorruptState { file, detail } => {
                write!(f, "state file {} is damaged: {detail}", file.display())
            }
            ClientError::Protocol(m) => write!(f, "protocol error: {m}"),
            ClientError::DamagedChunk(m) => write!(f, "damaged chunk from the server: {m}"),
            ClientError::ConnectionLost(m) => write!(f, "connection lost: {m}"),
            ClientError::Frame(e) => write!(f, "bad frame from server: {e}"),
            ClientError::BadPath(e) => write!(f, "bad path: {e}"),
            ClientError::UnsafePath(p) => write!(f, "unsafe local path {p}"),
            ClientError::Io { context, cause } => write!(f, "{context}: {cause}"),
            ClientError::Watch(m) => write!(f, "cannot watch the folder: {m}"),
            ClientError::Untrusted(why) => write!(f, "refusing the server: {why}"),
            ClientError::TransportMismatch(m) => write!(f, "{m}"),
            ClientError::Tls(m) => write!(f, "TLS: {m}"),
        }
    }
}

impl std::error::Error for ClientError {}

impl From<FrameError> for ClientError {
    fn from(e: FrameError) -> Self {
        ClientError::Frame(e)
    }
}

impl From<PathError> for ClientError {
    fn from(e: PathError) -> Self {
        ClientError::BadPath(e)
    }
}

/// How [`ClientError::FolderEmptied`] describes what is left.
fn emptied_state(left: &[String]) -> String {
    const SHOWN: usize = 5;
    if left.is_empty() {
        return String::from("is empty");
    }
    let mut names = left
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if left.len() > SHOWN {
        names.push_str(&format!(" and {} more", left.len() - SHOWN));
    }
    format!("holds only {names} (names beginning with '.', what `rm -rf folder/*` leaves)")
}

#[cfg(test)]
mod refusal_tests {
    use super::*;
    use crate::protocol::WirePath;

    /// Every code: only `NoSpace` is a full disk, only `Storage` another
    /// failure that may pass; the words follow.
    #[test]
    fn a_full_disk_is_told_apart_from_other_storage_failures() {
        let path = WirePath::new("d/big.bin").expect("path");
        for n in 0..=u16::from(u8::MAX) {
            let code = ErrorCode::from_wire(n);
            let refusal = StoreRefusal::of(code);
            match n {
                30 => assert_eq!(refusal, Some(StoreRefusal::DiskFull)),
                9 => assert_eq!(refusal, Some(StoreRefusal::Failed)),
                _ => assert_eq!(refusal, None, "code {n}"),
            }
        }
        let full = StoreRefusal::DiskFull.why(&path, "No space left on device (os error 28)");
        assert_eq!(
            full,
            "the server's disk is full (No space left on device (os error 28))"
        );
        let other = StoreRefusal::Failed.why(&path, "Permission denied (os error 13)");
        assert_eq!(
            other,
            "the server could not store d/big.bin: Permission denied (os error 13)"
        );
        assert!(!other.contains("full"));
    }
}
