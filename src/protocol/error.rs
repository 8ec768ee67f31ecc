//! Why a frame or a path was refused: exact, copyable causes.

use std::fmt;

/// Why a path from the wire (or from disk, on its way to the wire) is not acceptable.
///
/// Every variant maps to one rule of PROTOCOL.md §6 ("Paths").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// The path has no bytes.
    Empty,
    /// More than `MAX_PATH_BYTES` bytes.
    TooLong,
    /// More than `MAX_PATH_DEPTH` components.
    TooDeep,
    /// One component is longer than `MAX_COMPONENT_BYTES`.
    ComponentTooLong,
    /// Starts with `/`: paths are relative to the user's folder.
    Absolute,
    /// Two `/` in a row, or a trailing `/`.
    EmptyComponent,
    /// A `.` component.
    DotComponent,
    /// A `..` component: would climb out of the folder.
    DotDotComponent,
    /// Contains a NUL byte.
    Nul,
    /// Contains `\`, which some systems treat as a separator.
    Backslash,
    /// Contains a control character (U+0001..U+001F, U+007F).
    ControlCharacter,
    /// The first component is the client's reserved state folder.
    Reserved,
    /// Not valid UTF-8.
    BadUtf8,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            PathError::Empty => "empty path",
            PathError::TooLong => "path too long",
            PathError::TooDeep => "path too deep",
            PathError::ComponentTooLong => "path component too long",
            PathError::Absolute => "absolute path",
            PathError::EmptyComponent => "empty path component",
            PathError::DotComponent => "'.' path component",
            PathError::DotDotComponent => "'..' path component",
            PathError::Nul => "NUL byte in path",
            PathError::Backslash => "backslash in path",
            PathError::ControlCharacter => "control character in path",
            PathError::Reserved => "reserved name in path",
            PathError::BadUtf8 => "path is not UTF-8",
        };
        f.write_str(text)
    }
}

impl std::error::Error for PathError {}

/// Why the decoder refused a frame. After any of these the connection is closed
/// (PROTOCOL.md §3.3): the stream position can no longer be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// The first two bytes are not `CS`.
    BadMagic,
    /// The version byte is not one this implementation speaks.
    UnsupportedVersion(u8),
    /// The kind byte names no message.
    UnknownKind(u8),
    /// The declared payload length is above `MAX_PAYLOAD`.
    FrameTooLong(u32),
    /// The payload ended before a field it must contain.
    Truncated,
    /// The payload has bytes after its last field.
    TrailingBytes,
    /// A text field (error message) is not UTF-8.
    BadUtf8,
    /// A path field breaks a path rule.
    BadPath(PathError),
    /// An enumerated field holds a value the spec does not define.
    BadValue,
    /// A text or batch field is over its documented limit.
    FieldTooLong,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::BadMagic => f.write_str("bad magic"),
            FrameError::UnsupportedVersion(v) => write!(f, "unsupported protocol version {v}"),
            FrameError::UnknownKind(k) => write!(f, "unknown message kind 0x{k:02x}"),
            FrameError::FrameTooLong(n) => write!(f, "frame payload of {n} bytes is too long"),
            FrameError::Truncated => f.write_str("payload truncated"),
            FrameError::TrailingBytes => f.write_str("trailing bytes in payload"),
            FrameError::BadUtf8 => f.write_str("text is not UTF-8"),
            FrameError::BadPath(p) => write!(f, "bad path: {p}"),
            FrameError::BadValue => f.write_str("field holds an undefined value"),
            FrameError::FieldTooLong => f.write_str("field over its limit"),
        }
    }
}

impl std::error::Error for FrameError {}

impl From<PathError> for FrameError {
    fn from(e: PathError) -> Self {
        FrameError::BadPath(e)
    }
}
