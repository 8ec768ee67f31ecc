//! Pushed tree changes other than file content: `MakeDir`, `Delete`,
//! `RemoveDir`, `Rename`, `SetMode` (version 3), and the server's `PushAck`
//! for every push.

use super::error::FrameError;
use super::limits::MODE_EXECUTABLE;
use super::path::WirePath;
use super::wire::{put_path, put_u64, FieldReader};

/// Removes a file.
///
/// ```text
/// payload: base_version u64 | path_len u16 | path
/// ```
/// If the file's version on the server is not `base_version`, someone changed
/// it meanwhile: the server keeps it and answers `Stale`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delete {
    /// The version the client deleted.
    pub base_version: u64,
    /// The file.
    pub path: WirePath,
}

impl Delete {
    pub(crate) fn decode(r: &mut FieldReader<'_>) -> Result<Self, FrameError> {
        Ok(Delete {
            base_version: r.u64()?,
            path: r.path()?,
        })
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        put_u64(out, self.base_version);
        put_path(out, &self.path);
    }
}

/// Sets or clears a file's executable bit (PROTOCOL.md §15.3; version 3).
///
/// ```text
/// payload: base_version u64 | mode u8 (bit 0: executable; bits 1..7: 0) | path_len u16 | path
/// ```
/// As for `Delete`, a file changed meanwhile by another device is `Stale`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetMode {
    /// The version of the file whose mode the client changed.
    pub base_version: u64,
    /// The file is to be executable (mode bit 0).
    pub executable: bool,
    /// The file.
    pub path: WirePath,
}

/// Decodes a `mode` byte (§15.2): bit 0 is the executable bit; a reserved
/// bit set is `BadValue`.
///
/// # Errors
/// [`FrameError::BadValue`] for a reserved bit.
pub fn decode_mode(mode: u8) -> Result<bool, FrameError> {
    if mode & !MODE_EXECUTABLE != 0 {
        return Err(FrameError::BadValue);
    }
    Ok(mode == MODE_EXECUTABLE)
}

/// The `mode` byte for a file that is (or is not) executable.
pub fn encode_mode(executable: bool) -> u8 {
    if executable {
        MODE_EXECUTABLE
    } else {
        0
    }
}

impl SetMode {
    pub(crate) fn decode(r: &mut FieldReader<'_>) -> Result<Self, FrameError> {
        let base_version = r.u64()?;
        let executable = decode_mode(r.u8()?)?;
        Ok(SetMode {
            base_version,
            executable,
            path: r.path()?,
        })
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        put_u64(out, self.base_version);
        out.push(encode_mode(self.executable));
        put_path(out, &self.path);
    }
}

/// Removes a directory and what is in it.
///
/// ```text
/// payload: cursor u64 | path_len u16 | path
/// ```
/// `cursor` is the newest sequence number the client had applied: entries
/// below the directory with a newer version are kept (with their parents).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoveDir {
    /// The client's cursor when it saw the directory go.
    pub cursor: u64,
    /// The directory.
    pub path: WirePath,
}

impl RemoveDir {
    pub(crate) fn decode(r: &mut FieldReader<'_>) -> Result<Self, FrameError> {
        Ok(RemoveDir {
            cursor: r.u64()?,
            path: r.path()?,
        })
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        put_u64(out, self.cursor);
        put_path(out, &self.path);
    }
}

/// Moves a file or directory without re-uploading it.
///
/// ```text
/// payload: base_version u64 | from_len u16 | from | to_len u16 | to
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rename {
    /// The version of `from` the client moved (informative for directories).
    pub base_version: u64,
    /// The old path.
    pub from: WirePath,
    /// The new path.
    pub to: WirePath,
}

impl Rename {
    pub(crate) fn decode(r: &mut FieldReader<'_>) -> Result<Self, FrameError> {
        Ok(Rename {
            base_version: r.u64()?,
            from: r.path()?,
            to: r.path()?,
        })
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        put_u64(out, self.base_version);
        put_path(out, &self.from);
        put_path(out, &self.to);
    }
}

/// What the server did with one push (PROTOCOL.md §5.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushStatus {
    /// Applied as asked; `version` is the new journal sequence number.
    Applied = 0,
    /// Someone changed the path meanwhile: the pushed content was stored under
    /// `path`, a conflict-copy name. The other version stays at the old path.
    Conflict = 1,
    /// Not applied: the server's state moved on (a delete of a file that was
    /// modified, a rename of a path that is gone). The client catches up by pulling.
    Stale = 2,
    /// Nothing to do: the server is already in the asked state.
    Unchanged = 3,
}

/// The answer to every push (`FileEnd`, `MakeDir`, `Delete`, `RemoveDir`,
/// `Rename`), sent only once the change is applied and journaled.
///
/// ```text
/// payload: status u8 | version u64 | path_len u16 | path
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushAck {
    /// What happened.
    pub status: PushStatus,
    /// The journal sequence number of the change (or the path's current version).
    pub version: u64,
    /// Where the change landed (the conflict-copy name for `Conflict`).
    pub path: WirePath,
}

impl PushAck {
    pub(crate) fn decode(r: &mut FieldReader<'_>) -> Result<Self, FrameError> {
        let status = match r.u8()? {
            0 => PushStatus::Applied,
            1 => PushStatus::Conflict,
            2 => PushStatus::Stale,
            3 => PushStatus::Unchanged,
            _ => return Err(FrameError::BadValue),
        };
        Ok(PushAck {
            status,
            version: r.u64()?,
            path: r.path()?,
        })
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.status as u8);
        put_u64(out, self.version);
        put_path(out, &self.path);
    }
}
