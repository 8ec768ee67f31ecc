"""Frame codec of protocol-spec/PROTOCOL.md, written from the spec alone.

Encoding (client → server) and strict decoding (server → client): a frame the
server sends that breaks §3.3 or §6 raises `WireError`, which the caller turns
into a spec violation. Shapes: a frame is `Frame(kind, rid, payload)`; every
integer is unsigned big-endian (§1.4).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

MAGIC = b"CS"
VERSION = 1
VERSION_MODES = 3  # §15: the executable bit
HEADER_LEN = 12
MAX_PAYLOAD = 1048576
CHUNK_SIZE = 262144
MAX_PATH_BYTES = 4096
MAX_COMPONENT_BYTES = 255
MAX_PATH_DEPTH = 64
MAX_MESSAGE_BYTES = 1024
MAX_BATCH_ENTRIES = 4096
STATE_DIR_NAME = ".cloudservice"

# §3.2 message kinds.
HELLO, WELCOME, PING, PONG, ERROR = 0x01, 0x02, 0x03, 0x04, 0x05
KEY_HELLO, KEY_WELCOME = 0x06, 0x07  # §4.6
PULL, CHANGE_BATCH, ACK, NOTIFY, FETCH = 0x10, 0x11, 0x12, 0x13, 0x14
FILE_BEGIN, FILE_CHUNK, FILE_END = 0x20, 0x21, 0x22
MAKE_DIR, DELETE, REMOVE_DIR, RENAME, PUSH_ACK = 0x30, 0x31, 0x32, 0x33, 0x34
PULL_MODES, MODE_BATCH, SET_MODE = 0x18, 0x19, 0x35  # §15, version 3
# each kind travels under exactly one header version.
KIND_VERSION = {PULL_MODES: VERSION_MODES, MODE_BATCH: VERSION_MODES,
                SET_MODE: VERSION_MODES}
MODE_EXEC = 0x01  # §15.2 mode byte: bit 0, the executable bit

KIND_NAMES = {
    HELLO: "Hello", WELCOME: "Welcome", PING: "Ping", PONG: "Pong",
    KEY_HELLO: "KeyHello", KEY_WELCOME: "KeyWelcome",
    ERROR: "Error", PULL: "Pull", CHANGE_BATCH: "ChangeBatch", ACK: "Ack",
    NOTIFY: "Notify", FETCH: "Fetch", FILE_BEGIN: "FileBegin",
    FILE_CHUNK: "FileChunk", FILE_END: "FileEnd", MAKE_DIR: "MakeDir",
    DELETE: "Delete", REMOVE_DIR: "RemoveDir", RENAME: "Rename",
    PUSH_ACK: "PushAck", PULL_MODES: "PullModes", MODE_BATCH: "ModeBatch",
    SET_MODE: "SetMode",
}
# Kinds a server may send (§3.2 direction column).
SERVER_KINDS = {WELCOME, KEY_WELCOME, PONG, ERROR, CHANGE_BATCH, NOTIFY, FILE_BEGIN,
                FILE_CHUNK, FILE_END, PUSH_ACK, MODE_BATCH}

# §4.1 Hello modes.
NEW_USER, NEW_CLIENT, RESUME = 1, 2, 3
# §4.1, R-4.6.15: a Resume for an errand that does not sync; not the
# device's one live connection, so it never waits for a probe.
VISIT = 4

# §4.5 error codes.
ERROR_NAMES = {
    1: "BadFrame", 2: "BadPath", 3: "WrongPhase", 4: "UnknownUser",
    5: "UnknownClient", 6: "HashMismatch", 7: "SizeMismatch", 8: "Busy",
    9: "Storage", 10: "Timeout", 11: "NotFound", 12: "ShuttingDown",
    13: "Unstorable", 14: "Revoked", 15: "BadCredential",
}
CODE = {name: code for code, name in ERROR_NAMES.items()}
# §4.5 "Connection afterwards": the codes after which it stays open
# (SizeMismatch only when the bytes fell short at FileEnd). Every other code,
# and every code this client does not know, closes it.
STAYS_OPEN = {6, 7, 9, 11, 13}
# the one code after which the same push bytes may succeed later.
RETRY_SAME_PUSH = {9}

# §5.4 PushAck statuses.
APPLIED, CONFLICT, STALE, UNCHANGED = 0, 1, 2, 3
STATUS_NAMES = {APPLIED: "Applied", CONFLICT: "Conflict", STALE: "Stale",
                UNCHANGED: "Unchanged"}

# §5.2 entry states and flags.
ST_FILE, ST_DIR, ST_DELETED = 1, 2, 3
STATE_NAMES = {ST_FILE: "File", ST_DIR: "Dir", ST_DELETED: "Deleted"}
FLAG_FULL, FLAG_LAST = 0x01, 0x02
ZERO_HASH = bytes(32)


class WireError(Exception):
    """A server frame that breaks §3.3/§6: `reason` is the §3.3 cause name."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


@dataclass
class Frame:
    kind: int
    rid: int
    payload: bytes = b""

    def name(self) -> str:
        return KIND_NAMES.get(self.kind, f"kind 0x{self.kind:02x}")


@dataclass
class Entry:
    state: int
    version: int
    size: int
    hash: bytes
    path: str
    mode: int = 0  # §15.2: only in a ModeBatch


@dataclass
class Batch:
    head: int
    flags: int
    entries: list[Entry] = field(default_factory=list)


# ---------------------------------------------------------------- paths (§6)

def path_error(raw: bytes) -> str | None:
    """The §6.1 rule `raw` breaks (its `PathError` name), or None if legal."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "BadUtf8"
    if not raw:
        return "Empty"
    if len(raw) > MAX_PATH_BYTES:
        return "TooLong"
    if text.startswith("/"):
        return "Absolute"
    if "\0" in text:
        return "Nul"
    if "\\" in text:
        return "Backslash"
    if any(0x01 <= ord(c) <= 0x1F or ord(c) == 0x7F for c in text):
        return "ControlCharacter"
    parts = text.split("/")
    if len(parts) > MAX_PATH_DEPTH:
        return "TooDeep"
    for part in parts:
        if part == "":
            return "EmptyComponent"
        if part == ".":
            return "DotComponent"
        if part == "..":
            return "DotDotComponent"
        if len(part.encode("utf-8")) > MAX_COMPONENT_BYTES:
            return "ComponentTooLong"
    if parts[0] == STATE_DIR_NAME:
        return "Reserved"
    return None


def enc_path(path: str | bytes) -> bytes:
    """`u16` length + bytes; deliberately does NOT validate (tests send bad ones)."""
    raw = path.encode("utf-8") if isinstance(path, str) else path
    return struct.pack(">H", len(raw)) + raw


# ------------------------------------------------------------ encoding (§3–5)

def header(kind: int, rid: int, length: int, magic: bytes = MAGIC,
           version: int = VERSION) -> bytes:
    return magic + bytes([version, kind]) + struct.pack(">II", rid, length)


def frame(kind: int, rid: int, payload: bytes = b"") -> bytes:
    """A frame under its kind's one header version (R-15.1.1)."""
    return header(kind, rid, len(payload), version=KIND_VERSION.get(kind, VERSION)) + payload


def hello(rid: int, mode: int, user_id: bytes, client_id: int) -> bytes:
    return frame(HELLO, rid, bytes([mode, 0, 0, 0]) + user_id
                 + struct.pack(">Q", client_id))


def key_hello(rid: int, mode: int, user_id: bytes, client_id: int, secret: bytes,
              name: bytes = b"") -> bytes:
    """KeyHello (§4.6): Hello's 28 bytes, the 32-byte secret (device key,
    join code or zeros), name_len u8 and the name (at most 64 bytes)."""
    assert len(secret) == 32 and len(name) <= 64
    return frame(KEY_HELLO, rid, bytes([mode, 0, 0, 0]) + user_id
                 + struct.pack(">Q", client_id) + secret + bytes([len(name)]) + name)


def pull(rid: int, cursor: int) -> bytes:
    return frame(PULL, rid, struct.pack(">Q", cursor))


def pull_modes(rid: int, cursor: int) -> bytes:
    """PullModes (§15.2): Pull's payload under version 3."""
    return frame(PULL_MODES, rid, struct.pack(">Q", cursor))


def set_mode(rid: int, base: int, mode: int, path: str | bytes) -> bytes:
    """SetMode (§15.3): base_version u64, mode u8, path."""
    return frame(SET_MODE, rid, struct.pack(">QB", base, mode) + enc_path(path))


def ack(rid: int, cursor: int) -> bytes:
    return frame(ACK, rid, struct.pack(">Q", cursor))


def fetch(rid: int, version: int, path: str | bytes) -> bytes:
    return frame(FETCH, rid, struct.pack(">Q", version) + enc_path(path))


def file_begin(rid: int, version: int, size: int, digest: bytes,
               path: str | bytes) -> bytes:
    return frame(FILE_BEGIN, rid,
                 struct.pack(">QQ", version, size) + digest + enc_path(path))


def make_dir(rid: int, path: str | bytes) -> bytes:
    return frame(MAKE_DIR, rid, enc_path(path))


def delete(rid: int, base: int, path: str | bytes) -> bytes:
    return frame(DELETE, rid, struct.pack(">Q", base) + enc_path(path))


def remove_dir(rid: int, cursor: int, path: str | bytes) -> bytes:
    return frame(REMOVE_DIR, rid, struct.pack(">Q", cursor) + enc_path(path))


def rename(rid: int, base: int, src: str | bytes, dst: str | bytes) -> bytes:
    return frame(RENAME, rid, struct.pack(">Q", base) + enc_path(src)
                 + enc_path(dst))


# ------------------------------------------------------ decoding (server side)

def check_header(raw: bytes) -> tuple[int, int, int]:
    """§3.3 header checks in their order; returns (kind, rid, payload_len)."""
    if raw[0:2] != MAGIC:
        raise WireError("BadMagic", raw[0:2].hex())
    if raw[2] not in (VERSION, VERSION_MODES):
        raise WireError("UnsupportedVersion", str(raw[2]))
    kind = raw[3]
    if kind not in KIND_NAMES or (raw[2] == VERSION and kind in KIND_VERSION):
        raise WireError("UnknownKind", f"0x{kind:02x} under version {raw[2]}")
    if raw[2] != KIND_VERSION.get(kind, VERSION):
        raise WireError("UnsupportedVersion", f"{raw[2]} for {KIND_NAMES[kind]}")
    rid, length = struct.unpack(">II", raw[4:12])
    if length > MAX_PAYLOAD:
        raise WireError("FrameTooLong", str(length))
    if kind not in SERVER_KINDS:
        raise WireError("ClientOnlyKind", KIND_NAMES[kind])
    return kind, rid, length


class Reader:
    """Field reader over one payload that enforces Truncated/TrailingBytes."""

    def __init__(self, payload: bytes):
        self.buf, self.pos = payload, 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.buf):
            raise WireError("Truncated", f"need {n} bytes at {self.pos}")
        out = self.buf[self.pos:self.pos + n]
        self.pos += n
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return struct.unpack(">H", self.take(2))[0]

    def u64(self) -> int:
        return struct.unpack(">Q", self.take(8))[0]

    def path(self) -> str:
        raw = self.take(self.u16())
        rule = path_error(raw)
        if rule is not None:
            raise WireError("BadPath", f"{rule}: {raw!r}")
        return raw.decode("utf-8")

    def text(self) -> str:
        n = self.u16()
        if n > MAX_MESSAGE_BYTES:
            raise WireError("FieldTooLong", f"text of {n} bytes")
        try:
            return self.take(n).decode("utf-8")
        except UnicodeDecodeError as err:
            raise WireError("BadUtf8", str(err)) from err

    def end(self) -> None:
        if self.pos != len(self.buf):
            raise WireError("TrailingBytes",
                            f"{len(self.buf) - self.pos} bytes after last field")


def decode_welcome(payload: bytes) -> tuple[bytes, int, int]:
    r = Reader(payload)
    out = (r.take(16), r.u64(), r.u64())
    r.end()
    return out


def decode_key_welcome(payload: bytes) -> tuple[bytes, int, int, bytes]:
    """KeyWelcome (§4.6): user_id, client_id, head, device_key."""
    r = Reader(payload)
    out = (r.take(16), r.u64(), r.u64(), r.take(32))
    r.end()
    return out


def error_name(code: int) -> str:
    """The §4.5 name of `code`, or "unknown code N" (R-1.4.1.1)."""
    return ERROR_NAMES.get(code, f"unknown code {code}")


def error_closes(code: int, overflow: bool = False) -> bool:
    """Whether the server closes the connection after Error `code` (§4.5);
    `overflow`: a SizeMismatch sent at a chunk past the announced size."""
    if code == CODE["SizeMismatch"]:
        return overflow
    return code not in STAYS_OPEN


def decode_error(payload: bytes) -> tuple[int, str]:
    """(code, message). Every `u16` is a code (R-1.4.1.1): one this client
    does not know decodes like any other and is judged by the caller
    (R-4.5.8: closing), never rejected as BadValue."""
    r = Reader(payload)
    code = r.u16()
    msg = r.text()
    r.end()
    return code, msg


def decode_u64(payload: bytes) -> int:
    r = Reader(payload)
    value = r.u64()
    r.end()
    return value


def decode_empty(payload: bytes) -> None:
    Reader(payload).end()


def decode_batch(payload: bytes, modes: bool = False) -> Batch:
    """ChangeBatch (§5.2), or with `modes` a ModeBatch (§15.2: a mode byte
    after each entry's state)."""
    r = Reader(payload)
    head, flags, count = r.u64(), r.u8(), r.u16()
    if flags & 0xFC:
        raise WireError("BadValue", f"flags 0x{flags:02x}")
    if count > MAX_BATCH_ENTRIES:
        raise WireError("FieldTooLong", f"count {count}")
    batch = Batch(head, flags)
    for _ in range(count):
        state = r.u8()
        mode = r.u8() if modes else 0
        version, size, digest = r.u64(), r.u64(), r.take(32)
        if state not in STATE_NAMES:
            raise WireError("BadValue", f"entry state {state}")
        if mode & ~MODE_EXEC or (mode and state != ST_FILE):
            raise WireError("BadValue", f"mode 0x{mode:02x} of a {STATE_NAMES[state]} "
                            "entry (R-15.2.2)")
        if state != ST_FILE and (size != 0 or digest != ZERO_HASH):
            raise WireError("BadValue", "Dir/Deleted entry with size or hash")
        batch.entries.append(Entry(state, version, size, digest, r.path(), mode))
    r.end()
    return batch


def decode_file_begin(payload: bytes) -> tuple[int, int, bytes, str]:
    r = Reader(payload)
    out = (r.u64(), r.u64(), r.take(32), r.path())
    r.end()
    return out


def decode_push_ack(payload: bytes) -> tuple[int, int, str]:
    r = Reader(payload)
    status, version = r.u8(), r.u64()
    if status not in STATUS_NAMES:
        raise WireError("BadValue", f"PushAck status {status}")
    out = (status, version, r.path())
    r.end()
    return out


def decode(frame_: Frame) -> object:
    """Decodes a server frame's payload by kind (strict, §3.3)."""
    kind, payload = frame_.kind, frame_.payload
    if kind == WELCOME:
        return decode_welcome(payload)
    if kind == KEY_WELCOME:
        return decode_key_welcome(payload)
    if kind == ERROR:
        return decode_error(payload)
    if kind == NOTIFY:
        return decode_u64(payload)
    if kind == CHANGE_BATCH:
        return decode_batch(payload)
    if kind == MODE_BATCH:
        return decode_batch(payload, modes=True)
    if kind == FILE_BEGIN:
        return decode_file_begin(payload)
    if kind == PUSH_ACK:
        return decode_push_ack(payload)
    if kind in (PONG, FILE_END):
        return decode_empty(payload)
    return payload  # FileChunk: any bytes
