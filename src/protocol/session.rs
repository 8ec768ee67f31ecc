//! Session messages: `Hello`/`Welcome` (the handshake), `Ping`/`Pong` and `Error`.

use super::error::FrameError;
use super::ids::{ClientId, UserId};
use super::wire::{put_text, put_u16, put_u64, FieldReader};

/// What a connection wants to be (PROTOCOL.md §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HelloMode {
    /// Create a user; the server answers with a fresh user ID and client ID.
    NewUser = 1,
    /// Join an existing user as a new device.
    NewClient = 2,
    /// Come back as a device the server already registered.
    Resume = 3,
    /// Come back as a registered device for an errand that does not sync
    /// (the reference client's `versions` and `restore`): checked as
    /// `Resume`, but neither refused nor counted under the rule of one
    /// live connection per device (§4.6, R-4.6.15); Pull, PullModes and
    /// Ack on it are `WrongPhase`.
    Visit = 4,
}

impl HelloMode {
    /// Whether the Hello names a registered device (Resume or Visit), whose
    /// credentials are checked the same way.
    pub fn resumes(self) -> bool {
        matches!(self, HelloMode::Resume | HelloMode::Visit)
    }
}

/// The first frame of every connection.
///
/// ```text
/// payload (28 bytes): mode u8 | reserved [3] = 0 | user_id [16] | client_id u64
/// ```
/// The user ID sits at byte 16 of the connection (12-byte header + 4), so a
/// load balancer can route on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// New user, new client or resume.
    pub mode: HelloMode,
    /// Zero for a new user.
    pub user_id: UserId,
    /// Zero unless resuming.
    pub client_id: ClientId,
}

impl Hello {
    pub(crate) fn decode(r: &mut FieldReader<'_>) -> Result<Self, FrameError> {
        let mode = match r.u8()? {
            1 => HelloMode::NewUser,
            2 => HelloMode::NewClient,
            3 => HelloMode::Resume,
            4 => HelloMode::Visit,
            _ => return Err(FrameError::BadValue),
        };
        if r.array::<3>()? != [0; 3] {
            return Err(FrameError::BadValue);
        }
        let user_id = UserId(r.array()?);
        let client_id = r.u64()?;
        Ok(Hello {
            mode,
            user_id,
            client_id,
        })
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.mode as u8);
        out.extend_from_slice(&[0; 3]);
        out.extend_from_slice(&self.user_id.0);
        put_u64(out, self.client_id);
    }
}

/// The server's answer to a good `Hello`.
///
/// ```text
/// payload (32 bytes): user_id [16] | client_id u64 | head u64
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Welcome {
    /// The user this connection now belongs to.
    pub user_id: UserId,
    /// This device's number within the user.
    pub client_id: ClientId,
    /// The newest journal sequence number the server holds for the user.
    pub head: u64,
}

impl Welcome {
    pub(crate) fn decode(r: &mut FieldReader<'_>) -> Result<Self, FrameError> {
        Ok(Welcome {
            user_id: UserId(r.array()?),
            client_id: r.u64()?,
            head: r.u64()?,
        })
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.user_id.0);
        put_u64(out, self.client_id);
        put_u64(out, self.head);
    }
}

/// Numeric error codes (PROTOCOL.md §4.5).
///
/// Codes a later protocol revision adds decode as [`ErrorCode::Unknown`]
/// instead of making the frame undecodable (§4.5, forward compatibility).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// The frame could not be decoded; the connection closes.
    BadFrame,
    /// A path broke a path rule; the connection closes.
    BadPath,
    /// A message that is not legal in the connection's phase; the connection closes.
    WrongPhase,
    /// The user ID is not known (or the guess was rate-limited); the connection closes.
    UnknownUser,
    /// The client ID is not registered for this user; the connection closes.
    UnknownClient,
    /// An uploaded file's bytes do not match its announced hash; nothing was stored.
    HashMismatch,
    /// An uploaded file's chunks do not add up to its announced size; nothing was stored.
    SizeMismatch,
    /// The server is at its connection limit; the connection closes.
    Busy,
    /// The server could not store or read data for a reason that may pass
    /// other than a full disk (an I/O error, a permission refused, a
    /// directory in the way on its disk); a full disk is [`Self::NoSpace`].
    Storage,
    /// The handshake or idle timeout ran out; the connection closes.
    Timeout,
    /// A fetched path does not exist (any more).
    NotFound,
    /// The server is shutting down; the connection closes.
    ShuttingDown,
    /// The change can never be stored as asked (the server's file system
    /// refuses the name or the path); nothing changed and retrying the same
    /// push fails the same way. The connection stays open.
    Unstorable,
    /// The device was revoked by the operator (§4.6); the connection
    /// closes and the device must not retry.
    Revoked,
    /// A device key or join code that does not match (§4.6); the
    /// connection closes.
    BadCredential,
    /// No kept version matches a Restore (§14.3): never kept, or reaped.
    /// The connection stays open.
    NoSuchVersion,
    /// This server (a shard, §16) does not hold the user: its tag names
    /// another shard, or it was moved away. The connection closes; the
    /// client reconnects later (the route is being or was changed).
    WrongShard,
    /// The user is being moved between shards (§16.3): the connection
    /// closes; the client reconnects with growing waits.
    Moving,
    /// The peer address made too many failed guesses (§2.2, R-2.2.4): its
    /// handshakes are refused for a while, whatever the ID. Retryable: the
    /// client waits and reconnects with its growing backoff; the message
    /// says the wait in seconds for people. The connection closes.
    TooManyAttempts,
    /// The device already has a live connection (§4.6, R-4.6.13): a second
    /// Resume of one device key is refused while the first answers, so two
    /// copies of a folder never share one cursor. Retryable: usually a
    /// restart racing its own old connection. The connection closes.
    DeviceInUse,
    /// The server's disk, or its user's quota, is full (`ENOSPC`,
    /// `EDQUOT`) while storing a push: the change was not applied; the
    /// connection stays open and the same push may succeed once space is
    /// freed (R-5.6.8: retried with growing waits).
    NoSpace,
    /// A code this implementation does not know (a newer server): the
    /// request it answers failed; the connection closes (§4.5).
    Unknown(u16),
}

impl ErrorCode {
    /// The code for a number, if the spec defines one.
    pub fn from_u16(value: u16) -> Option<ErrorCode> {
        Some(match value {
            1 => ErrorCode::BadFrame,
            2 => ErrorCode::BadPath,
            3 => ErrorCode::WrongPhase,
            4 => ErrorCode::UnknownUser,
            5 => ErrorCode::UnknownClient,
            6 => ErrorCode::HashMismatch,
            7 => ErrorCode::SizeMismatch,
            8 => ErrorCode::Busy,
            9 => ErrorCode::Storage,
            10 => ErrorCode::Timeout,
            11 => ErrorCode::NotFound,
            12 => ErrorCode::ShuttingDown,
            13 => ErrorCode::Unstorable,
            14 => ErrorCode::Revoked,
            15 => ErrorCode::BadCredential,
            18 => ErrorCode::NoSuchVersion,
            26 => ErrorCode::WrongShard,
            27 => ErrorCode::Moving,
            28 => ErrorCode::TooManyAttempts,
            29 => ErrorCode::DeviceInUse,
            30 => ErrorCode::NoSpace,
            _ => return None,
        })
    }

    /// The code for any number: undefined values are [`ErrorCode::Unknown`].
    pub fn from_wire(value: u16) -> ErrorCode {
        ErrorCode::from_u16(value).unwrap_or(ErrorCode::Unknown(value))
    }

    /// The number on the wire.
    pub fn to_u16(self) -> u16 {
        match self {
            ErrorCode::BadFrame => 1,
            ErrorCode::BadPath => 2,
            ErrorCode::WrongPhase => 3,
            ErrorCode::UnknownUser => 4,
            ErrorCode::UnknownClient => 5,
            ErrorCode::HashMismatch => 6,
            ErrorCode::SizeMismatch => 7,
            ErrorCode::Busy => 8,
            ErrorCode::Storage => 9,
            ErrorCode::Timeout => 10,
            ErrorCode::NotFound => 11,
            ErrorCode::ShuttingDown => 12,
            ErrorCode::Unstorable => 13,
            ErrorCode::Revoked => 14,
            ErrorCode::BadCredential => 15,
            ErrorCode::NoSuchVersion => 18,
            ErrorCode::WrongShard => 26,
            ErrorCode::Moving => 27,
            ErrorCode::TooManyAttempts => 28,
            ErrorCode::DeviceInUse => 29,
            ErrorCode::NoSpace => 30,
            ErrorCode::Unknown(value) => value,
        }
    }

    /// Whether retrying the same request later may succeed (§4.5's table):
    /// false for codes that need a person or a different request.
    pub fn is_retryable(self) -> bool {
        !matches!(
            self,
            ErrorCode::UnknownUser
                | ErrorCode::UnknownClient
                | ErrorCode::Unstorable
                | ErrorCode::Revoked
                | ErrorCode::BadCredential
                | ErrorCode::NoSuchVersion
        )
    }
}

/// An error report.
///
/// ```text
/// payload: code u16 | message_len u16 | message (UTF-8, at most 1024 bytes)
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorReport {
    /// What went wrong.
    pub code: ErrorCode,
    /// Human-readable detail.
    pub message: String,
}

impl ErrorReport {
    pub(crate) fn decode(r: &mut FieldReader<'_>) -> Result<Self, FrameError> {
        let code = ErrorCode::from_wire(r.u16()?);
        let message = r.text()?;
        Ok(ErrorReport { code, message })
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        put_u16(out, self.code.to_u16());
        put_text(out, &self.message);
    }
}
